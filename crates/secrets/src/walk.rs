//! Which leaves sops encrypts (`Tree.shouldBeEncrypted`), and the walk that visits every leaf
//! with its additional data in document order.

use crate::tree::{Entry, Item, Map, Tree, Value};
use regex::Regex;

/// Which values of a file are encrypted: the sops options of the same names. At most one
/// applies to a file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Values under a key ending with the suffix stay plaintext; the default, with
    /// `_unencrypted`.
    UnencryptedSuffix(String),
    /// Only values under a key ending with the suffix are encrypted.
    EncryptedSuffix(String),
    /// Values under a key matching the regular expression stay plaintext.
    UnencryptedRegex(String),
    /// Only values under a key matching the regular expression are encrypted.
    EncryptedRegex(String),
    /// Values after a comment matching the regular expression stay plaintext.
    UnencryptedCommentRegex(String),
    /// Only values after a comment matching the regular expression are encrypted.
    EncryptedCommentRegex(String),
}

impl Default for Selection {
    fn default() -> Self {
        Self::UnencryptedSuffix("_unencrypted".to_owned())
    }
}

type MakeSelection = fn(String) -> Selection;

impl Selection {
    /// The metadata and `.sops.yaml` field of each option.
    pub(crate) const FIELDS: [(&'static str, MakeSelection); 6] = [
        ("unencrypted_suffix", Self::UnencryptedSuffix),
        ("encrypted_suffix", Self::EncryptedSuffix),
        ("unencrypted_regex", Self::UnencryptedRegex),
        ("encrypted_regex", Self::EncryptedRegex),
        ("unencrypted_comment_regex", Self::UnencryptedCommentRegex),
        ("encrypted_comment_regex", Self::EncryptedCommentRegex),
    ];

    /// The field name and its value.
    pub(crate) fn field(&self) -> (&'static str, &str) {
        let (index, pattern) = match self {
            Self::UnencryptedSuffix(p) => (0, p),
            Self::EncryptedSuffix(p) => (1, p),
            Self::UnencryptedRegex(p) => (2, p),
            Self::EncryptedRegex(p) => (3, p),
            Self::UnencryptedCommentRegex(p) => (4, p),
            Self::EncryptedCommentRegex(p) => (5, p),
        };
        (Self::FIELDS[index].0, pattern)
    }

    pub(crate) fn compile(&self) -> Result<Rules, regex::Error> {
        let (matcher, encrypt_on_match, on_comments) = match self {
            Self::UnencryptedSuffix(s) => (Matcher::Suffix(s.clone()), false, false),
            Self::EncryptedSuffix(s) => (Matcher::Suffix(s.clone()), true, false),
            Self::UnencryptedRegex(r) => (Matcher::Regex(Regex::new(r)?), false, false),
            Self::EncryptedRegex(r) => (Matcher::Regex(Regex::new(r)?), true, false),
            Self::UnencryptedCommentRegex(r) => (Matcher::Regex(Regex::new(r)?), false, true),
            Self::EncryptedCommentRegex(r) => (Matcher::Regex(Regex::new(r)?), true, true),
        };
        Ok(Rules {
            matcher,
            encrypt_on_match,
            on_comments,
        })
    }
}

enum Matcher {
    Suffix(String),
    Regex(Regex),
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Self::Suffix(suffix) => text.ends_with(suffix.as_str()),
            Self::Regex(regex) => regex.is_match(text),
        }
    }
}

/// A compiled [`Selection`].
pub(crate) struct Rules {
    matcher: Matcher,
    /// `encrypted_*` options encrypt what matches; `unencrypted_*` ones what does not.
    encrypt_on_match: bool,
    /// The comment options match comments above a value rather than the keys of its path.
    on_comments: bool,
}

