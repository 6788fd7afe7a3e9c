//! One connection, top to bottom: read, parse every complete request in the buffer, answer
//! each in order, write all those answers in one go, and wait for more.
//!
//! Buffers: one read buffer (its bytes become the requests' heads and bodies without copying)
//! and one write buffer, both reused for the connection's life.
//!
//! Time limits use one timer per connection, armed once and moved only when it fires (or when
//! a head starts arriving in pieces), so a keep-alive request costs no timer work:
//! - waiting for the first byte of a request: `idle_timeout` since the last response
//!   (`head_timeout` since connecting, for the first request);
//! - a head that has started arriving: `head_timeout` since its first byte (slowloris);
//! - a body: `body_timeout` for the whole body; writes: `write_timeout` per batch.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, timeout_at, Instant};

use super::chunked::{ChunkedDecoder, ChunkedError};
use super::date::DateCache;
use super::encode::{
    encode, encode_streamed_head, push_chunk_size, ConnectionHeader, StreamFraming,
};
use super::parse::{parse_head, Framing, Head, Reject};
use super::{ServerConfig, Shutdown};
use crate::error::HttpError;
use crate::future::FutureSlot;
use crate::http::body::{read_at_exact, BodyReceiver, BodySender, FileBody, Streamed};
use crate::http::file::Conditionals;
use crate::http::{BodyStream, HeadersBuilder, Method, Request, Response, StatusCode, Version};
use crate::panic::catch_panic;
use crate::service::{Service, Started};

/// Bodies at least this large are written straight from the response, not copied into the
/// write buffer.
const LARGE_BODY: usize = 16 * 1024;
/// Files up to this size are copied into the write buffer behind their head (one write for
/// both); larger ones are sent with `sendfile(2)`.
const SMALL_FILE: usize = 32 * 1024;
/// Buffers grown past this by one large request are given back afterwards.
const SHRINK_ABOVE: usize = 64 * 1024;

/// The answer to a body over its route's limit.
const TOO_LARGE: Reject = Reject {
    status: StatusCode::PAYLOAD_TOO_LARGE,
    reason: "request body too large",
};

/// The answer when the server-wide body budget is spent (`ServerConfig::max_buffered_bodies`).
const BODIES_OVER_BUDGET: Reject = Reject {
    status: StatusCode::SERVICE_UNAVAILABLE,
    reason: "too many request bodies in flight; retry shortly",
};

/// Bytes of the server-wide body budget held by one request, given back when dropped.
struct BodyReservation<'a> {
    shutdown: &'a Shutdown,
    bytes: usize,
}

impl BodyReservation<'_> {
    /// Takes `n` more bytes of the budget (at most `max` in all, over every connection).
    fn grow(&mut self, n: usize, max: usize) -> bool {
        let ok = self.shutdown.reserve_body(n, max);
        if ok {
            self.bytes += n;
        }
        ok
    }
}

impl Drop for BodyReservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.shutdown.release_body(self.bytes);
        }
    }
}

