//! A shared task list in the HTML-over-the-wire style: pages and fragments from templates,
//! htmx (vendored, served from `static/`) swapping them in, an out-of-band count, new tasks
//! pushed to every open page over Server-Sent Events, SQLite for the data, and the security
//! middleware a real app runs (access log, security headers with a CSP nonce, a login rate
//! limit, sessions, auth, CSRF). The example to copy for an htmx app on chirp.
//!
//! ```sh
//! cargo run --example tasks        # http://127.0.0.1:8000/, demo / demo
//! CHIRP_DB=tasks.db CHIRP_ADDR=0.0.0.0:8080 cargo run --example tasks
//! ```
//!
//! - Data: the SQLite file `CHIRP_DB` (default `chirp-tasks.db` in the temp dir), created on
//!   first run with the user `demo` / `demo` (an Argon2id hash); tasks survive a restart.
//!   Listens on `CHIRP_ADDR` (default 127.0.0.1:8000). Sessions are signed with
//!   `CHIRP_SECRET_KEY` (`openssl rand -hex 32`); without it, with a random key made at start
//!   (and a warning), so sessions end with the process.
//! - `GET /login`, `POST /login` (`username`, `password`, `_csrf_token`: `303` to `/`, or the
//!   form again, `401`, with an error), `POST /logout`.
//! - `GET /`: the page (`tasks.html`), or for htmx only its `list` block (a [`Page`]), with
//!   `Vary: HX-Request`. Anonymous: `303` to `/login`, or `HX-Redirect: /login` for htmx.
//! - `POST /tasks` (`title`, the CSRF token as `X-CSRF-Token` or `_csrf_token`): for htmx the
//!   new task plus the count and a fresh form out of band ([`OOB`]); otherwise `303` to `/`.
//!   An empty title or one over 200 characters: `422` with the form block and its error
//!   ([`ValidationError`]).
//! - `GET /events`: Server-Sent Events, `task-added` with the rendered task for each task
//!   anyone adds (htmx's SSE extension appends it to the list of every open page).
//!
//! - `GET /stats`: a [`Suspense`] page: the shell with a `Loading…` placeholder
//!   (`id="stats"`) at once, then the figures from a deliberately slow source
//!   (`CHIRP_STATS_DELAY_MS`, default 500) in the same response: a `<template>` and a
//!   `<script>` for a plain load, an `hx-swap-oob` element for htmx.
//!
//! `tests/tasks.rs` checks the behaviour over a socket; `browser-test/tests/tasks.rs` in
//! Chromium.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chirp::middleware::access_log::AccessLogMiddleware;
use chirp::middleware::auth::{get_user, login, logout, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
use chirp::middleware::csrf::{CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::{SecurityHeadersMiddleware, NONCE_CSP};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::security::{audit, secret_key_from_env};
use chirp::sessions::SessionConfig;
use chirp::sse::Sse;
use chirp::templates::minijinja::value::Serde;
use chirp::templates::{
    context, Fragment, Page, Suspense, Template, Templates, ValidationError, OOB,
};
use chirp::{App, ConfigurationError, Error, IntoResponse, Request, Response, State, StatusCode};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// The longest title accepted, in characters.
const MAX_TITLE: usize = 200;

/// The signed-in user.
#[derive(Clone, Serialize)]
pub struct User {
    id: i64,
    name: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.to_string()
    }
}

/// A task, as the templates show it.
#[derive(Clone, Debug, Serialize)]
pub struct Task {
    id: i64,
    title: String,
}

/// The database: one SQLite connection. rusqlite is blocking, so every use goes through
/// `spawn_blocking` ([`Db::run`]), never on the async workers.
#[derive(Clone)]
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    /// Opens (or creates) the database at `path`, and seeds the demo user on first run.
    fn open(path: &str) -> Result<Db, Error> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS users (
                 id INTEGER PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 password_hash TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS tasks (
                 id INTEGER PRIMARY KEY,
                 title TEXT NOT NULL,
                 user_id INTEGER NOT NULL REFERENCES users(id)
             );",
        )?;
        let seeded: bool =
            conn.query_row("SELECT EXISTS (SELECT 1 FROM users)", [], |row| row.get(0))?;
        if !seeded {
            conn.execute(
                "INSERT INTO users (name, password_hash) VALUES ('demo', ?1)",
                params![hash_password("demo")?],
            )?;
        }
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection in tokio's blocking pool; both failures (the task's and the
    /// query's) convert with `?` into a logged `500`.
    async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; SQLite's own transactions keep the
            // data consistent, so the next request goes on.
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await?;
        Ok(result?)
    }

    async fn tasks(&self) -> Result<Vec<Task>, Error> {
        self.run(|conn| {
            let mut query = conn.prepare("SELECT id, title FROM tasks ORDER BY id")?;
            let rows = query.query_map([], |row| {
                Ok(Task {
                    id: row.get(0)?,
                    title: row.get(1)?,
                })
            })?;
            rows.collect()
        })
        .await
    }
}

