//! The session cookie's format: Python `itsdangerous`' URL-safe timed serializer, byte for
//! byte, so a cookie made by a Python app with the same secret is read here and the other way
//! round.
//!
//! ```text
//! cookie    = payload "." timestamp "." signature         (each base64url, no padding)
//! payload   = compact JSON                                 ("." + zlib(JSON) when that is shorter)
//! timestamp = seconds since the epoch, big-endian, leading zero bytes stripped
//! key       = DIGEST(salt + "signer" + secret)
//! signature = HMAC-DIGEST(key, payload "." timestamp)
//! ```
//!
//! The keyed HMAC state is computed once per key and cloned per cookie, which halves the
//! hashing per request compared with keying every time. Signatures are checked with the `hmac`
//! crate's constant-time `verify_slice`.

use std::cell::RefCell;

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest as _, Sha256};

use super::data::SessionData;

/// base64url without padding on output; padding optional on input (as Python's decoder).
const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Payloads shorter than this are not compressed. Each attempt first resets the deflate state,
/// which clears its 128 KiB hash table: on a 150-byte session that reset alone took longer than
/// all the rest of loading and saving it (load + save 4.0 µs with the attempt, 1.8 µs without,
/// `cargo bench -- session_load_save`), to save a few dozen cookie bytes at best. Larger
/// payloads are tried, as itsdangerous tries every payload; cookies stay valid either way (the
/// reader takes both).
const COMPRESS_FROM: usize = 256;
/// Most bytes a compressed payload may expand to (a zlib bomb in a cookie is refused).
const MAX_INFLATED: usize = 256 * 1024;

/// The hash behind the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Digest {
    /// SHA-256: the default here.
    #[default]
    Sha256,
    /// SHA-1: `itsdangerous`' own default, to share sessions with an existing Python app.
    Sha1,
}

#[cfg(feature = "internals")]
thread_local! {
    /// HMACs computed on this thread: (verifications, signatures). Only with the `internals`
    /// feature, for the tests that count them (a session path's cost is its HMACs: counted,
    /// it is the same on every run, where a timed or instruction count may not be).
    pub(crate) static HMACS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

/// A keyed HMAC state, ready to be cloned for one signature.
#[derive(Clone)]
enum KeyedMac {
    Sha256(Hmac<Sha256>),
    Sha1(Hmac<Sha1>),
}

impl KeyedMac {
    fn new(digest: Digest, salt: &str, secret: &str) -> KeyedMac {
        let material = [salt.as_bytes(), b"signer", secret.as_bytes()].concat();
        match digest {
            Digest::Sha256 => {
                let key = Sha256::digest(&material);
                KeyedMac::Sha256(
                    Hmac::new_from_slice(&key).expect("HMAC takes a key of any length"),
                )
            }
            Digest::Sha1 => {
                let key = Sha1::digest(&material);
                KeyedMac::Sha1(Hmac::new_from_slice(&key).expect("HMAC takes a key of any length"))
            }
        }
    }

    /// The raw signature of `signed` (32 bytes for SHA-256, 20 for SHA-1).
    fn sign(&self, signed: &[u8]) -> ([u8; 32], usize) {
        #[cfg(feature = "internals")]
        HMACS.with(|c| c.set((c.get().0, c.get().1 + 1)));
        let mut raw = [0u8; 32];
        let len = match self.clone() {
            KeyedMac::Sha256(mut m) => {
                m.update(signed);
                raw.copy_from_slice(&m.finalize().into_bytes());
                32
            }
            KeyedMac::Sha1(mut m) => {
                m.update(signed);
                raw[..20].copy_from_slice(&m.finalize().into_bytes());
                20
            }
        };
        (raw, len)
    }

    /// Constant-time check of `signature` over `signed`.
    fn verify(&self, signed: &[u8], signature: &[u8]) -> bool {
        #[cfg(feature = "internals")]
        HMACS.with(|c| c.set((c.get().0 + 1, c.get().1)));
        match self.clone() {
            KeyedMac::Sha256(mut m) => {
                m.update(signed);
                m.verify_slice(signature).is_ok()
            }
            KeyedMac::Sha1(mut m) => {
                m.update(signed);
                m.verify_slice(signature).is_ok()
            }
        }
    }
}

/// Why a cookie was not accepted. The middleware treats every one the same way (an empty
/// session); the distinction is for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieError {
    /// Not three base64 parts.
    Malformed,
    /// The signature does not match any key.
    BadSignature,
    /// Signed but the payload is not a JSON object (or does not inflate).
    BadPayload,
}

