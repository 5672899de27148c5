//! The dotenv store: `KEY=VALUE` lines and `#` comments, with the metadata flattened into
//! `sops_…` keys.

use crate::tree::{Entry, Item, Map, Value};

/// Parses dotenv text. Keys and values are kept untrimmed and quotes are not interpreted, as
/// in sops; `\n` in a value is a line break.
pub(crate) fn parse(text: &str) -> Result<Map, String> {
    let mut map = Map::default();
    for (number, line) in text.split('\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            map.entries.push(Entry::Comment(comment.to_owned()));
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {} has no `=`", number + 1))?;
        map.entries.push(Entry::Pair(
            key.to_owned(),
            Value::Str(value.replace("\\n", "\n")),
        ));
    }
    Ok(map)
}

pub(crate) fn scalar_text(value: &Value) -> String {
    match value {
        Value::Str(text) | Value::Time(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Null | Value::Map(_) | Value::Seq(_) => String::new(),
    }
}

/// Writes the entries and, flattened after them, the metadata.
pub(crate) fn emit(map: &Map, metadata: Option<&Map>) -> String {
    let mut out = String::new();
    for entry in &map.entries {
        match entry {
            Entry::Pair(key, value) => push_line(&mut out, key, &scalar_text(value)),
            Entry::Comment(text) => {
                out.push('#');
                out.push_str(text);
                out.push('\n');
            }
        }
    }
    let mut flat = Vec::new();
    for (key, value) in metadata.iter().flat_map(|metadata| metadata.pairs()) {
        flatten(&format!("sops_{key}"), value, &mut flat);
    }
    for (key, value) in flat {
        push_line(&mut out, &key, &value);
    }
    out
}

fn push_line(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    out.push_str(&value.replace('\n', "\\n"));
    out.push('\n');
}

/// sops's `flatten`: `__map_<key>` for nested mappings, `__list_<index>` for sequences.
pub(crate) fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Map(map) => {
            for (key, value) in map.pairs() {
                flatten(&format!("{prefix}__map_{key}"), value, out);
            }
        }
        Value::Seq(items) => {
            let values = items.iter().filter_map(|item| match item {
                Item::Value(value) => Some(value),
                Item::Comment(_) => None,
            });
            for (index, value) in values.enumerate() {
                flatten(&format!("{prefix}__list_{index}"), value, out);
            }
        }
        scalar => out.push((prefix.to_owned(), scalar_text(scalar))),
    }
}

/// Removes the `sops_…` keys and rebuilds the metadata mapping from them.
pub(crate) fn take_metadata(map: &mut Map) -> Option<Map> {
    let mut metadata = Map::default();
    let mut found = false;
    map.entries.retain(|entry| match entry {
        Entry::Pair(key, value) if key.starts_with("sops_") => {
            insert(&mut metadata, &key["sops_".len()..], value.clone());
            found = true;
            false
        }
        _ => true,
    });
    found.then_some(metadata)
}

/// Splits at the first `__map_` or `__list_`: the head, and the marker with its tail.
fn next_segment(path: &str) -> (&str, Option<&str>) {
    let at = [path.find("__map_"), path.find("__list_")]
        .into_iter()
        .flatten()
        .min();
    match at {
        Some(at) => (&path[..at], Some(&path[at..])),
        None => (path, None),
    }
}

pub(crate) fn insert(map: &mut Map, path: &str, value: Value) {
    let (key, rest) = next_segment(path);
    let Some(rest) = rest else {
        map.insert(key, value);
        return;
    };
    if map.get(key).is_none() {
        let empty = if rest.starts_with("__map_") {
            Value::Map(Map::default())
        } else {
            Value::Seq(Vec::new())
        };
        map.insert(key, empty);
    }
    for entry in &mut map.entries {
        if let Entry::Pair(k, child) = entry
            && k == key
        {
            insert_into(child, rest, value);
            return;
        }
    }
}

fn insert_into(target: &mut Value, marker: &str, value: Value) {
    if let (Some(path), Value::Map(map)) = (marker.strip_prefix("__map_"), &mut *target) {
        insert(map, path, value);
    } else if let (Some(path), Value::Seq(items)) = (marker.strip_prefix("__list_"), target) {
        let (index, rest) = next_segment(path);
        let Ok(index) = index.parse::<usize>() else {
            return;
        };
        while items.len() <= index {
            items.push(Item::Value(Value::Null));
        }
        let Item::Value(slot) = &mut items[index] else {
            return;
        };
        match rest {
            None => *slot = value,
            Some(rest) => {
                if !matches!(slot, Value::Map(_) | Value::Seq(_)) {
                    *slot = if rest.starts_with("__map_") {
                        Value::Map(Map::default())
                    } else {
                        Value::Seq(Vec::new())
                    };
                }
                insert_into(slot, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_spaces_and_escape_newlines() {
        let map = parse("#c\nfoo = bar\nmulti=a\\nb\n\n").unwrap();
        assert_eq!(map.get("foo "), Some(&Value::Str(" bar".to_owned())));
        assert_eq!(map.get("multi"), Some(&Value::Str("a\nb".to_owned())));
        assert_eq!(emit(&map, None), "#c\nfoo = bar\nmulti=a\\nb\n");
        assert!(parse("novalue").is_err());
    }

    #[test]
    fn metadata_flattens_and_rebuilds() {
        let mut text = String::from("a=b\n");
        text.push_str("sops_age__list_0__map_enc=-----BEGIN\\nX\\n\n");
        text.push_str("sops_age__list_0__map_recipient=age1x\n");
        text.push_str("sops_age__list_1__map_recipient=age1y\n");
        text.push_str("sops_version=3.9.0\n");
        let mut map = parse(&text).unwrap();
        let metadata = take_metadata(&mut map).unwrap();
        assert_eq!(map.pairs().count(), 1);
        assert_eq!(emit(&map, Some(&metadata)), text);
    }
}
