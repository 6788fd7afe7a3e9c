//! Request scopes inside what runs after the middleware returned, over real sockets: a
//! response stream's producer (an SSE stream made by an async generator, a `Response::stream`
//! whose items are computed as it is polled) and an upgrade callback see the session (a
//! read-only copy), the current user, the CSRF token, the CSP nonce and the request id of
//! their request; what cannot be done there (changing the session, reading a scope in a
//! spawned task) fails saying why.

mod common;

use std::time::Duration;

use bytes::Bytes;
use chirp::middleware::access_log::{request_id, AccessLogMiddleware};
use chirp::middleware::auth::{get_user, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::csrf::{get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::{csp_nonce, SecurityHeadersMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::flash::{flash, take_flashes};
use chirp::sessions::{get_session, regenerate_session, SessionConfig};
use chirp::sse::{Event, Sse};
use chirp::{App, LookupError, Request, Response};
use common::{RawResponse, TestServer};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug)]
struct User(String);

impl AuthUser for User {
    fn id(&self) -> String {
        self.0.clone()
    }
}

fn err(e: LookupError) -> String {
    format!("ERR {}", e.message())
}

/// What the running code sees of each scope, one `name=value` per scope, `;`-separated.
fn scopes() -> String {
    let session = get_session()
        .map(|s| {
            let name = s.get::<String>("name").unwrap_or_else(|| "-".into());
            format!("{name}/{}", if s.is_read_only() { "ro" } else { "rw" })
        })
        .unwrap_or_else(err);
    let user = match get_user::<User>() {
        Ok(Some(user)) => user.0,
        Ok(None) => "anonymous".into(),
        Err(e) => err(e),
    };
    let csrf = get_csrf_token().unwrap_or_else(err);
    let nonce = csp_nonce().unwrap_or_else(err);
    let id = request_id().unwrap_or_else(err);
    format!("session={session};user={user};csrf={csrf};nonce={nonce};id={id}")
}

fn app() -> App {
    let mut app = App::new();
    app.add_middleware(AccessLogMiddleware::new());
    app.add_middleware(
        SecurityHeadersMiddleware::new()
            .content_security_policy("script-src 'nonce-{nonce}'")
            .unwrap(),
    );
    app.add_middleware(SessionMiddleware::new(SessionConfig::new("s".repeat(32))).unwrap());
    app.add_middleware(
        AuthMiddleware::new(AuthConfig::<User>::new().verify_token(|token| async move {
            (token == "t-alice").then(|| User("alice".into()))
        }))
        .unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    // A page that puts a name in the session and makes its CSRF token.
    app.route("/page", |_req: Request| async {
        get_session().unwrap().insert("name", "ann");
        get_csrf_token().unwrap();
        "page"
    });
    // An SSE stream from an async generator: each event is made when the stream is polled.
    app.route("/sse", |_req: Request| async {
        Sse::new(futures_util::stream::unfold(0, |n| async move {
            tokio::task::yield_now().await;
            (n < 2).then(|| (Event::new().data(scopes()), n + 1))
        }))
        .no_keep_alive()
    });
    // A plain stream whose items are computed at poll time (a closure, no async).
    app.route("/lazy", |_req: Request| async {
        let items = futures_util::stream::iter(0..2)
            .map(|_| Ok::<_, std::io::Error>(Bytes::from(format!("{}\n", scopes()))));
        Response::stream(items).with_content_type("text/plain")
    });
    // An upgrade: the callback itself and its future both read the scopes.
    app.route("/upgrade", |_req: Request| async {
        Response::upgrade("scopes", |mut io| {
            let at_call = scopes();
            async move {
                tokio::task::yield_now().await;
                let later = scopes();
                let _ = io
                    .write_all(format!("{at_call}\n{later}\n").as_bytes())
                    .await;
            }
        })
    });
    // Changes to the session inside a stream are refused, saying why.
    app.route("/writes", |_req: Request| async {
        let items = futures_util::stream::iter(0..1).map(|_| {
            let session = get_session().unwrap();
            let insert = match session.try_insert("name", "bob") {
                Ok(()) => "inserted".to_owned(),
                Err(e) => format!("ERR {e}"),
            };
            let regenerate = regenerate_session().map_or_else(err, |_| "regenerated".into());
            let csrf = get_csrf_token().unwrap_or_else(err);
            // Flash messages too: an error, not a panic.
            let flashed = flash("lost").map_or_else(err, |()| "flashed".into());
            let taken = take_flashes().map_or_else(err, |f| format!("{f:?}"));
            Ok::<_, std::io::Error>(Bytes::from(format!(
                "insert={insert}\nregenerate={regenerate}\ncsrf={csrf}\nname={:?}\n\
                 flash={flashed}\ntake_flashes={taken}\n",
                session.get::<String>("name")
            )))
        });
        Response::stream(items)
    });
    // A task spawned from the producer does not inherit the scope: the error says so.
    app.route("/spawned", |_req: Request| async {
        let items = futures_util::stream::once(async {
            let inside = tokio::spawn(async { get_session().map(|_| ()).unwrap_err() })
                .await
                .unwrap();
            Ok::<_, std::io::Error>(Bytes::from(inside.message().to_owned()))
        });
        Response::stream(items)
    });
    // Whether the producer reads the session as it was saved: a change the handler made
    // before returning is there.
    app.route("/changed", |_req: Request| async {
        get_session()
            .unwrap()
            .insert("name", "changed-before-return");
        let items = futures_util::stream::iter(0..1)
            .map(|_| Ok::<_, std::io::Error>(Bytes::from(scopes())));
        Response::stream(items)
    });
    app
}

/// `GET path` with the session cookie and a bearer token for alice; the whole response.
async fn fetch(server: &TestServer, path: &str, cookie: &str) -> RawResponse {
    exchange(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\nAuthorization: Bearer t-alice\r\n"),
    )
    .await
}

/// Sends `head` (its lines, without the blank line) with `Connection: close` and reads the
/// response to the connection's end: its head, and its body (de-chunked when chunked; a
/// `101`'s body is what the upgrade wrote).
async fn exchange(server: &TestServer, head: &str) -> RawResponse {
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let close = match head.contains("Upgrade:") {
        true => "",
        false => "Connection: close\r\n",
    };
    conn.write_all(format!("{head}{close}\r\n").as_bytes())
        .await
        .unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let text = String::from_utf8(all).unwrap();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v == "chunked");
    let body = match chunked {
        false => rest.as_bytes().to_vec(),
        true => {
            let mut body = Vec::new();
            let mut rest = rest;
            loop {
                let (size, after) = rest.split_once("\r\n").expect("a chunk size");
                let size = usize::from_str_radix(size, 16).unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&after.as_bytes()[..size]);
                rest = &after[size + 2..];
            }
            body
        }
    };
    RawResponse {
        status,
        headers,
        body,
    }
}

