//! An open WebSocket on a handed-over connection: whole messages in and out, the control
//! frames answered for you (a Pong for each Ping, the close handshake), a heartbeat, and a
//! reader and a writer that can live in different tasks.
//!
//! Reading and writing are the two halves of the connection. The reader owns the read half,
//! its buffer and the decoder; the writer (cloneable) owns the write half behind an async
//! mutex, with its buffer and the encoder. The reader takes the writer's lock only to answer
//! a Ping or a Close. Each `send` writes its frame before it returns: a slow client makes
//! `send` wait (backpressure) instead of growing a queue, so what a socket holds is its two
//! buffers, which shrink back to [`WebSocketUpgrade::buffer_size`] after a large message.
//! `feed` is the batched form: the frame waits in the write buffer (up to its size) until the
//! reader is about to wait for input, so a burst of requests costs one write for its
//! replies, as actix's actors batch theirs.
//!
//! Control frames are handled while the application reads: keep a task in
//! [`WebSocket::recv`] (or [`WsReader::recv`]) for the life of the socket, as every
//! WebSocket library asks.
//!
//! [`WebSocketUpgrade::buffer_size`]: super::WebSocketUpgrade::buffer_size

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Mutex;
use tokio::time::{Instant, Sleep};

use super::deflate::{Deflate, Inflate};
use super::error::WsError;
use super::frame::OpCode;
use super::frame::Role;
use super::message::{close_code, CloseFrame, Message, Utf8Bytes};
use super::protocol::{Decoder, Encoder, Frame, Limits};
use crate::http::Upgraded;

/// The most the read buffer grows ahead of the bytes received.
const READ_AHEAD: usize = 64 * 1024;

/// What a socket was opened with (see [`WebSocketUpgrade`](super::WebSocketUpgrade)).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) max_message: usize,
    pub(crate) max_frame: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) close_timeout: Duration,
    /// The capacity each buffer keeps between messages.
    pub(crate) buffer_size: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            max_message: 1 << 20,
            max_frame: 1 << 20,
            ping_interval: Some(Duration::from_secs(30)),
            idle_timeout: Some(Duration::from_secs(75)),
            close_timeout: Duration::from_secs(1),
            buffer_size: 4096,
        }
    }
}

/// An open WebSocket: [`recv`](WebSocket::recv) and [`send`](WebSocket::send) whole
/// messages, or [`split`](WebSocket::split) it to read and write from different tasks.
///
/// ```
/// use chirp::ws::{Message, WebSocket};
///
/// /// Sends every message back, until the client closes.
/// async fn echo(mut socket: WebSocket) {
///     while let Some(Ok(msg)) = socket.recv().await {
///         match msg {
///             Message::Text(_) | Message::Binary(_) => {
///                 if socket.send(msg).await.is_err() {
///                     break;
///                 }
///             }
///             // Pings are answered already; a Close ends the loop with the next recv.
///             _ => {}
///         }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct WebSocket {
    reader: WsReader,
}

impl WebSocket {
    /// A socket on `io` (the handshake done), for `role`.
    pub(crate) fn new(
        io: Upgraded,
        role: Role,
        settings: Settings,
        compression: Option<(Inflate, Deflate)>,
        protocol: Option<String>,
    ) -> WebSocket {
        let (read, write) = tokio::io::split(io);
        let (inflate, deflate) = match compression {
            Some((i, d)) => (Some(i), Some(d)),
            None => (None, None),
        };
        let compressed = inflate.is_some();
        let writer = WsWriter {
            shared: Arc::new(Shared {
                state: Mutex::new(WriteState {
                    io: write,
                    buf: BytesMut::new(),
                    encoder: Encoder::new(role, deflate),
                    keep: settings.buffer_size,
                    shut: false,
                }),
                closing: AtomicBool::new(false),
                fed: AtomicBool::new(false),
                protocol,
                compressed,
            }),
        };
        let limits = Limits {
            max_message: settings.max_message,
            max_frame: settings.max_frame,
        };
        let heartbeat = Heartbeat::new(&settings);
        WebSocket {
            reader: WsReader {
                io: read,
                buf: BytesMut::new(),
                decoder: Decoder::new(role, limits, inflate),
                writer,
                settings,
                heartbeat,
                close_deadline: None,
                done: false,
            },
        }
    }

