//! [`Suspense`]: a page sent at once with placeholders, its slow parts streamed into the same
//! response as they resolve (the Python framework's `suspense.py`).
//!
//! The shell is rendered like any template answer, at the end of the middleware chain (inside
//! every middleware's scope), and becomes the first chunk of a streamed body. The deferred
//! futures are polled by that body, concurrently, as the server writes it: inside the scopes
//! the middleware carry into streamed responses (the session, the user, the CSRF token), and
//! dropped with it when the client goes away or the server shuts down. Each value that resolves
//! re-renders the blocks that use it, each sent as a chunk of its own.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use minijinja::value::Serde;
use minijinja::{Environment, Value};

use super::blocks;
use super::engine::{blocks_of, render_block, render_template, Templates};
use super::error::TemplateError;
use super::oob;
use crate::html::escape_html;
use crate::http::response::{Deferred, Made, RenderHead};
use crate::http::{BoxError, IntoResponse, Response};
use crate::panic::guarded;

type Name = Cow<'static, str>;

/// A value still to come: its serialized form, or why there is none.
type Pending = Pin<Box<dyn Future<Output = Result<Value, BoxError>> + Send + 'static>>;

/// A page whose slow parts come later in the same response: the shell (the template rendered
/// without the deferred values) is sent at once, then each deferred future, all running
/// concurrently, fills in the blocks that use its value as it resolves.
///
/// In the shell a deferred key is undefined, so the template shows a placeholder:
/// `{% if stats %}…{% else %}Loading…{% endif %}`. When `stats` resolves, every block whose own
/// text uses `stats` (not counting the blocks nested in it) is rendered again with `stats` set
/// (and the values resolved before it) and streamed:
///
/// - for a plain load, as a `<template>` and a small `<script>` (carrying the request's CSP
///   nonce, [`csp_nonce`](crate::middleware::security_headers::csp_nonce), when it has one)
///   that moves it into the element of the block's id (the block's name, or
///   [`target`](Suspense::target)): the block replaces that element when it renders as one
///   element with that id, else it becomes the element's content. When htmx is on the page,
///   the new content is processed (`htmx.process`), so its `hx-*` attributes work;
/// - for an htmx request (`HX-Request`, not a history restore), as `hx-swap-oob` elements (see
///   [`OOB`](super::OOB)). htmx reads the response when it is complete and applies
///   out-of-band swaps before its main swap, to elements already on the page: the
///   placeholders must be there before the request (a refresh of a page's stats), not only in
///   the shell it swaps in.
///
/// So the block to be filled renders a root element with an id:
/// `{% block stats %}<section id="stats">…</section>{% endblock %}`. When its use of a key
/// cannot be seen in its text (through an `include` or a macro), or other blocks use the key
/// too, name the blocks with [`defer_block`](Suspense::defer_block).
///
/// The response is `text/html; charset=utf-8`, chunked (its length is not known), with
/// `Vary: HX-Request, HX-History-Restore-Request`; the shell is its first chunk, flushed at
/// once (through [`CompressionMiddleware`] too, which flushes each chunk).
///
/// A future that fails (an `Err` from [`try_defer`](Suspense::try_defer), or a panic) is
/// logged, with its key and template, never shown: its blocks are rendered again with
/// `suspense_errors.<key>` true (`suspense_errors` is an empty map otherwise, in the shell
/// too), so that the template can say so:
/// `{% if stats %}…{% elif suspense_errors.stats %}Stats are unavailable{% else %}Loading…{% endif %}`.
/// The response then ends as usual. So does a block that fails to render (logged).
///
/// Blocks rendered later read the request as the shell did (its path, its htmx headers, the
/// CSRF token, the CSP nonce, the user), but its session is read-only by then (its cookie went
/// out with the headers): a CSRF token is made when the shell first asks for it, so a page
/// whose deferred blocks hold forms has one in its shell too (a `<meta name="csrf-token">`).
///
/// The futures start when the body is first polled, just after the shell is written, and are
/// dropped, unfinished, if the client goes away or the server shuts down (which ends the
/// response at once).
///
/// ```
/// use std::time::Duration;
/// use chirp::templates::{context, Suspense, Templates};
/// use chirp::{App, Request};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), chirp::ConfigurationError> {
/// let templates = Templates::new().with_template(
///     "stats.html",
///     "<!doctype html><html><h1>{{ title }}</h1>{% block stats %}<section id=\"stats\">\
///      {% if stats %}{{ stats.count }} tasks{% else %}Loading…{% endif %}</section>\
///      {% endblock %}</html>",
/// )?;
/// let mut app = App::new();
/// app.templates(templates);
/// app.route("/stats", |_req: Request| async {
///     Suspense::new("stats.html", context! { title => "Stats" }).defer("stats", async {
///         tokio::time::sleep(Duration::from_millis(50)).await; // a slow query
///         context! { count => 3 }
///     })
/// });
/// let client = chirp::testing::TestClient::new(app);
///
/// // The whole response, as a test reads it: the shell, then the block filled in.
/// let page = client.get("/stats").await.text();
/// assert!(page.starts_with("<!doctype html><html><h1>Stats</h1><section id=\"stats\">Loading…"));
/// assert!(page.contains("<template id=\"suspense-stats\" data-target=\"stats\">\
///                        <section id=\"stats\">3 tasks</section></template><script>"));
///
/// // htmx gets the block as an out-of-band swap.
/// let fragment = client.htmx(chirp::Method::Get, "/stats").send().await.text();
/// assert!(fragment.ends_with("<section id=\"stats\" hx-swap-oob=\"true\">3 tasks</section>\n"));
/// # Ok(()) }
/// ```
///
/// [`CompressionMiddleware`]: crate::middleware::compression::CompressionMiddleware
pub struct Suspense {
    template: Name,
    context: Value,
    htmx_block: Option<Name>,
    deferred: Vec<(String, Pending)>,
    /// Blocks named for a key ([`Suspense::defer_block`]): for these keys, no detection.
    named: Vec<(String, Name)>,
    /// Element ids other than the block's name ([`Suspense::target`]).
    targets: Vec<(Name, String)>,
}

