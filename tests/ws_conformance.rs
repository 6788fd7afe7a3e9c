//! WebSocket conformance of chirp's server (RFC 6455, permessage-deflate RFC 7692), against
//! the echo socket of examples/chat.rs (`GET /ws/echo`, its documented contract: text and
//! binary echoed with their opcode, a fragmented message as one, pings answered, the
//! client's close code echoed, permessage-deflate whenever offered, messages up to 1 MiB
//! after decompression, 1009 above, 1002 for a protocol violation, 1007 for invalid UTF-8),
//! served by a [`TestServer`] on a real loopback socket and driven by real clients:
//!
//! - **raw TCP with frames written by hand**, for what no well-behaved client sends: every
//!   violation asserts the exact close code the server sends, that the connection then ends
//!   (read to EOF, with a timeout: a server that keeps it open fails), and that the server
//!   still serves a fresh connection afterwards;
//! - **tokio-tungstenite** (another Rust implementation) for ordinary traffic: echo of many
//!   sizes, fragmented sends, ping/pong, close codes, many concurrent connections;
//! - **Python's `websockets`** (tests/python/ws_client.py) for permessage-deflate, as the
//!   other side of the compression: it decompresses what chirp compresses with the window
//!   and context takeover agreed, and compresses what chirp must decompress.
//!
//! The cases follow the families of the Autobahn testsuite (crossbario/autobahn-testsuite,
//! `autobahntestsuite/case/`), numbered as there where one maps onto one:
//!
//! | Autobahn | here |
//! | --- | --- |
//! | 1.1.x, 1.2.x framing: text and binary of 0, 125, 126, 127, 128, 65535, 65536 bytes, and in chops of 997 | `case1_framing` (raw: also the server's minimal length encoding), `tungstenite_echo_sizes` |
//! | 2.x pings: empty, text, binary, 125 bytes, 126 bytes (1002), octet-wise, unsolicited pongs, 10 pings | `case2_pings`, `tungstenite_ping_pong` |
//! | 3.x reserved bits RSV 1 to 7 on text, binary, ping, close (1002) | `case3_reserved_bits`, and with permessage-deflate agreed (RSV1 on control and continuation frames, RSV2/RSV3) `deflate_raw_frames` |
//! | 4.x reserved opcodes 3-7, 11-15 (1002) | `case4_opcodes` |
//! | 5.x fragmentation: fragmented control frames, continuation without a message, interleaved messages, pings between fragments | `case5_fragmentation`, `case5_19_pongs_between_fragments`, `tungstenite_fragmented` |
//! | 6.x UTF-8: empty fragments, valid and invalid text whole and octet by octet (Markus Kuhn's test sequences, as 6.5-6.23), 6.4.x fail fast | `case6_utf8_sequences`, `case6_utf8_fragments`, `case6_4_fail_fast` |
//! | 7.x close: after close, payload 0/1/2 bytes, reasons up to 123 bytes and 124 (1002), invalid UTF-8 reason (1007), valid codes 7.7.x echoed, invalid 7.9.x / 7.13.x (1002) | `case7_close_handling`, `case7_close_codes`, `tungstenite_close_codes` |
//! | 9.x limits and large messages: 64K-1M, fragmented in 64 bytes to 1M, chops of 64-2048 | `case9_large_messages`, `case9_chops`, `case9_limits`, `case9_a_client_still_sending_is_not_reset`, `tungstenite_limits` (the 4M-16M cases become "above the 1 MiB limit: 1009") |
//! | 10.1.1 65536 bytes in fragments of 1300 | `tungstenite_fragmented` |
//! | 12.x compressed echo, many sizes, auto-fragmented | `deflate_echo_sizes` (Python) |
//! | 13.x every combination of the four parameters, several offers | `deflate_parameter_combinations`, `deflate_python_offers_declined`, `deflate_offers_declined` (raw), `deflate_raw_frames` |
//!
//! plus what Autobahn leaves to a server's own tests: an unmasked client frame (1002), a
//! 64-bit length with its top bit set, a frame header announcing more than the limit (1009
//! before any payload), a decompression bomb (small on the wire, over the limit inflated:
//! 1009), invalid DEFLATE data (1007, chirp's documented choice) and many connections at once.
//!
//! Every read has a timeout: a hang fails its test instead of stalling the suite.
//!
//! Python comes from `CHIRP_PYTHON` (`make test` makes a virtualenv with websockets and sets
//! it), else `python3` if it has websockets. In CI (`CI` set) a missing Python fails the
//! Python tests; elsewhere they are skipped, saying so.

mod common;

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use chirp::broadcast::Hub;
use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{CloseFrame, Frame};
use tokio_tungstenite::tungstenite::Message as TMessage;

/// The echo socket's largest message: the example's default (`CHIRP_WS_MAX_MESSAGE`).
const MAX: usize = 1 << 20;

/// How long any one read may take.
const WAIT: Duration = Duration::from_secs(5);

const PATH: &str = "/ws/echo";

/// RFC 6455 §1.3's example key, and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// The chat example's app (its echo socket) on a loopback port.
async fn server() -> TestServer {
    TestServer::start(chat::app(Hub::new(), MAX).expect("the chat example builds")).await
}

// ---------------------------------------------------------------------------------------
// Frames written by hand.

const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CONT: u8 = 0x0;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// A client frame: `fin`, the three RSV bits as Autobahn numbers them (`rsv` 0-7, 4 =
/// RSV1), `opcode`, masked with a key that changes with the payload's length.
fn frame_rsv(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0xF)];
    header_len(&mut out, payload.len() as u64, true);
    let key = [0x37, 0xFA, 0x21, (payload.len() % 251) as u8];
    out.extend_from_slice(&key);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

/// The length field (RFC 6455 §5.2), minimal, with the mask bit.
fn header_len(out: &mut Vec<u8>, len: u64, masked: bool) {
    let mask = if masked { 0x80 } else { 0 };
    if len < 126 {
        out.push(mask | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame_rsv(fin, 0, opcode, payload)
}

fn text(payload: impl AsRef<[u8]>) -> Vec<u8> {
    frame(true, TEXT, payload.as_ref())
}

fn binary(payload: impl AsRef<[u8]>) -> Vec<u8> {
    frame(true, BINARY, payload.as_ref())
}

fn ping(payload: impl AsRef<[u8]>) -> Vec<u8> {
    frame(true, PING, payload.as_ref())
}

fn pong(payload: impl AsRef<[u8]>) -> Vec<u8> {
    frame(true, PONG, payload.as_ref())
}

fn close(code: u16, reason: impl AsRef<[u8]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_ref());
    frame(true, CLOSE, &payload)
}

/// Only a header announcing `len` payload bytes (masked), none of them sent.
fn header_only(opcode: u8, len: u64) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    header_len(&mut out, len, true);
    out.extend_from_slice(&[1, 2, 3, 4]);
    out
}

/// What the server sent, a data message whole (fragments joined).
#[derive(Clone, Debug, PartialEq)]
enum Got {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    Ping(Vec<u8>),
    /// The code (none for an empty payload) and the reason.
    Close(Option<u16>, String),
}

/// What a case expects from the server, in order.
#[derive(Clone, Debug, PartialEq)]
enum Want {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    /// A Close with this code; then the connection ends.
    Close(u16),
    /// A Close without a status code, or with 1000 (RFC 6455 §5.5.1 lets the answer to a
    /// Close without one be either); then the connection ends.
    CloseNormal,
}

impl Want {
    fn text(s: impl AsRef<[u8]>) -> Want {
        Want::Text(s.as_ref().to_vec())
    }
    fn matches(&self, got: &Got) -> bool {
        match (self, got) {
            (Want::Text(a), Got::Text(b))
            | (Want::Binary(a), Got::Binary(b))
            | (Want::Pong(a), Got::Pong(b)) => a == b,
            (Want::Close(code), Got::Close(got, _)) => Some(*code) == *got,
            (Want::CloseNormal, Got::Close(got, _)) => matches!(got, None | Some(1000)),
            _ => false,
        }
    }
}

/// The reading half of a raw WebSocket connection.
struct Reader {
    io: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Reader {
    /// More bytes; false on EOF (or a reset).
    async fn fill(&mut self, what: &str) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        match tokio::time::timeout(WAIT, self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => false,
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(_) => panic!("{what}: nothing from the server within {WAIT:?} (a hang)"),
        }
    }

