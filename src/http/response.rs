//! The response a handler returns, and [`IntoResponse`] for everything that can become one.

use std::borrow::Cow;
use std::cell::RefCell;

use bytes::{Bytes, BytesMut};
use serde::Serialize;

use super::body::{BodyStream, BoxError, BoxErrors, EmptyStream, FileBody, ScopedStream, Streamed};
use super::cookies::Cookie;
use crate::status::StatusCode;

type HeaderPair = (Cow<'static, str>, Cow<'static, str>);

/// A content type that the constructors set, with its header line spelled out at compile
/// time, so that the encoder writes the head of a common `200` in one copy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct KnownType {
    /// The value, e.g. `text/plain; charset=utf-8`.
    pub(crate) value: &'static str,
    /// `\r\ncontent-type: <value>`.
    pub(crate) line: &'static [u8],
    /// `HTTP/1.1 200 OK\r\ncontent-type: <value>`.
    pub(crate) ok_head: &'static [u8],
}

macro_rules! known_type {
    ($value:literal) => {
        KnownType {
            value: $value,
            line: concat!("\r\ncontent-type: ", $value).as_bytes(),
            ok_head: concat!("HTTP/1.1 200 OK\r\ncontent-type: ", $value).as_bytes(),
        }
    };
}

static TEXT: KnownType = known_type!("text/plain; charset=utf-8");
static HTML: KnownType = known_type!("text/html; charset=utf-8");
static OCTETS: KnownType = known_type!("application/octet-stream");
static JSON: KnownType = known_type!("application/json");

/// A response's `Content-Type`: one of the constructors' (see [`KnownType`]) or any other.
#[derive(Debug, Clone)]
pub(crate) enum ContentType {
    Known(&'static KnownType),
    Other(Cow<'static, str>),
}

impl ContentType {
    fn as_str(&self) -> &str {
        match self {
            ContentType::Known(known) => known.value,
            ContentType::Other(value) => value,
        }
    }
}

/// An HTTP response: status, headers, body.
///
/// The server adds `Content-Length`, `Date` and, when it closes the connection,
/// `Connection: close`; those three are not for handlers to set.
///
/// ```
/// use chirp::{Response, StatusCode};
/// let res = Response::text("created")
///     .with_status(StatusCode::CREATED)
///     .with_header("x-request-id", "42");
/// assert_eq!(res.status(), StatusCode::CREATED);
/// assert_eq!(res.header("X-Request-Id"), Some("42"));
/// assert_eq!(res.body().as_ref(), b"created");
/// ```
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    content_type: Option<ContentType>,
    headers: Vec<HeaderPair>,
    body: Bytes,
    /// What few responses carry: a refused header, an error's detail. Boxed, so that the
    /// response stays small to move.
    extra: Option<Box<Extra>>,
}

/// The rare parts of a [`Response`].
#[derive(Debug, Default)]
struct Extra {
    /// A body that is not in memory (then `Response::body` is empty), and its length when
    /// known (`Content-Length`; otherwise chunked or close-delimited).
    streamed: Option<Streamed>,
    streamed_len: Option<u64>,
    /// Set when a header with CR, LF or NUL was refused; the server then answers 500.
    refused_header: Option<String>,
    /// Set on the error responses chirp makes (router, handler errors, panics, server
    /// refusals): their detail, extension members and cause, for the app's error handler
    /// (see [`App::error_handler`](crate::App::error_handler)).
    problem: Option<Pending>,
    /// The callback of a `101 Switching Protocols` ([`Response::upgrade`]).
    upgrade: Option<super::upgrade::OnUpgrade>,
    /// A body still to be made (a template): made at the end of the middleware chain, inside
    /// every middleware's scope, by `Service` (see [`Deferred`]).
    deferred: Option<Box<dyn Deferred>>,
}

/// A body made once the handler has answered, at the end of the middleware chain (inside the
/// scopes of every middleware, so that a template reads the CSRF token, the CSP nonce, the
/// session and the user), or, for a response no middleware saw, when the service finishes it.
/// `chirp::templates` makes these; the service renders them. `engine` is what the app
/// registered for them (`None`: nothing); the body replaces the response's, whose status and
/// headers stay as the handler left them. An `Err` is answered as a logged `500`.
pub(crate) trait Deferred: Send + std::fmt::Debug {
    fn render(
        self: Box<Self>,
        engine: Option<&(dyn std::any::Any + Send + Sync)>,
        head: &RenderHead,
    ) -> Result<Made, BoxedError>;
}

/// What a [`Deferred`] body is made into: bytes in memory, or a stream (a Suspense page:
/// its shell, then its blocks as they resolve) that the middleware on the way out carry
/// their scopes into, as they do for any streamed response.
// Only `chirp::templates` makes deferred bodies.
#[cfg_attr(not(feature = "templates"), allow(dead_code))]
pub(crate) enum Made {
    Body(Bytes),
    Stream(BodyStream),
}

/// What a [`Deferred`] body may read of its request, kept once the request itself has gone
/// into the handler: its path, and the htmx headers a page negotiates on.
// Without the `templates` feature nothing reads it: the service still keeps the mechanism.
#[cfg_attr(not(feature = "templates"), allow(dead_code))]
#[derive(Debug, Default, Clone)]
pub(crate) struct RenderHead {
    /// The canonical path (UTF-8; `/` when unknown).
    pub(crate) path: Bytes,
    /// `HX-Request: true`.
    pub(crate) htmx: bool,
    /// `HX-Boosted: true`.
    pub(crate) boosted: bool,
    /// `HX-History-Restore-Request: true`.
    pub(crate) history_restore: bool,
}

impl RenderHead {
    /// From a path and the request's `HX-` headers, as (name without `HX-`, value).
    pub(crate) fn new<'a>(path: Bytes, hx: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Self {
        let mut head = RenderHead {
            path,
            ..RenderHead::default()
        };
        for (name, value) in hx {
            let on = value.eq_ignore_ascii_case(b"true");
            if name.eq_ignore_ascii_case(b"request") {
                head.htmx = on;
            } else if name.eq_ignore_ascii_case(b"boosted") {
                head.boosted = on;
            } else if name.eq_ignore_ascii_case(b"history-restore-request") {
                head.history_restore = on;
            }
        }
        head
    }

