//! `targets:` in `capstan.yaml`: named clusters, a stage's list or label selector, and what a
//! stage becomes on one target.

use std::fs;
use std::path::Path;

use capstan_manifest::{Error, Project, TargetSelector};

fn project(dir: &Path, text: &str) -> Result<Project, Error> {
    fs::write(dir.join("capstan.yaml"), text).unwrap();
    Project::open(dir)
}

const FLEET: &str = "name: shop
targets:
  prod-a: {context: ctx-a, labels: {env: prod}}
  prod-b: {context: ctx-b, kubeconfig: kube/b.yaml, labels: {env: prod}, discriminator: full-b, variables: {CLUSTER: b}}
  dev: {context: ctx-dev, labels: {env: dev}}
stages:
  full:
    manifests: m
    targets: {env: prod}
  some:
    manifests: m
    targets: [dev, prod-a]
  single:
    manifests: m
";

fn message(result: Result<Project, Error>) -> String {
    match result {
        Ok(_) => panic!("the project was accepted"),
        Err(error) => error.to_string(),
    }
}

#[test]
fn targets_keep_their_order_context_kubeconfig_labels_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), FLEET).unwrap();
    let names: Vec<&str> = project.targets().iter().map(|t| t.name()).collect();
    assert_eq!(names, ["prod-a", "prod-b", "dev"]);
    let b = &project.targets()[1];
    assert_eq!(b.context(), "ctx-b");
    assert_eq!(
        b.kubeconfig(),
        Some(dir.path().join("kube/b.yaml").as_path())
    );
    assert_eq!(b.labels()["env"], "prod");
    assert_eq!(b.discriminator(), Some("full-b"));
    assert_eq!(b.variables()["CLUSTER"], "b");
    assert_eq!(project.targets()[0].kubeconfig(), None);
}

#[test]
fn a_stage_selects_targets_by_labels_in_file_order_or_by_names_in_its_order() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), FLEET).unwrap();
    let picked = |stage: &str| -> Vec<String> {
        let selector = project.stage(stage).unwrap().targets().unwrap();
        selector
            .select(project.targets())
            .unwrap()
            .iter()
            .map(|t| t.name().to_owned())
            .collect()
    };
    assert_eq!(picked("full"), ["prod-a", "prod-b"]);
    assert_eq!(picked("some"), ["dev", "prod-a"]);
    assert!(project.stage("single").unwrap().targets().is_none());
}

#[test]
fn a_stage_on_a_target_takes_its_context_discriminator_and_variables() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), FLEET).unwrap();
    let full = project.stage("full").unwrap();
    let a = full.for_target(&project.targets()[0]).unwrap();
    assert_eq!(a.context(), Some("ctx-a"));
    assert_eq!(a.label().value(), "shop.full");
    assert!(a.legacy_label().is_some());
    assert!(a.variables().is_empty());
    let b = full.for_target(&project.targets()[1]).unwrap();
    assert_eq!(b.context(), Some("ctx-b"));
    assert_eq!(b.label().selector(), "capstan.io/discriminator=full-b");
    assert_eq!(b.legacy_label(), None);
    assert_eq!(b.variables()["CLUSTER"], "b");
}

#[test]
fn the_stage_command_gets_the_targets_variables_as_environment() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: shop\ntargets:\n  a: {context: a, variables: {CM_NAME: from-a}}\nstages:\n  s:\n    command: [sh, -c, 'printf \"apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: %s}\\n\" \"$CM_NAME\"']\n    targets: [a]\n";
    let project = project(dir.path(), text).unwrap();
    let stage = project
        .stage("s")
        .unwrap()
        .for_target(&project.targets()[0])
        .unwrap();
    let manifest = stage.load(&mut |_| {}).unwrap();
    assert_eq!(manifest.objects()[0].id().name(), "from-a");
}

#[test]
fn command_line_selectors_are_key_value_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), FLEET).unwrap();
    let selector = TargetSelector::parse_labels("env=prod").unwrap();
    let picked = selector.select(project.targets()).unwrap();
    assert_eq!(picked.len(), 2);
    assert_eq!(
        TargetSelector::parse_labels("env").unwrap_err(),
        "`env` is not a label selector key=value"
    );
    assert_eq!(
        TargetSelector::parse_labels("env=qa")
            .unwrap()
            .select(project.targets())
            .unwrap_err(),
        "selector env=qa selects no target (known: prod-a, prod-b, dev)"
    );
    assert_eq!(
        TargetSelector::Names(vec!["nope".into()])
            .select(project.targets())
            .unwrap_err(),
        "unknown target `nope` (known: prod-a, prod-b, dev)"
    );
}

#[test]
fn bad_targets_are_refused_naming_the_file_and_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml");
    let cases = [
        (
            "name: p\ntargets: {Bad_Name: {context: c}}\nstages: {s: {manifests: m}}\n",
            "the target name \"Bad_Name\" is not",
        ),
        (
            "name: p\ntargets: {a: {context: ''}}\nstages: {s: {manifests: m}}\n",
            "target a: `context` is empty",
        ),
        (
            "name: p\ntargets: {a: {context: c, variables: {1X: y}}}\nstages: {s: {manifests: m}}\n",
            "target a: variable `1X` is not an environment variable name",
        ),
        (
            "name: p\ntargets: {a: {context: c, discriminator: 'not ok'}}\nstages: {s: {manifests: m}}\n",
            "target a: ",
        ),
        (
            "name: p\ntargets: {a: {context: c}}\nstages: {s: {manifests: m, targets: [b]}}\n",
            "stage s: unknown target `b` (known: a)",
        ),
        (
            "name: p\ntargets: {a: {context: c}}\nstages: {s: {manifests: m, targets: {env: prod}}}\n",
            "stage s: selector env=prod selects no target (known: a)",
        ),
        (
            "name: p\nstages: {s: {manifests: m, targets: [a]}}\n",
            "stage s: unknown target `a` (the project lists no `targets`)",
        ),
        (
            "name: p\ntargets: {a: {context: c}}\nstages: {s: {manifests: m, context: c, targets: [a]}}\n",
            "stage s: takes `context` or `targets`, not both: each target names its context",
        ),
        (
            "name: p\ntargets: {a: {context: c, colour: red}}\nstages: {s: {manifests: m}}\n",
            "unknown field `colour`",
        ),
    ];
    for (text, expected) in cases {
        let message = message(project(dir.path(), text));
        assert!(
            message.contains(&file.display().to_string()) && message.contains(expected),
            "{text}: {message}"
        );
    }
}

#[test]
fn a_project_without_targets_has_none_and_its_stages_list_none() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(
        dir.path(),
        "name: p\nstages: {s: {manifests: m, context: c}}\n",
    )
    .unwrap();
    assert!(project.targets().is_empty());
    let stage = project.stage("s").unwrap();
    assert!(stage.targets().is_none());
    assert!(stage.variables().is_empty());
    assert_eq!(stage.context(), Some("c"));
}
