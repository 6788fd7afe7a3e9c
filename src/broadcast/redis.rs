//! The Redis backend of a hub (feature `redis`), for several instances that share their
//! topics. A publish is one `PUBLISH <prefix><topic>` on a multiplexed connection. Receiving
//! is one pub/sub connection per hub, subscribed once to the pattern `<prefix>*`: every topic
//! comes through it, and a task hands each message to the local topic it names (dropped at
//! once when nobody here listens). One pattern rather than a `SUBSCRIBE` per topic means no
//! bookkeeping as topics come and go, and a reconnection that is a single `PSUBSCRIBE`.
//!
//! A message is never delivered locally by the publisher itself: it comes back through Redis
//! like everyone else's, so each instance sees it exactly once, in Redis's order.
//!
//! When the pub/sub connection is lost (Redis stopped, a network cut, or a `PING` unanswered:
//! a hung server looks connected), the task reconnects by itself, waiting 100 ms after the
//! first failure, doubling up to 5 s; subscribers keep their subscriptions. Messages published
//! while it was away are lost (Redis pub/sub keeps nothing), so once it is subscribed again it
//! puts a resync marker ([`Missed::Reconnected`](super::Missed::Reconnected)) in every topic.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink, PubSubStream};

use super::error::BroadcastError;
use super::topics::{Item, Topics};
use crate::error::ConfigurationError;

/// How long connecting and subscribing may take, at startup and at each reconnection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before reconnecting, doubled after each failed attempt up to
/// [`MAX_BACKOFF`]: quick after a blip, and a down Redis is not hammered.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the pub/sub connection is checked with a `PING` when it is quiet: a server that
/// hangs, or a connection cut without a reset, would otherwise look alive forever.
const HEALTH_CHECK: Duration = Duration::from_secs(5);

/// A hub's connections to Redis. Dropping it (with the hub's last clone) stops the pub/sub
/// task and closes both connections.
pub(crate) struct RedisBackend {
    conn: ConnectionManager,
    prefix: String,
    /// `host:port` for messages: the URL may hold a password.
    address: String,
    timeout: Duration,
    task: tokio::task::AbortHandle,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for RedisBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RedisBackend {
    /// Connects to the Redis at `url` for publishing, subscribes to `<prefix>*`, and starts
    /// the task that delivers into `topics`. Fails when Redis cannot be reached now (the task
    /// only takes care of connections lost later).
    pub(crate) async fn connect(
        url: &str,
        prefix: String,
        timeout: Duration,
        topics: Arc<Topics>,
    ) -> Result<RedisBackend, BroadcastError> {
        // Never the URL in a message: it may hold a password.
        let client = redis::Client::open(url).map_err(|e| {
            ConfigurationError::new(format!("the broadcast hub's Redis URL is malformed: {e}"))
        })?;
        let address = client.get_connection_info().addr.to_string();
        let unreachable = |cause: String| {
            BroadcastError::Unavailable(format!(
                "Redis at {address} could not be reached ({cause}): start Redis, or fix the \
                 URL, before the hub"
            ))
        };
        // Like the session store's: no retries inside the manager, so that a publish while
        // Redis is down fails at once instead of after the timeout; each later publish tries
        // to reconnect, so the first one after Redis is back succeeds.
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(timeout);
        let conn = tokio::time::timeout(
            CONNECT_TIMEOUT,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| unreachable(e.to_string()))?;
        let pattern = pattern_of(&prefix);
        let (sink, stream) = subscribe(&client, &pattern).await.map_err(unreachable)?;
        let task = tokio::spawn(
            Receiving {
                client,
                publisher: conn.clone(),
                pattern,
                prefix: prefix.clone(),
                address: address.clone(),
                timeout,
                topics,
            }
            .run(sink, stream),
        );
        Ok(RedisBackend {
            conn,
            prefix,
            address,
            timeout,
            task: task.abort_handle(),
        })
    }

    /// `PUBLISH <prefix><topic> <payload>`, given at most the hub's timeout.
    pub(crate) async fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), BroadcastError> {
        let mut channel = Vec::with_capacity(self.prefix.len() + topic.len());
        channel.extend_from_slice(self.prefix.as_bytes());
        channel.extend_from_slice(topic.as_bytes());
        let mut conn = self.conn.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(payload);
        // The number of subscribed connections (instances, not subscribers) is of no use here.
        let query = publish.query_async::<redis::Value>(&mut conn);
        let cause = match tokio::time::timeout(self.timeout, query).await {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => format!("{e}; the message was not published"),
            Err(_) => format!(
                "no answer within {:?}; the message was probably not published, though a \
                 server that was only slow may still deliver it",
                self.timeout
            ),
        };
        Err(BroadcastError::Unavailable(format!(
            "Redis at {} is unavailable: {cause}. Retry later, or answer 503 so that the client \
             does",
            self.address
        )))
    }
}