/// Signs and verifies session cookies with a current key and any number of fallback keys
/// (key rotation: verify with any, sign with the current one).
///
/// ```
/// use chirp::sessions::{Digest, Signer};
/// let signer = Signer::new("my-secret-key", &[], Digest::Sha256, "itsdangerous");
/// let mut data = chirp::sessions::SessionData::new();
/// data.insert("visits", 1)?;
/// let cookie = signer.dumps(&data, 1764000000);
/// assert_eq!(cookie, "eyJ2aXNpdHMiOjF9.aSSBAA.fpjhVsd7jfz22gZDECldJRfN_1HGA9trV7yldcnWo1c");
/// let (back, ts) = signer.loads(&cookie).unwrap();
/// assert_eq!((back, ts), (data, 1764000000));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone)]
pub struct Signer {
    /// `keys[0]` signs; all verify.
    keys: Vec<KeyedMac>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} keys, secrets hidden)", self.keys.len())
    }
}

thread_local! {
    /// The JSON of the session being signed, reused from cookie to cookie.
    static JSON_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };

    /// The cookie value being built, likewise reused.
    static VALUE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };

    /// A cookie's payload, base64-decoded, likewise reused.
    static DECODE_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };

    /// One zlib compressor per thread, reset between uses: deflate's state is large, so making
    /// one per cookie would cost more than the compression. Level 1 (fastest): any valid
    /// zlib stream is read by itsdangerous, and on session-sized JSON level 6 costs about
    /// half as much again for a few percent of size.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::new(1), true));

    /// Likewise one zlib decompressor per thread.
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

impl Signer {
    /// A signer for `secret` (signing) and `fallbacks` (verification only).
    pub fn new(secret: &str, fallbacks: &[String], digest: Digest, salt: &str) -> Signer {
        let keys = std::iter::once(secret)
            .chain(fallbacks.iter().map(String::as_str))
            .map(|s| KeyedMac::new(digest, salt, s))
            .collect();
        Signer { keys }
    }

    /// The cookie value for `data`, signed at `timestamp`.
    pub fn dumps(&self, data: &SessionData, timestamp: u64) -> String {
        let mut out = String::new();
        self.dumps_into(data, timestamp, &mut out);
        out
    }

    /// Appends the cookie value for `data`, signed at `timestamp`, to `out` (which may already
    /// hold `name=`: only what this call appends is signed).
    pub fn dumps_into(&self, data: &SessionData, timestamp: u64, out: &mut String) {
        self.dumps_stamped_into(data, &Stamps::NONE, timestamp, out);
    }

    /// Like [`Signer::dumps_into`], with the session middleware's reserved timestamps written
    /// into the JSON object after `data`'s own keys (where inserting them into the map would
    /// put them), without going through the map.
    pub(crate) fn dumps_stamped_into(
        &self,
        data: &SessionData,
        stamps: &Stamps<'_>,
        timestamp: u64,
        out: &mut String,
    ) {
        JSON_BUF.with(|buf| {
            let mut json = buf.borrow_mut();
            json.clear();
            data.write_json(&mut json);
            stamps.append_to_json(&mut json);
            self.sign_payload_into(&json, timestamp, out);
            give_back_if_huge(&mut json);
        });
    }

