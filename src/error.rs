//! Errors. Each of chirp's error types says what went wrong and what to do about it,
//! implements [`std::error::Error`], and converts into [`chirp::Error`](Error), as does every
//! other error type, so handlers can use `?` on anything.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Value};

use crate::status::StatusCode;

/// The application was set up wrongly: a bad route pattern, an empty secret key, ...
///
/// Raised when the app is built (`App::build`, `run`, `serve`) or when a middleware is
/// constructed, never while serving requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationError {
    message: String,
}

impl ConfigurationError {
    /// A configuration error with the given explanation.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}", self.message)
    }
}

impl std::error::Error for ConfigurationError {}

/// A request-scoped value (the session, the current user) was asked for outside the scope that
/// provides it: the middleware that sets it up is missing, or the code runs in a spawned task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupError {
    message: Cow<'static, str>,
}

impl LookupError {
    /// A lookup error with the given explanation.
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The explanation.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for LookupError {}

/// The extension members of a problem (RFC 9457 §3.2), boxed.
pub(crate) type Extensions = Box<Map<String, Value>>;

/// An error that is meant for the client: a status code and its detail, what went wrong this
/// time (`no note 7`), and optionally extension members (RFC 9457), such as the fields that
/// failed validation. It is rendered by content negotiation: `application/problem+json`
/// (RFC 9457: `type`, `title` = the status phrase, `status`, `detail`, then the extension
/// members) for clients that prefer JSON and for paths under the app's
/// [`api_prefix`](crate::App::api_prefix), the detail as `text/plain` otherwise, or by the
/// app's [`error_handler`](crate::App::error_handler).
///
/// ```
/// use chirp::{HttpError, StatusCode};
/// let e = HttpError::not_found("no such user");
/// assert_eq!(e.status(), StatusCode::NOT_FOUND);
///
/// let e = HttpError::unprocessable("the note is not valid")
///     .with_field_error("text", "must not be empty")
///     .with_extension("limit", 280);
/// assert_eq!(e.extension("errors").unwrap()[0]["field"], "text");
/// assert_eq!(e.extension("limit").unwrap(), 280);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    message: Cow<'static, str>,
    // Boxed and optional: most errors carry none, and an error moves through `Result`s.
    extensions: Option<Extensions>,
    headers: Option<Box<Headers>>,
}