impl fmt::Debug for Suspense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.deferred.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Suspense")
            .field("template", &self.template)
            .field("deferred", &keys)
            .field("named", &self.named)
            .field("targets", &self.targets)
            .finish_non_exhaustive()
    }
}

impl Suspense {
    /// Template `template` with `context` (anything `serde::Serialize`), its deferred values
    /// still to add ([`defer`](Suspense::defer)).
    pub fn new(template: impl Into<Name>, context: impl serde::Serialize) -> Suspense {
        Suspense {
            template: template.into(),
            context: Value::from(Serde(&context)),
            htmx_block: None,
            deferred: Vec::new(),
            named: Vec::new(),
            targets: Vec::new(),
        }
    }

    /// Adds `key`, whose value `future` gives later: undefined in the shell, set in the blocks
    /// rendered when it resolves. A key of the context of the same name is overridden then.
    pub fn defer<F, T>(mut self, key: impl Into<String>, future: F) -> Suspense
    where
        F: Future<Output = T> + Send + 'static,
        T: serde::Serialize,
    {
        let pending: Pending = Box::pin(async move { Ok(Value::from(Serde(&future.await))) });
        self.deferred.push((key.into(), pending));
        self
    }

    /// [`defer`](Suspense::defer) for a future that may fail: an `Err` is logged (never
    /// shown), and the key's blocks are rendered with `suspense_errors.<key>` true.
    ///
    /// ```
    /// use chirp::templates::{context, Suspense};
    /// let page = Suspense::new("stats.html", context! {})
    ///     .try_defer("stats", async { Err::<u32, _>(std::io::Error::other("db down")) });
    /// # let _ = page;
    /// ```
    pub fn try_defer<F, T, E>(mut self, key: impl Into<String>, future: F) -> Suspense
    where
        F: Future<Output = Result<T, E>> + Send + 'static,
        T: serde::Serialize,
        E: Into<BoxError>,
    {
        let pending: Pending = Box::pin(async move {
            match future.await {
                Ok(value) => Ok(Value::from(Serde(&value))),
                Err(e) => Err(e.into()),
            }
        });
        self.deferred.push((key.into(), pending));
        self
    }