    /// One frame from the server: (fin, rsv bits, opcode, payload). Checks what RFC 6455
    /// §5.1/§5.2 asks of a server's frame: not masked, the minimal length encoding. `None`:
    /// the connection ended.
    async fn frame(&mut self, what: &str) -> Option<(bool, u8, u8, Vec<u8>)> {
        loop {
            if let Some((head, len)) = self.parse_head(what) {
                if self.buf.len() >= head + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[head..head + len].to_vec();
                    self.buf.drain(..head + len);
                    return Some((b0 & 0x80 != 0, (b0 >> 4) & 7, b0 & 0xF, payload));
                }
            }
            if !self.fill(what).await {
                assert!(
                    self.buf.is_empty(),
                    "{what}: the connection ended inside a frame: {:?}",
                    &self.buf[..self.buf.len().min(32)]
                );
                return None;
            }
        }
    }

    /// The header's length and the payload's, once the whole header is in.
    fn parse_head(&self, what: &str) -> Option<(usize, usize)> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "{what}: a masked frame from the server");
        let (head, len) = match b[1] & 0x7F {
            126 => {
                let len = u16::from_be_bytes(b.get(2..4)?.try_into().unwrap()) as u64;
                assert!(len >= 126, "{what}: length {len} not minimally encoded");
                (4, len)
            }
            127 => {
                let len = u64::from_be_bytes(b.get(2..10)?.try_into().unwrap());
                assert!(len > 0xFFFF, "{what}: length {len} not minimally encoded");
                assert_eq!(len >> 63, 0, "{what}: 64-bit length with its top bit set");
                (10, len)
            }
            n => (2, u64::from(n)),
        };
        Some((head, usize::try_from(len).unwrap()))
    }

    /// The next message or control frame from the server, fragments joined; `None` when
    /// the connection ended.
    async fn next(&mut self, what: &str) -> Option<Got> {
        let mut message: Option<(u8, Vec<u8>)> = None;
        loop {
            let (fin, rsv, opcode, payload) = self.frame(what).await?;
            assert_eq!(
                rsv, 0,
                "{what}: RSV bits from the server with no extension agreed"
            );
            match opcode {
                PING => return Some(Got::Ping(payload)),
                PONG => return Some(Got::Pong(payload)),
                CLOSE => {
                    assert!(message.is_none(), "{what}: a Close inside a message");
                    return Some(close_of(&payload, what));
                }
                TEXT | BINARY => {
                    assert!(message.is_none(), "{what}: a message inside a message");
                    message = Some((opcode, payload));
                }
                CONT => {
                    let Some((_, data)) = &mut message else {
                        panic!("{what}: a continuation frame with no message started")
                    };
                    data.extend_from_slice(&payload);
                }
                other => panic!("{what}: opcode {other} from the server"),
            }
            if fin {
                let (opcode, data) = message.take().unwrap();
                return Some(if opcode == TEXT {
                    assert!(
                        std::str::from_utf8(&data).is_ok(),
                        "{what}: the server sent text that is not UTF-8"
                    );
                    Got::Text(data)
                } else {
                    Got::Binary(data)
                });
            }
        }
    }

    /// The server closes the connection within [`WAIT`], nothing more sent.
    async fn ends(&mut self, what: &str) {
        assert!(
            self.buf.is_empty(),
            "{what}: bytes after the Close: {:?}",
            &self.buf[..self.buf.len().min(32)]
        );
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(WAIT, self.io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("{what}: bytes after the Close: {:?}", &chunk[..n]),
            Err(_) => panic!("{what}: the connection stayed open {WAIT:?} after the Close"),
        }
    }
}

/// A Close frame's payload: (code, reason), checked as RFC 6455 §5.5.1 asks.
fn close_of(payload: &[u8], what: &str) -> Got {
    assert!(
        payload.len() <= 125,
        "{what}: a control frame over 125 bytes"
    );
    if payload.is_empty() {
        return Got::Close(None, String::new());
    }
    assert!(payload.len() >= 2, "{what}: a Close payload of 1 byte");
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    let reason = std::str::from_utf8(&payload[2..])
        .unwrap_or_else(|_| panic!("{what}: a close reason that is not UTF-8"))
        .to_owned();
    Got::Close(Some(code), reason)
}

/// A raw WebSocket connection to the echo socket.
struct Raw {
    rd: Reader,
    wr: OwnedWriteHalf,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        let (raw, head) = Raw::open_with(addr, "").await;
        assert!(
            header(&head, "sec-websocket-extensions").is_none(),
            "an extension agreed that was not offered: {head}"
        );
        raw
    }

    /// Opens with `extra` header lines (each ending in CRLF); the 101's head.
    async fn open_with(addr: SocketAddr, extra: &str) -> (Raw, String) {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (io, mut wr) = stream.into_split();
        let request = format!(
            "GET {PATH} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
        );
        wr.write_all(request.as_bytes()).await.unwrap();
        let mut rd = Reader {
            io,
            buf: Vec::new(),
        };
        let end = loop {
            if let Some(i) = rd.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(rd.fill("handshake").await, "closed before the 101");
        };
        let head = String::from_utf8(rd.buf.drain(..end).collect()).unwrap();
        assert!(head.starts_with("HTTP/1.1 101 "), "not a 101: {head}");
        assert_eq!(
            header(&head, "sec-websocket-accept"),
            Some(ACCEPT),
            "{head}"
        );
        assert_eq!(
            header(&head, "upgrade").map(str::to_ascii_lowercase),
            Some("websocket".into())
        );
        (Raw { rd, wr }, head)
    }

    /// Writes, ignoring a server that already closed (the reads then say what happened).
    async fn send(&mut self, bytes: &[u8]) {
        let _ = self.wr.write_all(bytes).await;
    }

    async fn next(&mut self, what: &str) -> Got {
        self.rd
            .next(what)
            .await
            .unwrap_or_else(|| panic!("{what}: the connection ended without a Close"))
    }

    /// The server's next frame is a Close with `code`, and the connection then ends.
    async fn expect_close(&mut self, code: u16, what: &str) {
        let got = self.next(what).await;
        assert_eq!(got, Got::Close(Some(code), got_reason(&got)), "{what}");
        self.rd.ends(what).await;
    }

    /// A clean close from our side: 1000 echoed, then the end.
    async fn close_clean(&mut self, what: &str) {
        self.send(&close(1000, "")).await;
        self.expect_close(1000, what).await;
    }
}

fn got_reason(got: &Got) -> String {
    match got {
        Got::Close(_, reason) => reason.clone(),
        _ => String::new(),
    }
}

/// A header's value in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// How a case's bytes are written.
#[derive(Clone, Copy, Debug)]
enum Chops {
    /// All in one write.
    One,
    /// A write per frame, with a pause between them.
    Frames,
    /// A write per byte.
    Octets,
}

/// An Autobahn-style case: frames sent, what comes back.
struct Case {
    name: String,
    frames: Vec<Vec<u8>>,
    chops: Chops,
    want: Vec<Want>,
}

fn case(name: impl Into<String>, frames: Vec<Vec<u8>>, want: Vec<Want>) -> Case {
    Case {
        name: name.into(),
        frames,
        chops: Chops::One,
        want,
    }
}

impl Case {
    fn chops(mut self, chops: Chops) -> Case {
        self.chops = chops;
        self
    }
}