    /// The next message, `None` once the socket is closed. Pings are answered before they
    /// are returned; a Close is answered (its code echoed) and returned, and the next call
    /// gives `None`. A protocol violation closes the socket (1002, 1007 for invalid UTF-8,
    /// 1009 for a message over the limit) and is returned as [`WsError::Protocol`].
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        self.reader.recv().await
    }

    /// Sends `msg` (a [`Message`], a `String`, a `&'static str`, `Bytes`), waiting until
    /// the connection has taken it. Sending a [`Message::Close`] begins the close handshake:
    /// keep calling `recv` until it returns `None`.
    pub async fn send(&mut self, msg: impl Into<Message>) -> Result<(), WsError> {
        self.reader.writer.send(msg).await
    }

    /// Queues `msg` in the socket's write buffer, to go out with the next
    /// [`flush`](WebSocket::flush), `send`, or `recv` that waits for the network (`recv`
    /// flushes before it waits), or at once when the buffer is past its size. An echo or a
    /// request/response loop that feeds its replies writes them once per burst of input,
    /// rather than once per message.
    ///
    /// ```
    /// use chirp::ws::{Message, WebSocket};
    ///
    /// async fn echo(mut socket: WebSocket) {
    ///     while let Some(Ok(msg)) = socket.recv().await {
    ///         if matches!(msg, Message::Text(_) | Message::Binary(_))
    ///             && socket.feed(msg).await.is_err()
    ///         {
    ///             break;
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn feed(&mut self, msg: impl Into<Message>) -> Result<(), WsError> {
        self.reader.writer.feed(msg).await
    }

    /// Writes what [`feed`](WebSocket::feed) queued.
    pub async fn flush(&mut self) -> Result<(), WsError> {
        self.reader.writer.flush().await
    }

    /// Begins the close handshake with `code` and `reason` (see
    /// [`close_code`](super::close_code)); `recv` then returns the peer's Close, or `None`
    /// after the close timeout.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), WsError> {
        self.reader.writer.close(code, reason).await
    }

    /// The subprotocol agreed at the handshake (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.reader.writer.protocol()
    }

    /// Whether permessage-deflate was agreed.
    pub fn is_compressed(&self) -> bool {
        self.reader.writer.shared.compressed
    }

    /// The reader and the writer, to use from different tasks (the writer is `Clone`: a
    /// task per producer can hold one). Keep reading: Pings are answered, and the close
    /// handshake done, by the reader.
    ///
    /// ```
    /// use chirp::ws::{Message, WebSocket};
    ///
    /// async fn ticker(socket: WebSocket) {
    ///     let (mut reader, writer) = socket.split();
    ///     let ticks = tokio::spawn(async move {
    ///         for n in 0.. {
    ///             if writer.send(format!("tick {n}")).await.is_err() {
    ///                 break; // closed
    ///             }
    ///             tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ///         }
    ///     });
    ///     while let Some(Ok(_)) = reader.recv().await {}
    ///     ticks.abort();
    /// }
    /// ```
    pub fn split(self) -> (WsReader, WsWriter) {
        let writer = self.reader.writer.clone();
        (self.reader, writer)
    }

    /// A handle on the writer (for the shutdown of the upgrade).
    pub(crate) fn writer(&self) -> WsWriter {
        self.reader.writer.clone()
    }
}

/// The reading half of a [`WebSocket`] (see [`WebSocket::split`]).
pub struct WsReader {
    io: ReadHalf<Upgraded>,
    buf: BytesMut,
    decoder: Decoder,
    writer: WsWriter,
    settings: Settings,
    heartbeat: Option<Heartbeat>,
    /// When a Close we sent stops waiting for the peer's.
    close_deadline: Option<Instant>,
    done: bool,
}

impl std::fmt::Debug for WsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsReader")
            .field("buffered", &self.buf.len())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// What a read ended with, when it did not bring bytes.
enum Wake {
    Read(std::io::Result<usize>),
    Tick,
    CloseTimeout,
}

