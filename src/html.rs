//! HTML helpers for apps that write their pages by hand or with a template engine that does
//! not escape by itself: [`escape_html`], for text and attribute values.

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and (quoted) attribute values, so that
/// text from a user or a request cannot open a tag or close an attribute (the OWASP rule for
/// HTML contexts). Not for URLs, scripts or styles: those contexts need their own encoding.
///
/// ```
/// use chirp::html::escape_html;
/// let q = r#"<script>alert("x")</script>"#;
/// assert_eq!(
///     format!("<p>You searched for {}</p>", escape_html(q)),
///     "<p>You searched for &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</p>"
/// );
/// ```
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            // `&#x27;`, not `&apos;`: HTML 4 has no `&apos;`.
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_the_five_characters_that_end_text_or_attributes() {
        assert_eq!(
            escape_html(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
        );
        assert_eq!(escape_html("café ☃ plain"), "café ☃ plain");
        assert_eq!(escape_html(""), "");
    }
}
