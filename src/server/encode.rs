//! Responses to bytes: status line, headers, the server's framing headers, body. Appends to the
//! connection's write buffer; formats no strings.

use super::date::DateLines;
use crate::http::response::ContentType;
use crate::http::{Response, StatusCode};

/// What the connection will do after this response, as far as the `Connection` header goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionHeader {
    /// HTTP/1.1 keep-alive: no header.
    None,
    /// HTTP/1.0 keep-alive: `Connection: keep-alive`.
    KeepAlive,
    /// `Connection: close`.
    Close,
}

/// Headers that only the server writes: a handler's copy is dropped.
fn is_framing_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length")
        || name.eq_ignore_ascii_case("transfer-encoding")
        || name.eq_ignore_ascii_case("connection")
        || name.eq_ignore_ascii_case("date")
}

/// Writes `n` in decimal. Lengths under 10,000 (most bodies) are written as one
/// fixed-size copy, with no loop.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let digit = |d: u64| b'0' + (d % 10) as u8;
    match n {
        0..=9 => out.push(digit(n)),
        10..=99 => out.extend_from_slice(&[digit(n / 10), digit(n)]),
        100..=999 => out.extend_from_slice(&[digit(n / 100), digit(n / 10), digit(n)]),
        1000..=9999 => {
            out.extend_from_slice(&[digit(n / 1000), digit(n / 100), digit(n / 10), digit(n)])
        }
        _ => {
            let mut digits = [0u8; 20];
            let mut i = digits.len();
            let mut n = n;
            while n > 0 {
                i -= 1;
                digits[i] = digit(n);
                n /= 10;
            }
            out.extend_from_slice(&digits[i..]);
        }
    }
}

/// The status line, without its CRLF: every header line below starts with the CRLF that ends
/// the line before it, so the common lines are one copy each.
fn push_status_line(out: &mut Vec<u8>, status: StatusCode) {
    let line: &[u8] = match status.as_u16() {
        200 => b"HTTP/1.1 200 OK",
        204 => b"HTTP/1.1 204 No Content",
        302 => b"HTTP/1.1 302 Found",
        304 => b"HTTP/1.1 304 Not Modified",
        400 => b"HTTP/1.1 400 Bad Request",
        404 => b"HTTP/1.1 404 Not Found",
        500 => b"HTTP/1.1 500 Internal Server Error",
        _ => {
            out.extend_from_slice(b"HTTP/1.1 ");
            push_decimal(out, u64::from(status.as_u16()));
            out.push(b' ');
            out.extend_from_slice(status.reason().as_bytes());
            return;
        }
    };
    out.extend_from_slice(line);
}

/// The status line, the content type and the handler's headers (framing headers dropped).
#[inline(always)]
fn push_head_lines(out: &mut Vec<u8>, res: &Response, status: StatusCode) {
    match res.content_type_header() {
        // The most common head of all: one copy.
        Some(ContentType::Known(known)) if status == StatusCode::OK => {
            out.extend_from_slice(known.ok_head);
        }
        content_type => {
            push_status_line(out, status);
            match content_type {
                Some(ContentType::Known(known)) => out.extend_from_slice(known.line),
                Some(ContentType::Other(value)) => {
                    out.extend_from_slice(b"\r\ncontent-type: ");
                    out.extend_from_slice(value.as_bytes());
                }
                None => {}
            }
        }
    }
    for (name, value) in res.headers() {
        if is_framing_header(name) {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
}

/// How a streamed body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamFraming {
    /// `Content-Length` (the stream's length is known).
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1).
    Chunked,
    /// Neither: the body ends when the connection closes (HTTP/1.0, `Connection: close`).
    Close,
}

/// Appends the head of a response whose body is streamed after it (see `StreamFraming`).
/// Returns `false` when the response carried a refused header: a complete `500` was written
/// instead, and the body must not follow.
pub(crate) fn encode_streamed_head(
    out: &mut Vec<u8>,
    res: &Response,
    date: &DateLines,
    framing: StreamFraming,
    connection: ConnectionHeader,
) -> bool {
    if res.refused_header().is_some() {
        encode(out, res, date, false, connection);
        return false;
    }
    let status = res.status();
    push_head_lines(out, res, status);
    match framing {
        StreamFraming::Length(n) => {
            out.extend_from_slice(date.with_length_name());
            push_decimal(out, n);
        }
        StreamFraming::Chunked => {
            out.extend_from_slice(date.date_line());
            out.extend_from_slice(b"\r\ntransfer-encoding: chunked");
        }
        StreamFraming::Close => out.extend_from_slice(date.date_line()),
    }
    out.extend_from_slice(match connection {
        ConnectionHeader::None => b"\r\n\r\n",
        ConnectionHeader::KeepAlive => b"\r\nconnection: keep-alive\r\n\r\n",
        ConnectionHeader::Close => b"\r\nconnection: close\r\n\r\n",
    });
    true
}

