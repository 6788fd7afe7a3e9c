//! Regression tests for the hostile-input bugs found by fuzzing and by running the peers'
//! corpora against chirp, each with the exact input that showed it, over real sockets.

mod common;

use std::time::Duration;

use chirp::middleware::auth::{login_required, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::{from_fn, scoped, Next};
use chirp::sessions::SessionConfig;
use chirp::{App, Method, Request, Response, StatusCode};
use common::{get, refused, TestServer};

/// Echoes what the app sees of the target: path, query and host.
fn echo(req: &Request) -> String {
    format!(
        "path={} query={} host={}",
        req.path(),
        req.query().unwrap_or("-"),
        req.host().unwrap_or("-")
    )
}

fn app() -> App {
    let mut app = App::new();
    app.route("/", |req: Request| async move { echo(&req) });
    app.route("/json", |_req: Request| async { "json" });
    app.route("/dashboard", |req: Request| async move { echo(&req) });
    app.route("/dashboard/{rest:path}", |req: Request| async move {
        echo(&req)
    });
    app.add_middleware(scoped(
        "/dashboard",
        from_fn(|_req: Request, _next: Next| async {
            Response::text("guarded").with_status(StatusCode::FORBIDDEN)
        }),
    ));
    app
}

/// Bug 1: an absolute-form target without a path panicked (its origin-form slice pointed
/// outside the read buffer). RFC 9112 §3.2.2: accept it, the empty path is `/`, keep the query.
#[tokio::test]
async fn absolute_form_without_a_path_is_served() {
    let server = TestServer::start(app()).await;
    for (target, want) in [
        ("http://x", "path=/ query=- host=x"),
        (
            "http://127.0.0.1:1234",
            "path=/ query=- host=127.0.0.1:1234",
        ),
        ("http://h?x=1", "path=/ query=x=1 host=h"),
        ("https://a.b", "path=/ query=- host=a.b"),
        ("http://a.b//?q", "path=/ query=q host=a.b"),
    ] {
        let mut conn = server.connect().await;
        for _ in 0..2 {
            // Twice on one connection: the request after it is framed right too.
            conn.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"))
                .await;
            let res = conn.response().await;
            assert_eq!(res.status, 200, "{target}: {}", res.text());
            assert_eq!(res.text(), want, "{target}");
        }
    }
}

/// Bug 2: `GET //dashboard` ran the `/dashboard` handler without the middleware scoped to
/// `/dashboard`. Every spelling of a path is normalised once; every check sees the same.
#[tokio::test]
async fn no_spelling_of_a_path_skips_its_scoped_middleware() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    for target in [
        "/dashboard",
        "//dashboard",
        "/dashboard/",
        "///dashboard//",
        "/./dashboard",
        "/x/../dashboard",
        "/%64ashboard",
        "/%2e/dashboard",
        "/dashboard/a//b",
        "//dashboard/../dashboard/x",
        "http://x//dashboard",
    ] {
        conn.send(get(target)).await;
        let res = conn.response().await;
        assert_eq!(res.status, 403, "{target} skipped the scoped middleware");
    }
    conn.send(get("/dashboardx")).await;
    assert_eq!(conn.response().await.status, 404);
    conn.send(get("/dashboard/../json")).await;
    assert_eq!(conn.response().await.text(), "json");
}

#[derive(Clone)]
struct User;
impl AuthUser for User {
    fn id(&self) -> String {
        "1".into()
    }
}

