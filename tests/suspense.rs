//! `Suspense` over real sockets and in-process: the shell arrives before a slow value
//! resolves (plain, gzip, brotli), values resolve concurrently and are streamed in the order
//! they resolve, a plain load gets `<template>` + `<script>` (with the CSP nonce), htmx gets
//! `hx-swap-oob`, resolved values are escaped, failures are logged and end the response
//! cleanly, and shutdown ends a response mid-stream.

mod common;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chirp::middleware::compression::CompressionMiddleware;
use chirp::middleware::csrf::{CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::SecurityHeadersMiddleware;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::templates::{context, Suspense, Templates};
use chirp::testing::TestClient;
use chirp::{App, Method, Request, StatusCode};
use common::{CapturedLog, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

const PAGE: &str = "<!doctype html><html><head><title>{{ title }}</title></head><body>\n\
{% block stats %}<section id=\"stats\">{% if stats %}{{ stats.count }} tasks\
{% elif suspense_errors.stats %}Stats unavailable{% else %}Loading…{% endif %}</section>{% endblock %}\n\
{% block feed %}<ul id=\"feed\">{% if feed %}{% for f in feed %}<li>{{ f }}</li>{% endfor %}\
{% elif suspense_errors.feed %}<li>Feed unavailable</li>{% else %}<li>Loading…</li>{% endif %}</ul>{% endblock %}\n\
</body></html>";

fn templates() -> Templates {
    Templates::new()
        .with_template("page.html", PAGE)
        .unwrap()
        .with_template(
            "base.html",
            "<html><head><meta name=\"csrf-token\" content=\"{{ csrf_token() }}\"></head>\
             <body>{% block content %}{% endblock %}</body></html>",
        )
        .unwrap()
        .with_template(
            "child.html",
            "{% extends \"base.html\" %}{% block content %}<main>{{ title }}\
             {% block stats %}<p id=\"stats\">{{ stats or \"…\" }}</p>{% endblock %}\
             {% block path %}<i id=\"path\">{{ request.path }} {{ stats }}</i>{% endblock %}\
             {% block token %}<b id=\"tok\">{% if stats %}{{ csrf_token() }}|{{ csp_nonce() }}{% endif %}</b>{% endblock %}\
             </main>{% endblock %}",
        )
        .unwrap()
        .with_template(
            "partial.html",
            "{% block panel %}<div id=\"panel\">{% include \"count.html\" %}</div>{% endblock %}",
        )
        .unwrap()
        .with_template("count.html", "{{ n or 'none' }}")
        .unwrap()
}

/// The stats page: `stats` waits for `gate`; `feed` resolves after `feed_ms`.
fn page_app(gate: Arc<Notify>, feed_ms: u64) -> App {
    let mut app = App::new();
    app.templates(templates());
    app.route("/stats", move |_req: Request| {
        let gate = gate.clone();
        async move {
            Suspense::new("page.html", context! { title => "Stats" })
                .defer("stats", async move {
                    gate.notified().await;
                    context! { count => 3 }
                })
                .defer("feed", async move {
                    tokio::time::sleep(Duration::from_millis(feed_ms)).await;
                    vec!["<script>alert(1)</script>", "b & c"]
                })
        }
    });
    app
}

/// A response read off the wire as it arrives: the head, then the body's chunks.
struct Wire {
    conn: tokio::net::TcpStream,
    raw: Vec<u8>,
    head: String,
    coding: &'static str,
}

/// The chunks of a chunked body so far, and whether its last chunk was seen.
fn dechunk(mut raw: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap(), 16).unwrap();
        if size == 0 {
            return (out, true);
        }
        let start = line_end + 2;
        if raw.len() < start + size + 2 {
            return (out, false);
        }
        out.push(raw[start..start + size].to_vec());
        raw = &raw[start + size + 2..];
    }
}

impl Wire {
    async fn get(server: &TestServer, path: &str, headers: &str, coding: &'static str) -> Wire {
        let mut conn = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
        conn.write_all(req.as_bytes()).await.unwrap();
        let mut wire = Wire {
            conn,
            raw: Vec::new(),
            head: String::new(),
            coding,
        };
        while !wire.raw.windows(4).any(|w| w == b"\r\n\r\n") {
            assert!(
                wire.read(Duration::from_secs(5)).await,
                "closed before a head"
            );
        }
        let end = wire.raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        wire.head = String::from_utf8(wire.raw[..end].to_vec()).unwrap();
        wire.raw.drain(..end + 4);
        wire
    }

