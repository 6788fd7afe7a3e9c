//! # chirp
//!
//! A minimal, fast HTTP/1.1 micro-framework on tokio + httparse, with first-class
//! signed-cookie sessions whose API follows the Python framework of the same name.
//!
//! ```no_run
//! use chirp::middleware::sessions::{get_session, SessionConfig, SessionMiddleware};
//! use chirp::{App, Request};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), chirp::Error> {
//!     let mut app = App::new();
//!     app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
//!
//!     app.route("/dashboard", |_req: Request| async {
//!         let session = get_session()?;
//!         let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
//!         session.insert("visits", visits);
//!         Ok::<_, chirp::Error>(format!("Visits: {visits}"))
//!     });
//!
//!     app.run("127.0.0.1:8000").await
//! }
//! ```
//!
//! The parts, in the order a request meets them: [`server`](ServerConfig) (bytes to
//! [`Request`]), [`App`] and its [`middleware`] chain, the router, your handler, and the
//! [`Response`] back up the chain. [`testing::TestClient`] drives an app without a socket.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod app;
mod error;
pub mod http;
pub mod middleware;
mod panic;
pub mod routing;
mod server;
pub mod testing;

pub use app::{App, Service};
pub use error::{ConfigurationError, Error, HttpError, LookupError};
pub use http::{Cookie, IntoResponse, Method, Request, Response, SameSite, StatusCode};
pub use middleware::{Middleware, Next};
pub use server::ServerConfig;

/// Entry points for the benchmarks in `benches/` (not a stable API: hidden from the docs).
#[doc(hidden)]
pub mod __bench {
    use std::sync::Arc;

    use crate::http::{Method, Request};
    use crate::routing::Router;
    use crate::server::ServerConfig;

    /// Parses one request head with the default limits; its length, if complete and valid.
    /// The target is normalised in place, as in the connection's buffer.
    pub fn parse_head(buf: &mut [u8]) -> Option<usize> {
        let mut headers = crate::http::HeadersBuilder::new();
        crate::server::parse_head(buf, &ServerConfig::default(), &mut headers)
            .ok()
            .flatten()
            .map(|h| h.len)
    }

    /// A route table on its own, for routing benchmarks.
    #[derive(Default)]
    pub struct RouteTable(Router);

    impl RouteTable {
        /// Adds a GET route answering "ok".
        pub fn add(&mut self, pattern: &str) {
            let handler = Arc::new(|_req: Request| async { "ok" });
            self.0
                .insert(pattern, &[Method::Get], handler)
                .expect("valid pattern");
        }

        /// Whether `path` finds a route (the handler is not run).
        pub fn lookup(&self, path: &str) -> bool {
            self.0.has_route(path)
        }
    }
}
