//! The connection handover after `101 Switching Protocols`, over real sockets: the handler's
//! callback gets the socket with every byte the client sent after its head (those in the
//! head's own packet included), the 101 carries the handler's `Connection`/`Upgrade`
//! headers, a 101 to a request that did not ask is a 500, an `Upgrade` no handler accepts is
//! ignored, and an upgraded connection keeps its slot and hears of shutdown.

mod common;

use std::time::{Duration, Instant};

use chirp::{App, Request, Response, ServerConfig};
use common::{get, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

fn app() -> App {
    let mut app = App::new();
    app.route("/", |_req: Request| async { "plain" });
    // Echoes every byte back until the client closes.
    app.route("/echo", |_req: Request| async {
        Response::upgrade("echo", |mut io| async move {
            let mut buf = [0u8; 4096];
            loop {
                match io.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
        .with_header("x-echo", "on")
    });
    // Waits for shutdown, says so, and closes.
    app.route("/until-shutdown", |_req: Request| async {
        Response::upgrade("wait", |mut io| async move {
            let stop = io.shutdown_signal();
            let _ = io.write_all(b"ready\n").await;
            stop.wait().await;
            let _ = io.write_all(b"bye\n").await;
        })
    });
    // Ignores shutdown: it is dropped at the drain deadline.
    app.route("/forever", |_req: Request| async {
        Response::upgrade("forever", |mut io| async move {
            let _ = io.write_all(b"ready\n").await;
            std::future::pending::<()>().await;
        })
    });
    // A 101 made by hand, with no callback.
    app.route("/bare-101", |_req: Request| async {
        Response::empty(chirp::StatusCode::SWITCHING_PROTOCOLS)
    });
    app
}

/// Reads up to the end of a response head; returns the head and what came after it.
async fn read_head(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return (String::from_utf8(buf).unwrap(), rest);
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .expect("a response head in time")
            .unwrap();
        assert!(
            n > 0,
            "closed before a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads exactly `want.len()` bytes (after `already`) and checks them.
async fn expect_bytes(conn: &mut TcpStream, mut already: Vec<u8>, want: &[u8]) {
    while already.len() < want.len() {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, conn.read(&mut chunk))
            .await
            .expect("bytes in time")
            .unwrap();
        assert!(
            n > 0,
            "closed after {:?}",
            String::from_utf8_lossy(&already)
        );
        already.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(already, want);
}

async fn read_to_end(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(WAIT, conn.read_to_end(&mut out))
        .await
        .expect("the connection closes in time")
        .unwrap();
    out
}

const UPGRADE_HEAD: &str =
    "GET /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";

#[tokio::test]
async fn bytes_after_the_head_reach_the_callback_unchanged() {
    let server = TestServer::start(app()).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    // The head and the first bytes of the new protocol in one write (one packet on
    // loopback): the server has read them with the head, and must hand them over.
    let first: Vec<u8> = (0..=255u8)
        .chain(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n".iter().copied())
        .collect();
    let mut packet = UPGRADE_HEAD.as_bytes().to_vec();
    packet.extend_from_slice(&first);
    conn.write_all(&packet).await.unwrap();
    let (head, rest) = read_head(&mut conn).await;
    assert!(
        head.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{head}"
    );
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(lower.contains("\r\nupgrade: echo\r\n"), "{head}");
    assert!(lower.contains("\r\nx-echo: on\r\n"), "{head}");
    assert!(!lower.contains("content-length"), "{head}");
    assert!(!lower.contains("transfer-encoding"), "{head}");
    expect_bytes(&mut conn, rest, &first).await;
    // And later writes too, in both directions: HTTP is gone from this connection.
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    expect_bytes(&mut conn, Vec::new(), b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    conn.shutdown().await.unwrap();
    assert!(read_to_end(&mut conn).await.is_empty());
}

#[tokio::test]
async fn pipelined_answers_before_the_upgrade_go_out_first() {
    let server = TestServer::start(app()).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    let mut packet = get("/").into_bytes();
    packet.extend_from_slice(UPGRADE_HEAD.as_bytes());
    packet.extend_from_slice(b"ping");
    conn.write_all(&packet).await.unwrap();
    let (head, rest) = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let mut rest = rest;
    while rest.len() < "plain".len() {
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        rest.extend_from_slice(&chunk[..n]);
    }
    assert!(rest.starts_with(b"plain"));
    let after_plain = rest.split_off(5);
    // The 101 follows in the same stream.
    let mut stream_rest = after_plain;
    let head = loop {
        if let Some(i) = stream_rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let tail = stream_rest.split_off(i + 4);
            let head = String::from_utf8(std::mem::replace(&mut stream_rest, tail)).unwrap();
            break head;
        }
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0);
        stream_rest.extend_from_slice(&chunk[..n]);
    };
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    expect_bytes(&mut conn, stream_rest, b"ping").await;
}

#[tokio::test]
async fn a_101_to_a_request_that_did_not_ask_is_a_500_and_the_connection_goes_on() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    // No Upgrade header.
    conn.send(get("/echo")).await;
    let res = conn.response().await;
    assert_eq!(res.status, 500);
    // Upgrade named but not in Connection (RFC 9110 §7.8: it must be listed there).
    conn.send("GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: echo\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 500);
    // HTTP/1.0: Upgrade is ignored.
    conn.send("GET /echo HTTP/1.0\r\nConnection: upgrade, keep-alive\r\nUpgrade: echo\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 500);
    // A 101 with no callback, even to a request that asked.
    conn.send("GET /bare-101 HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.status, 500);
    // Still HTTP, still open.
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "plain");
}

#[tokio::test]
async fn an_upgrade_no_handler_accepts_is_ignored() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "plain");
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "plain");
}

#[tokio::test]
async fn an_upgraded_connection_hears_of_shutdown_and_closes_cleanly() {
    let mut server = TestServer::start(app()).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(
        b"GET /until-shutdown HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: wait\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, rest) = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    expect_bytes(&mut conn, rest, b"ready\n").await;
    let stopped = Instant::now();
    server.stop();
    assert_eq!(read_to_end(&mut conn).await, b"bye\n");
    tokio::time::timeout(WAIT, &mut server.handle)
        .await
        .expect("the server stops once the upgraded connection is done")
        .unwrap()
        .unwrap();
    // Well before the 30 s drain deadline: the callback ended by itself.
    assert!(stopped.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn an_upgraded_connection_keeps_its_slot_and_is_dropped_at_the_drain_deadline() {
    let config = ServerConfig {
        max_connections: 1,
        shutdown_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let mut server = TestServer::start_with(app(), config).await;
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(
        b"GET /forever HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: forever\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, rest) = read_head(&mut conn).await;
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    expect_bytes(&mut conn, rest, b"ready\n").await;
    // The one slot is the upgraded connection's: it is busy, not idle, so eviction leaves
    // it, and a second client is not served.
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    second.write_all(get("/").as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let waited = tokio::time::timeout(Duration::from_millis(700), second.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "the second client was served while the slot was held"
    );
    // Shutdown: the callback ignores the signal and is dropped at the deadline.
    server.stop();
    assert!(read_to_end(&mut conn).await.is_empty());
    tokio::time::timeout(WAIT, &mut server.handle)
        .await
        .expect("the server stops at the drain deadline")
        .unwrap()
        .unwrap();
}