    /// Signs an already serialized JSON payload (compressing it when that is shorter),
    /// appending the cookie value to `out`.
    pub(crate) fn sign_payload_into(&self, json: &[u8], timestamp: u64, out: &mut String) {
        let compressed = if json.len() >= COMPRESS_FROM {
            deflate_if_shorter(json)
        } else {
            None
        };
        VALUE_BUF.with(|cell| {
            // Built as bytes and checked as text once at the end (base64 and dots are ASCII).
            let mut value = cell.borrow_mut();
            value.clear();
            match &compressed {
                Some(z) => {
                    value.push(b'.');
                    append_base64(&mut value, z);
                }
                None => append_base64(&mut value, json),
            }
            value.push(b'.');
            let ts = timestamp.to_be_bytes();
            let first = ts.iter().position(|&b| b != 0).unwrap_or(ts.len() - 1);
            append_base64(&mut value, &ts[first..]);
            // Sign "payload.timestamp", then append "." and the signature.
            let (signature, len) = self.keys[0].sign(&value);
            value.push(b'.');
            append_base64(&mut value, &signature[..len]);
            out.push_str(std::str::from_utf8(&value).expect("base64url and dots are ASCII"));
            give_back_if_huge(&mut value);
        });
    }

    /// Verifies `cookie` and decodes it: the data and the timestamp it was signed at. Checks
    /// no age: that is the caller's business (it knows the clock and the limits).
    pub fn loads(&self, cookie: &str) -> Result<(SessionData, u64), CookieError> {
        let mut data = SessionData::new();
        let timestamp = self.loads_into(cookie, &mut data)?;
        Ok((data, timestamp))
    }

    /// Like [`Signer::loads`], decoding into `data` (emptied first, and left empty when the
    /// cookie is refused), so that a map's memory serves cookie after cookie.
    pub fn loads_into(&self, cookie: &str, data: &mut SessionData) -> Result<u64, CookieError> {
        self.loads_stamped_into(cookie, data, &mut Stamps::none())
    }

    /// Like [`Signer::loads_into`], taking the session middleware's reserved timestamps into
    /// `stamps` instead of `data` (no key string is made for them).
    pub(crate) fn loads_stamped_into(
        &self,
        cookie: &str,
        data: &mut SessionData,
        stamps: &mut Stamps<'_>,
    ) -> Result<u64, CookieError> {
        data.clear();
        stamps.values = [None; 2];
        let (payload, timestamp) = self.verify(cookie)?;
        if with_payload(payload, |json| fill_object(json, data, stamps).ok()).is_none() {
            data.clear();
            stamps.values = [None; 2];
            return Err(CookieError::BadPayload);
        }
        Ok(timestamp)
    }

    /// Checks the signature; returns the payload part and the timestamp.
    fn verify<'c>(&self, cookie: &'c str) -> Result<(&'c str, u64), CookieError> {
        let (signed, signature) = split_last_dot(cookie).ok_or(CookieError::Malformed)?;
        let (payload, ts) = split_last_dot(signed).ok_or(CookieError::Malformed)?;
        if payload.is_empty() || ts.is_empty() || signature.len() > 128 {
            return Err(CookieError::Malformed);
        }
        let mut sig = [0u8; 96];
        let n = B64
            .decode_slice(signature, &mut sig)
            .map_err(|_| CookieError::Malformed)?;
        if !self
            .keys
            .iter()
            .any(|k| k.verify(signed.as_bytes(), &sig[..n]))
        {
            return Err(CookieError::BadSignature);
        }
        let mut ts_bytes = [0u8; 16];
        let n = B64
            .decode_slice(ts, &mut ts_bytes)
            .map_err(|_| CookieError::Malformed)?;
        if n > 8 {
            return Err(CookieError::Malformed);
        }
        let timestamp = ts_bytes[..n]
            .iter()
            .fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        Ok((payload, timestamp))
    }
}

