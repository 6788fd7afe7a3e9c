//! Turning a panic inside a request into a `500` for that request only, and logging it once
//! per place in the code, not once per request.
//!
//! A panic that a client can trigger again and again would otherwise print a message (and,
//! with `RUST_BACKTRACE` set, capture and print a backtrace: ~100× a normal request) every
//! time. chirp installs a panic hook, chained in front of the one already set, that handles
//! only panics raised inside its request guards ([`guarded`]): the first at each source
//! location is logged through `tracing` with its message and location, later ones at `debug`.
//! Every other panic goes to the previous hook, unchanged.

use std::any::Any;
use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Mutex, Once};
use std::task::{Context, Poll};

use crate::http::{Response, StatusCode};

thread_local! {
    /// Whether a request guard is running on this thread (guards nest: the connection's
    /// around the whole chain, a middleware's around the rest; each restores what it found).
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Panics caught at each source location (`file:line:column`), for the log.
static SITES: Mutex<Option<HashMap<String, u64>>> = Mutex::new(None);

/// Installs the hook (once per process). Called when an app is built.
pub(crate) fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                return previous(info);
            }
            let site = info.location().map_or_else(
                || "<unknown>".to_owned(),
                |l| format!("{}:{}:{}", l.file(), l.line(), l.column()),
            );
            let message = payload_message(info.payload());
            let count = {
                let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
                let count = sites
                    .get_or_insert_with(HashMap::new)
                    .entry(site.clone())
                    .or_insert(0);
                *count += 1;
                *count
            };
            if count == 1 {
                tracing::error!(
                    panic = %message,
                    %site,
                    "panic while handling a request; answered 500 (logged once for this site)"
                );
            } else {
                tracing::debug!(panic = %message, %site, count, "panic while handling a request");
            }
        }));
    });
}

/// How many panics were caught at sites whose `file:line:column` holds `site` so far.
#[cfg(test)]
pub(crate) fn caught_at(site: &str) -> u64 {
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    sites.as_ref().map_or(0, |s| {
        s.iter()
            .filter(|(k, _)| k.contains(site))
            .map(|(_, n)| n)
            .sum()
    })
}

/// Runs `f` inside a request guard: a panic in it is `Err` with its payload, and is logged by
/// the hook (once per site), not by the default hook.
#[inline]
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    // No drop guard is needed to restore the flag: `catch_unwind` stops every unwind first.
    let outer = GUARDED.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(outer));
    result
}

/// Runs `fut`; if it panics, answers `500 Internal Server Error`.
///
/// The future is dropped after a panic and never polled again, and nothing it touched is
/// looked at afterwards, so the `AssertUnwindSafe` holds. (Boxed futures only, which need no
/// pinning here: the returned future is the box and nothing else. The type is spelled out,
/// not `routing::BoxFuture`: this module sits below the router.)
pub(crate) fn catch_panic(
    mut fut: Pin<Box<dyn Future<Output = Response> + Send + '_>>,
) -> impl Future<Output = Response> + Send + '_ {
    std::future::poll_fn(
        move |cx: &mut Context<'_>| match guarded(|| fut.as_mut().poll(cx)) {
            Ok(poll) => poll,
            Err(payload) => Poll::Ready(panic_response(payload)),
        },
    )
}

fn payload_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

/// Makes the 500 that answers a caught panic (the hook has logged it).
pub(crate) fn panic_response(payload: Box<dyn Any + Send>) -> Response {
    drop(payload);
    Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_panics_are_counted_per_site_and_the_guard_unwinds() {
        install_hook();
        let line = line!() + 2;
        for _ in 0..3 {
            assert!(guarded(|| -> u32 { panic!("a test panic") }).is_err());
        }
        assert!(
            !GUARDED.with(Cell::get),
            "the guard flag is restored after a panic"
        );
        assert_eq!(caught_at(&format!("panic.rs:{line}:")), 3);
        assert_eq!(guarded(|| 7).unwrap(), 7);
    }
}