impl WsReader {
    /// The next message; see [`WebSocket::recv`].
    pub async fn recv(&mut self) -> Option<Result<Message, WsError>> {
        if self.done {
            return None;
        }
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(frame)) => {
                    if let Some(h) = &mut self.heartbeat {
                        h.received = true;
                    }
                    self.trim_buffer();
                    if let Some(out) = self.on_frame(frame).await {
                        return Some(out);
                    }
                }
                Ok(None) => {
                    if let Some(out) = self.read_more().await {
                        return out;
                    }
                }
                Err(e) => {
                    // RFC 6455 §7.1.7: fail the connection, with the code that says why.
                    self.finish(Some((e.code, e.reason))).await;
                    self.linger().await;
                    return Some(Err(WsError::Protocol {
                        code: e.code,
                        reason: e.reason,
                    }));
                }
            }
        }
    }

    /// What `recv` returns for `frame` (`None`: nothing, read on).
    async fn on_frame(&mut self, frame: Frame) -> Option<Result<Message, WsError>> {
        let closing = self.writer.shared.closing.load(Ordering::Acquire);
        match frame {
            // After our Close, data is read and dropped until the peer's Close (§1.4).
            Frame::Text(_) | Frame::Binary(_) | Frame::Ping(_) | Frame::Pong(_) if closing => None,
            Frame::Text(text) => Some(Ok(Message::Text(Utf8Bytes::from_checked(text)))),
            Frame::Binary(bytes) => Some(Ok(Message::Binary(bytes))),
            Frame::Ping(payload) => {
                // §5.5.2: a Pong with the same payload, as soon as is practical. A write
                // that fails is not the reader's end: what the peer sent before it left
                // (its Close, say) is still to be read, and the next read tells.
                let _ = self.writer.control(OpCode::Pong, &payload).await;
                Some(Ok(Message::Ping(payload)))
            }
            Frame::Pong(payload) => Some(Ok(Message::Pong(payload))),
            Frame::Close(close) => {
                let echo = close.as_ref().map(|(code, _)| *code);
                let frame = close.map(|(code, reason)| CloseFrame {
                    code,
                    reason: Utf8Bytes::from_checked(reason),
                });
                // §5.5.1: answer a Close with a Close (echoing its code), unless ours went
                // first; then the server closes the TCP connection first (§7.1.1).
                self.finish(echo.map(|code| (code, ""))).await;
                Some(Ok(Message::Close(frame)))
            }
        }
    }

    /// Reads more bytes, watching the heartbeat and the close timeout. `Some` ends `recv`.
    async fn read_more(&mut self) -> Option<Option<Result<Message, WsError>>> {
        if self.writer.shared.fed.load(Ordering::Acquire) {
            // Replies fed while the input lasted go out before the wait, in one write.
            if let Err(e) = self.writer.flush().await {
                self.done = true;
                return Some(Some(Err(e)));
            }
        }
        if self.close_deadline.is_none() && self.writer.is_closing() {
            // Our Close went out (from `close`, a writer, or the server's shutdown): the
            // peer has the close timeout to answer it.
            self.close_deadline = Some(Instant::now() + self.settings.close_timeout);
        }
        // Room for what the frame being read still needs, but at most 64 KiB ahead of the
        // bytes that came: a client announcing a large frame and sending it slowly gets
        // memory as its bytes arrive, not on its word.
        let wanted = self.decoder.wanted().clamp(
            self.settings.buffer_size,
            READ_AHEAD.max(self.settings.buffer_size),
        );
        if self.buf.capacity() - self.buf.len() < wanted.min(self.settings.buffer_size) {
            self.buf.reserve(wanted);
        }
        let wake = {
            let read = self.io.read_buf(&mut self.buf);
            let heartbeat = &mut self.heartbeat;
            let deadline = self.close_deadline;
            let tick = async move {
                match heartbeat {
                    Some(h) => h.sleep.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let timeout = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                r = read => Wake::Read(r),
                () = tick => Wake::Tick,
                () = timeout => Wake::CloseTimeout,
            }
        };
        match wake {
            Wake::Read(Ok(0)) => {
                self.done = true;
                if self.close_deadline.is_some() {
                    // Our Close was sent: the peer closing the connection ends it too.
                    return Some(None);
                }
                Some(Some(Ok(Message::Close(Some(CloseFrame::new(
                    close_code::ABNORMAL,
                    "the connection ended without a close frame",
                ))))))
            }
            Wake::Read(Ok(_)) => None,
            Wake::Read(Err(e)) => {
                self.done = true;
                Some(Some(Err(WsError::Io(e))))
            }
            Wake::CloseTimeout => {
                // The peer never answered our Close: give up on it.
                self.done = true;
                self.writer.shut().await;
                Some(None)
            }
            Wake::Tick => self.on_tick().await,
        }
    }

    /// A heartbeat tick: a Ping when the peer was quiet, the end when it was quiet too long.
    async fn on_tick(&mut self) -> Option<Option<Result<Message, WsError>>> {
        let h = self.heartbeat.as_mut()?;
        if std::mem::take(&mut h.received) {
            h.quiet = Duration::ZERO;
        } else {
            h.quiet += h.period;
        }
        let idle = self.settings.idle_timeout.is_some_and(|t| h.quiet >= t);
        let ping = self.settings.ping_interval.is_some();
        let quiet = h.quiet;
        h.sleep.as_mut().reset(Instant::now() + h.period);
        if idle {
            tracing::debug!(
                quiet_secs = quiet.as_secs(),
                "websocket closed: nothing received within its idle timeout"
            );
            let _ = self
                .writer
                .close(close_code::GOING_AWAY, "idle timeout")
                .await;
            self.done = true;
            self.writer.shut().await;
            return Some(Some(Ok(Message::Close(Some(CloseFrame::new(
                close_code::ABNORMAL,
                "idle timeout: the peer sent nothing, not even a pong",
            ))))));
        }
        if ping && !quiet.is_zero() {
            // A failed write shows in the next read (or the idle timeout).
            let _ = self.writer.control(OpCode::Ping, b"").await;
        }
        None
    }

    /// Ends the socket: sends a Close with `close`'s code and reason (none: an empty one) if
    /// none was sent yet, and closes the writing side.
    async fn finish(&mut self, close: Option<(u16, &str)>) {
        self.done = true;
        if !self.writer.is_closing() {
            let _ = self.writer.close_echo(close).await;
        }
        self.writer.shut().await;
    }

    /// After failing the connection: reads and drops what the peer still sends, until it
    /// closes or the close timeout passes. A socket closed with unread bytes answers the
    /// peer's next ones with a reset, and a client still sending (the rest of a message too
    /// large, say) would lose our Close in it (the lingering close of RFC 9112 §9.6).
    async fn linger(&mut self) {
        let deadline = Instant::now() + self.settings.close_timeout;
        loop {
            self.buf.clear();
            if self.buf.capacity() == 0 {
                self.buf.reserve(self.settings.buffer_size.max(1024));
            }
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            }
        }
        self.buf = BytesMut::new();
    }

    /// Lets a buffer that grew for a large message go.
    fn trim_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > self.settings.buffer_size.max(4096) * 4 {
            self.buf = BytesMut::new();
        }
    }
}

