//! `capstan.yaml` projects, stages and their render commands.

use std::fs;
use std::path::Path;

use capstan_manifest::{Error, Project, StageSource};

fn project(dir: &Path, text: &str) -> Result<Project, Error> {
    fs::write(dir.join("capstan.yaml"), text).unwrap();
    Project::open(dir)
}

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n";

#[test]
fn stages_default_their_discriminator_to_project_and_stage_name() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: hetzkube\nstages:\n  capi:\n    manifests: build/capi.yaml\n  full:\n    discriminator: full\n    command: [nix, build, --print-out-paths]\n    prune: true\n    context: my-cluster\n";
    let project = project(dir.path(), text).unwrap();
    assert_eq!(project.name(), "hetzkube");
    assert_eq!(project.label_key(), "capstan.io/discriminator");
    let names: Vec<&str> = project.stages().iter().map(|stage| stage.name()).collect();
    assert_eq!(names, ["capi", "full"]);
    let capi = project.stage("capi").unwrap();
    assert_eq!(
        capi.label().selector(),
        "capstan.io/discriminator=hetzkube.capi"
    );
    assert_eq!(capi.project(), "hetzkube");
    assert!(!capi.prune());
    assert!(
        matches!(capi.source(), StageSource::Paths(paths) if paths == &[dir.path().join("build/capi.yaml")])
    );
    let full = project.stage("full").unwrap();
    assert_eq!(full.label().value(), "full");
    assert!(full.prune());
    assert_eq!(full.context(), Some("my-cluster"));
}

#[test]
fn the_default_discriminator_keeps_project_and_stage_apart() {
    let dir = tempfile::tempdir().unwrap();
    let first = project(
        dir.path(),
        "name: rel-x\nstages: {y-full: {manifests: m}}\n",
    )
    .unwrap();
    let second = project(
        dir.path(),
        "name: rel-x-y\nstages: {full: {manifests: m}}\n",
    )
    .unwrap();
    assert_eq!(first.stages()[0].label().value(), "rel-x.y-full");
    assert_eq!(second.stages()[0].label().value(), "rel-x-y.full");
}

#[test]
fn the_legacy_label_is_the_old_default_and_only_for_a_defaulted_discriminator() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: shop\nlabelKey: example.com/owner\nstages: {full: {manifests: m}, capi: {manifests: m, discriminator: capi}}\n";
    let project = project(dir.path(), text).unwrap();
    let legacy = project.stage("full").unwrap().legacy_label().unwrap();
    assert_eq!(legacy.selector(), "example.com/owner=shop-full");
    assert_eq!(project.stage("capi").unwrap().legacy_label(), None);
}

#[test]
fn a_default_discriminator_longer_than_a_label_value_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml").display().to_string();
    let (name, stage) = ("p".repeat(40), "s".repeat(23));
    let text = format!("name: {name}\nstages: {{{stage}: {{manifests: m}}}}\n");
    assert_eq!(
        project(dir.path(), &text).unwrap_err().to_string(),
        format!(
            "{file}: stage {stage}: the default discriminator `{name}.{stage}` is longer than 63 characters, the limit of a label value: set `discriminator:`"
        )
    );
    let text =
        format!("name: {name}\nstages: {{{stage}: {{manifests: m, discriminator: full}}}}\n");
    assert_eq!(
        project(dir.path(), &text).unwrap().stages()[0]
            .label()
            .value(),
        "full"
    );
}

#[test]
fn project_stage_and_state_namespace_names_must_be_dns_labels() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml").display().to_string();
    let rule = "a lowercase RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit";
    let cases = [
        (
            "name: My Project\nstages: {full: {manifests: m}}\n",
            format!("the project name \"My Project\" (line 1) is not {rule}"),
        ),
        (
            "name: p\nstages:\n  full:\n    manifests: m\n  Full_2: {manifests: m}\n",
            format!("the stage name \"Full_2\" (line 5) is not {rule}"),
        ),
        (
            "name: p\nstateNamespace: capstan.system\nstages: {full: {manifests: m}}\n",
            format!("stateNamespace \"capstan.system\" (line 2) is not {rule}"),
        ),
    ];
    for (text, message) in cases {
        let error = project(dir.path(), text).unwrap_err();
        assert_eq!(error.to_string(), format!("{file}: {message}"));
    }
}

#[test]
fn a_stage_declared_twice_is_an_error_naming_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml").display().to_string();
    let text = "name: p\nstages:\n  full: {manifests: a}\n  full: {manifests: b}\n";
    assert_eq!(
        project(dir.path(), text).unwrap_err().to_string(),
        format!("{file}: key `full` appears twice in one mapping (lines 3 and 4)")
    );
}

