//! [`AccessLogMiddleware`]: one `tracing` event per request (target `chirp::access`, level `info`) with
//! method, path, status, bytes, duration, client address and a request id, which is also
//! echoed as `X-Request-Id` and reachable by handlers as [`request_id`].

use std::time::Instant;

use crate::error::LookupError;
use crate::future::BoxFuture;
use crate::http::{Request, Response, TrustedProxies};
use crate::security::random_hex;
use crate::service::{Middleware, Next};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Logs every request, and gives each an id.
///
/// The id is the request's `X-Request-Id` when the request comes from a trusted proxy (which
/// made it) and the value is sane (at most 128 characters of letters, digits and `-_.:`);
/// otherwise a new random one (16 bytes, hex). Behind trusted proxies, the client address is
/// the one they forwarded for (`X-Forwarded-For`), for this log and for the middleware after.
///
/// Add it first (outermost), so that it times and sees everything, refusals of later
/// middleware included. To print the events, install a subscriber, e.g.
/// `tracing_subscriber::fmt().with_env_filter("info").init()`.
///
/// ```
/// use chirp::http::TrustedProxies;
/// use chirp::middleware::access_log::AccessLogMiddleware;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(AccessLogMiddleware::new().trusted_proxies(TrustedProxies::new(["127.0.0.1"])?));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccessLogMiddleware {
    proxies: TrustedProxies,
}

impl AccessLogMiddleware {
    /// An access log that trusts no proxy.
    pub fn new() -> AccessLogMiddleware {
        AccessLogMiddleware::default()
    }

    /// The proxies whose `X-Forwarded-For` and `X-Request-Id` are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> AccessLogMiddleware {
        self.proxies = proxies;
        self
    }
}

/// Whether a forwarded request id is one to keep (no log injection, bounded size).
fn sane_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl Middleware for AccessLogMiddleware {
    fn call<'a>(&'a self, mut req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let started = Instant::now();
            let from_proxy = req
                .peer_addr()
                .is_some_and(|p| self.proxies.contains(p.ip()));
            let client = self.proxies.client_ip(&req);
            if let Some(ip) = client {
                req.set_client_ip(ip);
            }
            let id = req
                .header("x-request-id")
                .filter(|id| from_proxy && sane_id(id))
                .map(str::to_owned)
                .unwrap_or_else(|| random_hex(16));
            let method = req.method();
            let path = req.path().to_owned();
            let mut res = REQUEST_ID.scope(id.clone(), next.run(req)).await;
            let bytes = match (res.is_streamed(), res.streamed_len()) {
                (false, _) => Some(res.body().len() as u64),
                (true, len) => len,
            };
            let client = client.map(|ip| ip.to_string());
            tracing::info!(
                target: "chirp::access",
                method = method.as_str(),
                path = %path,
                status = res.status().as_u16(),
                bytes = bytes.map_or(-1, |b| b as i64),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                client_ip = client.as_deref().unwrap_or("-"),
                request_id = %id,
                "request"
            );
            if res.header("x-request-id").is_none() {
                res.append_header("x-request-id", id);
            }
            res
        })
    }

    fn name(&self) -> &'static str {
        "AccessLogMiddleware"
    }
}

/// The id [`AccessLogMiddleware`] gave the current request (for logs, error pages, upstream calls).
///
/// # Errors
/// [`LookupError`] outside a request handled by [`AccessLogMiddleware`].
pub fn request_id() -> Result<String, LookupError> {
    REQUEST_ID
        .try_with(String::clone)
        .map_err(|_| LookupError::new("No request id: add AccessLogMiddleware to the app (first)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn forwarded_ids_are_checked() {
        assert!(super::sane_id("a1b2-c3_d4.e5:f6"));
        assert!(!super::sane_id(""));
        assert!(!super::sane_id("a b"));
        assert!(!super::sane_id("x\ny"));
        assert!(!super::sane_id(&"a".repeat(129)));
    }
}
