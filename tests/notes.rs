//! The notes example (examples/notes.rs), driven through TestClient as its users would:
//! a browser logging in and adding notes, and an API client using the JSON API.

#[path = "../examples/notes.rs"]
#[allow(dead_code)]
mod notes;

use chirp::testing::TestClient;
use chirp::{Method, Request, StatusCode};
use serde_json::{json, Value};

fn client() -> TestClient {
    TestClient::new(notes::app().expect("the example's app builds"))
}

/// The CSRF token in a page's hidden field.
fn token_in(page: &str) -> String {
    let at = page
        .find(r#"name="_csrf_token" value=""#)
        .expect("a CSRF field")
        + r#"name="_csrf_token" value=""#.len();
    page[at..].split('"').next().unwrap().to_owned()
}

/// The session's CSRF token, as an API client gets it.
async fn api_token(c: &TestClient) -> String {
    let res: Value = c.get("/api/csrf").await.json();
    res["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_browser_logs_in_adds_a_note_and_logs_out() {
    let c = client();
    let res = c.get("/notes").await;
    assert_eq!(
        res.status(),
        StatusCode::FOUND,
        "anonymous browsers are sent to log in"
    );
    assert_eq!(res.header("location"), Some("/login?next=%2Fnotes"));
    let form = c.get("/login").await;
    assert!(form.text().contains(r#"name=username"#) && form.text().contains("name=password"));
    assert_eq!(form.header("x-frame-options"), Some("DENY"));
    assert!(form
        .header("content-security-policy")
        .unwrap()
        .contains("style-src 'nonce-"));
    assert!(form.header("x-request-id").is_some());
    let token = token_in(&form.text());

    // Without the token the form is refused.
    let res = c
        .post_form("/login", &[("username", "demo"), ("password", "demo")])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = c
        .post_form(
            "/login",
            &[
                ("username", "demo"),
                ("password", "wrong"),
                ("_csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/login"));
    assert!(c
        .get("/login")
        .await
        .text()
        .contains("Wrong user name or password."));
    assert!(
        !c.get("/login").await.text().contains("Wrong"),
        "a flash is shown once"
    );

    let res = c
        .post_form(
            "/login",
            &[
                ("username", "demo"),
                ("password", "demo"),
                ("_csrf_token", &token),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.header("location"), Some("/notes"));
    // Login made a new session, and a new token.
    let page = c.get("/notes").await.text();
    let token_after = token_in(&page);
    assert_ne!(token_after, token);
    let res = c
        .post_form(
            "/notes",
            &[("text", "buy <milk> & eggs"), ("_csrf_token", &token)],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::FORBIDDEN,
        "the pre-login token is dead"
    );
    let res = c
        .post_form(
            "/notes",
            &[("text", "buy <milk> & eggs"), ("_csrf_token", &token_after)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let page = c.get("/notes").await.text();
    assert!(
        page.contains("<li>buy &lt;milk&gt; &amp; eggs</li>"),
        "escaped: {page}"
    );
    assert!(page.contains("Signed in as demo"));
    assert!(page.contains("Note added."), "a success flash: {page}");

    assert_eq!(
        c.post_form("/logout", &[("_csrf_token", &token_after)])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(c.get("/notes").await.status(), StatusCode::FOUND);
}

#[tokio::test]
async fn the_json_api_creates_lists_and_deletes_notes() {
    let c = client();
    let res = c.get("/api/notes").await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "an API path answers 401, not a redirect"
    );
    let login_page = c.get("/login").await.text();
    c.post_form(
        "/login",
        &[
            ("username", "demo"),
            ("password", "demo"),
            ("_csrf_token", &token_in(&login_page)),
        ],
    )
    .await;

    // API writes need the token, in the X-CSRF-Token header.
    let res = c.post_json("/api/notes", &json!({"text": "first"})).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let token = api_token(&c).await;
    let post_json = |body: Value| {
        let token = token.clone();
        let c = &c;
        async move {
            c.request(Method::Post, "/api/notes")
                .header("x-csrf-token", &token)
                .json(&body)
                .send()
                .await
        }
    };
    let res = post_json(json!({"text": "first"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let first: Value = res.json();
    assert!(first["id"].is_u64(), "{first}");
    assert_eq!(first["text"], "first");
    let second: Value = post_json(json!({"text": "second"})).await.json();
    let all: Value = c.get("/api/notes").await.json();
    assert_eq!(all, json!([first, second]));

    let bad = post_json(json!({"txt": "typo"})).await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_CONTENT);
    let wrong_type = c
        .request(Method::Post, "/api/notes")
        .header("x-csrf-token", &token)
        .body(r#"{"text":"x"}"#)
        .send()
        .await;
    assert_eq!(wrong_type.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let id = first["id"].as_u64().unwrap();
    let res = c
        .request(Method::Delete, &format!("/api/notes/{id}"))
        .header("x-csrf-token", &token)
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let all: Value = c.get("/api/notes").await.json();
    assert_eq!(all, json!([second]));

    let res = c
        .send(
            Request::new(Method::Delete, &format!("/api/notes/{id}"))
                .with_header("Accept", "application/json")
                .with_header("x-csrf-token", &token),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let problem: Value = res.json();
    assert_eq!(problem["detail"], format!("no note {id}"));
}

#[tokio::test]
async fn unknown_paths_get_the_apps_404_page() {
    let res = client().get("/no/such/page").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(
        res.text().contains("Nothing at /no/such/page"),
        "{}",
        res.text()
    );
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
}
