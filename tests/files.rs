//! Files and static files over real sockets: `Response::file` with its validators, ranges and
//! conditional requests, `StaticFilesMiddleware` with index files, precompressed siblings and
//! `Cache-Control`, and every way out of the root ending in 404.

mod common;

use std::path::Path;

use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::{App, Request, Response};
use common::{RawResponse, TestServer};

const SECRET: &str = "SECRET: outside the root";

/// A folder with `public/` (the root) beside `secret.txt`, and links leading out.
fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    let public = base.join("public");
    std::fs::create_dir_all(public.join("docs")).unwrap();
    std::fs::create_dir_all(public.join("empty")).unwrap();
    std::fs::write(base.join("secret.txt"), SECRET).unwrap();
    std::fs::write(public.join("hello.txt"), "Hello, World!").unwrap();
    std::fs::write(public.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(public.join(".env"), "HIDDEN=1").unwrap();
    std::fs::write(public.join("app.css"), "body { color: red }").unwrap();
    std::fs::write(public.join("app.css.gz"), "gzip bytes").unwrap();
    std::fs::write(public.join("app.css.br"), "brotli bytes").unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(public.join("big.bin"), &big).unwrap();
    std::os::unix::fs::symlink("../secret.txt", public.join("out-relative")).unwrap();
    std::os::unix::fs::symlink(base.join("secret.txt"), public.join("out-absolute")).unwrap();
    std::os::unix::fs::symlink(base, public.join("out-dir")).unwrap();
    std::os::unix::fs::symlink("hello.txt", public.join("in-link")).unwrap();
    dir
}

fn app(dir: &Path) -> App {
    let public = dir.join("public");
    let mut app = App::new();
    app.add_middleware(StaticFilesMiddleware::new("/static", &public).unwrap());
    let file = public.join("big.bin");
    app.route("/download", move |_req: Request| {
        let file = file.clone();
        async move { Response::file(file).await }
    });
    app.route("/missing", |_req: Request| async {
        Response::file("/nonexistent/file").await
    });
    app.route("/tagged", |_req: Request| async {
        Response::text("dynamic").with_header("etag", "\"v1\"")
    });
    app.route("/static/fallthrough", |_req: Request| async {
        "a route under the prefix"
    });
    let routed = StaticFilesMiddleware::new("/assets", &public).unwrap();
    app.route("/assets/{path:path}", routed);
    app
}

async fn send(server: &TestServer, raw: &str) -> RawResponse {
    let mut conn = server.connect().await;
    conn.send(raw).await;
    conn.response_for(raw.starts_with("HEAD ")).await
}

async fn get(server: &TestServer, path: &str, headers: &str) -> RawResponse {
    send(
        server,
        &format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n"),
    )
    .await
}

