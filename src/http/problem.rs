//! Error responses rendered for the client: [`Problem`], what an app's error handler gets,
//! and the default rendering by content negotiation (RFC 9457 `application/problem+json` for
//! clients that prefer JSON and for paths under the app's API prefix, plain text otherwise).
//!
//! The errors chirp makes (the router's 404/405, handler [`HttpError`](crate::HttpError)s
//! and other errors, 500s from failures and panics, the server's own refusals) are marked
//! when made (see [`Response::error`]) and rendered once, at the edge: by the service after
//! the chain has answered (for the server and [`TestClient`](crate::testing::TestClient)
//! alike), with what is known of the request they answer. A response an app builds itself
//! is never touched.
//!
//! A failure (an error that is not an `HttpError`) is logged there too, once, at `ERROR`,
//! with its chain of sources, the request's method and path and its request id: where it is
//! rendered is the one place that knows them all. One that a middleware drops before it is
//! rendered is logged when dropped, with what it knows.

use std::borrow::Cow;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::headers::{Headers, HeadersBuilder};
use super::method::Method;
use super::response::{Cause, IntoResponse, Pending, Response};
use crate::error::{ConfigurationError, Error, HttpError, LookupError};
use crate::status::StatusCode;

/// The members of a problem details object that are chirp's to write (RFC 9457 §3.1; an
/// extension member of one of these names is not sent).
const STANDARD_MEMBERS: [&str; 4] = ["type", "title", "status", "detail"];

/// A problem as its JSON body: RFC 9457's members in its order, then the extension members.
struct InOrder<'a>(&'a Problem);

impl serde::Serialize for InOrder<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let problem = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", "about:blank")?;
        map.serialize_entry("title", problem.title())?;
        map.serialize_entry("status", &problem.status.as_u16())?;
        map.serialize_entry("detail", &*problem.detail)?;
        for (name, value) in problem.extensions() {
            if !STANDARD_MEMBERS.contains(&name) {
                map.serialize_entry(name, value)?;
            }
        }
        map.end()
    }
}

/// An error about to be sent, as [`App::error_handler`](crate::App::error_handler) sees it:
/// an RFC 9457 problem (status, title, detail and extension members), with what is known of
/// the request it answers (method, path, headers, whether it is an API call).
///
/// Also a builder: a handler can answer with a problem of its own (it is rendered like
/// chirp's errors, by negotiation or the app's error handler), and an error handler can add
/// members before the default rendering.
///
/// ```
/// use chirp::{Problem, StatusCode};
/// let problem = Problem::new(StatusCode::UNPROCESSABLE_CONTENT)
///     .with_detail("the note is not valid")
///     .with_field_error("text", "must not be empty");
/// assert_eq!(problem.title(), "Unprocessable Content");
/// let json = problem.to_json();
/// assert_eq!(json["status"], 422);
/// assert_eq!(json["errors"][0]["field"], "text");
/// ```
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    detail: Cow<'static, str>,
    extensions: Option<Box<Map<String, Value>>>,
    /// The client's `Accept` prefers JSON.
    accept_json: bool,
    /// The path is under the app's API prefix.
    api: bool,
    request: Option<RequestHead>,
}

impl Problem {
    /// A problem with `status`, whose detail is the status phrase until
    /// [`with_detail`](Problem::with_detail) sets one.
    pub fn new(status: StatusCode) -> Problem {
        Problem {
            status,
            detail: Cow::Borrowed(status.reason()),
            extensions: None,
            accept_json: false,
            api: false,
            request: None,
        }
    }

    /// Sets the detail: what went wrong this time, for the client.
    pub fn with_detail(mut self, detail: impl Into<Cow<'static, str>>) -> Problem {
        self.detail = detail.into();
        self
    }

    /// Adds the extension member `name` (see
    /// [`HttpError::with_extension`](crate::HttpError::with_extension)).
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Problem {
        crate::error::insert_extension(&mut self.extensions, name.into(), value.into());
        self
    }

    /// Adds `{"field": field, "message": message}` to the `errors` extension member (see
    /// [`HttpError::with_field_error`](crate::HttpError::with_field_error)).
    pub fn with_field_error(
        mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Problem {
        crate::error::push_field_error(&mut self.extensions, field.into(), message.into());
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The status's reason phrase (`Not Found`, RFC 9110): the problem's title.
    pub fn title(&self) -> &'static str {
        self.status.reason()
    }

    /// What went wrong this time (`no note 7`), safe to show the client: chirp never puts
    /// internal details here (a 500 says only `Internal Server Error`; the cause is logged).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// The extension member `name`, if set (by the [`HttpError`](crate::HttpError), or
    /// [`Problem::with_extension`]).
    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.as_ref()?.get(name)
    }

