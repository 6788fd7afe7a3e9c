//! The HTTP/1.1 server: accepts connections, runs one task per connection, and shuts down
//! gracefully. What happens on one connection (parsing, framing, keep-alive, pipelining,
//! timeouts) is in [`conn`]; the limits are in [`ServerConfig`].

mod chunked;
mod conn;
mod date;
mod encode;
mod parse;
#[cfg(test)]
mod parse_cases;

/// Binds `addr` with `backlog` (the standard library's bind uses 128, which a burst of
/// connects overflows), trying each address it resolves to.
pub(crate) async fn bind(
    addr: impl tokio::net::ToSocketAddrs,
    backlog: u32,
) -> io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "the address resolved to nothing",
        )
    }))
}

#[cfg(feature = "internals")]
pub(crate) use chunked::ChunkedDecoder;
#[cfg(feature = "internals")]
pub(crate) use parse::parse_head;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::service::Service;

/// Limits and timeouts of the server. Every limit has a default that suits a public-facing
/// app; change what you need:
///
/// ```
/// use chirp::ServerConfig;
/// use std::time::Duration;
/// let config = ServerConfig {
///     max_body_size: 10 * 1024 * 1024,
///     idle_timeout: Duration::from_secs(5),
///     ..ServerConfig::default()
/// };
/// assert_eq!(config.max_head_size, 16 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request head (request line and headers), at most 64 KiB. Over it: `431`.
    /// Default 16 KiB.
    pub max_head_size: usize,
    /// Longest request target. Over it: `414`. Default 8 KiB.
    pub max_uri_len: usize,
    /// Most header lines (at most 128). Over it: `431`. Default 100.
    pub max_headers: usize,
    /// Largest request body, by Content-Length or decoded chunks. Over it: `413`. Default 2 MiB.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head, from its first byte (or from connecting,
    /// for the first request). Past it: `408` and the connection is closed (slowloris).
    /// Default 10 s.
    pub head_timeout: Duration,
    /// Time a client has to send a whole request body. Past it: `408`, closed. Default 60 s.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this long. Default 60 s.
    pub idle_timeout: Duration,
    /// Time allowed to write one batch of responses to a client that does not read. Default 30 s.
    pub write_timeout: Duration,
    /// Most connections open at once. When a client arrives at the limit, idle keep-alive
    /// connections (and connections that never sent a request) are closed to make room for
    /// it, longest-idle first; while none is idle, it waits, and clients after it wait in the
    /// listen backlog. Default 10 000.
    pub max_connections: usize,
    /// Length of the listen backlog: connections the kernel completes before the server
    /// accepts them (a burst of connects past it is refused or retried by the client). Used
    /// when chirp binds the address ([`App::run`](crate::App::run)); capped by the kernel
    /// (`net.core.somaxconn`). Default 1024.
    pub backlog: u32,
    /// Most bytes of request bodies buffered at once, over all connections. A request whose
    /// body would go past it is answered `503` with `Retry-After: 1`, and its connection is
    /// closed (its body is not read). Default 256 MiB.
    pub max_buffered_bodies: usize,
    /// On shutdown, how long in-flight requests may take before their connections are dropped.
    /// Default 30 s.
    pub shutdown_timeout: Duration,
    /// Initial read buffer per connection (it grows for larger requests, and shrinks back
    /// after). Default 4 KiB.
    pub read_buffer_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_size: 16 * 1024,
            max_uri_len: 8 * 1024,
            max_headers: 100,
            max_body_size: 2 * 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            backlog: 1024,
            max_buffered_bodies: 256 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            read_buffer_size: 4096,
        }
    }
}

/// Tells connections that the server is stopping (idle ones close at once, busy ones after
/// the response they are working on), or that it is out of connection slots (idle ones close
/// if they have been idle long enough: see [`Shutdown::evict_idle`]).
#[derive(Default)]
pub(crate) struct Shutdown {
    /// [`STOPPING`] once shutdown began, plus the number of eviction rounds so far: one word,
    /// so that a waiting connection tells whether anything happened with one load.
    signal: AtomicU64,
    notify: Notify,
    /// The idle time (ms) from which the latest eviction round closes a connection.
    evict_idle_over_ms: AtomicU64,
    /// Request body bytes buffered now, over all connections.
    buffered_bodies: AtomicUsize,
}