/// Runs `case` on a new connection: its frames are written while the answers are read and
/// compared with what it wants, in order. A case that does not end in a Close then closes
/// cleanly (1000 echoed), which also shows nothing else was sent. Then a fresh connection is
/// served.
async fn run(addr: SocketAddr, case: &Case) {
    let what = case.name.as_str();
    let mut raw = Raw::open(addr).await;
    let Raw { rd, wr } = &mut raw;
    let writing = async {
        match case.chops {
            Chops::One => {
                let _ = wr.write_all(&case.frames.concat()).await;
            }
            Chops::Frames => {
                for frame in &case.frames {
                    let _ = wr.write_all(frame).await;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            Chops::Octets => {
                for byte in case.frames.concat() {
                    let _ = wr.write_all(&[byte]).await;
                    tokio::task::yield_now().await;
                }
            }
        }
    };
    let reading = async {
        for want in &case.want {
            let got = rd
                .next(what)
                .await
                .unwrap_or_else(|| panic!("{what}: the connection ended; wanted {want:?}"));
            assert!(
                want.matches(&got),
                "{what}: wanted {}, got {}",
                short(want),
                short(&got)
            );
        }
    };
    tokio::join!(writing, reading);
    if matches!(case.want.last(), Some(Want::Close(_) | Want::CloseNormal)) {
        raw.rd.ends(what).await;
    } else {
        raw.close_clean(what).await;
    }
    still_serves(addr, what).await;
}

/// Debug output cut short (payloads can be a MiB).
fn short(v: &impl std::fmt::Debug) -> String {
    let s = format!("{v:?}");
    if s.len() > 200 {
        format!("{}… ({} chars)", &s[..200], s.len())
    } else {
        s
    }
}

/// A fresh connection is served: an echo, then a clean close.
async fn still_serves(addr: SocketAddr, after: &str) {
    let what = format!("a fresh connection after {after}");
    let mut raw = Raw::open(addr).await;
    raw.send(&text("still here")).await;
    assert_eq!(raw.next(&what).await, Got::Text(b"still here".to_vec()));
    raw.close_clean(&what).await;
}

async fn run_all(cases: &[Case]) {
    let server = server().await;
    for case in cases {
        run(server.addr, case).await;
    }
}

// ---------------------------------------------------------------------------------------
// 1.x framing

/// Deterministic bytes of every value, `n` long.
fn bytes_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// ASCII text `n` bytes long.
fn text_of(n: usize) -> Vec<u8> {
    (0..n).map(|i| b'a' + (i % 26) as u8).collect()
}

#[tokio::test]
async fn case1_framing() {
    let mut cases = Vec::new();
    for n in [0, 125, 126, 127, 128, 65535, 65536] {
        cases.push(case(
            format!("1.1 text of {n}"),
            vec![text(text_of(n))],
            vec![Want::Text(text_of(n))],
        ));
        cases.push(case(
            format!("1.2 binary of {n}"),
            vec![binary(bytes_of(n))],
            vec![Want::Binary(bytes_of(n))],
        ));
    }
    // 1.1.8, 1.2.8: 65536 bytes sent in chops of 997.
    let server = server().await;
    for case in &cases {
        run(server.addr, case).await;
    }
    for (name, f, want) in [
        ("1.1.8", text(text_of(65536)), Want::Text(text_of(65536))),
        (
            "1.2.8",
            binary(bytes_of(65536)),
            Want::Binary(bytes_of(65536)),
        ),
    ] {
        let mut raw = Raw::open(server.addr).await;
        for chunk in f.chunks(997) {
            raw.send(chunk).await;
            tokio::task::yield_now().await;
        }
        let got = raw.next(name).await;
        assert!(want.matches(&got), "{name}: got {}", short(&got));
        raw.close_clean(name).await;
    }
}

// ---------------------------------------------------------------------------------------
// 2.x pings and pongs

#[tokio::test]
async fn case2_pings() {
    let hello = b"Hello, world!".to_vec();
    let bin = vec![0x00, 0xFF, 0xFE, 0xFD, 0xFC, 0xFB, 0x00, 0xFF];
    let cases = vec![
        case("2.1", vec![ping("")], vec![Want::Pong(vec![])]),
        case("2.2", vec![ping(&hello)], vec![Want::Pong(hello.clone())]),
        case("2.3", vec![ping(&bin)], vec![Want::Pong(bin.clone())]),
        case(
            "2.4",
            vec![ping([0xFE; 125])],
            vec![Want::Pong(vec![0xFE; 125])],
        ),
        case(
            "2.5 ping of 126 bytes",
            vec![ping([0xFE; 126])],
            vec![Want::Close(1002)],
        ),
        case(
            "2.6",
            vec![ping([0xFE; 125])],
            vec![Want::Pong(vec![0xFE; 125])],
        )
        .chops(Chops::Octets),
        // Unsolicited pongs are ignored (then the clean close shows nothing came back).
        case("2.7", vec![pong("")], vec![]),
        case("2.8", vec![pong("unsolicited pong payload")], vec![]),
        case(
            "2.9",
            vec![pong("unsolicited pong payload"), ping("ping payload")],
            vec![Want::Pong(b"ping payload".to_vec())],
        ),
        case(
            "2.10",
            (0..10).map(|i| ping(format!("payload-{i}"))).collect(),
            (0..10)
                .map(|i| Want::Pong(format!("payload-{i}").into_bytes()))
                .collect(),
        ),
        case(
            "2.11",
            (0..10).map(|i| ping(format!("payload-{i}"))).collect(),
            (0..10)
                .map(|i| Want::Pong(format!("payload-{i}").into_bytes()))
                .collect(),
        )
        .chops(Chops::Octets),
    ];
    run_all(&cases).await;
}

// ---------------------------------------------------------------------------------------
// 3.x reserved bits

#[tokio::test]
async fn case3_reserved_bits() {
    let hello = text("Hello, world!");
    let echo = Want::text("Hello, world!");
    let cases = vec![
        case(
            "3.1 text RSV=1",
            vec![frame_rsv(true, 1, TEXT, b"Hello, world!")],
            vec![Want::Close(1002)],
        ),
        case(
            "3.2 text, text RSV=2, ping",
            vec![
                hello.clone(),
                frame_rsv(true, 2, TEXT, b"Hello, world!"),
                ping(""),
            ],
            vec![echo.clone(), Want::Close(1002)],
        ),
        case(
            "3.3 text, text RSV=3, ping (frame-wise)",
            vec![
                hello.clone(),
                frame_rsv(true, 3, TEXT, b"Hello, world!"),
                ping(""),
            ],
            vec![echo.clone(), Want::Close(1002)],
        )
        .chops(Chops::Frames),
        case(
            "3.4 text, text RSV=4 (RSV1, no extension), ping (octet-wise)",
            vec![
                hello.clone(),
                frame_rsv(true, 4, TEXT, b"Hello, world!"),
                ping(""),
            ],
            vec![echo.clone(), Want::Close(1002)],
        )
        .chops(Chops::Octets),
        case(
            "3.5 binary RSV=5",
            vec![frame_rsv(true, 5, BINARY, &[0xFF; 8])],
            vec![Want::Close(1002)],
        ),
        case(
            "3.6 ping RSV=6",
            vec![frame_rsv(true, 6, PING, b"Hello, world!")],
            vec![Want::Close(1002)],
        ),
        case(
            "3.7 close RSV=7",
            vec![frame_rsv(true, 7, CLOSE, &1000u16.to_be_bytes())],
            vec![Want::Close(1002)],
        ),
    ];
    run_all(&cases).await;
}

// ---------------------------------------------------------------------------------------
// 4.x opcodes

#[tokio::test]
async fn case4_opcodes() {
    let mut cases = Vec::new();
    for (i, opcode) in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF]
        .into_iter()
        .enumerate()
    {
        let family = if opcode < 8 { "4.1" } else { "4.2" };
        let payload: &[u8] = if i % 5 == 0 { b"" } else { b"reserved payload" };
        cases.push(case(
            format!("{family}.{} opcode {opcode} alone", i % 5 + 1),
            vec![frame(true, opcode, payload)],
            vec![Want::Close(1002)],
        ));
        cases.push(case(
            format!("{family}.{} text, opcode {opcode}, ping", i % 5 + 1),
            vec![
                text("Hello, world!"),
                frame(true, opcode, payload),
                ping(""),
            ],
            vec![Want::text("Hello, world!"), Want::Close(1002)],
        ));
    }
    run_all(&cases).await;
}

// ---------------------------------------------------------------------------------------
// 5.x fragmentation

#[tokio::test]
async fn case5_fragmentation() {
    let f1 = frame(false, TEXT, b"fragment1");
    let f2 = frame(true, CONT, b"fragment2");
    let whole = Want::text("fragment1fragment2");
    let both = || vec![f1.clone(), f2.clone()];
    let with_ping = || vec![f1.clone(), ping("ping payload"), f2.clone()];
    let pinged = || vec![Want::Pong(b"ping payload".to_vec()), whole.clone()];
    let orphan_fin = frame(true, CONT, b"non-continuation payload");
    let orphan = frame(false, CONT, b"non-continuation payload");
    let hello = text("Hello, world!");
    let cases = vec![
        case(
            "5.1 ping in 2 fragments",
            vec![
                frame(false, PING, b"fragment1"),
                frame(true, CONT, b"fragment2"),
            ],
            vec![Want::Close(1002)],
        ),
        case(
            "5.2 pong in 2 fragments",
            vec![
                frame(false, PONG, b"fragment1"),
                frame(true, CONT, b"fragment2"),
            ],
            vec![Want::Close(1002)],
        ),
        case("5.3", both(), vec![whole.clone()]),
        case("5.4", both(), vec![whole.clone()]).chops(Chops::Frames),
        case("5.5", both(), vec![whole.clone()]).chops(Chops::Octets),
        case("5.6", with_ping(), pinged()),
        case("5.7", with_ping(), pinged()).chops(Chops::Frames),
        case("5.8", with_ping(), pinged()).chops(Chops::Octets),
        case(
            "5.9 continuation (FIN) with nothing to continue",
            vec![orphan_fin.clone(), hello.clone()],
            vec![Want::Close(1002)],
        ),
        case(
            "5.10",
            vec![orphan_fin.clone(), hello.clone()],
            vec![Want::Close(1002)],
        )
        .chops(Chops::Frames),
        case(
            "5.11",
            vec![orphan_fin.clone(), hello.clone()],
            vec![Want::Close(1002)],
        )
        .chops(Chops::Octets),
        case(
            "5.12 continuation (no FIN) with nothing to continue",
            vec![orphan.clone(), hello.clone()],
            vec![Want::Close(1002)],
        ),
        case(
            "5.13",
            vec![orphan.clone(), hello.clone()],
            vec![Want::Close(1002)],
        )
        .chops(Chops::Frames),
        case(
            "5.14",
            vec![orphan.clone(), hello.clone()],
            vec![Want::Close(1002)],
        )
        .chops(Chops::Octets),
        case(
            "5.15 message, orphan continuation, message",
            vec![f1.clone(), f2.clone(), orphan.clone(), hello.clone()],
            vec![whole.clone(), Want::Close(1002)],
        ),
        case(
            "5.16 (orphan, message in 2) x2",
            vec![
                orphan.clone(),
                f1.clone(),
                f2.clone(),
                orphan.clone(),
                f1.clone(),
                f2.clone(),
            ],
            vec![Want::Close(1002)],
        ),
        case(
            "5.17 (orphan FIN, message in 2) x2",
            vec![
                orphan_fin.clone(),
                f1.clone(),
                f2.clone(),
                orphan_fin.clone(),
                f1.clone(),
                f2.clone(),
            ],
            vec![Want::Close(1002)],
        ),
        case(
            "5.18 both fragments with the text opcode",
            vec![f1.clone(), frame(true, TEXT, b"fragment2")],
            vec![Want::Close(1002)],
        ),
        case(
            "a binary message inside a text message",
            vec![f1.clone(), binary("in between"), f2.clone()],
            vec![Want::Close(1002)],
        ),
        case(
            "a close between fragments ends the message unanswered (7.1.5)",
            vec![f1.clone(), close(1000, ""), f2.clone()],
            vec![Want::Close(1000)],
        ),
        case(
            "many fragments, some empty, of a binary message",
            (0..100)
                .map(|i| {
                    frame(
                        i == 99,
                        if i == 0 { BINARY } else { CONT },
                        &bytes_of(i % 3),
                    )
                })
                .collect(),
            vec![Want::Binary(
                (0..100).flat_map(|i| bytes_of(i % 3)).collect(),
            )],
        ),
    ];
    run_all(&cases).await;
}

/// 5.19/5.20: pings between the fragments of a message are answered at once, before the
/// message is whole.
#[tokio::test]
async fn case5_19_pongs_between_fragments() {
    let server = server().await;
    let what = "5.19";
    let mut raw = Raw::open(server.addr).await;
    raw.send(
        &[
            frame(false, TEXT, b"fragment1"),
            frame(false, CONT, b"fragment2"),
        ]
        .concat(),
    )
    .await;
    raw.send(&ping("pongme 1!")).await;
    assert_eq!(raw.next(what).await, Got::Pong(b"pongme 1!".to_vec()));
    raw.send(
        &[
            frame(false, CONT, b"fragment3"),
            frame(false, CONT, b"fragment4"),
        ]
        .concat(),
    )
    .await;
    raw.send(&ping("pongme 2!")).await;
    assert_eq!(raw.next(what).await, Got::Pong(b"pongme 2!".to_vec()));
    raw.send(&frame(true, CONT, b"fragment5")).await;
    assert_eq!(
        raw.next(what).await,
        Got::Text(b"fragment1fragment2fragment3fragment4fragment5".to_vec())
    );
    raw.close_clean(what).await;
}

// ---------------------------------------------------------------------------------------
// 6.x UTF-8

/// Autobahn's 6.5-6.23 (Markus Kuhn's UTF-8 decoder test): (valid, bytes).
fn utf8_sequences() -> Vec<(bool, Vec<u8>)> {
    let kosme: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    let mut v: Vec<(bool, Vec<u8>)> = vec![
        (true, b"hello\x24world".to_vec()),
        (true, b"hello\xC2\xA2world".to_vec()),
        (true, b"hello\xE2\x82\xACworld".to_vec()),
        (true, b"hello\xF0\xA4\xAD\xA2world".to_vec()),
        (true, kosme.to_vec()),
    ];
    // 6.6: every prefix of κόσμε (those ending inside a code point are invalid).
    let ends = [2usize, 5, 7, 9, 11];
    for i in 1..=kosme.len() {
        v.push((ends.contains(&i), kosme[..i].to_vec()));
    }
    let lists: &[(bool, &[&[u8]])] = &[
        // 6.7, 6.9, 6.11: first and last sequences of each length, boundaries.
        (
            true,
            &[
                b"\x00",
                b"\xc2\x80",
                b"\xe0\xa0\x80",
                b"\xf0\x90\x80\x80",
                b"\x7f",
                b"\xdf\xbf",
                b"\xef\xbf\xbf",
                b"\xf4\x8f\xbf\xbf",
                b"\xed\x9f\xbf",
                b"\xee\x80\x80",
                b"\xef\xbf\xbd",
            ],
        ),
        // 6.8, 6.10: 5 and 6 byte sequences, beyond U+10FFFF.
        (
            false,
            &[
                b"\xf8\x88\x80\x80\x80",
                b"\xfc\x84\x80\x80\x80\x80",
                b"\xf7\xbf\xbf\xbf",
                b"\xfb\xbf\xbf\xbf\xbf",
                b"\xfd\xbf\xbf\xbf\xbf\xbf",
                b"\xf4\x90\x80\x80",
            ],
        ),
        // 6.12: unexpected continuation bytes.
        (
            false,
            &[
                b"\x80",
                b"\xbf",
                b"\x80\xbf",
                b"\x80\xbf\x80",
                b"\x80\xbf\x80\xbf",
                b"\x80\xbf\x80\xbf\x80",
                b"\x80\xbf\x80\xbf\x80\xbf",
            ],
        ),
        // 6.14: last continuation byte missing; 6.16: impossible bytes.
        (
            false,
            &[
                b"\xc0",
                b"\xe0\x80",
                b"\xf0\x80\x80",
                b"\xf8\x80\x80\x80",
                b"\xfc\x80\x80\x80\x80",
                b"\xdf",
                b"\xef\xbf",
                b"\xf7\xbf\xbf",
                b"\xfb\xbf\xbf\xbf",
                b"\xfd\xbf\xbf\xbf\xbf",
                b"\xfe",
                b"\xff",
                b"\xfe\xfe\xff\xff",
            ],
        ),
        // 6.17-6.19: overlong encodings.
        (
            false,
            &[
                b"\xc0\xaf",
                b"\xe0\x80\xaf",
                b"\xf0\x80\x80\xaf",
                b"\xf8\x80\x80\x80\xaf",
                b"\xfc\x80\x80\x80\x80\xaf",
                b"\xc1\xbf",
                b"\xe0\x9f\xbf",
                b"\xf0\x8f\xbf\xbf",
                b"\xf8\x87\xbf\xbf\xbf",
                b"\xfc\x83\xbf\xbf\xbf\xbf",
                b"\xc0\x80",
                b"\xe0\x80\x80",
                b"\xf0\x80\x80\x80",
                b"\xf8\x80\x80\x80\x80",
                b"\xfc\x80\x80\x80\x80\x80",
            ],
        ),
        // 6.20, 6.21: UTF-16 surrogates, single and paired.
        (
            false,
            &[
                b"\xed\xa0\x80",
                b"\xed\xad\xbf",
                b"\xed\xae\x80",
                b"\xed\xaf\xbf",
                b"\xed\xb0\x80",
                b"\xed\xbe\x80",
                b"\xed\xbf\xbf",
                b"\xed\xa0\x80\xed\xb0\x80",
                b"\xed\xa0\x80\xed\xbf\xbf",
                b"\xed\xad\xbf\xed\xb0\x80",
                b"\xed\xaf\xbf\xed\xbf\xbf",
            ],
        ),
        // 6.22, 6.23: noncharacters and specials are valid UTF-8.
        (
            true,
            &[
                b"\xef\xbf\xbe",
                b"\xef\xbf\xbf",
                b"\xf0\x9f\xbf\xbe",
                b"\xf1\xbf\xbf\xbf",
                b"\xf4\x8f\xbf\xbe",
                b"\xef\xbf\xb9",
                b"\xef\xbf\xbc",
            ],
        ),
    ];
    for (valid, list) in lists {
        v.extend(list.iter().map(|s| (*valid, s.to_vec())));
    }
    // 6.13: lonely start characters, each followed by a space; 6.15: the incomplete
    // sequences of 6.14 concatenated.
    for (lo, hi) in [
        (0xC0u8, 0xDF),
        (0xE0, 0xEF),
        (0xF0, 0xF7),
        (0xF8, 0xFB),
        (0xFC, 0xFD),
    ] {
        v.push((false, (lo..hi).flat_map(|b| [b, 0x20]).collect()));
    }
    v.push((false, (0x80u8..0xBF).collect()));
    // The table's verdicts are the standard library's.
    for (valid, bytes) in &v {
        assert_eq!(std::str::from_utf8(bytes).is_ok(), *valid, "{bytes:x?}");
    }
    v
}

/// 6.1, 6.2, 6.3, 6.5-6.23: each sequence as a text message, whole (valid: echoed; invalid:
/// 1007).
#[tokio::test]
async fn case6_utf8_sequences() {
    let mut cases = vec![
        case("6.1.1 empty text", vec![text("")], vec![Want::text("")]),
        case(
            "6.1.2 3 empty fragments",
            vec![
                frame(false, TEXT, b""),
                frame(false, CONT, b""),
                frame(true, CONT, b""),
            ],
            vec![Want::text("")],
        ),
        case(
            "6.1.3 empty, middle frame payload, empty",
            vec![
                frame(false, TEXT, b""),
                frame(false, CONT, b"middle frame payload"),
                frame(true, CONT, b""),
            ],
            vec![Want::text("middle frame payload")],
        ),
        case(
            "6.2.1",
            vec![text("Hello-µ@ßöäüàá-UTF-8!!")],
            vec![Want::text("Hello-µ@ßöäüàá-UTF-8!!")],
        ),
        case(
            "6.2.2 split on a code point",
            vec![
                frame(false, TEXT, "Hello-µ@ßöä".as_bytes()),
                frame(true, CONT, "üàá-UTF-8!!".as_bytes()),
            ],
            vec![Want::text("Hello-µ@ßöäüàá-UTF-8!!")],
        ),
        case(
            "6.3.1 invalid, whole",
            vec![text(
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            )],
            vec![Want::Close(1007)],
        ),
    ];
    for (i, (valid, bytes)) in utf8_sequences().into_iter().enumerate() {
        let want = if valid {
            Want::Text(bytes.clone())
        } else {
            Want::Close(1007)
        };
        cases.push(case(
            format!("6.x #{i} {bytes:x?}"),
            vec![text(&bytes)],
            vec![want],
        ));
    }
    run_all(&cases).await;
}

/// 6.2.3, 6.2.4, 6.3.2: the same sequences octet by octet, each byte a frame of its own
/// (frames end inside code points): the validation carries across frames.
#[tokio::test]
async fn case6_utf8_fragments() {
    let server = server().await;
    let mut sequences = utf8_sequences();
    sequences.push((true, "Hello-µ@ßöäüàá-UTF-8!!".as_bytes().to_vec()));
    sequences.push((
        true,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5".to_vec(),
    ));
    for (i, (valid, bytes)) in sequences.into_iter().enumerate() {
        if bytes.len() < 2 {
            continue;
        }
        let frames: Vec<Vec<u8>> = bytes
            .iter()
            .enumerate()
            .map(|(j, b)| {
                frame(
                    j + 1 == bytes.len(),
                    if j == 0 { TEXT } else { CONT },
                    &[*b],
                )
            })
            .collect();
        let want = if valid {
            Want::Text(bytes.clone())
        } else {
            Want::Close(1007)
        };
        run(
            server.addr,
            &case(
                format!("6.x octet-wise #{i} {bytes:x?}"),
                frames,
                vec![want],
            ),
        )
        .await;
    }
}

/// 6.4.x: invalid text fails the connection as soon as the offending byte arrives, before
/// the message (or the frame) is complete: the Close 1007 comes while the rest is unsent.
#[tokio::test]
async fn case6_4_fail_fast() {
    let server = server().await;
    let kosme: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5";
    let bad: &[u8] = b"\xf4\x90\x80\x80";
    let rest: &[u8] = b"edited";
    // 6.4.1: frames (valid, invalid, rest); 6.4.2: the invalid frame only up to the octet
    // that makes the text invalid.
    let mut f641 = kosme.to_vec();
    f641.push(0xF4);
    for (name, first, second) in [
        ("6.4.1", kosme.to_vec(), bad.to_vec()),
        ("6.4.2", f641, vec![0x90]),
    ] {
        let mut raw = Raw::open(server.addr).await;
        raw.send(&frame(false, TEXT, &first)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        raw.send(&frame(false, CONT, &second)).await;
        // The rest is never sent: the Close must come without it.
        raw.expect_close(1007, name).await;
        still_serves(server.addr, name).await;
    }
    // 6.4.3, 6.4.4: one frame, in chops: its header and the valid part, then up to the
    // offending octet; the rest of the frame never sent.
    let mut payload = kosme.to_vec();
    payload.extend_from_slice(bad);
    payload.extend_from_slice(rest);
    let whole = text(&payload);
    let head = whole.len() - payload.len();
    for (name, cut) in [
        ("6.4.3", head + kosme.len() + bad.len()),
        ("6.4.4", head + kosme.len() + 2),
    ] {
        let mut raw = Raw::open(server.addr).await;
        raw.send(&whole[..head + kosme.len()]).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        raw.send(&whole[head + kosme.len()..cut]).await;
        raw.expect_close(1007, name).await;
        still_serves(server.addr, name).await;
    }
}

// ---------------------------------------------------------------------------------------
// 7.x close handling

#[tokio::test]
async fn case7_close_handling() {
    let big = text_of(256 * 1024);
    let reason123 = "*".repeat(123);
    let reason124 = "*".repeat(124);
    let cases = vec![
        case(
            "7.1.1 message then close",
            vec![text("Hello World!"), close(1000, "")],
            vec![Want::text("Hello World!"), Want::Close(1000)],
        ),
        case(
            "7.1.2 two closes",
            vec![close(1000, ""), close(1000, "")],
            vec![Want::Close(1000)],
        ),
        case(
            "7.1.3 ping after close",
            vec![close(1000, ""), ping("payload")],
            vec![Want::Close(1000)],
        ),
        case(
            "7.1.4 text after close",
            vec![close(1000, ""), text("payload")],
            vec![Want::Close(1000)],
        ),
        case(
            "7.1.5 fragment, close, fragment",
            vec![
                frame(false, TEXT, b"fragment1"),
                close(1000, ""),
                frame(true, CONT, b"fragment2"),
            ],
            vec![Want::Close(1000)],
        ),
        case(
            "7.1.6 256K message, close, ping",
            vec![text(&big), close(1000, ""), ping("payload")],
            vec![Want::Text(big.clone()), Want::Close(1000)],
        ),
        case(
            "7.3.1 close with no payload",
            vec![frame(true, CLOSE, b"")],
            vec![Want::CloseNormal],
        ),
        case(
            "7.3.2 close payload of 1 byte",
            vec![frame(true, CLOSE, b"\x03")],
            vec![Want::Close(1002)],
        ),
        case(
            "7.3.3 close 1000",
            vec![close(1000, "")],
            vec![Want::Close(1000)],
        ),
        case(
            "7.3.4 close with a reason",
            vec![close(1000, "Hello World!")],
            vec![Want::Close(1000)],
        ),
        case(
            "7.3.5 reason of 123 bytes",
            vec![close(1000, &reason123)],
            vec![Want::Close(1000)],
        ),
        case(
            "7.3.6 reason of 124 bytes (a control payload of 126)",
            vec![close(1000, &reason124)],
            vec![Want::Close(1002)],
        ),
        case(
            "7.5.1 reason not UTF-8",
            vec![close(
                1000,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            )],
            vec![Want::Close(1007)],
        ),
    ];
    run_all(&cases).await;
}

/// 7.7.x: valid codes are echoed; 7.9.x, 7.13.x: invalid ones fail with 1002.
#[tokio::test]
async fn case7_close_codes() {
    let mut cases = Vec::new();
    let valid = [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ];
    for code in valid {
        cases.push(case(
            format!("7.7 valid code {code}"),
            vec![close(code, "")],
            vec![Want::Close(code)],
        ));
    }
    let invalid = [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for code in invalid {
        cases.push(case(
            format!("7.9/7.13 invalid code {code}"),
            vec![close(code, "")],
            vec![Want::Close(1002)],
        ));
    }
    run_all(&cases).await;
}

// ---------------------------------------------------------------------------------------
// 9.x limits and large messages, and framing errors beyond Autobahn's

/// 9.1/9.2 (64K, 256K, 1M, the limit), 9.3/9.4 (1M in fragments of 64 bytes to 1M).
#[tokio::test]
async fn case9_large_messages() {
    let mut cases = Vec::new();
    for n in [64 * 1024, 256 * 1024, MAX] {
        cases.push(case(
            format!("9.1 text of {n}"),
            vec![text(text_of(n))],
            vec![Want::Text(text_of(n))],
        ));
        cases.push(case(
            format!("9.2 binary of {n}"),
            vec![binary(bytes_of(n))],
            vec![Want::Binary(bytes_of(n))],
        ));
    }
    for size in [64, 256, 1024, 4096, 16384, 65536, 262144, MAX] {
        let (opcode, data, want) = if size % 2048 == 0 {
            (BINARY, bytes_of(MAX), Want::Binary(bytes_of(MAX)))
        } else {
            (TEXT, text_of(MAX), Want::Text(text_of(MAX)))
        };
        let chunks: Vec<&[u8]> = data.chunks(size).collect();
        let frames = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| frame(i + 1 == chunks.len(), if i == 0 { opcode } else { CONT }, c))
            .collect();
        cases.push(case(
            format!("9.3/9.4 1M in fragments of {size}"),
            frames,
            vec![want],
        ));
    }
    run_all(&cases).await;
}

/// 9.5/9.6: 1M messages written in chops of 64 to 2048 bytes.
#[tokio::test]
async fn case9_chops() {
    let server = server().await;
    for (chop, binary_message) in [(64, false), (512, true), (2048, false)] {
        let what = format!("9.5/9.6 1M in chops of {chop}");
        let (bytes, want) = if binary_message {
            (binary(bytes_of(MAX)), Want::Binary(bytes_of(MAX)))
        } else {
            (text(text_of(MAX)), Want::Text(text_of(MAX)))
        };
        let mut raw = Raw::open(server.addr).await;
        let Raw { rd, wr } = &mut raw;
        let writing = async {
            for c in bytes.chunks(chop) {
                wr.write_all(c).await.unwrap();
            }
        };
        let (_, got) = tokio::join!(writing, rd.next(&what));
        let got = got.expect("an echo");
        assert!(want.matches(&got), "{what}: got {}", short(&got));
        raw.close_clean(&what).await;
    }
}

/// The limit (the example's 1 MiB) and framing errors no Autobahn case sends.
#[tokio::test]
async fn case9_limits() {
    let over = MAX + 1;
    let cases = vec![
        case(
            "one frame of the limit plus one byte",
            vec![binary(bytes_of(over))],
            vec![Want::Close(1009)],
        ),
        case(
            "a text of the limit plus one byte in 2 fragments",
            vec![frame(false, TEXT, &text_of(MAX)), frame(true, CONT, b"x")],
            vec![Want::Close(1009)],
        ),
        case(
            "the limit plus one in many fragments",
            text_of(over)
                .chunks(4096)
                .enumerate()
                .map(|(i, c)| frame(i == over / 4096, if i == 0 { TEXT } else { CONT }, c))
                .collect(),
            vec![Want::Close(1009)],
        ),
        // Refused from the header alone: the payload is never sent.
        case(
            "a header announcing 4 GiB",
            vec![header_only(BINARY, 1 << 32)],
            vec![Want::Close(1009)],
        ),
        case(
            "a header announcing 2^63 - 1 bytes",
            vec![header_only(TEXT, (1 << 63) - 1)],
            vec![Want::Close(1009)],
        ),
        case(
            "a 64-bit length with its top bit set (RFC 6455 §5.2)",
            vec![header_only(BINARY, 1 << 63)],
            vec![Want::Close(1002)],
        ),
        case(
            "an unmasked client frame (RFC 6455 §5.1)",
            vec![[&[0x81u8, 5][..], b"hello"].concat()],
            vec![Want::Close(1002)],
        ),
        case(
            "an unmasked frame after a good one",
            vec![text("good"), [&[0x82u8, 2][..], b"ok"].concat()],
            vec![Want::text("good"), Want::Close(1002)],
        ),
    ];
    run_all(&cases).await;
}

/// A client still sending when the server fails the connection (here: the rest of a
/// message over the limit, after the header that the 1009 answers) must still get the
/// server's Close. A server that closes its socket on bytes still arriving makes the kernel
/// answer them with a reset (the "TCP reset problem" of RFC 9112 §9.6): the client's next
/// write fails, and a client such as Python's websockets then drops the connection without
/// reading the Close that is waiting in its buffer (see `deflate_echo_sizes`, whose
/// fragmented bomb gets no close code at all). Here the client writes the rest of its
/// message for 200 ms, well within the server's close timeout (1 s), before it reads.
#[tokio::test]
async fn case9_a_client_still_sending_is_not_reset() {
    let server = server().await;
    let what = "a frame over the limit, its payload still coming";
    let mut raw = Raw::open(server.addr).await;
    raw.send(&header_only(BINARY, (MAX + 1) as u64)).await;
    let chunk = vec![0x5Au8; 16 * 1024];
    let mut refused = None;
    for i in 0..20 {
        if let Err(e) = raw.wr.write_all(&chunk).await {
            refused = Some(format!("write {i} (after {} KiB): {e}", i * 16));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got = raw.next(what).await;
    assert!(
        Want::Close(1009).matches(&got),
        "{what}: got {}",
        short(&got)
    );
    assert_eq!(
        refused, None,
        "{what}: the server reset the connection while the client was still sending"
    );
    raw.send(&close(1000, "")).await;
    raw.rd.ends(what).await;
    still_serves(server.addr, what).await;
}

// ---------------------------------------------------------------------------------------
// permessage-deflate, raw frames (with flate2, the zlib chirp also uses; the compressor
// itself is not what is tested here, the server's handling of the frames is)

/// `data` compressed as RFC 7692 §7.2.1 says: raw DEFLATE, sync-flushed, the final
/// `00 00 ff ff` removed.
fn deflate(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut c = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    loop {
        out.reserve(64 * 1024);
        let before = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Sync)
            .unwrap();
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.ends_with(&[0, 0, 0xFF, 0xFF]) {
            break;
        }
    }
    out.truncate(out.len() - 4);
    out
}

/// A compressed payload decompressed (the tail appended) by `d`, the decompressor of the
/// server's messages on one connection (context takeover: it keeps its window).
fn inflate(d: &mut flate2::Decompress, data: &[u8]) -> Vec<u8> {
    use flate2::FlushDecompress;
    let input = [data, &[0, 0, 0xFF, 0xFF]].concat();
    let start = d.total_in();
    let mut out = Vec::with_capacity(data.len() * 4 + 1024);
    loop {
        out.reserve(64 * 1024);
        let done = (d.total_in() - start) as usize;
        d.decompress_vec(&input[done..], &mut out, FlushDecompress::Sync)
            .expect("the server's compressed message inflates");
        if (d.total_in() - start) as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// A raw connection with permessage-deflate agreed (the plain offer).
async fn raw_deflate(addr: SocketAddr) -> Raw {
    let (raw, head) =
        Raw::open_with(addr, "Sec-WebSocket-Extensions: permessage-deflate\r\n").await;
    assert_eq!(
        header(&head, "sec-websocket-extensions"),
        Some("permessage-deflate"),
        "{head}"
    );
    raw
}

/// The server's compressed echo of a message: (RSV1 on its first frame, opcode, payload as
/// inflated by `d`).
async fn deflate_echo(
    raw: &mut Raw,
    d: &mut flate2::Decompress,
    what: &str,
) -> (bool, u8, Vec<u8>) {
    let (fin, rsv, opcode, mut payload) = raw.rd.frame(what).await.expect("an echo");
    assert_eq!(rsv & 3, 0, "{what}: RSV2/RSV3 from the server");
    let mut fin = fin;
    while !fin {
        let (f, rsv, op, more) = raw.rd.frame(what).await.expect("the rest of the echo");
        assert_eq!((rsv, op), (0, CONT), "{what}: RSV1 on a continuation frame");
        payload.extend_from_slice(&more);
        fin = f;
    }
    let compressed = rsv & 4 != 0;
    let data = if compressed {
        inflate(d, &payload)
    } else {
        payload
    };
    (compressed, opcode, data)
}

#[tokio::test]
async fn deflate_raw_frames() {
    let server = server().await;
    let addr = server.addr;
    let doc = text_of(10_000);

    // A compressed text, whole and in 3 fragments (RSV1 on the first only): echoed,
    // compressed (a repetitive text), twice (context takeover on both sides).
    let mut raw = raw_deflate(addr).await;
    let mut d = flate2::Decompress::new(false);
    for _ in 0..2 {
        raw.send(&frame_rsv(true, 4, TEXT, &deflate(&doc))).await;
        let (compressed, opcode, data) = deflate_echo(&mut raw, &mut d, "compressed text").await;
        assert!(compressed, "a 10 KB repetitive text echoed uncompressed");
        assert_eq!((opcode, data), (TEXT, doc.clone()));
    }
    let z = deflate(&bytes_of(30_000));
    let third = z.len() / 3;
    raw.send(
        &[
            frame_rsv(false, 4, BINARY, &z[..third]),
            frame(false, CONT, &z[third..2 * third]),
            frame(true, CONT, &z[2 * third..]),
        ]
        .concat(),
    )
    .await;
    let (_, opcode, data) = deflate_echo(&mut raw, &mut d, "fragmented compressed binary").await;
    assert_eq!((opcode, data), (BINARY, bytes_of(30_000)));
    // An uncompressed message on the same connection (RSV1 off) is fine too.
    raw.send(&text("plain")).await;
    let (_, opcode, data) = deflate_echo(&mut raw, &mut d, "uncompressed").await;
    assert_eq!((opcode, data), (TEXT, b"plain".to_vec()));
    raw.close_clean("deflate").await;

    // The decompressed limit: exactly 1 MiB goes, one more byte is 1009, and a bomb (16 MiB
    // of one byte, 16 KB on the wire) is 1009 too.
    let mut raw = raw_deflate(addr).await;
    let mut d = flate2::Decompress::new(false);
    raw.send(&frame_rsv(true, 4, BINARY, &deflate(&vec![7u8; MAX])))
        .await;
    let (_, _, data) = deflate_echo(&mut raw, &mut d, "1 MiB compressed").await;
    assert_eq!(data.len(), MAX);
    raw.close_clean("1 MiB compressed").await;
    let violations: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "compressed, 1 MiB + 1 inflated",
            frame_rsv(true, 4, BINARY, &deflate(&vec![7u8; MAX + 1])),
            1009,
        ),
        (
            "a decompression bomb: 16 MiB inflated",
            frame_rsv(true, 4, TEXT, &deflate(&vec![b'a'; 16 * MAX])),
            1009,
        ),
        (
            "a fragmented decompression bomb",
            {
                let z = deflate(&vec![0u8; 8 * MAX]);
                let cut = z.len() / 2;
                [
                    frame_rsv(false, 4, BINARY, &z[..cut]),
                    frame(true, CONT, &z[cut..]),
                ]
                .concat()
            },
            1009,
        ),
        (
            "invalid DEFLATE data (chirp: 1007)",
            frame_rsv(true, 4, BINARY, &[0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x12]),
            1007,
        ),
        (
            "compressed text that inflates to invalid UTF-8",
            frame_rsv(true, 4, TEXT, &deflate(b"\xce\xba\xe1\xbd\xb9\xed\xa0\x80")),
            1007,
        ),
        (
            "RSV1 on a continuation frame (RFC 7692 §6.1)",
            [
                frame_rsv(false, 4, TEXT, &deflate(b"abc")),
                frame_rsv(true, 4, CONT, &deflate(b"def")),
            ]
            .concat(),
            1002,
        ),
        (
            "RSV1 on a ping (RFC 7692 §6.1)",
            frame_rsv(true, 4, PING, b""),
            1002,
        ),
        (
            "RSV2 on a text, deflate agreed",
            frame_rsv(true, 2, TEXT, b"abc"),
            1002,
        ),
        (
            "RSV1|RSV3 on a text, deflate agreed",
            frame_rsv(true, 5, TEXT, &deflate(b"abc")),
            1002,
        ),
    ];
    for (what, bytes, code) in violations {
        let mut raw = raw_deflate(addr).await;
        raw.send(&bytes).await;
        raw.expect_close(code, what).await;
        still_serves(addr, what).await;
    }
}

/// Offers chirp declines (RFC 7692 §5: an offer it cannot accept is declined, the
/// connection goes on uncompressed) — and then RSV1 is a protocol error.
#[tokio::test]
async fn deflate_offers_declined() {
    let server = server().await;
    for offer in [
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=015",
        "permessage-deflate; unknown_parameter",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover=1",
        "x-webkit-deflate-frame",
        "deflate-frame; no_context_takeover",
    ] {
        let (mut raw, head) = Raw::open_with(
            server.addr,
            &format!("Sec-WebSocket-Extensions: {offer}\r\n"),
        )
        .await;
        assert_eq!(
            header(&head, "sec-websocket-extensions"),
            None,
            "{offer}: {head}"
        );
        raw.send(&text("uncompressed")).await;
        assert_eq!(raw.next(offer).await, Got::Text(b"uncompressed".to_vec()));
        raw.send(&frame_rsv(true, 4, TEXT, &deflate(b"abc"))).await;
        raw.expect_close(1002, offer).await;
    }
    // The first acceptable offer is the one agreed (RFC 7692 §5.1).
    let (mut raw, head) = Raw::open_with(
        server.addr,
        "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, \
         permessage-deflate; client_max_window_bits; server_no_context_takeover\r\n\
         Sec-WebSocket-Extensions: permessage-deflate\r\n",
    )
    .await;
    assert_eq!(
        params_of(header(&head, "sec-websocket-extensions").expect("an agreement")),
        params(&[
            ("client_max_window_bits", Some("15")),
            ("server_no_context_takeover", None)
        ])
    );
    raw.close_clean("several offers").await;
}

/// The parameters of a permessage-deflate response (exactly one extension), by name.
fn params_of(value: &str) -> BTreeMap<String, Option<String>> {
    assert_eq!(value.split(',').count(), 1, "one extension agreed: {value}");
    let mut parts = value.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("permessage-deflate"), "{value}");
    let mut out = BTreeMap::new();
    for p in parts {
        let (name, v) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"').to_owned())),
            None => (p, None),
        };
        assert!(
            out.insert(name.to_ascii_lowercase(), v).is_none(),
            "{name} twice in {value}"
        );
    }
    out
}

fn params(list: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
    list.iter()
        .map(|(n, v)| ((*n).to_owned(), v.map(str::to_owned)))
        .collect()
}

// ---------------------------------------------------------------------------------------
// tokio-tungstenite: ordinary traffic from another implementation

type Tws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

async fn tconnect(addr: SocketAddr) -> Tws {
    let (ws, res) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}{PATH}")),
    )
    .await
    .expect("the handshake within the timeout")
    .expect("the handshake");
    assert_eq!(res.status(), 101);
    ws
}

