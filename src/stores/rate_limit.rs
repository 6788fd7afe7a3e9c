//! Where the login rate limit counts attempts: the [`RateLimitStore`] trait, [`MemoryStore`]
//! (one process; the default) and `RedisRateLimitStore` (feature `redis`, shared by every
//! instance).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
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

    /// Takes back one attempt that [`hit`](RateLimitStore::hit) counted under `key` in the
    /// window `window_index`: the limiter calls it for a request refused before any password
    /// was checked (over the limit already, or refused by the CSRF middleware), so that such
    /// requests cannot lock an account out. Never below zero.
    ///
    /// The default does nothing: with a store that does not implement it, those requests
    /// stay counted (the behaviour before `undo` existed).
    fn undo<'a>(&'a self, key: &'a str, window_index: u64) -> BoxFuture<'a, Result<(), BoxError>> {
        let _ = (key, window_index);
        Box::pin(std::future::ready(Ok(())))
    }
}

/// No entry: the end of a shard's recency list.
const NIL: u32 = u32::MAX;

/// Counts in this process's memory, at most `max_keys` keys (default 100 000), each key held
/// in a fixed 16-byte digest whatever its length (keyed with random keys, so a client cannot
/// aim at collisions).
///
/// Every operation costs the same however many keys are held: keys are spread over up to 16
/// shards, each behind its own lock, each a hash map with a recency list. A key not counted
/// for two windows is dropped (at most two such per operation, oldest first); when a shard is
/// full, its least recently counted key makes room. Nothing is ever scanned.
///
/// Sizing: the store forgets the least recently counted keys first when full, so make it
/// larger than the number of distinct keys (addresses and usernames) two windows see. One
/// address adds at most `limit` usernames per window (past its own limit it adds nothing), so
/// filling 100 000 keys in two windows takes thousands of addresses. An entry takes about
/// 100 bytes: the default holds at most ~10 MB.
#[derive(Debug)]
pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    keys: (RandomState, RandomState),
    most_touched: AtomicUsize,
}

#[derive(Debug)]
struct Shard {
    map: HashMap<u128, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// The most recently counted key.
    head: u32,
    /// The least recently counted key: the first to go.
    tail: u32,
    capacity: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    key: u128,
    window: u64,
    counts: Counts,
    prev: u32,
    next: u32,
}

impl Shard {
    fn new(capacity: usize) -> Shard {
        Shard {
            map: HashMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            capacity: capacity.max(1),
        }
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn push_front(&mut self, i: u32) {
        let old = self.head;
        self.slots[i as usize].prev = NIL;
        self.slots[i as usize].next = old;
        match old {
            NIL => self.tail = i,
            o => self.slots[o as usize].prev = i,
        }
        self.head = i;
    }

    fn remove(&mut self, i: u32) {
        self.unlink(i);
        self.map.remove(&self.slots[i as usize].key);
        self.free.push(i);
    }

    /// Counts one attempt; returns the counts and how many entries it touched.
    fn hit(&mut self, key: u128, window: u64) -> (Counts, usize) {
        let mut touched = 1;
        // Keys not counted for two windows count no more: drop them, oldest first.
        for _ in 0..2 {
            let tail = self.tail;
            if tail == NIL || self.slots[tail as usize].window.saturating_add(1) >= window {
                break;
            }
            self.remove(tail);
            touched += 1;
        }
        let i = match self.map.get(&key) {
            Some(&i) => {
                self.unlink(i);
                i
            }
            None => {
                if self.map.len() >= self.capacity && self.tail != NIL {
                    self.remove(self.tail);
                    touched += 1;
                }
                let slot = Slot {
                    key,
                    window,
                    counts: Counts::default(),
                    prev: NIL,
                    next: NIL,
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = slot;
                        i
                    }
                    None => {
                        self.slots.push(slot);
                        (self.slots.len() - 1) as u32
                    }
                };
                self.map.insert(key, i);
                i
            }
        };
        self.push_front(i);
        let slot = &mut self.slots[i as usize];
        if slot.window != window {
            let counts = &mut slot.counts;
            counts.previous = if slot.window.saturating_add(1) == window {
                counts.current
            } else {
                0
            };
            counts.current = 0;
            slot.window = window;
        }
        slot.counts.current += 1;
        (slot.counts, touched)
    }

    fn undo(&mut self, key: u128, window: u64) {
        let Some(&i) = self.map.get(&key) else {
            return;
        };
        let slot = &mut self.slots[i as usize];
        if slot.window == window {
            slot.counts.current = slot.counts.current.saturating_sub(1);
        } else if slot.window == window.saturating_add(1) {
            slot.counts.previous = slot.counts.previous.saturating_sub(1);
        }
        if slot.counts == Counts::default() {
            self.remove(i);
        }
    }
}

