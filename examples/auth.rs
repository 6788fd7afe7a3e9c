//! Sessions + authentication: a login form, a guarded page, logout.
//!
//! ```text
//! cargo run --example auth          # then open http://127.0.0.1:8000/
//! ```
//! Users: alice / wonderland, bob / builder (in memory, for the demo: app state that the login
//! handler and the user loader take as `State<Users>`, as they would a database pool).
//!
//! Sessions are signed with `CHIRP_SECRET_KEY` (`openssl rand -hex 32`); without it, with a
//! random secret made at start (and a warning). Every form carries a CSRF token, the login
//! form included (login CSRF: a forged form must not sign the browser in as someone else),
//! and after logging in the browser goes to `?next=` only when it is a path on this site
//! (`chirp::security::safe_redirect`). Listens on `CHIRP_ADDR`; logs to stdout (`RUST_LOG`).

use chirp::middleware::auth::{
    current_user, login, login_required, logout, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::csrf::{csrf_field, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::{safe_redirect, secret_key_from_env};
use chirp::sessions::SessionConfig;
use chirp::{App, Error, HttpError, Request, Response, State};

#[derive(Clone)]
struct User {
    id: u32,
    name: &'static str,
    password: &'static str,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.to_string()
    }
}

/// The user table; a real app keeps a database pool here.
struct Users(Vec<User>);

impl Users {
    fn by_id(&self, id: &str) -> Option<User> {
        self.0.iter().find(|u| u.id.to_string() == id).cloned()
    }
}

const USERS: [User; 2] = [
    User {
        id: 1,
        name: "alice",
        password: "wonderland",
    },
    User {
        id: 2,
        name: "bob",
        password: "builder",
    },
];

async fn login_form(req: Request) -> Result<Response, Error> {
    // The `?next=` goes on with the form, encoded for a query and escaped for HTML; where it
    // leads is checked when it is used.
    let action = match req.query_param("next") {
        Some(next) => format!("/login?next={}", query_escape(&next)),
        None => "/login".to_owned(),
    };
    Ok(Response::html(format!(
        r#"<form method="post" action="{}">{}
<input name="name" placeholder="name"> <input name="password" type="password" placeholder="password">
<button>Log in</button></form>"#,
        html_escape(&action),
        csrf_field()?
    )))
}

async fn do_login(req: Request, users: State<Users>) -> Result<Response, Error> {
    let form = req.form_pairs()?;
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let user = users
        .0
        .iter()
        .find(|u| u.name == field("name") && u.password == field("password"))
        .ok_or_else(|| HttpError::unauthorized("wrong name or password"))?;
    login(user)?;
    // Only to a path on this site, else home: `//host`, `/\host`, `/\t/host` (browsers drop
    // the tab) and `https://host` are other sites. 303: the browser follows with a GET.
    Ok(safe_redirect(req.query_param("next").as_deref(), "/"))
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

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The app, as `main` serves it and `tests/security_examples.rs` tests it.
pub fn app() -> Result<App, Error> {
    let mut app = App::new();
    // Never a secret written here: anyone who reads it could sign a cookie naming any user.
    let secret = secret_key_from_env("CHIRP_SECRET_KEY")?;
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(secret))?);
    // The app checks at build that `Users` is registered for the loader and `do_login`.
    app.state(Users(USERS.to_vec()));
    app.add_middleware(AuthMiddleware::new(AuthConfig::new().load_user(
        |id: String, users: State<Users>| async move { users.by_id(&id) },
    ))?);
    // After sessions (the build checks it): every POST, the login's included, needs the token.
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
    app.route("/", |_req: Request| async {
        Response::html(r#"<a href="/private">private page</a>"#)
    });
    app.route("/login", login_form);
    app.post("/login", do_login);
    app.post("/logout", |_req: Request| async {
        logout()?;
        Ok::<_, Error>(Response::see_other("/"))
    });
    app.route(
        "/private",
        login_required(|_req: Request| async {
            let user = current_user::<User>()?;
            Ok::<_, Error>(Response::html(format!(
                r#"Hello {}! <form method="post" action="/logout">{}<button>Log out</button></form>"#,
                html_escape(user.name),
                csrf_field()?
            )))
        }),
    );
    Ok(app)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // Warnings (a random secret, say) and security events, to stdout; RUST_LOG picks the
    // level (default info).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let app = app()?;
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp auth example on http://{addr}/");
    app.run(addr).await
}
