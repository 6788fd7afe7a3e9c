//! The notes example's error contract, black-box over a real socket (issue 20, "Done when"):
//! under `/api`, every error chirp makes (401, 403, 404, 405, 413, 415, 422) is
//! `application/problem+json` whatever the client's `Accept` (none, `*/*`, `text/html`);
//! outside it, the example's HTML error page.

#[path = "../examples/notes.rs"]
#[allow(dead_code)]
mod notes;

mod common;

use common::{RawResponse, TestServer};
use serde_json::Value;

/// The three `Accept`s an API must not be misled by: none (many HTTP libraries), `*/*` (curl,
/// `fetch()`), and a browser's.
const ACCEPTS: [Option<&str>; 3] = [None, Some("*/*"), Some("text/html,application/xhtml+xml")];

/// A request to send: method, path, headers and body.
struct Req<'a> {
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
    body: &'a [u8],
}

impl<'a> Req<'a> {
    fn new(method: &'a str, path: &'a str) -> Req<'a> {
        Req {
            method,
            path,
            headers: Vec::new(),
            body: b"",
        }
    }

    fn header(mut self, name: &'a str, value: impl Into<String>) -> Req<'a> {
        self.headers.push((name, value.into()));
        self
    }

    fn body(mut self, content_type: &'a str, body: &'a [u8]) -> Req<'a> {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    /// The bytes on the wire, with `accept` (if any) and a Content-Length for a body.
    fn raw(&self, accept: Option<&str>) -> Vec<u8> {
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: notes.test\r\n",
            self.method, self.path
        );
        if let Some(accept) = accept {
            head.push_str(&format!("Accept: {accept}\r\n"));
        }
        let mut has_length = false;
        for (name, value) in &self.headers {
            has_length |= name.eq_ignore_ascii_case("content-length");
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !has_length && (!self.body.is_empty() || self.method == "POST") {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut raw = head.into_bytes();
        raw.extend_from_slice(self.body);
        raw
    }
}

/// Sends `req` on a connection of its own; the response.
async fn send(server: &TestServer, req: &Req<'_>, accept: Option<&str>) -> RawResponse {
    let mut conn = server.connect().await;
    conn.send(req.raw(accept)).await;
    conn.response().await
}

/// A signed-in browser session: its cookie and its CSRF token.
struct Session {
    cookie: String,
    token: String,
}

/// The session cookie a response sets, if it sets one.
fn session_cookie(res: &RawResponse) -> Option<String> {
    res.headers_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("chirp_session="))
        .map(|c| c.split(';').next().unwrap_or_default().to_owned())
}

/// Logs in as the example's demo user, as a browser does: the login page (a session and its
/// token), the form posted, then the API's CSRF token for the new session.
async fn log_in(server: &TestServer) -> Session {
    let page = send(server, &Req::new("GET", "/login"), Some("text/html")).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    let token = text
        .split(r#"name="_csrf_token" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login form carries a CSRF token")
        .to_owned();
    let cookie = session_cookie(&page).expect("a session cookie");
    let form = format!("username=demo&password=demo&_csrf_token={token}");
    let login = Req::new("POST", "/login")
        .header("Cookie", cookie.clone())
        .body("application/x-www-form-urlencoded", form.as_bytes());
    let res = send(server, &login, Some("text/html")).await;
    assert_eq!(res.status, 303, "{}", res.text());
    assert_eq!(res.header("location"), Some("/notes"));
    let cookie = session_cookie(&res).expect("a new session at login");
    let csrf = Req::new("GET", "/api/csrf").header("Cookie", cookie.clone());
    let res = send(server, &csrf, None).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let token: Value = serde_json::from_slice(&res.body).unwrap();
    Session {
        cookie: session_cookie(&res).unwrap_or(cookie),
        token: token["token"].as_str().unwrap().to_owned(),
    }
}

/// Starts the example's app on a socket.
async fn notes_server() -> TestServer {
    TestServer::start(notes::app().expect("the example's app builds")).await
}

/// The reason phrase RFC 9110 gives `status`: the problem's title.
fn title(status: u16) -> &'static str {
    chirp::StatusCode::from_u16(status).unwrap().reason()
}

/// Asserts `res` is the problem+json of `status` (for `what`); the problem.
fn assert_problem(res: &RawResponse, status: u16, what: &str) -> Value {
    assert_eq!(res.status, status, "{what}: {}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("application/problem+json"),
        "{what}: {}",
        res.text()
    );
    let problem: Value = serde_json::from_slice(&res.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", res.text()));
    assert_eq!(problem["status"], status, "{what}: {problem}");
    assert_eq!(problem["title"], title(status), "{what}: {problem}");
    assert_eq!(problem["type"], "about:blank", "{what}: {problem}");
    assert!(problem["detail"].is_string(), "{what}: {problem}");
    problem
}

/// Asserts `res` is the example's HTML error page for `status` (for `what`).
fn assert_page(res: &RawResponse, status: u16, what: &str) {
    assert_eq!(res.status, status, "{what}: {}", res.text());
    assert_eq!(
        res.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}: {}",
        res.text()
    );
    let page = res.text();
    assert!(
        page.contains(&format!("<h1>{}</h1>", title(status))),
        "{what}: {page}"
    );
}

