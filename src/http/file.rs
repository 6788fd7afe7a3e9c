//! Files as responses ([`Response::file`]): content type from the extension, validators
//! (`ETag`, `Last-Modified`), and the conditional and range requests of RFC 9110 §13 and §14,
//! answered from those validators wherever the response was made.
//!
//! A handler does not see the request's `Range` or `If-*` headers: the server keeps them
//! aside ([`Conditionals::of`]) and applies them to the response the handler returns
//! ([`Conditionals::apply`]), so `Response::file(path).await` alone answers `206`, `304` and
//! `416` correctly.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::body::{FileBody, Streamed};
use super::date;
use super::headers::Headers;
use super::method::Method;
use super::request::Request;
use super::response::Response;
use crate::error::HttpError;
use crate::status::StatusCode;

impl Response {
    /// `200` with the file at `path` as its body, streamed (never read whole into memory),
    /// with `Content-Length`, `Content-Type` from its extension, `Last-Modified`, a strong
    /// `ETag` and `Accept-Ranges: bytes`. Range requests (`206`, `416`) and conditional ones
    /// (`304` for `If-None-Match` / `If-Modified-Since`, `If-Range`) are answered by the
    /// server from these headers.
    ///
    /// A missing file or a directory is a `404`, an unreadable one `403`.
    ///
    /// File system calls run on the server's own thread (as nginx's do): fine for local
    /// disks, where they are served from the page cache; keep network file systems away.
    ///
    /// ```no_run
    /// use chirp::{HttpError, Request, Response};
    /// async fn report(_req: Request) -> Result<Response, HttpError> {
    ///     Response::file("reports/latest.pdf").await
    /// }
    /// ```
    pub async fn file(path: impl AsRef<Path>) -> Result<Response, HttpError> {
        let path = path.as_ref();
        let file = open_for_reading(path).map_err(|e| open_error(path, e))?;
        let meta = file.metadata().map_err(|e| open_error(path, e))?;
        if !meta.is_file() {
            return Err(HttpError::not_found("Not Found"));
        }
        Ok(file_response(file, &meta, path))
    }
}

/// Opens `path` for reading without ever blocking in `open(2)`: `O_NONBLOCK`, because
/// opening a FIFO for reading waits until a writer appears, and it would wait on the server's
/// own thread (four such requests once wedged every worker). A FIFO, a device or a socket
/// then opens at once and is refused by the caller's regular-file check; on a regular file
/// `O_NONBLOCK` changes nothing (reads, `pread` and `sendfile` of a regular file never block
/// on it).
pub(crate) fn open_for_reading(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
}

/// The error for a file that cannot be served.
pub(crate) fn open_error(path: &Path, e: io::Error) -> HttpError {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory => {
            HttpError::not_found("Not Found")
        }
        io::ErrorKind::PermissionDenied => HttpError::forbidden("Forbidden"),
        _ => {
            tracing::error!(path = %path.display(), error = %e, "file cannot be served");
            HttpError::internal("Internal Server Error")
        }
    }
}

