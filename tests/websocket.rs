//! WebSocket through the in-process TestClient: the handshake's refusals, echo, the control
//! frames chirp answers, the close handshake, limits, compression and shutdown.

use std::time::Duration;

use chirp::testing::TestClient;
use chirp::ws::{close_code, DeflateConfig, Message, WebSocket};
use chirp::{App, Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.recv().await {
        if matches!(msg, Message::Text(_) | Message::Binary(_)) && socket.send(msg).await.is_err() {
            break;
        }
    }
}

fn app() -> App {
    let mut app = App::new();
    app.route("/ws", |req: Request| async move {
        Ok::<_, chirp::Error>(req.websocket()?.max_message_size(1024).on_upgrade(echo))
    });
    app.route("/ws/once", |req: Request| async move {
        Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
            let _ = socket.send("only this").await;
        }))
    });
    app.route("/ws/chat", |req: Request| async move {
        Ok::<_, chirp::Error>(
            req.websocket()?
                .protocols(&["chat.v2", "chat.v1"])
                .allow_origin("https://friend.example")
                .on_upgrade(|mut socket| async move {
                    let p = socket.protocol().unwrap_or("none").to_owned();
                    let _ = socket.send(p).await;
                    echo(socket).await
                }),
        )
    });
    app
}

async fn next(socket: &mut WebSocket) -> Message {
    tokio::time::timeout(Duration::from_secs(5), socket.recv())
        .await
        .expect("a message within 5 s")
        .expect("the socket is open")
        .expect("no error")
}

#[tokio::test]
async fn echoes_text_and_binary_and_answers_pings() {
    let client = TestClient::new(app());
    let (res, mut socket) = client
        .request(Method::Get, "/ws")
        .websocket()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(res.header("upgrade"), Some("websocket"));
    assert!(
        res.header("sec-websocket-extensions").is_none(),
        "not offered"
    );
    socket.send("héllo").await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("héllo"));
    socket.send(vec![0u8, 1, 2, 255]).await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::binary(vec![0u8, 1, 2, 255])
    );
    socket
        .send(Message::Ping("are you there".into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::Pong("are you there".into())
    );
    // The client's close code is echoed.
    socket.close(4001, "bye").await.unwrap();
    match next(&mut socket).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, 4001),
        other => panic!("{other:?}"),
    }
    assert!(socket.recv().await.is_none());
}

/// The code of the Close that `socket` receives next.
async fn close_code_of(socket: &mut WebSocket) -> u16 {
    match next(socket).await {
        Message::Close(Some(frame)) => frame.code,
        other => panic!("expected a Close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_message_over_the_limit_closes_with_1009() {
    let client = TestClient::new(app());
    let mut socket = client.websocket("/ws").await.unwrap();
    socket.send("x".repeat(1024)).await.unwrap();
    assert_eq!(next(&mut socket).await.as_text().map(str::len), Some(1024));
    socket.send("x".repeat(1025)).await.unwrap();
    assert_eq!(
        close_code_of(&mut socket).await,
        close_code::MESSAGE_TOO_BIG
    );
    assert!(socket.recv().await.is_none());
}

/// A raw connection: the 101 read, then frames written by hand.
async fn raw(client: &TestClient, path: &str) -> tokio::io::DuplexStream {
    let (res, io) = client
        .request(Method::Get, path)
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .upgrade("websocket")
        .await
        .unwrap();
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    io
}

/// The close frame the server sends next on `io`: (code, reason).
async fn read_close(io: &mut tokio::io::DuplexStream) -> (u16, String) {
    let mut head = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), io.read_exact(&mut head))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head[0], 0x88, "a final Close frame");
    let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
    io.read_exact(&mut payload).await.unwrap();
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    (code, String::from_utf8(payload[2..].to_vec()).unwrap())
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let client = TestClient::new(app());
    // An unmasked frame from a client: 1002 (RFC 6455 §5.1).
    let mut io = raw(&client, "/ws").await;
    io.write_all(&[0x81, 0x02, b'h', b'i']).await.unwrap();
    assert_eq!(read_close(&mut io).await.0, close_code::PROTOCOL_ERROR);
    // And the connection ends.
    let mut rest = Vec::new();
    io.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());

    // Invalid UTF-8 in a text message: 1007.
    let mut io = raw(&client, "/ws").await;
    io.write_all(&[0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe])
        .await
        .unwrap();
    assert_eq!(read_close(&mut io).await.0, close_code::INVALID_PAYLOAD);

    // A reserved opcode: 1002.
    let mut io = raw(&client, "/ws").await;
    io.write_all(&[0x83, 0x80, 0, 0, 0, 0]).await.unwrap();
    assert_eq!(read_close(&mut io).await.0, close_code::PROTOCOL_ERROR);
}

