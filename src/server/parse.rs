//! Request heads: bytes to a parsed head, with every check that keeps a hostile client from
//! confusing the framing (request smuggling) or exhausting the server.
//!
//! httparse does the tokenizing without allocating; this module decides what the head means:
//! the method, the target, how the body is framed, whether the connection stays open.

use std::mem::MaybeUninit;

use super::config::ServerConfig;
use crate::http::target::{check_host, normalize_in_place, scan_target};
use crate::http::{HeadersBuilder, Method, StatusCode, Target, Version, MAX_HEAD};

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
    /// Bytes the head takes in the buffer, final CRLF included (at most `MAX_HEAD`: a `u32`
    /// keeps `Head` small, and a connection's future holds one across its awaits).
    pub len: u32,
    pub method: Method,
    pub version: Version,
    /// The normalised origin-form target, as offsets into the buffer.
    pub target: Target,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// The client's `Accept` prefers JSON (how errors are rendered for it).
    pub prefers_json: bool,
    /// It has a `Range` or `If-None-Match` / `If-Modified-Since` header: the connection
    /// keeps them aside for the response (see `http::file::Conditionals`).
    pub conditional: bool,
    /// A `GET` HTTP/1.1 request asking to switch protocols (`Connection: upgrade` and an
    /// `Upgrade` header): one a handler may take over after a `101`.
    pub upgrade: bool,
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
///
/// The target is normalised in place (see [`crate::http::target`]): `buf` is the connection's
/// read buffer, and the bytes of the request line after the target's new end are left over.
pub(crate) fn parse_head(
    buf: &mut [u8],
    config: &ServerConfig,
    headers: &mut HeadersBuilder,
) -> Result<Option<Head>, Reject> {
    // Header offsets are 16-bit: parse at most MAX_HEAD bytes (max_head_size is capped there).
    let limit = buf.len().min(MAX_HEAD);
    let buf = &mut buf[..limit];
    let parsed = tokenize(buf, config, headers);
    match &parsed {
        Err(r) if r.status == StatusCode::HTTP_VERSION_NOT_SUPPORTED => {
            retry_as_http_1_1(buf, config, headers, *r)
        }
        _ => parsed,
    }
}

/// RFC 9110 §2.5: HTTP/1.2 and later minors are served as HTTP/1.1 (rare: kept off the
/// common path).
#[cold]
#[inline(never)]
fn retry_as_http_1_1(
    buf: &mut [u8],
    config: &ServerConfig,
    headers: &mut HeadersBuilder,
    refused: Reject,
) -> Result<Option<Head>, Reject> {
    match later_minor_version(buf) {
        Some(at) => {
            buf[at] = b'1';
            tokenize(buf, config, headers)
        }
        None => Err(refused),
    }
}

/// Where the request line's version is `HTTP/1.d` with a minor digit over 1: that digit's
/// offset.
fn later_minor_version(buf: &[u8]) -> Option<usize> {
    let line_end = buf.iter().position(|&b| b == b'\n')?;
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    match line.rsplit(|&b| b == b' ').next()? {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if (b'2'..=b'9').contains(minor) => {
            Some(line.len() - 1)
        }
        _ => None,
    }
}

/// Why httparse refused the version: RFC 9112 §2.3 `HTTP-version = "HTTP" "/" DIGIT "." DIGIT`.
/// A well-formed version with another major is `505`; anything else there is a syntax error.
fn version_reject(buf: &[u8]) -> Reject {
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = buf[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&buf[..line_end]);
    match line.rsplit(|&b| b == b' ').next() {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            reject(
                StatusCode::HTTP_VERSION_NOT_SUPPORTED,
                "only HTTP/1.0 and HTTP/1.1 are served",
            )
        }
        _ => reject(StatusCode::BAD_REQUEST, "malformed HTTP version"),
    }
}

/// httparse's tokenizing, the header checks, and the target made canonical in place.
#[inline(always)]
fn tokenize(
    buf: &mut [u8],
    config: &ServerConfig,
    headers: &mut HeadersBuilder,
) -> Result<Option<Head>, Reject> {
    let Some(mut head) = check_head(buf, config, headers)? else {
        return Ok(None);
    };
    head.target = resolve_target(buf, head.target, head.method)?;
    Ok(Some(head))
}

