//! htmx on the server: what an htmx request says about itself ([`HxRequest`], from
//! [`Request::htmx`]) and the response headers that steer htmx in the browser ([`Hx`],
//! [`HxLocation`], [`hx_redirect`]). The header names and their meaning are htmx 2's
//! (<https://htmx.org/reference/#request_headers>), which htmx 1.9 shares.
//!
//! ```
//! use chirp::htmx::Hx;
//! use chirp::{Request, Response};
//!
//! async fn add_task(req: Request) -> Hx<Response> {
//!     let html = Response::html("<li>a task</li>");
//!     if req.htmx().is_htmx() {
//!         Hx::new(html).trigger("taskAdded")
//!     } else {
//!         Hx::new(Response::see_other("/"))
//!     }
//! }
//! ```
//!
//! Headers set here never split a response: values holding CR, LF or NUL are refused (the
//! server answers `500` and logs why, as for any header), an `HX-Trigger` detail is JSON with
//! everything outside ASCII escaped, and a URL holding a control character is refused, as
//! `Location` is (browsers drop tabs from URLs, turning `/\t/host` into `//host`).

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use super::encoding::percent_decode;
use super::request::Request;
use super::response::{IntoResponse, Response};
use crate::status::StatusCode;

/// What an htmx request says about itself, read from its `HX-*` headers when asked (nothing
/// is parsed before): [`Request::htmx`] gives it.
///
/// Every value comes from the client, so treat it as untrusted input: escape it before it
/// goes into a page, and never take [`current_url`](HxRequest::current_url) as a redirect
/// target unchecked. htmx sends a header value that is not ISO-8859-1 percent-encoded, with
/// `<name>-URI-AutoEncoded: true` beside it, and one that is as ISO-8859-1 bytes; the getters
/// decode both (a value that is valid UTF-8 is read as UTF-8).
///
/// ```
/// use chirp::{Method, Request};
/// let req = Request::new(Method::Post, "/tasks")
///     .with_header("HX-Request", "true")
///     .with_header("HX-Target", "task-list")
///     .with_header("HX-Prompt", "caf%C3%A9")
///     .with_header("HX-Prompt-URI-AutoEncoded", "true");
/// let hx = req.htmx();
/// assert!(hx.is_htmx() && !hx.is_boosted());
/// assert_eq!(hx.target().as_deref(), Some("task-list"));
/// assert_eq!(hx.prompt().as_deref(), Some("café"));
/// assert!(!Request::new(Method::Get, "/").htmx().is_htmx());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct HxRequest<'a> {
    req: &'a Request,
}

impl Request {
    /// The request's htmx details (`HX-Request`, `HX-Target`, ...): a view over its headers,
    /// read only when asked. See [`HxRequest`].
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "/").with_header("HX-Request", "true");
    /// assert!(req.htmx().is_htmx());
    /// ```
    pub fn htmx(&self) -> HxRequest<'_> {
        HxRequest { req: self }
    }
}

impl<'a> HxRequest<'a> {
    fn flag(&self, name: &str) -> bool {
        self.req
            .header(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The value of `name`, percent-decoded when htmx says it encoded it (`auto`). The
    /// browser sends a value of ISO-8859-1 characters as those bytes (`é` as the byte `0xE9`),
    /// which is not UTF-8: such a value is read as ISO-8859-1.
    fn text(&self, name: &str, auto: &str) -> Option<Cow<'a, str>> {
        let raw = self.req.headers().get_bytes(name)?;
        let value = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(_) => return Some(Cow::Owned(raw.iter().map(|&b| char::from(b)).collect())),
        };
        if self.flag(auto) {
            return Some(percent_decode(value, false));
        }
        Some(Cow::Borrowed(value))
    }

