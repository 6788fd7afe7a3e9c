//! The route table: a tree of path segments.
//!
//! Patterns are `/static`, `/{name}` (one segment), `/{name:int}` (digits) and
//! `/{name:path}` (the rest of the path, last only). At each level a static segment wins over
//! an `int` parameter, which wins over a plain parameter, which wins over a catch-all; a branch
//! that fails deeper down falls back to the next one. Empty segments are ignored on both sides,
//! so `/users/`, `//users` and `/users` are the same path, as in the Python framework.
//! Matching allocates only for the parameters it captures.

use std::sync::Arc;

use super::handler::ErasedHandler;
use crate::error::ConfigurationError;
use crate::future::BoxFuture;
use crate::http::encoding::percent_decode;
use crate::http::BodyConfig;
use crate::http::{Method, Request, Response, StatusCode};
use crate::panic::{guarded, panic_response};

type Params = Vec<(Arc<str>, String)>;

/// The handlers of one pattern, one slot per method, and the `Allow` value they make.
struct Endpoints {
    pattern: String,
    handlers: [Option<Arc<dyn ErasedHandler>>; Method::ALL.len()],
    /// Handlers of extension methods ([`Method::other`]), in registration order.
    others: Vec<(Method, Arc<dyn ErasedHandler>)>,
    allow: String,
    /// How this pattern's routes take request bodies (`None`: the server's default).
    body: Option<BodyConfig>,
}

impl Endpoints {
    fn new(pattern: &str) -> Self {
        Endpoints {
            pattern: pattern.to_owned(),
            handlers: Default::default(),
            others: Vec::new(),
            allow: String::new(),
            body: None,
        }
    }

    #[inline]
    fn handler(&self, method: Method) -> Option<&Arc<dyn ErasedHandler>> {
        let Some(i) = method.index() else {
            return self
                .others
                .iter()
                .find(|(m, _)| *m == method)
                .map(|(_, h)| h);
        };
        match &self.handlers[i] {
            None if method == Method::Head => self.handlers[0].as_ref(),
            h => h.as_ref(),
        }
    }

    fn has(&self, method: Method) -> bool {
        match method.index() {
            Some(i) => self.handlers[i].is_some(),
            None => self.others.iter().any(|(m, _)| *m == method),
        }
    }

    fn set(&mut self, method: Method, handler: Arc<dyn ErasedHandler>) {
        match method.index() {
            Some(i) => self.handlers[i] = Some(handler),
            None => self.others.push((method, handler)),
        }
    }

    /// `Allow` lists the methods with a handler, HEAD where GET is, and OPTIONS always;
    /// extension methods last.
    fn refresh_allow(&mut self) {
        let has = |m: Method| self.has(m);
        let allowed: Vec<&str> = Method::ALL
            .iter()
            .filter(|&&m| has(m) || (m == Method::Head && has(Method::Get)) || m == Method::Options)
            .chain(self.others.iter().map(|(m, _)| m))
            .map(|m| m.as_str())
            .collect();
        self.allow = allowed.join(", ");
    }
}

/// A parameter's kind, from `{name}`, `{name:int}`, `{name:path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Path,
}

enum Segment<'a> {
    Static(&'a str),
    Param(&'a str, Kind),
}

#[derive(Default)]
struct Node {
    statics: Vec<(Box<str>, Node)>,
    int_param: Option<(Arc<str>, Box<Node>)>,
    str_param: Option<(Arc<str>, Box<Node>)>,
    catch_all: Option<(Arc<str>, Endpoints)>,
    endpoints: Option<Endpoints>,
}

/// The first non-empty segment of `path` and what follows it.
fn next_segment(path: &[u8]) -> Option<(&[u8], &[u8])> {
    let start = path.iter().position(|&b| b != b'/')?;
    let p = &path[start..];
    Some(match p.iter().position(|&b| b == b'/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, &[]),
    })
}

fn is_int(segment: &str) -> bool {
    !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit())
}

/// A path piece as text: pieces of a UTF-8 path cut at `/` are UTF-8 themselves.
fn as_text(piece: &[u8]) -> Option<&str> {
    std::str::from_utf8(piece).ok()
}

