//! Templates checked against the route table when the app is built (issue 21, item 8): every
//! literal URL an element sends a request to must be served by a route with that method, or
//! building the app fails with a [`ConfigurationError`] listing each mismatch by template and
//! line. A typo in `hx-post="/task/7/done"` is then found at start-up, not by a user's click.
//!
//! # What is checked
//!
//! - `hx-get`, `hx-post`, `hx-put`, `hx-patch`, `hx-delete` on any element, and their
//!   `data-hx-*` spellings (htmx reads both), with that method.
//! - `<form action=...>` without any of those attributes (an htmx form sends where its `hx-*`
//!   attribute says), with its `method`: absent or empty is GET, `dialog` is not a request and
//!   is skipped, any other value is upper-cased (`post` is POST; `put` is checked as PUT, which
//!   is what htmx sends for a boosted form, though a browser alone would send GET).
//!
//! Attribute names and methods are case-insensitive; values may be double-quoted,
//! single-quoted or unquoted, with spaces or line breaks around the `=`. When an element
//! repeats an attribute, the first one counts, as in an HTML parser. Character references in a
//! value are decoded (`&amp;`, `&#47;`, ...).
//!
//! # What is skipped
//!
//! Only literal URLs to this app are checked. Skipped: a value holding template code (`{{ }}`,
//! `{% %}`: built at run time), an empty value (the current URL), a URL to another origin
//! (`http://...`, `https://...`, `//host/...`, or any other scheme: `mailto:`, `javascript:`),
//! one that is only a fragment or query (`#top`, `?page=2`: the current page), and a relative
//! path (`tasks/7`, `../x`), which cannot be resolved without knowing the page that holds it.
//!
//! Skipped as not rendered or not markup: Jinja comments `{# #}`, the code inside `{{ }}` and
//! `{% %}` (a string literal there is data, not an element), HTML comments `<!-- -->`, and the
//! content of `<script>`, `<style>`, `<textarea>`, `<title>` and the other raw-text elements (a
//! URL in a script is not an attribute, and a commented-out element sends nothing). The
//! content of `{% raw %}` is markup like any other. Attributes inside `{% if %}` branches are
//! all checked: each may be rendered.
//!
//! # How a URL is matched
//!
//! As the request would be: tabs and line breaks are removed and leading and trailing spaces
//! trimmed (the WHATWG URL parser does so), `\` read as `/`, the fragment and query cut off,
//! the characters a browser percent-encodes in a path encoded, and the path normalised as the
//! server does ([`crate::http::target`]: empty segments dropped, so `/tasks/` is `/tasks`; dot
//! segments resolved; unreserved percent-encodings decoded). It is then found in a copy of the
//! router's tree, searched in the router's order: a static segment before `{name:int}` (ASCII
//! digits only), before `{name}` (one non-empty segment), before `{name:path}` (one segment or
//! more), falling back when a branch finds nothing deeper. The method is then looked up on the
//! pattern found, and only there, as the router does: a path that finds `/tasks/new` is a 405
//! for a method only `/tasks/{id}` has. A GET route serves HEAD.
//!
//! The routes come from `App::routes()`, so their patterns are valid. A path the server refuses
//! outright (a stray `%`) is reported too.

// Called by the template engine at build; until it is, only the tests use this module.

use crate::error::ConfigurationError;
use crate::http::target::{normalize_in_place, scan_target};
use crate::http::Method;

/// The end of the error message: how to turn the check off, for an app whose URLs are served
/// where the route table cannot see (a fallback handler, another app behind the same proxy).
pub(crate) const OPT_OUT: &str = "An app that serves these URLs some other way (a middleware \
such as StaticFilesMiddleware, another service behind the same proxy) can turn this check off \
with Templates::skip_route_check(); an app with a fallback handler is not checked.";

/// Checks every literal request URL in `templates` ((name, source) pairs) against `routes`
/// (as `App::routes()` gives them: (method, pattern) in registration order).
///
/// # Errors
/// A [`ConfigurationError`] listing every mismatch, sorted by template name then line, as
/// `name:line: hx-post="/tasks/x" matches no POST route (routes for that path: GET at
/// /tasks/{id})` or `name:line: <form action="/logot" method="post"> matches no route`, and
/// how to fix or opt out.
pub(crate) fn check_templates(
    templates: &[(&str, &str)],
    routes: &[(Method, String)],
) -> Result<(), ConfigurationError> {
    let table = Node::build(routes);
    let mut mismatches: Vec<(&str, usize, usize, String)> = Vec::new();
    for &(name, source) in templates {
        let lines = LineIndex::new(source);
        for found in scan(source) {
            if let Some(why) = table.check(&found) {
                let line = lines.line_of(found.offset);
                mismatches.push((
                    name,
                    line,
                    found.offset,
                    format!("{name}:{line}: {} {why}", found.what),
                ));
            }
        }
    }
    if mismatches.is_empty() {
        return Ok(());
    }
    mismatches.sort_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let head = match mismatches.len() {
        1 => "a URL in a template matches no route of the app:".to_owned(),
        n => format!("{n} URLs in templates match no route of the app:"),
    };
    let mut message = head;
    for (_, _, _, line) in &mismatches {
        message.push_str("\n  ");
        message.push_str(line);
    }
    message.push_str(
        "\nEach literal URL in hx-get, hx-post, hx-put, hx-patch, hx-delete and <form action> \
must be served by a route with that method (a GET route also serves HEAD): fix the URL or add \
the route. URLs written with {{ }} or {% %}, URLs to other origins and relative paths are not \
checked. ",
    );
    message.push_str(OPT_OUT);
    Err(ConfigurationError::new(message))
}

// ---------------------------------------------------------------------------------------------
// Line numbers.

/// Where each line of a source starts, to turn byte offsets into 1-based line numbers.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(source: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(
                source
                    .bytes()
                    .enumerate()
                    .filter_map(|(i, b)| (b == b'\n').then_some(i + 1)),
            )
            .collect();
        LineIndex { starts }
    }

    /// The 1-based line holding byte `offset`.
    fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset).max(1)
    }
}

// ---------------------------------------------------------------------------------------------
// Jinja: blank what is not markup.

/// What an expression `{{ ... }}` becomes in the masked text: in a value it makes the value
/// dynamic, between attributes it is part of an attribute name (so no name is checked).
const EXPR: u8 = 0x01;
/// What a statement `{% ... %}` becomes: in a value it makes the value dynamic; between
/// attributes it is like a space, so the attributes of every `{% if %}` branch are seen.
const STMT: u8 = 0x02;