/// The heartbeat: a timer that fires every period; a period with nothing received sends a
/// Ping, and `idle_timeout` of them ends the socket. One timer, reset once per period (not
/// per message): a busy socket pays nothing for it.
#[derive(Debug)]
struct Heartbeat {
    sleep: std::pin::Pin<Box<Sleep>>,
    period: Duration,
    /// Something arrived since the last tick.
    received: bool,
    /// For how long nothing arrived.
    quiet: Duration,
}

impl Heartbeat {
    fn new(settings: &Settings) -> Option<Heartbeat> {
        let period = match (settings.ping_interval, settings.idle_timeout) {
            (Some(p), Some(i)) => p.min(i),
            (Some(p), None) => p,
            (None, Some(i)) => i,
            (None, None) => return None,
        };
        Some(Heartbeat {
            sleep: Box::pin(tokio::time::sleep(period)),
            period,
            received: false,
            quiet: Duration::ZERO,
        })
    }
}

/// The writing half of a [`WebSocket`] (see [`WebSocket::split`]); clones share it.
#[derive(Clone, Debug)]
pub struct WsWriter {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<WriteState>,
    /// A Close was sent: nothing more may be (RFC 6455 §5.5.1).
    closing: AtomicBool,
    /// Frames were fed and wait in the buffer for a flush.
    fed: AtomicBool,
    protocol: Option<String>,
    compressed: bool,
}

struct WriteState {
    io: WriteHalf<Upgraded>,
    buf: BytesMut,
    encoder: Encoder,
    keep: usize,
    /// The writing side was shut down.
    shut: bool,
}

impl std::fmt::Debug for WriteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteState")
            .field("shut", &self.shut)
            .finish_non_exhaustive()
    }
}

