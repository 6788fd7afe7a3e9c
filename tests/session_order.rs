//! A session's JSON keeps its order without `serde_json/preserve_order` (issue 20): the
//! members of a cookie's object, nested objects included, come back in the order they came,
//! byte for byte when unchanged; a Rust struct keeps its fields' order; a validly signed
//! cookie whose JSON is malformed is an empty session, not a failure; and chirp switches on no
//! `serde_json` feature of the application's.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, Digest, ManualClock, SessionConfig, SessionData, Signer};
use chirp::testing::TestClient;
use chirp::{App, Error, Request};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
const T0: u64 = 1_764_000_000;

/// `json` signed as itsdangerous signs a payload (any bytes: the signer would only sign JSON
/// it made), at `T0`.
fn signed_raw(json: &[u8]) -> String {
    let key = Sha256::digest([b"itsdangerous".as_slice(), b"signer", SECRET.as_bytes()].concat());
    let ts = T0.to_be_bytes();
    let first = ts.iter().position(|&b| b != 0).unwrap();
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json),
        URL_SAFE_NO_PAD.encode(&ts[first..])
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// The JSON a (short, uncompressed) cookie carries.
fn payload(cookie: &str) -> String {
    let b64 = cookie.split('.').next().unwrap();
    String::from_utf8(URL_SAFE_NO_PAD.decode(b64).unwrap()).unwrap()
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Profile {
    zeta: u32,
    alpha: String,
    nested: Nested,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Nested {
    y: bool,
    b: Option<u8>,
}

fn client() -> TestClient {
    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig {
            clock: Arc::new(clock),
            ..SessionConfig::new(SECRET)
        })
        .unwrap(),
    );
    app.route("/visit", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    app.route("/profile", |_req: Request| async {
        let session = get_session()?;
        session.insert(
            "profile",
            Profile {
                zeta: 1,
                alpha: "a".into(),
                nested: Nested { y: true, b: None },
            },
        );
        Ok::<_, Error>("set")
    });
    app.route("/keys", |_req: Request| async {
        Ok::<_, Error>(get_session()?.keys().join(","))
    });
    app.route("/read", |_req: Request| async {
        let profile = get_session()?.get::<Profile>("profile");
        Ok::<_, Error>(format!("{profile:?}"))
    });
    TestClient::new(app)
}

/// A cookie as a Python app writes it (insertion order, nested dicts, non-ASCII as is, an
/// escape kept): read, one value changed, and written back with every other byte the same.
#[tokio::test]
async fn nested_objects_keep_their_order_and_bytes() {
    let c = client();
    let python = r#"{"z":{"b":1,"a":[{"y":2,"x":[]}],"é":"\u00e9\""},"visits":4,"m":1.50}"#;
    c.set_cookie("chirp_session", &signed_raw(python.as_bytes()));
    assert_eq!(c.get("/keys").await.text(), "z,visits,m");
    assert_eq!(c.get("/visit").await.text(), "Visits: 5");
    assert_eq!(
        payload(&c.cookie("chirp_session").unwrap()),
        python.replace(r#""visits":4"#, r#""visits":5"#)
    );
}

/// Unchanged, the signer writes a Python payload back byte for byte (the cookie itself, when
/// signed at the same time).
#[test]
fn an_unchanged_payload_is_written_back_byte_for_byte() {
    let signer = Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous");
    for json in [
        r#"{"user":{"name":"alice","roles":["admin","editor"]},"prefs":[1,2,3]}"#,
        r#"{"b":{"d":{"f":null,"e":[true,{"h":0,"g":-1e5}]},"c":"\"}"},"a":""}"#,
        r#"{}"#,
    ] {
        let cookie = signed_raw(json.as_bytes());
        let (data, ts) = signer.loads(&cookie).unwrap();
        assert_eq!(signer.dumps(&data, ts), cookie, "{json}");
        assert_eq!(data.to_json(), json);
    }
}

/// A struct set from Rust is written in its fields' order (not sorted), nested included, and
/// reads back.
#[tokio::test]
async fn a_rust_structs_field_order_is_kept() {
    let c = client();
    c.get("/visit").await;
    assert_eq!(c.get("/profile").await.text(), "set");
    assert_eq!(
        payload(&c.cookie("chirp_session").unwrap()),
        r#"{"visits":1,"profile":{"zeta":1,"alpha":"a","nested":{"y":true,"b":null}}}"#
    );
    assert_eq!(
        c.get("/read").await.text(),
        r#"Some(Profile { zeta: 1, alpha: "a", nested: Nested { y: true, b: None } })"#
    );
}

/// A cookie whose signature holds but whose JSON does not parse (as only a holder of the
/// secret can make) is an empty session: the request is served, and nothing panics.
#[tokio::test]
async fn malformed_json_in_a_validly_signed_cookie_is_an_empty_session() {
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(300), "]".repeat(300));
    let cases: Vec<Vec<u8>> = vec![
        br#"{"visits":"#.to_vec(),
        br#"{"visits":1,}"#.to_vec(),
        br#"{"visits":1} {}"#.to_vec(),
        br#"[{"visits":1}]"#.to_vec(),
        br#""visits""#.to_vec(),
        br#"{"visits":01}"#.to_vec(),
        br#"{"visits":1,"s":"\x"}"#.to_vec(),
        br#"{"visits":1,"s":"\u12"}"#.to_vec(),
        b"{\"visits\":1,\"s\":\"\xff\"}".to_vec(),
        b"{\"visits\":1,\"s\":\"a\nb\"}".to_vec(),
        br#"{visits:1}"#.to_vec(),
        br#"{"visits":NaN}"#.to_vec(),
        deep.into_bytes(),
        Vec::new(),
    ];
    for json in cases {
        let c = client();
        c.set_cookie("chirp_session", &signed_raw(&json));
        assert_eq!(
            c.get("/visit").await.text(),
            "Visits: 1",
            "{}",
            String::from_utf8_lossy(&json)
        );
    }
}

/// `SessionData` as an API: typed reads, raw JSON, order on insert and remove.
#[test]
fn session_data_keeps_insertion_order() {
    let mut data = SessionData::new();
    data.insert("zeta", 1).unwrap();
    data.insert("alpha", vec![2, 3]).unwrap();
    data.insert("mid", serde_json::json!({"b": 1, "a": 2}))
        .unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["zeta", "alpha", "mid"]);
    // A `serde_json::Value` object is sorted by serde_json itself (no `preserve_order`).
    assert_eq!(data.get_json("mid"), Some(r#"{"a":2,"b":1}"#));
    data.insert("zeta", "again").unwrap();
    assert_eq!(data.remove("alpha").as_deref(), Some("[2,3]"));
    assert_eq!(data.to_json(), r#"{"zeta":"again","mid":{"a":2,"b":1}}"#);
    assert_eq!(data.get::<String>("zeta").as_deref(), Some("again"));
    assert_eq!(data.get::<u64>("zeta"), None);
}

/// chirp switches on no `serde_json` feature: `serde_json::Map` in this test build (chirp's
/// features and its dev-dependencies', unified; none of them asks for `preserve_order`, as
/// `cargo tree -e features -i serde_json` shows) sorts its keys, as it does in an application
/// that does not ask for `preserve_order` itself.
#[test]
fn chirp_does_not_switch_on_preserve_order() {
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(r#"{"b":1,"a":2}"#).unwrap();
    assert_eq!(serde_json::to_string(&map).unwrap(), r#"{"a":2,"b":1}"#);
    let manifest = include_str!("../Cargo.toml");
    let line = manifest
        .lines()
        .find(|l| l.starts_with("serde_json"))
        .unwrap();
    assert!(!line.contains("features"), "{line}");
}
