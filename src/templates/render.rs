//! The rendering of a template response, once the handler has answered: the [`Job`] a
//! return type leaves in its response, run by the service at the end of the middleware chain
//! (see `Deferred` in `http/response.rs`) with what it kept of the request (`RenderHead`).

use std::any::Any;
use std::sync::OnceLock;

use bytes::Bytes;

use super::engine::{render_block, render_inline, render_template, Templates};
use super::error::TemplateError;
use super::oob;
use super::returns::{Fragment, Main, Page, Template, ValidationError, OOB};
use crate::http::response::{Deferred, Made, RenderHead};
use crate::http::{IntoResponse, Response};
use crate::status::StatusCode;

/// A body still to be rendered.
#[derive(Debug)]
pub(crate) enum Job {
    Template(Template),
    Fragment(Fragment),
    Page(Page),
    Oob(OOB),
}

type BoxedError = Box<dyn std::error::Error + Send + Sync>;

impl Deferred for Job {
    fn render(
        self: Box<Self>,
        engine: Option<&(dyn Any + Send + Sync)>,
        head: &RenderHead,
    ) -> Result<Made, BoxedError> {
        let registered = engine.and_then(|e| e.downcast_ref::<Templates>());
        let html = match (registered, *self) {
            (Some(templates), job) => job.run(templates, Some(head))?,
            // An inline template needs no registered ones: chirp's defaults render it.
            (None, Job::Template(t)) if t.inline => {
                static DEFAULTS: OnceLock<Templates> = OnceLock::new();
                Job::Template(t).run(DEFAULTS.get_or_init(Templates::new), Some(head))?
            }
            (None, _) => return Err(Box::new(TemplateError::NotRegistered)),
        };
        Ok(Made::Body(Bytes::from(html)))
    }
}

impl Job {
    /// The HTML of this job.
    pub(crate) fn run(
        self,
        templates: &Templates,
        head: Option<&RenderHead>,
    ) -> Result<String, TemplateError> {
        let env = templates.env()?;
        match self {
            Job::Template(t) => template(&env, t, head),
            Job::Fragment(f) => fragment(&env, f, head),
            Job::Page(p) => page(&env, p, head),
            Job::Oob(o) => {
                let mut html = match o.main {
                    Main::Template(t) => template(&env, t, head)?,
                    Main::Fragment(f) => fragment(&env, f, head)?,
                    Main::Page(p) => page(&env, p, head)?,
                };
                for f in o.fragments {
                    let id = f.oob_id().to_owned();
                    let swap = f.swap.clone();
                    let body = fragment(&env, f, head)?;
                    html.push('\n');
                    html.push_str(&oob::mark(&body, &id, swap.as_deref()));
                }
                Ok(html)
            }
        }
    }
}

type Env = minijinja::Environment<'static>;

fn template(env: &Env, t: Template, head: Option<&RenderHead>) -> Result<String, TemplateError> {
    if t.inline {
        render_inline(env, &t.name, t.context, head)
    } else {
        render_template(env, &t.name, t.context, head)
    }
}

fn fragment(env: &Env, f: Fragment, head: Option<&RenderHead>) -> Result<String, TemplateError> {
    render_block(env, &f.template, &f.block, f.context, head)
}

/// The whole page, the block, or the boosted block, as the request asks (see [`Page`]).
fn page(env: &Env, p: Page, head: Option<&RenderHead>) -> Result<String, TemplateError> {
    let htmx = head.is_some_and(|h| h.htmx && !h.history_restore);
    if !htmx {
        return render_template(env, &p.template, p.context, head);
    }
    let boosted = head.is_some_and(|h| h.boosted);
    let block = match (&p.boosted, boosted) {
        (Some(wide), true) => wide,
        _ => &p.block,
    };
    render_block(env, &p.template, block, p.context, head)
}

// Each return type is a response with its render still to do.

impl IntoResponse for Template {
    fn into_response(self) -> Response {
        Response::deferred(Box::new(Job::Template(self)))
    }
}

impl IntoResponse for Fragment {
    fn into_response(self) -> Response {
        Response::deferred(Box::new(Job::Fragment(self)))
    }
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        let vary = self.vary();
        Response::deferred(Box::new(Job::Page(self))).with_header("vary", vary)
    }
}

impl IntoResponse for OOB {
    fn into_response(self) -> Response {
        let vary = match &self.main {
            Main::Page(page) => Some(page.vary()),
            _ => None,
        };
        let mut res = Response::deferred(Box::new(Job::Oob(self)));
        if let Some(vary) = vary {
            res.append_header("vary", vary);
        }
        res
    }
}

impl IntoResponse for ValidationError {
    fn into_response(self) -> Response {
        let mut res = Response::deferred(Box::new(Job::Fragment(self.fragment)))
            .with_status(StatusCode::UNPROCESSABLE_ENTITY);
        if let Some(selector) = self.retarget {
            res.append_header("hx-retarget", selector);
        }
        res
    }
}