/// Serves one connection until it closes; errors only end this connection.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Service,
    config: Arc<ServerConfig>,
    shutdown: Arc<Shutdown>,
) {
    let mut conn = Connection {
        read: BytesMut::with_capacity(config.read_buffer_size),
        write: Vec::new(),
        headers: HeadersBuilder::new(),
        slot: FutureSlot::default(),
        date: DateCache::new(),
        stream,
        peer,
        service,
        config,
    };
    if let Err(e) = conn.run(&shutdown).await {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    read: BytesMut,
    write: Vec<u8>,
    /// The header offsets of the head being parsed.
    headers: HeadersBuilder,
    /// Where handler futures run: its box is reused from request to request.
    slot: FutureSlot,
    /// The `date` line of responses, formatted once a second.
    date: DateCache,
    service: Service,
    config: Arc<ServerConfig>,
}

/// What ended a wait for more bytes.
enum Wake {
    /// The socket read (bytes, or 0 at end of stream).
    Read(io::Result<usize>),
    /// The connection's timer went off.
    Timer,
    /// The server is shutting down (and this connection is between requests).
    Stop,
}

/// Why a body could not be read.
enum BodyError {
    /// Answer with this status, then close.
    Reject(Reject),
    /// The connection failed or the client went away.
    Io(io::Error),
}

impl From<io::Error> for BodyError {
    fn from(e: io::Error) -> Self {
        BodyError::Io(e)
    }
}

impl Connection {
    async fn run(&mut self, shutdown: &Shutdown) -> io::Result<()> {
        let mut stopping = std::pin::pin!(shutdown.notify.notified());
        stopping.as_mut().enable();
        let connected = Instant::now();
        let mut timer = std::pin::pin!(sleep_until(connected + self.config.head_timeout));
        let mut served_any = false;
        let mut idle_since = connected;
        // When the first bytes of a still-incomplete head were seen (None: no partial head).
        let mut head_started: Option<Instant> = None;
        // Whether the timer and the shutdown notice hold the waker in `armed_with` (see below).
        let (mut timer_armed, mut stop_armed) = (false, false);
        let mut armed_with: Option<Waker> = None;
        // The server's signals this connection has answered (shutdown, eviction rounds).
        let mut signal_seen = shutdown.signal();
        loop {
            // Answer every complete request already in the buffer.
            if !self.read.is_empty() {
                match parse_head(&mut self.read, &self.config, &mut self.headers) {
                    Ok(Some(head)) => {
                        served_any = true;
                        head_started = None;
                        if !self.respond(head, shutdown).await? {
                            return self.flush().await;
                        }
                        continue;
                    }
                    Ok(None) => {
                        if head_started.is_none() {
                            // A head arriving in pieces gets head_timeout, not idle_timeout.
                            let now = Instant::now();
                            head_started = Some(now);
                            let deadline = now + self.config.head_timeout;
                            if timer.deadline() > deadline {
                                timer.as_mut().reset(deadline);
                                timer_armed = false;
                            }
                        }
                    }
                    Err(reject) => {
                        // A refused HEAD request gets no body either (RFC 9110 §9.3.2).
                        let head_only = self.read.starts_with(b"HEAD ");
                        return self.refuse(reject, head_only).await;
                    }
                }
            }
            // Need more bytes: first send what is ready, all in one write.
            if !self.write.is_empty() {
                if !self.write_now()? {
                    self.flush().await?;
                }
                idle_since = Instant::now();
            }
            if self.read.is_empty() && shutdown.is_stopping() {
                return Ok(());
            }
            self.reserve_read_space();
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(read) = pin!(self.stream.read_buf(&mut self.read)).poll(cx) {
                    return Poll::Ready(Wake::Read(read));
                }
                // The timer and the shutdown notice keep the waker they were last polled
                // with. While that waker stays the same (a spawned task's does), they are
                // polled again only once they may have fired, not on every request.
                if !armed_with.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    armed_with = Some(cx.waker().clone());
                    (timer_armed, stop_armed) = (false, false);
                }
                if !timer_armed || timer.is_elapsed() {
                    timer_armed = true;
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                if self.read.is_empty() && (!stop_armed || shutdown.signal() != signal_seen) {
                    stop_armed = true;
                    if stopping.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Stop);
                    }
                }
                Poll::Pending
            });
            match wake.await {
                Wake::Read(read) => {
                    if read? == 0 {
                        return Ok(()); // the client closed (an unfinished request is dropped)
                    }
                }
                Wake::Timer => {
                    let deadline = match head_started {
                        Some(started) => started + self.config.head_timeout,
                        None if served_any => idle_since + self.config.idle_timeout,
                        None => connected + self.config.head_timeout,
                    };
                    if Instant::now() < deadline {
                        timer.as_mut().reset(deadline);
                        timer_armed = false;
                    } else if self.read.is_empty() {
                        return Ok(()); // idle: close quietly
                    } else {
                        let reason = "request head not received in time";
                        let head_only = self.read.starts_with(b"HEAD ");
                        let reject = Reject {
                            status: StatusCode::REQUEST_TIMEOUT,
                            reason,
                        };
                        return self.refuse(reject, head_only).await;
                    }
                }
                Wake::Stop if shutdown.is_stopping() => return Ok(()),
                Wake::Stop => {
                    // An eviction round: the server is out of connection slots. An idle
                    // connection is free to drop (the client reconnects when it needs to).
                    signal_seen = shutdown.signal();
                    let idle_from = if served_any { idle_since } else { connected };
                    if shutdown.is_evicted(idle_from.elapsed()) {
                        tracing::debug!(peer = %self.peer, "idle connection closed to make room");
                        return Ok(());
                    }
                    stopping.set(shutdown.notify.notified());
                    stopping.as_mut().enable();
                    stop_armed = false;
                }
            }
        }
    }

    /// Reads the body of `head`, runs the app, and queues the response. Returns whether the
    /// connection stays open.
    async fn respond(&mut self, head: Head, shutdown: &Shutdown) -> io::Result<bool> {
        let head_bytes = self.read.split_to(head.len).freeze();
        // Held until the response is made: the body's bytes count against the server-wide
        // budget while the handler may still hold them.
        let mut reservation = None;
        let body = if head.framing == Framing::None {
            Bytes::new() // most requests: nothing to wait for
        } else {
            // The route may set its own limit, and stream its body to the handler.
            let (start, _) = head.target.range();
            let path = &head_bytes[start..usize::from(head.target.path_end)];
            let route = self.service.body_config(path);
            let limit = route.map_or(self.config.max_body_size, |c| c.max_size());
            if let Framing::Length(n) = head.framing {
                if n > limit {
                    self.refuse(TOO_LARGE, head.method == Method::Head).await?;
                    return Ok(false);
                }
            }
            if route.is_some_and(|c| c.is_streamed()) {
                // Boxed, in a statement of its own: this rare path's state would otherwise
                // sit in every connection's future (and a temporary in the awaiting statement
                // would keep the unboxed future's room alive across the await).
                let streaming = Box::pin(self.respond_streaming(head, head_bytes, limit, shutdown));
                return streaming.await;
            }
            let reserved = reservation.insert(BodyReservation { shutdown, bytes: 0 });
            match self.read_body(&head, reserved, limit).await {
                Ok(body) => body,
                Err(BodyError::Reject(reject)) => {
                    self.refuse(reject, head.method == Method::Head).await?;
                    return Ok(false);
                }
                Err(BodyError::Io(e)) => return Err(e),
            }
        };
        // Range and If-* headers are kept aside for the response (files answer them).
        let conditionals = if head.conditional {
            Conditionals::of_headers(head.method, &self.headers.peek(&head_bytes)).map(Box::new)
        } else {
            None
        };
        let make = || {
            Request::from_parts(
                head.method,
                head.version,
                head.target,
                self.headers.take(head_bytes),
                body,
                Some(self.peer),
            )
        };
        let mut res = match self.service.start_with(make, &mut self.slot) {
            Started::Answered(res) => res,
            Started::Running(fut) => catch_panic(fut).await,
            Started::InSlot => self.slot.run().await,
        };
        if let Some(conditionals) = conditionals {
            conditionals.apply(&mut res);
        }
        self.service.render(&mut res, head.prefers_json);

        let keep_alive = head.keep_alive && !shutdown.is_stopping();
        let connection = connection_header(keep_alive, head.version);
        let head_only = head.method == Method::Head;
        if res.is_streamed() {
            // Boxed, as above: a streamed body's state stays out of the connection's future.
            let streamed = Box::pin(self.send_streamed(res, head_only, head.version, keep_alive));
            return streamed.await;
        }
        let date = self.date.current();
        if res.body().len() >= LARGE_BODY && !head_only {
            encode(&mut self.write, &res, date, true, connection);
            self.flush().await?;
            self.write_all_timed(res.body()).await?;
        } else {
            encode(&mut self.write, &res, date, head_only, connection);
        }
        if self.read.is_empty() && self.read.capacity() > SHRINK_ABOVE {
            self.read = BytesMut::with_capacity(self.config.read_buffer_size);
        }
        Ok(keep_alive)
    }

    /// Renders and sends the response to `head` (for requests answered off the common path).
    /// Returns `keep_alive`, unless the response's framing ends the connection.
    async fn send_response(
        &mut self,
        mut res: Response,
        head: &Head,
        keep_alive: bool,
    ) -> io::Result<bool> {
        self.service.render(&mut res, head.prefers_json);
        let head_only = head.method == Method::Head;
        if res.is_streamed() {
            return self
                .send_streamed(res, head_only, head.version, keep_alive)
                .await;
        }
        let connection = connection_header(keep_alive, head.version);
        let large = res.body().len() >= LARGE_BODY && !head_only;
        encode(
            &mut self.write,
            &res,
            self.date.current(),
            head_only || large,
            connection,
        );
        if large {
            self.flush().await?;
            self.write_all_timed(res.body()).await?;
        }
        Ok(keep_alive)
    }

    /// Runs the app for a request whose route streams its body: the handler starts at once,
    /// and the body is read from the socket while it runs, chunk by chunk into the request's
    /// [`RequestBody`](crate::http::RequestBody), as fast as the handler takes them (a
    /// channel of two chunks: the client is held back, not buffered). A body that breaks a
    /// rule (its limit, its framing, the time allowed between reads) fails the handler's
    /// stream and is answered with that error, and the connection closed, whatever the
    /// handler returns. A handler that answers without reading the whole body gets its
    /// answer sent, and the connection is closed after it (the rest of the body is unread).
    async fn respond_streaming(
        &mut self,
        head: Head,
        head_bytes: Bytes,
        limit: usize,
        shutdown: &Shutdown,
    ) -> io::Result<bool> {
        // Earlier pipelined answers go out first: the client may wait for them before it
        // sends the body.
        self.flush().await?;
        let (tx, chunks) = tokio::sync::mpsc::channel(2);
        let (wanted, want) = tokio::sync::oneshot::channel();
        let make = || {
            let mut req = Request::from_parts(
                head.method,
                head.version,
                head.target,
                self.headers.take(head_bytes),
                Bytes::new(),
                Some(self.peer),
            );
            req.extensions_mut().insert(BodyReceiver { chunks, wanted });
            req
        };
        // The handler and the body's reader run side by side, then both are dropped.
        let (res, body) = {
            let started = self.service.start_with(make, &mut self.slot);
            let slot = &mut self.slot;
            let handler = async move {
                match started {
                    Started::Answered(res) => res,
                    Started::Running(fut) => catch_panic(fut).await,
                    Started::InSlot => slot.run().await,
                }
            };
            let pump = pump_body(
                &mut self.stream,
                &mut self.read,
                &head,
                limit,
                &self.config,
                (tx, want),
            );
            let (mut handler, mut pump) = (pin!(handler), pin!(pump));
            let mut body: Option<Result<bool, BodyError>> = None;
            let res = loop {
                tokio::select! {
                    biased;
                    read = &mut pump, if body.is_none() => body = Some(read),
                    res = &mut handler => break res,
                }
            };
            (res, body)
        };
        match body {
            Some(Err(BodyError::Reject(reject))) => {
                self.refuse(reject, false).await?;
                Ok(false)
            }
            Some(Err(BodyError::Io(e))) => Err(e),
            Some(Ok(true)) => {
                let keep_alive = head.keep_alive && !shutdown.is_stopping();
                self.send_response(res, &head, keep_alive).await
            }
            // Not read to its end: answer, then close (what follows is unread body).
            Some(Ok(false)) | None => {
                self.send_response(res, &head, false).await?;
                self.flush().await?;
                self.linger().await;
                Ok(false)
            }
        }
    }

    /// Sends a response whose body is streamed: the head first (with the handler's headers and
    /// the session's cookie, all set by now), then the body as it comes. Returns whether the
    /// connection stays open: not after a close-delimited body, and never after a body that
    /// failed half-way (an error is returned then, so that the client sees a cut connection,
    /// not a clean end).
    async fn send_streamed(
        &mut self,
        mut res: Response,
        head_only: bool,
        version: Version,
        keep_alive: bool,
    ) -> io::Result<bool> {
        let Some((body, length)) = res.take_streamed() else {
            return Ok(keep_alive);
        };
        let date = self.date.current();
        if res.status().forbids_body() {
            drop(body); // 204 and 304 have no body (RFC 9110 §6.4.1)
            let connection = connection_header(keep_alive, version);
            encode(&mut self.write, &res, date, head_only, connection);
            return Ok(keep_alive);
        }
        let length = match &body {
            Streamed::File(file) => Some(file.len),
            Streamed::Stream(_) => length,
        };
        let framing = match length {
            Some(n) => StreamFraming::Length(n),
            None if keep_alive && version == Version::Http11 => StreamFraming::Chunked,
            // RFC 9112 §6.3: with neither length nor chunked coding, the body ends when the
            // connection closes (HTTP/1.0 has no chunked coding).
            None => StreamFraming::Close,
        };
        let keep_alive = keep_alive && framing != StreamFraming::Close;
        let connection = connection_header(keep_alive, version);
        if !encode_streamed_head(&mut self.write, &res, date, framing, connection) {
            return Ok(keep_alive); // a refused header: a plain 500 went out instead
        }
        if head_only {
            return Ok(keep_alive); // the producer is dropped unpolled
        }
        match body {
            Streamed::Stream(stream) => self.send_stream(stream, framing).await?,
            Streamed::File(file) => self.send_file(file).await?,
        }
        Ok(keep_alive)
    }

    /// Writes `stream` framed as `framing`. The stream is polled only when the bytes before
    /// are written (backpressure); what it has ready at once is gathered into one write, and
    /// what is gathered goes out as soon as it has nothing more ready (an event is not held
    /// back). While it has nothing ready, the socket is watched: a client that goes away
    /// ends the response at once, dropping the stream.
    async fn send_stream(
        &mut self,
        mut stream: BodyStream,
        framing: StreamFraming,
    ) -> io::Result<()> {
        let mut sent: u64 = 0;
        loop {
            let item =
                match std::future::poll_fn(|cx| Poll::Ready(stream.as_mut().poll_next(cx))).await {
                    Poll::Ready(item) => item,
                    Poll::Pending => {
                        self.flush().await?;
                        self.next_while_watching(&mut stream).await?
                    }
                };
            match item {
                Some(Ok(chunk)) => {
                    if chunk.is_empty() {
                        continue; // an empty chunk would end a chunked body
                    }
                    sent += chunk.len() as u64;
                    if let StreamFraming::Length(n) = framing {
                        if sent > n {
                            return Err(stream_failed("the body stream went past its length"));
                        }
                    }
                    if framing == StreamFraming::Chunked {
                        push_chunk_size(&mut self.write, chunk.len());
                    }
                    if chunk.len() >= LARGE_BODY {
                        self.flush().await?;
                        self.write_all_timed(&chunk).await?;
                    } else {
                        self.write.extend_from_slice(&chunk);
                    }
                    if framing == StreamFraming::Chunked {
                        self.write.extend_from_slice(b"\r\n");
                    }
                    if self.write.len() >= LARGE_BODY {
                        self.flush().await?;
                    }
                }
                Some(Err(e)) => {
                    // What was produced before the error goes out; the end of the body never
                    // does.
                    let _ = self.flush().await;
                    tracing::warn!(peer = %self.peer, error = %e, "response body stream failed: connection closed");
                    return Err(stream_failed("the body stream failed"));
                }
                None => {
                    if let StreamFraming::Length(n) = framing {
                        if sent < n {
                            // What was produced goes out; the connection then closes.
                            let _ = self.flush().await;
                            return Err(stream_failed("the body stream ended short of its length"));
                        }
                    }
                    if framing == StreamFraming::Chunked {
                        self.write.extend_from_slice(b"0\r\n\r\n");
                    }
                    return Ok(());
                }
            }
        }
    }

    /// Waits for the stream's next item while watching the socket: bytes the client sends
    /// meanwhile (a pipelined request) are kept for later, and the client closing ends the
    /// wait with an error, which drops the stream.
    async fn next_while_watching(
        &mut self,
        stream: &mut BodyStream,
    ) -> io::Result<Option<Result<Bytes, crate::http::BoxError>>> {
        let keep_at_most = self.config.max_head_size.max(self.config.read_buffer_size);
        std::future::poll_fn(|cx| loop {
            if let Poll::Ready(item) = stream.as_mut().poll_next(cx) {
                return Poll::Ready(Ok(item));
            }
            // Past this much unread input, stop reading (and so stop watching): the client
            // is sending faster than it is served.
            if self.read.len() >= keep_at_most {
                return Poll::Pending;
            }
            match self.stream.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {
                    self.read.reserve(1024);
                    match self.stream.try_read_buf(&mut self.read) {
                        Ok(0) => {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::ConnectionAborted,
                                "the client went away during a streamed response",
                            )))
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
            }
        })
        .await
    }

    /// Writes a file's bytes. A small file joins the head in the write buffer (one write for
    /// both); a larger one goes from the page cache to the socket with `sendfile(2)`, never
    /// passing through user space.
    async fn send_file(&mut self, file: FileBody) -> io::Result<()> {
        if file.len <= SMALL_FILE as u64 {
            let at = self.write.len();
            self.write.resize(at + file.len as usize, 0);
            return read_at_exact(&file.file, &mut self.write[at..], file.offset);
        }
        self.flush().await?;
        let (mut offset, end) = (file.offset, file.offset + file.len);
        while offset < end {
            let count = (end - offset).min(1 << 30) as usize;
            let sent = self.stream.try_io(tokio::io::Interest::WRITABLE, || {
                rustix::fs::sendfile(&self.stream, &file.file, Some(&mut offset), count)
                    .map_err(io::Error::from)
            });
            match sent {
                Ok(0) => return Err(stream_failed("the file became shorter while it was sent")),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    timeout(self.config.write_timeout, self.stream.writable())
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "write timed out")
                        })??;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the body that `head` announces: by Content-Length (a slice of the read buffer,
    /// no copy) or chunked (decoded into a buffer of its own), within `body_timeout`, and
    /// within the server's budget for buffered bodies (`reserved` grows with it).
    async fn read_body(
        &mut self,
        head: &Head,
        reserved: &mut BodyReservation<'_>,
        limit: usize,
    ) -> Result<Bytes, BodyError> {
        let deadline = Instant::now() + self.config.body_timeout;
        let max = self.config.max_buffered_bodies;
        match head.framing {
            Framing::None => Ok(Bytes::new()),
            Framing::Length(n) => {
                if !reserved.grow(n, max) {
                    return Err(BodyError::Reject(BODIES_OVER_BUDGET));
                }
                if head.expect_continue && self.read.len() < n {
                    self.send_continue().await?;
                }
                if self.read.len() < n {
                    self.read.reserve(n - self.read.len());
                }
                while self.read.len() < n {
                    self.read_more(deadline).await?;
                }
                Ok(self.read.split_to(n).freeze())
            }
            Framing::Chunked => {
                if head.expect_continue && self.read.is_empty() {
                    self.send_continue().await?;
                }
                let mut decoder = ChunkedDecoder::new(limit);
                let mut body = BytesMut::new();
                loop {
                    let used = decoder
                        .decode(&self.read, &mut body)
                        .map_err(chunked_reject)?;
                    let _ = self.read.split_to(used);
                    // What this read decoded joins the reservation (one atomic per read).
                    if body.len() > reserved.bytes
                        && !reserved.grow(body.len() - reserved.bytes, max)
                    {
                        return Err(BodyError::Reject(BODIES_OVER_BUDGET));
                    }
                    if decoder.is_done() {
                        return Ok(body.freeze());
                    }
                    self.read_more(deadline).await?;
                }
            }
        }
    }

    /// Reads at least one more byte before `deadline`. Responses still queued for earlier
    /// pipelined requests go out first: the client may be waiting for them.
    async fn read_more(&mut self, deadline: Instant) -> Result<(), BodyError> {
        self.flush().await?;
        self.reserve_read_space();
        body_read(timeout_at(deadline, self.stream.read_buf(&mut self.read)).await)
    }

    fn reserve_read_space(&mut self) {
        // Reclaims the front of the buffer once earlier requests are dropped: no allocation.
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(self.config.read_buffer_size);
        }
    }

    async fn send_continue(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.write_all_timed(b"HTTP/1.1 100 Continue\r\n\r\n").await
    }

    /// Answers a refused request and closes: the framing of anything after it is unknown.
    /// `head_only`: the request was a HEAD, whose answer has no body.
    async fn refuse(&mut self, reject: Reject, head_only: bool) -> io::Result<()> {
        tracing::debug!(peer = %self.peer, status = reject.status.as_u16(), reason = reject.reason, "request refused");
        let mut res = Response::error(reject.status, reject.reason);
        if reject.status == StatusCode::SERVICE_UNAVAILABLE {
            res.append_trusted_header("retry-after", "1".to_owned());
        }
        // The app's error pages cover the server's refusals too. Its Accept is not known
        // (the head may not have parsed): text, unless the app's handler decides otherwise.
        self.service.render(&mut res, false);
        encode(
            &mut self.write,
            &res,
            self.date.current(),
            head_only,
            ConnectionHeader::Close,
        );
        self.flush().await?;
        self.linger().await;
        Ok(())
    }

    /// Half-closes and drains what the client still sends (for a short while), so that
    /// closing with unread data does not reset the connection before the client has read our
    /// last response.
    async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        // Drain into the read buffer (its contents are abandoned anyway): a scratch array
        // here would sit in every connection's future, idle or not.
        let mut budget: usize = 256 * 1024;
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        while budget > 0 {
            self.read.clear();
            self.read.reserve(4096);
            match timeout_at(deadline, self.stream.read_buf(&mut self.read)).await {
                Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
                _ => break,
            }
        }
    }

    /// Writes what the socket takes at once (usually everything: no future, no timer) and
    /// says whether the write buffer is empty now.
    fn write_now(&mut self) -> io::Result<bool> {
        let written = match self.stream.try_write(&self.write) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        self.write.drain(..written);
        if self.write.is_empty() && self.write.capacity() > SHRINK_ABOVE {
            self.write = Vec::new();
        }
        Ok(self.write.is_empty())
    }

    /// Writes out the write buffer.
    async fn flush(&mut self) -> io::Result<()> {
        if self.write.is_empty() {
            return Ok(());
        }
        let result = write_timed(&mut self.stream, &self.write, self.config.write_timeout).await;
        self.write.clear();
        if self.write.capacity() > SHRINK_ABOVE {
            self.write = Vec::new();
        }
        result
    }

    async fn write_all_timed(&mut self, bytes: &[u8]) -> io::Result<()> {
        write_timed(&mut self.stream, bytes, self.config.write_timeout).await
    }
}

