//! htmx (issue 21, items 2, 4, 6 and 9): what an htmx request says (`req.htmx()`, in process
//! and on the wire), the response headers that steer htmx (`Hx`, `hx_redirect`), the auth
//! guards and CSRF answering htmx with `HX-Redirect` to the login page, and the test client's
//! htmx requests, assertions and event stream reader.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chirp::htmx::{hx_redirect, Hx, HxLocation};
use chirp::middleware::auth::{
    login, login_required, requires, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::csrf::{get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::sse::{Event, Sse};
use chirp::testing::TestClient;
use chirp::{App, Error, HttpError, Method, Request, Response, StatusCode};
use common::TestServer;
use serde_json::json;

/// Echoes what `req.htmx()` reads, one `name=value` line each.
fn details(req: &Request) -> String {
    let hx = req.htmx();
    let show = |v: Option<std::borrow::Cow<'_, str>>| v.map_or("-".to_owned(), |v| v.into_owned());
    format!(
        "htmx={} boosted={} restore={} partial={}\ntarget={}\ntrigger={}\nname={}\nurl={}\nprompt={}\npath={}",
        hx.is_htmx(),
        hx.is_boosted(),
        hx.is_history_restore(),
        hx.is_partial(),
        show(hx.target()),
        show(hx.trigger()),
        show(hx.trigger_name()),
        show(hx.current_url()),
        show(hx.prompt()),
        hx.current_path().unwrap_or_else(|| "-".to_owned()),
    )
}

fn details_app() -> App {
    let mut app = App::new();
    app.route_with(
        "/details",
        &[Method::Get, Method::Post],
        |req: Request| async move { details(&req) },
    );
    app
}

#[tokio::test]
async fn the_test_client_sends_what_htmx_sends() {
    let client = TestClient::new(details_app());
    let res = client
        .htmx(Method::Post, "/details")
        .header("Host", "localhost")
        .hx_target("#task-list")
        .hx_trigger("add-btn")
        .hx_trigger_name("title")
        .hx_current_url("http://localhost/board?tab=2")
        .hx_prompt("naïve “quotes”")
        .send()
        .await;
    assert_eq!(
        res.text(),
        "htmx=true boosted=false restore=false partial=true\ntarget=task-list\ntrigger=add-btn\n\
         name=title\nurl=http://localhost/board?tab=2\nprompt=naïve “quotes”\npath=/board?tab=2"
    );
    let plain = client.get("/details").await.text();
    assert!(plain.starts_with("htmx=false boosted=false restore=false partial=false\ntarget=-"));
    let restore = client
        .request(Method::Get, "/details")
        .hx_history_restore()
        .send()
        .await;
    assert!(restore
        .text()
        .starts_with("htmx=true boosted=false restore=true partial=false"));
    let boosted = client
        .request(Method::Get, "/details")
        .hx_boosted()
        .send()
        .await;
    assert!(boosted
        .text()
        .starts_with("htmx=true boosted=true restore=false partial=true"));
}

/// What a browser puts on the wire: ISO-8859-1 characters as their bytes, others
/// percent-encoded by htmx with `-URI-AutoEncoded`, and anything a hostile client sends.
#[tokio::test]
async fn headers_from_the_wire_are_decoded_as_htmx_encodes_them() {
    let server = TestServer::start(details_app()).await;
    let mut conn = server.connect().await;
    let mut raw =
        b"GET /details HTTP/1.1\r\nHost: test\r\nHX-Request: true\r\nHX-Prompt: caf".to_vec();
    raw.extend_from_slice(b"\xE9 cr\xE8me\r\n"); // "café crème" as XHR sends it
    raw.extend_from_slice(b"HX-Target: %E2%9C%93%20list\r\nHX-Target-URI-AutoEncoded: true\r\n");
    raw.extend_from_slice(b"HX-Trigger: %zz%\r\nHX-Trigger-URI-AutoEncoded: true\r\n");
    raw.extend_from_slice(b"HX-Current-URL: http://test/p\xFFq\r\n\r\n");
    conn.send(&raw).await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(
        res.text(),
        "htmx=true boosted=false restore=false partial=true\ntarget=✓ list\ntrigger=%zz%\n\
         name=-\nurl=http://test/p\u{FF}q\nprompt=café crème\npath=/p\u{FF}q"
    );
}

fn hx_app() -> App {
    let mut app = App::new();
    app.post("/tasks", |req: Request| async move {
        let title = req.query().unwrap_or("").to_owned();
        let added: Result<String, HttpError> = match title.is_empty() {
            true => Err(HttpError::unprocessable("a title is required")),
            false => Ok(format!("<li>{title}</li>")),
        };
        Hx::new(added)
            .trigger("taskAdded")
            .trigger_with("count", &json!({"n": 3}))
            .trigger_after_settle("settled")
            .push_url("/tasks/é")
    });
    app.get("/go", |_req: Request| async { hx_redirect("/login") });
    app.get("/nav", |_req: Request| async {
        Hx::new(()).location(
            HxLocation::new("/board")
                .target("#main")
                .values(&json!({"p": 1})),
        )
    });
    app.get("/split", |req: Request| async move {
        // A value taken from the request cannot split the response.
        Hx::new("x").retarget(
            req.query()
                .map(|q| q.replace("%0D%0A", "\r\n"))
                .as_deref()
                .unwrap_or(""),
        )
    });
    app
}

#[tokio::test]
async fn hx_wraps_any_response_and_its_errors() {
    let client = TestClient::new(hx_app());

    let res = client.htmx(Method::Post, "/tasks?milk").send().await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text(), "<li>milk</li>");
    assert!(res.hx_trigger_has("taskAdded") && res.hx_trigger_has("count"));
    assert!(
        !res.hx_trigger_has("settled"),
        "after-settle is a header of its own"
    );
    assert_eq!(
        res.hx_trigger_detail::<serde_json::Value>("count"),
        Some(json!({"n": 3}))
    );
    assert_eq!(res.header("HX-Trigger-After-Settle"), Some("settled"));
    assert_eq!(res.header("HX-Push-Url"), Some("/tasks/%C3%A9"));

    let failed = client.htmx(Method::Post, "/tasks").send().await;
    assert_eq!(failed.status(), StatusCode::UNPROCESSABLE_CONTENT);
    assert!(
        failed.hx_trigger_has("taskAdded"),
        "headers go on errors too"
    );

    let go = client.htmx(Method::Get, "/go").send().await;
    assert_eq!(
        (go.status(), go.hx_redirect()),
        (StatusCode::OK, Some("/login"))
    );
    assert!(go.header("location").is_none(), "no 3xx for XHR to follow");

    let nav = client.htmx(Method::Get, "/nav").send().await;
    let location: serde_json::Value =
        serde_json::from_str(nav.header("HX-Location").unwrap()).unwrap();
    assert_eq!(
        location,
        json!({"path": "/board", "target": "#main", "values": {"p": 1}})
    );

    let split = client.get("/split?a%0D%0ASet-Cookie:%20x=1").await;
    assert!(split.response().refused_header().is_some());
    assert!(split.header("set-cookie").is_none() && split.header("hx-retarget").is_none());
}

#[tokio::test]
async fn a_header_value_from_the_request_cannot_split_the_response() {
    let server = TestServer::start(hx_app()).await;
    let mut conn = server.connect().await;
    conn.send(common::get("/split?a%0D%0ASet-Cookie:%20x=1"))
        .await;
    let res = conn.response().await;
    assert_eq!(res.status, 500);
    assert!(res.header("set-cookie").is_none() && res.header("hx-retarget").is_none());
    // The same route with a harmless selector.
    conn.send(common::get("/split?%23main")).await;
    let res = conn.response().await;
    assert_eq!(
        (res.status, res.header("hx-retarget")),
        (200, Some("%23main"))
    );
}

#[derive(Clone)]
struct User(String);

impl AuthUser for User {
    fn id(&self) -> String {
        self.0.clone()
    }
}

fn secure_app(csrf: Option<CsrfConfig>, auth: bool) -> App {
    let mut app = App::new();
    app.api_prefix("/api");
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("htmx-test-secret-0123456789abcdef")).unwrap(),
    );
    if auth {
        app.add_middleware(
            AuthMiddleware::new(
                AuthConfig::new()
                    .load_user(|id: String| async move { Some(User(id)) })
                    .login_url("/login?from=app"),
            )
            .unwrap(),
        );
    }
    if let Some(csrf) = csrf {
        app.add_middleware(CsrfMiddleware::new(csrf).unwrap());
        app.route("/token", |_req: Request| async { get_csrf_token() });
    }
    if auth {
        app.post("/login", |_req: Request| async {
            login(&User("7".into()))?;
            Ok::<_, Error>("signed in")
        });
        app.route(
            "/board",
            login_required(|_req: Request| async { "<ul id=task-list></ul>" }),
        );
        app.route(
            "/admin",
            requires(&["admin"], |_req: Request| async { "admin" }),
        );
        app.route("/api/tasks", login_required(|_req: Request| async { "[]" }));
    }
    app.post("/tasks", |_req: Request| async {
        Response::html("<li>added</li>")
    });
    app
}