    /// Reads more within `within`; false when closed, or nothing came.
    async fn read(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 16384];
        match tokio::time::timeout(within, self.conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// The body so far, decoded, and whether it has ended.
    fn body(&self) -> (String, bool) {
        let (chunks, done) = dechunk(&self.raw);
        let bytes: Vec<u8> = chunks.concat();
        let text = match self.coding {
            "gzip" => {
                let mut d = flate2::write::GzDecoder::new(Vec::new());
                let _ = d.write_all(&bytes);
                let _ = d.flush();
                String::from_utf8_lossy(d.get_ref()).into_owned()
            }
            "br" => {
                let mut d = brotli::DecompressorWriter::new(Vec::new(), 4096);
                let _ = d.write_all(&bytes);
                let _ = d.flush();
                String::from_utf8_lossy(d.get_ref()).into_owned()
            }
            _ => String::from_utf8_lossy(&bytes).into_owned(),
        };
        (text, done)
    }

    /// Reads until `until` holds of the decoded body (within 5 s), and returns it.
    async fn until(&mut self, until: impl Fn(&str, bool) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (text, done) = self.body();
            if until(&text, done) {
                return text;
            }
            assert!(!done, "the response ended without it: {text}");
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(self.read(left).await, "not within 5 s; so far: {text}");
        }
    }
}

#[tokio::test]
async fn the_shell_arrives_before_the_slow_value_in_a_chunk_of_its_own() {
    let gate = Arc::new(Notify::new());
    let server = TestServer::start(page_app(gate.clone(), 0)).await;
    let mut wire = Wire::get(&server, "/stats", "", "identity").await;
    let head = wire.head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("vary: hx-request"), "{head}");

    // The shell, and the feed (which resolves at once), but not the stats: they wait.
    let text = wire
        .until(|t, _| t.contains("</html>") && t.contains("b &amp; c"))
        .await;
    assert!(text.starts_with("<!doctype html><html>"), "{text}");
    assert!(
        text.contains("<section id=\"stats\">Loading…</section>"),
        "{text}"
    );
    assert!(!text.contains("3 tasks"), "{text}");
    // The shell is a chunk of its own: the first, all of the document.
    let first = String::from_utf8(dechunk(&wire.raw).0[0].clone()).unwrap();
    assert!(first.ends_with("</body></html>"), "{first}");
    assert!(!first.contains("<template"), "{first}");
    assert!(!wire.body().1, "the response is still open");

    gate.notify_one();
    let text = wire.until(|_, done| done).await;
    let filled = text.split("</html>").nth(1).unwrap();
    assert!(
        filled.contains(
            "<template id=\"suspense-stats\" data-target=\"stats\"><section id=\"stats\">3 tasks</section></template><script>"
        ),
        "{filled}"
    );
    // The connection stays usable: the next request on it is answered.
    wire.conn
        .write_all(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    while !rest.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), wire.conn.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        rest.extend_from_slice(&buf[..n]);
    }
    assert!(rest.starts_with(b"HTTP/1.1 404"));
}

/// Compression flushes each chunk: the shell decodes before the slow value has resolved.
#[tokio::test]
async fn compression_does_not_hold_the_shell_back() {
    let gate = Arc::new(Notify::new());
    let mut app = page_app(gate.clone(), 0);
    app.add_middleware(CompressionMiddleware::new());
    let server = TestServer::start(app).await;
    for coding in ["gzip", "br"] {
        let accept = format!("Accept-Encoding: {coding}\r\n");
        let mut wire = Wire::get(&server, "/stats", &accept, coding).await;
        assert!(
            wire.head
                .to_ascii_lowercase()
                .contains(&format!("content-encoding: {coding}")),
            "{}",
            wire.head
        );
        let text = wire.until(|t, _| t.contains("</html>")).await;
        assert!(text.contains("Loading…"), "{text}");
        assert!(!text.contains("3 tasks"), "{text}");
        gate.notify_one();
        let text = wire.until(|t, _| t.contains("3 tasks")).await;
        assert!(text.contains("<template id=\"suspense-stats\""), "{text}");
        wire.until(|_, done| done).await;
    }
}

