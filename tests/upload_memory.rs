//! A 50 MiB upload to the files example, streamed: the process's resident memory grows by
//! well under 30 MiB while it runs (the body is never held whole). Alone in its file so that
//! no other test shares the process while it measures.
#![cfg(feature = "multipart")] // the files example uploads multipart bodies

mod common;

#[path = "../examples/files.rs"]
#[allow(dead_code)]
mod files_example;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::TestServer;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The process's resident set, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_upload_is_streamed_in_bounded_memory() {
    const SIZE: usize = 50 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;
    let uploads = tempfile::tempdir().unwrap();
    let static_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/files/static");
    let app = files_example::app(
        &static_dir,
        uploads.path().to_path_buf(),
        files_example::UPLOAD_LIMIT,
    )
    .unwrap();
    let server = TestServer::start(app).await;
    // The session cookie and CSRF token the upload form gives a browser.
    let (cookie, token) = common::page_session(&server, "/").await;
    let auth = format!("Cookie: {cookie}\r\nX-CSRF-Token: {token}\r\n");

    // The resident set is sampled every few milliseconds while the upload runs.
    let before = rss();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(rss(), Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
    };

    let head = b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\r\n";
    let tail = b"\r\n--BOUNDARY--\r\n";
    let mut conn = server.connect().await;
    conn.send(format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: multipart/form-data; boundary=BOUNDARY\r\nContent-Length: {}\r\n\r\n",
        head.len() + SIZE + tail.len()
    ))
    .await;
    conn.stream.write_all(head).await.unwrap();
    // Generated piece by piece: the client holds 64 KiB at a time.
    let mut hash = Sha256::new();
    let mut piece = vec![0u8; PIECE];
    for i in 0..SIZE / PIECE {
        piece
            .iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = ((i * 31 + j * 7) % 251) as u8);
        hash.update(&piece);
        conn.stream.write_all(&piece).await.unwrap();
    }
    conn.stream.write_all(tail).await.unwrap();
    let res = conn.response().await;
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();

    assert_eq!(res.status, 200, "{}", res.text());
    let answer: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
    let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(answer["files"][0]["size"], SIZE);
    assert_eq!(answer["files"][0]["sha256"], sha);
    let grew = peak.load(Ordering::SeqCst).saturating_sub(before);
    println!(
        "resident memory grew by {:.1} MiB during a 50 MiB upload",
        grew as f64 / 1048576.0
    );
    assert!(
        grew < 30 * 1024 * 1024,
        "resident memory grew by {grew} bytes"
    );
}
