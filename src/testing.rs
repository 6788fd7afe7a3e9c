//! [`TestClient`]: drive an [`App`] in-process, with no socket, keeping cookies between
//! requests like a browser. The way to write an app's tests.
//!
//! ```
//! use chirp::{App, Request, StatusCode};
//! use chirp::testing::TestClient;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut app = App::new();
//! app.route("/", |_req: Request| async { "Hello, World!" });
//! let client = TestClient::new(app);
//!
//! let res = client.get("/").await;
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.text(), "Hello, World!");
//! assert_eq!(client.get("/nope").await.status(), StatusCode::NOT_FOUND);
//! # }
//! ```
//!
//! The client calls the app's middleware chain and router directly, through the same path
//! the server takes from a request to its response: what the server adds on the wire
//! (`Content-Length`, `Date`, HEAD without a body) is not part of its responses. An upgrade
//! (`101`) is driven over an in-memory pipe ([`TestRequest::upgrade`]), and
//! [`TestClient::begin_shutdown`] plays the server's shutdown for handlers, upgraded
//! connections and event streams.
//!
//! htmx requests are built with [`TestClient::htmx`] and the `hx_*` methods of
//! [`TestRequest`]; their answers are checked with [`TestResponse::is_fragment`],
//! [`TestResponse::hx_redirect`] and [`TestResponse::hx_trigger_has`]. An event stream is
//! read event by event with [`TestClient::get_sse`] (or [`TestResponse::into_sse`]).
//!
//! A test can also play the client's address ([`TestClient::with_peer_addr`],
//! [`TestRequest::peer_addr`]), send multipart forms ([`MultipartBody`]) and move time
//! forward ([`TestClient::clock`]): sessions expire and rate-limit windows pass with no
//! sleeping.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::http::{Method, Request, Response, StatusCode};
use crate::service::Service;
use crate::sessions::{ClientClock, ManualClock};
use crate::shutdown::Shutdown;

/// An in-process client with a cookie jar.
pub struct TestClient {
    service: Service,
    jar: Mutex<Vec<(String, String)>>,
    shutdown: Arc<Shutdown>,
    /// The address its requests come from, unless a request sets its own.
    peer_addr: Option<SocketAddr>,
    /// The time its requests carry, once a test took it ([`TestClient::clock`]).
    clock: OnceLock<ManualClock>,
}

impl TestClient {
    /// Builds `app` and wraps it.
    ///
    /// # Panics
    /// If the app's configuration is invalid (the panic message is the
    /// [`ConfigurationError`](crate::ConfigurationError)); use [`TestClient::from_service`]
    /// with [`App::build`] to get the error instead.
    pub fn new(app: App) -> TestClient {
        match app.build() {
            Ok(service) => TestClient::from_service(service),
            Err(e) => panic!("TestClient::new: {e}"),
        }
    }

    /// Wraps an already built service.
    pub fn from_service(service: Service) -> TestClient {
        TestClient {
            shutdown: service.shutdown().clone(),
            service,
            jar: Mutex::new(Vec::new()),
            peer_addr: None,
            clock: OnceLock::new(),
        }
    }

    /// Sends every request from `addr` (a request may still set its own with
    /// [`TestRequest::peer_addr`]): what [`Request::peer_addr`] gives, and what the login
    /// rate limit and the access log count per client. Without it, requests have no address,
    /// as requests built in code have none.
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// use chirp::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/ip", |req: Request| async move {
    ///     req.peer_addr().map_or("none".to_owned(), |a| a.ip().to_string())
    /// });
    /// let client = TestClient::new(app).with_peer_addr("192.0.2.7:5000".parse().unwrap());
    /// assert_eq!(client.get("/ip").await.text(), "192.0.2.7");
    /// let other = client.request(Method::Get, "/ip").peer_addr("198.51.100.1:1".parse().unwrap());
    /// assert_eq!(other.send().await.text(), "198.51.100.1");
    /// # }
    /// ```
    pub fn with_peer_addr(mut self, addr: SocketAddr) -> TestClient {
        self.peer_addr = Some(addr);
        self
    }

    /// This client's clock, which tests move by hand. Until the first call the app reads the
    /// system clock; from then on, every request this client sends carries this clock
    /// (starting at the current second), and everything in chirp that reads the time for a
    /// request reads it instead: the session middleware (cookie timestamps, `max_age`, the
    /// idle and absolute timeouts) and the login rate limit's windows. It wins over a clock
    /// set in their configuration. Each client has its own clock (tests run in parallel in
    /// one process), and every call returns a handle onto the same one.
    ///
    /// Time the server alone reads (timeouts between requests, the `Date` header) is not part
    /// of a test response, and a `RedisStore`'s own expiry is Redis's.
    ///
    /// ```
    /// use chirp::{App, Request};
    /// use chirp::middleware::sessions::SessionMiddleware;
    /// use chirp::sessions::{get_session, SessionConfig};
    /// use chirp::testing::TestClient;
    /// use std::time::Duration;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut config = SessionConfig::new("a-secret-key-of-at-least-32-bytes!!");
    /// config.idle_timeout = Some(Duration::from_secs(1800));
    /// let mut app = App::new();
    /// app.add_middleware(SessionMiddleware::new(config).unwrap());
    /// app.route("/visit", |_req: Request| async {
    ///     let session = get_session().unwrap();
    ///     let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
    ///     session.insert("visits", visits);
    ///     visits.to_string()
    /// });
    /// let client = TestClient::new(app);
    /// let clock = client.clock();
    /// assert_eq!(client.get("/visit").await.text(), "1");
    /// clock.advance(1799);
    /// assert_eq!(client.get("/visit").await.text(), "2");
    /// clock.advance(1801); // idle for longer than the idle timeout
    /// assert_eq!(client.get("/visit").await.text(), "1");
    /// # }
    /// ```
    pub fn clock(&self) -> ManualClock {
        self.clock
            .get_or_init(|| ManualClock::new(crate::clock::clock_seconds()))
            .clone()
    }

