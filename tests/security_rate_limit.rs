//! The login rate limit against the attacks of issue 24, over real sockets: a non-UTF-8 form
//! body that hid the username from the limiter (finding 1).

mod common;

use chirp::http::TrustedProxies;
use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
use chirp::middleware::csrf::{get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::stores::{MemoryStore, RateLimitStore};
use chirp::{App, Request, Response};
use common::{RawConn, TestServer};

#[derive(serde::Deserialize)]
struct Login {
    username: String,
    password: String,
}

/// The notes example's shape: the limit (10 a minute per address and per username, the
/// client address from a trusted proxy's `X-Forwarded-For`), sessions, CSRF, and a login
/// handler that reads the form with `req.form()`.
fn app(store: impl RateLimitStore) -> App {
    let mut app = App::new();
    app.add_middleware(
        AuthRateLimitMiddleware::new()
            .per_username("username")
            .trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap())
            .store(store),
    );
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new(
            "rate-limit-test-secret-0123456789abcdef",
        ))
        .unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    app.get("/token", |_req: Request| async { get_csrf_token() });
    app.post("/login", |req: Request| async move {
        let form: Login = req.form()?;
        Ok::<_, chirp::Error>(if form.username == "demo" && form.password == "right" {
            Response::see_other("/notes")
        } else {
            Response::see_other("/login")
        })
    });
    app
}

/// A session cookie and its CSRF token, as a browser gets them from the login page.
async fn session(server: &TestServer) -> (String, String) {
    let mut conn = server.connect().await;
    conn.send(common::get("/token")).await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    (res.cookie_pair(), res.text())
}

/// `POST /login` from `client` (through the trusted proxy), with the session and token when
/// given.
fn login(client: &str, session: Option<&(String, String)>, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST /login HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {client}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some((cookie, token)) = session {
        head.push_str(&format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\n"));
    }
    head.push_str("\r\n");
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    raw
}

async fn send(conn: &mut RawConn, raw: &[u8]) -> u16 {
    conn.send(raw).await;
    conn.response().await.status
}

/// Finding 1: one raw 0xFF byte made `form_pairs()` fail, so the limiter never counted the
/// username while `req.form()` read it and the handler checked the password: 16 addresses got
/// 16 guesses at `demo`. The limiter and the handler now read the form the same way.
#[tokio::test]
async fn a_non_utf8_body_does_not_hide_the_username_from_the_limit() {
    let server = TestServer::start(app(MemoryStore::default())).await;
    let session = session(&server).await;
    let mut conn = server.connect().await;
    let mut statuses = Vec::new();
    for i in 1..=16 {
        let password = if i == 16 {
            "right".to_owned()
        } else {
            format!("wrong{i}")
        };
        let mut body = format!("username=demo&password={password}&x=").into_bytes();
        body.push(0xff);
        let raw = login(&format!("198.51.100.{i}"), Some(&session), &body);
        statuses.push(send(&mut conn, &raw).await);
    }
    assert_eq!(&statuses[..10], &[303; 10], "{statuses:?}");
    assert_eq!(
        &statuses[10..],
        &[429; 6],
        "the 11th guess at demo is refused, from any address: {statuses:?}"
    );
}