/// The nonce in a response's CSP header.
fn nonce_of(res: &RawResponse) -> String {
    let csp = res.header("content-security-policy").expect("a CSP header");
    csp.split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the CSP")
        .to_owned()
}

/// The value of `name=` in one `scopes()` line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split(';')
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line:?}"))
}

/// Checks one `scopes()` line read after the middleware returned: the session read-only with
/// the page's name, alice, a CSRF token valid for this session, this response's nonce and
/// request id.
async fn check_line(server: &TestServer, line: &str, res: &RawResponse, cookie: &str) {
    assert_eq!(field(line, "session"), "ann/ro", "{line}");
    assert_eq!(field(line, "user"), "alice", "{line}");
    assert_eq!(field(line, "nonce"), nonce_of(res), "{line}");
    assert_eq!(
        Some(field(line, "id")),
        res.header("x-request-id"),
        "{line}"
    );
    let token = field(line, "csrf");
    assert_eq!(token.len(), 128, "a masked token: {line}");
    assert!(token_is_accepted(server, cookie, token).await, "{line}");
}

/// Whether a POST with `token` and the session `cookie` passes CSRF (a token read inside the
/// stream is the session's own).
async fn token_is_accepted(server: &TestServer, cookie: &str, token: &str) -> bool {
    let mut conn = server.connect().await;
    conn.send(format!(
        "POST /page HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\nX-CSRF-Token: {token}\r\nContent-Length: 0\r\n\r\n"
    ))
    .await;
    let res = conn.response().await;
    match res.status {
        405 => true, // past CSRF, to the router: /page takes GET only
        403 => false,
        other => panic!("unexpected {other}: {}", res.text()),
    }
}

async fn session_cookie(server: &TestServer) -> String {
    let mut conn = server.connect().await;
    conn.send(common::get("/page")).await;
    let page = conn.response().await;
    assert_eq!(page.status, 200, "{}", page.text());
    page.cookie_pair()
}