/// The source with Jinja comments replaced by spaces, expressions by [`EXPR`] bytes and
/// statements by [`STMT`] bytes, byte for byte (offsets, hence lines, are those of the source).
/// The content of `{% raw %}...{% endraw %}` is kept. Follows minijinja's lexer: a tag ends at
/// its closing delimiter outside string literals and brackets; an unclosed one runs to the end.
fn mask_jinja(src: &[u8]) -> Vec<u8> {
    let mut out = src.to_vec();
    let n = src.len();
    let mut i = 0;
    while i + 1 < n {
        if src[i] != b'{' {
            i += 1;
            continue;
        }
        match src[i + 1] {
            b'#' => {
                let end = find(src, i + 2, b"#}").map_or(n, |p| p + 2);
                out[i..end].fill(b' ');
                i = end;
            }
            b'{' => {
                let end = tag_end(src, i + 2, b'}');
                out[i..end].fill(EXPR);
                i = end;
            }
            b'%' => {
                let skip = i + 2 + usize::from(matches!(src.get(i + 2), Some(b'-' | b'+')));
                if let Some(len) = basic_tag(&src[skip..], b"raw", false) {
                    let open_end = skip + len;
                    out[i..open_end].fill(STMT);
                    let mut at = open_end;
                    i = n; // an unclosed raw block runs to the end, kept as markup
                    while let Some(p) = find(src, at, b"{%") {
                        if let Some(len) = basic_tag(&src[p + 2..], b"endraw", true) {
                            let close_end = p + 2 + len;
                            out[p..close_end].fill(STMT);
                            i = close_end;
                            break;
                        }
                        at = p + 2;
                    }
                } else {
                    let end = tag_end(src, i + 2, b'%');
                    out[i..end].fill(STMT);
                    i = end;
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The first index at or after `from` where `needle` starts.
fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The end (exclusive) of a tag whose content starts at `from` and which closes with `close`
/// followed by `}` (`}}` or `%}`), skipping string literals and bracketed parts as minijinja
/// does; the end of `src` when it never closes.
fn tag_end(src: &[u8], from: usize, close: u8) -> usize {
    let n = src.len();
    let mut depth: isize = 0;
    let mut j = from;
    while j < n {
        match src[j] {
            q @ (b'"' | b'\'') => {
                j += 1;
                while j < n && src[j] != q {
                    j += if src[j] == b'\\' { 2 } else { 1 };
                }
            }
            b if b == close && depth == 0 && src.get(j + 1) == Some(&b'}') => return j + 2,
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => depth -= 1,
            _ => {}
        }
        j += 1;
    }
    n
}

/// Whether `rest` (just after `{%`) is the tag `name` (`raw`, `endraw`) up to `%}`, with
/// minijinja's whitespace control; its length through `%}` if so.
fn basic_tag(rest: &[u8], name: &[u8], ws_control: bool) -> Option<usize> {
    let mut p = 0;
    if ws_control && matches!(rest.first(), Some(b'-' | b'+')) {
        p += 1;
    }
    while rest.get(p).is_some_and(u8::is_ascii_whitespace) {
        p += 1;
    }
    if !rest.get(p..)?.starts_with(name) {
        return None;
    }
    p += name.len();
    while rest.get(p).is_some_and(u8::is_ascii_whitespace) {
        p += 1;
    }
    if matches!(rest.get(p), Some(b'-' | b'+')) {
        p += 1;
    }
    rest.get(p..)?.starts_with(b"%}").then_some(p + 2)
}

// ---------------------------------------------------------------------------------------------
// HTML: find the requests elements make.

/// A request an element of a template makes to a literal URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    /// Byte offset of the attribute (`hx-post`, or the form's `action`) in the source.
    offset: usize,
    /// How the message shows it: `hx-post="/x"`, `<form action="/x" method="post">`.
    what: String,
    /// The method, upper-case.
    method: String,
    /// The URL, character references decoded.
    url: String,
}

/// One attribute of a start tag, as offsets into the source.
struct Attr {
    /// Lower-cased.
    name: String,
    start: usize,
    name_end: usize,
    /// `None` for an attribute written without `=`.
    value: Option<(usize, usize)>,
}

/// HTML whitespace (`\t`, `\n`, `\x0c`, `\r`, space).
fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Elements whose content is text up to their end tag, not markup.
const RAW_TEXT: [&str; 9] = [
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "plaintext",
];

/// The requests made by the elements of `source` (a Jinja template of HTML) to literal URLs.
fn scan(source: &str) -> Vec<Found> {
    let src = source.as_bytes();
    let m = mask_jinja(src);
    let n = m.len();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = m
        .get(i..)
        .and_then(|rest| rest.iter().position(|&b| b == b'<'))
    {
        i += p + 1;
        match m.get(i) {
            Some(b'!') if m[i..].starts_with(b"!--") => i = comment_end(&m, i + 3),
            Some(b'!' | b'?' | b'/') => i = find(&m, i, b">").map_or(n, |p| p + 1),
            Some(b) if b.is_ascii_alphabetic() => {
                let (end, name, attrs) = start_tag(&m, i);
                i = end;
                requests(src, &m, &name, &attrs, &mut out);
                if name == "plaintext" {
                    break;
                }
                if RAW_TEXT.contains(&name.as_str()) {
                    i = raw_text_end(&m, i, name.as_bytes());
                }
            }
            _ => {}
        }
    }
    out
}

/// Where an HTML comment whose text starts at `from` ends (just past `-->`; `<!-->` and
/// `<!--->` are closed comments; an unclosed one runs to the end).
fn comment_end(m: &[u8], from: usize) -> usize {
    let rest = &m[from.min(m.len())..];
    if rest.starts_with(b">") {
        return from + 1;
    }
    if rest.starts_with(b"->") {
        return from + 2;
    }
    let dash = find(m, from, b"-->").map(|p| p + 3);
    let bang = find(m, from, b"--!>").map(|p| p + 4);
    match (dash, bang) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(m.len()),
    }
}

/// Where the content of raw-text element `name` that starts at `from` ends: at its end tag
/// (`</script`, any case, then a space, `/` or `>`), or the end of the source.
fn raw_text_end(m: &[u8], from: usize, name: &[u8]) -> usize {
    let mut at = from;
    while let Some(p) = find(m, at, b"</") {
        let after = p + 2 + name.len();
        let same = m
            .get(p + 2..after)
            .is_some_and(|t| t.eq_ignore_ascii_case(name));
        if same
            && m.get(after)
                .is_none_or(|&b| is_space(b) || b == b'/' || b == b'>')
        {
            return p;
        }
        at = p + 2;
    }
    m.len()
}

/// Reads the start tag whose name starts at `from` (just past `<`): where it ends, its name
/// (lower-cased) and its attributes, per the HTML tokenizer's attribute states.
fn start_tag(m: &[u8], from: usize) -> (usize, String, Vec<Attr>) {
    let n = m.len();
    let mut j = from;
    while j < n && !is_space(m[j]) && m[j] != b'/' && m[j] != b'>' {
        j += 1;
    }
    let name = String::from_utf8_lossy(&m[from..j]).to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while j < n && (is_space(m[j]) || m[j] == b'/' || m[j] == STMT) {
            j += 1;
        }
        if j >= n {
            return (n, name, attrs);
        }
        if m[j] == b'>' {
            return (j + 1, name, attrs);
        }
        let start = j;
        j += 1; // the first character may be `=`
        while j < n && !is_space(m[j]) && !matches!(m[j], b'/' | b'>' | b'=') {
            j += 1;
        }
        let name_end = j;
        let mut k = j;
        while k < n && is_space(m[k]) {
            k += 1;
        }
        let mut value = None;
        if k < n && m[k] == b'=' {
            k += 1;
            while k < n && is_space(m[k]) {
                k += 1;
            }
            match m.get(k) {
                Some(&q @ (b'"' | b'\'')) => {
                    let end = m[k + 1..].iter().position(|&b| b == q).map(|p| k + 1 + p);
                    value = Some((k + 1, end.unwrap_or(n)));
                    j = end.map_or(n, |e| e + 1);
                }
                _ => {
                    let vs = k;
                    while k < n && !is_space(m[k]) && m[k] != b'>' {
                        k += 1;
                    }
                    value = Some((vs, k));
                    j = k;
                }
            }
        }
        let lower = String::from_utf8_lossy(&m[start..name_end]).to_ascii_lowercase();
        if !attrs.iter().any(|a: &Attr| a.name == lower) {
            attrs.push(Attr {
                name: lower,
                start,
                name_end,
                value,
            });
        }
    }
}

/// The method an htmx attribute name stands for: `hx-post` and `data-hx-post` are POST.
fn hx_method(name: &str) -> Option<&'static str> {
    let verb = name
        .strip_prefix("data-")
        .unwrap_or(name)
        .strip_prefix("hx-")?;
    Some(match verb {
        "get" => "GET",
        "post" => "POST",
        "put" => "PUT",
        "patch" => "PATCH",
        "delete" => "DELETE",
        _ => return None,
    })
}

/// An attribute's value: `None` when it holds template code (dynamic), else its raw text in
/// the source (empty for an attribute without `=`).
fn literal<'a>(src: &'a [u8], m: &[u8], attr: &Attr) -> Option<&'a [u8]> {
    let Some((a, b)) = attr.value else {
        return Some(&[]);
    };
    let masked = &m[a..b];
    let raw = &src[a..b];
    let dynamic = masked.iter().any(|&c| c == EXPR || c == STMT)
        || find(raw, 0, b"{{").is_some()
        || find(raw, 0, b"{%").is_some();
    (!dynamic).then_some(raw)
}

