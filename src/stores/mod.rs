//! Stores: where the session middleware keeps sessions and the login rate limit counts
//! attempts. The traits ([`SessionStore`], [`RateLimitStore`]) for stores of your own, and
//! chirp's: [`CookieStore`] (the default session store, all in the signed cookie),
//! [`MemoryStore`] (rate-limit counts in memory, the default), and with the `redis` feature
//! `RedisStore` (server-side sessions) and `RedisRateLimitStore` (counts shared by every
//! instance), both over one Redis connection each.
//!
//! Files: `cookie.rs` and `redis.rs` use `session.rs` (the trait); `redis.rs` and
//! `rate_limit.rs` use `redis_conn.rs`; none uses another way, nor this `mod.rs`.

mod cookie;
mod rate_limit;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_conn;
mod session;

pub use cookie::CookieStore;
#[cfg(feature = "redis")]
pub use rate_limit::RedisRateLimitStore;
pub use rate_limit::{Counts, MemoryStore, RateLimitStore};
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub(crate) use session::Internal;
pub use session::{SessionRecord, SessionStore};
