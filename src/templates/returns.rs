//! What handlers return: [`Template`], [`Fragment`], [`Page`], [`OOB`], [`ValidationError`]
//! (the Python framework's `returns.py`). Each becomes a response whose body is rendered
//! later, at the end of the middleware chain (see the [module docs](super) and `render.rs`),
//! so converting one is cheap and a handler may still set its status and headers:
//! `(StatusCode::CREATED, template)`.

use std::borrow::Cow;

use minijinja::value::Serde;
use minijinja::Value;

type Name = Cow<'static, str>;

/// A whole template.
///
/// ```
/// use chirp::templates::{context, Template};
/// use chirp::Request;
/// async fn home(_req: Request) -> Template {
///     Template::new("home.html", context! { title => "Home", items => vec!["a", "b"] })
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    pub(crate) name: Name,
    pub(crate) context: Value,
    pub(crate) inline: bool,
}

impl Template {
    /// Template `name` with `context`: anything `serde::Serialize` (a
    /// [`context!`](super::context), a struct of your own, `serde_json::json!`).
    pub fn new(name: impl Into<Name>, context: impl serde::Serialize) -> Template {
        Template {
            name: name.into(),
            context: Value::from(Serde(&context)),
            inline: false,
        }
    }

    /// A template given as its source, for prototyping: compiled when it is rendered, so
    /// that a syntax error is a logged `500`, not an error at build (move it to a file
    /// before long). Escaped as HTML; it may `{% extends %}` or `{% include %}` the app's
    /// templates. Works without registered templates too.
    ///
    /// ```
    /// use chirp::templates::{context, Template};
    /// let page = Template::inline("<h1>{{ title }}</h1>", context! { title => "Hi" });
    /// # let _ = page;
    /// ```
    pub fn inline(source: impl Into<Name>, context: impl serde::Serialize) -> Template {
        Template {
            name: source.into(),
            context: Value::from(Serde(&context)),
            inline: true,
        }
    }
}

/// One named block of a template: the answer to an htmx request that swaps part of a page.
///
/// In an [`OOB`] answer, [`target`](Fragment::target) is the id of the element it is swapped
/// into (by default the block's name) and [`swap`](Fragment::swap) the `hx-swap-oob` value;
/// as a Server-Sent Event ([`Templates::event`](super::Templates::event)), the target names
/// the event (`sse-swap="..."`), `fragment` without one.
///
/// ```
/// use chirp::templates::{context, Fragment};
/// let rows = Fragment::new("tasks.html", "task_list", context! { tasks => vec!["a"] });
/// let count = Fragment::new("tasks.html", "count", context! { n => 1 }).target("#task-count");
/// # let _ = (rows, count);
/// ```
#[derive(Debug, Clone)]
pub struct Fragment {
    pub(crate) template: Name,
    pub(crate) block: Name,
    pub(crate) context: Value,
    pub(crate) target: Option<String>,
    pub(crate) swap: Option<String>,
}

impl Fragment {
    /// Block `block` of template `template`, rendered with `context`.
    pub fn new(
        template: impl Into<Name>,
        block: impl Into<Name>,
        context: impl serde::Serialize,
    ) -> Fragment {
        Fragment {
            template: template.into(),
            block: block.into(),
            context: Value::from(Serde(&context)),
            target: None,
            swap: None,
        }
    }

    /// The element it goes into, as an id (`task-count`) or a selector of one (`#task-count`).
    pub fn target(mut self, target: impl Into<String>) -> Fragment {
        self.target = Some(target.into());
        self
    }

    /// How an out-of-band swap places it (`hx-swap-oob`: `true`, `outerHTML`, `innerHTML`,
    /// `beforeend`, ...).
    pub fn swap(mut self, swap: impl Into<String>) -> Fragment {
        self.swap = Some(swap.into());
        self
    }

    /// The id of the element it is swapped into out of band: the target without `#`, else the
    /// block's name.
    pub(crate) fn oob_id(&self) -> &str {
        match &self.target {
            Some(target) => target.strip_prefix('#').unwrap_or(target),
            None => &self.block,
        }
    }

    /// The name of its Server-Sent Event: the target without `#`, else `fragment`.
    pub fn event_name(&self) -> &str {
        match &self.target {
            Some(target) => target.strip_prefix('#').unwrap_or(target),
            None => "fragment",
        }
    }
}

/// A page that answers each kind of request with what it needs: the whole template for a
/// normal load and for htmx's history restore (`HX-History-Restore-Request`), the named block
/// for an htmx request (`HX-Request`), and, when set, a wider block for boosted navigation
/// (`HX-Boosted`). The answer carries `Vary: HX-Request, HX-History-Restore-Request` (and
/// `HX-Boosted` with a boosted block), so that caches keep the versions apart.
///
/// ```
/// use chirp::templates::{context, Page};
/// let page = Page::new("tasks.html", "task_list", context! { tasks => vec!["a"] })
///     .boosted_block("content");
/// # let _ = page;
/// ```
#[derive(Debug, Clone)]
pub struct Page {
    pub(crate) template: Name,
    pub(crate) block: Name,
    pub(crate) boosted: Option<Name>,
    pub(crate) context: Value,
}