    /// The head of a request at hand: a reference count on its buffer for the path, and one
    /// compare per header (most requests carry no `HX-` header).
    pub(crate) fn of(req: &super::Request) -> RenderHead {
        let (start, end) = req.path_range();
        RenderHead::new(
            path_in(req.headers().buffer(), (start, end)),
            req.headers().prefixed("hx-"),
        )
    }

    /// The path, as a string.
    #[cfg_attr(not(feature = "templates"), allow(dead_code))]
    pub(crate) fn path(&self) -> &str {
        std::str::from_utf8(&self.path).unwrap_or("/")
    }
}

/// The path at `range` of a head's buffer, sharing it (`/` when out of range).
pub(crate) fn path_in(buf: &Bytes, (start, end): (u16, u16)) -> Bytes {
    let range = usize::from(start)..usize::from(end);
    if buf.get(range.clone()).is_some() {
        buf.slice(range)
    } else {
        Bytes::from_static(b"/")
    }
}

impl Extra {
    /// [`Response::carry_task_local`] for a response with extras: the upgrade callback when
    /// there is one, else a streamed body that is a stream (a file runs no app code).
    fn carry_task_local<T: Send + 'static>(
        &mut self,
        key: &'static tokio::task::LocalKey<T>,
        value: impl FnOnce() -> T,
    ) {
        if let Some(upgrade) = self.upgrade.take() {
            self.upgrade = Some(upgrade.in_scope(key, value()));
        } else if let Some(Streamed::Stream(stream)) = self.streamed.as_mut() {
            let inner = std::mem::replace(stream, Box::pin(EmptyStream));
            *stream = Box::pin(ScopedStream::new(key, value(), inner));
        }
    }
}

/// An error response not yet rendered (see [`Response::error`]): what its problem will say,
/// and the failure behind a `500`, to log. Rendered and logged by `problem::render`.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) detail: Cow<'static, str>,
    pub(crate) extensions: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    pub(crate) cause: Option<Cause>,
}

/// The failure behind a `500`: logged where the response is rendered, with the request's
/// method, path and id; or, if a middleware drops the response before that, when dropped
/// (with less to say, but never silently).
#[derive(Debug)]
pub(crate) struct Cause(Option<BoxedError>);

/// A failure, boxed.
type BoxedError = Box<dyn std::error::Error + Send + Sync>;

impl Cause {
    pub(crate) fn new(error: BoxedError) -> Cause {
        Cause(Some(error))
    }

    /// The failure, once: whoever logs it takes it.
    pub(crate) fn take(&mut self) -> Option<BoxedError> {
        self.0.take()
    }
}

