//! The HTTP/1.1 server: accepts connections, runs one task per connection, and shuts down
//! gracefully. What happens on one connection (parsing, framing, keep-alive, pipelining,
//! timeouts) is in [`conn`]; the limits are in [`ServerConfig`].

mod chunked;
mod conn;
pub(crate) mod date;
mod encode;
mod parse;
#[cfg(test)]
mod parse_cases;

pub(crate) use parse::parse_head;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::app::Service;

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
    /// Most connections open at once; further clients wait in the listen backlog. Default 10 000.
    pub max_connections: usize,
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
            shutdown_timeout: Duration::from_secs(30),
            read_buffer_size: 4096,
        }
    }
}

/// Tells connections that the server is stopping: idle ones close at once, busy ones after
/// the response they are working on.
#[derive(Default)]
pub(crate) struct Shutdown {
    stopping: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn begin(&self) {
        self.stopping.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }
}

/// Serves `service` on `listener` until `signal` completes, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    service: Service,
    config: ServerConfig,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let _date_ticker = date::start_ticker();
    let shutdown = Arc::new(Shutdown::default());
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut signal => break,
        };
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
