//! The HTTP/1.1 server: accepts connections, runs one task per connection, and shuts down
//! gracefully. Read top to bottom: [`listener`] (connection slots, eviction when they run
//! out, the drain on shutdown), [`conn`] (one connection's loop: keep-alive,
//! pipelining, timeouts, the handover after a `101`), [`transport`] (HTTP/1.1 framing over
//! the socket: bodies in, responses out), and below them the parser, the encoder and the
//! chunked decoder. The limits are in [`ServerConfig`].
//!
//! The server knows a [`Service`](crate::Service) and `Request`/`Response`, nothing of middleware, routes or
//! sessions.

mod budget;
mod chunked;
mod client_cap;
mod config;
mod conn;
mod date;
mod encode;
mod eviction;
mod fd_limit;
mod listener;
mod parse;
#[cfg(test)]
mod parse_cases;
mod shared;
mod transport;

#[cfg(feature = "internals")]
pub(crate) use chunked::ChunkedDecoder;
pub use config::ServerConfig;
pub(crate) use listener::{bind, serve, shutdown_signal};
#[cfg(feature = "internals")]
pub(crate) use parse::parse_head;