/// httparse's tokenizing and the header checks; the head's `target` is the raw target's
/// range (`path_end` = `end`) with the Host value's.
#[inline(always)]
fn check_head(
    buf: &[u8],
    config: &ServerConfig,
    headers: &mut HeadersBuilder,
) -> Result<Option<Head>, Reject> {
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
        Err(httparse::Error::Version) => return Err(version_reject(buf)),
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

    // RFC 9110 §9.1: any token is a method; those the app never declared are not implemented.
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
    let target_start = offset(path.as_bytes());

    headers.clear();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut conn_upgrade = false;
    let mut upgrade_header = false;
    let mut expect_continue = false;
    let mut prefers_json = false;
    let mut conditional = false;
    let mut host: Option<(usize, usize)> = None;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // httparse has already refused NUL, bare CR and other control bytes in values (the
        // tests below hold it to that).
        let value_at = offset(value);
        headers.push(offset(name), (value_at, value_at + value.len()));
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                // RFC 9112 §3.2: 400 for a request with more than one Host line (any version)
                // or an invalid Host value.
                if host.is_some() {
                    return Err(reject(StatusCode::BAD_REQUEST, "more than one Host header"));
                }
                if !headers.is_known_host(value) {
                    check_host(value).map_err(|why| reject(StatusCode::BAD_REQUEST, why))?;
                    headers.remember_host(value);
                }
                host = Some((value_at, value_at + value.len()));
            }
            6 if name.eq_ignore_ascii_case(b"accept") => {
                prefers_json = crate::http::problem::prefers_json(value);
            }
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
                    conn_upgrade |= token.eq_ignore_ascii_case(b"upgrade");
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
                if version == Version::Http10 {
                    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means faulty
                    // framing.
                    return Err(reject(
                        StatusCode::BAD_REQUEST,
                        "Transfer-Encoding in an HTTP/1.0 request",
                    ));
                }
                if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    return Err(reject(
                        StatusCode::NOT_IMPLEMENTED,
                        "only the chunked transfer coding is supported",
                    ));
                }
                chunked = true;
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => {
                upgrade_header = !value.trim_ascii().is_empty();
            }
            _ => conditional |= is_conditional(name),
        }
    }
    if version == Version::Http11 && host.is_none() {
        return Err(reject(
            StatusCode::BAD_REQUEST,
            "an HTTP/1.1 request needs a Host header",
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
        // The size limit depends on the route (see `Service::body_config`): the connection
        // checks it.
        (Some(n), false) => Framing::Length(n),
        (None, true) => Framing::Chunked,
    };
    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };
    Ok(Some(Head {
        // At most MAX_HEAD (64 KiB): httparse saw no more than that.
        len: len as u32,
        method,
        version,
        target: Target::new(
            target_start,
            target_start + path.len(),
            target_start + path.len(),
            Target::host_span(host),
        ),
        framing,
        keep_alive,
        expect_continue: expect_continue && framing != Framing::None && version == Version::Http11,
        prefers_json,
        conditional,
        // RFC 9110 §7.8: an HTTP/1.0 request's Upgrade is ignored; and only GET (no body to
        // read before the switch) is handed over.
        upgrade: conn_upgrade
            && upgrade_header
            && version == Version::Http11
            && method == Method::Get,
    }))
}

