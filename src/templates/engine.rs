//! [`Templates`]: the app's templates, loaded and compiled once, and the minijinja
//! environment they render in.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, Value};

use super::error::TemplateError;
use super::globals::{self, RenderScope};
use crate::error::ConfigurationError;
use crate::http::response::RenderHead;

/// The app's templates: every file of a directory, loaded and compiled when they are
/// registered, so that a syntax error is a [`ConfigurationError`] naming the file and the
/// line before the app serves anything. Register them with
/// [`App::templates`](crate::App::templates); handlers then answer with
/// [`Template`](super::Template), [`Fragment`](super::Fragment), [`Page`](super::Page), ...
///
/// Templates are Jinja2 (minijinja): `{{ value }}`, `{% block %}`, `{% extends %}`,
/// `{% include %}`, macros, filters. Output is HTML-escaped in templates named `.html`,
/// `.htm`, `.xml` and `.svg` (also with a `.j2`, `.jinja` or `.jinja2` suffix), and nowhere
/// else. Names are paths relative to the directory, with `/` (`partials/row.html`).
///
/// Cheap to clone (shared). Filters, functions and globals of the app's own go in through
/// [`Templates::environment_mut`]; the request's own (the CSRF field, the CSP nonce, flashes,
/// the user, the path) are there already (see [`globals`](super#per-request-functions)).
///
/// ```
/// use chirp::templates::{context, Templates};
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("hello.html"), "<p>Hello {{ name }}!</p>").unwrap();
/// let templates = Templates::from_dir(dir.path())?;
/// let html = templates.render("hello.html", context! { name => "<World>" }).unwrap();
/// assert_eq!(html, "<p>Hello &lt;World&gt;!</p>");
///
/// // A syntax error is found at once, with the file and the line.
/// std::fs::write(dir.path().join("broken.html"), "line 1\n{% if %}").unwrap();
/// let err = Templates::from_dir(dir.path()).unwrap_err();
/// assert!(err.message().contains("broken.html") && err.message().contains("line 2"));
/// # Ok::<(), chirp::ConfigurationError>(())
/// ```
#[derive(Clone)]
pub struct Templates {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    env: Environment<'static>,
    /// The directories loaded, for [`Templates::auto_reload`].
    dirs: Vec<PathBuf>,
    /// Templates added from strings ([`Templates::with_template`]): kept across reloads.
    added: Vec<(String, String)>,
    route_check: bool,
    reload: Option<Arc<Mutex<Reloaded>>>,
}

/// The environment as last reloaded, and the state of the files it was loaded from.
struct Reloaded {
    stamp: Stamp,
    env: Option<Arc<Environment<'static>>>,
}

/// Every file's name, modification time and length: when any changes, the files are loaded
/// again.
type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .inner
            .env
            .templates()
            .map(|(n, _)| n)
            .filter(|n| !n.contains(BLOCK_MARK))
            .collect();
        f.debug_struct("Templates")
            .field("templates", &names)
            .finish()
    }
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