#[tokio::test]
async fn a_file_has_its_validators_and_type() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    let res = get(&server, "/static/hello.txt", "").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "Hello, World!");
    assert_eq!(res.header("content-length"), Some("13"));
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(res.header("accept-ranges"), Some("bytes"));
    assert_eq!(res.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    assert!(res.header("etag").unwrap().starts_with('"'));
    let modified = res.header("last-modified").unwrap();
    assert!(modified.ends_with(" GMT"), "{modified}");

    let head = send(
        &server,
        "HEAD /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .await;
    assert_eq!(head.header("content-length"), Some("13"));
    assert!(head.body.is_empty());

    // A large file (sent with sendfile) arrives whole, on a connection that goes on.
    let mut conn = server.connect().await;
    conn.send("GET /download HTTP/1.1\r\nHost: t\r\n\r\nGET /static/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let big = conn.response().await;
    assert_eq!(
        big.body,
        std::fs::read(dir.path().join("public/big.bin")).unwrap()
    );
    assert_eq!(big.header("content-type"), Some("application/octet-stream"));
    assert_eq!(conn.response().await.text(), "Hello, World!");

    assert_eq!(get(&server, "/missing", "").await.status, 404);
}

#[tokio::test]
async fn ranges_give_206_and_416() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    let res = get(&server, "/static/hello.txt", "Range: bytes=7-11\r\n").await;
    assert_eq!(res.status, 206);
    assert_eq!(res.text(), "World");
    assert_eq!(res.header("content-range"), Some("bytes 7-11/13"));
    assert_eq!(res.header("content-length"), Some("5"));
    let res = get(&server, "/static/hello.txt", "Range: bytes=-6\r\n").await;
    assert_eq!((res.status, res.text().as_str()), (206, "World!"));
    let res = get(&server, "/static/hello.txt", "Range: bytes=13-\r\n").await;
    assert_eq!(res.status, 416);
    assert_eq!(res.header("content-range"), Some("bytes */13"));
    // Several ranges, or a bad one: the whole file.
    let res = get(&server, "/static/hello.txt", "Range: bytes=0-1,3-4\r\n").await;
    assert_eq!((res.status, res.text().as_str()), (200, "Hello, World!"));
    // A range of a large file (through sendfile, from an offset).
    let res = get(&server, "/download", "Range: bytes=500000-599999\r\n").await;
    assert_eq!(res.status, 206);
    let big = std::fs::read(dir.path().join("public/big.bin")).unwrap();
    assert_eq!(res.body, &big[500_000..600_000]);
}

#[tokio::test]
async fn conditional_requests_give_304() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    let first = get(&server, "/static/hello.txt", "").await;
    let etag = first.header("etag").unwrap().to_owned();
    let modified = first.header("last-modified").unwrap().to_owned();

    let res = get(
        &server,
        "/static/hello.txt",
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
    let res = get(
        &server,
        "/static/hello.txt",
        &format!("If-None-Match: \"other\", W/{etag}\r\n"),
    )
    .await;
    assert_eq!(res.status, 304, "weak comparison for If-None-Match");
    let res = get(&server, "/static/hello.txt", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(res.status, 200);
    let res = get(
        &server,
        "/static/hello.txt",
        &format!("If-Modified-Since: {modified}\r\n"),
    )
    .await;
    assert_eq!(res.status, 304);
    let res = get(
        &server,
        "/static/hello.txt",
        "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
    )
    .await;
    assert_eq!(res.status, 200);
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let both = format!("If-None-Match: \"other\"\r\nIf-Modified-Since: {modified}\r\n");
    assert_eq!(get(&server, "/static/hello.txt", &both).await.status, 200);

    // If-Range: the range only while the validator holds.
    let res = get(
        &server,
        "/static/hello.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {etag}\r\n"),
    )
    .await;
    assert_eq!((res.status, res.text().as_str()), (206, "Hello"));
    let res = get(
        &server,
        "/static/hello.txt",
        "Range: bytes=0-4\r\nIf-Range: \"stale\"\r\n",
    )
    .await;
    assert_eq!((res.status, res.text().as_str()), (200, "Hello, World!"));
    let res = get(
        &server,
        "/static/hello.txt",
        &format!("Range: bytes=0-4\r\nIf-Range: {modified}\r\n"),
    )
    .await;
    assert_eq!(res.status, 206);

    // A handler's own ETag is honoured too.
    assert_eq!(
        get(&server, "/tagged", "If-None-Match: \"v1\"\r\n")
            .await
            .status,
        304
    );
    assert_eq!(
        get(&server, "/tagged", "If-None-Match: \"v2\"\r\n")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn index_files_hidden_files_and_falling_through() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    // A folder asked for without its slash is sent to the slash form (tests/python_parity.rs).
    let res = get(&server, "/static/docs", "").await;
    assert_eq!(
        (res.status, res.header("location")),
        (301, Some("/static/docs/"))
    );
    let res = get(&server, "/static/docs/", "").await;
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        get(&server, "/static/docs/", "").await.text(),
        "<h1>docs</h1>"
    );
    // No listing for a folder without an index.
    assert_eq!(get(&server, "/static/empty", "").await.status, 404);
    assert_eq!(get(&server, "/static/.env", "").await.status, 404);
    assert_eq!(get(&server, "/static/nope.txt", "").await.status, 404);
    // A path with no file goes on to the routes.
    let res = get(&server, "/static/fallthrough", "").await;
    assert_eq!(res.text(), "a route under the prefix");
    // Only GET and HEAD.
    let res = send(
        &server,
        "POST /static/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(res.status, 404);
    // Mounted as a route.
    assert_eq!(
        get(&server, "/assets/hello.txt", "").await.text(),
        "Hello, World!"
    );
    assert_eq!(get(&server, "/assets/nope", "").await.status, 404);
    // A link that stays inside the root is followed.
    assert_eq!(
        get(&server, "/static/in-link", "").await.text(),
        "Hello, World!"
    );
}

#[tokio::test]
async fn precompressed_siblings_follow_accept_encoding() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    let res = get(&server, "/static/app.css", "Accept-Encoding: gzip, br\r\n").await;
    assert_eq!(res.text(), "brotli bytes");
    assert_eq!(res.header("content-encoding"), Some("br"));
    assert_eq!(res.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(res.header("vary"), Some("accept-encoding"));
    let res = get(
        &server,
        "/static/app.css",
        "Accept-Encoding: gzip;q=1, br;q=0.5\r\n",
    )
    .await;
    assert_eq!(
        (res.text().as_str(), res.header("content-encoding")),
        ("gzip bytes", Some("gzip"))
    );
    let res = get(
        &server,
        "/static/app.css",
        "Accept-Encoding: br;q=0, gzip;q=0\r\n",
    )
    .await;
    assert_eq!(
        (res.text().as_str(), res.header("content-encoding")),
        ("body { color: red }", None)
    );
    let res = get(&server, "/static/app.css", "").await;
    assert_eq!(res.text(), "body { color: red }");
    // A file with no sibling is itself.
    let res = get(&server, "/static/hello.txt", "Accept-Encoding: br\r\n").await;
    assert_eq!(
        (res.text().as_str(), res.header("content-encoding")),
        ("Hello, World!", None)
    );
}

#[tokio::test]
async fn cache_control_and_index_are_knobs() {
    let dir = site();
    let mut app = App::new();
    app.add_middleware(
        StaticFilesMiddleware::new("/", dir.path().join("public"))
            .unwrap()
            .cache_control("no-cache")
            .index(None)
            .precompressed(false),
    );
    let server = TestServer::start(app).await;
    let res = get(&server, "/hello.txt", "").await;
    assert_eq!(res.header("cache-control"), Some("no-cache"));
    assert_eq!(res.header("vary"), None);
    assert_eq!(get(&server, "/docs", "").await.status, 404);
    let res = get(&server, "/app.css", "Accept-Encoding: br\r\n").await;
    assert_eq!(res.text(), "body { color: red }");
    assert!(StaticFilesMiddleware::new("/", dir.path().join("nope")).is_err());
    assert!(StaticFilesMiddleware::new("/", dir.path().join("secret.txt")).is_err());
}

/// Every way out of the root is a 404 (or, for bytes no URI may hold, the parser's 400), and
/// never the secret.
#[tokio::test]
async fn no_path_leaves_the_root() {
    let dir = site();
    let server = TestServer::start(app(dir.path())).await;
    let attempts = [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/..%2fsecret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/..%5Csecret.txt",
        "/static/hello.txt%00.png",
        "/static/%00",
        "/static//etc/passwd",
        "/static/%2Fetc%2Fpasswd",
        "/static/%2f..%2f..%2fsecret.txt",
        "/static/out-relative",
        "/static/out-absolute",
        "/static/out-dir/secret.txt",
        "/static/out-dir",
        "/static/docs/../../secret.txt",
        "/static/docs/%2e%2e/%2e%2e/secret.txt",
        "/assets/..%2fsecret.txt",
        "/assets/out-relative",
        "http://t/static/..%2fsecret.txt",
    ];
    for path in attempts {
        let res = get(&server, path, "").await;
        assert_eq!(res.status, 404, "{path}: {}", res.text());
        assert!(!res.text().contains("SECRET"), "{path} escaped the root");
    }
    for raw in ["/static/..\\secret.txt", "/static/\0"] {
        let res = get(&server, raw, "").await;
        assert!(matches!(res.status, 400 | 404), "{raw:?}: {}", res.status);
        assert!(!res.text().contains("SECRET"), "{raw:?} escaped the root");
    }
}
