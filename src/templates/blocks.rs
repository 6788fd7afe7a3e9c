//! The blocks a template's source defines, and the template it extends, read from its text:
//! what an error about a missing block lists, and what [`Templates::check_block`] checks
//! (minijinja keeps block names to itself).
//!
//! [`Templates::check_block`]: super::Templates::check_block

/// The tags of `source` (`{% name arg ... %}`), as (name, the rest up to `%}`).
fn tags(source: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = source;
    std::iter::from_fn(move || loop {
        let start = rest.find("{%")?;
        let after = &rest[start + 2..];
        let end = after.find("%}")?;
        let inner = after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        rest = &after[end + 2..];
        let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        if !name.is_empty() {
            return Some((name, args.trim()));
        }
    })
}

/// The names of the blocks `source` defines, in order.
pub(crate) fn defined(source: &str) -> Vec<String> {
    tags(source)
        .filter(|(tag, _)| *tag == "block")
        .filter_map(|(_, args)| args.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The template `source` extends, when it names it literally (`{% extends "base.html" %}`).
pub(crate) fn extends(source: &str) -> Option<&str> {
    let (_, args) = tags(source).find(|(tag, _)| *tag == "extends")?;
    let quoted = args.trim();
    let quote = quoted.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let inner = &quoted[1..];
    Some(&inner[..inner.find(quote)?])
}

/// The tags of `source` with where each starts and ends (`{%` to after `%}`), as
/// (start, end, name, the rest up to `%}`).
fn tags_at(source: &str) -> impl Iterator<Item = (usize, usize, &str, &str)> {
    let mut at = 0;
    std::iter::from_fn(move || loop {
        let start = at + source[at..].find("{%")?;
        let inner_start = start + 2;
        let end = inner_start + source[inner_start..].find("%}")? + 2;
        at = end;
        let inner = source[inner_start..end - 2]
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        if !name.is_empty() {
            return Some((start, end, name, args.trim()));
        }
    })
}

/// Tag `tag` (`{%- block rows %}`) with `words` in place of its own (`{%- if true %}`): the
/// same whitespace control marks, and the same line breaks, so that the lines after it keep
/// their numbers.
fn retag(tag: &str, words: &str) -> String {
    let inner = &tag[2..tag.len() - 2];
    let marks = |c: char| c == '-' || c == '+' || c.is_whitespace();
    let lead = inner.len() - inner.trim_start_matches(marks).len();
    let trail = inner.trim_end_matches(marks).len();
    let own = &inner[lead..trail.max(lead)];
    let mut out = String::with_capacity(tag.len() + words.len());
    out.push_str(&tag[..2 + lead]);
    out.push_str(words);
    out.extend(std::iter::repeat_n('\n', own.matches('\n').count()));
    out.push_str(&inner[trail.max(lead)..]);
    out.push_str("%}");
    out
}

/// Tags a template may have outside its blocks and still render a block on its own: none of
/// them sets anything a block could read.
const NEUTRAL: [&str; 6] = ["if", "elif", "else", "endif", "for", "endfor"];

/// Each block of `source` as a template of its own (block name, source), for templates whose
/// blocks render the same alone as from a whole evaluation of the template (what minijinja's
/// `render_block` runs first): no `{% extends %}`, nothing outside the blocks but text,
/// expressions and `if`/`for` (no `set`, `import`, `macro`, `with`...: nothing a block
/// could read), no comments or `raw` sections (where tags are not tags), and blocks that
/// use neither `super()` nor `self`. Any other template gives nothing: its fragments are
/// rendered the general way.
///
/// Each source is the block's own text, from its `{% block %}` tag to its `{% endblock %}`,
/// after a comment holding as many line breaks as came before it, so that an error names
/// the same line as in the template. The two tags become `{% if true %}` and `{% endif %}`
/// (same whitespace control, same line breaks): rendered from the template, a block runs in
/// a frame of its own and minijinja keeps a table of the template's blocks for each render;
/// alone, its body needs neither. (A frame only scopes the block's `set`s, which nothing
/// after the body reads: the template ends there. Blocks nested in it stay blocks.)
pub(crate) fn standalone(source: &str) -> Vec<(String, String)> {
    // Comments, and quoted tag marks (`{{ "{%" }}`), would throw the tag scan off.
    if ["{#", "\"{%", "'{%", "%}\"", "%}'"]
        .iter()
        .any(|m| source.contains(m))
    {
        return Vec::new();
    }
    // (name, where its tag starts, where it ends) of each block open at this point.
    let mut open: Vec<(&str, usize, usize)> = Vec::new();
    let mut found = Vec::new();
    for (start, end, tag, args) in tags_at(source) {
        match tag {
            "block" => {
                let mut words = args.split_whitespace();
                let (Some(name), None) = (words.next(), words.next()) else {
                    return Vec::new(); // scoped, required: the general way
                };
                open.push((name, start, end));
            }
            "endblock" => {
                let Some((name, from, body)) = open.pop() else {
                    return Vec::new();
                };
                if !args.is_empty() && args != name {
                    return Vec::new();
                }
                let text = &source[from..end];
                if ["super(", "self.", "self["]
                    .iter()
                    .any(|m| text.contains(m))
                {
                    return Vec::new();
                }
                let lines = source[..from].matches('\n').count();
                let mut alone = String::with_capacity(lines + source.len() + 48);
                if lines > 0 {
                    alone.push_str("{#");
                    alone.extend(std::iter::repeat_n('\n', lines));
                    alone.push_str("#}");
                }
                alone.push_str(&retag(&source[from..body], "if true"));
                alone.push_str(&source[body..start]);
                alone.push_str(&retag(&source[start..end], "endif"));
                // minijinja sizes a render's first buffer from the template's text: text never
                // written (as long as the rest of the template) makes it the whole template's,
                // so that a large block does not grow its buffer four times over.
                let rest = source.len() - text.len();
                if rest > 0 {
                    alone.push_str("{% if false %}");
                    alone.extend(std::iter::repeat_n(' ', rest));
                    alone.push_str("{% endif %}");
                }
                found.push((name.to_owned(), alone));
            }
            "raw" | "extends" => return Vec::new(),
            _ if open.is_empty() && !NEUTRAL.contains(&tag) => return Vec::new(),
            _ => {}
        }
    }
    if open.is_empty() {
        found
    } else {
        Vec::new()
    }
}

/// A block as its template's source defines it: its name, its own text (without the blocks
/// nested in it), and the block it is nested in, if any.
#[derive(Debug, PartialEq)]
pub(crate) struct BlockText {
    pub(crate) name: String,
    pub(crate) own: String,
    pub(crate) parent: Option<String>,
}

/// Every block `source` defines, with its own text (what [`Suspense`](super::Suspense) looks
/// at to find the blocks that use a value: a value used only by a nested block belongs to
/// that block, not to the one around it).
pub(crate) fn texts(source: &str) -> Vec<BlockText> {
    let mut out = Vec::new();
    // The blocks open at the cursor, innermost last: (name, own text so far).
    let mut open: Vec<(String, String)> = Vec::new();
    let mut rest = source;
    while let Some(start) = rest.find("{%") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("%}") else { break };
        let tag = &rest[..start + 2 + end + 2];
        let inner = after[..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let (name, args) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
        let text_before = &rest[..start];
        match name {
            "block" => {
                if let Some((_, own)) = open.last_mut() {
                    own.push_str(text_before);
                }
                let block = args.split_whitespace().next().unwrap_or_default();
                open.push((block.to_owned(), String::new()));
            }
            "endblock" => {
                if let Some((block, mut own)) = open.pop() {
                    own.push_str(text_before);
                    out.push(BlockText {
                        name: block,
                        own,
                        parent: open.last().map(|(name, _)| name.clone()),
                    });
                }
            }
            _ => {
                if let Some((_, own)) = open.last_mut() {
                    own.push_str(tag);
                }
            }
        }
        rest = &rest[start + 2 + end + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blocks_and_the_parent() {
        let src = r#"{% extends "base.html" %}{%- block title -%}T{% endblock %}
            {% block content scoped %}{% if x %}{% block inner %}{% endblock %}{% endif %}{% endblock %}"#;
        assert_eq!(defined(src), ["title", "content", "inner"]);
        assert_eq!(extends(src), Some("base.html"));
        assert_eq!(extends("{% extends layout %}"), None);
        assert!(defined("no tags {{ x }}").is_empty());
    }

    #[test]
    fn blocks_stand_alone_only_when_nothing_outside_them_matters() {
        let src = "<h1>{{ t }}</h1>\n{% if x %}{% block a %}A{% block b %}B{{ y }}{% endblock %}{% endblock a %}{% endif %}";
        let found = standalone(src);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, "b");
        assert!(found[0]
            .1
            .starts_with("{#\n#}{% if true %}B{{ y }}{% endif %}{% if false %}  "));
        assert_eq!(found[1].0, "a");
        assert!(found[1]
            .1
            .contains("#}{% if true %}A{% block b %}B{{ y }}{% endblock %}{% endif %}{% if"));
        for general in [
            "{% extends \"base.html\" %}{% block a %}{% endblock %}",
            "{% set x = 1 %}{% block a %}{{ x }}{% endblock %}",
            "{% import \"m.html\" as m %}{% block a %}{% endblock %}",
            "{% macro m() %}{% endmacro %}{% block a %}{% endblock %}",
            "{# {% endblock %} #}{% block a %}{% endblock %}",
            "{% block a %}{{ super() }}{% endblock %}",
            "{% block a %}{{ self.b() }}{% endblock %}{% block b %}{% endblock %}",
            "{% block a scoped %}{% endblock %}",
            "{% raw %}{% block a %}{% endraw %}",
            "{% block a %}",
        ] {
            assert!(standalone(general).is_empty(), "{general}");
        }
    }

    #[test]
    fn block_tags_become_if_tags_with_the_same_marks_and_lines() {
        assert_eq!(retag("{% block rows %}", "if true"), "{% if true %}");
        assert_eq!(retag("{%- block rows -%}", "if true"), "{%- if true -%}");
        assert_eq!(retag("{%+block\n  rows\n%}", "if true"), "{%+if true\n\n%}");
        assert_eq!(retag("{% endblock rows %}", "endif"), "{% endif %}");
        assert_eq!(retag("{%-endblock-%}", "endif"), "{%-endif-%}");
    }

    #[test]
    fn block_texts_leave_out_nested_blocks() {
        let src = "{% extends \"b\" %}{% block content %}<main>{% if a %}{% block stats -%}\
            <p id=stats>{{ stats.n }}</p>{%- endblock %}{% endif %}{{ b }}</main>{% endblock %}";
        let texts = texts(src);
        assert_eq!(
            texts,
            [
                BlockText {
                    name: "stats".into(),
                    own: "<p id=stats>{{ stats.n }}</p>".into(),
                    parent: Some("content".into()),
                },
                BlockText {
                    name: "content".into(),
                    own: "<main>{% if a %}{% endif %}{{ b }}</main>".into(),
                    parent: None,
                },
            ]
        );
    }
}