/// The bit of [`Shutdown::signal`] that says the server is stopping.
const STOPPING: u64 = 1 << 63;

impl Shutdown {
    pub(crate) fn is_stopping(&self) -> bool {
        self.signal() & STOPPING != 0
    }

    /// What has been signalled so far: compare two readings to tell whether anything
    /// (shutdown, an eviction round) happened between them.
    #[inline]
    pub(crate) fn signal(&self) -> u64 {
        self.signal.load(Ordering::Acquire)
    }

    fn begin(&self) {
        self.signal.fetch_or(STOPPING, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Asks every idle connection that has been idle for `idle_over` or longer to close.
    pub(crate) fn evict_idle(&self, idle_over: Duration) {
        let ms = u64::try_from(idle_over.as_millis()).unwrap_or(u64::MAX);
        self.evict_idle_over_ms.store(ms, Ordering::Release);
        self.signal.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Whether a connection idle for `idle` is to close in the latest eviction round.
    pub(crate) fn is_evicted(&self, idle: Duration) -> bool {
        idle.as_millis() >= u128::from(self.evict_idle_over_ms.load(Ordering::Acquire))
    }

    /// Reserves `n` bytes of the server's body budget; `false` when that would go over `max`.
    pub(crate) fn reserve_body(&self, n: usize, max: usize) -> bool {
        let before = self.buffered_bodies.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > max {
            self.buffered_bodies.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back `n` reserved bytes.
    pub(crate) fn release_body(&self, n: usize) {
        self.buffered_bodies.fetch_sub(n, Ordering::AcqRel);
    }
}

/// How long a connection must have been idle to be closed in eviction round `round` (counted
/// from 0 while a client waits for a slot): a quarter of the idle timeout, halving every
/// round, zero from round 12. The longest-idle connections go first, and a full server finds
/// room within about half a second however recently its connections were used.
fn eviction_threshold(idle_timeout: Duration, round: u32) -> Duration {
    if round >= 12 {
        return Duration::ZERO;
    }
    idle_timeout / 2u32.pow(round + 2)
}

/// The pause between eviction rounds: short while the threshold falls, then slower (every
/// round wakes every idle connection).
fn eviction_pause(round: u32) -> Duration {
    Duration::from_millis(if round <= 12 { 40 } else { 200 })
}

/// Serves `service` on `listener` until `signal` completes, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    service: Service,
    config: ServerConfig,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let _date_ticker = crate::clock::start_ticker();
    let shutdown = Arc::new(Shutdown::default());
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut signal = std::pin::pin!(signal);
    'serve: loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // A slot for it; when the server is full, close idle connections to make room,
        // longest-idle first, in rounds until a slot is free. (Only now that a
        // client is waiting: an idle connection is not closed while nobody needs its slot.)
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let mut round = 0;
                loop {
                    shutdown.evict_idle(eviction_threshold(config.idle_timeout, round));
                    round += 1;
                    tokio::select! {
                        slot = slots.clone().acquire_owned() => {
                            break slot.expect("the semaphore is never closed");
                        }
                        () = tokio::time::sleep(eviction_pause(round)) => {}
                        () = &mut signal => break 'serve,
                    }
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (service, config, shutdown) = (service.clone(), config.clone(), shutdown.clone());
        connections.spawn(async move {
            conn::serve_connection(stream, peer, service, config, shutdown).await;
            drop(slot);
        });
    }
    drop(listener);
    shutdown.begin();
    let open = connections.len();
    if open > 0 {
        tracing::info!(open, "shutting down: waiting for in-flight requests");
    }
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = connections.len(),
            "shutdown deadline reached: dropping the remaining connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Completes on Ctrl-C or, on Unix, SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