    /// Begins shutdown as the server would on SIGTERM: the
    /// [`ShutdownSignal`](crate::ShutdownSignal) of its requests and upgraded connections
    /// fires, and the event streams of responses already returned end (as the server ends
    /// them at their next chunk boundary).
    ///
    /// ```
    /// use chirp::{App, Request};
    /// use chirp::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/", |req: Request| async move {
    ///     req.shutdown_signal().wait().await;
    ///     "stopping"
    /// });
    /// let client = TestClient::new(app);
    /// client.begin_shutdown();
    /// assert_eq!(client.get("/").await.text(), "stopping");
    /// # }
    /// ```
    pub fn begin_shutdown(&self) {
        self.shutdown.begin();
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> TestResponse {
        self.request(Method::Get, path).send().await
    }

    /// `POST path` with a body (copied: any `&str`, `&[u8]`, `String`, `Vec<u8>`, `Bytes`).
    pub async fn post(&self, path: &str, body: impl AsRef<[u8]>) -> TestResponse {
        self.request(Method::Post, path).body(body).send().await
    }

    /// `PUT path` with a body.
    pub async fn put(&self, path: &str, body: impl AsRef<[u8]>) -> TestResponse {
        self.request(Method::Put, path).body(body).send().await
    }

    /// `PATCH path` with a body.
    pub async fn patch(&self, path: &str, body: impl AsRef<[u8]>) -> TestResponse {
        self.request(Method::Patch, path).body(body).send().await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> TestResponse {
        self.request(Method::Delete, path).send().await
    }

    /// `OPTIONS path`.
    pub async fn options(&self, path: &str) -> TestResponse {
        self.request(Method::Options, path).send().await
    }

    /// `POST path` with `value` as a JSON body (`Content-Type: application/json`).
    ///
    /// # Panics
    /// If `value` cannot be serialised (a test helper: the panic is the test failure).
    pub async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        value: &T,
    ) -> TestResponse {
        self.request(Method::Post, path).json(value).send().await
    }

    /// `POST path` with `fields` as an HTML form body
    /// (`Content-Type: application/x-www-form-urlencoded`).
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        self.request(Method::Post, path).form(fields).send().await
    }

    /// `POST path` with `form` as a `multipart/form-data` body (see [`MultipartBody`]).
    pub async fn post_multipart(&self, path: &str, form: MultipartBody) -> TestResponse {
        self.request(Method::Post, path)
            .multipart(form)
            .send()
            .await
    }

