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
    /// Time a client has to send a whole request body (a streamed one: between two reads).
    /// Past it: `408`, closed. Default 60 s.
    pub body_timeout: Duration,
    /// The slowest a streamed request body may arrive, in bytes per second, averaged from
    /// its start, once [`body_rate_grace`](ServerConfig::body_rate_grace) has passed; slower:
    /// `408`, closed. A body trickled a byte at a time would otherwise hold its connection
    /// (and its handler) for as long as each read comes within `body_timeout`. `0`: no
    /// minimum. Default 240 bytes/s (Kestrel's): far below any real client, even a bad
    /// mobile link, and a trickle attack's connection ends within seconds.
    pub min_body_rate: u32,
    /// How long a streamed body may arrive at any rate before
    /// [`min_body_rate`](ServerConfig::min_body_rate) applies (TCP's slow start, a client
    /// that reads a file before sending it). Default 5 s.
    pub body_rate_grace: Duration,
    /// An idle keep-alive connection is closed after this long. Default 60 s.
    pub idle_timeout: Duration,
    /// Time allowed to write one batch of responses to a client that does not read. Default 30 s.
    pub write_timeout: Duration,
    /// Most connections open at once. When a client arrives at the limit, idle keep-alive
    /// connections, connections that never sent a request and connections still sending
    /// their head are closed to make room for it, the longest-waiting first; while none is,
    /// it waits, and clients after it wait in the listen backlog. Capped at start to what the
    /// process's open-file limit allows (raised to its hard limit first), keeping 64
    /// descriptors for everything else, with a warning. Default 10 000.
    pub max_connections: usize,
    /// Most connections open at once from one client address; past it a new connection is
    /// answered `503` and closed. `0`: no per-client limit (the default). Behind a reverse
    /// proxy every client has the proxy's address: set it only when clients connect
    /// directly.
    pub max_connections_per_client: usize,
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
            min_body_rate: 240,
            body_rate_grace: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_connections_per_client: 0,
            backlog: 1024,
            max_buffered_bodies: 256 * 1024 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            read_buffer_size: 4096,
        }
    }
}
