//! Auth that can fail (issue 20, item 4): a user loader that returns an error answers 503 with
//! `Retry-After` and logs the error at ERROR with its sources (never "signed out"); loaders and
//! async policies take app state, checked at build; an async policy allows, denies or fails;
//! and the anonymous-user value.

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chirp::middleware::auth::{
    get_user, login, login_required, requires_policy_async, user_or_anonymous, AuthConfig,
    AuthMiddleware, AuthUser, Principal,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::testing::TestClient;
use chirp::{App, Error, Method, Request, Response, State, StatusCode};
use common::CapturedLog;

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: String,
    name: String,
    signed_in: bool,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.clone()
    }
}

fn user(id: &str) -> User {
    User {
        id: id.into(),
        name: format!("user {id}"),
        signed_in: true,
    }
}

/// The app's user table, and a switch that makes it fail as a database that is down would.
struct Db {
    users: HashMap<String, User>,
    down: AtomicBool,
    /// Which user owns each note.
    owners: HashMap<u64, String>,
}

impl Db {
    fn new() -> Db {
        Db {
            users: [user("1"), user("2")]
                .into_iter()
                .map(|u| (u.id.clone(), u))
                .collect(),
            down: AtomicBool::new(false),
            owners: HashMap::from([(7, "1".to_owned()), (8, "2".to_owned())]),
        }
    }

    async fn find(&self, id: &str) -> Result<Option<User>, QueryFailed> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueryFailed(ConnectionRefused));
        }
        Ok(self.users.get(id).cloned())
    }

    async fn owner(&self, note: u64) -> Result<Option<String>, QueryFailed> {
        if self.down.load(Ordering::SeqCst) {
            return Err(QueryFailed(ConnectionRefused));
        }
        Ok(self.owners.get(&note).cloned())
    }
}

/// An error with a source, so that the log can be checked for the whole chain.
#[derive(Debug)]
struct QueryFailed(ConnectionRefused);
#[derive(Debug)]
struct ConnectionRefused;

impl fmt::Display for QueryFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("query failed")
    }
}
impl std::error::Error for QueryFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}
impl fmt::Display for ConnectionRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection refused by db.internal:5432")
    }
}
impl std::error::Error for ConnectionRefused {}

fn capture_errors() -> (CapturedLog, tracing::subscriber::DefaultGuard) {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (log, tracing::subscriber::set_default(subscriber))
}

/// Sessions, then auth with `config`, a login route (`/login/{id}`) and a guarded `/me`.
fn app_with(config: AuthConfig<User>) -> App {
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(SessionConfig::new("a-test-secret-key")).unwrap());
    app.add_middleware(AuthMiddleware::new(config).unwrap());
    app.post("/login/{id}", |req: Request| async move {
        login(&user(req.param("id").unwrap_or_default()))?;
        Ok::<_, Error>("in")
    });
    app.route(
        "/me",
        login_required(|_req: Request| async {
            let user = get_user::<User>()?.expect("signed in");
            Ok::<_, Error>(user.name)
        }),
    );
    app.route("/open", |_req: Request| async { "open" });
    app
}

fn db_loader() -> AuthConfig<User> {
    AuthConfig::new().load_user(|id: String, db: State<Db>| async move { db.find(&id).await })
}

