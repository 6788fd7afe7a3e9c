//! [`SecurityHeadersMiddleware`]: the response headers that close common browser-side holes, with safe
//! defaults (the Python framework's `security_headers` and `csp_nonce`), and a fresh
//! Content-Security-Policy nonce per request ([`csp_nonce`]).
//!
//! Defaults, each a knob: `X-Content-Type-Options: nosniff` (no MIME sniffing),
//! `X-Frame-Options: DENY` (no framing: clickjacking), `Referrer-Policy:
//! strict-origin-when-cross-origin` (no full URLs to other sites),
//! `Cross-Origin-Opener-Policy: same-origin` (no window handle for cross-origin openers);
//! `Strict-Transport-Security` only when configured (it must be served over HTTPS), and a
//! `Content-Security-Policy` only when configured: one of the app's own, or the built-in
//! nonce-based one ([`NONCE_CSP`], through
//! [`nonce_csp`](SecurityHeadersMiddleware::nonce_csp)). A header the handler set itself is never
//! replaced. Unlike the Python middleware, the headers go on every response, not only HTML
//! (`nosniff` matters most for the others).

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine;

use crate::error::{ConfigurationError, LookupError};
use crate::future::BoxFuture;
use crate::http::{Request, Response};
use crate::service::{Middleware, Next};

tokio::task_local! {
    static NONCE: String;
}

/// The security headers middleware. See the [module docs](self).
///
/// ```
/// use chirp::middleware::security_headers::{csp_nonce, SecurityHeadersMiddleware};
/// use std::time::Duration;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(
///     SecurityHeadersMiddleware::new()
///         .hsts(Duration::from_secs(31_536_000), true)
///         .content_security_policy("default-src 'self'; script-src 'self' 'nonce-{nonce}'")?,
/// );
/// app.route("/", |_req: chirp::Request| async {
///     let nonce = csp_nonce()?;
///     Ok::<_, chirp::Error>(chirp::Response::html(format!("<script nonce=\"{nonce}\">go()</script>")))
/// });
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SecurityHeadersMiddleware {
    fixed: Vec<(&'static str, Cow<'static, str>)>,
    /// The policy, split at each `{nonce}` (one piece: no nonce to make).
    csp: Option<Vec<String>>,
}

impl Default for SecurityHeadersMiddleware {
    fn default() -> Self {
        SecurityHeadersMiddleware::new()
    }
}

impl SecurityHeadersMiddleware {
    /// The defaults listed in the [module docs](self).
    pub fn new() -> SecurityHeadersMiddleware {
        SecurityHeadersMiddleware {
            fixed: vec![
                ("x-content-type-options", Cow::Borrowed("nosniff")),
                ("x-frame-options", Cow::Borrowed("DENY")),
                (
                    "referrer-policy",
                    Cow::Borrowed("strict-origin-when-cross-origin"),
                ),
                ("cross-origin-opener-policy", Cow::Borrowed("same-origin")),
            ],
            csp: None,
        }
    }

    fn set(mut self, name: &'static str, value: Option<&'static str>) -> SecurityHeadersMiddleware {
        self.fixed.retain(|(n, _)| *n != name);
        if let Some(value) = value {
            self.fixed.push((name, Cow::Borrowed(value)));
        }
        self
    }

    /// `X-Frame-Options` (`DENY` by default, `SAMEORIGIN`, or `None` for none).
    pub fn frame_options(self, value: Option<&'static str>) -> SecurityHeadersMiddleware {
        self.set("x-frame-options", value)
    }

    /// `Referrer-Policy` (default `strict-origin-when-cross-origin`; `None` for none).
    pub fn referrer_policy(self, value: Option<&'static str>) -> SecurityHeadersMiddleware {
        self.set("referrer-policy", value)
    }

    /// `Cross-Origin-Opener-Policy` (default `same-origin`; `None` for none).
    pub fn cross_origin_opener_policy(
        self,
        value: Option<&'static str>,
    ) -> SecurityHeadersMiddleware {
        self.set("cross-origin-opener-policy", value)
    }

    /// `X-Content-Type-Options: nosniff` on (default) or off.
    pub fn content_type_options(self, on: bool) -> SecurityHeadersMiddleware {
        self.set("x-content-type-options", on.then_some("nosniff"))
    }

    /// `Strict-Transport-Security: max-age=…` (with `includeSubDomains` when asked): only
    /// for apps served over HTTPS (browsers ignore it over HTTP).
    pub fn hsts(
        mut self,
        max_age: Duration,
        include_subdomains: bool,
    ) -> SecurityHeadersMiddleware {
        let mut value = format!("max-age={}", max_age.as_secs());
        if include_subdomains {
            value.push_str("; includeSubDomains");
        }
        self.fixed
            .retain(|(n, _)| *n != "strict-transport-security");
        self.fixed
            .push(("strict-transport-security", Cow::Owned(value)));
        self
    }

