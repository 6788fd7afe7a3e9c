//! Request heads: bytes to a parsed head, with every check that keeps a hostile client from
//! confusing the framing (request smuggling) or exhausting the server.
//!
//! httparse does the tokenizing without allocating; this module decides what the head means:
//! the method, the target, how the body is framed, whether the connection stays open.

use std::mem::MaybeUninit;

use crate::http::{HeadersBuilder, Method, StatusCode, Version, MAX_HEAD};
use crate::server::ServerConfig;

/// Hard cap on header lines per request (the stack array httparse fills).
/// [`ServerConfig::max_headers`] may lower it, not raise it.
pub(crate) const MAX_HEADERS_CAP: usize = 128;

/// How the request body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body.
    None,
    /// `Content-Length: n`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A complete, valid request head.
pub(crate) struct Head {
    /// Bytes the head takes in the buffer, final CRLF included.
    pub len: usize,
    pub method: Method,
    pub version: Version,
    /// The origin-form target (`/path?query`) as a range of the buffer.
    pub target: (usize, usize),
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// Why a head is refused: the status to answer with and a short reason. The connection is
/// always closed after a refusal, since the framing of what follows cannot be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub status: StatusCode,
    pub reason: &'static str,
}

const fn reject(status: StatusCode, reason: &'static str) -> Reject {
    Reject { status, reason }
}

/// Parses the head at the start of `buf`, recording its headers' offsets in `headers` (the
/// connection's builder, reused: a head then is small to move). `Ok(None)`: incomplete, read
/// more (the size limits are already checked against what is there).
pub(crate) fn parse_head(
    buf: &[u8],
    config: &ServerConfig,
    headers: &mut HeadersBuilder,
) -> Result<Option<Head>, Reject> {
    // Header offsets are 16-bit: parse at most MAX_HEAD bytes (max_head_size is capped there).
    let buf = &buf[..buf.len().min(MAX_HEAD)];
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS_CAP];
    let max_headers = config.max_headers.min(MAX_HEADERS_CAP);
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut slots[..max_headers]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return check_partial(buf, config).map(|()| None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "too many header lines",
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(reject(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "only HTTP/1.0 and HTTP/1.1 are served",
            ))
        }
        Err(_) => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "malformed request line or header",
            ))
        }
    };
    if len > config.max_head_size.min(MAX_HEAD) {
        return Err(reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    let base = buf.as_ptr() as usize;
    let offset = |s: &[u8]| s.as_ptr() as usize - base;

    let method = req
        .method
        .and_then(Method::parse)
        .ok_or(reject(StatusCode::NOT_IMPLEMENTED, "unknown method"))?;
    let version = if req.version == Some(0) {
        Version::Http10
    } else {
        Version::Http11
    };
    let path = req.path.unwrap_or("/");
    if path.len() > config.max_uri_len {
        return Err(reject(StatusCode::URI_TOO_LONG, "request target too long"));
    }
    let target = origin_form(path).ok_or(reject(
        StatusCode::BAD_REQUEST,
        "request target must be a path",
    ))?;
    let target_start = offset(target.as_bytes());

    headers.clear();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut hosts = 0;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // httparse has already refused NUL, bare CR and other control bytes in values (the
        // tests below hold it to that).
        let value_at = offset(value);
        headers.push(offset(name), (value_at, value_at + value.len()));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => hosts += 1,
            6 if name.eq_ignore_ascii_case(b"expect") => {
                if value.eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(reject(
                        StatusCode::EXPECTATION_FAILED,
                        "only 'Expect: 100-continue' is understood",
                    ));
                }
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    conn_close |= token.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if content_length.is_some() {
                    return Err(reject(
                        StatusCode::BAD_REQUEST,
                        "more than one Content-Length",
                    ));
                }
                content_length = Some(parse_content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                if transfer_encoding {
                    return Err(reject(
                        StatusCode::BAD_REQUEST,
                        "more than one Transfer-Encoding",
                    ));
                }
                transfer_encoding = true;
                if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(reject(
                        StatusCode::NOT_IMPLEMENTED,
                        "only the chunked transfer coding is supported",
                    ));
                }
                chunked = true;
            }
            _ => {}
        }
    }
    if version == Version::Http11 && hosts != 1 {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs exactly one Host header",
        ));
    }
    let framing = match (content_length, chunked) {
        (Some(_), true) => {
            return Err(reject(
                StatusCode::BAD_REQUEST,
                "both Content-Length and Transfer-Encoding (request smuggling)",
            ))
        }
        (Some(0), false) | (None, false) => Framing::None,
        (Some(n), false) => {
            if n > config.max_body_size {
                return Err(reject(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                ));
            }
            Framing::Length(n)
        }
        (None, true) => Framing::Chunked,
    };
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    Ok(Some(Head {
        len,
        method,
        version,
        target: (target_start, target_start + target.len()),
        framing,
        keep_alive,
        expect_continue: expect_continue && framing != Framing::None && version == Version::Http11,
    }))
}

