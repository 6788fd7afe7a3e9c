//! Security pieces below the middleware, after the Python framework's `chirp.security`:
//! [`audit`] (security events and their hook), the random tokens that CSRF tokens, request
//! ids and server-side session ids are made of, signing secrets for apps that were given none
//! ([`secret_key_from_env`]), and redirect targets that stay on this site ([`is_safe_url`],
//! [`safe_redirect`]).

pub mod audit;

use std::borrow::Cow;

use crate::error::ConfigurationError;
use crate::http::encoding::percent_decode;
use crate::http::Response;

/// `n` random bytes from the OS, as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The OS RNG does not fail on the platforms chirp runs on; if it ever did, no token
    // at all is better than a predictable one.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new signing secret: 32 random bytes from the OS, as 64 hex characters.
///
/// ```
/// let secret = chirp::security::random_secret_key();
/// assert_eq!(secret.len(), 64);
/// assert_ne!(secret, chirp::security::random_secret_key());
/// ```
pub fn random_secret_key() -> String {
    random_hex(32)
}

/// The signing secret in the environment variable `var`, or, when it is not set, a random one
/// ([`random_secret_key`]) with a warning (`tracing`, target `chirp::security`): sessions
/// signed with it do not survive a restart and are not shared between instances. Never a
/// fixed secret: one that ships in source code signs cookies for anyone who reads it.
///
/// Errors when `var` is set but empty or not UTF-8 (a mistake more likely than a wish for a
/// random secret), saying what to do.
///
/// ```
/// use chirp::middleware::sessions::SessionMiddleware;
/// use chirp::sessions::SessionConfig;
/// # fn main() -> Result<(), chirp::Error> {
/// // `CHIRP_SECRET_KEY=$(openssl rand -hex 32)`, the same for every instance.
/// let secret = chirp::security::secret_key_from_env("CHIRP_SECRET_KEY")?;
/// let sessions = SessionMiddleware::new(SessionConfig::new(secret))?;
/// # Ok(()) }
/// ```
pub fn secret_key_from_env(var: &str) -> Result<String, ConfigurationError> {
    secret_key_from(var, std::env::var(var))
}

/// [`secret_key_from_env`] on the variable's value as read.
fn secret_key_from(
    var: &str,
    value: Result<String, std::env::VarError>,
) -> Result<String, ConfigurationError> {
    match value {
        Ok(secret) if !secret.trim().is_empty() => Ok(secret),
        Ok(_) => Err(ConfigurationError::new(format!(
            "{var} is set but empty: set it to a long random secret (e.g. `openssl rand -hex 32`), \
             the same for every instance, or unset it for a random secret per process"
        ))),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigurationError::new(format!(
            "{var} is not UTF-8: set it to a long random secret (e.g. `openssl rand -hex 32`)"
        ))),
        Err(std::env::VarError::NotPresent) => {
            tracing::warn!(
                target: "chirp::security",
                "{var} is not set: signing with a random secret made at start, so sessions will \
                 not survive a restart nor be shared between instances; set {var} to a long \
                 random secret (e.g. `openssl rand -hex 32`), the same for every instance"
            );
            Ok(random_secret_key())
        }
    }
}

/// How many rounds of percent-decoding [`is_safe_url`] looks through. A URL still changing
/// after that many is nobody's real redirect target.
const DECODE_ROUNDS: usize = 4;

/// Whether `url` is safe to redirect to: a path on this site, the Python framework's
/// `is_safe_url` (same origin only). That is, a relative URL that:
///
/// - starts with a single `/` (so no scheme, `https://...` or `javascript:...`, no host,
///   and nothing relative to the current page);
/// - is not scheme-relative (`//host`), and holds no backslash anywhere (browsers read
///   `/\host` as `//host`);
/// - holds no control characters (tab, CR, LF, NUL, DEL, C1) and no whitespace: browsers
///   drop tabs and newlines from URLs and trim the rest, so `/\t/host` lands on `//host`;
///
/// and stays so after each round of percent-decoding (`/%2F/host`, `/%09/host`), in case
/// something decodes it again on the way.
///
/// A `?next=` taken from the request must pass this before it goes in a `Location`; see
/// [`safe_redirect`].
///
/// ```
/// use chirp::security::is_safe_url;
/// assert!(is_safe_url("/notes"));
/// assert!(is_safe_url("/a?b=c#d"));
/// for evil in ["//evil.example", "/\\evil.example", "https://evil.example",
///              "/\t/evil.example", "/%09/evil.example", "/%2F/evil.example", "notes", ""] {
///     assert!(!is_safe_url(evil), "{evil:?}");
/// }
/// ```
pub fn is_safe_url(url: &str) -> bool {
    let mut current = Cow::Borrowed(url);
    for _ in 0..DECODE_ROUNDS {
        if !is_local_path(&current) {
            return false;
        }
        let decoded = match percent_decode(&current, false) {
            Cow::Borrowed(_) => return true,
            Cow::Owned(decoded) => decoded,
        };
        if decoded == *current {
            // Only `%`s that escape nothing: decoding changes nothing more.
            return true;
        }
        current = Cow::Owned(decoded);
    }
    false
}

