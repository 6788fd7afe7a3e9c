//! # chirp
//!
//! A minimal, fast HTTP/1.1 micro-framework on tokio + httparse, with first-class
//! signed-cookie sessions whose API follows the Python framework of the same name.
//!
//! ```no_run
//! use chirp::sessions::{get_session, SessionConfig};
//! use chirp::middleware::sessions::SessionMiddleware;
//! use chirp::{App, Request};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), chirp::Error> {
//!     let mut app = App::new();
//!     app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
//!
//!     app.route("/dashboard", |_req: Request| async {
//!         let session = get_session()?;
//!         let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
//!         session.insert("visits", visits);
//!         Ok::<_, chirp::Error>(format!("Visits: {visits}"))
//!     });
//!
//!     app.run("127.0.0.1:8000").await
//! }
//! ```
//!
//! The parts, in the order a request meets them: [`server`](ServerConfig) (bytes to
//! [`Request`]), [`App`] and its [`middleware`] chain, the router, your handler, and the
//! [`Response`] back up the chain. [`testing::TestClient`] drives an app without a socket.
//!
//! Beyond bodies in memory: [`Response::stream`] and [`sse`] (Server-Sent Events),
//! [`Response::file`] (ranges, conditional requests),
//! [`StaticFilesMiddleware`](middleware::static_files::StaticFilesMiddleware),
//! [`CompressionMiddleware`](middleware::compression::CompressionMiddleware), and per-route body limits with
//! bodies streamed as they arrive ([`App::route_body`], [`Request::body_stream`], and
//! `Request::multipart` with the `multipart` feature).
//!
//! HTML over the wire (feature `templates`, on by default): [`templates`] (minijinja), with
//! the answers an htmx app gives: `Template`, `Fragment`, `Page`, `OOB`, `ValidationError`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod app;
pub mod broadcast;
mod clock;
mod error;
mod future;
pub mod html;
pub mod http;
pub mod middleware;
mod panic;
pub mod routing;
pub mod security;
mod server;
mod service;
pub mod sessions;
mod shutdown;
mod state;
mod status;
pub mod stores;
#[cfg(feature = "templates")]
pub mod templates;
pub mod testing;
pub mod ws;

pub use app::App;
pub use error::{ConfigurationError, Error, HttpError, LookupError};
pub use future::BoxFuture;
pub use http::htmx;
#[cfg(feature = "multipart")]
pub use http::multipart;
pub use http::sse;
pub use http::{
    BodyConfig, Cookie, IntoResponse, Method, Problem, Request, Response, SameSite, StatusCode,
};
pub use middleware::{Middleware, Next};
pub use server::ServerConfig;
pub use service::Service;
pub use shutdown::ShutdownSignal;
pub use state::{State, StateType};

/// Entry points for the benchmarks in `benches/` (not a stable API: hidden from the docs,
/// behind the `internals` feature).
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod __bench {
    /// HMACs computed on this thread so far: (verifications, signatures) of session cookies.
    pub fn hmac_counts() -> (u64, u64) {
        crate::sessions::HMACS.with(std::cell::Cell::get)
    }

    use crate::http::{Method, Request};
    use crate::routing::Router;
    use crate::server::ServerConfig;

    /// Parses one request head with the default limits; its length, if complete and valid.
    /// The target is normalised in place, as in the connection's buffer.
    pub fn parse_head(buf: &mut [u8]) -> Option<usize> {
        let mut headers = crate::http::HeadersBuilder::new();
        crate::server::parse_head(buf, &ServerConfig::default(), &mut headers)
            .ok()
            .flatten()
            .map(|h| h.len as usize)
    }

    /// A route table on its own, for routing benchmarks.
    #[derive(Default)]
    pub struct RouteTable(Router);

    impl RouteTable {
        /// Adds a GET route answering "ok".
        pub fn add(&mut self, pattern: &str) {
            let handler = crate::routing::erase(|_req: Request| async { "ok" });
            self.0
                .insert(pattern, &[Method::Get], handler)
                .expect("valid pattern");
        }

        /// Whether `path` finds a route (the handler is not run).
        pub fn lookup(&self, path: &str) -> bool {
            self.0.has_route(path)
        }
    }
}

