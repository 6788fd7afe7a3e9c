//! What `TestClient` gives a test besides requests: multipart bodies (`MultipartBody`), the
//! client's address (per client and per request), and a clock the test moves by hand, which
//! sessions and the login rate limit read, per client, with no sleeping.

use std::net::SocketAddr;
use std::time::Duration;

use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, Clock, ManualClock, SessionConfig};
use chirp::testing::{MultipartBody, TestClient};
use chirp::{App, Method, Request, Service, StatusCode};

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Echoes every part: name, file name, content type, length and bytes (escaped).
fn upload_app() -> App {
    let mut app = App::new();
    app.post("/up", |mut req: Request| async move {
        let mut form = req.multipart().unwrap();
        let mut out = Vec::new();
        while let Some(field) = form.next_field().await.unwrap() {
            let name = field.name().unwrap_or("").to_owned();
            let file = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let bytes = field.bytes().await.unwrap();
            out.push(format!(
                "{name}|{file:?}|{content_type:?}|{}|{}",
                bytes.len(),
                bytes.escape_ascii()
            ));
        }
        out.join("\n")
    });
    app
}

#[tokio::test]
async fn a_multipart_body_reaches_the_handler_field_by_field() {
    let client = TestClient::new(upload_app());
    // Binary content with CR, LF and dashes, and names that need escaping.
    let binary: Vec<u8> = vec![0, 13, 10, b'-', b'-', 255, 13, 10];
    let form = MultipartBody::new()
        .text("title", "My notes")
        .text("empty", "")
        .file(
            "doc",
            "report \"final\".txt",
            "text/plain",
            "hello\r\nworld",
        )
        .file("blob", "x.bin", "application/octet-stream", binary.clone());
    let res = client.post_multipart("/up", form).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", res.text());
    let lines: Vec<String> = res.text().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "title|None|None|8|My notes".to_owned(),
            "empty|None|None|0|".to_owned(),
            // The quote travels as %22, as browsers send it.
            "doc|Some(\"report %22final%22.txt\")|Some(\"text/plain\")|12|hello\\r\\nworld"
                .to_owned(),
            format!(
                "blob|Some(\"x.bin\")|Some(\"application/octet-stream\")|8|{}",
                binary.escape_ascii()
            ),
        ]
    );
}

#[tokio::test]
async fn multipart_boundaries_are_random_unless_set() {
    let (a, b) = (MultipartBody::new(), MultipartBody::new());
    assert_ne!(a.boundary(), b.boundary());
    let fixed = MultipartBody::new().with_boundary("a boundary");
    assert_eq!(
        fixed.content_type(),
        "multipart/form-data; boundary=\"a boundary\"",
        "a boundary with a space is quoted"
    );
    // A quoted boundary parses too.
    let client = TestClient::new(upload_app());
    let res = client
        .request(Method::Post, "/up")
        .multipart(fixed.text("a", "1"))
        .send()
        .await;
    assert_eq!(res.text(), "a|None|None|1|1");
}

#[test]
#[should_panic(expected = "holds the boundary")]
fn content_holding_the_boundary_is_refused() {
    MultipartBody::new()
        .with_boundary("XyZ")
        .text("a", "one\r\n--XyZ\r\ntwo")
        .into_bytes();
}

#[tokio::test]
async fn the_peer_address_is_set_per_client_and_per_request() {
    let mut app = App::new();
    app.route("/ip", |req: Request| async move {
        req.peer_addr().map_or("none".into(), |a| a.to_string())
    });
    let service = app.build().unwrap();
    let anonymous = TestClient::from_service(service.clone());
    assert_eq!(anonymous.get("/ip").await.text(), "none");
    let client = TestClient::from_service(service).with_peer_addr(addr("192.0.2.1:4000"));
    assert_eq!(client.get("/ip").await.text(), "192.0.2.1:4000");
    let res = client
        .request(Method::Get, "/ip")
        .peer_addr(addr("[2001:db8::1]:80"))
        .send()
        .await;
    assert_eq!(res.text(), "[2001:db8::1]:80");
    assert_eq!(client.get("/ip").await.text(), "192.0.2.1:4000");
}

