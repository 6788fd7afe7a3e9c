//! Authentication on top of sessions, after the Python framework's `chirp.middleware.auth`.
//!
//! [`AuthMiddleware`] finds the current user on every request: from a `Bearer` token when
//! [`AuthConfig::verify_token`] is set and the request carries one, else from the id stored in
//! the session (with [`AuthConfig::load_user`]). Handlers read it with [`get_user`] /
//! [`current_user`], sign users in and out with [`login`] / [`logout`] (both regenerate the
//! session: the session-fixation defence), and guard routes with [`login_required`],
//! [`requires`], [`requires_policy`] and [`requires_policy_async`] (a policy that awaits).
//!
//! The loaders may take app state (`|id: String, db: State<Db>|`, checked when the app is
//! built) and may fail: a loader error is answered `503` with `Retry-After` and logged at
//! ERROR, never taken for "signed out". [`AuthConfig::anonymous`] sets the user that
//! [`user_or_anonymous`] gives anonymous requests (the Python framework's `AnonymousUser`).
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
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::error::{ConfigurationError, Error, HttpError, LookupError};
use crate::future::BoxFuture;
use crate::http::encoding::percent_encode;
use crate::http::target::{in_scope, normalize_prefix};
use crate::http::{Request, Response, StatusCode};
use crate::routing::{call_boxed, Handler};
use crate::security::audit::{emit, emit_info, RequestInfo};
use crate::service::{Middleware, Next};
use crate::sessions::{get_session, regenerate_session};
use crate::state::{State, StateType};

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

/// Any error a user loader or a policy returns (it is logged, never shown to the client).
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A user loader's future: the user, none, or the error that says nobody can tell.
type LoadFuture<U> = BoxFuture<'static, Result<Option<U>, BoxError>>;
type LoadFn<U> = Arc<dyn Fn(String, &Request) -> LoadFuture<U> + Send + Sync>;

/// A loader (or token verifier) with its type erased, and the state types it takes.
struct Loader<U> {
    load: LoadFn<U>,
    state_types: Vec<StateType>,
}

impl<U: AuthUser> Loader<U> {
    fn of<Args, L: UserLoader<U, Args>>(loader: L) -> Loader<U> {
        Loader {
            state_types: loader.state_types(),
            load: Arc::new(move |key, req| loader.load(key, req)),
        }
    }
}

type Versioner<U> = Arc<dyn Fn(&U) -> String + Send + Sync>;

/// What a user loader ([`AuthConfig::load_user`], [`AuthConfig::verify_token`]) may return:
/// `Option<U>` for one that cannot fail, or `Result<Option<U>, E>` for one that can (a
/// database query), with any error type `E` that converts into
/// `Box<dyn std::error::Error + Send + Sync>` (every `std::error::Error`, `chirp::Error`,
/// `anyhow::Error`).
///
/// `Ok(None)` is "no such user" (the request is anonymous); `Err` is "cannot tell now": the
/// request is answered `503 Service Unavailable` with `Retry-After`, and the error is logged,
/// rather than signing the user out.
pub trait LoadedUser<U>: Send + 'static {
    /// The loader's answer, its error boxed.
    fn into_loaded(self) -> Result<Option<U>, BoxError>;
}

impl<U: AuthUser> LoadedUser<U> for Option<U> {
    fn into_loaded(self) -> Result<Option<U>, BoxError> {
        Ok(self)
    }
}

impl<U: AuthUser, E: Into<BoxError> + Send + 'static> LoadedUser<U> for Result<Option<U>, E> {
    fn into_loaded(self) -> Result<Option<U>, BoxError> {
        self.map_err(Into::into)
    }
}