/// Appends the head of a `101 Switching Protocols`: the handler's headers as they are,
/// `Connection` and `Upgrade` included (RFC 9110 §7.8: the 101 names the protocol switched
/// to, and `Connection: upgrade` says the header is hop-by-hop), no length (a 1xx has no
/// body: what follows it is the new protocol).
pub(crate) fn encode_switching(out: &mut Vec<u8>, res: &Response, date: &DateLines) {
    if res.refused_header().is_some() {
        return encode(out, res, date, false, ConnectionHeader::Close);
    }
    push_status_line(out, res.status());
    for (name, value) in res.headers() {
        if name.eq_ignore_ascii_case("content-length")
            || name.eq_ignore_ascii_case("transfer-encoding")
            || name.eq_ignore_ascii_case("date")
        {
            continue;
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
    }
    out.extend_from_slice(date.date_line());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Appends a chunk's size line (RFC 9112 §7.1: hex size, CRLF).
pub(crate) fn push_chunk_size(out: &mut Vec<u8>, n: usize) {
    let digits = format_args!("{n:x}\r\n");
    use std::io::Write;
    let _ = out.write_fmt(digits);
}

/// Appends `res` to `out`. `head_only`: a HEAD request (headers as for GET, no body).
/// A response carrying a refused header is replaced by a `500` (the refusal is logged).
pub(crate) fn encode(
    out: &mut Vec<u8>,
    res: &Response,
    date: &DateLines,
    head_only: bool,
    connection: ConnectionHeader,
) {
    if let Some(problem) = res.refused_header() {
        tracing::error!(problem, "response refused: answered 500 instead");
        let fallback =
            Response::text("Internal Server Error").with_status(StatusCode::INTERNAL_SERVER_ERROR);
        return encode(out, &fallback, date, head_only, connection);
    }
    let status = res.status();
    push_head_lines(out, res, status);
    let no_body = status.forbids_body();
    if no_body {
        out.extend_from_slice(date.date_line());
    } else {
        out.extend_from_slice(date.with_length_name());
        push_decimal(out, res.body().len() as u64);
    }
    out.extend_from_slice(match connection {
        ConnectionHeader::None => b"\r\n\r\n",
        ConnectionHeader::KeepAlive => b"\r\nconnection: keep-alive\r\n\r\n",
        ConnectionHeader::Close => b"\r\nconnection: close\r\n\r\n",
    });
    if !head_only && !no_body {
        out.extend_from_slice(res.body());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(res: &Response, head_only: bool, conn: ConnectionHeader) -> String {
        let mut out = Vec::new();
        let date = DateLines::new(b"Thu, 01 Jan 1970 00:00:00 GMT");
        encode(&mut out, res, &date, head_only, conn);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn encodes_a_text_response() {
        let s = encoded(&Response::text("Hello"), false, ConnectionHeader::None);
        assert_eq!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\ncontent-length: 5\r\n\r\nHello"
        );
    }

    /// The constructors' content types are written from pre-joined lines: the bytes must be
    /// the same as spelled out, with any status and next to a type set by hand.
    #[test]
    fn known_and_other_content_types() {
        let json = encoded(&Response::json(&[1]), false, ConnectionHeader::None);
        assert!(json.starts_with("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ndate: "));
        let html = Response::html("<p>").with_status(StatusCode::NOT_FOUND);
        assert!(encoded(&html, false, ConnectionHeader::None).starts_with(
            "HTTP/1.1 404 Not Found\r\ncontent-type: text/html; charset=utf-8\r\ndate: "
        ));
        let bytes = Response::bytes(&b"\x00"[..]).with_status(StatusCode::CREATED);
        assert!(encoded(&bytes, false, ConnectionHeader::None)
            .starts_with("HTTP/1.1 201 Created\r\ncontent-type: application/octet-stream\r\n"));
        let custom = Response::text("x").with_content_type("text/csv");
        let s = encoded(&custom, false, ConnectionHeader::None);
        assert!(
            s.starts_with("HTTP/1.1 200 OK\r\ncontent-type: text/csv\r\ndate: "),
            "{s}"
        );
        assert_eq!(s.matches("content-type").count(), 1);
    }

    #[test]
    fn head_keeps_the_length_and_drops_the_body() {
        let s = encoded(&Response::text("Hello"), true, ConnectionHeader::Close);
        assert!(s.contains("content-length: 5\r\n"));
        assert!(s.ends_with("connection: close\r\n\r\n"));
    }

    #[test]
    fn handler_framing_headers_are_dropped() {
        let res = Response::text("abc")
            .with_header("Content-Length", "999")
            .with_header("x-a", "1");
        let s = encoded(&res, false, ConnectionHeader::None);
        assert!(s.contains("content-length: 3\r\n"));
        assert!(!s.contains("999"));
        assert!(s.contains("x-a: 1\r\n"));
    }

    #[test]
    fn no_length_for_204_and_rare_statuses_are_spelled_out() {
        let s = encoded(
            &Response::empty(StatusCode::NO_CONTENT),
            false,
            ConnectionHeader::None,
        );
        assert!(!s.contains("content-length"));
        assert!(s.contains("\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"));
        let s = encoded(
            &Response::empty(StatusCode::IM_A_TEAPOT),
            false,
            ConnectionHeader::KeepAlive,
        );
        assert!(s.starts_with("HTTP/1.1 418 I'm a teapot\r\n"));
        assert!(s.contains("connection: keep-alive\r\n"));
    }

    #[test]
    fn a_switch_keeps_the_handlers_connection_and_upgrade_headers() {
        let res = Response::upgrade("websocket", |_io| async {}).with_header("x-a", "1");
        let mut out = Vec::new();
        let date = DateLines::new(b"Thu, 01 Jan 1970 00:00:00 GMT");
        encode_switching(&mut out, &res, &date);
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\nx-a: 1\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn refused_headers_become_500() {
        let res = Response::text("x").with_header("x-a", "a\r\nb");
        assert!(encoded(&res, false, ConnectionHeader::None).starts_with("HTTP/1.1 500 "));
    }

    #[test]
    fn decimals() {
        for n in [
            0u64,
            7,
            9,
            10,
            42,
            99,
            100,
            555,
            999,
            1000,
            4096,
            9999,
            10_000,
            12345,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
