//! Malformed input never panics, whatever the bytes; valid objects survive a render.
//!
//! `PROPTEST_CASES=100000 cargo test -p capstan-manifest --release --test arbitrary` runs a
//! longer search.

use capstan_manifest::{Format, Input, Label, LoadOptions, load};
use proptest::prelude::*;

fn options() -> LoadOptions {
    LoadOptions::with_label(Label::new("capstan.io/discriminator", "fuzz").unwrap())
}

/// Text made of YAML's structural pieces reaches deeper than random bytes.
fn yaml_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("---\n"),
        Just("...\n"),
        Just("items:\n"),
        Just("- "),
        Just("  "),
        Just("kind: List\n"),
        Just("apiVersion: v1\n"),
        Just("kind: ConfigMap\n"),
        Just("metadata:\n"),
        Just("  name: a\n"),
        Just("  labels: {x: y}\n"),
        Just("{"),
        Just("}"),
        Just("["),
        Just("]"),
        Just("\""),
        Just(":"),
        Just("&a "),
        Just("*a\n"),
        Just("|\n"),
        Just("#"),
        Just("\n"),
        Just("null\n"),
        Just("\u{feff}"),
        Just("{\"kind\":\"List\",\"items\":["),
        Just("stringData: {k: \"{{ x }}\"}\n"),
        Just("kind: Secret\n"),
    ];
    prop::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

fn load_text(text: String) {
    let input = Input::Text {
        name: "arbitrary".into(),
        text,
    };
    if let Ok(manifest) = load(&[input], &options()) {
        let mut rendered = Vec::new();
        manifest.write(Format::Yaml, &mut rendered).unwrap();
        let again = load(
            &[Input::Text {
                name: "again".into(),
                text: String::from_utf8(rendered).unwrap(),
            }],
            &options(),
        );
        assert_eq!(again.unwrap().len(), manifest.len());
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        load_text(String::from_utf8_lossy(&bytes).into_owned());
    }

    #[test]
    fn yaml_like_text_never_panics_and_renders_back(text in yaml_like()) {
        load_text(text);
    }
}