/// The escaping a template's name asks for: HTML for markup, nothing for the rest.
fn auto_escape(name: &str) -> AutoEscape {
    let name = [".j2", ".jinja2", ".jinja"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    match name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
    {
        Some(ext) if matches!(ext.as_str(), "html" | "htm" | "xml" | "svg") => AutoEscape::Html,
        _ => AutoEscape::None,
    }
}

/// The configuration error of a template that does not compile: its file, its line, why.
fn syntax_error(name: &str, file: Option<&Path>, e: &minijinja::Error) -> ConfigurationError {
    let place = match file {
        Some(file) => format!("template `{name}` ({})", file.display()),
        None => format!("template `{name}`"),
    };
    let line = e.line().map(|l| format!(", line {l}")).unwrap_or_default();
    let why = e.detail().map(|d| format!(" ({d})")).unwrap_or_default();
    ConfigurationError::new(format!(
        "{place}{line}: {}{why}: fix the template",
        e.kind()
    ))
}

/// Every file under `dir` (hidden ones skipped), as (name with `/`, path), sorted.
fn files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if entry.file_type()?.is_dir() {
                pending.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                let name: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                out.push((name.join("/"), path));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn stamp(dirs: &[PathBuf]) -> Stamp {
    let mut stamp = Stamp::new();
    for dir in dirs {
        for (_, path) in files(dir).unwrap_or_default() {
            let meta = std::fs::metadata(&path).ok();
            let modified = meta.as_ref().and_then(|m| m.modified().ok());
            stamp.push((path, modified, meta.map_or(0, |m| m.len())));
        }
    }
    stamp
}

/// The name under which block `block` of template `name` is kept as a template of its own
/// (see [`add_template`]): a mark and the block's name before the extension
/// (`list\u{1}rows.html`), so that auto-escaping, chosen from the name, is the same.
fn block_template(name: &str, block: &str) -> String {
    let (stem, ext) = block_template_parts(name);
    format!("{stem}{BLOCK_MARK}{block}{ext}")
}

/// `name` cut where [`block_template`] puts the mark: before the extension.
fn block_template_parts(name: &str) -> (&str, &str) {
    let cut = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[cut..].find('.').map_or(name.len(), |i| cut + i);
    name.split_at(dot)
}

/// The template of block `block` of template `name` (see [`block_template`]), if there is
/// one. Looked up for each `Fragment`: the name is put together on the stack, not with a
/// `format!` (an allocation, and the formatting machinery, for a name thrown away at once).
fn block_template_of<'env>(
    env: &'env Environment<'static>,
    name: &str,
    block: &str,
) -> Option<minijinja::Template<'env, 'env>> {
    const _: () = assert!(BLOCK_MARK.is_ascii());
    const MARK: &[u8] = &[BLOCK_MARK as u8];
    let (stem, ext) = block_template_parts(name);
    let mut buf = [0u8; 192];
    let mut len = 0;
    for part in [stem.as_bytes(), MARK, block.as_bytes(), ext.as_bytes()] {
        let Some(slot) = buf.get_mut(len..len + part.len()) else {
            // A name too long for the buffer: the general way.
            return env.get_template(&block_template(name, block)).ok();
        };
        slot.copy_from_slice(part);
        len += part.len();
    }
    // Whole strings joined at char boundaries: always UTF-8.
    let joined = std::str::from_utf8(&buf[..len]).ok()?;
    env.get_template(joined).ok()
}

/// What sets the names of [`block_template`] apart (a character no file name has).
const BLOCK_MARK: char = '\u{1}';

/// Adds template `name`, and each of its blocks as a template of its own when it renders the
/// same alone (see [`blocks::standalone`](super::blocks::standalone)): a [`Fragment`] of it
/// then runs its block only, not the whole template first.
///
/// [`Fragment`]: super::Fragment
fn add_template(
    env: &mut Environment<'static>,
    name: String,
    source: String,
) -> Result<(), minijinja::Error> {
    let blocks = super::blocks::standalone(&source);
    env.add_template_owned(name.clone(), source)?;
    for (block, source) in blocks {
        // A block that does not compile alone is rendered the general way.
        let _ = env.add_template_owned(block_template(&name, &block), source);
    }
    Ok(())
}

/// Loads every file of `dir` into `env`; a name already there (another directory's) is an
/// error.
fn load_dir(env: &mut Environment<'static>, dir: &Path) -> Result<(), ConfigurationError> {
    let found = files(dir).map_err(|e| {
        ConfigurationError::new(format!(
            "the templates' directory {} cannot be read ({e}): check the path, relative to \
             the directory the app runs in",
            dir.display()
        ))
    })?;
    for (name, path) in found {
        let source = std::fs::read_to_string(&path).map_err(|e| {
            ConfigurationError::new(format!(
                "template {} cannot be read as UTF-8 text ({e}): keep only templates in {}",
                path.display(),
                dir.display()
            ))
        })?;
        if env.get_template(&name).is_ok() {
            return Err(ConfigurationError::new(format!(
                "template `{name}` is in two directories (the second is {}): rename one",
                path.display()
            )));
        }
        add_template(env, name.clone(), source)
            .map_err(|e| syntax_error(&name, Some(&path), &e))?;
    }
    Ok(())
}

/// The environment a render uses: the one loaded at start, or the last reload.
pub(crate) enum Env<'a> {
    Fixed(&'a Environment<'static>),
    Reloaded(Arc<Environment<'static>>),
}

impl std::ops::Deref for Env<'_> {
    type Target = Environment<'static>;
    fn deref(&self) -> &Environment<'static> {
        match self {
            Env::Fixed(env) => env,
            Env::Reloaded(env) => env,
        }
    }
}

