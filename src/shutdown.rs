//! Graceful shutdown as the code under the server sees it: a [`ShutdownSignal`] that a handler,
//! a response stream or an upgraded connection can check or await, so that long-lived work
//! ends by itself when the server stops instead of being cut at the drain deadline.
//!
//! The server begins shutdown (on SIGTERM, Ctrl-C or the future given to
//! [`App::serve_with_shutdown`](crate::App::serve_with_shutdown)). Each request carries the
//! server's [`Shutdown`] ([`Request::shutdown_signal`](crate::Request::shutdown_signal)), and
//! so does an upgraded connection. A field rather than a task-local scope around every
//! connection: an `Arc` clone per request costs a few instructions, entering a task-local
//! scope on every poll of every connection costs ten times that.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The stop flag of one server (or one [`TestClient`](crate::testing::TestClient)).
#[derive(Debug, Default)]
pub(crate) struct Shutdown {
    stopping: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// Begins shutdown: every waiter is woken, and every later check sees it.
    pub(crate) fn begin(&self) {
        self.stopping.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether shutdown has begun.
    #[inline]
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// A future that completes at the next [`Shutdown::begin`]. Enable it (or poll it once)
    /// before checking [`Shutdown::is_stopping`], so that a `begin` between the two is not
    /// missed.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }

    /// Completes once shutdown has begun (at once if it already has).
    pub(crate) async fn wait(&self) {
        let notified = self.notified();
        let mut notified = std::pin::pin!(notified);
        notified.as_mut().enable();
        if self.is_stopping() {
            return;
        }
        notified.await;
    }
}

/// Tells whether the server has begun shutting down, and waits for it. Cheap to clone and
/// `'static`: hand it to a task you spawn.
///
/// ```
/// use chirp::{App, Request};
///
/// let mut app = App::new();
/// app.route("/wait", |req: Request| async move {
///     // A long poll that gives up when the server stops.
///     let stop = req.shutdown_signal();
///     tokio::select! {
///         () = stop.wait() => "the server is stopping",
///         () = tokio::time::sleep(std::time::Duration::from_secs(30)) => "nothing new",
///     }
/// });
/// ```
///
/// Streamed responses need none of this: the server ends them at their next chunk boundary
/// when shutdown begins.
#[derive(Clone, Default)]
pub struct ShutdownSignal(Option<Arc<Shutdown>>);

impl ShutdownSignal {
    /// The signal of `shutdown` (`None`: one that never fires).
    pub(crate) fn new(shutdown: Option<Arc<Shutdown>>) -> ShutdownSignal {
        ShutdownSignal(shutdown)
    }

    /// Whether shutdown has begun.
    pub fn is_started(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_stopping())
    }

    /// Completes once shutdown has begun (at once if it already has). For a request made
    /// outside a server or a [`TestClient`](crate::testing::TestClient) it never completes.
    pub async fn wait(&self) {
        match &self.0 {
            Some(shutdown) => shutdown.wait().await,
            None => std::future::pending().await,
        }
    }
}

impl std::fmt::Debug for ShutdownSignal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownSignal")
            .field("started", &self.is_started())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_fires_once_shutdown_begins_and_never_without_a_server() {
        let shutdown = Arc::new(Shutdown::default());
        let signal = ShutdownSignal::new(Some(shutdown.clone()));
        assert!(!signal.is_started());
        let waiting = tokio::spawn({
            let signal = signal.clone();
            async move { signal.wait().await }
        });
        tokio::task::yield_now().await;
        shutdown.begin();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(signal.is_started());
        // Already begun: completes at once.
        signal.wait().await;

        let none = ShutdownSignal::default();
        assert!(!none.is_started());
        let never = tokio::time::timeout(std::time::Duration::from_millis(20), none.wait()).await;
        assert!(never.is_err());
    }
}