    /// [`text`](Self::text), `None` when empty (htmx sends no header for an element without
    /// an `id` or `name`).
    fn non_empty(&self, name: &str, auto: &str) -> Option<Cow<'a, str>> {
        self.text(name, auto).filter(|v| !v.is_empty())
    }

    /// Whether htmx sent it (`HX-Request: true`).
    pub fn is_htmx(&self) -> bool {
        self.flag("hx-request")
    }

    /// Whether it comes from an element with `hx-boost` (`HX-Boosted: true`): a navigation
    /// made by htmx, which swaps the page's `<body>`.
    pub fn is_boosted(&self) -> bool {
        self.flag("hx-boosted")
    }

    /// Whether htmx asks for a page it had no copy of while going back in history
    /// (`HX-History-Restore-Request: true`): answer it with the whole page. htmx 2 sends
    /// `HX-Request: true` with it too, by default.
    pub fn is_history_restore(&self) -> bool {
        self.flag("hx-history-restore-request")
    }

    /// Whether htmx waits for part of a page: [`is_htmx`](Self::is_htmx), and not a
    /// [history restore](Self::is_history_restore) (which wants the whole page).
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "/").with_header("HX-Request", "true");
    /// assert!(req.htmx().is_partial());
    /// let restore = req.with_header("HX-History-Restore-Request", "true");
    /// assert!(!restore.htmx().is_partial());
    /// ```
    pub fn is_partial(&self) -> bool {
        self.is_htmx() && !self.is_history_restore()
    }

    /// The `id` of the target element (`HX-Target`), if it has one.
    pub fn target(&self) -> Option<Cow<'a, str>> {
        self.non_empty("hx-target", "hx-target-uri-autoencoded")
    }

    /// The `id` of the element that triggered the request (`HX-Trigger`), if it has one.
    pub fn trigger(&self) -> Option<Cow<'a, str>> {
        self.non_empty("hx-trigger", "hx-trigger-uri-autoencoded")
    }

    /// The `name` of the element that triggered the request (`HX-Trigger-Name`), if it has
    /// one.
    pub fn trigger_name(&self) -> Option<Cow<'a, str>> {
        self.non_empty("hx-trigger-name", "hx-trigger-name-uri-autoencoded")
    }

    /// The browser's URL when the request was made (`HX-Current-URL`), whole: scheme, host,
    /// path, query. See [`current_path`](Self::current_path) for a path that may be used as
    /// a `next` after logging in.
    pub fn current_url(&self) -> Option<Cow<'a, str>> {
        self.non_empty("hx-current-url", "hx-current-url-uri-autoencoded")
    }

    /// What the user typed into an `hx-prompt` (`HX-Prompt`); it may be empty.
    pub fn prompt(&self) -> Option<Cow<'a, str>> {
        self.text("hx-prompt", "hx-prompt-uri-autoencoded")
    }

    /// The path and query of [`current_url`](Self::current_url) (the page the user is on,
    /// for a `next` after logging in), when that URL is on this request's host; `None` when
    /// it names another host, has credentials, holds a control character or a path that is
    /// not a plain local one (`//host`, `/\host`).
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Post, "/tasks")
    ///     .with_header("Host", "example.com")
    ///     .with_header("HX-Current-URL", "https://example.com/board?tab=2#top");
    /// assert_eq!(req.htmx().current_path().as_deref(), Some("/board?tab=2"));
    /// let other = Request::new(Method::Post, "/tasks")
    ///     .with_header("Host", "example.com")
    ///     .with_header("HX-Current-URL", "https://evil.example/board");
    /// assert_eq!(other.htmx().current_path(), None);
    /// ```
    pub fn current_path(&self) -> Option<String> {
        let url = self.current_url()?;
        let host = self.req.host()?;
        let (_, rest) = url.split_once("://")?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        if authority.contains('@') || !authority.eq_ignore_ascii_case(host) {
            return None;
        }
        let rest = rest.split('#').next().unwrap_or("");
        let path = match rest.starts_with('/') {
            true => rest.to_owned(),
            false => format!("/{rest}"),
        };
        let local = !path.starts_with("//") && !path.starts_with("/\\");
        let clean = !path.chars().any(char::is_control);
        (local && clean).then_some(path)
    }

    /// A redirect to `url` that suits the request: for htmx ([`is_partial`](Self::is_partial)),
    /// [`hx_redirect`] (htmx loads `url` as a whole page; a `303` would be followed by the
    /// browser's XHR and its page swapped in as a fragment); for anything else, `303 See
    /// Other`. A `url` taken from the request must be checked first
    /// ([`safe_redirect`](crate::security::safe_redirect)).
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let plain = Request::new(Method::Post, "/tasks");
    /// assert_eq!(plain.htmx().redirect("/").header("location"), Some("/"));
    /// let htmx = plain.with_header("HX-Request", "true");
    /// let res = htmx.htmx().redirect("/");
    /// assert_eq!((res.status().as_u16(), res.header("hx-redirect")), (200, Some("/")));
    /// ```
    pub fn redirect(&self, url: &str) -> Response {
        match self.is_partial() {
            true => hx_redirect(url),
            false => Response::see_other(url_header_value(url).into_owned()),
        }
    }
}

/// A response that makes htmx load `url` as a whole page (`200`, `HX-Redirect`, no body): the
/// Python framework's `hx_redirect`, for htmx requests only. A `3xx` is no way to send htmx
/// elsewhere: the browser's XHR follows it, and htmx swaps the page it lands on into the
/// target as a fragment. For a handler that serves both htmx and plain requests, see
/// [`HxRequest::redirect`].
///
/// Characters outside ASCII are percent-encoded (htmx reads header bytes as ISO-8859-1); a
/// control character in `url` is refused (the answer is a logged `500`).
///
/// ```
/// let res = chirp::htmx::hx_redirect("/login");
/// assert_eq!(res.status().as_u16(), 200);
/// assert_eq!(res.header("HX-Redirect"), Some("/login"));
/// assert!(chirp::htmx::hx_redirect("/\t/evil.example").refused_header().is_some());
/// ```
pub fn hx_redirect(url: &str) -> Response {
    Response::empty(StatusCode::OK).with_header("hx-redirect", url_header_value(url).into_owned())
}

