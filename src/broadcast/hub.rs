//! [`Hub`], what publishers and subscribers share, and [`RedisConfig`], how a hub over Redis
//! is set up.

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::time::Duration;

use bytes::Bytes;

use super::error::BroadcastError;
#[cfg(feature = "redis")]
use super::redis::RedisBackend;
use super::subscription::Subscription;
use super::topics::{Item, Topics};
use crate::error::ConfigurationError;

/// How many messages a topic keeps for its slowest subscriber by default.
const DEFAULT_CAPACITY: usize = 256;

/// A broadcast hub: named topics that anyone holding the hub publishes to, and that
/// [`Subscription`]s (an SSE stream, a WebSocket's task) receive from.
///
/// Cheap to clone (the clones are one hub): keep one in the app's state
/// ([`App::state`](crate::App::state)) and take it as a [`State<Hub>`](crate::State).
///
/// - **In memory** ([`Hub::new`]): for one process. A publish never fails, and with nobody
///   subscribed it is simply dropped.
/// - **Over Redis** (`Hub::redis`, feature `redis`): for several instances of the app, each
///   with its own hub on the same Redis; a message published on any of them reaches the
///   subscribers of all of them, exactly once each. See `RedisConfig`.
///
/// Each topic keeps at most `capacity` messages (default 256) for subscribers that have not
/// read them yet, so a slow subscriber costs bounded memory: when it falls further behind, it
/// loses the oldest and is told how many ([`Missed::Lagged`](super::Missed::Lagged)) so it
/// can resync. A topic exists while it has subscribers on this instance: the last one's drop
/// removes it, so many one-off topics (one per user, per document) leave nothing behind.
/// When the hub's last clone is dropped, every subscription ends (its stream finishes).
///
/// ```
/// use chirp::broadcast::Hub;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hub = Hub::new();
/// let mut alice = hub.subscribe("room:1");
/// let mut bob = hub.subscribe("room:1");
/// hub.publish("room:1", "hello").await.unwrap();
/// hub.publish("room:2", "nobody listens here").await.unwrap();
/// assert_eq!(alice.recv().await, Some(Ok("hello".into())));
/// assert_eq!(bob.recv().await, Some(Ok("hello".into())));
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    topics: Arc<Topics>,
    #[cfg(feature = "redis")]
    redis: Option<RedisBackend>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Subscriptions share the topics (to remove their own when they go), so the topics
        // outlive the hub: closing them is what ends every subscriber's stream. The Redis
        // task (it holds the topics too) stops when `redis` is dropped, after this.
        self.topics.close();
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Hub");
        d.field("topics", &self.inner.topics.len());
        #[cfg(feature = "redis")]
        d.field("redis", &self.inner.redis);
        d.finish()
    }
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

/// The checked capacity.
fn capacity(capacity: usize) -> Result<usize, ConfigurationError> {
    if capacity == 0 {
        return Err(ConfigurationError::new(
            "a broadcast hub's capacity must be at least 1 (it is how many messages each topic \
             keeps for slow subscribers; the default is 256)",
        ));
    }
    // tokio's own limit (it panics above it), far above any sensible value.
    if capacity > usize::MAX / 2 {
        return Err(ConfigurationError::new(format!(
            "a broadcast hub's capacity of {capacity} is too large (at most {})",
            usize::MAX / 2
        )));
    }
    Ok(capacity)
}

impl Hub {
    /// A hub in memory, keeping up to 256 messages per topic for slow subscribers.
    pub fn new() -> Hub {
        Hub::from_topics(Topics::new(DEFAULT_CAPACITY))
    }

    /// A hub in memory keeping up to `capacity` messages per topic for slow subscribers
    /// (tokio rounds it up to a power of two). More capacity lets a subscriber fall further
    /// behind before it lags, at the cost of that many messages per busy topic.
    ///
    /// # Errors
    /// A capacity of 0 is a [`ConfigurationError`].
    pub fn with_capacity(capacity: usize) -> Result<Hub, ConfigurationError> {
        Ok(Hub::from_topics(Topics::new(self::capacity(capacity)?)))
    }

