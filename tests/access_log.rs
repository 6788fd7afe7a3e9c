//! The access log: one event per request with its fields, captured with a test subscriber;
//! request ids made, echoed, reachable by handlers, and taken from trusted proxies only.

mod common;

use chirp::http::TrustedProxies;
use chirp::middleware::access_log::{request_id, AccessLogMiddleware};
use chirp::sse::{Event, Sse};
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
    // Three events, 50 ms apart, then the end.
    app.route("/three", |_req: Request| async {
        let ticks = futures_util::stream::unfold(0u32, |n| async move {
            if n == 3 {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Some((Event::new().data("tick"), n + 1))
        });
        Sse::new(ticks)
    });
    // One event, then nothing until the client leaves.
    app.route("/forever", |_req: Request| async {
        let first = futures_util::stream::once(async { Event::new().data("only") });
        Sse::new(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
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

/// A streamed response is logged once, when its stream ends: with the bytes it produced and
/// the time it ran, not when its head left; and a stream the client leaves is logged as
/// dropped.
#[tokio::test]
async fn a_stream_is_logged_when_it_ends() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let out = captured();
    let server = TestServer::start(app(&[])).await;

    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        conn.read_to_end(&mut raw),
    )
    .await
    .unwrap()
    .unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let body_bytes = raw.matches("data: tick\n\n").count() * "data: tick\n\n".len();
    assert_eq!(body_bytes, 3 * 12, "{raw}");
    let line = wait_for_line(&out, "/three").await;
    assert!(line.contains(&format!("bytes={body_bytes}")), "{line}");
    assert!(line.contains("stream_end=\"complete\""), "{line}");
    let ms: f64 = line
        .split("duration_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {line}"));
    assert!(ms >= 140.0, "logged before the stream ended: {ms} ms");

    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("data: only") {
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0);
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(
        !out.text()
            .lines()
            .any(|l| l.contains("chirp::access") && l.contains("/forever")),
        "logged while the stream was still open"
    );
    drop(conn);
    let line = wait_for_line(&out, "/forever").await;
    assert!(line.contains("stream_end=\"dropped\""), "{line}");
    assert!(line.contains("bytes=12"), "{line}");
}

/// The access event for `path`, once it has been written (within 5 s).
async fn wait_for_line(out: &Captured, path: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(line) = out
            .text()
            .lines()
            .find(|l| l.contains("chirp::access") && l.contains(&format!("path={path} ")))
        {
            return line.to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access event for {path}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
