//! Request methods: the nine of RFC 9110 as variants, and extension methods (`PURGE`,
//! `QUERY`, WebDAV's `PROPFIND`, ...) that an app declares with [`Method::other`].
//!
//! An extension method is a small index into a process-wide table of declared names, so that
//! `Method` stays `Copy` and two bytes: the request moves through the app by value. The server
//! recognises only declared names; any other method token is answered `501 Not Implemented`
//! without a table entry, so a client cannot grow the table.

use std::fmt;
use std::sync::RwLock;

use crate::error::ConfigurationError;

/// An HTTP request method.
///
/// A request whose method is neither one of these nor declared with [`Method::other`] is
/// answered `501 Not Implemented` by the server, and so is a declared method that no route of
/// the app serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (served by the GET route when there is no HEAD route)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS (answered with `Allow` when there is no OPTIONS route)
    Options,
    /// TRACE
    Trace,
    /// CONNECT (authority-form targets are answered `501`: chirp does not tunnel)
    Connect,
    /// An extension method declared with [`Method::other`].
    Other(ExtensionMethod),
}

/// An extension method's entry in the table of declared names (see [`Method::other`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtensionMethod(u8);

/// Most extension methods a process may declare: an app declares a handful, at start-up.
const MAX_EXTENSIONS: usize = 64;

/// The declared extension names, in declaration order (leaked: at most [`MAX_EXTENSIONS`]).
static EXTENSIONS: RwLock<Vec<&'static str>> = RwLock::new(Vec::new());

/// RFC 9110 §5.6.2 `tchar`: the bytes a method token may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl Method {
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

    fn standard(name: &str) -> Option<Method> {
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
            _ => return None,
        })
    }

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
    pub fn parse(name: &str) -> Option<Method> {
        if let Some(m) = Method::standard(name) {
            return Some(m);
        }
        let table = EXTENSIONS.read().unwrap_or_else(|e| e.into_inner());
        let i = table.iter().position(|&n| n == name)?;
        Some(Method::Other(ExtensionMethod(i as u8)))
    }

    /// Declares an extension method so that routes can serve it, and returns it. Declaring the
    /// same name again returns the same method; a standard name returns its variant.
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// # fn main() -> Result<(), chirp::ConfigurationError> {
    /// let purge = Method::other("PURGE")?;
    /// assert_eq!(purge.as_str(), "PURGE");
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
        // Declared by another thread since the read above?
        if let Some(i) = table.iter().position(|&n| n == name) {
            return Ok(Method::Other(ExtensionMethod(i as u8)));
        }
        if table.len() >= MAX_EXTENSIONS {
            return Err(ConfigurationError::new(format!(
                "cannot declare method {name:?}: at most {MAX_EXTENSIONS} extension methods"
            )));
        }
        table.push(Box::leak(name.to_owned().into_boxed_str()));
        Ok(Method::Other(ExtensionMethod((table.len() - 1) as u8)))
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
            Method::Other(ExtensionMethod(i)) => {
                let table = EXTENSIONS.read().unwrap_or_else(|e| e.into_inner());
                // Entries are never removed, so an index handed out is always there.
                table.get(usize::from(i)).copied().unwrap_or("")
            }
        }
    }

    /// Position in [`Method::ALL`] for the standard methods; used to index per-method tables.
    pub(crate) fn index(self) -> Option<usize> {
        match self {
            Method::Other(_) => None,
            m => Some(m.standard_index()),
        }
    }

    fn standard_index(self) -> usize {
        match self {
            Method::Get => 0,
            Method::Head => 1,
            Method::Post => 2,
            Method::Put => 3,
            Method::Delete => 4,
            Method::Patch => 5,
            Method::Options => 6,
            Method::Trace => 7,
            Method::Connect => 8,
            Method::Other(_) => usize::MAX,
        }
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
        assert_eq!(std::mem::size_of::<Method>(), 2);
    }
}
