//! What the Python framework's own test suite, ported to chirp, found different (issue 20,
//! item 8), each now as the Python framework does it: static folders (the mount root's index,
//! the 301 to a folder's slash form, a not-found page), security event names, SSE (field
//! order, a default event name, an error event, failures logged at ERROR), the allowed-hosts
//! message when debugging, and the built-in nonce CSP.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chirp::middleware::allowed_hosts::AllowedHostsMiddleware;
use chirp::middleware::security_headers::{csp_nonce, SecurityHeadersMiddleware, NONCE_CSP};
use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::security::audit::{on_security_event, SecurityEvent};
use chirp::sse::{Event, Sse};
use chirp::testing::TestClient;
use chirp::{App, Request, Response, StatusCode};
use common::{CapturedLog, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A site: `index.html` and `home.html` at the root, `docs/` with an index, `empty/` without,
/// and a `404.html`.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("home.html"), "<h1>custom home</h1>").unwrap();
    std::fs::write(
        root.join("docs/index.html"),
        "<a href=\"guide.html\">guide</a>",
    )
    .unwrap();
    std::fs::write(root.join("404.html"), "<h1>lost?</h1>").unwrap();
    dir
}

#[tokio::test]
async fn a_folder_mounted_at_the_root_serves_its_own_index() {
    let dir = site();
    let mut app = App::new();
    app.add_middleware(StaticFilesMiddleware::new("/", dir.path()).unwrap());
    let client = TestClient::new(app);
    let res = client.get("/").await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (StatusCode::OK, "<h1>home</h1>")
    );

    // With a custom index name, at the root and in a folder that has one.
    let mut app = App::new();
    app.add_middleware(
        StaticFilesMiddleware::new("/", dir.path())
            .unwrap()
            .index(Some("home.html")),
    );
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.text(), "<h1>custom home</h1>");
    assert_eq!(client.get("/docs/").await.status(), StatusCode::NOT_FOUND);

    // A prefix's own folder: `/site/` is the root's index.
    let mut app = App::new();
    app.add_middleware(StaticFilesMiddleware::new("/site", dir.path()).unwrap());
    let client = TestClient::new(app);
    assert_eq!(client.get("/site/").await.text(), "<h1>home</h1>");
}

#[tokio::test]
async fn a_folder_without_its_slash_is_moved_permanently_to_the_slash_form() {
    let dir = site();
    let mut app = App::new();
    app.add_middleware(StaticFilesMiddleware::new("/", dir.path()).unwrap());
    let server = TestServer::start(app).await;
    let get = |target: &'static str| {
        let server = &server;
        async move {
            let mut conn = server.connect().await;
            conn.send(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"))
                .await;
            conn.response().await
        }
    };
    let res = get("/docs").await;
    assert_eq!((res.status, res.header("location")), (301, Some("/docs/")));
    let res = get("/docs?page=2&q=a%20b").await;
    assert_eq!(res.header("location"), Some("/docs/?page=2&q=a%20b"));
    // The slash form (however spelled) is the index, whose relative links now resolve inside.
    for target in ["/docs/", "//docs//", "/docs/?page=2"] {
        let res = get(target).await;
        assert_eq!(
            (res.status, res.text().as_str()),
            (200, "<a href=\"guide.html\">guide</a>"),
            "{target}"
        );
    }
    // No index, no redirect (and no listing); the root itself is never redirected.
    assert_eq!(get("/empty").await.status, 404);
    assert_eq!(get("/").await.status, 200);
}

