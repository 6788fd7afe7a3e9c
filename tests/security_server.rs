//! Security hardening of the server, over real sockets (issue 24, findings 3 and 8): a FIFO
//! in a static root refused without blocking a worker; connections that never finish their
//! head evicted under pressure, oldest first; a process short of file descriptors still
//! serving a fresh client; a streamed upload slower than the minimum data rate cut off; the
//! optional per-client connection cap.

mod common;

use std::time::Duration;

use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::{App, Request, Response};
use common::{get, RawConn, TestServer};

const WAIT: Duration = Duration::from_secs(5);

/// Finding 8: `open(2)` of a FIFO for reading waits for a writer. Four requests for one
/// once wedged every worker thread and so every later request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_under_the_static_root_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let public = dir.path().join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("hello.txt"), "hello").unwrap();
    let pipe = public.join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &pipe,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let mut app = App::new();
    app.add_middleware(StaticFilesMiddleware::new("/static", &public).unwrap());
    app.route("/file", move |_req: Request| {
        let pipe = pipe.clone();
        async move { Response::file(pipe).await }
    });
    app.route("/", |_req: Request| async { "ok" });
    let server = TestServer::start(app).await;

    let mut asks = Vec::new();
    for path in ["/static/pipe", "/file"].into_iter().cycle().take(8) {
        let addr = server.addr;
        asks.push(tokio::spawn(async move {
            let mut conn = RawConn::connect(addr).await;
            conn.send(get(path)).await;
            conn.response().await.status
        }));
    }
    for ask in asks {
        let status = tokio::time::timeout(WAIT, ask)
            .await
            .expect("a request for a FIFO hung")
            .unwrap();
        assert_eq!(status, 404);
    }
    let mut conn = server.connect().await;
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "ok");
    conn.send(get("/static/hello.txt")).await;
    assert_eq!(conn.response().await.text(), "hello");
}
