//! The built application, [`Service`]: the middleware chain and the router behind it, frozen.
//! The server (`server/`) and [`TestClient`](crate::testing::TestClient) drive it; [`App`]
//! (`app.rs`) makes it. It sits between them so that neither depends on the other: the
//! server knows a `Service`, not how an app is put together.
//!
//! [`App`]: crate::App

use std::sync::Arc;

use crate::http::{Request, Response};
use crate::middleware::{Chain, Next};
use crate::panic::{catch_panic, guarded, panic_response};
use crate::routing::{BoxFuture, FutureSlot};

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

    /// Runs `req` through the middleware chain and the router. A panic anywhere in them
    /// becomes a `500` for this request only.
    pub async fn call(&self, req: Request) -> Response {
        let prefers_json = req
            .header("accept")
            .is_some_and(|a| crate::http::problem::prefers_json(a.as_bytes()));
        let conditionals = crate::http::file::Conditionals::of(&req);
        let mut slot = FutureSlot::default();
        let mut res = match self.start(req, &mut slot) {
            Started::Answered(res) => res,
            Started::Running(fut) => catch_panic(fut).await,
            Started::InSlot => slot.run().await,
        };
        if let Some(conditionals) = conditionals {
            conditionals.apply(&mut res);
        }
        self.render(&mut res, prefers_json);
        res
    }

    /// Renders `res` if it is an error chirp made (through the app's error handler, or by
    /// content negotiation); anything else passes as it is.
    /// (In place: a response that is not an error, nearly all, is not moved.)
    #[inline]
    pub(crate) fn render(&self, res: &mut Response, prefers_json: bool) {
        if res.problem_detail().is_some() {
            let error = std::mem::replace(res, Response::empty(res.status()));
            *res = crate::http::problem::render(
                error,
                prefers_json,
                self.chain.error_handler.as_deref(),
            );
        }
    }

    /// How the route for `path` takes its body (`None`: the server's default).
    #[inline]
    pub(crate) fn body_config(&self, path: &[u8]) -> Option<crate::http::BodyConfig> {
        self.chain.router.body_config(path)
    }

    /// Starts `req` without awaiting anything: either it is answered at once (404, 405, a
    /// panic), or there is one future to await: the first middleware's (boxed), or the
    /// handler's (in `slot`). The caller awaits that future itself, so a request is not moved
    /// through layers of async state on its way in.
    pub(crate) fn start(&self, req: Request, slot: &mut FutureSlot) -> Started<'_> {
        self.start_with(|| req, slot)
    }

    /// Like [`Service::start`], with the request made by `make` inside the panic guard: a
    /// request moved into the guard's closure costs two more copies of it, a closure that makes
    /// it costs none.
    #[inline]
    pub(crate) fn start_with(
        &self,
        make: impl FnOnce() -> Request,
        slot: &mut FutureSlot,
    ) -> Started<'_> {
        let started = guarded(|| {
            let mut req = make();
            if let Some(state) = &self.chain.state {
                req.set_state(state.clone());
            }
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

/// A request as [`Service::start`] leaves it.
pub(crate) enum Started<'a> {
    /// Answered already.
    Answered(Response),
    /// The first middleware's future, to be awaited (inside `catch_panic`).
    Running(BoxFuture<'a, Response>),
    /// The handler's future, in the slot.
    InSlot,
}
