//! HTTP types: what a handler receives ([`Request`]) and returns ([`Response`],
//! anything [`IntoResponse`]), and the pieces they are made of.

pub(crate) mod body;
mod client_ip;
mod cookies;
pub(crate) mod date;
pub(crate) mod file;
mod form;
mod headers;
pub mod htmx;
mod method;
#[cfg(feature = "multipart")]
pub mod multipart;
pub(crate) mod problem;
mod request;
pub(crate) mod response;
pub mod sse;
pub(crate) mod upgrade;

pub(crate) mod encoding;
pub(crate) mod target;

pub use crate::status::StatusCode;
pub use body::{BodyConfig, BodyStream, BoxError, RequestBody};
pub use client_ip::TrustedProxies;
#[cfg(feature = "internals")]
pub(crate) use cookies::{find_cookie, parse_cookie_header};
pub use cookies::{is_valid_cookie_name, Cookie, SameSite};
pub use headers::Headers;
pub(crate) use headers::{HeadersBuilder, MAX_HEAD};
pub use method::Method;
pub use problem::Problem;
pub(crate) use request::{AppState, Target};
pub use request::{Extensions, Request, Version};
pub use response::{IntoResponse, Response};
pub use upgrade::Upgraded;
