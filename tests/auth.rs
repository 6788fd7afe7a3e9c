//! Auth middleware: login/logout regenerate the session, login_required, tokens, versions.

use std::sync::{Arc, Mutex};

use chirp::middleware::auth::{
    current_user, get_user, login, login_required, logout, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, SessionConfig};
use chirp::testing::TestClient;
use chirp::{App, Error, Method, Request, Response, StatusCode};

#[derive(Clone, Debug, PartialEq)]
struct User {
    id: u32,
    name: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.to_string()
    }
}

fn users() -> Vec<User> {
    vec![
        User {
            id: 1,
            name: "alice".into(),
        },
        User {
            id: 2,
            name: "bob".into(),
        },
    ]
}

/// Password "versions" per user id: bumping one revokes that user's sessions.
type Versions = Arc<Mutex<Vec<u32>>>;

fn app(versions: Versions) -> App {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("auth-test-secret-0123456789abcdef0123"))
            .unwrap(),
    );
    let config = AuthConfig::new()
        .load_user(|id: String| async move { users().into_iter().find(|u| u.id.to_string() == id) })
        .verify_token(|token: String| async move {
            (token == "secret-token").then(|| users()[1].clone())
        })
        .session_version(move |u: &User| versions.lock().unwrap()[u.id as usize].to_string())
        .exclude_path("/static");
    app.add_middleware(AuthMiddleware::new(config).unwrap());
    app.route_with(
        "/login/{id:int}",
        &[Method::Post],
        |req: Request| async move {
            let id: u32 = req.param_as("id")?;
            let user = users().into_iter().find(|u| u.id == id).unwrap();
            login(&user)?;
            let seen = get_user::<User>()?.map(|u| u.name).unwrap_or_default();
            Ok::<_, Error>(Response::redirect("/me").with_header("x-user", seen))
        },
    );
    app.route_with("/logout", &[Method::Post], |_req: Request| async {
        logout()?;
        Ok::<_, Error>(Response::redirect("/"))
    });
    app.route(
        "/me",
        login_required(|_req: Request| async { current_user::<User>().map(|u| u.name) }),
    );
    app.route("/whoami", |_req: Request| async {
        Ok::<_, Error>(get_user::<User>()?.map_or("anonymous".to_owned(), |u| u.name))
    });
    app.route("/note", |_req: Request| async {
        get_session()?.insert("note", "pre-login");
        Ok::<_, Error>("noted")
    });
    app.route("/keys", |_req: Request| async {
        Ok::<_, Error>(Response::json(&get_session()?.keys()))
    });
    app.route("/static/app.js", |_req: Request| async {
        match get_user::<User>() {
            Err(_) => "error".to_owned(),
            Ok(None) => "anonymous".to_owned(),
            Ok(Some(u)) => u.name,
        }
    });
    app
}

fn versions() -> Versions {
    Arc::new(Mutex::new(vec![0, 0, 0]))
}

#[tokio::test]
async fn login_regenerates_and_the_user_is_visible_at_once() {
    let c = TestClient::new(app(versions()));
    c.get("/note").await;
    let before = c.cookie("chirp_session").unwrap();
    let res = c.post("/login/1", "").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.header("x-user"),
        Some("alice"),
        "get_user sees the login in the same handler"
    );
    let after = c.cookie("chirp_session").unwrap();
    assert_ne!(before, after, "login issues a new cookie");
    let keys: Vec<String> = c.get("/keys").await.json();
    assert_eq!(
        keys,
        ["user_id", "_session_version"],
        "pre-login data is gone"
    );
    assert_eq!(c.get("/whoami").await.text(), "alice");
    assert_eq!(c.get("/me").await.text(), "alice");
}

