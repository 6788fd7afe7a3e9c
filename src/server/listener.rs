//! The listener: binds the address, accepts connections, gives each a slot (and makes room by
//! evicting idle connections when none is free), runs one task per connection, and shuts
//! down gracefully: stop accepting, signal, drain, drop what is left at the deadline.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::config::ServerConfig;
use super::shared::Shared;
use super::{client_cap, conn, eviction, fd_limit};
use crate::service::Service;

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

/// Serves `service` on `listener` until `signal` completes, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    service: Service,
    config: ServerConfig,
    signal: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut config = config;
    config.max_connections = fd_limit::cap_connections(config.max_connections);
    let shared = Arc::new(Shared::new(config, service.shutdown().clone()));
    let config = &*shared.config;
    let _date_ticker = crate::clock::start_ticker();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut signal = std::pin::pin!(signal);
    let per_client = (config.max_connections_per_client > 0)
        .then(|| Arc::new(client_cap::ClientCounts::default()));
    // Eviction rounds run while accept fails for want of descriptors, as while slots lack.
    let mut starved_round = 0;
    'serve: loop {
        // Reap finished connection tasks so the set stays small.
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if fd_limit::is_exhaustion(&e) => {
                    // Out of descriptors: the client waits in the backlog until a
                    // connection closes, and idle ones close only when asked to.
                    if starved_round == 0 {
                        tracing::warn!(error = %e, "accept failed: out of file descriptors; closing idle connections");
                    }
                    shared.evict_idle(eviction::threshold(config.idle_timeout, starved_round));
                    starved_round += 1;
                    tokio::time::sleep(eviction::pause(starved_round)).await;
                    continue;
                }
                Err(e) => {
                    // Other failures (a connection reset before it was accepted, ...):
                    // back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        starved_round = 0;
        let client_slot = match &per_client {
            None => None,
            Some(counts) => match counts.enter(peer.ip(), config.max_connections_per_client) {
                Some(slot) => Some(slot),
                None => {
                    tracing::debug!(%peer, "connection refused: too many from this address");
                    let _ = stream.try_write(client_cap::OVER_CAP);
                    continue;
                }
            },
        };
        // A slot for it; when the server is full, close idle connections to make room,
        // longest-idle first, in rounds until a slot is free. (Only now that a
        // client is waiting: an idle connection is not closed while nobody needs its slot.)
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let mut round = 0;
                loop {
                    shared.evict_idle(eviction::threshold(config.idle_timeout, round));
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
            drop((slot, client_slot));
        });
    }
    drop(listener);
    // Idle connections close at once, busy ones after their response, streamed responses at
    // their next chunk boundary; upgraded connections and handlers are told
    // (`ShutdownSignal`), and whatever is left at the deadline is dropped.
    shared.begin_shutdown();
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