impl WriteState {
    /// Writes the buffer out, then lets a buffer that grew for a large message go.
    async fn flush(&mut self) -> Result<(), WsError> {
        let out = self.io.write_all(&self.buf).await;
        self.buf.clear();
        if self.buf.capacity() > self.keep.max(4096) * 4 {
            self.buf = BytesMut::new();
        }
        out.map_err(WsError::Io)
    }
}

impl WsWriter {
    /// Sends `msg`; see [`WebSocket::send`].
    pub async fn send(&self, msg: impl Into<Message>) -> Result<(), WsError> {
        match msg.into() {
            Message::Text(text) => self.data(true, text.as_bytes()).await,
            Message::Binary(bytes) => self.data(false, &bytes).await,
            Message::Ping(p) => self.control(OpCode::Ping, &p).await,
            Message::Pong(p) => self.control(OpCode::Pong, &p).await,
            Message::Close(None) => self.close_echo(None).await,
            Message::Close(Some(frame)) => self.close(frame.code, &frame.reason).await,
        }
    }

    /// Begins the close handshake; see [`WebSocket::close`].
    pub async fn close(&self, code: u16, reason: &str) -> Result<(), WsError> {
        self.close_echo(Some((code, reason))).await
    }

    /// The subprotocol agreed at the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.shared.protocol.as_deref()
    }

    /// Whether a Close was sent (nothing more can be).
    pub fn is_closing(&self) -> bool {
        self.shared.closing.load(Ordering::Acquire)
    }

    /// Queues `msg` for the next flush; see [`WebSocket::feed`]. From another task than the
    /// reader's, call [`flush`](WsWriter::flush) after (the reader flushes only when it
    /// is about to wait).
    pub async fn feed(&self, msg: impl Into<Message>) -> Result<(), WsError> {
        let (text, payload) = match msg.into() {
            Message::Text(text) => (true, text.into_bytes()),
            Message::Binary(bytes) => (false, bytes),
            // Control frames and Close are not held back.
            other => return self.send(other).await,
        };
        let mut state = self.shared.state.lock().await;
        if self.is_closing() {
            return Err(WsError::Closed);
        }
        let state = &mut *state;
        state.encoder.data(text, &payload, &mut state.buf);
        if state.buf.len() >= state.keep {
            self.shared.fed.store(false, Ordering::Release);
            return state.flush().await;
        }
        self.shared.fed.store(true, Ordering::Release);
        Ok(())
    }

    /// Writes the frames [`feed`](WsWriter::feed) queued.
    pub async fn flush(&self) -> Result<(), WsError> {
        let mut state = self.shared.state.lock().await;
        self.shared.fed.store(false, Ordering::Release);
        if state.buf.is_empty() {
            return Ok(());
        }
        state.flush().await
    }

    async fn data(&self, text: bool, payload: &[u8]) -> Result<(), WsError> {
        let mut state = self.shared.state.lock().await;
        if self.is_closing() {
            return Err(WsError::Closed);
        }
        let state = &mut *state;
        state.encoder.data(text, payload, &mut state.buf);
        // Frames fed before this one go out with it, in order.
        self.shared.fed.store(false, Ordering::Release);
        state.flush().await
    }

    pub(crate) async fn control(&self, opcode: OpCode, payload: &[u8]) -> Result<(), WsError> {
        let mut state = self.shared.state.lock().await;
        if self.is_closing() {
            return Err(WsError::Closed);
        }
        let state = &mut *state;
        state.encoder.control(opcode, payload, &mut state.buf);
        self.shared.fed.store(false, Ordering::Release);
        state.flush().await
    }

    /// Sends a Close with `code` and `reason` (none: an empty Close), once.
    async fn close_echo(&self, close: Option<(u16, &str)>) -> Result<(), WsError> {
        let mut state = self.shared.state.lock().await;
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return Err(WsError::Closed);
        }
        let state = &mut *state;
        match close {
            Some((code, reason)) => state.encoder.close(Some(code), reason, &mut state.buf),
            None => state.encoder.close(None, "", &mut state.buf),
        }
        self.shared.fed.store(false, Ordering::Release);
        state.flush().await
    }

    /// Closes the writing side of the connection (TCP FIN), once.
    pub(crate) async fn shut(&self) {
        let mut state = self.shared.state.lock().await;
        if !state.shut {
            state.shut = true;
            let _ = state.io.shutdown().await;
        }
    }
}