    /// Makes `block` one of the blocks rendered when `key` resolves, and stops the detection
    /// of the blocks that use `key` from their text: call it once per block. For a block that
    /// uses the key where its text does not show it (an `include`, a macro), or to send fewer
    /// blocks than use it.
    pub fn defer_block(mut self, key: impl Into<String>, block: impl Into<Name>) -> Suspense {
        self.named.push((key.into(), block.into()));
        self
    }

    /// The id of the element `block` fills (by default the block's name): `"stats-panel"` or
    /// `"#stats-panel"`.
    pub fn target(mut self, block: impl Into<Name>, id: impl Into<String>) -> Suspense {
        let id = id.into();
        let id = id.strip_prefix('#').map(str::to_owned).unwrap_or(id);
        self.targets.push((block.into(), id));
        self
    }

    /// The shell of an htmx request (not a history restore) is this block rather than the
    /// whole template, as for a [`Page`](super::Page).
    pub fn htmx_block(mut self, block: impl Into<Name>) -> Suspense {
        self.htmx_block = Some(block.into());
        self
    }
}

impl IntoResponse for Suspense {
    fn into_response(self) -> Response {
        Response::deferred(Box::new(self))
            .with_header("vary", "HX-Request, HX-History-Restore-Request")
            // Reverse proxies that buffer (nginx) would hold the shell back.
            .with_header("x-accel-buffering", "no")
    }
}

impl Deferred for Suspense {
    fn render(
        self: Box<Self>,
        engine: Option<&(dyn std::any::Any + Send + Sync)>,
        head: &RenderHead,
    ) -> Result<Made, Box<dyn std::error::Error + Send + Sync>> {
        let templates = engine
            .and_then(|e| e.downcast_ref::<Templates>())
            .ok_or(TemplateError::NotRegistered)?
            .clone();
        let Suspense {
            template,
            context,
            htmx_block,
            deferred,
            named,
            targets,
        } = *self;
        let htmx = head.htmx && !head.history_restore;
        // (In a merge, the last map that has a key wins.)
        let context = minijinja::value::merge_maps([
            minijinja::context! { suspense_errors => Value::from(BTreeMap::<String, bool>::new()) },
            context,
        ]);
        let (shell, plans) = {
            let env = templates.env()?;
            let shell = match (&htmx_block, htmx) {
                (Some(block), true) => {
                    render_block(&env, &template, block, context.clone(), Some(head))?
                }
                _ => render_template(&env, &template, context.clone(), Some(head))?,
            };
            let keys: Vec<&str> = deferred.iter().map(|(k, _)| k.as_str()).collect();
            let plans = plan(&env, &template, &keys, &named, &targets)?;
            (shell, plans)
        };
        let nonce = crate::middleware::security_headers::csp_nonce().ok();
        let stream = Streaming {
            shell: Some(Bytes::from(shell)),
            pending: deferred
                .into_iter()
                .zip(plans)
                .map(|((key, future), blocks)| Some((key, blocks, future)))
                .collect(),
            templates,
            template,
            context,
            head: head.clone(),
            resolved: BTreeMap::new(),
            failed: BTreeMap::new(),
            htmx,
            nonce,
        };
        Ok(Made::Stream(Box::pin(stream)))
    }
}