    /// An htmx request to build (`HX-Request: true`), as htmx sends it; add what htmx adds
    /// with [`TestRequest::hx_target`], [`hx_trigger`](TestRequest::hx_trigger) and the other
    /// `hx_*` methods.
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// use chirp::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.post("/tasks", |req: Request| async move {
    ///     let target = req.htmx().target().unwrap_or_default().into_owned();
    ///     format!("htmx: {}, target: {target}", req.htmx().is_htmx())
    /// });
    /// let client = TestClient::new(app);
    /// let res = client.htmx(Method::Post, "/tasks").hx_target("#task-list").send().await;
    /// assert_eq!(res.text(), "htmx: true, target: task-list");
    /// # }
    /// ```
    pub fn htmx(&self, method: Method, path: &str) -> TestRequest<'_> {
        self.request(method, path).htmx()
    }

    /// `GET path` as a browser's `EventSource` asks for it (`Accept: text/event-stream`), and
    /// the event stream that answers it, to read event by event (see [`SseReader`]).
    ///
    /// ```
    /// use std::time::Duration;
    /// use chirp::sse::{Event, Sse};
    /// use chirp::testing::TestClient;
    /// use chirp::{App, Request};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/events", |_req: Request| async {
    ///     let events = (1..=3).map(|i| Event::new().event("tick").data(format!("n={i}")));
    ///     Sse::new(tokio_stream_iter(events))
    /// });
    /// # fn tokio_stream_iter<I: Iterator + Send + Unpin>(i: I) -> impl futures_core::Stream<Item = I::Item> + Send {
    /// #     struct S<I>(I);
    /// #     impl<I: Iterator + Unpin> futures_core::Stream for S<I> {
    /// #         type Item = I::Item;
    /// #         fn poll_next(mut self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<Option<I::Item>> {
    /// #             std::task::Poll::Ready(self.0.next())
    /// #         }
    /// #     }
    /// #     S(i)
    /// # }
    /// let client = TestClient::new(app);
    /// let mut events = client.get_sse("/events").await;
    /// let first = events.take(2, Duration::from_secs(1)).await;
    /// assert_eq!((first[0].event.as_str(), first[1].data.as_str()), ("tick", "n=2"));
    /// # }
    /// ```
    ///
    /// # Panics
    /// When the answer is not an event stream (the message gives its status and body): a
    /// test helper, the panic is the test failure.
    pub async fn get_sse(&self, path: &str) -> SseReader {
        self.request(Method::Get, path)
            .header("accept", "text/event-stream")
            .send()
            .await
            .into_sse()
    }

    /// A request to build: headers, a body, then [`send`](TestRequest::send).
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// use chirp::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/", |req: Request| async move { req.header("x-tag").unwrap_or("-").to_owned() });
    /// let client = TestClient::new(app);
    /// let tag = String::from("borrowed");
    /// let res = client.request(Method::Get, "/").header("X-Tag", &tag).send().await;
    /// assert_eq!(res.text(), "borrowed");
    /// # }
    /// ```
    pub fn request(&self, method: Method, path: &str) -> TestRequest<'_> {
        TestRequest {
            client: self,
            request: Request::new(method, path),
            htmx: false,
        }
    }

    /// Sends any request; the jar's cookies are added unless it already has a `Cookie` header,
    /// and the client's address ([`TestClient::with_peer_addr`]) unless it has one.
    pub async fn send(&self, mut req: Request) -> TestResponse {
        if let (None, Some(addr)) = (req.peer_addr(), self.peer_addr) {
            req.set_peer_addr(addr);
        }
        if let Some(clock) = self.clock.get() {
            req.extensions_mut().insert(ClientClock(clock.clone()));
        }
        if !req.headers().contains("cookie") {
            let cookies = self.cookie_header();
            if !cookies.is_empty() {
                req = req.with_header("cookie", &cookies);
            }
        }
        let mut response = self.service.call(req).await;
        self.store_cookies(&response);
        // A streamed body is read whole, as a client would; an event stream is endless, so
        // it is left for the test to read (`TestResponse::response_mut().take_stream()`),
        // ended by shutdown as the server would.
        if response.is_streamed() {
            if let Some(mut stream) = response.take_stream() {
                if response.content_type() == Some("text/event-stream") {
                    response
                        .set_stream(Box::pin(UntilShutdown::new(stream, self.shutdown.clone())));
                    return TestResponse { response };
                }
                let mut body = bytes::BytesMut::new();
                while let Some(chunk) =
                    std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await
                {
                    match chunk {
                        Ok(chunk) => body.extend_from_slice(&chunk),
                        Err(e) => panic!("the response body stream failed: {e}"),
                    }
                }
                response.set_body(body.freeze());
            }
        }
        TestResponse { response }
    }

    /// Sends `req` and, when the app answers `101` with [`Response::upgrade`], runs the
    /// upgrade's callback on a task of its own with one end of an in-memory pipe, and
    /// returns the other end (see [`TestRequest::upgrade`]).
    async fn send_upgrade(
        &self,
        req: Request,
    ) -> Result<(TestResponse, tokio::io::DuplexStream), TestResponse> {
        let mut test = self.send(req).await;
        let Some(on_upgrade) = test.response.take_upgrade() else {
            return Err(test);
        };
        let (client, server) = tokio::io::duplex(64 * 1024);
        let signal = crate::ShutdownSignal::new(Some(self.shutdown.clone()));
        let upgraded = crate::http::Upgraded::new(server, Bytes::new(), signal);
        tokio::spawn(on_upgrade.run(upgraded));
        Ok((test, client))
    }

    /// Opens a WebSocket on `path` (see [`TestRequest::websocket`]): the client's end of the
    /// socket, or the response when the app did not switch protocols.
    ///
    /// ```
    /// use chirp::testing::TestClient;
    /// use chirp::ws::Message;
    /// use chirp::{App, Request};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/ws", |req: Request| async move {
    ///     Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
    ///         while let Some(Ok(Message::Text(text))) = socket.recv().await {
    ///             let _ = socket.send(text.to_uppercase()).await;
    ///         }
    ///     }))
    /// });
    /// let client = TestClient::new(app);
    /// let mut socket = client.websocket("/ws").await.unwrap();
    /// socket.send("hello").await.unwrap();
    /// assert_eq!(socket.recv().await.unwrap().unwrap(), Message::text("HELLO"));
    /// socket.close(1000, "done").await.unwrap();
    /// # }
    /// ```
    pub async fn websocket(&self, path: &str) -> Result<crate::ws::WebSocket, TestResponse> {
        self.request(Method::Get, path)
            .websocket()
            .await
            .map(|(_, socket)| socket)
    }

    fn cookie_header(&self) -> String {
        let jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
        jar.iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn store_cookies(&self, response: &Response) {
        let mut jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
        for set_cookie in response.headers_all("set-cookie") {
            let mut parts = set_cookie.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            let expired = parts.any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
            jar.retain(|(n, _)| *n != name);
            if !expired {
                jar.push((name, value));
            }
        }
    }

    /// The jar's value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
        jar.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
    }

    /// Puts a cookie in the jar (replacing one of the same name).
    pub fn set_cookie(&self, name: &str, value: &str) {
        let mut jar = self.jar.lock().unwrap_or_else(|e| e.into_inner());
        jar.retain(|(n, _)| n != name);
        jar.push((name.to_owned(), value.to_owned()));
    }

    /// Empties the jar.
    pub fn clear_cookies(&self) {
        self.jar.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// A request being built by [`TestClient::request`].
pub struct TestRequest<'c> {
    client: &'c TestClient,
    request: Request,
    /// Whether `HX-Request: true` is set already.
    htmx: bool,
}