    fn from_topics(topics: Topics) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                topics: Arc::new(topics),
                #[cfg(feature = "redis")]
                redis: None,
            }),
        }
    }

    /// A hub over the Redis at `url` (`redis://[:password@]host:port[/db]`), with the
    /// defaults of [`RedisConfig`] (prefix `chirp:broadcast:`, capacity 256, timeout 1 s).
    /// Feature `redis`.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), chirp::broadcast::BroadcastError> {
    /// let hub = chirp::broadcast::Hub::redis("redis://127.0.0.1:6379").await?;
    /// let mut app = chirp::App::new();
    /// app.state(hub);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// See [`RedisConfig::connect`].
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str) -> Result<Hub, BroadcastError> {
        RedisConfig::new(url).connect().await
    }

    /// Publishes `payload` (text, JSON, any bytes) to every subscriber of `topic`, on this
    /// instance and, with Redis, on every other. Each subscriber receives the messages of a
    /// topic in the order they were published.
    ///
    /// # Errors
    /// In memory, never. With Redis, [`BroadcastError::Unavailable`] when Redis cannot take
    /// the message within the timeout: it was not published, to anyone (this instance's
    /// subscribers included).
    pub async fn publish(
        &self,
        topic: &str,
        payload: impl Into<Bytes>,
    ) -> Result<(), BroadcastError> {
        let payload = payload.into();
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.inner.redis {
            // Not delivered here: it comes back through Redis, as on every other instance.
            return redis.publish(topic, &payload).await;
        }
        self.inner
            .topics
            .deliver(topic, move || Item::Message(payload));
        Ok(())
    }

    /// Publishes `value` as JSON (see [`publish`](Hub::publish)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let hub = chirp::broadcast::Hub::new();
    /// let mut sub = hub.subscribe("scores");
    /// hub.publish_json("scores", &serde_json::json!({"home": 2, "away": 1})).await.unwrap();
    /// assert_eq!(sub.recv().await, Some(Ok(r#"{"away":1,"home":2}"#.into())));
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`BroadcastError::Json`] when `value` cannot be serialized; otherwise as `publish`.
    pub async fn publish_json<T: serde::Serialize + ?Sized>(
        &self,
        topic: &str,
        value: &T,
    ) -> Result<(), BroadcastError> {
        let json = serde_json::to_vec(value).map_err(BroadcastError::Json)?;
        self.publish(topic, json).await
    }

    /// A subscription to `topic`: every message published on it from now on (not before).
    /// Subscribing never fails and costs no round trip, with Redis too (the hub receives every
    /// topic already).
    pub fn subscribe(&self, topic: &str) -> Subscription {
        Subscription::new(self.inner.topics.clone(), topic)
    }

    /// How many subscriptions to `topic` this instance has.
    pub fn subscriber_count(&self, topic: &str) -> usize {
        self.inner.topics.subscribers(topic)
    }

    /// How many topics have subscriptions on this instance.
    pub fn topic_count(&self) -> usize {
        self.inner.topics.len()
    }
}

/// How a hub over Redis is set up (feature `redis`): [`Hub::redis`] with the defaults, or:
///
/// ```no_run
/// use std::time::Duration;
/// use chirp::broadcast::RedisConfig;
/// # async fn run() -> Result<(), chirp::broadcast::BroadcastError> {
/// let hub = RedisConfig::new("redis://127.0.0.1:6379")
///     .prefix("myapp:live:")
///     .capacity(1024)
///     .timeout(Duration::from_millis(500))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
///
/// Topic `t` is the Redis channel `<prefix>t`: instances share topics when they share the
/// prefix (and the Redis database), and anything else may publish to them too
/// (`PUBLISH myapp:live:t hello` from `redis-cli` reaches the subscribers of `t`).
///
/// **When Redis goes away.** A publish fails with [`BroadcastError::Unavailable`] (at once
/// when the connection is refused, after the timeout when Redis hangs), and succeeds again as
/// soon as Redis is back. Subscriptions stay open: the hub reconnects by itself (100 ms after
/// the loss, then doubling up to 5 s between attempts), and then each subscriber receives
/// [`Missed::Reconnected`](super::Missed::Reconnected), for it to resync: what was published
/// during the outage is lost (Redis pub/sub stores nothing). A hub notices a hung server by a
/// `PING` every 5 s of silence.
///
/// Each hub holds two connections: one for publishing (multiplexed) and one subscribed to
/// `<prefix>*`, whatever the number of topics and subscribers.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub struct RedisConfig {
    url: String,
    prefix: String,
    capacity: usize,
    timeout: Duration,
}

#[cfg(feature = "redis")]
impl RedisConfig {
    /// The Redis at `url`, with the defaults: prefix `chirp:broadcast:`, capacity 256 per
    /// topic, a 1 s timeout for each publish.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            url: url.into(),
            prefix: "chirp:broadcast:".to_owned(),
            capacity: DEFAULT_CAPACITY,
            timeout: Duration::from_secs(1),
        }
    }

    /// The prefix of the hub's Redis channels (default `chirp:broadcast:`); not empty.
    pub fn prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.prefix = prefix.into();
        self
    }

    /// How many messages each topic keeps on this instance for slow subscribers (default
    /// 256; see [`Hub::with_capacity`]).
    pub fn capacity(mut self, capacity: usize) -> RedisConfig {
        self.capacity = capacity;
        self
    }

    /// How long a publish may wait for Redis (default 1 s), and a health check's `PING`.
    pub fn timeout(mut self, timeout: Duration) -> RedisConfig {
        self.timeout = timeout;
        self
    }

    /// Connects, and subscribes the hub to its prefix; then the hub takes care of its
    /// connections by itself. Must run inside a tokio runtime (the hub starts a task).
    ///
    /// # Errors
    /// [`BroadcastError::Configuration`] for a malformed URL, an empty prefix, a capacity of
    /// 0 or a zero timeout; [`BroadcastError::Unavailable`] when Redis cannot be reached
    /// within 5 s (start Redis first).
    pub async fn connect(self) -> Result<Hub, BroadcastError> {
        let capacity = capacity(self.capacity)?;
        if self.prefix.is_empty() {
            return Err(ConfigurationError::new(
                "a broadcast hub's Redis prefix must not be empty (it would receive every \
                 channel of the Redis); the default is `chirp:broadcast:`",
            )
            .into());
        }
        if self.timeout.is_zero() {
            return Err(ConfigurationError::new(
                "a broadcast hub's Redis timeout must be more than 0 (the default is 1 s)",
            )
            .into());
        }
        let topics = Arc::new(Topics::new(capacity));
        let redis =
            RedisBackend::connect(&self.url, self.prefix, self.timeout, topics.clone()).await?;
        Ok(Hub {
            inner: Arc::new(Inner {
                topics,
                redis: Some(redis),
            }),
        })
    }
}
