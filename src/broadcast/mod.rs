//! A broadcast hub: named topics that SSE streams and WebSockets subscribe to, in memory or,
//! with the `redis` feature, shared by several instances through Redis pub/sub.
//!
//! A [`Hub`] is cloned into whatever publishes (a handler after a change) and whatever
//! listens (an SSE response, a WebSocket's task); [`Hub::subscribe`] gives a
//! [`Subscription`], read with `recv`, as a `Stream`, or sent as it is with
//! [`Subscription::into_sse`]. A slow subscriber costs bounded memory: it is told what it
//! [`Missed`] and goes on with the newest messages, as it is after Redis comes back from an
//! outage; either way it should resync (reload what it shows).
//!
//! ```
//! use chirp::broadcast::Hub;
//! use chirp::sse::Event;
//! use chirp::{App, Request, State};
//!
//! let mut app = App::new();
//! app.state(Hub::new()); // or, shared by several instances: Hub::redis(url).await?
//! app.route("/feed", |_req: Request, hub: State<Hub>| async move {
//!     hub.subscribe("feed").into_sse(|bytes| Event::new().data(String::from_utf8_lossy(&bytes)))
//! });
//! app.post("/feed", |req: Request, hub: State<Hub>| async move {
//!     hub.publish("feed", req.text()?.to_owned()).await?;
//!     Ok::<_, chirp::Error>("published")
//! });
//! ```
//!
//! Files: `hub.rs` (the [`Hub`] and, with feature `redis`, `RedisConfig`) uses `subscription.rs`, `topics.rs` (the
//! local topics, one ring buffer each), `redis.rs` (the Redis connections and the task that
//! keeps them) and `error.rs`; `subscription.rs` uses `topics.rs` and `error.rs`; `redis.rs`
//! uses `topics.rs` and `error.rs`.

mod error;
mod hub;
#[cfg(feature = "redis")]
mod redis;
mod subscription;
mod topics;

pub use error::{BroadcastError, Missed};
pub use hub::Hub;
#[cfg(feature = "redis")]
pub use hub::RedisConfig;
pub use subscription::Subscription;
