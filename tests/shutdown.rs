//! Long-lived responses on shutdown, over real sockets: streamed bodies end at their next
//! chunk boundary with the chunked terminator instead of holding the server until its drain
//! deadline, handlers can await the signal, and `examples/sse` with three open streams exits
//! within 2 s of SIGTERM.

mod common;

#[allow(dead_code)]
#[path = "../examples/sse.rs"]
mod sse_example;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chirp::sse::{Event, Sse};
use chirp::{App, Request, Response};
use common::{TestProcess, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(5);

/// Opens `GET path` and reads until `marker` has arrived; returns the connection and what
/// it read.
async fn open_stream(addr: SocketAddr, path: &str, marker: &str) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains(marker) {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, conn.read(&mut buf))
            .await
            .expect("the stream's first bytes in time")
            .unwrap();
        assert!(n > 0, "closed early: {text}");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    (conn, text)
}

/// Reads the rest of a response until the server closes; returns everything read.
async fn read_until_closed(conn: &mut TcpStream, mut text: String, within: Duration) -> String {
    let mut rest = Vec::new();
    tokio::time::timeout(within, conn.read_to_end(&mut rest))
        .await
        .unwrap_or_else(|_| panic!("the stream did not end within {within:?}: {text}"))
        .unwrap();
    text.push_str(std::str::from_utf8(&rest).unwrap());
    text
}

#[tokio::test]
async fn an_endless_stream_ends_cleanly_when_shutdown_begins() {
    let mut app = App::new();
    app.route("/quiet", |_req: Request| async {
        // Never produces anything after its first event: only shutdown ends it.
        let first = futures_util::stream::once(async { Event::new().data("hello") });
        Sse::new(futures_util::StreamExt::chain(
            first,
            futures_util::stream::pending(),
        ))
    });
    app.route("/busy", |_req: Request| async {
        // Always ready: shutdown is seen between chunks, not only while waiting.
        let mut n = 0u64;
        Sse::new(futures_util::stream::repeat_with(move || {
            n += 1;
            Event::new().data(n.to_string())
        }))
    });
    let mut server = TestServer::start(app).await;
    let (mut quiet, text_quiet) = open_stream(server.addr, "/quiet", "data: hello\n\n").await;
    let (mut busy, text_busy) = open_stream(server.addr, "/busy", "data: 3\n\n").await;
    let stopped = Instant::now();
    server.stop();
    for (conn, text) in [(&mut quiet, text_quiet), (&mut busy, text_busy)] {
        let text = read_until_closed(conn, text, WAIT).await;
        assert!(text.contains("transfer-encoding: chunked"), "{text}");
        assert!(
            text.ends_with("\r\n0\r\n\r\n"),
            "no chunked terminator: {:?}",
            &text[text.len().saturating_sub(80)..]
        );
    }
    tokio::time::timeout(WAIT, &mut server.handle)
        .await
        .expect("the server stops once its streams end")
        .unwrap()
        .unwrap();
    // Far below the 30 s drain deadline.
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
}

#[tokio::test]
async fn a_handler_awaiting_the_signal_answers_when_shutdown_begins() {
    let mut app = App::new();
    app.route("/long-poll", |req: Request| async move {
        let stop = req.shutdown_signal();
        tokio::select! {
            () = stop.wait() => Response::text("stopping"),
            () = tokio::time::sleep(Duration::from_secs(60)) => Response::text("timeout"),
        }
    });
    let mut server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send(common::get("/long-poll")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.stop();
    let res = conn.response().await;
    assert_eq!(res.text(), "stopping");
    // The connection closes after the answer: the server is stopping.
    assert_eq!(res.header("connection"), Some("close"));
    tokio::time::timeout(WAIT, &mut server.handle)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

/// The SSE example in a process of its own, for the SIGTERM test (which starts it itself;
/// it does nothing when run with the other ignored tests). It is the example's own `main`.
#[test]
#[ignore = "the server process of the SIGTERM test (it starts it itself)"]
fn sse_example_process() {
    if std::env::var_os("CHIRP_SSE_EXAMPLE_PROCESS").is_none() {
        return;
    }
    sse_example::main().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sse_example_exits_within_2_s_of_sigterm_with_three_streams_open() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut example = TestProcess::start(
        "sse_example_process",
        "CHIRP_SSE_EXAMPLE_PROCESS",
        &[
            ("CHIRP_ADDR", &addr.to_string()),
            ("CHIRP_SSE_INTERVAL_MS", "100"),
        ],
    );
    let pid = example.pid();
    // The example says where it listens once it is about to.
    example.line_after("chirp SSE example on");
    // It binds right after saying so: wait for the port.
    let started = Instant::now();
    while let Err(e) = TcpStream::connect(addr).await {
        assert!(started.elapsed() < WAIT, "the example never listened: {e}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_stream(addr, "/events", "data: 1\n\n").await);
    }
    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for (conn, text) in &mut streams {
        let text = read_until_closed(conn, std::mem::take(text), Duration::from_secs(2)).await;
        assert!(text.contains("event: tick\n"), "{text}");
        assert!(
            text.ends_with("\r\n0\r\n\r\n"),
            "no chunked terminator: {:?}",
            &text[text.len().saturating_sub(80)..]
        );
    }
    // The process exits, with success, within 2 s of the signal.
    let exited = loop {
        if let Some(status) = example.child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "still running 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = signalled.elapsed();
    eprintln!("SIGTERM to exit with 3 open streams: {took:?}");
    assert!(exited.success(), "{exited:?}");
}
