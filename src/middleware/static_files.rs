//! [`StaticFilesMiddleware`]: a folder served under a path prefix, as the Python framework's middleware
//! of the same name: GET and HEAD only, `index.html` for folders (the root's own included), a
//! `301` from `/docs` to `/docs/` for a folder with an index (so that its relative links resolve
//! inside it), no listings, an optional not-found page, precompressed siblings (`.br`, `.gz`),
//! a `Cache-Control` knob, and files streamed with validators and ranges
//! ([`Response::file`](crate::Response::file)'s machinery).
//!
//! **Path safety is the point.** A request path reaches the file system only through
//! `relative_path`: every segment percent-decoded and checked (no `.` or `..`, no `/` or
//! `\` or NUL from an escape, no hidden names unless asked), joined under the root and opened
//! with `openat2(RESOLVE_BENEATH)`, so that the kernel itself refuses any way out of the root,
//! symlinks included. Where `openat2` is missing (Linux before 5.6, some sandboxes), the path
//! is canonicalised and checked to lie under the root instead. Anything refused is a `404`.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::ConfigurationError;
use crate::future::BoxFuture;
use crate::http::encoding::accepted_q;
use crate::http::file::file_response;
use crate::http::target::{in_scope, normalize_prefix};
use crate::http::{Method, Request, Response, StatusCode};
use crate::routing::Handler;
use crate::service::{Middleware, Next};

/// Serves the files under a folder at a path prefix.
///
/// As middleware, it answers the GET and HEAD requests under its prefix that name a file, and
/// passes every other request on (a path with no file falls through to the routes, as in the
/// Python framework); as a route handler, a missing file is a `404`.
///
/// ```no_run
/// use chirp::middleware::static_files::StaticFilesMiddleware;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(
///     StaticFilesMiddleware::new("/static", "./public")?.cache_control("public, max-age=86400"),
/// );
/// // or as a route:
/// app.route("/assets/{path:path}", StaticFilesMiddleware::new("/assets", "./assets")?);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct StaticFilesMiddleware {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    root: PathBuf,
    /// The root, opened once: files are opened relative to it.
    root_dir: OwnedFd,
    index: Option<String>,
    /// The page served (with `404`) for a missing file, relative to the root.
    not_found_page: Option<PathBuf>,
    precompressed: bool,
    cache_control: Option<Cow<'static, str>>,
    hidden: bool,
    /// Set once `openat2` turns out to be unavailable.
    no_openat2: AtomicBool,
}

impl StaticFilesMiddleware {
    /// Serves the folder `root` at `prefix` (`"/"` for a whole site). A `root` that is not a
    /// readable folder is a [`ConfigurationError`].
    ///
    /// Defaults (as the Python framework's): `index.html` for folders,
    /// `Cache-Control: public, max-age=3600`, precompressed siblings on, hidden files
    /// (names starting with `.`) never served.
    pub fn new(
        prefix: &str,
        root: impl AsRef<Path>,
    ) -> Result<StaticFilesMiddleware, ConfigurationError> {
        let root = root.as_ref();
        let fail = |e: &dyn std::fmt::Display| {
            ConfigurationError::new(format!(
                "StaticFilesMiddleware root {}: {e}: give the path of an existing folder",
                root.display()
            ))
        };
        let canonical = std::fs::canonicalize(root).map_err(|e| fail(&e))?;
        if !canonical.is_dir() {
            return Err(fail(&"not a folder"));
        }
        let root_dir = rustix::fs::open(
            &canonical,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| fail(&io::Error::from(e)))?;
        Ok(StaticFilesMiddleware {
            inner: Arc::new(Inner {
                prefix: normalize_prefix(prefix),
                root: canonical,
                root_dir,
                index: Some("index.html".to_owned()),
                not_found_page: None,
                precompressed: true,
                cache_control: Some(Cow::Borrowed("public, max-age=3600")),
                hidden: false,
                no_openat2: AtomicBool::new(false),
            }),
        })
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::get_mut(&mut self.inner)
            .expect("StaticFilesMiddleware is configured before it is cloned")
    }

    /// The file served for a folder (default `index.html`); `None`: folders are `404`s.
    pub fn index(mut self, name: Option<&str>) -> StaticFilesMiddleware {
        self.inner_mut().index = name.map(str::to_owned);
        self
    }

