//! The document model sops works on: ordered mappings, sequences, typed scalars and comments.

use zeroize::Zeroize;

/// A value in a SOPS document.
///
/// The scalar types are the ones sops distinguishes in the `type:` field of an encrypted value,
/// so a value keeps its type across encryption.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` (never encrypted, never part of the MAC).
    Null,
    /// `true` or `false` (`type:bool`).
    Bool(bool),
    /// A 64-bit integer (`type:int`).
    Int(i64),
    /// A 64-bit float (`type:float`).
    Float(f64),
    /// A UTF-8 string (`type:str`).
    Str(String),
    /// Raw bytes (`type:bytes`; YAML `!!binary`; the content of a binary file).
    Bytes(Vec<u8>),
    /// A YAML timestamp (`type:time`), kept as its RFC 3339 text.
    Time(String),
    /// A mapping with its entries in file order.
    Map(Map),
    /// A sequence.
    Seq(Vec<Item>),
}

impl Value {
    /// Parses a JSON value, as `sops set` takes one: objects and arrays become mappings and
    /// sequences, integers `int`, other numbers `float`.
    ///
    /// # Errors
    ///
    /// A message with the line and column of invalid JSON; it never quotes the text.
    pub fn from_json(text: &str) -> Result<Self, String> {
        crate::json::parse_value(text)
    }
}

/// A mapping: keys in file order, with the comments found between them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Map {
    /// The entries in file order.
    pub entries: Vec<Entry>,
}

/// One entry of a [`Map`].
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A key and its value.
    Pair(String, Value),
    /// A comment line, without its leading `#`.
    Comment(String),
}

/// One element of a sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A value.
    Value(Value),
    /// A comment line, without its leading `#`.
    Comment(String),
}

/// The documents of a file: YAML files may hold several, the other formats exactly one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    /// The documents, each a mapping at the top level as sops requires.
    pub documents: Vec<Map>,
}

impl Map {
    /// The value of `key`, if the mapping has one.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.pairs().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The key/value pairs, without the comments.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().filter_map(|entry| match entry {
            Entry::Pair(key, value) => Some((key.as_str(), value)),
            Entry::Comment(_) => None,
        })
    }

    /// Sets `key` to `value`, replacing the value in place or appending a new entry.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        for entry in &mut self.entries {
            if let Entry::Pair(k, v) = entry
                && *k == key
            {
                *v = value;
                return;
            }
        }
        self.entries.push(Entry::Pair(key, value));
    }

    /// Removes `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let index = self
            .entries
            .iter()
            .position(|entry| matches!(entry, Entry::Pair(k, _) if k == key))?;
        match self.entries.remove(index) {
            Entry::Pair(_, value) => Some(value),
            Entry::Comment(_) => None,
        }
    }
}

impl FromIterator<(String, Value)> for Map {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self {
            entries: iter.into_iter().map(|(k, v)| Entry::Pair(k, v)).collect(),
        }
    }
}

/// One step of a path into a tree: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// A mapping key.
    Key(String),
    /// An index into a sequence, counting values only (comments are skipped).
    Index(usize),
}

impl Tree {
    /// The value at `path` in the first document, as `sops decrypt --extract` finds it.
    pub fn get(&self, path: &[PathStep]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        let PathStep::Key(key) = first else {
            return None;
        };
        let mut value = self.documents.first()?.get(key)?;
        for step in rest {
            value = match (step, value) {
                (PathStep::Key(key), Value::Map(map)) => map.get(key)?,
                (PathStep::Index(index), Value::Seq(items)) => items
                    .iter()
                    .filter_map(|item| match item {
                        Item::Value(value) => Some(value),
                        Item::Comment(_) => None,
                    })
                    .nth(*index)?,
                _ => return None,
            };
        }
        Some(value)
    }
}

impl Tree {
    /// sops `set`: puts `value` at `path` in the first document, creating the mappings on
    /// the way, appending to a sequence when the index is past its end, and replacing
    /// whatever scalar stood in the way. Returns whether the tree changed; `None` when the
    /// path is empty or starts with an index (the top level is a mapping).
    pub fn set(&mut self, path: &[PathStep], value: Value) -> Option<bool> {
        let (PathStep::Key(key), rest) = path.split_first()? else {
            return None;
        };
        if self.documents.is_empty() {
            self.documents.push(Map::default());
        }
        let document = &mut self.documents[0];
        let mut root = Value::Map(std::mem::take(document));
        let changed = set_in(
            &mut root,
            &[&[PathStep::Key(key.clone())], rest].concat(),
            value,
        );
        if let Value::Map(map) = root {
            *document = map;
        }
        Some(changed)
    }

    /// sops `unset`: removes the mapping entry or sequence item at `path` in the first
    /// document. Returns whether there was one.
    pub fn unset(&mut self, path: &[PathStep]) -> bool {
        let Some((last, parents)) = path.split_last() else {
            return false;
        };
        let Some(document) = self.documents.first_mut() else {
            return false;
        };
        let mut parent = Value::Map(std::mem::take(document));
        let removed = match get_mut(&mut parent, parents) {
            Some(Value::Map(map)) => match last {
                PathStep::Key(key) => map.remove(key).is_some(),
                PathStep::Index(_) => false,
            },
            Some(Value::Seq(items)) => match last {
                PathStep::Index(index) => match value_position(items, *index) {
                    Some(position) => {
                        items.remove(position);
                        true
                    }
                    None => false,
                },
                PathStep::Key(_) => false,
            },
            _ => false,
        };
        if let Value::Map(map) = parent {
            *document = map;
        }
        removed
    }
}

