//! The server's limits and timeouts, [`ServerConfig`], with the defaults a public-facing app
//! starts from.

use std::time::Duration;

/// Limits and timeouts of the server. Every limit has a default that suits a public-facing
/// app; change what you need:
///
/// ```
/// use chirp::ServerConfig;
/// use std::time::Duration;
/// let config = ServerConfig {
///     max_body_size: 10 * 1024 * 1024,
///     idle_timeout: Duration::from_secs(5),
///     ..ServerConfig::default()
/// };
/// assert_eq!(config.max_head_size, 16 * 1024);
/// ```
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Largest request head (request line and headers), at most 64 KiB. Over it: `431`.
    /// Default 16 KiB.
    pub max_head_size: usize,
    /// Longest request target. Over it: `414`. Default 8 KiB.
    pub max_uri_len: usize,
    /// Most header lines (at most 128). Over it: `431`. Default 100.
    pub max_headers: usize,
    /// Largest request body, by Content-Length or decoded chunks. Over it: `413`. Default 2 MiB.
    pub max_body_size: usize,
    /// Time a client has to send a whole request head, from its first byte (or from connecting,
    /// for the first request). Past it: `408` and the connection is closed (slowloris).
    /// Default 10 s.
    pub head_timeout: Duration,
    /// Time a client has to send a whole request body. Past it: `408`, closed. Default 60 s.
    pub body_timeout: Duration,
    /// An idle keep-alive connection is closed after this long. Default 60 s.
    pub idle_timeout: Duration,
    /// Time allowed to write one batch of responses to a client that does not read. Default 30 s.
    pub write_timeout: Duration,
    /// Most connections open at once. When a client arrives at the limit, idle keep-alive
    /// connections (and connections that never sent a request) are closed to make room for
    /// it, longest-idle first; while none is idle, it waits, and clients after it wait in the
    /// listen backlog. Default 10 000.
    pub max_connections: usize,
    /// Length of the listen backlog: connections the kernel completes before the server
    /// accepts them (a burst of connects past it is refused or retried by the client). Used
    /// when chirp binds the address ([`App::run`](crate::App::run)); capped by the kernel
    /// (`net.core.somaxconn`). Default 1024.
    pub backlog: u32,
    /// Most bytes of request bodies buffered at once, over all connections. A request whose
    /// body would go past it is answered `503` with `Retry-After: 1`, and its connection is
    /// closed (its body is not read). Default 256 MiB.
    pub max_buffered_bodies: usize,
    /// On shutdown, how long in-flight requests may take before their connections are dropped.
    /// Idle connections close at once and streamed responses (SSE, [`Response::stream`]) end
    /// at their next chunk boundary, so this bounds only handlers still working and upgraded
    /// connections that ignore their [`ShutdownSignal`](crate::ShutdownSignal). Default 30 s.
    ///
    /// [`Response::stream`]: crate::Response::stream
    pub shutdown_timeout: Duration,
    /// Initial read buffer per connection (it grows for larger requests, and shrinks back
    /// after). Default 4 KiB.
    pub read_buffer_size: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_size: 16 * 1024,
            max_uri_len: 8 * 1024,
            max_headers: 100,
            max_body_size: 2 * 1024 * 1024,
            head_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            backlog: 1024,
            max_buffered_bodies: 256 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            read_buffer_size: 4096,
        }
    }
}
