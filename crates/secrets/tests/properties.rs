//! Arbitrary input never panics, and encrypting then decrypting any tree gives it back.

use capstan_secrets::{
    EncryptOptions, Entry, Format, Identities, Identity, Item, Map, Recipients, SopsFile, Tree,
    Value,
};
use proptest::prelude::*;
use std::{path::Path, sync::LazyLock};

static IDENTITY: LazyLock<Identity> = LazyLock::new(Identity::generate);

fn options() -> EncryptOptions {
    EncryptOptions {
        recipients: Recipients::any_of([IDENTITY.recipient()]),
        ..EncryptOptions::default()
    }
}

/// Floats that keep their type through text: integral ones read back as ints in sops too.
fn float() -> impl Strategy<Value = f64> {
    any::<f64>().prop_filter("integral or not finite", |f| {
        f.is_finite() && f.fract() != 0.0
    })
}

fn scalar(yaml: bool) -> BoxedStrategy<Value> {
    let common = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        float().prop_map(Value::Float),
        any::<String>().prop_map(Value::Str),
        "[a-z_ ]{0,12}(\n[a-z ]{0,8}){0,3}\n{0,2}".prop_map(Value::Str),
    ];
    if yaml {
        prop_oneof![
            common,
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes)
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
        any::<String>().prop_filter("long", |k| k.chars().count() < 64)
    ]
}

fn comment() -> impl Strategy<Value = String> {
    "[ a-zA-Z0-9#:,-]{0,20}"
}

/// A mapping of unique keys; in YAML with comments among (but never only) its entries.
fn map(value: BoxedStrategy<Value>, yaml: bool) -> impl Strategy<Value = Map> {
    let comments = if yaml { 0..3usize } else { 0..1 };
    (
        proptest::collection::btree_map(key(), value, 0..5),
        proptest::collection::vec((any::<prop::sample::Index>(), comment()), comments),
    )
        .prop_map(|(pairs, comments)| {
            let mut entries: Vec<Entry> =
                pairs.into_iter().map(|(k, v)| Entry::Pair(k, v)).collect();
            if !entries.is_empty() {
                for (index, text) in comments {
                    entries.insert(index.index(entries.len() + 1), Entry::Comment(text));
                }
            }
            Map { entries }
        })
}

fn value(yaml: bool) -> BoxedStrategy<Value> {
    scalar(yaml)
        .prop_recursive(3, 24, 5, move |inner| {
            prop_oneof![
                map(inner.clone(), yaml).prop_map(Value::Map),
                proptest::collection::vec(inner.prop_map(Item::Value), 0..4).prop_map(Value::Seq),
            ]
        })
        .boxed()
}

fn tree(yaml: bool) -> impl Strategy<Value = Tree> {
    let documents = if yaml { 1..3usize } else { 1..2 };
    proptest::collection::vec(map(value(yaml), yaml), documents).prop_map(|documents| {
        let documents = documents
            .into_iter()
            .map(|mut document| {
                document
                    .entries
                    .retain(|entry| !matches!(entry, Entry::Pair(key, _) if key == "sops"));
                document
            })
            .collect();
        Tree { documents }
    })
}

fn round_trip(format: Format, tree: &Tree) -> Tree {
    let file = SopsFile::encrypt_tree("prop", format, tree.clone(), &options()).unwrap();
    let file = SopsFile::parse("prop", format, &file.to_bytes()).unwrap();
    let identities: Identities = [IDENTITY.clone()].into_iter().collect();
    file.decrypt(&identities).unwrap().tree().clone()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        for format in [Format::Yaml, Format::Json, Format::Dotenv, Format::Binary] {
            let _ = Tree::parse(Path::new("prop"), format, &bytes);
            let _ = SopsFile::parse("prop", format, &bytes);
        }
    }

    #[test]
    fn arbitrary_yaml_like_text_never_panics(text in "([a-z:#&*!|>'\"{}\\[\\],?-]|  |\n|[0-9.]){0,80}") {
        let _ = Tree::parse(Path::new("prop"), Format::Yaml, text.as_bytes());
        let _ = SopsFile::encrypt("prop", Format::Yaml, text.as_bytes(), &options());
    }

    #[test]
    fn yaml_encrypt_then_decrypt_is_identity(tree in tree(true)) {
        prop_assert_eq!(round_trip(Format::Yaml, &tree), tree);
    }

    #[test]
    fn json_encrypt_then_decrypt_is_identity(tree in tree(false)) {
        prop_assert_eq!(round_trip(Format::Json, &tree), tree);
    }

    #[test]
    fn plaintext_text_parses_back_to_the_same_yaml_tree(tree in tree(true)) {
        let identities: Identities = [IDENTITY.clone()].into_iter().collect();
        let file = SopsFile::encrypt_tree("prop", Format::Yaml, tree.clone(), &options()).unwrap();
        let text = file.decrypt(&identities).unwrap().to_plaintext();
        prop_assert_eq!(Tree::parse(Path::new("prop"), Format::Yaml, &text).unwrap(), tree);
    }
}
