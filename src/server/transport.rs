//! The HTTP/1.1 transport of one connection: bytes in and out, framed. It reads request
//! bodies (sized, chunked, or streamed to the handler as they arrive) and writes responses
//! (buffered, streamed, or a file with `sendfile(2)`); it decides nothing about keep-alive,
//! timeouts between requests, shutdown or eviction: the connection loop (`conn.rs`) does,
//! and calls it.
//!
//! Buffers: one read buffer (its bytes become the requests' heads and bodies without copying)
//! and one write buffer, both reused for the connection's life. Responses queued for
//! pipelined requests go out together, in one write, when the loop next needs to read.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout, timeout_at, Instant};

use super::budget::Reservation;
use super::chunked::{ChunkedDecoder, ChunkedError};
use super::config::ServerConfig;
use super::date::DateCache;
use super::encode::{
    encode, encode_streamed_head, encode_switching, push_chunk_size, ConnectionHeader,
    StreamFraming,
};
use super::parse::{Framing, Head, Reject};
use crate::error::HttpError;
use crate::http::body::{read_at_exact, BodySender, FileBody, Streamed};
use crate::http::{BodyStream, Response, StatusCode, Upgraded, Version};
use crate::shutdown::{Shutdown, ShutdownSignal};

/// Bodies at least this large are written straight from the response, not copied into the
/// write buffer.
const LARGE_BODY: usize = 16 * 1024;
/// Files up to this size are copied into the write buffer behind their head (one write for
/// both); larger ones are sent with `sendfile(2)`.
const SMALL_FILE: usize = 32 * 1024;
/// Buffers grown past this by one large request are given back afterwards.
const SHRINK_ABOVE: usize = 64 * 1024;

/// The answer to a body over its route's limit.
pub(super) const TOO_LARGE: Reject = Reject {
    status: StatusCode::CONTENT_TOO_LARGE,
    reason: "request body too large",
};

/// The answer to a streamed body slower than `ServerConfig::min_body_rate`.
const TOO_SLOW: Reject = Reject {
    status: StatusCode::REQUEST_TIMEOUT,
    reason: "request body arriving too slowly",
};

/// How much of a streamed body has arrived since it was first asked for.
struct Pace {
    started: Instant,
    received: u64,
}

/// The answer when the server-wide body budget is spent (`ServerConfig::max_buffered_bodies`).
const BODIES_OVER_BUDGET: Reject = Reject {
    status: StatusCode::SERVICE_UNAVAILABLE,
    reason: "too many request bodies in flight; retry shortly",
};

/// Why a body could not be read.
pub(super) enum BodyError {
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

/// How a streamed response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StreamEnd {
    /// The producer ended it.
    Done,
    /// Shutdown began: it was ended at a chunk boundary (chunked, or close-delimited), and
    /// the connection is to close.
    Stopped,
}

/// One connection's socket, buffers and framing.
pub(super) struct Transport {
    stream: TcpStream,
    pub(super) peer: SocketAddr,
    /// Bytes read and not yet consumed: the head being parsed, pipelined requests.
    pub(super) read: BytesMut,
    /// Responses encoded and not yet written.
    write: Vec<u8>,
    /// The `date` line of responses, formatted once a second.
    date: DateCache,
    pub(super) config: Arc<ServerConfig>,
}

impl Transport {
    pub(super) fn new(stream: TcpStream, peer: SocketAddr, config: Arc<ServerConfig>) -> Self {
        Transport {
            read: BytesMut::with_capacity(config.read_buffer_size),
            write: Vec::new(),
            date: DateCache::new(),
            stream,
            peer,
            config,
        }
    }

    /// Hands the connection over (after a `101`): the socket, with what was read past the
    /// request read first. Responses still queued must have been flushed.
    pub(super) fn into_upgraded(mut self, shutdown: ShutdownSignal) -> Upgraded {
        // Nothing read past the head: an empty slice would still keep the read buffer.
        let read_first = if self.read.is_empty() {
            Bytes::new()
        } else {
            self.read.split().freeze()
        };
        Upgraded::new(self.stream, read_first, shutdown)
    }