/// A user loader, as [`AuthConfig::load_user`] and [`AuthConfig::verify_token`] take it:
/// implemented for `async` closures and functions of the key (the session's user id, or the
/// token) alone, `Fn(String) -> impl Future<Output = impl LoadedUser<U>>`, and of the key
/// and one app state value, `Fn(String, State<S>) -> ...` (a database pool: the app checks at
/// build that `S` is registered with [`App::state`](crate::App::state)). `Args` tells the two
/// apart; it is inferred, never written. Annotate the closure's arguments
/// (`|id: String, db: State<Db>|`).
pub trait UserLoader<U, Args>: Send + Sync + 'static {
    /// Loads the user for `key`, reading what it takes from `req`'s app state.
    #[doc(hidden)]
    fn load(&self, key: String, req: &Request) -> LoadFuture<U>;

    /// The app state types the loader takes.
    #[doc(hidden)]
    fn state_types(&self) -> Vec<StateType>;
}

impl<U, F, Fut> UserLoader<U, (String,)> for F
where
    U: AuthUser,
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: LoadedUser<U>,
{
    fn load(&self, key: String, _req: &Request) -> LoadFuture<U> {
        let fut = self(key);
        Box::pin(async move { fut.await.into_loaded() })
    }

    fn state_types(&self) -> Vec<StateType> {
        Vec::new()
    }
}

impl<U, F, Fut, S> UserLoader<U, (String, State<S>)> for F
where
    U: AuthUser,
    F: Fn(String, State<S>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: LoadedUser<U>,
    S: Send + Sync + 'static,
{
    fn load(&self, key: String, req: &Request) -> LoadFuture<U> {
        // Checked at build (AuthMiddleware declares `S`); missing only for a request that did
        // not come through the app.
        match req.state::<S>() {
            Ok(state) => {
                let fut = self(key, state);
                Box::pin(async move { fut.await.into_loaded() })
            }
            Err(e) => Box::pin(std::future::ready(Err(e.into()))),
        }
    }

    fn state_types(&self) -> Vec<StateType> {
        vec![StateType::of::<S>()]
    }
}

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
    /// The `Retry-After` of the `503` answered when a user loader or an async policy fails
    /// (the database is down): how long clients wait before they try again. Default 5 s.
    pub retry_after: Duration,
    load_user: Option<Loader<U>>,
    verify_token: Option<Loader<U>>,
    session_version: Option<Versioner<U>>,
    anonymous: Option<U>,
}

impl<U: AuthUser> Default for AuthConfig<U> {
    fn default() -> Self {
        AuthConfig {
            session_key: "user_id".to_owned(),
            session_version_key: VERSION_KEY.to_owned(),
            login_url: "/login".to_owned(),
            exclude_paths: Vec::new(),
            api_prefix: None,
            retry_after: Duration::from_secs(5),
            load_user: None,
            verify_token: None,
            session_version: None,
            anonymous: None,
        }
    }
}

impl<U: AuthUser> AuthConfig<U> {
    /// The defaults, with no callbacks yet.
    pub fn new() -> Self {
        AuthConfig::default()
    }

    /// Loads a user from the id stored in the session: `Some(user)`, `None` (no such user any
    /// more: the request is anonymous), or an error (see [`LoadedUser`]).
    ///
    /// The loader may take one app state value after the id, `|id: String, db: State<Db>|`
    /// (see [`UserLoader`]); the app checks at build that its type is registered. A loader
    /// that fails (`Err`) is not "signed out": the request is answered
    /// `503 Service Unavailable` with [`Retry-After`](AuthConfig::retry_after), and the error
    /// is logged at ERROR with its sources.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use chirp::middleware::auth::{AuthConfig, AuthUser};
    /// use chirp::State;
    ///
    /// #[derive(Clone)]
    /// struct User { id: String }
    /// impl AuthUser for User {
    ///     fn id(&self) -> String { self.id.clone() }
    /// }
    /// struct Db(HashMap<String, User>);
    /// #[derive(Debug)]
    /// struct DbDown;
    /// impl std::fmt::Display for DbDown {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("database down") }
    /// }
    /// impl std::error::Error for DbDown {}
    ///
    /// let config = AuthConfig::new().load_user(|id: String, db: State<Db>| async move {
    ///     if db.0.is_empty() {
    ///         return Err(DbDown);
    ///     }
    ///     Ok(db.0.get(&id).cloned())
    /// });
    /// ```
    pub fn load_user<Args>(mut self, load: impl UserLoader<U, Args>) -> Self {
        self.load_user = Some(Loader::of(load));
        self
    }