/// The refusal for a chunked body that breaks a rule.
fn chunked_reject(e: ChunkedError) -> BodyError {
    BodyError::Reject(match e {
        ChunkedError::TooLarge => TOO_LARGE,
        ChunkedError::Malformed(reason) => Reject {
            status: StatusCode::BAD_REQUEST,
            reason,
        },
    })
}

/// Reads a streamed request body from `stream` (after what is already in `read`) into `tx`,
/// as the handler takes it. Returns whether the body was read to its end (`false`: the
/// handler dropped its stream first). A body that breaks a rule fails the handler's stream
/// with the same error the client then gets. `body_timeout` applies to each wait for bytes
/// (an upload of any size may take long; a stalled one may not).
async fn pump_body(
    stream: &mut TcpStream,
    read: &mut BytesMut,
    head: &Head,
    limit: usize,
    config: &ServerConfig,
    (tx, want): (BodySender, tokio::sync::oneshot::Receiver<()>),
) -> Result<bool, BodyError> {
    // Nothing is read until the handler reads (see `BodyReceiver::wanted`); a handler that
    // drops its request unread ends the body here.
    if want.await.is_err() {
        return Ok(false);
    }
    let result = pump_body_inner(stream, read, head, limit, config, &tx).await;
    if let Err(BodyError::Reject(reject)) = &result {
        // The handler learns why its body ended (it gets no clean end).
        let _ = tx
            .send(Err(HttpError::new(reject.status, reject.reason)))
            .await;
    }
    result
}

