//! Errors. Each type says what went wrong and what to do about it, implements
//! [`std::error::Error`], and converts into [`chirp::Error`](Error) so handlers can use `?`.

use std::borrow::Cow;
use std::fmt;

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

/// An error that is meant for the client: a status code and its detail, what went wrong this
/// time (`no note 7`). It is rendered by content negotiation: `application/problem+json`
/// (RFC 9457: `type`, `title` = the status phrase, `status`, `detail`) for clients that prefer
/// JSON, the detail as `text/plain` otherwise, or by the app's
/// [`error_handler`](crate::App::error_handler).
///
/// ```
/// use chirp::{HttpError, StatusCode};
/// let e = HttpError::not_found("no such user");
/// assert_eq!(e.status(), StatusCode::NOT_FOUND);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    status: StatusCode,
    message: Cow<'static, str>,
}

impl HttpError {
    /// An error with any status and message.
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            message: message.into(),
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

    /// 413 Payload Too Large.
    pub fn payload_too_large(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 415 Unsupported Media Type.
    pub fn unsupported_media_type(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, message)
    }

    /// 422 Unprocessable Content: well-formed, but not what the handler expects.
    pub fn unprocessable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The status and the message, taken apart (to make the response).
    pub(crate) fn into_parts(self) -> (StatusCode, Cow<'static, str>) {
        (self.status, self.message)
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

/// Any error a handler may return. Every chirp error converts into it, so `?` works in
/// handlers that return `Result<_, chirp::Error>`.
///
/// As a response: an [`HttpError`] is sent as it is; anything else is a server fault, logged
/// with `tracing` and answered `500 Internal Server Error` without details (they stay in the
/// log, not in front of the client).
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
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps any error.
    pub fn other(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::Other(error.into())
    }

    /// The status the error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Http(e) => e.status(),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
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

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Http(e) => Some(e),
            Error::Configuration(e) => Some(e),
            Error::Lookup(e) => Some(e),
            Error::Json(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Other(e) => Some(e.as_ref()),
        }
    }
}

macro_rules! error_from {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(e)
            }
        })*
    };
}

error_from!(
    Http(HttpError),
    Configuration(ConfigurationError),
    Lookup(LookupError),
    Json(serde_json::Error),
    Io(std::io::Error),
);