/// The response headers an [`HttpError`] carries (`Allow`, `Sec-WebSocket-Version`, ...).
type Headers = Vec<(Cow<'static, str>, String)>;

impl HttpError {
    /// An error with any status and message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
            extensions: None,
            headers: None,
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 Unauthorized.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404 Not Found.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 413 Content Too Large.
    pub fn content_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::CONTENT_TOO_LARGE, message)
    }

    /// 413 Content Too Large, under its name before RFC 9110; the same as
    /// [`HttpError::content_too_large`].
    pub fn payload_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::content_too_large(message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 422 Unprocessable Content: well-formed, but not what the handler expects.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_CONTENT, message)
    }

    /// 500 Internal Server Error. The message is sent to the client, so it must say nothing
    /// internal: for a failure, return the error itself (`?`), which is logged and answered
    /// `500` without details.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// Adds the extension member `name` (RFC 9457 §3.2), sent with the problem details:
    /// `"errors"`, `"balance"`, `"retry_after"`, ... A second value for the same name
    /// replaces the first. The standard members (`type`, `title`, `status`, `detail`) are
    /// chirp's: extension members of those names are not sent.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        insert_extension(&mut self.extensions, name.into(), value.into());
        self
    }

    /// Adds `{"field": field, "message": message}` to the `errors` extension member (a
    /// list, made by the first call): what [`Request::json`](crate::Request::json),
    /// [`form`](crate::Request::form) and [`query_as`](crate::Request::query_as) send with
    /// their `422`s, and what an app's own validation can send the same way.
    ///
    /// ```
    /// use chirp::HttpError;
    /// let e = HttpError::unprocessable("2 fields are not valid")
    ///     .with_field_error("email", "is not an e-mail address")
    ///     .with_field_error("age", "must be at least 18");
    /// assert_eq!(
    ///     e.extension("errors").unwrap(),
    ///     &serde_json::json!([
    ///         {"field": "email", "message": "is not an e-mail address"},
    ///         {"field": "age", "message": "must be at least 18"},
    ///     ])
    /// );
    /// ```
    pub fn with_field_error(
        mut self,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        push_field_error(&mut self.extensions, field.into(), message.into());
        self
    }

    /// Adds a response header sent with the error: what the client needs to try again
    /// (`Allow` with a 405, `WWW-Authenticate` with a 401, `Sec-WebSocket-Version` with a
    /// 426, `Retry-After` with a 503).
    ///
    /// ```
    /// use chirp::{HttpError, StatusCode};
    /// let e = HttpError::new(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only")
    ///     .with_header("sec-websocket-version", "13");
    /// assert_eq!(e.header("Sec-WebSocket-Version"), Some("13"));
    /// ```
    pub fn with_header(
        mut self,
        name: impl Into<Cow<'static, str>>,
        value: impl Into<String>,
    ) -> Self {
        self.headers
            .get_or_insert_with(Box::default)
            .push((name.into(), value.into()));
        self
    }

    /// The first header named `name` (any case) the error carries.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every header the error carries, in the order they were added.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .flat_map(|h| h.iter().map(|(n, v)| (n.as_ref(), v.as_str())))
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The extension member `name`, if set.
    pub fn extension(&self, name: &str) -> Option<&Value> {
        self.extensions.as_ref()?.get(name)
    }

    /// Every extension member, in the order they were first set.
    pub fn extensions(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.extensions
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v)))
    }

    /// The status, the message and the extension members, taken apart (to make the
    /// response).
    pub(crate) fn into_parts(self) -> (StatusCode, Cow<'static, str>, Option<Extensions>) {
        (self.status, self.message, self.extensions)
    }

    /// Takes the headers out (to add them to the response).
    pub(crate) fn take_headers(&mut self) -> Option<Box<Headers>> {
        self.headers.take()
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.status.reason(),
            self.message
        )
    }
}

impl std::error::Error for HttpError {}

/// The errors a `Box<dyn Error>` holds.
type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error a handler (or a middleware, see [`Middleware`](crate::Middleware)) may return:
/// every error type converts into it, chirp's and other crates' (sqlx, minijinja, argon2,
/// `JoinError`, ...), so `?` works on them all in a function that returns
/// `Result<_, chirp::Error>`.
///
/// As a response: an [`HttpError`] is sent with its status, message and extension members;
/// anything else is a server fault, answered `500 Internal Server Error` without details
/// (they stay in the log, not in front of the client) and logged once, at `ERROR`, with its
/// whole chain of sources and the request's method, path and request id.
///
/// ```
/// use chirp::{Error, HttpError, Request};
///
/// #[derive(Debug)]
/// struct DbDown;
/// impl std::fmt::Display for DbDown {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         f.write_str("the database is down")
///     }
/// }
/// impl std::error::Error for DbDown {}
///
/// fn load(id: u64) -> Result<String, DbDown> {
///     if id == 0 { Err(DbDown) } else { Ok(format!("note {id}")) }
/// }
///
/// async fn show(req: Request) -> Result<String, Error> {
///     let id: u64 = req.param_as("id")?; // an HttpError: 400
///     let note = load(id)?; // any other error: 500, logged
///     let _n: u32 = "12".parse()?; // std's errors too
///     Ok(note)
/// }
///
/// let e = Error::from(DbDown);
/// assert_eq!(e.status(), chirp::StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(e.downcast_ref::<DbDown>().is_some());
/// // chirp's own errors are recognised, and keep their status.
/// let e = Error::from(HttpError::not_found("no note 7"));
/// assert_eq!(e.status(), chirp::StatusCode::NOT_FOUND);
/// ```
///
/// # Why `chirp::Error` does not implement `std::error::Error`
///
/// Like `anyhow::Error`, and for the same reason: the conversion from every error type,
/// `impl<E: std::error::Error> From<E> for chirp::Error`, would then include
/// `From<chirp::Error> for chirp::Error`, which the standard library already defines (every
/// type converts into itself), and Rust refuses the overlap. What it gives up is kept by hand:
/// it converts into `Box<dyn std::error::Error>` (with or without `Send + Sync`), so a `main`
/// or a test that returns `Result<(), Box<dyn std::error::Error>>` still uses `?` on it;
/// [`Error::as_dyn`] and [`Error::into_inner`] reach the error inside; and it implements
/// `Display` and `Debug`.
///
/// ```
/// fn serve() -> Result<(), chirp::Error> {
///     Ok(())
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let _service = chirp::App::new().build()?; // a ConfigurationError
///     serve()?; // a chirp::Error
///     Ok(())
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An error for the client.
    Http(HttpError),
    /// The app or a middleware is configured wrongly.
    Configuration(ConfigurationError),
    /// A request-scoped value was asked for out of its scope.
    Lookup(LookupError),
    /// A value could not be turned into JSON (or back).
    Json(serde_json::Error),
    /// An I/O error.
    Io(std::io::Error),
    /// Any other error.
    Other(BoxError),
}

