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

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::http::{Method, Request, Response, StatusCode};
use crate::service::Service;
use crate::shutdown::Shutdown;

/// An in-process client with a cookie jar.
pub struct TestClient {
    service: Service,
    jar: Mutex<Vec<(String, String)>>,
    shutdown: Arc<Shutdown>,
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
        }
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

    /// Sends any request; the jar's cookies are added unless it already has a `Cookie` header.
    pub async fn send(&self, mut req: Request) -> TestResponse {
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