#[tokio::test]
async fn a_custom_not_found_page_for_static_files() {
    let dir = site();
    let mut app = App::new();
    app.add_middleware(
        StaticFilesMiddleware::new("/", dir.path())
            .unwrap()
            .not_found_page("404.html")
            .unwrap(),
    );
    app.route("/api/ping", |_req: Request| async { "pong" });
    app.route("/gone", |_req: Request| async {
        Response::text("the app's own 404").with_status(StatusCode::NOT_FOUND)
    });
    app.route("/missing-thing", |_req: Request| async {
        Err::<&str, _>(chirp::HttpError::not_found("no such thing"))
    });
    let client = TestClient::new(app);
    let res = client.get("/nope.txt").await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (StatusCode::NOT_FOUND, "<h1>lost?</h1>")
    );
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(res.header("etag"), None, "a 404 page has no validators");
    // Routes still come first; a handler's 404 error gets the page; the app's own 404 stays.
    assert_eq!(client.get("/api/ping").await.text(), "pong");
    assert_eq!(client.get("/missing-thing").await.text(), "<h1>lost?</h1>");
    assert_eq!(client.get("/gone").await.text(), "the app's own 404");
    // Paths refused on principle get the page too.
    assert_eq!(client.get("/.env").await.text(), "<h1>lost?</h1>");

    // As a route handler.
    let mut app = App::new();
    app.route(
        "/files/{path:path}",
        StaticFilesMiddleware::new("/files", dir.path())
            .unwrap()
            .not_found_page("404.html")
            .unwrap(),
    );
    let client = TestClient::new(app);
    let res = client.get("/files/nope").await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (StatusCode::NOT_FOUND, "<h1>lost?</h1>")
    );

    // A page that could never be served is refused when the app is set up.
    for bad in ["../secret", ".hidden.html", ""] {
        assert!(
            StaticFilesMiddleware::new("/", dir.path())
                .unwrap()
                .not_found_page(bad)
                .is_err(),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn refused_hosts_are_the_event_host_reject_disallowed() {
    let seen: Arc<Mutex<Vec<SecurityEvent>>> = Arc::default();
    let sink = seen.clone();
    on_security_event(move |e| sink.lock().unwrap().push(e.clone()));
    let mut app = App::new();
    app.add_middleware(AllowedHostsMiddleware::new(["example.com"]).unwrap());
    app.route("/host-event", |_req: Request| async { "ok" });
    let client = TestClient::new(app);
    let res = client
        .request(chirp::Method::Get, "/host-event")
        .header("host", "evil.test")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.name == "host.reject.disallowed" && e.path == "/host-event"));
}

#[tokio::test]
async fn a_refused_host_is_explained_only_when_debugging() {
    let app = |debug: bool| {
        let mut app = App::new();
        app.add_middleware(
            AllowedHostsMiddleware::new(["example.com", ".example.org"])
                .unwrap()
                .debug(debug),
        );
        app.route("/", |_req: Request| async { "ok" });
        TestClient::new(app)
    };
    let ask = |client: TestClient, host: &'static str| async move {
        client
            .request(chirp::Method::Get, "/")
            .header("host", host)
            .send()
            .await
    };
    let terse = ask(app(false), "Evil.Test:8080").await;
    assert_eq!(terse.status(), StatusCode::BAD_REQUEST);
    assert_eq!(terse.text(), "Invalid Host header");

    let told = ask(app(true), "Evil.Test:8080").await;
    assert_eq!(told.status(), StatusCode::BAD_REQUEST);
    let text = told.text();
    assert!(
        text.contains("\"Evil.Test:8080\""),
        "the refused host: {text}"
    );
    assert!(
        text.contains("[\"example.com\", \".example.org\"]"),
        "what is served: {text}"
    );
    assert!(
        text.contains("add \"evil.test\" to AllowedHostsMiddleware::new"),
        "how to allow it: {text}"
    );
    assert_eq!(ask(app(true), "example.com").await.text(), "ok");
}

#[tokio::test]
async fn the_built_in_nonce_csp_carries_the_requests_nonce() {
    let app = |unsafe_eval: bool| {
        let mut app = App::new();
        let headers = SecurityHeadersMiddleware::new();
        app.add_middleware(if unsafe_eval {
            headers.nonce_csp_with_unsafe_eval()
        } else {
            headers.nonce_csp()
        });
        app.route("/", |_req: Request| async { csp_nonce() });
        TestClient::new(app)
    };
    let client = app(false);
    let res = client.get("/").await;
    let nonce = res.text();
    assert!(nonce.len() >= 22, "{nonce}");
    let policy = res.header("content-security-policy").unwrap();
    assert_eq!(policy, NONCE_CSP.replace("{nonce}", &nonce));
    for part in [
        "default-src 'self'",
        &format!("script-src 'self' 'nonce-{nonce}'"),
        &format!("style-src 'self' 'nonce-{nonce}'"),
        "object-src 'none'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{part} in {policy}");
    }
    assert!(!policy.contains("unsafe-eval"));
    let other = client.get("/").await.text();
    assert_ne!(other, nonce, "a fresh nonce per request");

    let res = app(true).get("/").await;
    let nonce = res.text();
    let policy = res.header("content-security-policy").unwrap();
    assert!(
        policy.contains(&format!("script-src 'self' 'unsafe-eval' 'nonce-{nonce}'")),
        "{policy}"
    );
}

