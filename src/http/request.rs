//! The request a handler receives.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::body::{BodyReceiver, RequestBody};
use super::cookies::{find_cookie, find_cookie_bytes, parse_cookie_header};
use super::encoding::{parse_urlencoded, percent_decode};
use super::headers::{Headers, HeadersBuilder, MAX_HEAD};
use super::method::Method;
use super::target::{normalize_in_place, scan_target};
use crate::error::{HttpError, LookupError};
use crate::shutdown::{Shutdown, ShutdownSignal};
use crate::state::{State, StateType};

/// The HTTP version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
}

/// Where the target sits in a request's head buffer, once the server has normalised it: 16-bit
/// offsets (a head is at most 64 KiB), so that a parsed head is small to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// Start of the path.
    pub start: u16,
    /// End of the path (the `?`, or `end`).
    pub path_end: u16,
    /// End of the query.
    pub end: u16,
    /// The host's range: the absolute-form authority, or the Host value; empty for none.
    pub host: (u16, u16),
    /// Whether the path as sent ended with `/` (the normal form drops it).
    pub trailing_slash: bool,
}

impl Target {
    /// Offsets at most [`MAX_HEAD`] (the parser reads no further); `host` as
    /// [`Target::host_span`] makes it.
    #[inline]
    pub(crate) fn new(start: usize, path_end: usize, end: usize, host: (u16, u16)) -> Target {
        Target {
            start: start as u16,
            path_end: path_end as u16,
            end: end as u16,
            host,
            trailing_slash: false,
        }
    }

    /// The same target, noting whether its path as sent ended with `/` (see
    /// [`Request::path_had_trailing_slash`]).
    #[inline]
    pub(crate) fn with_trailing_slash(mut self, slash: bool) -> Target {
        self.trailing_slash = slash;
        self
    }

    /// A host range as a target keeps it (empty: none).
    #[inline]
    pub(crate) fn host_span(range: Option<(usize, usize)>) -> (u16, u16) {
        let (a, b) = range.unwrap_or((0, 0));
        (a as u16, b as u16)
    }

    /// The host's range, if there is one.
    #[cfg(test)]
    pub(crate) fn host_range(&self) -> Option<(usize, usize)> {
        let (a, b) = (usize::from(self.host.0), usize::from(self.host.1));
        (a < b).then_some((a, b))
    }

    /// The range of the whole target (path and query).
    pub(crate) fn range(&self) -> (usize, usize) {
        (usize::from(self.start), usize::from(self.end))
    }
}

/// The app's shared state: one value per type, registered with
/// [`App::state`](crate::App::state) and read with [`Request::state`]; and the shutdown of
/// the server serving the app.
#[derive(Default)]
pub(crate) struct AppState {
    // Each value in an `Arc` of its own, so that a handler's `State<T>` is an `Arc` clone.
    values: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// The shutdown of the server (or test client) serving the app. Here, beside the state
    /// every request already carries, so that the signal costs a request no field of its
    /// own (see [`Request::shutdown_signal`]).
    shutdown: Arc<Shutdown>,
}

impl AppState {
    /// Adds `value`; `false` (and nothing changed) when its type is already there.
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> bool {
        match self.values.entry(TypeId::of::<T>()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Arc::new(value));
                true
            }
        }
    }

    /// The shutdown that the app's requests signal.
    pub(crate) fn shutdown(&self) -> &Arc<Shutdown> {
        &self.shutdown
    }

    /// Whether a value of type `ty` is registered.
    pub(crate) fn contains(&self, ty: &StateType) -> bool {
        self.values.contains_key(&ty.type_id())
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<State<T>> {
        let value = self.values.get(&TypeId::of::<T>())?.clone();
        value.downcast::<T>().ok().map(State::from)
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppState({} values)", self.values.len())
    }
}

/// Typed values that middleware hands to the handlers below it (one value per type).
///
/// ```
/// use chirp::{Method, Request};
/// #[derive(Clone, Debug, PartialEq)]
/// struct RequestId(u64);
/// let mut req = Request::new(Method::Get, "/");
/// req.extensions_mut().insert(RequestId(7));
/// assert_eq!(req.extensions().get::<RequestId>(), Some(&RequestId(7)));
/// ```
#[derive(Default)]
pub struct Extensions {
    // Boxed and optional: a request that carries none costs one null pointer.
    #[allow(clippy::box_collection)]
    map: Option<Box<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Extensions {
    /// Stores `value`, returning the one of the same type it replaces.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) -> Option<T> {
        self.map
            .get_or_insert_with(Default::default)
            .insert(TypeId::of::<T>(), Box::new(value))
            .and_then(|old| old.downcast().ok().map(|b: Box<T>| *b))
    }

