//! The head parser's decision on a table of edge cases, each with the rule it follows. A row is
//! a whole head; the parser either accepts it (with the normalised target and host it must
//! yield) or refuses it with a status. New cases go here: the table is the parser's contract.

use super::config::ServerConfig;
use super::parse::{parse_head, Framing};
use crate::http::{HeadersBuilder, Method, Version};

enum Want {
    /// Accepted: the normalised target, the host, the framing.
    Ok(&'static str, Option<&'static str>, Framing),
    /// Refused with this status.
    Refused(u16),
}
use Want::{Ok as Accept, Refused};

const NONE: Framing = Framing::None;

fn cases() -> Vec<(&'static [u8], Want, &'static str)> {
    vec![
        // Request line and target.
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/", Some("x"), NONE), "9112 3"),
        (b"GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/a?b", Some("x"), NONE), "9112 3.2.1 origin-form"),
        (b"GET http://x HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/", Some("x"), NONE), "9112 3.2.2 absolute-form, empty path is /"),
        (b"GET http://127.0.0.1:1234 HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/", Some("127.0.0.1:1234"), NONE), "9112 3.2.2"),
        (b"GET http://h?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/?x=1", Some("h"), NONE), "9112 3.2.2 query kept"),
        (b"GET https://a.b HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/", Some("a.b"), NONE), "9112 3.2.2"),
        (b"GET HTTP://A.B/c/ HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/c", Some("A.B"), NONE), "3986 3.1 scheme is case-insensitive"),
        (b"GET http://[::1]:8080//x?y HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/x?y", Some("[::1]:8080"), NONE), "9112 3.2.2, 3986 3.2.2 IP literal"),
        (b"GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9110 4.2.1 http URI needs a host"),
        (b"GET http://u@h/ HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9110 4.2.4 userinfo"),
        (b"GET ftp://h/ HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 3.2.2 http(s) only"),
        (b"GET x HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 3.2"),
        (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", Accept("*", Some("x"), NONE), "9112 3.2.4 asterisk-form"),
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 3.2.4 asterisk-form is OPTIONS only"),
        (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", Refused(501), "9112 3.2.3 authority-form: no tunnels"),
        (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "3986 2: raw non-ASCII"),
        (b"GET /a#f HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 3.2: no fragment"),
        (b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "3986 2.1 pct-encoded"),
        (b"GET /a?q=100% HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/a?q=100%", Some("x"), NONE), "queries are not decoded by the server"),
        (b"GET //dashboard HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/dashboard", Some("x"), NONE), "3986 6.2.2 normalised once"),
        (b"GET /a/../b/./c/ HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/b/c", Some("x"), NONE), "3986 5.2.4 dot segments"),
        (b"GET /%2e%2e/%64 HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/d", Some("x"), NONE), "3986 6.2.2.2 unreserved decoded"),
        (b"GET /a%2fb HTTP/1.1\r\nHost: x\r\n\r\n", Accept("/a%2Fb", Some("x"), NONE), "3986 6.2.2.1 an encoded / is data"),
        (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 3 single SP"),
        (b"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", Refused(400), "9112 3"),
        (b"GET / HTTP/1.1\nHost: x\n\n", Accept("/", Some("x"), NONE), "9112 2.2 a bare LF may end a line"),
        // Methods.
        (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n", Refused(501), "9110 9.1 undeclared method"),
        (b"get / HTTP/1.1\r\nHost: x\r\n\r\n", Refused(501), "9110 9.1 case-sensitive"),
        (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", Refused(400), "9110 9.1 method is a token"),
        // Versions.
        (b"GET / HTTP/1.0\r\n\r\n", Accept("/", None, NONE), "9112 3.2 no Host needed in 1.0"),
        (b"GET / FOO/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 2.3 HTTP-version syntax"),
        (b"GET / HTTP/1.-226088\r\nHost: x\r\n\r\n", Refused(400), "9112 2.3"),
        (b"GET / HTTP/\xf3..1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 2.3"),
        (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", Refused(400), "9112 2.3 one digit each"),
        (b"GET / http/1.1\r\nHost: x\r\n\r\n", Refused(400), "9112 2.3 HTTP-name is case-sensitive"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", Refused(505), "9110 15.6.6 major version"),
        (b"GET / HTTP/0.9\r\nHost: x\r\n\r\n", Refused(505), "9110 15.6.6"),
        (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", Accept("/", Some("x"), NONE), "9110 2.5 a later minor is served as 1.1"),
        // Host.
        (b"GET / HTTP/1.1\r\n\r\n", Refused(400), "9112 3.2 Host required in 1.1"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", Refused(400), "9112 3.2 more than one Host"),
        (b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", Refused(400), "9112 3.2 any version"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Refused(400), "9110 7.2 uri-host"),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", Refused(400), "9110 7.2"),
        (b"GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", Refused(400), "9110 7.2 port is digits"),
        (b"GET / HTTP/1.1\r\nHost: u@h\r\n\r\n", Refused(400), "9110 4.2.4"),
        (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", Accept("/", None, NONE), "9110 7.2 empty Host is allowed"),
        (b"GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", Accept("/", Some("a"), NONE), "9112 3.2.2 authority wins over Host"),
        // Framing.
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", Accept("/", Some("x"), Framing::Length(3)), "9112 6.2"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", Refused(400), "9112 6.3 item 5"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\n", Refused(400), "9112 6.3 item 5"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", Refused(400), "9110 8.6"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", Refused(400), "9112 6.3 item 3 (smuggling)"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", Accept("/", Some("x"), Framing::Chunked), "9112 7.1"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Refused(501), "9112 6.1 unknown coding"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Refused(501), "9112 6.3 item 4 chunked not last"),
        (b"GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n", Refused(400), "9112 6.1 TE in HTTP/1.0"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", Refused(400), "9112 5.1 no space before the colon"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", Refused(400), "9112 5.2 obs-fold"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", Refused(400), "9110 5.5 NUL"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", Refused(400), "9112 2.2 bare CR"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", Refused(417), "9110 10.1.1"),
    ]
}

#[test]
fn the_parser_follows_the_table() {
    let config = ServerConfig::default();
    let mut failures = Vec::new();
    for (raw, want, rule) in cases() {
        let mut buf = raw.to_vec();
        let got = parse_head(&mut buf, &config, &mut HeadersBuilder::new());
        let shown = String::from_utf8_lossy(raw);
        match (got, want) {
            (Ok(Some(head)), Accept(target, host, framing)) => {
                let t = head.target;
                let text =
                    |(a, b): (usize, usize)| String::from_utf8_lossy(&buf[a..b]).into_owned();
                let (got_target, got_host) = (text(t.range()), t.host_range().map(text));
                let got_host = got_host.filter(|h| !h.is_empty());
                if got_target != target || got_host.as_deref() != host || head.framing != framing {
                    failures.push(format!(
                        "{shown:?} ({rule}): got {got_target:?} {got_host:?} {:?}",
                        head.framing
                    ));
                }
            }
            (Err(r), Refused(status)) if r.status.as_u16() == status => {}
            (got, _) => failures.push(format!(
                "{shown:?} ({rule}): got {:?}",
                got.map(|h| h.map(|h| h.target))
                    .map_err(|r| (r.status.as_u16(), r.reason))
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A later minor version is served as HTTP/1.1; an extension method once declared is parsed.
#[test]
fn versions_and_declared_methods() {
    let config = ServerConfig::default();
    let mut buf = b"GET / HTTP/1.7\r\nHost: x\r\n\r\n".to_vec();
    let head = parse_head(&mut buf, &config, &mut HeadersBuilder::new())
        .unwrap()
        .unwrap();
    assert_eq!(head.version, Version::Http11);
    let purge = Method::other("PURGE").unwrap();
    let mut buf = b"PURGE /cache HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let head = parse_head(&mut buf, &config, &mut HeadersBuilder::new())
        .unwrap()
        .unwrap();
    assert_eq!(head.method, purge);
}
