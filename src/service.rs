//! The built application, [`Service`]: the middleware chain and the router behind it, frozen.
//! The server (`server/`) and [`TestClient`](crate::testing::TestClient) drive it; [`App`]
//! (`app.rs`) makes it. It sits between them so that neither depends on the other: the
//! server knows a `Service`, not how an app is put together.
//!
//! [`App`]: crate::App
//!
//! The chain is walked here, so its three mutually recursive parts live here together: the
//! [`Middleware`] trait (its `call` takes a [`Next`]), [`Next`] (the rest of a `Chain`) and
//! `Chain` (the middleware, the router, the state and the error handler). `middleware/`
//! re-exports `Middleware` and `Next` (their public home is `chirp::middleware`) and holds
//! the middleware themselves: it uses this module, and this module never uses it.

use std::future::Future;
use std::sync::Arc;

use crate::future::{BoxFuture, FutureSlot};
use crate::http::file::Conditionals;
use crate::http::problem::{ErrorHead, Rendering};
use crate::http::response::{Made, RenderHead};
use crate::http::upgrade::is_upgrade_request;
use crate::http::{IntoResponse, Request, Response, StatusCode};
use crate::panic::{catch_panic, guarded, panic_response};
use crate::routing::Router;

/// A built application: cheap to clone, answers requests in-process. The server and
/// [`TestClient`](crate::testing::TestClient) both drive it.
#[derive(Clone)]
pub struct Service {
    chain: Arc<Chain>,
}

impl Service {
    /// The service running `chain`.
    pub(crate) fn new(chain: Chain) -> Service {
        Service {
            chain: Arc::new(chain),
        }
    }

    /// An app with no routes and no middleware (every path a 404), for the server's own tests.
    #[cfg(test)]
    pub(crate) fn empty() -> Service {
        Service::new(Chain {
            middleware: Vec::new(),
            router: Router::default(),
            state: Arc::default(),
            error_handler: None,
            api_prefix: None,
            templates: None,
        })
    }

    /// Runs `req` through the middleware chain and the router. A panic anywhere in them
    /// becomes a `500` for this request only.
    pub async fn call(&self, req: Request) -> Response {
        let hints = Hints::of(&req);
        let mut slot = FutureSlot::default();
        self.respond(|| req, &mut slot, hints).await
    }

    /// The one way from a request to its response, for the server and
    /// [`TestClient`](crate::testing::TestClient) alike: the request (made by `make`, inside
    /// the panic guard) is started down the chain ([`Service::start_with`]), its response
    /// awaited ([`Started::response`]), and finished with what `hints` kept of the request
    /// ([`Service::finish`]). The server's keep-alive path takes these three steps itself,
    /// in its own future: one layer of async state fewer per request.
    pub(crate) async fn respond(
        &self,
        make: impl FnOnce() -> Request,
        slot: &mut FutureSlot,
        hints: Hints,
    ) -> Response {
        let mut res = self.start_with(make, slot).response(slot).await;
        self.finish(&mut res, hints);
        res
    }

    /// Finishes a response with what `hints` kept of its request: conditional requests
    /// answered (304, 206), a `101` checked, errors rendered.
    #[inline]
    pub(crate) fn finish(&self, res: &mut Response, hints: Hints) {
        if let Some(conditionals) = &hints.conditionals {
            conditionals.apply(res);
        }
        if res.status() == StatusCode::SWITCHING_PROTOCOLS
            && !(hints.upgradable && res.is_upgrade())
        {
            *res = misplaced_switch(res.is_upgrade());
        }
        if res.is_pending() {
            self.finish_pending(res, hints);
        }
    }