/// The same for the auth middleware's excluded paths: a path that merely starts with an
/// excluded prefix as sent (`/static/../admin`) is not excluded, and an excluded one is,
/// however it is spelled. Signed in, a non-excluded path sees the user and an excluded one
/// does not (no user is loaded there).
#[tokio::test]
async fn no_spelling_of_a_path_escapes_or_fakes_an_auth_exclusion() {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("a-secret-key-for-tests")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new()
                .load_user(|_id: String| async { Some(User) })
                .exclude_path("/static/"),
        )
        .unwrap(),
    );
    app.route_with("/login", &[Method::Post], |_req: Request| async {
        chirp::middleware::auth::login(&User)?;
        Ok::<_, chirp::Error>("in")
    });
    app.route(
        "/admin",
        login_required(|_req: Request| async { "admin page" }),
    );
    app.route("/static/{file:path}", |req: Request| async move {
        let user = chirp::middleware::auth::get_user::<User>().map(|u| u.is_some());
        format!("{} {:?}", req.param("file").unwrap_or(""), user)
    });
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    let admin = [
        "/admin",
        "/static/../admin",
        "/static/%2e%2e/admin",
        "//static//..//admin",
        "/static/./../admin/",
    ];
    for target in admin {
        conn.send(get(target)).await;
        let res = conn.response().await;
        assert_eq!(res.status, 302, "{target}: {}", res.text());
        assert_eq!(
            res.header("location"),
            Some("/login?next=%2Fadmin"),
            "{target}"
        );
    }
    conn.send("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .await;
    let cookie = conn.response().await.cookie_pair();
    let with_cookie =
        |target: &str| format!("GET {target} HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n");
    for target in admin {
        conn.send(with_cookie(target)).await;
        let res = conn.response().await;
        assert_eq!(res.text(), "admin page", "{target}: the user was loaded");
    }
    for target in ["/static/a.css", "//static/a.css", "/static//x/../a.css"] {
        conn.send(with_cookie(target)).await;
        let res = conn.response().await;
        assert_eq!(res.status, 200, "{target}");
        assert_eq!(
            res.text(),
            "a.css Ok(false)",
            "{target}: excluded, anonymous"
        );
    }
}

/// Bug 3: junk after a chunk size, and an empty extension, were accepted (RFC 9112 §7.1.1).
#[tokio::test]
async fn junk_in_a_chunk_size_line_is_refused_and_closed() {
    let mut app = App::new();
    app.route_with("/", &[Method::Post], |req: Request| async move {
        format!("{} bytes", req.body().len())
    });
    let server = TestServer::start(app).await;
    for body in [
        "2 erfrferferf\r\nab\r\n0\r\n\r\n",
        "2\r\nab\r\n0 rrrr\r\n\r\n",
        "2;\r\nab\r\n0\r\n\r\n",
        "2;a=\r\nab\r\n0\r\n\r\n",
    ] {
        let raw = format!(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{body}{}",
            get("/")
        );
        refused(&server, raw.as_bytes(), 400).await;
    }
    let mut conn = server.connect().await;
    conn.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;a=b;c=\"d\"\r\nab\r\n0\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.text(), "2 bytes");
}

/// Bug 4: HTTP/1.0 with Transfer-Encoding was served and the connection kept (RFC 9112 §6.1:
/// faulty framing): 400, closed, and the request smuggled behind it never answered.
#[tokio::test]
async fn http_1_0_with_transfer_encoding_is_refused_and_closed() {
    let server = TestServer::start(app()).await;
    refused(
        &server,
        b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\nGET /json HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )
    .await;
}

/// Bug 5: more than one Host (any version) or an invalid Host value → 400; an absolute-form
/// authority takes precedence over Host.
#[tokio::test]
async fn host_rules() {
    let server = TestServer::start(app()).await;
    for raw in [
        &b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: evil@a\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        refused(&server, raw, 400).await;
    }
    let mut conn = server.connect().await;
    conn.send("GET http://real.example:8080/ HTTP/1.1\r\nHost: other\r\n\r\n")
        .await;
    assert_eq!(
        conn.response().await.text(),
        "path=/ query=- host=real.example:8080"
    );
    conn.send("GET / HTTP/1.0\r\nHost: [::1]:80\r\n\r\n").await;
    assert_eq!(conn.response().await.text(), "path=/ query=- host=[::1]:80");
}

