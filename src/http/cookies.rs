//! Cookies: reading the `Cookie` request header and building `Set-Cookie` values (RFC 6265).

use std::fmt::Write as _;
use std::time::Duration;

/// Iterates the `name=value` pairs of one `Cookie` header value, lazily and without allocating.
/// Pairs without `=` are skipped; surrounding double quotes on a value are removed. Read as
/// [`find_cookie`] reads them (RFC 6265 §4.2.1: `name=value` pairs split by `; `, nothing
/// between a name and its `=`), so that both find the same cookies.
pub(crate) fn parse_cookie_header(header: &str) -> impl Iterator<Item = (&str, &str)> {
    header.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim_ascii_start();
        let value = value.trim_ascii();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then_some((name, value))
    })
}

/// Finds cookie `name` in one `Cookie` header value, working on bytes: only the value found
/// is checked to be UTF-8 (the session cookie is looked up on every request).
pub(crate) fn find_cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h str> {
    std::str::from_utf8(find_cookie_bytes(header, name)?).ok()
}

/// Like [`find_cookie`], the value as raw bytes (no UTF-8 check).
pub(crate) fn find_cookie_bytes<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h [u8]> {
    find_cookies_bytes(header, name).next()
}

/// Every value of cookie `name` in one `Cookie` header value, in order, as raw bytes (a
/// browser sends several cookies of one name when they differ in `Domain` or `Path`: a
/// sibling subdomain's, a narrower path's). Read as [`find_cookie`] reads them.
fn find_cookies_bytes<'h, 'n>(
    header: &'h [u8],
    name: &'n [u8],
) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
    let mut rest = Some(header);
    std::iter::from_fn(move || loop {
        let current = rest?.trim_ascii_start();
        // A session cookie's value runs to 100 bytes and more: memchr scans it a vector at a time.
        let end = memchr::memchr(b';', current).unwrap_or(current.len());
        let pair = &current[..end];
        rest = current.get(end + 1..);
        if pair.len() > name.len() && pair[name.len()] == b'=' && pair.starts_with(name) {
            let value = pair[name.len() + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            return Some(value);
        }
    })
}

impl Cookie {
    /// Every value of cookie `name` in one `Cookie` header value, in order, as raw bytes (see
    /// [`find_cookie`] for how the header is read). Here rather than a free function so that
    /// the session middleware reaches it through the re-exported [`Cookie`].
    pub(crate) fn values_in<'h, 'n>(
        header: &'h [u8],
        name: &'n [u8],
    ) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
        find_cookies_bytes(header, name)
    }
}

/// Whether `name` is a valid cookie name: an RFC 7230 token.
///
/// ```
/// assert!(chirp::http::is_valid_cookie_name("chirp_session"));
/// assert!(!chirp::http::is_valid_cookie_name("bad name"));
/// ```
pub fn is_valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` holds only RFC 6265 cookie-octets (no space, `"`, `,`, `;`, `\`, controls).
fn is_valid_cookie_value(value: &str) -> bool {
    value.bytes().all(|b| {
        b == 0x21
            || (0x23..=0x2B).contains(&b)
            || (0x2D..=0x3A).contains(&b)
            || (0x3C..=0x5B).contains(&b)
            || (0x5D..=0x7E).contains(&b)
    })
}

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent on same-site requests and top-level cross-site navigations (the default).
    #[default]
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent everywhere; browsers require `Secure` with it.
    None,
}

impl SameSite {
    /// The attribute value as the Python framework writes it (lower case).
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "lax",
            SameSite::Strict => "strict",
            SameSite::None => "none",
        }
    }
}

/// A cookie to set on the client, with every `Set-Cookie` attribute.
///
/// [`Cookie::new`] starts from the Python framework's `SetCookie` defaults, the safe ones for
/// a cookie a server sets: `Path=/` (sent with every path of the site, not only below the
/// page that set it), `HttpOnly` (out of reach of a script injected into a page) and
/// `SameSite=Lax` (not sent on cross-site subrequests and form posts). Each can be changed or
/// removed.
///
/// ```
/// use chirp::{Cookie, SameSite};
/// use std::time::Duration;
/// assert_eq!(
///     Cookie::new("theme", "dark").to_header_value().unwrap(),
///     "theme=dark; Path=/; HttpOnly; SameSite=lax"
/// );
/// let c = Cookie::new("theme", "dark")
///     .max_age(Duration::from_secs(3600))
///     .secure(true)
///     .same_site(SameSite::Strict);
/// assert_eq!(
///     c.to_header_value().unwrap(),
///     "theme=dark; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=strict"
/// );
/// // A cookie a script must read (a theme toggle), with no attributes at all:
/// let bare = Cookie::new("theme", "dark").http_only(false).without_path().without_same_site();
/// assert_eq!(bare.to_header_value().unwrap(), "theme=dark");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    name: String,
    value: String,
    max_age: Option<Duration>,
    path: Option<String>,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: Option<SameSite>,
}

