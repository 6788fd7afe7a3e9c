//! Handlers: `async fn(Request) -> impl IntoResponse`, and how the router keeps them
//! type-erased ([`ErasedHandler`], crate-private: it starts a handler's future in the
//! connection's `FutureSlot` unboxed, or boxes it behind middleware).

use std::any::Any;
use std::future::Future;

use crate::future::{BoxFuture, FutureSlot};
use crate::http::{IntoResponse, Request, Response};

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
///
/// A type of your own implements it by naming its future (a [`BoxFuture`] when it has no
/// name):
///
/// ```
/// use chirp::routing::Handler;
/// use chirp::{BoxFuture, Request, Response};
///
/// struct Hello;
///
/// impl Handler for Hello {
///     type Future = BoxFuture<'static, Response>;
///     type Output = Response;
///     fn call(&self, _req: Request) -> Self::Future {
///         Box::pin(async { Response::text("hello") })
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The future [`call`](Handler::call) returns.
    type Future: Future<Output = Self::Output> + Send + 'static;
    /// What the future ends with: anything [`IntoResponse`].
    type Output: IntoResponse;

    /// Answers `req`.
    fn call(&self, req: Request) -> Self::Future;
}

impl<F, Fut> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoResponse,
{
    type Future = Fut;
    type Output = Fut::Output;

    fn call(&self, req: Request) -> Fut {
        self(req)
    }
}

/// A [`Handler`] with its future type erased, as the router stores it
/// (`Arc<dyn ErasedHandler>`). Implemented for every handler.
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    /// Starts answering `req`, the future boxed (behind middleware).
    fn call_boxed(&self, req: Request) -> BoxFuture<'static, Response>;

    /// Starts answering `req` with the future put in `slot`, whose allocation is reused when
    /// it last held a future of the same type (no middleware: the connection's slot).
    fn start_in(&self, req: Request, slot: &mut FutureSlot);
}

impl<H: Handler> ErasedHandler for H {
    fn call_boxed(&self, req: Request) -> BoxFuture<'static, Response> {
        let mut fut = Some(self.call(req));
        // A handler whose future is boxed already, with a response (the static files,
        // `login_required`, ...), is not boxed twice.
        if let Some(boxed) = (&mut fut as &mut dyn Any)
            .downcast_mut::<Option<BoxFuture<'static, Response>>>()
            .and_then(Option::take)
        {
            return boxed;
        }
        let Some(fut) = fut else {
            unreachable!("taken only when it was a boxed response future")
        };
        Box::pin(async move { fut.await.into_response() })
    }

    fn start_in(&self, req: Request, slot: &mut FutureSlot) {
        // The handler's own future goes in the slot, converted to a response when it is done:
        // an `async` wrapper around it would hold it twice over (rustc stores a future that
        // an `async` block captures and then awaits in two places), doubling the box.
        slot.put(self.call(req));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn slot_address(slot: &FutureSlot) -> Option<usize> {
        slot.box_address()
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
        assert!(
            slot.box_address().is_some(),
            "the box is kept after its request"
        );
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
        assert!(
            slot.box_address().is_none(),
            "the panicked future is dropped"
        );
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
        assert!(slot.box_address().is_none());
    }
}