async fn pump_body_inner(
    stream: &mut TcpStream,
    read: &mut BytesMut,
    head: &Head,
    limit: usize,
    config: &ServerConfig,
    tx: &BodySender,
) -> Result<bool, BodyError> {
    if head.expect_continue && read.is_empty() {
        write_timed(
            stream,
            b"HTTP/1.1 100 Continue\r\n\r\n",
            config.write_timeout,
        )
        .await?;
    }
    match head.framing {
        Framing::None => Ok(true),
        Framing::Length(n) => {
            let mut left = n;
            while left > 0 {
                if read.is_empty() {
                    fill(stream, read, config.body_timeout).await?;
                }
                let take = left.min(read.len());
                left -= take;
                if tx.send(Ok(read.split_to(take).freeze())).await.is_err() {
                    return Ok(false); // the handler let go of the body
                }
            }
            Ok(true)
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(limit);
            loop {
                let mut out = BytesMut::new();
                let used = decoder.decode(read, &mut out).map_err(chunked_reject)?;
                let _ = read.split_to(used);
                if !out.is_empty() && tx.send(Ok(out.freeze())).await.is_err() {
                    return Ok(false);
                }
                if decoder.is_done() {
                    return Ok(true);
                }
                fill(stream, read, config.body_timeout).await?;
            }
        }
    }
}

