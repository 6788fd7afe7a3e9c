//! The application as it is set up: routes, middleware and server settings, checked and built
//! once into a [`Service`] (see [`crate::service`]) and served.

use std::future::Future;
use std::sync::Arc;

use tokio::net::{TcpListener, ToSocketAddrs};

use crate::error::{ConfigurationError, Error};
use crate::http::{AppState, BodyConfig, Method};
use crate::routing::{erase, Handler, Router};
use crate::server::{self, ServerConfig};
use crate::service::Service;
use crate::service::{Chain, ErrorHandler, Middleware};
use crate::state::StateType;

/// A chirp application: register routes and middleware, then [`run`](App::run) it.
///
/// ```no_run
/// use chirp::{App, Request};
///
/// #[tokio::main]
/// async fn main() -> Result<(), chirp::Error> {
///     let mut app = App::new();
///     app.route("/", |_req: Request| async { "Hello, World!" });
///     app.run("127.0.0.1:8000").await
/// }
/// ```
///
/// Route patterns are checked as they are added, but errors are reported when the app is
/// built ([`build`](App::build), [`run`](App::run), [`serve`](App::serve)), so that route
/// registration reads as a plain list.
#[derive(Default)]
pub struct App {
    router: Router,
    middleware: Vec<Box<dyn Middleware>>,
    state: AppState,
    /// The state types each route's handler takes (the route named as errors name it),
    /// checked against `state` at build.
    state_needs: Vec<(String, StateType)>,
    error_handler: Option<ErrorHandler>,
    api_prefix: Option<Arc<str>>,
    errors: Vec<ConfigurationError>,
    config: ServerConfig,
    /// The app's templates ([`App::templates`]), checked against the routes at build.
    #[cfg(feature = "templates")]
    templates: Option<crate::templates::Templates>,
}

impl App {
    /// An empty app: every path is a 404.
    pub fn new() -> App {
        App::default()
    }