impl Drop for Cause {
    fn drop(&mut self) {
        if let Some(error) = self.take() {
            tracing::error!(
                error = %crate::error::Error::chain(error.as_ref()),
                "request failed: its 500 response was dropped before it was sent"
            );
        }
    }
}

thread_local! {
    /// Where [`Response::json`] writes bodies. Each body is split off as a [`Bytes`] that
    /// shares this buffer's allocation; once the responses holding the earlier bodies are gone
    /// (written out), `reserve` takes the whole allocation back, so in steady state a JSON body
    /// costs no allocation at all.
    static JSON_BUF: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// How much [`JSON_BUF`] allocates (or takes back) when its spare room runs low.
const JSON_CHUNK: usize = 8 * 1024;
/// Below this much spare room, [`JSON_BUF`] reserves a new chunk before serializing.
const JSON_MIN_SPARE: usize = 1024;
/// A body larger than this leaves [`JSON_BUF`] to it: the buffer starts afresh (small) rather
/// than keep a large allocation for the thread's life.
const JSON_KEEP_AT_MOST: usize = 64 * 1024;

/// `io::Write` straight onto a `BytesMut`: one reserve-and-copy per write (the `bytes`
/// crate's own writer goes through `write`'s partial-write protocol for every piece).
struct BodyWriter<'a>(&'a mut BytesMut);

impl std::io::Write for BodyWriter<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.0.extend_from_slice(bytes);
        Ok(())
    }

    #[inline]
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn serialize_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Bytes> {
    JSON_BUF.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.capacity() < JSON_MIN_SPARE {
                buf.reserve(JSON_CHUNK);
            }
            let result = serde_json::to_writer(BodyWriter(&mut buf), value);
            let body = buf.split().freeze();
            if body.len() > JSON_KEEP_AT_MOST {
                *buf = BytesMut::new();
            }
            result.map(|()| body)
        }
        // Only when a `Serialize` impl itself builds a JSON response: no shared buffer then.
        Err(_) => serde_json::to_vec(value).map(Bytes::from),
    })
}

/// Boxes `stream` with its errors boxed (`BodyStream`), once if they already are.
fn box_stream<S, E>(stream: S) -> BodyStream
where
    S: futures_core::Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    Box::pin(BoxErrors(Box::pin(stream)))
}

impl Default for Response {
    fn default() -> Self {
        Response::empty(StatusCode::OK)
    }
}

/// A header name must be a token; a value must not hold CR, LF or NUL (response splitting).
fn header_problem(name: &str, value: &str) -> Option<String> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !name_ok {
        return Some(format!("invalid response header name {name:?}"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Some(format!(
            "response header {name:?} has CR, LF or NUL in its value (response splitting)"
        ));
    }
    // Browsers drop tabs and newlines from a URL and trim control characters, so a redirect
    // to `/\t/host` lands on `//host`, another site. Check redirect targets that come from
    // the request with `chirp::security::is_safe_url`.
    // htmx's redirects (`HX-Redirect`, a plain `HX-Location`) and history URLs are URLs too.
    let url = name.eq_ignore_ascii_case("location")
        || (name.len() > 3
            && name.as_bytes()[..3].eq_ignore_ascii_case(b"hx-")
            && ["redirect", "location", "push-url", "replace-url"]
                .iter()
                .any(|n| name[3..].eq_ignore_ascii_case(n)));
    if url && value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Some(format!(
            "response header {name:?} has a control character (a tab, say) in its value: \
             browsers drop them from URLs, which can turn a local path into another site; \
             check redirect targets with chirp::security::is_safe_url"
        ));
    }
    None
}

impl Response {
    /// An empty response with the given status.
    pub fn empty(status: StatusCode) -> Response {
        Response {
            status,
            content_type: None,
            headers: Vec::new(),
            body: Bytes::new(),
            extra: None,
        }
    }

    /// A status-only response (alias of [`Response::empty`]).
    pub fn new(status: StatusCode) -> Response {
        Response::empty(status)
    }

    fn with_body(content_type: &'static KnownType, body: Bytes) -> Response {
        Response {
            status: StatusCode::OK,
            content_type: Some(ContentType::Known(content_type)),
            headers: Vec::new(),
            body,
            extra: None,
        }
    }

    /// `200`, `text/plain; charset=utf-8`. A `&'static str` body is not copied.
    pub fn text(body: impl Into<Bytes>) -> Response {
        Response::with_body(&TEXT, body.into())
    }

    /// `200`, `text/html; charset=utf-8`.
    pub fn html(body: impl Into<Bytes>) -> Response {
        Response::with_body(&HTML, body.into())
    }

