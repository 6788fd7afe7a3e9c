//! The HTTP/1.1 server: accepts connections, runs one task per connection, and shuts down
//! gracefully. Read top to bottom: this file (the listener: connection slots, eviction when
//! they run out, the drain on shutdown), [`conn`] (one connection's loop: keep-alive,
//! pipelining, timeouts, the handover after a `101`), [`transport`] (HTTP/1.1 framing over
//! the socket: bodies in, responses out), and below them the parser, the encoder and the
//! chunked decoder. The limits are in [`ServerConfig`].
//!
//! The server knows a [`Service`] and `Request`/`Response`, nothing of middleware, routes or
//! sessions.

mod budget;
mod chunked;
mod conn;
mod date;
mod encode;
mod eviction;
mod parse;
#[cfg(test)]
mod parse_cases;
mod transport;

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
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use budget::BodyBudget;
use eviction::Eviction;

use crate::service::Service;
use crate::shutdown::Shutdown;

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
    /// Idle connections close at once and streamed responses (SSE, [`Response::stream`]) end
    /// at their next chunk boundary, so this bounds only handlers still working and upgraded
    /// connections that ignore their [`ShutdownSignal`](crate::ShutdownSignal). Default 30 s.
    ///
    /// [`Response::stream`]: crate::Response::stream
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

/// What every connection of one server shares: the limits, the shutdown signal, eviction
/// rounds and the body budget.
pub(crate) struct Shared {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) eviction: Eviction,
    pub(crate) budget: BodyBudget,
}

impl Shared {
    /// The state of a server with `config`, whose shutdown is `shutdown` (the service's: its
    /// requests carry it).
    pub(crate) fn new(config: ServerConfig, shutdown: Arc<Shutdown>) -> Shared {
        Shared {
            budget: BodyBudget::new(config.max_buffered_bodies),
            config: Arc::new(config),
            shutdown,
            eviction: Eviction::default(),
        }
    }
}

/// Serves `service` on `listener` until `signal` completes, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    service: Service,
    config: ServerConfig,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let shared = Arc::new(Shared::new(config, service.shutdown().clone()));
    let config = &*shared.config;
    let _date_ticker = crate::clock::start_ticker();
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
                    shared
                        .eviction
                        .evict_idle(eviction::threshold(config.idle_timeout, round));
                    round += 1;
                    tokio::select! {
                        slot = slots.clone().acquire_owned() => {
                            break slot.expect("the semaphore is never closed");
                        }
                        () = tokio::time::sleep(eviction::pause(round)) => {}
                        () = &mut signal => break 'serve,
                    }
                }
            }
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let (service, shared) = (service.clone(), shared.clone());
        connections.spawn(async move {
            conn::serve_connection(stream, peer, service, shared).await;
            drop(slot);
        });
    }
    drop(listener);
    // Idle connections close at once, busy ones after their response, streamed responses at
    // their next chunk boundary; upgraded connections and handlers are told
    // (`ShutdownSignal`), and whatever is left at the deadline is dropped.
    shared.shutdown.begin();
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