/// One form of a URL: a path on this site, and nothing a browser would read otherwise.
fn is_local_path(url: &str) -> bool {
    let bytes = url.as_bytes();
    bytes.first() == Some(&b'/')
        && !matches!(bytes.get(1), Some(b'/' | b'\\'))
        && !url
            .chars()
            .any(|c| c == '\\' || c.is_control() || c.is_whitespace())
}

/// `303 See Other` to `next` when it is a path on this site ([`is_safe_url`]), else to
/// `fallback`: the answer to a login form with `?next=`. `fallback` is the app's own and is
/// not checked (it still cannot carry a control character: see
/// [`Response::with_header`]).
///
/// ```
/// use chirp::security::safe_redirect;
/// let res = safe_redirect(Some("/notes"), "/");
/// assert_eq!(res.header("location"), Some("/notes"));
/// let res = safe_redirect(Some("//evil.example"), "/");
/// assert_eq!(res.header("location"), Some("/"));
/// let res = safe_redirect(None, "/home");
/// assert_eq!(res.header("location"), Some("/home"));
/// ```
pub fn safe_redirect(next: Option<&str>, fallback: impl Into<Cow<'static, str>>) -> Response {
    match next {
        Some(next) if is_safe_url(next) => Response::see_other(next.to_owned()),
        Some(next) => {
            tracing::debug!(target: "chirp::security", next, "redirect target refused: not a path on this site");
            Response::see_other(fallback)
        }
        None => Response::see_other(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_on_this_site_are_safe() {
        for good in [
            "/",
            "/notes",
            "/a?b=c#d",
            "/notes/42?next=//elsewhere", // a `//` past the start is a path's or a query's
            "/caf%C3%A9",
            "/café",
            "/100%",
            "/a%2Fb", // `/a/b` decoded: still a path
            "/?q=%25",
        ] {
            assert!(is_safe_url(good), "{good:?}");
        }
    }

    #[test]
    fn other_sites_and_tricks_are_not() {
        for bad in [
            "",
            "notes",
            "./notes",
            "?next=/",
            "#top",
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/a\\b",
            "https://evil.example",
            "https:evil.example",
            "javascript:alert(1)",
            "/\t/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/ /x",
            "/\r\nLocation: x",
            "/x\n",
            "/\0",
            "/\u{7f}",
            "/\u{85}x",   // a C1 control (NEL)
            "/\u{2028}x", // LINE SEPARATOR
            "/%09/evil.example",
            "/%2F/evil.example",
            "/%2f/evil.example",
            "/%5Cevil.example",
            "%2F%2Fevil.example",
            "/%252F/evil.example", // twice encoded
            "/%250D%250A/x",
            "/%0D%0ALocation:%20x",
            "/%00",
            "/%E2%80%A8x",
            "/%2525252525252F", // still decoding after every round
        ] {
            assert!(!is_safe_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn safe_redirect_falls_back() {
        let res = safe_redirect(Some("/%09/evil.example"), "/");
        assert_eq!(res.status(), crate::StatusCode::SEE_OTHER);
        assert_eq!(res.header("location"), Some("/"));
        let res = safe_redirect(Some("/private?x=1"), "/");
        assert_eq!(res.header("location"), Some("/private?x=1"));
    }

    #[test]
    fn random_secrets_are_long_and_differ() {
        let (a, b) = (random_secret_key(), random_secret_key());
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_secret_from_the_environment_is_used_and_an_empty_one_refused() {
        use std::env::VarError;
        let set = secret_key_from("S", Ok("from-the-environment".to_owned()));
        assert_eq!(set.unwrap(), "from-the-environment");
        let err = secret_key_from("S", Ok(" ".to_owned())).unwrap_err();
        assert!(err.message().contains("S is set but empty"), "{err:?}");
        let err = secret_key_from("S", Err(VarError::NotUnicode("\u{fffd}".into()))).unwrap_err();
        assert!(err.message().contains("S is not UTF-8"), "{err:?}");
        let random = secret_key_from("S", Err(VarError::NotPresent)).unwrap();
        assert_eq!(random.len(), 64);
        let unset = secret_key_from_env("CHIRP_TEST_A_VARIABLE_NOBODY_SETS").unwrap();
        assert_eq!(unset.len(), 64);
    }
}
