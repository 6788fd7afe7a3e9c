//! Where the login rate limit counts attempts: the [`RateLimitStore`] trait, [`MemoryStore`]
//! (one process; the default) and `RedisRateLimitStore` (feature `redis`, shared by every
//! instance).

use std::collections::HashMap;
use std::sync::Mutex;
#[cfg(feature = "redis")]
use std::time::Duration;

use crate::future::BoxFuture;
use crate::http::BoxError;

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
        let conn = super::redis_conn::connect(url).await?;
        Ok(RedisRateLimitStore {
            conn,
            prefix: "chirp:ratelimit:".to_owned(),
            timeout: super::redis_conn::TIMEOUT,
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
                super::redis_conn::within(self.timeout, pipe.query_async(&mut conn)).await?;
            Ok(Counts {
                current: now,
                previous: if window == 0 { 0 } else { before.unwrap_or(0) },
            })
        })
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
}
