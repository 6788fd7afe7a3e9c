//! Server-Sent Events (the WHATWG HTML standard, §9.2 "Server-sent events"): a response of
//! `text/event-stream` whose body is a stream of [`Event`]s, with comment keep-alives so that
//! proxies do not cut an idle stream. The basis of live updates (htmx's SSE extension, the
//! Python framework's `EventStream`).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_core::Stream;

use super::body::BoxError;
use super::response::{IntoResponse, Response};

/// One event. Fields are written in a fixed order, whatever order they were set in: comments,
/// `event`, `id`, `retry`, `data` (the Python framework's `SSEEvent.encode` order). A `data`
/// holding line breaks becomes one `data:` line per line (the client joins them with `\n`).
/// Setting a field twice keeps the last value (comments add up).
///
/// ```
/// use chirp::sse::Event;
/// let event = Event::new().data("line one\nline two").id("7").event("tick");
/// assert_eq!(event.to_string(), "event: tick\nid: 7\ndata: line one\ndata: line two\n\n");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Event {
    comments: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u128>,
    data: Option<String>,
    /// Why the event cannot be sent (a line break in `event` or `id`).
    invalid: Option<&'static str>,
}

impl Event {
    /// An empty event (add a field, or it is sent as nothing but its blank line).
    pub fn new() -> Event {
        Event::default()
    }

    /// The event's type (`event:`): what `addEventListener` listens for. A value with a
    /// line break cannot be sent: the stream ends with an error (the connection is closed).
    pub fn event(mut self, name: impl AsRef<str>) -> Event {
        let name = name.as_ref();
        self.event = self.checked(name, "an SSE event name holds a line break");
        self
    }

    /// The event's id (`id:`): the browser sends the last one back as `Last-Event-ID` when it
    /// reconnects ([`Request::last_event_id`](crate::Request::last_event_id)). No line
    /// breaks, no NUL.
    pub fn id(mut self, id: impl AsRef<str>) -> Event {
        let id = id.as_ref();
        if id.contains('\0') {
            self.invalid.get_or_insert("an SSE event id holds NUL");
        }
        self.id = self.checked(id, "an SSE event id holds a line break");
        self
    }

    /// How long the browser waits before reconnecting (`retry:`, in milliseconds).
    pub fn retry(mut self, after: Duration) -> Event {
        self.retry = Some(after.as_millis());
        self
    }

    /// The data (`data:`); line breaks (`\n`, `\r\n`, `\r`) split it into several lines.
    pub fn data(mut self, data: impl Into<String>) -> Event {
        self.data = Some(data.into());
        self
    }

    /// The data as JSON (one line).
    pub fn json_data<T: serde::Serialize + ?Sized>(
        self,
        value: &T,
    ) -> Result<Event, serde_json::Error> {
        Ok(self.data(serde_json::to_string(value)?))
    }

    /// A comment line (`: text`), which clients ignore: keep-alives are these.
    pub fn comment(mut self, text: &str) -> Event {
        for line in lines(text) {
            let _ = writeln!(self.comments, ": {line}");
        }
        self
    }

    /// Whether the event names its own type (`event:`).
    fn has_event(&self) -> bool {
        self.event.is_some()
    }

    /// `value` when it can be a field's value (no line break); else the event is marked
    /// invalid with `problem`.
    fn checked(&mut self, value: &str, problem: &'static str) -> Option<String> {
        if value.contains(['\r', '\n']) {
            self.invalid.get_or_insert(problem);
            return None;
        }
        Some(value.to_owned())
    }

    fn encode(&self) -> Result<Bytes, &'static str> {
        self.encode_with(None)
    }

    /// The event's bytes, with `default_event` as its type when it names none.
    fn encode_with(&self, default_event: Option<&str>) -> Result<Bytes, &'static str> {
        if let Some(problem) = self.invalid {
            return Err(problem);
        }
        let mut out = String::with_capacity(
            self.comments.len() + self.data.as_ref().map_or(0, |d| d.len() + 8) + 32,
        );
        out.push_str(&self.comments);
        if let Some(event) = self.event.as_deref().or(default_event) {
            let _ = writeln!(out, "event: {event}");
        }
        if let Some(id) = &self.id {
            let _ = writeln!(out, "id: {id}");
        }
        if let Some(retry) = self.retry {
            let _ = writeln!(out, "retry: {retry}");
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        Ok(Bytes::from(out))
    }
}

/// The lines of `text`, split at `\r\n`, `\n` or `\r` (the three line ends the event-stream
/// grammar knows); an empty text is one empty line.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.find(['\r', '\n']) {
            Some(i) => {
                let skip = if text[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = Some(&text[i + skip..]);
                Some(&text[..i])
            }
            None => {
                rest = None;
                Some(text)
            }
        }
    })
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.encode() {
            Ok(bytes) => f.write_str(&String::from_utf8_lossy(&bytes)),
            Err(problem) => write!(f, "<invalid event: {problem}>"),
        }
    }
}