    /// Verifies an `Authorization: Bearer <token>` and returns its user; like
    /// [`load_user`](AuthConfig::load_user), it may take one app state value and may fail
    /// (a `503`, logged).
    pub fn verify_token<Args>(mut self, verify: impl UserLoader<U, Args>) -> Self {
        self.verify_token = Some(Loader::of(verify));
        self
    }

    /// Sets [`retry_after`](AuthConfig::retry_after), the `Retry-After` of the `503` answered
    /// when a user loader or an async policy fails.
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = wait;
        self
    }

    /// The user that [`user_or_anonymous`] gives for requests nobody is signed in on (the
    /// Python framework's `AnonymousUser`): a value of the app's own user type, so that pages
    /// and templates take one type whether or not someone is signed in. Mark it as you like
    /// (an `is_authenticated: false` field for templates, an enum variant): chirp never
    /// signs it in, and [`get_user`], [`current_user`] and the guards still see an anonymous
    /// request as anonymous.
    ///
    /// ```
    /// use chirp::middleware::auth::{user_or_anonymous, AuthConfig, AuthMiddleware, AuthUser};
    /// use chirp::middleware::sessions::SessionMiddleware;
    /// use chirp::sessions::SessionConfig;
    /// use chirp::{App, Error, Request};
    ///
    /// #[derive(Clone)]
    /// struct User { id: String, name: String, is_authenticated: bool }
    /// impl AuthUser for User {
    ///     fn id(&self) -> String { self.id.clone() }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
    /// let guest = User { id: String::new(), name: "guest".into(), is_authenticated: false };
    /// let mut app = App::new();
    /// app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
    /// app.add_middleware(AuthMiddleware::new(
    ///     AuthConfig::new()
    ///         .load_user(|_id: String| async { None::<User> })
    ///         .anonymous(guest),
    /// )?);
    /// app.route("/", |_req: Request| async {
    ///     let user = user_or_anonymous::<User>()?;
    ///     Ok::<_, Error>(format!("hello {} ({})", user.name, user.is_authenticated))
    /// });
    /// let client = chirp::testing::TestClient::new(app);
    /// assert_eq!(client.get("/").await.text(), "hello guest (false)");
    /// # Ok(()) }
    /// ```
    pub fn anonymous(mut self, user: U) -> Self {
        self.anonymous = Some(user);
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
    /// The `Retry-After` of a `503` when an async policy fails.
    retry_after: Duration,
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
    /// What [`user_or_anonymous`] gives anonymous requests.
    anonymous: Option<U>,
}

tokio::task_local! {
    static AUTH: Arc<AuthContext>;
}