    /// `200`, `application/octet-stream`.
    pub fn bytes(body: impl Into<Bytes>) -> Response {
        Response::with_body(&OCTETS, body.into())
    }

    /// `200`, `application/json`, the value serialized compactly. A value that cannot be
    /// serialized (a map with non-string keys) gives a logged `500`.
    ///
    /// ```
    /// let res = chirp::Response::json(&serde_json::json!({"ok": true}));
    /// assert_eq!(res.body().as_ref(), br#"{"ok":true}"#);
    /// ```
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Response {
        match serialize_json(value) {
            Ok(body) => Response::with_body(&JSON, body),
            Err(e) => {
                tracing::error!(error = %e, "response value cannot be serialized to JSON");
                Response::text("Internal Server Error")
                    .with_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// `303 See Other` to `location`: the answer to a form POST that worked
    /// (post/redirect/get), so that the browser fetches `location` with GET and a reload does
    /// not send the form again. A `location` taken from the request (a `?next=`) can send the
    /// user to another site: use [`safe_redirect`](crate::security::safe_redirect) for those.
    ///
    /// ```
    /// use chirp::{Response, StatusCode};
    /// let res = Response::see_other("/notes");
    /// assert_eq!(res.status(), StatusCode::SEE_OTHER);
    /// assert_eq!(res.header("location"), Some("/notes"));
    /// ```
    pub fn see_other(location: impl Into<Cow<'static, str>>) -> Response {
        Response::empty(StatusCode::SEE_OTHER).with_header("location", location)
    }

    /// `302 Found` to `location` (for a GET; after a POST, use [`Response::see_other`]).
    pub fn redirect(location: impl Into<Cow<'static, str>>) -> Response {
        Response::empty(StatusCode::FOUND).with_header("location", location)
    }

    /// A redirect with another status (`301`, `303`, `307`, `308`).
    pub fn redirect_with(status: StatusCode, location: impl Into<Cow<'static, str>>) -> Response {
        Response::empty(status).with_header("location", location)
    }

    /// `200`, `application/octet-stream`, the body streamed from `stream` as it produces
    /// chunks. The server polls the stream only as the client takes the bytes (backpressure),
    /// drops it as soon as the client goes away, and sends it with `Transfer-Encoding:
    /// chunked` (or, to HTTP/1.0 clients and on `Connection: close`, delimited by closing the
    /// connection). A stream that ends with an error ends the response by closing the
    /// connection, so the client never takes a truncated body for a whole one. Headers (and
    /// the session cookie) are sent before the first chunk is polled.
    ///
    /// ```
    /// use bytes::Bytes;
    /// let chunks = futures_util::stream::iter(["a", "b"].map(|s| Ok::<_, std::io::Error>(Bytes::from(s))));
    /// let res = chirp::Response::stream(chunks).with_content_type("text/plain");
    /// assert!(res.is_streamed());
    /// ```
    pub fn stream<S, E>(stream: S) -> Response
    where
        S: futures_core::Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Response::from_streamed(Streamed::Stream(box_stream(stream)), None)
    }

    /// Like [`Response::stream`], for a body of a known `length`: it is sent with
    /// `Content-Length`. A stream that ends short of `length`, or goes past it, ends the
    /// response by closing the connection.
    pub fn stream_with_length<S, E>(length: u64, stream: S) -> Response
    where
        S: futures_core::Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        Response::from_streamed(Streamed::Stream(box_stream(stream)), Some(length))
    }

    pub(crate) fn from_streamed(body: Streamed, length: Option<u64>) -> Response {
        let mut res = Response::bytes(Bytes::new());
        res.set_streamed(body, length);
        res
    }

    pub(crate) fn set_streamed(&mut self, body: Streamed, length: Option<u64>) {
        self.body = Bytes::new();
        let extra = self.extra.get_or_insert_with(Box::default);
        extra.streamed = Some(body);
        extra.streamed_len = length;
    }

    /// `101 Switching Protocols` to `protocol`, with `on_upgrade` to take the connection over
    /// once the 101 is written: the server then runs it with the connection as an
    /// [`Upgraded`](crate::http::Upgraded) (a byte stream, bytes the client sent after its
    /// request read first), outside HTTP: no keep-alive, no request timeouts, no middleware.
    ///
    /// The response carries `Connection: upgrade` and `Upgrade: protocol`, written as they
    /// are (change them with [`Response::with_header`] before returning). Only a `GET`
    /// HTTP/1.1 request with `Connection: upgrade` and an `Upgrade` header can be handed over;
    /// a 101 to any other request, or a 101 made without a callback, is answered `500` (the
    /// client would wait for a protocol that never comes).
    ///
    /// ```
    /// use chirp::{App, Request, Response};
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    ///
    /// let mut app = App::new();
    /// app.route("/echo", |_req: Request| async {
    ///     Response::upgrade("echo", |mut io| async move {
    ///         let mut buf = [0u8; 1024];
    ///         while let Ok(n) = io.read(&mut buf).await {
    ///             if n == 0 || io.write_all(&buf[..n]).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     })
    /// });
    /// ```
    pub fn upgrade<F, Fut>(protocol: impl Into<Cow<'static, str>>, on_upgrade: F) -> Response
    where
        F: FnOnce(super::upgrade::Upgraded) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut res = Response::empty(StatusCode::SWITCHING_PROTOCOLS)
            .with_header("connection", "upgrade")
            .with_header("upgrade", protocol);
        let extra = res.extra.get_or_insert_with(Box::default);
        extra.upgrade = Some(super::upgrade::OnUpgrade::new(on_upgrade));
        res
    }

    /// Keeps the task-local `key` set to `value()` for what runs after the middleware has
    /// returned: every poll of a streamed body ([`Response::stream`], an
    /// [`Sse`](crate::sse::Sse) stream) and the callback of an upgrade
    /// ([`Response::upgrade`]). For a middleware that runs the rest of the chain in a
    /// `tokio::task_local!` scope: the connection polls a response's stream, and runs its
    /// upgrade, outside that scope, so without this the producer cannot read the value.
    ///
    /// `value` is called only when there is something to carry it into: an in-memory
    /// response (or a file) costs one branch.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use chirp::Response;
    ///
    /// tokio::task_local! {
    ///     static TENANT: &'static str;
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// // What a middleware does: the chain runs in its scope, the response carries it on.
    /// let mut res = TENANT
    ///     .scope("acme", async {
    ///         // A producer that reads the task-local when it is polled, not when it is made.
    ///         let chunks = futures_util::stream::poll_fn(|_| {
    ///             std::task::Poll::Ready(Some(Ok::<_, std::io::Error>(Bytes::from(TENANT.get()))))
    ///         });
    ///         Response::stream(futures_util::StreamExt::take(chunks, 1))
    ///     })
    ///     .await;
    /// res.carry_task_local(&TENANT, || "acme");
    ///
    /// // Polled later, outside the scope, as the server does.
    /// let mut body = res.take_stream().unwrap();
    /// let chunk = futures_util::StreamExt::next(&mut body).await.unwrap().unwrap();
    /// assert_eq!(chunk, "acme");
    /// # }
    /// ```
    #[inline]
    pub fn carry_task_local<T: Send + 'static>(
        &mut self,
        key: &'static tokio::task::LocalKey<T>,
        value: impl FnOnce() -> T,
    ) {
        if let Some(extra) = self.extra.as_mut() {
            extra.carry_task_local(key, value);
        }
    }