#[tokio::test]
async fn an_sse_generator_sees_every_scope_of_its_request() {
    let server = TestServer::start(app()).await;
    let cookie = session_cookie(&server).await;
    assert!(!token_is_accepted(&server, &cookie, &"0".repeat(128)).await);
    let res = fetch(&server, "/sse", &cookie).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let text = res.text();
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in lines {
        check_line(&server, line, &res, &cookie).await;
    }
}

#[tokio::test]
async fn a_stream_computed_at_poll_time_sees_every_scope_of_its_request() {
    let server = TestServer::start(app()).await;
    let cookie = session_cookie(&server).await;
    let res = fetch(&server, "/lazy", &cookie).await;
    assert_eq!(res.status, 200);
    let text = res.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    for line in &lines {
        check_line(&server, line, &res, &cookie).await;
    }
    // Another request's stream sees its own nonce and id, not these.
    let other = fetch(&server, "/lazy", &cookie).await;
    let other_line = other.text().lines().next().unwrap().to_owned();
    assert_ne!(field(&other_line, "id"), field(lines[0], "id"));
    assert_ne!(field(&other_line, "nonce"), field(lines[0], "nonce"));
}

#[tokio::test]
async fn an_upgrade_callback_sees_every_scope_of_its_request() {
    let server = TestServer::start(app()).await;
    let cookie = session_cookie(&server).await;
    let res = exchange(
        &server,
        &format!(
            "GET /upgrade HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\nAuthorization: Bearer t-alice\r\nConnection: upgrade\r\nUpgrade: scopes\r\n"
        ),
    )
    .await;
    assert_eq!(res.status, 101);
    let body = res.text();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "the callback and its future: {body}");
    for line in lines {
        check_line(&server, line, &res, &cookie).await;
    }
}

#[tokio::test]
async fn changing_the_session_inside_a_stream_is_refused_saying_why() {
    let server = TestServer::start(app()).await;
    // A session with a name but, as a fresh one has, no CSRF token yet.
    let res = exchange(&server, "GET /writes HTTP/1.1\r\nHost: test\r\n").await;
    assert_eq!(res.status, 200);
    let text = res.text();
    let read_only = "the session is read-only inside a response stream or an upgraded \
                     connection: its cookie went out with the response headers";
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}: {text}"))
            .to_owned()
    };
    assert!(
        line("insert").starts_with("ERR ") && line("insert").contains(read_only),
        "{text}"
    );
    assert!(line("regenerate").contains(read_only), "{text}");
    assert!(
        line("flash").starts_with("ERR ") && line("flash").contains(read_only),
        "{text}"
    );
    assert!(line("take_flashes").contains(read_only), "{text}");
    let csrf = line("csrf");
    assert!(
        csrf.contains("read-only inside a response stream")
            && csrf.contains("call get_csrf_token() once in the handler"),
        "{text}"
    );
    assert_eq!(
        line("name"),
        "None",
        "the refused insert changed nothing: {text}"
    );
}

#[tokio::test]
async fn the_stream_reads_the_session_as_the_handler_left_it() {
    let server = TestServer::start(app()).await;
    let cookie = session_cookie(&server).await;
    let res = fetch(&server, "/changed", &cookie).await;
    assert_eq!(
        field(&res.text(), "session"),
        "changed-before-return/ro",
        "{}",
        res.text()
    );
    // And the change was saved: the next request sees it.
    let cookie = res.cookie_pair();
    let next = fetch(&server, "/lazy", &cookie).await;
    let first = next.text().lines().next().unwrap().to_owned();
    assert_eq!(field(&first, "session"), "changed-before-return/ro");
}

#[tokio::test]
async fn a_task_spawned_by_the_producer_is_told_it_is_outside_the_scope() {
    let server = TestServer::start(app()).await;
    let text = exchange(&server, "GET /spawned HTTP/1.1\r\nHost: test\r\n")
        .await
        .text();
    assert!(text.starts_with("No active session"), "{text}");
    assert!(
        text.contains("tokio::spawn") && text.contains("move the Session into the task"),
        "{text}"
    );
}

/// Outside any request: the errors still name the middleware to add (the common mistake).
#[test]
fn outside_a_request_the_errors_name_the_middleware() {
    assert!(err(get_session().unwrap_err()).contains("SessionMiddleware"));
    assert!(err(get_csrf_token().unwrap_err()).contains("add CsrfMiddleware"));
    assert!(err(csp_nonce().unwrap_err()).contains("add SecurityHeadersMiddleware"));
    assert!(err(request_id().unwrap_err()).contains("add AccessLogMiddleware"));
    assert!(err(get_user::<User>().unwrap_err()).contains("AuthMiddleware"));
}
