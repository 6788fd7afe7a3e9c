//! Heap allocations per request, counted by a counting global allocator, over a real
//! loopback connection: `cargo bench --bench allocations`.
//!
//! The server (examples/bench_app.rs itself) runs on a current-thread tokio runtime on its own
//! thread, and only that thread's allocations are counted; the client is plain blocking
//! std::net on the main thread. After a warm-up, N sequential keep-alive requests are sent and
//! the count is divided by N. Scenarios: the peers' three routes, and `reads-request`, a
//! handler whose future holds its `Request`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the counting touches only an atomic and a const-initialised thread-local (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as received.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as received.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// The very app that the peers are measured against (its `main` goes unused here).
#[allow(dead_code)]
#[path = "../examples/bench_app.rs"]
mod bench_app;

const WARM: usize = 1_000;
const N: usize = 10_000;

/// Sends one request and reads one whole response; returns the head.
fn round_trip(conn: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> String {
    conn.write_all(request).unwrap();
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buf.len() < end + 4 + len {
                let n = conn.read(&mut chunk).unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            return head;
        }
    }
}

fn main() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        COUNTED.with(|c| c.set(true));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let mut app = bench_app::app().unwrap();
            // Beside the peers' routes: a handler whose future keeps its request, as most
            // real handlers' do (the benchmark routes ignore theirs).
            app.route("/reads-request", |req: chirp::Request| async move {
                if req.headers().contains("host") {
                    "has a host"
                } else {
                    "no host"
                }
            });
            app.serve_with_shutdown(listener, std::future::pending())
                .await
                .unwrap();
        });
    });

    println!("# heap allocations per request (server thread only), {N} sequential keep-alive requests after {WARM} warm-up");
    println!("# scenario allocations_per_request");
    let mut buf = Vec::new();
    for (name, path) in [
        ("plaintext", "/"),
        ("json", "/json"),
        ("dashboard", "/dashboard"),
        ("reads-request", "/reads-request"),
    ] {
        let mut conn = TcpStream::connect(addr).unwrap();
        conn.set_nodelay(true).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
        if name == "dashboard" {
            let head = round_trip(&mut conn, format!("{request}\r\n").as_bytes(), &mut buf);
            let cookie = head
                .lines()
                .find_map(|l| l.strip_prefix("set-cookie: "))
                .and_then(|v| v.split(';').next())
                .expect("a session cookie")
                .to_owned();
            request.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        request.push_str("\r\n");
        for _ in 0..WARM {
            round_trip(&mut conn, request.as_bytes(), &mut buf);
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..N {
            round_trip(&mut conn, request.as_bytes(), &mut buf);
        }
        let per_request = (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / N as f64;
        println!("{name} {per_request:.2}");
    }
}