    /// The value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.map.as_ref()?.get(&TypeId::of::<T>())?.downcast_ref()
    }

    /// The value of type `T`, mutably.
    pub fn get_mut<T: Send + Sync + 'static>(&mut self) -> Option<&mut T> {
        self.map
            .as_mut()?
            .get_mut(&TypeId::of::<T>())?
            .downcast_mut()
    }

    /// Takes the value of type `T` out.
    pub fn remove<T: Send + Sync + 'static>(&mut self) -> Option<T> {
        self.map
            .as_mut()?
            .remove(&TypeId::of::<T>())
            .and_then(|old| old.downcast().ok().map(|b: Box<T>| *b))
    }
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.map.as_ref().map_or(0, |m| m.len());
        write!(f, "Extensions({n} values)")
    }
}

/// An HTTP request: method, target, headers, body, the route's path parameters, and
/// [`Extensions`] for values that middleware passes down.
///
/// The server builds it without copying: the target and headers point into the connection's
/// read buffer, and a `Content-Length` body is a slice of it too.
#[derive(Debug)]
pub struct Request {
    method: Method,
    version: Version,
    // The normalised origin-form target as a range of `headers.buffer()` (a head is at most
    // 64 KiB), where its path ends (at the `?`, or the end), and the host (the absolute-form
    // target's authority, or the Host value; empty: none).
    target: (u16, u16),
    path_end: u16,
    host: (u16, u16),
    // Whether the path as sent ended with `/`, which the normal form drops.
    trailing_slash: bool,
    headers: Headers,
    body: Bytes,
    // A boxed slice, not a `Vec`: eight bytes fewer in every request (most have none).
    params: Box<[(Arc<str>, String)]>,
    extensions: Extensions,
    peer_addr: Option<SocketAddr>,
    // The app's state and its server's shutdown, shared (an `Arc` clone per request; `None`
    // for a request made in code).
    state: Option<Arc<AppState>>,
}

impl Request {
    /// Assembles a request from what the server parsed.
    #[inline]
    pub(crate) fn from_parts(
        method: Method,
        version: Version,
        target: Target,
        headers: Headers,
        body: Bytes,
        peer_addr: Option<SocketAddr>,
    ) -> Request {
        Request {
            method,
            version,
            target: (target.start, target.end),
            path_end: target.path_end,
            host: target.host,
            trailing_slash: target.trailing_slash,
            headers,
            body,
            params: Box::new([]),
            extensions: Extensions::default(),
            peer_addr,
            state: None,
        }
    }

    /// A request built in code (for tests and [`TestClient`](crate::testing::TestClient)):
    /// `target` is a path with an optional query, like `/users?page=2`. Its path is
    /// normalised as the server does (`//a/./b/` is `/a/b`), unless the server would refuse
    /// it (then it is kept as given). At most 64 KiB.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Post, "/items?draft=1").with_body("hello");
    /// assert_eq!(req.path(), "/items");
    /// assert_eq!(req.query(), Some("draft=1"));
    /// assert_eq!(req.body().as_ref(), b"hello");
    /// ```
    ///
    /// # Panics
    /// When `target` is longer than 64 KiB (a request head is at most that).
    pub fn new(method: Method, target: &str) -> Request {
        assert!(
            target.len() <= MAX_HEAD,
            "Request::new: a target is at most 64 KiB"
        );
        let mut buf = target.as_bytes().to_vec();
        let mut path_end = buf.iter().position(|&b| b == b'?').unwrap_or(buf.len());
        let mut slash = false;
        match scan_target(&buf) {
            Ok(scan) if buf.starts_with(b"/") && !scan.normal => {
                let query_at = scan.query_at;
                slash = query_at > 1 && buf[query_at - 1] == b'/';
                path_end = normalize_in_place(&mut buf[..query_at]);
                buf.copy_within(query_at.., path_end);
                buf.truncate(buf.len() - (query_at - path_end));
            }
            _ => {}
        }
        let end = buf.len();
        let headers = HeadersBuilder::new().finish(Bytes::from(buf));
        let target = Target::new(0, path_end, end, (0, 0)).with_trailing_slash(slash);
        Request::from_parts(method, Version::Http11, target, headers, Bytes::new(), None)
    }