impl Page {
    /// Template `template` with `context`; block `block` for htmx requests.
    pub fn new(
        template: impl Into<Name>,
        block: impl Into<Name>,
        context: impl serde::Serialize,
    ) -> Page {
        Page {
            template: template.into(),
            block: block.into(),
            boosted: None,
            context: Value::from(Serde(&context)),
        }
    }

    /// The block a boosted navigation (`hx-boost`) gets instead of `block`: the part of the
    /// page that changes from page to page.
    pub fn boosted_block(mut self, block: impl Into<Name>) -> Page {
        self.boosted = Some(block.into());
        self
    }

    /// The `Vary` of its answers.
    pub(crate) fn vary(&self) -> &'static str {
        if self.boosted.is_some() {
            "HX-Request, HX-Boosted, HX-History-Restore-Request"
        } else {
            "HX-Request, HX-History-Restore-Request"
        }
    }
}

/// The main answer of an [`OOB`]: what htmx swaps into the request's target.
#[derive(Debug, Clone)]
pub enum Main {
    /// A whole template.
    Template(Template),
    /// A block.
    Fragment(Fragment),
    /// A page, negotiated as [`Page`] is.
    Page(Page),
}

impl From<Template> for Main {
    fn from(t: Template) -> Main {
        Main::Template(t)
    }
}

impl From<Fragment> for Main {
    fn from(f: Fragment) -> Main {
        Main::Fragment(f)
    }
}

impl From<Page> for Main {
    fn from(p: Page) -> Main {
        Main::Page(p)
    }
}

/// A main answer plus fragments swapped out of band (htmx's `hx-swap-oob`): after swapping
/// the main part into the request's target, htmx swaps each fragment into the element with
/// its id, anywhere on the page (a counter, a notification badge).
///
/// Each fragment goes to the element its [`target`](Fragment::target) names (else its block's
/// name). When a fragment renders as that one element, it is marked with
/// `hx-swap-oob="true"` (or its [`swap`](Fragment::swap)) and replaces it; otherwise it is
/// wrapped in `<div id="..." hx-swap-oob="innerHTML">` and fills it.
///
/// ```
/// use chirp::templates::{context, Fragment, OOB};
/// let answer = OOB::new(Fragment::new("tasks.html", "task", context! { title => "Write" }))
///     .with(Fragment::new("tasks.html", "count", context! { count => 3 }).target("#task-count"));
/// # let _ = answer;
/// ```
#[derive(Debug, Clone)]
#[allow(clippy::upper_case_acronyms)] // htmx's name for it, and the Python framework's
pub struct OOB {
    pub(crate) main: Main,
    pub(crate) fragments: Vec<Fragment>,
}

impl OOB {
    /// `main` ([`Template`], [`Fragment`] or [`Page`]), no fragments yet.
    pub fn new(main: impl Into<Main>) -> OOB {
        OOB {
            main: main.into(),
            fragments: Vec::new(),
        }
    }

    /// Adds a fragment swapped out of band.
    pub fn with(mut self, fragment: Fragment) -> OOB {
        self.fragments.push(fragment);
        self
    }
}

/// A form that did not validate, rendered again with its errors: one block, with status
/// `422 Unprocessable Content`. (htmx 2 swaps a 4xx answer only when told to: its
/// `htmx.config.responseHandling`, or the response-targets extension; a
/// [`retarget`](ValidationError::retarget) sends the block elsewhere with `HX-Retarget`.)
///
/// ```
/// use chirp::templates::{context, ValidationError};
/// let answer = ValidationError::new("tasks.html", "form", context! {
///     errors => context! { title => "A title is needed" },
///     title => "",
/// });
/// # let _ = answer;
/// ```
#[derive(Debug, Clone)]
pub struct ValidationError {
    pub(crate) fragment: Fragment,
    pub(crate) retarget: Option<String>,
}

impl ValidationError {
    /// Block `block` of `template` with `context` (the values entered and their errors).
    pub fn new(
        template: impl Into<Name>,
        block: impl Into<Name>,
        context: impl serde::Serialize,
    ) -> ValidationError {
        ValidationError {
            fragment: Fragment::new(template, block, context),
            retarget: None,
        }
    }

    /// Swaps the block into this element instead of the request's target (`HX-Retarget`, a
    /// CSS selector).
    pub fn retarget(mut self, selector: impl Into<String>) -> ValidationError {
        self.retarget = Some(selector.into());
        self
    }
}