/// `url` with every byte outside ASCII percent-encoded: a header value a browser reads back
/// as the same URL (htmx reads header bytes as ISO-8859-1, which would garble UTF-8).
pub(crate) fn url_header_value(url: &str) -> Cow<'_, str> {
    if url.is_ascii() {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len() + 16);
    for b in url.bytes() {
        if b.is_ascii() {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    Cow::Owned(out)
}

/// JSON text with every character outside ASCII written as a `\u` escape, so that a header
/// carries it intact. serde_json writes control characters escaped already, so the result has
/// no CR, LF or NUL. Characters outside ASCII only occur inside strings in JSON text, where
/// an escape means the same character.
fn ascii_json(json: String) -> String {
    if json.is_ascii() {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// The three headers that trigger client-side events, in the order htmx fires them.
const TRIGGER_HEADERS: [&str; 3] = [
    "hx-trigger",
    "hx-trigger-after-swap",
    "hx-trigger-after-settle",
];

/// An event and its detail: JSON text (ASCII), or `None` for a plain name.
///
/// Details are kept as JSON text, never as `serde_json::Value`s: this module then makes none
/// of the serde_json instantiations the session middleware runs on every request (building
/// `Map`s, serializing `Value`s), whose inlining there a second caller would change.
type Events = Vec<(String, Option<String>)>;

/// `text` as a JSON string, quoted, with everything outside printable ASCII escaped.
fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// The events of an `HX-Trigger*` value, with their details: the comma-separated names, or
/// the members of the JSON object, as htmx reads them (nothing, for JSON it cannot read).
pub(crate) fn parse_triggers(value: &str) -> Events {
    let value = value.trim();
    if value.starts_with('{') {
        return json_members(value).unwrap_or_default();
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| (name.to_owned(), None))
        .collect()
}

/// The members of the JSON object `text`: each key decoded, each value as its JSON text.
/// `None` when `text` is not one object (values are delimited, not validated: they come from
/// a response's own header, or are parsed by the caller).
fn json_members(text: &str) -> Option<Events> {
    let bytes = text.as_bytes();
    let ws = |at: &mut usize| {
        while bytes.get(*at).is_some_and(u8::is_ascii_whitespace) {
            *at += 1;
        }
    };
    let mut at = 0;
    ws(&mut at);
    (bytes.get(at) == Some(&b'{')).then_some(())?;
    at += 1;
    let mut members = Vec::new();
    ws(&mut at);
    if bytes.get(at) == Some(&b'}') {
        at += 1;
    } else {
        loop {
            ws(&mut at);
            let key_end = string_end(bytes, at)?;
            let key = unescape(&text[at + 1..key_end - 1])?;
            at = key_end;
            ws(&mut at);
            (bytes.get(at) == Some(&b':')).then_some(())?;
            at += 1;
            ws(&mut at);
            let value_end = value_end(bytes, at)?;
            let raw = text[at..value_end].trim_end();
            (!raw.is_empty()).then_some(())?;
            members.push((key, Some(raw.to_owned())));
            at = value_end;
            match bytes.get(at) {
                Some(b',') => at += 1,
                Some(b'}') => {
                    at += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    ws(&mut at);
    (at == bytes.len()).then_some(members)
}

/// Where the JSON string starting at `at` (its opening quote) ends (after its closing quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    (bytes.get(at) == Some(&b'"')).then_some(())?;
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// Where the JSON value starting at `at` ends: after a string, a balanced object or array, or
/// at the `,` or `}` that ends a literal.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        match bytes.get(i) {
            Some(b'"') => i = string_end(bytes, i)?,
            Some(b'{' | b'[') => {
                depth += 1;
                i += 1;
            }
            Some(b'}' | b']') if depth > 0 => {
                depth -= 1;
                i += 1;
            }
            Some(b',' | b'}') | None if depth == 0 => return Some(i),
            Some(_) => i += 1,
            None => return None,
        }
    }
}

/// The text of a JSON string's inside (between its quotes), its escapes decoded.
fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    let hex4 = |chars: &mut std::str::Chars<'_>| -> Option<u32> {
        let digits: String = chars.by_ref().take(4).collect();
        (digits.len() == 4).then_some(())?;
        u32::from_str_radix(&digits, 16).ok()
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let decoded = match chars.next()? {
            '"' => '"',
            '\\' => '\\',
            '/' => '/',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'u' => {
                let unit = hex4(&mut chars)?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate: its low one follows as `\uXXXX`.
                    (chars.next() == Some('\\') && chars.next() == Some('u')).then_some(())?;
                    let low = hex4(&mut chars)?;
                    (0xDC00..0xE000).contains(&low).then_some(())?;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))?
                } else {
                    char::from_u32(unit)?
                }
            }
            _ => return None,
        };
        out.push(decoded);
    }
    Some(out)
}

