//! Plugins loaded at run time through the `capstan` binary: `plugins list`, a plugin stage
//! rendered and deployed, a transform plugin's problems, and every loading error.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use capstan_testenv::ControlPlane;
use common::{fails, succeeds, text};

/// The folder holding the plugin libraries: the one the `capstan` binary is built into.
/// `cargo test --workspace` builds them already; building them here too covers running this
/// test alone (`-p capstan-cli --test plugins`), and is a no-op when they are fresh.
fn libraries() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "capstan-example-stage",
                "-p",
                "capstan-plugin-faults",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success(), "building the plugin libraries failed");
        Path::new(env!("CARGO_BIN_EXE_capstan"))
            .parent()
            .unwrap()
            .to_owned()
    })
}

fn library(crate_name: &str) -> PathBuf {
    libraries().join(format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        crate_name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

/// A project listing `plugin`, with the plugin's `policy` stage and an `apps` stage of
/// `apps.yaml` that the plugin checks.
fn project(dir: &Path, plugin: &Path, apps: &str) {
    let text = format!(
        "name: demo\nplugins: [{}]\nstages:\n  policy: {{plugin: example-stage}}\n  apps: {{manifests: apps.yaml, transform: [example-stage]}}\n",
        plugin.display()
    );
    std::fs::write(dir.join("capstan.yaml"), text).unwrap();
    std::fs::write(dir.join("apps.yaml"), apps).unwrap();
}

const APPS: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: default}\ndata: {a: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: leaky, namespace: default}\ndata: {password: hunter2}\n";

fn capstan(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn plugins_list_shows_name_version_capabilities_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = library("capstan-example-stage");
    project(dir.path(), &plugin, APPS);
    let listed = succeeds(capstan(dir.path(), &["plugins", "list"], &[]));
    assert_eq!(
        text(&listed.stdout),
        format!(
            "example-stage\t0.1.0\tstages,transform\t{}\n",
            plugin.display()
        )
    );
    let json = succeeds(capstan(dir.path(), &["plugins", "list", "-o", "json"], &[]));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(
        report,
        serde_json::json!({"items": [{
            "name": "example-stage",
            "version": "0.1.0",
            "capabilities": ["stages", "transform"],
            "path": plugin,
        }]})
    );
}

#[test]
fn a_plugin_stage_renders_labelled_like_any_stage() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &library("capstan-example-stage"), APPS);
    let rendered = succeeds(capstan(
        dir.path(),
        &["render", "-s", "policy", "-o", "json"],
        &[],
    ));
    let list: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    assert_eq!(
        list["items"][0]["metadata"],
        serde_json::json!({
            "name": "policy",
            "namespace": "default",
            "labels": {"capstan.io/discriminator": "demo.policy"},
        })
    );
}

#[test]
fn a_transform_plugins_problems_name_the_source_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &library("capstan-example-stage"), APPS);
    let refused = fails(capstan(dir.path(), &["validate", "-s", "apps"], &[]));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "{}:6 (document 2): ConfigMap default/leaky: ConfigMap leaky holds a `password`; put it in a Secret (plugin example-stage)\nerror: 1 problem found\n",
            dir.path().join("apps.yaml").display()
        )
    );
}

#[test]
fn a_transform_plugin_changes_the_objects_a_stage_renders() {
    let dir = tempfile::tempdir().unwrap();
    let apps = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine, namespace: default}\n";
    project(dir.path(), &library("capstan-example-stage"), apps);
    let rendered = succeeds(capstan(
        dir.path(),
        &["render", "-s", "apps", "-o", "json"],
        &[],
    ));
    let list: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    assert_eq!(
        list["items"][0]["metadata"]["labels"],
        serde_json::json!({
            "capstan.io/discriminator": "demo.apps",
            "policy.example.com/checked": "true",
        })
    );
}

#[test]
fn a_transform_plugin_without_the_capability_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let faults = library("capstan-plugin-faults");
    let project = format!(
        "name: demo\nplugins: [{}]\nstages:\n  apps: {{manifests: apps.yaml, transform: [faults]}}\n",
        faults.display()
    );
    std::fs::write(dir.path().join("capstan.yaml"), project).unwrap();
    std::fs::write(dir.path().join("apps.yaml"), APPS).unwrap();
    let refused = fails(capstan(dir.path(), &["validate"], &[]));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: {}: stage apps lists `faults` under `transform`, but plugin faults ({}) does not transform objects\n",
            dir.path().join("capstan.yaml").display(),
            faults.display()
        )
    );
}

/// The error `plugins list` fails with for the library at `path`, told to misbehave by `fault`.
fn load_error(path: &Path, fault: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), path, APPS);
    let failed = fails(capstan(
        dir.path(),
        &["plugins", "list"],
        &[("CAPSTAN_PLUGIN_FAULT", fault), ("RUST_BACKTRACE", "0")],
    ));
    // A panicking plugin's own panic hook writes to standard error before capstan's message.
    let stderr = text(&failed.stderr);
    stderr.lines().last().unwrap().to_owned()
}

#[test]
fn loading_errors_name_the_plugin_and_its_path() {
    let faults = library("capstan-plugin-faults");
    let missing = libraries().join("libnot-there.so");
    assert_eq!(
        load_error(&missing, ""),
        format!("error: plugin {}: no such file", missing.display())
    );
    assert_eq!(
        load_error(&faults, "abi"),
        format!(
            "error: plugin {}: built for plugin ABI version 2, but this capstan speaks version 1; rebuild the plugin against capstan-plugin 0.1.0",
            faults.display()
        )
    );
    assert_eq!(
        load_error(&faults, "panic"),
        format!(
            "error: plugin libcapstan_plugin_faults.so ({}) panicked: the plugin was told to panic",
            faults.display()
        )
    );
    assert_eq!(
        load_error(&faults, "malformed"),
        format!(
            "error: plugin libcapstan_plugin_faults.so ({}) answered with malformed JSON: expected ident at line 1 column 9",
            faults.display()
        )
    );
}

/// A shared library that is not a capstan plugin: the C library this test runs with.
fn not_a_plugin() -> PathBuf {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| {
            Path::new(path)
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("libc.so"))
        })
        .map(PathBuf::from)
        .expect("the test links the C library")
}

#[cfg(target_os = "linux")]
#[test]
fn a_library_without_the_entry_symbol_is_refused_by_name() {
    let libc = not_a_plugin();
    assert_eq!(
        load_error(&libc, ""),
        format!(
            "error: plugin {}: the library has no `capstan_plugin_abi_version` symbol; is it a capstan plugin built with `export_plugin!`?",
            libc.display()
        )
    );
}

#[tokio::test]
async fn a_plugin_stage_deploys_diffs_and_prunes_on_the_test_control_plane() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("plugin").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &library("capstan-example-stage"), APPS);
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
        command
            .args(args)
            .current_dir(dir.path())
            .env("KUBECONFIG", plane.kubeconfig())
            .env("EXAMPLE_POLICY_NAMESPACE", &ns)
            .stdin(std::process::Stdio::null());
        command.output().unwrap()
    };
    succeeds(run(&["deploy", "-s", "policy", "--yes"]));
    let listed = succeeds(run(&["list", "-s", "policy", "-o", "json"]));
    let report: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = report["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["object"]["name"].as_str())
        .collect();
    assert_eq!(names, ["policy"], "{report}");
    succeeds(run(&["diff", "-s", "policy"]));
    succeeds(run(&["validate", "-s", "policy"]));
    succeeds(run(&["prune", "-s", "policy", "--yes"]));
}
