//! Issue 24, findings 2 and 7, over real sockets: `multipart/form-data` bodies are parsed in
//! bounded memory (a preamble or a part header past its limit is refused as it arrives, with
//! the connection closed), an upload with too many parts is refused at the part limit, and
//! the files example checks a CSRF token, caps the files of a request and keeps its reply
//! small.
#![cfg(feature = "multipart")] // the files example uploads multipart bodies

mod common;

#[path = "../examples/files.rs"]
#[allow(dead_code)]
mod files_example;

use std::time::Duration;

use chirp::{App, BodyConfig, HttpError, Request};
use common::{RawConn, RawResponse, TestProcess, TestServer};
use tokio::io::AsyncWriteExt;

const MIB: usize = 1024 * 1024;

/// An app that reads every part of a multipart body, with the default limits: `/upload`
/// streamed (up to 100 MiB, as the files example), `/buffered` read whole first (2 MiB).
fn app() -> App {
    let mut app = App::new();
    app.post("/upload", count_parts);
    app.route_body("/upload", BodyConfig::max(100 * MIB).streamed());
    app.post("/buffered", count_parts);
    app
}

async fn count_parts(mut req: Request) -> Result<String, HttpError> {
    let mut form = req.multipart()?;
    let (mut parts, mut bytes) = (0, 0);
    while let Some(mut field) = form.next_field().await? {
        parts += 1;
        while let Some(chunk) = field.chunk().await? {
            bytes += chunk.len();
        }
    }
    Ok(format!("{parts} parts, {bytes} bytes"))
}

fn head(path: &str, boundary: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Writes `bytes` as far as the server takes them (it may close the connection first).
async fn send_until_refused(conn: &mut RawConn, bytes: &[u8]) {
    let _ = conn.stream.write_all(bytes).await;
}

/// The refusal that must come: its status, `Connection: close`, and the connection closed.
async fn expect_refusal(conn: &mut RawConn, status: u16, naming: &str) -> RawResponse {
    let res = conn.response().await;
    assert_eq!(res.status, status, "{}", res.text());
    assert!(
        res.text().contains(naming),
        "the refusal names {naming}: {}",
        res.text()
    );
    assert_eq!(res.header("connection"), Some("close"));
    assert!(conn.closed_within(Duration::from_secs(3)).await);
    res
}

/// Finding 2: a body whose boundary never appears was buffered whole (the parser kept
/// looking for the boundary in an ever-growing buffer, rescanning it). It is refused once
/// its preamble passes the limit: the client below has sent 64 KiB of a declared 90 MiB when
/// the answer must come.
#[tokio::test]
async fn a_boundary_that_never_appears_is_refused_past_the_preamble_limit() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(head("/upload", "never-seen", 90 * MIB)).await;
    send_until_refused(&mut conn, &vec![b'a'; 64 * 1024]).await;
    expect_refusal(&mut conn, 413, "max_preamble_size").await;
}

/// Finding 2: a part header trickled in 4 KiB writes grew the parser's buffer (rescanned at
/// each read). It is refused once past the part-header limit: the client has sent 64 KiB of
/// header when the answer must come.
#[tokio::test]
async fn a_part_header_past_its_limit_is_refused_as_it_arrives() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(head("/upload", "B", 16 * MIB)).await;
    conn.send("--B\r\nContent-Disposition: form-data; name=\"f\"\r\nX-Padding: ")
        .await;
    for _ in 0..16 {
        send_until_refused(&mut conn, &[b'p'; 4096]).await;
    }
    expect_refusal(&mut conn, 413, "max_part_header_size").await;
}

/// A multipart body of `count` one-byte file parts.
fn many_parts(boundary: &str, count: usize) -> Vec<u8> {
    many(boundary, count, true)
}