impl TestRequest<'_> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.with_header(name, value);
        self
    }

    /// Sets the body (copied).
    pub fn body(mut self, body: impl AsRef<[u8]>) -> Self {
        self.request = self
            .request
            .with_body(Bytes::copy_from_slice(body.as_ref()));
        self
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    ///
    /// # Panics
    /// If `value` cannot be serialised (a test helper: the panic is the test failure).
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|e| panic!("json body: {e}"));
        self.header("content-type", "application/json").body(body)
    }

    /// Sets a form body and `Content-Type: application/x-www-form-urlencoded`.
    pub fn form(self, fields: &[(&str, &str)]) -> Self {
        let body = serde_urlencoded::to_string(fields).unwrap_or_default();
        self.header("content-type", "application/x-www-form-urlencoded")
            .body(body)
    }

    /// Sets a `multipart/form-data` body (and its `Content-Type`, with the boundary).
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// use chirp::testing::{MultipartBody, TestClient};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.post("/up", |mut req: Request| async move {
    ///     let mut form = req.multipart().unwrap();
    ///     let mut seen = Vec::new();
    ///     while let Some(field) = form.next_field().await.unwrap() {
    ///         let name = field.name().unwrap_or("").to_owned();
    ///         let file = field.file_name().map(str::to_owned);
    ///         let bytes = field.bytes().await.unwrap();
    ///         let text = String::from_utf8_lossy(&bytes).into_owned();
    ///         seen.push(format!("{name}={text} ({})", file.unwrap_or_default()));
    ///     }
    ///     seen.join(", ")
    /// });
    /// let client = TestClient::new(app);
    /// let form = MultipartBody::new()
    ///     .text("title", "notes")
    ///     .file("doc", "a.txt", "text/plain", "hello");
    /// let res = client.request(Method::Post, "/up").multipart(form).send().await;
    /// assert_eq!(res.text(), "title=notes (), doc=hello (a.txt)");
    /// # }
    /// ```
    pub fn multipart(self, form: MultipartBody) -> Self {
        let content_type = form.content_type();
        self.header("content-type", &content_type)
            .body(form.into_bytes())
    }

    /// Makes it an htmx request (`HX-Request: true`), as every `hx_*` method does.
    pub fn htmx(mut self) -> Self {
        if !self.htmx {
            self.htmx = true;
            self.request = self.request.with_header("HX-Request", "true");
        }
        self
    }

    /// An `HX-*` header as htmx sends it: as it is when it is printable ASCII, else
    /// percent-encoded with `<name>-URI-AutoEncoded: true` beside it.
    fn hx_header(self, name: &str, value: &str) -> Self {
        let this = self.htmx();
        if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return this.header(name, value);
        }
        let encoded = crate::http::encoding::percent_encode(value);
        this.header(name, &encoded)
            .header(&format!("{name}-URI-AutoEncoded"), "true")
    }

    /// The `id` of the element htmx swaps into (`HX-Target`); a leading `#` is dropped, as
    /// htmx sends the id of `hx-target="#task-list"`.
    pub fn hx_target(self, id: &str) -> Self {
        self.hx_header("HX-Target", id.strip_prefix('#').unwrap_or(id))
    }

    /// The `id` of the element that triggered the request (`HX-Trigger`); a leading `#` is
    /// dropped.
    pub fn hx_trigger(self, id: &str) -> Self {
        self.hx_header("HX-Trigger", id.strip_prefix('#').unwrap_or(id))
    }

    /// The `name` of the element that triggered the request (`HX-Trigger-Name`).
    pub fn hx_trigger_name(self, name: &str) -> Self {
        self.hx_header("HX-Trigger-Name", name)
    }

    /// The page the browser is on (`HX-Current-URL`, a whole URL:
    /// `http://localhost/board`).
    pub fn hx_current_url(self, url: &str) -> Self {
        self.hx_header("HX-Current-URL", url)
    }

    /// What the user answered to an `hx-prompt` (`HX-Prompt`).
    pub fn hx_prompt(self, text: &str) -> Self {
        self.hx_header("HX-Prompt", text)
    }

    /// A navigation by an `hx-boost` element (`HX-Boosted: true`).
    pub fn hx_boosted(self) -> Self {
        self.hx_header("HX-Boosted", "true")
    }

    /// A history restore after a miss in htmx's history cache
    /// (`HX-History-Restore-Request: true`, with `HX-Request: true` as htmx 2 sends it).
    pub fn hx_history_restore(self) -> Self {
        self.hx_header("HX-History-Restore-Request", "true")
    }

    /// Sends this request from `addr` ([`Request::peer_addr`]), whatever the client's own
    /// address ([`TestClient::with_peer_addr`]).
    pub fn peer_addr(mut self, addr: SocketAddr) -> Self {
        self.request.set_peer_addr(addr);
        self
    }

    /// Sends it (with the jar's cookies, unless a `Cookie` header was set).
    pub async fn send(self) -> TestResponse {
        self.client.send(self.request).await
    }

    /// Sends it as an upgrade request (`Connection: upgrade` and `Upgrade: protocol` are
    /// added) and, when the app switches protocols (`101` with
    /// [`Response::upgrade`](crate::Response::upgrade)), returns the response and the client
    /// end of an in-memory pipe whose other end the upgrade's callback holds; `Err` with the
    /// response when the app answered anything else.
    ///
    /// ```
    /// use chirp::{App, Method, Request, Response};
    /// use chirp::testing::TestClient;
    /// use tokio::io::{AsyncReadExt, AsyncWriteExt};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/shout", |_req: Request| async {
    ///     Response::upgrade("shout", |mut io| async move {
    ///         let mut buf = [0u8; 5];
    ///         io.read_exact(&mut buf).await.unwrap();
    ///         io.write_all(&buf.to_ascii_uppercase()).await.unwrap();
    ///     })
    /// });
    /// let client = TestClient::new(app);
    /// let (res, mut io) = client.request(Method::Get, "/shout").upgrade("shout").await.unwrap();
    /// assert_eq!(res.status().as_u16(), 101);
    /// io.write_all(b"hello").await.unwrap();
    /// let mut back = String::new();
    /// io.read_to_string(&mut back).await.unwrap();
    /// assert_eq!(back, "HELLO");
    /// # }
    /// ```
    pub async fn upgrade(
        self,
        protocol: &str,
    ) -> Result<(TestResponse, tokio::io::DuplexStream), TestResponse> {
        let request = self
            .request
            .with_header("connection", "upgrade")
            .with_header("upgrade", protocol);
        self.client.send_upgrade(request).await
    }
}

