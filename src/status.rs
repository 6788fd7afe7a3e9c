//! Status codes: [`StatusCode`], a leaf below `error` and `http` (both use it; it is
//! re-exported as `chirp::StatusCode` and `chirp::http::StatusCode`).

use std::fmt;

/// An HTTP status code (100 to 999).
///
/// ```
/// use chirp::StatusCode;
/// assert_eq!(StatusCode::NOT_FOUND.as_u16(), 404);
/// assert_eq!(StatusCode::from_u16(418).unwrap().reason(), "I'm a teapot");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

macro_rules! statuses {
    ($($name:ident = $code:literal, $reason:literal;)*) => {
        impl StatusCode {
            $(#[doc = concat!("`", stringify!($code), " ", $reason, "`")]
            pub const $name: StatusCode = StatusCode($code);)*

            /// The reason phrase RFC 9110 §15 gives the status (RFC 6585's for 428, 429 and
            /// 431, RFC 7725's for 451, RFC 2324's for 418), "" for codes without one. It is
            /// also the `title` of the status's problem details (RFC 9457).
            pub fn reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)*
                    _ => "",
                }
            }
        }
    };
}

statuses! {
    CONTINUE = 100, "Continue";
    SWITCHING_PROTOCOLS = 101, "Switching Protocols";
    OK = 200, "OK";
    CREATED = 201, "Created";
    ACCEPTED = 202, "Accepted";
    NON_AUTHORITATIVE_INFORMATION = 203, "Non-Authoritative Information";
    NO_CONTENT = 204, "No Content";
    RESET_CONTENT = 205, "Reset Content";
    PARTIAL_CONTENT = 206, "Partial Content";
    MULTIPLE_CHOICES = 300, "Multiple Choices";
    MOVED_PERMANENTLY = 301, "Moved Permanently";
    FOUND = 302, "Found";
    SEE_OTHER = 303, "See Other";
    NOT_MODIFIED = 304, "Not Modified";
    TEMPORARY_REDIRECT = 307, "Temporary Redirect";
    PERMANENT_REDIRECT = 308, "Permanent Redirect";
    BAD_REQUEST = 400, "Bad Request";
    UNAUTHORIZED = 401, "Unauthorized";
    PAYMENT_REQUIRED = 402, "Payment Required";
    FORBIDDEN = 403, "Forbidden";
    NOT_FOUND = 404, "Not Found";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed";
    NOT_ACCEPTABLE = 406, "Not Acceptable";
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required";
    REQUEST_TIMEOUT = 408, "Request Timeout";
    CONFLICT = 409, "Conflict";
    GONE = 410, "Gone";
    LENGTH_REQUIRED = 411, "Length Required";
    PRECONDITION_FAILED = 412, "Precondition Failed";
    CONTENT_TOO_LARGE = 413, "Content Too Large";
    URI_TOO_LONG = 414, "URI Too Long";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type";
    RANGE_NOT_SATISFIABLE = 416, "Range Not Satisfiable";
    EXPECTATION_FAILED = 417, "Expectation Failed";
    IM_A_TEAPOT = 418, "I'm a teapot";
    MISDIRECTED_REQUEST = 421, "Misdirected Request";
    UNPROCESSABLE_CONTENT = 422, "Unprocessable Content";
    UPGRADE_REQUIRED = 426, "Upgrade Required";
    PRECONDITION_REQUIRED = 428, "Precondition Required";
    TOO_MANY_REQUESTS = 429, "Too Many Requests";
    REQUEST_HEADER_FIELDS_TOO_LARGE = 431, "Request Header Fields Too Large";
    UNAVAILABLE_FOR_LEGAL_REASONS = 451, "Unavailable For Legal Reasons";
    INTERNAL_SERVER_ERROR = 500, "Internal Server Error";
    NOT_IMPLEMENTED = 501, "Not Implemented";
    BAD_GATEWAY = 502, "Bad Gateway";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable";
    GATEWAY_TIMEOUT = 504, "Gateway Timeout";
    HTTP_VERSION_NOT_SUPPORTED = 505, "HTTP Version Not Supported";
}

impl StatusCode {
    /// `413`, under its name before RFC 9110 (which renamed it
    /// [`CONTENT_TOO_LARGE`](StatusCode::CONTENT_TOO_LARGE)); the same status.
    pub const PAYLOAD_TOO_LARGE: StatusCode = StatusCode::CONTENT_TOO_LARGE;
    /// `422`, under its name before RFC 9110 (which renamed it
    /// [`UNPROCESSABLE_CONTENT`](StatusCode::UNPROCESSABLE_CONTENT)); the same status.
    pub const UNPROCESSABLE_ENTITY: StatusCode = StatusCode::UNPROCESSABLE_CONTENT;
}

impl StatusCode {
    /// A status from its number; `None` outside 100..=999.
    pub fn from_u16(code: u16) -> Option<StatusCode> {
        (100..=999).contains(&code).then_some(StatusCode(code))
    }

    /// The number.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 2xx
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// 3xx
    pub fn is_redirection(self) -> bool {
        (300..400).contains(&self.0)
    }

    /// 4xx
    pub fn is_client_error(self) -> bool {
        (400..500).contains(&self.0)
    }

    /// 5xx
    pub fn is_server_error(self) -> bool {
        (500..600).contains(&self.0)
    }

    /// Whether a response with this status carries no body by definition (1xx, 204, 304).
    pub(crate) fn forbids_body(self) -> bool {
        self.0 < 200 || self.0 == 204 || self.0 == 304
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phrases RFC 9110 §15 renamed from RFC 7231's.
    #[test]
    fn reason_phrases_follow_rfc_9110() {
        let phrase = |code| StatusCode::from_u16(code).unwrap().reason();
        assert_eq!(phrase(413), "Content Too Large");
        assert_eq!(phrase(422), "Unprocessable Content");
        assert_eq!(phrase(416), "Range Not Satisfiable");
        assert_eq!(phrase(421), "Misdirected Request");
        assert_eq!(StatusCode::PAYLOAD_TOO_LARGE, StatusCode::CONTENT_TOO_LARGE);
        assert_eq!(
            StatusCode::UNPROCESSABLE_ENTITY,
            StatusCode::UNPROCESSABLE_CONTENT
        );
        assert_eq!(phrase(299), "");
    }
}