impl Templates {
    /// No templates yet: add them with [`Templates::add_dir`] or
    /// [`Templates::with_template`]. [`Templates::from_dir`] is the usual start.
    pub fn new() -> Templates {
        let mut env = Environment::new();
        env.set_auto_escape_callback(auto_escape);
        globals::register(&mut env);
        Templates {
            inner: Arc::new(Inner {
                env,
                dirs: Vec::new(),
                added: Vec::new(),
                route_check: true,
                reload: None,
            }),
        }
    }

    /// Every file under `dir` (its subfolders too; hidden files skipped), each compiled now.
    ///
    /// # Errors
    /// A [`ConfigurationError`] naming the file (and the line) when the directory cannot be
    /// read, a file is not UTF-8 text, or a template does not compile.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Templates, ConfigurationError> {
        Templates::new().add_dir(dir)
    }

    /// Adds every file under another directory (a component library beside the app's own).
    /// A name found in two directories is an error.
    ///
    /// # Errors
    /// As [`Templates::from_dir`].
    pub fn add_dir(mut self, dir: impl AsRef<Path>) -> Result<Templates, ConfigurationError> {
        let dir = dir.as_ref().to_path_buf();
        let inner = Arc::make_mut(&mut self.inner);
        load_dir(&mut inner.env, &dir)?;
        inner.dirs.push(dir);
        Ok(self)
    }

    /// Adds a template from a string (tests, templates built into the binary with
    /// `include_str!`).
    ///
    /// # Errors
    /// A [`ConfigurationError`] naming the template and the line when it does not compile.
    pub fn with_template(
        mut self,
        name: impl Into<String>,
        source: impl Into<String>,
    ) -> Result<Templates, ConfigurationError> {
        let (name, source) = (name.into(), source.into());
        let inner = Arc::make_mut(&mut self.inner);
        add_template(&mut inner.env, name.clone(), source.clone())
            .map_err(|e| syntax_error(&name, None, &e))?;
        inner.added.push((name, source));
        Ok(self)
    }

    /// The minijinja environment, to add the app's filters, functions, tests and globals
    /// (and settings: `set_undefined_behavior`, `set_trim_blocks`...). Do not add templates
    /// here ([`Templates::with_template`] keeps them across reloads).
    ///
    /// ```
    /// use chirp::templates::{context, Templates};
    /// let mut templates = Templates::new().with_template("t.html", "{{ name|shout }} {{ site }}")?;
    /// let env = templates.environment_mut();
    /// env.add_filter("shout", |s: String| s.to_uppercase());
    /// env.add_global("site", "chirp");
    /// assert_eq!(templates.render("t.html", context! { name => "hi" }).unwrap(), "HI chirp");
    /// # Ok::<(), chirp::ConfigurationError>(())
    /// ```
    pub fn environment_mut(&mut self) -> &mut Environment<'static> {
        &mut Arc::make_mut(&mut self.inner).env
    }

    /// The environment (to inspect it, or render outside chirp).
    pub fn environment(&self) -> &Environment<'static> {
        &self.inner.env
    }

    /// Makes `current_user()` in templates the app's user type, serialized: the signed-in
    /// user, or the anonymous one ([`AuthConfig::anonymous`]), else `none`. Without it,
    /// `current_user()` gives what every user type has: `{id, is_authenticated}` when
    /// someone is signed in.
    ///
    /// [`AuthConfig::anonymous`]: crate::middleware::auth::AuthConfig::anonymous
    pub fn user<U: crate::middleware::auth::AuthUser + serde::Serialize>(mut self) -> Templates {
        globals::user_function::<U>(self.environment_mut());
        self
    }

    /// Skips the check, at build, of the URLs the templates send requests to (`hx-get`,
    /// `hx-post`, ..., `<form action method>`) against the app's routes: for an app whose
    /// templates name URLs another server answers, or that it builds in ways the check
    /// cannot follow. (Dynamic URLs, `{{ ... }}` in them, are skipped anyway.)
    pub fn skip_route_check(mut self) -> Templates {
        Arc::make_mut(&mut self.inner).route_check = false;
        self
    }

    /// Whether the routes are checked at build (see [`Templates::skip_route_check`]).
    pub(crate) fn checks_routes(&self) -> bool {
        self.inner.route_check
    }

    /// Reloads the directories' templates when a file changes (added, removed, edited), for
    /// development: each render first looks at every file's modification time and length.
    /// Off by default, so that what a server runs is what was checked at start; turn it on
    /// for debug builds with `.auto_reload(cfg!(debug_assertions))`. A template that no
    /// longer compiles after an edit fails the renders that need the templates, as a logged
    /// `500` naming the file and the line, until it is fixed.
    pub fn auto_reload(mut self, on: bool) -> Templates {
        let dirs = self.inner.dirs.clone();
        Arc::make_mut(&mut self.inner).reload = on.then(|| {
            Arc::new(Mutex::new(Reloaded {
                stamp: stamp(&dirs),
                env: None,
            }))
        });
        self
    }

    /// Every template's name and source, for the route check at build.
    pub(crate) fn sources(&self) -> Vec<(String, String)> {
        self.inner
            .env
            .templates()
            .filter(|(name, _)| !name.contains(BLOCK_MARK))
            .map(|(name, t)| (name.to_owned(), t.source().to_owned()))
            .collect()
    }

    /// Whether a template of this name is loaded.
    pub fn has_template(&self, name: &str) -> bool {
        self.inner.env.get_template(name).is_ok()
    }

    /// The environment to render with: reloaded first when a file changed (see
    /// [`Templates::auto_reload`]).
    pub(crate) fn env(&self) -> Result<Env<'_>, TemplateError> {
        let Some(reload) = &self.inner.reload else {
            return Ok(Env::Fixed(&self.inner.env));
        };
        let mut reloaded = reload.lock().unwrap_or_else(|e| e.into_inner());
        let now = stamp(&self.inner.dirs);
        if now != reloaded.stamp {
            let mut env = self.inner.env.clone();
            env.clear_templates();
            for dir in &self.inner.dirs {
                load_dir(&mut env, dir)
                    .map_err(|e| TemplateError::Reload(e.message().to_owned()))?;
            }
            for (name, source) in &self.inner.added {
                add_template(&mut env, name.clone(), source.clone())?;
            }
            reloaded.env = Some(Arc::new(env));
            reloaded.stamp = now;
        }
        Ok(match &reloaded.env {
            Some(env) => Env::Reloaded(env.clone()),
            None => Env::Fixed(&self.inner.env),
        })
    }

    /// The blocks `template` has: its own and those of the templates it extends, in order.
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] when there is no such template.
    pub fn blocks(&self, template: &str) -> Result<Vec<String>, TemplateError> {
        let env = self.env()?;
        blocks_of(&env, template)
    }

    /// Checks that `template` has a block `block`, with an error that names the blocks it
    /// has: for a test, or a `debug_assert!` beside a [`Fragment`](super::Fragment) whose
    /// names are literal. (A missing block is found at render in any case: a logged `500`
    /// with the same message.)
    ///
    /// ```
    /// use chirp::templates::Templates;
    /// let t = Templates::new().with_template("list.html", "{% block items %}{% endblock %}")?;
    /// assert!(t.check_block("list.html", "items").is_ok());
    /// let err = t.check_block("list.html", "rows").unwrap_err().to_string();
    /// assert!(err.contains("no block `rows`") && err.contains("items"));
    /// # Ok::<(), chirp::ConfigurationError>(())
    /// ```
    ///
    /// # Errors
    /// [`TemplateError::NotFound`] or [`TemplateError::UnknownBlock`].
    pub fn check_block(&self, template: &str, block: &str) -> Result<(), TemplateError> {
        let blocks = self.blocks(template)?;
        if blocks.iter().any(|b| b == block) {
            Ok(())
        } else {
            Err(TemplateError::UnknownBlock {
                template: template.to_owned(),
                block: block.to_owned(),
                blocks,
            })
        }
    }

    /// Renders template `name` with `context` (anything `serde::Serialize`: a
    /// [`context!`](super::context), a struct, a `serde_json::Value`). Inside a request the
    /// per-request functions work as in a response; elsewhere they are undefined.
    ///
    /// # Errors
    /// [`TemplateError`]: no such template, or minijinja failed.
    pub fn render(
        &self,
        name: &str,
        context: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        let env = self.env()?;
        render_template(&env, name, Value::from(Serde(&context)), None)
    }

    /// Renders block `block` of template `name` with `context`.
    ///
    /// # Errors
    /// [`TemplateError`]: no such template or block (naming the blocks it has), or minijinja
    /// failed.
    pub fn render_block(
        &self,
        name: &str,
        block: &str,
        context: impl serde::Serialize,
    ) -> Result<String, TemplateError> {
        let env = self.env()?;
        render_block(&env, name, block, Value::from(Serde(&context)), None)
    }
}

