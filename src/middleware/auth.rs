//! Authentication on top of sessions, after the Python framework's `chirp.middleware.auth`.
//!
//! [`AuthMiddleware`] finds the current user on every request: from a `Bearer` token when
//! [`AuthConfig::verify_token`] is set and the request carries one, else from the id stored in
//! the session (with [`AuthConfig::load_user`]). Handlers read it with [`get_user`] /
//! [`current_user`], sign users in and out with [`login`] / [`logout`] (both regenerate the
//! session: the session-fixation defence), and guard routes with [`login_required`].
//!
//! Add it after [`SessionMiddleware`](crate::middleware::sessions::SessionMiddleware), so that it
//! runs inside the session's scope.
//!
//! ```
//! use chirp::middleware::auth::{get_user, login, login_required, AuthConfig, AuthMiddleware, AuthUser};
//! use chirp::sessions::SessionConfig;
//! use chirp::middleware::sessions::SessionMiddleware;
//! use chirp::testing::TestClient;
//! use chirp::{App, Error, Request, Response};
//!
//! #[derive(Clone)]
//! struct User { id: u32, name: String }
//! impl AuthUser for User {
//!     fn id(&self) -> String { self.id.to_string() }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
//! let mut app = App::new();
//! app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
//! app.add_middleware(AuthMiddleware::new(AuthConfig::new().load_user(|id: String| async move {
//!     (id == "1").then(|| User { id: 1, name: "alice".into() })
//! }))?);
//! app.post("/login", |_req: Request| async {
//!     login(&User { id: 1, name: "alice".into() })?;
//!     Ok::<_, Error>(Response::see_other("/me"))
//! });
//! app.route("/me", login_required(|_req: Request| async {
//!     let user = get_user::<User>()?.expect("login_required let us in");
//!     Ok::<_, Error>(format!("hello {}", user.name))
//! }));
//!
//! let client = TestClient::new(app);
//! assert_eq!(client.get("/me").await.header("location"), Some("/login?next=%2Fme"));
//! client.post("/login", "").await;
//! assert_eq!(client.get("/me").await.text(), "hello alice");
//! # Ok(()) }
//! ```

use std::any::Any;
use std::future::Future;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::error::{ConfigurationError, Error, HttpError, LookupError};
use crate::future::BoxFuture;
use crate::http::encoding::percent_encode;
use crate::http::target::{in_scope, normalize_prefix};
use crate::http::{Request, Response, StatusCode};
use crate::routing::{ErasedHandler as _, Handler};
use crate::security::audit::{emit, emit_info, RequestInfo};
use crate::service::{Middleware, Next};
use crate::sessions::{get_session, regenerate_session};

/// The default session key that holds the user's session version (see
/// [`AuthConfig::session_version`]): the Python framework's, so that its logins are honoured.
pub const VERSION_KEY: &str = "_session_version";

/// A user type that can be signed in.
pub trait AuthUser: Clone + Send + Sync + 'static {
    /// The id stored in the session and handed back to [`AuthConfig::load_user`].
    fn id(&self) -> String;

    /// The user's permissions, checked by [`requires`] (none by default).
    fn permissions(&self) -> Vec<String> {
        Vec::new()
    }
}

type Loader<U> = Arc<dyn Fn(String) -> BoxFuture<'static, Option<U>> + Send + Sync>;
type Versioner<U> = Arc<dyn Fn(&U) -> String + Send + Sync>;

/// Authentication settings. At least one of [`load_user`](AuthConfig::load_user) and
/// [`verify_token`](AuthConfig::verify_token) must be set.
pub struct AuthConfig<U> {
    /// Session key holding the signed-in user's id. Default `user_id`.
    pub session_key: String,
    /// Session key holding the user's session version (a string). Default
    /// `_session_version` ([`VERSION_KEY`]), the Python framework's.
    pub session_version_key: String,
    /// Where [`login_required`] sends anonymous browsers. Default `/login`.
    pub login_url: String,
    /// Paths (and everything below them) where no user is loaded, e.g. `/static`: handlers
    /// there see an anonymous user (`get_user()` is `Ok(None)`).
    pub exclude_paths: Vec<String>,
    /// Paths (and everything below them) that are an API: [`login_required`] answers `401`
    /// there instead of redirecting. Default none; see [`AuthConfig::api_prefix`].
    pub api_prefix: Option<String>,
    load_user: Option<Loader<U>>,
    verify_token: Option<Loader<U>>,
    session_version: Option<Versioner<U>>,
}

