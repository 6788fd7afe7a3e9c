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

/// A path byte that needs no second look: visible ASCII other than `/`, `.`, `%`, `?`, `#`.
const PLAIN: u8 = 1;
/// A byte of a query: visible ASCII other than `#`.
const QUERY: u8 = 2;
/// A byte of a host name (RFC 3986 reg-name less `%`): unreserved or a sub-delim other than
/// `,` (see [`check_host`]).
const HOST: u8 = 4;
/// RFC 3986 §2.3 unreserved.
const UNRESERVED: u8 = 8;

/// Each byte's classes: one table look-up per byte on the per-request path.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0x21;
    while b < 0x7f {
        let c = b as u8;
        t[b] = QUERY;
        if !matches!(c, b'/' | b'.' | b'%' | b'?' | b'#') {
            t[b] |= PLAIN;
        }
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            t[b] |= UNRESERVED | HOST;
        }
        if matches!(
            c,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b';' | b'='
        ) {
            t[b] |= HOST;
        }
        b += 1;
    }
    t[b'#' as usize] = 0;
    t
};

fn is_unreserved(b: u8) -> bool {
    CLASS[usize::from(b)] & UNRESERVED != 0
}

fn is_pct_encoded(s: &[u8], i: usize) -> bool {
    s.len() > i + 2 && hex(s[i + 1]).is_some() && hex(s[i + 2]).is_some()
}

/// What one pass over an origin-form target found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Where the query's `?` is (the target's length when there is none).
    pub query_at: usize,
    /// Whether the path is already in normal form (nothing for [`normalize_in_place`] to do).
    pub normal: bool,
}

/// Checks the bytes of an origin-form target (`/path?query`) and finds where its path ends,
/// in one pass. A target is visible ASCII (RFC 9112 §3.2, RFC 3986 §2): raw non-ASCII bytes
/// and `#` (a fragment is never sent) are refused; httparse has already refused controls and
/// spaces. In the path, every `%` must start a percent-encoding (the path is decoded and
/// compared; a stray `%` would be read two ways). Other characters RFC 3986 reserves (`{`,
/// `|`, `^`, ...) are let through, as browsers send some of them unencoded in queries.
#[inline(always)]
pub(crate) fn scan_target(target: &[u8]) -> Result<Scan, TargetError> {
    let n = target.len();
    let mut normal = true;
    let mut i = 0;
    while i < n {
        let b = target[i];
        if CLASS[usize::from(b)] & PLAIN != 0 {
            i += 1;
            continue;
        }
        match b {
            b'/' => {
                // What follows a `/` decides whether the path is normal: another `/` (an empty
                // segment), the end (a trailing `/`, unless it is the root), or `.` / `..` as
                // a whole segment.
                i += 1;
                match target.get(i) {
                    Some(b'/') => normal = false,
                    None | Some(b'?') => normal &= i == 1,
                    Some(b'.') => normal &= !is_dot_segment(&target[i..]),
                    _ => {}
                }
            }
            b'.' => i += 1,
            b'%' => {
                if !is_pct_encoded(target, i) {
                    return Err("malformed percent-encoding in the request path");
                }
                normal = false; // decoded or upper-cased by normalisation
                i += 3;
            }
            b'?' => break,
            _ => return Err(bad_byte(b)),
        }
    }
    let query_at = i.min(n);
    for &b in &target[query_at..] {
        if CLASS[usize::from(b)] & QUERY == 0 {
            return Err(bad_byte(b));
        }
    }
    Ok(Scan { query_at, normal })
}

/// Whether `rest` (just after a `/`) starts with a `.` or `..` segment.
fn is_dot_segment(rest: &[u8]) -> bool {
    let ends = |k: usize| matches!(rest.get(k), None | Some(b'/') | Some(b'?'));
    ends(1) || (rest.get(1) == Some(&b'.') && ends(2))
}

fn bad_byte(b: u8) -> TargetError {
    match b {
        0x80.. => "raw non-ASCII byte in the request target (percent-encode it)",
        b'#' => "a fragment (#) is not part of a request target",
        _ => "control character or space in the request target",
    }
}

/// Checks an origin-form target (see [`scan_target`]).
#[cfg(test)]
pub(crate) fn check_target(target: &[u8]) -> Result<(), TargetError> {
    scan_target(target).map(|_| ())
}

/// Normalises `path` (which starts with `/`, passed [`scan_target`] and was found not normal)
/// in place; returns its new length. The bytes after that length are left over and mean
/// nothing. (A normal path comes back unchanged, only slower.)
pub(crate) fn normalize_in_place(path: &mut [u8]) -> usize {
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
    match scan_target(&bytes) {
        Ok(scan) if scan.query_at == bytes.len() => {
            let len = normalize_in_place(&mut bytes);
            bytes.truncate(len);
        }
        // Not a plain path: no request path will equal it, keep it as given.
        _ => return prefix.to_owned(),
    }
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
#[inline]
pub(crate) fn check_host(host: &[u8]) -> Result<(), TargetError> {
    // Nearly every Host is a plain name or address with an optional port: one table look-up
    // a byte. IP literals and percent-encodings take the full path.
    let mut name_len = 0;
    while name_len < host.len() && CLASS[usize::from(host[name_len])] & HOST != 0 {
        name_len += 1;
    }
    match host.get(name_len) {
        None => Ok(()),
        Some(b':') if is_port(&host[name_len + 1..]) => Ok(()),
        _ => check_host_fully(host),
    }
}

/// RFC 3986 §3.2.3 `port = *DIGIT` (at most five: no port is above 65535).
fn is_port(port: &[u8]) -> bool {
    port.len() <= 5 && port.iter().all(u8::is_ascii_digit)
}

fn check_host_fully(host: &[u8]) -> Result<(), TargetError> {
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
        if CLASS[usize::from(b)] & HOST != 0 {
            i += 1;
        } else if b == b'%' && is_pct_encoded(name, i) {
            i += 3;
        } else {
            return Err(BAD);
        }
    }
    match port {
        Some(port) if !is_port(port) => Err(BAD),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(path: &str) -> String {
        let scan = scan_target(path.as_bytes()).unwrap();
        let mut bytes = path.as_bytes().to_vec();
        let len = normalize_in_place(&mut bytes);
        let normalised = String::from_utf8(bytes[..len].to_vec()).unwrap();
        // The scan may call a path with `%` not normal when it is (that only costs a pass of
        // normalisation); the other way round would skip a needed rewrite.
        if scan.normal || !path.contains('%') {
            assert_eq!(
                scan.normal,
                normalised == path,
                "{path}: the scan's verdict"
            );
        }
        normalised
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