/// A leaf of the tree: a scalar or a comment line.
pub(crate) enum Leaf<'a> {
    Value(&'a mut Value),
    Comment(&'a mut String),
}

/// Visits every leaf in document order with its additional data (the mapping keys of its
/// path, each followed by `:`) and whether the rules encrypt it.
pub(crate) fn walk<E>(
    tree: &mut Tree,
    rules: &Rules,
    visit: &mut dyn FnMut(Leaf<'_>, &str, bool) -> Result<(), E>,
) -> Result<(), E> {
    let mut walker = Walker {
        rules,
        path: String::new(),
        visit,
    };
    for document in &mut tree.documents {
        walker.map(document, false)?;
    }
    Ok(())
}

/// The path as additional data; comments at the top level use `:`.
fn additional_data(path: &str) -> &str {
    if path.is_empty() { ":" } else { path }
}

struct Walker<'a, E> {
    rules: &'a Rules,
    path: String,
    visit: &'a mut dyn FnMut(Leaf<'_>, &str, bool) -> Result<(), E>,
}

impl<E> Walker<'_, E> {
    fn decide(&self, matched: bool) -> bool {
        matched == self.rules.encrypt_on_match
    }

    /// `matched`: a key on the path (or a comment above, for comment rules) matched.
    /// `level` tracks the comments seen since the last value at this level.
    fn comment(&mut self, text: &mut String, matched: bool, level: &mut bool) -> Result<(), E> {
        let encrypt = if self.rules.on_comments {
            let own = self.rules.matcher.matches(text);
            let stack = matched || *level;
            *level |= own;
            // An `encrypted_comment_regex` marker stays readable; an unencrypted one too.
            if self.rules.encrypt_on_match {
                stack
            } else {
                !(stack || own)
            }
        } else {
            self.decide(matched)
        };
        let aad = additional_data(&self.path);
        (self.visit)(Leaf::Comment(text), aad, encrypt)
    }

    fn map(&mut self, map: &mut Map, matched: bool) -> Result<(), E> {
        let mut level = false;
        for entry in &mut map.entries {
            match entry {
                Entry::Comment(text) => self.comment(text, matched, &mut level)?,
                Entry::Pair(key, value) => {
                    let child = if self.rules.on_comments {
                        matched || level
                    } else {
                        matched || self.rules.matcher.matches(key)
                    };
                    let len = self.path.len();
                    self.path.push_str(key);
                    self.path.push(':');
                    self.value(value, child)?;
                    self.path.truncate(len);
                    level = false;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, value: &mut Value, matched: bool) -> Result<(), E> {
        match value {
            Value::Map(map) => self.map(map, matched),
            Value::Seq(items) => {
                let mut level = false;
                for item in items {
                    match item {
                        Item::Comment(text) => self.comment(text, matched, &mut level)?,
                        Item::Value(value) => {
                            let child = matched || (self.rules.on_comments && level);
                            self.value(value, child)?;
                            level = false;
                        }
                    }
                }
                Ok(())
            }
            leaf => {
                let encrypt = self.decide(matched);
                let aad = additional_data(&self.path);
                (self.visit)(Leaf::Value(leaf), aad, encrypt)
            }
        }
    }
}

/// Calls `f` on every sequence item of the tree, depth first.
pub(crate) fn for_each_item(tree: &mut Tree, f: &mut dyn FnMut(&mut Item)) {
    for document in &mut tree.documents {
        items_of_map(document, f);
    }
}

fn items_of_map(map: &mut Map, f: &mut dyn FnMut(&mut Item)) {
    for entry in &mut map.entries {
        if let Entry::Pair(_, inner) = entry {
            items_of_value(inner, f);
        }
    }
}

fn items_of_value(value: &mut Value, f: &mut dyn FnMut(&mut Item)) {
    match value {
        Value::Map(map) => items_of_map(map, f),
        Value::Seq(items) => {
            for item in items {
                f(item);
                if let Item::Value(inner) = item {
                    items_of_value(inner, f);
                }
            }
        }
        _ => {}
    }
}