    /// Adds a GET route (HEAD is served by it too): the same as [`App::get`], under the name
    /// the Python framework uses (`@app.route`), so that ported code reads alike. Other
    /// methods: [`App::post`] and friends, or [`App::route_with`].
    pub fn route<Args: 'static>(&mut self, pattern: &str, handler: impl Handler<Args>) -> &mut App {
        self.route_with(pattern, &[Method::Get], handler)
    }

    /// Adds a route for the given methods.
    ///
    /// ```
    /// use chirp::{App, Method, Request};
    /// let mut app = App::new();
    /// app.route_with("/items", &[Method::Get, Method::Post], |req: Request| async move {
    ///     format!("{} /items", req.method())
    /// });
    /// ```
    pub fn route_with<Args: 'static>(
        &mut self,
        pattern: &str,
        methods: &[Method],
        handler: impl Handler<Args>,
    ) -> &mut App {
        let route = || {
            let methods: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            format!("route {} {pattern}", methods.join(","))
        };
        for ty in handler.state_types() {
            self.state_needs.push((route(), ty));
        }
        if let Err(e) = self.router.insert(pattern, methods, erase(handler)) {
            self.errors.push(e);
        }
        self
    }

    /// Sets how the routes of `pattern` take request bodies: a larger (or smaller) limit than
    /// the server's 2 MiB default, and whether the handler streams the body as it arrives.
    /// The pattern must be registered already (any method), or the app fails to build.
    ///
    /// ```
    /// use chirp::{App, BodyConfig, HttpError, Request};
    /// let mut app = App::new();
    /// app.post("/upload", |mut req: Request| async move {
    ///     let mut body = req.body_stream();
    ///     let mut total = 0;
    ///     while let Some(chunk) = body.next_chunk().await {
    ///         total += chunk?.len();
    ///     }
    ///     Ok::<_, HttpError>(format!("{total} bytes"))
    /// });
    /// app.route_body("/upload", BodyConfig::max(100 * 1024 * 1024).streamed());
    /// ```
    pub fn route_body(&mut self, pattern: &str, body: BodyConfig) -> &mut App {
        if let Err(e) = self.router.set_body(pattern, body) {
            self.errors.push(e);
        }
        self
    }

    /// Adds a GET route (HEAD is served by it too); the same as [`App::route`].
    pub fn get<Args: 'static>(&mut self, pattern: &str, handler: impl Handler<Args>) -> &mut App {
        self.route_with(pattern, &[Method::Get], handler)
    }

    /// Adds a POST route.
    pub fn post<Args: 'static>(&mut self, pattern: &str, handler: impl Handler<Args>) -> &mut App {
        self.route_with(pattern, &[Method::Post], handler)
    }

    /// Adds a PUT route.
    pub fn put<Args: 'static>(&mut self, pattern: &str, handler: impl Handler<Args>) -> &mut App {
        self.route_with(pattern, &[Method::Put], handler)
    }

    /// Adds a DELETE route.
    pub fn delete<Args: 'static>(
        &mut self,
        pattern: &str,
        handler: impl Handler<Args>,
    ) -> &mut App {
        self.route_with(pattern, &[Method::Delete], handler)
    }

    /// Adds a PATCH route.
    pub fn patch<Args: 'static>(&mut self, pattern: &str, handler: impl Handler<Args>) -> &mut App {
        self.route_with(pattern, &[Method::Patch], handler)
    }

    /// Sets the handler for requests whose path no route matches (any method), instead of the
    /// plain `404 Not Found`: a custom 404 page, or a single-page app's `index.html`. It
    /// answers with whatever status it returns, so say 404 when that is what it means.
    ///
    /// ```
    /// use chirp::{App, Request, Response, StatusCode};
    /// let mut app = App::new();
    /// app.fallback(|req: Request| async move {
    ///     let page = format!("<h1>Nothing at {}</h1>", req.path());
    ///     (StatusCode::NOT_FOUND, Response::html(page))
    /// });
    /// ```
    pub fn fallback<Args: 'static>(&mut self, handler: impl Handler<Args>) -> &mut App {
        for ty in handler.state_types() {
            self.state_needs.push(("the fallback".to_owned(), ty));
        }
        self.router.set_fallback(erase(handler));
        self
    }

    /// Renders every error response chirp makes: the router's 404 (without a
    /// [`fallback`](App::fallback)), 405 and 501, handler [`HttpError`](crate::HttpError)s
    /// and other errors (500), panics (500), and the server's own refusals (400, 408, 413,
    /// 414, 431, 501, 503, ...), so that an app's error pages and headers cover them all. The
    /// headers the error carried (`Allow`, `Retry-After`, a session's `Set-Cookie`) are kept;
    /// a refusal still closes the connection, and is rendered without reading its body or
    /// running a handler. Responses a handler builds itself are not passed here.
    ///
    /// The [`Problem`](crate::Problem) it gets knows the request: its method, path and
    /// headers ([`Problem::method`](crate::Problem::method), [`path`](crate::Problem::path),
    /// [`headers`](crate::Problem::headers); `None` for a request the server refused before
    /// its head was read whole), and whether it wants JSON
    /// ([`prefers_json`](crate::Problem::prefers_json): under the
    /// [`api_prefix`](App::api_prefix), or by its `Accept`). The handler runs after the
    /// middleware, outside their scopes: what it needs of the request is on the problem.
    ///
    /// Without one, errors are rendered by content negotiation
    /// ([`Problem::default_response`](crate::Problem::default_response)):
    /// `application/problem+json` (RFC 9457) under the API prefix and for clients that
    /// prefer JSON, plain text otherwise.
    ///
    /// ```
    /// use chirp::{App, Response};
    /// let mut app = App::new();
    /// app.api_prefix("/api");
    /// app.error_handler(|problem| {
    ///     if problem.prefers_json() {
    ///         return problem.default_response();
    ///     }
    ///     let path = problem.path().unwrap_or("this address");
    ///     Response::html(format!("<h1>{} {}</h1><p>at {path}</p>", problem.status().as_u16(), problem.title()))
    ///         .with_status(problem.status())
    ///         .with_header("x-frame-options", "DENY")
    /// });
    /// ```
    /// (A page that shows what the request said, as this one shows the path, escapes it.)
    pub fn error_handler(
        &mut self,
        render: impl Fn(&crate::http::Problem) -> crate::http::Response + Send + Sync + 'static,
    ) -> &mut App {
        self.error_handler = Some(Box::new(render));
        self
    }

    /// Marks `prefix` (and every path below it: `/api` covers `/api` and `/api/notes`, not
    /// `/apis`) as the app's JSON API. Every error chirp makes for a path there is
    /// `application/problem+json` (RFC 9457), whatever the request's `Accept` says (none,
    /// `*/*`, `text/html`): curl, `fetch()` and HTTP libraries get errors they can read,
    /// while browsers elsewhere get the app's pages. The server's own refusals of such a
    /// request (a body too large, say) are rendered the same way.
    ///
    /// The setting is shared: the auth middleware uses it when its own
    /// [`AuthConfig::api_prefix`](crate::middleware::auth::AuthConfig::api_prefix) is not
    /// set (401 there, not a redirect to log in), the error handler sees it as
    /// [`Problem::is_api`](crate::Problem::is_api), and any middleware as
    /// [`Next::api_prefix`](crate::Next::api_prefix). The prefix is normalised as request
    /// paths are (`api/` is `/api`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use chirp::{App, Method, Request, StatusCode};
    /// let mut app = App::new();
    /// app.api_prefix("/api");
    /// let client = chirp::testing::TestClient::new(app);
    /// let res = client.send(Request::new(Method::Get, "/api/nope").with_header("Accept", "text/html")).await;
    /// assert_eq!(res.status(), StatusCode::NOT_FOUND);
    /// assert_eq!(res.header("content-type"), Some("application/problem+json"));
    /// assert_eq!(client.get("/nope").await.header("content-type"), Some("text/plain; charset=utf-8"));
    /// # }
    /// ```
    pub fn api_prefix(&mut self, prefix: &str) -> &mut App {
        self.api_prefix = Some(Arc::from(crate::http::target::normalize_prefix(prefix)));
        self
    }

    /// Registers a shared value that handlers take as a [`State`](crate::State) argument
    /// (and middleware reach with [`Request::state`](crate::Request::state)): a database
    /// pool, a configuration, a cache. Any number of types, each once (a second value of the
    /// same type is a [`ConfigurationError`] at build). Stored once and shared, never cloned
    /// per request.
    ///
    /// The app checks at build that every type its handlers take is registered here, so a
    /// handler that asks for another type (a typo, a forgotten `state` call) is an error that
    /// names the route before the app serves anything.
    ///
    /// ```
    /// use std::sync::Mutex;
    /// use chirp::{App, Request, State};
    ///
    /// struct Config { name: String }
    ///
    /// let mut app = App::new();
    /// app.state(Mutex::new(Vec::<String>::new()));
    /// app.state(Config { name: "notes".into() });
    /// app.route("/", |_req: Request, config: State<Config>| async move {
    ///     format!("Welcome to {}", config.name)
    /// });
    /// assert!(app.build().is_ok());
    /// ```
    pub fn state<T: Send + Sync + 'static>(&mut self, value: T) -> &mut App {
        if !self.state.insert(value) {
            self.errors.push(ConfigurationError::new(format!(
                "app state of type `{}` is registered twice: register each type once",
                std::any::type_name::<T>()
            )));
        }
        self
    }

    /// Adds a middleware. The first one added is the outermost: it sees the request first
    /// and the response last.
    pub fn add_middleware(&mut self, middleware: impl Middleware) -> &mut App {
        self.middleware.push(Box::new(middleware));
        self
    }

    /// Registers the app's templates (see [`chirp::templates`](crate::templates)): handlers
    /// then return [`Template`](crate::templates::Template),
    /// [`Fragment`](crate::templates::Fragment), [`Page`](crate::templates::Page),
    /// [`OOB`](crate::templates::OOB) and
    /// [`ValidationError`](crate::templates::ValidationError), rendered at the end of the
    /// middleware chain, inside every middleware's scope (the CSRF token, the CSP nonce, the
    /// flashes and the user are there for the template). The templates are also app state:
    /// a handler takes `State<Templates>` to render by hand (an SSE event, an e-mail).
    ///
    /// At build, the URLs the templates send requests to (`hx-get`, `<form action>`, ...)
    /// are checked against the routes, unless [`Templates::skip_route_check`] says not to.
    /// Registering templates twice is a [`ConfigurationError`].
    ///
    /// [`Templates::skip_route_check`]: crate::templates::Templates::skip_route_check
    ///
    /// ```
    /// use chirp::templates::{context, Template, Templates};
    /// use chirp::{App, Request};
    ///
    /// let templates = Templates::new().with_template("hello.html", "<p>Hello {{ name }}</p>")?;
    /// let mut app = App::new();
    /// app.templates(templates);
    /// app.route("/", |_req: Request| async { Template::new("hello.html", context! { name => "<you>" }) });
    /// # let _ = app.build()?;
    /// # Ok::<(), chirp::ConfigurationError>(())
    /// ```
    #[cfg(feature = "templates")]
    pub fn templates(&mut self, templates: crate::templates::Templates) -> &mut App {
        if self.templates.is_some() {
            self.errors.push(ConfigurationError::new(
                "templates are registered twice: call App::templates once, with every template \
                 in one Templates (several directories: Templates::add_dir)",
            ));
        } else {
            self.templates = Some(templates);
        }
        self
    }

    /// Sets the server's limits and timeouts (used by `run` and `serve`).
    pub fn server_config(&mut self, config: ServerConfig) -> &mut App {
        self.config = config;
        self
    }

    /// The route table, as `(method, pattern)` in registration order.
    pub fn routes(&self) -> Vec<(Method, String)> {
        self.router.routes().to_vec()
    }

    /// Checks the configuration and freezes the app into a [`Service`].
    pub fn build(self) -> Result<Service, ConfigurationError> {
        self.into_parts().map(|(service, _)| service)
    }

    fn into_parts(mut self) -> Result<(Service, ServerConfig), ConfigurationError> {
        #[cfg(feature = "templates")]
        let templates = self.build_templates();
        #[cfg(not(feature = "templates"))]
        let templates = None;
        let missing = missing_state(&self.state, &self.state_needs, &self.middleware);
        self.errors.extend(missing);
        match self.errors.len() {
            0 => {}
            1 => return Err(self.errors.into_iter().next().expect("one error")),
            n => {
                let all: Vec<&str> = self.errors.iter().map(|e| e.message()).collect();
                return Err(ConfigurationError::new(format!(
                    "{n} errors: {}",
                    all.join("; ")
                )));
            }
        }
        check_middleware_order(&self.middleware)?;
        crate::panic::install_hook();
        let chain = Chain {
            middleware: self.middleware,
            router: self.router,
            state: Arc::new(self.state),
            error_handler: self.error_handler,
            api_prefix: self.api_prefix,
            templates,
        };
        Ok((Service::new(chain), self.config))
    }

    /// The registered templates, checked against the routes, made app state (so handlers take
    /// `State<Templates>`), and type-erased for the service that renders them.
    #[cfg(feature = "templates")]
    fn build_templates(&mut self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        let templates = self.templates.take()?;
        if templates.checks_routes() {
            // Every literal hx-get/hx-post/... and form URL must name a route with its method.
            // A fallback answers any path, so "no route" would be wrong: the app opts out
            // through the fallback itself.
            if !self.router.has_fallback() {
                let sources = templates.sources();
                let sources: Vec<(&str, &str)> = sources
                    .iter()
                    .map(|(n, s)| (n.as_str(), s.as_str()))
                    .collect();
                if let Err(e) = crate::templates::route_check::check_templates(
                    &sources,
                    self.router.routes(),
                ) {
                    self.errors.push(e);
                }
            }
        }
        if !self.state.insert(templates.clone()) {
            self.errors.push(ConfigurationError::new(
                "app state of type `Templates` is registered twice: register templates with \
                 App::templates only (they are app state already)",
            ));
        }
        Some(Arc::new(templates))
    }

    /// Binds `addr` and serves until Ctrl-C or SIGTERM, then shuts down gracefully: stops
    /// accepting, lets in-flight requests finish (up to `shutdown_timeout`), closes idle
    /// connections.
    pub async fn run(self, addr: impl ToSocketAddrs) -> Result<(), Error> {
        let listener = server::bind(addr, self.config.backlog).await?;
        self.serve_with_shutdown(listener, server::shutdown_signal())
            .await
    }

    /// Serves on an already bound listener until Ctrl-C or SIGTERM. (Its listen backlog is
    /// the one it was bound with: [`ServerConfig::backlog`] applies to [`run`](App::run).)
    pub async fn serve(self, listener: TcpListener) -> Result<(), Error> {
        self.serve_with_shutdown(listener, server::shutdown_signal())
            .await
    }

    /// Serves on `listener` until `signal` completes, then shuts down gracefully.
    pub async fn serve_with_shutdown(
        self,
        listener: TcpListener,
        signal: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        let (service, config) = self.into_parts()?;
        server::serve(listener, service, config, signal).await?;
        Ok(())
    }
}