    /// Every extension member.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.extensions
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// Whether the answer should be `application/problem+json`: the request's path is under
    /// the app's [`api_prefix`](crate::App::api_prefix) (whatever its `Accept` says), or its
    /// `Accept` names a JSON type and not `text/html`. What the default rendering follows.
    pub fn prefers_json(&self) -> bool {
        self.accept_json || self.api
    }

    /// Whether the request's path is under the app's [`api_prefix`](crate::App::api_prefix).
    pub fn is_api(&self) -> bool {
        self.api
    }

    /// The request's method; `None` when the server refused the request before its head
    /// was read whole (a malformed or oversized head, a timeout), or for a problem made in
    /// code.
    pub fn method(&self) -> Option<Method> {
        self.request.as_ref().map(|r| r.method)
    }

    /// The request's path (normalised, as [`Request::path`](crate::Request::path)); `None`
    /// as for [`Problem::method`].
    pub fn path(&self) -> Option<&str> {
        self.request.as_ref().map(RequestHead::path)
    }

    /// The request's headers; `None` as for [`Problem::method`].
    pub fn headers(&self) -> Option<&Headers> {
        self.request.as_ref().map(|r| &r.headers)
    }

    /// The first value of the request's header `name`, if the request and the header are
    /// known.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()?.get(name)
    }

    /// The problem details object (RFC 9457): `type` (`about:blank`), `title`, `status`,
    /// `detail`, then the extension members.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("type".into(), "about:blank".into());
        object.insert("title".into(), self.title().into());
        object.insert("status".into(), self.status.as_u16().into());
        object.insert(
            "detail".into(),
            Value::String(self.detail.clone().into_owned()),
        );
        for (name, value) in self.extensions() {
            if !STANDARD_MEMBERS.contains(&name) {
                object.insert(name.to_owned(), value.clone());
            }
        }
        Value::Object(object)
    }

    /// The default rendering: `application/problem+json` ([`Problem::to_json`]) when
    /// [`prefers_json`](Problem::prefers_json), else the detail as plain text.
    ///
    /// ```
    /// use chirp::{App, Request, Response, StatusCode};
    /// let mut app = App::new();
    /// app.api_prefix("/api");
    /// app.error_handler(|problem| {
    ///     if problem.prefers_json() {
    ///         return problem.default_response(); // under /api, or for JSON clients
    ///     }
    ///     let page = format!("<h1>{}</h1><p>{}</p>", problem.title(), problem.detail());
    ///     Response::html(page).with_status(problem.status())
    /// });
    /// ```
    pub fn default_response(&self) -> Response {
        if self.prefers_json() {
            // Not `to_json`: a `serde_json::Map` sorts its keys (chirp switches on no serde_json
            // features), and RFC 9457's members come first, in its order.
            Response::json(&InOrder(self))
                .with_content_type("application/problem+json")
                .with_status(self.status)
        } else {
            Response::text(self.detail.clone().into_owned()).with_status(self.status)
        }
    }
}

impl From<HttpError> for Problem {
    fn from(error: HttpError) -> Problem {
        let (status, message, extensions) = error.into_parts();
        Problem {
            extensions,
            ..Problem::new(status).with_detail(message)
        }
    }
}

impl IntoResponse for Problem {
    /// An error response carrying the problem's status, detail and extension members,
    /// rendered like the errors chirp makes (by negotiation, or the app's error handler).
    fn into_response(self) -> Response {
        Response::error_with(
            self.status,
            Pending {
                detail: self.detail,
                extensions: self.extensions,
                cause: None,
            },
        )
    }
}

// The errors as responses (here, not in `error.rs`: errors sit below `http`).

impl IntoResponse for HttpError {
    /// The message as a text body, marked as an error so that the app's error handler (or the
    /// default content negotiation) renders it, with its extension members.
    fn into_response(mut self) -> Response {
        let headers = self.take_headers();
        let (status, detail, extensions) = self.into_parts();
        let mut res = Response::error_with(
            status,
            Pending {
                detail,
                extensions,
                cause: None,
            },
        );
        for (name, value) in headers.into_iter().flat_map(|h| *h) {
            res.append_header(name, value);
        }
        res
    }
}

impl IntoResponse for Error {
    /// An [`HttpError`] as itself; anything else a `500` whose detail is only `Internal
    /// Server Error`, carrying the error to be logged where it is rendered (once, with the
    /// request's method, path and id).
    fn into_response(self) -> Response {
        match self {
            Error::Http(e) => e.into_response(),
            other => failure(other.into_inner()),
        }
    }
}

