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
}
