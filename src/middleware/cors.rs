//! Cross-Origin Resource Sharing (the Fetch standard's CORS protocol): which other origins'
//! pages may call this app from a browser, with which methods and headers, and whether with
//! cookies. Preflight requests (`OPTIONS` with `Access-Control-Request-Method`) are answered
//! here, without reaching a handler; a disallowed origin gets no CORS headers at all (the
//! browser then refuses the page the response), and its preflight a `403`.

use std::time::Duration;

use crate::error::ConfigurationError;
use crate::future::BoxFuture;
use crate::http::{Method, Request, Response, StatusCode};
use crate::middleware::auth::current_user_id;
use crate::security::audit::emit;
use crate::service::{Middleware, Next};

/// What [`CorsMiddleware`] allows. Nothing, by default: add origins.
///
/// ```
/// use chirp::middleware::cors::{CorsConfig, CorsMiddleware};
/// use chirp::Method;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let cors = CorsMiddleware::new(
///     CorsConfig::new()
///         .allow_origin("https://app.example.com")
///         .allow_methods(&[Method::Get, Method::Post, Method::Delete])
///         .allow_headers(&["content-type", "x-csrf-token"])
///         .allow_credentials(true),
/// )?;
/// # let _ = cors; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct CorsConfig {
    origins: Vec<String>,
    any_origin: bool,
    methods: Vec<Method>,
    headers: Vec<String>,
    any_header: bool,
    expose: Vec<String>,
    credentials: bool,
    max_age: Option<Duration>,
}

impl Default for CorsConfig {
    fn default() -> Self {
        CorsConfig::new()
    }
}

impl CorsConfig {
    /// No origins; methods GET, HEAD and POST; no extra request headers; no credentials; a
    /// preflight cached for 10 minutes.
    pub fn new() -> CorsConfig {
        CorsConfig {
            origins: Vec::new(),
            any_origin: false,
            methods: vec![Method::Get, Method::Head, Method::Post],
            headers: Vec::new(),
            any_header: false,
            expose: Vec::new(),
            credentials: false,
            max_age: Some(Duration::from_secs(600)),
        }
    }

    /// Allows `origin` (`scheme://host[:port]`), or every origin with `"*"` (then not with
    /// credentials).
    pub fn allow_origin(mut self, origin: &str) -> CorsConfig {
        if origin == "*" {
            self.any_origin = true;
        } else {
            self.origins
                .push(origin.trim_end_matches('/').to_ascii_lowercase());
        }
        self
    }

    /// Allows each of `origins`.
    pub fn allow_origins(self, origins: &[&str]) -> CorsConfig {
        origins.iter().fold(self, |c, o| c.allow_origin(o))
    }

    /// The methods allowed (replacing the default list).
    pub fn allow_methods(mut self, methods: &[Method]) -> CorsConfig {
        self.methods = methods.to_vec();
        self
    }

    /// The request headers allowed beyond the CORS-safelisted ones; `"*"` for any (not with
    /// credentials).
    pub fn allow_headers(mut self, headers: &[&str]) -> CorsConfig {
        for h in headers {
            if *h == "*" {
                self.any_header = true;
            } else {
                self.headers.push(h.to_ascii_lowercase());
            }
        }
        self
    }

    /// Response headers the calling page may read (`Access-Control-Expose-Headers`).
    pub fn expose_headers(mut self, headers: &[&str]) -> CorsConfig {
        self.expose
            .extend(headers.iter().map(|h| h.to_ascii_lowercase()));
        self
    }

    /// Whether cookies and `Authorization` go with cross-origin calls
    /// (`Access-Control-Allow-Credentials: true`).
    pub fn allow_credentials(mut self, on: bool) -> CorsConfig {
        self.credentials = on;
        self
    }

    /// How long a browser may cache a preflight (`None`: no `Access-Control-Max-Age`).
    pub fn max_age(mut self, max_age: Option<Duration>) -> CorsConfig {
        self.max_age = max_age;
        self
    }
}

/// Set on a request whose `Origin` the CORS configuration allows, for a WebSocket handshake
/// (see `ws::upgrade`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OriginAllowed;

/// The CORS middleware. Add it before sessions, CSRF and auth, so that preflights are
/// answered before them.
pub struct CorsMiddleware {
    config: CorsConfig,
    methods: String,
    headers: String,
    expose: String,
}