impl<U: AuthUser> Default for AuthConfig<U> {
    fn default() -> Self {
        AuthConfig {
            session_key: "user_id".to_owned(),
            session_version_key: VERSION_KEY.to_owned(),
            login_url: "/login".to_owned(),
            exclude_paths: Vec::new(),
            api_prefix: None,
            load_user: None,
            verify_token: None,
            session_version: None,
        }
    }
}

impl<U: AuthUser> AuthConfig<U> {
    /// The defaults, with no callbacks yet.
    pub fn new() -> Self {
        AuthConfig::default()
    }

    /// Loads a user from the id stored in the session (`None`: no such user any more).
    pub fn load_user<F, Fut>(mut self, load: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<U>> + Send + 'static,
    {
        self.load_user = Some(Arc::new(move |id| Box::pin(load(id))));
        self
    }

    /// Verifies an `Authorization: Bearer <token>` and returns its user.
    pub fn verify_token<F, Fut>(mut self, verify: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<U>> + Send + 'static,
    {
        self.verify_token = Some(Arc::new(move |token| Box::pin(verify(token))));
        self
    }

    /// A value that changes when the user's credentials do (a password hash's fingerprint, a
    /// counter). Stored at login and compared on every request: a mismatch makes the request
    /// anonymous, which revokes every older session of that user.
    ///
    /// This is "log out everywhere" with the cookie store, and its only revocation: a cookie
    /// store keeps nothing on the server, so [`logout`] replaces the browser's cookie but
    /// cannot revoke a copy of it taken before (that copy works until the session's absolute
    /// deadline, [`SessionConfig::absolute_timeout`](crate::sessions::SessionConfig::absolute_timeout),
    /// 7 days after the login by default). To end every session of a user at once (a password
    /// change, "sign out of all devices", a stolen cookie), keep a per-user counter in your
    /// user store, return it here, and bump it: the next request of every older cookie is
    /// anonymous, with no state kept per session. `RedisStore` can also revoke one user's
    /// sessions (`revoke_user`), and deletes the session itself at logout.
    pub fn session_version<F>(mut self, version: F) -> Self
    where
        F: Fn(&U) -> String + Send + Sync + 'static,
    {
        self.session_version = Some(Arc::new(version));
        self
    }

    /// Sets [`login_url`](AuthConfig::login_url).
    pub fn login_url(mut self, url: impl Into<String>) -> Self {
        self.login_url = url.into();
        self
    }

    /// Marks `prefix` (and everything below it) as the app's API: [`login_required`] answers
    /// anonymous requests there `401`, as it does for requests with an `Authorization` header
    /// or an `Accept` without `text/html`; browsers elsewhere are redirected to log in.
    /// Unset, the app's [`App::api_prefix`](crate::App::api_prefix) is used: set it there
    /// once, for this and for how errors are rendered.
    pub fn api_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.api_prefix = Some(prefix.into());
        self
    }

    /// Adds an excluded path prefix.
    pub fn exclude_path(mut self, path: impl Into<String>) -> Self {
        self.exclude_paths.push(path.into());
        self
    }
}

/// What a request's handlers can reach: the user (type-erased) and the typed settings.
struct AuthContext {
    user: Mutex<Option<SignedIn>>,
    settings: Arc<dyn Any + Send + Sync>,
    login_url: Arc<str>,
    api_prefix: Option<Arc<str>>,
    /// The request, for the security events of `login` and `logout`.
    request: RequestInfo,
}

/// The signed-in user, type-erased, with what [`requires`] and the security events read.
#[derive(Clone)]
struct SignedIn {
    user: Arc<dyn Any + Send + Sync>,
    id: String,
    permissions: Arc<[String]>,
}

impl SignedIn {
    fn of<U: AuthUser>(user: U) -> SignedIn {
        SignedIn {
            id: user.id(),
            permissions: user.permissions().into(),
            user: Arc::new(user),
        }
    }
}

/// The id of the user signed in on this request, if any (`None` outside [`AuthMiddleware`]
/// too): the user id of the security events the middleware emits, and of an app's own
/// ([`emit`]).
pub fn current_user_id() -> Option<String> {
    let ctx = context().ok()?;
    let user = ctx.user.lock().unwrap_or_else(|e| e.into_inner());
    user.as_ref().map(|u| u.id.clone())
}

/// The parts of [`AuthConfig`] that [`login`] needs, shared with every request.
struct Settings<U> {
    session_key: String,
    session_version_key: String,
    session_version: Option<Versioner<U>>,
}

tokio::task_local! {
    static AUTH: Arc<AuthContext>;
}

fn no_auth() -> LookupError {
    LookupError::new("No active authentication. Ensure AuthMiddleware is added to the app (after SessionMiddleware).")
}

fn context() -> Result<Arc<AuthContext>, LookupError> {
    AUTH.try_with(Arc::clone).map_err(|_| no_auth())
}

/// The authentication middleware. See the [module docs](self).
pub struct AuthMiddleware<U: AuthUser> {
    load_user: Option<Loader<U>>,
    verify_token: Option<Loader<U>>,
    exclude_paths: Vec<String>,
    api_prefix: Option<Arc<str>>,
    settings: Arc<Settings<U>>,
    login_url: Arc<str>,
}

impl<U: AuthUser> AuthMiddleware<U> {
    /// The middleware.
    ///
    /// # Errors
    /// [`ConfigurationError`] when neither `load_user` nor `verify_token` is set.
    pub fn new(config: AuthConfig<U>) -> Result<Self, ConfigurationError> {
        if config.load_user.is_none() && config.verify_token.is_none() {
            return Err(ConfigurationError::new(
                "AuthConfig needs load_user (session logins) or verify_token (Bearer tokens), or both",
            ));
        }
        Ok(AuthMiddleware {
            load_user: config.load_user,
            verify_token: config.verify_token,
            exclude_paths: config
                .exclude_paths
                .into_iter()
                .map(|p| normalize_prefix(&p))
                .collect(),
            api_prefix: config
                .api_prefix
                .as_deref()
                .map(|p| Arc::from(normalize_prefix(p))),
            settings: Arc::new(Settings {
                session_key: config.session_key,
                session_version_key: config.session_version_key,
                session_version: config.session_version,
            }),
            login_url: Arc::from(config.login_url),
        })
    }