/// The blocks to render for each key (in the order of `keys`), each with the id of the
/// element it fills.
fn plan(
    env: &Environment<'static>,
    template: &str,
    keys: &[&str],
    named: &[(String, Name)],
    targets: &[(Name, String)],
) -> Result<Vec<Vec<(String, String)>>, TemplateError> {
    let all = blocks_of(env, template)?;
    for (_, block) in named {
        if !all.iter().any(|b| b == block) {
            return Err(TemplateError::UnknownBlock {
                template: template.to_owned(),
                block: block.clone().into_owned(),
                blocks: all,
            });
        }
    }
    let detect = keys.iter().any(|k| !named.iter().any(|(n, _)| n == k));
    let used = if detect {
        uses(env, template)?
    } else {
        Vec::new()
    };
    let id_of = |block: &str| {
        targets
            .iter()
            .find(|(b, _)| b == block)
            .map_or_else(|| block.to_owned(), |(_, id)| id.clone())
    };
    let mut plans = Vec::with_capacity(keys.len());
    for key in keys {
        let mut blocks: Vec<String> = named
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, b)| b.clone().into_owned())
            .collect();
        if blocks.is_empty() {
            let uses_key = |name: &str| {
                used.iter()
                    .any(|(b, _, vars)| b == name && vars.contains(*key))
            };
            blocks = used
                .iter()
                .filter(|(name, parent, _)| {
                    // A block inside another that uses the key comes with that one.
                    uses_key(name) && !parent.as_deref().is_some_and(uses_key)
                })
                .map(|(name, _, _)| name.clone())
                .collect();
            if blocks.is_empty() {
                tracing::warn!(
                    template,
                    key,
                    "Suspense: no block of the template uses this deferred key, so its value \
                     is never shown: use it in a block, or name the block with defer_block"
                );
            }
        }
        plans.push(
            blocks
                .into_iter()
                .map(|b| {
                    let id = id_of(&b);
                    (b, id)
                })
                .collect(),
        );
    }
    Ok(plans)
}

/// Each block of `template` (the definition that wins, through `extends`): its name, the block
/// it is nested in, and the variables its own text reads.
#[allow(clippy::type_complexity)]
fn uses(
    env: &Environment<'static>,
    template: &str,
) -> Result<Vec<(String, Option<String>, HashSet<String>)>, TemplateError> {
    let mut out: Vec<(String, Option<String>, HashSet<String>)> = Vec::new();
    let mut name = template.to_owned();
    for _ in 0..32 {
        let t = env
            .get_template(&name)
            .map_err(|_| TemplateError::NotFound { name: name.clone() })?;
        for text in blocks::texts(t.source()) {
            if out.iter().any(|(n, _, _)| *n == text.name) {
                continue; // overridden by a template that extends this one
            }
            let vars = match env.template_from_str(&text.own) {
                Ok(own) => own.undeclared_variables(false),
                // Not a template on its own (unusual syntax): every word of it counts.
                Err(_) => text
                    .own
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect(),
            };
            out.push((text.name, text.parent, vars));
        }
        match blocks::extends(t.source()) {
            Some(parent) if env.get_template(parent).is_ok() => name = parent.to_owned(),
            _ => break,
        }
    }
    Ok(out)
}

/// Moves the `<template>` before it into the element its `data-target` names: in its place
/// when it is one element with that id, else as its content; then removes both. The same
/// text for every block and every page (a CSP hash of it would do as well as the nonce).
const SWAP_SCRIPT: &str = "(function(s){var t=s.previousElementSibling,\
e=t&&document.getElementById(t.getAttribute(\"data-target\"));\
if(e){var c=t.content.cloneNode(true),f=c.firstElementChild;\
if(f&&f.id===e.id&&c.childElementCount===1){e.replaceWith(c);e=f}else{e.replaceChildren(c)}\
if(window.htmx)window.htmx.process(e)}\
if(t)t.remove();s.remove()})(document.currentScript)";

/// A deferred value under way: its key, the blocks it fills (with their element ids), its
/// future.
type Deferral = (String, Vec<(String, String)>, Pending);

/// The body of a [`Suspense`] response: the shell, then each value's blocks as it resolves.
struct Streaming {
    shell: Option<Bytes>,
    /// The deferred values, each `None` once resolved.
    pending: Vec<Option<Deferral>>,
    templates: Templates,
    template: Name,
    context: Value,
    head: RenderHead,
    resolved: BTreeMap<String, Value>,
    failed: BTreeMap<String, bool>,
    htmx: bool,
    nonce: Option<String>,
}