/// An invalid [`Event`] ended the stream.
#[derive(Debug)]
struct InvalidEvent(&'static str);

impl std::fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: remove the line break from the field", self.0)
    }
}

impl std::error::Error for InvalidEvent {}

/// The default interval of keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A `text/event-stream` response (with `Cache-Control: no-cache`) of the events `stream`
/// produces, and a keep-alive comment (`: keep-alive`) after each 15 s without an event
/// ([`Sse::keep_alive`]). The stream is dropped as soon as the client goes away.
///
/// A stream that fails (an `Err` from [`Sse::try_new`]'s stream, or an [`Event`] that cannot
/// be sent) is a server error: it is logged at `ERROR` and the connection is closed without
/// the body's end, so the client sees a cut, not a finished stream. With
/// [`Sse::error_event`], an event of the app's choosing is sent first, so that the page can
/// say so; what failed is never sent.
///
/// ```
/// use chirp::sse::{Event, Sse};
/// use std::time::Duration;
/// let events = futures_util::stream::iter((1..=3).map(|n| Event::new().id(n.to_string()).data(n.to_string())));
/// let res = Sse::new(events).keep_alive(Duration::from_secs(5)).into_response();
/// # use chirp::IntoResponse;
/// assert_eq!(res.content_type(), Some("text/event-stream"));
/// ```
pub struct Sse {
    events: Pin<Box<dyn Stream<Item = Result<Event, BoxError>> + Send>>,
    keep_alive: Option<Duration>,
    comment: Cow<'static, str>,
    default_event: Option<String>,
    error_event: Option<Event>,
}

impl Sse {
    /// Events from `stream`.
    pub fn new<S>(stream: S) -> Sse
    where
        S: Stream<Item = Event> + Send + 'static,
    {
        Sse::from_boxed(Box::pin(Infallible(Box::pin(stream))))
    }

    /// Events from a stream that may fail: an error ends the response by closing the
    /// connection (the browser reconnects, with `Last-Event-ID`).
    pub fn try_new<S, E>(stream: S) -> Sse
    where
        S: Stream<Item = Result<Event, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Sse::from_boxed(Box::pin(Fallible(Box::pin(stream))))
    }

    fn from_boxed(events: Pin<Box<dyn Stream<Item = Result<Event, BoxError>> + Send>>) -> Sse {
        Sse {
            events,
            keep_alive: Some(KEEP_ALIVE),
            comment: Cow::Borrowed("keep-alive"),
            default_event: None,
            error_event: None,
        }
    }

    /// The type (`event:`) of every event that names none of its own (the Python framework's
    /// `EventStream(event_type=...)`): a stream of one kind of update need not name each one.
    /// Without it such events are `message` events, as the standard says. A name with a line
    /// break fails the stream at its first event.
    ///
    /// ```
    /// use chirp::sse::{Event, Sse};
    /// let events = futures_util::stream::iter([Event::new().data("1"), Event::new().event("done").data("")]);
    /// let res = Sse::new(events).default_event("tick");
    /// // The first event is sent as `event: tick`, the second keeps its own `event: done`.
    /// # let _ = res;
    /// ```
    pub fn default_event(mut self, name: impl Into<String>) -> Sse {
        self.default_event = Some(name.into());
        self
    }

    /// An event sent when the stream fails, just before the connection is closed (off by
    /// default), e.g. `Event::new().event("error").data("the feed is unavailable")`. It is
    /// sent as given: the error's own text stays in the server's log, so no internal detail
    /// reaches the client. Browsers reconnect after a failure either way; this lets the page
    /// tell its user why the updates paused.
    ///
    /// ```
    /// use chirp::sse::{Event, Sse};
    /// let events = futures_util::stream::iter([Ok::<_, std::io::Error>(Event::new().data("1"))]);
    /// let res = Sse::try_new(events)
    ///     .error_event(Event::new().event("error").data("the feed is unavailable"));
    /// # let _ = res;
    /// ```
    pub fn error_event(mut self, event: Event) -> Sse {
        self.error_event = Some(event);
        self
    }

    /// Sends a keep-alive comment after `interval` without an event (default 15 s).
    pub fn keep_alive(mut self, interval: Duration) -> Sse {
        self.keep_alive = Some(interval);
        self
    }

    /// The keep-alive comment's text (default `keep-alive`).
    pub fn keep_alive_text(mut self, text: impl Into<Cow<'static, str>>) -> Sse {
        self.comment = text.into();
        self
    }

    /// Sends no keep-alive comments.
    pub fn no_keep_alive(mut self) -> Sse {
        self.keep_alive = None;
        self
    }
}