impl IntoResponse for LookupError {
    fn into_response(self) -> Response {
        failure(Box::new(self))
    }
}

impl IntoResponse for ConfigurationError {
    fn into_response(self) -> Response {
        failure(Box::new(self))
    }
}

/// A `500` for `cause`, which is logged when the response is rendered.
fn failure(cause: Box<dyn std::error::Error + Send + Sync>) -> Response {
    Response::error_with(
        StatusCode::INTERNAL_SERVER_ERROR,
        Pending {
            detail: Cow::Borrowed("Internal Server Error"),
            extensions: None,
            cause: Some(Cause::new(cause)),
        },
    )
}

/// Logs `failure`, the cause of the `500` that answers the request of `problem`: once, at
/// `ERROR`, with its chain of sources and the request's method, path and id.
fn log_failure(mut failure: Cause, problem: &Problem, request_id: Option<&str>) {
    if let Some(error) = failure.take() {
        tracing::error!(
            method = problem.method().map(Method::as_str),
            path = problem.path(),
            request_id,
            error = %Error::chain(error.as_ref()),
            "request failed: answered 500 Internal Server Error"
        );
    }
}

/// What the rendering of an error knows of its request, kept once the request itself is
/// gone (moved into the chain).
pub(crate) enum ErrorHead {
    /// What the server keeps of a parsed head: its method, its path's range and its bytes.
    /// The headers are read again from the bytes only if an error is rendered, so that a
    /// request answered without one pays for a reference count alone.
    Raw {
        method: Method,
        path: (u16, u16),
        bytes: Bytes,
    },
    /// A request at hand ([`Service::call`](crate::Service::call)).
    Known(Box<RequestHead>),
}

impl ErrorHead {
    /// The head of `req`.
    pub(crate) fn of(req: &super::Request) -> ErrorHead {
        ErrorHead::Known(Box::new(RequestHead {
            method: req.method(),
            path: req.path_range(),
            headers: req.headers().clone(),
        }))
    }

    /// What a deferred body (a template) reads of the request: its path and `HX-` headers
    /// (of a raw head, from its lines: no header list is built again).
    pub(crate) fn render_head(&self) -> super::response::RenderHead {
        use super::response::{path_in, RenderHead};
        match self {
            ErrorHead::Known(head) => RenderHead::new(
                path_in(head.headers.buffer(), head.path),
                head.headers.prefixed("hx-"),
            ),
            ErrorHead::Raw { path, bytes, .. } => {
                RenderHead::new(path_in(bytes, *path), hx_lines(bytes))
            }
        }
    }

    fn into_head(self) -> RequestHead {
        match self {
            ErrorHead::Known(head) => *head,
            ErrorHead::Raw {
                method,
                path,
                bytes,
            } => RequestHead {
                method,
                path,
                headers: read_headers(bytes),
            },
        }
    }
}

/// A request's method, path and headers, as a [`Problem`] shows them.
#[derive(Debug, Clone)]
pub(crate) struct RequestHead {
    method: Method,
    /// The path's range in the headers' buffer.
    path: (u16, u16),
    headers: Headers,
}

impl RequestHead {
    fn path(&self) -> &str {
        let buf = self.headers.buffer();
        buf.get(usize::from(self.path.0)..usize::from(self.path.1))
            .and_then(|p| std::str::from_utf8(p).ok())
            .unwrap_or("/")
    }
}

/// The `HX-` header lines of a head the server parsed (and accepted, so each line is
/// `name: value`, no line folded), as (name without `HX-`, value): the lines after the request
/// line, up to the blank one.
fn hx_lines(bytes: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let mut rest = memchr::memchr(b'\n', bytes).map_or(&[][..], |i| &bytes[i + 1..]);
    std::iter::from_fn(move || loop {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None;
        }
        if line.len() > 3 && line[..3].eq_ignore_ascii_case(b"hx-") {
            if let Some(colon) = memchr::memchr(b':', line) {
                return Some((&line[3..colon], line[colon + 1..].trim_ascii()));
            }
        }
    })
}

/// The headers of a head the server parsed (and accepted), read again from its bytes: the
/// lines after the request line, with the tokenizer the server used (httparse, same
/// settings), so they come out as the request had them. (The request line is skipped: the
/// server made its target canonical in place, leaving bytes over before its line end.)
fn read_headers(bytes: Bytes) -> Headers {
    let mut builder = HeadersBuilder::new();
    let start = bytes
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |i| i + 1);
    let mut slots = [httparse::EMPTY_HEADER; 128];
    if let Ok(httparse::Status::Complete((_, headers))) =
        httparse::parse_headers(&bytes[start..], &mut slots)
    {
        let base = bytes.as_ptr() as usize;
        for h in headers.iter() {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            builder.push(name, (value, value + h.value.len()));
        }
    }
    builder.finish(bytes)
}

