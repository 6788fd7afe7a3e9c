//! Request bodies over real sockets: per-route limits, bodies streamed to the handler as they
//! arrive (limits enforced as they arrive), `multipart/form-data`, and the files example's
//! upload endpoint.
#![cfg(feature = "multipart")] // the files example uploads multipart bodies

mod common;

#[path = "../examples/files.rs"]
#[allow(dead_code)]
mod files_example;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chirp::{App, BodyConfig, HttpError, Request, StatusCode};
use common::TestServer;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MIB: usize = 1024 * 1024;

fn post(path: &str, body_len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {body_len}\r\n\r\n")
}

/// Counts a streamed body; remembers the error that ended it, if any.
async fn count_stream(
    mut req: Request,
    seen: Arc<AtomicUsize>,
    failed: Arc<Mutex<Option<u16>>>,
) -> Result<String, HttpError> {
    let mut body = req.body_stream();
    let mut total = 0;
    while let Some(chunk) = body.next_chunk().await {
        match chunk {
            Ok(chunk) => {
                total += chunk.len();
                seen.store(total, Ordering::SeqCst);
            }
            Err(e) => {
                *failed.lock().unwrap() = Some(e.status().as_u16());
                return Err(e);
            }
        }
    }
    Ok(format!("{total} bytes"))
}

struct Probe {
    seen: Arc<AtomicUsize>,
    failed: Arc<Mutex<Option<u16>>>,
}

fn app() -> (App, Probe) {
    let probe = Probe {
        seen: Arc::new(AtomicUsize::new(0)),
        failed: Arc::new(Mutex::new(None)),
    };
    let mut app = App::new();
    app.post("/small", |req: Request| async move {
        format!("{} bytes", req.body().len())
    });
    app.post("/big", |req: Request| async move {
        format!("{} bytes", req.body().len())
    });
    app.route_body("/big", BodyConfig::max(10 * MIB));
    let (seen, failed) = (probe.seen.clone(), probe.failed.clone());
    app.post("/stream", move |req: Request| {
        count_stream(req, seen.clone(), failed.clone())
    });
    app.route_body("/stream", BodyConfig::max(4 * MIB).streamed());
    app.post("/ignore", |_req: Request| async {
        (StatusCode::ACCEPTED, "not reading that")
    });
    app.route_body("/ignore", BodyConfig::max(4 * MIB).streamed());
    (app, probe)
}