/// The blocks of `template` and of the templates it extends.
pub(crate) fn blocks_of(
    env: &Environment<'static>,
    template: &str,
) -> Result<Vec<String>, TemplateError> {
    let mut blocks = Vec::new();
    let mut name = Cow::Borrowed(template);
    for _ in 0..32 {
        let t = env
            .get_template(&name)
            .map_err(|_| TemplateError::NotFound {
                name: name.clone().into_owned(),
            })?;
        for block in super::blocks::defined(t.source()) {
            if !blocks.contains(&block) {
                blocks.push(block);
            }
        }
        match super::blocks::extends(t.source()) {
            Some(parent) if env.get_template(parent).is_ok() => {
                name = Cow::Owned(parent.to_owned())
            }
            _ => break,
        }
    }
    Ok(blocks)
}

fn not_found(name: &str, e: minijinja::Error) -> TemplateError {
    if e.kind() == minijinja::ErrorKind::TemplateNotFound {
        TemplateError::NotFound {
            name: name.to_owned(),
        }
    } else {
        TemplateError::Render(e)
    }
}

/// Renders the whole template `name`.
pub(crate) fn render_template(
    env: &Environment<'static>,
    name: &str,
    context: Value,
    head: Option<&RenderHead>,
) -> Result<String, TemplateError> {
    let template = env.get_template(name).map_err(|e| not_found(name, e))?;
    let _scope = RenderScope::for_request(head);
    Ok(template.render(context)?)
}