/// The pattern matching every channel under `prefix`, its glob characters escaped (a prefix
/// `app[1]:` matches itself, not `app1:`).
fn pattern_of(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// A new pub/sub connection, subscribed to `pattern`; the error says why not.
async fn subscribe(
    client: &redis::Client,
    pattern: &str,
) -> Result<(PubSubSink, PubSubStream), String> {
    let connecting = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.psubscribe(pattern).await?;
        Ok::<_, redis::RedisError>(pubsub.split())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(parts)) => Ok(parts),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {CONNECT_TIMEOUT:?}")),
    }
}

/// What the pub/sub task needs.
struct Receiving {
    client: redis::Client,
    /// The hub's publishing connection, refreshed after a reconnection (see `run`).
    publisher: ConnectionManager,
    pattern: String,
    prefix: String,
    address: String,
    timeout: Duration,
    topics: Arc<Topics>,
}

impl Receiving {
    /// Delivers what the connection brings; when it is lost, reconnects (with backoff) and
    /// tells every topic to resync. Runs until aborted by the hub's drop.
    async fn run(self, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            let cause = self.pump(&mut sink, &mut stream).await;
            drop((sink, stream));
            tracing::warn!(
                redis = %self.address,
                cause = %cause,
                "broadcast hub lost its Redis pub/sub connection; reconnecting (messages \
                 published until then are lost, subscribers will be told to resync)"
            );
            (sink, stream) = self.reconnect().await;
            self.refresh_publisher().await;
            tracing::info!(
                redis = %self.address,
                "broadcast hub reconnected to Redis; subscribers told to resync"
            );
            // After the PSUBSCRIBE: every message after the marker reaches the subscribers, so
            // a subscriber that reloads its state on the marker misses nothing more.
            self.topics.deliver_all(&Item::Reconnected);
        }
    }

    /// Hands each message to its local topic until the connection is lost; why it was.
    async fn pump(&self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> String {
        let mut health =
            tokio::time::interval_at(tokio::time::Instant::now() + HEALTH_CHECK, HEALTH_CHECK);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut *stream).poll_next(cx));
            tokio::select! {
                message = next => match message {
                    Some(message) => {
                        self.deliver(&message);
                        health.reset();
                    }
                    // The connection's reader ended: closed by the server, or reset.
                    None => return "the connection was closed".to_owned(),
                },
                _ = health.tick() => {
                    // Messages that come meanwhile wait in the connection's queue.
                    match tokio::time::timeout(self.timeout, sink.ping::<redis::Value>()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return e.to_string(),
                        Err(_) => return format!("no answer to PING within {:?}", self.timeout),
                    }
                }
            }
        }
    }

    fn deliver(&self, message: &redis::Msg) {
        // Not UTF-8 (then `?`), or not under the prefix: not one of this hub's topics.
        let Some(topic) = message.get_channel_name().strip_prefix(&self.prefix) else {
            return;
        };
        self.topics.deliver(topic, || {
            Item::Message(Bytes::copy_from_slice(message.get_payload_bytes()))
        });
    }

    /// Makes the publishing connection usable again before subscribers are told to resync (a
    /// resync often publishes). Without this, its first command after an outage would fail:
    /// the connection manager only finds out that its connection is broken (or that its last
    /// reconnection failed, while Redis was down) when a command fails, and reconnects then.
    /// A `PING` does that failing instead; the next one has the new connection.
    async fn refresh_publisher(&self) {
        for _ in 0..3 {
            let mut conn = self.publisher.clone();
            let ping = redis::cmd("PING");
            let ping = ping.query_async::<redis::Value>(&mut conn);
            if let Ok(Ok(_)) = tokio::time::timeout(self.timeout, ping).await {
                return;
            }
        }
    }

    /// A new connection, subscribed, after as many attempts as it takes.
    async fn reconnect(&self) -> (PubSubSink, PubSubStream) {
        let mut backoff = MIN_BACKOFF;
        let mut attempts = 0u32;
        loop {
            tokio::time::sleep(backoff).await;
            match subscribe(&self.client, &self.pattern).await {
                Ok(parts) => return parts,
                Err(cause) => {
                    attempts += 1;
                    // The first failure and then every tenth: a long outage is visible in the
                    // log without filling it.
                    if attempts % 10 == 1 {
                        tracing::warn!(
                            redis = %self.address,
                            cause = %cause,
                            attempts,
                            "broadcast hub cannot reconnect to Redis yet; retrying every {:?} at most",
                            MAX_BACKOFF
                        );
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_of;

    #[test]
    fn the_prefix_is_matched_literally() {
        assert_eq!(pattern_of("chirp:broadcast:"), "chirp:broadcast:*");
        assert_eq!(pattern_of("a*b?[c]\\:"), "a\\*b\\?\\[c\\]\\\\:*");
    }
}