/// Whether a header is one that `http::file::Conditionals` answers (`Range`,
/// `If-None-Match`, `If-Modified-Since`).
#[inline]
fn is_conditional(name: &[u8]) -> bool {
    match name.len() {
        5 => name.eq_ignore_ascii_case(b"range"),
        13 => name.eq_ignore_ascii_case(b"if-none-match"),
        17 => name.eq_ignore_ascii_case(b"if-modified-since"),
        _ => false,
    }
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

/// Turns the raw target (`raw.start..raw.end`) into a normalised origin-form one, in place.
/// RFC 9112 §3.2: origin-form (`/path?query`) as is; absolute-form (`http://host/path?q`,
/// which a server MUST accept, §3.2.2) reduced to its path and query, with `/` for an empty
/// path, and its authority taking the place of Host; asterisk-form (`*`) for OPTIONS only;
/// authority-form (`host:port`) is CONNECT's, which chirp does not implement.
#[inline(always)]
fn resolve_target(buf: &mut [u8], raw: Target, method: Method) -> Result<Target, Reject> {
    let (start, end) = raw.range();
    let (path_start, host) = if buf.get(start) == Some(&b'/') && method != Method::Connect {
        (start, raw.host) // origin-form: nearly every request
    } else {
        match other_form(buf, raw, method)? {
            OtherForm::Asterisk => return Ok(raw), // path_end = end already
            OtherForm::Absolute { path_start, host } => (path_start, Target::host_span(Some(host))),
        }
    };
    let scan =
        scan_target(&buf[path_start..end]).map_err(|why| reject(StatusCode::BAD_REQUEST, why))?;
    let query_at = path_start + scan.query_at;
    let (mut path_end, mut end) = (query_at, end);
    let mut slash = false;
    if !scan.normal {
        // A trailing `/` (never normal, but for the root) is dropped: noted for static folders.
        slash = query_at - path_start > 1 && buf[query_at - 1] == b'/';
        path_end = path_start + normalize_in_place(&mut buf[path_start..query_at]);
        // A shorter path: the query moves down to follow it.
        buf.copy_within(query_at..end, path_end);
        end -= query_at - path_end;
    }
    Ok(Target::new(path_start, path_end, end, host).with_trailing_slash(slash))
}

/// A target that is not origin-form, as [`other_form`] leaves it.
enum OtherForm {
    /// `*`, for OPTIONS.
    Asterisk,
    /// Absolute-form, reduced in place: the path starts at `path_start` (a `/` written there
    /// for an empty path) and the authority now sits at `host`.
    Absolute {
        path_start: usize,
        host: (usize, usize),
    },
}

/// The forms other than origin-form (RFC 9112 §3.2.2 to §3.2.4), kept off the common path.
#[cold]
#[inline(never)]
fn other_form(buf: &mut [u8], raw: Target, method: Method) -> Result<OtherForm, Reject> {
    const NOT_A_TARGET: Reject = reject(
        StatusCode::BAD_REQUEST,
        "request target must be a path or an absolute http(s) URI",
    );
    let bad = |why| reject(StatusCode::BAD_REQUEST, why);
    if method == Method::Connect {
        return Err(reject(
            StatusCode::NOT_IMPLEMENTED,
            "CONNECT is not implemented (chirp does not tunnel)",
        ));
    }
    let (start, end) = raw.range();
    let target = &buf[start..end];
    if target == b"*" {
        if method != Method::Options {
            return Err(bad("the target '*' is for OPTIONS only"));
        }
        return Ok(OtherForm::Asterisk);
    }
    let scheme_len = target.iter().position(|&b| b == b':').ok_or(NOT_A_TARGET)?;
    let scheme = &target[..scheme_len];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https"))
        || !target[scheme_len..].starts_with(b"://")
    {
        return Err(NOT_A_TARGET);
    }
    let auth_start = start + scheme_len + 3;
    let auth_end = buf[auth_start..end]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .map_or(end, |i| auth_start + i);
    let authority = &buf[auth_start..auth_end];
    if authority.is_empty() {
        return Err(bad("an http(s) URI needs a host"));
    }
    check_host(authority).map_err(bad)?;
    // The authority moves to the front of the target's bytes (the scheme's place), so that a
    // `/` can precede a query that follows it directly (`http://h?x=1`): at least seven bytes
    // (`http://`) lie between the two.
    let auth_len = auth_end - auth_start;
    buf.copy_within(auth_start..auth_end, start);
    let mut path_start = auth_end;
    if path_start == end || buf[path_start] == b'?' {
        path_start -= 1;
        buf[path_start] = b'/';
    }
    Ok(OtherForm::Absolute {
        path_start,
        host: (start, start + auth_len),
    })
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
        parse_bytes(raw.as_bytes())
    }

    fn parse_bytes(raw: &[u8]) -> Result<Option<Head>, Reject> {
        parse_head(
            &mut raw.to_vec(),
            &ServerConfig::default(),
            &mut HeadersBuilder::new(),
        )
    }

    /// The normalised target (path and query) and the host of a valid head.
    fn target(raw: &str) -> (String, Option<String>) {
        let mut buf = raw.as_bytes().to_vec();
        let h = parse_head(
            &mut buf,
            &ServerConfig::default(),
            &mut HeadersBuilder::new(),
        )
        .unwrap()
        .unwrap();
        let t = h.target;
        let text = |a: usize, b: usize| String::from_utf8(buf[a..b].to_vec()).unwrap();
        assert!(
            t.start <= t.path_end && t.path_end <= t.end && usize::from(t.end) <= h.len as usize
        );
        let (a, b) = t.range();
        (text(a, b), t.host_range().map(|(a, b)| text(a, b)))
    }

    fn status(raw: &str) -> StatusCode {
        parse(raw).err().expect("should be refused").status
    }

    #[test]
    fn parses_a_simple_get() {
        let raw = "GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let h = parse(raw).unwrap().unwrap();
        assert_eq!(h.len as usize, raw.len());
        assert_eq!(h.method, Method::Get);
        assert_eq!(target(raw), ("/a?b=1".into(), Some("x".into())));
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
        let head = parse_head(
            &mut raw.as_bytes().to_vec(),
            &ServerConfig::default(),
            &mut builder,
        )
        .unwrap()
        .unwrap();
        let headers = builder.take(Bytes::copy_from_slice(&raw.as_bytes()[..head.len as usize]));
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
    }

    #[test]
    fn absolute_form_is_reduced_to_the_path() {
        let raw = "GET http://example.com/a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n";
        assert_eq!(target(raw), ("/a/b?c".into(), Some("example.com".into())));
    }
}