impl TestRequest<'_> {
    /// Sends it as a WebSocket handshake (a fresh `Sec-WebSocket-Key`, version 13; headers
    /// set on the request, such as `Origin` or `Sec-WebSocket-Protocol`, are kept) and, when
    /// the app answers `101`, checks the answer (`Sec-WebSocket-Accept`) and returns it
    /// with the client's end of the socket, over an in-memory pipe. `Err` with the response
    /// when the app answered anything else (a `401`, a `403` for a foreign origin, ...).
    pub async fn websocket(self) -> Result<(TestResponse, crate::ws::WebSocket), TestResponse> {
        self.websocket_with(None).await
    }

    /// [`websocket`](TestRequest::websocket), offering permessage-deflate with `compression`
    /// (the server's answer is checked against it).
    pub async fn websocket_with(
        self,
        compression: Option<crate::ws::DeflateConfig>,
    ) -> Result<(TestResponse, crate::ws::WebSocket), TestResponse> {
        let handshake = crate::ws::ClientHandshake::new(compression);
        let mut request = self.request;
        for (name, value) in handshake.headers() {
            request = request.with_header(name, &value);
        }
        let (res, io) = self.client.send_upgrade(request).await?;
        let upgraded =
            crate::http::Upgraded::new(io, Bytes::new(), crate::ShutdownSignal::default());
        match handshake.finish(|name| res.header(name), upgraded) {
            Ok(socket) => Ok((res, socket)),
            Err(why) => panic!("the app's WebSocket handshake is wrong: {why}"),
        }
    }
}

/// A response seen by [`TestClient`].
#[derive(Debug)]
pub struct TestResponse {
    response: Response,
}