#[tokio::test]
async fn the_handshake_is_checked() {
    let client = TestClient::new(app());
    let res = client.get("/ws").await;
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.header("upgrade"), Some("websocket"));
    let res = client.post("/ws", "").await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let res = client
        .request(Method::Get, "/ws")
        .header("sec-websocket-version", "8")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .upgrade("websocket")
        .await
        .unwrap_err();
    assert_eq!(res.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(res.header("sec-websocket-version"), Some("13"));
    let res = client
        .request(Method::Get, "/ws")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "short")
        .upgrade("websocket")
        .await
        .unwrap_err();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn origins_and_subprotocols() {
    let client = TestClient::new(app());
    let refused = client
        .request(Method::Get, "/ws/chat")
        .header("origin", "https://evil.example")
        .websocket()
        .await
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let (res, mut socket) = client
        .request(Method::Get, "/ws/chat")
        .header("origin", "https://friend.example")
        .header("sec-websocket-protocol", "chat.v1, chat.v2")
        .websocket()
        .await
        .unwrap();
    assert_eq!(res.header("sec-websocket-protocol"), Some("chat.v1"));
    assert_eq!(next(&mut socket).await, Message::text("chat.v1"));
    // The server's own origin.
    let own = client
        .request(Method::Get, "/ws/chat")
        .header("host", "chat.example:8080")
        .header("origin", "http://chat.example:8080")
        .websocket()
        .await;
    assert!(own.is_ok());
}

#[tokio::test]
async fn compressed_messages_round_trip() {
    let client = TestClient::new(app());
    let (res, mut socket) = client
        .request(Method::Get, "/ws")
        .websocket_with(Some(DeflateConfig::default()))
        .await
        .unwrap();
    let ext = res.header("sec-websocket-extensions").unwrap();
    assert!(ext.starts_with("permessage-deflate"), "{ext}");
    assert!(socket.is_compressed());
    for n in 0..20 {
        let text = format!("message {n}: {}", "abc".repeat(100));
        socket.send(text.clone()).await.unwrap();
        assert_eq!(next(&mut socket).await, Message::text(text));
    }
}

#[tokio::test]
async fn shutdown_sends_1001() {
    let client = TestClient::new(app());
    let mut socket = client.websocket("/ws").await.unwrap();
    socket.send("one").await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("one"));
    let started = std::time::Instant::now();
    client.begin_shutdown();
    assert_eq!(close_code_of(&mut socket).await, close_code::GOING_AWAY);
    assert!(socket.recv().await.is_none());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_callback_that_returns_closes_with_1000() {
    let client = TestClient::new(app());
    let mut socket = client.websocket("/ws/once").await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("only this"));
    assert_eq!(close_code_of(&mut socket).await, close_code::NORMAL);
    assert!(socket.recv().await.is_none());
}

#[tokio::test]
async fn a_split_socket_reads_and_writes_from_two_tasks() {
    let client = TestClient::new(app());
    let socket = client.websocket("/ws").await.unwrap();
    let (mut reader, writer) = socket.split();
    let sender = tokio::spawn(async move {
        for n in 0..100 {
            writer.send(format!("m{n}")).await.unwrap();
        }
        writer
    });
    for n in 0..100 {
        let msg = tokio::time::timeout(Duration::from_secs(5), reader.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(msg, Message::text(format!("m{n}")));
    }
    let writer = sender.await.unwrap();
    writer.close(close_code::NORMAL, "done").await.unwrap();
    assert!(matches!(
        writer.send("late").await,
        Err(chirp::ws::WsError::Closed)
    ));
    match reader.recv().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, close_code::NORMAL),
        other => panic!("{other:?}"),
    }
    assert!(reader.recv().await.is_none());
}

