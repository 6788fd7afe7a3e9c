//! Error responses rendered for the client: [`Problem`], what an app's error handler gets,
//! and the default rendering by content negotiation (RFC 9457 `application/problem+json` for
//! clients that prefer JSON, plain text otherwise).
//!
//! The errors chirp makes (the router's 404/405, handler [`HttpError`](crate::HttpError)s,
//! 500s from failures and panics, the server's own refusals) are marked when made (see
//! [`Response::error`]) and rendered once, at the edge: by the server after the chain has
//! answered, or by [`TestClient`](crate::testing::TestClient). A response an app builds itself
//! is never touched.

use std::borrow::Cow;

use super::response::Response;
use crate::status::StatusCode;

/// An error about to be sent, as [`App::error_handler`](crate::App::error_handler) sees it.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    detail: Cow<'static, str>,
    prefers_json: bool,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        detail: impl Into<Cow<'static, str>>,
        prefers_json: bool,
    ) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            prefers_json,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The status's reason phrase (`Not Found`): the problem's title.
    pub fn title(&self) -> &'static str {
        self.status.reason()
    }

    /// What went wrong this time (`no note 7`), safe to show the client: chirp never puts
    /// internal details here (a 500 says only `Internal Server Error`; the cause is logged).
    pub fn detail(&self) -> &str {
        &self.detail
    }

    /// Whether the client asked for JSON rather than HTML or text (its `Accept` names a JSON
    /// type and not `text/html`).
    pub fn prefers_json(&self) -> bool {
        self.prefers_json
    }

    /// The default rendering: `application/problem+json` (RFC 9457: `type`, `title`,
    /// `status`, `detail`) when the client prefers JSON, else the detail as plain text.
    ///
    /// ```
    /// use chirp::{App, Request, Response, StatusCode};
    /// let mut app = App::new();
    /// app.error_handler(|problem| {
    ///     if problem.prefers_json() {
    ///         return problem.default_response();
    ///     }
    ///     let page = format!("<h1>{}</h1><p>{}</p>", problem.title(), problem.detail());
    ///     Response::html(page).with_status(problem.status())
    /// });
    /// ```
    pub fn default_response(&self) -> Response {
        if self.prefers_json {
            // A struct, not `json!`: its members keep RFC 9457's order (a `serde_json::Map`
            // sorts them unless the application switches on `preserve_order`).
            #[derive(serde::Serialize)]
            struct Body<'a> {
                r#type: &'static str,
                title: &'static str,
                status: u16,
                detail: &'a str,
            }
            let body = Body {
                r#type: "about:blank",
                title: self.title(),
                status: self.status.as_u16(),
                detail: &self.detail,
            };
            Response::json(&body)
                .with_content_type("application/problem+json")
                .with_status(self.status)
        } else {
            Response::text(self.detail.clone().into_owned()).with_status(self.status)
        }
    }
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

/// Renders `res` if it is a marked error (else returns it as it is): through `handler`, or the
/// default rendering. The headers the error carried (`Allow`, `WWW-Authenticate`,
/// `Retry-After`, a session's `Set-Cookie`, ...) are kept.
pub(crate) fn render(
    res: Response,
    prefers_json: bool,
    handler: Option<&(dyn Fn(&Problem) -> Response + Send + Sync)>,
) -> Response {
    let Some(detail) = res.problem_detail() else {
        return res;
    };
    let problem = Problem::new(res.status(), detail.to_owned(), prefers_json);
    let mut rendered = match handler {
        Some(handler) => handler(&problem),
        None => problem.default_response(),
    };
    for (name, value) in res.headers() {
        if !name.eq_ignore_ascii_case("content-type") {
            rendered = rendered.with_header(name.to_owned(), value.to_owned());
        }
    }
    rendered.clear_problem();
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

    /// The members in RFC 9457's order, whatever `serde_json` features the build has.
    #[test]
    fn problem_json_keeps_its_members_order() {
        let problem = Problem::new(crate::StatusCode::NOT_FOUND, "no note 7", true);
        let res = problem.default_response();
        assert_eq!(
            res.body().as_ref(),
            br#"{"type":"about:blank","title":"Not Found","status":404,"detail":"no note 7"}"#
        );
    }
}
