//! [`SessionData`]: a session's JSON object, in its own order, each value kept as its JSON
//! text.
//!
//! A session cookie made by Python (itsdangerous) holds a dict in insertion order, nested
//! dicts included, and must come back byte for byte when the handler leaves it alone. chirp
//! does not switch on `serde_json/preserve_order` for that (a Cargo feature would change
//! `serde_json::Map` for the whole application): the object's members are found by
//! [`scan_object`] in the JSON text, which `serde_json` has checked first, and each value
//! stays the text it came as (compacted), parsed only when a handler reads it and written
//! with `serde_json` when it sets it.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Serialize;
use serde_json::{Map, Value};

/// A session's data: a JSON object whose members keep their order (the order they came in,
/// then the order they were first inserted, as a Python dict), each value held as its compact
/// JSON text. Nested objects keep their order too: a value is never rebuilt unless it is
/// set, so a cookie made by a Python app is written back byte for byte when unchanged, and a
/// Rust struct set with [`insert`](SessionData::insert) keeps its fields' order.
///
/// Values are typed on the way out ([`get`](SessionData::get)) and on the way in
/// ([`insert`](SessionData::insert)). [`get_value`](SessionData::get_value) and
/// [`to_map`](SessionData::to_map) return `serde_json` types, whose objects are sorted by key
/// unless the application itself switches on `serde_json/preserve_order` (chirp does not).
///
/// Two `SessionData` are equal when they hold the same keys, in the same order, with the same
/// JSON text.
///
/// ```
/// use chirp::sessions::SessionData;
/// let mut data: SessionData = r#"{"z":1,"a":{"y":2,"b":[3]}}"#.parse()?;
/// assert_eq!(data.get::<u64>("z"), Some(1));
/// assert_eq!(data.get_json("a"), Some(r#"{"y":2,"b":[3]}"#));
/// data.insert("m", "text")?;
/// assert_eq!(data.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
/// assert_eq!(data.to_json(), r#"{"z":1,"a":{"y":2,"b":[3]},"m":"text"}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Default)]
pub struct SessionData {
    /// `entries[..len]` are the members, in order; the rest are spare, kept for their
    /// strings' memory (a recycled session loads its next cookie into them).
    entries: Vec<Entry>,
    len: usize,
}

#[derive(Default)]
struct Entry {
    key: String,
    /// The value's compact JSON text.
    value: String,
}

/// Above this many members, duplicate keys in a parsed object are found by sorting rather
/// than by comparing every pair.
const PAIRWISE_AT_MOST: usize = 32;

