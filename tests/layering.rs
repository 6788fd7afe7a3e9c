//! Keeps the layering of `src/` as `docs/ARCHITECTURE.md` documents it (issue 19, item 6).
//!
//! The order lives in fenced blocks of `docs/ARCHITECTURE.md` whose info string is `layers`:
//!
//! ````text
//! ```layers
//! app        # topmost: may use everything below it
//! server
//! http
//! error      # the bottom: uses no other module
//! ```
//!
//! ```layers src/server
//! mod        # src/server/mod.rs
//! conn
//! parse
//! ```
//! ````
//!
//! Each non-empty line names one module (text after `#` is a comment), topmost first; a module
//! may use only the modules listed below it. The block without a path lists the top-level
//! modules of `src/` (a file `src/x.rs` or a folder `src/x/`); `lib.rs`, the crate root of
//! re-exports and `mod` lines, is exempt. A block `layers src/<folder>` lists the files of that
//! folder by module name (`mod.rs` as `mod`, a child folder by its name). Every block must list
//! every module of its folder, and only those. A folder without a block is checked for cycles
//! only; any cycle, between top-level modules or between the files of one folder, fails.
//!
//! Edges are read from the text, with std only (no `syn`): comments, doc comments and string
//! literals are blanked first, then `crate::…`, `super::…`, `self::…` paths (and, in a file that
//! has child modules, paths starting with a child's name) are collected, `use` groups expanded.
//! A name a module re-exports (`pub use child::Thing` in a `mod.rs`, `pub use error::Error` in
//! `lib.rs`) is followed to the file that defines it: `super::Thing` is an edge to that file,
//! and to `mod` only when `mod.rs` defines `Thing` itself. The re-export is itself an edge
//! `mod → child` (a folder's facade sits above its files), so an item that `mod.rs` defines and
//! a file it re-exports or calls uses is a cycle. Test code counts like any other code.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;

const DOC: &str = "docs/ARCHITECTURE.md";

/// A module's path from the crate root: `src/server/conn.rs` is `["server", "conn"]`,
/// `src/server/mod.rs` is `["server"]`, `src/lib.rs` is `[]`.
type ModPath = Vec<String>;

fn module_of(file: &str) -> Option<ModPath> {
    let rel = file.strip_prefix("src/")?.strip_suffix(".rs")?;
    let mut segs: ModPath = rel.split('/').map(str::to_owned).collect();
    if segs.last().is_some_and(|s| s == "mod") || segs == ["lib"] {
        segs.pop();
    }
    Some(segs)
}

/// `src`, `src/middleware/sessions`: how a folder is named in messages and block headers.
fn folder_label(folder: &[String]) -> String {
    std::iter::once("src")
        .chain(folder.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("/")
}

fn block_label(folder: &[String]) -> String {
    if folder.is_empty() {
        "layers".to_owned()
    } else {
        format!("layers {}", folder_label(folder))
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a source text: blank comments and literals, tokenize, collect paths.

/// The source with comments (`//`, `///`, `//!`, nested `/* */`), string literals (plain, byte,
/// raw) and char literals replaced by spaces, newlines kept so that line numbers hold. Crude,
/// but a path inside a doc comment, a `#[doc = "…"]` or a string is then no edge.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        let after_ident = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
        let end = match c[i] {
            '/' if next == Some('/') => c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p),
            '/' if next == Some('*') => block_comment_end(&c, i),
            '"' => string_end(&c, i + 1),
            'r' | 'b' if !after_ident => raw_string_end(&c, i).unwrap_or(i),
            '\'' => char_literal_end(&c, i).unwrap_or(i),
            _ => i,
        };
        if end == i {
            out.push(c[i]);
            i += 1;
        } else {
            out.extend(
                c[i..end]
                    .iter()
                    .map(|&x| if x == '\n' { '\n' } else { ' ' }),
            );
            i = end;
        }
    }
    out
}