    /// Runs `chain` (the rest of a middleware chain) with `key` set to `value`, and carries the
    /// value on into the response's stream or upgrade ([`Response::carry_task_local`]), without
    /// cloning it: the value the scope held is taken back once the chain has answered.
    pub(crate) async fn scoped<T, F>(
        key: &'static tokio::task::LocalKey<T>,
        value: T,
        chain: F,
    ) -> Response
    where
        T: Send + 'static,
        F: std::future::Future<Output = Response>,
    {
        let mut scoped = std::pin::pin!(key.scope(value, chain));
        let mut res = scoped.as_mut().await;
        if res.extra.is_some() {
            if let Some(value) = scoped.as_mut().take_value() {
                res.carry_task_local(key, || value);
            }
        }
        res
    }

    /// A `200 text/html` response whose body is still to be made (see [`Deferred`]).
    #[cfg_attr(not(feature = "templates"), allow(dead_code))]
    pub(crate) fn deferred(body: Box<dyn Deferred>) -> Response {
        let mut res = Response::html(Bytes::new());
        res.extra = Some(Box::new(Extra {
            deferred: Some(body),
            ..Extra::default()
        }));
        res
    }

    /// Whether the body is still to be made ([`Response::deferred`]).
    #[inline]
    pub(crate) fn is_deferred(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.deferred.is_some())
    }

    /// The body still to be made, taken out.
    pub(crate) fn take_deferred(&mut self) -> Option<Box<dyn Deferred>> {
        self.extra.as_mut()?.deferred.take()
    }

    /// Whether the service has more to do before the response goes out: an error to render,
    /// or a body to make. One test for the responses that carry nothing rare.
    #[inline]
    pub(crate) fn is_pending(&self) -> bool {
        self.extra
            .as_ref()
            .is_some_and(|e| e.problem.is_some() || e.deferred.is_some())
    }

    /// Whether this is a `101` that can take a connection over ([`Response::upgrade`]).
    pub fn is_upgrade(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.upgrade.is_some())
    }

    /// The upgrade callback, for the server (or the test client) to run.
    pub(crate) fn take_upgrade(&mut self) -> Option<super::upgrade::OnUpgrade> {
        self.extra.as_mut()?.upgrade.take()
    }

    /// Whether the body is streamed ([`Response::stream`], a file) rather than in memory.
    pub fn is_streamed(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.streamed.is_some())
    }

    /// The length of a streamed body, when it is known.
    pub fn streamed_len(&self) -> Option<u64> {
        self.extra
            .as_ref()
            .and_then(|e| e.streamed.as_ref().and(e.streamed_len))
    }

    /// Takes a streamed body out as a stream (a file's bytes are read as it is polled), for
    /// middleware that transforms bodies; the response's body is then empty. `None` for an
    /// in-memory body ([`Response::body`]).
    pub fn take_stream(&mut self) -> Option<BodyStream> {
        let extra = self.extra.as_mut()?;
        extra.streamed_len = None;
        match extra.streamed.take()? {
            Streamed::Stream(stream) => Some(stream),
            Streamed::File(file) => Some(file.into_stream()),
        }
    }

    /// Replaces the body with `stream` (its length unknown), keeping status and headers.
    pub fn set_stream(&mut self, stream: BodyStream) {
        self.set_streamed(Streamed::Stream(stream), None);
    }

    /// The streamed body, for the server to write.
    pub(crate) fn take_streamed(&mut self) -> Option<(Streamed, Option<u64>)> {
        let extra = self.extra.as_mut()?;
        let body = extra.streamed.take()?;
        Some((body, extra.streamed_len.take()))
    }

    /// Whether the body is a file (sent with `sendfile(2)`), not a stream.
    pub(crate) fn is_file_body(&self) -> bool {
        matches!(
            self.extra.as_ref().and_then(|e| e.streamed.as_ref()),
            Some(Streamed::File(_))
        )
    }

    /// The file behind a file body, for range requests.
    pub(crate) fn file_body_mut(&mut self) -> Option<&mut FileBody> {
        match self.extra.as_mut()?.streamed.as_mut()? {
            Streamed::File(file) => Some(file),
            Streamed::Stream(_) => None,
        }
    }

    /// Sets the length of a streamed body (a range of a file).
    pub(crate) fn set_streamed_len(&mut self, len: u64) {
        if let Some(extra) = self.extra.as_mut() {
            extra.streamed_len = Some(len);
        }
    }

    /// Drops a streamed body (a `304`, a `416`).
    pub(crate) fn drop_streamed(&mut self) {
        if let Some(extra) = self.extra.as_mut() {
            extra.streamed = None;
            extra.streamed_len = None;
        }
    }

    /// Replaces the status.
    pub fn with_status(mut self, status: StatusCode) -> Response {
        self.status = status;
        self
    }

    /// Replaces the `Content-Type`.
    pub fn with_content_type(mut self, content_type: impl Into<Cow<'static, str>>) -> Response {
        self.append_header("content-type", content_type);
        self
    }

    /// Appends a header. A name that is not a token or a value holding CR, LF or NUL is
    /// refused: the server then answers `500` instead of sending a split response, and logs why.
    /// So is a `Location` holding any control character (a tab included): browsers drop tabs
    /// and newlines from URLs, which turns `/\t/host` into `//host`, another site.
    ///
    /// ```
    /// let res = chirp::Response::see_other("/\t/evil.example");
    /// assert!(res.refused_header().is_some()); // answered 500, the header never sent
    /// ```
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Response {
        self.append_header(name, value);
        self
    }

    /// Appends a header (see [`Response::with_header`]).
    pub fn append_header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        let (name, value) = (name.into(), value.into());
        match header_problem(&name, &value) {
            Some(problem) => self.refuse(problem),
            // Content-Type has a field of its own (set by the constructors without a lookup).
            None if name.eq_ignore_ascii_case("content-type") => {
                self.content_type = Some(ContentType::Other(value));
            }
            None => self.headers.push((name, value)),
        }
    }

    /// Appends a header that the framework itself made valid (a token name; no CR, LF or NUL
    /// in the value), skipping the checks.
    pub(crate) fn append_trusted_header(
        &mut self,
        name: &'static str,
        value: impl Into<Cow<'static, str>>,
    ) {
        self.headers.push((Cow::Borrowed(name), value.into()));
    }

    /// Replaces every header `name` with this one value.
    pub fn set_header(
        &mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) {
        let name = name.into();
        self.remove_header(&name);
        self.append_header(name, value);
    }

    /// Removes every header `name`.
    pub fn remove_header(&mut self, name: &str) {
        if name.eq_ignore_ascii_case("content-type") {
            self.content_type = None;
        }
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Adds a `Set-Cookie` header. An invalid cookie is refused like an invalid header.
    pub fn with_cookie(mut self, cookie: Cookie) -> Response {
        match cookie.to_header_value() {
            Ok(value) => self
                .headers
                .push((Cow::Borrowed("set-cookie"), Cow::Owned(value))),
            Err(problem) => self.refuse(problem),
        }
        self
    }

    /// Adds a `Set-Cookie` that deletes cookie `name` (set at `path`) on the client.
    pub fn without_cookie(self, name: &str, path: &str) -> Response {
        self.with_cookie(
            Cookie::new(name, "")
                .max_age(std::time::Duration::ZERO)
                .path(path),
        )
    }

    /// Replaces the body (the content type stays); a streamed body is dropped.
    pub fn with_body_bytes(mut self, body: impl Into<Bytes>) -> Response {
        self.set_body(body);
        self
    }

    /// Replaces the body (see [`Response::with_body_bytes`]).
    pub fn set_body(&mut self, body: impl Into<Bytes>) {
        self.drop_streamed();
        self.body = body.into();
    }

    fn refuse(&mut self, problem: String) {
        let extra = self.extra.get_or_insert_with(Box::default);
        extra.refused_header.get_or_insert(problem);
    }

    /// An error response of chirp's own making: `status` with `detail` as its text body,
    /// marked so that the app's error handler renders it (problem+json or text, custom
    /// pages). [`HttpError`](crate::HttpError)s become these.
    pub fn error(status: StatusCode, detail: impl Into<Cow<'static, str>>) -> Response {
        Response::error_with(
            status,
            Pending {
                detail: detail.into(),
                extensions: None,
                cause: None,
            },
        )
    }

    /// An error response of chirp's own making, with all that its rendering needs.
    pub(crate) fn error_with(status: StatusCode, problem: Pending) -> Response {
        let body = Bytes::from(problem.detail.clone().into_owned());
        let mut res = Response::text(body).with_status(status);
        res.extra = Some(Box::new(Extra {
            problem: Some(problem),
            ..Extra::default()
        }));
        res
    }

    /// Whether this is an error response made by [`Response::error`] (not yet rendered).
    #[inline]
    pub(crate) fn is_error(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.problem.is_some())
    }

    /// Takes out what an error response made by [`Response::error`] is to render, leaving
    /// a response that is no longer marked as one.
    pub(crate) fn take_problem(&mut self) -> Option<Pending> {
        self.extra.as_mut()?.problem.take()
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Sets the status.
    pub fn set_status(&mut self, status: StatusCode) {
        self.status = status;
    }

    /// The first value of header `name` (case-insensitive), `Content-Type` included.
    pub fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("content-type") {
            return self.content_type();
        }
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Every value of header `name`.
    pub fn headers_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Every header but `Content-Type`, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(n, v)| (&**n, &**v))
    }

    /// The `Content-Type`, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_ref().map(ContentType::as_str)
    }

    /// The `Content-Type` as the encoder wants it.
    pub(crate) fn content_type_header(&self) -> Option<&ContentType> {
        self.content_type.as_ref()
    }

    /// The body (empty when it is streamed: see [`Response::is_streamed`]).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Why a header was refused, if one was: such a response is never sent as it is.
    pub fn refused_header(&self) -> Option<&str> {
        self.extra.as_ref()?.refused_header.as_deref()
    }
}

