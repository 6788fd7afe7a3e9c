//! CSRF against the attacks of issue 24, over real sockets: BREACH on a token that was the
//! same in every compressed response (finding 9), and the token-client exemption that also
//! trusted the Basic credentials a browser re-sends by itself (minor finding).

mod common;

use chirp::middleware::compression::CompressionMiddleware;
use chirp::middleware::csrf::{csrf_field, get_csrf_token, CsrfConfig, CsrfMiddleware};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::SessionConfig;
use chirp::{App, Method, Request, Response};
use common::{RawConn, TestServer};

fn app() -> App {
    let mut app = App::new();
    app.add_middleware(CompressionMiddleware::new());
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new(
            "csrf-socket-test-secret-0123456789abcdef",
        ))
        .unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    // A page that reflects a parameter beside the token: BREACH's setting.
    app.get("/form", |req: Request| async move {
        let q = req.query_param("q").unwrap_or_default();
        Ok::<_, chirp::Error>(Response::html(format!(
            "<form method=post action=/save>{}<p>{}</p></form>",
            csrf_field()?,
            chirp::html::escape_html(&q)
        )))
    });
    app.get("/token", |_req: Request| async { get_csrf_token() });
    app.route_with("/save", &[Method::Post], |_req: Request| async { "saved" });
    app
}

/// The value of the page's hidden `_csrf_token` field.
fn field_value(page: &str) -> String {
    let start = page
        .find(r#"name="_csrf_token" value=""#)
        .expect("a CSRF field")
        + r#"name="_csrf_token" value=""#.len();
    page[start..start + page[start..].find('"').unwrap()].to_owned()
}

fn post(cookie: Option<&str>, extra: &str, body: &str) -> String {
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
    format!(
        "POST /save HTTP/1.1\r\nHost: t\r\n{cookie}{extra}\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn status(conn: &mut RawConn, raw: String) -> u16 {
    conn.send(raw).await;
    conn.response().await.status
}

/// Finding 9: every response carried the same token, so a reflected parameter beside it let
/// compression tell a right guess from a wrong one (BREACH). Each response now carries the
/// token masked with a fresh random pad; every masking verifies, and nothing else does.
#[tokio::test]
async fn the_token_differs_in_every_response_and_each_verifies() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    conn.send(common::get("/form?q=x")).await;
    let first = conn.response().await;
    let cookie = first.cookie_pair();
    let a = field_value(&first.text());
    conn.send(format!(
        "GET /form?q=x HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
    ))
    .await;
    let b = field_value(&conn.response().await.text());
    conn.send(format!(
        "GET /token HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
    ))
    .await;
    let c = conn.response().await.text();
    assert_ne!(a, b, "two pages, two different tokens");
    assert_ne!(b, c);
    for token in [&a, &b, &c] {
        let body = format!("_csrf_token={token}");
        assert_eq!(status(&mut conn, post(Some(&cookie), "", &body)).await, 200);
        let header = format!("X-CSRF-Token: {token}\r\n");
        assert_eq!(
            status(&mut conn, post(Some(&cookie), &header, "")).await,
            200
        );
    }
    // Forgeries: another pad over garbage, a flipped byte, the wrong length, not hex at all.
    let mut flipped = a.clone().into_bytes();
    flipped[100] = if flipped[100] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let garbage = "ab".repeat(64);
    let unmasked_garbage = "cd".repeat(32);
    for forged in [
        flipped.as_str(),
        garbage.as_str(),
        unmasked_garbage.as_str(),
        &a[..126],
        &"zz".repeat(64),
        "",
    ] {
        let body = format!("_csrf_token={forged}");
        assert_eq!(
            status(&mut conn, post(Some(&cookie), "", &body)).await,
            403,
            "{forged:?}"
        );
    }
}

/// Minor finding: `Authorization` without a cookie was exempt from the check, as a token
/// client's request; but a browser re-sends Basic (and Digest, NTLM, Negotiate) credentials by
/// itself, so a forged form post to a Basic-protected app carried them. Checked now.
#[tokio::test]
async fn browser_sent_basic_credentials_are_not_a_token_client() {
    let server = TestServer::start(app()).await;
    let mut conn = server.connect().await;
    for scheme in [
        "Basic ZGVtbzpkZW1v",
        "basic ZGVtbzpkZW1v",
        "Digest username=\"demo\"",
        "Negotiate abc",
        "NTLM abc",
    ] {
        let header = format!("Authorization: {scheme}\r\n");
        assert_eq!(
            status(&mut conn, post(None, &header, "x=1")).await,
            403,
            "{scheme}"
        );
    }
    // A bearer token is still a token client: nothing a browser attaches by itself.
    let header = "Authorization: Bearer abc\r\n";
    assert_eq!(status(&mut conn, post(None, header, "x=1")).await, 200);
}