/// Values resolve concurrently: one registered after a slow one arrives first.
#[tokio::test]
async fn a_fast_value_arrives_before_a_slow_one_registered_first() {
    let gate = Arc::new(Notify::new());
    let server = TestServer::start(page_app(gate.clone(), 20)).await;
    let mut wire = Wire::get(&server, "/stats", "", "identity").await;
    let text = wire
        .until(|t, _| t.contains("<template id=\"suspense-feed\""))
        .await;
    assert!(!text.contains("suspense-stats"), "{text}");
    assert!(!wire.body().1);
    gate.notify_one();
    let text = wire.until(|_, done| done).await;
    let feed = text.find("suspense-feed").unwrap();
    let stats = text.find("suspense-stats").unwrap();
    assert!(feed < stats, "{text}");
}

/// The total time is about the slowest value's, not the sum.
#[tokio::test]
async fn values_resolve_concurrently() {
    let mut app = App::new();
    app.templates(
        Templates::new()
            .with_template(
                "four.html",
                "{% block a %}<i id=a>{{ a }}</i>{% endblock %}{% block b %}<i id=b>{{ b }}</i>{% endblock %}\
                 {% block c %}<i id=c>{{ c }}</i>{% endblock %}{% block d %}<i id=d>{{ d }}</i>{% endblock %}",
            )
            .unwrap(),
    );
    app.route("/four", |_req: Request| async {
        let slow = |v: u32| async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            v
        };
        Suspense::new("four.html", context! {})
            .defer("a", slow(1))
            .defer("b", slow(2))
            .defer("c", slow(3))
            .defer("d", slow(4))
    });
    let server = TestServer::start(app).await;
    let started = Instant::now();
    let mut wire = Wire::get(&server, "/four", "", "identity").await;
    let text = wire.until(|_, done| done).await;
    let took = started.elapsed();
    for v in 1..=4 {
        assert!(text.contains(&format!(">{v}</i></template>")), "{text}");
    }
    // Sequentially: 1.6 s.
    assert!(took < Duration::from_millis(1300), "{took:?}");
}

#[tokio::test]
async fn htmx_gets_out_of_band_swaps_and_no_script() {
    let gate = Arc::new(Notify::new());
    gate.notify_one();
    let client = TestClient::new(page_app(gate.clone(), 0));
    let res = client.htmx(Method::Get, "/stats").send().await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(res.header("vary").unwrap().contains("HX-Request"));
    let text = res.text();
    let (shell, rest) = text.split_once("</html>").unwrap();
    assert!(shell.contains("Loading…"));
    assert!(
        !rest.contains("<template") && !rest.contains("<script>"),
        "{rest}"
    );
    assert!(
        rest.contains("<section id=\"stats\" hx-swap-oob=\"true\">3 tasks</section>\n"),
        "{rest}"
    );
    // Escaped, and marked on its root.
    assert!(
        rest.contains("<ul id=\"feed\" hx-swap-oob=\"true\"><li>&lt;script&gt;alert(1)&lt;&#x2f;script&gt;</li><li>b &amp; c</li></ul>"),
        "{rest}"
    );
    assert!(!text.contains("<script>alert"), "{text}");

    // A history restore is a plain load.
    gate.notify_one();
    let res = client
        .htmx(Method::Get, "/stats")
        .header("HX-History-Restore-Request", "true")
        .send()
        .await;
    assert!(res.text().contains("<template id=\"suspense-stats\""));
}

#[tokio::test]
async fn the_script_carries_the_csp_nonce_and_blocks_render_in_the_request_scopes() {
    let mut app = App::new();
    app.add_middleware(SecurityHeadersMiddleware::new().nonce_csp());
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("suspense-test-secret-0123456789ab")).unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    app.templates(templates());
    app.route("/child", |_req: Request| async {
        Suspense::new("child.html", context! { title => "T" }).defer("stats", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            "<b>7</b>"
        })
    });
    let server = TestServer::start(app).await;
    let mut wire = Wire::get(&server, "/child", "", "identity").await;
    let text = wire.until(|_, done| done).await;
    let csp = wire
        .head
        .lines()
        .find_map(|l| l.strip_prefix("content-security-policy: "))
        .expect("a CSP")
        .to_owned();
    let (shell, rest) = text.split_once("</html>").unwrap();
    assert!(shell.contains("<p id=\"stats\">…</p>"), "{shell}");
    // Every block whose own text reads `stats`, each sent once, with the script's nonce.
    let nonces: Vec<&str> = rest
        .split("<script nonce=\"")
        .skip(1)
        .map(|s| &s[..s.find('"').unwrap()])
        .collect();
    assert_eq!(nonces.len(), 3, "{rest}");
    for nonce in &nonces {
        assert!(csp.contains(&format!("'nonce-{nonce}'")), "{csp} / {nonce}");
    }
    assert!(
        rest.contains(
            "data-target=\"stats\"><p id=\"stats\">&lt;b&gt;7&lt;&#x2f;b&gt;</p></template>"
        ),
        "{rest}"
    );
    // `content` holds the blocks that read `stats`, but does not read it itself.
    assert!(!rest.contains("suspense-content"), "{rest}");
    // The request's path and the per-request functions work in the stream.
    assert!(
        rest.contains("<i id=\"path\">&#x2f;child &lt;b&gt;7&lt;&#x2f;b&gt;</i>"),
        "{rest}"
    );
    let tok = rest.split("<b id=\"tok\">").nth(1).unwrap();
    let (token, nonce) = tok[..tok.find("</b>").unwrap()].split_once('|').unwrap();
    assert!(token.len() > 10, "{tok}");
    assert_eq!(nonce.replace("&#x2f;", "/"), nonces[0]);
}