thread_local! {
    /// A value being serialized, before it goes into the session (a failed serialization
    /// leaves the session as it was), reused from insert to insert.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl SessionData {
    /// An empty session.
    pub fn new() -> SessionData {
        SessionData::default()
    }

    /// Parses a JSON object, keeping its members' order and each value's text (compacted). A
    /// repeated key keeps its first place and its last value, as a Python dict (and
    /// `serde_json` with `preserve_order`) does.
    ///
    /// # Errors
    /// The text is not JSON, or not an object.
    pub fn from_json(json: &str) -> Result<SessionData, serde_json::Error> {
        let mut data = SessionData::new();
        data.fill(json.as_bytes(), |_, _| false)?;
        Ok(data)
    }

    /// The data as a JSON object, compact, in order.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(self.json_len());
        self.write_json(&mut out);
        // Keys are escaped by serde_json and values are text that came from a `str`: UTF-8.
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }

    /// Appends the data as a JSON object (compact, in order) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.reserve(self.json_len());
        out.push(b'{');
        for (i, entry) in self.live().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(out, &entry.key);
            out.push(b':');
            out.extend_from_slice(entry.value.as_bytes());
        }
        out.push(b'}');
    }

    /// About how long [`to_json`](Self::to_json) is (exact when no key needs escapes).
    fn json_len(&self) -> usize {
        2 + self
            .live()
            .iter()
            .map(|e| e.key.len() + e.value.len() + 4)
            .sum::<usize>()
    }

    fn live(&self) -> &[Entry] {
        &self.entries[..self.len]
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.live().iter().position(|e| e.key == key)
    }

    /// The value under `key` as `T`; `None` when absent or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(self.get_json(key)?).ok()
    }

    /// The JSON text of the value under `key`, as it is kept (compact).
    pub fn get_json(&self, key: &str) -> Option<&str> {
        let i = self.position(key)?;
        Some(&self.entries[i].value)
    }

    /// The value under `key` as a `serde_json::Value` (whose objects are sorted by key unless
    /// the application switches on `serde_json/preserve_order`).
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.get(key)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Stores `value` under `key`, serialized now with `serde_json` (a struct keeps its
    /// fields' order). An existing key keeps its place; a new one goes last. Left unchanged
    /// on error.
    ///
    /// # Errors
    /// `value` cannot be represented as JSON (a map with non-string keys, a float NaN, ...).
    pub fn insert<T: Serialize>(&mut self, key: &str, value: T) -> Result<(), serde_json::Error> {
        with_json(value, |json| self.set(key, json))
    }

    /// Stores the JSON text `json` under `key` (checked, and compacted), as
    /// [`insert`](Self::insert) places it.
    ///
    /// # Errors
    /// `json` is not one JSON value.
    pub fn insert_json(&mut self, key: &str, json: &str) -> Result<(), serde_json::Error> {
        serde_json::from_str::<IgnoredAny>(json)?;
        let json = json.trim_matches(is_ws);
        let mut compact = String::new();
        let json = match json.bytes().any(|b| is_ws(char::from(b))) {
            true => {
                compact_into(json, &mut compact);
                compact.as_str()
            }
            false => json,
        };
        self.set(key, json);
        Ok(())
    }

    /// Stores already checked, compact JSON text under `key`.
    pub(crate) fn set(&mut self, key: &str, json: &str) {
        if let Some(i) = self.position(key) {
            let value = &mut self.entries[i].value;
            value.clear();
            value.push_str(json);
            return;
        }
        self.push(key, json);
    }

    /// Appends a member, in a spare entry when there is one.
    fn push(&mut self, key: &str, json: &str) {
        match self.entries.get_mut(self.len) {
            Some(spare) => {
                spare.key.clear();
                spare.key.push_str(key);
                spare.value.clear();
                spare.value.push_str(json);
            }
            None => self.entries.push(Entry {
                key: key.to_owned(),
                value: json.to_owned(),
            }),
        }
        self.len += 1;
    }

    /// Removes `key`, returning the JSON text of its value. The others keep their order.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.position(key)?;
        let value = std::mem::take(&mut self.entries[i].value);
        // The emptied entry becomes the first spare.
        self.entries[i..self.len].rotate_left(1);
        self.len -= 1;
        Some(value)
    }

    /// Removes everything (the memory is kept for what comes next).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.live().iter().map(|e| e.key.as_str())
    }

    /// The members, in order: each key and its value's JSON text.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.live()
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
    }

    /// The data as a `serde_json::Map` (sorted by key unless the application switches on
    /// `serde_json/preserve_order`). A value that does not parse (a string with a lone
    /// surrogate escape, which Python writes) is left out.
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .filter_map(|(k, v)| Some((k.to_owned(), serde_json::from_str(v).ok()?)))
            .collect()
    }

    /// Memory held (members and spares), to decide whether it is worth keeping.
    pub(crate) fn held_bytes(&self) -> usize {
        self.entries.len() * std::mem::size_of::<Entry>()
            + self
                .entries
                .iter()
                .map(|e| e.key.capacity() + e.value.capacity())
                .sum::<usize>()
    }

    /// How many entries (members and spares) it holds.
    pub(crate) fn held_entries(&self) -> usize {
        self.entries.len()
    }

    /// Replaces the data with the JSON object `json` (checked by `serde_json` first), in this
    /// data's own memory. `take(key, json)` sees each member first and keeps it out of the
    /// data when it returns `true` (the session's reserved timestamps). Left empty on error.
    pub(crate) fn fill(
        &mut self,
        json: &[u8],
        mut take: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), serde_json::Error> {
        self.clear();
        let result = self.fill_checked(json, &mut take);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn fill_checked(
        &mut self,
        json: &[u8],
        take: &mut impl FnMut(&str, &str) -> bool,
    ) -> Result<(), serde_json::Error> {
        let text = std::str::from_utf8(json).map_err(|_| invalid("the JSON is not UTF-8"))?;
        serde_json::from_str::<IgnoredAny>(text)?;
        let mut compact = String::new();
        scan_object(text, |raw_key, raw_value, spaced| {
            let decoded;
            let key = match raw_key.contains('\\') {
                false => raw_key.get(1..raw_key.len() - 1).unwrap_or_default(),
                true => {
                    decoded = serde_json::from_str::<String>(raw_key)?;
                    decoded.as_str()
                }
            };
            let value = match spaced {
                false => raw_value,
                true => {
                    compact.clear();
                    compact_into(raw_value, &mut compact);
                    compact.as_str()
                }
            };
            if !take(key, value) {
                self.push(key, value);
            }
            Ok(())
        })?;
        self.merge_repeated_keys();
        Ok(())
    }

    /// A key that came more than once keeps its first place and its last value.
    fn merge_repeated_keys(&mut self) {
        let repeated = match self.len {
            0 | 1 => false,
            n if n <= PAIRWISE_AT_MOST => {
                let live = self.live();
                (1..n).any(|j| live[..j].iter().any(|e| e.key == live[j].key))
            }
            _ => {
                let mut keys: Vec<&str> = self.keys().collect();
                keys.sort_unstable();
                keys.windows(2).any(|w| w[0] == w[1])
            }
        };
        if !repeated {
            return;
        }
        let mut first: std::collections::HashMap<String, usize> = Default::default();
        let mut kept = 0;
        for j in 0..self.len {
            match first.get(&self.entries[j].key) {
                Some(&i) => {
                    let value = std::mem::take(&mut self.entries[j].value);
                    self.entries[i].value = value;
                }
                None => {
                    first.insert(self.entries[j].key.clone(), kept);
                    self.entries.swap(kept, j);
                    kept += 1;
                }
            }
        }
        self.len = kept;
    }
}

