//! Handlers: `async fn(Request) -> impl IntoResponse`, optionally with app state as arguments
//! after the request (`async fn(Request, State<Db>)`), and how the router keeps them
//! type-erased ([`ErasedHandler`], crate-private: it starts a handler's future in the
//! connection's `FutureSlot` unboxed, or boxes it behind middleware).

use std::any::Any;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::error::LookupError;
use crate::future::{BoxFuture, FutureSlot};
use crate::http::{IntoResponse, Request, Response};
use crate::state::{State, StateType};

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
/// A handler may also take up to three [`State`] arguments after the request: values the app
/// registered with [`App::state`](crate::App::state), checked when the app is built (a type
/// that was never registered is a [`ConfigurationError`](crate::ConfigurationError) naming
/// the route). The `Args` parameter tells these forms apart; it is inferred, never written.
/// Because a closure could be either form, write its arguments' types (`|req: Request|`,
/// `|req: Request, db: State<Db>|`): without them rustc asks for "type annotations".
///
/// ```
/// use std::sync::Mutex;
/// use chirp::{App, Request, State};
///
/// struct Notes(Mutex<Vec<String>>);
///
/// async fn add(req: Request, notes: State<Notes>) -> String {
///     let mut notes = notes.0.lock().unwrap();
///     notes.push(req.param("text").unwrap_or_default().to_owned());
///     notes.join(",")
/// }
///
/// let mut app = App::new();
/// app.state(Notes(Mutex::new(Vec::new())));
/// app.post("/notes/{text}", add);
/// assert!(app.build().is_ok());
///
/// // Without `app.state(Notes(..))` the app does not build:
/// let mut app = App::new();
/// app.post("/notes/{text}", add);
/// let err = app.build().err().unwrap();
/// assert!(err.message().contains("register it with App::state"));
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
///
/// One that reads app state itself ([`Request::state`]) says which types in
/// [`state_types`](Handler::state_types), so that they are checked at build too; one that
/// wraps another handler passes the inner one's on.
pub trait Handler<Args = (Request,)>: Send + Sync + 'static {
    /// The future [`call`](Handler::call) returns.
    type Future: Future<Output = Self::Output> + Send + 'static;
    /// What the future ends with: anything [`IntoResponse`].
    type Output: IntoResponse;

    /// Answers `req`.
    fn call(&self, req: Request) -> Self::Future;

    /// The app state types this handler reads: the app fails to build when one of them was
    /// not registered with [`App::state`](crate::App::state). None by default.
    fn state_types(&self) -> Vec<StateType> {
        Vec::new()
    }
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

/// Handlers that take `State` arguments after the request: each is looked up in the
/// request's app state (an `Arc` clone) and handed over.
macro_rules! handler_with_state {
    ($($S:ident),+) => {
        impl<F, Fut, $($S),+> Handler<(Request, $(State<$S>,)+)> for F
        where
            F: Fn(Request, $(State<$S>),+) -> Fut + Send + Sync + 'static,
            Fut: Future + Send + 'static,
            Fut::Output: IntoResponse,
            $($S: Send + Sync + 'static,)+
        {
            type Future = StateFuture<Fut>;
            type Output = Result<Fut::Output, LookupError>;

            #[allow(non_snake_case)]
            fn call(&self, req: Request) -> StateFuture<Fut> {
                $(
                    // Checked at build, so missing only for a request that did not come
                    // through the app (made with `Request::new`): a 500 naming the type.
                    let $S = match req.state::<$S>() {
                        Ok(value) => value,
                        Err(e) => return StateFuture::missing(e),
                    };
                )+
                StateFuture::running(self(req, $($S),+))
            }

            fn state_types(&self) -> Vec<StateType> {
                vec![$(StateType::of::<$S>()),+]
            }
        }
    };
}

handler_with_state!(A);
handler_with_state!(A, B);
handler_with_state!(A, B, C);

pin_project_lite::pin_project! {
    /// The future of a handler that takes [`State`] arguments: the handler's own future, or
    /// the [`LookupError`] (a `500`) of a request that carries no such state, as one made
    /// with [`Request::new`] and given to [`Handler::call`] directly. Requests that come
    /// through an app always carry it: the app checks the types when it is built.
    pub struct StateFuture<F> {
        #[pin]
        inner: Inner<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<F> {
        Running { #[pin] future: F },
        Missing { error: Option<LookupError> },
    }
}

impl<F> StateFuture<F> {
    fn running(future: F) -> Self {
        StateFuture {
            inner: Inner::Running { future },
        }
    }

    fn missing(error: LookupError) -> Self {
        StateFuture {
            inner: Inner::Missing { error: Some(error) },
        }
    }
}

impl<F: Future> Future for StateFuture<F> {
    type Output = Result<F::Output, LookupError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProj::Running { future } => future.poll(cx).map(Ok),
            InnerProj::Missing { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| LookupError::new("a handler future polled after it ended")))),
        }
    }
}

