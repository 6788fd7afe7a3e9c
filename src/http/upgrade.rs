//! Taking over a connection after `101 Switching Protocols` (RFC 9110 §7.8, §15.2.2): a
//! handler answers with [`Response::upgrade`](crate::Response::upgrade) and a callback; the
//! server writes the 101, leaves HTTP/1.1 behind for that connection, and runs the callback
//! with the connection as an [`Upgraded`]. WebSocket is built on this.
//!
//! `Upgraded` is a byte stream, not a socket type: the server hands over its TCP stream,
//! [`TestClient`](crate::testing::TestClient) an in-memory pipe, and the callback is the same.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::shutdown::ShutdownSignal;

/// The byte stream under an upgraded connection.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A connection handed over after `101 Switching Protocols`: read and write it as the new
/// protocol says. Bytes the client sent right after its request head (in the same packet,
/// even) are read first, unchanged. Dropping it closes the connection.
///
/// The connection still holds one of the server's connection slots while the callback runs,
/// and the callback is dropped at the end of the shutdown drain
/// ([`ServerConfig::shutdown_timeout`](crate::ServerConfig::shutdown_timeout)); await
/// [`Upgraded::shutdown_signal`] in it to close cleanly before that.
pub struct Upgraded {
    io: Box<dyn Io>,
    /// Bytes read past the request head, served before the stream's own.
    read_first: Bytes,
    shutdown: ShutdownSignal,
}

impl Upgraded {
    /// The connection `io`, of which `read_first` was already read, on a server whose
    /// shutdown `shutdown` signals.
    pub(crate) fn new(
        io: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
        read_first: Bytes,
        shutdown: ShutdownSignal,
    ) -> Upgraded {
        Upgraded {
            io: Box::new(io),
            read_first,
            shutdown,
        }
    }

    /// The server's shutdown signal: await it to close the new protocol cleanly (a
    /// WebSocket close frame, say) before the drain deadline drops the connection.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        self.shutdown.clone()
    }
}

impl fmt::Debug for Upgraded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgraded")
            .field("read_first", &self.read_first.len())
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Upgraded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read_first.is_empty() {
            let n = self.read_first.len().min(buf.remaining());
            buf.put_slice(&self.read_first[..n]);
            self.read_first.advance(n);
            if self.read_first.is_empty() {
                // A slice of the server's read buffer: let the whole buffer go, not only
                // the bytes read (an idle upgraded connection would keep it otherwise).
                self.read_first = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Upgraded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// The callback's future, boxed (spelled out: `crate::future::BoxFuture` sits above `http`).
type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What a `101` response carries: the callback that takes the connection over.
pub(crate) struct OnUpgrade(Box<dyn FnOnce(Upgraded) -> Running + Send>);

impl OnUpgrade {
    pub(crate) fn new<F, Fut>(callback: F) -> OnUpgrade
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        OnUpgrade(Box::new(move |upgraded| Box::pin(callback(upgraded))))
    }

    /// Runs the callback on `upgraded`.
    pub(crate) fn run(self, upgraded: Upgraded) -> Running {
        (self.0)(upgraded)
    }

    /// The callback run with `key` set to `value`: the callback itself and every poll of its
    /// future see it (a middleware's scope, carried into the upgraded connection's life,
    /// which begins after the middleware has returned).
    pub(crate) fn in_scope<T: Send + 'static>(
        self,
        key: &'static tokio::task::LocalKey<T>,
        value: T,
    ) -> OnUpgrade {
        OnUpgrade(Box::new(move |upgraded| {
            // The callback is called in the scope too (inside the async block's first poll):
            // code before its own `async` block may read the value.
            Box::pin(key.scope(value, async move { self.run(upgraded).await }))
        }))
    }
}

impl fmt::Debug for OnUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnUpgrade")
    }
}

/// Whether a request may be handed over: RFC 9110 §7.8 lets a server switch protocols on an
/// HTTP/1.1 request that lists `upgrade` in `Connection` and names protocols in `Upgrade`
/// (an HTTP/1.0 request's `Upgrade` is ignored); chirp hands over `GET` requests only (a
/// body-carrying upgrade, as h2c allows, is not supported).
pub(crate) fn is_upgrade_request(req: &crate::http::Request) -> bool {
    req.method() == crate::http::Method::Get
        && req.version() == crate::http::Version::Http11
        && req.header("upgrade").is_some_and(|v| !v.trim().is_empty())
        && req.headers().has_token("connection", "upgrade")
}
