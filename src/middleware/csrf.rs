//! Cross-site request forgery protection, as the Python framework's `chirp.middleware.csrf`:
//! a random token per session (32 bytes from the OS, hex), kept under the session key
//! `_csrf_token`, required on POST, PUT, PATCH and DELETE in the `X-CSRF-Token` header or the
//! `_csrf_token` form field, compared in constant time (`subtle`).
//!
//! The token never appears as it is in a response: [`csrf_field`] and [`get_csrf_token`] give
//! it masked, a fresh random pad followed by the token XORed with that pad (hex, twice as
//! long), as Django and Rails do. Every response carries a different string, so compressing a
//! page that reflects a request parameter beside the token cannot leak it (BREACH). Any
//! masking verifies; so does the unmasked token (see [`get_csrf_token`]).
//!
//! Beyond the Python one, a state-changing request is refused before its token is looked at
//! when the browser says it is cross-site (`Sec-Fetch-Site: cross-site`) or its `Origin` is
//! neither this host nor a trusted origin: defence in depth that needs no template change.
//! And a `CsrfMiddleware` without a `SessionMiddleware` before it fails the app's build.
//!
//! ```
//! use chirp::middleware::csrf::{csrf_field, CsrfConfig, CsrfMiddleware};
//! use chirp::sessions::SessionConfig;
//! use chirp::middleware::sessions::SessionMiddleware;
//! use chirp::{App, Request, Response};
//! # fn main() -> Result<(), chirp::Error> {
//! let mut app = App::new();
//! app.add_middleware(SessionMiddleware::new(SessionConfig::new("a long random secret key"))?);
//! app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
//! app.route("/form", |_req: Request| async {
//!     let field = csrf_field()?; // <input type="hidden" name="_csrf_token" value="...">
//!     Ok::<_, chirp::Error>(Response::html(format!(
//!         "<form method=post action=/save>{field}<button>Save</button></form>"
//!     )))
//! });
//! # Ok(()) }
//! ```
//!
//! Requests that carry `Authorization` and no `Cookie` (API clients with tokens) are not
//! checked: a browser never adds those to a forged request, so there is nothing to forge.
//! Except the schemes a browser does re-send by itself once the user has signed in with them
//! (`Basic`, `Digest`, `Negotiate`, `NTLM`): those are ambient credentials, like a cookie,
//! and such requests are checked.
//!
//! An htmx request whose session expired (the session holds no CSRF token any more, nobody is
//! signed in on it, and the request carries a token from the session that is gone) is not
//! treated as forged: it is answered like [`login_required`](crate::middleware::auth::login_required)
//! answers htmx, `401` with `HX-Redirect` to the login page, and logged at INFO as what it is
//! (no `csrf.reject.*` event). The login URL is [`AuthMiddleware`](crate::middleware::auth::AuthMiddleware)'s,
//! else [`CsrfConfig::login_url`]; with neither, the answer is `403`. A request with a token
//! that does not match a live session's is refused `403` as always, htmx or not.
//!
//! A body streamed to its handler ([`BodyConfig::streamed`](crate::BodyConfig::streamed))
//! is not read ahead for its token: send such requests with the `X-CSRF-Token` header.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use subtle::ConstantTimeEq;

use crate::error::{ConfigurationError, HttpError, LookupError};
use crate::future::BoxFuture;
use crate::html::escape_html;
use crate::http::{IntoResponse, Method, Request, Response};
use crate::middleware::auth::current_user_id;
use crate::security::audit::emit;
use crate::security::random_hex;
use crate::service::{Middleware, Next};
use crate::sessions::get_session;

/// How [`CsrfMiddleware`] works; the defaults are the Python framework's.
#[derive(Debug, Clone)]
pub struct CsrfConfig {
    /// The form field holding the token. Default `_csrf_token`.
    pub field_name: String,
    /// The header holding the token (htmx, `fetch`). Default `X-CSRF-Token`.
    pub header_name: String,
    /// The session key the token is kept under. Default `_csrf_token`.
    pub session_key: String,
    /// Random bytes per token (hex-encoded: twice as many characters). Default 32, at least 16.
    pub token_length: usize,
    /// Paths (and the paths below them) that are never checked: webhooks with their own
    /// signatures, say. Default none.
    pub exempt_paths: Vec<String>,
    /// Origins besides this host's own that may send state-changing requests, as
    /// `scheme://host[:port]` (e.g. `https://admin.example.com`). Default none.
    pub trusted_origins: Vec<String>,
    /// Whether `Sec-Fetch-Site: cross-site` and a foreign `Origin` are refused before the
    /// token check. Default `true`.
    pub check_origin: bool,
    /// Where an htmx request whose session expired is sent (`HX-Redirect`) when no
    /// [`AuthMiddleware`](crate::middleware::auth::AuthMiddleware) runs before this middleware
    /// (its login URL comes first). Default none: such requests are answered `403`.
    pub login_url: Option<String>,
}