/// Whether htmx reads `name` back from a comma-separated `HX-Trigger` as it is.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('{')
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b',' && b != b'"')
}

/// An `HX-Trigger*` value for `events`: comma-separated names when none has a detail and
/// every name reads back as it is, else one JSON object (a name without a detail as `true`,
/// as the Python framework writes it).
fn encode_triggers(events: &[(String, Option<String>)]) -> String {
    if events
        .iter()
        .all(|(name, detail)| detail.is_none() && plain_name(name))
    {
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        return names.join(", ");
    }
    let mut out = String::from("{");
    for (i, (name, detail)) in events.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_string(name, &mut out);
        out.push(':');
        out.push_str(detail.as_deref().unwrap_or("true"));
    }
    out.push('}');
    out
}

/// Adds `(name, detail)` to `events`: an event already there keeps its place and takes the
/// new detail.
fn merge_event(events: &mut Events, name: String, detail: Option<String>) {
    match events.iter_mut().find(|(n, _)| *n == name) {
        Some(slot) => slot.1 = detail,
        None => events.push((name, detail)),
    }
}

/// Where htmx should load a page from without a full reload (`HX-Location`): a path alone, or
/// with the details of htmx's `ajax` context (target, swap, values, ...), sent as JSON.
///
/// ```
/// use chirp::htmx::{Hx, HxLocation};
/// use chirp::IntoResponse;
/// let plain = Hx::new(()).location("/tasks").into_response();
/// assert_eq!(plain.header("HX-Location"), Some("/tasks"));
/// let detailed = Hx::new(())
///     .location(HxLocation::new("/tasks").target("#main").swap("outerHTML"))
///     .into_response();
/// assert_eq!(
///     detailed.header("HX-Location"),
///     Some(r##"{"path":"/tasks","target":"#main","swap":"outerHTML"}"##)
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct HxLocation {
    path: String,
    source: Option<String>,
    event: Option<String>,
    target: Option<String>,
    swap: Option<String>,
    select: Option<String>,
    /// JSON text (ASCII).
    values: Option<String>,
    headers: Vec<(String, String)>,
    push: Option<String>,
    replace: Option<String>,
    /// Why it cannot be sent (values that do not serialize).
    error: Option<String>,
}

impl HxLocation {
    /// Load `path` (with GET) and swap it into `<body>`, pushing it into history.
    pub fn new(path: impl Into<String>) -> HxLocation {
        HxLocation {
            path: path.into(),
            ..HxLocation::default()
        }
    }

    /// The element the request comes from (a CSS selector).
    pub fn source(mut self, selector: impl Into<String>) -> Self {
        self.source = Some(selector.into());
        self
    }

    /// The event that "triggered" the request.
    pub fn event(mut self, event: impl Into<String>) -> Self {
        self.event = Some(event.into());
        self
    }

    /// Where to swap the response (a CSS selector), instead of `<body>`.
    pub fn target(mut self, selector: impl Into<String>) -> Self {
        self.target = Some(selector.into());
        self
    }

    /// How to swap it (any `hx-swap` value: `outerHTML`, `beforeend scroll:bottom`, ...).
    pub fn swap(mut self, swap: impl Into<String>) -> Self {
        self.swap = Some(swap.into());
        self
    }

    /// Which part of the response to swap in (a CSS selector, as `hx-select`).
    pub fn select(mut self, selector: impl Into<String>) -> Self {
        self.select = Some(selector.into());
        self
    }

    /// Values sent with the request: anything that serializes to a JSON object
    /// (`&json!({"page": 2})`, a struct).
    pub fn values<T: Serialize + ?Sized>(mut self, values: &T) -> Self {
        match serde_json::to_string(values) {
            Ok(json) => self.values = Some(ascii_json(json)),
            Err(e) => {
                self.error
                    .get_or_insert_with(|| format!("HX-Location values cannot be serialized: {e}"));
            }
        }
        self
    }