/// A strict Content-Length: ASCII digits only (no sign, no spaces inside, no list).
fn parse_content_length(value: &[u8]) -> Result<usize, Reject> {
    const BAD: Reject = reject(StatusCode::BAD_REQUEST, "Content-Length is not a number");
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD);
    }
    Ok(digits
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// The path-and-query part of a target: origin-form as is, absolute-form without its scheme
/// and authority, `*` (OPTIONS) as `*`.
fn origin_form(target: &str) -> Option<&str> {
    if target.starts_with('/') || target == "*" {
        return Some(target);
    }
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    Some(rest.find('/').map_or("/", |i| &rest[i..]))
}

/// For an incomplete head: is it already over a limit?
fn check_partial(buf: &[u8], config: &ServerConfig) -> Result<(), Reject> {
    // The target starts after the first space; while it has no end yet, its length so far counts.
    if let Some(sp) = buf.iter().position(|&b| b == b' ') {
        let rest = &buf[sp + 1..];
        let target_len = rest
            .iter()
            .position(|&b| b == b' ' || b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        if target_len > config.max_uri_len {
            return Err(reject(StatusCode::URI_TOO_LONG, "request target too long"));
        }
    }
    if buf.len() >= config.max_head_size.min(MAX_HEAD) {
        return Err(reject(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request head too large",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn parse(raw: &str) -> Result<Option<Head>, Reject> {
        parse_head(
            raw.as_bytes(),
            &ServerConfig::default(),
            &mut HeadersBuilder::new(),
        )
    }

    fn status(raw: &str) -> StatusCode {
        parse(raw).err().expect("should be refused").status
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(h.len, raw.len());
        assert_eq!(h.method, Method::Get);
        assert_eq!(&raw[h.target.0..h.target.1], "/a?b=1");
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
    }

    /// The recorded headers read back exactly: names up to their colon, values trimmed, an
    /// empty value empty, a colon inside a value kept.
    #[test]
    fn recorded_headers_read_back() {
        let raw = "GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nX-Empty:\r\nX-Blank: \t \r\n\
                   x-e:  a: b \r\nX-Long-Name-Here:v\r\n\r\n";
        let mut builder = HeadersBuilder::new();
        let head = parse_head(raw.as_bytes(), &ServerConfig::default(), &mut builder)
            .unwrap()
            .unwrap();
        let headers = builder.take(Bytes::copy_from_slice(&raw.as_bytes()[..head.len]));
        let all: Vec<(&str, &[u8])> = headers.iter().collect();
        assert_eq!(
            all,
            [
                ("Host", &b"127.0.0.1:8000"[..]),
                ("X-Empty", b""),
                ("X-Blank", b""),
                ("x-e", b"a: b"),
                ("X-Long-Name-Here", b"v"),
            ]
        );
        assert_eq!(headers.get("x-empty"), Some(""));
        assert_eq!(headers.get("X-E"), Some("a: b"));
        assert_eq!(headers.get("x-long-name"), None, "a prefix is not the name");
        assert_eq!(headers.get("x-long-name-here:"), None);
        // No space is allowed between a name and its colon (RFC 9112, section 5.1).
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost : x\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn partial_heads_ask_for_more() {
        assert!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none());
        assert!(parse("GE").unwrap().is_none());
    }

    #[test]
    fn framing_and_keep_alive() {
        let h = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        let h = parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
    }

    #[test]
    fn smuggling_is_refused() {
        let both =
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(both), StatusCode::BAD_REQUEST);
        let twice = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(status(twice), StatusCode::BAD_REQUEST);
        for bad in ["+5", "5,5", "0x5", "", "5 5", "-1", "99999999999999999999"] {
            let raw = format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {bad}\r\n\r\n");
            assert_eq!(status(&raw), StatusCode::BAD_REQUEST, "{bad:?}");
        }
        let gzip = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        assert_eq!(status(gzip), StatusCode::NOT_IMPLEMENTED);
        let te_twice = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(status(te_twice), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn bad_bytes_are_refused() {
        for value in ["a\x01b", "a\x7fb", "a\rb", "a\0b", "\x1b[31m"] {
            let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {value}\r\n\r\n");
            assert_eq!(status(&raw), StatusCode::BAD_REQUEST, "{value:?}");
        }
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX: a\0b\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHo st: x\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status("GET  / HTTP/1.1\r\nHost: x\r\n\r\n"),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), StatusCode::BAD_REQUEST); // no Host
        assert_eq!(
            status("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"),
            StatusCode::NOT_IMPLEMENTED
        );
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n"),
            StatusCode::EXPECTATION_FAILED
        );
    }

    #[test]
    fn limits() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
        assert_eq!(status(&long_target), StatusCode::URI_TOO_LONG);
        let partial_long_target = format!("GET /{}", "a".repeat(9000));
        assert_eq!(status(&partial_long_target), StatusCode::URI_TOO_LONG);
        let big_head = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n", "a".repeat(17000));
        assert_eq!(
            status(&big_head),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n");
        assert_eq!(status(&many), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        let huge_body = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3000000\r\n\r\n";
        assert_eq!(status(huge_body), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn absolute_form_is_reduced_to_the_path() {
        let raw = "GET http://example.com/a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(&raw[h.target.0..h.target.1], "/a/b?c");
    }
}
