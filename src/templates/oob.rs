//! Out-of-band swaps (htmx's `hx-swap-oob`): a fragment rendered beside the main answer is
//! marked so that htmx swaps it into the element of the same id, wherever it is on the page.
//!
//! When the fragment is one element with that id (`<span id="count">3</span>`), the attribute
//! goes on it: htmx replaces the element with it (`hx-swap-oob="true"`, an outer swap). When it
//! is anything else (text, several elements, an element without the id), it is wrapped, as the
//! Python framework does: `<div id="count" hx-swap-oob="innerHTML">...</div>`, whose children
//! htmx swaps into the element. A swap the fragment names ([`Fragment::swap`]) is used as given.
//!
//! [`Fragment::swap`]: super::Fragment::swap

use crate::html::escape_html;

/// Elements that have no end tag.
const VOID: [&str; 14] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Elements whose content is text up to their end tag (no tags inside).
const RAW: [&str; 4] = ["script", "style", "textarea", "title"];

/// `html` marked for an out-of-band swap into the element `#id`.
pub(crate) fn mark(html: &str, id: &str, swap: Option<&str>) -> String {
    let trimmed = html.trim();
    if let Some(root) = single_root(trimmed) {
        if root.has_oob {
            // The template marked it itself: as it is.
            return trimmed.to_owned();
        }
        if root.id.as_deref() == Some(id) {
            let swap = swap.unwrap_or("true");
            let mut out = String::with_capacity(trimmed.len() + swap.len() + 16);
            out.push_str(&trimmed[..root.insert_at]);
            out.push_str(" hx-swap-oob=\"");
            out.push_str(&escape_html(swap));
            out.push('"');
            out.push_str(&trimmed[root.insert_at..]);
            return out;
        }
    }
    let swap = swap.unwrap_or("innerHTML");
    format!(
        r#"<div id="{}" hx-swap-oob="{}">{html}</div>"#,
        escape_html(id),
        escape_html(swap)
    )
}

/// The one root element of a fragment: where its start tag's attributes end, its `id`, and
/// whether it carries `hx-swap-oob` already.
#[derive(Debug, PartialEq)]
struct Root {
    insert_at: usize,
    id: Option<String>,
    has_oob: bool,
}

/// A start tag read at `<`: its name (lower case), its attributes, where it ends (after `>`),
/// where its attributes end (before `/>` or `>`), and whether it closes itself.
struct StartTag {
    name: String,
    attrs: Vec<(String, String)>,
    end: usize,
    attrs_end: usize,
    self_closing: bool,
}

fn start_tag(html: &str, at: usize) -> Option<StartTag> {
    let bytes = html.as_bytes();
    let mut i = at + 1;
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
        i += 1;
    }
    if i == name_start || !bytes[name_start].is_ascii_alphabetic() {
        return None;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        match bytes.get(i)? {
            b'>' => {
                return Some(StartTag {
                    name,
                    attrs,
                    end: i + 1,
                    attrs_end: i,
                    self_closing: false,
                })
            }
            b'/' if bytes.get(i + 1) == Some(&b'>') => {
                return Some(StartTag {
                    name,
                    attrs,
                    end: i + 2,
                    attrs_end: i,
                    self_closing: true,
                })
            }
            _ => {}
        }
        let attr_start = i;
        while i < bytes.len()
            && !matches!(bytes[i], b'=' | b'>' | b'/')
            && !bytes[i].is_ascii_whitespace()
        {
            i += 1;
        }
        if i == attr_start {
            i += 1; // a stray `/`
            continue;
        }
        let attr = html[attr_start..i].to_ascii_lowercase();
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            match bytes.get(i)? {
                q @ (b'"' | b'\'') => {
                    let close = html[i + 1..].find(*q as char)? + i + 1;
                    value = html[i + 1..close].to_owned();
                    i = close + 1;
                }
                _ => {
                    let start = i;
                    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                        i += 1;
                    }
                    value = html[start..i].to_owned();
                }
            }
        }
        attrs.push((attr, value));
    }
}