    async fn find_user(&self, req: &Request) -> Option<U> {
        if let (Some(verify), Some(token)) = (&self.verify_token, bearer_token(req)) {
            return verify(token.to_owned()).await;
        }
        let load = self.load_user.as_ref()?;
        let session = get_session().ok()?;
        let id = match session.get_value(&self.settings.session_key)? {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let user = load(id).await?;
        if let Some(version) = &self.settings.session_version {
            let stored = session.get::<String>(&self.settings.session_version_key);
            if stored.as_deref() != Some(version(&user).as_str()) {
                tracing::info!("session version mismatch: treating the request as anonymous");
                return None;
            }
        }
        Some(user)
    }
}

fn bearer_token(req: &Request) -> Option<&str> {
    let value = req.header("authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

impl<U: AuthUser> Middleware for AuthMiddleware<U> {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            // Excluded paths load no user, but still run in a scope: handlers there see an
            // anonymous user rather than an error.
            let excluded = self
                .exclude_paths
                .iter()
                .any(|p| in_scope(req.path_bytes(), p));
            let user = match excluded {
                true => None,
                false => self.find_user(&req).await,
            };
            let ctx = Arc::new(AuthContext {
                user: Mutex::new(user.map(SignedIn::of)),
                settings: self.settings.clone(),
                login_url: self.login_url.clone(),
                // Its own prefix, else the app's (App::api_prefix).
                api_prefix: self.api_prefix.clone().or_else(|| next.api_prefix_shared()),
                request: RequestInfo::of(&req),
            });
            AUTH.scope(ctx, next.run(req)).await
        })
    }

    fn name(&self) -> &'static str {
        "AuthMiddleware"
    }

    fn requires(&self) -> &'static [&'static str] {
        // Session logins read the user id from the session; Bearer tokens need none.
        match self.load_user {
            Some(_) => &["session"],
            None => &[],
        }
    }
}

