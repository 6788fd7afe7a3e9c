//! CSRF protection: tokens per session (stable, fresh after login), the checks on
//! state-changing methods (header, form field, multipart field, exempt paths), the
//! cross-site refusals, the build-time order check, and the security events.

use std::sync::{Arc, Mutex};

use chirp::middleware::auth::{login, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::csrf::{csrf_field, get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::audit::{on_security_event, SecurityEvent};
use chirp::sessions::SessionConfig;
use chirp::testing::TestClient;
use chirp::{App, Method, Request, StatusCode};

#[derive(Clone)]
struct User(String);

impl AuthUser for User {
    fn id(&self) -> String {
        self.0.clone()
    }
}

fn app(config: CsrfConfig) -> App {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("csrf-test-secret-0123456789abcdef")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new().load_user(|id: String| async move { Some(User(id)) }),
        )
        .unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(config).unwrap());
    app.route("/token", |_req: Request| async { get_csrf_token() });
    app.route("/field", |_req: Request| async { csrf_field() });
    app.route_with(
        "/save",
        &[Method::Post, Method::Put, Method::Patch, Method::Delete],
        |req: Request| async move { format!("saved {}", req.method()) },
    );
    app.post("/hooks/payment", |_req: Request| async { "hook" });
    app.post("/login", |_req: Request| async {
        login(&User("7".into()))?;
        Ok::<_, chirp::Error>("signed in")
    });
    app
}

async fn token(client: &TestClient) -> String {
    let res = client.get("/token").await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text()
}