impl Node {
    /// Works on the path's bytes: only a parameter's piece is turned into text.
    fn find<'n>(&'n self, path: &[u8], params: &mut Params) -> Option<&'n Endpoints> {
        let Some((segment, rest)) = next_segment(path) else {
            return self.endpoints.as_ref();
        };
        if let Some((_, child)) = self.statics.iter().find(|(s, _)| s.as_bytes() == segment) {
            if let Some(found) = child.find(rest, params) {
                return Some(found);
            }
        }
        let params_before = params.len();
        let segment = as_text(segment)?;
        for (param, accept) in [
            (&self.int_param, is_int as fn(&str) -> bool),
            (&self.str_param, |_: &str| true),
        ] {
            if let Some((name, child)) = param {
                if accept(segment) {
                    params.push((name.clone(), percent_decode(segment, false).into_owned()));
                    if let Some(found) = child.find(rest, params) {
                        return Some(found);
                    }
                    params.truncate(params_before);
                }
            }
        }
        let (name, endpoints) = self.catch_all.as_ref()?;
        params.push((
            name.clone(),
            percent_decode(as_text(path)?.trim_matches('/'), false).into_owned(),
        ));
        Some(endpoints)
    }
}

impl Node {
    /// The endpoints registered for `pattern` (spelled as at registration, up to empty
    /// segments), if any.
    fn endpoints_mut(&mut self, pattern: &str) -> Option<&mut Endpoints> {
        let mut node = self;
        for segment in parse_pattern(pattern).ok()? {
            node = match segment {
                Segment::Static(s) => &mut node.statics.iter_mut().find(|(n, _)| **n == *s)?.1,
                Segment::Param(_, Kind::Path) => return node.catch_all.as_mut().map(|(_, e)| e),
                Segment::Param(_, Kind::Int) => &mut *node.int_param.as_mut()?.1,
                Segment::Param(_, Kind::Str) => &mut *node.str_param.as_mut()?.1,
            };
        }
        node.endpoints.as_mut()
    }
}

/// Splits a pattern into segments, or says what is wrong with it.
fn parse_pattern(pattern: &str) -> Result<Vec<Segment<'_>>, ConfigurationError> {
    let bad = |why: &str| ConfigurationError::new(format!("route pattern {pattern:?}: {why}"));
    if !pattern.starts_with('/') {
        return Err(bad("must start with '/'"));
    }
    let raw: Vec<&str> = pattern.split('/').filter(|s| !s.is_empty()).collect();
    let mut segments = Vec::with_capacity(raw.len());
    let mut names: Vec<&str> = Vec::new();
    for (i, seg) in raw.iter().enumerate() {
        if seg.contains('<') || seg.contains('>') {
            return Err(bad("parameters are written {name}, not <name>"));
        }
        if !seg.contains('{') && !seg.contains('}') {
            if seg
                .bytes()
                .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
            {
                return Err(bad(
                    "static segments cannot hold spaces, '?', '#' or control characters",
                ));
            }
            segments.push(Segment::Static(seg));
            continue;
        }
        let inner = seg
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .filter(|s| !s.contains('{') && !s.contains('}'))
            .ok_or_else(|| {
                bad("a parameter must be a whole segment: {name}, {name:int} or {name:path}")
            })?;
        let (name, kind) = match inner.split_once(':') {
            None => (inner, Kind::Str),
            Some((n, "str")) => (n, Kind::Str),
            Some((n, "int")) => (n, Kind::Int),
            Some((n, "path")) => (n, Kind::Path),
            Some((_, other)) => {
                return Err(bad(&format!(
                    "unknown parameter type {other:?} (use str, int or path)"
                )))
            }
        };
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(bad(&format!(
                "parameter name {name:?} is not an identifier"
            )));
        }
        if names.contains(&name) {
            return Err(bad(&format!("parameter {name:?} appears twice")));
        }
        if kind == Kind::Path && i + 1 != raw.len() {
            return Err(bad("a {name:path} parameter must be the last segment"));
        }
        names.push(name);
        segments.push(Segment::Param(name, kind));
    }
    Ok(segments)
}

/// The route table.
#[derive(Default)]
pub(crate) struct Router {
    root: Node,
    table: Vec<(Method, String)>,
    /// Extension methods some route serves: any other is `501`, not `405`.
    extensions: Vec<Method>,
    /// What answers a path no pattern matches (`None`: a plain 404).
    fallback: Option<Arc<dyn ErasedHandler>>,
    /// Whether any route has its own [`BodyConfig`], and the largest limit among them.
    has_bodies: bool,
    largest_body: usize,
}

