//! [`RedisStore`]: sessions kept in Redis (feature `redis`); the details are on the type.

use std::time::Duration;

use redis::aio::ConnectionManager;

use super::redis_conn::within;
use super::session::{Internal, SessionRecord, SessionStore};
use crate::error::{Error, HttpError};
use crate::http::StatusCode;
use crate::security::random_hex;
use crate::sessions::{Clock, SessionConfig, SessionData, Signer};

/// Sessions kept in Redis (feature `redis`), for apps served by several
/// processes that must share more than a cookie can hold, or revoke sessions on the server.
///
/// The cookie holds only a random 128-bit id, **signed** with the app's secret (the same
/// itsdangerous signer as the cookie store), so a forged or guessed id is refused before any
/// Redis command. The data is the session's JSON under `chirp:session:<id>` (prefix
/// configurable), with a TTL of `max_age` set on every write and refreshed on every read
/// (`GETEX ... EX`, one round trip for a request that changes nothing). One multiplexed,
/// auto-reconnecting connection per store (the `redis` crate's `ConnectionManager`).
///
/// **Revocation.** A signed-in session's id is also kept in a per-user index,
/// `<prefix>user:<user id>` (a set), written only when the session's user changes (login,
/// logout), so an ordinary request costs nothing more. [`RedisStore::revoke_user`] deletes
/// every session of a user at once ("log out everywhere"); a request already in flight on a
/// revoked session cannot bring it back (its write is `SET ... XX`, only if the key still
/// exists). The index has no TTL of its own: ids of sessions that expired are pruned from it
/// at the user's next login, and logout removes its own id, so it never outgrows a user's live
/// sessions by more than those that expired since their last login. The cookie's signed
/// payload names the user id (`{"id": ..., "u": ...}`) so that logout finds the index without
/// a read.
///
/// **Timeouts.** `idle_timeout` and `absolute_timeout` are enforced by the session middleware,
/// from the session's `__created_at` / `__last_seen_at` keys, kept in the data in Redis (the
/// cookie store keeps the creation time in its cookie's signed timestamp instead; here the
/// cookie only names the session); the store also shortens each key's TTL to what the
/// timeouts leave, so Redis drops an idle or too-old session by itself.
///
/// The scripts used at login and by `revoke_user` name keys they were not passed, so the store
/// suits a single Redis (or a primary with replicas), not Redis Cluster.
///
/// When Redis is down (refused at once) or slower than the store's timeout (default 1 s),
/// the request is answered `503 session store unavailable` with `Retry-After`, and logged:
/// never an empty session that would look like a logout, never a hang. Requests succeed
/// again as soon as Redis is back; nothing needs a restart.
///
///
/// ```no_run
/// use chirp::stores::RedisStore;
/// use chirp::sessions::SessionConfig;
/// use chirp::middleware::sessions::SessionMiddleware;
/// # async fn run() -> Result<(), chirp::Error> {
/// let config = SessionConfig::new(std::env::var("SECRET_KEY").unwrap());
/// let store = RedisStore::connect("redis://127.0.0.1:6379", &config).await?;
/// let mut app = chirp::App::new();
/// app.add_middleware(SessionMiddleware::with_store(config, store)?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    signer: Signer,
    prefix: String,
    /// `max_age`, in seconds.
    ttl: u64,
    idle_timeout: Option<Duration>,
    absolute_timeout: Option<Duration>,
    created_at_key: String,
    user_key: String,
    /// The session middleware's clock: a loaded record is as fresh as "now" on it.
    clock: std::sync::Arc<dyn Clock>,
    /// This store's number in [`VERIFIED`].
    store_id: u64,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The keys of the signed cookie's payload: the session id, and the user it is signed in as.
const ID: &str = "id";
const USER: &str = "u";

/// At login: drops from a user's index (KEYS[1]) the ids whose session (ARGV[1] .. id) is
/// gone, so the index holds live sessions only.
const PRUNE: &str = "local live = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[1] .. id) == 1 then live = live + 1
  else redis.call('SREM', KEYS[1], id) end
end
return live";

/// `revoke_user`: deletes every session in the index (KEYS[1]) and the index, atomically, so
/// a login racing it is either revoked or made after it. Returns how many sessions were live.
const REVOKE: &str = "local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  n = n + redis.call('DEL', ARGV[1] .. id)
end
redis.call('DEL', KEYS[1])
return n";