/// An Argon2id hash (PHC string, with a fresh salt) of `password`.
fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| chirp::ConfigurationError::new(format!("hashing a password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `hash` (a PHC string); a malformed hash matches nothing.
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A task just added, for the pages listening on `/events`; `page` is the page that added it
/// (its `X-Page-Id`), which has the task already from its own answer.
#[derive(Clone, Debug)]
struct Added {
    task: Task,
    page: Option<String>,
}

/// New tasks, to every `/events` stream. A bounded channel: a stream that falls more than
/// its capacity behind skips what it missed (its page shows those tasks on its next load)
/// rather than holding memory for it.
struct Events(broadcast::Sender<Added>);

/// The signed-in user, or the answer that sends the client to log in: `303` to `/login`, or
/// for htmx `HX-Redirect: /login` (a `303` would be followed by htmx's XHR, and the login
/// page swapped in as a fragment).
fn signed_in(req: &Request) -> Result<Result<User, Response>, Error> {
    Ok(get_user::<User>()?.ok_or_else(|| req.htmx().redirect("/login")))
}

async fn login_form(_req: Request) -> Result<Response, Error> {
    if get_user::<User>()?.is_some() {
        return Ok(Response::see_other("/"));
    }
    Ok(Template::new("login.html", context! {}).into_response())
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn do_login(req: Request, db: State<Db>) -> Result<Response, Error> {
    let form: LoginForm = req.form()?;
    let name = form.username.clone();
    let found = db
        .run(move |conn| {
            conn.query_row(
                "SELECT id, password_hash FROM users WHERE name = ?1",
                params![name],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()
        })
        .await?;
    // An unknown name costs a hash check too, so that timing does not tell which names exist.
    static NOBODY: OnceLock<String> = OnceLock::new();
    let (id, hash) = match found {
        Some(found) => (Some(found.0), found.1),
        None => (
            None,
            NOBODY
                .get_or_init(|| hash_password("no such user").unwrap_or_default())
                .clone(),
        ),
    };
    let password = form.password;
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash)).await?;
    match (id, ok) {
        (Some(id), true) => {
            login(&User {
                id,
                name: form.username,
            })?;
            Ok(Response::see_other("/"))
        }
        _ => {
            audit::emit("auth.login.failure", &req, Some(&form.username));
            let page = Template::new(
                "login.html",
                context! { error => "Wrong user name or password.", username => form.username },
            );
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
    }
}

async fn do_logout(_req: Request) -> Result<Response, Error> {
    logout()?;
    Ok(Response::see_other("/login"))
}

/// An id for one load of the page: its SSE stream skips the tasks this page added itself.
fn page_id() -> String {
    chirp::security::random_secret_key()[..16].to_owned()
}

async fn home(req: Request, db: State<Db>) -> Result<Response, Error> {
    if let Err(to_login) = signed_in(&req)? {
        return Ok(to_login);
    }
    let tasks = db.tasks().await?;
    // The whole page; for htmx (not a history restore) the `list` block alone.
    let page = Page::new(
        "tasks.html",
        "list",
        context! { count => tasks.len(), tasks => Serde(&tasks), page => page_id() },
    );
    Ok(page.into_response())
}

#[derive(Deserialize)]
struct NewTask {
    #[serde(default)]
    title: String,
}

/// Why `title` is refused, if it is.
fn invalid_title(title: &str) -> Option<String> {
    if title.is_empty() {
        Some("A task needs a title.".to_owned())
    } else if title.chars().count() > MAX_TITLE {
        Some(format!("A title has at most {MAX_TITLE} characters."))
    } else {
        None
    }
}

async fn add_task(req: Request, db: State<Db>, events: State<Events>) -> Result<Response, Error> {
    let user = match signed_in(&req)? {
        Ok(user) => user,
        Err(to_login) => return Ok(to_login),
    };
    let form: NewTask = req.form()?;
    let title = form.title.trim().to_owned();
    if let Some(error) = invalid_title(&title) {
        // The form again, with what was typed and why it was refused, into the form itself
        // (the request's target is the list).
        let form = ValidationError::new(
            "tasks.html",
            "form",
            context! { error, title => form.title },
        )
        .retarget("#task-form");
        return Ok(form.into_response().with_header("hx-reswap", "outerHTML"));
    }
    let (task, count) = db
        .run(move |conn| {
            conn.execute(
                "INSERT INTO tasks (title, user_id) VALUES (?1, ?2)",
                params![title, user.id],
            )?;
            let task = Task {
                id: conn.last_insert_rowid(),
                title,
            };
            let count: i64 = conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))?;
            Ok((task, count))
        })
        .await?;
    let page = req
        .header("x-page-id")
        .filter(|id| id.len() <= 64)
        .map(str::to_owned);
    // No listener is no error.
    let _ = events.0.send(Added {
        task: task.clone(),
        page,
    });
    if !req.htmx().is_partial() {
        return Ok(Response::see_other("/"));
    }
    // The task, appended to the list (the form's `hx-target`), and out of band the count and
    // an empty form.
    let answer = OOB::new(Fragment::new(
        "task.html",
        "task",
        context! { task => Serde(&task) },
    ))
    .with(Fragment::new("tasks.html", "count", context! { count }).target("task-count"))
    .with(Fragment::new("tasks.html", "form", context! {}).target("task-form"));
    Ok(answer.into_response())
}

#[derive(Deserialize)]
struct EventsQuery {
    page: Option<String>,
}

/// How long the stats source takes (`CHIRP_STATS_DELAY_MS`): a stand-in for a slow query or
/// service, so that the page shows Suspense at work.
#[derive(Clone, Copy)]
pub struct StatsDelay(pub Duration);

/// The figures of `GET /stats`.
#[derive(Serialize)]
struct Stats {
    total: i64,
    newest: Option<String>,
}

async fn stats(req: Request, db: State<Db>, delay: State<StatsDelay>) -> Result<Response, Error> {
    if let Err(to_login) = signed_in(&req)? {
        return Ok(to_login);
    }
    let delay = delay.0;
    // The shell goes out at once with `stats` undefined (the placeholder); the block that
    // uses it is streamed into the same response when this resolves.
    let figures = async move {
        tokio::time::sleep(delay).await;
        db.run(|conn| {
            let total = conn.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get(0))?;
            let newest = conn
                .query_row(
                    "SELECT title FROM tasks ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(Stats { total, newest })
        })
        .await
    };
    Ok(Suspense::new("stats.html", context! {})
        .try_defer("stats", figures)
        .into_response())
}

async fn events(
    req: Request,
    events: State<Events>,
    templates: State<Templates>,
) -> Result<Response, Error> {
    if let Err(to_login) = signed_in(&req)? {
        return Ok(to_login);
    }
    let me = req.query_as::<EventsQuery>()?.page;
    let receiver = events.0.subscribe();
    let templates = Templates::clone(&templates);
    let stream = futures_util::stream::unfold(receiver, move |mut receiver| {
        let me = me.clone();
        let templates = templates.clone();
        async move {
            loop {
                let added = match receiver.recv().await {
                    Ok(added) => added,
                    // Fell behind: what it missed is skipped (see `Events`).
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                if me.is_some() && added.page == me {
                    continue;
                }
                // Rendered here, inside the request's scopes; `event: task-added`.
                let item =
                    Fragment::new("task.html", "task", context! { task => Serde(&added.task) })
                        .target("task-added");
                match templates.event(item) {
                    Ok(event) => return Some((event, receiver)),
                    Err(e) => tracing::error!(error = %e, "rendering a task for /events"),
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(Duration::from_secs(15))
        .into_response())
}

/// The app on the database at `db_path`, with the templates and static files of `dir`
/// (this folder): what `main` serves, and the tests.
pub fn app_in(db_path: &str, dir: &Path) -> Result<App, Error> {
    // Never a secret written here: anyone who reads it could sign a cookie naming any user.
    let secret = secret_key_from_env("CHIRP_SECRET_KEY")?;
    let db = Db::open(db_path)?;
    let templates = Templates::from_dir(dir.join("templates"))?.user::<User>();
    let (sender, _) = broadcast::channel(64);

    let mut app = App::new();
    app.state(db.clone());
    app.state(Events(sender));
    let delay_ms = std::env::var("CHIRP_STATS_DELAY_MS")
        .ok()
        .map(|ms| {
            ms.parse::<u64>().map_err(|_| {
                ConfigurationError::new(format!(
                    "CHIRP_STATS_DELAY_MS={ms:?} is not a number of milliseconds"
                ))
            })
        })
        .transpose()?
        .unwrap_or(500);
    app.state(StatsDelay(Duration::from_millis(delay_ms)));
    app.templates(templates);
    // Outermost first: the log sees every request, refusals included; the headers go on
    // every response; login attempts are counted before any session work.
    app.add_middleware(AccessLogMiddleware::new());
    app.add_middleware(
        StaticFilesMiddleware::new("/static", dir.join("static"))?
            .cache_control("public, max-age=86400"),
    );
    // Scripts and styles from this origin or with the request's nonce; htmx needs no more
    // (no `hx-on`, no `js:` values: no 'unsafe-eval').
    app.add_middleware(
        SecurityHeadersMiddleware::new()
            .content_security_policy(&format!("{NONCE_CSP}; form-action 'self'"))?,
    );
    // 30 attempts a minute per address and per account: room for a demo, none for guessing.
    app.add_middleware(
        AuthRateLimitMiddleware::new()
            .limit(30, Duration::from_secs(60))
            .per_username("username"),
    );
    // A session unused for 30 minutes ends. The cookie is sent when the session changes, and
    // otherwise at most every 7.5 minutes (a quarter of that), to slide it.
    app.add_middleware(SessionMiddleware::new(SessionConfig {
        idle_timeout: Some(Duration::from_secs(30 * 60)),
        ..SessionConfig::new(secret)
    })?);
    app.add_middleware(AuthMiddleware::new(AuthConfig::new().load_user(
        |id: String, db: State<Db>| async move {
            let Ok(id) = id.parse::<i64>() else {
                return Ok(None);
            };
            db.run(move |conn| {
                conn.query_row(
                    "SELECT id, name FROM users WHERE id = ?1",
                    params![id],
                    |row| {
                        Ok(User {
                            id: row.get(0)?,
                            name: row.get(1)?,
                        })
                    },
                )
                .optional()
            })
            .await
        },
    ))?);
    // After sessions: every POST needs the token (htmx sends it from `hx-headers`), and an
    // htmx request whose session expired is sent to the login page.
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
    app.get("/login", login_form);
    app.post("/login", do_login);
    app.post("/logout", do_logout);
    app.get("/", home);
    app.post("/tasks", add_task);
    app.get("/events", events);
    app.get("/stats", stats);
    Ok(app)
}

/// The app on the database at `db_path`, with this folder's templates and static files.
pub fn app(db_path: &str) -> Result<App, Error> {
    app_in(db_path, &example_dir())
}

/// This example's folder (templates, static files).
pub fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tasks")
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // The access log, warnings and security events, to stdout; RUST_LOG picks the level
    // (default info).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let db = std::env::var("CHIRP_DB").unwrap_or_else(|_| {
        std::env::temp_dir()
            .join("chirp-tasks.db")
            .to_string_lossy()
            .into_owned()
    });
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    eprintln!("tasks on http://{addr}/ (demo / demo), data in {db}");
    app(&db)?.run(addr).await
}