    /// A header sent with the request.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.into()));
        self
    }

    /// The URL pushed into history instead of the path (`"false"`: none).
    pub fn push(mut self, url: impl Into<String>) -> Self {
        self.push = Some(url.into());
        self
    }

    /// The URL that replaces the current one in history, instead of a push.
    pub fn replace(mut self, url: impl Into<String>) -> Self {
        self.replace = Some(url.into());
        self
    }

    /// The header value, or why it cannot be sent.
    fn header_value(self) -> Result<String, String> {
        if let Some(error) = self.error {
            return Err(error);
        }
        for url in [Some(&self.path), self.push.as_ref(), self.replace.as_ref()]
            .into_iter()
            .flatten()
        {
            if url.chars().any(char::is_control) {
                return Err(format!(
                    "HX-Location URL {url:?} holds a control character: browsers drop them \
                     from URLs, which can turn a local path into another site"
                ));
            }
        }
        let path = url_header_value(&self.path);
        let texts = [
            ("source", &self.source),
            ("event", &self.event),
            ("target", &self.target),
            ("swap", &self.swap),
            ("select", &self.select),
        ];
        let only_path = texts.iter().all(|(_, v)| v.is_none())
            && self.values.is_none()
            && self.headers.is_empty()
            && self.push.is_none()
            && self.replace.is_none();
        if only_path && !path.starts_with('{') {
            return Ok(path.into_owned());
        }
        let mut out = String::from("{\"path\":");
        json_string(&path, &mut out);
        for (name, value) in texts {
            if let Some(value) = value {
                let _ = write!(out, ",\"{name}\":");
                json_string(value, &mut out);
            }
        }
        if let Some(values) = &self.values {
            out.push_str(",\"values\":");
            out.push_str(values);
        }
        if !self.headers.is_empty() {
            out.push_str(",\"headers\":{");
            for (i, (name, value)) in self.headers.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(name, &mut out);
                out.push(':');
                json_string(value, &mut out);
            }
            out.push('}');
        }
        for (name, value) in [("push", &self.push), ("replace", &self.replace)] {
            if let Some(value) = value {
                let _ = write!(out, ",\"{name}\":");
                json_string(value, &mut out);
            }
        }
        out.push('}');
        Ok(out)
    }
}

impl From<&str> for HxLocation {
    fn from(path: &str) -> HxLocation {
        HxLocation::new(path)
    }
}

impl From<String> for HxLocation {
    fn from(path: String) -> HxLocation {
        HxLocation::new(path)
    }
}

/// htmx response headers on any response: wrap what a handler returns (a [`Response`], a
/// `String`, a template's fragment, a `Result`) and add the headers that steer htmx.
///
/// Events (`HX-Trigger`, `HX-Trigger-After-Swap`, `HX-Trigger-After-Settle`) add up: several
/// events go into one header, as comma-separated names or, when one has a detail, as one JSON
/// object (`{"taskAdded":{"id":7},"closeModal":true}`), merged with what the wrapped response
/// already carries. Every other header replaces the wrapped response's own.
///
/// htmx reads these headers on any status but a `3xx` (the browser's XHR follows those before
/// htmx sees them).
///
/// ```
/// use chirp::htmx::Hx;
/// use chirp::{IntoResponse, Response};
/// use serde_json::json;
///
/// let res = Hx::new(Response::html("<li>milk</li>"))
///     .trigger("taskAdded")
///     .trigger_with("showMessage", &json!({"level": "info", "text": "Added"}))
///     .retarget("#task-list")
///     .reswap("beforeend")
///     .into_response();
/// assert_eq!(
///     res.header("HX-Trigger"),
///     Some(r#"{"taskAdded":true,"showMessage":{"level":"info","text":"Added"}}"#)
/// );
/// assert_eq!(res.header("HX-Retarget"), Some("#task-list"));
/// assert_eq!(res.header("HX-Reswap"), Some("beforeend"));
/// assert_eq!(res.body().as_ref(), b"<li>milk</li>");
/// ```
#[derive(Debug)]
#[must_use = "an Hx does nothing until it is returned as a response"]
pub struct Hx<R> {
    inner: R,
    /// Headers that replace the inner response's own.
    headers: Vec<(&'static str, String)>,
    /// Events per trigger header ([`TRIGGER_HEADERS`] order).
    events: [Events; 3],
    status: Option<StatusCode>,
    /// Why the headers cannot be sent (the response is then a logged `500`).
    error: Option<String>,
}

impl<R: IntoResponse> Hx<R> {
    /// `inner`, with no htmx header yet.
    pub fn new(inner: R) -> Hx<R> {
        Hx {
            inner,
            headers: Vec::new(),
            events: Default::default(),
            status: None,
            error: None,
        }
    }

    fn set(mut self, name: &'static str, value: String) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value));
        self
    }

    fn event(mut self, phase: usize, name: &str, detail: Option<String>) -> Self {
        if name.is_empty() {
            self.error
                .get_or_insert_with(|| "an htmx event name is empty".to_owned());
            return self;
        }
        merge_event(&mut self.events[phase], name.to_owned(), detail);
        self
    }