/// Parses the JSON object `json` into `data` (its members' order and their values' text kept;
/// a repeated key keeps its first place and its last value), in `data`'s own memory. The
/// reserved keys of `stamps` go into `stamps` (their last numeric value; another value is
/// dropped), never into `data`.
fn fill_object(
    json: &[u8],
    data: &mut SessionData,
    stamps: &mut Stamps<'_>,
) -> serde_json::Result<()> {
    let names = stamps.names;
    let values = &mut stamps.values;
    data.fill(json, |key, value| {
        let Some(i) = names.and_then(|names| names.iter().position(|n| *n == key)) else {
            return false;
        };
        values[i] = serde_json::from_str::<f64>(value).ok();
        true
    })
}

/// The session middleware's reserved timestamps (the Python framework's `__created_at` and
/// `__last_seen_at`, renamable): kept out of the session's map, read from the cookie's JSON
/// and written into it directly, so that carrying them costs no key string per request.
/// `names` is `None` while no timeout is set: the keys are then ordinary data.
#[derive(Debug, Clone, Copy)]
pub struct Stamps<'k> {
    pub(crate) names: Option<[&'k str; 2]>,
    /// The values read, or to write (Unix seconds; a Python app writes fractions).
    pub(crate) values: [Option<f64>; 2],
}

impl<'k> Stamps<'k> {
    /// No reserved keys.
    pub(crate) const NONE: Stamps<'static> = Stamps {
        names: None,
        values: [None; 2],
    };

    /// No reserved keys, to be filled (nothing is).
    pub(crate) fn none() -> Stamps<'k> {
        Stamps::NONE
    }

    /// The reserved keys `created` and `last_seen`, with no values yet.
    pub(crate) fn new(names: Option<[&'k str; 2]>) -> Stamps<'k> {
        Stamps {
            names,
            values: [None; 2],
        }
    }

    /// Takes the reserved keys out of `data` (for a store that parses on its own).
    pub(crate) fn take_from(&mut self, data: &mut SessionData) {
        self.values = [None; 2];
        let Some(names) = self.names else { return };
        for (name, value) in names.iter().zip(&mut self.values) {
            *value = data
                .remove(name)
                .and_then(|json| serde_json::from_str::<f64>(&json).ok());
        }
    }

    /// The pairs to write: each reserved key that has a value.
    fn pairs(&self) -> impl Iterator<Item = (&'k str, f64)> + '_ {
        self.names
            .into_iter()
            .flat_map(|names| names.into_iter().zip(self.values))
            .filter_map(|(name, value)| Some((name, value?)))
    }

    /// Puts the values into `data`, after its keys (for a store that serializes on its own).
    pub(crate) fn insert_into(&self, data: &mut SessionData) {
        for (name, value) in self.pairs() {
            data.set(name, &number(value).to_string());
        }
    }

    /// Takes back out of `data` what [`Stamps::insert_into`] put in.
    pub(crate) fn remove_from(&self, data: &mut SessionData) {
        for (name, _) in self.pairs() {
            data.remove(name);
        }
    }

    /// Appends the values to `json`, the text of a JSON object, as `"name":value` members
    /// after the others (what serializing the map with them inserted would give, when the map
    /// does not hold the names already: the middleware keeps them out of it).
    fn append_to_json(&self, json: &mut Vec<u8>) {
        let mut pairs = self.pairs().peekable();
        if pairs.peek().is_none() || json.last() != Some(&b'}') {
            return;
        }
        json.pop();
        let mut first = json.last() == Some(&b'{');
        for (name, value) in pairs {
            if !first {
                json.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *json, name).expect("a string always serializes");
            json.push(b':');
            serde_json::to_writer(&mut *json, &number(value)).expect("a number serializes");
        }
        json.push(b'}');
    }
}

/// A timestamp as JSON: whole seconds as an integer, a Python app's fractions as they came.
fn number(t: f64) -> Value {
    match t.fract() == 0.0 && (0.0..9.0e15).contains(&t) {
        true => Value::from(t as u64),
        false => Value::from(t),
    }
}

/// Empties one of this thread's reused buffers for good when a huge session passed through
/// it, rather than keep that memory for the thread's life.
fn give_back_if_huge(buf: &mut Vec<u8>) {
    if buf.capacity() > 64 * 1024 {
        *buf = Vec::new();
    }
}

/// `s` cut at its last `.` (memrchr: a vector at a time, from the end).
fn split_last_dot(s: &str) -> Option<(&str, &str)> {
    let dot = memchr::memrchr(b'.', s.as_bytes())?;
    Some((&s[..dot], &s[dot + 1..]))
}

/// base64-decodes the payload (into this thread's reused buffer), inflates it if it is marked
/// compressed, and hands the JSON bytes to `f`.
fn with_payload<R>(payload: &str, f: impl FnOnce(&[u8]) -> Option<R>) -> Option<R> {
    match payload.strip_prefix('.') {
        None => DECODE_BUF.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                let decoded = B64.decode_vec(payload, &mut buf);
                let result = decoded.ok().and_then(|()| f(&buf));
                give_back_if_huge(&mut buf);
                result
            }
            // Only if `f` itself verified a cookie: no shared buffer then.
            Err(_) => f(&B64.decode(payload).ok()?),
        }),
        Some(z) => f(&inflate(&B64.decode(z).ok()?)?),
    }
}