    /// A page of the folder (e.g. `404.html`) served with `404 Not Found` for a path under the
    /// prefix that names no file (the Python framework's `not_found_page`). As middleware the
    /// routes are still tried first: the page replaces a `404` error (no route answered, or a
    /// handler's `HttpError`), never a `404` response the app built itself. The page is read like any file of the folder; a name that could not
    /// be served (`..`, hidden) is a [`ConfigurationError`], and a page missing at request
    /// time leaves the plain `404`.
    ///
    /// ```no_run
    /// use chirp::middleware::static_files::StaticFilesMiddleware;
    /// # fn main() -> Result<(), chirp::ConfigurationError> {
    /// let site = StaticFilesMiddleware::new("/", "./public")?.not_found_page("404.html")?;
    /// # Ok(()) }
    /// ```
    pub fn not_found_page(
        mut self,
        page: &str,
    ) -> Result<StaticFilesMiddleware, ConfigurationError> {
        let hidden = self.inner.hidden;
        let relative = relative_path(page, hidden)
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| {
                ConfigurationError::new(format!(
                    "StaticFilesMiddleware::not_found_page {page:?}: name a file inside the folder, e.g. \"404.html\""
                ))
            })?;
        self.inner_mut().not_found_page = Some(relative);
        Ok(self)
    }

    /// The `Cache-Control` of every file served (default `public, max-age=3600`); `None`
    /// sends none.
    pub fn cache_control(
        mut self,
        value: impl Into<Option<&'static str>>,
    ) -> StaticFilesMiddleware {
        self.inner_mut().cache_control = value.into().map(Cow::Borrowed);
        self
    }

    /// Whether `file.br` / `file.gz` beside `file` are served in its place to clients whose
    /// `Accept-Encoding` allows (default on). Responses then say `Vary: Accept-Encoding`.
    pub fn precompressed(mut self, on: bool) -> StaticFilesMiddleware {
        self.inner_mut().precompressed = on;
        self
    }

    /// Whether names starting with `.` (`.env`, `.git/`) are served (default: never).
    pub fn serve_hidden(mut self, on: bool) -> StaticFilesMiddleware {
        self.inner_mut().hidden = on;
        self
    }

    /// What the request asks of this folder: not for it at all, a file, or a refusal.
    fn lookup(&self, req: &Request) -> Lookup {
        let inner = &*self.inner;
        if !matches!(req.method(), Method::Get | Method::Head) {
            return Lookup::NotMine;
        }
        let path = req.path();
        if !in_scope(path.as_bytes(), &inner.prefix) {
            return Lookup::NotMine;
        }
        let rest = if inner.prefix == "/" {
            path
        } else {
            &path[inner.prefix.len()..]
        };
        let Some(relative) = relative_path(rest, inner.hidden) else {
            return Lookup::Refused;
        };
        match self.serve(req, &relative) {
            Ok(Some(res)) => Lookup::Found(res),
            Ok(None) => Lookup::Missing,
            Err(refusal) => refusal,
        }
    }

    /// The response for the file at `relative` (`None`: no such file).
    fn serve(&self, req: &Request, relative: &Path) -> Result<Option<Response>, Lookup> {
        let inner = &*self.inner;
        // The prefix itself names the root: `.` (an empty path opens nothing).
        let at = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let Some(mut file) = self.open(at)? else {
            return Ok(None);
        };
        let mut meta = file.metadata().map_err(|_| Lookup::Refused)?;
        let mut name = relative.to_path_buf();
        if meta.is_dir() {
            let Some(index) = &inner.index else {
                return Ok(None); // no listings
            };
            name.push(index);
            let Some(index_file) = self.open(&name)? else {
                return Ok(None);
            };
            if req.path() != "/" && !req.path_had_trailing_slash() {
                // `/docs` for a folder: its index's relative links (`guide.html`) would
                // resolve against `/`, so the client is sent to `/docs/` first, as the Python
                // framework does. The path is canonical (no `//`), so this stays on the site.
                return Ok(Some(to_slash_form(req)));
            }
            file = index_file;
            meta = file.metadata().map_err(|_| Lookup::Refused)?;
        }
        if !meta.is_file() {
            return Err(Lookup::Refused); // a device, a socket, a fifo
        }
        let mut encoding = None;
        if inner.precompressed {
            if let Some((coding, sibling)) = self.precompressed_sibling(req, &name)? {
                encoding = Some(coding);
                (file, meta) = sibling;
            }
        }
        let mut res = file_response(file, &meta, &name);
        if let Some(coding) = encoding {
            res.append_trusted_header("content-encoding", coding);
        }
        if inner.precompressed {
            res.append_trusted_header("vary", "accept-encoding");
        }
        if let Some(cache) = &inner.cache_control {
            res.append_trusted_header("cache-control", cache.clone());
        }
        Ok(Some(res))
    }

    /// The `.br` or `.gz` sibling of `name` that the client accepts (brotli first on a tie).
    #[allow(clippy::type_complexity)]
    fn precompressed_sibling(
        &self,
        req: &Request,
        name: &Path,
    ) -> Result<Option<(&'static str, (File, std::fs::Metadata))>, Lookup> {
        let Some(accept) = req.header("accept-encoding") else {
            return Ok(None);
        };
        let (br, gzip) = (accepted_q(accept, "br"), accepted_q(accept, "gzip"));
        let mut order: Vec<(&'static str, &'static str, f32)> = Vec::with_capacity(2);
        if br > 0.0 {
            order.push(("br", "br", br));
        }
        if gzip > 0.0 {
            order.push(("gzip", "gz", gzip));
        }
        order.sort_by(|a, b| b.2.total_cmp(&a.2));
        for (coding, ext, _) in order {
            let mut sibling = name.as_os_str().to_owned();
            sibling.push(".");
            sibling.push(ext);
            if let Some(file) = self.open(Path::new(&sibling))? {
                if let Ok(meta) = file.metadata() {
                    if meta.is_file() {
                        return Ok(Some((coding, (file, meta))));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Opens `relative` under the root, never outside it. `Ok(None)`: no such file;
    /// `Err(Refused)`: a way out of the root (or another error worth no detail).
    fn open(&self, relative: &Path) -> Result<Option<File>, Lookup> {
        let inner = &*self.inner;
        if !inner.no_openat2.load(Ordering::Relaxed) {
            use rustix::fs::{Mode, OFlags, ResolveFlags};
            let opened = rustix::fs::openat2(
                &inner.root_dir,
                relative,
                // NONBLOCK: a FIFO under the root must not block the open (see
                // `http::file::open_for_reading`); it is refused as not a regular file after.
                OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
            );
            match opened {
                Ok(fd) => return Ok(Some(File::from(fd))),
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
                Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                    tracing::info!(
                        "openat2 is unavailable: StaticFilesMiddleware checks canonical paths instead"
                    );
                    inner.no_openat2.store(true, Ordering::Relaxed);
                }
                Err(e) => {
                    // EXDEV: the path (a symlink, say) leads out of the root.
                    tracing::debug!(path = %relative.display(), error = %e, "static file refused");
                    return Err(Lookup::Refused);
                }
            }
        }
        open_canonical(&inner.root, relative)
    }
}

/// The fallback of [`StaticFilesMiddleware::open`]: resolves every symlink and checks that the result
/// is still under `root` (canonical) before opening it.
fn open_canonical(root: &Path, relative: &Path) -> Result<Option<File>, Lookup> {
    let canonical = match std::fs::canonicalize(root.join(relative)) {
        Ok(path) => path,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None)
        }
        Err(_) => return Err(Lookup::Refused),
    };
    if !canonical.starts_with(root) {
        return Err(Lookup::Refused);
    }
    match crate::http::file::open_for_reading(&canonical) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(Lookup::Refused),
    }
}

