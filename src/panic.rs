//! Turning a panic inside a request into a `500` for that request only.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll};

use crate::http::{Response, StatusCode};
use crate::routing::BoxFuture;

/// Runs `fut`; if it panics, logs the panic and answers `500 Internal Server Error`.
///
/// The future is dropped after a panic and never polled again, and nothing it touched is
/// looked at afterwards, so the `AssertUnwindSafe` holds. (Boxed futures only, which need no
/// pinning here: the returned future is the box and nothing else.)
pub(crate) fn catch_panic(
    mut fut: BoxFuture<'_, Response>,
) -> impl Future<Output = Response> + Send + '_ {
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(panic_response(payload)),
        }
    })
}

/// Logs a caught panic and makes the 500 that answers it.
pub(crate) fn panic_response(payload: Box<dyn Any + Send>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned());
    tracing::error!(panic = %message, "panic while handling a request; answered 500");
    Response::text("Internal Server Error").with_status(StatusCode::INTERNAL_SERVER_ERROR)
}
