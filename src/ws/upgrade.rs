//! From a request to an open socket: [`Request::websocket`] checks the handshake,
//! [`WebSocketUpgrade`] takes the socket's settings, and
//! [`on_upgrade`](WebSocketUpgrade::on_upgrade) answers `101` and runs the application's
//! callback on the socket, closing it with 1001 when the server shuts down.

use std::future::Future;
use std::time::Duration;

use super::deflate::{negotiate, DeflateConfig};
use super::frame::Role;
use super::handshake::{accept_key, check, choose_protocol, origin_allowed};
use super::message::close_code;
use super::socket::{Settings, WebSocket};
use crate::http::{IntoResponse, Request, Response};
use crate::middleware::cors::OriginAllowed;
use crate::{ConfigurationError, Error, HttpError};

impl Request {
    /// This request as a WebSocket opening handshake (RFC 6455 §4.2.1), to answer with
    /// [`WebSocketUpgrade::on_upgrade`]. The handshake is checked here: not `GET` is `405`;
    /// no `Upgrade: websocket` or `Connection: Upgrade`, or not HTTP/1.1, is `426`; a
    /// `Sec-WebSocket-Version` other than 13 is `426` with `Sec-WebSocket-Version: 13`; a
    /// missing or malformed `Sec-WebSocket-Key` is `400`. The `Origin` is checked when the
    /// upgrade is answered.
    ///
    /// The middleware ran before the handler, as for any request: a route behind
    /// [`AuthMiddleware`](crate::middleware::auth::AuthMiddleware)'s `login_required` is
    /// refused (`401`, no `101`) without a signed-in session, and the session, the current
    /// user and the request id are readable inside the socket's task.
    ///
    /// ```
    /// use chirp::ws::Message;
    /// use chirp::{App, Request};
    ///
    /// let mut app = App::new();
    /// app.route("/ws/echo", |req: Request| async move {
    ///     Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
    ///         while let Some(Ok(msg)) = socket.recv().await {
    ///             if matches!(msg, Message::Text(_) | Message::Binary(_))
    ///                 && socket.send(msg).await.is_err()
    ///             {
    ///                 break;
    ///             }
    ///         }
    ///     }))
    /// });
    /// ```
    pub fn websocket(&self) -> Result<WebSocketUpgrade, HttpError> {
        let key = check(self)?;
        let join = |name: &str| {
            let mut values = self.headers().get_all(name).peekable();
            values.peek()?;
            Some(values.collect::<Vec<_>>().join(","))
        };
        Ok(WebSocketUpgrade {
            accept: accept_key(key),
            origin: self.header("origin").map(str::to_owned),
            host: self.host().map(str::to_owned),
            cors_allowed: self.extensions().get::<OriginAllowed>().is_some(),
            offered_protocols: join("sec-websocket-protocol"),
            offered_extensions: join("sec-websocket-extensions"),
            settings: Settings::default(),
            compression: Some(DeflateConfig::default()),
            protocols: Vec::new(),
            origins: Vec::new(),
        })
    }
}

/// A checked WebSocket handshake, waiting for its settings and the callback that runs the
/// socket (see [`Request::websocket`]).
///
/// Defaults: messages and frames up to 1 MiB (after decompression), a Ping after 30 s
/// without traffic, closed after 75 s without anything from the client (pongs count), 1 s
/// for the peer to answer a Close, buffers kept at 4 KiB between messages, permessage-deflate
/// accepted when the client offers it ([`DeflateConfig::default`]), no subprotocol, and
/// only pages of the server's own origin (plus those a
/// [`CorsMiddleware`](crate::middleware::cors::CorsMiddleware) allows, and
/// [`allow_origin`](WebSocketUpgrade::allow_origin)'s).
#[derive(Debug)]
#[must_use = "answer the request with `on_upgrade`"]
pub struct WebSocketUpgrade {
    accept: String,
    origin: Option<String>,
    host: Option<String>,
    cors_allowed: bool,
    offered_protocols: Option<String>,
    offered_extensions: Option<String>,
    settings: Settings,
    compression: Option<DeflateConfig>,
    protocols: Vec<String>,
    origins: Vec<String>,
}

