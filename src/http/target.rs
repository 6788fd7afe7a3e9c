//! The request target, made canonical once: every path check in the crate (the router,
//! [`scoped`](crate::middleware::scoped) middleware, the auth middleware's excluded paths)
//! compares the same normalised path, so no spelling of a path can reach a handler while
//! skipping a check meant for it (`//dashboard` once ran the `/dashboard` handler without the
//! middleware scoped to `/dashboard`).
//!
//! The normal form (RFC 3986 §6.2.2, syntax-based normalisation): percent-encoded unreserved
//! characters decoded (`%7E` → `~`, `%2e` → `.`), other percent-encodings upper-cased
//! (`%2f` → `%2F`, which stays an encoded byte, never a separator), empty segments dropped
//! (`//a//b/` → `/a/b`), and dot segments resolved (§5.2.4: `/a/./b/../c` → `/a/c`; `..`
//! never climbs above `/`). The query is left as sent.
//!
//! Every rewrite makes the path shorter or keeps its length, so the server normalises in the
//! connection's read buffer, with no allocation; a path already canonical (nearly all) is only
//! scanned.

/// Why a target is refused (answered `400`).
pub(crate) type TargetError = &'static str;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn is_pct_encoded(s: &[u8], i: usize) -> bool {
    s.len() > i + 2 && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some()
}

