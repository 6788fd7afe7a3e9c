//! Futures as chirp passes them around: [`BoxFuture`], the boxed future of middleware,
//! stores and type-erased handlers, and the connection's `FutureSlot`, where a handler's
//! future runs in a box kept between requests (crate-private: the server and the service use
//! it, handlers never see it).

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::http::{IntoResponse, Response};
use crate::panic::{guarded, panic_response};

/// A boxed, sendable future, as middleware and handlers return them once type-erased.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a connection runs its handlers' futures: one heap slot, kept between requests. A
/// handler future needs a box (the router holds handlers type-erased), but when the next
/// request's future has the same type as the last one, as on a keep-alive connection that
/// keeps calling the same routes, it moves into the box already there: no allocation.
///
/// All of it is safe Rust: the slot holds an `Option<F>` pinned in its box; a new `F` is
/// handed over as `&mut dyn Any`, recognised by downcasting, and moved in with `Pin::set`.
#[derive(Default)]
pub(crate) struct FutureSlot {
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

    /// Polls the future in the slot to its response (see [`FutureSlot::run`]).
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
impl FutureSlot {
    /// Where the slot's box is (`None`: no box), to tell reuse from reallocation in tests.
    pub(crate) fn box_address(&self) -> Option<usize> {
        self.slot
            .as_ref()
            .map(|s| &**s as *const dyn Reusable as *const u8 as usize)
    }
}