impl Default for CsrfConfig {
    fn default() -> Self {
        CsrfConfig {
            field_name: "_csrf_token".to_owned(),
            header_name: "X-CSRF-Token".to_owned(),
            session_key: "_csrf_token".to_owned(),
            token_length: 32,
            exempt_paths: Vec::new(),
            trusted_origins: Vec::new(),
            check_origin: true,
            login_url: None,
        }
    }
}

impl CsrfConfig {
    /// Exempts `path` and the paths below it.
    pub fn exempt_path(mut self, path: impl Into<String>) -> Self {
        self.exempt_paths.push(path.into());
        self
    }

    /// Sets [`login_url`](CsrfConfig::login_url), where htmx requests whose session expired
    /// are sent when no `AuthMiddleware` says where its login page is.
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = Some(url.into());
        self
    }

    /// Trusts `origin` (`scheme://host[:port]`) for state-changing requests.
    pub fn trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.trusted_origins.push(origin.into());
        self
    }
}

/// What a request's handler reaches through [`get_csrf_token`] and [`csrf_field`].
#[derive(Clone)]
struct Scope {
    settings: Arc<Settings>,
}

struct Settings {
    field_name: String,
    header_name: String,
    session_key: String,
    token_length: usize,
    exempt: Vec<String>,
    trusted_origins: Vec<String>,
    check_origin: bool,
    login_url: Option<String>,
}

tokio::task_local! {
    static CURRENT: Scope;
    /// Set when this middleware refuses a request, for a middleware before it that asked
    /// ([`noting_csrf_refusal`]).
    static REFUSED: Cell<bool>;
}

/// Runs `chain` (the rest of the chain, this middleware in it) and says whether this
/// middleware refused the request. The login rate limit uses it to give back an attempt that
/// never reached a password check. Nothing in the response says so, and nothing outside the
/// crate can set it: a handler's own 403 is not a CSRF refusal.
pub(crate) async fn noting_csrf_refusal(chain: impl Future<Output = Response>) -> (Response, bool) {
    REFUSED
        .scope(Cell::new(false), async move {
            let res = chain.await;
            (res, REFUSED.with(Cell::get))
        })
        .await
}

/// The `Authorization` schemes a browser re-sends by itself once the user has signed in with
/// them: ambient credentials, which a forged request carries like a cookie.
const AMBIENT_SCHEMES: [&str; 4] = ["basic", "digest", "negotiate", "ntlm"];

/// Whether the request carries credentials of its own that a browser never attaches by
/// itself (a bearer or other API token) and no cookie: nothing a forged request could carry.
fn token_client(req: &Request) -> bool {
    if req.headers().contains("cookie") {
        return false;
    }
    let Some(authorization) = req.header("authorization") else {
        return false;
    };
    let scheme = authorization
        .trim_start()
        .split([' ', '\t'])
        .next()
        .unwrap_or("");
    !scheme.is_empty()
        && !AMBIENT_SCHEMES
            .iter()
            .any(|s| scheme.eq_ignore_ascii_case(s))
}

/// The CSRF middleware. Add it after `SessionMiddleware` (the build checks).
pub struct CsrfMiddleware {
    settings: Arc<Settings>,
}