#[tokio::test]
async fn every_api_error_is_problem_json_whatever_the_accept() {
    let server = notes_server().await;
    let session = log_in(&server).await;
    let json = br#"{"text":"a note"}"#;
    let signed = |req: Req<'static>| -> Req<'static> {
        req.header("Cookie", session.cookie.clone())
            .header("X-CSRF-Token", session.token.clone())
    };
    let cases: Vec<(u16, &str, Req<'static>)> = vec![
        (401, "anonymous", Req::new("GET", "/api/notes")),
        (
            403,
            "no CSRF token",
            Req::new("POST", "/api/notes")
                .header("Cookie", session.cookie.clone())
                .body("application/json", json),
        ),
        (404, "no such endpoint", Req::new("GET", "/api/nope")),
        (
            404,
            "no such note",
            signed(Req::new("DELETE", "/api/notes/999")),
        ),
        (
            405,
            "GET of a DELETE route",
            Req::new("GET", "/api/notes/1"),
        ),
        (
            413,
            "a body over the server's limit, refused before any handler",
            signed(Req::new("POST", "/api/notes"))
                .header("Content-Type", "application/json")
                .header("Content-Length", "3000000"),
        ),
        (
            415,
            "not JSON",
            signed(Req::new("POST", "/api/notes")).body("text/plain", json),
        ),
        (
            422,
            "JSON that does not fit",
            signed(Req::new("POST", "/api/notes")).body("application/json", br#"{"txt":"x"}"#),
        ),
        (
            422,
            "the app's own validation",
            signed(Req::new("POST", "/api/notes")).body("application/json", br#"{"text":" "}"#),
        ),
    ];
    for (status, what, req) in &cases {
        for accept in ACCEPTS {
            let what = format!(
                "{status} {what} ({} {}, Accept {accept:?})",
                req.method, req.path
            );
            let res = send(&server, req, accept).await;
            let problem = assert_problem(&res, *status, &what);
            if *status == 422 {
                assert_eq!(problem["errors"][0]["field"], "text", "{what}: {problem}");
                assert!(problem["errors"][0]["message"].is_string(), "{what}");
            }
            if *status == 405 {
                assert!(res.header("allow").unwrap().contains("DELETE"), "{what}");
            }
            if *status == 401 {
                assert!(res.header("www-authenticate").is_some(), "{what}");
            }
        }
    }
    // The API still works: the errors above changed nothing.
    let ok = signed(Req::new("POST", "/api/notes")).body("application/json", json);
    assert_eq!(send(&server, &ok, None).await.status, 201);
}

#[tokio::test]
async fn errors_outside_the_api_are_the_apps_html_page() {
    let server = notes_server().await;
    let session = log_in(&server).await;
    let signed = |req: Req<'static>| -> Req<'static> {
        req.header("Cookie", session.cookie.clone())
            .header("X-CSRF-Token", session.token.clone())
    };
    let form = "application/x-www-form-urlencoded";
    let cases: Vec<(u16, &str, Req<'static>)> = vec![
        (
            403,
            "no CSRF token",
            Req::new("POST", "/notes")
                .header("Cookie", session.cookie.clone())
                .body(form, b"text=hi"),
        ),
        (404, "no such page", Req::new("GET", "/no/such/page")),
        (405, "GET of a POST route", Req::new("GET", "/logout")),
        (
            413,
            "a body over the server's limit",
            signed(Req::new("POST", "/notes"))
                .header("Content-Type", form)
                .header("Content-Length", "3000000"),
        ),
        (
            415,
            "not a form",
            signed(Req::new("POST", "/notes")).body("application/json", br#"{"text":"x"}"#),
        ),
        (
            422,
            "a form that does not fit",
            signed(Req::new("POST", "/notes")).body(form, b"txt=x"),
        ),
    ];
    for (status, what, req) in &cases {
        for accept in ACCEPTS {
            let what = format!(
                "{status} {what} ({} {}, Accept {accept:?})",
                req.method, req.path
            );
            let res = send(&server, req, accept).await;
            assert_page(&res, *status, &what);
        }
    }
    let res = send(&server, &Req::new("GET", "/no/such/page"), None).await;
    assert!(
        res.text().contains("Nothing at /no/such/page."),
        "{}",
        res.text()
    );

    // Anonymous: a browser is sent to log in; a client that accepts anything but HTML is
    // answered 401, with the page (it did not ask for JSON, and this is not the API).
    for accept in [None, Some("text/html")] {
        let res = send(&server, &Req::new("GET", "/notes"), accept).await;
        assert_eq!(res.status, 302, "Accept {accept:?}");
        assert_eq!(res.header("location"), Some("/login?next=%2Fnotes"));
    }
    let res = send(&server, &Req::new("GET", "/notes"), Some("*/*")).await;
    assert_page(&res, 401, "anonymous, Accept */*");
    // A client that asks for JSON gets JSON anywhere.
    let res = send(
        &server,
        &Req::new("GET", "/no/such/page"),
        Some("application/json"),
    )
    .await;
    assert_problem(&res, 404, "Accept: application/json outside the API");
}