/// The fragment's root element when it has exactly one (only whitespace around it).
fn single_root(html: &str) -> Option<Root> {
    if !html.starts_with('<') {
        return None;
    }
    let first = start_tag(html, 0)?;
    let root = Root {
        insert_at: first.attrs_end,
        id: first
            .attrs
            .iter()
            .find(|(n, _)| n == "id")
            .map(|(_, v)| v.clone()),
        has_oob: first.attrs.iter().any(|(n, _)| n == "hx-swap-oob"),
    };
    let end = if first.self_closing || VOID.contains(&first.name.as_str()) {
        first.end
    } else {
        element_end(html, first)?
    };
    html[end..].trim().is_empty().then_some(root)
}

/// Where the element opened by `open` ends (after its end tag), counting nested elements.
fn element_end(html: &str, open: StartTag) -> Option<usize> {
    let mut stack = vec![open.name];
    let mut i = open.end;
    while let Some(top) = stack.last() {
        if RAW.contains(&top.as_str()) {
            let close = format!("</{top}");
            i = find_ci(html, i, &close)?;
        }
        let at = html[i..].find('<')? + i;
        let rest = &html[at..];
        if rest.starts_with("<!--") {
            i = rest.find("-->").map(|e| at + e + 3)?;
        } else if let Some(name_and_more) = rest.strip_prefix("</") {
            let len = name_and_more
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(name_and_more.len());
            let name = name_and_more[..len].to_ascii_lowercase();
            i = rest.find('>').map(|e| at + e + 1)?;
            // Pop to the matching open element (HTML closes what is left open inside it).
            if let Some(pos) = stack.iter().rposition(|n| *n == name) {
                stack.truncate(pos);
            }
        } else if let Some(tag) = start_tag(html, at) {
            i = tag.end;
            if !tag.self_closing && !VOID.contains(&tag.name.as_str()) {
                stack.push(tag.name);
            }
        } else {
            i = at + 1;
        }
    }
    Some(i)
}

/// The index of `needle` (ASCII, case-insensitive) in `html` from `from`.
fn find_ci(html: &str, from: usize, needle: &str) -> Option<usize> {
    let hay = html.as_bytes();
    let n = needle.as_bytes();
    (from..=hay.len().checked_sub(n.len())?).find(|&i| hay[i..i + n.len()].eq_ignore_ascii_case(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_element_with_the_id_gets_the_attribute() {
        assert_eq!(
            mark("\n <span id=\"count\" class='n'>3</span>\n", "count", None),
            r#"<span id="count" class='n' hx-swap-oob="true">3</span>"#
        );
        assert_eq!(
            mark(
                r#"<ul id="list"><li>a<li>b</ul>"#,
                "list",
                Some("beforeend")
            ),
            r#"<ul id="list" hx-swap-oob="beforeend"><li>a<li>b</ul>"#
        );
        assert_eq!(
            mark(
                r#"<div id=x><div><br><img src="a>b"/></div><!-- </div> --><script>"</div>"</script></div>"#,
                "x",
                None
            ),
            r#"<div id=x hx-swap-oob="true"><div><br><img src="a>b"/></div><!-- </div> --><script>"</div>"</script></div>"#
        );
        assert_eq!(
            mark(r#"<input id="q"/>"#, "q", None),
            r#"<input id="q" hx-swap-oob="true"/>"#
        );
        let own = r#"<b id="c" hx-swap-oob="afterend">x</b>"#;
        assert_eq!(mark(own, "c", None), own);
    }

    #[test]
    fn anything_else_is_wrapped() {
        let wrapped = |html: &str| format!(r#"<div id="c" hx-swap-oob="innerHTML">{html}</div>"#);
        for html in [
            "3 tasks",
            "<span id=\"c\">1</span><span>2</span>",
            "<span id=\"other\">1</span>",
            "<span>no id</span>",
            "<span id=\"c\" hx-swap-oob=\"true\">mine</span> tail",
            "<div id=\"c\"><p>unclosed",
        ] {
            assert_eq!(mark(html, "c", None), wrapped(html), "{html}");
        }
        assert_eq!(
            mark("x", "a\"b", Some("outer\"HTML")),
            r#"<div id="a&quot;b" hx-swap-oob="outer&quot;HTML">x</div>"#
        );
    }
}
