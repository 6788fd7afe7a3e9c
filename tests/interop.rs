//! Interop with Python's itsdangerous: every reference cookie in tests/vectors/itsdangerous.json
//! (made by the Python library itself, copied from shared/vectors) is accepted, and every
//! uncompressed one is reproduced byte for byte.

use chirp::sessions::{Digest, Signer};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let raw = include_str!("vectors/itsdangerous.json");
    let doc: Value = serde_json::from_str(raw).unwrap();
    doc["cases"].as_array().unwrap().clone()
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
    for case in &cases {
        let cookie = case["cookie"].as_str().unwrap();
        let (data, ts) = signer_for(case)
            .loads(cookie)
            .unwrap_or_else(|e| panic!("{cookie}: {e:?}"));
        assert_eq!(Value::Object(data), case["payload"], "{cookie}");
        assert_eq!(ts, case["timestamp"].as_u64().unwrap());
    }
}

#[test]
fn every_uncompressed_reference_cookie_is_reproduced_byte_for_byte() {
    let mut reproduced = 0;
    for case in cases().iter().filter(|c| c["compressed"] == false) {
        let data = case["payload"].as_object().unwrap();
        let cookie = signer_for(case).dumps(data, case["timestamp"].as_u64().unwrap());
        assert_eq!(cookie, case["cookie"].as_str().unwrap());
        reproduced += 1;
    }
    assert!(reproduced >= 20);
}

#[test]
fn compressed_payloads_round_trip_and_stay_compressed() {
    for case in cases().iter().filter(|c| c["compressed"] == true) {
        let signer = signer_for(case);
        let data = case["payload"].as_object().unwrap();
        let cookie = signer.dumps(data, case["timestamp"].as_u64().unwrap());
        assert!(cookie.starts_with('.'), "{cookie}");
        assert_eq!(&signer.loads(&cookie).unwrap().0, data);
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
    assert_eq!(data["visits"], 7);
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
