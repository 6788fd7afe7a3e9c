//! Shared helpers for the black-box tests: a real server on a loopback port, and a raw TCP
//! client that reads responses byte-exactly.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use chirp::{App, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running `app` on 127.0.0.1 (random port) until `stop` is called or it is dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), chirp::Error>>,
}

impl TestServer {
    pub async fn start(app: App) -> TestServer {
        TestServer::start_with(app, ServerConfig::default()).await
    }

    pub async fn start_with(mut app: App, config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        app.server_config(config);
        let handle = tokio::spawn(app.serve_with_shutdown(listener, async {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            handle,
        }
    }

    /// Begins a graceful shutdown.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn connect(&self) -> RawConn {
        RawConn::connect(self.addr).await
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name=value` of the first Set-Cookie, as a client sends it back.
    pub fn cookie_pair(&self) -> String {
        let set_cookie = self.header("set-cookie").expect("a Set-Cookie header");
        set_cookie.split(';').next().unwrap_or_default().to_owned()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A raw client connection.
pub struct RawConn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

const WAIT: Duration = Duration::from_secs(5);

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> RawConn {
        RawConn {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.unwrap();
    }

    /// Reads more bytes; false on EOF or error.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Ok(_) => false,
            Err(_) => panic!("no response within {WAIT:?}"),
        }
    }

    /// Reads one response; `head_only` for the answer to a HEAD request.
    pub async fn response_for(&mut self, head_only: bool) -> RawResponse {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill().await,
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        self.buf.drain(..head_end);
        let len: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap_or(0);
        let body_len = if head_only || status == 100 { 0 } else { len };
        while self.buf.len() < body_len {
            assert!(self.fill().await, "connection closed inside a body");
        }
        let body = self.buf.drain(..body_len).collect();
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub async fn response(&mut self) -> RawResponse {
        self.response_for(false).await
    }

    /// Whether the server closes the connection (EOF or reset) within `within`, with no
    /// further bytes.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(within, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => self.buf.is_empty(),
            Ok(Ok(n)) => panic!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(_) => false,
        }
    }

    /// Bytes received but not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

pub fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// Sends `raw` on a new connection, expects `status`, and that the server then closes the
/// connection; returns the response.
pub async fn refused(server: &TestServer, raw: &[u8], status: u16) -> RawResponse {
    let mut conn = server.connect().await;
    conn.send(raw).await;
    let head_only = raw.starts_with(b"HEAD ");
    let res = conn.response_for(head_only).await;
    assert_eq!(
        res.status,
        status,
        "for {:?}: {}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)]),
        res.text()
    );
    assert_eq!(res.header("connection"), Some("close"));
    assert!(
        conn.closed_within(Duration::from_secs(3)).await,
        "connection left open (or more bytes) after {:?}",
        String::from_utf8_lossy(&raw[..raw.len().min(80)])
    );
    res
}

/// Collects what a `tracing` fmt subscriber writes (`.with_writer(log.clone())`), for tests
/// that check log output.
#[derive(Clone, Default)]
pub struct CapturedLog(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CapturedLog {
    type Writer = CapturedLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A child process (a server run in a process of its own), killed when the test ends,
/// however it ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An ignored test of this test binary (`name`, which returns at once unless `gate_env` is
/// set) run in a process of its own, as a server for the test that starts it: a test needs a
/// whole process when it changes process-wide limits, counts descriptors or memory, or sends
/// signals. Its stdout is read to the end by a thread (a closed pipe would fail its later
/// prints) and handed over line by line.
pub struct TestProcess {
    pub child: KillOnDrop,
    lines: std::sync::mpsc::Receiver<String>,
}

impl TestProcess {
    pub fn start(name: &str, gate_env: &str, envs: &[(&str, &str)]) -> TestProcess {
        use std::io::BufRead;
        let mut command = std::process::Command::new(std::env::current_exe().unwrap());
        command
            .args([name, "--exact", "--ignored", "--nocapture"])
            .env(gate_env, "1")
            .stdout(std::process::Stdio::piped());
        for (key, value) in envs {
            command.env(key, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        TestProcess {
            child: KillOnDrop(child),
            lines,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// Waits (at most `WAIT`) for a line containing `marker`; the rest of the line after it.
    pub fn line_after(&self, marker: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("the process never printed {marker:?}"));
            if let Some(at) = line.find(marker) {
                return line[at + marker.len()..].to_owned();
            }
        }
    }

    /// The address a server process printed as `listening on ADDR`.
    pub fn listening_on(&self) -> SocketAddr {
        self.line_after("listening on ").trim().parse().unwrap()
    }
}

/// The session cookie (`name=value`) and the CSRF token a browser gets with a page that
/// carries the token in `<meta name="csrf-token" content="...">` (the files example's upload
/// form at `path`).
pub async fn page_session(server: &TestServer, path: &str) -> (String, String) {
    let mut conn = server.connect().await;
    conn.send(get(path)).await;
    let page = conn.response().await;
    assert_eq!(page.status, 200, "{path}: {}", page.text());
    let text = page.text();
    let token = text
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page carries its CSRF token")
        .to_owned();
    (page.cookie_pair(), token)
}
