//! Helpers shared by the integration tests.

#![allow(
    clippy::disallowed_methods,
    reason = "a test says on stderr which shared vectors it skipped"
)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part"
)]

use capstan_secrets::{Identities, Identity, Item, Map, Recipients, Tree, Value};
use std::{io::Write as _, path::PathBuf};

/// The shared sops test vectors, or `None` (with a note on stderr) in a checkout without
/// `../shared`: the repository must not depend on it, so those tests skip rather than fail.
pub fn vectors(test: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/testdata/sops");
    if dir.is_dir() {
        Some(dir)
    } else {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: ../shared missing ({})",
            dir.display()
        );
        None
    }
}

/// The identities of a key file among the vectors.
pub fn identities(path: &std::path::Path) -> Identities {
    Identities::parse(
        &path.display().to_string(),
        &std::fs::read_to_string(path).unwrap(),
    )
    .unwrap()
}

/// A fresh identity and the one-group recipients for it.
pub fn key() -> (Identities, Recipients) {
    let identity = Identity::generate();
    let recipients = Recipients::any_of([identity.recipient()]);
    ([identity].into_iter().collect(), recipients)
}

/// The tree with its comments removed, to compare values only.
pub fn without_comments(tree: &Tree) -> Tree {
    fn map(map: &Map) -> Map {
        map.pairs()
            .map(|(key, v)| (key.to_owned(), value(v)))
            .collect()
    }
    fn value(node: &Value) -> Value {
        match node {
            Value::Map(m) => Value::Map(map(m)),
            Value::Seq(items) => Value::Seq(
                items
                    .iter()
                    .filter_map(|item| match item {
                        Item::Value(v) => Some(Item::Value(value(v))),
                        Item::Comment(_) => None,
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    Tree {
        documents: tree.documents.iter().map(map).collect(),
    }
}
