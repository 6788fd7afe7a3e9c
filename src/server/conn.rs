//! The connection loop: parse every complete request in the read buffer, answer each in
//! order through the [`Service`], let the transport write all those answers in one go, and
//! wait for more: keep-alive, pipelining, the timeouts between requests, shutdown and
//! eviction. Framing, bodies and writes are the transport's (`transport.rs`); after a `101`
//! the loop hands the transport's socket to the handler's callback and leaves.
//!
//! Time limits use one timer per connection, armed once and moved only when it fires (or when
//! a head starts arriving in pieces), so a keep-alive request costs no timer work:
//! - waiting for the first byte of a request: `idle_timeout` since the last response
//!   (`head_timeout` since connecting, for the first request);
//! - a head that has started arriving: `head_timeout` since its first byte (slowloris);
//! - a body: `body_timeout` for the whole body; writes: `write_timeout` per batch (both in
//!   the transport).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};

use super::parse::{parse_head, Framing, Head, Reject};
use super::shared::Shared;
use super::transport::{connection_header, BodyError, Transport, TOO_LARGE};
use crate::future::FutureSlot;
use crate::http::body::BodyReceiver;
use crate::http::file::Conditionals;
use crate::http::problem::ErrorHead;
use crate::http::upgrade::OnUpgrade;
use crate::http::{HeadersBuilder, Method, Request, Response, StatusCode};
use crate::panic::catch_panic;
use crate::service::{Hints, Service, Started};
use crate::shutdown::ShutdownSignal;

