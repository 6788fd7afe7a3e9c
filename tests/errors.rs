//! Errors (issue 20, items 1 and 2): `?` on any error in handlers and middleware, a failure
//! logged once with its chain and its request; errors that know their request (the API
//! prefix, the error handler's view, the server's refusals rendered like the rest), extension
//! members, field errors, and form booleans.

mod common;

use std::sync::{Arc, Mutex};

use chirp::middleware::access_log::AccessLogMiddleware;
use chirp::middleware::auth::{login_required, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::{from_fn, Next};
use chirp::sessions::SessionConfig;
use chirp::testing::TestClient;
use chirp::{App, Error, HttpError, Method, Problem, Request, Response, ServerConfig, StatusCode};
use common::{CapturedLog, TestServer};
use serde::Deserialize;
use serde_json::{json, Value};

/// One subscriber for the whole test binary, set once (a thread-local default races with the
/// other tests over `tracing`'s per-callsite interest cache). Each test looks for its own
/// markers in it.
fn log() -> CapturedLog {
    static OUT: std::sync::OnceLock<CapturedLog> = std::sync::OnceLock::new();
    OUT.get_or_init(|| {
        let out = CapturedLog::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        out
    })
    .clone()
}

/// An error of another crate's kind, with a source: what sqlx or minijinja return.
#[derive(Debug)]
struct StoreError {
    what: &'static str,
    source: std::io::Error,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "reading {}", self.what)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

fn load(what: &'static str) -> Result<String, StoreError> {
    Err(StoreError {
        what,
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"),
    })
}

/// The lines of the log that contain `marker`.
fn lines_with(log: &CapturedLog, marker: &str) -> Vec<String> {
    log.text()
        .lines()
        .filter(|l| l.contains(marker))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_foreign_error_is_a_500_logged_once_with_its_chain_and_its_request() {
    let log = log();
    let mut app = App::new();
    app.add_middleware(AccessLogMiddleware::new());
    app.post("/notes/{id}", |_req: Request| async {
        let note = load("notes-7f3a.db")?; // `?` on another crate's error
        Ok::<_, Error>(note)
    });
    let client = TestClient::new(app);
    let res = client.post("/notes/7", "x").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        res.text(),
        "Internal Server Error",
        "no detail for the client"
    );
    let request_id = res.header("x-request-id").unwrap().to_owned();

    let lines = lines_with(&log, "notes-7f3a.db");
    assert_eq!(lines.len(), 1, "logged once: {lines:#?}");
    let line = &lines[0];
    assert!(line.contains("ERROR"), "{line}");
    assert!(
        line.contains("reading notes-7f3a.db: permission denied"),
        "the whole chain: {line}"
    );
    assert!(line.contains("method=\"POST\""), "{line}");
    assert!(line.contains("path=\"/notes/7\""), "{line}");
    assert!(line.contains(&request_id), "the request id: {line}");

    // A JSON client gets the same 500, as a problem, still without the detail.
    let res = client
        .request(Method::Post, "/notes/8")
        .header("accept", "application/json")
        .send()
        .await;
    let problem: Value = res.json();
    assert_eq!(problem["detail"], "Internal Server Error");
    assert!(!res.text().contains("notes-7f3a"));
}

#[tokio::test]
async fn middleware_use_question_mark_too() {
    let log = log();
    let mut app = App::new();
    app.add_middleware(from_fn(|req: Request, next: Next| async move {
        let quota: u32 = req.header("x-quota").unwrap_or("10").parse()?;
        if quota == 0 {
            return Err(HttpError::new(StatusCode::TOO_MANY_REQUESTS, "no quota left").into());
        }
        Ok::<Response, Error>(next.run(req).await)
    }));
    app.route("/", |_req: Request| async { "ok" });
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.text(), "ok");
    let res = client
        .request(Method::Get, "/")
        .header("x-quota", "0")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.text(), "no quota left");
    let res = client
        .request(Method::Get, "/")
        .header("x-quota", "lots-9c1e")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        lines_with(&log, "invalid digit found in string")
            .iter()
            .filter(|l| l.contains("path=\"/\""))
            .count(),
        1
    );
}

