//! Black-box tests of the HTTP/1.1 server over real loopback sockets.

mod common;

use std::time::{Duration, Instant};

use chirp::{App, Method, Request, Response, ServerConfig};
use common::{get, refused, RawConn, TestServer};

fn app() -> App {
    let mut app = App::new();
    app.route("/", |_req: Request| async { "Hello, World!" });
    app.route("/echo/{word}", |req: Request| async move {
        req.param("word").unwrap_or("").to_owned()
    });
    app.route_with(
        "/body",
        &[Method::Post, Method::Put],
        |req: Request| async move {
            format!(
                "{} bytes: {}",
                req.body().len(),
                String::from_utf8_lossy(req.body())
            )
        },
    );
    app.route("/panic", |_req: Request| async {
        if true {
            panic!("boom");
        }
        "unreachable"
    });
    app.route("/panic-early", |_req: Request| {
        // Panics while making its future, not inside it.
        if true {
            panic!("boom before the future");
        }
        async { "unreachable" }
    });
    app.route("/split", |_req: Request| async {
        Response::text("x").with_header("x-evil", "a\r\nset-cookie: pwned=1")
    });
    app.route("/slow", |_req: Request| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        "slow done"
    });
    app.route("/big", |_req: Request| async { "z".repeat(100_000) });
    app.route("/numbered/{n}", |req: Request| async move {
        // Below the size written straight from the response: these go through the write buffer.
        let n = req.param("n").unwrap_or("?").to_owned();
        format!("{n}:{}", n.repeat(12_000 / n.len().max(1)))
    });
    app
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    for i in 0..3 {
        conn.send(get(&format!("/echo/{i}"))).await;
        let res = conn.response().await;
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), i.to_string());
        assert_eq!(res.header("content-length"), Some("1"));
        let date = res.header("date").expect("Date header");
        assert!(date.ends_with(" GMT") && date.len() == 29, "{date}");
        assert_eq!(res.header("connection"), None);
    }
}

#[tokio::test]
async fn sixteen_pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    let batch: String = (0..16).map(|i| get(&format!("/echo/r{i}"))).collect();
    conn.send(batch).await;
    for i in 0..16 {
        let res = conn.response().await;
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), format!("r{i}"));
    }
    assert!(conn.pending().is_empty());
}

#[tokio::test]
async fn chunked_body_with_extensions_and_trailers_then_another_request() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(
        "POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;ext=1\r\nhello\r\n6;a;b=\"c\"\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    .await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "11 bytes: hello world");
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "Hello, World!");
}

#[tokio::test]
async fn chunked_body_arriving_in_pieces() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab")
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send("c\r\n0\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send("\r\n").await;
    assert_eq!(conn.response().await.text(), "3 bytes: abc");
}

#[tokio::test]
async fn content_length_body_and_expect_continue() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndata")
        .await;
    assert_eq!(conn.response().await.text(), "4 bytes: data");

    conn.send("PUT /body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let interim = conn.response().await;
    assert_eq!(interim.status, 100);
    conn.send("12345").await;
    let res = conn.response().await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "5 bytes: 12345");
}

#[tokio::test]
async fn head_has_get_headers_and_no_body() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response_for(true).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.header("content-length"), Some("13"));
    assert_eq!(
        res.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    // If a body had been sent, it would now be read as the next response's start.
    conn.send(get("/echo/after")).await;
    assert_eq!(conn.response().await.text(), "after");
}

#[tokio::test]
async fn not_found_method_not_allowed_and_options() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(get("/nope")).await;
    assert_eq!(conn.response().await.status, 404);
    conn.send("DELETE /body HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.status, 405);
    assert_eq!(res.header("allow"), Some("POST, PUT, OPTIONS"));
    conn.send("OPTIONS / HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.status, 204);
    assert_eq!(res.header("allow"), Some("GET, HEAD, OPTIONS"));
    conn.send(get("/users/")).await;
    assert_eq!(conn.response().await.status, 404);
    conn.send(get("/echo/a/b")).await;
    assert_eq!(conn.response().await.status, 404);
    conn.send(get("/echo/trailing/")).await;
    assert_eq!(conn.response().await.text(), "trailing");
    conn.send(get("//echo//x/")).await;
    assert_eq!(conn.response().await.text(), "x");
}

#[tokio::test]
async fn hostile_heads_get_a_clear_status_and_the_connection_closed() {
    let server = TestServer::start(app()).await;
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    refused(&server, long_target.as_bytes(), 414).await;
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17 * 1024)
    );
    refused(&server, big_head.as_bytes(), 431).await;
    refused(&server, b"GARBAGE\r\n\r\n", 400).await;
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n",
        400,
    )
    .await;
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        400,
    )
    .await;
    refused(
        &server,
        b"GET / HTTP/1.1\r\nBad Header: v\r\nHost: t\r\n\r\n",
        400,
    )
    .await;
    refused(&server, b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501).await;
}

