//! The fuzz targets (`fuzz/`, `chirp::__fuzz`) as proptest properties, so that CI runs them on
//! every change: none may panic, and each checks its invariants (a normalised path never
//! escapes the root or keeps a dot segment, sign → verify round-trips, one changed byte fails
//! verification, a chunked body decodes the same however it is split). Inputs are random bytes
//! and mutations of the seed corpus in `fuzz/corpus/`.

use chirp::__fuzz;
use proptest::prelude::*;

/// The committed seeds of one fuzz target.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = format!("{}/fuzz/corpus/{target}", env!("CARGO_MANIFEST_DIR"));
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {dir}");
    out
}

/// Bytes that matter to HTTP parsers, for mutations.
const INTERESTING: &[u8] = b"\r\n :;=,./?%#*\t\0\x7f\xff\"\\0123456789abcdefxGETHTP";

/// A seed with a few random edits (replace, insert, delete, duplicate a span), or random bytes.
fn input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    let edit = (
        0usize..4,
        any::<usize>(),
        prop::sample::select(INTERESTING.to_vec()),
        any::<u8>(),
    );
    let mutated = (
        prop::sample::select(seeds),
        prop::collection::vec(edit, 1..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for (kind, at, interesting, raw) in edits {
                let len = bytes.len();
                let at = if len == 0 { 0 } else { at % len };
                let byte = if raw % 3 == 0 { raw } else { interesting };
                match kind {
                    0 if len > 0 => bytes[at] = byte,
                    1 => bytes.insert(at, byte),
                    2 if len > 0 => {
                        bytes.remove(at);
                    }
                    _ if len > 0 => {
                        let end = (at + 1 + usize::from(raw) % 16).min(len);
                        let span = bytes[at..end].to_vec();
                        bytes.splice(at..at, span);
                    }
                    _ => bytes.push(byte),
                }
            }
            bytes
        });
    prop_oneof![3 => mutated, 1 => prop::collection::vec(any::<u8>(), 0..300)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn request_heads(data in input("request_head")) {
        __fuzz::request_head(&data);
    }

    #[test]
    fn chunked_bodies(data in input("chunked_body")) {
        __fuzz::chunked_body(&data);
    }

    #[test]
    fn websocket_frames(data in input("ws_frames")) {
        __fuzz::ws_frames(&data);
    }

    #[test]
    fn cookie_headers(data in input("cookie_header")) {
        __fuzz::cookie_header(&data);
    }

    #[test]
    fn route_paths(data in input("route_path")) {
        __fuzz::route_path(&data);
    }

    #[test]
    fn static_paths(data in input("static_path")) {
        __fuzz::static_path(&data);
    }
}

/// A root whose every file says `INSIDE`, beside a secret, with links out of it.
fn static_site() -> (tempfile::TempDir, chirp::testing::TestClient) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(dir.path().join("secret"), "SECRET").unwrap();
    std::fs::write(root.join("a"), "INSIDE a").unwrap();
    std::fs::write(root.join("sub/b"), "INSIDE b").unwrap();
    std::os::unix::fs::symlink("../secret", root.join("out")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    std::os::unix::fs::symlink(dir.path(), root.join("abs")).unwrap();
    let mut app = chirp::App::new();
    app.add_middleware(
        chirp::middleware::static_files::StaticFilesMiddleware::new("/s", &root).unwrap(),
    );
    (dir, chirp::testing::TestClient::new(app))
}

/// Segments a traversal is made of.
const SEGMENTS: &[&str] = &[
    "a",
    "sub",
    "b",
    "secret",
    "out",
    "up",
    "abs",
    "root",
    "..",
    ".",
    "%2e%2e",
    "%2E%2e",
    "%2f",
    "%2F",
    "..%2f",
    "%5c",
    "..%5csecret",
    "%00",
    "",
    "%2e",
    "..%2F..%2Fsecret",
    "%252e%252e",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// No generated path under the static prefix serves a byte from outside the root: each
    /// answer is a 404 or a file of the root.
    #[test]
    fn no_static_path_escapes_the_root(
        parts in prop::collection::vec(prop::sample::select(SEGMENTS.to_vec()), 1..7),
    ) {
        let (_dir, client) = static_site();
        let path = format!("/s/{}", parts.join("/"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let res = rt.block_on(client.get(&path));
        let body = res.text();
        prop_assert!(!body.contains("SECRET"), "{path} escaped: {body}");
        prop_assert!(
            res.status().as_u16() == 404 || body.starts_with("INSIDE"),
            "{path}: {} {body}", res.status().as_u16()
        );
    }
}

proptest! {
    // Each case signs and verifies (HMAC, maybe zlib): fewer cases.
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn session_cookies(data in input("session_cookie")) {
        __fuzz::session_cookie(&data);
    }
}

/// A JSON string's text, with the escapes that trip scanners: quotes, backslashes, `\u`
/// escapes (surrogate pairs included), control characters, brackets and braces inside.
fn json_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(r#"\""#.to_owned()),
        Just(r"\\".to_owned()),
        Just(r"\/".to_owned()),
        Just(r"\n\t\r\b\f".to_owned()),
        Just(r"\u00e9".to_owned()),
        Just(r"\uD83D\uDC26".to_owned()),
        Just(r"\u005c\u0022".to_owned()),
        Just("{[]},:".to_owned()),
        Just(" ".to_owned()),
        Just("é☃🐦".to_owned()),
        "[a-z]{0,3}",
    ];
    prop::collection::vec(piece, 0..5).prop_map(|parts| format!("\"{}\"", parts.concat()))
}

/// JSON whitespace, mostly none.
fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", " ", "\n", "\t ", "\r\n  "])
}

/// The text of a JSON value: scalars, strings, and nested arrays and objects, with
/// whitespace sprinkled where JSON allows it.
fn json_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        Just("-0".to_owned()),
        Just("1.5e-3".to_owned()),
        Just("12345678901234567890123".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        json_string(),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone(), ws()), 0..5).prop_map(|items| {
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, v, b)| format!("{a}{v}{b}"))
                    .collect();
                format!("[{}]", items.join(","))
            }),
            prop::collection::vec((json_string(), ws(), inner), 0..5).prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(k, w, v)| format!("{w}{k}{w}:{w}{v}{w}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// A top-level object (keys may repeat: a few short ones are drawn), in whitespace.
fn json_object() -> impl Strategy<Value = String> {
    let key = prop_oneof![3 => json_string(), 1 => prop::sample::select(vec![r#""a""#.to_owned(), r#""\u0061""#.to_owned(), r#""b""#.to_owned()])];
    (
        ws(),
        prop::collection::vec((key, ws(), json_value()), 0..8),
        ws(),
    )
        .prop_map(|(outer, members, end)| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(k, w, v)| format!("{w}{k}{w}:{w}{v}{w}"))
                .collect();
            format!("{outer}{{{}}}{end}", members.join(","))
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `SessionData`'s scanner against serde_json, on generated objects with tricky strings,
    /// nesting and whitespace (`__fuzz::session_json` says what must agree), and the same
    /// text with a byte cut or changed, which must be refused or read alike.
    #[test]
    fn session_json_scanner_agrees_with_serde_json(
        json in json_object(),
        cut in any::<usize>(),
        byte in prop::sample::select(b"{}[]\",:\\ 0a".to_vec()),
    ) {
        __fuzz::session_json(json.as_bytes());
        let mut changed = json.clone().into_bytes();
        let at = cut % changed.len();
        __fuzz::session_json(&changed[..at]);
        changed[at] = byte;
        __fuzz::session_json(&changed);
    }
}