/// The fuzz targets' entry points (not a stable API: hidden from the docs). Each takes
/// arbitrary bytes, runs one part that reads network input, and panics only when an invariant
/// breaks: `fuzz/` (cargo fuzz, libFuzzer) and `tests/properties.rs` (proptest) drive the
/// same functions. Behind the `internals` feature.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod __fuzz {
    use crate::http::target::{normalize_in_place, scan_target};
    use crate::http::{find_cookie, parse_cookie_header, HeadersBuilder};
    use crate::server::ServerConfig;
    use crate::sessions::{Digest, Signer};

    /// Asserts what every normalised path is: `/`-rooted, no empty, `.` or `..` segment, and
    /// normalising it again changes nothing (so no later check can read it another way).
    fn check_normal_path(path: &[u8]) {
        assert!(path.starts_with(b"/"), "not rooted: {path:?}");
        if path.len() > 1 {
            for segment in path[1..].split(|&b| b == b'/') {
                assert!(
                    !segment.is_empty() && segment != b"." && segment != b"..",
                    "segment {segment:?} left in {path:?}"
                );
            }
        }
        let scan = scan_target(path).expect("a normalised path is a valid target");
        if !scan.normal {
            let mut again = path.to_vec();
            let len = normalize_in_place(&mut again);
            assert_eq!(&again[..len], path, "normalising twice changed it");
        }
    }

    /// A request head: parse it; when accepted, the head, its target and host lie inside
    /// it, the target is normalised (or `*`), and the framing is one of the three.
    pub fn request_head(data: &[u8]) {
        let mut buf = data.to_vec();
        let mut headers = HeadersBuilder::new();
        let Ok(Some(head)) =
            crate::server::parse_head(&mut buf, &ServerConfig::default(), &mut headers)
        else {
            return;
        };
        let head_len = head.len as usize;
        assert!(head_len <= data.len());
        let (start, end) = head.target.range();
        let path_end = usize::from(head.target.path_end);
        assert!(start <= path_end && path_end <= end && end <= head_len);
        let (h0, h1) = (
            usize::from(head.target.host.0),
            usize::from(head.target.host.1),
        );
        assert!(h0 <= h1 && h1 <= head_len);
        let path = &buf[start..path_end];
        if path != b"*" {
            check_normal_path(path);
        }
        let frozen = headers.take(bytes::Bytes::copy_from_slice(&buf[..head_len]));
        for (name, _) in frozen.iter() {
            assert!(!name.is_empty() && !name.contains(':'));
        }
    }

    /// WebSocket frames: `data`'s first byte picks the role, permessage-deflate and its
    /// context takeover, the limits and the size of the reads; the rest is decoded whole and
    /// in reads of that size. Both give the same messages and the same error, every error is
    /// a close code the RFC allows (1002, 1007, 1009), and no message is over the limit.
    pub fn ws_frames(data: &[u8]) {
        crate::ws::fuzz_decode(data);
    }

    /// A static-file path: `data` as the target under `/static/`, normalised as the server
    /// does; whatever `StaticFilesMiddleware` would look up is relative, has no `.`, `..` or root
    /// component, and joined under a root stays under it.
    pub fn static_path(data: &[u8]) {
        let mut buf = b"GET /static/".to_vec();
        buf.extend_from_slice(data);
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut headers = HeadersBuilder::new();
        let Ok(Some(head)) =
            crate::server::parse_head(&mut buf, &ServerConfig::default(), &mut headers)
        else {
            return;
        };
        let path = &buf[head.target.range().0..usize::from(head.target.path_end)];
        let Ok(path) = std::str::from_utf8(path) else {
            return;
        };
        let Some(rest) = path.strip_prefix("/static") else {
            return; // normalised out of the prefix: not a static file request
        };
        for hidden in [false, true] {
            let Some(relative) = crate::middleware::static_files::relative_path(rest, hidden)
            else {
                continue;
            };
            assert!(relative.is_relative(), "{relative:?}");
            for part in relative.components() {
                assert!(
                    matches!(part, std::path::Component::Normal(_)),
                    "{part:?} in {relative:?}"
                );
                let name = part.as_os_str().to_string_lossy();
                assert!(!name.contains(['/', '\\', '\0']), "{relative:?}");
            }
            let root = std::path::Path::new("/srv/root");
            assert!(root.join(&relative).starts_with(root));
        }
    }

    /// A chunked body: decoding it in one piece and split at `data[0]` gives the same result.
    pub fn chunked_body(data: &[u8]) {
        let Some((&split, body)) = data.split_first() else {
            return;
        };
        let decode = |pieces: &[&[u8]]| {
            let mut decoder = crate::server::ChunkedDecoder::new(1 << 16);
            let mut out = bytes::BytesMut::new();
            let mut used = 0;
            for piece in pieces {
                let n = decoder
                    .decode(piece, &mut out)
                    .map_err(|e| format!("{e:?}"))?;
                assert!(n <= piece.len());
                used += n;
                if decoder.is_done() {
                    break;
                }
            }
            Ok::<_, String>((decoder.is_done(), used, out))
        };
        let at = usize::from(split).min(body.len());
        let whole = decode(&[body]);
        let split = decode(&[&body[..at], &body[at..]]);
        match (&whole, &split) {
            (Ok(a), Ok(b)) if a.0 && b.0 => assert_eq!(a, b, "split at {at}"),
            (Err(a), Err(b)) => assert_eq!(a, b),
            // Incomplete in one piece but not the other cannot happen for the same bytes.
            (Ok(a), Ok(b)) => assert_eq!(a.0, b.0),
            _ => panic!("{whole:?} vs {split:?} (split at {at})"),
        }
    }

    /// A `Cookie` header: every pair the lazy parser yields is found by name, too.
    pub fn cookie_header(data: &[u8]) {
        let Ok(header) = std::str::from_utf8(data) else {
            let _ = find_cookie(data, b"chirp_session");
            return;
        };
        for (name, _value) in parse_cookie_header(header) {
            assert!(!name.contains(';'));
            if !name.is_empty() && !name.contains('=') {
                assert!(
                    find_cookie(header.as_bytes(), name.as_bytes()).is_some(),
                    "{name:?} in {header:?}"
                );
            }
        }
    }

    /// A session cookie: verifying arbitrary input never panics; data built from the input
    /// signs and verifies back to itself, and any one changed byte of the cookie fails. The
    /// input as JSON goes through [`session_json`].
    pub fn session_cookie(data: &[u8]) {
        session_json(data);
        let signer = Signer::new(
            "fuzz-secret-key-0123456789abcdef",
            &[],
            Digest::Sha256,
            "itsdangerous",
        );
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = signer.loads(text);
        }
        let mut map = crate::sessions::SessionData::new();
        for (i, chunk) in data.chunks(7).enumerate().take(40) {
            let value = String::from_utf8_lossy(chunk).into_owned();
            map.insert(&format!("k{i}"), value)
                .expect("a string serializes");
        }
        let cookie = signer.dumps(&map, 1_700_000_000);
        let (back, ts) = signer.loads(&cookie).expect("own cookie verifies");
        assert_eq!(back, map);
        assert_eq!(ts, 1_700_000_000);
        if let Some(&b) = data.first() {
            let mut forged = cookie.into_bytes();
            let i = usize::from(b) % forged.len();
            forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
            if let Ok(forged) = std::str::from_utf8(&forged) {
                assert!(signer.loads(forged).is_err(), "a changed byte verified");
            }
        }
    }

    /// A session's JSON: [`SessionData`](crate::sessions::SessionData)'s scanner never
    /// panics, and agrees with `serde_json`: it accepts every object `serde_json` parses,
    /// with the same keys in the order they first appear, each value the same JSON, and its
    /// own output parses back to itself; it accepts nothing `serde_json` refuses.
    pub fn session_json(data: &[u8]) {
        use crate::sessions::SessionData;
        let ours = std::str::from_utf8(data)
            .ok()
            .map(|text| (text, SessionData::from_json(text)));
        let Some((text, ours)) = ours else { return };
        let theirs = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text);
        let Ok(ours) = ours else {
            assert!(theirs.is_err(), "refused what serde_json parses: {text:?}");
            return;
        };
        assert!(
            serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
            "accepted what serde_json refuses: {text:?}"
        );
        let again = SessionData::from_json(&ours.to_json()).expect("its own JSON parses");
        assert_eq!(again, ours, "{text:?}");
        // Refused by serde_json, accepted here: only a value holding a string with a lone
        // surrogate escape (which Python writes and reads; the value alone does not parse
        // into a `Value` either, or a later value of its key replaced it).
        let Ok(theirs) = theirs else {
            let surrogate = text.to_ascii_lowercase().contains("\\ud");
            assert!(surrogate, "{text:?}");
            return;
        };
        assert_eq!(ours.len(), theirs.len(), "{text:?}");
        let order = first_key_order(text);
        assert!(ours.keys().eq(order.iter().map(String::as_str)), "{text:?}");
        for (key, value) in ours.iter() {
            let value: serde_json::Value = serde_json::from_str(value).expect("a value parses");
            assert_eq!(Some(&value), theirs.get(key), "{key:?} in {text:?}");
        }
    }

    /// The keys of the JSON object `text` in the order they first appear, read by serde_json.
    fn first_key_order(text: &str) -> Vec<String> {
        struct Keys;
        impl<'de> serde::de::Visitor<'de> for Keys {
            type Value = Vec<String>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Vec<String>, A::Error> {
                let mut keys: Vec<String> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if !keys.contains(&key) {
                        keys.push(key);
                    }
                }
                Ok(keys)
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        serde::Deserializer::deserialize_map(&mut de, Keys).expect("an object")
    }

    /// Routing: a path finds a route or not without panicking, and a path and its
    /// normalised form find the same route.
    pub fn route_path(data: &[u8]) {
        use std::sync::OnceLock;
        static TABLE: OnceLock<super::__bench::RouteTable> = OnceLock::new();
        let table = TABLE.get_or_init(|| {
            let mut t = super::__bench::RouteTable::default();
            for p in [
                "/",
                "/users/{id:int}",
                "/users/me",
                "/users/{name}/posts",
                "/files/{rest:path}",
                "/a/b/c",
            ] {
                t.add(p);
            }
            t
        });
        let Ok(path) = std::str::from_utf8(data) else {
            return;
        };
        let found = table.lookup(path);
        if path.starts_with('/') {
            if let Ok(scan) = scan_target(path.as_bytes()) {
                let mut bytes = path.as_bytes()[..scan.query_at].to_vec();
                let len = normalize_in_place(&mut bytes);
                let normal = std::str::from_utf8(&bytes[..len]).expect("ASCII");
                check_normal_path(normal.as_bytes());
                if scan.query_at == path.len() && !path.contains('%') && !path.contains("/.") {
                    // Only empty segments differ: the router folds them the same way.
                    assert_eq!(found, table.lookup(normal), "{path:?} vs {normal:?}");
                }
            }
        }
    }
}
