//! A small notes app: a login form, an HTML page, a JSON API, notes kept in app state, and
//! the security middleware a real app runs (access log, security headers with a CSP nonce,
//! a login rate limit, sessions, auth, CSRF on every form and on the API, flash messages).
//! The example to copy when starting an app on chirp.
//!
//! ```sh
//! cargo run --example notes        # http://127.0.0.1:8000/login, demo / demo
//! RUST_LOG=debug cargo run --example notes
//! ```
//!
//! Listens on `CHIRP_ADDR` (default 127.0.0.1:8000). The account is `NOTES_USER` /
//! `NOTES_PASSWORD` (default `demo` / `demo`). Sessions are signed with `CHIRP_SECRET_KEY`
//! (`openssl rand -hex 32`, the same for every instance); without it, with a random secret
//! made at start (and a warning): sessions then end when the process does. The access log,
//! warnings and security events go to stdout (`RUST_LOG`, default `info`). After logging in,
//! the browser goes to `?next=` when it is a path on this site (`safe_redirect`), else to
//! `/notes`. API clients fetch a CSRF token from `GET /api/csrf` and send it as
//! `X-CSRF-Token`.
//!
//! Errors: everything under `/api` is the JSON API (`App::api_prefix`), where every error
//! (401, 403, 404, 405, 413, 415, 422, 500) is `application/problem+json` whatever the
//! client's `Accept`; elsewhere an error is an HTML page (`error_page`), unless the client
//! asked for JSON. `tests/notes.rs` drives it through `TestClient`, and
//! `tests/api_errors.rs` over a socket.

use std::sync::Mutex;