/// Anything a handler may return.
///
/// Implemented for `&'static str` and `String` (text/plain), `Bytes` and `Vec<u8>`
/// (application/octet-stream), `serde_json::Value` (application/json), `()` (empty 200),
/// [`Response`], `(StatusCode, T)`, errors, and `Result<T, E>` where both sides are.
pub trait IntoResponse {
    /// Makes the response.
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(self)
    }
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Response {
        Response::bytes(self)
    }
}

impl IntoResponse for serde_json::Value {
    fn into_response(self) -> Response {
        Response::json(&self)
    }
}

impl IntoResponse for () {
    fn into_response(self) -> Response {
        Response::empty(StatusCode::OK)
    }
}

impl IntoResponse for StatusCode {
    fn into_response(self) -> Response {
        Response::empty(self)
    }
}

impl<T: IntoResponse> IntoResponse for (StatusCode, T) {
    fn into_response(self) -> Response {
        self.1.into_response().with_status(self.0)
    }
}

impl<T: IntoResponse, E: IntoResponse> IntoResponse for Result<T, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(v) => v.into_response(),
            Err(e) => e.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_response_splitting() {
        let r = Response::text("x").with_header("x-a", "ok\r\nSet-Cookie: evil=1");
        assert!(r.refused_header().unwrap().contains("response splitting"));
        assert!(r.header("x-a").is_none());
        let r = Response::text("x").with_header("bad name", "v");
        assert!(r.refused_header().is_some());
    }

    #[test]
    fn refuses_control_characters_in_location_only() {
        for bad in ["/\t/evil.example", "/\u{1}x", "/x\u{7f}", "\u{b}/"] {
            let r = Response::see_other(bad);
            assert!(
                r.refused_header().unwrap().contains("control character"),
                "{bad:?}"
            );
            assert!(r.header("location").is_none(), "{bad:?}");
            let r = Response::empty(StatusCode::FOUND).with_header("LOCATION", bad);
            assert!(r.refused_header().is_some(), "{bad:?}");
        }
        let r = Response::see_other("/notes?a=b#c");
        assert_eq!(r.refused_header(), None);
        // Elsewhere a tab is a legal field-value character (RFC 9110, 5.5).
        let r = Response::text("x").with_header("x-a", "a\tb");
        assert_eq!(r.header("x-a"), Some("a\tb"));
    }

    #[test]
    fn content_type_is_one_header() {
        let mut r = Response::text("x").with_header("Content-Type", "text/csv");
        assert_eq!(r.header("content-type"), Some("text/csv"));
        r.remove_header("content-type");
        assert_eq!(r.content_type(), None);
    }

    #[test]
    fn tuples_and_results_convert() {
        let r = (StatusCode::CREATED, "made").into_response();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r: Result<&'static str, crate::HttpError> = Err(crate::HttpError::not_found("gone"));
        let r = r.into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.body().as_ref(), b"gone");
        let r = serde_json::json!({"a": 1}).into_response();
        assert_eq!(r.content_type(), Some("application/json"));
    }

    /// JSON bodies share one thread-local buffer: each must keep its own bytes while later
    /// bodies are written, whether the earlier ones are still alive or already dropped.
    #[test]
    fn json_bodies_sharing_a_buffer_stay_intact() {
        let kept: Vec<Response> = (0..2000).map(|i| Response::json(&[i, i + 1])).collect();
        for (i, r) in kept.iter().enumerate() {
            assert_eq!(r.body().as_ref(), format!("[{},{}]", i, i + 1).as_bytes());
        }
        drop(kept);
        // Dropped bodies give the room back; new ones still come out whole.
        for i in 0..2000 {
            let r = Response::json(&serde_json::json!({ "n": i }));
            assert_eq!(r.body().as_ref(), format!("{{\"n\":{i}}}").as_bytes());
        }
    }

    /// A value that fails half-way leaves nothing behind for the next body; a body larger
    /// than the buffer keeps is still whole.
    #[test]
    fn json_failures_and_large_bodies() {
        let mut bad = std::collections::BTreeMap::new();
        bad.insert((1, 2), "non-string key");
        let r = Response::json(&bad);
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = Response::json(&"after");
        assert_eq!(r.body().as_ref(), br#""after""#);
        let big = "x".repeat(JSON_KEEP_AT_MOST + 10);
        let r = Response::json(&big);
        assert_eq!(r.body().len(), big.len() + 2);
        assert_eq!(Response::json(&1).body().as_ref(), b"1");
        assert_eq!(r.body()[1..=big.len()], *big.as_bytes());
    }

    /// A `Serialize` impl that itself builds a JSON response (the buffer is in use then).
    #[test]
    fn json_inside_json_serialization() {
        struct Nested;
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let inner = Response::json(&"inner");
                s.serialize_str(std::str::from_utf8(inner.body()).unwrap())
            }
        }
        let r = Response::json(&Nested);
        assert_eq!(r.body().as_ref(), br#""\"inner\"""#);
    }
}