#[tokio::test]
async fn a_failure_a_middleware_drops_is_still_logged() {
    let log = log();
    let mut app = App::new();
    // Replaces every 500 with a page of its own: the failure never reaches the rendering.
    app.add_middleware(from_fn(|req: Request, next: Next| async move {
        let res = next.run(req).await;
        if res.status() == StatusCode::INTERNAL_SERVER_ERROR {
            return Response::text("sorry").with_status(StatusCode::SERVICE_UNAVAILABLE);
        }
        res
    }));
    app.route("/", |_req: Request| async {
        load("dropped-51d2.db")?;
        Ok::<_, Error>("unreachable")
    });
    let res = TestClient::new(app).get("/").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let lines = lines_with(&log, "dropped-51d2.db");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("dropped"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn errors_under_the_api_prefix_are_problem_json_whatever_the_accept() {
    let mut app = App::new();
    app.api_prefix("/api/");
    app.get("/api/items/{id:int}", |req: Request| async move {
        let id: u64 = req.param_as("id")?;
        Err::<String, _>(HttpError::not_found(format!("no item {id}")))
    });
    let client = TestClient::new(app);
    for accept in [None, Some("*/*"), Some("text/html")] {
        for (path, status) in [
            ("/api/items/7", 404),
            ("/api/items/x", 404),
            ("/api", 404),
            ("//api/./nothing", 404),
        ] {
            let mut req = Request::new(Method::Get, path);
            if let Some(accept) = accept {
                req = req.with_header("Accept", accept);
            }
            let res = client.send(req).await;
            assert_eq!(res.status().as_u16(), status, "{path} {accept:?}");
            assert_eq!(
                res.header("content-type"),
                Some("application/problem+json"),
                "{path} {accept:?}"
            );
        }
        let res = client
            .request(Method::Post, "/api/items/7")
            .header("accept", accept.unwrap_or("*/*"))
            .send()
            .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
        assert!(
            res.header("allow").is_some(),
            "the error's headers are kept"
        );
    }
    // Outside the prefix (`/apis` is not under `/api`), negotiation as before.
    for path in ["/apis", "/nothing"] {
        let res = client.get(path).await;
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
    }
}

#[tokio::test]
async fn the_error_handler_sees_the_request() {
    /// What the handler saw: method, path, the `X-Tag` header, and whether it is the API.
    type Seen = (Option<Method>, Option<String>, Option<String>, bool);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let mut app = App::new();
    app.api_prefix("/api");
    let kept = seen.clone();
    app.error_handler(move |problem: &Problem| {
        kept.lock().unwrap().push((
            problem.method(),
            problem.path().map(str::to_owned),
            problem.header("x-tag").map(str::to_owned),
            problem.is_api(),
        ));
        problem
            .clone()
            .with_extension("path", problem.path().unwrap_or("?"))
            .default_response()
    });
    app.post("/upload", |_req: Request| async { "stored" });
    let client = TestClient::new(app);
    let res = client
        .request(Method::Delete, "/api/things")
        .header("x-tag", "t-1")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let problem: Value = res.json();
    assert_eq!(problem["path"], "/api/things");
    assert_eq!(
        seen.lock().unwrap().pop(),
        Some((
            Some(Method::Delete),
            Some("/api/things".into()),
            Some("t-1".into()),
            true
        ))
    );
}

/// The paths and statuses an error handler saw.
type Refusals = Arc<Mutex<Vec<(Option<String>, u16)>>>;

/// An app whose error handler records what it sees, on a server with a small body limit.
async fn refusing_server() -> (TestServer, Refusals) {
    let seen: Refusals = Arc::default();
    let kept = seen.clone();
    let mut app = App::new();
    app.api_prefix("/api");
    app.error_handler(move |problem: &Problem| {
        kept.lock()
            .unwrap()
            .push((problem.path().map(str::to_owned), problem.status().as_u16()));
        problem.default_response()
    });
    app.post("/api/upload", |_req: Request| async { "stored" });
    app.post("/upload", |_req: Request| async { "stored" });
    let config = ServerConfig {
        max_body_size: 1024,
        ..ServerConfig::default()
    };
    (TestServer::start_with(app, config).await, seen)
}

#[tokio::test]
async fn the_servers_refusals_are_rendered_for_their_path_and_accept() {
    let (server, seen) = refusing_server().await;
    let too_large = |path: &str, accept: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: t\r\n{accept}Content-Length: 5000\r\n\r\n")
    };
    // A JSON client outside the API: problem+json, with RFC 9110's title.
    let res = common::refused(
        &server,
        too_large("/upload", "Accept: application/json\r\n").as_bytes(),
        413,
    )
    .await;
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let problem: Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(problem["title"], "Content Too Large");
    assert_eq!(problem["status"], 413);
    // Under the API, whatever the Accept.
    for accept in ["", "Accept: */*\r\n", "Accept: text/html\r\n"] {
        let res = common::refused(&server, too_large("/api/upload", accept).as_bytes(), 413).await;
        assert_eq!(
            res.header("content-type"),
            Some("application/problem+json"),
            "{accept:?}"
        );
    }
    // A browser outside it: text, as before.
    let res = common::refused(&server, too_large("/upload", "").as_bytes(), 413).await;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // A chunked body that breaks its framing, under the API: a 400 problem.
    let raw = "POST /api/upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    let res = common::refused(&server, raw.as_bytes(), 400).await;
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    // A head that does not parse has no path: the handler is told so.
    let res = common::refused(
        &server,
        b"GET /api/x HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n",
        400,
    )
    .await;
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&(Some("/upload".into()), 413)), "{seen:?}");
    assert!(
        seen.contains(&(Some("/api/upload".into()), 400)),
        "{seen:?}"
    );
    assert_eq!(seen.last(), Some(&(None, 400)), "{seen:?}");
}

