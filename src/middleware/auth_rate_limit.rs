//! [`AuthRateLimitMiddleware`]: a limit on login attempts (the Python framework's `auth_rate_limit`),
//! so that passwords cannot be guessed at the server's speed. Default: 10 attempts per minute
//! per client address and path (a sliding window) on `POST /login`, `/signup`, `/register` and
//! `/password-reset` (the Python framework's paths), `429 Too Many Requests` with
//! `Retry-After` past it; with [`per_username`](AuthRateLimitMiddleware::per_username), 10 per minute per
//! account too, from any number of addresses.
//!
//! What is counted:
//! - on the client address, every request to a limited path that is not refused as over the
//!   limit, including one the [`CsrfMiddleware`](crate::middleware::csrf::CsrfMiddleware)
//!   refuses: an address pays for its own forged requests, and an address over its limit
//!   never reaches the username's count (nor adds a key to the store);
//! - on the username, only an attempt that passes CSRF and reaches the handler: the count is
//!   taken when the request arrives (so concurrent guesses cannot all slip under the limit)
//!   and given back when CSRF refuses it. A token-less request naming an account cannot lock
//!   its owner out.
//!
//! The username is read with [`Request::form_pairs`], the very reading the handler's
//! [`Request::form`] makes (a body that is not UTF-8 is read the same by both); a username
//! field sent twice is refused with a 400, since handlers may disagree on which one counts.
//!
//! Counts live in a [`RateLimitStore`]: [`MemoryStore`] (bounded in memory, constant time per
//! attempt; the default) for one process, or a shared one (the Redis store) when several
//! instances serve the app.

use std::sync::Arc;
use std::time::Duration;