impl MemoryStore {
    /// A store of at most `max_keys` keys (at least 1).
    pub fn new(max_keys: usize) -> MemoryStore {
        let max_keys = max_keys.max(1);
        // Small stores are one shard (exactly `max_keys`); large ones up to 16, so that
        // concurrent logins seldom wait on one another.
        let n = (max_keys / 1024).clamp(1, 16).next_power_of_two().min(16);
        let shards = (0..n)
            .map(|i| Mutex::new(Shard::new(max_keys / n + usize::from(i < max_keys % n))))
            .collect();
        MemoryStore {
            shards,
            keys: (RandomState::new(), RandomState::new()),
            most_touched: AtomicUsize::new(0),
        }
    }

    /// How many keys it holds now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).map.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries one `hit` has touched (its own, plus the ones it dropped): a bound
    /// that does not grow with the number of keys. For tests.
    #[doc(hidden)]
    pub fn most_entries_touched_by_one_hit(&self) -> usize {
        self.most_touched.load(Ordering::Relaxed)
    }

    fn shard(&self, key: &str) -> (&Mutex<Shard>, u128) {
        let digest =
            u128::from(self.keys.0.hash_one(key)) << 64 | u128::from(self.keys.1.hash_one(key));
        let shard = &self.shards[(digest as usize) & (self.shards.len() - 1)];
        (shard, digest)
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
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
        let (shard, digest) = self.shard(key);
        let (counts, touched) = lock(shard).hit(digest, window);
        self.most_touched.fetch_max(touched, Ordering::Relaxed);
        Box::pin(std::future::ready(Ok(counts)))
    }

    fn undo<'a>(&'a self, key: &'a str, window: u64) -> BoxFuture<'a, Result<(), BoxError>> {
        let (shard, digest) = self.shard(key);
        lock(shard).undo(digest, window);
        Box::pin(std::future::ready(Ok(())))
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

    /// `DECR` of the window's key, only while it is above zero (one `EVAL`): a key that
    /// expired meanwhile is not brought back.
    fn undo<'a>(&'a self, key: &'a str, window: u64) -> BoxFuture<'a, Result<(), BoxError>> {
        Box::pin(async move {
            const UNDO: &str = "local n = tonumber(redis.call('GET', KEYS[1]) or '0') \
                if n > 0 then redis.call('DECR', KEYS[1]) end return 0";
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(UNDO)
                .arg(1)
                .arg(format!("{}{key}:{window}", self.prefix));
            let mut conn = self.conn.clone();
            let _: i64 =
                super::redis_conn::within(self.timeout, cmd.query_async(&mut conn)).await?;
            Ok(())
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
        assert!(store.most_entries_touched_by_one_hit() <= 2);
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

    #[tokio::test]
    async fn undo_takes_back_one_attempt_and_forgets_empty_keys() {
        let store = MemoryStore::new(10);
        store.hit("a", 1, 60).await.unwrap();
        store.hit("a", 1, 60).await.unwrap();
        store.undo("a", 1).await.unwrap();
        assert_eq!(store.hit("a", 1, 60).await.unwrap().current, 2);
        // Undone after the window rolled over: taken from "previous".
        store.hit("a", 2, 60).await.unwrap();
        store.undo("a", 1).await.unwrap();
        assert_eq!(
            store.hit("a", 2, 60).await.unwrap(),
            Counts {
                current: 2,
                previous: 1
            }
        );
        store.hit("b", 2, 60).await.unwrap();
        store.undo("b", 2).await.unwrap();
        store.undo("b", 2).await.unwrap();
        assert_eq!(store.len(), 1, "b is gone, never below zero");
    }

    #[tokio::test]
    async fn stale_keys_expire_and_the_least_recent_goes_first() {
        let store = MemoryStore::new(3);
        for k in ["a", "b", "c"] {
            store.hit(k, 1, 60).await.unwrap();
        }
        store.hit("a", 1, 60).await.unwrap(); // a is the most recent now
        store.hit("d", 1, 60).await.unwrap(); // b makes room
        assert_eq!(
            store.hit("b", 1, 60).await.unwrap().current,
            1,
            "b was forgotten"
        );
        assert_eq!(
            store.hit("a", 1, 60).await.unwrap().current,
            3,
            "a was kept"
        );
        // Two windows later, stale keys go two at a time as others are counted.
        store.hit("x", 4, 60).await.unwrap();
        store.hit("y", 4, 60).await.unwrap();
        assert_eq!(store.len(), 2);
        assert!(store.most_entries_touched_by_one_hit() <= 3);
        // A large store is sharded, and still holds at most its bound.
        let store = MemoryStore::new(20_000);
        assert_eq!(store.shards.len(), 16);
        for i in 0..30_000 {
            store.hit(&format!("k{i}"), 1, 60).await.unwrap();
        }
        assert!(
            store.len() <= 20_000 && store.len() > 19_000,
            "{}",
            store.len()
        );
    }
}
