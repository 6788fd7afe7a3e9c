//! Request methods: the nine of RFC 9110 as constants, and extension methods (`PURGE`,
//! `QUERY`, WebDAV's `PROPFIND`, ...) that an app declares with [`Method::other`].
//!
//! A method is one byte: the nine standard methods are codes 0 to 8, an extension method is
//! 9 plus its place in a process-wide table of declared names. So `Method` stays `Copy`,
//! compares as a byte, and keeps the request small (it moves through the app by value). The server
//! recognises only declared names; any other method token is answered `501 Not Implemented`
//! without a table entry, so a client cannot grow the table.

use std::fmt;
use std::sync::RwLock;

use crate::error::ConfigurationError;

/// An HTTP request method: one of the nine of RFC 9110 (`Method::Get`, `Method::Post`, ...),
/// or an extension method declared with [`Method::other`]. One byte, `Copy`, compared as a
/// byte; `match` on it with the constants and a `_` arm.
///
/// A request whose method is neither standard nor declared is answered
/// `501 Not Implemented` by the server, and so is a declared method that no route of the app
/// serves.
///
/// ```
/// use chirp::Method;
/// let m = Method::parse("POST").unwrap();
/// let verb = match m {
///     Method::Get | Method::Head => "read",
///     Method::Post => "create",
///     _ => "other",
/// };
/// assert_eq!(verb, "create");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Method(u8);

/// Most extension methods a process may declare: an app declares a handful, at start-up.
const MAX_EXTENSIONS: usize = 64;

/// The declared extension names, in declaration order (leaked: at most [`MAX_EXTENSIONS`]).
static EXTENSIONS: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

/// RFC 9110 §5.6.2 `tchar`: the bytes a method token may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The standard names, in the order of [`Method::ALL`] (their codes).
const NAMES: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
];

#[allow(non_upper_case_globals)]
impl Method {
    /// GET
    pub const Get: Method = Method(0);
    /// HEAD (served by the GET route when there is no HEAD route)
    pub const Head: Method = Method(1);
    /// POST
    pub const Post: Method = Method(2);
    /// PUT
    pub const Put: Method = Method(3);
    /// DELETE
    pub const Delete: Method = Method(4);
    /// PATCH
    pub const Patch: Method = Method(5);
    /// OPTIONS (answered with `Allow` when there is no OPTIONS route)
    pub const Options: Method = Method(6);
    /// TRACE
    pub const Trace: Method = Method(7);
    /// CONNECT (authority-form targets are answered `501`: chirp does not tunnel)
    pub const Connect: Method = Method(8);

    /// The nine standard methods, in the order `Allow` headers list them.
    pub const ALL: [Method; 9] = [
        Method::Get,
        Method::Head,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Patch,
        Method::Options,
        Method::Trace,
        Method::Connect,
    ];

    /// Parses a method name (case-sensitive, as RFC 9110 §9.1 says): a standard method, or an
    /// extension method declared with [`Method::other`].
    ///
    /// ```
    /// use chirp::Method;
    /// assert_eq!(Method::parse("GET"), Some(Method::Get));
    /// assert_eq!(Method::parse("get"), None);
    /// assert_eq!(Method::parse("MKCOL"), None); // never declared
    /// let purge = Method::other("PURGE").unwrap();
    /// assert_eq!(Method::parse("PURGE"), Some(purge));
    /// ```
    #[inline]
    pub fn parse(name: &str) -> Option<Method> {
        Some(match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "OPTIONS" => Method::Options,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => return Method::declared(name),
        })
    }

    /// The extension method `name`, if declared.
    #[cold]
    fn declared(name: &str) -> Option<Method> {
        let table = EXTENSIONS.read().unwrap_or_else(|e| e.into_inner());
        let i = table.iter().position(|&n| n == name)?;
        Some(Method((NAMES.len() + i) as u8))
    }

    /// Declares an extension method so that routes can serve it, and returns it. Declaring the
    /// same name again returns the same method; a standard name returns its constant.
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// # fn main() -> Result<(), chirp::ConfigurationError> {
    /// let purge = Method::other("PURGE")?;
    /// assert_eq!(purge.as_str(), "PURGE");
    /// assert!(purge.is_extension());
    /// let mut app = App::new();
    /// app.route_with("/cache/{key}", &[purge], |_req: Request| async { "purged" });
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`ConfigurationError`] when `name` is not a method token (RFC 9110 §9.1: one or more
    /// of the `tchar` bytes, e.g. letters, digits, `-`, `_`), is longer than 32 bytes, or when
    /// more than 64 extension methods are declared in the process.
    pub fn other(name: &str) -> Result<Method, ConfigurationError> {
        if name.is_empty() || name.len() > 32 || !name.bytes().all(is_tchar) {
            return Err(ConfigurationError::new(format!(
                "method {name:?} is not a method token (1 to 32 letters, digits or !#$%&'*+-.^_`|~)"
            )));
        }
        if let Some(m) = Method::parse(name) {
            return Ok(m);
        }
        let mut table = EXTENSIONS.write().unwrap_or_else(|e| e.into_inner());
        // Declared by another thread since the look-up above?
        if let Some(i) = table.iter().position(|&n| n == name) {
            return Ok(Method((NAMES.len() + i) as u8));
        }
        if table.len() >= MAX_EXTENSIONS {
            return Err(ConfigurationError::new(format!(
                "cannot declare method {name:?}: at most {MAX_EXTENSIONS} extension methods"
            )));
        }
        table.push(Box::leak(name.to_owned().into_boxed_str()));
        Ok(Method((NAMES.len() + table.len() - 1) as u8))
    }

    /// Whether this is an extension method (declared with [`Method::other`]).
    pub fn is_extension(self) -> bool {
        self.index().is_none()
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self.index() {
            Some(i) => NAMES[i],
            None => {
                let table = EXTENSIONS.read().unwrap_or_else(|e| e.into_inner());
                // Entries are never removed, so a method handed out is always there.
                let i = usize::from(self.0) - NAMES.len();
                table.get(i).copied().unwrap_or("")
            }
        }
    }

    /// Position in [`Method::ALL`] for the standard methods; used to index per-method tables.
    #[inline]
    pub(crate) fn index(self) -> Option<usize> {
        let i = usize::from(self.0);
        (i < NAMES.len()).then_some(i)
    }
}

impl fmt::Debug for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_methods_are_declared_once_and_parsed_after() {
        assert_eq!(Method::parse("X-UNIT-TEST"), None);
        let m = Method::other("X-UNIT-TEST").unwrap();
        assert_eq!(Method::other("X-UNIT-TEST").unwrap(), m);
        assert_eq!(Method::parse("X-UNIT-TEST"), Some(m));
        assert_eq!(m.as_str(), "X-UNIT-TEST");
        assert_eq!(m.to_string(), "X-UNIT-TEST");
        assert_eq!(Method::other("GET").unwrap(), Method::Get);
        assert_eq!(
            Method::parse("x-unit-test"),
            None,
            "methods are case-sensitive"
        );
    }

    #[test]
    fn bad_method_tokens_are_configuration_errors() {
        for bad in ["", "PU RGE", "A\r\n", "(X)", &"X".repeat(33), "caf\u{e9}"] {
            assert!(Method::other(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn standard_indices_follow_all() {
        for (i, m) in Method::ALL.iter().enumerate() {
            assert_eq!(m.index(), Some(i));
        }
        assert_eq!(std::mem::size_of::<Method>(), 1, "a request moves by value");
    }
}