#[tokio::test]
async fn each_route_has_its_own_limit() {
    let (served, _) = app();
    let server = TestServer::start(served).await;
    let body = vec![b'x'; 3 * MIB];
    // Over the 2 MiB default: 413 before a byte of the body is read.
    let mut conn = server.connect().await;
    conn.send(post("/small", body.len())).await;
    let res = conn.response().await;
    assert_eq!(res.status, 413);
    assert!(conn.closed_within(Duration::from_secs(2)).await);
    // The same body under /big's 10 MiB.
    let mut conn = server.connect().await;
    conn.send(post("/big", body.len())).await;
    conn.send(&body).await;
    assert_eq!(conn.response().await.text(), format!("{} bytes", 3 * MIB));
    // Over /big's limit.
    let mut conn = server.connect().await;
    conn.send(post("/big", 11 * MIB)).await;
    assert_eq!(conn.response().await.status, 413);
    // Chunked, over the default, as it arrives.
    let mut conn = server.connect().await;
    conn.send("POST /small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let chunk = format!("{:x}\r\n{}\r\n", MIB, "y".repeat(MIB));
    for _ in 0..3 {
        if conn.stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    assert_eq!(conn.response().await.status, 413);
}

/// The handler reads the first bytes while the client still holds back the rest.
#[tokio::test]
async fn a_streamed_body_reaches_the_handler_as_it_arrives() {
    let (served, probe) = app();
    let server = TestServer::start(served).await;
    let mut conn = server.connect().await;
    conn.send(post("/stream", 200_000)).await;
    conn.send(vec![b'a'; 100_000]).await;
    let start = Instant::now();
    while probe.seen.load(Ordering::SeqCst) < 100_000 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the handler saw {} bytes",
            probe.seen.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    conn.send(vec![b'b'; 100_000]).await;
    assert_eq!(conn.response().await.text(), "200000 bytes");
    // The connection goes on, chunked this time, with Expect: 100-continue.
    conn.send("POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 100);
    conn.send("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").await;
    assert_eq!(conn.response().await.text(), "11 bytes");
}

/// Past the limit, the handler's stream fails with 413 and the client gets 413 and a closed
/// connection; so for a stalled client, with 408.
#[tokio::test]
async fn a_streamed_body_past_its_limit_fails_as_it_arrives() {
    let (served, probe) = app();
    let server = TestServer::start(served).await;
    let mut conn = server.connect().await;
    conn.send("POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let chunk = format!("{:x}\r\n{}\r\n", MIB, "z".repeat(MIB));
    for _ in 0..5 {
        if conn.stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let res = conn.response().await;
    assert_eq!(res.status, 413);
    assert_eq!(res.header("connection"), Some("close"));
    assert_eq!(
        *probe.failed.lock().unwrap(),
        Some(413),
        "the handler saw the limit"
    );
    assert!(probe.seen.load(Ordering::SeqCst) <= 4 * MIB);

    let (slow_app, probe) = app();
    let config = chirp::ServerConfig {
        body_timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let server = TestServer::start_with(slow_app, config).await;
    let mut conn = server.connect().await;
    conn.send(post("/stream", 1000)).await;
    conn.send(vec![b'a'; 10]).await;
    assert_eq!(conn.response().await.status, 408);
    assert_eq!(*probe.failed.lock().unwrap(), Some(408));
}

/// A handler that answers without reading the body gets its answer sent, then the connection
/// closes (the unread rest is never taken for a request).
#[tokio::test]
async fn a_handler_that_ignores_the_body_closes_the_connection() {
    let (served, _) = app();
    let server = TestServer::start(served).await;
    let mut conn = server.connect().await;
    conn.send(post("/ignore", 1_000_000)).await;
    conn.send("GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!((res.status, res.text().as_str()), (202, "not reading that"));
    assert_eq!(res.header("connection"), Some("close"));
    assert!(conn.closed_within(Duration::from_secs(3)).await);
}

/// A multipart body: `boundary`, then each `(name, filename, content)`.
fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The header lines that let a request through the files example's CSRF check: the session
/// cookie and the token, as the form at `/` gives them to a browser.
async fn files_session(server: &TestServer) -> String {
    let (cookie, token) = common::page_session(server, "/").await;
    format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\n")
}

#[tokio::test]
async fn the_files_example_stores_uploads_and_serves_static_files() {
    let uploads = tempfile::tempdir().unwrap();
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/files/static");
    let app = files_example::app(&static_dir, uploads.path().to_path_buf(), 2 * MIB).unwrap();
    let server = TestServer::start(app).await;
    let auth = files_session(&server).await;

    let photo: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let notes = b"plain text notes\r\n--not-a-boundary\r\n".to_vec();
    let body = multipart(
        "XyZ",
        &[
            ("title", None, b"holiday"),
            ("photo", Some("beach.jpg"), &photo),
            ("notes", Some("../../etc/notes.txt"), &notes),
        ],
    );
    let mut conn = server.connect().await;
    conn.send(format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ))
    .await;
    conn.send(&body).await;
    let res = conn.response().await;
    assert_eq!(res.status, 200, "{}", res.text());
    let answer: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(
        answer,
        serde_json::json!({"files": [
            {"field": "photo", "filename": "beach.jpg", "size": photo.len(), "sha256": hex_sha256(&photo)},
            {"field": "notes", "filename": "../../etc/notes.txt", "size": notes.len(), "sha256": hex_sha256(&notes)},
        ]})
    );
    // Stored inside the upload folder, under names of the server's own.
    let mut stored: Vec<Vec<u8>> = std::fs::read_dir(uploads.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    stored.sort_by_key(|b| b.len());
    assert_eq!(stored, vec![notes.clone(), photo.clone()]);

    // Over the limit: 413, closed.
    let big = multipart("B", &[("f", Some("big.bin"), &vec![0u8; 3 * MIB])]);
    let mut conn = server.connect().await;
    conn.send(format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: multipart/form-data; boundary=B\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        big.len()
    ))
    .await;
    let _ = conn.stream.write_all(&big).await;
    assert_eq!(conn.response().await.status, 413);
    // Not multipart: 415.
    let mut conn = server.connect().await;
    conn.send(format!("POST /upload HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi")).await;
    assert_eq!(conn.response().await.status, 415);
    // The form posts to /upload; static files, with an index page that links to it.
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    assert!(conn.response().await.text().contains("action=\"/upload\""));
    conn.send("GET /static/index.html HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let page = conn.response().await;
    assert!(page.text().contains("href=\"/\""));
    let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    raw.write_all(b"GET /static/hello.txt HTTP/1.0\r\n\r\n")
        .await
        .unwrap();
    let mut all = String::new();
    raw.read_to_string(&mut all).await.unwrap();
    assert!(all.ends_with("\r\n\r\nHello, World!"), "{all}");
}

/// The server reads nothing of a streamed body, and sends no `100 Continue`, before the
/// handler reads it: a request refused first never has its body sent.
#[tokio::test]
async fn a_refused_upload_is_never_asked_for() {
    let mut app = App::new();
    app.post("/upload", |mut req: Request| async move {
        if req.header("authorization").is_none() {
            return Err(HttpError::unauthorized("sign in first"));
        }
        let mut body = req.body_stream();
        let mut total = 0;
        while let Some(chunk) = body.next_chunk().await {
            total += chunk?.len();
        }
        Ok(format!("{total} bytes"))
    });
    app.route_body("/upload", BodyConfig::max(MIB).streamed());
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send("POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 500000\r\nExpect: 100-continue\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.status, 401, "no 100 Continue before the refusal");
    assert_eq!(res.header("connection"), Some("close"));

    let mut conn = server.connect().await;
    conn.send("POST /upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 100);
    conn.send("hello").await;
    assert_eq!(conn.response().await.text(), "5 bytes");
}
