//! The access log: one event per request with its fields, captured with a test subscriber;
//! request ids made, echoed, reachable by handlers, and taken from trusted proxies only.

mod common;

use chirp::http::TrustedProxies;
use chirp::middleware::access_log::{request_id, AccessLogMiddleware};
use chirp::{App, Request, StatusCode};
use common::{CapturedLog as Captured, TestServer};

fn app(proxies: &[&str]) -> App {
    let mut app = App::new();
    app.add_middleware(
        AccessLogMiddleware::new().trusted_proxies(TrustedProxies::new(proxies).unwrap()),
    );
    app.route("/", |_req: Request| async {
        format!("id {}", request_id().unwrap())
    });
    app.route("/teapot", |_req: Request| async {
        (StatusCode::IM_A_TEAPOT, "short and stout")
    });
    app
}

/// One subscriber for the whole test binary, set once: a thread-local default would race with
/// the other test over `tracing`'s per-callsite interest cache.
fn captured() -> Captured {
    static OUT: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    OUT.get_or_init(|| {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        out
    })
    .clone()
}

#[tokio::test]
async fn each_request_is_one_event_with_its_fields() {
    let out = captured();

    let server = TestServer::start(app(&[])).await;
    let mut conn = server.connect().await;
    conn.send("GET /teapot HTTP/1.1\r\nHost: t\r\nX-Request-Id: forged-by-client\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.status, 418);
    let id = res.header("x-request-id").unwrap().to_owned();
    assert_ne!(
        id, "forged-by-client",
        "an untrusted client's id is not taken"
    );
    assert_eq!(id.len(), 32);

    let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("chirp::access") && l.contains("/teapot"))
        .unwrap_or_else(|| panic!("no access event in {log:?}"));
    for field in [
        "method=\"GET\"",
        "path=/teapot",
        "status=418",
        "bytes=15",
        "client_ip=\"127.0.0.1\"",
        "duration_ms=",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    assert!(line.contains(&format!("request_id={id}")), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    assert_eq!(
        log.lines()
            .filter(|l| l.contains("chirp::access") && l.contains("/teapot"))
            .count(),
        1
    );
}

#[tokio::test]
async fn handlers_see_the_id_and_trusted_proxies_forward_theirs() {
    let out = captured();
    let server = TestServer::start(app(&["127.0.0.1"])).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: edge-42\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.text(), "id edge-42");
    assert_eq!(res.header("x-request-id"), Some("edge-42"));
    // A malformed id from a trusted proxy is replaced.
    conn.send("GET / HTTP/1.1\r\nHost: t\r\nX-Request-Id: bad id\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_ne!(res.header("x-request-id"), Some("bad id"));
    assert_eq!(
        res.text(),
        format!("id {}", res.header("x-request-id").unwrap())
    );
    assert!(request_id().is_err(), "no id outside a request");
    // Behind the trusted proxy, the client is the one it forwarded for.
    let log = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("request_id=edge-42") && l.contains("client_ip=\"203.0.113.9\"")),
        "{log}"
    );
}