#[tokio::test]
async fn a_loader_reads_app_state() {
    let mut app = app_with(db_loader());
    app.state(Db::new());
    let client = TestClient::new(app);
    client.post("/login/1", "").await;
    assert_eq!(client.get("/me").await.text(), "user 1");
    // A user the loader no longer finds is anonymous (Ok(None)), as before.
    client.post("/login/9", "").await;
    let res = client
        .request(Method::Get, "/me")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn a_loader_taking_an_unregistered_type_fails_the_build() {
    let err = app_with(db_loader()).build().err().expect("Db missing");
    let message = err.message();
    assert!(message.contains("AuthMiddleware"), "{message}");
    assert!(message.contains("Db"), "{message}");
    assert!(message.contains("App::state"), "{message}");
}

#[tokio::test]
async fn a_failing_loader_answers_503_with_retry_after_and_logs_the_chain_at_error() {
    let (log, _guard) = capture_errors();
    let mut app = app_with(db_loader());
    app.state(Db::new());
    app.route("/down", |_req: Request, db: State<Db>| async move {
        db.down.store(true, Ordering::SeqCst);
        "down"
    });
    let client = TestClient::new(app);
    client.post("/login/1", "").await;
    assert_eq!(client.get("/me").await.text(), "user 1");
    client.get("/down").await;

    for path in ["/me", "/open"] {
        let res = client
            .request(Method::Get, path)
            .header("accept", "text/html")
            .send()
            .await;
        // Not "signed out": no login redirect, no 401, no page as anonymous.
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(res.header("retry-after"), Some("5"), "{path}");
        assert!(!res.text().contains("refused"), "no detail for the client");
    }
    let text = log.text();
    assert!(text.contains("ERROR"), "{text}");
    assert!(text.contains("AuthConfig::load_user failed"), "{text}");
    assert!(
        text.contains("query failed: connection refused by db.internal:5432"),
        "the source chain is logged: {text}"
    );
}

#[tokio::test]
async fn the_retry_after_is_a_setting_and_the_session_survives_the_outage() {
    struct Switch(AtomicBool);
    let config = AuthConfig::new()
        .retry_after(Duration::from_millis(29_500))
        .load_user(|id: String, down: State<Switch>| async move {
            if down.0.load(Ordering::SeqCst) {
                return Err(QueryFailed(ConnectionRefused));
            }
            Ok(Some(user(&id)))
        });
    let mut app = app_with(config);
    app.state(Switch(AtomicBool::new(false)));
    app.route("/flip", |_req: Request, down: State<Switch>| async move {
        down.0.fetch_xor(true, Ordering::SeqCst);
        "flipped"
    });
    let client = TestClient::new(app);
    client.post("/login/2", "").await;
    client.get("/flip").await;
    let res = client.get("/me").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.header("retry-after"),
        Some("30"),
        "whole seconds, rounded up"
    );
    // `/flip` is behind the failing loader too, so flip it back from outside the outage:
    // a session-less request loads no user (and needs no database).
    let session = client.cookie("chirp_session").expect("a session cookie");
    client.clear_cookies();
    assert_eq!(client.get("/flip").await.text(), "flipped");
    client.set_cookie("chirp_session", &session);
    assert_eq!(client.get("/me").await.text(), "user 2", "still signed in");
}

#[tokio::test]
async fn a_failing_token_verifier_answers_503() {
    let (log, _guard) = capture_errors();
    let config = AuthConfig::new().verify_token(|token: String| async move {
        match token.as_str() {
            "good" => Ok(Some(user("1"))),
            "nobody" => Ok(None),
            _ => Err(QueryFailed(ConnectionRefused)),
        }
    });
    let client = TestClient::new(app_with(config));
    let me = |token: &'static str| {
        client
            .request(Method::Get, "/me")
            .header("authorization", &format!("Bearer {token}"))
            .send()
    };
    assert_eq!(me("good").await.text(), "user 1");
    assert_eq!(me("nobody").await.status(), StatusCode::UNAUTHORIZED);
    let res = me("broken").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header("retry-after"), Some("5"));
    assert!(log.text().contains("AuthConfig::verify_token failed"));
}

/// `/notes/{id}`: only the note's owner, asked of the database.
fn owner_app() -> App {
    let mut app = app_with(db_loader());
    app.state(Db::new());
    app.route(
        "/notes/{id:int}",
        requires_policy_async(
            |req: &Request, who: &Principal<'_>, db: State<Db>| {
                let note: Result<u64, _> = req.param_as("id");
                let me = who.id.to_owned();
                async move {
                    let Ok(note) = note else { return Ok(false) };
                    Ok::<_, QueryFailed>(db.owner(note).await? == Some(me))
                }
            },
            |req: Request, db: State<Db>| async move {
                let n = db.users.len();
                format!("note {} ({n} users)", req.param("id").unwrap_or("?"))
            },
        ),
    );
    app.route("/down", |_req: Request, db: State<Db>| async move {
        db.down.store(true, Ordering::SeqCst);
        "down"
    });
    app
}