impl TestResponse {
    /// The status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.response.header(name)
    }

    /// The body as text (lossy for non-UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(self.response.body()).into_owned()
    }

    /// The body as bytes.
    pub fn bytes(&self) -> &Bytes {
        self.response.body()
    }

    /// The body parsed as JSON.
    ///
    /// # Panics
    /// If the body is not JSON of type `T` (this is a test helper: the panic is the test
    /// failure, with the body in the message).
    pub fn json<T: DeserializeOwned>(&self) -> T {
        serde_json::from_slice(self.response.body()).unwrap_or_else(|e| {
            panic!(
                "response body is not the expected JSON ({e}): {}",
                self.text()
            )
        })
    }

    /// Every `Set-Cookie` value, in order.
    pub fn set_cookies(&self) -> Vec<&str> {
        self.response.headers_all("set-cookie").collect()
    }

    /// Whether it is part of a page, as htmx swaps it in: HTML (`text/html`) that is not a
    /// whole document (no `<html` in it, in any case).
    ///
    /// ```
    /// use chirp::{App, Method, Request, Response};
    /// use chirp::testing::TestClient;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.route("/", |req: Request| async move {
    ///     match req.htmx().is_htmx() {
    ///         true => Response::html("<ul id=\"task-list\"></ul>"),
    ///         false => Response::html("<!doctype html><html><body><ul id=\"task-list\"></ul></body></html>"),
    ///     }
    /// });
    /// let client = TestClient::new(app);
    /// assert!(client.htmx(Method::Get, "/").send().await.is_fragment());
    /// assert!(!client.get("/").await.is_fragment());
    /// # }
    /// ```
    pub fn is_fragment(&self) -> bool {
        let html = self.response.content_type().is_some_and(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/html")
        });
        html && !self
            .response
            .body()
            .windows(5)
            .any(|w| w.eq_ignore_ascii_case(b"<html"))
    }

    /// Where `HX-Redirect` sends htmx, if the response has one.
    pub fn hx_redirect(&self) -> Option<&str> {
        self.response.header("hx-redirect")
    }

    /// Whether `HX-Trigger` holds event `name`, written as htmx reads it: comma-separated
    /// names or a JSON object.
    ///
    /// ```
    /// use chirp::htmx::Hx;
    /// use chirp::testing::TestClient;
    /// use chirp::{App, Method, Request};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let mut app = App::new();
    /// app.post("/tasks", |_req: Request| async {
    ///     Hx::new("<li>milk</li>").trigger("taskAdded").trigger_with("count", &3)
    /// });
    /// let client = TestClient::new(app);
    /// let res = client.htmx(Method::Post, "/tasks").send().await;
    /// assert!(res.hx_trigger_has("taskAdded") && !res.hx_trigger_has("task"));
    /// assert_eq!(res.hx_trigger_detail::<u32>("count"), Some(3));
    /// # }
    /// ```
    pub fn hx_trigger_has(&self, name: &str) -> bool {
        self.response
            .headers_all("hx-trigger")
            .flat_map(crate::http::htmx::parse_triggers)
            .any(|(event, _)| event == name)
    }

    /// The detail of event `name` in `HX-Trigger`, as a `T` (`serde_json::Value`, or a type
    /// of the test's own): `None` when the event is not there; a name given without a detail
    /// reads as JSON `null`.
    ///
    /// # Panics
    /// When the detail does not fit `T` (a test helper: the panic is the test failure).
    pub fn hx_trigger_detail<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let (_, detail) = self
            .response
            .headers_all("hx-trigger")
            .flat_map(crate::http::htmx::parse_triggers)
            .find(|(event, _)| event == name)?;
        let json = detail.unwrap_or_else(|| "null".to_owned());
        Some(serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!("the detail of HX-Trigger event {name:?} does not fit ({e}): {json}")
        }))
    }

    /// The event stream this response carries, to read event by event.
    ///
    /// # Panics
    /// When the response is not an event stream (`text/event-stream`), with its status and
    /// body in the message.
    pub fn into_sse(mut self) -> SseReader {
        let stream = match self.response.content_type() == Some("text/event-stream") {
            true => self.response.take_stream(),
            false => None,
        };
        let Some(stream) = stream else {
            panic!(
                "expected an event stream, got {} {:?}: {}",
                self.status().as_u16(),
                self.response.content_type(),
                self.text()
            );
        };
        SseReader {
            response: self,
            stream: Some(stream),
            parser: SseParser::default(),
            events: VecDeque::new(),
        }
    }

    /// The whole response.
    pub fn response(&self) -> &Response {
        &self.response
    }

    /// The whole response, to take an event stream's body
    /// ([`Response::take_stream`]).
    pub fn response_mut(&mut self) -> &mut Response {
        &mut self.response
    }
}

/// One Server-Sent Event, as a browser's `EventSource` receives it ([`SseReader`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// Its type (`event:`), `message` when it has none.
    pub event: String,
    /// Its data: the `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` it carried, if any. (A browser's `lastEventId` keeps the last one sent,
    /// across events.)
    pub id: Option<String>,
    /// The reconnection time it set (`retry:`, in milliseconds), if any.
    pub retry: Option<u64>,
}

/// An event stream read event by event, parsed as the WHATWG HTML standard's `EventSource`
/// parses it (lines ending in CRLF, LF or CR; `data:` lines joined with `\n`; comments and
/// events without data skipped; an event cut off by the end of the stream dropped). From
/// [`TestClient::get_sse`] or [`TestResponse::into_sse`]. The stream ends when the app ends
/// it, or when [`TestClient::begin_shutdown`] is called.
pub struct SseReader {
    response: TestResponse,
    stream: Option<crate::http::BodyStream>,
    parser: SseParser,
    events: VecDeque<SseEvent>,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseReader")
            .field("status", &self.response.status())
            .field("ended", &self.stream.is_none())
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl SseReader {
    /// The response that carries the stream (status, headers; its body is the stream).
    pub fn response(&self) -> &TestResponse {
        &self.response
    }

    /// Whether the stream has ended (no event will come after those already read).
    pub fn is_ended(&self) -> bool {
        self.stream.is_none() && self.events.is_empty()
    }

    /// The next event, waiting for it at most `timeout`: `None` when none came in that time
    /// or the stream ended ([`is_ended`](SseReader::is_ended) tells which). A stream that
    /// fails ends, as a cut connection ends it for a browser.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.next_before(deadline).await
    }

