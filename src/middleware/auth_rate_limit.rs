//! [`AuthRateLimitMiddleware`]: a limit on login attempts (the Python framework's `auth_rate_limit`),
//! so that passwords cannot be guessed at the server's speed. Default: 10 `POST /login` per
//! minute per client address, `429 Too Many Requests` with `Retry-After` past it.
//!
//! Counts live in a [`RateLimitStore`]: [`MemoryStore`] (bounded; the default) for one
//! process, or a shared one (the Redis store) when several instances serve the app.

use std::sync::Arc;
use std::time::Duration;

use crate::future::BoxFuture;
use crate::http::{BoxError, Method, Request, Response, StatusCode, TrustedProxies};
use crate::middleware::auth::current_user_id;
use crate::security::audit::emit;
use crate::service::{Middleware, Next};
use crate::sessions::{Clock, SystemClock};
use crate::stores::{MemoryStore, RateLimitStore};

/// The login rate limit. See the [module docs](self).
///
/// ```
/// use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
/// use std::time::Duration;
/// let mut app = chirp::App::new();
/// app.add_middleware(AuthRateLimitMiddleware::new().limit(5, Duration::from_secs(300)).per_username("username"));
/// ```
pub struct AuthRateLimitMiddleware {
    paths: Vec<(Method, String)>,
    limit: u64,
    window: u64,
    sliding: bool,
    username_field: Option<String>,
    proxies: TrustedProxies,
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
}

impl Default for AuthRateLimitMiddleware {
    fn default() -> Self {
        AuthRateLimitMiddleware::new()
    }
}

impl AuthRateLimitMiddleware {
    /// 10 `POST /login` per minute per client address, fixed windows, in memory.
    pub fn new() -> AuthRateLimitMiddleware {
        AuthRateLimitMiddleware {
            paths: vec![(Method::Post, "/login".to_owned())],
            limit: 10,
            window: 60,
            sliding: false,
            username_field: None,
            proxies: TrustedProxies::default(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The requests limited, replacing the default `POST /login`.
    pub fn paths(mut self, paths: &[(Method, &str)]) -> AuthRateLimitMiddleware {
        self.paths = paths
            .iter()
            .map(|(m, p)| (*m, crate::http::target::normalize_prefix(p)))
            .collect();
        self
    }

    /// At most `limit` attempts per `window` (rounded up to whole seconds).
    pub fn limit(mut self, limit: u64, window: Duration) -> AuthRateLimitMiddleware {
        self.limit = limit.max(1);
        self.window = window.as_secs().max(1) + u64::from(window.subsec_nanos() > 0);
        self
    }

    /// Sliding windows (the previous window's count weighs in by how much of it still
    /// overlaps): smoother than fixed windows, which allow a burst of twice the limit across
    /// a window's edge.
    pub fn sliding(mut self, on: bool) -> AuthRateLimitMiddleware {
        self.sliding = on;
        self
    }

    /// Also limits per submitted username, read from this field of an urlencoded form: a
    /// guesser spread over many addresses is caught on the account.
    pub fn per_username(mut self, field: &str) -> AuthRateLimitMiddleware {
        self.username_field = Some(field.to_owned());
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client (else the socket's peer is).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> AuthRateLimitMiddleware {
        self.proxies = proxies;
        self
    }

    /// Where attempts are counted (default: [`MemoryStore`]).
    pub fn store(mut self, store: impl RateLimitStore) -> AuthRateLimitMiddleware {
        self.store = Arc::new(store);
        self
    }

    /// The clock (a `ManualClock` in tests).
    pub fn clock(mut self, clock: impl Clock) -> AuthRateLimitMiddleware {
        self.clock = Arc::new(clock);
        self
    }

    fn limited(&self, req: &Request) -> bool {
        self.paths
            .iter()
            .any(|(m, p)| *m == req.method() && req.path() == p)
    }

    /// `Some(retry_after_seconds)` when `key` is over the limit.
    async fn check(&self, key: &str, now: u64) -> Result<Option<u64>, BoxError> {
        let window = now / self.window;
        let counts = self.store.hit(key, window, self.window).await?;
        let into = now % self.window;
        let over = if self.sliding {
            let weight = (self.window - into) as f64 / self.window as f64;
            counts.previous as f64 * weight + counts.current as f64 > self.limit as f64
        } else {
            counts.current > self.limit
        };
        Ok(over.then_some(self.window - into))
    }
}

impl std::fmt::Debug for AuthRateLimitMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRateLimitMiddleware")
            .field("paths", &self.paths)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("sliding", &self.sliding)
            .finish_non_exhaustive()
    }
}

impl Middleware for AuthRateLimitMiddleware {
    fn call<'a>(&'a self, mut req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            if !self.limited(&req) {
                return next.run(req).await;
            }
            if let Some(ip) = self.proxies.client_ip(&req) {
                req.set_client_ip(ip);
            }
            let now = self.clock.now();
            let ip = req
                .client_ip()
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
            let mut keys = vec![format!("{}|ip:{ip}", req.path())];
            if let Some(field) = &self.username_field {
                if let Ok(pairs) = req.form_pairs() {
                    if let Some((_, name)) = pairs.into_iter().find(|(k, _)| k == field) {
                        keys.push(format!(
                            "{}|user:{}",
                            req.path(),
                            name.trim().to_lowercase()
                        ));
                    }
                }
            }
            let mut retry = None;
            for key in &keys {
                match self.check(key, now).await {
                    Ok(Some(after)) => retry = Some(retry.map_or(after, |r: u64| r.max(after))),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "rate limit store failed: the login is refused");
                        let mut res = Response::error(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "rate limit store unavailable",
                        );
                        res.append_header("retry-after", "1");
                        return res;
                    }
                }
            }
            if let Some(after) = retry {
                emit("ratelimit.hit", &req, current_user_id().as_deref());
                let mut res = Response::error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                res.append_header("retry-after", after.to_string());
                return res;
            }
            next.run(req).await
        })
    }

    fn name(&self) -> &'static str {
        "AuthRateLimitMiddleware"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed windows let a burst of twice the limit through across a window's edge; sliding
    /// ones do not.
    #[tokio::test]
    async fn sliding_windows_close_the_edge_burst() {
        for (sliding, third_over) in [(false, None), (true, Some(60))] {
            let limit = AuthRateLimitMiddleware::new()
                .limit(2, Duration::from_secs(60))
                .sliding(sliding);
            assert_eq!(limit.check("k", 59).await.unwrap(), None);
            assert_eq!(limit.check("k", 59).await.unwrap(), None);
            assert_eq!(
                limit.check("k", 60).await.unwrap(),
                third_over,
                "sliding: {sliding}"
            );
            // Half a window later the old attempts weigh half.
            let limit = AuthRateLimitMiddleware::new()
                .limit(2, Duration::from_secs(60))
                .sliding(sliding);
            limit.check("k", 59).await.unwrap();
            limit.check("k", 59).await.unwrap();
            assert_eq!(
                limit.check("k", 90).await.unwrap(),
                None,
                "sliding: {sliding}"
            );
        }
    }
}