async fn post(
    client: &TestClient,
    headers: &[(&str, &str)],
    body: &str,
    content_type: Option<&str>,
) -> (StatusCode, String) {
    let mut req = client
        .request(Method::Post, "/save")
        .header("host", "app.test");
    for (n, v) in headers {
        req = req.header(n, v);
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.body(body).send().await;
    (res.status(), res.text())
}

#[tokio::test]
async fn the_token_is_stable_per_session_and_fresh_after_login() {
    let client = TestClient::new(app(CsrfConfig::default()));
    let first = token(&client).await;
    // Masked (issue 24, finding 9): a 32-byte pad, then the token XORed with it, in hex.
    assert_eq!(first.len(), 128);
    assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
    let again = token(&client).await;
    assert_ne!(again, first, "masked afresh in every response");
    for t in [&first, &again] {
        assert_eq!(
            post(&client, &[("x-csrf-token", t)], "", None).await.1,
            "saved POST",
            "every masking of the session's token is valid"
        );
    }
    let other = TestClient::new(app(CsrfConfig::default()));
    let foreign = token(&other).await;
    assert_eq!(
        post(&client, &[("x-csrf-token", &foreign)], "", None)
            .await
            .0,
        StatusCode::FORBIDDEN,
        "each session has its own"
    );
    // Login regenerates the session: a new token.
    let res = client
        .request(Method::Post, "/login")
        .header("x-csrf-token", &first)
        .send()
        .await;
    assert_eq!(res.text(), "signed in");
    let after = token(&client).await;
    assert_ne!(after, first);
    assert_eq!(
        post(&client, &[("x-csrf-token", &first)], "", None).await.0,
        StatusCode::FORBIDDEN,
        "the old token is dead"
    );
    assert_eq!(
        post(&client, &[("x-csrf-token", &after)], "", None).await.1,
        "saved POST"
    );

    let field = client.get("/field").await.text();
    let value = field
        .strip_prefix(r#"<input type="hidden" name="_csrf_token" value=""#)
        .and_then(|rest| rest.strip_suffix(r#"">"#))
        .expect("a hidden field");
    assert_eq!(value.len(), 128);
    assert_eq!(
        post(&client, &[("x-csrf-token", value)], "", None).await.1,
        "saved POST"
    );
}

#[tokio::test]
async fn state_changing_requests_need_the_token() {
    let client = TestClient::new(app(CsrfConfig::default()));
    let good = token(&client).await;
    assert_eq!(
        post(&client, &[], "", None).await,
        (StatusCode::FORBIDDEN, "CSRF token missing".into())
    );
    assert_eq!(
        post(&client, &[("x-csrf-token", "nope")], "", None).await,
        (StatusCode::FORBIDDEN, "CSRF token invalid".into())
    );
    let stranger = TestClient::new(app(CsrfConfig::default()));
    let theirs = token(&stranger).await;
    assert_eq!(
        post(&client, &[("x-csrf-token", &theirs)], "", None)
            .await
            .1,
        "CSRF token invalid",
        "another session's token"
    );
    assert_eq!(
        post(&client, &[("X-CSRF-Token", &good)], "", None).await.1,
        "saved POST"
    );
    // The form field, urlencoded and multipart.
    let form = format!("title=x&_csrf_token={good}");
    assert_eq!(
        post(
            &client,
            &[],
            &form,
            Some("application/x-www-form-urlencoded")
        )
        .await
        .1,
        "saved POST"
    );
    let form = "title=x&_csrf_token=wrong".to_owned();
    assert_eq!(
        post(
            &client,
            &[],
            &form,
            Some("application/x-www-form-urlencoded")
        )
        .await
        .1,
        "CSRF token invalid"
    );
    let multipart = format!(
        "--B\r\nContent-Disposition: form-data; name=\"_csrf_token\"\r\n\r\n{good}\r\n--B--\r\n"
    );
    assert_eq!(
        post(
            &client,
            &[],
            &multipart,
            Some("multipart/form-data; boundary=B")
        )
        .await
        .1,
        "saved POST"
    );
    // Every state-changing method; safe ones never need it.
    for method in [Method::Put, Method::Patch, Method::Delete] {
        let res = client.request(method, "/save").send().await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{method}");
        let res = client
            .request(method, "/save")
            .header("x-csrf-token", &good)
            .send()
            .await;
        assert_eq!(res.text(), format!("saved {method}"));
    }
    assert_eq!(client.get("/token").await.status(), StatusCode::OK);
    assert_eq!(
        client.request(Method::Head, "/token").send().await.status(),
        StatusCode::OK
    );
    assert_ne!(
        client
            .request(Method::Options, "/save")
            .send()
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn token_clients_without_cookies_are_not_checked() {
    let client = TestClient::new(app(CsrfConfig::default()));
    let res = client
        .request(Method::Post, "/save")
        .header("authorization", "Bearer t")
        .send()
        .await;
    assert_eq!(res.text(), "saved POST");
    // With a cookie too, it could be a browser: checked.
    let _ = token(&client).await; // the jar now holds a session cookie
    let res = client
        .request(Method::Post, "/save")
        .header("authorization", "Bearer t")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn exempt_paths_pass() {
    let client = TestClient::new(app(CsrfConfig::default().exempt_path("/hooks")));
    assert_eq!(client.post("/hooks/payment", "{}").await.text(), "hook");
    assert_eq!(post(&client, &[], "", None).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn cross_site_requests_are_refused_before_the_token() {
    let config = CsrfConfig::default().trusted_origin("https://admin.app.test");
    let client = TestClient::new(app(config));
    let good = token(&client).await;
    let with = |extra: (&'static str, &'static str)| {
        vec![
            ("x-csrf-token", good.clone()),
            (extra.0, extra.1.to_owned()),
        ]
    };
    for (name, value, want) in [
        ("sec-fetch-site", "cross-site", "Cross-site request refused"),
        ("sec-fetch-site", "same-origin", "saved POST"),
        ("sec-fetch-site", "same-site", "saved POST"),
        (
            "origin",
            "https://evil.example",
            "Cross-site request refused",
        ),
        ("origin", "null", "Cross-site request refused"),
        ("origin", "https://app.test", "saved POST"),
        ("origin", "https://admin.app.test", "saved POST"),
        (
            "origin",
            "https://app.test.evil.example",
            "Cross-site request refused",
        ),
    ] {
        let headers = with((name, value));
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            post(&client, &headers, "", None).await.1,
            want,
            "{name}: {value}"
        );
    }
    // The check can be turned off (the token still applies).
    let client = TestClient::new(app(CsrfConfig {
        check_origin: false,
        ..Default::default()
    }));
    let good = token(&client).await;
    let headers = [
        ("x-csrf-token", good.as_str()),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(post(&client, &headers, "", None).await.1, "saved POST");
}

#[tokio::test]
async fn csrf_without_sessions_before_it_fails_to_build() {
    let mut app = App::new();
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("csrf-test-secret-0123456789abcdef")).unwrap(),
    );
    let err = app.build().err().expect("a configuration error");
    assert!(
        err.message().contains("SessionMiddleware"),
        "{}",
        err.message()
    );
    // Outside the middleware, the helpers say what is missing.
    let err = get_csrf_token().unwrap_err();
    assert!(
        err.message().contains("add CsrfMiddleware"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn rejections_are_security_events() {
    let seen: Arc<Mutex<Vec<SecurityEvent>>> = Arc::default();
    let sink = seen.clone();
    on_security_event(move |e| sink.lock().unwrap().push(e.clone()));
    let client = TestClient::new(app(CsrfConfig::default()));
    let _ = post(&client, &[], "", None).await;
    let _ = post(&client, &[("x-csrf-token", "bad")], "", None).await;
    let _ = post(&client, &[("sec-fetch-site", "cross-site")], "", None).await;
    let names: Vec<&str> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.path == "/save")
        .map(|e| e.name)
        .collect();
    for want in [
        "csrf.reject.missing",
        "csrf.reject.invalid",
        "csrf.reject.cross_site",
    ] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }
    let events = seen.lock().unwrap();
    let missing = events
        .iter()
        .find(|e| e.name == "csrf.reject.missing")
        .unwrap();
    assert_eq!(missing.method, "POST");
}