    async fn next_before(&mut self, deadline: tokio::time::Instant) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            let stream = self.stream.as_mut()?;
            let next = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx));
            match tokio::time::timeout_at(deadline, next).await {
                Err(_elapsed) => return None,
                Ok(Some(Ok(chunk))) => self.parser.feed(&chunk, false, &mut self.events),
                Ok(None | Some(Err(_))) => {
                    self.stream = None;
                    self.parser.feed(&[], true, &mut self.events);
                }
            }
        }
    }

    /// The next `n` events, all within `timeout`.
    ///
    /// # Panics
    /// When fewer than `n` events come within `timeout` (the message gives those that did,
    /// and whether the stream ended): a test helper, the panic is the test failure.
    pub async fn take(&mut self, n: usize, timeout: Duration) -> Vec<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            match self.next_before(deadline).await {
                Some(event) => events.push(event),
                None => panic!(
                    "expected {n} events within {timeout:?}, got {} ({}): {events:?}",
                    events.len(),
                    match self.is_ended() {
                        true => "the stream ended",
                        false => "timed out",
                    }
                ),
            }
        }
        events
    }
}

/// The state of the event stream parser between chunks.
#[derive(Debug, Default)]
struct SseParser {
    /// Bytes of a line not yet ended.
    buf: Vec<u8>,
    /// Whether the stream's first bytes were seen (a leading BOM is dropped).
    started: bool,
    event: String,
    data: String,
    /// Whether a `data` field was seen (the data may be empty).
    has_data: bool,
    id: Option<String>,
    retry: Option<u64>,
}

impl SseParser {
    /// Feeds `chunk` (`end`: the stream ended after it), pushing every event it completes.
    fn feed(&mut self, chunk: &[u8], end: bool, out: &mut VecDeque<SseEvent>) {
        self.buf.extend_from_slice(chunk);
        if !self.started {
            const BOM: &[u8] = "\u{FEFF}".as_bytes();
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) && !end {
                return; // perhaps the start of a BOM
            }
            self.started = true;
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
        }
        let mut at = 0;
        while let Some(i) = self.buf[at..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        {
            let i = at + i;
            let mut next = i + 1;
            if self.buf[i] == b'\r' {
                match self.buf.get(i + 1) {
                    Some(b'\n') => next += 1,
                    // A CR at the end of what came so far may be the start of a CRLF.
                    None if !end => break,
                    _ => {}
                }
            }
            let line = String::from_utf8_lossy(&self.buf[at..i]).into_owned();
            self.line(&line, out);
            at = next;
        }
        self.buf.drain(..at);
        if end {
            // An event not ended by a blank line is dropped, as EventSource drops it.
            self.buf.clear();
        }
    }

    fn line(&mut self, line: &str, out: &mut VecDeque<SseEvent>) {
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            let id = self.id.take();
            let retry = self.retry.take();
            if std::mem::take(&mut self.has_data) {
                out.push_back(SseEvent {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data,
                    id,
                    retry,
                });
            }
            return;
        }
        if line.starts_with(':') {
            return; // a comment: keep-alives
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// An event stream handed to the test, ended once shutdown begins, as the server ends it.
struct UntilShutdown {
    stream: crate::http::BodyStream,
    /// Completes when shutdown begins (it holds the waker while the stream waits).
    stopped: Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
}

impl UntilShutdown {
    fn new(stream: crate::http::BodyStream, shutdown: Arc<Shutdown>) -> UntilShutdown {
        UntilShutdown {
            stream,
            stopped: Box::pin(async move { shutdown.wait().await }),
        }
    }
}

impl futures_core::Stream for UntilShutdown {
    type Item = Result<Bytes, crate::http::BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.stopped.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        this.stream.as_mut().poll_next(cx)
    }
}

/// A `multipart/form-data` body (RFC 7578), what a browser sends for a form with a file
/// input: text fields and files, in order, for [`TestRequest::multipart`] and
/// [`TestClient::post_multipart`].
///
/// The boundary is random unless [`MultipartBody::with_boundary`] sets one. Names and file
/// names are escaped as browsers escape them (the WHATWG HTML standard: `"` as `%22`, CR
/// as `%0D`, LF as `%0A`).
///
/// ```
/// use chirp::testing::MultipartBody;
/// let form = MultipartBody::new()
///     .with_boundary("XyZ")
///     .text("a", "1")
///     .file("f", "x.txt", "text/plain", b"hi".to_vec());
/// assert_eq!(form.content_type(), "multipart/form-data; boundary=XyZ");
/// assert_eq!(
///     form.into_bytes(),
///     "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
///      --XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\n\
///      Content-Type: text/plain\r\n\r\nhi\r\n--XyZ--\r\n"
/// );
/// ```
#[derive(Debug, Clone)]
pub struct MultipartBody {
    boundary: String,
    parts: Vec<MultipartPart>,
}

/// One part of a [`MultipartBody`].
#[derive(Debug, Clone)]
struct MultipartPart {
    name: String,
    /// The file name and content type of a file part; `None` for a text field.
    file: Option<(String, String)>,
    content: Bytes,
}

impl Default for MultipartBody {
    fn default() -> Self {
        MultipartBody::new()
    }
}

impl MultipartBody {
    /// An empty form with a random boundary.
    pub fn new() -> MultipartBody {
        MultipartBody {
            boundary: format!("chirp-test-{}", crate::security::random_hex(16)),
            parts: Vec::new(),
        }
    }