async fn tnext(ws: &mut Tws, what: &str) -> TMessage {
    tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
        .unwrap_or_else(|| panic!("{what}: the connection ended"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// The server's Close code, then the end of the stream.
async fn tclosed(ws: &mut Tws, what: &str) -> u16 {
    let code = match tnext(ws, what).await {
        TMessage::Close(Some(frame)) => u16::from(frame.code),
        other => panic!("{what}: wanted a Close, got {}", short(&other)),
    };
    let end = tokio::time::timeout(WAIT, ws.next())
        .await
        .unwrap_or_else(|_| panic!("{what}: still open {WAIT:?} after the Close"));
    assert!(
        matches!(end, None | Some(Err(_))),
        "{what}: {}",
        short(&end)
    );
    code
}

async fn tclose(ws: &mut Tws, code: u16, what: &str) {
    ws.send(TMessage::Close(Some(CloseFrame {
        code: code.into(),
        reason: "bye".into(),
    })))
    .await
    .unwrap();
    assert_eq!(
        tclosed(ws, what).await,
        code,
        "{what}: the close code echoed"
    );
}

/// 1.x, 9.1, 9.2 through tungstenite: text and binary of every length-encoding boundary,
/// and up to the limit; UTF-8 of every width.
#[tokio::test]
async fn tungstenite_echo_sizes() {
    let server = server().await;
    let mut ws = tconnect(server.addr).await;
    let sizes = [
        0usize, 1, 124, 125, 126, 127, 128, 1000, 65534, 65535, 65536, 65537, 200_000, MAX,
    ];
    for n in sizes {
        let what = format!("text of {n}");
        let t: String = "aé€🐦".chars().cycle().take(n).collect::<String>();
        let t: String = t
            .char_indices()
            .take_while(|(i, c)| i + c.len_utf8() <= n)
            .map(|(_, c)| c)
            .collect();
        ws.send(TMessage::text(t.clone())).await.unwrap();
        assert_eq!(tnext(&mut ws, &what).await, TMessage::text(t), "{what}");
        let what = format!("binary of {n}");
        ws.send(TMessage::binary(bytes_of(n))).await.unwrap();
        assert_eq!(
            tnext(&mut ws, &what).await,
            TMessage::binary(bytes_of(n)),
            "{what}"
        );
    }
    tclose(&mut ws, 1000, "sizes").await;
}

/// 5.3, 6.2.3, 9.3/9.4, 10.1.1 through tungstenite: fragmented sends (fragments that
/// split code points, empty ones, many small ones) come back as one message.
#[tokio::test]
async fn tungstenite_fragmented() {
    let server = server().await;
    let mut ws = tconnect(server.addr).await;
    let kosme = "κόσμε🐦".repeat(2000);
    let cases: Vec<(&str, bool, Vec<u8>, usize)> = vec![
        (
            "10.1.1 65536 text in fragments of 1300",
            true,
            text_of(65536),
            1300,
        ),
        (
            "text split inside code points",
            true,
            kosme.clone().into_bytes(),
            7,
        ),
        (
            "9.4 binary in fragments of 64",
            false,
            bytes_of(256 * 1024),
            64,
        ),
        (
            "9.3 1 MiB text in fragments of 65536",
            true,
            text_of(MAX),
            65536,
        ),
        ("binary in 2 fragments", false, bytes_of(3), 2),
    ];
    for (what, is_text, data, size) in cases {
        let chunks: Vec<&[u8]> = data.chunks(size).collect();
        let first = if is_text { Data::Text } else { Data::Binary };
        for (i, chunk) in chunks.iter().enumerate() {
            let opcode = OpCode::Data(if i == 0 { first } else { Data::Continue });
            let f = Frame::message(chunk.to_vec(), opcode, i + 1 == chunks.len());
            ws.feed(TMessage::Frame(f)).await.unwrap();
        }
        ws.flush().await.unwrap();
        let want = if is_text {
            TMessage::text(String::from_utf8(data).unwrap())
        } else {
            TMessage::binary(data)
        };
        assert!(tnext(&mut ws, what).await == want, "{what}");
    }
    // A ping between the fragments gets its pong before the message.
    ws.send(TMessage::Frame(Frame::message(
        b"abc".to_vec(),
        OpCode::Data(Data::Text),
        false,
    )))
    .await
    .unwrap();
    ws.send(TMessage::Ping(b"between".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        tnext(&mut ws, "pong between fragments").await,
        TMessage::Pong(b"between".to_vec().into())
    );
    ws.send(TMessage::Frame(Frame::message(
        Vec::new(),
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    assert_eq!(
        tnext(&mut ws, "after the pong").await,
        TMessage::text("abc")
    );
    tclose(&mut ws, 1000, "fragmented").await;
}

/// 2.x through tungstenite: pings of 0 to 125 bytes answered with the same payload.
#[tokio::test]
async fn tungstenite_ping_pong() {
    let server = server().await;
    let mut ws = tconnect(server.addr).await;
    for n in [0usize, 1, 60, 125] {
        ws.send(TMessage::Ping(bytes_of(n).into())).await.unwrap();
        assert_eq!(
            tnext(&mut ws, "pong").await,
            TMessage::Pong(bytes_of(n).into())
        );
    }
    // An unsolicited pong gets nothing: the next thing back is the echo.
    ws.send(TMessage::Pong(b"unsolicited".to_vec().into()))
        .await
        .unwrap();
    ws.send(TMessage::text("after")).await.unwrap();
    assert_eq!(
        tnext(&mut ws, "after a pong").await,
        TMessage::text("after")
    );
    tclose(&mut ws, 1000, "pings").await;
}

/// 7.7.x through tungstenite: the client's close code echoed, for each valid code.
#[tokio::test]
async fn tungstenite_close_codes() {
    let server = server().await;
    for code in [1000u16, 1001, 1003, 1008, 1011, 3000, 4000, 4999] {
        let mut ws = tconnect(server.addr).await;
        ws.send(TMessage::text("x")).await.unwrap();
        assert_eq!(tnext(&mut ws, "echo").await, TMessage::text("x"));
        tclose(&mut ws, code, &format!("close {code}")).await;
    }
}

/// 9.x through tungstenite: the limit exactly is echoed; one byte more is 1009.
#[tokio::test]
async fn tungstenite_limits() {
    let server = server().await;
    let mut ws = tconnect(server.addr).await;
    ws.send(TMessage::binary(bytes_of(MAX))).await.unwrap();
    assert!(tnext(&mut ws, "1 MiB").await == TMessage::binary(bytes_of(MAX)));
    ws.send(TMessage::binary(bytes_of(MAX + 1))).await.unwrap();
    assert_eq!(tclosed(&mut ws, "1 MiB + 1").await, 1009);
    let mut ws = tconnect(server.addr).await;
    ws.send(TMessage::text(String::from_utf8(text_of(MAX + 1)).unwrap()))
        .await
        .unwrap();
    assert_eq!(tclosed(&mut ws, "text of 1 MiB + 1").await, 1009);
}

/// 9.7/9.8-like: many connections at once, each echoing its own messages in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tungstenite_many_connections() {
    let server = server().await;
    let addr = server.addr;
    let clients = (0..64).map(|c| async move {
        let mut ws = tconnect(addr).await;
        for m in 0..20usize {
            let size = (c * 131 + m * 977) % 20_000;
            let body = format!("{c}/{m}:{}", String::from_utf8(text_of(size)).unwrap());
            let what = format!("connection {c}, message {m}");
            if m % 2 == 0 {
                ws.send(TMessage::text(body.clone())).await.unwrap();
                assert_eq!(tnext(&mut ws, &what).await, TMessage::text(body));
            } else {
                ws.send(TMessage::binary(body.clone().into_bytes()))
                    .await
                    .unwrap();
                assert_eq!(
                    tnext(&mut ws, &what).await,
                    TMessage::binary(body.into_bytes())
                );
            }
        }
        tclose(&mut ws, 4000 + c as u16, "many").await;
    });
    tokio::time::timeout(
        Duration::from_secs(20),
        futures_util::future::join_all(clients),
    )
    .await
    .expect("64 connections done within 20 s");
}

// ---------------------------------------------------------------------------------------
// Python's websockets: permessage-deflate, every parameter combination (Autobahn 12, 13)

/// The Python interpreter to use, or `None` (skip) outside CI.
fn python() -> Option<String> {
    let candidates = std::env::var("CHIRP_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_owned()]);
    for python in candidates {
        let ok = std::process::Command::new(&python)
            .args(["-c", "import websockets"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: no Python with websockets (CHIRP_PYTHON={:?}); `make test` sets one up",
        std::env::var("CHIRP_PYTHON").ok()
    );
    eprintln!("skipped: no Python with websockets (run `make test`, or set CHIRP_PYTHON)");
    None
}

/// Runs tests/python/ws_client.py on `cases` against `addr`; its results, in order. The
/// process is killed if it takes more than 25 s.
async fn run_python(python: String, addr: SocketAddr, cases: Vec<Value>) -> Vec<Value> {
    let n = cases.len();
    let input = json!({"url": format!("ws://{addr}{PATH}"), "cases": cases}).to_string();
    let out = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        use std::process::{Command, Stdio};
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/ws_client.py");
        let mut child = common::KillOnDrop(
            Command::new(python)
                .arg(tool)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python runs"),
        );
        child
            .0
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let mut stdout = child.0.stdout.take().unwrap();
        let reading = std::thread::spawn(move || {
            let mut out = Vec::new();
            stdout.read_to_end(&mut out).map(|_| out)
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(25);
        loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                assert!(status.success(), "the Python client failed: {status}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the Python client took more than 25 s (a hang)"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        reading.join().unwrap().unwrap()
    })
    .await
    .unwrap();
    let results: Vec<Value> = serde_json::from_slice(&out).expect("JSON from the Python client");
    assert_eq!(results.len(), n);
    results
}

/// One permessage-deflate offer, as the Python client makes it.
#[derive(Clone, Copy, Debug)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

impl Offer {
    fn json(&self) -> Value {
        json!({
            "server_no_context_takeover": self.server_no_context_takeover,
            "client_no_context_takeover": self.client_no_context_takeover,
            "server_max_window_bits": self.server_max_window_bits,
            "client_max_window_bits": match self.client_max_window_bits {
                None => Value::Null,
                Some(None) => Value::Bool(true),
                Some(Some(bits)) => json!(bits),
            },
        })
    }

    /// What chirp's default `DeflateConfig` (windows of 15 bits, context takeover allowed)
    /// answers (RFC 7692 §7.1, and chirp's choices within it, src/ws/deflate.rs
    /// `accept_offer`): every parameter of the offer, `server_max_window_bits` with the
    /// offered value, `client_max_window_bits` with the offered one or 15 for a bare offer.
    /// `None`: declined (a server window of 8 bits, which zlib cannot compress with).
    fn agreed(&self) -> Option<BTreeMap<String, Option<String>>> {
        if self.server_max_window_bits == Some(8) {
            return None;
        }
        let mut want = BTreeMap::new();
        if self.server_no_context_takeover {
            want.insert("server_no_context_takeover".to_owned(), None);
        }
        if self.client_no_context_takeover {
            want.insert("client_no_context_takeover".to_owned(), None);
        }
        if let Some(bits) = self.server_max_window_bits {
            want.insert("server_max_window_bits".to_owned(), Some(bits.to_string()));
        }
        if let Some(bits) = self.client_max_window_bits {
            want.insert(
                "client_max_window_bits".to_owned(),
                Some(bits.unwrap_or(15).to_string()),
            );
        }
        Some(want)
    }
}

fn msg(kind: &str, ty: &str, size: usize, fragments: usize) -> Value {
    json!({"kind": kind, "type": ty, "size": size, "fragments": fragments})
}

/// Checks one Python result: the agreement, every echo, the compression of the echoes of
/// compressible messages (`compressible[i]`), and a clean close with `close`.
fn check_result(
    r: &Value,
    want_ext: Option<BTreeMap<String, Option<String>>>,
    compressible: &[bool],
) {
    let name = r["name"].as_str().unwrap();
    assert_eq!(r["error"], Value::Null, "{name}: {r}");
    let ext = r["extensions"].as_str();
    assert_eq!(ext.map(params_of), want_ext, "{name}: agreed {ext:?}");
    let echoed = r["echoed"].as_array().unwrap();
    assert_eq!(echoed.len(), compressible.len(), "{name}: {r}");
    assert!(
        echoed.iter().all(|e| e == true),
        "{name}: echoes {echoed:?}"
    );
    let compressed = r["compressed"].as_array().unwrap();
    for (i, c) in compressible.iter().enumerate() {
        if *c && ext.is_some() {
            assert_eq!(
                compressed[i], true,
                "{name}: message {i}'s echo not compressed"
            );
        }
    }
    assert_eq!(r["close_code"], 1000, "{name}: {r}");
}

/// Autobahn 13.x, and more: every combination of the four parameters offered (server window
/// absent/9/12/15, client window absent/bare/9/15, each no_context_takeover on and off),
/// the 101's agreement checked, and messages echoed through it: empty, compressible text
/// twice (the second one is where a context kept against `*_no_context_takeover` would
/// show), random binary, text whose repeats lie 3000 bytes back (beyond a 9-bit window: a
/// server compressing with more window than agreed makes references the client cannot
/// follow), and a compressible binary fragmented in 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_parameter_combinations() {
    let Some(python) = python() else { return };
    let server = server().await;
    let messages = vec![
        msg("compressible", "text", 0, 0),
        msg("compressible", "text", 300, 0),
        msg("compressible", "text", 300, 0),
        msg("random", "binary", 2000, 0),
        msg("far", "text", 12_000, 0),
        msg("compressible", "binary", 70_000, 4),
    ];
    // Which echoes must come compressed: chirp may leave a message that does not shrink
    // uncompressed (RFC 7692 §6), which the empty, random and far ones may not.
    let compressible = [false, true, true, false, false, true];
    let mut offers = Vec::new();
    for server_bits in [None, Some(9), Some(12), Some(15)] {
        for client_bits in [None, Some(None), Some(Some(9)), Some(Some(15))] {
            for snct in [false, true] {
                for cnct in [false, true] {
                    offers.push(Offer {
                        server_no_context_takeover: snct,
                        client_no_context_takeover: cnct,
                        server_max_window_bits: server_bits,
                        client_max_window_bits: client_bits,
                    });
                }
            }
        }
    }
    let cases = offers
        .iter()
        .map(|o| json!({"name": format!("{o:?}"), "offers": [o.json()], "messages": messages}))
        .collect();
    let results = run_python(python, server.addr, cases).await;
    for (offer, r) in offers.iter().zip(&results) {
        check_result(r, offer.agreed(), &compressible);
    }
}

/// Autobahn 12.x: compressed echo of many sizes (16 bytes to 128 KiB), whole and
/// auto-fragmented, text and binary, with the default offer; and the limit: 1 MiB
/// compressed is echoed, 1 MiB + 1 (or a 4 MiB bomb, a few KB on the wire) is 1009.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_echo_sizes() {
    let Some(python) = python() else { return };
    let server = server().await;
    let default_offer = Offer {
        server_no_context_takeover: false,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: Some(None),
    };
    let mut messages = Vec::new();
    let mut compressible = Vec::new();
    for size in [
        16usize, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072,
    ] {
        for (kind, ty) in [("compressible", "text"), ("random", "binary")] {
            for _ in 0..3 {
                messages.push(msg(kind, ty, size, 0));
                compressible.push(kind == "compressible" && size >= 64);
            }
        }
        if size >= 8192 {
            messages.push(msg("compressible", "text", size, size / 256));
            compressible.push(true);
        }
    }
    messages.push(msg("repeat", "binary", MAX, 0));
    compressible.push(true);
    let bomb = |size: usize, ty: &str, fragments: usize| {
        json!({"name": format!("bomb {size} {ty} {fragments}"),
               "offers": [default_offer.json()],
               "messages": [msg("compressible", "text", 100, 0),
                            {"kind": "repeat", "type": ty, "size": size,
                             "fragments": fragments, "expect_close": 1009}]})
    };
    let cases = vec![
        json!({"name": "12.x sizes", "offers": [default_offer.json()], "messages": messages}),
        bomb(MAX + 1, "binary", 0),
        bomb(4 * MAX, "text", 0),
        bomb(4 * MAX, "binary", 8),
    ];
    let results = run_python(python, server.addr, cases).await;
    check_result(&results[0], default_offer.agreed(), &compressible);
    for r in &results[1..] {
        let name = r["name"].as_str().unwrap();
        assert_eq!(r["error"], Value::Null, "{name}: {r}");
        assert_eq!(r["echoed"], json!([true]), "{name}: {r}");
        assert_eq!(
            r["close_code"], 1009,
            "{name}: {r} (a null code: the client got no Close at all, see \
             case9_a_client_still_sending_is_not_reset)"
        );
    }
}

/// Offers from Python chirp must decline or choose among: a server window of 8 bits alone
/// (declined: the connection goes on uncompressed), and Autobahn 13.7's list of offers
/// where the first is not acceptable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_python_offers_declined() {
    let Some(python) = python() else { return };
    let server = server().await;
    let eight = Offer {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: Some(8),
        client_max_window_bits: Some(None),
    };
    let nct = Offer {
        server_no_context_takeover: true,
        client_no_context_takeover: false,
        server_max_window_bits: None,
        client_max_window_bits: Some(None),
    };
    let messages = vec![
        msg("compressible", "text", 5000, 0),
        msg("random", "binary", 5000, 0),
    ];
    let cases = vec![
        json!({"name": "server_max_window_bits=8", "offers": [eight.json()], "messages": messages}),
        json!({"name": "8, then no context takeover", "offers": [eight.json(), nct.json()],
               "messages": messages}),
        json!({"name": "no offer", "offers": [], "messages": messages}),
    ];
    let results = run_python(python, server.addr, cases).await;
    check_result(&results[0], None, &[false, false]);
    assert_eq!(results[0]["compressed"], json!([false, false]));
    check_result(&results[1], nct.agreed(), &[true, false]);
    check_result(&results[2], None, &[false, false]);
}