fn no_auth() -> LookupError {
    LookupError::new(
        "No active authentication. Ensure AuthMiddleware is added to the app (after \
         SessionMiddleware). If it is, this code runs outside the request's scope: a task \
         started with tokio::spawn does not inherit it (read the user before spawning and move \
         it in)",
    )
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
    retry_after: Duration,
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
                anonymous: config.anonymous,
            }),
            login_url: Arc::from(config.login_url),
            retry_after: config.retry_after,
        })
    }

    /// The request's user: `Ok(None)` when anonymous, `Err` when the loader (or the token
    /// verifier) failed and nobody can tell.
    async fn find_user(&self, req: &Request) -> Result<Option<U>, (&'static str, BoxError)> {
        if let (Some(verify), Some(token)) = (&self.verify_token, bearer_token(req)) {
            let load = (verify.load)(token.to_owned(), req);
            let user = load.await.map_err(|e| ("AuthConfig::verify_token", e))?;
            if user.is_none() {
                emit("auth.token.invalid", req, None);
            }
            return Ok(user);
        }
        let Some(loader) = self.load_user.as_ref() else {
            return Ok(None);
        };
        let Ok(session) = get_session() else {
            return Ok(None);
        };
        let id = match session.get_value(&self.settings.session_key) {
            Some(Value::String(s)) => s,
            Some(Value::Number(n)) => n.to_string(),
            _ => return Ok(None),
        };
        let load = (loader.load)(id, req);
        let Some(user) = load.await.map_err(|e| ("AuthConfig::load_user", e))? else {
            return Ok(None);
        };
        if let Some(version) = &self.settings.session_version {
            let stored = session.get::<String>(&self.settings.session_version_key);
            if stored.as_deref() != Some(version(&user).as_str()) {
                // The user's sessions were ended elsewhere ("log out everywhere", a password
                // change): this one is anonymous from now on.
                emit("auth.session.version_mismatch", req, Some(&user.id()));
                return Ok(None);
            }
        }
        Ok(Some(user))
    }
}

/// The answer when `what` (a user loader, a policy) failed: nobody can tell who is asking or
/// whether they may, and saying "anonymous" or "forbidden" would be wrong (a signed-in user
/// sent to the login page by a database hiccup), so `503` with `Retry-After`, and the error
/// logged at ERROR with its sources (never shown to the client).
fn unavailable(what: &str, error: &BoxError, req: &Request, retry_after: Duration) -> Response {
    tracing::error!(
        error = %crate::error::Error::chain(error.as_ref()),
        path = %req.path(),
        "{what} failed: answered 503 Service Unavailable"
    );
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    Response::error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable")
        .with_header("retry-after", seconds.to_string())
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
                false => match self.find_user(&req).await {
                    Ok(user) => user,
                    Err((what, e)) => return unavailable(what, &e, &req, self.retry_after),
                },
            };
            let ctx = Arc::new(AuthContext {
                user: Mutex::new(user.map(SignedIn::of)),
                settings: self.settings.clone(),
                login_url: self.login_url.clone(),
                // Its own prefix, else the app's (App::api_prefix).
                api_prefix: self.api_prefix.clone().or_else(|| next.api_prefix_shared()),
                retry_after: self.retry_after,
                request: RequestInfo::of(&req),
            });
            // Carried on into a streamed body's producer and an upgrade callback.
            Response::scoped(&AUTH, ctx, next.run(req)).await
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

    fn state_types(&self) -> Vec<StateType> {
        let loaders = self.load_user.iter().chain(&self.verify_token);
        loaders
            .flat_map(|l| l.state_types.iter().copied())
            .collect()
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

/// The signed-in user, or else the anonymous user set with [`AuthConfig::anonymous`]: one
/// value of the app's user type for pages and templates, whoever asks.
///
/// # Errors
/// [`LookupError`] outside [`AuthMiddleware`]'s scope, when `U` is not the middleware's user
/// type, or, on an anonymous request, when no anonymous user was set (set one with
/// [`AuthConfig::anonymous`]).
pub fn user_or_anonymous<U: AuthUser>() -> Result<U, LookupError> {
    if let Some(user) = get_user::<U>()? {
        return Ok(user);
    }
    let ctx = context()?;
    let settings = ctx.settings.downcast_ref::<Settings<U>>().ok_or_else(|| {
        LookupError::new("user_or_anonymous: the requested type is not AuthMiddleware's user type")
    })?;
    settings.anonymous.clone().ok_or_else(|| {
        LookupError::new(
            "user_or_anonymous: nobody is signed in and no anonymous user is set: set one with AuthConfig::anonymous(value)",
        )
    })
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
    emit_info("auth.login.success", &ctx.request, Some(&user.id()));
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
        "auth.logout.success",
        &ctx.request,
        was.as_ref().map(|u| u.id.as_str()),
    );
    Ok(())
}

