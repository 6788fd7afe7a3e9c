//! Middleware: code that runs around every request, as a chain.
//!
//! A middleware receives the request and a [`Next`]; calling `next.run(req).await` runs the rest
//! of the chain and then the router, and gives back the response. A middleware may change the
//! request before passing it on, change the response after, or answer by itself and never call
//! `next` (short-circuit).
//!
//! **Order:** the first middleware added is the outermost: it sees the request first and the
//! response last.
//!
//! ```
//! use chirp::{App, Request, Response};
//! use chirp::middleware::{from_fn, Next};
//!
//! let mut app = App::new();
//! app.add_middleware(from_fn(|req: Request, next: Next| async move {
//!     next.run(req).await.with_header("x-powered-by", "chirp")
//! }));
//! app.route("/", |_req: Request| async { "hi" });
//! ```

pub mod access_log;
pub mod allowed_hosts;
pub mod auth;
pub mod auth_rate_limit;
pub mod compression;
pub mod cors;
pub mod csrf;
pub mod security_headers;
pub mod sessions;
pub mod static_files;

use std::future::Future;

use crate::future::BoxFuture;
use crate::http::{IntoResponse, Request, Response};
pub use crate::service::{Middleware, Next};

/// Wraps an async closure as a [`Middleware`]; unlike passing the closure directly, its
/// argument types are inferred: `from_fn(|req, next| async move { next.run(req).await })`.
/// The closure may return anything [`IntoResponse`], a `Result` included, so `?` works:
///
/// ```
/// use chirp::middleware::from_fn;
/// use chirp::{App, Error, HttpError, Request};
/// let mut app = App::new();
/// app.add_middleware(from_fn(|req: Request, next| async move {
///     let key = req.header("x-api-key").ok_or_else(|| HttpError::unauthorized("no API key"))?;
///     if key != "secret" {
///         return Err(HttpError::forbidden("wrong API key").into());
///     }
///     Ok::<_, Error>(next.run(req).await)
/// }));
/// ```
pub fn from_fn<F, Fut, R>(f: F) -> FromFn<F>
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    FromFn(f)
}

/// A closure made into a [`Middleware`] by [`from_fn`].
pub struct FromFn<F>(F);

impl<F, Fut, R> Middleware for FromFn<F>
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        let fut = (self.0)(req, next);
        Box::pin(async move { fut.await.into_response() })
    }
}

/// Limits `middleware` to requests whose path is `prefix` or below it (`/admin` covers
/// `/admin` and `/admin/users`, not `/administrator`). The request's path is the normalised
/// one that the router matches too ([`Request::path`]), so `//admin` or `/x/../admin` are in
/// scope; `prefix` is normalised the same way (`/admin/` is `/admin`).
///
/// ```
/// use chirp::middleware::scoped;
/// use chirp::sessions::SessionConfig;
/// use chirp::middleware::sessions::SessionMiddleware;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(scoped("/dashboard", SessionMiddleware::new(SessionConfig::new("my-secret-key"))?));
/// # Ok(()) }
/// ```
pub fn scoped<M: Middleware>(prefix: impl Into<String>, middleware: M) -> Scoped<M> {
    let prefix = crate::http::target::normalize_prefix(&prefix.into());
    Scoped {
        prefix,
        inner: middleware,
    }
}

/// A middleware limited to a path prefix, made by [`scoped`].
pub struct Scoped<M> {
    prefix: String,
    inner: M,
}

impl<M: Middleware> Middleware for Scoped<M> {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        self.inner.call(req, next)
    }

    fn applies_to(&self, req: &Request) -> bool {
        crate::http::target::in_scope(req.path_bytes(), &self.prefix) && self.inner.applies_to(req)
    }

    fn provides(&self) -> &'static [&'static str] {
        self.inner.provides()
    }

    fn requires(&self) -> &'static [&'static str] {
        self.inner.requires()
    }

    fn state_types(&self) -> Vec<crate::state::StateType> {
        self.inner.state_types()
    }

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}
