//! [`SessionConfig`]: the documented Python options, with Rust types, plus the extras
//! (timeouts, key rotation, save policy, digest, clock).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::signer::Digest;
use crate::http::SameSite;

/// Where the session middleware reads the time: the system clock, or a [`ManualClock`] in
/// tests (no sleeping).
pub trait Clock: Send + Sync + 'static {
    /// Seconds since the Unix epoch.
    fn now(&self) -> u64;
}

/// The system clock, read at second granularity (while a server runs, through the `Date`
/// ticker it already keeps, so stamping a cookie costs no clock call).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// While a server runs, the second its `Date` ticker last stored (no clock call).
    fn now(&self) -> u64 {
        crate::clock::unix_seconds()
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use chirp::sessions::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(60);
/// assert_eq!(clock.now(), 1_060);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now` (seconds since the epoch).
    pub fn new(now: u64) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(now)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now: u64) {
        self.0.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// When the session cookie is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveMode {
    /// On every response (sliding expiry), as the Python framework does.
    #[default]
    Always,
    /// Only when the handler changed the session (or regenerated it).
    OnChange,
}

/// Session settings. Field names follow the Python `SessionConfig`.
///
/// ```
/// use chirp::sessions::SessionConfig;
/// use chirp::SameSite;
/// use std::time::Duration;
///
/// let config = SessionConfig {
///     secure: true,
///     samesite: SameSite::Strict,
///     idle_timeout: Some(Duration::from_secs(30 * 60)),
///     ..SessionConfig::new("a-long-random-secret-from-the-environment")
/// };
/// assert_eq!(config.cookie_name, "chirp_session");
/// assert_eq!(config.max_age, Duration::from_secs(86400));
/// ```
#[derive(Clone)]
pub struct SessionConfig {
    /// The signing secret (required; 32 bytes or more of randomness is advised).
    pub secret_key: String,
    /// Cookie name. Default `chirp_session`.
    pub cookie_name: String,
    /// Cookie lifetime, also enforced on the server from the signed timestamp. Default 86400 s.
    pub max_age: Duration,
    /// Cookie `Path`. Default `/`.
    pub path: String,
    /// Cookie `Domain`. Default none (this host only).
    pub domain: Option<String>,
    /// Cookie `Secure`. Default false.
    pub secure: bool,
    /// Cookie `HttpOnly`. Default true.
    pub httponly: bool,
    /// Cookie `SameSite`. Default Lax.
    pub samesite: SameSite,
    /// A session unused for longer than this loads empty; zero expires every session at
    /// once. Default off. While a timeout is set, the session holds the reserved keys
    /// [`created_at_key`](Self::created_at_key) and [`last_seen_at_key`](Self::last_seen_at_key),
    /// as the Python framework's does (they are taken out before the handler sees the session,
    /// and written back on save).
    pub idle_timeout: Option<Duration>,
    /// A session older than this (since it was first created) loads empty; zero expires every
    /// session at once. Default off.
    pub absolute_timeout: Option<Duration>,
    /// Reserved session key holding the creation time (Unix seconds) while a timeout is set.
    /// Default `__created_at`, the Python framework's.
    pub created_at_key: String,
    /// Reserved session key holding the time of the last request (Unix seconds) while a
    /// timeout is set. Default `__last_seen_at`, the Python framework's.
    pub last_seen_at_key: String,
    /// Older secrets still accepted when verifying (key rotation); cookies are always
    /// re-signed with `secret_key`.
    pub fallback_secret_keys: Vec<String>,
    /// When to send the cookie. Default [`SaveMode::Always`].
    pub save_mode: SaveMode,
    /// HMAC digest. Default SHA-256; SHA-1 to share cookies with a Python app that uses
    /// itsdangerous' default.
    pub digest: Digest,
    /// itsdangerous salt. Default `itsdangerous`.
    pub salt: String,
    /// Largest `Set-Cookie` value sent; a larger session is an error (500). Default 4096,
    /// what browsers keep.
    pub max_cookie_size: usize,
    /// The clock. Default the system clock.
    pub clock: Arc<dyn Clock>,
}

impl SessionConfig {
    /// The documented defaults with this secret.
    pub fn new(secret_key: impl Into<String>) -> SessionConfig {
        SessionConfig {
            secret_key: secret_key.into(),
            ..SessionConfig::default()
        }
    }
}

impl Default for SessionConfig {
    /// The documented defaults, with an empty secret (which `SessionMiddleware::new` refuses).
    fn default() -> Self {
        SessionConfig {
            secret_key: String::new(),
            cookie_name: "chirp_session".to_owned(),
            max_age: Duration::from_secs(86400),
            path: "/".to_owned(),
            domain: None,
            secure: false,
            httponly: true,
            samesite: SameSite::Lax,
            idle_timeout: None,
            absolute_timeout: None,
            created_at_key: "__created_at".to_owned(),
            last_seen_at_key: "__last_seen_at".to_owned(),
            fallback_secret_keys: Vec::new(),
            save_mode: SaveMode::Always,
            digest: Digest::Sha256,
            salt: "itsdangerous".to_owned(),
            max_cookie_size: 4096,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionConfig")
            .field("secret_key", &"<hidden>")
            .field("cookie_name", &self.cookie_name)
            .field("max_age", &self.max_age)
            .field("path", &self.path)
            .field("domain", &self.domain)
            .field("secure", &self.secure)
            .field("httponly", &self.httponly)
            .field("samesite", &self.samesite)
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_timeout", &self.absolute_timeout)
            .field("created_at_key", &self.created_at_key)
            .field("last_seen_at_key", &self.last_seen_at_key)
            .field(
                "fallback_secret_keys",
                &format_args!("<{} hidden>", self.fallback_secret_keys.len()),
            )
            .field("save_mode", &self.save_mode)
            .field("digest", &self.digest)
            .field("salt", &self.salt)
            .field("max_cookie_size", &self.max_cookie_size)
            .finish_non_exhaustive()
    }
}