/// Reads more of a streamed body, waiting at most `wait` for it.
async fn fill(
    stream: &mut TcpStream,
    read: &mut BytesMut,
    wait: Duration,
) -> Result<(), BodyError> {
    /// Room for each read: chunks of up to this size reach the handler.
    const ROOM: usize = 64 * 1024;
    read.reserve(ROOM);
    body_read(timeout(wait, stream.read_buf(read)).await)
}

/// What a timed read of body bytes comes to: more bytes, a `408` (out of time), or the
/// connection's end or failure.
fn body_read(
    read: Result<io::Result<usize>, tokio::time::error::Elapsed>,
) -> Result<(), BodyError> {
    match read {
        Err(_) => Err(BodyError::Reject(Reject {
            status: StatusCode::REQUEST_TIMEOUT,
            reason: "request body not received in time",
        })),
        Ok(Ok(0)) => Err(BodyError::Io(io::ErrorKind::UnexpectedEof.into())),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(BodyError::Io(e)),
    }
}

/// The `Connection` header for a response that leaves the connection open or not.
fn connection_header(keep_alive: bool, version: Version) -> ConnectionHeader {
    match (keep_alive, version) {
        (false, _) => ConnectionHeader::Close,
        (true, Version::Http10) => ConnectionHeader::KeepAlive,
        (true, Version::Http11) => ConnectionHeader::None,
    }
}