/// Whether an `Accept` value prefers JSON: it names a JSON type (`application/json`,
/// `application/problem+json`, any `+json`) and not `text/html` (browsers list both).
pub(crate) fn prefers_json(accept: &[u8]) -> bool {
    let has = |needle: &[u8]| {
        accept
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    has(b"json") && !has(b"text/html")
}

/// How an error is rendered: what the request said and the app's settings.
pub(crate) struct Rendering<'a> {
    /// The request's `Accept` prefers JSON.
    pub(crate) prefers_json: bool,
    /// The request's head, when known.
    pub(crate) head: Option<ErrorHead>,
    /// The app's API prefix (normalised).
    pub(crate) api_prefix: Option<&'a str>,
    /// The app's error handler.
    pub(crate) handler: Option<&'a (dyn Fn(&Problem) -> Response + Send + Sync)>,
}

/// Renders `res`, a marked error (see [`Response::error`]): through the app's handler, or the
/// default rendering, with what is known of its request; a failure behind a `500` is logged
/// here. The headers the error carried (`Allow`, `WWW-Authenticate`, `Retry-After`, a
/// session's `Set-Cookie`, `X-Request-Id`, ...) are kept.
pub(crate) fn render(mut res: Response, how: Rendering<'_>) -> Response {
    let Some(pending) = res.take_problem() else {
        return res;
    };
    let request = how.head.map(ErrorHead::into_head);
    let api = match (how.api_prefix, &request) {
        (Some(prefix), Some(head)) => super::target::in_scope(head.path().as_bytes(), prefix),
        _ => false,
    };
    let problem = Problem {
        status: res.status(),
        detail: pending.detail,
        extensions: pending.extensions,
        accept_json: how.prefers_json,
        api,
        request,
    };
    if let Some(cause) = pending.cause {
        // The id the access log gave the request, echoed on its response.
        let request_id = res
            .headers()
            .find(|(name, _)| name.eq_ignore_ascii_case("x-request-id"))
            .map(|(_, value)| value);
        log_failure(cause, &problem, request_id);
    }
    let mut rendered = match how.handler {
        Some(handler) => handler(&problem),
        None => problem.default_response(),
    };
    for (name, value) in res.headers() {
        if !name.eq_ignore_ascii_case("content-type") {
            rendered = rendered.with_header(name.to_owned(), value.to_owned());
        }
    }
    // What the handler returned is the answer, even an error it made itself.
    drop(rendered.take_problem());
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        assert!(prefers_json(b"application/json"));
        assert!(prefers_json(b"application/problem+json, */*;q=0.1"));
        assert!(prefers_json(b"application/vnd.api+JSON"));
        assert!(!prefers_json(
            b"text/html,application/xhtml+xml,application/json;q=0.9"
        ));
        assert!(!prefers_json(b"*/*"));
        assert!(!prefers_json(b""));
    }

    /// The headers read again from a head the server normalised in place are the ones it
    /// had.
    #[test]
    fn headers_are_read_again_from_a_normalised_head() {
        // `/a/./b` normalised in place to `/a/b`, two bytes left over in the request line.
        let head = Bytes::from_static(
            b"GET /a/b/b HTTP/1.1\r\nHost: x\r\nAccept: */*\r\nX-Tag: a\r\nx-tag: b\r\n\r\n",
        );
        let headers = read_headers(head);
        assert_eq!(headers.get("host"), Some("x"));
        assert_eq!(headers.get("accept"), Some("*/*"));
        assert_eq!(headers.get_all("x-tag").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(headers.len(), 4);
    }

    #[test]
    fn extension_members_never_replace_the_standard_ones() {
        let json = Problem::new(StatusCode::NOT_FOUND)
            .with_extension("status", 200)
            .with_extension("title", "OK")
            .with_extension("instance", "/notes/7")
            .to_json();
        assert_eq!(json["status"], 404);
        assert_eq!(json["title"], "Not Found");
        assert_eq!(json["detail"], "Not Found");
        assert_eq!(json["instance"], "/notes/7");
    }

    /// The members in RFC 9457's order, then the extensions, whatever `serde_json` features
    /// the build has.
    #[test]
    fn problem_json_keeps_its_members_order() {
        let problem = Problem::new(StatusCode::NOT_FOUND)
            .with_detail("no note 7")
            .with_extension("errors", 1)
            .with_extension("a", 2);
        let mut problem = problem;
        problem.api = true;
        let res = problem.default_response();
        assert_eq!(
            res.body().as_ref(),
            br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no note 7","a":2,"errors":1}"#
        );
    }
}