/// Two login attempts a minute per address, sliding windows.
fn limited_app() -> App {
    let mut app = App::new();
    app.add_middleware(
        AuthRateLimitMiddleware::new()
            .paths(&[(Method::Post, "/login")])
            .limit(2, Duration::from_secs(60))
            .sliding(true),
    );
    app.post("/login", |_req: Request| async { "checked" });
    app
}

#[tokio::test]
async fn the_rate_limit_counts_per_address_and_its_window_passes_on_the_clock() {
    let client = TestClient::new(limited_app()).with_peer_addr(addr("192.0.2.1:1000"));
    let clock = client.clock();
    let login = |from: &str| {
        client
            .request(Method::Post, "/login")
            .peer_addr(addr(from))
            .send()
    };
    assert_eq!(login("192.0.2.1:1000").await.status(), StatusCode::OK);
    assert_eq!(login("192.0.2.1:1001").await.status(), StatusCode::OK);
    let refused = login("192.0.2.1:1002").await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address has its own count.
    assert_eq!(login("198.51.100.9:1").await.status(), StatusCode::OK);
    // Half a window later the first address is still over its limit (sliding)...
    clock.advance(30);
    assert_eq!(
        login("192.0.2.1:1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // ...and two windows later it starts afresh: no sleeping.
    clock.advance(120);
    assert_eq!(login("192.0.2.1:1").await.status(), StatusCode::OK);
}

fn session_app(config: SessionConfig) -> App {
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(config).unwrap());
    app.route("/visit", |_req: Request| async {
        let session = get_session().unwrap();
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        visits.to_string()
    });
    app
}

#[tokio::test]
async fn a_session_expires_when_the_clock_passes_its_absolute_timeout() {
    let mut config = SessionConfig::new("k".repeat(32));
    config.absolute_timeout = Some(Duration::from_secs(3600));
    let client = TestClient::new(session_app(config));
    let clock = client.clock();
    assert_eq!(client.get("/visit").await.text(), "1");
    clock.advance(3599);
    assert_eq!(client.get("/visit").await.text(), "2");
    clock.advance(2);
    assert_eq!(
        client.get("/visit").await.text(),
        "1",
        "an hour after its creation the session is gone"
    );
}

#[tokio::test]
async fn each_client_has_its_own_clock() {
    let mut config = SessionConfig::new("k".repeat(32));
    config.idle_timeout = Some(Duration::from_secs(600));
    let service: Service = session_app(config).build().unwrap();
    let (a, b) = (
        TestClient::from_service(service.clone()),
        TestClient::from_service(service),
    );
    let clock_a = a.clock();
    let started = clock_a.now();
    a.clock().advance(1);
    assert_eq!(
        clock_a.now(),
        started + 1,
        "every call hands out the same clock"
    );
    for client in [&a, &b] {
        assert_eq!(client.get("/visit").await.text(), "1");
    }
    clock_a.advance(601);
    assert_eq!(a.get("/visit").await.text(), "1", "a's session went idle");
    assert_eq!(b.get("/visit").await.text(), "2", "b's time did not move");
}

#[tokio::test]
async fn the_client_clock_wins_over_the_configured_one() {
    let configured = ManualClock::new(1_000_000);
    let mut config = SessionConfig::new("k".repeat(32));
    config.absolute_timeout = Some(Duration::from_secs(3600));
    config.clock = std::sync::Arc::new(configured.clone());
    let client = TestClient::new(session_app(config));
    let clock = client.clock();
    assert_eq!(client.get("/visit").await.text(), "1");
    configured.advance(7200); // not the clock the requests carry
    assert_eq!(client.get("/visit").await.text(), "2");
    clock.advance(7200);
    assert_eq!(client.get("/visit").await.text(), "1");
}