impl Clone for SessionData {
    /// The members (not the spare memory).
    fn clone(&self) -> SessionData {
        let mut copy = SessionData::new();
        copy.entries.reserve_exact(self.len);
        for (k, v) in self.iter() {
            copy.push(k, v);
        }
        copy
    }
}

impl PartialEq for SessionData {
    fn eq(&self, other: &SessionData) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for SessionData {}

impl fmt::Debug for SessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl FromStr for SessionData {
    type Err = serde_json::Error;

    /// [`SessionData::from_json`].
    fn from_str(json: &str) -> Result<SessionData, serde_json::Error> {
        SessionData::from_json(json)
    }
}

impl From<&Map<String, Value>> for SessionData {
    /// The map's members, in its iteration order (sorted by key, unless the application
    /// switches on `serde_json/preserve_order`).
    fn from(map: &Map<String, Value>) -> SessionData {
        let mut data = SessionData::new();
        for (k, v) in map {
            // A `Value` always serializes.
            let _ = data.insert(k, v);
        }
        data
    }
}

impl From<Map<String, Value>> for SessionData {
    /// As `From<&Map>`.
    fn from(map: Map<String, Value>) -> SessionData {
        SessionData::from(&map)
    }
}

/// Serializes `value` (into this thread's scratch buffer) and hands the JSON text to `f`.
pub(crate) fn with_json<T: Serialize, R>(
    value: T,
    f: impl FnOnce(&str) -> R,
) -> Result<R, serde_json::Error> {
    let mut f = Some(f);
    let mut run = |buf: &mut Vec<u8>| -> Result<R, serde_json::Error> {
        buf.clear();
        serde_json::to_writer(&mut *buf, &value)?;
        let json = std::str::from_utf8(buf).map_err(|_| invalid("serialized JSON not UTF-8"))?;
        let f = f.take().ok_or_else(|| invalid("serialized twice"))?;
        Ok(f(json))
    };
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            let result = run(&mut buf);
            if buf.capacity() > 16 * 1024 {
                *buf = Vec::new();
            }
            result
        }
        // A `Serialize` that inserts into a session while it is serialized.
        Err(_) => run(&mut Vec::new()),
    })
}

