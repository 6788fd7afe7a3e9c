//! [`Subscription`]: one subscriber's view of a topic, read with `recv` or as a `Stream`, and
//! its ready-made SSE response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use super::error::Missed;
use super::topics::{Item, Topics};
use crate::http::sse::{Event, Sse};

/// The receive in progress, owning the receiver until it completes: tokio's `Receiver` has
/// no `poll_recv`, so a `Stream` keeps its `recv()` future alive between polls (one
/// allocation per wait; a message already in the ring buffer is read without one). `Sync`
/// too, so that a `Subscription` is, like the receiver it wraps.
type Waiting = Pin<
    Box<dyn Future<Output = (Result<Item, RecvError>, broadcast::Receiver<Item>)> + Send + Sync>,
>;

enum State {
    /// No receive in progress: the next read tries the ring buffer first.
    Idle(broadcast::Receiver<Item>),
    /// Waiting for the next message.
    Waiting(Waiting),
    /// The hub is gone: the stream has ended.
    Ended,
}

/// A subscriber of one topic, from [`Hub::subscribe`](super::Hub::subscribe). It receives
/// every message published on the topic after it subscribed, in the order the hub saw them
/// (from any instance, with Redis), until it is dropped or every clone of its hub is.
///
/// Read it with [`recv`](Subscription::recv), as a [`Stream`] of
/// `Result<Bytes, Missed>` (which ends when the hub is gone), or turn it into an SSE response
/// with [`into_sse`](Subscription::into_sse). An `Err(`[`Missed`]`)` says that messages were
/// lost for this subscriber (it read too slowly, or Redis was away): resync, and go on
/// reading. Dropping the last subscription of a topic removes the topic from the hub.
///
/// ```
/// use chirp::broadcast::Hub;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let hub = Hub::new();
/// let mut sub = hub.subscribe("room:1");
/// hub.publish("room:1", "hi").await.unwrap();
/// while let Some(message) = sub.recv().await {
///     match message {
///         Ok(bytes) => { assert_eq!(bytes, "hi"); break; }
///         Err(_missed) => { /* reload the room's state, then keep reading */ }
///     }
/// }
/// # }
/// ```
pub struct Subscription {
    state: State,
    topic: String,
    topics: Arc<Topics>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("ended", &matches!(self.state, State::Ended))
            .finish_non_exhaustive()
    }
}

impl Subscription {
    pub(crate) fn new(topics: Arc<Topics>, topic: &str) -> Subscription {
        Subscription {
            state: State::Idle(topics.subscribe(topic)),
            topic: topic.to_owned(),
            topics,
        }
    }

    /// The topic's name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The next message (`Ok`), or word that some were missed (`Err`, then the messages after
    /// them); `None` once every clone of the hub is dropped. Waits while there is nothing new.
    ///
    /// Cancel-safe: in a `tokio::select!` that takes another branch, nothing is lost (the
    /// receive in progress is kept for the next call).
    pub async fn recv(&mut self) -> Option<Result<Bytes, Missed>> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Missed>>> {
        loop {
            match std::mem::replace(&mut self.state, State::Ended) {
                State::Idle(mut receiver) => match receiver.try_recv() {
                    // What is already in the ring buffer costs no future (and no allocation):
                    // a subscriber that keeps up with a busy topic mostly reads here.
                    Ok(item) => {
                        self.state = State::Idle(receiver);
                        return Poll::Ready(Some(message(item)));
                    }
                    Err(TryRecvError::Lagged(n)) => {
                        self.state = State::Idle(receiver);
                        return Poll::Ready(Some(Err(Missed::Lagged(n))));
                    }
                    Err(TryRecvError::Closed) => return Poll::Ready(None),
                    Err(TryRecvError::Empty) => {
                        self.state = State::Waiting(Box::pin(async move {
                            let item = receiver.recv().await;
                            (item, receiver)
                        }));
                    }
                },
                State::Waiting(mut waiting) => match waiting.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Waiting(waiting);
                        return Poll::Pending;
                    }
                    Poll::Ready((item, receiver)) => {
                        let item = match item {
                            Ok(item) => message(item),
                            Err(RecvError::Lagged(n)) => Err(Missed::Lagged(n)),
                            Err(RecvError::Closed) => return Poll::Ready(None),
                        };
                        self.state = State::Idle(receiver);
                        return Poll::Ready(Some(item));
                    }
                },
                State::Ended => return Poll::Ready(None),
            }
        }
    }

    /// The subscription as a Server-Sent Events response ([`chirp::sse`](crate::sse)): each
    /// message becomes the event `to_event` makes of it, and a stretch of missed messages
    /// becomes an event of type `resync` (its data the number missed, or empty when unknown),
    /// for the page to reload what it shows. The response ends when the hub is gone, and the
    /// subscription goes when the client does.
    ///
    /// For other choices (another event for a resync, ending the stream instead), map the
    /// subscription itself, a `Stream`, and pass it to [`Sse::new`].
    ///
    /// ```
    /// use chirp::broadcast::Hub;
    /// use chirp::sse::Event;
    /// use chirp::testing::TestClient;
    /// use chirp::{App, Request, State};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.state(Hub::new());
    /// app.route("/news", |_req: Request, hub: State<Hub>| async move {
    ///     hub.subscribe("news")
    ///         .into_sse(|bytes| Event::new().event("news").data(String::from_utf8_lossy(&bytes)))
    /// });
    /// app.post("/news", |req: Request, hub: State<Hub>| async move {
    ///     hub.publish("news", req.into_body()).await?;
    ///     Ok::<_, chirp::Error>("sent")
    /// });
    /// let client = TestClient::new(app);
    /// let mut events = client.get_sse("/news").await;
    /// client.post("/news", "it works").await;
    /// let event = events.next_event(std::time::Duration::from_secs(1)).await.unwrap();
    /// assert_eq!((event.event.as_str(), event.data.as_str()), ("news", "it works"));
    /// # }
    /// ```
    pub fn into_sse<F>(self, to_event: F) -> Sse
    where
        F: FnMut(Bytes) -> Event + Send + 'static,
    {
        Sse::new(Events {
            subscription: self,
            to_event: Box::new(to_event),
        })
    }
}

fn message(item: Item) -> Result<Bytes, Missed> {
    match item {
        Item::Message(bytes) => Ok(bytes),
        Item::Reconnected => Err(Missed::Reconnected),
    }
}

impl Stream for Subscription {
    type Item = Result<Bytes, Missed>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_recv(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !matches!(self.state, State::Ended) {
            self.topics.unsubscribing(&self.topic);
        }
    }
}

/// The events of [`Subscription::into_sse`]. The closure is boxed so that the stream is
/// `Unpin` whatever it captures (and one type, whatever the closure).
struct Events {
    subscription: Subscription,
    to_event: Box<dyn FnMut(Bytes) -> Event + Send>,
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        this.subscription.poll_recv(cx).map(|item| {
            item.map(|message| match message {
                Ok(bytes) => (this.to_event)(bytes),
                Err(missed) => Event::new()
                    .event("resync")
                    .data(missed.count().map(|n| n.to_string()).unwrap_or_default()),
            })
        })
    }
}