/// The content type for `path`'s extension; text is UTF-8.
pub(crate) fn content_type_for(path: &Path) -> String {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let essence = mime.essence_str();
    if mime.type_() == mime_guess::mime::TEXT
        || essence == "application/javascript"
        || essence == "application/json"
    {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

/// The response for an open regular file (`meta` its metadata), typed after `type_of`.
pub(crate) fn file_response(file: File, meta: &Metadata, type_of: &Path) -> Response {
    let len = meta.len();
    let mut res = Response::from_streamed(
        Streamed::File(FileBody {
            file,
            offset: 0,
            len,
        }),
        Some(len),
    )
    .with_content_type(content_type_for(type_of));
    res.append_trusted_header("accept-ranges", "bytes");
    if let Ok(modified) = meta.modified() {
        if let Ok(since) = modified.duration_since(UNIX_EPOCH) {
            let http_date = date::format(since.as_secs());
            let http_date = String::from_utf8_lossy(&http_date).into_owned();
            res.append_trusted_header("last-modified", http_date);
            // Strong: it changes whenever the bytes may have (mtime to the nanosecond, size).
            let etag = format!(
                "\"{:x}-{:x}-{:x}\"",
                since.as_secs(),
                since.subsec_nanos(),
                len
            );
            res.append_trusted_header("etag", etag);
        }
    }
    res
}

/// A request's conditional and range headers, kept aside while its handler runs.
#[derive(Debug, Default)]
pub(crate) struct Conditionals {
    method: Option<Method>,
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
}

impl Conditionals {
    /// The headers of `req` that [`Conditionals::apply`] acts on (`None` when it has none).
    pub(crate) fn of(req: &Request) -> Option<Conditionals> {
        Conditionals::of_headers(req.method(), req.headers())
    }

    /// [`Conditionals::of`] a request with `method` and `headers`.
    pub(crate) fn of_headers(method: Method, headers: &Headers) -> Option<Conditionals> {
        if !matches!(method, Method::Get | Method::Head) {
            return None;
        }
        let get = |name| headers.get(name).map(str::to_owned);
        let c = Conditionals {
            method: Some(method),
            if_none_match: get("if-none-match"),
            if_modified_since: get("if-modified-since"),
            range: get("range"),
            if_range: get("if-range"),
        };
        (c.if_none_match.is_some() || c.if_modified_since.is_some() || c.range.is_some())
            .then_some(c)
    }

    /// Answers the conditions for a `200` that has validators (RFC 9110 §13.2.2): `304` when
    /// the client's copy is current, else `206` / `416` for a range of a file body (or of an
    /// in-memory body that says `Accept-Ranges: bytes`). Anything else passes unchanged.
    pub(crate) fn apply(&self, res: &mut Response) {
        if res.status() != StatusCode::OK {
            return;
        }
        // Step 3 (If-None-Match), else step 4 (If-Modified-Since): GET and HEAD only.
        let not_modified = match (&self.if_none_match, &self.if_modified_since) {
            (Some(tags), _) => res
                .header("etag")
                .is_some_and(|etag| none_match_fails(tags, etag)),
            (None, Some(since)) => match (date::parse(since), res.header("last-modified")) {
                (Some(since), Some(modified)) => date::parse(modified).is_some_and(|m| m <= since),
                _ => false,
            },
            (None, None) => false,
        };
        if not_modified {
            res.set_status(StatusCode::NOT_MODIFIED);
            res.set_body(bytes::Bytes::new());
            return;
        }
        // Step 5: Range, for GET only, unless If-Range says the client's copy is stale.
        let Some(range) = &self.range else { return };
        if self.method != Some(Method::Get) || res.header("accept-ranges") != Some("bytes") {
            return;
        }
        if let Some(if_range) = &self.if_range {
            if !if_range_holds(if_range, res) {
                return;
            }
        }
        let len = match res.streamed_len() {
            Some(len) => len,
            None if res.is_streamed() => return,
            None => res.body().len() as u64,
        };
        match parse_range(range, len) {
            RangeAnswer::Ignore => {}
            RangeAnswer::Unsatisfiable => {
                res.set_status(StatusCode::RANGE_NOT_SATISFIABLE);
                res.set_body(bytes::Bytes::new());
                res.remove_header("etag");
                res.append_trusted_header("content-range", format!("bytes */{len}"));
            }
            RangeAnswer::Range(start, end) => {
                res.set_status(StatusCode::PARTIAL_CONTENT);
                res.append_trusted_header("content-range", format!("bytes {start}-{end}/{len}"));
                let count = end - start + 1;
                if let Some(file) = res.file_body_mut() {
                    file.offset += start;
                    file.len = count;
                    res.set_streamed_len(count);
                } else {
                    let part = res.body().slice(start as usize..=end as usize);
                    res.set_body(part);
                }
            }
        }
    }
}

/// Whether `If-None-Match: tags` fails for a response with `etag`: `*`, or any tag equal
/// under the weak comparison (RFC 9110 §8.8.3.2), which is what GET's caches use.
fn none_match_fails(tags: &str, etag: &str) -> bool {
    let weak = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    tags.trim() == "*" || tags.split(',').any(|t| weak(t) == weak(etag))
}

/// Whether `If-Range` matches: a strong entity tag equal to the response's (strong
/// comparison), or a date equal to its `Last-Modified` (RFC 9110 §13.1.5).
fn if_range_holds(if_range: &str, res: &Response) -> bool {
    let if_range = if_range.trim();
    if if_range.starts_with('"') {
        return res.header("etag") == Some(if_range);
    }
    if if_range.starts_with("W/") {
        return false; // a weak tag never matches for a range
    }
    match (
        date::parse(if_range),
        res.header("last-modified").and_then(date::parse),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// What a `Range` header asks of a body of `len` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// Not a single byte range we serve (another unit, bad syntax, several ranges): `200`.
    Ignore,
    /// No byte of the range exists: `416`.
    Unsatisfiable,
    /// Bytes `start..=end`: `206`.
    Range(u64, u64),
}

/// Parses a `Range` value (RFC 9110 §14.1.2): `bytes=a-b`, `bytes=a-`, `bytes=-n`. Several
/// ranges are answered whole (a server may ignore Range, §14.2): multipart/byteranges is
/// rarely wanted and easily abused.
pub(crate) fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let digits = |s: &str| -> Option<Option<u64>> {
        if s.is_empty() {
            return Some(None);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // A number too large for u64 is past any file's end.
        Some(Some(s.parse().unwrap_or(u64::MAX)))
    };
    let (Some(first), Some(last)) = (digits(first), digits(last)) else {
        return RangeAnswer::Ignore;
    };
    match (first, last) {
        (Some(start), last) => {
            if let Some(last) = last {
                if last < start {
                    return RangeAnswer::Ignore; // invalid, so ignored (§14.1.1)
                }
            }
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            let end = last.map_or(len - 1, |l| l.min(len - 1));
            RangeAnswer::Range(start, end)
        }
        (None, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Range(len - suffix.min(len), len - 1)
        }
        (None, None) => RangeAnswer::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        let cases = [
            ("bytes=0-0", Range(0, 0)),
            ("bytes=0-9", Range(0, 9)),
            ("bytes=5-", Range(5, 9)),
            ("bytes=5-100", Range(5, 9)),
            ("bytes=-3", Range(7, 9)),
            ("bytes=-30", Range(0, 9)),
            ("bytes=10-", Unsatisfiable),
            ("bytes=10-20", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=99999999999999999999999-", Unsatisfiable),
            ("bytes=3-2", Ignore),
            ("bytes=a-b", Ignore),
            ("bytes=-", Ignore),
            ("bytes=0-1,3-4", Ignore),
            ("items=0-1", Ignore),
            ("bytes=+1-2", Ignore),
            ("", Ignore),
        ];
        for (value, want) in cases {
            assert_eq!(parse_range(value, 10), want, "{value}");
        }
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
    }

    #[test]
    fn entity_tags() {
        assert!(none_match_fails("*", "\"a\""));
        assert!(none_match_fails("\"x\", W/\"a\"", "\"a\""));
        assert!(!none_match_fails("\"b\"", "\"a\""));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type_for(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(
            content_type_for(Path::new("a.css")),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type_for(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type_for(Path::new("noext")),
            "application/octet-stream"
        );
    }
}
