//! Forms and query strings into typed values: the `key=value` pairs (as `serde_urlencoded`
//! reads them, the one reading every reader of a form shares) handed to serde one value at
//! a time through [`Value`], a deserializer that reads text the way HTML forms write it.
//!
//! It differs from `serde_urlencoded`'s own in one thing: a `bool` is read as a checkbox or
//! a person writes it, as the Python framework reads it: `on` (what a checked box sends),
//! `1`, `yes`, `true` are true, and `0`, `off`, `no`, `false` are false, in any case. An
//! unchecked box sends nothing: give its field `#[serde(default)]` and it is false.
//! Everything else reads as in `serde_urlencoded`: numbers, strings, `Option`s (present is
//! `Some`), unit enum variants by name, newtypes.
//!
//! A failure names the field (through `serde_path_to_error`), for the `errors` member of the
//! problem the handler answers with.

use serde::de::value::{Error, MapDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;

/// A value that failed to deserialize: where (`""` for the whole form, else the field's path,
/// `address.city`) and why.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

/// How serde's messages begin when they name the field themselves.
const NAMING: [&str; 3] = ["missing field `", "unknown field `", "duplicate field `"];

impl std::fmt::Display for FieldError {
    /// The message, after the field's path unless the message names the field already
    /// (`missing field `name``).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() || NAMING.iter().any(|n| self.message.starts_with(n)) {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Deserializes `pairs` (decoded `key=value` pairs, in order) into `T`.
pub(crate) fn from_pairs<T: DeserializeOwned>(
    pairs: Vec<(String, String)>,
) -> Result<T, FieldError> {
    let map = MapDeserializer::<_, Error>::new(
        pairs
            .into_iter()
            .map(|(key, value)| (Value(key), Value(value))),
    );
    serde_path_to_error::deserialize(map).map_err(|e| {
        let message = e.inner().to_string();
        let field = field_name(&e.path().to_string(), &message);
        FieldError { field, message }
    })
}

/// The field a failure is about: its path, or, for a field that is missing, unknown or
/// given twice (which serde reports at the level of the struct, the path of its parent),
/// the parent's path and the name in the message's backquotes.
pub(crate) fn field_name(path: &str, message: &str) -> String {
    let parent = if path == "." { "" } else { path };
    let named = NAMING
        .iter()
        .find_map(|start| message.strip_prefix(start))
        .and_then(|rest| rest.split('`').next());
    match (named, parent) {
        (Some(name), "") => name.to_owned(),
        (Some(name), parent) => format!("{parent}.{name}"),
        (None, parent) => parent.to_owned(),
    }
}

/// One key or value of a form, to deserialize.
struct Value(String);

impl<'de> IntoDeserializer<'de, Error> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}

/// Reads `text` as a number (or a char) of type `$ty` for `$visit`.
macro_rules! parsed {
    ($($method:ident => $visit:ident,)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match self.0.parse() {
                Ok(n) => visitor.$visit(n),
                Err(e) => Err(de::Error::custom(format_args!("{e}: {:?}", self.0))),
            }
        })*
    };
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_string(self.0)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match checkbox(&self.0) {
            Some(b) => visitor.visit_bool(b),
            None => Err(de::Error::invalid_value(
                de::Unexpected::Str(&self.0),
                &"a boolean: on, 1, yes or true; off, 0, no or false",
            )),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        // Unit variants, by name.
        visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(self.0))
    }

    parsed! {
        deserialize_i8 => visit_i8,
        deserialize_i16 => visit_i16,
        deserialize_i32 => visit_i32,
        deserialize_i64 => visit_i64,
        deserialize_i128 => visit_i128,
        deserialize_u8 => visit_u8,
        deserialize_u16 => visit_u16,
        deserialize_u32 => visit_u32,
        deserialize_u64 => visit_u64,
        deserialize_u128 => visit_u128,
        deserialize_f32 => visit_f32,
        deserialize_f64 => visit_f64,
        deserialize_char => visit_char,
    }

    forward_to_deserialize_any! {
        str string bytes byte_buf unit_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// A form's boolean: what a checkbox (`on`) or a person writes, in any case.
fn checkbox(text: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["on", "1", "yes", "true"];
    const FALSE: [&str; 4] = ["off", "0", "no", "false"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Prefs {
        #[serde(default)]
        newsletter: bool,
        age: Option<u8>,
        name: String,
        #[serde(default)]
        mode: Mode,
    }

    #[derive(Debug, Deserialize, PartialEq, Default)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        #[default]
        Light,
        Dark,
    }

    #[test]
    fn booleans_read_as_checkboxes() {
        for (text, expected) in [
            ("on", true),
            ("ON", true),
            ("1", true),
            ("Yes", true),
            ("true", true),
            ("off", false),
            ("0", false),
            ("NO", false),
            ("False", false),
        ] {
            let p: Prefs = from_pairs(pairs(&[("newsletter", text), ("name", "a")])).unwrap();
            assert_eq!(p.newsletter, expected, "{text}");
        }
        let unchecked: Prefs = from_pairs(pairs(&[("name", "a")])).unwrap();
        assert!(!unchecked.newsletter);
        let e = from_pairs::<Prefs>(pairs(&[("newsletter", "maybe"), ("name", "a")])).unwrap_err();
        assert_eq!(e.field, "newsletter");
        assert!(e.message.contains("a boolean"), "{}", e.message);
    }

    #[test]
    fn the_rest_reads_as_serde_urlencoded_reads_it() {
        let p: Prefs =
            from_pairs(pairs(&[("name", "a b"), ("age", "30"), ("mode", "dark")])).unwrap();
        assert_eq!(
            p,
            Prefs {
                newsletter: false,
                age: Some(30),
                name: "a b".into(),
                mode: Mode::Dark
            }
        );
        let e = from_pairs::<Prefs>(pairs(&[("name", "a"), ("age", "x")])).unwrap_err();
        assert_eq!(e.field, "age");
        let e = from_pairs::<Prefs>(pairs(&[("age", "3")])).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("name", "missing field `name`")
        );
        let map: std::collections::HashMap<String, String> =
            from_pairs(pairs(&[("x", "1")])).unwrap();
        assert_eq!(map["x"], "1");
    }

    #[test]
    fn fields_are_named_below_their_parents() {
        assert_eq!(field_name(".", "missing field `city`"), "city");
        assert_eq!(
            field_name("address", "missing field `city`"),
            "address.city"
        );
        assert_eq!(field_name("age", "invalid digit"), "age");
        assert_eq!(field_name(".", "invalid type"), "");
    }
}
