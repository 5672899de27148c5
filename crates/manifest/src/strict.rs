//! Parsing into JSON values that refuses a mapping with the same key twice.
//!
//! YAML 1.2 requires keys to be unique, yet serde_json's `Value` keeps the last of two equal
//! keys, so `name: a` then `name: b` would deploy `b` without a word. The check runs while
//! the document is deserialized, at the cost of one lookup the insert makes anyway; only when
//! it fails is the text scanned again ([`crate::lines`]) to say where.

use std::cell::Cell;
use std::fmt;

use serde::Deserialize as _;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// Why a text did not parse.
pub(crate) enum Failure<E> {
    /// A mapping holds this key twice.
    DuplicateKey(String),
    /// Any other error of the parser.
    Other(E),
}

/// A YAML document as a JSON value.
pub(crate) fn yaml(text: &str) -> Result<Value, Failure<serde_yaml::Error>> {
    let duplicate = Cell::new(None);
    let result = Strict(&duplicate).deserialize(serde_yaml::Deserializer::from_str(text));
    result.map_err(|error| failure(&duplicate, error))
}

/// A JSON text as a JSON value.
pub(crate) fn json(text: &str) -> Result<Value, Failure<serde_json::Error>> {
    let duplicate = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = Strict(&duplicate)
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    result.map_err(|error| failure(&duplicate, error))
}

/// A JSON document's `kind` and, unparsed, its `items`: enough to tell a `List` and parse its
/// items in parallel. The rest is checked as [`json`] checks it.
pub(crate) struct JsonList<'a> {
    pub(crate) kind: Option<String>,
    pub(crate) items: Option<Vec<&'a RawValue>>,
}

/// A JSON document as a [`JsonList`].
pub(crate) fn json_list(text: &str) -> Result<JsonList<'_>, Failure<serde_json::Error>> {
    let duplicate = Cell::new(None);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let result = deserializer
        .deserialize_map(ListVisitor(Strict(&duplicate)))
        .and_then(|list| deserializer.end().map(|()| list));
    result.map_err(|error| failure(&duplicate, error))
}

fn failure<E>(duplicate: &Cell<Option<String>>, error: E) -> Failure<E> {
    match duplicate.take() {
        Some(key) => Failure::DuplicateKey(key),
        None => Failure::Other(error),
    }
}

/// Deserializes what serde_json's `Value` does, the same way, except for repeated keys: the
/// first one found is left in the cell and fails the parse.
#[derive(Clone, Copy)]
struct Strict<'a>(&'a Cell<Option<String>>);

impl Strict<'_> {
    /// The error that ends the parse at a repeated key, which is kept for the caller.
    fn repeated<E: de::Error>(self, key: String) -> E {
        let error = E::custom(format_args!("key `{key}` appears twice"));
        self.0.set(Some(key));
        error
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_i128<E: de::Error>(self, value: i128) -> Result<Value, E> {
        // serde_json's own conversion: a number when it fits one, an error otherwise.
        Number::deserialize(de::value::I128Deserializer::new(value)).map(Value::Number)
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u128<E: de::Error>(self, value: u128) -> Result<Value, E> {
        Number::deserialize(de::value::U128Deserializer::new(value)).map(Value::Number)
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element_seed(self)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut values = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match values.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(self)?);
                }
                Entry::Occupied(slot) => return Err(self.repeated(slot.key().clone())),
            }
        }
        Ok(Value::Object(values))
    }
}

struct ListVisitor<'a>(Strict<'a>);

impl<'de> Visitor<'de> for ListVisitor<'_> {
    type Value = JsonList<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonList<'de>, A::Error> {
        let mut list = JsonList {
            kind: None,
            items: None,
        };
        // A document has a handful of keys at the top.
        let mut keys: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(self.0.repeated(key));
            }
            match key.as_str() {
                "kind" => list.kind = map.next_value()?,
                "items" => list.items = map.next_value()?,
                _ => {
                    map.next_value_seed(self.0)?;
                }
            }
            keys.push(key);
        }
        Ok(list)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Failure, json, json_list, yaml};

    fn duplicate<E>(result: Result<serde_json::Value, Failure<E>>) -> Option<String> {
        match result {
            Err(Failure::DuplicateKey(key)) => Some(key),
            _ => None,
        }
    }

    #[test]
    fn values_parse_as_serde_json_parses_them() {
        let text = "a: [1, -2, 3.5, 18446744073709551615, true, null, ~, 'x']\nb: {c: {}}\n";
        let expected: serde_json::Value = serde_yaml::from_str(text).unwrap();
        assert_eq!(yaml(text).ok(), Some(expected));
        let too_wide = "a: 18446744073709551616\n";
        assert!(serde_yaml::from_str::<serde_json::Value>(too_wide).is_err());
        assert!(matches!(yaml(too_wide), Err(Failure::Other(_))));
        let text = r#"{"a": [1, -2, 3.5e300, 18446744073709551616, true, null, "x"], "b": {}}"#;
        let expected: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json(text).ok(), Some(expected));
        assert_eq!(
            yaml("1: x\ntrue: y\n").ok(),
            Some(json!({"1": "x", "true": "y"}))
        );
    }

    #[test]
    fn a_repeated_key_fails_with_the_key_at_any_depth() {
        assert_eq!(
            duplicate(yaml("metadata:\n  name: a\n  name: b\n")),
            Some("name".to_owned())
        );
        assert_eq!(
            duplicate(yaml("a: [{k: 1, 'k': 2}]\n")),
            Some("k".to_owned())
        );
        assert_eq!(
            duplicate(json(r#"{"a": {"k": 1, "k": 2}}"#)),
            Some("k".to_owned())
        );
        assert!(matches!(yaml("a: [1"), Err(Failure::Other(_))));
        assert!(matches!(json("{} x"), Err(Failure::Other(_))));
        let list = r#"{"kind": "List", "metadata": {"a": 1, "a": 2}, "items": []}"#;
        assert!(matches!(json_list(list), Err(Failure::DuplicateKey(key)) if key == "a"));
        let list = r#"{"kind": "List", "items": [], "kind": "List"}"#;
        assert!(matches!(json_list(list), Err(Failure::DuplicateKey(key)) if key == "kind"));
    }
}