    /// `Content-Security-Policy`; each `{nonce}` in it becomes the request's fresh nonce
    /// (see [`csp_nonce`]). A policy with a line break is a [`ConfigurationError`].
    pub fn content_security_policy(
        mut self,
        policy: &str,
    ) -> Result<SecurityHeadersMiddleware, ConfigurationError> {
        if policy.contains(['\r', '\n', '\0']) || policy.trim().is_empty() {
            return Err(ConfigurationError::new(
                "content_security_policy: give a non-empty policy on one line",
            ));
        }
        self.csp = Some(policy.split("{nonce}").map(str::to_owned).collect());
        Ok(self)
    }

    /// The built-in nonce-based `Content-Security-Policy`, [`NONCE_CSP`]: a script or style
    /// runs only from this origin or with `nonce="…"` set to [`csp_nonce`], so an injected
    /// `<script>` does not.
    ///
    /// ```
    /// use chirp::middleware::security_headers::SecurityHeadersMiddleware;
    /// let mut app = chirp::App::new();
    /// app.add_middleware(SecurityHeadersMiddleware::new().nonce_csp());
    /// ```
    pub fn nonce_csp(self) -> SecurityHeadersMiddleware {
        self.content_security_policy(NONCE_CSP)
            .expect("the built-in policy is one non-empty line")
    }

    /// [`nonce_csp`](SecurityHeadersMiddleware::nonce_csp) with `'unsafe-eval'` allowed in
    /// `script-src`: for libraries that compile code from strings (Alpine.js's standard build,
    /// htmx's `hx-on` and `js:` values). It lets an attacker's string run where such a
    /// library evaluates one, so use it only for them.
    pub fn nonce_csp_with_unsafe_eval(self) -> SecurityHeadersMiddleware {
        self.content_security_policy(NONCE_CSP_UNSAFE_EVAL)
            .expect("the built-in policy is one non-empty line")
    }
}

/// The built-in nonce-based policy (the Python framework's `CSPNonceMiddleware` default, less
/// its CDN origins): scripts and styles only from this origin or carrying the request's nonce,
/// no plugins, no `<base>` elsewhere, no framing. `{nonce}` is the request's nonce. Extend it
/// with [`content_security_policy`](SecurityHeadersMiddleware::content_security_policy), e.g.
/// `format!("{NONCE_CSP}; img-src 'self' data:")`.
pub const NONCE_CSP: &str = "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// [`NONCE_CSP`] with `'unsafe-eval'` in `script-src` (see
/// [`nonce_csp_with_unsafe_eval`](SecurityHeadersMiddleware::nonce_csp_with_unsafe_eval)).
const NONCE_CSP_UNSAFE_EVAL: &str = "default-src 'self'; script-src 'self' 'unsafe-eval' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

/// A fresh nonce: 16 random bytes, base64 (what CSP's `'nonce-…'` takes).
fn new_nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Middleware for SecurityHeadersMiddleware {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let (mut res, nonce) = match &self.csp {
                Some(parts) if parts.len() > 1 => {
                    let nonce = new_nonce();
                    // Carried on into a streamed body's producer and an upgrade callback.
                    let res = Response::scoped(&NONCE, nonce.clone(), next.run(req)).await;
                    (res, Some(nonce))
                }
                _ => (next.run(req).await, None),
            };
            for (name, value) in &self.fixed {
                if res.header(name).is_none() {
                    res.append_header(*name, value.clone());
                }
            }
            if let Some(parts) = &self.csp {
                if res.header("content-security-policy").is_none() {
                    let policy = parts.join(nonce.as_deref().unwrap_or(""));
                    res.append_header("content-security-policy", policy);
                }
            }
            res
        })
    }

    fn name(&self) -> &'static str {
        "SecurityHeadersMiddleware"
    }
}

/// The current request's CSP nonce, for `<script nonce="…">` and `<style nonce="…">`: fresh
/// random per request, the same value [`SecurityHeadersMiddleware`] puts in the policy.
///
/// # Errors
/// [`LookupError`] outside a request handled by `SecurityHeadersMiddleware` with a policy that has a
/// `{nonce}`.
pub fn csp_nonce() -> Result<String, LookupError> {
    NONCE.try_with(String::clone).map_err(|_| {
        LookupError::new(
            "No CSP nonce: add SecurityHeadersMiddleware with a content_security_policy \
             containing {nonce}. If it is there, this code runs outside the request's scope: a \
             task started with tokio::spawn does not inherit it (read the nonce before spawning \
             and move it in)",
        )
    })
}