/// Starts `handler` on `req` with its future boxed, as a [`Response`] future: for wrappers
/// that hold a handler of any `Args` (`login_required`, `requires`).
pub(crate) fn call_boxed<H: Handler<Args>, Args>(
    handler: &H,
    req: Request,
) -> BoxFuture<'static, Response> {
    let mut fut = Some(handler.call(req));
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

/// A [`Handler`] with its future type (and its `Args`) erased, as the router stores it
/// (`Arc<dyn ErasedHandler>`, made by [`erase`]).
pub(crate) trait ErasedHandler: Send + Sync + 'static {
    /// Starts answering `req`, the future boxed (behind middleware).
    fn call_boxed(&self, req: Request) -> BoxFuture<'static, Response>;

    /// Starts answering `req` with the future put in `slot`, whose allocation is reused when
    /// it last held a future of the same type (no middleware: the connection's slot).
    fn start_in(&self, req: Request, slot: &mut FutureSlot);
}

/// A handler beside the `Args` it was registered with: a handler type may implement
/// [`Handler`] for several `Args`, so the erased form remembers which one is meant.
struct Erased<H, Args> {
    handler: H,
    // `fn() -> Args`: Send, Sync and 'static whatever `Args` is.
    args: PhantomData<fn() -> Args>,
}

/// `handler`, type-erased for the router.
pub(crate) fn erase<H: Handler<Args>, Args: 'static>(handler: H) -> Arc<dyn ErasedHandler> {
    Arc::new(Erased {
        handler,
        args: PhantomData,
    })
}

impl<H: Handler<Args>, Args: 'static> ErasedHandler for Erased<H, Args> {
    fn call_boxed(&self, req: Request) -> BoxFuture<'static, Response> {
        call_boxed(&self.handler, req)
    }

    #[inline]
    fn start_in(&self, req: Request, slot: &mut FutureSlot) {
        // The handler's own future goes in the slot, converted to a response when it is done:
        // an `async` wrapper around it would hold it twice over (rustc stores a future that
        // an `async` block captures and then awaits in two places), doubling the box.
        slot.put(self.handler.call(req));
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
        let echo = erase(|req: Request| async move {
            tokio::task::yield_now().await;
            req.path().to_owned()
        });
        let fixed = erase(|_req: Request| async { "fixed" });
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
        let boom = erase(|_req: Request| async {
            panic!("boom");
            #[allow(unreachable_code)]
            ""
        });
        let mut slot = FutureSlot::default();
        boom.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.status().as_u16(), 500);
        assert!(
            slot.box_address().is_none(),
            "the panicked future is dropped"
        );
        let ok = erase(|_req: Request| async { "ok" });
        ok.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"ok");
    }

    #[tokio::test]
    async fn a_large_future_does_not_keep_its_box() {
        let big = erase(|_req: Request| async {
            let buf = [7u8; 2048];
            tokio::task::yield_now().await;
            buf.iter().map(|&b| u32::from(b)).sum::<u32>().to_string()
        });
        let mut slot = FutureSlot::default();
        big.start_in(Request::new(Method::Get, "/"), &mut slot);
        assert_eq!(slot.run().await.body().as_ref(), b"14336");
        assert!(slot.box_address().is_none());
    }
}
