//! Streamed response bodies and Server-Sent Events over real sockets: framing read by a real
//! client (hyper), backpressure, a client going away, stream errors, HEAD, pipelining,
//! sessions, and the SSE example read event by event.

mod common;

#[path = "../examples/sse.rs"]
#[allow(dead_code)]
mod sse_example;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, SessionConfig};
use chirp::sse::{Event, Sse};
use chirp::{App, Request, Response, ServerConfig};
use common::{get, TestServer};
use futures_util::StreamExt;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Chunk = Result<Bytes, std::io::Error>;

/// A stream of `n` chunks `"chunk i;"`, one every `every`.
fn slow_chunks(n: usize, every: Duration) -> impl futures_util::Stream<Item = Chunk> + Send {
    futures_util::stream::unfold(0, move |i| async move {
        if i == n {
            return None;
        }
        tokio::time::sleep(every).await;
        Some((Ok(Bytes::from(format!("chunk {i};"))), i + 1))
    })
}

/// Sets its flag when dropped: shows that the server let go of a producer.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Endless 64 KiB chunks; counts the ones produced and flags its drop.
fn endless(polled: Arc<AtomicUsize>, dropped: Arc<AtomicBool>) -> Response {
    let guard = DropFlag(dropped);
    let stream = futures_util::stream::repeat_with(move || {
        let _keep = &guard;
        polled.fetch_add(1, Ordering::SeqCst);
        Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 64 * 1024]))
    });
    Response::stream(stream)
}

fn app() -> App {
    let mut app = App::new();
    app.route("/chunks", |_req: Request| async {
        Response::stream(slow_chunks(3, Duration::from_millis(30))).with_content_type("text/plain")
    });
    app.route("/sized", |_req: Request| async {
        Response::stream_with_length(24, slow_chunks(3, Duration::from_millis(1)))
    });
    app.route("/short", |_req: Request| async {
        Response::stream_with_length(100, slow_chunks(1, Duration::from_millis(1)))
    });
    app.route("/fails", |_req: Request| async {
        let chunks =
            slow_chunks(2, Duration::from_millis(1)).chain(futures_util::stream::once(async {
                Err(std::io::Error::other("the database went away"))
            }));
        Response::stream(chunks)
    });
    app.route("/plain", |_req: Request| async { "plain" });
    app
}

/// hyper, a real HTTP/1.1 client, reads the chunked body whole.
#[tokio::test]
async fn a_chunked_stream_is_read_by_a_real_client() {
    let server = TestServer::start(app()).await;
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, String>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..2 {
        // Twice on one connection: the chunked framing ended where it should.
        let req = hyper::Request::get("/chunks")
            .header("host", "test")
            .body(String::new())
            .unwrap();
        let res = sender.send_request(req).await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["transfer-encoding"], "chunked");
        assert!(res.headers().get("content-length").is_none());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"chunk 0;chunk 1;chunk 2;");
    }
    let req = hyper::Request::get("/sized")
        .header("host", "test")
        .body(String::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.headers()["content-length"], "24");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"chunk 0;chunk 1;chunk 2;");
}

/// Reads until the server closes the connection.
async fn read_to_close(conn: &mut tokio::net::TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .ok();
    String::from_utf8_lossy(&all).into_owned()
}

