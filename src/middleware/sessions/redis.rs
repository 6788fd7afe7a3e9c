//! [`RedisStore`]: sessions kept in Redis (feature `redis`), for apps served by several
//! processes that must share more than a cookie can hold, or revoke sessions on the server.
//!
//! The cookie holds only a random 128-bit id, **signed** with the app's secret (the same
//! itsdangerous signer as the cookie store), so a forged or guessed id is refused before any
//! Redis command. The data is the session's JSON under `chirp:session:<id>` (prefix
//! configurable), with a TTL of `max_age` set on every write and refreshed on every read
//! (`GETEX ... EX`, one round trip for a request that changes nothing). One multiplexed,
//! auto-reconnecting connection per store (the `redis` crate's `ConnectionManager`).
//!
//! When Redis is down or slower than the store's timeout (default 1 s), the request is
//! answered `503 session store unavailable` with `Retry-After`, and logged: never an empty
//! session that would look like a logout, never a hang. Requests succeed again as soon as
//! Redis is back; nothing needs a restart.

use std::time::Duration;

use redis::aio::ConnectionManager;
use serde_json::{Map, Value};

use super::config::SessionConfig;
use super::signer::Signer;
use super::store::{SessionRecord, SessionStore};
use crate::error::{Error, HttpError};
use crate::http::StatusCode;

/// The session store in Redis. See the [module docs](self).
///
/// ```no_run
/// use chirp::middleware::sessions::{RedisStore, SessionConfig, SessionMiddleware};
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
    ttl: u64,
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

/// The session key of the signed cookie's payload.
const ID: &str = "id";

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
        let client = redis::Client::open(url)
            .map_err(|e| crate::ConfigurationError::new(format!("Redis URL {url:?}: {e}")))?;
        let timeout = Duration::from_secs(1);
        // Reconnects are retried quickly and briefly (a request waits at most `timeout`
        // anyway): while Redis is down requests get 503, and the first one after it is back
        // reconnects.
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(2)
            .set_factor(50)
            .set_max_delay(500)
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let conn = tokio::time::timeout(
            timeout * 5,
            ConnectionManager::new_with_config(client, manager),
        )
        .await
        .map_err(|_| Error::other(format!("Redis at {url} did not answer within 5 s")))?
        .map_err(|e| Error::other(format!("Redis at {url}: {e}")))?;
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
            timeout,
        })
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
        let (map, _) = self.signer.loads(cookie_value).ok()?;
        let id = map.get(ID)?.as_str()?;
        // 128 bits in hex: anything else was never made here.
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, Error> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, cookie_value: &str) -> Result<Option<SessionRecord>, Error> {
        self.load_into(cookie_value, Map::new()).await
    }

    async fn load_into(
        &self,
        cookie_value: &str,
        mut data: Map<String, Value>,
    ) -> Result<Option<SessionRecord>, Error> {
        let Some(id) = self.id_of(cookie_value) else {
            tracing::debug!("session id cookie refused (bad signature); starting an empty session");
            return Ok(None);
        };
        // One round trip: the data, and the TTL refreshed as it is read.
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.key(&id)).arg("EX").arg(self.ttl);
        let Some(json): Option<String> = self.run(cmd).await? else {
            return Ok(None); // expired, revoked, or logged out
        };
        match serde_json::from_str::<Map<String, Value>>(&json) {
            Ok(map) => {
                data.extend(map);
                // Freshness is Redis's TTL: a record that is still there is within max_age.
                let now = crate::clock::unix_seconds();
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

    async fn save(
        &self,
        data: &Map<String, Value>,
        now: u64,
        previous: Option<&str>,
        out: &mut String,
    ) -> Result<(), Error> {
        let id = match previous.and_then(|p| self.id_of(p)) {
            Some(id) => id,
            None => crate::middleware::csrf::random_hex(16),
        };
        // An empty session (after logout, say) is not kept: its id names nothing.
        if !data.is_empty() {
            let json = serde_json::to_string(data)?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(self.key(&id)).arg(json).arg("EX").arg(self.ttl);
            self.run::<()>(cmd).await?;
        }
        let mut payload = Map::new();
        payload.insert(ID.to_owned(), Value::String(id));
        self.signer.dumps_into(&payload, now, out);
        Ok(())
    }

    async fn regenerate(&self, previous: &str) {
        if let Some(id) = self.id_of(previous) {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(self.key(&id));
            if let Err(e) = self.run::<()>(cmd).await {
                tracing::error!(error = %e, "could not delete the old session in Redis");
            }
        }
    }
}