impl IntoResponse for Sse {
    fn into_response(self) -> Response {
        let comment = Event::new()
            .comment(&self.comment)
            .encode()
            .unwrap_or_default();
        // A default name or an error event that cannot be sent fails the stream at once: a
        // mistake in the app's code, found by its first test.
        let mut broken = None;
        if let Some(name) = &self.default_event {
            if name.contains(['\r', '\n']) {
                broken = Some("the SSE default event name holds a line break");
            }
        }
        let error_event = match self.error_event.map(|e| e.encode()) {
            Some(Err(problem)) => {
                broken.get_or_insert(problem);
                None
            }
            Some(Ok(bytes)) => Some(bytes),
            None => None,
        };
        let body = EventBody {
            events: self.events,
            interval: self.keep_alive,
            // Made at the first poll, inside the server's runtime (a response may be built
            // outside one).
            timer: None,
            comment,
            default_event: self.default_event,
            error_event,
            failed: broken.map(|p| Box::new(InvalidEvent(p)) as BoxError),
            done: false,
        };
        Response::stream(body)
            .with_content_type("text/event-stream")
            .with_header("cache-control", "no-cache")
    }
}

/// The body of an [`Sse`] response: events, encoded, with keep-alives between them.
struct EventBody {
    events: Pin<Box<dyn Stream<Item = Result<Event, BoxError>> + Send>>,
    interval: Option<Duration>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    comment: Bytes,
    default_event: Option<String>,
    /// The encoded [`Sse::error_event`], sent once, before the failure is passed on.
    error_event: Option<Bytes>,
    /// The failure to pass on at the next poll (after the error event went out).
    failed: Option<BoxError>,
    done: bool,
}

impl EventBody {
    /// The stream failed with `e`: the error event first when there is one (the failure
    /// follows at the next poll), else the failure itself, which the server logs at `ERROR`
    /// before it closes the connection.
    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Bytes, BoxError>>> {
        if let Some(event) = self.error_event.take() {
            self.failed = Some(e);
            return Poll::Ready(Some(Ok(event)));
        }
        self.done = true;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for EventBody {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        if let Some(e) = this.failed.take() {
            return this.fail(e);
        }
        match this.events.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(event))) => {
                if let (Some(timer), Some(d)) = (this.timer.as_mut(), this.interval) {
                    timer.as_mut().reset(tokio::time::Instant::now() + d);
                }
                let default = this.default_event.as_deref().filter(|_| !event.has_event());
                return match event.encode_with(default) {
                    Ok(bytes) => Poll::Ready(Some(Ok(bytes))),
                    Err(p) => this.fail(Box::new(InvalidEvent(p))),
                };
            }
            Poll::Ready(Some(Err(e))) => return this.fail(e),
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some(d) = this.interval {
            let timer = this
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(d)));
            if timer.as_mut().poll(cx).is_ready() {
                timer.as_mut().reset(tokio::time::Instant::now() + d);
                return Poll::Ready(Some(Ok(this.comment.clone())));
            }
        }
        Poll::Pending
    }
}

use std::future::Future as _;

struct Infallible<S>(Pin<Box<S>>);

impl<S: Stream<Item = Event>> Stream for Infallible<S> {
    type Item = Result<Event, BoxError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.as_mut().poll_next(cx).map(|e| e.map(Ok))
    }
}

struct Fallible<S>(Pin<Box<S>>);

impl<S, E> Stream for Fallible<S>
where
    S: Stream<Item = Result<Event, E>>,
    E: Into<BoxError>,
{
    type Item = Result<Event, BoxError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0
            .as_mut()
            .poll_next(cx)
            .map(|e| e.map(|r| r.map_err(Into::into)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_multi_line_data() {
        let e = Event::new()
            .event("update")
            .id("42")
            .retry(Duration::from_millis(1500))
            .data("a\r\nb\rc\nd");
        assert_eq!(
            e.to_string(),
            "event: update\nid: 42\nretry: 1500\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(Event::new().data("").to_string(), "data: \n\n");
        assert_eq!(Event::new().data("x\n").to_string(), "data: x\ndata: \n\n");
        assert_eq!(Event::new().comment("hi").to_string(), ": hi\n\n");
    }

    #[test]
    fn fields_go_out_in_one_order_whatever_order_they_were_set_in() {
        let e = Event::new()
            .data("d")
            .retry(Duration::from_millis(5))
            .comment("c")
            .id("1")
            .event("first")
            .event("last");
        assert_eq!(
            e.to_string(),
            ": c\nevent: last\nid: 1\nretry: 5\ndata: d\n\n"
        );
    }

    #[test]
    fn line_breaks_in_event_or_id_are_refused() {
        assert!(Event::new().event("a\nb").encode().is_err());
        assert!(Event::new().id("1\r").encode().is_err());
        assert!(Event::new().id("1\0").encode().is_err());
        assert!(Event::new().id("1").encode().is_ok());
    }
}