/// The signed-in user, `None` when anonymous.
///
/// # Errors
/// [`LookupError`] outside [`AuthMiddleware`]'s scope, or when `U` is not the middleware's user
/// type.
pub fn get_user<U: AuthUser>() -> Result<Option<U>, LookupError> {
    let ctx = context()?;
    let user = ctx.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match user {
        None => Ok(None),
        Some(signed) => signed
            .user
            .downcast_ref::<U>()
            .cloned()
            .map(Some)
            .ok_or_else(|| {
                LookupError::new("get_user: the requested type is not AuthMiddleware's user type")
            }),
    }
}

/// The signed-in user, or a `401` error for `?` in handlers.
pub fn current_user<U: AuthUser>() -> Result<U, Error> {
    get_user::<U>()?.ok_or_else(|| HttpError::unauthorized("authentication required").into())
}

/// Signs `user` in: regenerates the session (a new cookie, old data gone), stores the user's
/// id (and session version), and makes the user visible to [`get_user`] at once.
///
/// # Errors
/// [`LookupError`] without [`AuthMiddleware`] or a session, or for a user of another type.
pub fn login<U: AuthUser>(user: &U) -> Result<(), LookupError> {
    let ctx = context()?;
    let settings = ctx.settings.downcast_ref::<Settings<U>>().ok_or_else(|| {
        LookupError::new("login: the user type is not AuthMiddleware's user type")
    })?;
    let session = regenerate_session()?;
    session.insert(&settings.session_key, user.id());
    if let Some(version) = &settings.session_version {
        session.insert(&settings.session_version_key, version(user));
    }
    *ctx.user.lock().unwrap_or_else(|e| e.into_inner()) = Some(SignedIn::of(user.clone()));
    emit_info("auth.login", &ctx.request, Some(&user.id()));
    Ok(())
}

/// Signs the user out: regenerates the session (everything in it is cleared), so the response
/// carries a new session cookie, without the user, that replaces the browser's.
///
/// What it revokes depends on the store. With `RedisStore` the old session is deleted: a copy
/// of the old cookie is dead everywhere at once. With the cookie store (the default) nothing is
/// kept on the server, so a copy of the old cookie taken before the logout still signs its
/// holder in until the session's absolute deadline
/// ([`SessionConfig::absolute_timeout`](crate::sessions::SessionConfig::absolute_timeout), 7
/// days after the login by default; also `idle_timeout` after its last use, when that is
/// set); to end it sooner, bump the user's [`AuthConfig::session_version`] ("log out everywhere").
///
/// # Errors
/// [`LookupError`] without [`AuthMiddleware`] or a session.
pub fn logout() -> Result<(), LookupError> {
    let ctx = context()?;
    regenerate_session()?;
    let was = ctx.user.lock().unwrap_or_else(|e| e.into_inner()).take();
    emit_info(
        "auth.logout",
        &ctx.request,
        was.as_ref().map(|u| u.id.as_str()),
    );
    Ok(())
}

/// Guards a handler: anonymous browsers are redirected (302) to the login URL with
/// `?next=<the original URL>`; API calls (an `Authorization` header, an `Accept` without
/// `text/html`, or a path under [`AuthConfig::api_prefix`]) get `401`. Outside [`AuthMiddleware`] every request is refused (500,
/// logged), never let through.
pub fn login_required<H: Handler>(handler: H) -> LoginRequired<H> {
    LoginRequired { handler }
}

/// A handler guarded by [`login_required`].
pub struct LoginRequired<H> {
    handler: H,
}

/// Whether an anonymous request is an API call (answered `401`) rather than a browser's
/// (redirected to log in): it carries `Authorization`, or an `Accept` without `text/html`
/// (`fetch()`, curl, API clients), or its path is under the configured API prefix.
fn is_api_call(req: &Request, api_prefix: Option<&str>) -> bool {
    if req.headers().contains("authorization") {
        return true;
    }
    if api_prefix.is_some_and(|p| in_scope(req.path_bytes(), p)) {
        return true;
    }
    req.header("accept").is_some_and(|accept| {
        !accept.split(',').any(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/html")
        })
    })
}