/// Every state type a route's handler, the fallback or a middleware takes must be registered
/// with [`App::state`]: one error per type missing, naming who takes it.
fn missing_state(
    state: &AppState,
    needs: &[(String, StateType)],
    middleware: &[Box<dyn Middleware>],
) -> Vec<ConfigurationError> {
    let middleware_needs = middleware.iter().flat_map(|m| {
        m.state_types()
            .into_iter()
            .map(|ty| (format!("middleware {}", m.name()), ty))
    });
    let mut errors = Vec::new();
    for (who, ty) in needs.iter().cloned().chain(middleware_needs) {
        if !state.contains(&ty) {
            errors.push(ConfigurationError::new(format!(
                "{who} takes State<{ty}>, but no app state of type `{ty}` is registered: \
                 register it with App::state(...) before the app is built",
                ty = ty.name()
            )));
        }
    }
    errors
}

/// Each middleware's [`requires`](Middleware::requires) must be provided by one added before
/// it (the first added runs first).
fn check_middleware_order(middleware: &[Box<dyn Middleware>]) -> Result<(), ConfigurationError> {
    for (i, m) in middleware.iter().enumerate() {
        for need in m.requires() {
            if !middleware[..i]
                .iter()
                .any(|earlier| earlier.provides().contains(need))
            {
                let by = middleware
                    .iter()
                    .find(|other| other.provides().contains(need))
                    .map(|other| other.name());
                let fix = match by {
                    Some(by) => format!("{by} is added after it: add it first"),
                    None => format!("add the middleware that provides `{need}` before it"),
                };
                return Err(ConfigurationError::new(format!(
                    "{} needs `{need}` from a middleware added before it; {fix}",
                    m.name()
                )));
            }
        }
    }
    Ok(())
}