#[test]
fn adopt_and_the_state_namespace_are_off_and_capstan_system_unless_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nstages: {a: {manifests: m}, b: {manifests: m, adopt: true}}\n";
    let defaults = project(dir.path(), text).unwrap();
    assert_eq!(defaults.state_namespace(), "capstan-system");
    assert_eq!(defaults.stages()[0].state_namespace(), "capstan-system");
    let adopt: Vec<bool> = defaults
        .stages()
        .iter()
        .map(|stage| stage.adopt())
        .collect();
    assert_eq!(adopt, [false, true]);
    let text = "name: p\nstateNamespace: ops\nstages: {a: {manifests: m}}\n";
    let set = project(dir.path(), text).unwrap();
    assert_eq!(
        (set.state_namespace(), set.stages()[0].state_namespace()),
        ("ops", "ops")
    );
}

#[test]
fn a_label_key_takes_over_kluctl_objects() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nlabelKey: kluctl.io/discriminator\nstages: {full: {manifests: m, discriminator: full}}\n";
    let project = project(dir.path(), text).unwrap();
    assert_eq!(
        project.stage("full").unwrap().label().selector(),
        "kluctl.io/discriminator=full"
    );
}

#[test]
fn unknown_keys_and_incomplete_stages_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml").display().to_string();
    let error = project(
        dir.path(),
        "name: p\nstages: {full: {manifests: m, prunee: true}}\n",
    )
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("{file}: stages.full: unknown field `prunee`")),
        "{error}"
    );
    let error = project(
        dir.path(),
        "name: p\nstages: {full: {manifests: m, command: [x]}}\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{file}: stage full: needs exactly one of `manifests` and a non-empty `command`")
    );
    let error = project(dir.path(), "name: p\nstages: {}\n").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{file}: the project declares no stages")
    );
    let error = project(
        dir.path(),
        "name: p\nstages: {full: {manifests: m, discriminator: not ok}}\n",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{file}: stage full: invalid discriminator label capstan.io/discriminator=not ok: at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        )
    );
}

#[test]
fn unknown_stages_list_the_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(
        dir.path(),
        "name: p\nstages: {capi: {manifests: a}, full: {manifests: b}}\n",
    )
    .unwrap();
    let error = project.stage("ful").unwrap_err();
    assert!(
        error
            .to_string()
            .ends_with("no stage named \"ful\" (stages: capi, full)"),
        "{error}"
    );
}

#[test]
fn projects_are_found_in_the_nearest_folder_above() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), "name: p\nstages: {full: {manifests: m}}\n").unwrap();
    let nested = dir.path().join("a/b");
    fs::create_dir_all(&nested).unwrap();
    assert_eq!(
        Project::discover(&nested).unwrap().file(),
        dir.path().join("capstan.yaml")
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        Project::discover(empty.path()),
        Err(Error::ProjectNotFound { .. })
    ));
}

#[test]
fn stage_paths_are_relative_to_the_project() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("build")).unwrap();
    fs::write(dir.path().join("build/ns.yaml"), NAMESPACE).unwrap();
    let project = project(
        dir.path(),
        "name: p\nstages: {full: {manifests: [build]}}\n",
    )
    .unwrap();
    let manifest = project.stage("full").unwrap().load(&mut |_| {}).unwrap();
    assert_eq!(manifest.label().unwrap().value(), "p.full");
    assert_eq!(
        manifest.objects()[0].to_value()["metadata"]["labels"]["capstan.io/discriminator"],
        "p.full"
    );
}

#[test]
fn a_command_printing_yaml_is_loaded_and_its_stderr_streams() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "echo rendering >&2; printf '{}'",
        NAMESPACE.replace('\n', "\\n")
    );
    let text = format!("name: p\nstages:\n  full:\n    command: [sh, -c, {script:?}]\n");
    let project = project(dir.path(), &text).unwrap();
    let mut lines = Vec::new();
    let manifest = project
        .stage("full")
        .unwrap()
        .load(&mut |line| lines.push(line.to_owned()))
        .unwrap();
    assert_eq!(lines, ["rendering"]);
    assert_eq!(manifest.objects()[0].id().to_string(), "Namespace demo");
    assert_eq!(
        manifest.objects()[0].location().source(),
        "<output of stage full>"
    );
}

#[test]
fn a_command_printing_paths_loads_those_paths() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("result")).unwrap();
    fs::write(dir.path().join("result/ns.yaml"), NAMESPACE).unwrap();
    // `nix build --print-out-paths` prints absolute store paths; relative ones resolve in the
    // project folder.
    let text = "name: p\nstages: {full: {command: [sh, -c, 'echo result; echo']}}\n";
    let project = project(dir.path(), text).unwrap();
    let manifest = project.stage("full").unwrap().load(&mut |_| {}).unwrap();
    assert!(
        manifest.objects()[0]
            .location()
            .source()
            .ends_with("result/ns.yaml")
    );
}

