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