impl CsrfMiddleware {
    /// The middleware for `config`. Empty names or a token under 16 bytes are a
    /// [`ConfigurationError`].
    pub fn new(config: CsrfConfig) -> Result<CsrfMiddleware, ConfigurationError> {
        if config.field_name.is_empty()
            || config.header_name.is_empty()
            || config.session_key.is_empty()
        {
            return Err(ConfigurationError::new(
                "CsrfConfig: field_name, header_name and session_key must not be empty",
            ));
        }
        if config.token_length < 16 {
            return Err(ConfigurationError::new(format!(
                "CsrfConfig: token_length {} is too short to be unguessable: use at least 16 bytes (default 32)",
                config.token_length
            )));
        }
        let mut trusted = Vec::new();
        for origin in &config.trusted_origins {
            let o = origin.trim_end_matches('/').to_ascii_lowercase();
            if !(o.starts_with("http://") || o.starts_with("https://"))
                || o[o.find("://").unwrap_or(0) + 3..].contains('/')
            {
                return Err(ConfigurationError::new(format!(
                    "CsrfConfig: trusted origin {origin:?} must be scheme://host[:port], e.g. https://example.com"
                )));
            }
            trusted.push(o);
        }
        Ok(CsrfMiddleware {
            settings: Arc::new(Settings {
                field_name: config.field_name,
                header_name: config.header_name,
                session_key: config.session_key,
                token_length: config.token_length,
                exempt: config
                    .exempt_paths
                    .iter()
                    .map(|p| crate::http::target::normalize_prefix(p))
                    .collect(),
                trusted_origins: trusted,
                check_origin: config.check_origin,
                login_url: config.login_url,
            }),
        })
    }
}

impl Settings {
    /// The session's token, masked afresh: what a response carries.
    fn masked_token(&self) -> Result<String, LookupError> {
        Ok(mask(&self.token()?))
    }

    /// The session's token, made (and stored) when it has none.
    fn token(&self) -> Result<String, LookupError> {
        let session = get_session()?;
        if let Some(token) = session.get::<String>(&self.session_key) {
            if !token.is_empty() {
                return Ok(token);
            }
        }
        if session.is_read_only() {
            return Err(LookupError::new(
                "No CSRF token in this session yet, and the session is read-only inside a \
                 response stream (its cookie went out with the headers): call get_csrf_token() \
                 once in the handler, before returning the response",
            ));
        }
        let token = random_hex(self.token_length);
        session.insert(&self.session_key, &token);
        Ok(token)
    }

    fn exempt(&self, req: &Request) -> bool {
        self.exempt
            .iter()
            .any(|p| crate::http::target::in_scope(req.path_bytes(), p))
    }

    /// Why a state-changing request is refused from its fetch metadata or origin, if it is.
    fn cross_site(&self, req: &Request) -> bool {
        if !self.check_origin {
            return false;
        }
        if req
            .header("sec-fetch-site")
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("cross-site"))
        {
            return true;
        }
        let Some(origin) = req.header("origin") else {
            return false; // not a browser, or a same-origin request from an old one
        };
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.trusted_origins.contains(&origin) {
            return false;
        }
        // The origin's authority against the request's host (the scheme is the proxy's).
        let authority = origin.split_once("://").map(|(_, a)| a);
        match (authority, req.host()) {
            (Some(a), Some(host)) => !a.eq_ignore_ascii_case(host),
            _ => true, // `Origin: null` (sandboxed, file://) or no host to compare
        }
    }

    /// The token the request submitted: the header, else the form field.
    async fn submitted(&self, req: &Request) -> Option<String> {
        if let Some(token) = req.header(&self.header_name) {
            return Some(token.trim().to_owned());
        }
        let content_type = req
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("application/x-www-form-urlencoded") {
            let pairs = req.form_pairs().ok()?;
            return pairs
                .into_iter()
                .find(|(k, _)| *k == self.field_name)
                .map(|(_, v)| v);
        }
        #[cfg(feature = "multipart")]
        if content_type.starts_with("multipart/form-data") && !req.has_streamed_body() {
            return self.multipart_field(req).await;
        }
        None
    }

    /// The token field of a buffered multipart body (read from a copy: the handler reads
    /// the body again).
    #[cfg(feature = "multipart")]
    async fn multipart_field(&self, req: &Request) -> Option<String> {
        let boundary = multer::parse_boundary(req.header("content-type")?).ok()?;
        let body = req.body().clone();
        let stream = futures_once(body);
        let mut form = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = form.next_field().await {
            if field.name() == Some(self.field_name.as_str()) {
                return field.text().await.ok();
            }
        }
        None
    }
}

/// A one-chunk stream of `body`.
#[cfg(feature = "multipart")]
fn futures_once(
    body: bytes::Bytes,
) -> impl futures_core::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Send {
    struct Once(Option<bytes::Bytes>);
    impl futures_core::Stream for Once {
        type Item = Result<bytes::Bytes, std::convert::Infallible>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.take().map(Ok))
        }
    }
    Once(Some(body))
}

/// Lowercase hex of `bytes`.
fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 15)] as char);
    }
    out
}