    /// The rare end of [`Service::finish`]: a body still to be made (a template no middleware
    /// saw: an app without middleware, or one a middleware returned itself), then an error to
    /// render (a template that failed is one).
    #[cold]
    fn finish_pending(&self, res: &mut Response, hints: Hints) {
        if res.is_deferred() {
            let head = hints
                .head
                .as_ref()
                .map(crate::http::problem::ErrorHead::render_head)
                .unwrap_or_default();
            self.chain.render_deferred(res, &head);
        }
        if res.is_error() {
            self.render(res, hints.prefers_json, hints.head);
        }
    }

    /// Renders `res`, an error chirp made (through the app's error handler, or by content
    /// negotiation: problem+json for JSON clients and under the app's API prefix), with what
    /// is known of its request (`head`: `None` for a request refused before its head was
    /// read); anything else passes as it is. The server renders its refusals here too, so
    /// that they look like the app's other errors.
    /// (In place: a response that is not an error, nearly all, is not moved.)
    #[cold]
    pub(crate) fn render(&self, res: &mut Response, prefers_json: bool, head: Option<ErrorHead>) {
        if res.is_error() {
            let error = std::mem::replace(res, Response::empty(res.status()));
            *res = crate::http::problem::render(
                error,
                Rendering {
                    prefers_json,
                    head,
                    api_prefix: self.chain.api_prefix.as_deref(),
                    handler: self.chain.error_handler.as_deref(),
                },
            );
        }
    }

    /// The shutdown that the app's requests signal: the server serving it begins it.
    pub(crate) fn shutdown(&self) -> &Arc<crate::shutdown::Shutdown> {
        self.chain.state.shutdown()
    }

    /// How the route for `path` takes its body (`None`: the server's default).
    #[inline]
    pub(crate) fn body_config(&self, path: &[u8]) -> Option<crate::http::BodyConfig> {
        self.chain.router.body_config(path)
    }

    /// Starts the request made by `make` without awaiting anything: either it is answered at
    /// once (404, 405, a panic), or there is one future to await: the first middleware's
    /// (boxed), or the handler's (in `slot`). The caller awaits that future itself, so a
    /// request is not moved through layers of async state on its way in. The request is made
    /// inside the panic guard: a request moved into the guard's closure costs two more copies
    /// of it, a closure that makes it costs none.
    #[inline]
    pub(crate) fn start_with(
        &self,
        make: impl FnOnce() -> Request,
        slot: &mut FutureSlot,
    ) -> Started<'_> {
        let started = guarded(|| {
            let mut req = make();
            req.set_state(self.chain.state.clone());
            match self.chain.first_applicable(0, &req) {
                Some(index) => Started::Running(Next::start_at(&self.chain, index, req)),
                // No middleware for this request: straight to the router, no chain to walk.
                None => match self.chain.router.route(&mut req) {
                    Ok(handler) => {
                        handler.start_in(req, slot);
                        Started::InSlot
                    }
                    Err(res) => Started::Answered(res),
                },
            }
        });
        started.unwrap_or_else(|payload| Started::Answered(panic_response(payload)))
    }
}

/// What the response needs to know of its request once the request is gone (moved into
/// the chain): the server reads these off the head as it parses it.
pub(crate) struct Hints {
    /// The client's `Accept` prefers JSON: errors are rendered as problem+json.
    pub(crate) prefers_json: bool,
    /// Range and `If-*` headers, for the file responses that answer them.
    pub(crate) conditionals: Option<Box<Conditionals>>,
    /// The request may be handed over after a `101` (see [`is_upgrade_request`]).
    pub(crate) upgradable: bool,
    /// The request's method, path and headers, for an error's rendering and log.
    pub(crate) head: Option<ErrorHead>,
}

impl Hints {
    /// The hints of a request at hand (the server gets them from parsing instead).
    pub(crate) fn of(req: &Request) -> Hints {
        Hints {
            prefers_json: req
                .header("accept")
                .is_some_and(|a| crate::http::problem::prefers_json(a.as_bytes())),
            conditionals: Conditionals::of(req).map(Box::new),
            upgradable: is_upgrade_request(req),
            head: Some(ErrorHead::of(req)),
        }
    }
}