#[tokio::test]
async fn logout_clears_everything() {
    let c = TestClient::new(app(versions()));
    c.post("/login/2", "").await;
    let logged_in = c.cookie("chirp_session").unwrap();
    c.post("/logout", "").await;
    assert_ne!(c.cookie("chirp_session").unwrap(), logged_in);
    assert_eq!(c.get("/whoami").await.text(), "anonymous");
    let keys: Vec<String> = c.get("/keys").await.json();
    assert!(keys.is_empty());
}

#[tokio::test]
async fn login_required_redirects_browsers_and_refuses_api_clients() {
    let c = TestClient::new(app(versions()));
    let res = c.get("/me?tab=a&b=c d").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(
        res.header("location"),
        Some("/login?next=%2Fme%3Ftab%3Da%26b%3Dc%20d")
    );

    let api = Request::new(Method::Get, "/me").with_header("Accept", "application/json");
    let res = c.send(api).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let both = Request::new(Method::Get, "/me").with_header("Accept", "text/html,application/json");
    assert_eq!(c.send(both).await.status(), StatusCode::FOUND);
    let bad_token = Request::new(Method::Get, "/me").with_header("Authorization", "Bearer wrong");
    assert_eq!(c.send(bad_token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_tokens_authenticate_without_a_session() {
    let c = TestClient::new(app(versions()));
    let req = Request::new(Method::Get, "/me").with_header("Authorization", "Bearer secret-token");
    assert_eq!(c.send(req).await.text(), "bob");
}

#[tokio::test]
async fn a_changed_session_version_revokes_old_sessions() {
    let v = versions();
    let c = TestClient::new(app(v.clone()));
    c.post("/login/1", "").await;
    assert_eq!(c.get("/whoami").await.text(), "alice");
    v.lock().unwrap()[1] += 1; // alice changed her password
    assert_eq!(c.get("/whoami").await.text(), "anonymous");
    assert_eq!(c.get("/me").await.status(), StatusCode::FOUND);
    c.post("/login/1", "").await;
    assert_eq!(c.get("/whoami").await.text(), "alice");
}

#[tokio::test]
async fn excluded_paths_run_with_an_anonymous_user() {
    let c = TestClient::new(app(versions()));
    assert_eq!(c.get("/static/app.js").await.text(), "anonymous");
    c.post("/login/1", "").await;
    assert_eq!(c.get("/whoami").await.text(), "alice");
    assert_eq!(
        c.get("/static/app.js").await.text(),
        "anonymous",
        "no user is loaded on an excluded path, and get_user() is not an error there"
    );
}

#[tokio::test]
async fn configuration_and_lookup_errors() {
    let err = AuthMiddleware::<User>::new(AuthConfig::new())
        .err()
        .unwrap();
    assert!(err.message().contains("load_user"), "{err}");

    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("auth-test-secret-0123456789abcdef0123"))
            .unwrap(),
    );
    app.route("/login", |_req: Request| async {
        match login(&users()[0]) {
            Err(e) => e.message().to_owned(),
            Ok(()) => "logged in".to_owned(),
        }
    });
    app.route("/logout", |_req: Request| async {
        logout().map(|_| "out").unwrap_or("lookup error")
    });
    app.route(
        "/guarded",
        login_required(|_req: Request| async { "secret" }),
    );
    let c = TestClient::new(app);
    assert!(c
        .get("/login")
        .await
        .text()
        .starts_with("No active authentication"));
    assert_eq!(c.get("/logout").await.text(), "lookup error");
    assert_eq!(
        c.get("/guarded").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

/// Hardening 11: the session version lives under the Python framework's `_session_version`
/// key, so a login written by a Python app with session versions is honoured.
#[tokio::test]
async fn a_python_login_with_a_session_version_is_honoured() {
    use chirp::sessions::{Digest, Signer};
    const SECRET: &str = "auth-test-secret-0123456789abcdef0123";
    let signer = Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for (version, signed_in) in [("3", true), ("2", false)] {
        let mut app = App::new();
        app.add_middleware(SessionMiddleware::new(SessionConfig::new(SECRET)).unwrap());
        app.add_middleware(
            AuthMiddleware::new(
                AuthConfig::new()
                    .load_user(|id: String| async move {
                        users().into_iter().find(|u| u.id.to_string() == id)
                    })
                    .session_version(|_u: &User| "3".to_owned()),
            )
            .unwrap(),
        );
        app.route("/who", |_req: Request| async {
            Ok::<_, Error>(format!("{}", get_user::<User>()?.is_some()))
        });
        let c = TestClient::new(app);
        let data = serde_json::json!({"user_id": "1", "_session_version": version});
        c.set_cookie(
            "chirp_session",
            &signer.dumps(&data.as_object().unwrap().into(), now),
        );
        assert_eq!(
            c.get("/who").await.text(),
            signed_in.to_string(),
            "{version}"
        );
    }
}

/// Issue 11, item 4: what is evidently an API call gets 401, a browser a redirect: an
/// `Accept` without `text/html` (fetch, curl's `*/*`), and any path under the API prefix.
#[tokio::test]
async fn api_calls_get_401_and_browsers_a_redirect() {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("auth-test-secret-0123456789abcdef0123"))
            .unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new()
                .load_user(|_id: String| async { None::<User> })
                .api_prefix("/api/"),
        )
        .unwrap(),
    );
    app.route("/page", login_required(|_req: Request| async { "page" }));
    app.route(
        "/api/notes",
        login_required(|_req: Request| async { "notes" }),
    );
    let c = TestClient::new(app);
    let get = |path: &str, accept: Option<&str>| {
        let req = Request::new(Method::Get, path);
        match accept {
            Some(a) => req.with_header("Accept", a),
            None => req,
        }
    };
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    for (path, accept, status) in [
        ("/page", Some(browser), StatusCode::FOUND),
        ("/page", None, StatusCode::FOUND),
        ("/page", Some("*/*"), StatusCode::UNAUTHORIZED),
        ("/page", Some("application/json"), StatusCode::UNAUTHORIZED),
        ("/page", Some("text/html;q=0.9"), StatusCode::FOUND),
        ("/api/notes", Some(browser), StatusCode::UNAUTHORIZED),
        ("/api/notes", None, StatusCode::UNAUTHORIZED),
        ("//api//notes/", None, StatusCode::UNAUTHORIZED),
    ] {
        let res = c.send(get(path, accept)).await;
        assert_eq!(res.status(), status, "{path} {accept:?}");
    }
}

