//! What easykubenix really emits loads: the reconstructed outputs in `../shared/testdata`.
//!
//! That folder sits beside the project checkout for capstan's developers and CI; a plain clone
//! does not have it, and then these tests say so and pass. The same shapes are pinned by the
//! fixtures in `tests/data`, which are always there.

#![allow(
    clippy::disallowed_methods,
    reason = "a test says on stderr which shared files it skipped"
)]

use std::io::Write as _;
use std::path::PathBuf;

use capstan_manifest::{Error, Input, Label, LoadOptions, load};

fn shared(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/easykubenix")
        .join(path);
    if path.exists() {
        Some(path)
    } else {
        // Said on stderr so a run without ../shared shows which cases it left out.
        let _ = writeln!(std::io::stderr(), "skipped: {} is missing", path.display());
        None
    }
}

fn ids(path: PathBuf) -> Result<Vec<String>, Error> {
    let label = Label::new("capstan.io/discriminator", "hetzkube-full").unwrap();
    let manifest = load(&[Input::Path(path)], &LoadOptions::with_label(label))?;
    Ok(manifest
        .iter()
        .map(|object| object.id().to_string())
        .collect())
}

#[test]
fn the_json_list_and_the_yaml_list_hold_the_same_objects() {
    let (Some(json), Some(yaml)) = (
        shared("manifestJSONFile/manifest.json"),
        shared("manifestYAMLFileList/manifest.yaml"),
    ) else {
        return;
    };
    // Both still hold the kluctl-era `{{ hctoken }}` placeholder, which capstan refuses.
    for path in [json, yaml] {
        let Err(Error::Invalid(problems)) = ids(path.clone()) else {
            panic!("{} loaded", path.display())
        };
        let messages: Vec<String> = problems
            .iter()
            .map(|problem| problem.message().to_owned())
            .collect();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(
            messages[0].starts_with("stringData.token holds an unresolved template placeholder")
        );
    }
}

#[test]
fn the_multi_document_stream_loads_in_helm_order() {
    let Some(stream) = shared("manifestYAMLFile/nix-csi.yaml") else {
        return;
    };
    let Err(Error::Invalid(problems)) = ids(stream) else {
        panic!("the placeholder was not found")
    };
    let problem = problems.iter().next().unwrap();
    assert_eq!(
        problem.object().unwrap().to_string(),
        "Secret hetzkube/hcloud"
    );
    assert_eq!(
        (problem.location().document(), problem.location().line()),
        (2, 6)
    );
}

#[test]
fn the_kluctl_project_loads_its_items_but_not_its_vars_file() {
    let Some(project) = shared("kluctlProject") else {
        return;
    };
    let Err(Error::Invalid(problems)) = ids(project) else {
        panic!("the placeholder was not found")
    };
    // Only the templated Secret in prio-20 is a problem: secrets/all.yaml is a kluctl vars file,
    // and default/.templateignore is configuration.
    let sources: Vec<&str> = problems
        .iter()
        .map(|problem| problem.location().source())
        .collect();
    assert_eq!(sources.len(), 1);
    assert!(
        sources[0].ends_with("kluctlProject/prio-20/Secret.yaml"),
        "{sources:?}"
    );
}