impl Router {
    /// Adds `handler` for `methods` at `pattern`.
    pub(crate) fn insert(
        &mut self,
        pattern: &str,
        methods: &[Method],
        handler: Arc<dyn ErasedHandler>,
    ) -> Result<(), ConfigurationError> {
        let segments = parse_pattern(pattern)?;
        let conflict = |other: &str| {
            ConfigurationError::new(format!("route pattern {pattern:?} conflicts with {other:?}: rename the parameter or the route"))
        };
        let mut node = &mut self.root;
        let mut endpoints = None;
        for segment in segments {
            match segment {
                Segment::Static(s) => {
                    let i = match node.statics.iter().position(|(name, _)| **name == *s) {
                        Some(i) => i,
                        None => {
                            node.statics.push((s.into(), Node::default()));
                            node.statics.len() - 1
                        }
                    };
                    node = &mut node.statics[i].1;
                }
                Segment::Param(name, Kind::Path) => {
                    let (existing, eps) = node
                        .catch_all
                        .get_or_insert_with(|| (Arc::from(name), Endpoints::new(pattern)));
                    if &**existing != name {
                        return Err(conflict(&eps.pattern));
                    }
                    endpoints = Some(eps);
                    break;
                }
                Segment::Param(name, kind) => {
                    let slot = if kind == Kind::Int {
                        &mut node.int_param
                    } else {
                        &mut node.str_param
                    };
                    let (existing, child) =
                        slot.get_or_insert_with(|| (Arc::from(name), Box::default()));
                    if &**existing != name {
                        let other = existing.to_string();
                        return Err(conflict(&format!(
                            "a route with {{{other}}} at the same place"
                        )));
                    }
                    node = child;
                }
            }
        }
        let endpoints = match endpoints {
            Some(e) => e,
            None => node
                .endpoints
                .get_or_insert_with(|| Endpoints::new(pattern)),
        };
        for &method in methods {
            if endpoints.has(method) {
                return Err(ConfigurationError::new(format!(
                    "route {method} {pattern:?} is registered twice (first as {:?})",
                    endpoints.pattern
                )));
            }
        }
        for &method in methods {
            endpoints.set(method, handler.clone());
            self.table.push((method, pattern.to_owned()));
            if method.index().is_none() && !self.extensions.contains(&method) {
                self.extensions.push(method);
            }
        }
        endpoints.refresh_allow();
        Ok(())
    }

    /// Sets how the routes of `pattern` (registered already) take request bodies.
    pub(crate) fn set_body(
        &mut self,
        pattern: &str,
        body: BodyConfig,
    ) -> Result<(), ConfigurationError> {
        let endpoints = self.root.endpoints_mut(pattern).ok_or_else(|| {
            ConfigurationError::new(format!(
                "route_body({pattern:?}): no route has this pattern; add the route first"
            ))
        })?;
        endpoints.body = Some(body);
        self.largest_body = self.largest_body.max(body.max_size);
        self.has_bodies = true;
        Ok(())
    }

    /// How a request for `path` takes its body, when its route says (`None`: the default).
    #[inline]
    pub(crate) fn body_config(&self, path: &[u8]) -> Option<BodyConfig> {
        if !self.has_bodies {
            return None;
        }
        self.root.find(path, &mut Params::new())?.body
    }

    /// Sets the handler for paths no pattern matches.
    /// Whether a fallback handler answers the paths no route matches (the templates' route
    /// check does not run then).
    #[cfg(feature = "templates")]
    pub(crate) fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    pub(crate) fn set_fallback(&mut self, handler: Arc<dyn ErasedHandler>) {
        self.fallback = Some(handler);
    }

    #[cfg(feature = "internals")]
    /// Whether `path` matches a pattern (any method); for benchmarks.
    pub(crate) fn has_route(&self, path: &str) -> bool {
        self.root
            .find(path.as_bytes(), &mut Params::new())
            .is_some()
    }

    /// The table, in registration order.
    pub(crate) fn routes(&self) -> &[(Method, String)] {
        &self.table
    }

    /// The handler for `req` (its route's parameters now set on it), or the answer when
    /// there is none: 404, 405 (+`Allow`), or OPTIONS answered here. Takes the request by
    /// reference so that the caller moves it once, straight into the handler.
    #[inline(always)]
    pub(crate) fn route(&self, req: &mut Request) -> Result<&dyn ErasedHandler, Response> {
        let method = req.method();
        if method.index().is_none() && !self.extensions.contains(&method) {
            // Declared somewhere in the process, but served by no route of this app.
            return Err(Response::error(
                StatusCode::NOT_IMPLEMENTED,
                "Not Implemented",
            ));
        }
        let mut params = Params::new();
        let Some(endpoints) = self.root.find(req.path_bytes(), &mut params) else {
            return match &self.fallback {
                Some(fallback) => Ok(&**fallback),
                None => Err(Response::error(StatusCode::NOT_FOUND, "Not Found")),
            };
        };
        let allow = || endpoints.allow.clone();
        Err(match endpoints.handler(method) {
            Some(handler) => {
                if !params.is_empty() {
                    req.set_params(params);
                }
                return Ok(&**handler);
            }
            None if method == Method::Options => {
                let mut res = Response::empty(StatusCode::NO_CONTENT);
                res.append_trusted_header("allow", allow());
                res
            }
            None => {
                let mut res = Response::error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                res.append_trusted_header("allow", allow());
                res
            }
        })
    }

