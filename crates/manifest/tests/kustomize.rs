//! Folders with a kustomization load what `kustomize build` would load, or are refused.

use std::fs;
use std::path::Path;

mod common;
use common::{ids, load_path, namespace, problems};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n";

const KSOPS: &str = "apiVersion: viaduct.ai/v1\nkind: ksops\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ksops\n";

#[test]
fn a_kustomization_loads_exactly_its_resources_then_its_ksops_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = format!(
        "{KUSTOMIZATION}resources: [b.yaml, ./base]\ngenerators: [s/x.ksops-generator.yaml]\n"
    );
    write(
        dir.path(),
        &[
            ("kustomization.yaml", &root),
            ("a.yaml", &namespace("unlisted")),
            ("b.yaml", &namespace("b")),
            ("base/Kustomization", "resources: [c.yaml]\n"),
            ("base/c.yaml", &namespace("c")),
            ("base/d.yaml", &namespace("unlisted-in-base")),
            (
                "s/x.ksops-generator.yaml",
                &format!("{KSOPS}files: [s/x.yaml]\n"),
            ),
            ("s/x.yaml", &namespace("encrypted")),
        ],
    );
    let expected = ["Namespace b", "Namespace c", "Namespace encrypted"];
    assert_eq!(ids(&load_path(dir.path()).unwrap()), expected);
    // A path to the kustomization file means its folder.
    let file = dir.path().join("kustomization.yaml");
    assert_eq!(ids(&load_path(&file).unwrap()), expected);
}

#[test]
fn listed_resources_that_kustomize_would_not_load_are_problems_of_the_kustomization() {
    let dir = tempfile::tempdir().unwrap();
    let listed = "resources:\n- gone.yaml\n- https://github.com/example/app//base?ref=v1\n- plain\n- ../outside.yaml\n- ok.yaml\n";
    write(
        dir.path(),
        &[
            ("k/kustomization.yml", listed),
            ("k/plain/p.yaml", &namespace("p")),
            ("k/ok.yaml", &namespace("ok")),
            ("outside.yaml", &namespace("outside")),
        ],
    );
    let file = dir.path().join("k/kustomization.yml").display().to_string();
    assert_eq!(
        problems(load_path(&dir.path().join("k"))),
        [
            format!("{file}: resources[0] `gone.yaml` does not exist"),
            format!(
                "{file}: resources[1] `https://github.com/example/app//base?ref=v1` is remote; capstan loads local files only: use a stage `command: [kustomize, build, DIR]` instead"
            ),
            format!(
                "{file}: resources[2] `plain` is a folder without a kustomization file, which kustomize refuses"
            ),
            format!(
                "{file}: resources[3] `../outside.yaml` is outside the kustomization's folder, which kustomize refuses to load"
            ),
        ]
    );
}

#[test]
fn fields_capstan_does_not_apply_are_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{KUSTOMIZATION}namespace: shop\nresources: [a.yaml]\nnamePrefix: x-\npatches:\n- path: patch.yaml\n"
    );
    write(
        dir.path(),
        &[("kustomization.yaml", &text), ("a.yaml", &namespace("a"))],
    );
    let file = dir.path().join("kustomization.yaml").display().to_string();
    let refused = |field: &str| {
        format!(
            "{file}: capstan does not apply `{field}`, so it would deploy something else than `kustomize build`: use a stage `command: [kustomize, build, DIR]` instead"
        )
    };
    assert_eq!(
        problems(load_path(dir.path())),
        [
            refused("namespace"),
            refused("namePrefix"),
            refused("patches")
        ]
    );
}

#[test]
fn generators_must_be_ksops_files_whose_files_exist() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{KUSTOMIZATION}generators:\n- s/x.ksops-generator.yaml\n- secrets.yaml\n- from.ksops-generator.yaml\n- none.yaml\n"
    );
    write(
        dir.path(),
        &[
            ("kustomization.yaml", &text),
            // Relative to the generator's folder, as older ekn wrote it: ksops, which kustomize
            // runs in the kustomization's folder, would not find it.
            (
                "s/x.ksops-generator.yaml",
                &format!("{KSOPS}files: [./x.yaml]\n"),
            ),
            ("s/x.yaml", &namespace("x")),
            (
                "secrets.yaml",
                "apiVersion: builtin\nkind: SecretGenerator\nmetadata: {name: s}\n",
            ),
            (
                "from.ksops-generator.yaml",
                &format!("{KSOPS}secretFrom:\n- metadata: {{name: s}}\n  files: [s/x.yaml]\n"),
            ),
        ],
    );
    let root = dir.path().display();
    let file = format!("{root}/kustomization.yaml");
    assert_eq!(
        problems(load_path(dir.path())),
        [
            format!(
                "{root}/s/x.ksops-generator.yaml: files[0] `./x.yaml` does not exist in `{root}`, the kustomization's folder, where ksops reads it from"
            ),
            format!(
                "{file}: generators[1] `secrets.yaml` is not a ksops generator (a file of kind `ksops`), the only kind capstan runs: use a stage `command: [kustomize, build, DIR]` instead"
            ),
            format!(
                "{root}/from.ksops-generator.yaml: capstan does not apply `secretFrom`, so it would deploy something else than `kustomize build`: use a stage `command: [kustomize, build, DIR]` instead"
            ),
            format!("{file}: generators[3] `none.yaml` does not exist"),
        ]
    );
}

#[test]
fn a_folder_with_two_kustomization_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("kustomization.yaml", "resources: []\n"),
            ("kustomization.yml", "resources: []\n"),
        ],
    );
    assert_eq!(
        problems(load_path(dir.path())),
        [format!(
            "{}: holds [\"kustomization.yaml\", \"kustomization.yml\"]: kustomize refuses a folder with more than one kustomization file",
            dir.path().display()
        )]
    );
}