/// A multipart body of `count` one-byte parts, files or fields.
fn many(boundary: &str, count: usize, files: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..count {
        let filename = if files {
            format!("; filename=\"{i}\"")
        } else {
            String::new()
        };
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"f\"{filename}\r\n\r\nA\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

/// Finding 7: one 1.3 MiB request with 20,000 one-byte parts was read to its end, every
/// part handed to the handler. It is refused at the part limit (1,000 by default), streamed
/// or buffered; made of files, at the file limit (100 by default).
#[tokio::test]
async fn twenty_thousand_one_byte_parts_are_refused_at_the_part_limit() {
    let server = TestServer::start(app()).await;
    let body = many("B", 20_000, true);
    let mut conn = server.connect().await;
    conn.send(head("/upload", "B", body.len())).await;
    send_until_refused(&mut conn, &body).await;
    expect_refusal(&mut conn, 413, "max_files").await;

    let body = many("B", 20_000, false);
    assert!(body.len() < 2 * MIB, "within /buffered's limit");
    let mut conn = server.connect().await;
    conn.send(head("/upload", "B", body.len())).await;
    send_until_refused(&mut conn, &body).await;
    expect_refusal(&mut conn, 413, "max_parts").await;

    let mut conn = server.connect().await;
    conn.send(head("/buffered", "B", body.len())).await;
    conn.send(&body).await;
    let res = conn.response().await;
    assert_eq!(res.status, 413, "{}", res.text());
    assert!(res.text().contains("max_parts"), "{}", res.text());

    // Under the limit, the same body is read to its end.
    let body = many("B", 1_000, false);
    let mut conn = server.connect().await;
    conn.send(head("/upload", "B", body.len())).await;
    conn.send(&body).await;
    assert_eq!(conn.response().await.text(), "1000 parts, 1000 bytes");
}

/// The server of the memory test below, in a process of its own so that its peak resident
/// set (`VmHWM`) is the server's alone. Run by that test; does nothing otherwise.
#[test]
#[ignore = "the server process of the memory test (it starts it itself)"]
fn multipart_server_process() {
    if std::env::var_os("CHIRP_MULTIPART_SERVER").is_none() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        // The parent kills this process when done; the timeout is a backstop.
        let stop = tokio::time::sleep(Duration::from_secs(300));
        app().serve_with_shutdown(listener, stop).await.unwrap();
    });
}

/// A process's resident set now and at its peak, in bytes (Linux).
fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<u64>()
            .unwrap()
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Finding 2, in memory: five concurrent uploads whose boundary never appears (16 MiB sent
/// of 90 MiB declared, each) took the server's resident set up by the bytes sent; now the
/// server's peak stays within a few MiB of where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_boundaryless_uploads_leave_the_server_s_memory_bounded() {
    const SENT: usize = 16 * MIB;
    let server = TestProcess::start("multipart_server_process", "CHIRP_MULTIPART_SERVER", &[]);
    let (pid, addr) = (server.pid(), server.listening_on());
    // Warm up: one ordinary upload, so that the baseline includes the runtime's threads.
    let mut conn = RawConn::connect(addr).await;
    let body = many_parts("B", 3);
    conn.send(head("/upload", "B", body.len())).await;
    conn.send(&body).await;
    assert_eq!(conn.response().await.text(), "3 parts, 3 bytes");
    let (before, _) = rss_of(pid);

    let uploads = (0..5).map(|_| {
        tokio::spawn(async move {
            let mut conn = RawConn::connect(addr).await;
            conn.send(head("/upload", "never-seen", 90 * MIB)).await;
            let piece = vec![b'a'; 256 * 1024];
            for _ in 0..SENT / piece.len() {
                if conn.stream.write_all(&piece).await.is_err() {
                    break; // refused and closed
                }
            }
            conn.response().await.status
        })
    });
    let mut statuses = Vec::new();
    for upload in uploads {
        // 0: no answer (the client gave up waiting).
        statuses.push(upload.await.unwrap_or(0));
    }
    let (_, peak) = rss_of(pid);
    let grew = peak.saturating_sub(before);
    println!(
        "server resident set: {:.1} MiB before, peak {:.1} MiB (grew {:.1} MiB) under five boundary-less uploads of {} MiB",
        before as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        grew as f64 / MIB as f64,
        SENT / MIB
    );
    assert!(
        grew < 8 * MIB as u64,
        "the server's resident set grew by {grew} bytes"
    );
    assert_eq!(statuses, vec![413; 5]);
}