/// Guards a handler: anonymous browsers are redirected (302) to the login URL with
/// `?next=<the original URL>`; API calls (an `Authorization` header, an `Accept` without
/// `text/html`, or a path under [`AuthConfig::api_prefix`]) and upgrades (a WebSocket
/// handshake) get `401`. Outside [`AuthMiddleware`] every request is refused (500,
/// logged), never let through. The handler may take [`State`] arguments, as any handler.
///
/// An htmx request ([`HxRequest::is_partial`](crate::htmx::HxRequest::is_partial)) outside the
/// API prefix is answered `401` with `HX-Redirect` to the login URL, and no body: htmx then
/// loads the login page as a whole page. A `302` would be followed by the browser's XHR, and
/// the login page swapped into the page as a fragment; a bare `401` would do nothing at all.
/// (htmx acts on `HX-Redirect` whatever the status, before it decides whether to swap, and a
/// `401` is never swapped: where the header is lost, nothing is.) Its `next` is the page the
/// user is on ([`HxRequest::current_path`](crate::htmx::HxRequest::current_path), or the
/// target of a boosted `GET`), not the fragment's URL; without one, there is no `next`. A
/// history restore (`HX-History-Restore-Request`) wants a whole page and gets the `302`.
///
/// ```
/// use chirp::middleware::auth::{login_required, AuthConfig, AuthMiddleware, AuthUser};
/// use chirp::middleware::sessions::SessionMiddleware;
/// use chirp::sessions::SessionConfig;
/// use chirp::testing::TestClient;
/// use chirp::{App, Method, Request};
/// # #[derive(Clone)] struct User;
/// # impl AuthUser for User { fn id(&self) -> String { "1".into() } }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), chirp::Error> {
/// let mut app = App::new();
/// app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
/// app.add_middleware(AuthMiddleware::new(
///     AuthConfig::new().load_user(|_id: String| async { None::<User> }),
/// )?);
/// app.route("/tasks", login_required(|_req: Request| async { "<li>a task</li>" }));
/// let client = TestClient::new(app);
/// let res = client
///     .htmx(Method::Get, "/tasks")
///     .hx_current_url("http://localhost/board")
///     .header("Host", "localhost")
///     .send()
///     .await;
/// assert_eq!(res.status().as_u16(), 401);
/// assert_eq!(res.hx_redirect(), Some("/login?next=%2Fboard"));
/// # Ok(()) }
/// ```
pub fn login_required<H: Handler<Args>, Args: 'static>(handler: H) -> LoginRequired<H, Args> {
    LoginRequired {
        handler,
        args: PhantomData,
    }
}

/// A handler guarded by [`login_required`].
pub struct LoginRequired<H, Args = (Request,)> {
    handler: H,
    args: PhantomData<fn() -> Args>,
}

/// Whether an anonymous request is an API call (answered `401`) rather than a browser's
/// (redirected to log in): it carries `Authorization`, or an `Accept` without `text/html`
/// (`fetch()`, curl, API clients), or its path is under the configured API prefix.
fn is_api_call(req: &Request, api_prefix: Option<&str>) -> bool {
    // A protocol upgrade (a WebSocket handshake) cannot follow a redirect to a login page:
    // RFC 6455 §4.1 clients fail on anything but 101.
    if req.headers().contains("authorization") || req.headers().contains("upgrade") {
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

impl<H: Handler<Args>, Args: 'static> Handler for LoginRequired<H, Args> {
    type Future = BoxFuture<'static, Response>;
    type Output = Response;

    fn state_types(&self) -> Vec<StateType> {
        self.handler.state_types()
    }

    fn call(&self, req: Request) -> BoxFuture<'static, Response> {
        let ctx = match context() {
            Ok(ctx) => ctx,
            Err(e) => return refused_without_auth("login_required", e),
        };
        let signed_in = ctx.user.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        if signed_in {
            return call_boxed(&self.handler, req);
        }
        Box::pin(std::future::ready(anonymous_answer(&ctx, &req)))
    }
}