/// HTTP/1.0 has no chunked coding, and `Connection: close` asks for none: the body ends
/// when the connection closes.
#[tokio::test]
async fn http_1_0_and_connection_close_get_a_close_delimited_body() {
    let server = TestServer::start(app()).await;
    for request in [
        "GET /chunks HTTP/1.0\r\n\r\n",
        "GET /chunks HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ] {
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let all = read_to_close(&mut conn).await;
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("transfer-encoding"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
        assert!(head.contains("connection: close"), "{head}");
        assert_eq!(body, "chunk 0;chunk 1;chunk 2;");
    }
}

/// A stream that fails, or ends short of its length, closes the connection: no last chunk,
/// so no client takes the cut body for a whole one.
#[tokio::test]
async fn a_failing_stream_cuts_the_connection() {
    let server = TestServer::start(app()).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/fails").as_bytes()).await.unwrap();
    let all = read_to_close(&mut conn).await;
    assert!(all.contains("transfer-encoding: chunked"), "{all}");
    assert!(all.contains("chunk 1;"), "{all}");
    assert!(!all.ends_with("0\r\n\r\n"), "a clean end was sent: {all:?}");

    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/short").as_bytes()).await.unwrap();
    let all = read_to_close(&mut conn).await;
    assert!(all.contains("content-length: 100"), "{all}");
    assert!(all.ends_with("chunk 0;"), "{all:?}");

    // hyper sees an error, not a body.
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, String>(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("/fails")
        .header("host", "test")
        .body(String::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert!(res.into_body().collect().await.is_err());
}

/// HEAD gets the head of the streamed response and no body; the producer is never polled.
#[tokio::test]
async fn head_sends_the_head_only() {
    let polled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut app = App::new();
    let (p, d) = (polled.clone(), dropped.clone());
    app.route("/endless", move |_req: Request| {
        let (p, d) = (p.clone(), d.clone());
        async move { endless(p, d) }
    });
    app.route("/plain", |_req: Request| async { "plain" });
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send("HEAD /endless HTTP/1.1\r\nHost: t\r\n\r\nGET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let head = conn.response_for(true).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("transfer-encoding"), Some("chunked"));
    let next = conn.response().await;
    assert_eq!(
        next.text(),
        "plain",
        "the connection goes on after the head"
    );
    assert_eq!(polled.load(Ordering::SeqCst), 0);
    assert!(dropped.load(Ordering::SeqCst));
}

/// A producer is polled only as the client reads; a client that stops reading is cut off
/// after `write_timeout` and its producer dropped; one that goes away, at once.
#[tokio::test]
async fn backpressure_and_a_client_that_goes_away() {
    let polled = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let mut app = App::new();
    let (p, d) = (polled.clone(), dropped.clone());
    app.route("/endless", move |_req: Request| {
        let (p, d) = (p.clone(), d.clone());
        async move { endless(p, d) }
    });
    let config = ServerConfig {
        write_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(app, config).await;

    // Stops reading: the socket buffers fill, then production stops.
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/endless").as_bytes()).await.unwrap();
    let mut some = vec![0u8; 1024];
    let _ = conn.read(&mut some).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_stall = polled.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        polled.load(Ordering::SeqCst),
        at_stall,
        "produced while the client was not reading"
    );
    // Kernel buffers hold a few MiB at most: production is bounded by them, not endless.
    assert!(
        at_stall < 400,
        "{at_stall} chunks of 64 KiB produced for a client that read 1 KiB"
    );
    let start = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the write timeout did not end the stream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(conn);

    // Reads a while, then goes away: the producer is dropped promptly.
    dropped.store(false, Ordering::SeqCst);
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/endless").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0;
    while got < 1024 * 1024 {
        got += conn.read(&mut buf).await.unwrap();
    }
    drop(conn);
    let start = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the producer outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A slow stream whose client goes away while the stream has nothing ready: the server sees
/// the close while it waits, not at its next write.
#[tokio::test]
async fn a_client_leaving_an_idle_stream_drops_it() {
    let dropped = Arc::new(AtomicBool::new(false));
    let mut app = App::new();
    let d = dropped.clone();
    app.route("/quiet", move |_req: Request| {
        let guard = DropFlag(d.clone());
        async move {
            let stream =
                futures_util::stream::once(async { Ok::<_, std::io::Error>(Bytes::from("hello")) })
                    .chain(futures_util::stream::pending())
                    .map(move |chunk| {
                        let _keep = &guard;
                        chunk
                    });
            Response::stream(stream)
        }
    });
    let server = TestServer::start(app).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/quiet").as_bytes()).await.unwrap();
    // The head and the first chunk may come in separate reads: read until the chunk is
    // there, so the client leaves while the stream is idle, not before it started.
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n5\r\nhello\r\n") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(2), conn.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no first chunk within 2 s: {:?}",
                    String::from_utf8_lossy(&got)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "closed before the first chunk: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    drop(conn);
    let start = Instant::now();
    while !dropped.load(Ordering::SeqCst) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the idle stream outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Requests pipelined behind a streamed response are answered after it, in order.
#[tokio::test]
async fn pipelined_requests_wait_for_the_stream() {
    let server = TestServer::start(app()).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(format!("{}{}", get("/chunks"), get("/plain")).as_bytes())
        .await
        .unwrap();
    let mut all = Vec::new();
    let start = Instant::now();
    while !all.ends_with(b"plain") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        all.extend_from_slice(&buf[..n]);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    let text = String::from_utf8(all).unwrap();
    let stream_end = text.find("0\r\n\r\n").expect("the stream ended cleanly");
    let plain = text
        .find("HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ndate")
        .unwrap();
    assert!(text[..stream_end].contains("chunk 2;"));
    assert!(
        plain > stream_end,
        "the pipelined answer came before the stream ended: {text}"
    );
}

/// Header-only middleware works on streamed responses: the session is saved (its cookie is
/// in the head) before the first chunk is produced.
#[tokio::test]
async fn the_session_is_saved_before_the_first_byte() {
    let produced = Arc::new(AtomicBool::new(false));
    let mut app = App::new();
    let p = produced.clone();
    app.add_middleware(SessionMiddleware::new(SessionConfig::new("s".repeat(32))).unwrap());
    app.route("/count", move |_req: Request| {
        let p = p.clone();
        async move {
            get_session().unwrap().insert("streamed", true);
            let stream = futures_util::stream::once(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                p.store(true, Ordering::SeqCst);
                Ok::<_, std::io::Error>(Bytes::from("late"))
            });
            Response::stream(stream)
        }
    });
    let server = TestServer::start(app).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/count").as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.contains("set-cookie: chirp_session="), "{head}");
    assert!(
        !produced.load(Ordering::SeqCst),
        "the head waited for the body"
    );
}

/// The SSE example over a socket: events are read as they are sent (the stream never
/// ends), named `tick`, with `id` and `data` counting from 1, and resumed after
/// `Last-Event-ID`.
#[tokio::test]
async fn the_sse_example_sends_events_as_they_happen() {
    let server = TestServer::start(sse_example::app(Duration::from_millis(100))).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/events").as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 3 {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
            .await
            .expect("an event within 3 s")
            .unwrap();
        assert!(n > 0);
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
        while times.len() < 3 && text.contains(&format!("data: {}\n\n", times.len() + 1)) {
            times.push(start.elapsed());
        }
    }
    assert!(text.contains("content-type: text/event-stream"), "{text}");
    assert!(text.contains("cache-control: no-cache"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"), "{text}");
    for n in 1..=3 {
        assert!(
            text.contains(&format!("event: tick\nid: {n}\ndata: {n}\n\n")),
            "{text}"
        );
    }
    // Each arrived on its own, about 100 ms apart, not all at the end.
    assert!(times[1] > times[0] + Duration::from_millis(50), "{times:?}");
    assert!(times[2] > times[1] + Duration::from_millis(50), "{times:?}");

    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /events HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 41\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    let mut more = [0u8; 1024];
    while !text.contains("data: 42\n\n") {
        let n = conn.read(&mut more).await.unwrap();
        text.push_str(std::str::from_utf8(&more[..n]).unwrap());
    }
    assert!(text.contains("id: 42\ndata: 42\n\n"), "{text}");

    let mut conn = server.connect().await;
    conn.send(get("/")).await;
    let page = conn.response().await;
    assert!(page.text().contains("new EventSource(\"/events\")"));
}

/// Keep-alive comments go out while no event does.
#[tokio::test]
async fn keep_alive_comments_fill_the_silence() {
    let mut app = App::new();
    app.route("/quiet", |_req: Request| async {
        Sse::new(futures_util::stream::pending::<Event>()).keep_alive(Duration::from_millis(100))
    });
    let server = TestServer::start(app).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(get("/quiet").as_bytes()).await.unwrap();
    let mut text = String::new();
    let start = Instant::now();
    while text.matches(": keep-alive\n\n").count() < 2 {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "{:?}",
        start.elapsed()
    );
}