    /// Adds a header (builder style, for requests built in code).
    pub fn with_header(mut self, name: &str, value: &str) -> Request {
        self.headers = self.headers.appended(name, value);
        self
    }

    /// Sets the body (builder style, for requests built in code).
    pub fn with_body(mut self, body: impl Into<Bytes>) -> Request {
        self.body = body.into();
        self
    }

    /// The shutdown signal of the server that received this request: check it or await it
    /// in a handler that waits long (a long poll), and move it into a stream or a task you
    /// spawn. A request made in code ([`Request::new`]) has one that never fires.
    pub fn shutdown_signal(&self) -> ShutdownSignal {
        ShutdownSignal::new(self.state.as_ref().map(|s| s.shutdown.clone()))
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The HTTP version.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The request target in origin form: the normalised path and the query as sent
    /// (`GET http://h//a/?x=1` gives `/a?x=1`).
    pub fn target(&self) -> &str {
        self.head_str(self.target.0, self.target.1)
    }

    /// The path (before `?`), normalised: empty segments dropped, `.` and `..` resolved,
    /// unreserved characters percent-decoded, other percent-encodings kept (upper-cased).
    /// `//admin/./x/` is `/admin/x`. Every path check in chirp (routing,
    /// [`scoped`](crate::middleware::scoped), the auth middleware's excluded paths) uses this.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "//dashboard/./%7Euser/?tab=1");
    /// assert_eq!(req.path(), "/dashboard/~user");
    /// assert_eq!(req.target(), "/dashboard/~user?tab=1");
    /// ```
    pub fn path(&self) -> &str {
        self.head_str(self.target.0, self.path_end)
    }

    /// Whether the path as sent ended with `/` (`/docs/`), which [`path`](Request::path)
    /// drops: a static folder answers `/docs` with a redirect to `/docs/`, so that the
    /// relative links of its index resolve inside it. Never true for the root `/`.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// assert!(Request::new(Method::Get, "/docs/?x=1").path_had_trailing_slash());
    /// assert!(!Request::new(Method::Get, "/docs").path_had_trailing_slash());
    /// assert!(!Request::new(Method::Get, "/").path_had_trailing_slash());
    /// ```
    pub fn path_had_trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The host the request is for: an absolute-form target's authority, which takes
    /// precedence over the `Host` header (RFC 9112 §3.2.2), or else the `Host` value
    /// (checked to be `host[:port]` by the server). `None` when there is neither, or it is
    /// empty.
    pub fn host(&self) -> Option<&str> {
        if self.host.0 < self.host.1 {
            return Some(self.head_str(self.host.0, self.host.1));
        }
        self.header("host").filter(|h| !h.is_empty())
    }

    /// The path as bytes, with no UTF-8 check (routing and scoping compare bytes).
    #[inline]
    pub(crate) fn path_bytes(&self) -> &[u8] {
        &self.headers.buffer()[self.target.0 as usize..self.path_end as usize]
    }

    /// The path's range in the head buffer (`headers.buffer()`), for an error's rendering.
    pub(crate) fn path_range(&self) -> (u16, u16) {
        (self.target.0, self.path_end)
    }

    /// The raw query string (after `?`), if any.
    pub fn query(&self) -> Option<&str> {
        (self.path_end < self.target.1).then(|| self.head_str(self.path_end + 1, self.target.1))
    }

    fn head_str(&self, start: u16, end: u16) -> &str {
        let raw = &self.headers.buffer()[start as usize..end as usize];
        // The server lets only visible ASCII into a target, so this never fails.
        std::str::from_utf8(raw).unwrap_or("/")
    }

    /// The query's decoded `key=value` pairs, in order.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        self.query().map(parse_urlencoded).unwrap_or_default()
    }