/// Issue 11, item 4: session auth needs the session middleware before it; anything else is a
/// ConfigurationError at build (it used to make every user silently anonymous). Bearer-only
/// auth needs no session.
#[tokio::test]
async fn auth_without_sessions_before_it_fails_to_build() {
    let session = || {
        SessionMiddleware::new(SessionConfig::new("auth-test-secret-0123456789abcdef0123")).unwrap()
    };
    let session_auth = || {
        AuthMiddleware::new(AuthConfig::new().load_user(|_id: String| async { None::<User> }))
            .unwrap()
    };
    let mut after = App::new();
    after.add_middleware(session_auth());
    after.add_middleware(session());
    let err = after
        .build()
        .err()
        .expect("auth before sessions is refused");
    assert!(err.message().contains("AuthMiddleware"), "{err}");
    assert!(
        err.message()
            .contains("SessionMiddleware is added after it"),
        "{err}"
    );

    let mut without = App::new();
    without.add_middleware(session_auth());
    let err = without
        .build()
        .err()
        .expect("auth without sessions is refused");
    assert!(err.message().contains("session"), "{err}");

    let mut right = App::new();
    right.add_middleware(session());
    right.add_middleware(session_auth());
    assert!(right.build().is_ok());

    let mut bearer_only = App::new();
    bearer_only.add_middleware(
        AuthMiddleware::new(AuthConfig::new().verify_token(|_t: String| async { None::<User> }))
            .unwrap(),
    );
    assert!(bearer_only.build().is_ok());
}