impl<H: Handler> Handler for LoginRequired<H> {
    type Future = BoxFuture<'static, Response>;
    type Output = Response;

    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let ctx = match context() {
            Ok(ctx) => ctx,
            Err(e) => return refused_without_auth("login_required", e),
        };
        let signed_in = ctx.user.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        if signed_in {
            return self.handler.call_boxed(req);
        }
        Box::pin(std::future::ready(anonymous_answer(&ctx, &req)))
    }
}

/// The answer of a guard (`what`) used outside [`AuthMiddleware`]: every request is refused
/// (500, logged), never let through.
fn refused_without_auth(what: &str, e: LookupError) -> BoxFuture<'static, Response> {
    tracing::error!(error = %e, "{what} used without AuthMiddleware");
    Box::pin(std::future::ready(
        Response::text("Internal Server Error").with_status(StatusCode::INTERNAL_SERVER_ERROR),
    ))
}

/// The answer to an anonymous request for a guarded handler: `401` for API calls, a redirect
/// to the login URL for browsers.
fn anonymous_answer(ctx: &AuthContext, req: &Request) -> Response {
    {
        if is_api_call(req, ctx.api_prefix.as_deref()) {
            // An error like any other: problem+json for JSON clients, or the app's error page.
            Response::error(StatusCode::UNAUTHORIZED, "authentication required")
                .with_header("www-authenticate", "Bearer")
        } else {
            let sep = if ctx.login_url.contains('?') {
                '&'
            } else {
                '?'
            };
            Response::redirect(format!(
                "{}{sep}next={}",
                ctx.login_url,
                percent_encode(req.target())
            ))
        }
    }
}

/// Who is asking, as a permission policy sees it ([`requires_policy`]).
#[derive(Debug, Clone, Copy)]
pub struct Principal<'a> {
    /// The user's id ([`AuthUser::id`]).
    pub id: &'a str,
    /// The user's permissions ([`AuthUser::permissions`]).
    pub permissions: &'a [String],
}

impl Principal<'_> {
    /// Whether the user has `permission`.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

type Policy = Arc<dyn Fn(&Request, &Principal<'_>) -> bool + Send + Sync>;

/// Guards a handler with permissions (the Python framework's `@requires`): an anonymous
/// request is answered as by [`login_required`] (401 for API calls, the login redirect for
/// browsers), and a signed-in user without every one of `permissions` gets **403 with the
/// body `Forbidden`** and nothing more (which permission was missing is not told), and a
/// `permission.denied` security event. 401 always comes before 403.
///
/// ```
/// use chirp::middleware::auth::requires;
/// use chirp::{App, Request};
/// let mut app = App::new();
/// app.route("/admin", requires(&["admin"], |_req: Request| async { "the admin page" }));
/// ```
pub fn requires<H: Handler>(permissions: &[&str], handler: H) -> Requires<H> {
    let needed: Vec<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
    requires_policy(move |_req, who| needed.iter().all(|p| who.has(p)), handler)
}

/// Like [`requires`], with a policy of the app's own: `policy(request, principal)` says
/// whether the signed-in user may go on (owner checks, time windows, ...).
pub fn requires_policy<H: Handler>(
    policy: impl Fn(&Request, &Principal<'_>) -> bool + Send + Sync + 'static,
    handler: H,
) -> Requires<H> {
    Requires {
        policy: Arc::new(policy),
        handler,
    }
}

/// A handler guarded by [`requires`] or [`requires_policy`].
pub struct Requires<H> {
    policy: Policy,
    handler: H,
}

impl<H: Handler> Handler for Requires<H> {
    type Future = BoxFuture<'static, Response>;
    type Output = Response;

    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let ctx = match context() {
            Ok(ctx) => ctx,
            Err(e) => return refused_without_auth("requires", e),
        };
        let signed = ctx.user.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(signed) = signed else {
            return Box::pin(std::future::ready(anonymous_answer(&ctx, &req)));
        };
        let who = Principal {
            id: &signed.id,
            permissions: &signed.permissions,
        };
        if !(self.policy)(&req, &who) {
            emit("permission.denied", &req, Some(&signed.id));
            return Box::pin(std::future::ready(Response::error(
                StatusCode::FORBIDDEN,
                "Forbidden",
            )));
        }
        self.handler.call_boxed(req)
    }
}
