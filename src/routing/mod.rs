//! Routing: from a request's method and path to the handler that answers it.

mod handler;
mod router;

pub use handler::{BoxFuture, FutureSlot, Handler};
pub(crate) use router::Router;
