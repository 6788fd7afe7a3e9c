//! Interop with Python's itsdangerous, live: cookies are minted and read by the Python library
//! itself at test time (tests/python/itsdangerous_tool.py), both digests, compressed and not,
//! and through the session middleware.
//!
//! Python comes from `CHIRP_PYTHON` (`make test` creates a virtualenv with itsdangerous and
//! sets it), else `python3` if it has itsdangerous. In CI (`CI` set) a missing Python fails the
//! tests; elsewhere they are skipped, saying so.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, Digest, ManualClock, SessionConfig, Signer};
use chirp::testing::TestClient;
use chirp::{App, Error, Request};
use serde_json::{json, Value};

const SECRET: &str = "python-interop-secret-0123456789abcdef";
const SALT: &str = "itsdangerous";
const T0: u64 = 1_764_000_000;

/// The Python interpreter to use, or `None` (skip) outside CI.
fn python() -> Option<String> {
    let candidates = std::env::var("CHIRP_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_owned()]);
    for python in candidates {
        let ok = Command::new(&python)
            .args(["-c", "import itsdangerous"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(python);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: no Python with itsdangerous (CHIRP_PYTHON={:?}); `make test` sets one up",
        std::env::var("CHIRP_PYTHON").ok()
    );
    eprintln!("skipped: no Python with itsdangerous (run `make test`, or set CHIRP_PYTHON)");
    None
}

/// Runs `ops` through the Python tool; its results, in order.
fn run_python(python: &str, ops: &[Value]) -> Vec<Value> {
    run_python_json(python, &Value::from(ops.to_vec()).to_string())
}

/// Runs the operations of the JSON text `ops` through the Python tool (written by hand, its
/// objects keep their order: a `serde_json::Value` would sort them).
fn run_python_json(python: &str, ops: &str) -> Vec<Value> {
    let tool = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python/itsdangerous_tool.py"
    );
    let mut child = Command::new(python)
        .arg(tool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ops.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the Python tool failed");
    serde_json::from_slice(&out.stdout).expect("JSON from the Python tool")
}

fn digest_name(digest: Digest) -> &'static str {
    match digest {
        Digest::Sha1 => "sha1",
        _ => "sha256",
    }
}

fn payloads() -> Vec<Value> {
    vec![
        json!({}),
        json!({"visits": 1}),
        json!({"user_id": "42", "_session_version": "3", "name": "café ☕ \u{1F426}"}),
        json!({"nested": {"list": [1, 2.5, true, null, "x"], "empty": {}}}),
        // Long and repetitive: both libraries compress it (a cookie starting with '.').
        json!({"blob": "chirp ".repeat(400), "n": 7}),
    ]
}

#[test]
fn cookies_minted_by_python_are_read_here() {
    let Some(python) = python() else { return };
    for digest in [Digest::Sha1, Digest::Sha256] {
        let ops: Vec<Value> = payloads()
            .into_iter()
            .map(|data| {
                json!({"op": "dumps", "secret": SECRET, "salt": SALT,
                       "digest": digest_name(digest), "data": data, "timestamp": T0})
            })
            .collect();
        let minted = run_python(&python, &ops);
        let signer = Signer::new(SECRET, &[], digest, SALT);
        let mut compressed = 0;
        for (op, result) in ops.iter().zip(&minted) {
            let cookie = result["cookie"].as_str().unwrap();
            compressed += usize::from(cookie.starts_with('.'));
            let (data, ts) = signer
                .loads(cookie)
                .unwrap_or_else(|e| panic!("{cookie}: {e:?}"));
            assert_eq!(Value::Object(data.to_map()), op["data"], "{cookie}");
            assert_eq!(ts, T0);
            // One changed byte anywhere and it no longer verifies.
            let mut forged = cookie.as_bytes().to_vec();
            let last = forged.len() - 1;
            forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
            assert!(signer.loads(std::str::from_utf8(&forged).unwrap()).is_err());
        }
        assert!(compressed >= 1, "no compressed cookie among {minted:?}");
    }
}

#[test]
fn cookies_made_here_are_read_by_python() {
    let Some(python) = python() else { return };
    for digest in [Digest::Sha1, Digest::Sha256] {
        let signer = Signer::new(SECRET, &[], digest, SALT);
        let cookies: Vec<String> = payloads()
            .iter()
            .map(|data| signer.dumps(&data.as_object().unwrap().into(), T0))
            .collect();
        assert!(
            cookies.iter().any(|c| c.starts_with('.')),
            "one is compressed"
        );
        let mut ops: Vec<Value> = cookies
            .iter()
            .map(|cookie| {
                json!({"op": "loads", "secret": SECRET, "salt": SALT,
                       "digest": digest_name(digest), "cookie": cookie})
            })
            .collect();
        // The same cookie under the other digest, and with another secret: refused.
        let other = if digest == Digest::Sha1 {
            "sha256"
        } else {
            "sha1"
        };
        ops.push(
            json!({"op": "loads", "secret": SECRET, "salt": SALT, "digest": other,
                        "cookie": cookies[1]}),
        );
        ops.push(
            json!({"op": "loads", "secret": "another-secret", "salt": SALT,
                        "digest": digest_name(digest), "cookie": cookies[1]}),
        );
        let read = run_python(&python, &ops);
        for (data, result) in payloads().iter().zip(&read) {
            assert_eq!(&result["data"], data, "{result}");
            assert_eq!(result["timestamp"], json!(T0));
        }
        let refused = &read[payloads().len()..];
        assert!(
            refused.iter().all(|r| r.get("error").is_some()),
            "{refused:?}"
        );
    }
}

/// A session written by a Python app (itsdangerous' default SHA-1) is read by the middleware,
/// and the cookie the middleware answers with is read back by Python.
#[tokio::test]
async fn a_session_goes_from_python_to_chirp_and_back() {
    let Some(python) = python() else { return };
    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig {
            digest: Digest::Sha1,
            clock: Arc::new(clock.clone()),
            ..SessionConfig::new(SECRET)
        })
        .unwrap(),
    );
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    let minted = run_python(
        &python,
        &[
            json!({"op": "dumps", "secret": SECRET, "salt": SALT, "digest": "sha1",
                 "data": {"visits": 41, "theme": "dark"}, "timestamp": T0 - 60}),
        ],
    );
    let client = TestClient::new(app);
    client.set_cookie("chirp_session", minted[0]["cookie"].as_str().unwrap());
    assert_eq!(client.get("/dashboard").await.text(), "Visits: 42");
    let ours = client.cookie("chirp_session").unwrap();
    let read = run_python(
        &python,
        &[
            json!({"op": "loads", "secret": SECRET, "salt": SALT, "digest": "sha1",
                 "cookie": ours}),
        ],
    );
    assert_eq!(read[0]["data"], json!({"visits": 42, "theme": "dark"}));
    // Re-signed with the session's creation time, the Python cookie's own timestamp (the
    // cookie store's absolute lifetime counts from it: issue 24, finding 4).
    assert_eq!(read[0]["timestamp"], json!(T0 - 60));
}