use chirp::middleware::access_log::AccessLogMiddleware;
use chirp::middleware::auth::{current_user, login, login_required, logout, AuthConfig};
use chirp::middleware::auth::{AuthMiddleware, AuthUser};
use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
use chirp::middleware::csrf::{csrf_field, get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::{csp_nonce, SecurityHeadersMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::{audit, safe_redirect, secret_key_from_env};
use chirp::sessions::flash::{flash_with, take_flashes};
use chirp::sessions::SessionConfig;
use chirp::{
    App, ConfigurationError, Error, HttpError, Method, Problem, Request, Response, StatusCode,
};
use serde::{Deserialize, Serialize};

/// The signed-in user: the one account, by name.
#[derive(Clone)]
pub struct User {
    name: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.name.clone()
    }
}

/// The account's credentials, from the environment.
struct Account {
    name: String,
    password: String,
}

#[derive(Clone, Serialize)]
pub struct Note {
    id: u64,
    text: String,
}

/// The notes, shared by every request (app state).
#[derive(Default)]
struct Notes {
    list: Mutex<(u64, Vec<Note>)>, // (last id, notes)
}

impl Notes {
    fn add(&self, text: String) -> Note {
        let mut guard = self.list.lock().unwrap_or_else(|e| e.into_inner());
        guard.0 += 1;
        let note = Note { id: guard.0, text };
        guard.1.push(note.clone());
        note
    }

    fn all(&self) -> Vec<Note> {
        self.list
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    fn remove(&self, id: u64) -> bool {
        let mut guard = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let before = guard.1.len();
        guard.1.retain(|n| n.id != id);
        guard.1.len() != before
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters, for a query value.
fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A page: the flash messages waiting (shown once, then gone), and a style allowed by the
/// request's CSP nonce.
fn page(title: &str, body: &str) -> Result<Response, Error> {
    let flashes: String = take_flashes()?
        .iter()
        .map(|f| {
            format!(
                "<p role=alert class={}>{}</p>",
                escape(&f.category),
                escape(&f.message)
            )
        })
        .collect();
    let nonce = csp_nonce()?;
    Ok(Response::html(format!(
        "<!doctype html><meta charset=utf-8><title>{title}</title>\
         <style nonce=\"{nonce}\">body{{font-family:sans-serif;max-width:40rem;margin:2rem auto}}</style>\
         <h1>{title}</h1>{flashes}{body}"
    )))
}

/// `/login`, with the `?next=` it was given (the login redirect of `login_required` adds it):
/// encoded for a query, escaped for HTML. Where it leads is checked when it is used.
fn login_action(req: &Request) -> String {
    match req.query_param("next") {
        Some(next) => escape(&format!("/login?next={}", query_escape(&next))),
        None => "/login".to_owned(),
    }
}

async fn login_form(req: Request) -> Result<Response, Error> {
    let csrf = csrf_field()?;
    let action = login_action(&req);
    page(
        "Log in",
        &format!(
            r#"<form method=post action="{action}">{csrf}
<label>User <input name=username></label> <label>Password <input name=password type=password></label>
<button>Log in</button></form>"#
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn do_login(req: Request) -> Result<Response, Error> {
    let form: LoginForm = req.form()?;
    let account = req.state::<Account>()?;
    if form.username != account.name || form.password != account.password {
        audit::emit("auth.login.failure", &req, Some(&form.username));
        flash_with("error", "Wrong user name or password.")?;
        return Ok(Response::see_other("/login"));
    }
    login(&User {
        name: form.username,
    })?;
    // Only to a path on this site: `?next=//evil.example` is another site's page.
    Ok(safe_redirect(req.query_param("next").as_deref(), "/notes"))
}

async fn notes_page(req: Request) -> Result<Response, Error> {
    let user = current_user::<User>()?;
    let items: String = req
        .state::<Notes>()?
        .all()
        .iter()
        .map(|n| format!("<li>{}</li>", escape(&n.text)))
        .collect();
    let csrf = csrf_field()?;
    page(
        "Notes",
        &format!(
            r#"<p>Signed in as {}. <form method=post action=/logout>{csrf}<button>Log out</button></form>
<ul>{items}</ul><form method=post action=/notes>{csrf}<input name=text><button>Add</button></form>"#,
            escape(&user.name)
        ),
    )
}

#[derive(Deserialize)]
struct NewNote {
    text: String,
}

async fn add_note_form(req: Request) -> Result<Response, Error> {
    let note: NewNote = req.form()?;
    if note.text.trim().is_empty() {
        flash_with("error", "A note needs some text.")?;
    } else {
        req.state::<Notes>()?.add(note.text);
        flash_with("success", "Note added.")?;
    }
    Ok(Response::see_other("/notes"))
}

async fn api_list(req: Request) -> Result<Response, Error> {
    Ok(Response::json(&req.state::<Notes>()?.all()))
}

async fn api_add(req: Request) -> Result<Response, Error> {
    let note: NewNote = req.json()?;
    if note.text.trim().is_empty() {
        // The field, as `req.json()` names it when the body does not fit: clients read
        // the problem's `errors` member the same way for both.
        return Err(HttpError::unprocessable("the note is not valid")
            .with_field_error("text", "must not be empty")
            .into());
    }
    let note = req.state::<Notes>()?.add(note.text);
    Ok(Response::json(&note).with_status(StatusCode::CREATED))
}

async fn api_delete(req: Request) -> Result<Response, Error> {
    let id: u64 = req.param_as("id")?;
    if !req.state::<Notes>()?.remove(id) {
        return Err(HttpError::not_found(format!("no note {id}")).into());
    }
    Ok(Response::empty(StatusCode::NO_CONTENT))
}

/// The page of an error outside the API (the API's errors are problem+json). It runs after
/// the middleware, outside their scopes (no flash messages, no CSP nonce: no inline style),
/// and shows only what is safe: the status, and the detail chirp made for the client.
fn error_page(problem: &Problem) -> Response {
    let what = match (problem.status(), problem.path()) {
        (StatusCode::NOT_FOUND, Some(path)) => format!("Nothing at {}.", escape(path)),
        _ => escape(problem.detail()),
    };
    Response::html(format!(
        "<!doctype html><meta charset=utf-8><title>{status} {title}</title>\
         <h1>{title}</h1><p>{what}</p><p><a href=/notes>Your notes</a></p>",
        status = problem.status().as_u16(),
        title = problem.title(),
    ))
    .with_status(problem.status())
}

/// The app, as `main` serves it and `tests/notes.rs` tests it.
pub fn app() -> Result<App, Error> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let account = Account {
        name: env("NOTES_USER", "demo"),
        password: env("NOTES_PASSWORD", "demo"),
    };
    if std::env::var_os("NOTES_SECRET").is_some() {
        return Err(ConfigurationError::new(
            "NOTES_SECRET is now CHIRP_SECRET_KEY, as in the other examples: rename it",
        )
        .into());
    }
    // Never a secret written here: anyone who reads it could sign a cookie naming any user.
    let secret = secret_key_from_env("CHIRP_SECRET_KEY")?;
    let user_name = account.name.clone();

    let mut app = App::new();
    // The JSON API: errors there are problem+json for every client, and the auth middleware
    // answers 401 there rather than redirecting to the login page.
    app.api_prefix("/api");
    app.error_handler(|problem| match problem.prefers_json() {
        true => problem.default_response(),
        false => error_page(problem),
    });
    app.state(account);
    app.state(Notes::default());
    // Outermost first: the log sees every request, refusals included; the headers go on
    // every response; login attempts are counted before any session work.
    app.add_middleware(AccessLogMiddleware::new());
    app.add_middleware(SecurityHeadersMiddleware::new().content_security_policy(
        "default-src 'self'; style-src 'nonce-{nonce}'; frame-ancestors 'none'; form-action 'self'",
    )?);
    app.add_middleware(AuthRateLimitMiddleware::new().per_username("username"));
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(secret))?);
    app.add_middleware(AuthMiddleware::new(
        AuthConfig::new().load_user(move |id: String| {
            let user = (id == user_name).then_some(User { name: id });
            async move { user }
        }), // its API prefix: the app's
    )?);
    // After sessions (the build checks it): every form and every API write needs the token.
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
    app.route("/", |_req: Request| async { Response::see_other("/notes") });
    app.get("/login", login_form);
    app.post("/login", do_login);
    app.post("/logout", |_req: Request| async {
        logout()?;
        Ok::<_, Error>(Response::see_other("/login"))
    });
    app.get("/notes", login_required(notes_page));
    app.post("/notes", login_required(add_note_form));
    app.get("/api/csrf", |_req: Request| async {
        Ok::<_, Error>(Response::json(
            &serde_json::json!({ "token": get_csrf_token()? }),
        ))
    });
    app.get("/api/notes", login_required(api_list));
    app.post("/api/notes", login_required(api_add));
    app.route_with(
        "/api/notes/{id:int}",
        &[Method::Delete],
        login_required(api_delete),
    );
    Ok(app)
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
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    eprintln!("notes on http://{addr}/login");
    app()?.run(addr).await
}