#[tokio::test]
async fn failures_are_logged_and_the_response_ends_cleanly() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut app = App::new();
    app.templates(templates());
    app.route("/stats", |_req: Request| async {
        Suspense::new("page.html", context! { title => "Stats" })
            .try_defer("stats", async {
                Err::<u32, _>(std::io::Error::other("the database is down"))
            })
            .defer("feed", async {
                tokio::task::yield_now().await;
                if true {
                    panic!("the feed panicked");
                }
                vec!["never"]
            })
    });
    let client = TestClient::new(app);
    let res = client.get("/stats").await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text();
    let rest = text.split_once("</html>").unwrap().1;
    assert!(
        rest.contains("<section id=\"stats\">Stats unavailable</section>"),
        "{rest}"
    );
    assert!(
        rest.contains("<ul id=\"feed\"><li>Feed unavailable</li></ul>"),
        "{rest}"
    );
    assert!(
        !text.contains("database") && !text.contains("panicked"),
        "{text}"
    );
    let logged = log.text();
    assert!(logged.contains("the database is down"), "{logged}");
    assert!(logged.contains("key=stats"), "{logged}");
    assert!(logged.contains("key=feed"), "{logged}");
}

#[tokio::test]
async fn shutdown_ends_the_response_mid_stream() {
    let gate = Arc::new(Notify::new()); // never opened
    let mut server = TestServer::start(page_app(gate, 0)).await;
    let mut wire = Wire::get(&server, "/stats", "", "identity").await;
    let text = wire.until(|t, _| t.contains("</html>")).await;
    assert!(text.contains("Loading…"));
    server.stop();
    let text = wire.until(|_, done| done).await;
    assert!(!text.contains("3 tasks"));
    tokio::time::timeout(Duration::from_secs(5), &mut server.handle)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn named_blocks_and_targets() {
    let mut app = App::new();
    app.templates(templates());
    // `panel` reads `n` through an include: found only when named.
    app.route("/named", |_req: Request| async {
        Suspense::new("partial.html", context! {})
            .defer("n", async { 5 })
            .defer_block("n", "panel")
            .target("panel", "#side")
    });
    app.route("/detected", |_req: Request| async {
        Suspense::new("partial.html", context! {}).defer("n", async { 5 })
    });
    app.route("/unknown", |_req: Request| async {
        Suspense::new("partial.html", context! {})
            .defer("n", async { 5 })
            .defer_block("n", "nope")
    });
    app.route("/htmx-block", |_req: Request| async {
        Suspense::new("page.html", context! { title => "Stats" })
            .htmx_block("stats")
            .defer("stats", async {
                context! { count => 1 }
            })
    });
    let client = TestClient::new(app);

    let text = client.get("/named").await.text();
    assert!(
        text.starts_with("<div id=\"panel\">none</div><template id=\"suspense-side\" data-target=\"side\"><div id=\"panel\">5</div></template>"),
        "{text}"
    );
    let text = client.htmx(Method::Get, "/named").send().await.text();
    assert!(
        text.ends_with(
            "<div id=\"side\" hx-swap-oob=\"innerHTML\"><div id=\"panel\">5</div></div>\n"
        ),
        "{text}"
    );

    assert_eq!(
        client.get("/detected").await.text(),
        "<div id=\"panel\">none</div>"
    );

    let res = client.get("/unknown").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);

    let text = client.htmx(Method::Get, "/htmx-block").send().await.text();
    assert_eq!(
        text,
        "<section id=\"stats\">Loading…</section>\
         <section id=\"stats\" hx-swap-oob=\"true\">1 tasks</section>\n"
    );
}