impl Streaming {
    /// Records what `key`'s future gave, and renders its blocks into `out`.
    fn resolve(
        &mut self,
        key: String,
        blocks: &[(String, String)],
        outcome: Result<Value, Failure>,
        out: &mut String,
    ) {
        match outcome {
            Ok(value) => {
                self.resolved.insert(key, value);
            }
            Err(failure) => {
                let why = match &failure {
                    Failure::Error(e) => crate::error::Error::chain(e.as_ref()),
                    Failure::Panic => "it panicked".to_owned(),
                };
                tracing::error!(
                    template = %self.template,
                    key = %key,
                    error = %why,
                    "Suspense: a deferred value failed; its blocks are rendered with \
                     suspense_errors.{key} set"
                );
                self.failed.insert(key, true);
            }
        }
        if blocks.is_empty() {
            return;
        }
        let env = match self.templates.env() {
            Ok(env) => env,
            Err(e) => {
                tracing::error!(template = %self.template, error = %e, "Suspense: templates unavailable");
                return;
            }
        };
        // The last map that has a key wins: the values over the context.
        let context = minijinja::value::merge_maps([
            self.context.clone(),
            minijinja::context! { suspense_errors => Value::from(self.failed.clone()) },
            Value::from(self.resolved.clone()),
        ]);
        for (block, id) in blocks {
            let rendered = guarded(|| {
                render_block(
                    &env,
                    &self.template,
                    block,
                    context.clone(),
                    Some(&self.head),
                )
            });
            let html = match rendered {
                Ok(Ok(html)) => html,
                Ok(Err(e)) => {
                    tracing::error!(
                        template = %self.template,
                        block = %block,
                        error = %crate::error::Error::chain(&e),
                        "Suspense: a deferred block failed to render; its placeholder stays"
                    );
                    continue;
                }
                Err(_) => continue, // the panic hook has logged it
            };
            if self.htmx {
                out.push_str(&oob::mark(&html, id, None));
                out.push('\n');
            } else {
                let id = escape_html(id);
                out.push_str("<template id=\"suspense-");
                out.push_str(&id);
                out.push_str("\" data-target=\"");
                out.push_str(&id);
                out.push_str("\">");
                out.push_str(&html);
                out.push_str("</template><script");
                if let Some(nonce) = &self.nonce {
                    out.push_str(" nonce=\"");
                    out.push_str(&escape_html(nonce));
                    out.push('"');
                }
                out.push('>');
                out.push_str(SWAP_SCRIPT);
                out.push_str("</script>\n");
            }
        }
    }
}

/// Why a deferred value is missing.
enum Failure {
    Error(BoxError),
    Panic,
}

impl Stream for Streaming {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(shell) = this.shell.take() {
            // A chunk of its own: the server writes it before it waits on the futures.
            return Poll::Ready(Some(Ok(shell)));
        }
        let mut out = String::new();
        for i in 0..this.pending.len() {
            let Some((_, _, future)) = this.pending[i].as_mut() else {
                continue;
            };
            let outcome = match guarded(|| future.as_mut().poll(cx)) {
                Ok(Poll::Pending) => continue,
                Ok(Poll::Ready(Ok(value))) => Ok(value),
                Ok(Poll::Ready(Err(e))) => Err(Failure::Error(e)),
                // The panic hook logged where; `resolve` logs which key.
                Err(_) => Err(Failure::Panic),
            };
            if let Some((key, blocks, future)) = this.pending[i].take() {
                // A future that panicked is dropped here, never polled again.
                drop(future);
                this.resolve(key, &blocks, outcome, &mut out);
            }
        }
        if !out.is_empty() {
            return Poll::Ready(Some(Ok(Bytes::from(out))));
        }
        if this.pending.iter().all(Option::is_none) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}
