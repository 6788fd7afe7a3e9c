//! HTML over the wire: templates (minijinja, Jinja2 syntax), and the answers an htmx app
//! gives: [`Template`], [`Fragment`], [`Page`], [`OOB`], [`ValidationError`], [`Suspense`]
//! (a shell at once, its slow blocks streamed in as they resolve), and fragments as
//! Server-Sent Events ([`Templates::event`]). Feature `templates`, on by default.
//!
//! ```
//! use chirp::templates::{context, Page, Templates};
//! use chirp::{App, Method, Request};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), chirp::ConfigurationError> {
//! let templates = Templates::new().with_template(
//!     "tasks.html",
//!     "<!doctype html><title>Tasks</title>{% block list %}<ul id=\"list\">\
//!      {% for t in tasks %}<li>{{ t }}</li>{% endfor %}</ul>{% endblock %}",
//! )?;
//! let mut app = App::new();
//! app.templates(templates); // or Templates::from_dir("templates")?
//! app.route("/", |_req: Request| async {
//!     Page::new("tasks.html", "list", context! { tasks => vec!["<write>", "test"] })
//! });
//! let client = chirp::testing::TestClient::new(app);
//!
//! let page = client.get("/").await;
//! assert!(page.text().starts_with("<!doctype html>"));
//! assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
//! assert_eq!(page.header("vary"), Some("HX-Request, HX-History-Restore-Request"));
//!
//! let fragment = client.send(Request::new(Method::Get, "/").with_header("HX-Request", "true")).await;
//! assert_eq!(fragment.text(), "<ul id=\"list\"><li>&lt;write&gt;</li><li>test</li></ul>");
//! # Ok(()) }
//! ```
//!
//! # Where templates are rendered
//!
//! A handler's answer is not rendered when the handler returns it: it becomes a response
//! whose body is still to be made, and the service renders it at the end of the middleware
//! chain, after the handler and before the innermost middleware sees the response. So the
//! render runs inside every middleware's scope (the session, the CSRF token, the CSP nonce,
//! the user), knows the request (its path, its htmx headers), and middleware on the way out
//! (compression, the session cookie) sees the finished HTML. An app that registered
//! templates keeps a reference to each request's head for that (a reference count); routes
//! that do not render pay nothing more, and an app without templates one test per request.
//! A response made by a middleware itself, or by an app without middleware, is rendered when
//! the service finishes it. A render that fails (a missing template or block, an error in a
//! template) is a `500`, logged with the reason; the client sees none of it.
//!
//! # Per-request functions
//!
//! Besides the handler's context, templates have these (each undefined, so rendered as
//! nothing, when the request has no middleware that provides it):
//!
//! | In a template | Gives | Needs |
//! | --- | --- | --- |
//! | `{{ csrf_field() }}` | `<input type="hidden" name="_csrf_token" value="…">` | `CsrfMiddleware` |
//! | `{{ csrf_token() }}` | the (masked) token, for `hx-headers` or a `<meta>` | `CsrfMiddleware` |
//! | `{{ csp_nonce() }}` | the nonce of `<script nonce>` | `SecurityHeadersMiddleware`, a `{nonce}` policy |
//! | `get_flashed_messages()` | the flashes, `{category, message}`, taken once per render | `SessionMiddleware` |
//! | `current_user()` | the user (see [`Templates::user`]), or the anonymous one | `AuthMiddleware` |
//! | `request.path`, `.htmx`, `.boosted`, `.history_restore` | the request's path, its htmx headers | a response |
//!
//! The app's own filters, functions and globals go in through
//! [`Templates::environment_mut`].
//!
//! # Checks
//!
//! Every template is compiled when it is loaded ([`Templates::from_dir`]): a syntax error is a
//! [`ConfigurationError`](crate::ConfigurationError) naming the file and the line. A
//! [`Fragment`] or [`Page`] naming a block its template lacks fails at render with an error
//! naming the template, the block and the blocks it has; [`Templates::check_block`] finds
//! the same at build or in a test.

mod blocks;
mod engine;
mod error;
mod globals;
mod oob;
mod render;
mod returns;
pub(crate) mod route_check;
mod sse;
mod suspense;

pub use engine::Templates;
pub use error::TemplateError;
pub use returns::{Fragment, Main, Page, Template, ValidationError, OOB};
pub use suspense::Suspense;

/// The template engine, for what the app adds to it ([`Templates::environment_mut`]: filters,
/// functions, `Value`s).
pub use minijinja;
/// A template context from `name => value` pairs (minijinja's): `context! { title => "Home" }`.
pub use minijinja::context;