use crate::error::HttpError;
use crate::future::BoxFuture;
use crate::http::{BoxError, IntoResponse, Method, Request, Response, StatusCode, TrustedProxies};
use crate::middleware::auth::current_user_id;
use crate::middleware::csrf::noting_csrf_refusal;
use crate::security::audit::emit;
use crate::service::{Middleware, Next};
use crate::sessions::{Clock, SystemClock};
use crate::stores::{Counts, MemoryStore, RateLimitStore};

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
    /// 10 attempts per minute per client address on each of [`DEFAULT_PATHS`] (`POST` to
    /// `/login`, `/signup`, `/register`, `/password-reset`), sliding windows, in memory.
    ///
    /// Sliding rather than fixed windows by default: a fixed window forgets every attempt at
    /// its edge, so twice the limit passes across it, and whether a burst is refused depends
    /// on where the minute happens to fall.
    pub fn new() -> AuthRateLimitMiddleware {
        AuthRateLimitMiddleware {
            paths: DEFAULT_PATHS
                .iter()
                .map(|p| (Method::Post, (*p).to_owned()))
                .collect(),
            limit: 10,
            window: 60,
            sliding: true,
            username_field: None,
            proxies: TrustedProxies::default(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// The requests limited, replacing the defaults (`POST` to each of [`DEFAULT_PATHS`]).
    /// Each path is counted on its own, and matched exactly.
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

    /// Sliding windows (the default: the previous window's count weighs in by how much of it
    /// still overlaps), or fixed ones with `false`. Fixed windows allow a burst of twice the
    /// limit across a window's edge, and forget everything at it.
    pub fn sliding(mut self, on: bool) -> AuthRateLimitMiddleware {
        self.sliding = on;
        self
    }

    /// Also limits per submitted username, read from this field of an urlencoded form (trimmed,
    /// lowercased, its first 256 bytes): a guesser spread over many addresses is caught on the
    /// account. See the [module docs](self) for what is counted.
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

    /// Counts an attempt under `key` at `now`: `Some(retry_after_seconds)` when it is over the
    /// limit (and then the attempt is given back: a refused request tests no password).
    async fn check(&self, key: &str, now: u64) -> Result<Option<u64>, BoxError> {
        let window = now / self.window;
        let counts = self.store.hit(key, window, self.window).await?;
        let Some(after) = self.over(counts, now % self.window) else {
            return Ok(None);
        };
        self.store.undo(key, window).await?;
        Ok(Some(after))
    }

    /// `Some(retry_after_seconds)` when `counts` (this attempt included), `into` seconds into
    /// the window, are over the limit: the wait until an attempt would pass.
    fn over(&self, counts: Counts, into: u64) -> Option<u64> {
        let (w, limit) = (u128::from(self.window), u128::from(self.limit));
        let (cur, prev, into) = (
            u128::from(counts.current),
            u128::from(counts.previous),
            u128::from(into),
        );
        if !self.sliding {
            return (cur > limit).then_some(self.window - into as u64);
        }
        // The estimate: prev * (w - into) / w + cur, compared in whole numbers.
        if prev * (w - into) + cur * w <= limit * w {
            return None;
        }
        let before = cur - 1; // the attempts counted before this one
        let wait = if before < limit && prev > 0 {
            // Later in this window, once enough of the previous one has slid out.
            w - into - (limit - before - 1) * w / prev
        } else {
            // In the next window, where this one's attempts weigh as the previous ones.
            let slide = ((limit - 1).min(before) * w)
                .checked_div(before)
                .map_or(0, |kept| w - kept);
            w - into + slide
        };
        Some(wait.max(1) as u64)
    }

    /// The username key of a limited request: `Ok(None)` without the field, `Err` with a 400
    /// when the field is sent more than once.
    fn username_key(&self, req: &Request) -> Result<Option<String>, Response> {
        let Some(field) = &self.username_field else {
            return Ok(None);
        };
        let pairs = req.form_pairs().map_err(|e| e.into_response())?;
        let mut names = pairs.into_iter().filter(|(k, _)| k == field);
        let Some((_, name)) = names.next() else {
            return Ok(None);
        };
        if names.next().is_some() {
            return Err(HttpError::bad_request(format!(
                "the form field {field:?} is sent more than once: send it once"
            ))
            .into_response());
        }
        let mut name = name.trim().to_lowercase();
        if name.len() > MAX_USERNAME {
            let mut end = MAX_USERNAME;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            name.truncate(end);
        }
        Ok(Some(format!("{}|user:{name}", req.path())))
    }
}

/// The paths limited by default, each for `POST`: the Python framework's `AuthRateLimitConfig`
/// paths, every form that checks or sets a password or sends a reset mail.
pub const DEFAULT_PATHS: [&str; 4] = ["/login", "/signup", "/register", "/password-reset"];

/// The bytes of a username that make its key: longer ones share their first 256 (a stricter
/// count, never a looser one), so no key is longer than a few hundred bytes.
const MAX_USERNAME: usize = 256;

fn too_many(after: u64) -> Response {
    let mut res = Response::error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
    res.append_header("retry-after", after.to_string());
    res
}

fn store_failed(e: &BoxError) -> Response {
    tracing::error!(error = %e, "rate limit store failed: the login is refused");
    let mut res = Response::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "rate limit store unavailable",
    );
    res.append_header("retry-after", "1");
    res
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
            // A test client's clock, when the test took it, is every middleware's clock.
            let now = crate::sessions::client_now(&req).unwrap_or_else(|| self.clock.now());
            let ip = req
                .client_ip()
                .map_or_else(|| "-".to_owned(), |ip| ip.to_string());
            // The address first: one over its limit touches no username (nor the store).
            let ip_key = format!("{}|ip:{ip}", req.path());
            let mut retry = match self.check(&ip_key, now).await {
                Ok(retry) => retry,
                Err(e) => return store_failed(&e),
            };
            let user_key = match self.username_key(&req) {
                Ok(key) => key,
                Err(res) => return res,
            };
            if let (None, Some(key)) = (retry, &user_key) {
                match self.check(key, now).await {
                    Ok(r) => retry = r,
                    Err(e) => return store_failed(&e),
                }
            }
            if let Some(after) = retry {
                emit(
                    "auth.rate_limit.exceeded",
                    &req,
                    current_user_id().as_deref(),
                );
                return too_many(after);
            }
            let Some(user_key) = user_key else {
                return next.run(req).await;
            };
            let (res, refused) = noting_csrf_refusal(next.run(req)).await;
            if refused {
                // No password was checked: the account's count is given back (the address's
                // stays). A store that fails here leaves the attempt counted.
                if let Err(e) = self.store.undo(&user_key, now / self.window).await {
                    tracing::warn!(error = %e, "rate limit store failed to take back an attempt");
                }
            }
            res
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
        // Sliding: the third attempt waits until half the previous window has slid out.
        for (sliding, third_over) in [(false, None), (true, Some(30))] {
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
