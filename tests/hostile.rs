//! Hostile input: deterministic pseudo-random garbage and mutations of valid requests thrown at
//! the parts that read network bytes. None may panic; the server must answer or close, and
//! keep serving others.

mod common;

use std::time::Duration;

use chirp::__bench::parse_head;
use chirp::sessions::{Digest, Signer};
use chirp::{App, Request};
use common::{get, TestServer};

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Bytes biased towards the ones that matter to HTTP parsers.
    fn byte(&mut self) -> u8 {
        const INTERESTING: &[u8] = b"\r\n :;=,.\t\0\x7f\xff0123456789abcdefGET/HTTP1.chunked";
        if self.below(3) == 0 {
            (self.next() & 0xff) as u8
        } else {
            INTERESTING[self.below(INTERESTING.len())]
        }
    }
}

const VALID: &[u8] =
    b"POST /a/b?c=d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nCookie: a=1; s=x.y.z\r\n\r\nhello";

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..1 + rng.below(6) {
        match rng.below(4) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.byte();
            }
            1 => {
                let i = rng.below(v.len() + 1);
                let b = rng.byte();
                v.insert(i, b);
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v.remove(i);
            }
            _ => {
                let cut = rng.below(v.len() + 1);
                v.truncate(cut);
            }
        }
    }
    v
}

#[test]
fn the_head_parser_never_panics() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for _ in 0..20_000 {
        let input: Vec<u8> = if rng.below(2) == 0 {
            mutate(&mut rng, VALID)
        } else {
            (0..rng.below(200)).map(|_| rng.byte()).collect()
        };
        let mut input = input;
        if let Some(len) = parse_head(&mut input) {
            assert!(len <= input.len());
        }
    }
}

#[test]
fn the_cookie_verifier_never_panics_and_never_accepts_a_mutation() {
    let signer = Signer::new("fuzz-secret", &[], Digest::Sha256, "itsdangerous");
    let mut data = chirp::sessions::SessionData::new();
    data.insert("user", "alice").unwrap();
    let valid = signer.dumps(&data, 1_764_000_000);
    let mut rng = Rng(42);
    for _ in 0..20_000 {
        let mutated = mutate(&mut rng, valid.as_bytes());
        let Ok(text) = String::from_utf8(mutated) else {
            continue;
        };
        if let Ok((back, _)) = signer.loads(&text) {
            // Only a mutation that decodes to the same signed bytes may pass (e.g. base64
            // padding noise): never different data.
            assert_eq!(back, data, "accepted a forged cookie: {text}");
        }
    }
}

#[tokio::test]
async fn garbage_on_the_wire_never_takes_the_server_down() {
    let mut app = App::new();
    app.route("/", |_req: Request| async { "alive" });
    app.post("/a/b", |req: Request| async move {
        format!("{} bytes", req.body().len())
    });
    let config = chirp::ServerConfig {
        head_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(200),
        body_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = TestServer::start_with(app, config).await;
    let mut rng = Rng(7);
    let mut clients = Vec::new();
    for _ in 0..150 {
        let input = mutate(&mut rng, VALID);
        let addr = server.addr;
        clients.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let _ = stream.write_all(&input).await;
            // Whatever it answers (or not), it must close within the head, body or idle timeout.
            let mut sink = [0u8; 4096];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            loop {
                match tokio::time::timeout_at(deadline, stream.read(&mut sink)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => continue,
                    Err(_) => panic!(
                        "connection still open 3 s after {:?}",
                        String::from_utf8_lossy(&input)
                    ),
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let mut conn = server.connect().await;
    conn.send(get("/")).await;
    assert_eq!(conn.response().await.text(), "alive");
}