#[tokio::test]
async fn guards_send_htmx_to_the_login_page_with_hx_redirect() {
    let client = TestClient::new(secure_app(None, true));
    // A browser is redirected, as before.
    let page = client.get("/board").await;
    assert_eq!(page.status(), StatusCode::FOUND);
    assert_eq!(
        page.header("location"),
        Some("/login?from=app&next=%2Fboard")
    );

    // htmx: 401 with HX-Redirect, no 3xx its XHR would follow; `next` is the page the user
    // is on, not the fragment.
    let hx = client
        .htmx(Method::Get, "/board")
        .header("Host", "tasks.example")
        .hx_current_url("https://tasks.example/home?tab=1")
        .send()
        .await;
    assert_eq!(hx.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hx.hx_redirect(),
        Some("/login?from=app&next=%2Fhome%3Ftab%3D1")
    );
    assert!(hx.header("location").is_none() && hx.text().is_empty());

    // A current URL on another host gives no `next`.
    let foreign = client
        .htmx(Method::Get, "/admin")
        .header("Host", "tasks.example")
        .hx_current_url("https://evil.example/home")
        .send()
        .await;
    assert_eq!(foreign.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(foreign.hx_redirect(), Some("/login?from=app"));

    // A boosted navigation goes back to where it was going.
    let boosted = client
        .request(Method::Get, "/board?x=1")
        .hx_boosted()
        .send()
        .await;
    assert_eq!(
        boosted.hx_redirect(),
        Some("/login?from=app&next=%2Fboard%3Fx%3D1")
    );

    // A history restore wants a whole page: the browser's redirect.
    let restore = client
        .request(Method::Get, "/board")
        .hx_history_restore()
        .send()
        .await;
    assert_eq!(restore.status(), StatusCode::FOUND);
    assert_eq!(restore.hx_redirect(), None);

    // Under the API prefix, htmx or not, a 401 problem.
    let api = client.htmx(Method::Get, "/api/tasks").send().await;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.hx_redirect(), None);
    assert_eq!(api.header("content-type"), Some("application/problem+json"));

    // Signed in, htmx gets the fragment.
    client.post("/login", "").await;
    let fragment = client.htmx(Method::Get, "/board").send().await;
    assert_eq!(fragment.status(), StatusCode::OK);
    assert!(fragment.hx_redirect().is_none());
}

