//! What can go wrong with a hub: [`BroadcastError`] for the publisher (and the constructors),
//! [`Missed`] for a subscriber that did not get every message and should resync.

use std::fmt;

use crate::error::ConfigurationError;

/// A publish (or a hub's construction) failed. Each variant's text says what to do.
///
/// In memory, `publish` never fails; with Redis, it fails when Redis cannot take the message,
/// and the message is then **not** published (not even to this instance's subscribers: local
/// delivery comes back through Redis, so that every instance sees one order).
///
/// Converts into [`chirp::Error`](crate::Error) with `?` like any error (a `500`); answer
/// `503` yourself when the client should retry:
///
/// ```
/// use chirp::broadcast::{BroadcastError, Hub};
/// use chirp::{HttpError, StatusCode};
/// # async fn handler(hub: Hub) -> Result<&'static str, chirp::Error> {
/// hub.publish("chat", "hello").await.map_err(|e| match e {
///     BroadcastError::Unavailable(_) => {
///         HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "try again shortly").into()
///     }
///     other => chirp::Error::from(other),
/// })?;
/// # Ok("sent") }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BroadcastError {
    /// Redis could not be reached, refused the command, or did not answer within the hub's
    /// timeout. The text names the server (never the password) and the cause.
    Unavailable(String),
    /// The hub was set up wrongly (a capacity of 0, a malformed Redis URL, an empty prefix).
    Configuration(ConfigurationError),
    /// [`Hub::publish_json`](super::Hub::publish_json): the value could not be made JSON.
    Json(serde_json::Error),
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BroadcastError::Unavailable(what) => write!(f, "broadcast hub: {what}"),
            BroadcastError::Configuration(e) => write!(f, "broadcast hub: {e}"),
            BroadcastError::Json(e) => write!(
                f,
                "broadcast hub: the message could not be serialized as JSON ({e}); \
                 nothing was published"
            ),
        }
    }
}

impl std::error::Error for BroadcastError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BroadcastError::Unavailable(_) => None,
            BroadcastError::Configuration(e) => Some(e),
            BroadcastError::Json(e) => Some(e),
        }
    }
}

impl From<ConfigurationError> for BroadcastError {
    fn from(e: ConfigurationError) -> BroadcastError {
        BroadcastError::Configuration(e)
    }
}

/// A subscriber did not get every message of its topic: what it shows may be stale, so it
/// should **resync** (reload the state the messages would have changed, re-render, or tell
/// its client to), then go on reading; the subscription stays valid.
///
/// ```
/// use chirp::broadcast::{Hub, Missed};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hub = Hub::with_capacity(2).unwrap();
/// let mut sub = hub.subscribe("scores");
/// for n in 1..=5 {
///     hub.publish("scores", n.to_string()).await.unwrap();
/// }
/// // Only the newest 2 were kept for this slow reader:
/// assert_eq!(sub.recv().await, Some(Err(Missed::Lagged(3))));
/// assert_eq!(sub.recv().await, Some(Ok("4".into())));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Missed {
    /// The subscriber read too slowly: its topic's ring buffer (the hub's capacity) filled up
    /// and this many of the oldest messages were dropped for it. The newest follow.
    Lagged(u64),
    /// The hub's connection to Redis was lost and has just been made again: whatever was
    /// published meanwhile is lost, how much is unknown. Messages published from now on
    /// follow (the hub was subscribed again before this was sent).
    Reconnected,
}

impl Missed {
    /// How many messages were missed, when known (`Lagged`).
    pub fn count(&self) -> Option<u64> {
        match self {
            Missed::Lagged(n) => Some(*n),
            Missed::Reconnected => None,
        }
    }
}

impl fmt::Display for Missed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missed::Lagged(n) => write!(
                f,
                "the subscriber fell behind and missed {n} message(s): resync (reload the \
                 state), then keep reading; or raise the hub's capacity"
            ),
            Missed::Reconnected => f.write_str(
                "the connection to Redis was lost and re-made, and messages published \
                 meanwhile were lost: resync (reload the state), then keep reading",
            ),
        }
    }
}

impl std::error::Error for Missed {}