/// A session's user id as the index names it: a JSON string as is, a number in its JSON
/// form (`login` stores `AuthUser::id()`, a string).
fn user_of(data: &SessionData, key: &str) -> Option<String> {
    let json = data.get_json(key)?;
    match json.as_bytes().first()? {
        b'"' => serde_json::from_str(json).ok(),
        b'-' | b'0'..=b'9' => Some(json.to_owned()),
        _ => None,
    }
}

/// What a valid cookie names.
#[derive(Clone)]
struct Named {
    id: String,
    user: Option<String>,
}

/// Tells stores apart in [`VERIFIED`] (clones of a store share its number, and its keys).
static NEXT_STORE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The cookie this thread last verified, for which store, and what it named: a request
    /// verifies its cookie when its session is loaded and needs what it names again when the
    /// session is saved, and one HMAC is then enough (the save, usually on the same thread,
    /// finds it here; elsewhere it verifies again).
    static VERIFIED: std::cell::RefCell<(u64, String, Option<Named>)> =
        const { std::cell::RefCell::new((0, String::new(), None)) };
}

fn unavailable(e: impl std::fmt::Display) -> Error {
    tracing::error!(error = %e, "Redis session store unavailable");
    HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "session store unavailable").into()
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://host:port/db`), signing ids with `config`'s
    /// secret (and its fallbacks) and expiring sessions after `config.max_age` without use.
    ///
    /// # Errors
    /// A malformed URL is a [`ConfigurationError`](crate::ConfigurationError); a Redis that
    /// cannot be reached within the timeout is an error too (start Redis first).
    pub async fn connect(url: &str, config: &SessionConfig) -> Result<RedisStore, Error> {
        let conn = super::redis_conn::connect(url).await?;
        Ok(RedisStore {
            conn,
            signer: Signer::new(
                &config.secret_key,
                &config.fallback_secret_keys,
                config.digest,
                &config.salt,
            ),
            prefix: "chirp:session:".to_owned(),
            ttl: config.max_age.as_secs().max(1),
            idle_timeout: config.idle_timeout,
            absolute_timeout: config.absolute_timeout,
            created_at_key: config.created_at_key.clone(),
            user_key: "user_id".to_owned(),
            clock: config.clock.clone(),
            store_id: NEXT_STORE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            timeout: super::redis_conn::TIMEOUT,
        })
    }

    /// The session key holding the signed-in user's id, for the revocation index (default
    /// `user_id`, the auth middleware's; set it when
    /// [`AuthConfig::session_key`](crate::middleware::auth::AuthConfig::session_key) differs).
    pub fn user_key(mut self, key: impl Into<String>) -> RedisStore {
        self.user_key = key.into();
        self
    }

    /// The Redis key of `user_id`'s session index.
    pub fn user_index_key(&self, user_id: &str) -> String {
        format!("{}user:{user_id}", self.prefix)
    }

    /// Logs `user_id` out everywhere: deletes every session signed in as that user, on every
    /// instance sharing this Redis, and returns how many there were. The next request with
    /// any of their cookies gets an empty session.
    ///
    /// ```no_run
    /// # async fn run(store: chirp::stores::RedisStore) -> Result<(), chirp::Error> {
    /// // After a password change, say:
    /// let revoked = store.revoke_user("42").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// An `HttpError` 503 when Redis cannot answer within the timeout (nothing was revoked
    /// then, or everything: the script is atomic).
    pub async fn revoke_user(&self, user_id: &str) -> Result<u64, Error> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REVOKE)
            .arg(1)
            .arg(self.user_index_key(user_id))
            .arg(&self.prefix);
        let revoked: u64 = self.run(cmd).await?;
        tracing::info!(user_id, revoked, "sessions revoked");
        Ok(revoked)
    }

    /// The TTL a session written at `now` gets: `max_age`, shortened to what the idle and
    /// absolute timeouts leave (at least a second).
    fn ttl_for(&self, data: &SessionData, now: u64) -> u64 {
        let mut ttl = self.ttl;
        if let Some(idle) = self.idle_timeout {
            ttl = ttl.min(idle.as_secs());
        }
        if let Some(absolute) = self.absolute_timeout {
            if let Some(created) = data.get::<f64>(&self.created_at_key) {
                let left = created + absolute.as_secs_f64() - now as f64;
                ttl = ttl.min(left.ceil().max(0.0) as u64);
            }
        }
        ttl.max(1)
    }

    /// The key prefix (default `chirp:session:`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisStore {
        self.prefix = prefix.into();
        self
    }

    /// How long a Redis command may take before the request gets `503` (default 1 s).
    pub fn timeout(mut self, timeout: Duration) -> RedisStore {
        self.timeout = timeout;
        self
    }

    /// The Redis key of session `id`.
    pub fn key(&self, id: &str) -> String {
        format!("{}{id}", self.prefix)
    }

    /// The id a cookie names, if its signature holds (no Redis command otherwise).
    pub fn id_of(&self, cookie_value: &str) -> Option<String> {
        self.named(cookie_value).map(|n| n.id)
    }

    fn named(&self, cookie_value: &str) -> Option<Named> {
        let known = VERIFIED.with(|v| {
            let v = v.borrow();
            (v.0 == self.store_id && v.1 == cookie_value).then(|| v.2.clone())
        });
        if let Some(named) = known {
            return named;
        }
        let named = self.verify(cookie_value);
        VERIFIED.with(|v| {
            let mut v = v.borrow_mut();
            v.0 = self.store_id;
            v.1.clear();
            v.1.push_str(cookie_value);
            v.2.clone_from(&named);
        });
        named
    }

    /// Checks the cookie's signature and reads what it names.
    fn verify(&self, cookie_value: &str) -> Option<Named> {
        let (map, _) = self.signer.loads(cookie_value).ok()?;
        let id = map.get::<String>(ID)?;
        // 128 bits in hex: anything else was never made here.
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let user = map.get::<String>(USER);
        Some(Named { id, user })
    }

    /// Writes `data` under `id` (or deletes it when empty) and appends the signed cookie to
    /// `out`, in one round trip. `previous`: the cookie of the loaded session `id` names,
    /// which is then only overwritten if it still exists (a revoked session stays revoked);
    /// `old_user`: the user that cookie was signed in as; `forget`: a regenerated session's
    /// old id and user.
    #[allow(clippy::too_many_arguments)]
    async fn write(
        &self,
        data: &SessionData,
        now: u64,
        id: String,
        previous: Option<&str>,
        old_user: Option<String>,
        forget: Option<Named>,
        out: &mut String,
    ) -> Result<(), Error> {
        let existed = previous.is_some();
        let user = match data.is_empty() {
            true => None,
            false => user_of(data, &self.user_key),
        };
        let key = self.key(&id);
        let mut pipe = redis::pipe();
        // Index changes go with the writes in one transaction, so that `revoke_user` sees the
        // session and its index entry together or neither.
        let index_changes = forget.as_ref().is_some_and(|f| f.user.is_some()) || old_user != user;
        if index_changes {
            pipe.atomic();
        }
        if let Some(old) = &forget {
            pipe.cmd("DEL").arg(self.key(&old.id)).ignore();
            if let Some(u) = &old.user {
                pipe.cmd("SREM")
                    .arg(self.user_index_key(u))
                    .arg(&old.id)
                    .ignore();
            }
        }
        if data.is_empty() {
            // An empty session is not kept: its id names nothing.
            if existed {
                pipe.cmd("DEL").arg(&key).ignore();
            }
        } else {
            let json = data.to_json();
            let set = pipe
                .cmd("SET")
                .arg(&key)
                .arg(json)
                .arg("EX")
                .arg(self.ttl_for(data, now));
            if existed {
                set.arg("XX");
            }
            set.ignore();
        }
        if old_user != user {
            if let Some(u) = &old_user {
                pipe.cmd("SREM")
                    .arg(self.user_index_key(u))
                    .arg(&id)
                    .ignore();
            }
            if let Some(u) = &user {
                let index = self.user_index_key(u);
                pipe.cmd("SADD").arg(&index).arg(&id).ignore();
                pipe.cmd("EVAL")
                    .arg(PRUNE)
                    .arg(1)
                    .arg(&index)
                    .arg(&self.prefix)
                    .ignore();
            }
        }
        if !pipe.is_empty() {
            let mut conn = self.conn.clone();
            within(self.timeout, pipe.query_async::<()>(&mut conn))
                .await
                .map_err(unavailable)?;
        }
        match previous {
            // Same id, same user: the cookie would say the same again (its timestamp aside,
            // which nothing reads: Redis's TTL is the session's age), so it is sent as it came
            // and nothing is signed.
            Some(cookie) if old_user == user => out.push_str(cookie),
            _ => {
                let mut payload = SessionData::new();
                payload.insert(ID, id)?;
                if let Some(u) = user {
                    payload.insert(USER, u)?;
                }
                self.signer.dumps_into(&payload, now, out);
            }
        }
        Ok(())
    }

    /// The TTL a read refreshes: `max_age`, or the idle timeout when shorter (the write that
    /// follows, when the session changes, sets the exact one).
    fn read_ttl(&self) -> u64 {
        self.idle_timeout
            .map_or(self.ttl, |idle| self.ttl.min(idle.as_secs()))
            .max(1)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        within(self.timeout, cmd.query_async::<T>(&mut conn))
            .await
            .map_err(unavailable)
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, cookie_value: &str) -> Result<Option<SessionRecord>, Error> {
        self.load_into(cookie_value, SessionData::new(), Internal)
            .await
    }

    async fn save(
        &self,
        data: &SessionData,
        now: u64,
        previous: Option<&str>,
    ) -> Result<String, Error> {
        let mut out = String::new();
        self.save_into(data, now, previous, &mut out, Internal)
            .await?;
        Ok(out)
    }

    async fn save_regenerated(
        &self,
        data: &SessionData,
        now: u64,
        previous: &str,
    ) -> Result<String, Error> {
        let mut out = String::new();
        self.save_regenerated_into(data, now, previous, &mut out, Internal)
            .await?;
        Ok(out)
    }

    async fn load_into(
        &self,
        cookie_value: &str,
        mut data: SessionData,
        _: Internal,
    ) -> Result<Option<SessionRecord>, Error> {
        let Some(id) = self.id_of(cookie_value) else {
            tracing::debug!("session id cookie refused (bad signature); starting an empty session");
            return Ok(None);
        };
        // One round trip: the data, and the TTL refreshed as it is read.
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.key(&id)).arg("EX").arg(self.read_ttl());
        let Some(json): Option<String> = self.run(cmd).await? else {
            return Ok(None); // expired, revoked, or logged out
        };
        match data.fill(json.as_bytes(), |_, _| false) {
            Ok(()) => {
                // Freshness is Redis's TTL: a record that is still there is within max_age.
                let now = self.clock.now();
                Ok(Some(SessionRecord {
                    data,
                    issued_at: now,
                }))
            }
            Err(e) => {
                tracing::error!(error = %e, "session record in Redis is not a JSON object; starting an empty session");
                Ok(None)
            }
        }
    }

    async fn save_into(
        &self,
        data: &SessionData,
        now: u64,
        previous: Option<&str>,
        out: &mut String,
        _: Internal,
    ) -> Result<(), Error> {
        match previous.and_then(|p| self.named(p)) {
            Some(named) => {
                self.write(data, now, named.id, previous, named.user, None, out)
                    .await
            }
            None => {
                let id = random_hex(16);
                self.write(data, now, id, None, None, None, out).await
            }
        }
    }

    async fn save_regenerated_into(
        &self,
        data: &SessionData,
        now: u64,
        previous: &str,
        out: &mut String,
        _: Internal,
    ) -> Result<(), Error> {
        // The old id's deletion and the new id's write, in one round trip.
        let id = random_hex(16);
        let forget = self.named(previous);
        self.write(data, now, id, None, None, forget, out).await
    }

    async fn regenerate(&self, previous: &str) {
        let Some(old) = self.named(previous) else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.atomic().cmd("DEL").arg(self.key(&old.id)).ignore();
        if let Some(u) = &old.user {
            pipe.cmd("SREM")
                .arg(self.user_index_key(u))
                .arg(&old.id)
                .ignore();
        }
        let mut conn = self.conn.clone();
        if let Err(e) = within(self.timeout, pipe.query_async::<()>(&mut conn)).await {
            tracing::error!(error = %e, "could not delete the old session in Redis");
        }
    }
}