/// Renders block `block` of template `name`.
pub(crate) fn render_block(
    env: &Environment<'static>,
    name: &str,
    block: &str,
    context: Value,
    head: Option<&RenderHead>,
) -> Result<String, TemplateError> {
    if let Some(alone) = block_template_of(env, name, block) {
        let _scope = RenderScope::for_request(head);
        return Ok(alone.render(context)?);
    }
    let template = env.get_template(name).map_err(|e| not_found(name, e))?;
    let scope = RenderScope::for_request(head);
    // minijinja renders a block from the state of a whole evaluation of the template (its
    // `extends`, `set`s and imports): that evaluation's output is thrown away.
    scope.discarding(true);
    let mut state = template.render_captured_to(context, std::io::sink())?;
    scope.discarding(false);
    state
        .with_state_mut(|state| state.render_block(block))
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::UnknownBlock => TemplateError::UnknownBlock {
                template: name.to_owned(),
                block: block.to_owned(),
                blocks: blocks_of(env, name).unwrap_or_default(),
            },
            _ => TemplateError::Render(e),
        })
}

/// Renders an inline template (compiled now, named so that it is escaped as HTML).
pub(crate) fn render_inline(
    env: &Environment<'static>,
    source: &str,
    context: Value,
    head: Option<&RenderHead>,
) -> Result<String, TemplateError> {
    let template = env.template_from_named_str("inline.html", source)?;
    let _scope = RenderScope::for_request(head);
    Ok(template.render(context)?)
}