fn invalid(msg: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(msg)
}

/// Writes `key` as a JSON string, escaped as `serde_json` escapes it.
fn write_key(out: &mut Vec<u8>, key: &str) {
    if key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        // Writing a string into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, key);
    } else {
        out.push(b'"');
        out.extend_from_slice(key.as_bytes());
        out.push(b'"');
    }
}

/// JSON's insignificant whitespace.
fn is_ws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Appends `json` (valid JSON text) to `out` without its whitespace outside strings.
fn compact_into(json: &str, out: &mut String) {
    let b = json.as_bytes();
    let mut i = 0;
    let mut from = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = string_end(b, i).unwrap_or(b.len()),
            c if is_ws(char::from(c)) => {
                out.push_str(&json[from..i]);
                i += 1;
                from = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&json[from..]);
}

/// The members of the JSON object `text`, in order: `each(raw key, raw value, spaced)` with
/// the key's text (quotes and escapes included) and the value's text, `spaced` when the
/// value holds whitespace outside its strings. `text` must be valid JSON (checked by
/// `serde_json` before): the scanner does not check the grammar again, but it never reads out
/// of bounds, and what it cannot follow is an error, never a panic.
///
/// # Errors
/// `text` is not an object (or `each` failed).
pub(crate) fn scan_object(
    text: &str,
    mut each: impl FnMut(&str, &str, bool) -> Result<(), serde_json::Error>,
) -> Result<(), serde_json::Error> {
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return Err(invalid("not a JSON object"));
    }
    i += 1;
    loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'}') => return Ok(()),
            Some(b',') => i += 1,
            Some(b'"') => {
                let key_end = string_end(b, i).ok_or_else(|| invalid("unterminated key"))?;
                let key = &text[i..key_end];
                i = skip_ws(b, key_end);
                if b.get(i) != Some(&b':') {
                    return Err(invalid("expected ':'"));
                }
                let start = skip_ws(b, i + 1);
                let (end, spaced) =
                    value_end(b, start).ok_or_else(|| invalid("unterminated value"))?;
                let value = text
                    .get(start..end)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| invalid("expected a value"))?;
                each(key, value, spaced)?;
                i = end;
            }
            _ => return Err(invalid("expected a key")),
        }
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(|&c| is_ws(char::from(c))) {
        i += 1;
    }
    i
}

/// The index just after the string starting (with its quote) at `start`.
fn string_end(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', b.get(i..)?)?;
        match b[i] {
            b'"' => return Some(i + 1),
            _ => i += 2, // an escape: the next byte is never the string's end
        }
    }
}