/// The files example on a real socket, with a fresh upload folder.
struct Files {
    server: TestServer,
    uploads: tempfile::TempDir,
}

async fn files_example() -> Files {
    let uploads = tempfile::tempdir().unwrap();
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/files/static");
    let app = files_example::app(
        &static_dir,
        uploads.path().to_path_buf(),
        files_example::UPLOAD_LIMIT,
    )
    .unwrap();
    Files {
        server: TestServer::start(app).await,
        uploads,
    }
}

impl Files {
    /// The session cookie and CSRF token a browser gets with the upload form (`GET /`).
    async fn session(&self) -> (String, String) {
        common::page_session(&self.server, "/").await
    }

    /// Sends a multipart `body` to `/upload` with these extra header lines.
    async fn upload(&self, extra: &str, boundary: &str, body: &[u8]) -> RawResponse {
        let mut conn = self.server.connect().await;
        conn.send(format!(
            "POST /upload HTTP/1.1\r\nHost: t\r\n{extra}Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ))
        .await;
        send_until_refused(&mut conn, body).await;
        conn.response().await
    }

    fn stored(&self) -> usize {
        std::fs::read_dir(self.uploads.path()).unwrap().count()
    }
}

/// Finding 7: `/upload` took anyone's files, from any page. It now needs the session's CSRF
/// token (in `X-CSRF-Token`: the body is streamed, so the token cannot be a form field).
#[tokio::test]
async fn the_files_example_refuses_an_upload_without_its_csrf_token() {
    let files = files_example().await;
    let body = many_parts("B", 1);
    // No session, no token.
    let res = files.upload("", "B", &body).await;
    assert_eq!(res.status, 403, "{}", res.text());
    // A session, but no token; then a wrong one.
    let (cookie, token) = files.session().await;
    let res = files
        .upload(&format!("Cookie: {cookie}\r\n"), "B", &body)
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    let res = files
        .upload(
            &format!("Cookie: {cookie}\r\nX-CSRF-Token: {}\r\n", "0".repeat(64)),
            "B",
            &body,
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.text());
    assert_eq!(files.stored(), 0);
    // With both, the file is stored.
    let res = files
        .upload(
            &format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\n"),
            "B",
            &body,
        )
        .await;
    assert_eq!(res.status, 200, "{}", res.text());
    assert_eq!(files.stored(), 1);
}

/// Finding 7: 20,000 one-byte parts made the example write 20,000 files and a 2.2 MiB reply.
/// Now a request holds at most `MAX_FILES` files: past that it is refused, and none of its
/// files is kept; the reply is at most `MAX_FILES` entries.
#[tokio::test]
async fn the_files_example_caps_the_files_of_a_request_and_its_reply() {
    let files = files_example().await;
    let (cookie, token) = files.session().await;
    let auth = format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\n");

    let res = files.upload(&auth, "B", &many_parts("B", 20_000)).await;
    assert!(res.status == 413, "{} {}", res.status, res.text());
    assert!(
        res.body.len() < 1024,
        "a refusal of {} bytes",
        res.body.len()
    );
    assert_eq!(files.stored(), 0, "no file of a refused upload is kept");

    let cap = files_example::MAX_FILES;
    let res = files.upload(&auth, "B", &many_parts("B", cap + 1)).await;
    assert_eq!(res.status, 413, "{}", res.text());
    assert!(res.text().contains("files"), "{}", res.text());
    assert_eq!(files.stored(), 0, "no file of a refused upload is kept");

    let res = files.upload(&auth, "B", &many_parts("B", cap)).await;
    assert_eq!(res.status, 200, "{}", res.text());
    let answer: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    assert_eq!(answer["files"].as_array().unwrap().len(), cap);
    assert!(
        res.body.len() < cap * 512,
        "a reply of {} bytes",
        res.body.len()
    );
    assert_eq!(files.stored(), cap);
}
