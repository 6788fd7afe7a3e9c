//! Percent-encoding and `application/x-www-form-urlencoded`, as small as they can be.

use std::borrow::Cow;

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (and `+` as a space when `plus_is_space`). A `%` not followed by two
/// hex digits is kept as it is; bytes that are not UTF-8 become U+FFFD. Borrows when there is
/// nothing to decode.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> Cow<'_, str> {
    let needs = s.bytes().any(|b| b == b'%' || (plus_is_space && b == b'+'));
    if !needs {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for use as a query value.
pub(crate) fn percent_encode(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Parses `a=1&b=two+words&c` into decoded pairs (a key without `=` has an empty value).
pub(crate) fn parse_urlencoded(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (
                percent_decode(k, true).into_owned(),
                percent_decode(v, true).into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_and_plus() {
        assert_eq!(percent_decode("a%20b", false), "a b");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("caf%C3%A9", false), "café");
        assert!(matches!(percent_decode("plain", true), Cow::Borrowed(_)));
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz", false), "%zz");
        assert_eq!(percent_decode("%4", false), "%4");
        assert_eq!(percent_decode("%41", false), "A");
        assert_eq!(percent_decode("%ff", false), "\u{FFFD}");
    }

    #[test]
    fn encodes_reserved() {
        assert_eq!(percent_encode("/a b?c=d&e"), "%2Fa%20b%3Fc%3Dd%26e");
        assert_eq!(percent_encode("safe-._~"), "safe-._~");
    }

    #[test]
    fn parses_forms() {
        assert_eq!(
            parse_urlencoded("a=1&b=two+words&c&&d=%3D"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "".into()),
                ("d".into(), "=".into())
            ]
        );
    }
}

/// The quality an `Accept-Encoding` value gives `coding` (RFC 9110 §12.5.3): its own entry's
/// `q` (1 when it has none), else that of `*`, else 0 (not acceptable). Case-insensitive; a
/// malformed `q` counts as 0.
pub(crate) fn accepted_q(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let mut q = 1.0;
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
        }
        if name.eq_ignore_ascii_case(coding) {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(0.0)
}

#[cfg(test)]
mod accept_encoding_tests {
    use super::accepted_q;

    #[test]
    fn q_values() {
        assert_eq!(accepted_q("gzip, br", "br"), 1.0);
        assert_eq!(accepted_q("gzip;q=0.5, br;q=0.8", "gzip"), 0.5);
        assert_eq!(accepted_q("GZIP", "gzip"), 1.0);
        assert_eq!(accepted_q("br;q=0", "br"), 0.0);
        assert_eq!(accepted_q("*;q=0.3", "br"), 0.3);
        assert_eq!(accepted_q("*;q=0.3, br;q=0", "br"), 0.0);
        assert_eq!(accepted_q("identity", "gzip"), 0.0);
        assert_eq!(accepted_q("gzip;q=2", "gzip"), 0.0);
        assert_eq!(accepted_q("", "gzip"), 0.0);
    }
}