/// The error that ends a streamed response half-way (the connection is then closed).
fn stream_failed(why: &'static str) -> io::Error {
    io::Error::other(why)
}

/// Writes all of `bytes`. Most writes go out at once with no waiting; only a client that
/// stops reading costs a timer (and is cut off after `limit`).
async fn write_timed(
    stream: &mut TcpStream,
    bytes: &[u8],
    limit: std::time::Duration,
) -> io::Result<()> {
    let written = match stream.try_write(bytes) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
        Err(e) => return Err(e),
    };
    if written == bytes.len() {
        return Ok(());
    }
    timeout(limit, stream.write_all(&bytes[written..]))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A served connection's future (not yet polled), its client end and its shutdown.
    async fn connection() -> (
        impl Future<Output = ()>,
        tokio::net::TcpStream,
        Arc<Shutdown>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let service = crate::App::new().build().unwrap();
        let config = Arc::new(ServerConfig::default());
        let shutdown = Arc::new(Shutdown::default());
        let fut = serve_connection(stream, peer, service, config, shutdown.clone());
        (fut, client, shutdown)
    }

    /// An idle connection costs its read buffer plus this future: keep the future small (a
    /// 4 KiB array held across an await once doubled every connection's memory).
    #[tokio::test]
    async fn the_connection_future_stays_small() {
        let (fut, _client, _) = connection().await;
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 3 * 1024, "connection future is {size} bytes");
    }

    /// Counts its wake-ups.
    struct Counter(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn counting_waker() -> (Waker, Arc<Counter>) {
        let counter = Arc::new(Counter(0.into()));
        (Waker::from(counter.clone()), counter)
    }

    fn pending<F: Future>(fut: std::pin::Pin<&mut F>, waker: &Waker) -> bool {
        fut.poll(&mut std::task::Context::from_waker(waker))
            .is_pending()
    }

    /// The shutdown notice is watched with the waker of the latest poll, not the first one,
    /// even though it is not re-polled on every wait.
    #[tokio::test]
    async fn a_shutdown_wakes_the_waker_of_the_latest_poll() {
        let (conn, _client, shutdown) = connection().await;
        let mut conn = Box::pin(conn);
        let (first, first_count) = counting_waker();
        let (latest, latest_count) = counting_waker();
        assert!(pending(conn.as_mut(), &first), "an idle connection waits");
        assert!(pending(conn.as_mut(), &latest));
        shutdown.begin();
        let c = |w: &Counter| w.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(c(&latest_count) > 0, "the latest waker was not woken");
        assert_eq!(c(&first_count), 0);
        assert!(
            !pending(conn.as_mut(), &latest),
            "the idle connection closes"
        );
    }
}
