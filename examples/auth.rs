//! Sessions + authentication: a login form, a guarded page, logout.
//!
//! ```text
//! cargo run --example auth          # then open http://127.0.0.1:8000/
//! ```
//! Users: alice / wonderland, bob / builder (in memory, for the demo).

use chirp::middleware::auth::{
    current_user, login, login_required, logout, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::{App, Error, HttpError, Request, Response};

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

async fn login_form(req: Request) -> Response {
    let next = req.query_param("next").unwrap_or_else(|| "/".into());
    Response::html(format!(
        r#"<form method="post" action="/login?next={}">
<input name="name" placeholder="name"> <input name="password" type="password" placeholder="password">
<button>Log in</button></form>"#,
        html_escape(&next)
    ))
}

async fn do_login(req: Request) -> Result<Response, Error> {
    let form = req.form_pairs()?;
    let field = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let user = USERS
        .iter()
        .find(|u| u.name == field("name") && u.password == field("password"))
        .ok_or_else(|| HttpError::unauthorized("wrong name or password"))?;
    login(user)?;
    // Only local paths: never redirect to another site (`//host` and `/\host` are other
    // sites to a browser). 303: the browser follows the POST with a GET.
    let next = req
        .query_param("next")
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.starts_with("/\\"));
    Ok(Response::see_other(next.unwrap_or_else(|| "/".into())))
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
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(
        "change-me-to-a-long-random-secret!!",
    ))?);
    app.add_middleware(AuthMiddleware::new(AuthConfig::new().load_user(
        |id: String| async move { USERS.iter().find(|u| u.id.to_string() == id).cloned() },
    ))?);
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
                r#"Hello {}! <form method="post" action="/logout"><button>Log out</button></form>"#,
                user.name
            )))
        }),
    );
    Ok(app)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let app = app()?;
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp auth example on http://{addr}/");
    app.run(addr).await
}