impl Error {
    /// Wraps any error, or a message (`Error::other("no such file")`).
    pub fn other(error: impl Into<BoxError>) -> Self {
        Error::Other(error.into())
    }

    /// The status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Http(e) => e.status(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error inside, as a `std::error::Error` (for its `source()` chain, or to log it).
    pub fn as_dyn(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match self {
            Error::Http(e) => e,
            Error::Configuration(e) => e,
            Error::Lookup(e) => e,
            Error::Json(e) => e,
            Error::Io(e) => e,
            Error::Other(e) => e.as_ref(),
        }
    }

    /// The error inside, boxed: the error that was converted (`?`) into this one.
    pub fn into_inner(self) -> BoxError {
        match self {
            Error::Http(e) => Box::new(e),
            Error::Configuration(e) => Box::new(e),
            Error::Lookup(e) => Box::new(e),
            Error::Json(e) => Box::new(e),
            Error::Io(e) => Box::new(e),
            Error::Other(e) => e,
        }
    }

    /// The error inside, if it is a `T`.
    pub fn downcast_ref<T: std::error::Error + 'static>(&self) -> Option<&T> {
        self.as_dyn().downcast_ref()
    }

    /// The error and its sources, outermost first, joined with `: ` (`reading notes.db:
    /// permission denied`): what the log says of a failure.
    pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            let next = cause.to_string();
            // Wrappers that repeat their source's text (`Display` forwarding) add nothing.
            if !text.ends_with(&next) {
                text.push_str(": ");
                text.push_str(&next);
            }
            source = cause.source();
        }
        text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Http(e) => e.fmt(f),
            Error::Configuration(e) => e.fmt(f),
            Error::Lookup(e) => e.fmt(f),
            Error::Json(e) => write!(f, "JSON error: {e}"),
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Other(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    /// Any error. chirp's own types are recognised by a check of their type (no allocation),
    /// so an [`HttpError`] keeps its status; anything else is [`Error::Other`], a `500`.
    fn from(error: E) -> Self {
        // The value behind `dyn Any`, taken out of its slot when it is of a known type.
        let mut slot = Some(error);
        let any = &mut slot as &mut dyn Any;
        if let Some(e) = any.downcast_mut::<Option<HttpError>>() {
            return e.take().map_or_else(taken, Error::Http);
        }
        if let Some(e) = any.downcast_mut::<Option<ConfigurationError>>() {
            return e.take().map_or_else(taken, Error::Configuration);
        }
        if let Some(e) = any.downcast_mut::<Option<LookupError>>() {
            return e.take().map_or_else(taken, Error::Lookup);
        }
        if let Some(e) = any.downcast_mut::<Option<serde_json::Error>>() {
            return e.take().map_or_else(taken, Error::Json);
        }
        if let Some(e) = any.downcast_mut::<Option<std::io::Error>>() {
            return e.take().map_or_else(taken, Error::Io);
        }
        slot.map_or_else(taken, |e| Error::Other(Box::new(e)))
    }
}

