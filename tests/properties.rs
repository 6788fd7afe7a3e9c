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
    fn cookie_headers(data in input("cookie_header")) {
        __fuzz::cookie_header(&data);
    }

    #[test]
    fn route_paths(data in input("route_path")) {
        __fuzz::route_path(&data);
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
