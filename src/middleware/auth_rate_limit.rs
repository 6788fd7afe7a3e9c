//! [`AuthRateLimit`]: a limit on login attempts (the Python framework's `auth_rate_limit`),
//! so that passwords cannot be guessed at the server's speed. Default: 10 `POST /login` per
//! minute per client address, `429 Too Many Requests` with `Retry-After` past it.
//!
//! Counts live in a [`RateLimitStore`]: [`MemoryStore`] (bounded; the default) for one
//! process, or a shared one (the Redis store) when several instances serve the app.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::future::BoxFuture;
use crate::http::{BoxError, Method, Request, Response, StatusCode, TrustedProxies};
use crate::middleware::audit::emit;
use crate::middleware::sessions::{Clock, SystemClock};
use crate::service::{Middleware, Next};

/// Attempts counted in the current window and in the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// In the current window, this attempt included.
    pub current: u64,
    /// In the previous window (for the sliding estimate).
    pub previous: u64,
}

/// Where attempts are counted. Implement it over a shared store to limit across instances.
pub trait RateLimitStore: Send + Sync + 'static {
    /// Counts one attempt under `key` in the window `window_index` (time divided by the
    /// window's length, `window_secs`), and returns the counts of that window and the one
    /// before. A shared store may forget both after two windows.
    fn hit<'a>(
        &'a self,
        key: &'a str,
        window_index: u64,
        window_secs: u64,
    ) -> BoxFuture<'a, Result<Counts, BoxError>>;
}

/// Counts in this process's memory, at most `max_keys` keys (default 100 000): when full,
/// keys whose windows are over go first, then the quietest ones.
#[derive(Debug)]
pub struct MemoryStore {
    keys: Mutex<HashMap<String, (u64, Counts)>>,
    max_keys: usize,
}

impl MemoryStore {
    /// A store of at most `max_keys` keys.
    pub fn new(max_keys: usize) -> MemoryStore {
        MemoryStore {
            keys: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    /// How many keys it holds now.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(100_000)
    }
}

impl RateLimitStore for MemoryStore {
    fn hit<'a>(
        &'a self,
        key: &'a str,
        window: u64,
        _window_secs: u64,
    ) -> BoxFuture<'a, Result<Counts, BoxError>> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !keys.contains_key(key) && keys.len() >= self.max_keys {
            // Windows that are over (not the current one, nor the one before) count no more.
            keys.retain(|_, (w, _)| *w + 1 >= window);
            if keys.len() >= self.max_keys {
                let quietest = keys
                    .iter()
                    .min_by_key(|(_, (w, c))| (*w, c.current))
                    .map(|(k, _)| k.clone());
                if let Some(k) = quietest {
                    keys.remove(&k);
                }
            }
        }
        let (w, counts) = keys
            .entry(key.to_owned())
            .or_insert((window, Counts::default()));
        if *w != window {
            counts.previous = if *w + 1 == window { counts.current } else { 0 };
            counts.current = 0;
            *w = window;
        }
        counts.current += 1;
        let counts = *counts;
        Box::pin(std::future::ready(Ok(counts)))
    }
}

/// Counts in Redis (feature `redis`), shared by every instance of the app: one pipelined
/// round trip per attempt (`INCR` and `EXPIRE` of the window's key, `GET` of the previous
/// window's), keys `chirp:ratelimit:<key>:<window>` that expire after two windows.
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisRateLimitStore {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
}

#[cfg(feature = "redis")]
impl RedisRateLimitStore {
    /// Connects to the Redis at `url`. Each attempt's round trip may take at most 1 s; past
    /// it (or with Redis down) the login is answered `503`.
    ///
    /// # Errors
    /// A malformed URL, or a Redis that does not answer within 5 s.
    pub async fn connect(url: &str) -> Result<RedisRateLimitStore, crate::Error> {
        let conn = crate::middleware::redis_conn::connect(url).await?;
        Ok(RedisRateLimitStore {
            conn,
            prefix: "chirp:ratelimit:".to_owned(),
            timeout: crate::middleware::redis_conn::TIMEOUT,
        })
    }

    /// The key prefix (default `chirp:ratelimit:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisRateLimitStore {
        self.prefix = prefix.into();
        self
    }

    /// How long an attempt's round trip may take before the login is answered `503`
    /// (default 1 s).
    pub fn timeout(mut self, timeout: Duration) -> RedisRateLimitStore {
        self.timeout = timeout;
        self
    }
}

