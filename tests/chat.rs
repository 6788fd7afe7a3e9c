//! The chat example (examples/chat.rs), black-box over real sockets, each behaviour its module
//! doc promises: the login form and its CSRF token, `/ws/chat` refused without a session (401)
//! and from a foreign `Origin` (403), never with a `101`, but open to the server's own origin;
//! two users' sockets each get every message (their own too) as the exact JSON, and `/events`
//! the same JSON as SSE; the echo socket (text, binary, ping, close code, permessage-deflate,
//! 1009 over its limit, 1002 and 1007 for violations); and the example's own binary, on
//! SIGTERM, sending Close 1001 to every open socket and exiting within 2 s.
//!
//! The WebSocket client is tokio-tungstenite (another implementation than chirp's own, as a
//! browser would be); frames tungstenite will not send (compressed, invalid, reserved) are
//! written by hand.

mod common;

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chirp::broadcast::Hub;
use common::{RawConn, RawResponse, TestServer};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long anything may take before the test counts it as hung.
const WAIT: Duration = Duration::from_secs(5);

/// The example with an in-memory hub and the example's default message limit.
async fn server() -> TestServer {
    TestServer::start(chat::app(Hub::new(), 1 << 20).expect("the example builds")).await
}

/// Percent-encodes a form value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first `name="_csrf_token"` hidden field.
fn hidden_token(html: &str) -> String {
    let marker = r#"name="_csrf_token" value=""#;
    let at = html.find(marker).expect("a hidden _csrf_token field") + marker.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// A browser-like HTTP client: one connection per request, the session cookie kept.
struct Client {
    addr: SocketAddr,
    cookie: Option<String>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, cookie: None }
    }

    async fn send(&mut self, method: &str, path: &str, body: &str) -> RawResponse {
        let mut raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/html\r\n",
            self.addr
        );
        if let Some(cookie) = &self.cookie {
            raw.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if method == "POST" {
            raw.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        raw.push_str("Connection: close\r\n\r\n");
        raw.push_str(body);
        let mut conn = RawConn::connect(self.addr).await;
        conn.send(raw).await;
        let res = conn.response().await;
        if let Some(set) = res.header("set-cookie") {
            self.cookie = Some(set.split(';').next().unwrap_or_default().to_owned());
        }
        res
    }

    /// Logs in as `name` through the form, with the CSRF token scraped from it.
    async fn log_in(&mut self, name: &str) {
        let form = self.send("GET", "/login", "").await;
        assert_eq!(form.status, 200, "{}", form.text());
        let html = form.text();
        assert!(
            html.contains(r#"<form method="post" action="/login">"#),
            "{html}"
        );
        assert!(html.contains(r#"name="name""#), "{html}");
        let token = hidden_token(&html);
        let res = self
            .send(
                "POST",
                "/login",
                &format!("name={}&_csrf_token={}", encode(name), encode(&token)),
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.text());
        assert_eq!(res.header("location"), Some("/"));
        assert!(
            res.header("set-cookie").is_some(),
            "a session cookie: {res:?}"
        );
    }

    /// The session cookie, `name=value`.
    fn cookie(&self) -> &str {
        self.cookie.as_deref().expect("a session cookie")
    }
}

/// The origin a page of the server itself sends.
fn own_origin(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// Opens `ws://addr/path` with these extra headers; the handshake's error as it is.
async fn try_open(
    addr: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> Result<Ws, WsError> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    let (ws, response) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("the handshake within 5 s")?;
    assert_eq!(response.status(), 101);
    Ok(ws)
}

async fn open(addr: SocketAddr, path: &str, headers: &[(&'static str, &str)]) -> Ws {
    try_open(addr, path, headers)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A chat socket of a signed-in client, from the server's own origin.
async fn open_chat(addr: SocketAddr, client: &Client) -> Ws {
    open(
        addr,
        "/ws/chat",
        &[("Cookie", client.cookie()), ("Origin", &own_origin(addr))],
    )
    .await
}

/// The status of a refused handshake (asserting it was refused).
async fn refused_status(addr: SocketAddr, path: &str, headers: &[(&'static str, &str)]) -> u16 {
    match try_open(addr, path, headers).await {
        Ok(_) => panic!("{path}: the handshake succeeded (101) where it should not"),
        Err(WsError::Http(res)) => res.status().as_u16(),
        Err(e) => panic!("{path}: {e}"),
    }
}

/// The next message that is not a ping or pong (within 5 s).
async fn next(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message within 5 s")
            .expect("the socket still open")
            .expect("a valid message");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

async fn next_text(ws: &mut Ws) -> String {
    match next(ws).await {
        Message::Text(text) => text.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// The JSON every chat socket gets for a message: `{"user":"<name>","text":"<text>"}`, in
/// that order, compact.
fn said(user: &str, text: &str) -> String {
    let quoted = |s: &str| serde_json::to_string(s).unwrap();
    format!(r#"{{"user":{},"text":{}}}"#, quoted(user), quoted(text))
}

/// Nothing more arrives on `ws` for a short while.
async fn quiet(ws: &mut Ws) {
    if let Ok(msg) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        panic!("unexpected: {msg:?}");
    }
}

/// `GET /events`, read as it streams (chunked transfer decoded).
struct Events {
    conn: TcpStream,
    raw: Vec<u8>,
}

impl Events {
    async fn open(addr: SocketAddr) -> Events {
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(format!("GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut events = Events {
            conn,
            raw: Vec::new(),
        };
        // The head: the hub subscription is made before it is sent.
        let head_end = loop {
            if let Some(i) = events.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            events.fill().await;
        };
        let head = String::from_utf8_lossy(&events.raw[..head_end]).to_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(head.contains("content-type: text/event-stream"), "{head}");
        assert!(head.contains("transfer-encoding: chunked"), "{head}");
        events.raw.drain(..head_end);
        events
    }

    async fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, self.conn.read(&mut chunk))
            .await
            .expect("SSE bytes within 5 s")
            .unwrap();
        assert!(n > 0, "the event stream ended");
        self.raw.extend_from_slice(&chunk[..n]);
    }

    /// The body so far, de-chunked, once it contains `needle`.
    async fn until(&mut self, needle: &str) -> String {
        loop {
            let body = dechunk(&self.raw);
            if body.contains(needle) {
                return body;
            }
            self.fill().await;
        }
    }
}

/// The complete chunks of a chunked body, joined.
fn dechunk(mut raw: &[u8]) -> String {
    let mut body = Vec::new();
    while let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..line_end]).unwrap();
        let size = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
        let start = line_end + 2;
        if size == 0 || raw.len() < start + size + 2 {
            break;
        }
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
    String::from_utf8(body).unwrap()
}

#[tokio::test]
async fn the_login_form_carries_a_csrf_token_and_logs_in() {
    let server = server().await;
    let mut c = Client::new(server.addr);
    let form = c.send("GET", "/login", "").await;
    assert_eq!(form.status, 200);
    assert_eq!(
        form.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = form.text();
    assert!(
        html.contains(r#"<input type="hidden" name="_csrf_token" value=""#),
        "{html}"
    );
    let token = hidden_token(&html);
    assert!(!token.is_empty());

    // Without the token: refused, nobody signed in.
    let res = c.send("POST", "/login", "name=mallory").await;
    assert_eq!(res.status, 403, "{}", res.text());

    c.log_in("alice").await;
    // The page carries the chat client once signed in.
    let page = c.send("GET", "/", "").await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(
        html.contains(r#"new WebSocket(scheme + location.host + "/ws/chat")"#),
        "{html}"
    );

    // An anonymous visitor gets the page with a link to log in.
    let page = Client::new(server.addr).send("GET", "/", "").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains(r#"<a href="/login">"#));
}

#[tokio::test]
async fn the_page_names_the_signed_in_user() {
    let server = server().await;
    let mut c = Client::new(server.addr);
    c.log_in("alice").await;
    let html = c.send("GET", "/", "").await.text();
    assert!(
        html.contains(r#"Signed in as <b id="me">alice</b>."#),
        "{html}"
    );
}

#[tokio::test]
async fn the_chat_socket_needs_a_session_and_the_servers_own_origin() {
    let server = server().await;
    let addr = server.addr;
    let origin = own_origin(addr);

    // No session: 401, no 101 (with or without an Origin).
    assert_eq!(refused_status(addr, "/ws/chat", &[]).await, 401);
    assert_eq!(
        refused_status(addr, "/ws/chat", &[("Origin", &origin)]).await,
        401
    );
    // A cookie that is not a session of this server: the same.
    assert_eq!(
        refused_status(
            addr,
            "/ws/chat",
            &[("Cookie", "session=forged.value"), ("Origin", &origin)]
        )
        .await,
        401
    );

    let mut alice = Client::new(addr);
    alice.log_in("alice").await;
    // A page of another origin, with alice's cookie (as a browser would send it): 403, no 101.
    for foreign in [
        "http://evil.example",
        "http://127.0.0.1:1",
        "https://evil.example:443",
        "null",
    ] {
        assert_eq!(
            refused_status(
                addr,
                "/ws/chat",
                &[("Cookie", alice.cookie()), ("Origin", foreign)]
            )
            .await,
            403,
            "Origin: {foreign}"
        );
    }
    // Its own origin: open, and it works.
    let mut ws = open_chat(addr, &alice).await;
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(next_text(&mut ws).await, said("alice", "hi"));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn two_users_hear_each_other_and_themselves_and_events_too() {
    let server = server().await;
    let addr = server.addr;
    let mut events = Events::open(addr).await;

    let mut alice = Client::new(addr);
    alice.log_in("alice").await;
    let mut bob = Client::new(addr);
    bob.log_in("bob").await;

    // Each socket hears its own first message once it is in the room (the subscription is
    // made before its first message is read): then the next one is surely in.
    let mut a = open_chat(addr, &alice).await;
    a.send(Message::text("alice is here")).await.unwrap();
    assert_eq!(next_text(&mut a).await, said("alice", "alice is here"));
    let mut b = open_chat(addr, &bob).await;
    b.send(Message::text("bob is here")).await.unwrap();
    assert_eq!(next_text(&mut b).await, said("bob", "bob is here"));
    assert_eq!(next_text(&mut a).await, said("bob", "bob is here"));

    a.send(Message::text("hello bob")).await.unwrap();
    assert_eq!(
        next_text(&mut a).await,
        r#"{"user":"alice","text":"hello bob"}"#
    );
    assert_eq!(
        next_text(&mut b).await,
        r#"{"user":"alice","text":"hello bob"}"#
    );

    b.send(Message::text("hi alice")).await.unwrap();
    assert_eq!(
        next_text(&mut b).await,
        r#"{"user":"bob","text":"hi alice"}"#
    );
    assert_eq!(
        next_text(&mut a).await,
        r#"{"user":"bob","text":"hi alice"}"#
    );

    // Text that needs escaping in JSON comes through as the same text.
    let tricky = "say \"<b>&</b>\"\n\\ — ünïcode 🐦";
    a.send(Message::text(tricky)).await.unwrap();
    for ws in [&mut a, &mut b] {
        let got: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
        assert_eq!(got, serde_json::json!({ "user": "alice", "text": tricky }));
    }
    // Binary messages are not chat: nobody hears them.
    a.send(Message::binary(b"not text".to_vec())).await.unwrap();
    quiet(&mut a).await;
    quiet(&mut b).await;

    // /events: a `message` event with the same JSON for each, in order.
    let all = [
        said("alice", "alice is here"),
        said("bob", "bob is here"),
        said("alice", "hello bob"),
        said("bob", "hi alice"),
        said("alice", tricky),
    ];
    let body = events.until(&format!("data: {}\n\n", all[4])).await;
    let expected: String = all
        .iter()
        .map(|json| format!("event: message\ndata: {json}\n\n"))
        .collect();
    assert!(body.ends_with(&expected), "{body:?}");
    assert!(!body.contains("not text"), "{body:?}");

    // A socket that leaves is no longer in the room; the others go on.
    a.close(None).await.unwrap();
    b.send(Message::text("alone")).await.unwrap();
    assert_eq!(next_text(&mut b).await, said("bob", "alone"));
    events
        .until(&format!("data: {}\n\n", said("bob", "alone")))
        .await;
}

#[tokio::test]
async fn the_echo_socket_needs_no_login_and_echoes() {
    let server = server().await;
    let mut ws = open(server.addr, "/ws/echo", &[]).await;
    ws.send(Message::text("héllo")).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text("héllo"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![0u8, 1, 2, 255]));
    // A message of exactly the default limit (1 MiB) comes back whole.
    let big = "x".repeat(1 << 20);
    ws.send(Message::text(big.clone())).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::text(big));
    // A ping gets its pong.
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let pong = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("a pong within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(pong, Message::Pong(b"are you there".to_vec().into()));
    // A client's Close: its code back.
    ws.close(Some(CloseFrame {
        code: CloseCode::from(4321),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4321),
        other => panic!("expected Close 4321, got {other:?}"),
    }
}

#[tokio::test]
async fn the_echo_socket_closes_with_1009_over_its_limit() {
    let server = TestServer::start(chat::app(Hub::new(), 1024).expect("the example builds")).await;
    let mut ws = open(server.addr, "/ws/echo", &[]).await;
    ws.send(Message::binary(vec![7u8; 1024])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![7u8; 1024]));
    ws.send(Message::text("y".repeat(1025))).await.unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("expected Close 1009, got {other:?}"),
    }
}

// ---- Frames tungstenite does not send: written by hand --------------------------------------

/// A raw upgraded connection to `/ws/echo`, offering `extensions` (if any); the 101's head.
async fn raw_echo(addr: SocketAddr, extensions: Option<&str>) -> (RawConn, RawResponse) {
    let mut conn = RawConn::connect(addr).await;
    let mut head = format!(
        "GET /ws/echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    if let Some(ext) = extensions {
        head.push_str(&format!("Sec-WebSocket-Extensions: {ext}\r\n"));
    }
    head.push_str("\r\n");
    conn.send(head).await;
    let res = conn.response().await;
    assert_eq!(res.status, 101, "{res:?}");
    assert_eq!(
        res.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    (conn, res)
}

/// A masked client frame (FIN set; `rsv1` for a compressed message).
fn frame(opcode: u8, rsv1: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut out = vec![0x80 | if rsv1 { 0x40 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame: (first byte, payload). Server frames are never masked.
async fn read_frame(conn: &mut RawConn) -> (u8, Vec<u8>) {
    let mut buf = conn.pending().to_vec();
    let stream = &mut conn.stream;
    let need = |buf: &Vec<u8>| -> Option<(usize, usize)> {
        if buf.len() < 2 {
            return None;
        }
        assert_eq!(buf[1] & 0x80, 0, "a masked server frame");
        let (len, at) = match buf[1] & 0x7f {
            126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
            127 if buf.len() >= 10 => (
                u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return None,
            n => (n as usize, 2),
        };
        (buf.len() >= at + len).then_some((at, len))
    };
    loop {
        if let Some((at, len)) = need(&buf) {
            assert_eq!(buf.len(), at + len, "more than one frame buffered");
            return (buf[0], buf[at..at + len].to_vec());
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(WAIT, stream.read(&mut chunk))
            .await
            .expect("a frame within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a whole frame");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The code of the Close frame the server sends next.
async fn close_code(conn: &mut RawConn) -> u16 {
    let (first, payload) = read_frame(conn).await;
    assert_eq!(
        first & 0x0f,
        0x8,
        "not a Close frame: {first:#x} {payload:?}"
    );
    u16::from_be_bytes([payload[0], payload[1]])
}

#[tokio::test]
async fn the_echo_socket_agrees_permessage_deflate_whenever_offered() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    let server = server().await;
    // Without an offer: no extension.
    let (_plain, res) = raw_echo(server.addr, None).await;
    assert_eq!(res.header("sec-websocket-extensions"), None);

    for offer in [
        "permessage-deflate",
        "permessage-deflate; client_max_window_bits",
        "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
    ] {
        let (mut conn, res) = raw_echo(server.addr, Some(offer)).await;
        let agreed = res.header("sec-websocket-extensions").unwrap_or_default();
        assert!(
            agreed.starts_with("permessage-deflate"),
            "{offer}: {agreed:?}"
        );

        // A compressed message (RSV1) round-trips.
        let text = "compress me ".repeat(40);
        let mut deflate = Compress::new(Compression::default(), false);
        let mut packed = Vec::with_capacity(text.len() + 64);
        deflate
            .compress_vec(text.as_bytes(), &mut packed, FlushCompress::Sync)
            .unwrap();
        assert!(packed.ends_with(&[0, 0, 0xff, 0xff]));
        packed.truncate(packed.len() - 4);
        conn.send(frame(0x1, true, &packed)).await;
        let (first, payload) = read_frame(&mut conn).await;
        assert_eq!(first & 0x0f, 0x1, "{offer}: a text frame back");
        let back = if first & 0x40 != 0 {
            let mut inflate = Decompress::new(false);
            let mut input = payload.clone();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut out = Vec::with_capacity(text.len() + 64);
            inflate
                .decompress_vec(&input, &mut out, FlushDecompress::Sync)
                .unwrap();
            out
        } else {
            payload
        };
        assert_eq!(String::from_utf8(back).unwrap(), text, "{offer}");
    }
}

#[tokio::test]
async fn protocol_violations_close_the_echo_socket_with_1002_and_1007() {
    let server = server().await;
    // A reserved opcode: 1002.
    let (mut conn, _) = raw_echo(server.addr, None).await;
    conn.send(frame(0x3, false, b"?")).await;
    assert_eq!(close_code(&mut conn).await, 1002);
    // An unmasked client frame: 1002.
    let (mut conn, _) = raw_echo(server.addr, None).await;
    conn.send([0x81u8, 0x02, b'h', b'i']).await;
    assert_eq!(close_code(&mut conn).await, 1002);
    // RSV1 without permessage-deflate agreed: 1002.
    let (mut conn, _) = raw_echo(server.addr, None).await;
    conn.send(frame(0x1, true, b"hi")).await;
    assert_eq!(close_code(&mut conn).await, 1002);
    // A text message that is not UTF-8: 1007.
    let (mut conn, _) = raw_echo(server.addr, None).await;
    conn.send(frame(0x1, false, &[b'o', b'k', 0xff, 0xfe]))
        .await;
    assert_eq!(close_code(&mut conn).await, 1007);
}

// ---- SIGTERM: the example's own binary ------------------------------------------------------

/// Builds `examples/chat` (cargo's no-op when it is fresh) and returns its path.
fn build_example() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let mut build = std::process::Command::new(cargo);
    build
        .args(["build", "-q", "--example", "chat", "--message-format=json"])
        .args(["--manifest-path", manifest]);
    // The features this test was built with: the same build of chirp, nothing rebuilt.
    if cfg!(feature = "redis") {
        build.args(["--features", "redis"]);
    }
    let out = build
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build --example chat failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "chat")
        .find_map(|msg| msg["executable"].as_str().map(std::path::PathBuf::from))
        .expect("cargo names the example's executable")
}

/// Reads what `ws` receives until it closes (by `deadline`); the Close frame's code.
async fn close_of(ws: &mut Ws, deadline: Instant) -> u16 {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no Close by the deadline"));
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) => panic!("a Close without a code"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => panic!("the socket failed before a Close: {e}"),
            None => panic!("the socket ended without a Close"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_on_sigterm_closes_every_socket_with_1001_and_exits_within_2_s() {
    let bin = build_example();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let child = std::process::Command::new(&bin)
        .env("CHIRP_ADDR", addr.to_string())
        .env(
            "CHIRP_SECRET_KEY",
            "chat-test-secret-0123456789abcdef0123456789abcdef",
        )
        .env_remove("REDIS_URL")
        .env_remove("CHIRP_WS_MAX_MESSAGE")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let mut example = common::KillOnDrop(child);
    let started = Instant::now();
    while let Err(e) = TcpStream::connect(addr).await {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the example never listened: {e}"
        );
        assert!(
            example.0.try_wait().unwrap().is_none(),
            "the example exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Two open sockets: a signed-in chat socket and an echo socket, both in use.
    let mut carol = Client::new(addr);
    carol.log_in("carol").await;
    let mut chat_ws = open_chat(addr, &carol).await;
    chat_ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next_text(&mut chat_ws).await, said("carol", "before"));
    let mut echo_ws = open(addr, "/ws/echo", &[]).await;
    echo_ws.send(Message::text("before")).await.unwrap();
    assert_eq!(next(&mut echo_ws).await, Message::text("before"));

    let signalled = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &example.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let within = Duration::from_secs(2);
    let deadline = signalled + within;
    assert_eq!(
        close_of(&mut chat_ws, deadline).await,
        1001,
        "the chat socket"
    );
    assert_eq!(
        close_of(&mut echo_ws, deadline).await,
        1001,
        "the echo socket"
    );
    let exited = loop {
        if let Some(status) = example.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < within,
            "still running 2 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "SIGTERM to exit with 2 open sockets: {:?}",
        signalled.elapsed()
    );
    assert!(exited.success(), "{exited:?}");
}