    /// The first decoded value of the query parameter `name`.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "/search?q=rust+web&page=2");
    /// assert_eq!(req.query_param("q").as_deref(), Some("rust web"));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (percent_decode(k, true) == name).then(|| percent_decode(v, true).into_owned())
        })
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The `Last-Event-ID` header: the `id` of the last Server-Sent Event a reconnecting
    /// `EventSource` saw, to resume from (see [`sse`](crate::sse)).
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("last-event-id")
    }

    /// The first value of header `name` (case-insensitive), as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The value of cookie `name`, read from the `Cookie` header(s) on demand.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "/").with_header("Cookie", "a=1; theme=dark");
    /// assert_eq!(req.cookie("theme"), Some("dark"));
    /// ```
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .get_all_bytes("cookie")
            .find_map(|header| find_cookie(header, name.as_bytes()))
    }

    /// Like [`Request::cookie`], the raw bytes (not checked to be UTF-8).
    pub(crate) fn cookie_bytes(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .get_all_bytes("cookie")
            .find_map(|header| find_cookie_bytes(header, name.as_bytes()))
    }

    /// Every cookie the client sent, as `(name, value)`, parsed lazily.
    pub fn cookies(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.get_all("cookie").flat_map(parse_cookie_header)
    }

    /// The body as a stream of chunks: as they arrive, on a route whose body is streamed
    /// ([`BodyConfig::streamed`](crate::BodyConfig::streamed)); otherwise the buffered body as
    /// one chunk. It can be taken once: a second call yields nothing.
    pub fn body_stream(&mut self) -> RequestBody {
        if let Some(rx) = self.extensions.remove::<BodyReceiver>() {
            return RequestBody::channel(rx);
        }
        RequestBody::buffered(std::mem::take(&mut self.body))
    }

    /// Whether the body is streamed (see [`Request::body_stream`]): then [`Request::body`]
    /// is empty.
    pub fn has_streamed_body(&self) -> bool {
        self.extensions.get::<BodyReceiver>().is_some()
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> Bytes {
        self.body
    }

    /// The body as UTF-8 text; `400` if it is not UTF-8.
    pub fn text(&self) -> Result<&str, HttpError> {
        std::str::from_utf8(&self.body)
            .map_err(|_| HttpError::bad_request("request body is not valid UTF-8"))
    }

    /// The body as JSON, deserialised into `T`.
    ///
    /// ```
    /// use chirp::{Method, Request, StatusCode};
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Note { text: String }
    /// let req = Request::new(Method::Post, "/notes")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(r#"{"text": "hi"}"#);
    /// assert_eq!(req.json::<Note>().unwrap().text, "hi");
    /// let wrong = Request::new(Method::Post, "/notes")
    ///     .with_header("Content-Type", "application/json")
    ///     .with_body(r#"{"txt": "hi"}"#);
    /// let e = wrong.json::<Note>().unwrap_err();
    /// assert_eq!(e.status(), StatusCode::UNPROCESSABLE_CONTENT);
    /// assert_eq!(e.extension("errors").unwrap()[0]["field"], "text");
    /// ```
    ///
    /// # Errors
    /// `415` unless the `Content-Type` is `application/json` or another `+json` type; `400`
    /// for JSON that does not parse (with the line and column); `422` for JSON that does not
    /// fit `T` (a missing, unknown or mistyped field), whose problem names the field in its
    /// `errors` member (`[{"field": "items[0].name", "message": "..."}]`, see
    /// [`HttpError::with_field_error`]).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        if !self.content_type_is(|t, sub| {
            t == "application" && (sub == "json" || sub.ends_with("+json"))
        }) {
            return Err(HttpError::unsupported_media_type(
                "expected a JSON body (Content-Type: application/json)",
            ));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.body);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            json_error(e.into_inner(), &path)
        })?;
        // Only whitespace may follow the value.
        de.end().map_err(|e| json_error(e, "."))?;
        Ok(value)
    }

    /// The body as an HTML form (`application/x-www-form-urlencoded`), deserialised into `T`:
    /// the pairs [`Request::form_pairs`] reads (bytes that are not UTF-8 become U+FFFD), with
    /// `bool` fields read as checkboxes: `on`, `1`, `yes`, `true` and `off`, `0`, `no`,
    /// `false`, in any case (an unchecked box sends nothing: `#[serde(default)]` makes it
    /// false). Otherwise as `serde_urlencoded` reads forms.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// #[derive(serde::Deserialize)]
    /// struct Login { username: String, password: String, #[serde(default)] remember: bool }
    /// let req = Request::new(Method::Post, "/login")
    ///     .with_header("Content-Type", "application/x-www-form-urlencoded")
    ///     .with_body("username=demo&password=s%20cret&remember=on");
    /// let form: Login = req.form().unwrap();
    /// assert_eq!((form.username.as_str(), form.password.as_str()), ("demo", "s cret"));
    /// assert!(form.remember);
    /// ```
    ///
    /// # Errors
    /// `415` unless the `Content-Type` is `application/x-www-form-urlencoded`; `422` when the
    /// fields do not fit `T`, naming the field in the detail and in the problem's `errors`
    /// member.
    pub fn form<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        if !self.content_type_is(|t, sub| t == "application" && sub == "x-www-form-urlencoded") {
            return Err(HttpError::unsupported_media_type(
                "expected a form body (Content-Type: application/x-www-form-urlencoded)",
            ));
        }
        super::form::from_pairs(self.form_pairs()?).map_err(|e| {
            field_error(
                HttpError::unprocessable(format!("form body does not fit: {e}")),
                e,
            )
        })
    }

    /// The body's `application/x-www-form-urlencoded` pairs, decoded, in order (whatever the
    /// `Content-Type`).
    ///
    /// The body is read exactly as [`Request::form`] reads it (the same parser: the URL
    /// standard's, where bytes that are not UTF-8, raw or escaped, become U+FFFD), so a
    /// middleware that looks at a field here sees what the handler's `form()` sees.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Post, "/login")
    ///     .with_body(&b"username=demo&x=\xff"[..]);
    /// let pairs = req.form_pairs().unwrap();
    /// assert_eq!(pairs[0], ("username".to_owned(), "demo".to_owned()));
    /// assert_eq!(pairs[1].1, "\u{FFFD}");
    /// ```
    ///
    /// # Errors
    /// None in practice: every body reads as some form. (The `Result` is kept for the API.)
    pub fn form_pairs(&self) -> Result<Vec<(String, String)>, HttpError> {
        // One reading for every reader of the form (issue 24, finding 1): a strict reading
        // here beside `form()`'s lossy one let a stray non-UTF-8 byte hide the username from
        // the login limit while the handler still checked the password.
        serde_urlencoded::from_bytes(&self.body)
            .map_err(|e| HttpError::bad_request(format!("malformed form body: {e}")))
    }

    /// The query string deserialised into `T` (no query is an empty one), read as
    /// [`Request::form`] reads a form (`bool`s as checkboxes: `?all=on`, `?all=1`).
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// #[derive(Debug, serde::Deserialize)]
    /// struct Page { page: u32, q: Option<String>, #[serde(default)] all: bool }
    /// let req = Request::new(Method::Get, "/search?page=2&all=yes");
    /// let page: Page = req.query_as().unwrap();
    /// assert_eq!((page.page, page.q, page.all), (2, None, true));
    /// let e = Request::new(Method::Get, "/search?page=x").query_as::<Page>().unwrap_err();
    /// assert_eq!(e.status().as_u16(), 400);
    /// assert_eq!(e.extension("errors").unwrap()[0]["field"], "page");
    /// ```
    ///
    /// # Errors
    /// `400` when the query does not fit `T`, naming the field in the detail and in the
    /// problem's `errors` member.
    pub fn query_as<T: DeserializeOwned>(&self) -> Result<T, HttpError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(self.query().unwrap_or(""))
                .map_err(|e| HttpError::bad_request(format!("invalid query string: {e}")))?;
        super::form::from_pairs(pairs).map_err(|e| {
            field_error(
                HttpError::bad_request(format!("invalid query string: {e}")),
                e,
            )
        })
    }

    /// Whether the `Content-Type` (type and subtype, ASCII case-insensitive, parameters
    /// ignored) passes `accept`, which gets them lower-cased.
    fn content_type_is(&self, accept: impl Fn(&str, &str) -> bool) -> bool {
        let Some(value) = self.header("content-type") else {
            return false;
        };
        let essence = value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.split_once('/') {
            Some((t, sub)) => accept(t, sub),
            None => false,
        }
    }

    /// The decoded path parameter `name` from the matched route (`/users/{id}`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path parameter `name` parsed as `T`; `400` when absent or unparsable.
    ///
    /// ```no_run
    /// # async fn handler(req: chirp::Request) -> Result<String, chirp::HttpError> {
    /// let id: u64 = req.param_as("id")?;
    /// # Ok(id.to_string()) }
    /// ```
    pub fn param_as<T: FromStr>(&self, name: &str) -> Result<T, HttpError> {
        let raw = self
            .param(name)
            .ok_or_else(|| HttpError::bad_request(format!("missing path parameter {name:?}")))?;
        raw.parse().map_err(|_| {
            HttpError::bad_request(format!(
                "path parameter {name:?} has an invalid value {raw:?}"
            ))
        })
    }

    /// Every path parameter, in pattern order.
    pub fn params(&self) -> impl Iterator<Item = (&str, &str)> {
        self.params.iter().map(|(n, v)| (&**n, v.as_str()))
    }

    pub(crate) fn set_params(&mut self, params: Vec<(Arc<str>, String)>) {
        self.params = params.into_boxed_slice();
    }

    /// The app's state of type `T`, registered with [`App::state`](crate::App::state), for
    /// middleware and code that decides at run time what it needs. **Handlers take state as
    /// arguments instead** (`async fn list(req: Request, db: State<Db>)`, see [`State`]):
    /// those are checked when the app is built, and this lookup is not.
    ///
    /// The handle is owned (an `Arc` clone), not borrowed from the request, so it stays usable
    /// while the body is read through `&mut self`, and can move into a task or a stream.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use chirp::middleware::Next;
    /// use chirp::{App, Request, State};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// struct Hits(AtomicU64);
    /// let mut app = App::new();
    /// app.state(Hits(AtomicU64::new(0)));
    /// // A middleware counts every request...
    /// app.add_middleware(|req: Request, next: Next| async move {
    ///     if let Ok(hits) = req.state::<Hits>() {
    ///         hits.0.fetch_add(1, Ordering::Relaxed);
    ///     }
    ///     next.run(req).await
    /// });
    /// // ...and a handler takes the same value as an argument.
    /// app.route("/", |_req: Request, hits: State<Hits>| async move {
    ///     hits.0.load(Ordering::Relaxed).to_string()
    /// });
    /// let client = chirp::testing::TestClient::new(app);
    /// assert_eq!(client.get("/").await.text(), "1");
    /// assert_eq!(client.get("/").await.text(), "2");
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`LookupError`] naming the type when the app never registered one (a `500` for the
    /// client, logged), or for a request made in code ([`Request::new`]), which carries no
    /// app state. A middleware that reads a type can declare it with
    /// [`Middleware::state_types`](crate::Middleware::state_types), so that the app checks it
    /// at build.
    pub fn state<T: Send + Sync + 'static>(&self) -> Result<State<T>, LookupError> {
        self.state
            .as_deref()
            .and_then(AppState::get::<T>)
            .ok_or_else(|| {
                LookupError::new(format!(
                    "no app state of type `{}`: register it with App::state(value)",
                    std::any::type_name::<T>()
                ))
            })
    }

    pub(crate) fn set_state(&mut self, state: Arc<AppState>) {
        self.state = Some(state);
    }

    /// Values that middleware attached to this request.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Values that middleware attached to this request, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// The client's address (`None` for requests built in code).
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// Sets the client's address (the test client's, for a request built in code).
    pub(crate) fn set_peer_addr(&mut self, addr: SocketAddr) {
        self.peer_addr = Some(addr);
    }

    /// Sets the method (middleware may rewrite requests).
    pub fn set_method(&mut self, method: Method) {
        self.method = method;
    }
}