/// A Python session with nested dicts in insertion order (not sorted): read by the middleware,
/// one value changed, and written back with every other byte as Python wrote it; Python
/// reads it. Unchanged, the signer gives Python's cookie back byte for byte.
#[tokio::test]
async fn nested_dicts_keep_pythons_order_both_ways() {
    let Some(python) = python() else { return };
    let data = r#"{"visits":41,"user":{"name":"zoé","roles":["b","a"],"id":7},"prefs":{"z":{},"a":[{"y":1,"x":2.5}]}}"#;
    let ops = format!(
        r#"[{{"op":"dumps","secret":"{SECRET}","salt":"{SALT}","digest":"sha1","data":{data},"timestamp":{T0}}}]"#
    );
    let minted = run_python_json(&python, &ops);
    let cookie = minted[0]["cookie"].as_str().unwrap().to_owned();
    let signer = Signer::new(SECRET, &[], Digest::Sha1, SALT);
    let (loaded, ts) = signer.loads(&cookie).unwrap();
    assert_eq!(
        loaded.to_json(),
        data,
        "Python writes compact JSON in insertion order"
    );
    assert_eq!(
        signer.dumps(&loaded, ts),
        cookie,
        "unchanged: the same bytes"
    );

    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig {
            digest: Digest::Sha1,
            clock: Arc::new(clock.clone()),
            ..SessionConfig::new(SECRET)
        })
        .unwrap(),
    );
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    let client = TestClient::new(app);
    client.set_cookie("chirp_session", &cookie);
    assert_eq!(client.get("/dashboard").await.text(), "Visits: 42");
    let ours = client.cookie("chirp_session").unwrap();
    let (back, _) = signer.loads(&ours).unwrap();
    assert_eq!(
        back.to_json(),
        data.replace(r#""visits":41"#, r#""visits":42"#)
    );
    let read = run_python(
        &python,
        &[json!({"op": "loads", "secret": SECRET, "salt": SALT, "digest": "sha1", "cookie": ours})],
    );
    assert_eq!(read[0]["data"]["visits"], json!(42));
    assert_eq!(read[0]["data"]["prefs"]["a"][0]["x"], json!(2.5));
}