/// What a request comes to.
enum Lookup {
    /// Not a GET or HEAD under the prefix.
    NotMine,
    /// A file, answered.
    Found(Response),
    /// No such file (the request goes on to the routes, as middleware).
    Missing,
    /// A path that is not served on principle (traversal, hidden, not a regular file).
    Refused,
}

/// The file-system path of the part of a (normalised) request path below the prefix, or
/// `None` when it must not reach the file system: every segment is percent-decoded, and one
/// that decodes to `.`, `..`, or holds `/`, `\`, NUL or another control character, or is not
/// UTF-8, or starts with `.` (unless `hidden`), refuses the whole path. The result is
/// relative (never absolute) and free of `..`: joined under the root, it stays there.
pub(crate) fn relative_path(rest: &str, hidden: bool) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for segment in rest.split('/').filter(|s| !s.is_empty()) {
        let decoded = decode_segment(segment)?;
        if decoded == "." || decoded == ".." {
            return None;
        }
        if decoded
            .bytes()
            .any(|b| b == b'/' || b == b'\\' || b < 0x20 || b == 0x7f)
        {
            return None;
        }
        if !hidden && decoded.starts_with('.') {
            return None;
        }
        out.push(decoded);
    }
    Some(out)
}

/// Percent-decodes one segment, strictly: a bad escape or a result that is not UTF-8 is
/// `None`.
fn decode_segment(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn not_found() -> Response {
    Response::error(StatusCode::NOT_FOUND, "Not Found")
}

/// `301` to the request's path with a `/` added, its query kept.
fn to_slash_form(req: &Request) -> Response {
    let mut location = String::with_capacity(req.target().len() + 1);
    location.push_str(req.path());
    location.push('/');
    if let Some(query) = req.query() {
        location.push('?');
        location.push_str(query);
    }
    Response::empty(StatusCode::MOVED_PERMANENTLY).with_header("location", location)
}

impl StaticFilesMiddleware {
    /// The app's not-found page, with `404`, or chirp's plain `404` without one (or when the
    /// page cannot be read now).
    fn not_found_response(&self) -> Response {
        let Some(page) = &self.inner.not_found_page else {
            return not_found();
        };
        let opened = self.open(page).ok().flatten();
        let Some((file, meta)) = opened.and_then(|f| f.metadata().ok().map(|m| (f, m))) else {
            return not_found();
        };
        if !meta.is_file() {
            return not_found();
        }
        let mut res = file_response(file, &meta, page).with_status(StatusCode::NOT_FOUND);
        // A 404 page is not the resource: no caching as if it were, no validators to match.
        res.remove_header("etag");
        res.remove_header("last-modified");
        res.append_trusted_header("cache-control", "no-cache");
        res
    }

    /// `res`, or the not-found page in its place when it is a `404` error (no route answered,
    /// or a handler's `HttpError`); a `404` response the app built itself is kept.
    fn or_not_found_page(&self, res: Response) -> Response {
        if self.inner.not_found_page.is_some()
            && res.status() == StatusCode::NOT_FOUND
            && res.is_error()
        {
            return self.not_found_response();
        }
        res
    }
}

impl Middleware for StaticFilesMiddleware {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        match self.lookup(&req) {
            Lookup::Found(res) => Box::pin(std::future::ready(res)),
            Lookup::Refused => Box::pin(std::future::ready(self.not_found_response())),
            Lookup::NotMine => Box::pin(next.run(req)),
            Lookup::Missing if self.inner.not_found_page.is_none() => Box::pin(next.run(req)),
            Lookup::Missing => Box::pin(async move {
                let res = next.run(req).await;
                self.or_not_found_page(res)
            }),
        }
    }

    fn applies_to(&self, req: &Request) -> bool {
        matches!(req.method(), Method::Get | Method::Head)
            && in_scope(req.path_bytes(), &self.inner.prefix)
    }

    fn name(&self) -> &'static str {
        "StaticFilesMiddleware"
    }
}