/// The answer to a `101` that cannot switch: one made without [`Response::upgrade`] (the
/// client would wait for a protocol that never starts) or to a request that did not ask to
/// upgrade. A bug in the app, so a `500`, logged.
#[cold]
fn misplaced_switch(has_callback: bool) -> Response {
    let why = if has_callback {
        "a handler answered 101 to a request that did not ask to upgrade"
    } else {
        "a handler answered 101 without Response::upgrade"
    };
    tracing::error!(why, "answered 500 instead of 101");
    Response::error(StatusCode::INTERNAL_SERVER_ERROR, why)
}

/// A request as [`Service::start_with`] leaves it.
pub(crate) enum Started<'a> {
    /// Answered already.
    Answered(Response),
    /// The first middleware's future, to be awaited (inside `catch_panic`).
    Running(BoxFuture<'a, Response>),
    /// The handler's future, in the slot.
    InSlot,
}

impl Started<'_> {
    /// The response: at once, from the first middleware's future (a panic in it is a
    /// `500`), or from the handler's future in `slot`.
    #[inline]
    pub(crate) async fn response(self, slot: &mut FutureSlot) -> Response {
        match self {
            Started::Answered(res) => res,
            Started::Running(fut) => catch_panic(fut).await,
            Started::InSlot => std::future::poll_fn(|cx| slot.poll(cx)).await,
        }
    }
}

