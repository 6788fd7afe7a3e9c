//! The tasks example (examples/tasks), black-box over a real socket: every behaviour issue 21
//! (item 10) asks of it, as a client sees it (`GET /stats` is not built yet).

mod common;

#[path = "../examples/tasks/main.rs"]
#[allow(dead_code)]
mod tasks;

use std::net::SocketAddr;
use std::time::Duration;

use common::{RawResponse, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const XSS: &str = "<script>alert(1)</script>";

/// A server of the example on a fresh database file (kept in `dir`).
async fn server(dir: &tempfile::TempDir) -> TestServer {
    let db = dir.path().join("tasks.db");
    TestServer::start(tasks::app(db.to_str().unwrap()).expect("the example builds")).await
}

/// Percent-encodes a form value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser-like client: one new connection per request, the session cookie kept.
struct Client {
    addr: SocketAddr,
    cookie: Option<String>,
}

impl Client {
    fn new(server: &TestServer) -> Client {
        Client {
            addr: server.addr,
            cookie: None,
        }
    }

    fn head(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
        let mut head =
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n");
        if let Some(cookie) = &self.cookie {
            head.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> RawResponse {
        let mut raw = self.head(method, path, headers);
        if method == "POST" {
            raw.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("Connection: close\r\n\r\n");
        raw.push_str(body);
        let mut conn = common::RawConn::connect(self.addr).await;
        conn.send(raw).await;
        let res = conn.response().await;
        if let Some(set) = res.header("set-cookie") {
            self.cookie = Some(set.split(';').next().unwrap_or_default().to_owned());
        }
        res
    }

    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> RawResponse {
        self.send("GET", path, headers, "").await
    }

    async fn post(&mut self, path: &str, headers: &[(&str, &str)], body: &str) -> RawResponse {
        self.send("POST", path, headers, body).await
    }

    /// Logs in as demo / demo; the page's CSRF token (as htmx sends it).
    async fn log_in(&mut self) -> String {
        let page = self.get("/login", &[]).await;
        let token = hidden_token(&page.text());
        let res = self
            .post(
                "/login",
                &[],
                &form(&[
                    ("username", "demo"),
                    ("password", "demo"),
                    ("_csrf_token", &token),
                ]),
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.text());
        assert_eq!(res.header("location"), Some("/"));
        let page = self.get("/", &[]).await;
        assert_eq!(page.status, 200);
        header_token(&page.text())
    }
}

/// The value of the first `name="_csrf_token"` hidden field.
fn hidden_token(html: &str) -> String {
    let marker = r#"name="_csrf_token" value=""#;
    let at = html.find(marker).expect("a hidden _csrf_token field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// The token in the page's `hx-headers`.
fn header_token(html: &str) -> String {
    let marker = r#""X-CSRF-Token": ""#;
    let at = html.find(marker).expect("hx-headers with X-CSRF-Token") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn htmx_post(token: &str) -> [(&str, &str); 2] {
    [("HX-Request", "true"), ("X-CSRF-Token", token)]
}

#[tokio::test]
async fn logging_in_and_a_wrong_password() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    let page = c.get("/login", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = page.text();
    assert!(html.contains(r#"<input type="hidden" name="_csrf_token" value=""#));
    assert!(html.contains(r#"name="username""#) && html.contains(r#"name="password""#));
    let token = hidden_token(&html);

    let res = c
        .post(
            "/login",
            &[],
            &form(&[
                ("username", "demo"),
                ("password", "wrong"),
                ("_csrf_token", &token),
            ]),
        )
        .await;
    assert_eq!(res.status, 401);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(res.header("set-cookie").is_none(), "no session: {res:?}");
    let html = res.text();
    assert!(html.contains("Wrong user name or password."), "{html}");
    assert!(html.contains(r#"<form method="post" action="/login">"#));
    // Nobody is signed in.
    let res = c.get("/", &[]).await;
    assert_eq!((res.status, res.header("location")), (303, Some("/login")));

    // An unknown user: the same answer.
    let res = c
        .post(
            "/login",
            &[],
            &form(&[
                ("username", "nobody"),
                ("password", "demo"),
                ("_csrf_token", &token),
            ]),
        )
        .await;
    assert_eq!(res.status, 401);
    assert!(res.text().contains("Wrong user name or password."));

    let res = c
        .post(
            "/login",
            &[],
            &form(&[
                ("username", "demo"),
                ("password", "demo"),
                ("_csrf_token", &token),
            ]),
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/"));
    assert!(res
        .header("set-cookie")
        .unwrap()
        .starts_with("chirp_session="));
    let page = c.get("/", &[]).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Signed in as <strong>demo</strong>"));

    // Without the token, the login form is refused.
    let mut other = Client::new(&server);
    let res = other
        .post(
            "/login",
            &[],
            &form(&[("username", "demo"), ("password", "demo")]),
        )
        .await;
    assert_eq!(res.status, 403);
}

#[tokio::test]
async fn anonymous_clients_are_sent_to_log_in() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    let res = c.get("/", &[]).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/login"));

    let res = c.get("/", &[("HX-Request", "true")]).await;
    assert_eq!(res.header("hx-redirect"), Some("/login"));
    assert!(res.header("location").is_none());
    assert!(!res.text().contains("<html"));
    // Where the browser is does not change it.
    let res = c
        .get(
            "/",
            &[
                ("HX-Request", "true"),
                ("HX-Current-URL", "http://127.0.0.1/"),
            ],
        )
        .await;
    assert_eq!(res.header("hx-redirect"), Some("/login"));

    let res = c.get("/events", &[]).await;
    assert_eq!((res.status, res.header("location")), (303, Some("/login")));
}

#[tokio::test]
async fn the_page_its_fragment_and_its_history_restore() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    c.log_in().await;

    let page = c.get("/", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.header("vary").unwrap().contains("HX-Request"));
    let html = page.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<html"));
    assert!(html.contains(r#"id="task-list""#));
    assert!(html.contains(r#"id="task-count""#));
    assert!(html.contains(r#"<meta name="csrf-token" content=""#));
    assert!(html.contains(r#"hx-headers='{"X-CSRF-Token": ""#));
    // htmx and its SSE extension, from this server, allowed by the CSP.
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for script in [
        "/static/vendor/htmx-2.0.11.min.js",
        "/static/vendor/htmx-ext-sse-2.2.4.min.js",
    ] {
        assert!(
            html.contains(&format!(r#"<script src="{script}""#)),
            "{html}"
        );
        let res = c.get(script, &[]).await;
        assert_eq!(res.status, 200, "{script}");
        assert!(res.header("content-type").unwrap().contains("javascript"));
        assert!(res.body.len() > 1000);
    }
    assert!(html.contains(r#"hx-ext="sse" sse-connect="/events"#));
    assert!(html.contains(r#"sse-swap="task-added" hx-swap="beforeend""#));

    let fragment = c.get("/", &[("HX-Request", "true")]).await;
    assert_eq!(fragment.status, 200);
    assert!(fragment.header("vary").unwrap().contains("HX-Request"));
    let html = fragment.text();
    assert!(!html.contains("<html"), "{html}");
    assert!(html.contains(r#"id="task-list""#), "{html}");

    let restore = c
        .get(
            "/",
            &[
                ("HX-Request", "true"),
                ("HX-History-Restore-Request", "true"),
            ],
        )
        .await;
    assert_eq!(restore.status, 200);
    let html = restore.text();
    assert!(html.starts_with("<!doctype html>") && html.contains("<html"));
    assert!(html.contains(r#"id="task-count""#));
}

#[tokio::test]
async fn adding_tasks_with_htmx_and_without() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    let token = c.log_in().await;

    let res = c
        .post("/tasks", &htmx_post(&token), &form(&[("title", XSS)]))
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    assert!(!html.contains("<html"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
    assert!(html.starts_with(r#"<li id="task-1">"#), "{html}");
    assert!(
        html.contains(r#"<span id="task-count" hx-swap-oob="true">1 task</span>"#),
        "{html}"
    );

    // A plain form post (the token in the form): back to the page.
    let page = c.get("/", &[]).await.text();
    let field = hidden_token(&page);
    let res = c
        .post(
            "/tasks",
            &[],
            &form(&[("title", "  second  "), ("_csrf_token", &field)]),
        )
        .await;
    assert_eq!(res.status, 303);
    assert_eq!(res.header("location"), Some("/"));

    let res = c
        .post("/tasks", &htmx_post(&token), &form(&[("title", "third")]))
        .await;
    assert!(res
        .text()
        .contains(r#"id="task-count" hx-swap-oob="true">3 tasks<"#));

    let page = c.get("/", &[]).await.text();
    assert!(page.contains(r#"<li id="task-2">second</li>"#), "{page}");
    assert!(page.contains(r#"<span id="task-count">3 tasks</span>"#));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;"));
    assert!(!page.contains(XSS));
    let fragment = c.get("/", &[("HX-Request", "true")]).await.text();
    assert!(fragment.contains(r#"<li id="task-3">third</li>"#));
    assert!(!fragment.contains(XSS));
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    let token = c.log_in().await;
    let body = form(&[("title", "forged")]);
    for headers in [
        vec![("HX-Request", "true")],
        vec![],
        vec![("HX-Request", "true"), ("X-CSRF-Token", "0123abcd")],
        vec![("X-CSRF-Token", "")],
    ] {
        let res = c.post("/tasks", &headers, &body).await;
        assert_eq!(res.status, 403, "{headers:?}: {}", res.text());
    }
    let res = c
        .post(
            "/tasks",
            &[],
            &form(&[("title", "forged"), ("_csrf_token", "nope")]),
        )
        .await;
    assert_eq!(res.status, 403);
    let page = c.get("/", &[]).await.text();
    assert!(!page.contains("forged"));
    assert!(page.contains(">0 tasks<"));
    // The real token still works.
    let res = c
        .post("/tasks", &htmx_post(&token), &form(&[("title", "real")]))
        .await;
    assert_eq!(res.status, 200);
}

#[tokio::test]
async fn an_empty_or_long_title_is_a_422_form_fragment() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut c = Client::new(&server);
    let token = c.log_in().await;
    let long = "x".repeat(201);
    for (title, error) in [
        ("", "A task needs a title."),
        ("   ", "A task needs a title."),
        (long.as_str(), "A title has at most 200 characters."),
    ] {
        for headers in [htmx_post(&token).to_vec(), vec![("X-CSRF-Token", &token)]] {
            let res = c.post("/tasks", &headers, &form(&[("title", title)])).await;
            assert_eq!(res.status, 422, "{title:?}");
            assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
            let html = res.text();
            assert!(!html.contains("<html"), "{html}");
            assert!(html.contains(r#"<form id="task-form""#), "{html}");
            assert!(html.contains(error), "{html}");
        }
    }
    // The form comes back into itself, not into the list.
    let res = c
        .post(
            "/tasks",
            &htmx_post(&token),
            &form(&[("title", XSS), ("x", "")]),
        )
        .await;
    assert_eq!(res.status, 200);
    let res = c
        .post(
            "/tasks",
            &htmx_post(&token),
            &form(&[("title", &format!("{XSS}{}", "y".repeat(200)))]),
        )
        .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.header("hx-retarget"), Some("#task-form"));
    assert!(!res.text().contains(XSS), "the value typed, escaped");
    // No title field at all: the same 422.
    let res = c.post("/tasks", &htmx_post(&token), "other=1").await;
    assert_eq!(res.status, 422);
    // 200 characters is fine (and 200 of them multibyte too).
    let res = c
        .post(
            "/tasks",
            &htmx_post(&token),
            &form(&[("title", &"é".repeat(200))]),
        )
        .await;
    assert_eq!(res.status, 200);
    let page = c.get("/", &[]).await.text();
    assert!(page.contains(">2 tasks<"), "only the valid ones were kept");
}

/// An SSE stream opened over a socket: the events' text as it arrives (chunked framing
/// removed).
struct EventStream {
    stream: TcpStream,
    raw: Vec<u8>,
    text: String,
}

impl EventStream {
    async fn open(client: &Client, path: &str) -> EventStream {
        let mut stream = TcpStream::connect(client.addr).await.unwrap();
        let head = client.head("GET", path, &[("Accept", "text/event-stream")]) + "\r\n";
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut events = EventStream {
            stream,
            raw: Vec::new(),
            text: String::new(),
        };
        // The head: 200, text/event-stream.
        let head_end = loop {
            if let Some(i) = events.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(events.fill().await, "no SSE head");
        };
        let head = String::from_utf8_lossy(&events.raw[..head_end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
            "{head}"
        );
        assert!(head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"));
        events.raw.drain(..head_end);
        events
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }

    /// Moves the complete chunks received into `text`.
    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = usize::from_str_radix(
                std::str::from_utf8(&self.raw[..line_end]).unwrap().trim(),
                16,
            )
            .unwrap();
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let data = &self.raw[line_end + 2..line_end + 2 + size];
            self.text.push_str(std::str::from_utf8(data).unwrap());
            self.raw.drain(..line_end + 2 + size + 2);
        }
    }

    /// The next event that has an `event:` line (comments and keep-alives skipped), within 5 s.
    async fn next_event(&mut self) -> Option<String> {
        loop {
            self.dechunk();
            while let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                if event.lines().any(|l| l.starts_with("event:")) {
                    return Some(event);
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }
}

#[tokio::test]
async fn new_tasks_go_to_every_page_over_sse_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut alice = Client::new(&server);
    let token = alice.log_in().await;
    let mut bob = Client::new(&server);
    bob.log_in().await;

    let mut plain = EventStream::open(&bob, "/events").await;
    // A page that added the task itself has it already: its stream skips it.
    let mut own_page = EventStream::open(&alice, "/events?page=alices-page").await;
    // Let the subscriptions start before the first task.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut headers = htmx_post(&token).to_vec();
    headers.push(("X-Page-Id", "alices-page"));
    let res = alice
        .post("/tasks", &headers, &form(&[("title", XSS)]))
        .await;
    assert_eq!(res.status, 200);
    let res = alice
        .post(
            "/tasks",
            &htmx_post(&token),
            &form(&[("title", "two\nlines")]),
        )
        .await;
    assert_eq!(res.status, 200);

    let first = plain.next_event().await.expect("an event");
    assert_eq!(
        first,
        "event: task-added\ndata: <li id=\"task-1\">&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</li>\n\n"
    );
    assert!(!first.contains("<script"));
    let second = plain.next_event().await.expect("a second event");
    assert_eq!(
        second,
        "event: task-added\ndata: <li id=\"task-2\">two\ndata: lines</li>\n\n"
    );
    // The adding page got only the task another page added.
    let only = own_page.next_event().await.expect("an event");
    assert!(only.contains(r#"<li id="task-2">"#), "{only}");
}

#[tokio::test]
async fn a_restart_on_the_same_file_keeps_the_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = server(&dir).await;
    let mut c = Client::new(&first);
    let token = c.log_in().await;
    let res = c
        .post("/tasks", &htmx_post(&token), &form(&[("title", "kept")]))
        .await;
    assert_eq!(res.status, 200);
    first.stop();
    let _ = first.handle.await;

    // The same file, a new app (and a new signing key: log in again).
    let second = server(&dir).await;
    let mut c = Client::new(&second);
    c.log_in().await;
    let page = c.get("/", &[]).await.text();
    assert!(page.contains(r#"<li id="task-1">kept</li>"#), "{page}");
    assert!(page.contains(r#"<span id="task-count">1 task</span>"#));
}

/// The raw body of a chunked response, chunk by chunk: `GET path` with the client's cookie.
async fn chunks_of(client: &Client, path: &str, headers: &[(&str, &str)]) -> (String, Vec<String>) {
    let mut stream = TcpStream::connect(client.addr).await.unwrap();
    // Keep-alive, so the body is chunked (a close-delimited one would hide the chunks): read
    // until the last chunk.
    let head = client.head("GET", path, headers) + "\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    while !raw.ends_with(b"\r\n0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("the response ends")
            .unwrap();
        assert!(n > 0, "closed before the last chunk");
        raw.extend_from_slice(&buf[..n]);
    }
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut body = &raw[head_end..];
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}{}",
        String::from_utf8_lossy(body)
    );
    let mut chunks = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        if size == 0 {
            break;
        }
        let data = &body[line_end + 2..line_end + 2 + size];
        chunks.push(String::from_utf8(data.to_vec()).unwrap());
        body = &body[line_end + 2 + size + 2..];
    }
    (head, chunks)
}

/// `GET /stats`: the shell (the page, a `Loading…` placeholder `id="stats"`) is a chunk of its
/// own, sent before the slow source answers; the figures follow in the same response, as a
/// `<template>` and a `<script>` for a plain load, as an `hx-swap-oob` element for htmx.
#[tokio::test]
async fn stats_stream_the_shell_first_then_the_figures() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(&dir).await;
    let mut client = Client::new(&server);
    let anonymous = client.get("/stats", &[]).await;
    assert_eq!(anonymous.status, 303);
    let token = client.log_in().await;
    let hostile = "<script>alert(1)</script>";
    for title in ["first", hostile] {
        let res = client
            .post("/tasks", &htmx_post(&token), &form(&[("title", title)]))
            .await;
        assert_eq!(res.status, 200, "{}", res.text());
    }

    let started = std::time::Instant::now();
    let (head, chunks) = chunks_of(&client, "/stats", &[]).await;
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        lower.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(lower.contains("vary: hx-request"), "{head}");
    let shell = &chunks[0];
    assert!(
        shell.contains("<html") && shell.contains(r#"id="stats""#),
        "{shell}"
    );
    assert!(shell.contains("Loading…"), "{shell}");
    assert!(
        !shell.contains("2 tasks") && !shell.contains("<template"),
        "{shell}"
    );
    let rest = chunks[1..].concat();
    assert!(
        rest.contains("<template") && rest.contains("<script"),
        "{rest}"
    );
    assert!(rest.contains("2 tasks"), "{rest}");
    assert!(rest.contains("&lt;script&gt;alert(1)&lt;"), "{rest}");
    assert!(!rest.contains(hostile), "escaped: {rest}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the source waits CHIRP_STATS_DELAY_MS (500) before it answers"
    );

    let (_, chunks) = chunks_of(&client, "/stats", &[("HX-Request", "true")]).await;
    let rest = chunks[1..].concat();
    assert!(
        rest.contains("hx-swap-oob") && rest.contains(r#"id="stats""#),
        "{rest}"
    );
    assert!(!rest.contains("<template"), "{rest}");
    assert!(rest.contains("2 tasks"), "{rest}");
}
