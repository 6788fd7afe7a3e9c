//! Interop with Python's itsdangerous: every reference cookie in tests/vectors/itsdangerous.json
//! (made by the Python library itself, copied from shared/vectors) is accepted, and every
//! uncompressed one is reproduced byte for byte, from its payload in the order the file (and
//! Python) has it: `serde_json::Value` sorts object keys, so the payloads are read again with
//! [`Ordered`], which keeps them.

use chirp::sessions::{Digest, SessionData, Signer};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

const VECTORS: &str = include_str!("vectors/itsdangerous.json");

fn cases() -> Vec<Value> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["cases"].as_array().unwrap().clone()
}

/// A JSON value whose objects keep their members' order (a test's own, independent of
/// chirp's scanner).
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Scalar(Value),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ordered, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(v.into()))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Ordered::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(Ordered::Object(members))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Ordered::Array(items) => items.serialize(s),
            Ordered::Scalar(v) => v.serialize(s),
        }
    }
}

impl Ordered {
    fn get(&self, key: &str) -> &Ordered {
        match self {
            Ordered::Object(members) => &members.iter().find(|(k, _)| k == key).unwrap().1,
            _ => panic!("not an object"),
        }
    }
}

/// Each case's payload as the file writes it, in its order.
fn payloads_in_order() -> Vec<SessionData> {
    let doc: Ordered = serde_json::from_str(VECTORS).unwrap();
    let Ordered::Array(cases) = doc.get("cases") else {
        panic!("cases")
    };
    cases
        .iter()
        .map(|case| {
            let json = serde_json::to_string(case.get("payload")).unwrap();
            SessionData::from_json(&json).unwrap()
        })
        .collect()
}

fn signer_for(case: &Value) -> Signer {
    let digest = match case["digest"].as_str().unwrap() {
        "sha256" => Digest::Sha256,
        "sha1" => Digest::Sha1,
        other => panic!("unknown digest {other}"),
    };
    let fallbacks: Vec<String> = case["fallback_secret_keys"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default();
    Signer::new(
        case["secret_key"].as_str().unwrap(),
        &fallbacks,
        digest,
        case["salt"].as_str().unwrap(),
    )
}

#[test]
fn every_reference_cookie_is_accepted() {
    let cases = cases();
    assert!(cases.len() >= 25, "expected the full vector set");
    for (case, payload) in cases.iter().zip(payloads_in_order()) {
        let cookie = case["cookie"].as_str().unwrap();
        let (data, ts) = signer_for(case)
            .loads(cookie)
            .unwrap_or_else(|e| panic!("{cookie}: {e:?}"));
        assert_eq!(Value::Object(data.to_map()), case["payload"], "{cookie}");
        assert_eq!(
            data, payload,
            "the same members in the same order: {cookie}"
        );
        assert_eq!(ts, case["timestamp"].as_u64().unwrap());
    }
}

#[test]
fn every_uncompressed_reference_cookie_is_reproduced_byte_for_byte() {
    let mut reproduced = 0;
    let mut unsorted = 0;
    for (case, data) in cases().iter().zip(payloads_in_order()) {
        if case["compressed"] != false {
            continue;
        }
        let signer = signer_for(case);
        let ts = case["timestamp"].as_u64().unwrap();
        let cookie = signer.dumps(&data, ts);
        assert_eq!(cookie, case["cookie"].as_str().unwrap());
        // And read, then written again unchanged: the same bytes.
        let (back, _) = signer.loads(&cookie).unwrap();
        assert_eq!(signer.dumps(&back, ts), cookie);
        unsorted += usize::from(!data.keys().is_sorted());
        reproduced += 1;
    }
    assert!(reproduced >= 20);
    assert!(
        unsorted >= 1,
        "a payload whose keys are not sorted (Python's insertion order)"
    );
}

#[test]
fn compressed_payloads_round_trip_and_stay_compressed() {
    for (case, data) in cases().iter().zip(payloads_in_order()) {
        if case["compressed"] != true {
            continue;
        }
        let signer = signer_for(case);
        let cookie = signer.dumps(&data, case["timestamp"].as_u64().unwrap());
        assert!(cookie.starts_with('.'), "{cookie}");
        assert_eq!(signer.loads(&cookie).unwrap().0, data);
    }
}

#[test]
fn key_rotation_accepts_the_old_key_and_signs_with_the_new() {
    let case = cases()
        .into_iter()
        .find(|c| c.get("fallback_secret_keys").is_some())
        .unwrap();
    let note = case["note"].as_str().unwrap();
    let old_cookie = note.rsplit(' ').next().unwrap();
    let signer = signer_for(&case);
    let (data, _) = signer
        .loads(old_cookie)
        .expect("cookie signed by the fallback key");
    assert_eq!(data.get::<u64>("visits"), Some(7));
    let resigned = signer.dumps(&data, case["timestamp"].as_u64().unwrap());
    let new_only = Signer::new(
        case["secret_key"].as_str().unwrap(),
        &[],
        Digest::Sha256,
        "itsdangerous",
    );
    assert!(
        new_only.loads(&resigned).is_ok(),
        "re-signed with the current key"
    );
    assert!(
        new_only.loads(old_cookie).is_err(),
        "the old cookie needs the fallback"
    );
}

#[test]
fn digests_do_not_mix() {
    let case = cases().into_iter().find(|c| c["digest"] == "sha1").unwrap();
    let sha256 = Signer::new(
        case["secret_key"].as_str().unwrap(),
        &[],
        Digest::Sha256,
        "itsdangerous",
    );
    assert!(sha256.loads(case["cookie"].as_str().unwrap()).is_err());
}