impl CorsMiddleware {
    /// The middleware for `config`. `*` origins or headers together with credentials (which
    /// browsers refuse, and which would open every origin's cookies to the app's API), or a
    /// malformed origin, are a [`ConfigurationError`].
    pub fn new(config: CorsConfig) -> Result<CorsMiddleware, ConfigurationError> {
        if config.credentials && (config.any_origin || config.any_header) {
            return Err(ConfigurationError::new(
                "CorsConfig: \"*\" cannot be combined with allow_credentials(true): list the origins (and headers) instead",
            ));
        }
        for origin in &config.origins {
            let ok = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.contains('/')
            });
            if !ok {
                return Err(ConfigurationError::new(format!(
                    "CorsConfig: origin {origin:?} must be scheme://host[:port], e.g. https://app.example.com"
                )));
            }
        }
        let methods = config
            .methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let headers = config.headers.join(", ");
        let expose = config.expose.join(", ");
        Ok(CorsMiddleware {
            config,
            methods,
            headers,
            expose,
        })
    }

    fn allows(&self, origin: &str) -> bool {
        self.config.any_origin
            || self
                .config
                .origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin.trim_end_matches('/')))
    }

    /// The `Access-Control-Allow-Origin` value for an allowed `origin`.
    fn allow_origin_value(&self, origin: &str) -> String {
        if self.config.any_origin && !self.config.credentials {
            "*".to_owned()
        } else {
            origin.to_owned()
        }
    }

    fn preflight(&self, req: &Request, origin: &str) -> Response {
        let method_ok = req
            .header("access-control-request-method")
            .and_then(|m| Method::parse(m.trim()))
            .is_some_and(|m| {
                self.config.methods.contains(&m)
                    || (m == Method::Head && self.config.methods.contains(&Method::Get))
            });
        let requested: Vec<String> = req
            .header("access-control-request-headers")
            .map(|h| {
                h.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let headers_ok =
            self.config.any_header || requested.iter().all(|h| self.config.headers.contains(h));
        if !self.allows(origin) || !method_ok || !headers_ok {
            emit("cors.reject.preflight", req, current_user_id().as_deref());
            let mut res =
                Response::text("CORS preflight refused").with_status(StatusCode::FORBIDDEN);
            res.append_header(
                "vary",
                "origin, access-control-request-method, access-control-request-headers",
            );
            return res;
        }
        let mut res = Response::empty(StatusCode::NO_CONTENT);
        res.append_header(
            "access-control-allow-origin",
            self.allow_origin_value(origin),
        );
        res.append_header("access-control-allow-methods", self.methods.clone());
        let allow_headers = if self.config.any_header {
            requested.join(", ")
        } else {
            self.headers.clone()
        };
        if !allow_headers.is_empty() {
            res.append_header("access-control-allow-headers", allow_headers);
        }
        if self.config.credentials {
            res.append_header("access-control-allow-credentials", "true");
        }
        if let Some(age) = self.config.max_age {
            res.append_header("access-control-max-age", age.as_secs().to_string());
        }
        res.append_header(
            "vary",
            "origin, access-control-request-method, access-control-request-headers",
        );
        res
    }
}

impl Middleware for CorsMiddleware {
    fn call<'a>(&'a self, mut req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let origin = req.header("origin").map(str::to_owned);
            if let Some(origin) = &origin {
                if req.method() == Method::Options
                    && req.headers().contains("access-control-request-method")
                {
                    return self.preflight(&req, origin);
                }
                // A WebSocket handshake gets no CORS from browsers: the socket checks its
                // Origin itself (`Request::websocket`), and takes the origins allowed here.
                if req.headers().contains("upgrade") && self.allows(origin) {
                    req.extensions_mut().insert(OriginAllowed);
                }
            }
            let mut res = next.run(req).await;
            // The answer depends on Origin whenever the allowed set is a list.
            if !self.config.any_origin || self.config.credentials {
                res.append_header("vary", "origin");
            }
            if let Some(origin) = origin.filter(|o| self.allows(o)) {
                res.set_header(
                    "access-control-allow-origin",
                    self.allow_origin_value(&origin),
                );
                if self.config.credentials {
                    res.set_header("access-control-allow-credentials", "true");
                }
                if !self.expose.is_empty() {
                    res.set_header("access-control-expose-headers", self.expose.clone());
                }
            }
            res
        })
    }

    fn name(&self) -> &'static str {
        "CorsMiddleware"
    }
}