impl Handler for StaticFilesMiddleware {
    type Future = std::future::Ready<Response>;
    type Output = Response;

    fn call(&self, req: Request) -> Self::Future {
        let res = match self.lookup(&req) {
            Lookup::Found(res) => res,
            Lookup::NotMine | Lookup::Missing | Lookup::Refused => self.not_found_response(),
        };
        std::future::ready(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let ok = |s: &str| relative_path(s, false).map(|p| p.to_string_lossy().into_owned());
        assert_eq!(ok("/a/b.txt").as_deref(), Some("a/b.txt"));
        assert_eq!(ok("").as_deref(), Some(""));
        assert_eq!(ok("/a%20b").as_deref(), Some("a b"));
        for bad in [
            "/..",
            "/a/%2e%2e",
            "/%2E%2E/x",
            "/a%2Fb",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
            "/a%00b",
            "/%2e",
            "/.env",
            "/.git/config",
            "/a%",
            "/a%zz",
            "/a%ff",
            "/a%0Ab",
        ] {
            assert_eq!(ok(bad), None, "{bad}");
        }
        assert_eq!(
            relative_path("/.well-known/x", true).unwrap(),
            Path::new(".well-known/x")
        );
    }

    /// The fallback for kernels without `openat2` refuses links out of the root as well.
    #[test]
    fn the_canonical_fallback_stays_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
        std::os::unix::fs::symlink("a", root.join("in")).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        assert!(matches!(open_canonical(&root, Path::new("a")), Ok(Some(_))));
        assert!(matches!(
            open_canonical(&root, Path::new("in")),
            Ok(Some(_))
        ));
        assert!(matches!(open_canonical(&root, Path::new("nope")), Ok(None)));
        assert!(matches!(
            open_canonical(&root, Path::new("out")),
            Err(Lookup::Refused)
        ));
    }
}