/// The bytes of hex text (either case), or `None` if it is not hex.
fn from_hex(text: &str) -> Option<Vec<u8>> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    if text.len() % 2 != 0 {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// `token` (hex) masked with a fresh random pad: hex of the pad, then of the token XORed with
/// it. A stored token that is not hex (set by hand) is masked as its bytes.
fn mask(token: &str) -> String {
    let secret = from_hex(token).unwrap_or_else(|| token.as_bytes().to_vec());
    let mut pad = vec![0u8; secret.len()];
    // As for the token itself (`random_hex`): the OS RNG does not fail where chirp runs, and
    // no token is better than a predictable pad.
    getrandom::fill(&mut pad).expect("the OS random number generator failed");
    let masked: Vec<u8> = pad.iter().zip(&secret).map(|(p, s)| p ^ s).collect();
    let mut out = to_hex(&pad);
    out.push_str(&to_hex(&masked));
    out
}

/// Whether `submitted` is the session's token `expected` (hex): masked (a pad and the token
/// XORed with it, as [`mask`] makes) or as it is. Lengths are public; the bytes are compared
/// in constant time.
fn verify(submitted: &str, expected: &str) -> bool {
    if expected.is_empty() {
        return false;
    }
    let secret = from_hex(expected).unwrap_or_else(|| expected.as_bytes().to_vec());
    let Some(given) = from_hex(submitted) else {
        return false;
    };
    if given.len() == 2 * secret.len() {
        let (pad, masked) = given.split_at(secret.len());
        let unmasked: Vec<u8> = pad.iter().zip(masked).map(|(p, m)| p ^ m).collect();
        bool::from(unmasked.ct_eq(&secret))
    } else if given.len() == secret.len() {
        bool::from(given.ct_eq(&secret))
    } else {
        false
    }
}

fn refuse(req: &Request, event: &'static str, detail: &'static str) -> Response {
    let _ = REFUSED.try_with(|refused| refused.set(true));
    emit(event, req, current_user_id().as_deref());
    HttpError::forbidden(detail).into_response()
}

/// The answer to an htmx request whose session expired: its token cannot match, because the
/// session that issued it is gone (no token in the session, nobody signed in). Not a forgery
/// to report, but a user to send to the login page, as `login_required` sends htmx there.
fn session_expired(req: &Request, settings: &Settings) -> Response {
    let _ = REFUSED.try_with(|refused| refused.set(true));
    let login_url = crate::middleware::auth::login_url()
        .map(|url| url.to_string())
        .or_else(|| settings.login_url.clone());
    let Some(login_url) = login_url else {
        tracing::info!(
            method = req.method().as_str(),
            path = %req.path(),
            "htmx request refused 403: its session expired (the session that issued its CSRF \
             token is gone); set CsrfConfig::login_url, or add AuthMiddleware, to send such \
             requests to the login page"
        );
        return HttpError::forbidden("CSRF token expired: reload the page").into_response();
    };
    tracing::info!(
        method = req.method().as_str(),
        path = %req.path(),
        login_url = %login_url,
        "htmx request sent to the login page (401, HX-Redirect): its session expired, so its \
         CSRF token belongs to a session that is gone"
    );
    crate::middleware::auth::htmx_to_login(&login_url, req)
}

impl Middleware for CsrfMiddleware {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        let settings = self.settings.clone();
        Box::pin(async move {
            let unsafe_method = matches!(
                req.method(),
                Method::Post | Method::Put | Method::Patch | Method::Delete
            );
            // A request with credentials of its own (`Authorization`, not a scheme browsers
            // re-send) and no cookie carries nothing a browser would attach by itself.
            if unsafe_method && !token_client(&req) && !settings.exempt(&req) {
                if settings.cross_site(&req) {
                    return refuse(&req, "csrf.reject.cross_site", "Cross-site request refused");
                }
                let expected = match get_session() {
                    Ok(session) => session.get::<String>(&settings.session_key),
                    // A 500 that keeps the explanation (the middleware order) in the log.
                    Err(e) => return crate::error::Error::from(e).into_response(),
                };
                let Some(submitted) = settings.submitted(&req).await else {
                    return refuse(&req, "csrf.reject.missing", "CSRF token missing");
                };
                let expected = expected.filter(|token| !token.is_empty());
                let valid = expected
                    .as_ref()
                    .is_some_and(|expected| verify(&submitted, expected));
                if !valid {
                    if expected.is_none() && req.htmx().is_partial() && current_user_id().is_none()
                    {
                        return session_expired(&req, &settings);
                    }
                    return refuse(&req, "csrf.reject.invalid", "CSRF token invalid");
                }
            }
            // Carried on into a streamed body's producer and an upgrade callback.
            Response::scoped(&CURRENT, Scope { settings }, next.run(req)).await
        })
    }

    fn requires(&self) -> &'static [&'static str] {
        &["session"]
    }

    fn provides(&self) -> &'static [&'static str] {
        &["csrf"]
    }

    fn name(&self) -> &'static str {
        "CsrfMiddleware"
    }
}