/// A middleware. Implement it for a struct, or use any
/// `Fn(Request, Next) -> impl Future<Output = impl IntoResponse>` (see [`from_fn`](crate::middleware::from_fn)).
///
/// # Errors and `?`
///
/// A middleware answers with a [`Response`], and an error is one too
/// ([`IntoResponse`] for [`chirp::Error`](crate::Error)): an `HttpError` with its status, any
/// other error a `500`, logged once with its sources. So a function middleware returns
/// `Result<Response, chirp::Error>` and uses `?` on any error:
///
/// ```
/// use chirp::middleware::{from_fn, Next};
/// use chirp::{App, Error, HttpError, Request, Response};
///
/// let mut app = App::new();
/// app.add_middleware(from_fn(|req: Request, next: Next| async move {
///     let quota: u32 = req.header("x-quota").unwrap_or("10").parse()?; // ParseIntError: 500
///     if quota == 0 {
///         return Err(HttpError::new(chirp::StatusCode::TOO_MANY_REQUESTS, "no quota left").into());
///     }
///     Ok::<Response, Error>(next.run(req).await)
/// }));
/// ```
///
/// In an `impl Middleware`, the same in an inner block: `let res: Result<Response, Error> =
/// async { ... }.await; res.into_response()`.
///
///
/// ```
/// use chirp::{Request, Response, StatusCode};
/// use chirp::middleware::{Middleware, Next};
/// use chirp::BoxFuture;
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
    /// the next one (at no cost). Everything, by default; see [`scoped`](crate::middleware::scoped).
    fn applies_to(&self, req: &Request) -> bool {
        let _ = req;
        true
    }

    /// What this middleware puts in scope for the ones after it (`"session"` for
    /// `SessionMiddleware`). Checked when the app is built.
    fn provides(&self) -> &'static [&'static str] {
        &[]
    }

    /// What must be in scope when this middleware runs (`"session"` for the auth middleware
    /// with session logins): an app whose middleware before it does not provide it fails to
    /// build with a [`ConfigurationError`](crate::ConfigurationError).
    fn requires(&self) -> &'static [&'static str] {
        &[]
    }

    /// The app state types this middleware reads ([`Request::state`], or a callback that takes
    /// a [`State`](crate::State)): an app that never registered one with
    /// [`App::state`](crate::App::state) fails to build with a
    /// [`ConfigurationError`](crate::ConfigurationError) naming it. None by default.
    fn state_types(&self) -> Vec<crate::state::StateType> {
        Vec::new()
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

/// The built application: the middleware chain and the router at its end.
pub(crate) struct Chain {
    pub(crate) middleware: Vec<Box<dyn Middleware>>,
    pub(crate) router: Router,
    /// The app's state and the shutdown of the server serving it, handed to every request.
    pub(crate) state: Arc<crate::http::AppState>,
    /// Renders the errors chirp makes (`None`: the default negotiation).
    pub(crate) error_handler: Option<ErrorHandler>,
    /// The app's API prefix, normalised ([`App::api_prefix`](crate::App::api_prefix)).
    pub(crate) api_prefix: Option<Arc<str>>,
    /// What renders deferred bodies (`chirp::templates`' engine, type-erased: this module sits
    /// below it), when the app registered templates.
    pub(crate) templates: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

/// What [`App::error_handler`](crate::App::error_handler) keeps.
pub(crate) type ErrorHandler = Box<dyn Fn(&crate::http::Problem) -> Response + Send + Sync>;

impl Chain {
    /// Makes the deferred body of `res` (a template) with what `head` kept of the request,
    /// inside the panic guard: a failure or a panic is a logged `500`, like a handler's.
    #[cold]
    pub(crate) fn render_deferred(&self, res: &mut Response, head: &RenderHead) {
        let Some(body) = res.take_deferred() else {
            return;
        };
        let engine = self.templates.as_deref();
        match guarded(|| body.render(engine, head)) {
            Ok(Ok(Made::Body(bytes))) => res.set_body(bytes),
            Ok(Ok(Made::Stream(stream))) => res.set_stream(stream),
            Ok(Err(error)) => *res = crate::Error::other(error).into_response(),
            Err(payload) => *res = panic_response(payload),
        }
    }

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
    /// The app's API prefix ([`App::api_prefix`](crate::App::api_prefix)), normalised
    /// (`/api`), if it set one: for a middleware that answers API clients otherwise than
    /// browsers (the auth middleware's `401` rather than a redirect to log in).
    pub fn api_prefix(&self) -> Option<&str> {
        self.chain.api_prefix.as_deref()
    }

    /// The app's API prefix, shared.
    pub(crate) fn api_prefix_shared(&self) -> Option<Arc<str>> {
        self.chain.api_prefix.clone()
    }

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
            // The end of the chain is where a template is rendered: inside the scope of every
            // middleware. An app with templates keeps what rendering reads of the request
            // (its path and htmx headers: a reference count and one pass over the header
            // names); an app without pays this one test.
            let mut head = None;
            let fut = match self.chain.first_applicable(self.index, &req) {
                Some(index) => Next::start_at(&self.chain, index, req),
                None => {
                    if self.chain.templates.is_some() {
                        head = Some(RenderHead::of(&req));
                    }
                    match self.chain.router.start_boxed(req) {
                        Ok(handler) => handler,
                        Err(res) => return res,
                    }
                }
            };
            let mut res = catch_panic(fut).await;
            if let Some(head) = head {
                if res.is_deferred() {
                    self.chain.render_deferred(&mut res, &head);
                }
            }
            res
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
                state: Arc::default(),
                error_handler: None,
                api_prefix: None,
                templates: None,
            }),
            index: 0,
        }
    }

    /// Every middleware's future holds the `next.run(req)` future: it should hold the request
    /// once (an `async fn` would hold it twice), plus little more: what a template's render
    /// keeps of the request across the handler (`RenderHead`, a reference-counted path and
    /// three flags), and the rest.
    #[test]
    fn the_rest_of_the_chain_holds_its_request_once() {
        let run = next_for_tests().run(Request::new(Method::Get, "/"));
        let size = std::mem::size_of_val(&run);
        let render_head = std::mem::size_of::<Option<RenderHead>>();
        assert!(
            size <= std::mem::size_of::<Request>() + render_head + 64,
            "Next::run's future is {size} bytes"
        );
    }
}