#[tokio::test]
async fn an_async_policy_allows_the_owner_and_denies_the_others() {
    let client = TestClient::new(owner_app());
    // Anonymous: 401 before the policy runs.
    let res = client
        .request(Method::Get, "/notes/7")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    client.post("/login/1", "").await;
    let res = client.get("/notes/7").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text(), "note 7 (2 users)");
    let res = client.get("/notes/8").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.text(), "Forbidden");
    assert_eq!(client.get("/notes/9").await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_failing_async_policy_answers_503_and_logs() {
    let (log, _guard) = capture_errors();
    // Users come from a loader that cannot fail, so only the policy meets the outage.
    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.state(Db::new());
    app.route(
        "/notes/{id:int}",
        requires_policy_async(
            |req: &Request, who: &Principal<'_>, db: State<Db>| {
                let note: u64 = req.param_as("id").unwrap_or(0);
                let me = who.id.to_owned();
                async move { db.owner(note).await.map(|owner| owner == Some(me)) }
            },
            |_req: Request| async { "yours" },
        ),
    );
    app.route("/down", |_req: Request, db: State<Db>| async move {
        db.down.store(true, Ordering::SeqCst);
        "down"
    });
    let client = TestClient::new(app);
    client.post("/login/1", "").await;
    assert_eq!(client.get("/notes/7").await.text(), "yours");
    client.get("/down").await;
    let res = client.get("/notes/7").await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.header("retry-after"), Some("5"));
    let text = log.text();
    assert!(text.contains("requires_policy_async failed"), "{text}");
    assert!(text.contains("connection refused by db.internal"), "{text}");
}

#[tokio::test]
async fn an_async_policy_without_state_and_its_state_checked_at_build() {
    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.route(
        "/even/{n:int}",
        requires_policy_async(
            |req: &Request, _who: &Principal<'_>| {
                let n: u64 = req.param_as("n").unwrap_or(1);
                async move { n % 2 == 0 }
            },
            |_req: Request| async { "even" },
        ),
    );
    let client = TestClient::new(app);
    client.post("/login/1", "").await;
    assert_eq!(client.get("/even/4").await.text(), "even");
    assert_eq!(client.get("/even/5").await.status(), StatusCode::FORBIDDEN);

    // A policy (or its handler) taking a type never registered: the build says so.
    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.route(
        "/notes/{id:int}",
        requires_policy_async(
            |_req: &Request, _who: &Principal<'_>, _db: State<Db>| async { true },
            |_req: Request| async { "yours" },
        ),
    );
    let message = app.build().err().expect("Db missing").message().to_owned();
    assert!(message.contains("route GET /notes/{id:int}"), "{message}");
    assert!(message.contains("Db"), "{message}");
}

#[tokio::test]
async fn login_required_wraps_a_handler_that_takes_state() {
    struct Motto(&'static str);
    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.state(Motto("carpe diem"));
    app.route(
        "/motto",
        login_required(|_req: Request, motto: State<Motto>| async move { motto.0 }),
    );
    let client = TestClient::new(app);
    let res = client
        .request(Method::Get, "/motto")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    client.post("/login/1", "").await;
    assert_eq!(client.get("/motto").await.text(), "carpe diem");

    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.route(
        "/motto",
        login_required(|_req: Request, motto: State<Motto>| async move { motto.0 }),
    );
    assert!(
        app.build().is_err(),
        "the wrapped handler's state is checked"
    );
}

fn guest() -> User {
    User {
        id: String::new(),
        name: "guest".into(),
        signed_in: false,
    }
}

async fn whoami(_req: Request) -> Result<Response, Error> {
    let user = user_or_anonymous::<User>()?;
    Ok(Response::text(format!("{} {}", user.name, user.signed_in)))
}

#[tokio::test]
async fn the_anonymous_value_stands_in_for_nobody() {
    let config = AuthConfig::new()
        .load_user(|id: String| async move { Some(user(&id)) })
        .anonymous(guest());
    let mut app = app_with(config);
    app.route("/whoami", whoami);
    app.route("/get_user", |_req: Request| async {
        Ok::<_, Error>(format!("{:?}", get_user::<User>()?.map(|u| u.name)))
    });
    let client = TestClient::new(app);
    assert_eq!(client.get("/whoami").await.text(), "guest false");
    // The anonymous value is not a signed-in user: get_user and the guards still see nobody.
    assert_eq!(client.get("/get_user").await.text(), "None");
    let res = client
        .request(Method::Get, "/me")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    client.post("/login/2", "").await;
    assert_eq!(client.get("/whoami").await.text(), "user 2 true");
}

#[tokio::test]
async fn without_an_anonymous_value_the_getter_says_how_to_set_one() {
    let (log, _guard) = capture_errors();
    let mut app =
        app_with(AuthConfig::new().load_user(|id: String| async move { Some(user(&id)) }));
    app.route("/whoami", whoami);
    let client = TestClient::new(app);
    assert_eq!(
        client.get("/whoami").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert!(
        log.text().contains("AuthConfig::anonymous"),
        "{}",
        log.text()
    );
    client.post("/login/1", "").await;
    assert_eq!(client.get("/whoami").await.text(), "user 1 true");
}
