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
//! A test can also play the client's address ([`TestClient::with_peer_addr`],
//! [`TestRequest::peer_addr`]), send multipart forms ([`MultipartBody`]) and move time
//! forward ([`TestClient::clock`]): sessions expire and rate-limit windows pass with no
//! sleeping.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

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
