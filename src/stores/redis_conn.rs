//! The one Redis connection each Redis-backed store holds (feature `redis`): how it is made
//! and how every command is bounded in time, shared by the session store
//! ([`RedisStore`](super::RedisStore)) and the login rate limit's
//! [`RedisRateLimitStore`](super::RedisRateLimitStore).

use std::future::Future;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::error::{ConfigurationError, Error};

/// How long a command may take by default before the request is refused (`503`).
pub(crate) const TIMEOUT: Duration = Duration::from_secs(1);

/// Connects to the Redis at `url`: one multiplexed connection that reconnects by itself.
///
/// A lost connection is re-made once per attempt, without retries: while Redis is down
/// (connection refused) a request is refused at once rather than after its timeout, and each
/// later request tries again, so the first one after Redis is back reconnects. The connection
/// has no response timeout of its own: every command runs under its store's timeout
/// ([`within`]), which also bounds a Redis that accepts and never answers.
pub(crate) async fn connect(url: &str) -> Result<ConnectionManager, Error> {
    let client = redis::Client::open(url)
        .map_err(|e| ConfigurationError::new(format!("Redis URL {url:?}: {e}")))?;
    let manager = redis::aio::ConnectionManagerConfig::new()
        .set_number_of_retries(0)
        .set_connection_timeout(TIMEOUT);
    tokio::time::timeout(
        TIMEOUT * 5,
        ConnectionManager::new_with_config(client, manager),
    )
    .await
    .map_err(|_| {
        Error::other(format!(
            "Redis at {url} did not answer within 5 s (start Redis first)"
        ))
    })?
    .map_err(|e| Error::other(format!("Redis at {url}: {e}")))
}

/// `query` (a command or pipeline on its way), given at most `timeout`; the error says what
/// went wrong, for the store to log and answer.
pub(crate) async fn within<T>(
    timeout: Duration,
    query: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, query).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}