/// Inflates a zlib stream with this thread's reusable decompressor; `None` when it is not
/// valid zlib or inflates past [`MAX_INFLATED`] (a zlib bomb in a cookie).
fn inflate(z: &[u8]) -> Option<Vec<u8>> {
    INFLATE.with(|cell| {
        let mut d = cell.borrow_mut();
        d.reset(true);
        let mut out = Vec::with_capacity(z.len() * 4 + 64);
        loop {
            let (consumed, produced) = (d.total_in() as usize, out.len());
            match d
                .decompress_vec(&z[consumed..], &mut out, FlushDecompress::None)
                .ok()?
            {
                Status::StreamEnd => return Some(out),
                _ if out.len() > MAX_INFLATED => return None,
                _ if d.total_in() as usize == consumed
                    && out.len() == produced
                    && out.len() < out.capacity() =>
                {
                    return None; // no progress with room to spare: truncated input
                }
                _ => out.reserve(out.capacity().max(1024)),
            }
        }
    })
}

/// Appends the base64url of `bytes` (unpadded) to `out`.
fn append_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    // 4 characters per 3 bytes, rounded up (no padding): cannot overflow for a cookie.
    out.resize(start + bytes.len().div_ceil(3) * 4, 0);
    let n = B64
        .encode_slice(bytes, &mut out[start..])
        .expect("room for the whole encoding was made");
    out.truncate(start + n);
}