/// Adds the requests of one element (its lower-cased `tag` name and `attrs`) to `out`.
fn requests(src: &[u8], m: &[u8], tag: &str, attrs: &[Attr], out: &mut Vec<Found>) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let mut htmx = false;
    for attr in attrs {
        let Some(method) = hx_method(&attr.name) else {
            continue;
        };
        htmx = true;
        let Some(raw) = literal(src, m, attr) else {
            continue;
        };
        out.push(Found {
            offset: attr.start,
            what: one_line(&format!(
                "{}=\"{}\"",
                text(&src[attr.start..attr.name_end]),
                text(raw)
            )),
            method: method.to_owned(),
            url: decode_references(&text(raw)),
        });
    }
    if tag != "form" || htmx {
        return;
    }
    let get = |name: &str| attrs.iter().find(|a| a.name == name);
    let Some(action) = get("action") else {
        return; // no action: the current URL
    };
    let Some(action_raw) = literal(src, m, action) else {
        return;
    };
    let mut what = format!("<form action=\"{}\"", text(action_raw));
    let method = match get("method") {
        None => "GET".to_owned(),
        Some(attr) => {
            let Some(raw) = literal(src, m, attr) else {
                return;
            };
            let value = decode_references(&text(raw));
            let value = value.trim_matches(|c: char| c.is_ascii_whitespace());
            if value.eq_ignore_ascii_case("dialog") {
                return;
            }
            what.push_str(&format!(" method=\"{}\"", text(raw)));
            if value.is_empty() {
                "GET".to_owned()
            } else {
                value.to_ascii_uppercase()
            }
        }
    };
    what.push('>');
    out.push(Found {
        offset: action.start,
        what: one_line(&what),
        method,
        url: decode_references(&text(action_raw)),
    });
}

/// `text` on one line, for a message: each run of whitespace holding a line break becomes one
/// space.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for c in text.chars() {
        if c.is_whitespace() {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            out.push_str(if run.contains(['\n', '\r']) {
                " "
            } else {
                &run
            });
            run.clear();
        }
        out.push(c);
    }
    out.push_str(if run.contains(['\n', '\r']) {
        " "
    } else {
        &run
    });
    out
}