#[test]
fn a_failing_command_reports_its_exit_code_and_stderr_tail() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nstages: {full: {command: [sh, -c, 'for i in $(seq 1 30); do echo line $i >&2; done; exit 3']}}\n";
    let project = project(dir.path(), text).unwrap();
    let mut streamed = 0;
    let error = project
        .stage("full")
        .unwrap()
        .load(&mut |_| streamed += 1)
        .unwrap_err();
    assert_eq!(streamed, 30);
    let Error::CommandFailed {
        status,
        stderr_tail,
        ..
    } = &error
    else {
        panic!("{error}")
    };
    assert_eq!(status, "exited with code 3");
    assert_eq!(
        (stderr_tail.len(), stderr_tail[0].as_str()),
        (20, "line 11")
    );
    assert!(error.to_string().starts_with("stage full: `sh -c for i in $(seq 1 30); do echo line $i >&2; done; exit 3` exited with code 3; its last output:\n  line 11\n"), "{error}");
}

#[test]
fn a_failing_commands_output_is_shown_with_control_characters_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "name: p\nstages: {full: {command: [sh, -c, 'printf \"\\033[31mred\\n\" >&2; exit 1']}}\n";
    let project = project(dir.path(), text).unwrap();
    let error = project
        .stage("full")
        .unwrap()
        .load(&mut |_| {})
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        r#"stage full: `sh -c printf "\033[31mred\n" >&2; exit 1` exited with code 1; its last output:
  \u{1b}[31mred"#
    );
}

#[test]
fn a_missing_program_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let project = project(
        dir.path(),
        "name: p\nstages: {full: {command: [capstan-no-such-renderer]}}\n",
    )
    .unwrap();
    let error = project
        .stage("full")
        .unwrap()
        .load(&mut |_| {})
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("stage full: cannot run `capstan-no-such-renderer`: No such file"),
        "{error}"
    );
}

#[test]
fn sops_mac_checks_are_on_unless_a_stage_turns_them_off() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nstages:\n  strict:\n    manifests: a\n  rendered:\n    manifests: a\n    sops: {verifyMac: false}\n";
    let opened = project(dir.path(), text).unwrap();
    assert!(opened.stage("strict").unwrap().verify_sops_mac());
    assert!(!opened.stage("rendered").unwrap().verify_sops_mac());
    let typo = "name: p\nstages:\n  s:\n    manifests: a\n    sops: {verifyMAC: false}\n";
    assert!(
        project(dir.path(), typo).is_err(),
        "a misspelt opt-out must not pass silently"
    );
}

#[test]
fn plugins_are_resolved_against_the_project_and_plugin_stages_name_their_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: p\nplugins: [lib/libpolicy.so]\nstages:\n  policy: {plugin: policy}\n  apps: {manifests: m, transform: [policy]}\n";
    let project = project(dir.path(), text).unwrap();
    assert_eq!(project.plugins(), [dir.path().join("lib/libpolicy.so")]);
    let policy = project.stage("policy").unwrap();
    assert!(matches!(policy.source(), StageSource::Plugin { name } if name == "policy"));
    assert_eq!(project.stage("apps").unwrap().transform(), ["policy"]);
    assert_eq!(
        policy.load(&mut |_| {}).unwrap_err().to_string(),
        "stage policy: its manifests come from plugin `policy`, which must render them"
    );
}

#[test]
fn plugin_lists_and_plugin_stages_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capstan.yaml").display().to_string();
    let cases = [
        (
            "name: p\nplugins: [a.so, a.so]\nstages: {s: {manifests: m}}\n",
            "plugin `a.so` is listed twice",
        ),
        (
            "name: p\nplugins: ['']\nstages: {s: {manifests: m}}\n",
            "plugins[0] is empty: give the library's path",
        ),
        (
            "name: p\nstages: {s: {plugin: policy}}\n",
            "stage s: comes from plugin `policy`, but the project lists no `plugins`",
        ),
        (
            "name: p\nstages: {s: {manifests: m, transform: [policy]}}\n",
            "stage s: lists `transform` plugins, but the project lists no `plugins`",
        ),
        (
            "name: p\nplugins: [a.so]\nstages: {s: {plugin: policy, manifests: m}}\n",
            "stage s: takes `plugin` alone, without `manifests` or `command`",
        ),
    ];
    for (text, message) in cases {
        let error = project(dir.path(), text).unwrap_err();
        assert_eq!(error.to_string(), format!("{file}: {message}"), "{text}");
    }
}
