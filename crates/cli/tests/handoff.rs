//! `capstan handoff --backend argocd`: the folders Argo CD syncs from, compared with expected
//! files (`CAPSTAN_BLESS=1` rewrites them after an intended change), `--check`, and the
//! boundary between what capstan and Argo CD deploy.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fails, succeeds, text};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/handoff")
}

fn handoff(project: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["handoff", "--project"])
        .arg(project)
        .args(["--stage", "apps", "--backend", "argocd", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Every file under `dir`, by path relative to it.
fn files(dir: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let relative = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                found.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

/// Hands `apps` off with `config` and compares the folder with `tests/handoff/<expected>`.
fn matches_expected(config: &str, expected: &str) {
    let out = tempfile::tempdir().unwrap();
    let project = fixtures().join("project");
    let config = project.join(config);
    let config = config.to_str().unwrap();
    succeeds(handoff(&project, out.path(), &["--config", config]));
    let expected_dir = fixtures().join(expected);
    if std::env::var_os("CAPSTAN_BLESS").is_some() {
        let _ = std::fs::remove_dir_all(&expected_dir);
        for (path, text) in files(out.path()) {
            let target = expected_dir.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, text).unwrap();
        }
    }
    assert_eq!(
        files(out.path()),
        files(&expected_dir),
        "the handoff differs from {} (an intended change: CAPSTAN_BLESS=1)",
        expected_dir.display()
    );
    // Same input, same bytes.
    succeeds(handoff(
        &project,
        out.path(),
        &["--config", config, "--check"],
    ));
}

#[test]
fn the_nixidy_layout_matches_the_expected_files() {
    matches_expected("argocd.yaml", "nixidy");
}

#[test]
fn the_easykubenix_layout_matches_the_expected_files() {
    matches_expected("easykubenix.yaml", "easykubenix");
}

#[test]
fn sops_objects_stay_encrypted_in_the_handoff() {
    let out = tempfile::tempdir().unwrap();
    let project = fixtures().join("project");
    succeeds(handoff(&project, out.path(), &[]));
    let secret =
        std::fs::read_to_string(out.path().join("capstan-sops-example/Secret-db.yaml")).unwrap();
    let source = std::fs::read_to_string(project.join("apps/secret.yaml")).unwrap();
    for key in ["username", "password"] {
        let value = common::line_of(&source, key);
        assert!(value.contains("ENC[AES256_GCM,"), "{value}");
        assert!(
            secret.contains(value.trim()),
            "{key} is not copied encrypted:\n{secret}"
        );
    }
    assert!(secret.contains("\nsops:\n"), "{secret}");
    // Changing an encrypted object would break its MAC: no sync wave, no label on it.
    assert!(!secret.contains("sync-wave"), "{secret}");
}

#[test]
fn check_passes_on_a_fresh_folder_and_names_what_is_stale() {
    let out = tempfile::tempdir().unwrap();
    let project = fixtures().join("project");
    succeeds(handoff(&project, out.path(), &[]));
    succeeds(handoff(&project, out.path(), &["--check"]));

    std::fs::write(out.path().join("blog/ConfigMap-settings.yaml"), "changed\n").unwrap();
    std::fs::write(out.path().join("blog/ConfigMap-old.yaml"), "old\n").unwrap();
    std::fs::remove_file(out.path().join("apps/Application-blog.yaml")).unwrap();
    let stale = fails(handoff(&project, out.path(), &["--check"]));
    assert_eq!(
        text(&stale.stderr),
        format!(
            "error: {} is not up to date: apps/Application-blog.yaml is missing, blog/ConfigMap-settings.yaml differs, blog/ConfigMap-old.yaml is not handed off; run capstan handoff without --check\n",
            out.path().display()
        )
    );

    // Writing again brings the folder up to date, removing what is no longer handed off.
    succeeds(handoff(&project, out.path(), &[]));
    succeeds(handoff(&project, out.path(), &["--check"]));
    assert!(!out.path().join("blog/ConfigMap-old.yaml").exists());
}

#[test]
fn an_object_in_an_infrastructure_stage_and_an_application_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("capstan.yaml"),
        "name: b\nstages:\n  infra: {manifests: infra.yaml}\n  apps: {manifests: apps.yaml}\n",
    )
    .unwrap();
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n";
    std::fs::write(dir.path().join("infra.yaml"), namespace).unwrap();
    let apps = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web, namespace: shop}}\n---\n{namespace}"
    );
    std::fs::write(dir.path().join("apps.yaml"), apps).unwrap();
    let out = dir.path().join("out");
    let refused = fails(handoff(dir.path(), &out, &[]));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: plugin argocd: Namespace shop is in Argo CD application `cluster` of stage apps ({apps}:5) and in infrastructure stage infra ({infra}:1), which capstan deploys: an object has one deployer, so take it out of one of them\n",
            apps = dir.path().join("apps.yaml").display(),
            infra = dir.path().join("infra.yaml").display(),
        )
    );
    assert!(!out.exists(), "nothing is written");
}
