//! Issue 24, findings 5 and 6, over real sockets: the examples' secrets (a cookie signed with
//! a secret an example used to ship no longer signs anyone in, and the warning about a random
//! secret is printed) and the open redirect and login CSRF of `examples/auth.rs` (every `next=`
//! goes through `chirp::security::safe_redirect`, and a `Location` with a control character
//! is refused by the response itself: a 500, never the header).

mod common;

#[path = "../examples/notes.rs"]
#[allow(dead_code)]
mod notes;

#[path = "../examples/auth.rs"]
#[allow(dead_code)]
mod auth_example;

#[path = "../examples/dashboard.rs"]
#[allow(dead_code)]
mod dashboard;

use std::io::Read;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chirp::sessions::{Digest, Signer};
use chirp::{App, Request, Response, StatusCode};
use common::{KillOnDrop, RawResponse, TestServer};

/// Sends one request on a new connection and reads its response.
async fn send(addr: SocketAddr, raw: String) -> RawResponse {
    let mut conn = common::RawConn::connect(addr).await;
    conn.send(raw).await;
    conn.response().await
}

async fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> RawResponse {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    send(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{cookie}\r\n"),
    )
    .await
}

async fn post_form(addr: SocketAddr, path: &str, cookie: Option<&str>, body: &str) -> RawResponse {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    send(
        addr,
        format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\n{cookie}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// The CSRF token in a page's hidden field, if it has one.
fn token_in(page: &str) -> Option<String> {
    const FIELD: &str = r#"name="_csrf_token" value=""#;
    let at = page.find(FIELD)? + FIELD.len();
    page[at..].split('"').next().map(str::to_owned)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

// ---- Finding 5: the examples' secrets ---------------------------------------------------

/// The secret `examples/notes` used when `NOTES_SECRET` was not set, before issue 24.
const OLD_NOTES_SECRET: &str = "notes-demo-secret-change-me-0123456789abcdef";

/// A cookie signed with the secret the notes example used to ship, naming `demo`, is not a
/// login: the secret is now random when the environment gives none.
#[tokio::test]
async fn a_cookie_signed_with_the_old_notes_secret_does_not_sign_in() {
    assert!(
        std::env::var_os("CHIRP_SECRET_KEY").is_none(),
        "run these tests without CHIRP_SECRET_KEY"
    );
    let server = TestServer::start(notes::app().unwrap()).await;
    let signer = Signer::new(OLD_NOTES_SECRET, &[], Digest::Sha256, "itsdangerous");
    let data = serde_json::json!({ "user_id": "demo" });
    let forged = signer.dumps(&data.as_object().unwrap().into(), now());
    let res = get(
        server.addr,
        "/notes",
        Some(&format!("chirp_session={forged}")),
    )
    .await;
    assert_eq!(
        res.status,
        302,
        "signed in with a forged cookie: {}",
        res.text()
    );
    assert_eq!(res.header("location"), Some("/login?next=%2Fnotes"));
}

/// The attack without knowing the format: log in on one's own copy of the example (the
/// default credentials, the default secret) and replay the cookie on another instance.
#[tokio::test]
async fn a_login_on_one_notes_instance_is_not_a_login_on_another_started_without_a_secret() {
    assert!(std::env::var_os("CHIRP_SECRET_KEY").is_none());
    let mine = TestServer::start(notes::app().unwrap()).await;
    let theirs = TestServer::start(notes::app().unwrap()).await;
    let form = get(mine.addr, "/login", None).await;
    let cookie = form.cookie_pair();
    let token = token_in(&form.text()).expect("a CSRF field");
    let res = post_form(
        mine.addr,
        "/login",
        Some(&cookie),
        &format!("username=demo&password=demo&_csrf_token={token}"),
    )
    .await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/notes"));
    let signed_in = res.cookie_pair();
    assert_eq!(
        get(mine.addr, "/notes", Some(&signed_in)).await.status,
        200,
        "signed in where the cookie was made"
    );
    let replayed = get(theirs.addr, "/notes", Some(&signed_in)).await;
    assert_eq!(
        replayed.status,
        302,
        "a cookie from another instance signed in: {}",
        replayed.text()
    );
}

/// A cookie signed with the dashboard's old `my-secret-key` carries no visits over.
#[tokio::test]
async fn a_cookie_signed_with_the_old_dashboard_secret_is_ignored() {
    assert!(std::env::var_os("CHIRP_SECRET_KEY").is_none());
    let (app, _store) = dashboard::app_from_env().await.unwrap();
    let server = TestServer::start(app).await;
    let signer = Signer::new("my-secret-key", &[], Digest::Sha256, "itsdangerous");
    let data = serde_json::json!({ "visits": 41 });
    let forged = signer.dumps(&data.as_object().unwrap().into(), now());
    let res = get(
        server.addr,
        "/dashboard",
        Some(&format!("chirp_session={forged}")),
    )
    .await;
    assert_eq!(res.text(), "Visits: 1");
}

/// The dashboard example in a process of its own (its own `main`, as `cargo run` starts it),
/// for the test below, which starts it itself; it does nothing when run with the other
/// ignored tests.
#[test]
#[ignore = "the server process of the warning test (it starts it itself)"]
fn dashboard_example_process() {
    if std::env::var_os("CHIRP_DASHBOARD_EXAMPLE_PROCESS").is_none() {
        return;
    }
    dashboard::main().unwrap();
}

/// `cargo run --example dashboard` with no secret in the environment serves, and says, where
/// one sees it, that its secret is random: sessions will not survive a restart nor be shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_without_a_secret_serves_and_warns_that_its_secret_is_random() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "dashboard_example_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("CHIRP_DASHBOARD_EXAMPLE_PROCESS", "1")
        .env("CHIRP_ADDR", addr.to_string())
        .env_remove("CHIRP_SECRET_KEY")
        .env_remove("CHIRP_SESSION_STORE")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdout(out.reopen().unwrap())
        .stderr(out.reopen().unwrap())
        .spawn()
        .unwrap();
    let _child = KillOnDrop(child);
    let started = Instant::now();
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the example never listened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(get(addr, "/dashboard", None).await.text(), "Visits: 1");
    let mut log = String::new();
    out.reopen().unwrap().read_to_string(&mut log).unwrap();
    assert!(
        log.contains("WARN") && log.contains("CHIRP_SECRET_KEY") && log.contains("restart"),
        "no warning about the random secret in: {log}"
    );
}

// ---- Finding 6: the open redirect and login CSRF of examples/auth -----------------------

/// Logs in to `examples/auth` as alice with `?next=` `next` (already encoded for a query),
/// the way a browser does: the form first (for its session and CSRF token), then the POST.
async fn log_in_with_next(addr: SocketAddr, next: &str) -> RawResponse {
    let form = get(addr, &format!("/login?next={next}"), None).await;
    assert_eq!(form.status, 200);
    let cookie = form.header("set-cookie").map(|_| form.cookie_pair());
    let token = token_in(&form.text())
        .map(|t| format!("&_csrf_token={t}"))
        .unwrap_or_default();
    post_form(
        addr,
        &format!("/login?next={next}"),
        cookie.as_deref(),
        &format!("name=alice&password=wonderland{token}"),
    )
    .await
}

#[tokio::test]
async fn the_auth_example_redirects_only_to_its_own_paths() {
    let server = TestServer::start(auth_example::app().unwrap()).await;
    for next in [
        "/%09/evil.example",    // the tab browsers drop: `//evil.example`
        "%2F%2Fevil.example",   // scheme-relative
        "/%5Cevil.example",     // `/\evil.example`
        "%5C%5Cevil.example",   // `\\evil.example`
        "https://evil.example", // another scheme and host
        "https:evil.example",   // a scheme, no slashes
        "/%252F/evil.example",  // `/%2F/evil.example`: `//evil.example` once decoded again
        "/%250D%250A/x",        // a CR LF once decoded again
        "/%0D%0ALocation:%20x", // CR LF: response splitting
        "%20//evil.example",    // leading space, stripped by browsers
        "evil.example",         // not a path
        "javascript:alert(1)",  // a script
    ] {
        let res = log_in_with_next(server.addr, next).await;
        assert_eq!(res.status, 303, "next={next}: {}", res.text());
        assert_eq!(res.header("location"), Some("/"), "next={next}");
    }
    for (next, to) in [
        ("/private", "/private"),
        ("%2Fprivate%3Fa%3Db%23c", "/private?a=b#c"),
    ] {
        let res = log_in_with_next(server.addr, next).await;
        assert_eq!(res.status, 303, "next={next}");
        assert_eq!(res.header("location"), Some(to), "next={next}");
    }
}

#[tokio::test]
async fn the_auth_example_refuses_a_login_without_its_csrf_token() {
    let server = TestServer::start(auth_example::app().unwrap()).await;
    // A forged login (login CSRF): the right credentials, no token.
    let res = post_form(
        server.addr,
        "/login",
        None,
        "name=alice&password=wonderland",
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert!(res.header("set-cookie").is_none(), "no session was made");
    // With the form's session but a wrong token, neither.
    let form = get(server.addr, "/login", None).await;
    let cookie = form.cookie_pair();
    let res = post_form(
        server.addr,
        "/login",
        Some(&cookie),
        "name=alice&password=wonderland&_csrf_token=0000",
    )
    .await;
    assert_eq!(res.status, 403);
    // And the form's own token signs in; the logout form carries one too.
    let res = log_in_with_next(server.addr, "/private").await;
    assert_eq!(res.status, 303);
    let page = get(server.addr, "/private", Some(&res.cookie_pair()))
        .await
        .text();
    assert!(page.starts_with("Hello alice!"), "{page}");
    assert!(
        token_in(&page).is_some(),
        "no CSRF field in the logout form: {page}"
    );
}

/// A handler that puts a control character in `Location` gets a 500, never the header:
/// browsers drop tabs and newlines from URLs, which turns `/\t/host` into `//host`.
#[tokio::test]
async fn a_location_with_a_control_character_is_a_500() {
    let mut app = App::new();
    app.route("/tab", |_req: Request| async {
        Response::see_other("/\t/evil.example")
    });
    app.route("/header", |_req: Request| async {
        Response::empty(StatusCode::FOUND).with_header("Location", "/\u{1}x")
    });
    app.route("/del", |_req: Request| async {
        Response::redirect("/\u{7f}x")
    });
    app.route("/ok", |_req: Request| async {
        Response::see_other("/a?b=c#d")
    });
    let server = TestServer::start(app).await;
    for path in ["/tab", "/header", "/del"] {
        let res = get(server.addr, path, None).await;
        assert_eq!(res.status, 500, "{path}");
        assert!(res.header("location").is_none(), "{path}");
    }
    let res = get(server.addr, "/ok", None).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/a?b=c#d"));
}

/// The notes example follows `?next=` after a login too (the login redirect of
/// `login_required` adds it), but only to its own paths.
#[tokio::test]
async fn the_notes_example_follows_next_only_to_its_own_paths() {
    let server = TestServer::start(notes::app().unwrap()).await;
    for (next, to) in [
        ("%2Fapi%2Fnotes", "/api/notes"),
        ("/%09/evil.example", "/notes"),
        ("%2F%2Fevil.example", "/notes"),
        ("https://evil.example", "/notes"),
    ] {
        let form = get(server.addr, &format!("/login?next={next}"), None).await;
        let token = token_in(&form.text()).expect("a CSRF field");
        let res = post_form(
            server.addr,
            &format!("/login?next={next}"),
            Some(&form.cookie_pair()),
            &format!("username=demo&password=demo&_csrf_token={token}"),
        )
        .await;
        assert_eq!(res.status, 303, "next={next}: {}", res.text());
        assert_eq!(res.header("location"), Some(to), "next={next}");
    }
    // The form keeps `next` for its POST, encoded.
    let form = get(server.addr, "/login?next=%2Fa%26b", None).await;
    assert!(
        form.text().contains(r#"action="/login?next=%2Fa%26b""#),
        "{}",
        form.text()
    );
}