/// Serves one connection until it closes (or, after a `101`, until the upgrade's callback
/// returns); errors only end this connection.
pub(crate) async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: Service,
    shared: Arc<Shared>,
) {
    let mut conn = Connection {
        transport: Transport::new(stream, peer, shared.config.clone()),
        headers: HeadersBuilder::new(),
        slot: FutureSlot::default(),
        service,
    };
    match conn.run(&shared).await {
        Ok(None) => {}
        Ok(Some(on_upgrade)) => {
            // Out of HTTP: no keep-alive, no request timeouts, no middleware. The task (and
            // so the connection slot) lives until the callback returns, or until the drain
            // deadline drops it.
            let signal = ShutdownSignal::new(Some(shared.shutdown.clone()));
            // The handler futures' box goes now, not when the upgraded connection ends: an
            // idle WebSocket holds its socket and its own buffers. (Taking `conn` apart here
            // instead cost `/json` 40 instructions: this future's layout is the hot path's.)
            conn.slot = FutureSlot::default();
            on_upgrade.run(conn.transport.into_upgraded(signal)).await;
        }
        // The peer from the transport, not the argument: one copy fewer held across the await.
        Err(e) => {
            let peer = conn.transport.peer;
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}

struct Connection {
    transport: Transport,
    /// The header offsets of the head being parsed.
    headers: HeadersBuilder,
    /// Where handler futures run: its box is reused from request to request.
    slot: FutureSlot,
    service: Service,
}

/// What ended a wait for more bytes.
enum Wake {
    /// The socket read (bytes, or 0 at end of stream).
    Read(io::Result<usize>),
    /// The connection's timer went off.
    Timer,
    /// Shutdown began, or an eviction round started (and this connection is between
    /// requests).
    Notice,
}

/// What the connection does after a response.
enum After {
    KeepAlive,
    Close,
    /// The response was a `101`: hand the connection to this callback.
    Upgrade(OnUpgrade),
}

impl From<bool> for After {
    #[inline]
    fn from(keep_alive: bool) -> After {
        if keep_alive {
            After::KeepAlive
        } else {
            After::Close
        }
    }
}

impl Connection {
    /// The loop. Returns the upgrade callback when a `101` handed the connection over.
    async fn run(&mut self, shared: &Shared) -> io::Result<Option<OnUpgrade>> {
        let config = &*shared.config;
        let mut notice = pin!(shared.notified());
        notice.as_mut().enable();
        let connected = Instant::now();
        let mut timer = pin!(sleep_until(connected + config.head_timeout));
        let mut served_any = false;
        let mut idle_since = connected;
        // When the first bytes of a still-incomplete head were seen (None: no partial head).
        let mut head_started: Option<Instant> = None;
        // Whether the timer and the server's notices hold the waker in `armed_with` (below).
        let (mut timer_armed, mut notices_armed) = (false, false);
        let mut armed_with: Option<Waker> = None;
        // The eviction rounds this connection has answered.
        let mut rounds_seen = shared.eviction.rounds();
        loop {
            // Answer every complete request already in the buffer.
            if !self.transport.read.is_empty() {
                match parse_head(&mut self.transport.read, config, &mut self.headers) {
                    Ok(Some(head)) => {
                        served_any = true;
                        head_started = None;
                        match self.respond(head, shared).await? {
                            After::KeepAlive => continue,
                            After::Close => {
                                self.transport.flush().await?;
                                return Ok(None);
                            }
                            After::Upgrade(on_upgrade) => return Ok(Some(on_upgrade)),
                        }
                    }
                    Ok(None) => {
                        if head_started.is_none() {
                            // A head arriving in pieces gets head_timeout, not idle_timeout.
                            let now = Instant::now();
                            head_started = Some(now);
                            let deadline = now + config.head_timeout;
                            if timer.deadline() > deadline {
                                timer.as_mut().reset(deadline);
                                timer_armed = false;
                            }
                        }
                    }
                    Err(reject) => {
                        // A refused HEAD request gets no body either (RFC 9110 §9.3.2).
                        let head_only = self.transport.read.starts_with(b"HEAD ");
                        self.refuse(reject, head_only, None).await?;
                        return Ok(None);
                    }
                }
            }
            // Need more bytes: first send what is ready, all in one write.
            if self.transport.has_queued() {
                if !self.transport.write_now()? {
                    self.transport.flush().await?;
                }
                idle_since = Instant::now();
            }
            if self.transport.read.is_empty() && shared.shutdown.is_stopping() {
                return Ok(None);
            }
            self.transport.reserve_read_space();
            let transport = &mut self.transport;
            let wake = std::future::poll_fn(|cx| {
                if let Poll::Ready(read) = transport.poll_read(cx) {
                    return Poll::Ready(Wake::Read(read));
                }
                // The timer and the server's notices keep the waker they were last polled
                // with. While that waker stays the same (a spawned task's does), they are
                // polled again only once they may have fired, not on every request.
                if !armed_with.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    armed_with = Some(cx.waker().clone());
                    (timer_armed, notices_armed) = (false, false);
                }
                if !timer_armed || timer.is_elapsed() {
                    timer_armed = true;
                    if timer.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Timer);
                    }
                }
                // The notices reach a connection waiting for a head: an idle one, or one
                // whose head is still arriving (eviction takes those too: a flood of heads
                // that never finish must not hold every slot). Shutdown waits for a head
                // under way, so once it began, a connection with a partial head stops
                // listening (the fired notice would wake it on every poll).
                let between = transport.read.is_empty();
                let stopping = shared.shutdown.is_stopping();
                if (between || !stopping)
                    && (!notices_armed || stopping || shared.eviction.rounds() != rounds_seen)
                {
                    notices_armed = true;
                    if notice.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Wake::Notice);
                    }
                }
                Poll::Pending
            });
            match wake.await {
                Wake::Read(read) => {
                    if read? == 0 {
                        return Ok(None); // the client closed (an unfinished request is dropped)
                    }
                }
                Wake::Timer => {
                    let deadline = match head_started {
                        Some(started) => started + config.head_timeout,
                        None if served_any => idle_since + config.idle_timeout,
                        None => connected + config.head_timeout,
                    };
                    if Instant::now() < deadline {
                        timer.as_mut().reset(deadline);
                        timer_armed = false;
                    } else if self.transport.read.is_empty() {
                        return Ok(None); // idle: close quietly
                    } else {
                        let head_only = self.transport.read.starts_with(b"HEAD ");
                        let reject = Reject {
                            status: StatusCode::REQUEST_TIMEOUT,
                            reason: "request head not received in time",
                        };
                        self.refuse(reject, head_only, None).await?;
                        return Ok(None);
                    }
                }
                Wake::Notice if shared.shutdown.is_stopping() && self.transport.read.is_empty() => {
                    return Ok(None)
                }
                Wake::Notice => {
                    // An eviction round (or shutdown, for a head under way: it is served
                    // first). The server is out of connection slots: an idle connection is
                    // free to drop (the client reconnects when it needs to), and so is one
                    // whose head has been arriving for longer than the round allows, the
                    // oldest first, like idle ones.
                    if shared.eviction.rounds() != rounds_seen {
                        rounds_seen = shared.eviction.rounds();
                        let waiting_since = match head_started {
                            Some(started) => started,
                            None if served_any => idle_since,
                            None => connected,
                        };
                        if shared.eviction.is_evicted(waiting_since.elapsed()) {
                            let what = if head_started.is_some() {
                                "connection with an unfinished head closed to make room"
                            } else {
                                "idle connection closed to make room"
                            };
                            tracing::debug!(peer = %self.transport.peer, what);
                            return Ok(None);
                        }
                    }
                    notice.set(shared.notified());
                    notice.as_mut().enable();
                    notices_armed = false;
                }
            }
        }
    }

    /// Reads the body of `head`, runs the app, and sends (or queues) the response.
    async fn respond(&mut self, head: Head, shared: &Shared) -> io::Result<After> {
        let head_bytes = self.transport.read.split_to(head.len as usize).freeze();
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
            let limit = route.map_or(shared.config.max_body_size, |c| c.max_size());
            if let Framing::Length(n) = head.framing {
                if n > limit {
                    let parsed = (&head, head_bytes.clone());
                    self.refuse(TOO_LARGE, head.method == Method::Head, Some(parsed))
                        .await?;
                    return Ok(After::Close);
                }
            }
            if route.is_some_and(|c| c.is_streamed()) {
                // Boxed, in a statement of its own: this rare path's state would otherwise
                // sit in every connection's future (and a temporary in the awaiting statement
                // would keep the unboxed future's room alive across the await).
                let streaming = Box::pin(self.respond_streaming(head, head_bytes, limit, shared));
                return streaming.await;
            }
            let reserved = reservation.insert(shared.budget.reservation());
            match self.transport.read_body(&head, reserved, limit).await {
                Ok(body) => body,
                Err(BodyError::Reject(reject)) => {
                    let parsed = (&head, head_bytes.clone());
                    self.refuse(reject, head.method == Method::Head, Some(parsed))
                        .await?;
                    return Ok(After::Close);
                }
                Err(BodyError::Io(e)) => return Err(e),
            }
        };
        let conditionals = self.conditionals(&head, &head_bytes);
        // The head's bytes, kept (a reference count) for an error's rendering and log, which
        // read the request's path and headers there once the request is gone.
        let kept = head_bytes.clone();
        let make = || {
            Request::from_parts(
                head.method,
                head.version,
                head.target,
                self.headers.take(head_bytes),
                body,
                Some(self.transport.peer),
            )
        };
        // `Service::respond`'s three steps, with `Started::response` written out: awaited
        // here rather than as a future of its own, it saves a layer of async state (~75
        // instructions of ~5,300 per keep-alive request, measured with callgrind).
        let mut res = match self.service.start_with(make, &mut self.slot) {
            Started::Answered(res) => res,
            Started::Running(fut) => catch_panic(fut).await,
            Started::InSlot => std::future::poll_fn(|cx| self.slot.poll(cx)).await,
        };
        // The hints are made now, not before the await: a connection's future holds the
        // largest state of its request, so what lives across an await costs every
        // connection, idle ones included.
        self.service
            .finish(&mut res, hints(&head, conditionals, kept));
        let keep_alive = head.keep_alive && !shared.shutdown.is_stopping();
        if res.status() == StatusCode::SWITCHING_PROTOCOLS || res.is_streamed() {
            // Boxed, in a statement of its own, as above: off the common path.
            let send = Box::pin(self.send(res, &head, keep_alive, shared));
            return send.await;
        }
        // The common path, written out: a body in memory, queued behind earlier answers.
        let head_only = head.method == Method::Head;
        let connection = connection_header(keep_alive, head.version);
        if let Some(large) = self.transport.queue(&res, head_only, connection) {
            drop(res);
            self.transport.write_large(large).await?;
        }
        self.transport.shrink_read();
        Ok(keep_alive.into())
    }

    /// The request's Range and If-* headers, kept aside for the response (files answer
    /// them), read before the request takes its headers.
    #[inline]
    fn conditionals(&self, head: &Head, head_bytes: &Bytes) -> Option<Box<Conditionals>> {
        if head.conditional {
            Conditionals::of_headers(head.method, &self.headers.peek(head_bytes)).map(Box::new)
        } else {
            None
        }
    }

    /// Sends `res` (made and rendered) for `head`: a switch of protocols, a streamed body,
    /// or one in memory, queued behind earlier answers.
    async fn send(
        &mut self,
        mut res: Response,
        head: &Head,
        keep_alive: bool,
        shared: &Shared,
    ) -> io::Result<After> {
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // The service let this 101 through: the request asked for it and the response
            // has its callback.
            if let Some(on_upgrade) = res.take_upgrade() {
                self.transport.queue_switching(&res);
                drop(res);
                self.transport.flush().await?;
                return Ok(After::Upgrade(on_upgrade));
            }
        }
        let head_only = head.method == Method::Head;
        if res.is_streamed() {
            // Boxed, as above: a streamed body's state stays out of the connection's future.
            let streamed = Box::pin(self.transport.send_streamed(
                res,
                head_only,
                head.version,
                keep_alive,
                &shared.shutdown,
            ));
            return Ok(streamed.await?.into());
        }
        let connection = connection_header(keep_alive, head.version);
        if let Some(large) = self.transport.queue(&res, head_only, connection) {
            drop(res);
            self.transport.write_large(large).await?;
        }
        self.transport.shrink_read();
        Ok(keep_alive.into())
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
        shared: &Shared,
    ) -> io::Result<After> {
        // Earlier pipelined answers go out first: the client may wait for them before it
        // sends the body.
        self.transport.flush().await?;
        let (tx, chunks) = tokio::sync::mpsc::channel(2);
        let (wanted, want) = tokio::sync::oneshot::channel();
        let kept = head_bytes.clone();
        let hints = hints(&head, self.conditionals(&head, &head_bytes), kept.clone());
        let (headers, peer) = (&mut self.headers, self.transport.peer);
        let make = || {
            let mut req = Request::from_parts(
                head.method,
                head.version,
                head.target,
                headers.take(head_bytes),
                Bytes::new(),
                Some(peer),
            );
            req.extensions_mut().insert(BodyReceiver { chunks, wanted });
            req
        };
        // The handler and the body's reader run side by side, then both are dropped.
        let (res, body) = {
            let handler = self.service.respond(make, &mut self.slot, hints);
            let pump = self.transport.pump_body(&head, limit, (tx, want));
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
                self.refuse(reject, false, Some((&head, kept))).await?;
                Ok(After::Close)
            }
            Some(Err(BodyError::Io(e))) => Err(e),
            Some(Ok(true)) => {
                let keep_alive = head.keep_alive && !shared.shutdown.is_stopping();
                self.send(res, &head, keep_alive, shared).await
            }
            // Not read to its end: answer, then close (what follows is unread body).
            Some(Ok(false)) | None => {
                self.send(res, &head, false, shared).await?;
                self.transport.flush().await?;
                self.transport.linger().await;
                Ok(After::Close)
            }
        }
    }

    /// Answers a refused request and closes: the framing of anything after it is unknown.
    /// `head_only`: the request was a HEAD, whose answer has no body. `parsed`: the head and
    /// its bytes, when it was read whole (a refused body): then the refusal is rendered for
    /// its path and `Accept`, like the app's other errors.
    async fn refuse(
        &mut self,
        reject: Reject,
        head_only: bool,
        parsed: Option<(&Head, Bytes)>,
    ) -> io::Result<()> {
        tracing::debug!(peer = %self.transport.peer, status = reject.status.as_u16(), reason = reject.reason, "request refused");
        let mut res = Response::error(reject.status, reject.reason);
        if reject.status == StatusCode::SERVICE_UNAVAILABLE {
            res.append_trusted_header("retry-after", "1".to_owned());
        }
        // The app's error pages cover the server's refusals too. A head that did not parse
        // has no Accept or path to go by: text, unless the app's handler decides otherwise.
        let (prefers_json, head) = match parsed {
            Some((head, bytes)) => (head.prefers_json, Some(error_head(head, bytes))),
            None => (false, None),
        };
        self.service.render(&mut res, prefers_json, head);
        self.transport.queue_last(&res, head_only);
        drop(res);
        self.transport.flush().await?;
        self.transport.linger().await;
        Ok(())
    }
}