/// Checks the bytes of an origin-form target (`/path?query`). A target is visible ASCII
/// (RFC 9112 §3.2, RFC 3986 §2): raw non-ASCII bytes and `#` (a fragment is never sent) are
/// refused; httparse has already refused controls and spaces. In the path, every `%` must
/// start a percent-encoding (the path is decoded and compared; a stray `%` would be read two
/// ways). Other characters RFC 3986 reserves (`{`, `|`, `^`, ...) are let through, as browsers
/// send some of them unencoded in queries.
pub(crate) fn check_target(target: &[u8]) -> Result<(), TargetError> {
    let mut in_path = true;
    for (i, &b) in target.iter().enumerate() {
        match b {
            0x80.. => return Err("raw non-ASCII byte in the request target (percent-encode it)"),
            b'#' => return Err("a fragment (#) is not part of a request target"),
            b'?' => in_path = false,
            b'%' if in_path && !is_pct_encoded(target, i) => {
                return Err("malformed percent-encoding in the request path")
            }
            0..=0x20 | 0x7f => return Err("control character or space in the request target"),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `path` (starting with `/`, checked by [`check_target`]) is already in normal form.
fn is_normal(path: &[u8]) -> bool {
    if path.len() > 1 && path.ends_with(b"/") {
        return false;
    }
    // Every segment: not empty (`//`), not `.` or `..`, no `%` (which may need decoding or
    // upper-casing). One pass, looking at each `/` and what follows it.
    let mut i = 0;
    while i < path.len() {
        match path[i] {
            b'%' => return false,
            b'/' => {
                let rest = &path[i + 1..];
                let seg_end = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
                let seg = &rest[..seg_end];
                if (seg.is_empty() && i + 1 < path.len()) || seg == b"." || seg == b".." {
                    return false;
                }
            }
            _ => {}
        }
        i += 1;
    }
    true
}

/// Normalises `path` (which starts with `/` and passed [`check_target`]) in place; returns its
/// new length. The bytes after that length are left over and mean nothing.
pub(crate) fn normalize_in_place(path: &mut [u8]) -> usize {
    if is_normal(path) {
        return path.len();
    }
    let n = path.len();
    // `w` (write) never passes `r` (read): every step writes at most what it has read.
    let (mut w, mut r) = (0, 0);
    while r < n {
        while r < n && path[r] == b'/' {
            r += 1;
        }
        if r == n {
            break;
        }
        let seg_start = w;
        path[w] = b'/';
        w += 1;
        while r < n && path[r] != b'/' {
            let b = path[r];
            if b == b'%' && r + 2 < n {
                let (hi, lo) = (path[r + 1], path[r + 2]);
                let decoded = hex(hi).unwrap_or(0) << 4 | hex(lo).unwrap_or(0);
                if is_unreserved(decoded) {
                    path[w] = decoded;
                    w += 1;
                } else {
                    path[w] = b'%';
                    path[w + 1] = hi.to_ascii_uppercase();
                    path[w + 2] = lo.to_ascii_uppercase();
                    w += 3;
                }
                r += 3;
            } else {
                path[w] = b;
                w += 1;
                r += 1;
            }
        }
        match &path[seg_start + 1..w] {
            b"." => w = seg_start,
            b".." => {
                // Drop this segment and the one before it (none above the root).
                w = path[..seg_start]
                    .iter()
                    .rposition(|&b| b == b'/')
                    .unwrap_or(0);
            }
            _ => {}
        }
    }
    if w == 0 {
        path[0] = b'/';
        w = 1;
    }
    w
}

/// Normalises a path prefix given in configuration (`scoped("/admin/", ..)`,
/// `exclude_paths`), so that it compares with normalised request paths. `/` stays `/`.
pub(crate) fn normalize_prefix(prefix: &str) -> String {
    let mut bytes = prefix.as_bytes().to_vec();
    if !bytes.starts_with(b"/") {
        bytes.insert(0, b'/');
    }
    if check_target(&bytes).is_err() {
        // Not a valid path: no request path will equal it, keep it as given.
        return prefix.to_owned();
    }
    let len = normalize_in_place(&mut bytes);
    bytes.truncate(len);
    String::from_utf8(bytes).unwrap_or_else(|_| prefix.to_owned())
}

/// Whether the normalised `path` is `prefix` or below it (`/admin` covers `/admin` and
/// `/admin/users`, not `/administrator`); `prefix` comes from [`normalize_prefix`].
pub(crate) fn in_scope(path: &[u8], prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix.as_bytes()) {
        Some(rest) => rest.is_empty() || rest[0] == b'/',
        None => false,
    }
}

/// Checks a `Host` value or an absolute-form authority: RFC 9110 §7.2 `uri-host [":" port]`,
/// with `uri-host` an IP literal (`[::1]`) or a reg-name (unreserved, pct-encoded, sub-delims).
/// Userinfo (`user@host`) is refused (RFC 9110 §4.2.4 deprecates it), and so is a comma, which
/// no host name holds and which is what two Host lines joined into one look like.
pub(crate) fn check_host(host: &[u8]) -> Result<(), TargetError> {
    const BAD: TargetError = "invalid Host (expected host[:port])";
    let (name, port) = if host.starts_with(b"[") {
        let close = host.iter().position(|&b| b == b']').ok_or(BAD)?;
        let literal = &host[1..close];
        let ok = !literal.is_empty()
            && literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !ok {
            return Err(BAD);
        }
        match &host[close + 1..] {
            [] => (&[][..], None),
            [b':', port @ ..] => (&[][..], Some(port)),
            _ => return Err(BAD),
        }
    } else {
        match host.iter().rposition(|&b| b == b':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    };
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        if b == b'%' {
            if !is_pct_encoded(name, i) {
                return Err(BAD);
            }
            i += 3;
            continue;
        }
        if !(is_unreserved(b) || b"!$&'()*+;=".contains(&b)) {
            return Err(BAD);
        }
        i += 1;
    }
    if let Some(port) = port {
        if port.len() > 5 || !port.iter().all(u8::is_ascii_digit) {
            return Err(BAD);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> String {
        check_target(path.as_bytes()).unwrap();
        let mut bytes = path.as_bytes().to_vec();
        let len = normalize_in_place(&mut bytes);
        String::from_utf8(bytes[..len].to_vec()).unwrap()
    }

    #[test]
    fn canonical_paths_are_kept() {
        for p in ["/", "/a", "/a/b", "/a.b/c..d/.e", "/~x/-_", "/a:b@c;d=e"] {
            assert_eq!(normal(p), p);
        }
    }

    #[test]
    fn slashes_fold_and_dots_resolve() {
        let cases = [
            ("//dashboard", "/dashboard"),
            ("/dashboard/", "/dashboard"),
            ("///", "/"),
            ("/a//b///c/", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a"),
            ("/a/b/../..", "/"),
            ("/a/.", "/a"),
            ("/.", "/"),
            ("/..", "/"),
            ("/a/...", "/a/..."),
        ];
        for (raw, want) in cases {
            assert_eq!(normal(raw), want, "{raw}");
        }
    }

    #[test]
    fn percent_encodings_are_normalised() {
        let cases = [
            ("/%64ashboard", "/dashboard"),
            ("/%7euser", "/~user"),
            ("/a%2fb", "/a%2Fb"),
            ("/a%2Fb", "/a%2Fb"),
            ("/%2e%2e/x", "/x"),
            ("/a/%2E/b", "/a/b"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/%20", "/%20"),
        ];
        for (raw, want) in cases {
            assert_eq!(normal(raw), want, "{raw}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["//a/./b/../%7e/", "/%2e%2E/%41", "/x//y"] {
            let once = normal(p);
            assert_eq!(normal(&once), once);
        }
    }

    #[test]
    fn bad_targets_are_refused() {
        for bad in [
            &b"/caf\xc3\xa9"[..],
            b"/a#frag",
            b"/a b",
            b"/%",
            b"/%4",
            b"/%zz",
            b"/a?b#c",
        ] {
            assert!(
                check_target(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(check_target(b"/a?b=%41&c=[1]&d={|}&e=100%").is_ok());
    }

    #[test]
    fn prefixes() {
        assert_eq!(normalize_prefix("/admin/"), "/admin");
        assert_eq!(normalize_prefix("admin"), "/admin");
        assert_eq!(normalize_prefix("//a//b"), "/a/b");
        assert_eq!(normalize_prefix("/"), "/");
        assert!(in_scope(b"/admin", "/admin"));
        assert!(in_scope(b"/admin/users", "/admin"));
        assert!(!in_scope(b"/administrator", "/admin"));
        assert!(in_scope(b"/anything", "/"));
    }

    #[test]
    fn hosts() {
        for ok in [
            &b"example.com"[..],
            b"example.com:8080",
            b"127.0.0.1",
            b"127.0.0.1:1234",
            b"[::1]",
            b"[::1]:80",
            b"xn--caf-dma.example",
            b"a%41b",
            b"",
        ] {
            assert!(check_host(ok).is_ok(), "{:?}", String::from_utf8_lossy(ok));
        }
        for bad in [
            &b"a b"[..],
            b"a, b",
            b"a,b",
            b"user@host",
            b"host:port",
            b"host:123456",
            b"[::1",
            b"[zz]",
            b"[::1]x",
            b"a/b",
            b"h\xc3\xa9",
        ] {
            assert!(
                check_host(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