/// zlib-compresses `json`; `Some` only when that is shorter by more than one byte (the `.`
/// marker), as itsdangerous decides.
fn deflate_if_shorter(json: &[u8]) -> Option<Vec<u8>> {
    DEFLATE.with(|cell| {
        let mut z = cell.borrow_mut();
        z.reset();
        let mut out = Vec::with_capacity(json.len());
        match z.compress_vec(json, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) if out.len() < json.len() - 1 => Some(out),
            _ => None, // did not fit in json.len() bytes, or not worth it
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_dot() {
        assert_eq!(split_last_dot("a.b.c"), Some(("a.b", "c")));
        assert_eq!(split_last_dot("a."), Some(("a", "")));
        assert_eq!(split_last_dot("."), Some(("", "")));
        assert_eq!(split_last_dot("abc"), None);
        assert_eq!(split_last_dot("é.ü"), Some(("é", "ü")));
    }

    fn signer() -> Signer {
        Signer::new("my-secret-key", &[], Digest::Sha256, "itsdangerous")
    }

    #[test]
    fn round_trips_and_compresses_big_payloads() {
        let mut data = SessionData::new();
        data.insert("big", "x".repeat(500)).unwrap();
        let cookie = signer().dumps(&data, 1_700_000_000);
        assert!(
            cookie.starts_with('.'),
            "compressed payloads start with '.'"
        );
        assert!(cookie.len() < 200);
        assert_eq!(signer().loads(&cookie).unwrap(), (data, 1_700_000_000));
    }

    /// Compression is tried from [`COMPRESS_FROM`] bytes of JSON on, not below, however well
    /// the payload would compress.
    #[test]
    fn only_payloads_from_the_threshold_on_are_compressed() {
        let cookie_for = |json_len: usize| {
            let mut data = SessionData::new();
            let filler = json_len - r#"{"t":""}"#.len();
            data.insert("t", "a".repeat(filler)).unwrap();
            assert_eq!(data.to_json().len(), json_len);
            signer().dumps(&data, 1_700_000_000)
        };
        assert!(!cookie_for(COMPRESS_FROM - 1).starts_with('.'));
        assert!(cookie_for(COMPRESS_FROM).starts_with('.'));
    }

    /// Payloads of every size decode through the thread's shared buffer, one after another,
    /// a small one after a large one included (nothing of the earlier one may leak in).
    #[test]
    fn uncompressed_payloads_of_any_size_round_trip_in_turn() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        for len in [0, 1, 30, 400, 3000, 70_000, 5, 600] {
            // Letters drawn at random do not compress shorter: the payload stays plain.
            let text: String = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    char::from(b'a' + (rng % 26) as u8)
                })
                .collect();
            let mut data = SessionData::new();
            data.insert("t", text).unwrap();
            let cookie = signer().dumps(&data, 1_700_000_000);
            assert_eq!(signer().loads(&cookie).unwrap().0, data, "length {len}");
        }
    }

    #[test]
    fn rejects_tampering() {
        let mut data = SessionData::new();
        data.insert("user", "alice").unwrap();
        let cookie = signer().dumps(&data, 1_700_000_000);
        let (payload, rest) = cookie.split_once('.').unwrap();
        let forged_payload = B64.encode(br#"{"user":"admin"}"#);
        assert_eq!(
            signer().loads(&format!("{forged_payload}.{rest}")),
            Err(CookieError::BadSignature)
        );
        let mut flipped = cookie.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(signer()
            .loads(std::str::from_utf8(&flipped).unwrap())
            .is_err());
        assert_eq!(signer().loads(payload), Err(CookieError::Malformed));
        assert_eq!(signer().loads("a.b"), Err(CookieError::Malformed));
        assert_eq!(signer().loads("..."), Err(CookieError::Malformed));
        assert!(signer().loads("!!!.###.$$$").is_err());
        let other = Signer::new("other", &[], Digest::Sha256, "itsdangerous");
        assert_eq!(other.loads(&cookie), Err(CookieError::BadSignature));
    }

    /// The reserved timestamps are written after the map's keys, as inserting them into the
    /// map would put them, and read back out of the JSON (never into the map); with no names
    /// they are ordinary data.
    #[test]
    fn stamps_go_into_the_json_and_come_back_out_of_it() {
        let names = Some(["__created_at", "__last_seen_at"]);
        let stamps = Stamps {
            names,
            values: [Some(1_700_000_000.0), Some(1_700_000_060.5)],
        };
        let mut data = SessionData::new();
        let mut cookie = String::new();
        signer().dumps_stamped_into(&data, &stamps, 1, &mut cookie);
        let (plain, _) = signer().loads(&cookie).unwrap();
        assert_eq!(
            plain.to_json(),
            r#"{"__created_at":1700000000,"__last_seen_at":1700000060.5}"#
        );
        data.insert("visits", 3).unwrap();
        data.insert("q\"uote", "x").unwrap();
        let mut inserted = data.clone();
        stamps.insert_into(&mut inserted);
        cookie.clear();
        signer().dumps_stamped_into(&data, &stamps, 1, &mut cookie);
        assert_eq!(
            cookie,
            signer().dumps(&inserted, 1),
            "same bytes as inserting them"
        );

        let mut read = Stamps::new(names);
        let mut back = SessionData::new();
        signer()
            .loads_stamped_into(&cookie, &mut back, &mut read)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(read.values, stamps.values);
        // A stamp that is not a number is dropped; a cookie without stamps reads none.
        let mut odd = String::new();
        signer().sign_payload_into(br#"{"__created_at":"x","a":1}"#, 1, &mut odd);
        signer()
            .loads_stamped_into(&odd, &mut back, &mut read)
            .unwrap();
        assert_eq!((back.len(), read.values), (1, [None, None]));
        // Unnamed, they are data.
        signer()
            .loads_stamped_into(&cookie, &mut back, &mut Stamps::none())
            .unwrap();
        assert_eq!(back, inserted);
        // Nothing to write: the JSON is the map's.
        cookie.clear();
        signer().dumps_stamped_into(&data, &Stamps::new(names), 1, &mut cookie);
        assert_eq!(cookie, signer().dumps(&data, 1));
    }

    #[test]
    fn signed_non_objects_are_bad_payloads() {
        let mut cookie = String::new();
        signer().sign_payload_into(b"[1,2]", 1, &mut cookie);
        assert_eq!(signer().loads(&cookie), Err(CookieError::BadPayload));
    }

    #[test]
    fn refuses_zlib_bombs() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::best());
        std::io::Write::write_all(&mut z, &vec![b' '; 2 * 1024 * 1024]).unwrap();
        let bomb = z.finish().unwrap();
        let mut payload = String::from(".");
        B64.encode_string(&bomb, &mut payload);
        let signed = format!("{payload}.AQ");
        let (sig, len) = signer().keys[0].sign(signed.as_bytes());
        let cookie = format!("{signed}.{}", B64.encode(&sig[..len]));
        assert_eq!(signer().loads(&cookie), Err(CookieError::BadPayload));
    }

    #[test]
    fn timestamps_strip_leading_zero_bytes() {
        let mut cookie = String::new();
        signer().sign_payload_into(b"{}", 1, &mut cookie);
        assert_eq!(cookie.split('.').nth(1), Some("AQ"));
        let mut cookie = String::from("name=");
        signer().sign_payload_into(b"{}", 0, &mut cookie);
        let cookie = cookie.strip_prefix("name=").unwrap();
        assert_eq!(cookie.split('.').nth(1), Some("AA"));
        assert_eq!(
            signer().loads(cookie).unwrap().1,
            0,
            "the prefix is not signed"
        );
    }

    /// `loads_into` fills the map it is given as `loads` builds one: emptied first, a repeated
    /// key keeps its first place and its last value, and a refused cookie leaves it empty.
    #[test]
    fn loads_into_reuses_the_map_it_is_given() {
        let signed = |json: &[u8]| {
            let mut cookie = String::new();
            signer().sign_payload_into(json, 1_700_000_000, &mut cookie);
            cookie
        };
        let mut data = SessionData::new();
        data.insert("stale", 1).unwrap();
        let cookie = signed(br#"{"a":1,"b":[2],"a":3}"#);
        assert_eq!(signer().loads_into(&cookie, &mut data), Ok(1_700_000_000));
        assert_eq!(data.to_json(), r#"{"a":3,"b":[2]}"#);
        assert_eq!(signer().loads(&cookie).unwrap().0, data, "same as loads");

        for refused in [
            signed(b"[1,2]"),
            signed(b"null"),
            signed(br#"{"a":1} x"#),
            signed(br#"{"a":"#),
            "a.b.c".to_owned(),
        ] {
            data.insert("stale", 1).unwrap();
            assert!(
                signer().loads_into(&refused, &mut data).is_err(),
                "{refused}"
            );
            assert!(data.is_empty(), "{refused}");
        }
    }
}