/// The position in `items` of the `index`th value, comments skipped.
fn value_position(items: &[Item], index: usize) -> Option<usize> {
    items
        .iter()
        .enumerate()
        .filter(|(_, item)| matches!(item, Item::Value(_)))
        .nth(index)
        .map(|(position, _)| position)
}

fn get_mut<'a>(value: &'a mut Value, path: &[PathStep]) -> Option<&'a mut Value> {
    let Some((step, rest)) = path.split_first() else {
        return Some(value);
    };
    let child = match (step, value) {
        (PathStep::Key(key), Value::Map(map)) => {
            map.entries.iter_mut().find_map(|entry| match entry {
                Entry::Pair(k, v) if k == key => Some(v),
                _ => None,
            })?
        }
        (PathStep::Index(index), Value::Seq(items)) => {
            let position = value_position(items, *index)?;
            match &mut items[position] {
                Item::Value(value) => value,
                Item::Comment(_) => return None,
            }
        }
        _ => return None,
    };
    get_mut(child, rest)
}

/// The value `path` leads to when nothing of it exists yet.
fn built(path: &[PathStep], leaf: Value) -> Value {
    path.iter().rev().fold(leaf, |inner, step| match step {
        PathStep::Key(key) => Value::Map([(key.clone(), inner)].into_iter().collect()),
        PathStep::Index(_) => Value::Seq(vec![Item::Value(inner)]),
    })
}

fn set_in(target: &mut Value, path: &[PathStep], leaf: Value) -> bool {
    let Some((step, rest)) = path.split_first() else {
        let changed = *target != leaf;
        *target = leaf;
        return changed;
    };
    match (step, &mut *target) {
        (PathStep::Key(key), Value::Map(map)) => {
            for entry in &mut map.entries {
                if let Entry::Pair(k, v) = entry
                    && k == key
                {
                    return set_in(v, rest, leaf);
                }
            }
            map.entries
                .push(Entry::Pair(key.clone(), built(rest, leaf)));
            true
        }
        (PathStep::Index(index), Value::Seq(items)) => match value_position(items, *index) {
            Some(position) => match &mut items[position] {
                Item::Value(value) => set_in(value, rest, leaf),
                Item::Comment(_) => false,
            },
            None => {
                items.push(Item::Value(built(rest, leaf)));
                true
            }
        },
        _ => {
            *target = built(path, leaf);
            true
        }
    }
}

/// Parses a path in the syntax of `sops decrypt --extract`: `["key"]['key'][0]`.
///
/// Returns `None` when the text is not such a path.
pub fn parse_path(text: &str) -> Option<Vec<PathStep>> {
    let mut steps = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[')?;
        let (step, after) = match rest.chars().next()? {
            quote @ ('"' | '\'') => {
                let end = rest[1..].find(quote)? + 1;
                (PathStep::Key(rest[1..end].to_owned()), &rest[end + 1..])
            }
            _ => {
                let end = rest.find(']')?;
                (
                    PathStep::Index(rest[..end].trim().parse().ok()?),
                    &rest[end..],
                )
            }
        };
        rest = after.strip_prefix(']')?;
        steps.push(step);
    }
    Some(steps)
}

impl Zeroize for Value {
    fn zeroize(&mut self) {
        match self {
            Self::Str(text) | Self::Time(text) => text.zeroize(),
            Self::Bytes(bytes) => bytes.zeroize(),
            Self::Map(map) => map.zeroize(),
            Self::Seq(items) => items.iter_mut().for_each(Zeroize::zeroize),
            Self::Int(number) => number.zeroize(),
            Self::Float(number) => number.zeroize(),
            Self::Bool(_) | Self::Null => {}
        }
    }
}

impl Zeroize for Map {
    fn zeroize(&mut self) {
        for entry in &mut self.entries {
            match entry {
                Entry::Pair(key, value) => {
                    key.zeroize();
                    value.zeroize();
                }
                Entry::Comment(text) => text.zeroize(),
            }
        }
    }
}

impl Zeroize for Item {
    fn zeroize(&mut self) {
        match self {
            Self::Value(value) => value.zeroize(),
            Self::Comment(text) => text.zeroize(),
        }
    }
}

impl Zeroize for Tree {
    fn zeroize(&mut self) {
        self.documents.iter_mut().for_each(Zeroize::zeroize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(json: &str) -> Tree {
        let Value::Map(map) = Value::from_json(json).unwrap() else {
            panic!("not an object");
        };
        Tree {
            documents: vec![map],
        }
    }

    #[test]
    fn set_creates_mappings_appends_to_lists_and_replaces_scalars_as_sops_does() {
        let mut t = tree(r#"{"a": {"b": 1}, "l": [1, 2], "s": "x"}"#);
        let path = |text| parse_path(text).unwrap();
        assert_eq!(t.set(&path(r#"["a"]["b"]"#), Value::Int(1)), Some(false));
        assert_eq!(
            t.set(&path(r#"["a"]["c"]["d"]"#), Value::Int(2)),
            Some(true)
        );
        assert_eq!(t.set(&path(r#"["l"][5]"#), Value::Int(3)), Some(true));
        assert_eq!(t.set(&path(r#"["s"]["k"]"#), Value::Bool(true)), Some(true));
        assert_eq!(t.set(&path("[0]"), Value::Null), None);
        assert_eq!(
            t,
            tree(r#"{"a": {"b": 1, "c": {"d": 2}}, "l": [1, 2, 3], "s": {"k": true}}"#)
        );
        assert!(t.unset(&path(r#"["l"][0]"#)));
        assert!(t.unset(&path(r#"["a"]["c"]"#)));
        assert!(!t.unset(&path(r#"["a"]["c"]"#)));
        assert_eq!(t, tree(r#"{"a": {"b": 1}, "l": [2, 3], "s": {"k": true}}"#));
    }
}