fn block_comment_end(c: &[char], start: usize) -> usize {
    let (mut depth, mut i) = (0usize, start);
    while i + 1 < c.len() {
        if c[i] == '/' && c[i + 1] == '*' {
            depth += 1;
            i += 2;
        } else if c[i] == '*' && c[i + 1] == '/' {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    c.len()
}

/// The end of a `"…"` literal whose body starts at `i`.
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// `r"…"`, `r#"…"#`, `br"…"`: the end, or `None` when `c[i]` starts no raw string (`r#ident`,
/// a plain identifier, `b"…"` which the `"` arm takes).
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let r = if c[i] == 'b' { i + 1 } else { i };
    if c.get(r) != Some(&'r') {
        return None;
    }
    let hashes = c[r + 1..].iter().take_while(|&&x| x == '#').count();
    let open = r + 1 + hashes;
    if c.get(open) != Some(&'"') {
        return None;
    }
    let mut j = open + 1;
    while j < c.len() {
        if c[j] == '"'
            && c[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&x| x == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(c.len())
}

/// `'x'`, `'"'`, `'\''`, `'\u{1F600}'`; `None` for a lifetime (`'a`).
fn char_literal_end(c: &[char], i: usize) -> Option<usize> {
    if c.get(i + 1) == Some(&'\\') {
        let close = c[i + 3..].iter().position(|&x| x == '\'')?;
        Some(i + 3 + close + 1)
    } else if c.get(i + 2) == Some(&'\'') {
        Some(i + 3)
    } else {
        None
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Sep,
    Punct(char),
}

struct Token {
    tok: Tok,
    line: usize,
}

fn tokenize(stripped: &str) -> Vec<Token> {
    let c: Vec<char> = stripped.chars().collect();
    let (mut out, mut i, mut line) = (Vec::new(), 0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() || ch == '$' {
            // `$crate::x` in a macro is `crate::x`.
            i += 1;
        } else if ch.is_alphanumeric() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let tok = if ch.is_ascii_digit() {
                Tok::Punct('0')
            } else {
                Tok::Ident(word)
            };
            out.push(Token { tok, line });
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Token {
                tok: Tok::Sep,
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// A path as written in a file, `use` groups expanded.
#[derive(Debug, Clone, PartialEq)]
struct RawPath {
    line: usize,
    segs: Vec<String>,
    /// The inline modules around it (`mod tests { … }`): `super` leaves those first.
    scope: Vec<String>,
    /// The name a `use` brings into scope (its alias or last segment); `None` for a glob and
    /// for a path outside a `use`.
    name: Option<String>,
}

impl RawPath {
    fn text(&self) -> String {
        self.segs.join("::")
    }
}

/// Every path in `src` that can name a module of this crate: `crate::`, `super::`, `self::`,
/// or a child of this file (`children`), plus every leaf of every `use` (the re-export table
/// needs those; the ones into other crates resolve to nothing).
fn raw_paths(src: &str, children: &BTreeSet<String>) -> Vec<RawPath> {
    let t = tokenize(&strip(src));
    let tok = |i: usize| t.get(i).map(|x| &x.tok);
    let ident = |i: usize| match tok(i) {
        Some(Tok::Ident(s)) => Some(s.as_str()),
        _ => None,
    };
    let (mut out, mut depth, mut mods, mut i) =
        (Vec::new(), 0usize, Vec::<(String, usize)>::new(), 0);
    let scope = |mods: &[(String, usize)]| mods.iter().map(|m| m.0.clone()).collect::<Vec<_>>();
    while i < t.len() {
        let after_sep = i > 0 && tok(i - 1) == Some(&Tok::Sep);
        match &t[i].tok {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                depth = depth.saturating_sub(1);
                while mods.last().is_some_and(|m| m.1 > depth) {
                    mods.pop();
                }
            }
            Tok::Ident(k) if k == "mod" => {
                if let (Some(name), Some(Tok::Punct('{'))) = (ident(i + 1), tok(i + 2)) {
                    depth += 1;
                    mods.push((name.to_owned(), depth));
                    i += 3;
                    continue;
                }
            }
            Tok::Ident(k) if k == "use" && !after_sep => {
                let mut leaves = Vec::new();
                i = use_tree(&t, i + 1, Vec::new(), &mut leaves);
                let here = scope(&mods);
                out.extend(leaves.into_iter().map(|(line, segs, name)| RawPath {
                    line,
                    segs,
                    scope: here.clone(),
                    name,
                }));
                while i < t.len() && t[i].tok != Tok::Punct(';') {
                    i += 1;
                }
                continue;
            }
            Tok::Ident(first) if !after_sep && tok(i + 1) == Some(&Tok::Sep) => {
                let starts = matches!(first.as_str(), "crate" | "super" | "self")
                    || children.contains(first);
                let (mut segs, mut j, mut line) = (vec![first.clone()], i + 1, t[i].line);
                while tok(j) == Some(&Tok::Sep) {
                    let Some(next) = ident(j + 1) else { break };
                    segs.push(next.to_owned());
                    line = t[j + 1].line;
                    j += 2;
                }
                if starts {
                    out.push(RawPath {
                        line,
                        segs,
                        scope: scope(&mods),
                        name: None,
                    });
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

type UseLeaf = (usize, Vec<String>, Option<String>);

/// Parses the tree of a `use` from `i` (after the keyword), pushing one leaf per imported path:
/// `crate::{a::x, b::{self, y as z}}` gives `crate::a::x` (x), `crate::b` (b), `crate::b::y` (z).
/// Returns the index after the tree.
fn use_tree(t: &[Token], mut i: usize, prefix: Vec<String>, out: &mut Vec<UseLeaf>) -> usize {
    let mut segs = prefix;
    loop {
        match t.get(i).map(|x| &x.tok) {
            Some(Tok::Sep) => {
                // A leading `::` names another crate: no segment of ours can start it.
                if segs.is_empty() {
                    segs.push("::".to_owned());
                }
                i += 1;
            }
            Some(Tok::Ident(id)) => {
                segs.push(id.clone());
                let line = t[i].line;
                i += 1;
                if t.get(i).map(|x| &x.tok) == Some(&Tok::Sep) {
                    i += 1;
                    continue;
                }
                if segs.last().is_some_and(|s| s == "self") {
                    segs.pop();
                }
                let mut name = segs.last().cloned();
                if let (Some(Tok::Ident(kw)), Some(Tok::Ident(alias))) =
                    (t.get(i).map(|x| &x.tok), t.get(i + 1).map(|x| &x.tok))
                {
                    if kw == "as" {
                        name = Some(alias.clone());
                        i += 2;
                    }
                }
                out.push((line, segs, name));
                return i;
            }
            Some(Tok::Punct('*')) => {
                out.push((t[i].line, segs, None));
                return i + 1;
            }
            Some(Tok::Punct('{')) => {
                i += 1;
                while let Some(tok) = t.get(i) {
                    match tok.tok {
                        Tok::Punct('}') => return i + 1,
                        Tok::Punct(',') => i += 1,
                        _ => {
                            let before = i;
                            i = use_tree(t, i, segs.clone(), out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
                return i;
            }
            _ => return i,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The crate: modules, re-exports, edges.

/// One use of another module, at the level of the folder where the two part.
#[derive(Debug, Clone, PartialEq)]
struct Edge {
    /// The folder (`[]` for the top level) both ends are in.
    folder: ModPath,
    /// The members of that folder: a file's module name, `mod` for its `mod.rs`, a child
    /// folder's name for anything inside it.
    from: String,
    to: String,
    file: String,
    line: usize,
    path: String,
}

/// A file, its module, and its paths made absolute (those that name this crate).
struct SourceFile {
    file: String,
    module: ModPath,
    paths: Vec<(RawPath, Vec<String>)>,
}

struct Crate {
    modules: BTreeSet<ModPath>,
    /// Per module, the names its `use`s bring in, as absolute paths: how `crate::Error` or
    /// `super::Thing` reach the file that defines them.
    names: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
    files: Vec<SourceFile>,
}

impl Crate {
    fn new(sources: &[(String, String)]) -> Crate {
        let mut modules = BTreeSet::new();
        for (file, _) in sources {
            // A folder without a mod.rs is still a module.
            let mut m = module_of(file).unwrap_or_default();
            while modules.insert(m.clone()) && m.pop().is_some() {}
        }
        let mut names: BTreeMap<ModPath, BTreeMap<String, Vec<String>>> = BTreeMap::new();
        let mut files = Vec::new();
        for (file, text) in sources {
            let Some(module) = module_of(file) else {
                continue;
            };
            let children = child_names(&modules, &module);
            let mut paths = Vec::new();
            for rp in raw_paths(text, &children) {
                let Some(abs) = absolute(&rp, &module, &children) else {
                    continue;
                };
                if let (Some(name), true) = (&rp.name, rp.scope.is_empty()) {
                    names
                        .entry(module.clone())
                        .or_default()
                        .insert(name.clone(), abs.clone());
                }
                paths.push((rp, abs));
            }
            files.push(SourceFile {
                file: file.clone(),
                module,
                paths,
            });
        }
        Crate {
            modules,
            names,
            files,
        }
    }

    /// The module an absolute path ends in, following re-exported names.
    fn resolve(&self, abs: &[String], hops: u8) -> ModPath {
        let mut cur = ModPath::new();
        for seg in abs {
            let mut cand = cur.clone();
            cand.push(seg.clone());
            if self.modules.contains(&cand) {
                cur = cand;
                continue;
            }
            match self.names.get(&cur).and_then(|n| n.get(seg)) {
                Some(target) if hops < 8 && *target != cand => cur = self.resolve(target, hops + 1),
                _ => break,
            }
        }
        cur
    }

    fn is_folder(&self, m: &[String]) -> bool {
        m.is_empty() || !child_names(&self.modules, m).is_empty()
    }

    /// The members of a folder, as a layers block names them.
    fn members(&self, folder: &[String]) -> BTreeSet<String> {
        let mut out = child_names(&self.modules, folder);
        if !folder.is_empty() {
            out.insert("mod".to_owned());
        }
        out
    }

    /// Where a member lives, for messages: `src/http/`, `src/app.rs`, `src/server/mod.rs`.
    fn member_label(&self, folder: &[String], member: &str) -> String {
        let base = folder_label(folder);
        let mut m = folder.to_vec();
        m.push(member.to_owned());
        if member == "mod" {
            format!("{base}/mod.rs")
        } else if self.is_folder(&m) {
            format!("{base}/{member}/")
        } else {
            format!("{base}/{member}.rs")
        }
    }

    fn edges(&self) -> Vec<Edge> {
        let mut out = Vec::new();
        for SourceFile {
            file,
            module: from,
            paths,
        } in &self.files
        {
            // lib.rs is the crate root: `mod` lines and re-exports, no layer of its own.
            if from.is_empty() {
                continue;
            }
            for (rp, abs) in paths {
                let to = self.resolve(abs, 0);
                if to.is_empty() {
                    continue;
                }
                let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
                if common == from.len() && common == to.len() {
                    continue;
                }
                let member =
                    |m: &ModPath| m.get(common).cloned().unwrap_or_else(|| "mod".to_owned());
                let edge = Edge {
                    folder: from[..common].to_vec(),
                    from: member(from),
                    to: member(&to),
                    file: file.clone(),
                    line: rp.line,
                    path: rp.text(),
                };
                // `use crate::http::{Request, Response}` is one edge, not two.
                if !out.iter().any(|e: &Edge| {
                    (&e.file, e.line, &e.folder, &e.to)
                        == (&edge.file, edge.line, &edge.folder, &edge.to)
                }) {
                    out.push(edge);
                }
            }
        }
        out
    }
}

fn child_names(modules: &BTreeSet<ModPath>, m: &[String]) -> BTreeSet<String> {
    modules
        .iter()
        .filter(|x| x.len() == m.len() + 1 && x.starts_with(m))
        .map(|x| x[m.len()].clone())
        .collect()
}

/// A written path made absolute (from the crate root), or `None` when it names another crate.
fn absolute(rp: &RawPath, module: &[String], children: &BTreeSet<String>) -> Option<Vec<String>> {
    let first = rp.segs.first()?.as_str();
    // Where `self` is: the file's module, or an inline module inside it.
    let here: Vec<String> = module.iter().chain(&rp.scope).cloned().collect();
    match first {
        "crate" => Some(rp.segs[1..].to_vec()),
        "self" => Some(
            here.into_iter()
                .chain(rp.segs[1..].iter().cloned())
                .collect(),
        ),
        "super" => {
            let ups = rp.segs.iter().take_while(|s| *s == "super").count();
            let base = here.len().checked_sub(ups)?;
            Some(
                here[..base]
                    .iter()
                    .chain(&rp.segs[ups..])
                    .cloned()
                    .collect(),
            )
        }
        // `conn::serve` in server/mod.rs; inside its `mod tests`, reached through `use super::*`.
        _ if children.contains(first) => Some(module.iter().chain(&rp.segs).cloned().collect()),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// The layers blocks, and the checks.

#[derive(Debug, PartialEq)]
struct Layers {
    folder: ModPath,
    /// Topmost first.
    names: Vec<String>,
}

/// The ```layers blocks of a markdown text.
fn parse_layers(doc: &str) -> Result<Vec<Layers>, String> {
    let mut out: Vec<Layers> = Vec::new();
    let mut current: Option<Layers> = None;
    let mut in_other_fence = false;
    for (n, line) in doc.lines().enumerate() {
        let trimmed = line.trim();
        let fence = trimmed.starts_with("```");
        if in_other_fence {
            in_other_fence = !fence;
            continue;
        }
        if let Some(block) = current.as_mut() {
            if fence {
                out.extend(current.take());
            } else {
                let name = trimmed.split('#').next().unwrap_or("").trim();
                let name = name.trim_end_matches('/');
                let name = name.strip_suffix(".rs").unwrap_or(name);
                if !name.is_empty() {
                    block.names.push(name.to_owned());
                }
            }
            continue;
        }
        if !fence {
            continue;
        }
        let mut info = trimmed[3..].split_whitespace();
        if info.next() != Some("layers") {
            in_other_fence = true;
            continue;
        }
        let folder = match info.next() {
            None => ModPath::new(),
            Some(p) => match p.trim_end_matches('/').strip_prefix("src/") {
                Some(rest) => rest.split('/').map(str::to_owned).collect(),
                None => {
                    return Err(format!(
                    "{DOC}:{}: a layers block names a folder as `layers src/<folder>`, not `{p}`",
                    n + 1
                ))
                }
            },
        };
        if out.iter().any(|b| b.folder == folder) {
            return Err(format!(
                "{DOC}:{}: a second ```{} block",
                n + 1,
                block_label(&folder)
            ));
        }
        current = Some(Layers {
            folder,
            names: Vec::new(),
        });
    }
    if current.is_some() {
        return Err(format!("{DOC}: a layers block is not closed"));
    }
    Ok(out)
}

/// Every failure of `sources` (file path, text) against the layers blocks of `doc`.
fn check(sources: &[(String, String)], doc: &str) -> Vec<String> {
    let blocks = match parse_layers(doc) {
        Ok(b) => b,
        Err(e) => return vec![e],
    };
    let krate = Crate::new(sources);
    let mut failures = Vec::new();
    if !blocks.iter().any(|b| b.folder.is_empty()) {
        failures.push(format!(
            "{DOC} has no ```layers block (the top-level modules of src/, topmost first)"
        ));
    }
    for b in &blocks {
        let label = block_label(&b.folder);
        if !krate.is_folder(&b.folder) {
            failures.push(format!(
                "{DOC}'s ```{label}: {}/ is not a folder of modules: remove the block",
                folder_label(&b.folder)
            ));
            continue;
        }
        let members = krate.members(&b.folder);
        let mut seen = BTreeSet::new();
        for name in &b.names {
            if !seen.insert(name) {
                failures.push(format!(
                    "{DOC}'s ```{label} lists `{name}` twice: remove one"
                ));
            } else if !members.contains(name) {
                failures.push(format!(
                    "{DOC}'s ```{label} lists `{name}`, which is not in {}/: remove it",
                    folder_label(&b.folder)
                ));
            }
        }
        for m in members.iter().filter(|m| !b.names.contains(*m)) {
            failures.push(format!(
                "`{m}` ({}) is missing from {DOC}'s ```{label}: add it",
                krate.member_label(&b.folder, m)
            ));
        }
    }
    let edges = krate.edges();
    for e in &edges {
        let Some(b) = blocks.iter().find(|b| b.folder == e.folder) else {
            continue;
        };
        let rank = |m: &str| b.names.iter().position(|n| n == m);
        if let (Some(from), Some(to)) = (rank(&e.from), rank(&e.to)) {
            if to < from {
                failures.push(format!(
                    "{}:{} uses {} ({} is above {} in {DOC}'s {})",
                    e.file,
                    e.line,
                    e.path,
                    e.to,
                    e.from,
                    block_label(&e.folder)
                ));
            }
        }
    }
    let folders: BTreeSet<&ModPath> = edges.iter().map(|e| &e.folder).collect();
    for folder in folders {
        let here: Vec<&Edge> = edges.iter().filter(|e| &e.folder == folder).collect();
        let pairs: Vec<(&str, &str)> = here
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str()))
            .collect();
        for cycle in cycles(&pairs) {
            let hops: Vec<String> = cycle
                .windows(2)
                .map(|w| {
                    let e = here
                        .iter()
                        .find(|e| e.from == w[0] && e.to == w[1])
                        .expect("an edge of the cycle");
                    format!("{}:{} uses {}", e.file, e.line, e.path)
                })
                .collect();
            let between = if folder.is_empty() {
                "top-level modules".to_owned()
            } else {
                format!("the files of {}/", folder_label(folder))
            };
            failures.push(format!(
                "cycle between {between}: {} ({})",
                cycle.join(" → "),
                hops.join("; ")
            ));
        }
    }
    failures
}

/// The cycles of a graph whose edges are `(from, to)`, each as `[a, b, a]`: the shortest
/// cycle through each member that is on one and not already on a cycle listed, so that a
/// tangle of several loops shows each of them rather than one.
fn cycles(edges: &[(&str, &str)]) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for &(a, b) in edges {
        if a != b {
            next.entry(a).or_default().insert(b);
            next.entry(b).or_default();
        }
    }
    let mut covered = BTreeSet::new();
    let mut out = Vec::new();
    for &start in next.keys() {
        if covered.contains(start) {
            continue;
        }
        // Breadth first from `start` back to it: the first way back is a shortest cycle.
        let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([start]);
        'search: while let Some(n) = queue.pop_front() {
            for &m in &next[n] {
                if m == start {
                    let mut back = vec![start.to_owned()];
                    let mut at = n;
                    while at != start {
                        back.push(at.to_owned());
                        at = came_from[at];
                    }
                    back.push(start.to_owned());
                    back.reverse();
                    covered.extend(back.iter().cloned());
                    out.push(back);
                    break 'search;
                }
                if !came_from.contains_key(m) {
                    came_from.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The real tree.

fn rust_files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("src/ is readable")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, root, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let rel = path
                .strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((
                rel,
                std::fs::read_to_string(&path).expect("a readable source file"),
            ));
        }
    }
}

#[test]
fn src_follows_the_documented_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut sources = Vec::new();
    rust_files(&root.join("src"), root, &mut sources);
    let doc = std::fs::read_to_string(root.join(DOC)).expect("docs/ARCHITECTURE.md is readable");
    let failures = check(&sources, &doc);
    assert!(
        failures.is_empty(),
        "src/ breaks the layering of {DOC}:\n  {}\n",
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The checker's own tests: it must be able to fail.

fn srcs(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect()
}

fn edge_list(files: &[(&str, &str)]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = Crate::new(&srcs(files))
        .edges()
        .into_iter()
        .map(|e| (folder_label(&e.folder), e.from, e.to))
        .collect();
    out.sort();
    out.dedup();
    out
}

fn e(folder: &str, from: &str, to: &str) -> (String, String, String) {
    (folder.to_owned(), from.to_owned(), to.to_owned())
}

const ABC: &str = "# Layers\n\n```layers\na  # top\nb\n\nc\n```\n";

#[test]
fn a_lower_module_using_a_higher_one_is_reported() {
    let failures = check(
        &srcs(&[
            ("src/lib.rs", "mod a; mod b; mod c;\npub use a::A;\n"),
            ("src/a.rs", "use crate::b::B;\npub struct A;\n"),
            ("src/b.rs", "pub struct B;\n"),
            ("src/c.rs", "\nfn f() { let _ = crate::a::A; }\n"),
        ]),
        ABC,
    );
    assert_eq!(
        failures,
        ["src/c.rs:2 uses crate::a::A (a is above c in docs/ARCHITECTURE.md's layers)"]
    );
}

#[test]
fn the_order_in_a_folder_block_is_checked() {
    let doc = format!("{ABC}\n```layers src/a\nmod\nx\ny  # the bottom\n```\n");
    let failures = check(
        &srcs(&[
            ("src/lib.rs", ""),
            (
                "src/a/mod.rs",
                "mod x; mod y;\nuse self::x::X;\nuse self::y::Y;\n",
            ),
            ("src/a/x.rs", "pub struct X;\n"),
            ("src/a/y.rs", "pub struct Y;\nfn f() { crate::a::x::X; }\n"),
            ("src/b.rs", ""),
            ("src/c.rs", ""),
        ]),
        &doc,
    );
    assert_eq!(failures, ["src/a/y.rs:2 uses crate::a::x::X (x is above y in docs/ARCHITECTURE.md's layers src/a)"]);
}

#[test]
fn a_module_missing_from_the_block_or_not_in_src_is_reported() {
    let failures = check(
        &srcs(&[
            ("src/lib.rs", ""),
            ("src/a.rs", ""),
            ("src/b/mod.rs", ""),
            ("src/b/z.rs", ""),
            ("src/d.rs", ""),
        ]),
        &format!("{ABC}\n```layers src/b\nmod\n```\n"),
    );
    assert_eq!(
        failures,
        [
            "docs/ARCHITECTURE.md's ```layers lists `c`, which is not in src/: remove it",
            "`d` (src/d.rs) is missing from docs/ARCHITECTURE.md's ```layers: add it",
            "`z` (src/b/z.rs) is missing from docs/ARCHITECTURE.md's ```layers src/b: add it",
        ]
    );
    let failures = check(
        &srcs(&[("src/lib.rs", ""), ("src/a.rs", "")]),
        "no block here\n```rust\nlayers\n```\n",
    );
    assert_eq!(failures, ["docs/ARCHITECTURE.md has no ```layers block (the top-level modules of src/, topmost first)"]);
}

#[test]
fn two_and_three_cycles_are_found() {
    assert_eq!(
        cycles(&[("a", "b"), ("b", "a"), ("c", "a")]),
        [["a", "b", "a"]]
    );
    assert_eq!(
        cycles(&[("x", "y"), ("y", "z"), ("z", "x"), ("x", "w")]),
        [["x", "y", "z", "x"]]
    );
    assert!(cycles(&[("a", "b"), ("b", "c"), ("a", "c")]).is_empty());
    // Two loops joined into one tangle are both shown.
    assert_eq!(
        cycles(&[
            ("a", "b"),
            ("b", "a"),
            ("b", "c"),
            ("c", "d"),
            ("d", "c"),
            ("d", "a")
        ]),
        [["a", "b", "a"], ["c", "d", "c"]]
    );
    // A folder without a block is still checked for cycles, and a top-level one is printed.
    let failures = check(
        &srcs(&[
            ("src/lib.rs", ""),
            ("src/a.rs", "use crate::b::B;"),
            ("src/b.rs", "use crate::c::C;"),
            ("src/c.rs", "use crate::a::A;"),
            ("src/f/mod.rs", "mod p; mod q;"),
            ("src/f/p.rs", "use super::q::Q;"),
            ("src/f/q.rs", "fn g() { super::p::P }"),
        ]),
        "```layers\nf\na\nb\nc\n```\n",
    );
    assert_eq!(
        failures,
        [
            "src/c.rs:1 uses crate::a::A (a is above c in docs/ARCHITECTURE.md's layers)",
            "cycle between top-level modules: a → b → c → a (src/a.rs:1 uses crate::b::B; src/b.rs:1 uses crate::c::C; src/c.rs:1 uses crate::a::A)",
            "cycle between the files of src/f/: p → q → p (src/f/p.rs:1 uses super::q::Q; src/f/q.rs:1 uses super::p::P)",
        ]
    );
}

#[test]
fn use_groups_are_expanded() {
    let paths: Vec<String> = raw_paths(
        "use crate::{a::x, b::{self, y as w, z::*}};",
        &BTreeSet::new(),
    )
    .iter()
    .map(RawPath::text)
    .collect();
    assert_eq!(
        paths,
        ["crate::a::x", "crate::b", "crate::b::y", "crate::b::z"]
    );
    let src = [
        ("src/lib.rs", ""),
        ("src/a.rs", ""),
        ("src/b.rs", ""),
        ("src/m.rs", "use crate::{a::x, b::{y, z}};"),
    ];
    assert_eq!(edge_list(&src), [e("src", "m", "a"), e("src", "m", "b")]);
}

#[test]
fn super_and_self_resolve_relative_to_the_file() {
    let src = [
        ("src/lib.rs", "pub use m::Thing;"),
        ("src/m/mod.rs", "mod n; mod top;\npub struct Own;\npub use top::Thing;\nfn f() { n::g(); }"),
        ("src/m/top.rs", "pub struct Thing;"),
        ("src/m/n/mod.rs", "mod deep; mod sib;\nuse self::sib::S;"),
        ("src/m/n/sib.rs", "pub struct S;"),
        // super is n, super::super is m; super::super::Thing is re-exported by m from top.rs.
        ("src/m/n/deep.rs", "use super::sib::S;\nuse super::super::{Own, Thing};\nfn f() { super::Local; }"),
        ("src/x.rs", "fn f() { crate::Thing; }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::m::n;\n}"),
    ];
    assert_eq!(
        edge_list(&src),
        [
            e("src", "x", "m"),
            e("src/m", "mod", "n"),
            e("src/m", "mod", "top"),
            e("src/m", "n", "mod"),
            e("src/m", "n", "top"),
            e("src/m/n", "deep", "mod"),
            e("src/m/n", "deep", "sib"),
            e("src/m/n", "mod", "sib"),
        ]
    );
}

#[test]
fn paths_in_comments_docs_and_strings_are_no_edges() {
    let text = r####"
//! crate::a in the module's docs
/// crate::a in an item's docs
// crate::a in a comment
/* crate::a /* nested */ crate::a */
#[doc = "crate::a"]
fn f() -> &'static str {
    let _q = '"';
    let _e = '\'';
    let _s = "crate::a \" crate::a";
    let _r = r#"crate::a " crate::a"#;
    let _b = br"crate::a";
    crate::b::real()
}
"####;
    let paths: Vec<(usize, String)> = raw_paths(text, &BTreeSet::new())
        .iter()
        .map(|p| (p.line, p.text()))
        .collect();
    assert_eq!(paths, [(13, "crate::b::real".to_owned())]);
}

#[test]
fn lib_rs_is_exempt_and_other_crates_are_no_edges() {
    let src = [
        (
            "src/lib.rs",
            "mod a; mod b;\npub use a::A;\nfn f() { crate::b::g(); }",
        ),
        (
            "src/a.rs",
            "use std::sync::Arc;\nuse ::b::x;\nuse tokio::io;",
        ),
        ("src/b.rs", ""),
    ];
    assert!(edge_list(&src).is_empty());
}

#[test]
fn the_layers_blocks_are_read() {
    let doc = "text\n```\nlayers\n```\n```layers\napp   # top\n\nhttp.rs\n```\n```layers src/middleware/sessions/\nmod\nstore\n```\n";
    assert_eq!(
        parse_layers(doc).unwrap(),
        [
            Layers {
                folder: vec![],
                names: vec!["app".into(), "http".into()]
            },
            Layers {
                folder: vec!["middleware".into(), "sessions".into()],
                names: vec!["mod".into(), "store".into()]
            },
        ]
    );
    assert!(parse_layers("```layers\na\n").is_err());
    assert!(parse_layers("```layers middleware\na\n```\n").is_err());
}