/// The answer of a guard (`what`) used outside [`AuthMiddleware`]: every request is refused
/// (500, logged), never let through.
fn refused_without_auth(what: &str, e: LookupError) -> BoxFuture<'static, Response> {
    tracing::error!(error = %e, "{what} used without AuthMiddleware");
    // Rendered like every error (the app's error page, problem+json under the API prefix).
    Box::pin(std::future::ready(Response::error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal Server Error",
    )))
}

/// The answer to an anonymous request for a guarded handler: `401` for API calls, the
/// login page through `HX-Redirect` for htmx, a redirect to the login URL for browsers.
fn anonymous_answer(ctx: &AuthContext, req: &Request) -> Response {
    emit("auth.require.unauthenticated", req, None);
    let api_path = ctx
        .api_prefix
        .as_deref()
        .is_some_and(|p| in_scope(req.path_bytes(), p));
    if !api_path && req.htmx().is_partial() {
        return htmx_to_login(&ctx.login_url, req);
    }
    if is_api_call(req, ctx.api_prefix.as_deref()) {
        // An error like any other: problem+json for JSON clients, or the app's error page.
        Response::error(StatusCode::UNAUTHORIZED, "authentication required")
            .with_header("www-authenticate", "Bearer")
    } else {
        Response::redirect(with_next(&ctx.login_url, Some(req.target())))
    }
}

/// `login_url` with `next=<page>` added to its query (percent-encoded), when there is a page.
fn with_next(login_url: &str, page: Option<&str>) -> String {
    let Some(page) = page else {
        return login_url.to_owned();
    };
    let sep = if login_url.contains('?') { '&' } else { '?' };
    format!("{login_url}{sep}next={}", percent_encode(page))
}

/// The answer that sends an htmx request to the login page: `401` with `HX-Redirect` and no
/// body (see [`login_required`]). `next` is the page the user is on, never the fragment's URL.
pub(crate) fn htmx_to_login(login_url: &str, req: &Request) -> Response {
    let hx = req.htmx();
    let page = match hx.is_boosted() && req.method() == crate::http::Method::Get {
        true => Some(req.target().to_owned()),
        false => hx.current_path(),
    };
    crate::htmx::hx_redirect(&with_next(login_url, page.as_deref()))
        .with_status(StatusCode::UNAUTHORIZED)
}

