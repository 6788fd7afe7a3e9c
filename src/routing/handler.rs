//! Handlers: `async fn(Request) -> impl IntoResponse`, stored type-erased in the router, and
//! the [`FutureSlot`] a connection runs their futures in.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::http::{IntoResponse, Request, Response};
use crate::panic::{guarded, panic_response};

/// A boxed, sendable future, as middleware and handlers return them once type-erased.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something that answers a request. Implemented for every
/// `Fn(Request) -> impl Future<Output = impl IntoResponse>`, so plain async functions and
/// closures are handlers:
///
/// ```
/// use chirp::{App, Request};
/// async fn hello(_req: Request) -> &'static str {
///     "Hello, World!"
/// }
/// let mut app = App::new();
/// app.route("/", hello);
/// app.route("/echo/{word}", |req: Request| async move {
///     req.param("word").unwrap_or_default().to_owned()
/// });
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn call(&self, req: Request) -> BoxFuture<'static, Response>;

    /// Starts answering `req` with the future put in `slot`, whose allocation is reused when
    /// it last held a future of the same type. The server calls this; the default boxes
    /// [`Handler::call`]'s future.
    #[doc(hidden)]
    fn start_in(&self, req: Request, slot: &mut FutureSlot) {
        slot.put(self.call(req));
    }
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let fut = self(req);
        Box::pin(async move { fut.await.into_response() })
    }

    fn start_in(&self, req: Request, slot: &mut FutureSlot) {
        // The handler's own future goes in the slot, converted to a response when it is done:
        // an `async` wrapper around it would hold it twice over (rustc stores a future that
        // an `async` block captures and then awaits in two places), doubling the box.
        slot.put(self(req));
    }
}

/// Where a connection runs its handlers' futures: one heap slot, kept between requests. A
/// handler future needs a box (the router holds handlers type-erased), but when the next
/// request's future has the same type as the last one, as on a keep-alive connection that
/// keeps calling the same routes, it moves into the box already there: no allocation.
///
/// All of it is safe Rust: the slot holds an `Option<F>` pinned in its box; a new `F` is
/// handed over as `&mut dyn Any`, recognised by downcasting, and moved in with `Pin::set`.
#[doc(hidden)]
#[derive(Default)]
pub struct FutureSlot {
    slot: Option<Pin<Box<dyn Reusable>>>,
}

/// A slot's box is kept after its request only up to this size: an idle connection should
/// not hold on to a large handler future's memory.
const KEEP_AT_MOST: usize = 512;

/// An `Option<F>` for some handler future type `F`, type-erased.
trait Reusable: Send {
    /// Polls the future; when it is done, drops it (the box stays).
    fn poll_response(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response>;
    /// Moves the future out of `new` into this slot if `new` is an `Option` of this slot's
    /// type; `false` (and `new` untouched) otherwise.
    fn refill(self: Pin<&mut Self>, new: &mut dyn Any) -> bool;
}

impl<F> Reusable for Option<F>
where
    F: Future + Send + 'static,
    F::Output: IntoResponse,
{
    fn poll_response(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let Some(fut) = self.as_mut().as_pin_mut() else {
            // The server polls a slot only after putting a future in it.
            return Poll::Ready(panic_response(Box::new("empty handler slot polled")));
        };
        let out = std::task::ready!(fut.poll(cx));
        self.set(None);
        Poll::Ready(out.into_response())
    }

    fn refill(mut self: Pin<&mut Self>, new: &mut dyn Any) -> bool {
        match new.downcast_mut::<Option<F>>() {
            Some(new) => {
                self.set(new.take());
                true
            }
            None => false,
        }
    }
}

impl FutureSlot {
    /// Puts `fut` in the slot, in the box already there if it fits this type.
    pub(crate) fn put<F>(&mut self, fut: F)
    where
        F: Future + Send + 'static,
        F::Output: IntoResponse,
    {
        let mut new = Some(fut);
        if let Some(slot) = &mut self.slot {
            if slot.as_mut().refill(&mut new) {
                return;
            }
        }
        self.slot = Some(Box::pin(new));
    }

    /// Runs the future in the slot to its response. A panic in it is a `500`, and the future
    /// is dropped with its box.
    #[cfg(test)]
    pub(crate) fn run(&mut self) -> impl Future<Output = Response> + '_ {
        std::future::poll_fn(|cx| self.poll(cx))
    }

    /// Polls the future in the slot (see [`FutureSlot::run`]).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Response> {
        let Some(slot) = &mut self.slot else {
            return Poll::Ready(panic_response(Box::new("empty handler slot polled")));
        };
        match guarded(|| slot.as_mut().poll_response(cx)) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(res)) => {
                if std::mem::size_of_val(&**slot) > KEEP_AT_MOST {
                    self.slot = None;
                }
                Poll::Ready(res)
            }
            Err(payload) => {
                self.slot = None; // never polled again
                Poll::Ready(panic_response(payload))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn slot_address(slot: &FutureSlot) -> Option<usize> {
        slot.slot
            .as_ref()
            .map(|s| &**s as *const dyn Reusable as *const u8 as usize)
    }

    /// A handler that keeps its request (as most do) has a future small enough to be kept
    /// between requests, and the next request of the same route moves into the same box.
    #[tokio::test]
    async fn the_same_future_type_reuses_the_box_and_another_replaces_it() {
        let echo = |req: Request| async move {
            tokio::task::yield_now().await;
            req.path().to_owned()
        };
        let fixed = |_req: Request| async { "fixed" };
        let mut slot = FutureSlot::default();

        echo.start_in(Request::new(Method::Get, "/a"), &mut slot);
        let first = slot_address(&slot);
        assert_eq!(slot.run().await.body().as_ref(), b"/a");
        assert!(slot.slot.is_some(), "the box is kept after its request");
        assert_eq!(slot_address(&slot), first);
        echo.start_in(Request::new(Method::Get, "/b"), &mut slot);
        assert_eq!(slot_address(&slot), first, "same type: same box");
        assert_eq!(slot.run().await.body().as_ref(), b"/b");

        fixed.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"fixed");
        echo.start_in(Request::new(Method::Get, "/c"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"/c");
    }

    #[tokio::test]
    async fn a_panicking_future_is_a_500_and_the_slot_still_works() {
        let boom = |_req: Request| async {
            panic!("boom");
            #[allow(unreachable_code)]
            ""
        };
        let mut slot = FutureSlot::default();
        boom.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.status().as_u16(), 500);
        assert!(slot.slot.is_none(), "the panicked future is dropped");
        let ok = |_req: Request| async { "ok" };
        ok.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"ok");
    }

    #[tokio::test]
    async fn a_large_future_does_not_keep_its_box() {
        let big = |_req: Request| async {
            let buf = [7u8; 2048];
            tokio::task::yield_now().await;
            buf.iter().map(|&b| u32::from(b)).sum::<u32>().to_string()
        };
        let mut slot = FutureSlot::default();
        big.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"14336");
        assert!(slot.slot.is_none());
    }
}