/// The index just after the value starting at `start`, and whether it holds whitespace
/// outside its strings.
fn value_end(b: &[u8], start: usize) -> Option<(usize, bool)> {
    match *b.get(start)? {
        b'"' => Some((string_end(b, start)?, false)),
        b'{' | b'[' => {
            let (mut depth, mut spaced, mut i) = (0usize, false, start);
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = string_end(b, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some((i + 1, spaced));
                        }
                    }
                    c if is_ws(char::from(c)) => spaced = true,
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = b[start..]
                .iter()
                .position(|&c| matches!(c, b',' | b'}' | b']') || is_ws(char::from(c)))
                .unwrap_or(b.len() - start);
            Some((start + len, false))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(json: &str) -> Vec<(String, String)> {
        SessionData::from_json(json)
            .unwrap()
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    #[test]
    fn keeps_order_and_text_nested_included() {
        let json = r#"{"z":1,"a":{"y":[1,{"q":"\"}","b":null}],"b":2.50},"é\"k":"\u00e9"}"#;
        let data = SessionData::from_json(json).unwrap();
        assert_eq!(data.to_json(), json);
        assert_eq!(data.keys().collect::<Vec<_>>(), ["z", "a", "é\"k"]);
        assert_eq!(data.get::<String>("é\"k").as_deref(), Some("é"));
        assert_eq!(
            data.get_json("a"),
            Some(r#"{"y":[1,{"q":"\"}","b":null}],"b":2.50}"#)
        );
    }

    #[test]
    fn whitespace_outside_strings_goes() {
        let json =
            " {\n \"a\" : [ 1 , { \"b c\" : \" x \" } ] ,\t\"n\" : -1.5e3 , \"s\":\"a b\" } ";
        assert_eq!(
            members(json),
            [
                ("a".into(), r#"[1,{"b c":" x "}]"#.into()),
                ("n".into(), "-1.5e3".into()),
                ("s".into(), r#""a b""#.into())
            ]
        );
    }

    #[test]
    fn repeated_keys_keep_their_first_place_and_last_value() {
        let json = r#"{"a":1,"b":[2],"a":3}"#;
        assert_eq!(
            SessionData::from_json(json).unwrap().to_json(),
            r#"{"a":3,"b":[2]}"#
        );
        let many: String = (0..40).map(|i| format!(r#""k{}":{i},"#, i % 35)).collect();
        let data = SessionData::from_json(&format!("{{{}\"end\":0}}", many)).unwrap();
        assert_eq!(data.len(), 36);
        assert_eq!(data.get::<u64>("k0"), Some(35));
        assert_eq!(data.keys().nth(1), Some("k1"));
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        for bad in [
            "[1]",
            "null",
            "1",
            r#""{}""#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            "{'a':1}",
            "",
        ] {
            assert!(SessionData::from_json(bad).is_err(), "{bad}");
        }
        let mut data = SessionData::from_json(r#"{"a":1}"#).unwrap();
        assert!(data.fill(b"{\"a\":\"\xff\"}", |_, _| false).is_err());
        assert!(data.is_empty());
    }

    #[test]
    fn inserts_replace_in_place_and_removals_keep_order() {
        let mut data = SessionData::new();
        data.insert("a", 1).unwrap();
        data.insert("b", vec!["x"]).unwrap();
        data.insert("c", ()).unwrap();
        data.insert("a", "one").unwrap();
        assert_eq!(data.to_json(), r#"{"a":"one","b":["x"],"c":null}"#);
        assert_eq!(data.remove("b").as_deref(), Some(r#"["x"]"#));
        assert_eq!(data.remove("b"), None);
        data.insert("d", 4).unwrap();
        assert_eq!(data.to_json(), r#"{"a":"one","c":null,"d":4}"#);
        assert!(
            data.insert("e", f64::NAN).is_ok(),
            "serde_json writes NaN as null"
        );
        let mut bad = std::collections::BTreeMap::new();
        bad.insert(vec![1u8], 1);
        assert!(data.insert("f", bad).is_err());
        assert!(!data.contains_key("f"));
        data.insert_json("g", " { \"z\" : 1 , \"a\" : 2 } ")
            .unwrap();
        assert_eq!(data.get_json("g"), Some(r#"{"z":1,"a":2}"#));
        assert!(data.insert_json("h", "{").is_err());
        data.clear();
        assert!(data.is_empty());
        assert_eq!(data.to_json(), "{}");
    }
}