#[tokio::test]
async fn smuggling_attempts_are_refused_and_closed() {
    let server = TestServer::start(app()).await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    )
    .await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
        400,
    )
    .await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    )
    .await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4x\r\n\r\nabcd",
        400,
    )
    .await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        501,
    )
    .await;
    refused(
        &server,
        b"POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        400,
    )
    .await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let config = ServerConfig {
        max_body_size: 1000,
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(app(), config).await;
    let by_length = format!(
        "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n{}",
        "x".repeat(1001)
    );
    refused(&server, by_length.as_bytes(), 413).await;
    let chunk = format!("{:x}\r\n{}\r\n", 600, "y".repeat(600));
    let by_chunks = format!("POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n");
    refused(&server, by_chunks.as_bytes(), 413).await;
    // At the limit is fine.
    let mut conn = server.connect().await;
    conn.send(format!(
        "POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n{}",
        "x".repeat(1000)
    ))
    .await;
    assert_eq!(conn.response().await.status, 200);
}

#[tokio::test]
async fn slow_but_steady_clients_are_served() {
    let config = ServerConfig {
        head_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(app(), config).await;
    let mut conn = server.connect().await;
    for piece in get("/echo/steady").as_bytes().chunks(4) {
        conn.send(piece).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let res = conn.response().await;
    assert_eq!(res.text(), "steady");
}

#[tokio::test]
async fn a_slowloris_is_cut_off() {
    let config = ServerConfig {
        head_timeout: Duration::from_millis(400),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(app(), config).await;
    let mut conn = server.connect().await;
    let started = Instant::now();
    conn.send("GET / HTTP/1.1\r\nHost: t\r\n").await;
    // Keep trickling header bytes, never finishing the head.
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if conn.stream.try_write(b"X").is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(700), trickle).await;
    let res = conn.response().await;
    assert_eq!(res.status, 408);
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_silent_connection_and_an_idle_keep_alive_connection_are_closed() {
    let config = ServerConfig {
        head_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(app(), config).await;
    let mut silent = server.connect().await;
    assert!(silent.closed_within(Duration::from_secs(2)).await);

    let mut conn = server.connect().await;
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.status, 200);
    assert!(conn.closed_within(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn connection_close_and_http_1_0() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.header("connection"), Some("close"));
    assert!(conn.closed_within(Duration::from_secs(2)).await);

    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
    assert!(conn.closed_within(Duration::from_secs(2)).await);

    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.header("connection"), Some("keep-alive"));
    conn.send("GET /echo/again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.text(), "again");
}

#[tokio::test]
async fn a_panicking_handler_gets_500_and_the_connection_goes_on() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(get("/panic")).await;
    assert_eq!(conn.response().await.status, 500);
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "Hello, World!");
    conn.send(get("/panic-early")).await;
    assert_eq!(conn.response().await.status, 500);
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "Hello, World!");
}

/// The connection reuses its handler future's box when the next request's handler has the
/// same future type: switching handlers, a panic, and a slow handler in between must still
/// give each request its own answer.
#[tokio::test]
async fn one_connection_switching_handlers_gets_every_answer_right() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    let steps: [(&str, u16, &str); 8] = [
        ("/echo/a", 200, "a"),
        ("/echo/b", 200, "b"),
        ("/", 200, "Hello, World!"),
        ("/echo/c", 200, "c"),
        ("/panic", 500, "Internal Server Error"),
        ("/echo/d", 200, "d"),
        ("/slow", 200, "slow done"),
        ("/echo/e", 200, "e"),
    ];
    for (path, status, body) in steps {
        conn.send(get(path)).await;
        let res = conn.response().await;
        assert_eq!((res.status, res.text().as_str()), (status, body), "{path}");
    }
}

