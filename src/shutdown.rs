//! Graceful shutdown as the code under the server sees it: a [`ShutdownSignal`] that a handler,
//! a response stream or an upgraded connection can check or await, so that long-lived work
//! ends by itself when the server stops instead of being cut at the drain deadline.
//!
//! The server begins shutdown (on SIGTERM, Ctrl-C or the future given to
//! [`App::serve_with_shutdown`](crate::App::serve_with_shutdown)); every connection task runs
//! inside a task-local scope holding the server's [`Shutdown`], which [`shutdown_signal`] reads.
//! A task-local rather than a field of the request: it costs a request nothing, and it is
//! there in the places a request is not (a response stream polled after the handler returned,
//! the task of an upgraded connection).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The stop flag of one server (or one [`TestClient`](crate::testing::TestClient)).
#[derive(Default)]
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

tokio::task_local! {
    /// The shutdown of the server whose connection this task serves.
    static CURRENT: Arc<Shutdown>;
}

/// Runs `fut` with `shutdown` as the one [`shutdown_signal`] reports.
pub(crate) fn scope<F: Future>(shutdown: Arc<Shutdown>, fut: F) -> impl Future<Output = F::Output> {
    CURRENT.scope(shutdown, fut)
}

/// Runs `f` with `shutdown` as the one [`shutdown_signal`] reports (for a stream polled
/// outside the connection's task).
pub(crate) fn sync_scope<R>(shutdown: Arc<Shutdown>, f: impl FnOnce() -> R) -> R {
    CURRENT.sync_scope(shutdown, f)
}

/// Tells whether the server has begun shutting down, and waits for it. Cheap to clone and
/// `'static`: hand it to a task you spawn.
///
/// ```
/// use chirp::{shutdown_signal, App, Request};
/// use chirp::sse::{Event, Sse};
///
/// let mut app = App::new();
/// app.route("/wait", |_req: Request| async {
///     // A long poll that gives up when the server stops.
///     let stop = shutdown_signal();
///     tokio::select! {
///         () = stop.wait() => "the server is stopping",
///         () = tokio::time::sleep(std::time::Duration::from_secs(30)) => "nothing new",
///     }
/// });
/// ```
///
/// Streamed responses need none of this: the server ends them at their next chunk boundary
/// when shutdown begins.
#[derive(Clone)]
pub struct ShutdownSignal(Option<Arc<Shutdown>>);

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_started(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_stopping())
    }

    /// Completes once shutdown has begun (at once if it already has). Outside a server (and
    /// outside a [`TestClient`](crate::testing::TestClient)) it never completes.
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

/// The shutdown signal of the server running this task: in a handler, a middleware, a
/// response stream, or an upgraded connection's callback. In a task you spawn yourself, call
/// it before spawning and move the signal in. Outside any server it is a signal that never
/// fires.
pub fn shutdown_signal() -> ShutdownSignal {
    ShutdownSignal(CURRENT.try_with(Arc::clone).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_signal_fires_inside_the_scope_and_never_outside() {
        let shutdown = Arc::new(Shutdown::default());
        let signal = scope(shutdown.clone(), async { shutdown_signal() }).await;
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

        let outside = shutdown_signal();
        assert!(!outside.is_started());
        let never =
            tokio::time::timeout(std::time::Duration::from_millis(20), outside.wait()).await;
        assert!(never.is_err());
    }
}