/// Reads an event stream's chunks until it ends or fails: the bytes, and the failure's text.
async fn read_events(mut res: chirp::testing::TestResponse) -> (String, Option<String>) {
    let mut stream = res.response_mut().take_stream().expect("a streamed body");
    let mut text = String::new();
    while let Some(item) = std::future::poll_fn(|cx| stream.as_mut().poll_next(cx)).await {
        match item {
            Ok(chunk) => text.push_str(std::str::from_utf8(&chunk).unwrap()),
            Err(e) => return (text, Some(e.to_string())),
        }
    }
    (text, None)
}

#[tokio::test]
async fn sse_fields_go_out_in_the_documented_order() {
    let mut app = App::new();
    app.route("/events", |_req: Request| async {
        let events = futures_util::stream::iter([Event::new()
            .data("payload")
            .retry(Duration::from_secs(3))
            .id("7")
            .event("update")]);
        Sse::new(events).no_keep_alive()
    });
    let (text, failed) = read_events(TestClient::new(app).get("/events").await).await;
    assert_eq!(failed, None);
    assert_eq!(text, "event: update\nid: 7\nretry: 3000\ndata: payload\n\n");
}

#[tokio::test]
async fn a_stream_wide_default_event_name() {
    let mut app = App::new();
    app.route("/events", |_req: Request| async {
        let events = futures_util::stream::iter([
            Event::new().data("1"),
            Event::new().event("done").data("2"),
            Event::new().id("3").data("3"),
        ]);
        Sse::new(events).default_event("tick").no_keep_alive()
    });
    let (text, _) = read_events(TestClient::new(app).get("/events").await).await;
    assert_eq!(
        text,
        "event: tick\ndata: 1\n\nevent: done\ndata: 2\n\nevent: tick\nid: 3\ndata: 3\n\n"
    );
}

#[tokio::test]
async fn an_opt_in_error_event_tells_the_page_without_the_detail() {
    let stream = |with_event: bool| {
        let mut app = App::new();
        app.route("/events", move |_req: Request| async move {
            let events = futures_util::stream::iter([
                Ok(Event::new().data("1")),
                Err(std::io::Error::other("db password=hunter2 refused")),
                Ok(Event::new().data("never")),
            ]);
            let sse = Sse::try_new(events).no_keep_alive();
            if with_event {
                sse.error_event(Event::new().event("error").data("the feed is unavailable"))
            } else {
                sse
            }
        });
        TestClient::new(app)
    };
    let (text, failed) = read_events(stream(true).get("/events").await).await;
    assert_eq!(
        text,
        "data: 1\n\nevent: error\ndata: the feed is unavailable\n\n"
    );
    assert!(!text.contains("hunter2"), "no internal detail: {text}");
    assert!(
        failed.is_some_and(|e| e.contains("hunter2")),
        "the failure still goes to the server, which closes the connection"
    );
    // Off by default: the stream fails with no event.
    let (text, failed) = read_events(stream(false).get("/events").await).await;
    assert_eq!(text, "data: 1\n\n");
    assert!(failed.is_some());
}

#[tokio::test]
async fn a_failed_sse_stream_is_logged_at_error_and_the_connection_cut() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mut app = App::new();
    app.route("/events", |_req: Request| async {
        let events = futures_util::stream::iter([
            Ok(Event::new().data("1")),
            Err(std::io::Error::other("the feed broke")),
        ]);
        Sse::try_new(events)
            .no_keep_alive()
            .error_event(Event::new().event("error").data("sorry"))
    });
    let server = TestServer::start(app).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .unwrap();
    let got = String::from_utf8_lossy(&got).into_owned();
    assert!(got.contains("data: 1\n\n"), "{got}");
    assert!(got.contains("event: error\ndata: sorry\n\n"), "{got}");
    assert!(!got.ends_with("0\r\n\r\n"), "cut, not ended: {got}");
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("the feed broke"))
        .unwrap_or_else(|| panic!("the failure is logged: {text}"));
    assert!(line.contains("ERROR"), "{line}");
}
