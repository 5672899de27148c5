//! The JSON store: key order kept on the way in, Go's `json.Marshal` + `json.Indent` layout
//! (tab indentation, `<>&` escaped, trailing newline) on the way out.

use crate::tree::{Entry, Item, Map, Value};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt::{self, Write as _};

/// Deserializes into a [`Value`] without reordering keys (serde_json's own map may sort).
struct Node(Value);

impl<'de> de::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(Node)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::Int(number))
    }

    // Since sops 3.13.2, integers that fit in int64 are ints and everything else a float.
    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(i64::try_from(number).map_or(Value::Float(number as f64), Value::Int))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        Ok(Value::Float(number))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::Str(text.to_owned()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::Str(text))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Node(value)) = access.next_element()? {
            items.push(Item::Value(value));
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::default();
        while let Some((key, Node(value))) = access.next_entry::<String, Node>()? {
            map.entries.push(Entry::Pair(key, value));
        }
        Ok(Value::Map(map))
    }
}

/// Parses a JSON object. Errors give a line and column, never the text.
pub(crate) fn parse(text: &str) -> Result<Map, String> {
    match serde_json::from_str::<Node>(text) {
        Ok(Node(Value::Map(map))) => Ok(map),
        Ok(_) => Err("the top level is not an object".to_owned()),
        Err(error) => Err(format!(
            "line {} column {}: {:?}",
            error.line(),
            error.column(),
            error.classify()
        )),
    }
}

/// Parses any JSON value (for `set`). Errors give a line and column, never the text.
pub(crate) fn parse_value(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Node>(text)
        .map(|Node(value)| value)
        .map_err(|error| {
            format!(
                "line {} column {}: {:?}",
                error.line(),
                error.column(),
                error.classify()
            )
        })
}

/// Writes an object as sops does; comments are dropped, as JSON has none.
pub(crate) fn emit(map: &Map) -> String {
    let mut out = String::new();
    write_map(&mut out, map, 0);
    out.push('\n');
    out
}

/// One value in the same style, for `--extract`.
pub(crate) fn emit_value(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    out.extend(std::iter::repeat_n('\t', depth));
}

fn write_map(out: &mut String, map: &Map, depth: usize) {
    let mut pairs = map.pairs().peekable();
    if pairs.peek().is_none() {
        out.push_str("{}");
        return;
    }
    out.push('{');
    while let Some((key, value)) = pairs.next() {
        newline(out, depth + 1);
        write_string(out, key);
        out.push_str(": ");
        write_value(out, value, depth + 1);
        if pairs.peek().is_some() {
            out.push(',');
        }
    }
    newline(out, depth);
    out.push('}');
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Int(number) => {
            let _ = write!(out, "{number}");
        }
        Value::Float(number) => out.push_str(&go_json_float(*number)),
        Value::Str(text) | Value::Time(text) => write_string(out, text),
        // Go marshals a byte slice as base64 text.
        Value::Bytes(bytes) => write_string(out, &STANDARD.encode(bytes)),
        Value::Map(map) => write_map(out, map, depth),
        Value::Seq(items) => {
            let mut values = items
                .iter()
                .filter_map(|item| match item {
                    Item::Value(value) => Some(value),
                    Item::Comment(_) => None,
                })
                .peekable();
            if values.peek().is_none() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            while let Some(value) = values.next() {
                newline(out, depth + 1);
                write_value(out, value, depth + 1);
                if values.peek().is_some() {
                    out.push(',');
                }
            }
            newline(out, depth);
            out.push(']');
        }
    }
}

/// Go's float encoding: plain digits, an exponent only below 1e-6 or from 1e21 on.
fn go_json_float(number: f64) -> String {
    if !number.is_finite() {
        // JSON has no infinities; sops fails on them, and JSON input never has them.
        return "null".to_owned();
    }
    let magnitude = number.abs();
    if magnitude != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        let scientific = format!("{number:e}");
        let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
        let sign = if exponent.starts_with('-') { "-" } else { "+" };
        return format!("{mantissa}e{sign}{}", exponent.trim_start_matches('-'));
    }
    format!("{number}")
}

/// Go's `json.Marshal` of a string.
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{C}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1F}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_in_go_layout() {
        let text = "{\n\t\"b\": 1,\n\t\"a\": [\n\t\t1.5,\n\t\ttrue,\n\t\tnull\n\t],\n\t\"e\": {},\n\t\"s\": \"\\u003cx\\u0026\\\"\\n\"\n}\n";
        let map = parse(text).unwrap();
        assert_eq!(
            map.pairs().map(|(k, _)| k).collect::<Vec<_>>(),
            ["b", "a", "e", "s"]
        );
        assert_eq!(emit(&map), text);
    }

    #[test]
    fn floats_use_exponents_only_at_the_extremes() {
        assert_eq!(go_json_float(1.0), "1");
        assert_eq!(go_json_float(0.000_000_1), "1e-7");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(123_456.789), "123456.789");
    }

    #[test]
    fn large_integers_become_floats_and_others_ints() {
        let map = parse(r#"{"a": 1, "b": 18446744073709551615, "c": 1.0}"#).unwrap();
        assert_eq!(map.get("a"), Some(&Value::Int(1)));
        assert!(matches!(map.get("b"), Some(Value::Float(_))));
        assert_eq!(map.get("c"), Some(&Value::Float(1.0)));
    }
}
