//! Handlers: `async fn(Request) -> impl IntoResponse`, stored type-erased in the router.

use std::future::Future;
use std::pin::Pin;

use crate::http::{IntoResponse, Request, Response};

/// A boxed, sendable future, as middleware and handlers return them once type-erased.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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
pub trait Handler: Send + Sync + 'static {
    /// Answers `req`.
    fn call(&self, req: Request) -> BoxFuture<'static, Response>;
}

impl<F, Fut, R> Handler for F
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: IntoResponse,
{
    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let fut = self(req);
        Box::pin(async move { fut.await.into_response() })
    }
}