/// Captures log lines at INFO and above written on this thread (a `current_thread` test runs
/// the app on its own thread).
///
/// One global subscriber for the whole binary, routing each line to the capture of the thread
/// that wrote it. A scoped `set_default` subscriber raced with the other tests' callsite
/// registrations: tracing caches a callsite's interest globally, and a registration on a thread
/// with no subscriber could store "never" after this capture began, so its lines were lost
/// (about 1 run in 6 of this binary).
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

thread_local! {
    static SINK: std::cell::RefCell<Option<Log>> = const { std::cell::RefCell::new(None) };
}

/// Writes to the capturing thread's log, or nowhere.
struct ThreadSink;

impl std::io::Write for ThreadSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        SINK.with(|sink| {
            if let Some(log) = sink.borrow().as_ref() {
                log.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A capture in progress on this thread; dropping it stops the capture.
struct Capturing;

impl Drop for Capturing {
    fn drop(&mut self) {
        SINK.with(|sink| sink.borrow_mut().take());
    }
}

impl Log {
    fn capture() -> (Log, Capturing) {
        static GLOBAL: std::sync::Once = std::sync::Once::new();
        GLOBAL.call_once(|| {
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(|| ThreadSink)
                .finish();
            tracing::subscriber::set_global_default(subscriber).unwrap();
        });
        let log = Log::default();
        SINK.with(|sink| *sink.borrow_mut() = Some(log.clone()));
        (log, Capturing)
    }

    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// Logs in, takes a token, and lets the session expire (the cookie store's absolute timeout,
/// 7 days): the token now belongs to a session that is gone.
async fn expired_token(client: &TestClient, log_in: bool) -> String {
    let clock = client.clock();
    if log_in {
        assert_eq!(
            client.post("/login", "").await.status(),
            StatusCode::FORBIDDEN,
            "no token yet"
        );
        let token = client.get("/token").await.text();
        let res = client
            .request(Method::Post, "/login")
            .header("X-CSRF-Token", &token)
            .send()
            .await;
        assert_eq!(res.text(), "signed in");
    }
    let token = client.get("/token").await.text();
    clock.advance(8 * 86400);
    token
}

async fn post_tasks(client: &TestClient, token: &str, htmx: bool) -> chirp::testing::TestResponse {
    let mut req = client
        .request(Method::Post, "/tasks")
        .header("Host", "tasks.example")
        .header("X-CSRF-Token", token);
    if htmx {
        req = req.hx_current_url("http://tasks.example/board");
    }
    req.send().await
}

#[tokio::test(flavor = "current_thread")]
async fn csrf_sends_htmx_with_an_expired_session_to_log_in() {
    let (log, _guard) = Log::capture();
    let client = TestClient::new(secure_app(Some(CsrfConfig::default()), true));
    let stale = expired_token(&client, true).await;
    log.take();

    let res = post_tasks(&client, &stale, true).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.hx_redirect(), Some("/login?from=app&next=%2Fboard"));
    let lines = log.take();
    assert!(
        lines.contains("INFO") && lines.contains("its session expired"),
        "{lines}"
    );
    assert!(
        !lines.contains("csrf.reject") && !lines.contains("WARN"),
        "{lines}"
    );

    // Not htmx: the refusal it always was.
    let plain = post_tasks(&client, &stale, false).await;
    assert_eq!(plain.status(), StatusCode::FORBIDDEN);
    assert!(log.take().contains("csrf.reject.invalid"));

    // Without a token at all: missing, whatever the session.
    let missing = client.htmx(Method::Post, "/tasks").send().await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    assert!(log.take().contains("csrf.reject.missing"));

    // Cross-site, expired or not: refused before the token is looked at.
    let cross = client
        .htmx(Method::Post, "/tasks")
        .header("Sec-Fetch-Site", "cross-site")
        .header("X-CSRF-Token", &stale)
        .send()
        .await;
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    assert!(log.take().contains("csrf.reject.cross_site"));
}

#[tokio::test(flavor = "current_thread")]
async fn csrf_refuses_a_wrong_token_on_a_live_session() {
    let (log, _guard) = Log::capture();
    let client = TestClient::new(secure_app(Some(CsrfConfig::default()), true));
    let token = client.get("/token").await.text();
    let signed_in = client
        .request(Method::Post, "/login")
        .header("X-CSRF-Token", &token)
        .send()
        .await;
    assert_eq!(signed_in.text(), "signed in");
    let live = client.get("/token").await.text();
    // A token from another session, on a live one: forged, htmx or not.
    let other = TestClient::new(secure_app(Some(CsrfConfig::default()), true));
    let foreign = other.get("/token").await.text();
    log.take();
    let res = post_tasks(&client, &foreign, true).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.hx_redirect(), None);
    let lines = log.take();
    assert!(
        lines.contains("WARN") && lines.contains("csrf.reject.invalid"),
        "{lines}"
    );
    // The live token works.
    assert_eq!(
        post_tasks(&client, &live, true).await.text(),
        "<li>added</li>"
    );

    // A live session, nobody signed in (a visitor's form), a token from elsewhere: refused.
    let visitor = TestClient::new(secure_app(Some(CsrfConfig::default()), true));
    visitor.get("/token").await;
    assert_eq!(
        post_tasks(&visitor, &foreign, true).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn csrf_without_auth_takes_its_own_login_url_or_refuses() {
    let with_url = TestClient::new(secure_app(
        Some(CsrfConfig::default().login_url("/sign-in")),
        false,
    ));
    let stale = expired_token(&with_url, false).await;
    let res = post_tasks(&with_url, &stale, true).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.hx_redirect(), Some("/sign-in?next=%2Fboard"));

    let without = TestClient::new(secure_app(Some(CsrfConfig::default()), false));
    let stale = expired_token(&without, false).await;
    let res = post_tasks(&without, &stale, true).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.hx_redirect(), None);
    assert!(res.text().contains("expired"), "{}", res.text());
}

#[tokio::test]
async fn fragments_are_told_from_pages() {
    let mut app = App::new();
    app.get("/", |req: Request| async move {
        match req.htmx().is_partial() {
            true => Response::html("<ul id=\"task-list\"></ul>"),
            false => Response::html("<!DOCTYPE html><HTML><body></body></HTML>"),
        }
    });
    app.get("/text", |_req: Request| async { "<li>not html</li>" });
    let client = TestClient::new(app);
    assert!(client.htmx(Method::Get, "/").send().await.is_fragment());
    assert!(
        !client.get("/").await.is_fragment(),
        "<HTML in capitals is a page"
    );
    let restore = client
        .request(Method::Get, "/")
        .hx_history_restore()
        .send()
        .await;
    assert!(!restore.is_fragment());
    assert!(
        !client.get("/text").await.is_fragment(),
        "text/plain is no fragment"
    );
}

#[tokio::test]
async fn event_streams_are_read_event_by_event() {
    let mut app = App::new();
    app.get("/events", |_req: Request| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Event>(8);
        tokio::spawn(async move {
            let _ = tx
                .send(
                    Event::new()
                        .event("task-added")
                        .id("1")
                        .data("<li>a</li>\n<li>b</li>"),
                )
                .await;
            let _ = tx.send(Event::new().data("second")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(Event::new().event("late").data("third")).await;
            // Then nothing more, but the stream stays open.
            std::future::pending::<()>().await;
            drop(tx);
        });
        Sse::new(Receiver(rx))
    });
    app.get("/plain", |_req: Request| async { "no stream" });
    let client = TestClient::new(app);

    let mut events = client.get_sse("/events").await;
    assert_eq!(events.response().status(), StatusCode::OK);
    let first = events.take(2, Duration::from_secs(5)).await;
    assert_eq!(
        (
            first[0].event.as_str(),
            first[0].data.as_str(),
            first[0].id.as_deref()
        ),
        ("task-added", "<li>a</li>\n<li>b</li>", Some("1"))
    );
    assert_eq!(
        (first[1].event.as_str(), first[1].data.as_str()),
        ("message", "second")
    );
    let late = events
        .next_event(Duration::from_secs(5))
        .await
        .expect("the late event");
    assert_eq!((late.event.as_str(), late.data.as_str()), ("late", "third"));
    // Nothing more: the wait ends with None, and the stream is still open.
    assert_eq!(events.next_event(Duration::from_millis(50)).await, None);
    assert!(!events.is_ended());
    // Shutdown ends it.
    client.begin_shutdown();
    assert_eq!(events.next_event(Duration::from_secs(5)).await, None);
    assert!(events.is_ended());

    let not_sse = tokio::spawn(async move { client.get_sse("/plain").await });
    let panic = not_sse.await.expect_err("not an event stream");
    let message = panic.into_panic();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("200") && message.contains("no stream"),
        "{message}"
    );
}

#[tokio::test]
async fn take_says_how_many_events_came_before_the_timeout() {
    let mut app = App::new();
    app.get("/one", |_req: Request| async {
        let (tx, rx) = tokio::sync::mpsc::channel::<Event>(1);
        tokio::spawn(async move {
            let _ = tx.send(Event::new().data("only")).await;
            std::future::pending::<()>().await;
        });
        Sse::new(Receiver(rx))
    });
    let client = Arc::new(TestClient::new(app));
    let c = client.clone();
    let res = tokio::spawn(async move {
        let mut events = c.get_sse("/one").await;
        events.take(2, Duration::from_millis(100)).await
    })
    .await;
    let message = res.expect_err("only one event came").into_panic();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("expected 2 events") && message.contains("got 1 (timed out)"),
        "{message}"
    );
}

/// A channel's receiver as a stream.
struct Receiver(tokio::sync::mpsc::Receiver<Event>);

impl futures_core::Stream for Receiver {
    type Item = Event;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Event>> {
        self.0.poll_recv(cx)
    }
}