#[derive(Clone)]
struct User;

impl AuthUser for User {
    fn id(&self) -> String {
        "u".into()
    }
}

#[tokio::test]
async fn the_auth_middleware_uses_the_apps_api_prefix() {
    let mut app = App::new();
    app.api_prefix("/api");
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("errors-test-secret-0123456789abcdef")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(AuthConfig::<User>::new().load_user(|_id: String| async { None }))
            .unwrap(),
    );
    app.get("/api/me", login_required(|_req: Request| async { "me" }));
    app.get("/me", login_required(|_req: Request| async { "me" }));
    let client = TestClient::new(app);
    let browser = |path: &'static str| {
        client
            .request(Method::Get, path)
            .header("accept", "text/html")
            .send()
    };
    let res = browser("/api/me").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "not a redirect");
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(browser("/me").await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn extension_members_and_field_errors_reach_the_client() {
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Order {
        items: Vec<Item>,
    }
    #[derive(Deserialize)]
    #[allow(dead_code)]
    struct Item {
        name: String,
    }
    let mut app = App::new();
    app.api_prefix("/api");
    app.post("/api/orders", |req: Request| async move {
        let _order: Order = req.json()?;
        Ok::<_, Error>("ok")
    });
    app.post("/api/pay", |_req: Request| async {
        Err::<(), _>(
            HttpError::new(StatusCode::FORBIDDEN, "not enough credit")
                .with_extension("balance", 30)
                .with_extension("status", 200), // chirp's: not sent
        )
    });
    let client = TestClient::new(app);
    let res = client
        .post_json(
            "/api/orders",
            &json!({"items": [{"name": "a"}, {"name": 7}]}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_CONTENT);
    let problem: Value = res.json();
    assert_eq!(problem["title"], "Unprocessable Content");
    assert_eq!(problem["errors"][0]["field"], "items[1].name", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("items[1].name"),
        "{problem}"
    );
    let res = client
        .post_json("/api/orders", &json!({"items": [{}]}))
        .await;
    let problem: Value = res.json();
    assert_eq!(problem["errors"][0]["field"], "items[0].name", "{problem}");
    assert_eq!(
        problem["errors"][0]["message"], "missing field `name`",
        "{problem}"
    );
    let res = client.post("/api/pay", "").await;
    let problem: Value = res.json();
    assert_eq!(problem["balance"], 30);
    assert_eq!(problem["status"], 403);
    assert_eq!(problem["detail"], "not enough credit");
}

#[tokio::test]
async fn form_and_query_booleans_read_as_checkboxes() {
    #[derive(Deserialize)]
    struct Settings {
        #[serde(default)]
        newsletter: bool,
        #[serde(default)]
        public: bool,
    }
    let mut app = App::new();
    app.post("/settings", |req: Request| async move {
        let s: Settings = req.form()?;
        Ok::<_, Error>(format!("{} {}", s.newsletter, s.public))
    });
    app.get("/search", |req: Request| async move {
        let s: Settings = req.query_as()?;
        Ok::<_, Error>(format!("{} {}", s.newsletter, s.public))
    });
    let client = TestClient::new(app);
    for (on, off) in [("on", "off"), ("1", "0"), ("YES", "no"), ("True", "FALSE")] {
        let res = client
            .post_form("/settings", &[("newsletter", on), ("public", off)])
            .await;
        assert_eq!(res.text(), "true false", "{on} {off}");
        let res = client
            .get(&format!("/search?newsletter={on}&public={off}"))
            .await;
        assert_eq!(res.text(), "true false", "{on} {off}");
    }
    // An unchecked box sends nothing.
    assert_eq!(
        client.post_form("/settings", &[]).await.text(),
        "false false"
    );
    let res = client.post_form("/settings", &[("public", "maybe")]).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_CONTENT);
    let res = client
        .request(Method::Post, "/settings")
        .header("accept", "application/json")
        .form(&[("public", "maybe")])
        .send()
        .await;
    let problem: Value = res.json();
    assert_eq!(problem["errors"][0]["field"], "public", "{problem}");
    let res = client.get("/search?public=maybe").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}