    fn event_with<T: Serialize + ?Sized>(mut self, phase: usize, name: &str, detail: &T) -> Self {
        match serde_json::to_string(detail) {
            Ok(json) => self.event(phase, name, Some(ascii_json(json))),
            Err(e) => {
                self.error.get_or_insert_with(|| {
                    format!("the detail of htmx event {name:?} cannot be serialized: {e}")
                });
                self
            }
        }
    }

    /// Triggers event `name` as soon as htmx receives the response (`HX-Trigger`).
    pub fn trigger(self, name: &str) -> Self {
        self.event(0, name, None)
    }

    /// Triggers event `name` with `detail` (any `Serialize` value; an object's members become
    /// the event's `detail`, anything else its `detail.value`, and a `target` member names
    /// the element to trigger it on).
    pub fn trigger_with<T: Serialize + ?Sized>(self, name: &str, detail: &T) -> Self {
        self.event_with(0, name, detail)
    }

    /// Triggers event `name` after the swap (`HX-Trigger-After-Swap`).
    pub fn trigger_after_swap(self, name: &str) -> Self {
        self.event(1, name, None)
    }

    /// Triggers event `name` with `detail` after the swap.
    pub fn trigger_after_swap_with<T: Serialize + ?Sized>(self, name: &str, detail: &T) -> Self {
        self.event_with(1, name, detail)
    }

    /// Triggers event `name` after the settle step (`HX-Trigger-After-Settle`).
    pub fn trigger_after_settle(self, name: &str) -> Self {
        self.event(2, name, None)
    }

    /// Triggers event `name` with `detail` after the settle step.
    pub fn trigger_after_settle_with<T: Serialize + ?Sized>(self, name: &str, detail: &T) -> Self {
        self.event_with(2, name, detail)
    }

    /// Makes htmx load `url` as a whole page (`HX-Redirect`); see [`hx_redirect`].
    pub fn redirect(self, url: &str) -> Self {
        let value = url_header_value(url).into_owned();
        self.set("hx-redirect", value)
    }

    /// Makes htmx load a page without a full reload, as a boosted link would
    /// (`HX-Location`): a path (`"/tasks"`) or an [`HxLocation`] with details.
    pub fn location(mut self, location: impl Into<HxLocation>) -> Self {
        match location.into().header_value() {
            Ok(value) => self.set("hx-location", value),
            Err(e) => {
                self.error.get_or_insert(e);
                self
            }
        }
    }

    /// Makes htmx reload the whole page (`HX-Refresh: true`).
    pub fn refresh(self) -> Self {
        self.set("hx-refresh", "true".to_owned())
    }

    /// Pushes `url` into the browser's history (`HX-Push-Url`).
    pub fn push_url(self, url: &str) -> Self {
        let value = url_header_value(url).into_owned();
        self.set("hx-push-url", value)
    }

    /// Keeps htmx from pushing a URL into history, whatever the element says
    /// (`HX-Push-Url: false`).
    pub fn no_push_url(self) -> Self {
        self.set("hx-push-url", "false".to_owned())
    }

    /// Replaces the current URL in the location bar with `url` (`HX-Replace-Url`).
    pub fn replace_url(self, url: &str) -> Self {
        let value = url_header_value(url).into_owned();
        self.set("hx-replace-url", value)
    }

    /// Keeps htmx from replacing the URL, whatever the element says (`HX-Replace-Url: false`).
    pub fn no_replace_url(self) -> Self {
        self.set("hx-replace-url", "false".to_owned())
    }

    /// Swaps the response into another element than the one that asked (`HX-Retarget`, a CSS
    /// selector).
    pub fn retarget(self, selector: &str) -> Self {
        self.set("hx-retarget", selector.to_owned())
    }

    /// Swaps the response in another way (`HX-Reswap`: any `hx-swap` value, `outerHTML`,
    /// `beforeend`, `innerHTML swap:1s`, ...).
    pub fn reswap(self, swap: &str) -> Self {
        self.set("hx-reswap", swap.to_owned())
    }

    /// Swaps in only part of the response (`HX-Reselect`, a CSS selector), whatever the
    /// element's `hx-select`.
    pub fn reselect(self, selector: &str) -> Self {
        self.set("hx-reselect", selector.to_owned())
    }