/// What the response will need of the request (see [`Hints`]); `bytes` are the head's.
#[inline]
fn hints(head: &Head, conditionals: Option<Box<Conditionals>>, bytes: Bytes) -> Hints {
    Hints {
        prefers_json: head.prefers_json,
        conditionals,
        upgradable: head.upgrade,
        head: Some(error_head(head, bytes)),
    }
}

/// What an error's rendering needs of a parsed head whose bytes are `bytes`.
#[inline]
fn error_head(head: &Head, bytes: Bytes) -> ErrorHead {
    ErrorHead::Raw {
        method: head.method,
        path: (head.target.start, head.target.path_end),
        bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::ServerConfig;

    /// A served connection's future (not yet polled), its client end and the server state.
    async fn connection() -> (impl Future<Output = ()>, tokio::net::TcpStream, Arc<Shared>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, peer) = listener.accept().await.unwrap();
        let service = Service::empty();
        let shared = Arc::new(Shared::new(
            ServerConfig::default(),
            service.shutdown().clone(),
        ));
        let fut = serve_connection(stream, peer, service, shared.clone());
        (fut, client, shared)
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
        let (conn, _client, shared) = connection().await;
        let mut conn = Box::pin(conn);
        let (first, first_count) = counting_waker();
        let (latest, latest_count) = counting_waker();
        assert!(pending(conn.as_mut(), &first), "an idle connection waits");
        assert!(pending(conn.as_mut(), &latest));
        shared.begin_shutdown();
        let c = |w: &Counter| w.0.load(std::sync::atomic::Ordering::SeqCst);
        assert!(c(&latest_count) > 0, "the latest waker was not woken");
        assert_eq!(c(&first_count), 0);
        assert!(
            !pending(conn.as_mut(), &latest),
            "the idle connection closes"
        );
    }

    /// An eviction round closes a connection idle for longer than its threshold, and leaves
    /// one that is not.
    #[tokio::test]
    async fn an_eviction_round_closes_only_connections_idle_long_enough() {
        let (conn, _client, shared) = connection().await;
        let mut conn = Box::pin(conn);
        let (waker, _) = counting_waker();
        assert!(pending(conn.as_mut(), &waker));
        shared.evict_idle(std::time::Duration::from_secs(3600));
        assert!(pending(conn.as_mut(), &waker), "not idle long enough");
        shared.evict_idle(std::time::Duration::ZERO);
        assert!(!pending(conn.as_mut(), &waker), "evicted");
    }
}