/// Bug 6: a malformed HTTP-version was answered 505; it is a syntax error (400). 505 is for a
/// well-formed version with a major other than 1; a later 1.x minor is served as HTTP/1.1.
#[tokio::test]
async fn malformed_versions_are_400_and_other_majors_505() {
    let server = TestServer::start(app()).await;
    for raw in [
        &b"GET / FOO/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/1.-226088\r\nHost: x\r\n\r\n",
        b"GET / HTTP/\xf3..1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/11\r\nHost: x\r\n\r\n",
    ] {
        refused(&server, raw, 400).await;
    }
    refused(&server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505).await;
    refused(&server, b"GET / HTTP/3.1\r\nHost: x\r\n\r\n", 505).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.2\r\nHost: x\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
}

/// Bug 7: a HEAD request answered with an error carried a body (RFC 9110 §9.3.2: never).
#[tokio::test]
async fn error_answers_to_head_have_no_body() {
    let server = TestServer::start(app()).await;
    // `refused` reads the head only and then checks that nothing but the close follows.
    let res = refused(&server, b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n", 400).await;
    assert!(res.header("content-length").is_some());
    refused(
        &server,
        b"HEAD /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )
    .await;
    refused(
        &server,
        b"HEAD / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
        413,
    )
    .await;
    let mut conn = server.connect().await;
    conn.send("HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let res = conn.response_for(true).await;
    assert_eq!(res.status, 404);
    conn.send(get("/json")).await;
    assert_eq!(
        conn.response().await.text(),
        "json",
        "no stray body before it"
    );
}

/// Bug 8: raw non-ASCII bytes in the target were accepted (RFC 3986: percent-encode them).
#[tokio::test]
async fn raw_non_ascii_in_the_target_is_refused() {
    let server = TestServer::start(app()).await;
    refused(
        &server,
        b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
    )
    .await;
    refused(&server, b"GET /?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400).await;
    let mut conn = server.connect().await;
    conn.send(get("/?q=caf%C3%A9")).await;
    assert_eq!(
        conn.response().await.text(),
        "path=/ query=q=caf%C3%A9 host=test"
    );
}

/// Bug 9: extension methods can be routed; a method no route declares is 501; CONNECT is 501
/// with a reason that says so (not "request target must be a path").
#[tokio::test]
async fn extension_methods_are_routed_and_others_are_501() {
    let purge = Method::other("PURGE").unwrap();
    let propfind = Method::other("PROPFIND").unwrap();
    let mut app = App::new();
    app.route_with("/cache/{key}", &[purge], |req: Request| async move {
        format!("{} {}", req.method(), req.param("key").unwrap_or(""))
    });
    app.route("/cache/{key}", |_req: Request| async { "cached" });
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send("PURGE /cache/k1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.text(), "PURGE k1");
    conn.send("DELETE /cache/k1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("GET, HEAD, OPTIONS, PURGE"));
    // Declared in this process, but no route of this app serves it.
    assert_eq!(propfind.as_str(), "PROPFIND");
    conn.send("PROPFIND /cache/k1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 501);
    conn.send(get("/cache/k1")).await;
    assert_eq!(
        conn.response().await.text(),
        "cached",
        "the connection goes on"
    );
    refused(&server, b"MKCOL /x HTTP/1.1\r\nHost: x\r\n\r\n", 501).await;
    let res = refused(
        &server,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
        501,
    )
    .await;
    assert!(res.text().contains("CONNECT"), "{}", res.text());
}

/// A panic-free server keeps serving other clients through all of the above.
#[tokio::test]
async fn the_server_keeps_serving_after_hostile_heads() {
    let server = TestServer::start(app()).await;
    for raw in [
        &b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/\xf3\r\n\r\n",
    ] {
        let mut conn = server.connect().await;
        conn.send(raw).await;
        let res = conn.response().await;
        if res.status == 400 {
            assert!(conn.closed_within(Duration::from_secs(3)).await);
        }
    }
    let mut conn = server.connect().await;
    conn.send(get("/json")).await;
    assert_eq!(conn.response().await.text(), "json");
}