/// Decodes the character references a URL may hold (`&amp;`, `&#47;`, `&#x2F;`, a few named
/// ones); any other `&` is kept as written.
fn decode_references(value: &str) -> String {
    const NAMED: [(&str, char); 12] = [
        ("amp", '&'),
        ("quot", '"'),
        ("apos", '\''),
        ("lt", '<'),
        ("gt", '>'),
        ("sol", '/'),
        ("quest", '?'),
        ("num", '#'),
        ("percnt", '%'),
        ("period", '.'),
        ("colon", ':'),
        ("equals", '='),
    ];
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let decoded = rest[1..].find(';').and_then(|semi| {
            let body = &rest[1..1 + semi];
            let c = if let Some(num) = body.strip_prefix('#') {
                let code = match num.strip_prefix(['x', 'X']) {
                    Some(hex) => u32::from_str_radix(hex, 16).ok(),
                    None => num.parse::<u32>().ok(),
                };
                code.and_then(char::from_u32)
            } else {
                NAMED.iter().find(|(n, _)| *n == body).map(|&(_, c)| c)
            };
            c.map(|c| (c, semi + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// URLs: from an attribute's value to the path the server would route.

/// What a URL is, for the check.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    /// Not checked: empty, another origin or scheme, a fragment or query only, relative.
    Skip,
    /// The normalised path the server would route.
    Path(String),
    /// A path the server refuses (`400`), and why.
    Refused(&'static str),
}

/// The path a request to `url` would carry, normalised as the server normalises it.
fn target_path(url: &str) -> Target {
    // The WHATWG URL parser trims C0 controls and spaces, removes tabs and newlines, and reads
    // `\` as `/` in http(s) URLs.
    let cleaned: String = url
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    if !cleaned.starts_with('/') || cleaned.starts_with("//") {
        // Empty, `#frag`, `?query`, relative, `scheme:...`, or another host.
        return Target::Skip;
    }
    let path = cleaned.split(['#', '?']).next().unwrap_or("");
    // The bytes a browser percent-encodes in a path (the WHATWG path percent-encode set, less
    // `#` and `?`, cut above).
    let mut bytes = Vec::with_capacity(path.len());
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f || matches!(b, b'"' | b'<' | b'>' | b'`' | b'{' | b'}') {
            bytes.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            bytes.push(b);
        }
    }
    if let Err(why) = scan_target(&bytes) {
        return Target::Refused(why);
    }
    let len = normalize_in_place(&mut bytes);
    bytes.truncate(len);
    Target::Path(String::from_utf8_lossy(&bytes).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Routes: a copy of the router's tree, without handlers.

/// The methods of one pattern (as the router's endpoints), and its first spelling.
struct Endpoint {
    pattern: String,
    methods: Vec<Method>,
}

impl Endpoint {
    /// Whether a request with method `name` is served here (a GET route serves HEAD).
    fn serves(&self, name: &str) -> bool {
        self.methods
            .iter()
            .any(|m| m.as_str() == name || (name == "HEAD" && *m == Method::Get))
    }
}

/// A level of the tree, as `routing::router::Node`.
#[derive(Default)]
struct Node {
    statics: Vec<(String, Node)>,
    int_param: Option<Box<Node>>,
    str_param: Option<Box<Node>>,
    catch_all: Option<Endpoint>,
    endpoint: Option<Endpoint>,
}

impl Node {
    fn build(routes: &[(Method, String)]) -> Node {
        let mut root = Node::default();
        for (method, pattern) in routes {
            let endpoint = root.endpoint_mut(pattern);
            if !endpoint.methods.contains(method) {
                endpoint.methods.push(*method);
            }
        }
        root
    }

    /// The endpoint of `pattern`, made if new. Patterns come from the router, so they are
    /// valid; anything else is read leniently (an unknown type as `{name}`).
    fn endpoint_mut(&mut self, pattern: &str) -> &mut Endpoint {
        let mut node = self;
        for segment in pattern.split('/').filter(|s| !s.is_empty()) {
            let param = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            node = match param.map(|p| p.split_once(':').map_or("", |(_, kind)| kind)) {
                None => {
                    let i = match node.statics.iter().position(|(s, _)| s == segment) {
                        Some(i) => i,
                        None => {
                            node.statics.push((segment.to_owned(), Node::default()));
                            node.statics.len() - 1
                        }
                    };
                    &mut node.statics[i].1
                }
                Some("path") => {
                    return node.catch_all.get_or_insert_with(|| Endpoint {
                        pattern: pattern.to_owned(),
                        methods: Vec::new(),
                    })
                }
                Some("int") => node.int_param.get_or_insert_with(Box::default),
                Some(_) => node.str_param.get_or_insert_with(Box::default),
            };
        }
        node.endpoint.get_or_insert_with(|| Endpoint {
            pattern: pattern.to_owned(),
            methods: Vec::new(),
        })
    }

    /// The endpoint the router would pick for the normalised `path`, searched as
    /// `routing::router::Node::find` does.
    fn find(&self, path: &[u8]) -> Option<&Endpoint> {
        let Some(start) = path.iter().position(|&b| b != b'/') else {
            return self.endpoint.as_ref();
        };
        let p = &path[start..];
        let (segment, rest) = match p.iter().position(|&b| b == b'/') {
            Some(i) => (&p[..i], &p[i..]),
            None => (p, &[][..]),
        };
        if let Some((_, child)) = self.statics.iter().find(|(s, _)| s.as_bytes() == segment) {
            if let Some(found) = child.find(rest) {
                return Some(found);
            }
        }
        let is_int = segment.iter().all(u8::is_ascii_digit); // non-empty: a segment
        if let Some(child) = self.int_param.as_ref().filter(|_| is_int) {
            if let Some(found) = child.find(rest) {
                return Some(found);
            }
        }
        if let Some(child) = &self.str_param {
            if let Some(found) = child.find(rest) {
                return Some(found);
            }
        }
        self.catch_all.as_ref()
    }

    /// What is wrong with `found`'s request, if anything: `None` when a route serves it (or
    /// its URL is not checked).
    fn check(&self, found: &Found) -> Option<String> {
        let path = match target_path(&found.url) {
            Target::Skip => return None,
            Target::Path(path) => path,
            Target::Refused(why) => {
                return Some(format!("is not a path the server accepts ({why})"));
            }
        };
        let Some(endpoint) = self.find(path.as_bytes()) else {
            return Some("matches no route".to_owned());
        };
        if endpoint.serves(&found.method) {
            return None;
        }
        let mut methods = endpoint.methods.clone();
        methods.sort();
        let names: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
        Some(format!(
            "matches no {} route (routes for that path: {} at {})",
            found.method,
            names.join(", "),
            endpoint.pattern
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn routes(table: &[(Method, &str)]) -> Vec<(Method, String)> {
        table.iter().map(|&(m, p)| (m, p.to_owned())).collect()
    }

    /// The task app's table, as a test fixture.
    fn tasks() -> Vec<(Method, String)> {
        routes(&[
            (Method::Get, "/"),
            (Method::Get, "/login"),
            (Method::Post, "/login"),
            (Method::Post, "/logout"),
            (Method::Get, "/tasks"),
            (Method::Post, "/tasks"),
            (Method::Get, "/tasks/{id:int}"),
            (Method::Delete, "/tasks/{id:int}"),
            (Method::Put, "/tasks/{id:int}"),
            (Method::Post, "/tasks/{id:int}/done"),
            (Method::Patch, "/tasks/{id:int}/title"),
            (Method::Get, "/users/{name}"),
            (Method::Get, "/files/{rest:path}"),
        ])
    }

    /// The error message for one template checked against [`tasks`], or `None` when it passes.
    fn errors(source: &str) -> Option<String> {
        check_templates(&[("t.html", source)], &tasks())
            .err()
            .map(|e| e.message().to_owned())
    }

    /// The mismatch lines of a message (without the head and the advice).
    fn lines(message: &str) -> Vec<&str> {
        message
            .lines()
            .filter_map(|l| l.strip_prefix("  "))
            .collect()
    }

    fn one(source: &str) -> String {
        let message = errors(source).unwrap_or_else(|| panic!("no error for {source:?}"));
        let lines = lines(&message);
        assert_eq!(lines.len(), 1, "{message}");
        lines[0].to_owned()
    }

    fn ok(source: &str) {
        assert_eq!(errors(source), None, "{source}");
    }

    #[test]
    fn every_hx_verb_is_checked_with_its_method() {
        ok(r#"<button hx-get="/tasks">x</button>"#);
        ok(r#"<button hx-post="/tasks">x</button>"#);
        ok(r#"<button hx-put="/tasks/3">x</button>"#);
        ok(r#"<button hx-patch="/tasks/3/title">x</button>"#);
        ok(r#"<button hx-delete="/tasks/3">x</button>"#);
        assert_eq!(
            one(r#"<button hx-delete="/tasks">x</button>"#),
            r#"t.html:1: hx-delete="/tasks" matches no DELETE route (routes for that path: GET, POST at /tasks)"#
        );
        assert_eq!(
            one(r#"<button hx-patch="/tasks/3">x</button>"#),
            r#"t.html:1: hx-patch="/tasks/3" matches no PATCH route (routes for that path: GET, PUT, DELETE at /tasks/{id:int})"#
        );
        assert_eq!(
            one(r#"<button hx-put="/task/3">x</button>"#),
            r#"t.html:1: hx-put="/task/3" matches no route"#
        );
    }

    #[test]
    fn data_hx_spellings_are_checked() {
        ok(r#"<a data-hx-get="/tasks">x</a>"#);
        assert_eq!(
            one(r#"<a data-hx-post="/nowhere">x</a>"#),
            r#"t.html:1: data-hx-post="/nowhere" matches no route"#
        );
        // Other hx-* attributes are not requests.
        ok(r#"<div hx-target="/nowhere" hx-swap="outerHTML" hx-getter="/x" data-hx="/y"></div>"#);
    }

    #[test]
    fn attribute_names_and_methods_are_case_insensitive() {
        assert_eq!(
            one(r#"<BUTTON HX-POST="/nowhere">"#),
            r#"t.html:1: HX-POST="/nowhere" matches no route"#
        );
        ok(r#"<FORM ACTION="/login" METHOD="POST"></FORM>"#);
        ok(r#"<form action="/login" method="PoSt"></form>"#);
        assert!(one(r#"<Form Action="/logout" Method="Get">"#).contains("no GET route"));
    }

    #[test]
    fn quotes_single_double_and_none() {
        ok(r#"<a hx-get='/tasks'>"#);
        ok(r#"<a hx-get=/tasks>"#);
        ok(r#"<a hx-get=/tasks/7 class=x>"#);
        assert!(one(r#"<a hx-get='/nope'>"#).contains(r#"hx-get="/nope" matches no route"#));
        assert!(one(r#"<a hx-get=/nope>"#).contains(r#"hx-get="/nope" matches no route"#));
        assert!(one(r#"<a hx-get=/nope/>"#).contains(r#"hx-get="/nope/" matches no route"#));
        // A quote of the other kind is part of the value.
        ok(r#"<a title="it's" hx-get="/tasks">"#);
    }

    #[test]
    fn forms_default_to_get_skip_dialog_and_check_their_method() {
        ok(r#"<form action="/tasks"></form>"#);
        ok(r#"<form action="/tasks" method=""></form>"#);
        ok(r#"<form action="/tasks" method="post"></form>"#);
        assert_eq!(
            one(r#"<form action="/logout"></form>"#),
            r#"t.html:1: <form action="/logout"> matches no GET route (routes for that path: POST at /logout)"#
        );
        assert_eq!(
            one(r#"<form method="post" action="/tasks/7"></form>"#),
            r#"t.html:1: <form action="/tasks/7" method="post"> matches no POST route (routes for that path: GET, PUT, DELETE at /tasks/{id:int})"#
        );
        ok(r#"<form action="/nowhere" method="dialog"></form>"#);
        ok(r#"<form action="/nowhere" method=" DIALOG "></form>"#);
        // A boosted form sends the method htmx reads from it.
        ok(r#"<form action="/tasks/3" method="put" hx-boost="true"></form>"#);
        assert!(one(r#"<form action="/" method="purge">"#).contains("no PURGE route"));
        // No action, or an empty one: the current URL.
        ok(r#"<form method="post"></form><form action="" method="post"></form>"#);
    }

    #[test]
    fn a_form_with_an_hx_attribute_is_checked_by_it() {
        ok(r#"<form action="/nowhere" hx-post="/tasks"></form>"#);
        ok(r#"<form action="/nowhere" method="post" hx-post="/tasks/{{ id }}/done"></form>"#);
        ok(r#"<form action="/nowhere" hx-post=""></form>"#);
        assert_eq!(
            one(r#"<form action="/tasks" method="post" hx-put="/tasks"></form>"#),
            r#"t.html:1: hx-put="/tasks" matches no PUT route (routes for that path: GET, POST at /tasks)"#
        );
    }

    #[test]
    fn dynamic_values_are_skipped() {
        ok(r#"<button hx-post="/tasks/{{ task.id }}/nowhere">"#);
        ok(r#"<button hx-post="{{ url_for('x') }}">"#);
        ok(r#"<button hx-post={{ url }}>"#);
        ok(r#"<button hx-post="/x/{% if a %}1{% else %}2{% endif %}">"#);
        ok(r#"<form action="{{ next }}" method="post">"#);
        ok(r#"<form action="/logout" method="{{ m }}">"#);
        // An attribute whose name is built is no attribute the check knows.
        ok(r#"<button hx-{{ verb }}="/nowhere">"#);
        ok(r#"<div {{ attrs }} class="x"></div>"#);
    }

    #[test]
    fn other_origins_schemes_fragments_and_empty_values_are_skipped() {
        for url in [
            "http://example.com/nowhere",
            "https://example.com/nowhere",
            "//cdn.example.com/nowhere",
            "\\\\cdn.example.com/nowhere",
            "/\\cdn.example.com/nowhere",
            "HTTPS://example.com/x",
            "#top",
            "javascript:void(0)",
            "mailto:a@example.com",
            "data:text/html,x",
            "",
            "   ",
            "?page=2",
        ] {
            ok(&format!(r#"<a hx-get="{url}">"#));
            ok(&format!(r#"<form action="{url}" method="post">"#));
        }
        ok("<a hx-get>x</a>");
    }

    #[test]
    fn relative_paths_are_skipped() {
        ok(r#"<a hx-get="tasks/nowhere">"#);
        ok(r#"<a hx-get="./nowhere">"#);
        ok(r#"<a hx-get="../nowhere">"#);
        ok(r#"<form action="nowhere" method="post">"#);
    }

    #[test]
    fn query_and_fragment_are_cut() {
        ok(r#"<a hx-get="/tasks?a=1">"#);
        ok(r#"<a hx-get="/tasks?a=1&amp;b=2#top">"#);
        ok(r#"<a hx-get="/tasks#x?y">"#);
        ok(r#"<form action="/tasks?next=/nowhere" method="post">"#);
        assert_eq!(
            one(r#"<a hx-delete="/tasks?id=3">"#),
            r#"t.html:1: hx-delete="/tasks?id=3" matches no DELETE route (routes for that path: GET, POST at /tasks)"#
        );
    }

    #[test]
    fn int_params_take_digits_only() {
        ok(r#"<button hx-post="/tasks/7/done">"#);
        ok(r#"<button hx-post="/tasks/007/done">"#);
        assert_eq!(
            one(r#"<button hx-post="/tasks/x/done">"#),
            r#"t.html:1: hx-post="/tasks/x/done" matches no route"#
        );
        assert!(one(r#"<button hx-post="/tasks/-1/done">"#).contains("no route"));
        assert!(one(r#"<button hx-post="/tasks/1.5/done">"#).contains("no route"));
        // A non-ASCII digit is not a digit to the router.
        assert!(one(r#"<button hx-post="/tasks/٣/done">"#).contains("no route"));
    }

    #[test]
    fn str_and_path_params() {
        ok(r#"<a hx-get="/users/bob">"#);
        ok(r#"<a hx-get="/users/b%20b">"#);
        assert!(one(r#"<a hx-get="/users/bob/posts">"#).contains("no route"));
        assert!(one(r#"<a hx-get="/users">"#).contains("no route"));
        ok(r#"<a hx-get="/files/a">"#);
        ok(r#"<a hx-get="/files/a/b/c.txt">"#);
        // A catch-all needs a segment.
        assert!(one(r#"<a hx-get="/files">"#).contains("no route"));
        assert!(one(r#"<a hx-get="/files/">"#).contains("no route"));
    }

    #[test]
    fn the_router_order_decides_which_pattern_answers() {
        // `/items/new` is found for any method: a method only `/items/{id}` has is a 405.
        let table = routes(&[
            (Method::Get, "/items/{id}"),
            (Method::Delete, "/items/{id}"),
            (Method::Post, "/items/new"),
            (Method::Get, "/a/b/c"),
            (Method::Get, "/a/{x}/d"),
            (Method::Get, "/n/{id:int}"),
            (Method::Post, "/n/{name}"),
        ]);
        let check = |src: &str| check_templates(&[("p", src)], &table);
        check(r#"<a hx-get="/items/7"><a hx-post="/items/new">"#).unwrap();
        let err = check(r#"<a hx-delete="/items/new">"#).unwrap_err();
        assert!(
            err.message()
                .contains("no DELETE route (routes for that path: POST at /items/new)"),
            "{err}"
        );
        // Falling back from a static branch that finds nothing deeper.
        check(r#"<a hx-get="/a/b/d">"#).unwrap();
        assert!(check(r#"<a hx-get="/a/b/e">"#).is_err());
        // `{id:int}` is tried first; a digit segment finds it, and POST is not there.
        let err = check(r#"<a hx-post="/n/12">"#).unwrap_err();
        assert!(
            err.message()
                .contains("(routes for that path: GET at /n/{id:int})"),
            "{err}"
        );
        check(r#"<a hx-post="/n/abc"><a hx-get="/n/12">"#).unwrap();
    }

    #[test]
    fn trailing_and_doubled_slashes_and_dots_are_normalised() {
        ok(r#"<a hx-get="/tasks/">"#);
        ok(r#"<a hx-get="//tasks"></a>"#); // another host, in fact: skipped
        ok(r#"<a hx-get="/tasks//7/">"#);
        ok(r#"<a hx-get="/x/../tasks">"#);
        ok(r#"<a hx-get="/./tasks/./7">"#);
        ok(r#"<a hx-get="/%74asks">"#);
        ok(r#"<a hx-get="/">"#);
        let table = routes(&[(Method::Post, "/tasks/")]);
        check_templates(&[("p", r#"<a hx-post="/tasks">"#)], &table).unwrap();
    }

    #[test]
    fn head_is_served_by_get_but_not_the_other_way() {
        let table = routes(&[(Method::Get, "/g"), (Method::Head, "/h")]);
        check_templates(&[("p", r#"<form action="/g" method="head">"#)], &table).unwrap();
        let err = check_templates(&[("p", r#"<a hx-get="/h">"#)], &table).unwrap_err();
        assert!(
            err.message()
                .contains("no GET route (routes for that path: HEAD at /h)"),
            "{err}"
        );
    }

    #[test]
    fn extension_methods_are_matched_by_name() {
        let purge = Method::other("X-ROUTE-CHECK").unwrap();
        let table = vec![
            (purge, "/cache".to_owned()),
            (Method::Get, "/cache".to_owned()),
        ];
        check_templates(
            &[("p", r#"<form action="/cache" method="x-route-check">"#)],
            &table,
        )
        .unwrap();
        let err = check_templates(&[("p", r#"<a hx-post="/cache">"#)], &table).unwrap_err();
        assert!(
            err.message()
                .contains("(routes for that path: GET, X-ROUTE-CHECK at /cache)"),
            "{err}"
        );
    }

    #[test]
    fn a_path_the_server_refuses_is_reported() {
        assert_eq!(
            one(r#"<a hx-get="/tasks/%zz">"#),
            r#"t.html:1: hx-get="/tasks/%zz" is not a path the server accepts (malformed percent-encoding in the request path)"#
        );
    }

    #[test]
    fn characters_a_browser_encodes_are_encoded() {
        let table = routes(&[(Method::Get, "/a%20b"), (Method::Get, "/tag/{name}")]);
        let check = |src: &str| check_templates(&[("p", src)], &table);
        check(r#"<a hx-get="/a b">"#).unwrap();
        check(r#"<a hx-get="/tag/café">"#).unwrap();
        // `{` alone is not Jinja: encoded, it is one more segment.
        check(r#"<a hx-get="/tag/{x}">"#).unwrap();
        check(r#"<a hx-get="/tag/{x}/y">"#).unwrap_err();
        check(r#"<a hx-get="/tag/a&#47;b">"#).unwrap_err(); // `&#47;` is a `/`
        check(r#"<a hx-get="&#47;tag&sol;x">"#).unwrap();
    }

    #[test]
    fn tabs_and_newlines_in_a_url_are_removed() {
        ok("<a hx-get=\" /tasks\n \">");
        ok("<a hx-get=\"/ta\tsks\">");
        ok("<a hx-get=\"/tasks/\n7\">");
    }

    #[test]
    fn weird_spacing_around_the_equals_sign() {
        assert_eq!(
            one("<button hx-post = '/x'>"),
            r#"t.html:1: hx-post="/x" matches no route"#
        );
        assert_eq!(
            one("<button\n  hx-post\n  =\n  \"/x\"\n>"),
            r#"t.html:2: hx-post="/x" matches no route"#
        );
        // A name then a space then another name: two attributes, the first without a value.
        ok("<button hx-post data-x=\"/nowhere\">");
        // `/` between attributes is ignored.
        ok("<input/hx-get=/tasks/>");
    }

    #[test]
    fn values_split_across_lines_keep_the_line_of_the_attribute() {
        let src = "<div>\n  <button class=\"a\n b\"\n    hx-post=\"/tasks/\n     x/done\"\n  >\n";
        assert_eq!(
            one(src),
            "t.html:4: hx-post=\"/tasks/ x/done\" matches no route"
        );
        ok("<button\n hx-post=\"/tasks/\n7/done\">");
    }

    #[test]
    fn line_numbers_are_one_based_and_count_jinja_and_comments() {
        let src = "{# a\ncomment #}\n<p>\n{% if x %}\n<a hx-get=\"/nope\">\n{% endif %}\n";
        assert!(one(src).starts_with("t.html:5: "));
        let src = "{{ a\n + b }}<a hx-get=\"/nope\">";
        assert!(one(src).starts_with("t.html:2: "));
        assert!(one("<a hx-get=\"/nope\">").starts_with("t.html:1: "));
        assert!(one("\r\n\r\n<a hx-get=\"/nope\">").starts_with("t.html:3: "));
    }

    #[test]
    fn jinja_comments_html_comments_and_scripts_are_ignored() {
        ok(r#"{# <a hx-post="/nowhere"> #}"#);
        ok(r#"{#- <a hx-post="/nowhere"> -#}"#);
        ok(r#"<!-- <a hx-post="/nowhere"> -->"#);
        ok(r#"<!-- a -- b <form action="/nowhere"> --!>"#);
        ok(r#"<script>document.body.innerHTML = '<a hx-post="/nowhere">';</script>"#);
        ok(r#"<SCRIPT type="module">'<a hx-post="/nowhere">'</SCRIPT >"#);
        ok(r#"<style>a[hx-post="/nowhere"]::after { content: "<a hx-post='/x'>" }</style>"#);
        ok(r#"<textarea><form action="/nowhere"></textarea>"#);
        ok(r#"<title><a hx-get="/nowhere"></title>"#);
        // After them, markup is read again.
        assert!(one(r#"<!-- x --><script>x</script><a hx-get="/nope">"#).contains("/nope"));
        assert!(one("<!--><a hx-get=\"/nope\">").contains("/nope"));
        assert!(one("<!---><a hx-get=\"/nope\">").contains("/nope"));
        // A `</scriptx` does not close a script.
        ok(r#"<script>"</scriptx><a hx-get='/nowhere'>"</script>"#);
        // An unclosed comment or script runs to the end.
        ok(r#"<!-- <a hx-get="/nowhere">"#);
        ok(r#"<script><a hx-get="/nowhere">"#);
        // Doctype, processing instructions, end tags.
        ok(r#"<!DOCTYPE html><?xml version="1.0"?></a hx-get="/nowhere">"#);
    }

    #[test]
    fn jinja_code_is_not_markup() {
        ok(r#"{% set html = '<a hx-post="/nowhere">' %}"#);
        ok(r#"{{ '<a hx-post="/nowhere">' }}"#);
        ok(r#"{{ "}}<a hx-post='/nowhere'>" }}"#);
        ok(r#"{{ {'a': {'b': '<a hx-post="/nowhere">'}} }}"#);
        ok(r#"{%- macro f(x='%}<a hx-post="/nowhere">') -%}{%- endmacro %}"#);
        // An unclosed tag runs to the end (minijinja refuses the template anyway).
        ok(r#"{{ x <a hx-post="/nowhere">"#);
    }

    #[test]
    fn raw_blocks_are_markup() {
        assert!(one(r#"{% raw %}<a hx-get="/nope">{% endraw %}"#).contains("/nope"));
        assert!(one(r#"{%- raw -%}<a hx-get="/nope">{%- endraw +%}"#).contains("/nope"));
        // A `{{` inside raw is literal text, but still not a literal URL.
        ok(r#"{% raw %}<a hx-get="/x/{{ id }}">{% endraw %}"#);
        // After endraw, Jinja again.
        ok(r#"{% raw %}{% endraw %}{{ '<a hx-get="/nowhere">' }}"#);
    }

    #[test]
    fn attributes_in_jinja_branches_are_all_checked() {
        let src = r#"<form {% if edit %}hx-put="/tasks/3"{% else %}hx-post="/tasks/3"{% endif %}>"#;
        assert_eq!(
            one(src),
            r#"t.html:1: hx-post="/tasks/3" matches no POST route (routes for that path: GET, PUT, DELETE at /tasks/{id:int})"#
        );
        ok(r#"<form action="/login" {% if x %}method="post"{% endif %}>"#);
    }

    #[test]
    fn the_first_of_a_repeated_attribute_counts() {
        ok(r#"<a hx-get="/tasks" hx-get="/nowhere">"#);
        ok(r#"<form action="/login" method="post" method="get">"#);
    }

    #[test]
    fn several_mismatches_in_several_templates_are_sorted_by_template_then_line() {
        let z = "<a hx-get=\"/z1\">\n<a hx-get=\"/z2\">";
        let a = "\n\n<a hx-post=\"/a3\"><a hx-put=\"/a3b\">\n<form action=\"/logout\">\n";
        let m = "<a hx-get=\"/tasks\">";
        let err =
            check_templates(&[("z.html", z), ("a.html", a), ("m.html", m)], &tasks()).unwrap_err();
        let message = err.message();
        assert!(
            message.starts_with("5 URLs in templates match no route of the app:"),
            "{message}"
        );
        assert_eq!(
            lines(message),
            [
                r#"a.html:3: hx-post="/a3" matches no route"#,
                r#"a.html:3: hx-put="/a3b" matches no route"#,
                r#"a.html:4: <form action="/logout"> matches no GET route (routes for that path: POST at /logout)"#,
                r#"z.html:1: hx-get="/z1" matches no route"#,
                r#"z.html:2: hx-get="/z2" matches no route"#,
            ]
        );
        assert!(
            message.contains("fix the URL or add the route"),
            "{message}"
        );
        assert!(message.ends_with(OPT_OUT), "{message}");
        let err = check_templates(&[("x", "<a hx-get=/q>")], &tasks()).unwrap_err();
        assert!(err
            .message()
            .starts_with("a URL in a template matches no route of the app:\n  x:1: "));
    }

    #[test]
    fn templates_with_blocks_and_extends() {
        let base = include_str!("../../tests/fixtures/route_check/base.html");
        let list = include_str!("../../tests/fixtures/route_check/tasks.html");
        let broken = include_str!("../../tests/fixtures/route_check/broken.html");
        check_templates(&[("base.html", base), ("tasks.html", list)], &tasks()).unwrap();
        let found = |src: &str| -> Vec<(String, String)> {
            scan(src).into_iter().map(|f| (f.method, f.url)).collect()
        };
        let pair = |m: &str, u: &str| (m.to_owned(), u.to_owned());
        assert_eq!(found(base), [pair("POST", "/logout")]);
        assert_eq!(
            found(list),
            [
                pair("POST", "/tasks"),
                pair("GET", "/tasks?fragment=list"),
                pair("GET", "/tasks/"),
                pair("GET", "https://example.com/elsewhere"),
                pair("GET", "#top"),
                pair("GET", "tasks/relative"),
                pair("PATCH", "/tasks/1/title"),
            ]
        );
        let err = check_templates(
            &[
                ("base.html", base),
                ("tasks.html", list),
                ("broken.html", broken),
            ],
            &tasks(),
        )
        .unwrap_err();
        assert_eq!(
            lines(err.message()),
            [
                r#"broken.html:4: hx-post="/task" matches no route"#,
                r#"broken.html:9: hx-delete="/tasks/7/done" matches no DELETE route (routes for that path: POST at /tasks/{id:int}/done)"#,
                r#"broken.html:13: <form action="/tasks/x" method="post"> matches no route"#,
            ]
        );
    }

    #[test]
    fn no_templates_or_no_routes() {
        check_templates(&[], &tasks()).unwrap();
        check_templates(&[("e", "")], &[]).unwrap();
        let err = check_templates(&[("e", "<a hx-get=\"/\">")], &[]).unwrap_err();
        assert!(err.message().contains("e:1: hx-get=\"/\" matches no route"));
    }

    #[test]
    fn character_references_are_decoded() {
        assert_eq!(decode_references("/a?x=1&amp;y=2"), "/a?x=1&y=2");
        assert_eq!(decode_references("&#47;&#x2f;&#X2F;&sol;"), "////");
        assert_eq!(
            decode_references("&nope; & &#xZZ; &#1114112; &"),
            "&nope; & &#xZZ; &#1114112; &"
        );
    }

    #[test]
    fn target_paths() {
        assert_eq!(target_path("/a/b/?q#f"), Target::Path("/a/b".into()));
        assert_eq!(target_path("/"), Target::Path("/".into()));
        assert_eq!(target_path("/a b"), Target::Path("/a%20b".into()));
        assert_eq!(target_path("/%7e"), Target::Path("/~".into()));
        assert_eq!(target_path("https://x/y"), Target::Skip);
        assert_eq!(target_path("x:/y"), Target::Skip);
        assert!(matches!(target_path("/%"), Target::Refused(_)));
    }

    /// Pieces templates are made of, to build inputs that reach the scanner's corners.
    fn piece() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "<",
            ">",
            "</",
            "/",
            "=",
            "\"",
            "'",
            " ",
            "\n",
            "\t",
            "{{",
            "}}",
            "{%",
            "%}",
            "{#",
            "#}",
            "{%- raw -%}",
            "{% endraw %}",
            "raw",
            "<!--",
            "-->",
            "--!>",
            "<!",
            "<?",
            "<script>",
            "</script>",
            "<style",
            "<form",
            "<a",
            "action",
            "method",
            "post",
            "dialog",
            "hx-post",
            "data-hx-get",
            "HX-DELETE",
            "/tasks",
            "/tasks/7",
            "/x",
            "?q",
            "#f",
            "&amp;",
            "&#",
            ";",
            "%",
            "%2",
            "é",
            "٣",
            "\\",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "-",
            "\u{0}",
            "\u{1}",
            "\u{2}",
        ])
    }

    fn table() -> Vec<(Method, String)> {
        let mut t = tasks();
        t.push((Method::Get, "/x/{a:path}".to_owned()));
        t
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The scanner and the check never panic, on any text, and report lines that exist.
        #[test]
        fn never_panics_on_arbitrary_text(source in ".{0,300}") {
            let _ = scan(&source);
            if let Err(e) = check_templates(&[("t", &source)], &table()) {
                prop_assert!(e.message().contains("t:"));
            }
        }

        #[test]
        fn never_panics_on_template_like_text(pieces in prop::collection::vec(piece(), 0..60)) {
            let source = pieces.concat();
            let line_count = source.split('\n').count();
            for found in scan(&source) {
                prop_assert!(found.offset < source.len());
                let line = LineIndex::new(&source).line_of(found.offset);
                prop_assert!((1..=line_count).contains(&line));
            }
            let _ = check_templates(&[("t", &source)], &table());
        }

        /// A literal path to a route's own pattern (parameters filled in) passes with the
        /// route's method, and fails with a method the pattern lacks.
        #[test]
        fn a_route_serves_its_own_paths(
            segments in prop::collection::vec(
                prop_oneof![
                    "[a-z]{1,6}".prop_map(|s| (s.clone(), s)),
                    "[0-9]{1,4}".prop_map(|d| ("{n:int}".to_owned(), d)),
                    "[a-z0-9._~-]{1,6}".prop_map(|s| ("{s}".to_owned(), s)),
                ],
                0..5,
            ),
            trailing in any::<bool>(),
        ) {
            // One parameter of each name: number them.
            let pattern: Vec<String> = segments
                .iter()
                .enumerate()
                .map(|(i, (p, _))| p.replace("{n", &format!("{{n{i}")).replace("{s}", &format!("{{s{i}}}")))
                .collect();
            let pattern = format!("/{}", pattern.join("/"));
            let mut path = format!("/{}", segments.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>().join("/"));
            if trailing && !segments.is_empty() {
                path.push('/');
            }
            // `.` and `..` segments change the path: not what this property is about.
            prop_assume!(!segments.iter().any(|(_, s)| s == "." || s == ".."));
            let table = vec![(Method::Put, pattern.clone())];
            let good = format!("<button hx-put=\"{path}\">");
            prop_assert!(check_templates(&[("t", &good)], &table).is_ok(), "{} {}", pattern, path);
            let bad = format!("<button hx-patch=\"{path}\">");
            let err = check_templates(&[("t", &bad)], &table).unwrap_err();
            prop_assert!(err.message().contains("no PATCH route"), "{}", err);
        }
    }
}