/// The login URL of the [`AuthMiddleware`] whose scope this runs in, if any: where
/// [`CsrfMiddleware`](crate::middleware::csrf::CsrfMiddleware) sends an htmx request whose
/// session expired.
pub(crate) fn login_url() -> Option<Arc<str>> {
    AUTH.try_with(|ctx| ctx.login_url.clone()).ok()
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

type SyncPolicy = Arc<dyn Fn(&Request, &Principal<'_>) -> bool + Send + Sync>;
type Decision = BoxFuture<'static, Result<bool, BoxError>>;
type AsyncPolicyFn = Arc<dyn Fn(&Request, &Principal<'_>) -> Decision + Send + Sync>;

/// A permission policy, as a guarded handler keeps it.
enum Policy {
    /// [`requires`], [`requires_policy`]: decided at once.
    Sync(SyncPolicy),
    /// [`requires_policy_async`]: decided by a future (and it may fail).
    Async {
        decide: AsyncPolicyFn,
        state_types: Vec<StateType>,
    },
}

/// Guards a handler with permissions (the Python framework's `@requires`): an anonymous
/// request is answered as by [`login_required`] (401 for API calls, the login redirect for
/// browsers), and a signed-in user without every one of `permissions` gets **403 with the
/// body `Forbidden`** and nothing more (which permission was missing is not told), and a
/// `authz.permission.denied` security event. 401 always comes before 403.
///
/// ```
/// use chirp::middleware::auth::requires;
/// use chirp::{App, Request};
/// let mut app = App::new();
/// app.route("/admin", requires(&["admin"], |_req: Request| async { "the admin page" }));
/// ```
pub fn requires<H: Handler<Args>, Args: 'static>(
    permissions: &[&str],
    handler: H,
) -> Requires<H, Args> {
    let needed: Vec<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
    let mut guarded = requires_policy(move |_req, who| needed.iter().all(|p| who.has(p)), handler);
    guarded.denied_event = "authz.permission.denied";
    guarded
}

/// Like [`requires`], with a policy of the app's own: `policy(request, principal)` says
/// whether the signed-in user may go on (time windows, a path parameter that must be the
/// user's own id, ...). Decided at once, from the request and the user alone; for a policy
/// that must ask the database (who owns note 7?), see [`requires_policy_async`].
pub fn requires_policy<H: Handler<Args>, Args: 'static>(
    policy: impl Fn(&Request, &Principal<'_>) -> bool + Send + Sync + 'static,
    handler: H,
) -> Requires<H, Args> {
    Requires {
        policy: Policy::Sync(Arc::new(policy)),
        handler: Arc::new(handler),
        denied_event: "authz.policy.denied",
        args: PhantomData,
    }
}

/// What an async policy ([`requires_policy_async`]) may end with: `bool`, or
/// `Result<bool, E>` for one that can fail (a database query), with any error type that
/// converts into `Box<dyn std::error::Error + Send + Sync>`. An `Err` is answered
/// `503 Service Unavailable` with [`Retry-After`](AuthConfig::retry_after) and logged at
/// ERROR: neither let through nor refused.
pub trait PolicyDecision: Send + 'static {
    /// The decision, its error boxed.
    fn into_decision(self) -> Result<bool, BoxError>;
}

impl PolicyDecision for bool {
    fn into_decision(self) -> Result<bool, BoxError> {
        Ok(self)
    }
}

impl<E: Into<BoxError> + Send + 'static> PolicyDecision for Result<bool, E> {
    fn into_decision(self) -> Result<bool, BoxError> {
        self.map_err(Into::into)
    }
}

/// An async permission policy, as [`requires_policy_async`] takes it: implemented for
/// `Fn(&Request, &Principal<'_>) -> impl Future<Output = impl PolicyDecision>`, and for the
/// same with one app state value after them, `Fn(&Request, &Principal<'_>, State<S>) -> ...`
/// (checked at build like a handler's). `Args` tells the two apart; it is inferred, never
/// written.
///
/// The closure runs at once and its future later, so the future cannot borrow the request or
/// the principal: take what it needs from them first (a path parameter, the user's id), and
/// move that into the `async move` block. Annotate the closure's arguments.
pub trait AsyncPolicy<Args>: Send + Sync + 'static {
    /// Starts deciding whether `who` may go on with `req`.
    #[doc(hidden)]
    fn decide(
        &self,
        req: &Request,
        who: &Principal<'_>,
    ) -> BoxFuture<'static, Result<bool, BoxError>>;

    /// The app state types the policy takes.
    #[doc(hidden)]
    fn state_types(&self) -> Vec<StateType>;
}

impl<F, Fut> AsyncPolicy<()> for F
where
    F: Fn(&Request, &Principal<'_>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: PolicyDecision,
{
    fn decide(
        &self,
        req: &Request,
        who: &Principal<'_>,
    ) -> BoxFuture<'static, Result<bool, BoxError>> {
        let fut = self(req, who);
        Box::pin(async move { fut.await.into_decision() })
    }

    fn state_types(&self) -> Vec<StateType> {
        Vec::new()
    }
}

impl<F, Fut, S> AsyncPolicy<(State<S>,)> for F
where
    F: Fn(&Request, &Principal<'_>, State<S>) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: PolicyDecision,
    S: Send + Sync + 'static,
{
    fn decide(
        &self,
        req: &Request,
        who: &Principal<'_>,
    ) -> BoxFuture<'static, Result<bool, BoxError>> {
        match req.state::<S>() {
            Ok(state) => {
                let fut = self(req, who, state);
                Box::pin(async move { fut.await.into_decision() })
            }
            Err(e) => Box::pin(std::future::ready(Err(e.into()))),
        }
    }

    fn state_types(&self) -> Vec<StateType> {
        vec![StateType::of::<S>()]
    }
}