/// The error of a JSON body that failed to deserialize at `path` (`.` for the whole body):
/// `422` for one that parses but does not fit, naming the field; `400` for one that does not
/// parse.
fn json_error(e: serde_json::Error, path: &str) -> HttpError {
    match e.classify() {
        serde_json::error::Category::Data => {
            // The message without serde_json's " at line 1 column 9", for the field's entry.
            let full = e.to_string();
            let message = full
                .rfind(" at line ")
                .map_or(full.as_str(), |at| &full[..at])
                .to_owned();
            let field = super::form::field_name(path, &message);
            let failed = super::form::FieldError { field, message };
            let detail = match position(&full) {
                "" => format!("JSON body does not fit: {failed}"),
                at => format!("JSON body does not fit: {failed} ({at})"),
            };
            field_error(HttpError::unprocessable(detail), failed)
        }
        _ => HttpError::bad_request(format!("malformed JSON body: {e}")),
    }
}

/// The position in serde_json's message (`line 1 column 9`).
fn position(message: &str) -> &str {
    message
        .rfind(" at line ")
        .map_or("", |at| &message[at + 4..])
}

/// `error` with the failed field in its `errors` member (none for a failure of the whole
/// value).
fn field_error(error: HttpError, failed: super::form::FieldError) -> HttpError {
    if failed.field.is_empty() {
        return error;
    }
    error.with_field_error(failed.field, failed.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request is moved by value from the connection through the app to its handler, a few
    /// times per request: each byte more is copied on every move.
    #[test]
    fn a_request_stays_within_248_bytes() {
        let size = std::mem::size_of::<Request>();
        assert!(size <= 248, "Request is {size} bytes");
    }
}
