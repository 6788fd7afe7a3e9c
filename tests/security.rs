//! The rest of the security middleware: security headers and CSP nonces, CORS, allowed
//! hosts, flash messages and the login rate limit.

mod common;

use std::time::Duration;

use chirp::http::TrustedProxies;
use chirp::middleware::allowed_hosts::AllowedHostsMiddleware;
use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
use chirp::middleware::cors::{CorsConfig, CorsMiddleware};
use chirp::middleware::security_headers::{csp_nonce, SecurityHeadersMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::flash::{flash, flash_with, take_flashes};
use chirp::sessions::{ManualClock, SessionConfig};
use chirp::testing::TestClient;
use chirp::{App, Method, Request, Response, StatusCode};
use common::TestServer;

#[tokio::test]
async fn security_headers_have_safe_defaults_and_never_override() {
    let mut app = App::new();
    app.add_middleware(
        SecurityHeadersMiddleware::new()
            .hsts(Duration::from_secs(31_536_000), true)
            .content_security_policy("default-src 'self'; script-src 'nonce-{nonce}'")
            .unwrap(),
    );
    app.route("/", |_req: Request| async {
        Response::html(format!(
            "<script nonce=\"{}\"></script>",
            csp_nonce().unwrap()
        ))
    });
    app.route("/framed", |_req: Request| async {
        Response::text("ok").with_header("x-frame-options", "SAMEORIGIN")
    });
    let client = TestClient::new(app);
    let res = client.get("/").await;
    assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(res.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        res.header("referrer-policy"),
        Some("strict-origin-when-cross-origin")
    );
    assert_eq!(
        res.header("cross-origin-opener-policy"),
        Some("same-origin")
    );
    assert_eq!(
        res.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let csp = res.header("content-security-policy").unwrap().to_owned();
    let nonce = csp
        .strip_prefix("default-src 'self'; script-src 'nonce-")
        .unwrap()
        .strip_suffix('\'')
        .unwrap()
        .to_owned();
    assert_eq!(nonce.len(), 24, "16 random bytes, base64");
    assert_eq!(
        res.text(),
        format!("<script nonce=\"{nonce}\"></script>"),
        "the handler sees the same nonce"
    );
    let again = client.get("/").await;
    assert_ne!(
        again.header("content-security-policy").unwrap(),
        csp,
        "fresh per request"
    );
    assert_eq!(
        client.get("/framed").await.header("x-frame-options"),
        Some("SAMEORIGIN"),
        "the handler's own wins"
    );
    assert!(csp_nonce().is_err());
    assert!(SecurityHeadersMiddleware::new()
        .content_security_policy("a\nb")
        .is_err());
    let plain = TestClient::new({
        let mut app = App::new();
        app.add_middleware(SecurityHeadersMiddleware::new().frame_options(None));
        app.route("/", |_req: Request| async { "x" });
        app
    });
    let res = plain.get("/").await;
    assert_eq!(res.header("x-frame-options"), None);
    assert_eq!(res.header("strict-transport-security"), None);
    assert_eq!(res.header("content-security-policy"), None);
}

fn cors_app(config: CorsConfig) -> TestClient {
    let mut app = App::new();
    app.add_middleware(CorsMiddleware::new(config).unwrap());
    app.route_with("/api", &[Method::Get, Method::Put], |_req: Request| async {
        Response::text("data").with_header("x-total", "3")
    });
    TestClient::new(app)
}

#[tokio::test]
async fn cors_preflights_and_responses() {
    let client = cors_app(
        CorsConfig::new()
            .allow_origin("https://app.example")
            .allow_methods(&[Method::Get, Method::Put])
            .allow_headers(&["content-type", "x-csrf-token"])
            .expose_headers(&["x-total"])
            .allow_credentials(true),
    );
    let pre = client
        .request(Method::Options, "/api")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PUT")
        .header(
            "access-control-request-headers",
            "Content-Type, X-CSRF-Token",
        )
        .send()
        .await;
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(pre.header("access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        pre.header("access-control-allow-headers"),
        Some("content-type, x-csrf-token")
    );
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(pre.header("access-control-max-age"), Some("600"));
    assert!(pre.header("vary").unwrap().contains("origin"));
    for (origin, method, headers) in [
        ("https://evil.example", "PUT", ""),
        ("https://app.example", "DELETE", ""),
        ("https://app.example", "PUT", "x-secret"),
    ] {
        let mut req = client
            .request(Method::Options, "/api")
            .header("origin", origin)
            .header("access-control-request-method", method);
        if !headers.is_empty() {
            req = req.header("access-control-request-headers", headers);
        }
        let res = req.send().await;
        assert_eq!(
            res.status(),
            StatusCode::FORBIDDEN,
            "{origin} {method} {headers}"
        );
        assert_eq!(res.header("access-control-allow-origin"), None);
    }
    let res = client
        .request(Method::Get, "/api")
        .header("origin", "https://app.example")
        .send()
        .await;
    assert_eq!(res.text(), "data");
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(res.header("access-control-expose-headers"), Some("x-total"));
    assert_eq!(res.header("vary"), Some("origin"));
    let res = client
        .request(Method::Get, "/api")
        .header("origin", "https://evil.example")
        .send()
        .await;
    assert_eq!(
        res.text(),
        "data",
        "served, but without CORS headers the browser withholds it"
    );
    assert_eq!(res.header("access-control-allow-origin"), None);
    assert_eq!(res.header("access-control-allow-credentials"), None);

    let any = cors_app(CorsConfig::new().allow_origin("*"));
    let res = any
        .request(Method::Get, "/api")
        .header("origin", "https://whoever.example")
        .send()
        .await;
    assert_eq!(res.header("access-control-allow-origin"), Some("*"));
    assert!(
        CorsMiddleware::new(CorsConfig::new().allow_origin("*").allow_credentials(true)).is_err()
    );
    assert!(CorsMiddleware::new(CorsConfig::new().allow_origin("app.example")).is_err());
}

#[tokio::test]
async fn only_allowed_hosts_are_served() {
    let mut app = App::new();
    app.add_middleware(AllowedHostsMiddleware::new(["example.com", ".example.org"]).unwrap());
    app.route("/", |_req: Request| async { "hello" });
    let server = TestServer::start(app).await;
    for (host, status) in [
        ("example.com", 200),
        ("example.com:8080", 200),
        ("www.example.org", 200),
        ("evil.test", 400),
        ("example.com.evil.test", 400),
    ] {
        let mut conn = server.connect().await;
        conn.send(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"))
            .await;
        assert_eq!(conn.response().await.status, status, "{host}");
    }
    // The absolute-form authority counts as the host.
    let mut conn = server.connect().await;
    conn.send("GET http://evil.test/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.status, 400);
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(
        conn.response().await.status,
        400,
        "HTTP/1.0 without Host is refused by default"
    );

    let mut app = App::new();
    app.add_middleware(
        AllowedHostsMiddleware::new(["example.com"])
            .unwrap()
            .allow_missing_host(true),
    );
    app.route("/", |_req: Request| async { "hello" });
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.0\r\n\r\n").await;
    assert_eq!(conn.response().await.status, 200);
}

#[tokio::test]
async fn flashes_are_shown_once() {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("flash-test-secret-0123456789abcdef")).unwrap(),
    );
    app.post("/save", |_req: Request| async {
        flash("Note saved")?;
        flash_with("error", "Title was empty")?;
        Ok::<_, chirp::Error>(Response::see_other("/"))
    });
    app.route("/", |_req: Request| async {
        let shown: Vec<String> = take_flashes()?
            .into_iter()
            .map(|f| format!("{}: {}", f.category, f.message))
            .collect();
        Ok::<_, chirp::Error>(shown.join("; "))
    });
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.text(), "");
    assert_eq!(
        client.post("/save", "").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        client.get("/").await.text(),
        "message: Note saved; error: Title was empty"
    );
    assert_eq!(client.get("/").await.text(), "", "gone once shown");
    assert!(flash("outside").is_err());
}

#[tokio::test]
async fn the_login_rate_limit() {
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let sink = seen.clone();
    chirp::security::audit::on_security_event(move |e| {
        sink.lock().unwrap().push(format!(
            "{} {}",
            e.name,
            e.client_ip.map(|i| i.to_string()).unwrap_or_default()
        ))
    });
    let clock = ManualClock::new(1_000_040); // 20 s into a 60 s window
    let mut app = App::new();
    app.add_middleware(
        AuthRateLimitMiddleware::new()
            .limit(3, Duration::from_secs(60))
            // Fixed windows, which this test is about: sliding ones became the default
            // (issue 24); tests/security_rate_limit.rs covers those.
            .sliding(false)
            .per_username("username")
            .trusted_proxies(TrustedProxies::new(["127.0.0.1"]).unwrap())
            .clock(clock.clone()),
    );
    app.post("/login", |_req: Request| async { "wrong password" });
    app.route("/", |_req: Request| async { "home" });
    let server = TestServer::start(app).await;
    let attempt = |xff: &str, user: &str| {
        let body = format!("username={user}&password=x");
        format!(
            "POST /login HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: {xff}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let mut conn = server.connect().await;
    for _ in 0..3 {
        conn.send(attempt("198.51.100.1", "ann")).await;
        assert_eq!(conn.response().await.status, 200);
    }
    conn.send(attempt("198.51.100.1", "bob")).await;
    let res = conn.response().await;
    assert_eq!(res.status, 429, "the 4th from one address in a minute");
    assert_eq!(
        res.header("retry-after"),
        Some("40"),
        "until the window ends (20 s into it)"
    );
    // Another address is counted apart; GETs are not counted at all.
    conn.send(attempt("198.51.100.2", "cid")).await;
    assert_eq!(conn.response().await.status, 200);
    for _ in 0..5 {
        conn.send("GET / HTTP/1.1\r\nHost: t\r\n\r\n").await;
        assert_eq!(conn.response().await.status, 200);
    }
    // Per username, over any number of addresses.
    for i in 3..5 {
        conn.send(attempt(&format!("198.51.100.{i}"), "ann")).await;
    }
    let mut last = 0;
    for _ in 3..5 {
        last = conn.response().await.status;
    }
    assert_eq!(last, 429, "ann's 5th attempt, from new addresses");
    // The next window starts afresh.
    clock.advance(40);
    conn.send(attempt("198.51.100.1", "dan")).await;
    assert_eq!(conn.response().await.status, 200);
    // Each refusal was a security event, with the forwarded client address.
    let events = seen.lock().unwrap();
    assert!(
        events.contains(&"auth.rate_limit.exceeded 198.51.100.1".to_owned()),
        "{events:?}"
    );
}