/// Like [`requires_policy`], with a policy that awaits (a database query) and may take an app
/// state value: an owner check that reads who owns the resource. Anonymous requests are
/// answered as by [`login_required`] before the policy runs; `false` is a `403 Forbidden`
/// (and a `permission.denied` event); a policy that fails is a `503` with `Retry-After`,
/// logged at ERROR.
///
/// ```
/// use std::collections::HashMap;
/// use chirp::middleware::auth::{requires_policy_async, Principal};
/// use chirp::{App, Request, State};
///
/// /// Which user owns each note.
/// struct Owners(HashMap<u64, String>);
///
/// let mut app = App::new();
/// app.state(Owners(HashMap::from([(7, "alice".to_owned())])));
/// app.route(
///     "/notes/{id:int}",
///     requires_policy_async(
///         |req: &Request, who: &Principal<'_>, owners: State<Owners>| {
///             // Taken out before the future: it cannot borrow the request.
///             let note: Option<u64> = req.param_as("id").ok();
///             let me = who.id.to_owned();
///             async move { note.and_then(|n| owners.0.get(&n)) == Some(&me) }
///         },
///         |_req: Request| async { "your note" },
///     ),
/// );
/// assert!(app.build().is_ok());
/// ```
pub fn requires_policy_async<H, Args, P, PolicyArgs>(policy: P, handler: H) -> Requires<H, Args>
where
    H: Handler<Args>,
    Args: 'static,
    P: AsyncPolicy<PolicyArgs>,
{
    let state_types = policy.state_types();
    Requires {
        policy: Policy::Async {
            decide: Arc::new(move |req, who| policy.decide(req, who)),
            state_types,
        },
        handler: Arc::new(handler),
        denied_event: "authz.policy.denied",
        args: PhantomData,
    }
}

/// A handler guarded by [`requires`], [`requires_policy`] or [`requires_policy_async`].
pub struct Requires<H, Args = (Request,)> {
    policy: Policy,
    // Shared with the future that awaits an async policy before it calls the handler.
    handler: Arc<H>,
    /// The security event of a refusal: `authz.permission.denied` for [`requires`] (a
    /// permission the user lacks), `authz.policy.denied` for a policy of the app's.
    denied_event: &'static str,
    args: PhantomData<fn() -> Args>,
}

impl<H: Handler<Args>, Args: 'static> Handler for Requires<H, Args> {
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
        let decide = match &self.policy {
            Policy::Sync(policy) => {
                if !policy(&req, &who) {
                    return forbidden(&req, &signed.id, self.denied_event);
                }
                return call_boxed(&*self.handler, req);
            }
            Policy::Async { decide, .. } => decide(&req, &who),
        };
        let handler = self.handler.clone();
        let retry_after = ctx.retry_after;
        let denied_event = self.denied_event;
        Box::pin(async move {
            match decide.await {
                Ok(true) => call_boxed(&*handler, req).await,
                Ok(false) => forbidden(&req, &signed.id, denied_event).await,
                Err(e) => unavailable("requires_policy_async", &e, &req, retry_after),
            }
        })
    }

    fn state_types(&self) -> Vec<StateType> {
        let mut types = self.handler.state_types();
        if let Policy::Async { state_types, .. } = &self.policy {
            types.extend_from_slice(state_types);
        }
        types
    }
}

/// A signed-in user the policy refused: `403 Forbidden`, told nothing more, and the event.
fn forbidden(req: &Request, id: &str, event: &'static str) -> BoxFuture<'static, Response> {
    emit(event, req, Some(id));
    Box::pin(std::future::ready(Response::error(
        StatusCode::FORBIDDEN,
        "Forbidden",
    )))
}