    /// Polls one read into the read buffer (for the loop's own wait, beside its timers).
    #[inline]
    pub(super) fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        pin!(self.stream.read_buf(&mut self.read)).poll(cx)
    }

    /// Makes room for the next read. Reclaims the front of the buffer once earlier requests
    /// are dropped: no allocation.
    pub(super) fn reserve_read_space(&mut self) {
        if self.read.capacity() - self.read.len() < 1024 {
            self.read.reserve(self.config.read_buffer_size);
        }
    }

    /// Gives back a read buffer that one large request grew, once it is empty.
    #[inline]
    pub(super) fn shrink_read(&mut self) {
        if self.read.is_empty() && self.read.capacity() > SHRINK_ABOVE {
            self.read = BytesMut::with_capacity(self.config.read_buffer_size);
        }
    }

    // ---- Request bodies ----

    /// Reads the body that `head` announces: by Content-Length (a slice of the read buffer,
    /// no copy) or chunked (decoded into a buffer of its own), within `body_timeout`, and
    /// within the server's budget for buffered bodies (`reserved` grows with it).
    pub(super) async fn read_body(
        &mut self,
        head: &Head,
        reserved: &mut Reservation<'_>,
        limit: usize,
    ) -> Result<Bytes, BodyError> {
        let deadline = Instant::now() + self.config.body_timeout;
        match head.framing {
            Framing::None => Ok(Bytes::new()),
            Framing::Length(n) => {
                if !reserved.grow(n) {
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
                    if !reserved.grow_to(body.len()) {
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

    async fn send_continue(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.write_all_timed(b"HTTP/1.1 100 Continue\r\n\r\n").await
    }

    /// Reads a streamed request body (after what is already in the read buffer) into `tx`,
    /// as the handler takes it. Returns whether the body was read to its end (`false`: the
    /// handler dropped its stream first). A body that breaks a rule fails the handler's
    /// stream with the same error the client then gets. `body_timeout` applies to each wait
    /// for bytes (an upload of any size may take long; a stalled one may not).
    pub(super) async fn pump_body(
        &mut self,
        head: &Head,
        limit: usize,
        (tx, want): (BodySender, tokio::sync::oneshot::Receiver<()>),
    ) -> Result<bool, BodyError> {
        // Nothing is read until the handler reads (see `BodyReceiver::wanted`); a handler that
        // drops its request unread ends the body here.
        if want.await.is_err() {
            return Ok(false);
        }
        let result = self.pump_body_inner(head, limit, &tx).await;
        if let Err(BodyError::Reject(reject)) = &result {
            // The handler learns why its body ended (it gets no clean end).
            let _ = tx
                .send(Err(HttpError::new(reject.status, reject.reason)))
                .await;
        }
        result
    }

    async fn pump_body_inner(
        &mut self,
        head: &Head,
        limit: usize,
        tx: &BodySender,
    ) -> Result<bool, BodyError> {
        if head.expect_continue && self.read.is_empty() {
            self.send_continue().await?;
        }
        // The data rate is counted from here: the handler asked for the body.
        let mut pace = Pace {
            started: Instant::now(),
            received: self.read.len() as u64,
        };
        match head.framing {
            Framing::None => Ok(true),
            Framing::Length(n) => {
                let mut left = n;
                while left > 0 {
                    if self.read.is_empty() {
                        self.fill(&mut pace).await?;
                    }
                    let take = left.min(self.read.len());
                    left -= take;
                    if tx
                        .send(Ok(self.read.split_to(take).freeze()))
                        .await
                        .is_err()
                    {
                        return Ok(false); // the handler let go of the body
                    }
                }
                Ok(true)
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(limit);
                loop {
                    let mut out = BytesMut::new();
                    let used = decoder
                        .decode(&self.read, &mut out)
                        .map_err(chunked_reject)?;
                    let _ = self.read.split_to(used);
                    if !out.is_empty() && tx.send(Ok(out.freeze())).await.is_err() {
                        return Ok(false);
                    }
                    if decoder.is_done() {
                        return Ok(true);
                    }
                    self.fill(&mut pace).await?;
                }
            }
        }
    }

    /// Reads more of a streamed body, waiting at most `body_timeout` for it, and no longer
    /// than the body's average rate allows (`min_body_rate`, after `body_rate_grace`): a
    /// per-read timeout alone lets a body trickled a byte at a time hold its connection for
    /// ever.
    async fn fill(&mut self, pace: &mut Pace) -> Result<(), BodyError> {
        /// Room for each read: chunks of up to this size reach the handler.
        const ROOM: usize = 64 * 1024;
        self.read.reserve(ROOM);
        let before = self.read.len();
        let mut deadline = Instant::now() + self.config.body_timeout;
        let mut rate_bound = false;
        if self.config.min_body_rate > 0 {
            // The moment the bytes so far stop keeping the average at the minimum.
            let due = pace.started
                + self.config.body_rate_grace
                + Duration::from_secs_f64(
                    pace.received as f64 / f64::from(self.config.min_body_rate),
                );
            if due < deadline {
                (deadline, rate_bound) = (due, true);
            }
        }
        // Bytes already waiting in the socket are taken even past the deadline (the read is
        // polled before the timer).
        let read = timeout_at(deadline, self.stream.read_buf(&mut self.read)).await;
        pace.received += (self.read.len() - before) as u64;
        match read {
            Err(_) if rate_bound => Err(BodyError::Reject(TOO_SLOW)),
            read => body_read(read),
        }
    }

    // ---- Responses ----

    /// Queues `res` (a body in memory) behind earlier responses; a large body is not copied
    /// but returned, for [`Transport::write_large`] to write once the head is out.
    /// `head_only`: a HEAD request (no body on the wire).
    #[must_use]
    #[inline]
    pub(super) fn queue(
        &mut self,
        res: &Response,
        head_only: bool,
        connection: ConnectionHeader,
    ) -> Option<Bytes> {
        let date = self.date.current();
        if res.body().len() >= LARGE_BODY && !head_only {
            encode(&mut self.write, res, date, true, connection);
            Some(res.body().clone())
        } else {
            encode(&mut self.write, res, date, head_only, connection);
            None
        }
    }

    /// Writes what is queued, then `body` straight from where it is.
    pub(super) async fn write_large(&mut self, body: Bytes) -> io::Result<()> {
        self.flush().await?;
        self.write_all_timed(&body).await
    }

    /// Queues the head of a `101 Switching Protocols` (behind every response queued before
    /// it), with the handler's `Connection` and `Upgrade` headers as they are; flush it
    /// before handing the connection over.
    pub(super) fn queue_switching(&mut self, res: &Response) {
        encode_switching(&mut self.write, res, self.date.current());
    }

    /// Queues `res`, the answer to a refused request, as the connection's last; then flush
    /// and [`linger`](Transport::linger): the framing of anything after it is unknown.
    /// `head_only`: the request was a HEAD, whose answer has no body.
    pub(super) fn queue_last(&mut self, res: &Response, head_only: bool) {
        encode(
            &mut self.write,
            res,
            self.date.current(),
            head_only,
            ConnectionHeader::Close,
        );
    }

    /// Sends a response whose body is streamed: the head first (with the handler's headers
    /// and the session's cookie, all set by now), then the body as it comes. Returns whether
    /// the connection stays open: not after a close-delimited body, nor after a stream ended
    /// by shutdown, and never after a body that failed half-way (an error is returned then,
    /// so that the client sees a cut connection, not a clean end).
    pub(super) async fn send_streamed(
        &mut self,
        mut res: Response,
        head_only: bool,
        version: Version,
        keep_alive: bool,
        shutdown: &Shutdown,
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
            Streamed::Stream(stream) => match self.send_stream(stream, framing, shutdown).await? {
                StreamEnd::Done => Ok(keep_alive),
                StreamEnd::Stopped => Ok(false),
            },
            Streamed::File(file) => {
                self.send_file(file).await?;
                Ok(keep_alive)
            }
        }
    }

    /// Writes `stream` framed as `framing`. The stream is polled only when the bytes before
    /// are written (backpressure); what it has ready at once is gathered into one write, and
    /// what is gathered goes out as soon as it has nothing more ready (an event is not held
    /// back). While it has nothing ready, the socket is watched: a client that goes away
    /// ends the response at once, dropping the stream. When shutdown begins, the body ends at
    /// the next chunk boundary without waiting for the producer (an endless event stream
    /// would otherwise hold the server until its drain deadline).
    async fn send_stream(
        &mut self,
        mut stream: BodyStream,
        framing: StreamFraming,
        shutdown: &Shutdown,
    ) -> io::Result<StreamEnd> {
        let mut sent: u64 = 0;
        loop {
            let item = if shutdown.is_stopping() {
                None
            } else {
                match std::future::poll_fn(|cx| Poll::Ready(stream.as_mut().poll_next(cx))).await {
                    Poll::Ready(item) => Some(item),
                    Poll::Pending => {
                        self.flush().await?;
                        self.next_while_watching(&mut stream, shutdown).await?
                    }
                }
            };
            let Some(item) = item else {
                // Shutdown: end here. A body of announced length cannot end early: cut it.
                if let StreamFraming::Length(_) = framing {
                    let _ = self.flush().await;
                    return Err(stream_failed("shutdown cut a body of announced length"));
                }
                drop(stream);
                if framing == StreamFraming::Chunked {
                    self.write.extend_from_slice(b"0\r\n\r\n");
                }
                return Ok(StreamEnd::Stopped);
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
                    tracing::error!(peer = %self.peer, error = %e, "response body stream failed: connection closed");
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
                    return Ok(StreamEnd::Done);
                }
            }
        }
    }

    /// Waits for the stream's next item while watching the socket and shutdown: bytes the
    /// client sends meanwhile (a pipelined request) are kept for later, the client closing
    /// ends the wait with an error (which drops the stream), and shutdown ends it with `None`.
    async fn next_while_watching(
        &mut self,
        stream: &mut BodyStream,
        shutdown: &Shutdown,
    ) -> io::Result<Option<Option<Result<Bytes, crate::http::BoxError>>>> {
        let keep_at_most = self.config.max_head_size.max(self.config.read_buffer_size);
        let mut stop = pin!(shutdown.notified());
        stop.as_mut().enable();
        if shutdown.is_stopping() {
            return Ok(None);
        }
        std::future::poll_fn(|cx| loop {
            if let Poll::Ready(item) = stream.as_mut().poll_next(cx) {
                return Poll::Ready(Ok(Some(item)));
            }
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(None));
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

    // ---- Writing ----

    /// Whether responses are queued.
    #[inline]
    pub(super) fn has_queued(&self) -> bool {
        !self.write.is_empty()
    }

    /// Writes what the socket takes at once (usually everything: no future, no timer) and
    /// says whether the write buffer is empty now.
    pub(super) fn write_now(&mut self) -> io::Result<bool> {
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

    /// Writes out the write buffer, within `write_timeout`.
    pub(super) async fn flush(&mut self) -> io::Result<()> {
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

    /// Half-closes and drains what the client still sends (for a short while), so that
    /// closing with unread data does not reset the connection before the client has read our
    /// last response.
    pub(super) async fn linger(&mut self) {
        let _ = self.stream.shutdown().await;
        // Drain into the read buffer (its contents are abandoned anyway): a scratch array
        // here would sit in every connection's future, idle or not.
        let mut budget: usize = 256 * 1024;
        let deadline = Instant::now() + Duration::from_secs(1);
        while budget > 0 {
            self.read.clear();
            self.read.reserve(4096);
            match timeout_at(deadline, self.stream.read_buf(&mut self.read)).await {
                Ok(Ok(n)) if n > 0 => budget = budget.saturating_sub(n),
                _ => break,
            }
        }
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
pub(super) fn connection_header(keep_alive: bool, version: Version) -> ConnectionHeader {
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
async fn write_timed(stream: &mut TcpStream, bytes: &[u8], limit: Duration) -> io::Result<()> {
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