    /// Uses `boundary` instead of a random one (to compare bodies byte for byte).
    ///
    /// # Panics
    /// If `boundary` is not 1 to 70 characters of those RFC 2046 allows (letters, digits and
    /// `'()+_,-./:=?`, spaces inside): a test helper, the panic is the test failure.
    pub fn with_boundary(mut self, boundary: impl Into<String>) -> MultipartBody {
        let boundary = boundary.into();
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b);
        assert!(
            (1..=70).contains(&boundary.len())
                && boundary.bytes().all(allowed)
                && !boundary.ends_with(' '),
            "MultipartBody::with_boundary: {boundary:?} is not a valid boundary (RFC 2046: 1 to \
             70 letters, digits or '()+_,-./:=?, spaces inside)"
        );
        self.boundary = boundary;
        self
    }

    /// Adds a text field.
    pub fn text(mut self, name: impl Into<String>, value: impl Into<String>) -> MultipartBody {
        self.parts.push(MultipartPart {
            name: name.into(),
            file: None,
            content: Bytes::from(value.into()),
        });
        self
    }

    /// Adds a file: its field `name`, the `file_name` the browser sends, its `content_type`
    /// and its bytes.
    pub fn file(
        mut self,
        name: impl Into<String>,
        file_name: impl Into<String>,
        content_type: impl Into<String>,
        content: impl Into<Bytes>,
    ) -> MultipartBody {
        self.parts.push(MultipartPart {
            name: name.into(),
            file: Some((file_name.into(), content_type.into())),
            content: content.into(),
        });
        self
    }

    /// The boundary.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` header's value: `multipart/form-data; boundary=…` (quoted when the
    /// boundary holds characters a token cannot).
    pub fn content_type(&self) -> String {
        let token = self
            .boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'+_-.".contains(&b));
        match token {
            true => format!("multipart/form-data; boundary={}", self.boundary),
            false => format!("multipart/form-data; boundary=\"{}\"", self.boundary),
        }
    }

    /// The body's bytes.
    ///
    /// # Panics
    /// If a part's content holds the boundary's delimiter (only possible with a boundary set
    /// by [`MultipartBody::with_boundary`]): the body could not be parsed back.
    pub fn into_bytes(self) -> Bytes {
        let delimiter = format!("\r\n--{}", self.boundary);
        let mut out = Vec::new();
        for part in &self.parts {
            let clash = part
                .content
                .windows(delimiter.len())
                .any(|w| w == delimiter.as_bytes())
                || part.content.starts_with(&delimiter.as_bytes()[2..]);
            assert!(
                !clash,
                "MultipartBody: the content of part {:?} holds the boundary {:?}; choose another",
                part.name, self.boundary
            );
            out.extend_from_slice(b"--");
            out.extend_from_slice(self.boundary.as_bytes());
            out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(escape_form_name(&part.name).as_bytes());
            out.push(b'"');
            if let Some((file_name, content_type)) = &part.file {
                out.extend_from_slice(b"; filename=\"");
                out.extend_from_slice(escape_form_name(file_name).as_bytes());
                out.extend_from_slice(b"\"\r\nContent-Type: ");
                out.extend_from_slice(content_type.as_bytes());
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(&part.content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        Bytes::from(out)
    }
}

/// A field or file name as browsers write it in `Content-Disposition` (the WHATWG HTML
/// standard's multipart/form-data encoding): `"`, CR and LF percent-encoded.
fn escape_form_name(name: &str) -> String {
    name.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = VecDeque::new();
        for chunk in chunks {
            parser.feed(chunk, false, &mut out);
        }
        parser.feed(&[], true, &mut out);
        out.into()
    }

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.to_owned(),
            data: data.to_owned(),
            id: id.map(str::to_owned),
            retry: None,
        }
    }

    #[test]
    fn events_parse_as_event_source_parses_them() {
        let stream = b"\xEF\xBB\xBF: keep-alive\n\nevent: task-added\nid: 7\ndata: <li>a</li>\ndata:  b\n\n\
                       data\r\n\r\ndata: x\rretry: 1500\r\rdata: a\r\ndata: b\r\n\r\ndata: no blank line";
        let whole = parse(&[stream]);
        assert_eq!(
            whole,
            [
                ev("task-added", "<li>a</li>\n b", Some("7")),
                ev("message", "", None),
                SseEvent {
                    retry: Some(1500),
                    ..ev("message", "x", None)
                },
                ev("message", "a\nb", None),
            ]
        );
        // Split anywhere, even inside a CRLF or a character, it reads the same.
        for at in 0..stream.len() {
            assert_eq!(
                parse(&[&stream[..at], &stream[at..]]),
                whole,
                "split at {at}"
            );
        }
    }

    #[test]
    fn odd_fields_are_ignored() {
        let events = parse(&[b"event: a\nretry: 1x\nid: a\0b\nfoo: bar\nevent\ndata:\n\n"]);
        assert_eq!(events, [ev("message", "", None)]);
        assert_eq!(parse(&[b"event: only\n\n"]), []);
    }
}