#[cfg(feature = "redis")]
impl RateLimitStore for RedisRateLimitStore {
    fn hit<'a>(
        &'a self,
        key: &'a str,
        window: u64,
        window_secs: u64,
    ) -> BoxFuture<'a, Result<Counts, BoxError>> {
        Box::pin(async move {
            let current = format!("{}{key}:{window}", self.prefix);
            let previous = format!("{}{key}:{}", self.prefix, window.saturating_sub(1));
            let mut pipe = redis::pipe();
            pipe.cmd("INCR").arg(&current);
            pipe.cmd("EXPIRE")
                .arg(&current)
                .arg(window_secs * 2)
                .ignore();
            pipe.cmd("GET").arg(&previous);
            let mut conn = self.conn.clone();
            let (now, before): (u64, Option<u64>) =
                crate::middleware::redis_conn::within(self.timeout, pipe.query_async(&mut conn))
                    .await?;
            Ok(Counts {
                current: now,
                previous: if window == 0 { 0 } else { before.unwrap_or(0) },
            })
        })
    }
}

/// The login rate limit. See the [module docs](self).
///
/// ```
/// use chirp::middleware::auth_rate_limit::AuthRateLimit;
/// use std::time::Duration;
/// let mut app = chirp::App::new();
/// app.add_middleware(AuthRateLimit::new().limit(5, Duration::from_secs(300)).per_username("username"));
/// ```
pub struct AuthRateLimit {
    paths: Vec<(Method, String)>,
    limit: u64,
    window: u64,
    sliding: bool,
    username_field: Option<String>,
    proxies: TrustedProxies,
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
}

impl Default for AuthRateLimit {
    fn default() -> Self {
        AuthRateLimit::new()
    }
}

impl AuthRateLimit {
    /// 10 `POST /login` per minute per client address, fixed windows, in memory.
    pub fn new() -> AuthRateLimit {
        AuthRateLimit {
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
    pub fn paths(mut self, paths: &[(Method, &str)]) -> AuthRateLimit {
        self.paths = paths
            .iter()
            .map(|(m, p)| (*m, crate::http::target::normalize_prefix(p)))
            .collect();
        self
    }

    /// At most `limit` attempts per `window` (rounded up to whole seconds).
    pub fn limit(mut self, limit: u64, window: Duration) -> AuthRateLimit {
        self.limit = limit.max(1);
        self.window = window.as_secs().max(1) + u64::from(window.subsec_nanos() > 0);
        self
    }

    /// Sliding windows (the previous window's count weighs in by how much of it still
    /// overlaps): smoother than fixed windows, which allow a burst of twice the limit across
    /// a window's edge.
    pub fn sliding(mut self, on: bool) -> AuthRateLimit {
        self.sliding = on;
        self
    }

    /// Also limits per submitted username, read from this field of an urlencoded form: a
    /// guesser spread over many addresses is caught on the account.
    pub fn per_username(mut self, field: &str) -> AuthRateLimit {
        self.username_field = Some(field.to_owned());
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client (else the socket's peer is).
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> AuthRateLimit {
        self.proxies = proxies;
        self
    }

    /// Where attempts are counted (default: [`MemoryStore`]).
    pub fn store(mut self, store: impl RateLimitStore) -> AuthRateLimit {
        self.store = Arc::new(store);
        self
    }

    /// The clock (a `ManualClock` in tests).
    pub fn clock(mut self, clock: impl Clock) -> AuthRateLimit {
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

impl std::fmt::Debug for AuthRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthRateLimit")
            .field("paths", &self.paths)
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("sliding", &self.sliding)
            .finish_non_exhaustive()
    }
}

impl Middleware for AuthRateLimit {
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
                emit("ratelimit.hit", &req, None);
                let mut res = Response::error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                res.append_header("retry-after", after.to_string());
                return res;
            }
            next.run(req).await
        })
    }

    fn name(&self) -> &'static str {
        "AuthRateLimit"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_is_bounded() {
        let store = MemoryStore::new(3);
        for i in 0..10 {
            store.hit(&format!("k{i}"), 5, 60).await.unwrap();
        }
        assert_eq!(store.len(), 3);
        // Counts roll into "previous" across one window, and to nothing across more.
        let store = MemoryStore::new(10);
        store.hit("a", 1, 60).await.unwrap();
        store.hit("a", 1, 60).await.unwrap();
        assert_eq!(
            store.hit("a", 2, 60).await.unwrap(),
            Counts {
                current: 1,
                previous: 2
            }
        );
        assert_eq!(
            store.hit("a", 9, 60).await.unwrap(),
            Counts {
                current: 1,
                previous: 0
            }
        );
    }

    /// Fixed windows let a burst of twice the limit through across a window's edge; sliding
    /// ones do not.
    #[tokio::test]
    async fn sliding_windows_close_the_edge_burst() {
        for (sliding, third_over) in [(false, None), (true, Some(60))] {
            let limit = AuthRateLimit::new()
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
            let limit = AuthRateLimit::new()
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