fn scope<T>(f: impl FnOnce(&Scope) -> Result<T, LookupError>) -> Result<T, LookupError> {
    CURRENT.try_with(|s| f(s)).unwrap_or_else(|_| {
        Err(LookupError::new(
            "No CSRF token available: add CsrfMiddleware (after SessionMiddleware) to the app. \
             If it is there, this code runs outside the request's scope: a task started with \
             tokio::spawn does not inherit it (get the token before spawning and move it in)",
        ))
    })
}

/// The current session's CSRF token, masked afresh (a different string at each call, every
/// one valid), made when the session has none (a new one after
/// [`login`](crate::middleware::auth::login) or [`logout`](crate::middleware::auth::logout),
/// which regenerate the session). For a `<meta name="csrf-token">` tag or an
/// `X-CSRF-Token` header sent by `fetch`/htmx.
///
/// The masking (a random pad, then the token XORed with it: `4 * token_length` hex
/// characters) keeps compression from leaking the token (BREACH). The unmasked token
/// (`2 * token_length` characters, as earlier versions gave) is still accepted: chirp no
/// longer puts it in any response, so it can only come from a page rendered before an
/// upgrade or from the session itself, and refusing it would only break those forms.
///
/// # Errors
/// [`LookupError`] outside a request handled by [`CsrfMiddleware`].
pub fn get_csrf_token() -> Result<String, LookupError> {
    scope(|s| s.settings.masked_token())
}

/// A hidden form field with the current CSRF token, HTML-escaped:
/// `<input type="hidden" name="_csrf_token" value="…">`.
///
/// # Errors
/// As [`get_csrf_token`].
pub fn csrf_field() -> Result<String, LookupError> {
    scope(|s| {
        let token = s.settings.masked_token()?;
        Ok(format!(
            r#"<input type="hidden" name="{}" value="{}">"#,
            escape_html(&s.settings.field_name),
            escape_html(&token)
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_hex(32), random_hex(32));
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn masked_tokens_differ_and_verify() {
        let token = random_hex(32);
        let (a, b) = (mask(&token), mask(&token));
        assert_eq!(a.len(), 128);
        assert_ne!(a, b);
        assert!(verify(&a, &token) && verify(&b, &token));
        assert!(verify(&a.to_uppercase(), &token));
        assert!(verify(&token, &token), "the unmasked token is accepted");
        assert!(!verify(&mask(&random_hex(32)), &token));
        assert!(!verify(&random_hex(32), &token));
        assert!(!verify(&a[..127], &token));
        assert!(!verify("", &token));
        assert!(!verify(&a, ""));
        assert_eq!(
            from_hex(&to_hex(&[0, 1, 0xfe, 0xff])),
            Some(vec![0, 1, 0xfe, 0xff])
        );
        assert_eq!(from_hex("0g"), None);
    }

    #[test]
    fn only_non_ambient_credentials_are_token_clients() {
        use crate::http::Method as M;
        let req = |v: &str| Request::new(M::Post, "/").with_header("authorization", v);
        assert!(token_client(&req("Bearer t")));
        assert!(token_client(&req("Token t")));
        for ambient in [
            "Basic x",
            "basic x",
            "DIGEST x",
            "Negotiate x",
            "NTLM x",
            "",
            " ",
        ] {
            assert!(!token_client(&req(ambient)), "{ambient:?}");
        }
        assert!(!token_client(&req("Bearer t").with_header("cookie", "a=b")));
        assert!(!token_client(&Request::new(M::Post, "/")));
    }

    #[test]
    fn configuration_is_checked() {
        assert!(CsrfMiddleware::new(CsrfConfig {
            token_length: 8,
            ..Default::default()
        })
        .is_err());
        assert!(CsrfMiddleware::new(CsrfConfig::default().trusted_origin("example.com")).is_err());
        assert!(
            CsrfMiddleware::new(CsrfConfig::default().trusted_origin("https://a.example/x"))
                .is_err()
        );
        assert!(CsrfMiddleware::new(
            CsrfConfig::default().trusted_origin("https://a.example:8443")
        )
        .is_ok());
    }
}