/// Real time, short periods: tokio's paused clock (`test-util`) would reach the examples
/// through the dev-dependencies, and its clock costs every request's timers ~300
/// instructions in the benchmarks built from them.
#[tokio::test]
async fn a_quiet_client_is_pinged_then_closed_when_it_stays_silent() {
    let mut app = App::new();
    app.route("/ws", |req: Request| async move {
        Ok::<_, chirp::Error>(
            req.websocket()?
                .ping_interval(Some(Duration::from_millis(100)))
                .idle_timeout(Some(Duration::from_millis(1000)))
                .on_upgrade(echo),
        )
    });
    let client = TestClient::new(app);
    let mut socket = client.websocket("/ws").await.unwrap();
    // 100 ms of quiet: a ping (and the client's recv answers it).
    let started = std::time::Instant::now();
    assert_eq!(next(&mut socket).await, Message::Ping(bytes::Bytes::new()));
    assert!(started.elapsed() >= Duration::from_millis(100));
    // The pongs count: the socket stays open past the idle timeout while pings are answered.
    for _ in 0..12 {
        assert_eq!(next(&mut socket).await, Message::Ping(bytes::Bytes::new()));
    }
    assert!(started.elapsed() >= Duration::from_millis(1200));
    // A client that stops answering (it no longer reads) is closed after the idle timeout.
    let (mut reader, _writer) = socket.split();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut codes = Vec::new();
    while let Some(Ok(msg)) = reader.recv().await {
        if let Message::Close(Some(frame)) = msg {
            codes.push(frame.code);
        }
    }
    assert_eq!(codes, [close_code::GOING_AWAY]);
}

#[tokio::test]
async fn the_session_and_the_user_are_read_inside_the_socket() {
    use chirp::middleware::access_log::{request_id, AccessLogMiddleware};
    use chirp::middleware::auth::{
        get_user, login, login_required, AuthConfig, AuthMiddleware, AuthUser,
    };
    use chirp::middleware::sessions::SessionMiddleware;
    use chirp::sessions::{get_session, SessionConfig};

    #[derive(Clone)]
    struct User(String);
    impl AuthUser for User {
        fn id(&self) -> String {
            self.0.clone()
        }
    }
    let mut app = App::new();
    app.add_middleware(AccessLogMiddleware::new());
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("a-test-secret-key-of-32-bytes!!")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new().load_user(|id: String| async move { Some(User(id)) }),
        )
        .unwrap(),
    );
    app.post("/login", |_req: Request| async {
        login(&User("ann".into()))?;
        get_session()?.insert("color", "green");
        Ok::<_, chirp::Error>("in")
    });
    app.route(
        "/ws/me",
        login_required(|req: Request| async move {
            Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
                // Inside the socket's task, after the middleware have returned.
                let user = get_user::<User>().ok().flatten().map(|u| u.0);
                let color = get_session().ok().and_then(|s| s.get::<String>("color"));
                let id = request_id().is_ok_and(|id| !id.is_empty());
                let _ = socket.send(format!("{user:?} {color:?} {id}")).await;
            }))
        }),
    );
    let client = TestClient::new(app);
    // Anonymous: 401, no 101.
    let refused = client.websocket("/ws/me").await.unwrap_err();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.post("/login", "").await.text(), "in");
    let mut socket = client.websocket("/ws/me").await.unwrap();
    assert_eq!(
        next(&mut socket).await,
        Message::text(r#"Some("ann") Some("green") true"#)
    );
}

#[tokio::test]
async fn cors_origins_are_allowed_at_the_upgrade() {
    use chirp::middleware::cors::{CorsConfig, CorsMiddleware};
    let mut app = app();
    app.add_middleware(
        CorsMiddleware::new(CorsConfig::new().allow_origin("https://spa.example")).unwrap(),
    );
    let client = TestClient::new(app);
    let ok = client
        .request(Method::Get, "/ws")
        .header("origin", "https://spa.example")
        .websocket()
        .await;
    assert!(ok.is_ok());
    let refused = client
        .request(Method::Get, "/ws")
        .header("origin", "https://other.example")
        .websocket()
        .await
        .unwrap_err();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn fed_replies_go_out_in_order_and_before_the_reader_waits() {
    let mut app = App::new();
    app.route("/ws", |req: Request| async move {
        Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                if let Message::Text(text) = msg {
                    // A reply fed, then a ping sent: the ping flushes the reply before it.
                    socket.feed(format!("re: {}", text.as_str())).await.unwrap();
                    if text.as_str() == "ping me" {
                        socket.send(Message::Ping("p".into())).await.unwrap();
                    }
                }
            }
        }))
    });
    let client = TestClient::new(app);
    let mut socket = client.websocket("/ws").await.unwrap();
    // A burst: three messages in one write.
    for n in 0..3 {
        socket.feed(format!("m{n}")).await.unwrap();
    }
    socket.flush().await.unwrap();
    for n in 0..3 {
        // Nothing more is sent: the server's recv flushes its fed replies before it waits.
        assert_eq!(next(&mut socket).await, Message::text(format!("re: m{n}")));
    }
    socket.send("ping me").await.unwrap();
    assert_eq!(next(&mut socket).await, Message::text("re: ping me"));
    assert_eq!(next(&mut socket).await, Message::Ping("p".into()));
}