    /// Routes `req` and starts its handler, behind middleware (no connection slot there: the
    /// handler's future is boxed). Not async, so the request is not held in future state: the
    /// caller awaits the handler's future itself (under `catch_panic`). A panic while routing
    /// or starting is a `500` here.
    pub(crate) fn start_boxed(
        &self,
        mut req: Request,
    ) -> Result<BoxFuture<'static, Response>, Response> {
        let started = guarded(|| self.route(&mut req).map(|handler| handler.call_boxed(req)));
        started.unwrap_or_else(|payload| Err(panic_response(payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::handler::erase;

    fn router(patterns: &[&str]) -> Router {
        let mut r = Router::default();
        for (i, p) in patterns.iter().enumerate() {
            let tag = i.to_string();
            r.insert(
                p,
                &[Method::Get],
                erase(move |_req: Request| {
                    let tag = tag.clone();
                    async move { tag }
                }),
            )
            .unwrap();
        }
        r
    }

    fn find(r: &Router, path: &str) -> Option<(String, Vec<(String, String)>)> {
        let mut params = Params::new();
        let e = r.root.find(path.as_bytes(), &mut params)?;
        Some((
            e.pattern.clone(),
            params
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect(),
        ))
    }

    #[test]
    fn static_wins_over_params() {
        let r = router(&["/users/{id}", "/users/me", "/users/{id:int}"]);
        assert_eq!(find(&r, "/users/me").unwrap().0, "/users/me");
        assert_eq!(find(&r, "/users/42").unwrap().0, "/users/{id:int}");
        assert_eq!(
            find(&r, "/users/bob").unwrap(),
            ("/users/{id}".into(), vec![("id".into(), "bob".into())])
        );
    }

    #[test]
    fn slashes_are_folded() {
        let r = router(&["/users", "/"]);
        assert_eq!(find(&r, "/users/").unwrap().0, "/users");
        assert_eq!(find(&r, "//users//").unwrap().0, "/users");
        assert_eq!(find(&r, "/").unwrap().0, "/");
        assert_eq!(find(&r, "").unwrap().0, "/");
    }

    #[test]
    fn backtracks_from_a_failed_static_branch() {
        let r = router(&["/a/b/c", "/a/{x}/d"]);
        assert_eq!(
            find(&r, "/a/b/d").unwrap(),
            ("/a/{x}/d".into(), vec![("x".into(), "b".into())])
        );
        assert!(find(&r, "/a/b/e").is_none());
    }

    #[test]
    fn catch_all_takes_the_rest() {
        let r = router(&["/files/{rest:path}", "/files/index"]);
        assert_eq!(
            find(&r, "/files/a/b%20c.txt").unwrap().1,
            vec![("rest".into(), "a/b c.txt".into())]
        );
        assert_eq!(find(&r, "/files/index").unwrap().0, "/files/index");
        assert!(find(&r, "/files").is_none());
    }

    #[test]
    fn params_are_decoded() {
        let r = router(&["/tag/{name}"]);
        assert_eq!(
            find(&r, "/tag/caf%C3%A9").unwrap().1,
            vec![("name".into(), "café".into())]
        );
    }

    #[test]
    fn int_rejects_non_digits() {
        let r = router(&["/n/{id:int}"]);
        assert!(find(&r, "/n/12a").is_none());
        assert!(find(&r, "/n/-1").is_none());
        assert!(find(&r, "/n/007").is_some());
    }

    #[test]
    fn malformed_patterns_are_refused_with_the_pattern_named() {
        for bad in [
            "users",
            "/users/<id>",
            "/{id",
            "/x{id}",
            "/{}",
            "/{1a}",
            "/{id:float}",
            "/{p:path}/x",
            "/{a}/{a}",
        ] {
            let mut r = Router::default();
            let err = r
                .insert(bad, &[Method::Get], erase(|_r: Request| async { "" }))
                .unwrap_err();
            assert!(err.message().contains(&format!("{bad:?}")), "{bad}: {err}");
        }
    }

    #[test]
    fn conflicts_are_refused() {
        let mut r = router(&["/users/{id}"]);
        let h = erase(|_r: Request| async { "" });
        assert!(r
            .insert("/users/{name}/posts", &[Method::Get], h.clone())
            .is_err());
        assert!(r.insert("/users/{id}", &[Method::Get], h.clone()).is_err());
        assert!(r.insert("/users/{id}/", &[Method::Get], h.clone()).is_err());
        assert!(r.insert("/users/{id}", &[Method::Post], h.clone()).is_ok());
        assert_eq!(r.routes().len(), 2);
    }
}