impl Cookie {
    /// A browser-session cookie (no `Max-Age`) with `Path=/; HttpOnly; SameSite=Lax`, the
    /// Python framework's defaults (see the [type docs](Cookie)).
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Cookie {
            name: name.into(),
            value: value.into(),
            max_age: None,
            path: Some("/".to_owned()),
            domain: None,
            secure: false,
            http_only: true,
            same_site: Some(SameSite::Lax),
        }
    }

    /// `Max-Age`, in whole seconds.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// `Path` (default `/`).
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// No `Path`: the browser scopes the cookie to the directory of the page that set it.
    pub fn without_path(mut self) -> Self {
        self.path = None;
        self
    }

    /// `Domain`.
    pub fn domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// `Secure`: only sent over HTTPS.
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// `HttpOnly`: hidden from JavaScript (default on; `false` for a cookie scripts read).
    pub fn http_only(mut self, http_only: bool) -> Self {
        self.http_only = http_only;
        self
    }

    /// `SameSite` (default [`SameSite::Lax`]).
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = Some(same_site);
        self
    }

    /// No `SameSite` attribute: the browser applies its own default (`Lax` in current ones).
    pub fn without_same_site(mut self) -> Self {
        self.same_site = None;
        self
    }

    /// The cookie's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cookie's value.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The `Set-Cookie` header value, attributes in the Python framework's order:
    /// `name=value; Max-Age=N; Path=/; Domain=d; Secure; HttpOnly; SameSite=lax`.
    ///
    /// Fails when the name is not a token, the value holds characters a cookie cannot carry, or
    /// the path or domain hold `;` or control characters (they would forge attributes).
    pub fn to_header_value(&self) -> Result<String, String> {
        if !is_valid_cookie_name(&self.name) {
            return Err(format!(
                "invalid cookie name {:?}: use letters, digits and !#$%&'*+-.^_`|~",
                self.name
            ));
        }
        if !is_valid_cookie_value(&self.value) {
            return Err(format!(
                "invalid value for cookie {:?}: no spaces, quotes, commas, semicolons, backslashes or control characters (encode it first)",
                self.name
            ));
        }
        let attr_ok = |s: &str| !s.bytes().any(|b| b == b';' || b.is_ascii_control());
        let mut out = String::with_capacity(self.name.len() + self.value.len() + 64);
        out.push_str(&self.name);
        out.push('=');
        out.push_str(&self.value);
        if let Some(max_age) = self.max_age {
            let _ = write!(out, "; Max-Age={}", max_age.as_secs());
        }
        if let Some(path) = &self.path {
            if !attr_ok(path) {
                return Err(format!("invalid cookie path {path:?}"));
            }
            out.push_str("; Path=");
            out.push_str(path);
        }
        if let Some(domain) = &self.domain {
            if !attr_ok(domain) {
                return Err(format!("invalid cookie domain {domain:?}"));
            }
            out.push_str("; Domain=");
            out.push_str(domain);
        }
        if self.secure {
            out.push_str("; Secure");
        }
        if self.http_only {
            out.push_str("; HttpOnly");
        }
        if let Some(same_site) = self.same_site {
            out.push_str("; SameSite=");
            out.push_str(same_site.as_str());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_lazily() {
        let pairs: Vec<_> = parse_cookie_header("a=1; b=two;c=\"q\"; broken; =x; d=").collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "two"), ("c", "q"), ("d", "")]);
    }

    #[test]
    fn finds_one_cookie_by_name() {
        let h = b"a=1; session=abc.def; other=\"q\"; sess=no";
        assert_eq!(find_cookie(h, b"session"), Some("abc.def"));
        assert_eq!(find_cookie(h, b"other"), Some("q"));
        assert_eq!(find_cookie(h, b"sess"), Some("no"));
        assert_eq!(find_cookie(h, b"a"), Some("1"));
        assert_eq!(find_cookie(h, b"missing"), None);
        assert_eq!(find_cookie(b"x=\xff", b"x"), None);
        // Another cookie that is not UTF-8 does not hide the one asked for.
        assert_eq!(find_cookie(b"x=\xff\xfe; s=ok", b"s"), Some("ok"));
        assert_eq!(find_cookie_bytes(b"x=\xff", b"x"), Some(&b"\xff"[..]));
    }

    #[test]
    fn finds_every_value_of_a_name_in_order() {
        let h = b"s=first; a=1; s=\"second\";s=; x=\xff; s=third";
        let all: Vec<&[u8]> = Cookie::values_in(h, b"s").collect();
        assert_eq!(all, [&b"first"[..], b"second", b"", b"third"]);
        assert_eq!(Cookie::values_in(b"", b"s").count(), 0);
        assert_eq!(Cookie::values_in(b"ss=1; s", b"s").count(), 0);
        assert_eq!(find_cookie_bytes(h, b"s"), Some(&b"first"[..]));
    }

    #[test]
    fn value_may_contain_equals() {
        let pairs: Vec<_> = parse_cookie_header("s=abc==.def").collect();
        assert_eq!(pairs, vec![("s", "abc==.def")]);
    }

    #[test]
    fn rejects_bad_names_and_values() {
        assert!(Cookie::new("a b", "v").to_header_value().is_err());
        assert!(Cookie::new("", "v").to_header_value().is_err());
        assert!(Cookie::new("a", "v;Domain=evil").to_header_value().is_err());
        assert!(Cookie::new("a", "v\r\nX: y").to_header_value().is_err());
        assert!(Cookie::new("a", "v").path("/;x").to_header_value().is_err());
    }

    #[test]
    fn new_cookies_default_to_the_python_frameworks_attributes() {
        let c = Cookie::new("s", "v");
        assert_eq!(
            c.to_header_value().unwrap(),
            "s=v; Path=/; HttpOnly; SameSite=lax"
        );
        let c = c.path("/app").http_only(false).same_site(SameSite::Strict);
        assert_eq!(
            c.to_header_value().unwrap(),
            "s=v; Path=/app; SameSite=strict"
        );
        let c = c.without_path().without_same_site();
        assert_eq!(c.to_header_value().unwrap(), "s=v");
    }

    #[test]
    fn writes_every_attribute_in_order() {
        let c = Cookie::new("s", "v")
            .max_age(Duration::from_secs(86400))
            .path("/")
            .domain("example.com")
            .secure(true)
            .http_only(true)
            .same_site(SameSite::None);
        assert_eq!(
            c.to_header_value().unwrap(),
            "s=v; Max-Age=86400; Path=/; Domain=example.com; Secure; HttpOnly; SameSite=none"
        );
    }
}