/// The slot of [`Error::from`] is full until one branch takes its value, and that branch
/// returns: this is never called (it keeps the conversion free of panics).
#[cold]
fn taken() -> Error {
    Error::other("an error converted twice")
}

impl From<Error> for Box<dyn std::error::Error + Send + Sync + 'static> {
    /// The error inside ([`Error::into_inner`]): `?` on a `chirp::Error` in a function that
    /// returns `Result<_, Box<dyn Error + Send + Sync>>`.
    fn from(error: Error) -> Self {
        error.into_inner()
    }
}

impl From<Error> for Box<dyn std::error::Error + Send + 'static> {
    /// The error inside ([`Error::into_inner`]).
    fn from(error: Error) -> Self {
        error.into_inner()
    }
}

impl From<Error> for Box<dyn std::error::Error + 'static> {
    /// The error inside ([`Error::into_inner`]): `?` on a `chirp::Error` in a `main` that
    /// returns `Result<(), Box<dyn Error>>`.
    fn from(error: Error) -> Self {
        error.into_inner()
    }
}

/// Sets the extension member `name` (a second value replaces the first).
pub(crate) fn insert_extension(extensions: &mut Option<Extensions>, name: String, value: Value) {
    extensions
        .get_or_insert_with(Box::default)
        .insert(name, value);
}

/// Appends `{"field", "message"}` to the `errors` extension member (a list, made by the
/// first call; a non-list value there is replaced).
pub(crate) fn push_field_error(
    extensions: &mut Option<Extensions>,
    field: String,
    message: String,
) {
    let entry = serde_json::json!({ "field": field, "message": message });
    match extensions
        .get_or_insert_with(Box::default)
        .entry("errors")
        .or_insert_with(|| Value::Array(Vec::new()))
    {
        Value::Array(list) => list.push(entry),
        other => *other = Value::Array(vec![entry]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading notes.db")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn chirps_own_errors_are_recognised_through_the_blanket_conversion() {
        let e = Error::from(HttpError::forbidden("no"));
        assert!(matches!(&e, Error::Http(h) if h.status() == StatusCode::FORBIDDEN));
        assert!(matches!(
            Error::from(ConfigurationError::new("x")),
            Error::Configuration(_)
        ));
        assert!(matches!(
            Error::from(LookupError::new("x")),
            Error::Lookup(_)
        ));
        let json = serde_json::from_str::<u8>("x").unwrap_err();
        assert!(matches!(Error::from(json), Error::Json(_)));
        let io = std::io::Error::other("disk");
        assert!(matches!(Error::from(io), Error::Io(_)));
        let e = Error::from(Outer(std::io::Error::other("permission denied")));
        assert!(matches!(&e, Error::Other(_)));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.downcast_ref::<Outer>().is_some());
    }

    #[test]
    fn the_chain_names_every_source() {
        let e = Error::from(Outer(std::io::Error::other("permission denied")));
        assert_eq!(
            Error::chain(e.as_dyn()),
            "reading notes.db: permission denied"
        );
        let boxed: Box<dyn std::error::Error> = e.into();
        assert_eq!(boxed.to_string(), "reading notes.db");
        assert!(boxed.source().is_some());
    }

    #[test]
    fn question_mark_on_other_crates_errors() {
        fn parse(s: &str) -> Result<u8, Error> {
            Ok(s.parse::<u8>()?)
        }
        assert!(matches!(parse("x"), Err(Error::Other(_))));
        fn in_main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            Err(Error::from(HttpError::not_found("gone")))?
        }
        let e = in_main().unwrap_err();
        assert_eq!(
            e.downcast_ref::<HttpError>().map(HttpError::status),
            Some(StatusCode::NOT_FOUND)
        );
    }

    #[test]
    fn field_errors_gather_in_a_list() {
        let e = HttpError::unprocessable("bad")
            .with_field_error("a", "x")
            .with_field_error("b", "y");
        assert_eq!(
            e.extension("errors"),
            Some(&serde_json::json!([
                {"field": "a", "message": "x"},
                {"field": "b", "message": "y"}
            ]))
        );
        assert_eq!(e.extensions().count(), 1);
    }
}
