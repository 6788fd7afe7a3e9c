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
pub mod audit;
pub mod auth;
pub mod auth_rate_limit;
pub mod compression;
pub mod cors;
pub mod csrf;
pub mod flash;
#[cfg(feature = "redis")]
mod redis_conn;
pub mod security_headers;
pub mod sessions;
pub mod static_files;

use std::future::Future;
use std::sync::Arc;

use crate::http::{IntoResponse, Request, Response};
use crate::panic::catch_panic;
use crate::routing::{BoxFuture, Router};

/// A middleware. Implement it for a struct, or use any
/// `Fn(Request, Next) -> impl Future<Output = impl IntoResponse>` (see [`from_fn`]).
///
/// ```
/// use chirp::{Request, Response, StatusCode};
/// use chirp::middleware::{Middleware, Next};
/// use chirp::routing::BoxFuture;
///
/// /// Answers 503 to everything while `down` is set.
/// struct Maintenance { down: bool }
///
/// impl Middleware for Maintenance {
///     fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
///         Box::pin(async move {
///             if self.down {
///                 return Response::text("back soon").with_status(StatusCode::SERVICE_UNAVAILABLE);
///             }
///             next.run(req).await
///         })
///     }
/// }
/// ```
pub trait Middleware: Send + Sync + 'static {
    /// Handles `req`, usually by calling `next.run(req)`.
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response>;

    /// Whether this middleware wants `req` at all; when not, the chain goes straight on to
    /// the next one (at no cost). Everything, by default; see [`scoped`].
    fn applies_to(&self, req: &Request) -> bool {
        let _ = req;
        true
    }

    /// What this middleware puts in scope for the ones after it (`"session"` for
    /// [`SessionMiddleware`](sessions::SessionMiddleware)). Checked when the app is built.
    fn provides(&self) -> &'static [&'static str] {
        &[]
    }

    /// What must be in scope when this middleware runs (`"session"` for the auth middleware
    /// with session logins): an app whose middleware before it does not provide it fails to
    /// build with a [`ConfigurationError`](crate::ConfigurationError).
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }

    /// The name used in configuration errors. The type's name, by default.
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

impl<F, Fut, R> Middleware for F
where
    F: Fn(Request, Next) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        let fut = self(req, next);
        Box::pin(async move { fut.await.into_response() })
    }
}

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
/// use chirp::middleware::sessions::{SessionConfig, SessionMiddleware};
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

    fn name(&self) -> &'static str {
        self.inner.name()
    }
}

/// The built application: the middleware chain and the router at its end.
pub(crate) struct Chain {
    pub(crate) middleware: Vec<Box<dyn Middleware>>,
    pub(crate) router: Router,
    /// The app's state, handed to every request (`None`: the app has none).
    pub(crate) state: Option<Arc<crate::http::AppState>>,
    /// Renders the errors chirp makes (`None`: the default negotiation).
    pub(crate) error_handler: Option<ErrorHandler>,
}

/// What [`App::error_handler`](crate::App::error_handler) keeps.
pub(crate) type ErrorHandler = Box<dyn Fn(&crate::http::Problem) -> Response + Send + Sync>;

impl Chain {
    /// The first middleware from `from` on that wants `req`.
    pub(crate) fn first_applicable(&self, from: usize, req: &Request) -> Option<usize> {
        self.middleware[from..]
            .iter()
            .position(|m| m.applies_to(req))
            .map(|i| from + i)
    }
}

/// The rest of the chain after the current middleware. Owned and `'static`, so it can be moved
/// into the middleware's future.
pub struct Next {
    chain: Arc<Chain>,
    index: usize,
}

impl Next {
    /// Starts middleware `index` (which applies to `req`), with the rest of the chain after it.
    /// Not async: the middleware's own boxed future is all there is to await.
    pub(crate) fn start_at(
        chain: &Arc<Chain>,
        index: usize,
        req: Request,
    ) -> BoxFuture<'_, Response> {
        let next = Next {
            chain: chain.clone(),
            index: index + 1,
        };
        chain.middleware[index].call(req, next)
    }

    /// Runs the rest of the chain, then the router, and returns the response. A panic in the
    /// rest of the chain (a later middleware or the handler) becomes a `500` here, so every
    /// middleware sees a response.
    ///
    /// Nothing runs until the returned future is first polled (a middleware may set up a
    /// scope around it first, as the session middleware does).
    // Not an `async fn`: that would keep its two arguments twice in the future's state (the
    // parameters, and the locals they are moved into), more than twice the size.
    #[allow(clippy::manual_async_fn)]
    pub fn run(self, req: Request) -> impl Future<Output = Response> + Send + 'static {
        async move {
            let fut = match self.chain.first_applicable(self.index, &req) {
                Some(index) => Next::start_at(&self.chain, index, req),
                None => match self.chain.router.start_boxed(req) {
                    Ok(handler) => handler,
                    Err(res) => return res,
                },
            };
            catch_panic(fut).await
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::Method;

    pub(crate) fn next_for_tests() -> Next {
        Next {
            chain: Arc::new(Chain {
                middleware: Vec::new(),
                router: Router::default(),
                state: None,
                error_handler: None,
            }),
            index: 0,
        }
    }

    /// Every middleware's future holds the `next.run(req)` future: it should hold the request
    /// once (an `async fn` would hold it twice), plus little more.
    #[test]
    fn the_rest_of_the_chain_holds_its_request_once() {
        let run = next_for_tests().run(Request::new(Method::Get, "/"));
        let size = std::mem::size_of_val(&run);
        assert!(
            size <= std::mem::size_of::<Request>() + 64,
            "Next::run's future is {size} bytes"
        );
    }
}