    /// Answers `286`, which stops an element's polling (`hx-trigger="every 2s"`).
    pub fn stop_polling(mut self) -> Self {
        self.status = StatusCode::from_u16(286);
        self
    }
}

impl<R: IntoResponse> IntoResponse for Hx<R> {
    fn into_response(self) -> Response {
        if let Some(error) = self.error {
            tracing::error!(error = %error, "htmx response headers cannot be sent");
            return Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
        }
        let mut res = self.inner.into_response();
        if let Some(status) = self.status {
            res.set_status(status);
        }
        for (name, value) in self.headers {
            res.set_header(name, value);
        }
        for (name, events) in TRIGGER_HEADERS.iter().zip(self.events) {
            if events.is_empty() {
                continue;
            }
            let mut merged = Events::new();
            for value in res.headers_all(name) {
                for (event, detail) in parse_triggers(value) {
                    merge_event(&mut merged, event, detail);
                }
            }
            for (event, detail) in events {
                merge_event(&mut merged, event, detail);
            }
            res.set_header(*name, encode_triggers(&merged));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn hx(headers: &[(&str, &str)]) -> Request {
        headers
            .iter()
            .fold(Request::new(Method::Get, "/"), |r, (n, v)| {
                r.with_header(n, v)
            })
    }

    #[test]
    fn flags_are_true_only_when_true() {
        assert!(hx(&[("HX-Request", "true")]).htmx().is_htmx());
        assert!(hx(&[("hx-request", " TRUE ")]).htmx().is_htmx());
        for v in ["false", "", "1", "yes"] {
            assert!(!hx(&[("HX-Request", v)]).htmx().is_htmx(), "{v:?}");
        }
        let req = hx(&[
            ("HX-Boosted", "true"),
            ("HX-History-Restore-Request", "true"),
        ]);
        assert!(req.htmx().is_boosted() && req.htmx().is_history_restore());
        assert!(!req.htmx().is_htmx() && !req.htmx().is_partial());
    }

    #[test]
    fn values_are_decoded_only_when_htmx_encoded_them() {
        let req = hx(&[
            ("HX-Trigger", "btn%20one"),
            ("HX-Target", "list%C3%A9"),
            ("HX-Target-URI-AutoEncoded", "true"),
            ("HX-Trigger-Name", ""),
            ("HX-Prompt", ""),
            ("HX-Current-URL", "%FF%FE"),
            ("HX-Current-URL-URI-AutoEncoded", "true"),
        ]);
        let h = req.htmx();
        assert_eq!(h.trigger().as_deref(), Some("btn%20one"));
        assert_eq!(h.target().as_deref(), Some("listé"));
        assert_eq!(h.trigger_name(), None);
        assert_eq!(h.prompt().as_deref(), Some(""));
        // Not UTF-8 once decoded: replacement characters, never a panic.
        assert_eq!(h.current_url().as_deref(), Some("\u{FFFD}\u{FFFD}"));
        assert_eq!(hx(&[]).htmx().prompt(), None);
    }

    #[test]
    fn current_path_is_only_a_local_path_on_this_host() {
        let at = |url: &str| {
            hx(&[("Host", "app.example:8080"), ("HX-Current-URL", url)])
                .htmx()
                .current_path()
        };
        assert_eq!(at("http://app.example:8080").as_deref(), Some("/"));
        assert_eq!(at("http://APP.example:8080?x=1").as_deref(), Some("/?x=1"));
        assert_eq!(
            at("https://app.example:8080/a/b?c#d").as_deref(),
            Some("/a/b?c")
        );
        for bad in [
            "http://app.example/a",
            "http://user@app.example:8080/a",
            "http://app.example:8080//evil.example/",
            "http://app.example:8080/\\evil.example/",
            "http://app.example:8080/a\tb",
            "app.example:8080/a",
            "",
        ] {
            assert_eq!(at(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn triggers_merge_into_one_header() {
        let res = Hx::new("x").trigger("a").trigger("b").into_response();
        assert_eq!(res.header("hx-trigger"), Some("a, b"));
        let res = Hx::new(Hx::new("x").trigger("a").trigger_with("b", &1))
            .trigger("c")
            .trigger_with("a", &serde_json::json!({"id": 7}))
            .into_response();
        assert_eq!(
            res.header("hx-trigger"),
            Some(r#"{"a":{"id":7},"b":1,"c":true}"#)
        );
        assert_eq!(res.headers_all("hx-trigger").count(), 1);
        // Names htmx would split or misread go as JSON.
        let res = Hx::new(()).trigger("a,b").trigger("c d").into_response();
        assert_eq!(res.header("hx-trigger"), Some(r#"{"a,b":true,"c d":true}"#));
        let phases = Hx::new(())
            .trigger_after_swap("s")
            .trigger_after_settle("t")
            .into_response();
        assert_eq!(phases.header("hx-trigger"), None);
        assert_eq!(phases.header("hx-trigger-after-swap"), Some("s"));
        assert_eq!(phases.header("hx-trigger-after-settle"), Some("t"));
    }

    #[test]
    fn trigger_values_cannot_split_the_response() {
        let res = Hx::new(())
            .trigger_with("évé\r\nSet-Cookie: a=b", &"line\r\nbreak \u{1F600}")
            .into_response();
        let value = res.header("hx-trigger").expect("sent");
        assert!(
            value.is_ascii() && !value.contains(['\r', '\n', '\0']),
            "{value}"
        );
        assert_eq!(res.refused_header(), None);
        let back = parse_triggers(value);
        assert_eq!(back[0].0, "évé\r\nSet-Cookie: a=b");
        let detail: String = serde_json::from_str(back[0].1.as_deref().unwrap()).unwrap();
        assert_eq!(detail, "line\r\nbreak \u{1F600}");
        // An empty name is a logged 500.
        assert_eq!(
            Hx::new(()).trigger("").into_response().status().as_u16(),
            500
        );
    }

    #[test]
    fn json_triggers_are_read_as_htmx_reads_them() {
        let raw =
            r#" { "a" : {"x": [1, {"y": "}"}]} , "b\"\u00e9\ud83d\ude00" : "v,}" , "c":true } "#;
        let events = parse_triggers(raw);
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "b\"é\u{1F600}", "c"]);
        assert_eq!(events[0].1.as_deref(), Some(r#"{"x": [1, {"y": "}"}]}"#));
        assert_eq!(events[1].1.as_deref(), Some(r#""v,}""#));
        assert_eq!(events[2].1.as_deref(), Some("true"));
        assert_eq!(parse_triggers("{}"), []);
        for bad in [
            r#"{"a"}"#,
            r#"{"a":1"#,
            r#"{"a":1}x"#,
            r#"{"a":}"#,
            r#"{"\ud800":1}"#,
            "{\"a",
        ] {
            assert_eq!(parse_triggers(bad), [], "{bad:?}");
        }
        // What encode_triggers writes reads back.
        let events: Events = vec![
            ("x\u{7f}\"\\".to_owned(), Some("[1,2]".to_owned())),
            ("plain".to_owned(), None),
        ];
        let back = parse_triggers(&encode_triggers(&events));
        assert_eq!(back[0], events[0]);
        assert_eq!(back[1], ("plain".to_owned(), Some("true".to_owned())));
    }

    #[test]
    fn urls_are_ascii_and_free_of_control_characters() {
        let res = Hx::new(()).redirect("/café?q=ü").into_response();
        assert_eq!(res.header("hx-redirect"), Some("/caf%C3%A9?q=%C3%BC"));
        for refused in [
            Hx::new(()).redirect("/\t/evil.example").into_response(),
            Hx::new(()).push_url("/a\r\nX: y").into_response(),
            Hx::new(()).replace_url("/a\x0bb").into_response(),
            Hx::new(()).location("/\t/evil").into_response(),
        ] {
            assert!(refused.refused_header().is_some() || refused.status().as_u16() == 500);
        }
        let json = Hx::new(())
            .location(HxLocation::new("/a\tb").target("#x"))
            .into_response();
        assert_eq!(json.status().as_u16(), 500);
    }

    #[test]
    fn other_headers_replace_the_inner_ones() {
        let inner = Response::text("x").with_header("HX-Reswap", "innerHTML");
        let res = Hx::new(inner)
            .reswap("outerHTML")
            .no_push_url()
            .no_replace_url()
            .refresh()
            .reselect("#main")
            .stop_polling()
            .into_response();
        assert_eq!(
            res.headers_all("hx-reswap").collect::<Vec<_>>(),
            ["outerHTML"]
        );
        assert_eq!(res.header("hx-push-url"), Some("false"));
        assert_eq!(res.header("hx-replace-url"), Some("false"));
        assert_eq!(res.header("hx-refresh"), Some("true"));
        assert_eq!(res.header("hx-reselect"), Some("#main"));
        assert_eq!(res.status().as_u16(), 286);
    }

    #[test]
    fn location_is_a_path_or_json() {
        let loc = HxLocation::new("/t")
            .values(&serde_json::json!({"page": 2}))
            .header("X-A", "1")
            .push("false")
            .source("#s")
            .event("click")
            .select("#m")
            .replace("/r");
        let res = Hx::new(()).location(loc).into_response();
        let value: serde_json::Value =
            serde_json::from_str(res.header("hx-location").unwrap()).unwrap();
        assert_eq!(value["path"], "/t");
        assert_eq!(value["values"]["page"], 2);
        assert_eq!(value["headers"]["X-A"], "1");
        assert_eq!(value["push"], "false");
        // A path that htmx would read as JSON goes as JSON.
        let res = Hx::new(()).location("{x}").into_response();
        assert_eq!(res.header("hx-location"), Some(r#"{"path":"{x}"}"#));
    }
}