#[tokio::test]
async fn response_splitting_is_refused() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(get("/split")).await;
    let res = conn.response().await;
    assert_eq!(res.status, 500);
    assert!(res.header("set-cookie").is_none());
    assert!(res.header("x-evil").is_none());
}

#[tokio::test]
async fn large_bodies_arrive_whole() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(format!("{}{}", get("/big"), get("/"))).await;
    let res = conn.response().await;
    assert_eq!(res.body.len(), 100_000);
    assert!(res.body.iter().all(|&b| b == b'z'));
    assert_eq!(conn.response().await.text(), "Hello, World!");
}

/// More pipelined answers than the socket takes at once, to a client that reads late: what the
/// first write leaves over goes out after it, every answer whole and in order.
#[tokio::test]
async fn answers_larger_than_the_socket_buffer_go_out_whole_and_in_order() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    let requests: String = (0..300).map(|i| get(&format!("/numbered/{i}"))).collect();
    conn.send(requests).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..300 {
        let n = i.to_string();
        let expected = format!("{n}:{}", n.repeat(12_000 / n.len()));
        let res = conn.response().await;
        assert!(res.text() == expected, "answer {i} is wrong");
    }
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let mut server = TestServer::start(app()).await;
    let mut busy = server.connect().await;
    let mut idle = server.connect().await;
    idle.send(get("/")).await;
    assert_eq!(idle.response().await.status, 200);
    busy.send(get("/slow")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop();
    let res = busy.response().await;
    assert_eq!(res.text(), "slow done");
    assert_eq!(res.header("connection"), Some("close"));
    assert!(idle.closed_within(Duration::from_secs(2)).await);
    let result = tokio::time::timeout(Duration::from_secs(5), &mut server.handle).await;
    assert!(
        matches!(result, Ok(Ok(Ok(())))),
        "server did not stop cleanly"
    );
    assert!(
        tokio::net::TcpStream::connect(server.addr).await.is_err(),
        "still accepting after shutdown"
    );
}

/// A connection that once waited on a head in pieces (when the shutdown notice is not
/// watched) and then went idle is still closed at once by a shutdown.
#[tokio::test]
async fn shutdown_closes_an_idle_connection_whose_last_head_came_in_pieces() {
    let mut server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHo").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.send("st: t\r\n\r\n").await;
    assert_eq!(conn.response().await.text(), "Hello, World!");
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.stop();
    assert!(conn.closed_within(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn bad_route_patterns_fail_at_build_with_the_pattern_named() {
    let mut app = App::new();
    app.route("/users/<id>", |_req: Request| async { "" });
    let err = app.build().err().expect("a configuration error");
    assert!(err.message().contains("/users/<id>"), "{err}");
}

#[tokio::test]
async fn a_client_closing_mid_request_leaves_the_server_serving() {
    let server = TestServer::start(app()).await;
    let mut half = RawConn::connect(server.addr).await;
    half.send("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly a part")
        .await;
    drop(half);
    let mut conn = server.connect().await;
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "Hello, World!");
}

/// Issue 11, item 3: the server's own refusals go through the app's error handler too (and
/// still close the connection, with no handler run).
#[tokio::test]
async fn server_refusals_go_through_the_error_handler() {
    let mut app = app();
    app.error_handler(|problem| {
        Response::html(format!(
            "<p>{}: {}</p>",
            problem.status().as_u16(),
            problem.detail()
        ))
        .with_status(problem.status())
        .with_header("x-frame-options", "DENY")
    });
    let server = TestServer::start(app).await;
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(17 * 1024)
    );
    let res = refused(&server, big_head.as_bytes(), 431).await;
    assert_eq!(res.text(), "<p>431: request head too large</p>");
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let res = refused(&server, b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400).await;
    assert!(res.text().starts_with("<p>400: "), "{}", res.text());
    let mut conn = server.connect().await;
    conn.send(get("/nowhere")).await;
    let res = conn.response().await;
    assert_eq!(res.text(), "<p>404: Not Found</p>");
    conn.send(get("/")).await;
    assert_eq!(
        conn.response().await.text(),
        "Hello, World!",
        "the connection goes on"
    );
}