impl WebSocketUpgrade {
    /// The largest message taken, in bytes after decompression (default 1 MiB); a larger
    /// one closes the socket with 1009. Also lowers the largest frame to it.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.settings.max_message = bytes;
        self.settings.max_frame = self.settings.max_frame.min(bytes);
        self
    }

    /// The largest frame taken, in bytes (default: the largest message); a larger one
    /// closes the socket with 1009.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.settings.max_frame = bytes;
        self
    }

    /// How long the client may be quiet before a Ping is sent (default 30 s; `None`: never).
    pub fn ping_interval(mut self, every: Option<Duration>) -> Self {
        self.settings.ping_interval = every;
        self
    }

    /// How long the client may send nothing at all (not even a Pong) before the socket is
    /// closed (default 75 s; `None`: never).
    pub fn idle_timeout(mut self, after: Option<Duration>) -> Self {
        self.settings.idle_timeout = after;
        self
    }

    /// How long a Close sent waits for the client's (default 1 s), also at shutdown.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.settings.close_timeout = timeout;
        self
    }

    /// The capacity the socket's read and write buffers keep between messages (default
    /// 4 KiB): a large message grows them for its time, then they are let go. What an idle
    /// socket holds.
    ///
    /// It is also the bound of the send queue: frames [`feed`](WebSocket::feed) queues wait
    /// in the write buffer up to this many bytes; past it, `feed` writes them out and waits
    /// for the client, as `send` always does. A slow client makes the sender wait; memory
    /// does not grow.
    pub fn buffer_size(mut self, bytes: usize) -> Self {
        self.settings.buffer_size = bytes;
        self
    }

    /// permessage-deflate (RFC 7692): accepted with `config` when the client offers it
    /// (`None`: declined, every message sent as it is).
    pub fn compression(mut self, config: Option<DeflateConfig>) -> Self {
        self.compression = config;
        self
    }

    /// The subprotocols the server speaks: the first one the client offers
    /// (`Sec-WebSocket-Protocol`) is agreed, and readable as
    /// [`WebSocket::protocol`]; none in common, none agreed (the client decides whether to
    /// go on, RFC 6455 §4.1).
    pub fn protocols(mut self, protocols: &[&str]) -> Self {
        self.protocols = protocols.iter().map(|p| (*p).to_owned()).collect();
        self
    }

    /// Allows pages of `origin` (`https://app.example.com`, or `*` for any) to open the
    /// socket, besides the server's own origin. A browser sends the user's cookies with a
    /// WebSocket handshake from any site and applies no CORS to it: an origin not allowed
    /// is answered `403` with no `101`.
    pub fn allow_origin(mut self, origin: &str) -> Self {
        self.origins.push(origin.trim().to_owned());
        self
    }

    /// The socket's settings, checked.
    fn validate(&self) -> Result<(), ConfigurationError> {
        let s = &self.settings;
        if s.max_message == 0 || s.max_frame == 0 {
            return Err(ConfigurationError::new(
                "WebSocketUpgrade: max_message_size and max_frame_size must be at least 1 byte",
            ));
        }
        if s.ping_interval.is_some_and(|d| d.is_zero())
            || s.idle_timeout.is_some_and(|d| d.is_zero())
        {
            return Err(ConfigurationError::new(
                "WebSocketUpgrade: a zero ping_interval or idle_timeout; use None to switch it off",
            ));
        }
        if let Some(c) = &self.compression {
            c.validate()?;
        }
        Ok(())
    }

    /// Answers `101 Switching Protocols` (with `Sec-WebSocket-Accept`, the agreed extension
    /// and subprotocol) and, once it is written, runs `callback` with the open socket, in
    /// the request's task-local scopes (session, current user, request id).
    ///
    /// A page of an origin not allowed (see [`allow_origin`](Self::allow_origin)) gets
    /// `403` instead. When the server begins shutting down, the socket is sent Close 1001
    /// ("going away") and `callback` has the close timeout to end (its `recv` returns the
    /// client's Close, then `None`); then it is dropped. A callback that returns without
    /// closing the socket has it closed for it, with 1000.
    pub fn on_upgrade<F, Fut>(self, callback: F) -> Response
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(origin) = &self.origin {
            if !self.cors_allowed && !origin_allowed(origin, self.host.as_deref(), &self.origins) {
                tracing::warn!(
                    origin = origin.as_str(),
                    host = self.host.as_deref(),
                    "websocket refused: a page of another origin (allow it with \
                     WebSocketUpgrade::allow_origin or CorsConfig::allow_origin)"
                );
                return HttpError::forbidden("this WebSocket takes pages of its own origin only")
                    .into_response();
            }
        }
        if let Err(e) = self.validate() {
            return Error::from(e).into_response();
        }
        let agreed = match (&self.compression, &self.offered_extensions) {
            (Some(config), Some(offers)) => {
                negotiate(std::iter::once(offers.as_str()), config).map(|a| (a, config.clone()))
            }
            _ => None,
        };
        let protocol = self
            .offered_protocols
            .as_deref()
            .and_then(|offered| choose_protocol(offered, &self.protocols));
        let settings = self.settings;
        let mut res = Response::upgrade("websocket", {
            let agreed = agreed.clone();
            let protocol = protocol.clone();
            move |io| async move {
                let compression = agreed.map(|(a, config)| {
                    (
                        a.inflate(Role::Server),
                        a.deflate(Role::Server, config.level_value()),
                    )
                });
                let shutdown = io.shutdown_signal();
                let close_timeout = settings.close_timeout;
                let socket = WebSocket::new(io, Role::Server, settings, compression, protocol);
                let writer = socket.writer();
                let mut running = std::pin::pin!(callback(socket));
                let stopping = tokio::select! {
                    biased;
                    () = &mut running => false,
                    () = shutdown.wait() => true,
                };
                if !stopping {
                    // The callback returned without closing: close for it (1000), rather
                    // than drop the connection under the client (which would see 1006).
                    if !writer.is_closing() {
                        let _ = tokio::time::timeout(
                            close_timeout,
                            writer.close(close_code::NORMAL, ""),
                        )
                        .await;
                    }
                    let _ = tokio::time::timeout(close_timeout, writer.shut()).await;
                    return;
                }
                // RFC 6455 §7.4.1: 1001, the server is going away. The callback's `recv`
                // sees the client's answer; after the close timeout it is dropped.
                let deadline = tokio::time::Instant::now() + close_timeout;
                let _ = tokio::time::timeout_at(
                    deadline,
                    writer.close(close_code::GOING_AWAY, "the server is shutting down"),
                )
                .await;
                let _ = tokio::time::timeout_at(deadline, running).await;
                let _ = tokio::time::timeout_at(deadline, writer.shut()).await;
            }
        })
        .with_header("sec-websocket-accept", self.accept);
        if let Some((agreed, _)) = &agreed {
            res = res.with_header("sec-websocket-extensions", agreed.response_header());
        }
        if let Some(protocol) = protocol {
            res = res.with_header("sec-websocket-protocol", protocol);
        }
        res
    }
}
