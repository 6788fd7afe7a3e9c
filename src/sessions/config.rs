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

/// The default [`SessionConfig::absolute_timeout`]: 7 days.
pub const DEFAULT_ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// When the session cookie is sent.
///
/// A cookie that is not re-sent does not slide: the browser forgets it `max_age` after the
/// last `Set-Cookie`, and with an [`idle_timeout`](SessionConfig::idle_timeout) the server
/// refuses it once its last-seen stamp is older than that, however active its user. Re-sending
/// it on every response keeps both sliding, at the price of a `Set-Cookie` (a few hundred
/// bytes) and an HMAC on every response, most of them for requests that changed nothing.
/// The default, [`SaveMode::Refresh`], sends it when it changed, and otherwise only once the
/// copy the browser holds is a quarter of its lifetime old.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveMode {
    /// On every response, as the Python framework does: the cookie's `Max-Age` and the idle
    /// stamp slide to the second.
    Always,
    /// Only when the handler changed the session (or regenerated it). Nothing slides: a
    /// session read but never written ends `max_age` (or `idle_timeout`) after its last change.
    OnChange,
    /// When the handler changed the session (or regenerated it), and otherwise when the
    /// cookie was last sent more than a quarter of its lifetime ago (the shorter of
    /// [`idle_timeout`](SessionConfig::idle_timeout) and [`max_age`](SessionConfig::max_age));
    /// the default. An active user's session never lapses, and most read-only responses carry
    /// no cookie: with a 30-minute idle timeout, at most one refresh per 7.5 minutes. The cost
    /// is precision: a session left alone ends between three quarters of the idle timeout and
    /// all of it after its last request, not exactly at it.
    ///
    /// When the cookie does not tell when it was last sent (the cookie store with an absolute
    /// timeout and no idle timeout, the defaults: its timestamp is the session's creation, and
    /// nothing else is stamped, to keep it small), it is sent on every response, as with
    /// [`SaveMode::Always`].
    #[default]
    Refresh,
}

impl SaveMode {
    /// The share of a cookie's lifetime after which [`SaveMode::Refresh`] sends it again.
    pub(crate) const REFRESH_DIVISOR: u64 = 4;
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
/// assert_eq!(config.absolute_timeout, Some(Duration::from_secs(7 * 86400)));
/// ```
#[derive(Clone)]
pub struct SessionConfig {
    /// The signing secret (required; 32 bytes or more of randomness is advised).
    pub secret_key: String,
    /// Cookie name. Default `chirp_session`.
    pub cookie_name: String,
    /// The cookie's `Max-Age`, renewed with every response that sends the cookie: the browser
    /// forgets a session not visited for this long. Default 86400 s.
    ///
    /// With the cookie store and an [`absolute_timeout`](Self::absolute_timeout) (the
    /// default), that is all it does: the cookie's signed timestamp is the session's creation
    /// and the server checks the absolute timeout against it, so a copy of the cookie (which no
    /// browser forgets) is accepted until the absolute deadline, not `max_age` after its last
    /// use; set [`idle_timeout`](Self::idle_timeout) for an idle limit the server enforces.
    /// Without an absolute timeout, or with a server-side store, the server also refuses a
    /// cookie (or a session id) last signed (written) more than `max_age` ago.
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
    /// A session unused for longer than this loads empty, checked by the server; zero
    /// expires every session at once. Default off. It keeps the time of the last request in
    /// the reserved key [`last_seen_at_key`](Self::last_seen_at_key), as the Python framework
    /// does (taken out before the handler sees the session, and written back on save): with
    /// the cookie store, some 30 bytes more in every cookie.
    pub idle_timeout: Option<Duration>,
    /// A session older than this, counted from its creation (not from the cookie's last
    /// signature), loads empty; zero expires every session at once. Default **7 days**
    /// ([`DEFAULT_ABSOLUTE_TIMEOUT`]); `None` turns it off.
    ///
    /// With the cookie store the creation time is the cookie's itsdangerous timestamp: a new
    /// or regenerated session is signed at its creation, and every response re-signs it with
    /// that same timestamp, so the check costs no byte in the cookie. The server then refuses
    /// a cookie whose timestamp is older than this, and [`max_age`](Self::max_age) is only
    /// the cookie's `Max-Age`. A cookie that carries an earlier
    /// [`created_at_key`](Self::created_at_key) (a Python app's, or one chirp wrote before)
    /// counts from that. (A Python app sharing the cookies reads the timestamp as the Python
    /// framework does, against its `max_age`: give it a `max_age` of at least this.) With a
    /// server-side store the creation time is kept in the session's data, under
    /// `created_at_key`.
    ///
    /// Why on by default: without it the cookie is re-signed afresh on every response
    /// (sliding `max_age`), so a copied cookie replayed once per `max_age` would live for
    /// ever, logout or not (a cookie store cannot revoke a copy). Seven days bounds that copy
    /// to a week after the login (`login()` and `logout()` regenerate the session, which
    /// restarts the count), while a user who comes back daily signs in once a week rather than
    /// once a day, as `max_age` (1 day) would have them do.
    pub absolute_timeout: Option<Duration>,
    /// Reserved session key holding the creation time (Unix seconds), read while a timeout is
    /// set; written by a server-side store, or by the cookie store without an absolute timeout
    /// (with one, the creation time is the cookie's timestamp, and a cookie keeps this key
    /// only when it came with it). Default `__created_at`, the Python framework's.
    pub created_at_key: String,
    /// Reserved session key holding the time of the last request (Unix seconds), read while
    /// a timeout is set; written by the cookie store for an idle timeout (or when the cookie
    /// came with it), by a server-side store while a timeout is set. Default
    /// `__last_seen_at`, the Python framework's.
    pub last_seen_at_key: String,
    /// Older secrets still accepted when verifying (key rotation); cookies are always
    /// re-signed with `secret_key`.
    pub fallback_secret_keys: Vec<String>,
    /// When to send the cookie. Default [`SaveMode::Refresh`]: when changed, or a quarter of
    /// its lifetime after it was last sent (see [`SaveMode`] for why).
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
            absolute_timeout: Some(DEFAULT_ABSOLUTE_TIMEOUT),
            created_at_key: "__created_at".to_owned(),
            last_seen_at_key: "__last_seen_at".to_owned(),
            fallback_secret_keys: Vec::new(),
            save_mode: SaveMode::Refresh,
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
