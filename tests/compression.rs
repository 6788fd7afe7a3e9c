//! CompressionMiddleware over real sockets, checked with the real decoders (flate2's
//! gzip, the brotli crate's): negotiation by q-value, thresholds and types, bodies left
//! alone, streamed bodies (a file, Server-Sent Events flushed event by event).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use chirp::middleware::compression::CompressionMiddleware;
use chirp::sse::{Event, Sse};
use chirp::{App, Request, Response};
use common::{RawResponse, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn big_text() -> String {
    (0..2000)
        .map(|i| format!("line {i} of a compressible page\n"))
        .collect()
}

fn app(dir: &std::path::Path) -> App {
    let file = dir.join("page.txt");
    std::fs::write(&file, big_text()).unwrap();
    let mut app = App::new();
    app.add_middleware(CompressionMiddleware::new());
    app.route("/page", |_req: Request| async {
        Response::text(big_text()).with_header("etag", "\"p1\"")
    });
    app.route("/small", |_req: Request| async { "small" });
    app.route("/png", |_req: Request| async {
        Response::bytes(vec![7u8; 5000]).with_content_type("image/png")
    });
    app.route("/no-transform", |_req: Request| async {
        Response::text(big_text()).with_header("cache-control", "public, no-transform")
    });
    app.route("/encoded", |_req: Request| async {
        Response::bytes(vec![1u8; 5000])
            .with_content_type("text/plain")
            .with_header("content-encoding", "gzip")
    });
    app.route("/file", move |_req: Request| {
        let file = file.clone();
        async move { Response::file(file).await }
    });
    app.route("/events", |_req: Request| async {
        let events = futures_util::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(if n == 0 { 0 } else { 200 })).await;
            Some((
                Event::new()
                    .id((n + 1).to_string())
                    .data(format!("event {}", n + 1)),
                n + 1,
            ))
        });
        Sse::new(events)
    });
    app
}

async fn get(server: &TestServer, path: &str, accept: Option<&str>) -> RawResponse {
    let mut conn = server.connect().await;
    let accept = accept
        .map(|a| format!("Accept-Encoding: {a}\r\n"))
        .unwrap_or_default();
    conn.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{accept}\r\n"))
        .await;
    conn.response().await
}

fn gunzip(bytes: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .unwrap();
    out
}

fn unbrotli(bytes: &[u8]) -> String {
    let mut out = String::new();
    brotli::Decompressor::new(bytes, 4096)
        .read_to_string(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn bodies_are_compressed_by_q_value_and_decode() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(app(dir.path())).await;
    let res = get(&server, "/page", Some("gzip, deflate, br")).await;
    assert_eq!(res.header("content-encoding"), Some("br"));
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    assert_eq!(
        res.header("content-length").unwrap(),
        res.body.len().to_string()
    );
    assert!(
        res.body.len() < big_text().len() / 5,
        "{} bytes",
        res.body.len()
    );
    assert_eq!(unbrotli(&res.body), big_text());
    assert_eq!(
        res.header("etag"),
        Some("W/\"p1\""),
        "the tag is weak once compressed"
    );

    let res = get(&server, "/page", Some("br;q=0.5, gzip;q=0.9")).await;
    assert_eq!(res.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&res.body), big_text());

    for accept in [
        None,
        Some("identity"),
        Some("br;q=0, gzip;q=0"),
        Some("deflate"),
    ] {
        let res = get(&server, "/page", accept).await;
        assert_eq!(res.header("content-encoding"), None, "{accept:?}");
        assert_eq!(res.text(), big_text());
        assert_eq!(res.header("vary"), Some("accept-encoding"), "{accept:?}");
        assert_eq!(res.header("etag"), Some("\"p1\""));
    }
}

#[tokio::test]
async fn some_bodies_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(app(dir.path())).await;
    for path in ["/small", "/png", "/no-transform", "/encoded"] {
        let res = get(&server, path, Some("br, gzip")).await;
        match path {
            "/encoded" => assert_eq!(res.header("content-encoding"), Some("gzip")),
            _ => assert_eq!(res.header("content-encoding"), None, "{path}"),
        }
        if path == "/encoded" || path == "/png" {
            assert_eq!(res.body.len(), 5000, "{path}");
        }
    }
}

/// Decodes a chunked body from `raw` (after the head): the chunks so far, and whether the
/// last chunk was seen.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return (out, true);
        }
        let start = line_end + 2;
        if raw.len() < start + size + 2 {
            return (out, false);
        }
        out.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

async fn read_head_and(
    conn: &mut tokio::net::TcpStream,
    until: impl Fn(&[u8]) -> bool,
) -> (String, Vec<u8>) {
    let mut all = Vec::new();
    loop {
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf))
            .await
            .expect("more bytes within 5 s")
            .unwrap();
        assert!(n > 0, "closed");
        all.extend_from_slice(&buf[..n]);
        if let Some(i) = all.windows(4).position(|w| w == b"\r\n\r\n") {
            if until(&all[i + 4..]) {
                let head = String::from_utf8(all[..i].to_vec()).unwrap();
                return (head, all[i + 4..].to_vec());
            }
        }
    }
}

#[tokio::test]
async fn a_streamed_file_is_compressed_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(app(dir.path())).await;
    let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(b"GET /file HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = read_head_and(&mut conn, |b| dechunk(b).1).await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!head.contains("content-length"), "{head}");
    assert!(!head.contains("accept-ranges"), "{head}");
    assert_eq!(gunzip(&dechunk(&body).0), big_text());
}

/// Each event is flushed through the compressor: the client decodes it while the stream is
/// still open.
#[tokio::test]
async fn server_sent_events_are_flushed_event_by_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(app(dir.path())).await;
    for (coding, accept) in [("gzip", "gzip"), ("br", "br")] {
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let req = format!("GET /events HTTP/1.1\r\nHost: t\r\nAccept-Encoding: {accept}\r\n\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
        let decodes_two = |raw: &[u8]| {
            let compressed = dechunk(raw).0;
            let text = match coding {
                "gzip" => {
                    let mut d = flate2::write::GzDecoder::new(Vec::new());
                    let _ = d.write_all(&compressed);
                    let _ = d.flush();
                    String::from_utf8_lossy(d.get_ref()).into_owned()
                }
                _ => {
                    let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
                    let _ = d.write_all(&compressed);
                    let _ = d.flush();
                    String::from_utf8_lossy(d.get_ref()).into_owned()
                }
            };
            text.contains("id: 2\ndata: event 2\n\n")
        };
        let (head, _) = read_head_and(&mut conn, decodes_two).await;
        assert!(
            head.contains(&format!("content-encoding: {coding}")),
            "{head}"
        );
        assert!(head.contains("content-type: text/event-stream"), "{head}");
    }
}
