//! Routing: from a request's method and path to the handler that answers it.
//!
//! Files: `router.rs` (the route table) uses `handler.rs` (the [`Handler`] trait and its
//! type-erased form), never the other way round.

mod handler;
mod router;

pub(crate) use handler::{call_boxed, erase};
pub use handler::{Handler, StateFuture};
pub(crate) use router::Router;
