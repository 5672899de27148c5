//! The JSON contract of docs/json.md, pinned: every `-o json` of every command is one JSON
//! object of the shape in `tests/json/<case>.json`, failures included. Values that change from
//! run to run (namespaces, uids, request counts, diffs, temporary folders) are replaced by
//! placeholders before comparing. `CAPSTAN_BLESS=1` rewrites the expected files after an
//! intended change of the contract, which docs/json.md must then describe.

mod common;

use std::path::Path;
use std::process::Output;

use capstan_testenv::ControlPlane;
use common::{exited, on_plane, text};
use serde_json::Value;

/// Replaces what differs between runs: `replace` pairs (a namespace, a folder) in every string,
/// and the values of keys that are volatile by nature.
fn normalise(value: &mut Value, replace: &[(&str, &str)]) {
    match value {
        Value::String(string) => {
            for (from, to) in replace {
                *string = string.replace(from, to);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| normalise(v, replace)),
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    "uid" | "pid" | "time" if !value.is_null() => {
                        *value = Value::from(format!("<{key}>"));
                    }
                    "requests" | "bytes" | "durationMs" => *value = Value::from(format!("<{key}>")),
                    "diff" => *value = Value::from("<diff>"),
                    _ => normalise(value, replace),
                }
            }
        }
        _ => {}
    }
}

/// Checks that standard output is one JSON object, and that it has the expected shape.
fn pinned(case: &str, output: &Output, replace: &[(&str, &str)]) -> Value {
    let parsed: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{case}: standard output is not one JSON document ({error}):\n{}\nstderr: {}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    assert!(parsed.is_object(), "{case}: not an object: {parsed}");
    let mut value = parsed.clone();
    normalise(&mut value, replace);
    let actual = serde_json::to_string_pretty(&value).unwrap() + "\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/json")
        .join(format!("{case}.json"));
    if std::env::var_os("CAPSTAN_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "{} is missing: run with CAPSTAN_BLESS=1 to write it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{case}: the JSON differs from {} (an intended change: CAPSTAN_BLESS=1, and docs/json.md)",
        path.display()
    );
    parsed
}

/// A project named after `ns` with stage `app` holding `objects`, whose discriminator is `ns`.
fn project(dir: &Path, ns: &str, objects: &str) {
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: {ns}\nstages:\n  app:\n    manifests: app.yaml\n    discriminator: {ns}\n"),
    )
    .unwrap();
    std::fs::write(dir.join("app.yaml"), objects).unwrap();
}

fn config_map(ns: &str, name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: v}}\n"
    )
}

/// One valid ConfigMap, one with an invalid name, one document that is no object.
const INVALID: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n---\n\
                       apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n---\n\
                       kind: Secret\nmetadata: {name: s}\n";

#[test]
fn validate_reports_and_failures_are_one_json_object_each() {
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path().to_str().unwrap();
    let replace = [(root, "<dir>")];
    let run = |args: &[&str]| offline(dir.path(), args);

    project(dir.path(), "contract", &config_map("default", "one"));
    pinned(
        "validate",
        &exited(0, run(&["validate", "-o", "json"])),
        &replace,
    );

    std::fs::write(dir.path().join("app.yaml"), INVALID).unwrap();
    // Offline problems stop the server check before it connects: the count is still real.
    let invalid = pinned(
        "validate-invalid",
        &exited(2, run(&["validate", "--server", "-o", "json"])),
        &replace,
    );
    assert_eq!(invalid["objects"], 2, "{invalid:#}");
    pinned(
        "deploy-invalid",
        &exited(2, run(&["deploy", "--yes", "-o", "json"])),
        &replace,
    );

    std::fs::remove_file(dir.path().join("capstan.yaml")).unwrap();
    let missing = exited(2, run(&["list", "-o", "json"]));
    pinned("list-no-project", &missing, &replace);
    assert!(
        text(&missing.stderr).starts_with("error: "),
        "people still read the failure on standard error: {}",
        text(&missing.stderr)
    );
}

/// Runs capstan in `dir` with no kubeconfig at all: these cases never reach a cluster.
fn offline(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn secrets_check_and_local_status_follow_the_contract() {
    let repo = common::Repo::new();
    std::fs::create_dir_all(repo.path("secrets")).unwrap();
    std::fs::write(repo.path("secrets/plain.yaml"), common::PLAINTEXT).unwrap();
    pinned(
        "secrets-check",
        &exited(2, repo.run(&["secrets", "check", "-o", "json", "."])),
        &[],
    );

    let state = tempfile::TempDir::new().unwrap();
    let dir = state.path().to_str().unwrap();
    let status = repo.run(&["local", "status", "--dir", dir, "-o", "json"]);
    pinned("local-status", &exited(2, status), &[(dir, "<dir>")]);
}

#[tokio::test]
async fn every_cluster_command_prints_one_json_object_of_the_documented_shape() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("json").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let replace = [(ns.as_str(), "<ns>")];
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);
    project(
        dir.path(),
        &ns,
        &(config_map(&ns, "one") + &config_map(&ns, "two")),
    );

    pinned(
        "deploy-not-confirmed",
        &exited(2, run(&["deploy", "-o", "json"])),
        &replace,
    );
    let deployed = pinned(
        "deploy",
        &exited(
            0,
            run(&["deploy", "--yes", "--no-stamp", "--wait", "-o", "json"]),
        ),
        &replace,
    );
    assert_eq!(deployed["summary"]["create"], 2, "{deployed:#}");
    pinned("diff", &exited(0, run(&["diff", "-o", "json"])), &replace);
    pinned("list", &exited(0, run(&["list", "-o", "json"])), &replace);
    pinned(
        "status",
        &exited(0, run(&["status", "-o", "json"])),
        &replace,
    );

    project(dir.path(), &ns, &config_map(&ns, "one"));
    pinned(
        "prune-dry-run",
        &exited(0, run(&["prune", "--dry-run", "-o", "json"])),
        &replace,
    );
    pinned(
        "prune",
        &exited(0, run(&["prune", "--yes", "-o", "json"])),
        &replace,
    );
    pinned(
        "delete",
        &exited(0, run(&["delete", "--yes", "-o", "json"])),
        &replace,
    );
    let missing = pinned(
        "status-missing",
        &exited(1, run(&["status", "-o", "json"])),
        &replace,
    );
    assert_eq!(missing["ready"], false);
}

/// `history`, `history show`, `history show --diff` and `rollback` (a deploy's report).
#[tokio::test]
async fn history_and_rollback_print_one_json_object_of_the_documented_shape() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("jhist").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let replace = [(ns.as_str(), "<ns>"), (version, "<version>")];
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);
    project(dir.path(), &ns, &config_map(&ns, "one"));
    let state = format!("stateNamespace: {ns}\n");
    let config = std::fs::read_to_string(dir.path().join("capstan.yaml")).unwrap();
    std::fs::write(dir.path().join("capstan.yaml"), state + &config).unwrap();
    exited(0, run(&["deploy", "--yes", "--no-stamp"]));
    project(
        dir.path(),
        &ns,
        &(config_map(&ns, "one") + &config_map(&ns, "two")),
    );
    let config = std::fs::read_to_string(dir.path().join("capstan.yaml")).unwrap();
    std::fs::write(
        dir.path().join("capstan.yaml"),
        format!("stateNamespace: {ns}\n{config}"),
    )
    .unwrap();
    exited(0, run(&["deploy", "--yes", "--no-stamp"]));
    pinned(
        "history",
        &exited(0, run(&["history", "-o", "json"])),
        &replace,
    );
    pinned(
        "history-show",
        &exited(0, run(&["history", "show", "2", "-o", "json"])),
        &replace,
    );
    pinned(
        "history-show-diff",
        &exited(
            1,
            run(&["history", "show", "2", "--diff", "1", "-o", "json"]),
        ),
        &replace,
    );
    pinned(
        "rollback",
        &exited(0, run(&["rollback", "--yes", "--no-stamp", "-o", "json"])),
        &replace,
    );
    pinned(
        "history-show-missing",
        &exited(2, run(&["history", "show", "9", "-o", "json"])),
        &replace,
    );
}

/// What a controller made from a stage's object (a Service's Endpoints) carries the
/// discriminator but goes with its owner: counted in one line unless `--show-kept`.
#[tokio::test]
async fn objects_owned_by_other_objects_are_counted_not_listed_unless_asked() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("kept").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);
    project(dir.path(), &ns, &config_map(&ns, "one"));
    exited(0, run(&["deploy", "--yes"]));
    let uid = plane
        .kubectl()
        .args([
            "-n",
            &ns,
            "get",
            "cm",
            "one",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .output()
        .unwrap();
    let child = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child\n  namespace: {ns}\n  \
         labels: {{capstan.io/discriminator: {ns}}}\n  ownerReferences:\n  - {{apiVersion: v1, \
         kind: ConfigMap, name: one, uid: {}}}\n",
        text(&uid.stdout)
    );
    let path = dir.path().join("child.yaml");
    std::fs::write(&path, child).unwrap();
    let created = plane
        .kubectl()
        .args(["create", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", text(&created.stderr));

    let listed_line = format!("= ConfigMap {ns}/child kept: owned by ConfigMap one");
    let count_line = "1 object kept: owned by another object; --show-kept lists it";
    for args in [
        &["deploy", "--dry-run", "--prune"][..],
        &["prune", "--dry-run"],
    ] {
        let quiet = text(&exited(0, run(args)).stdout).to_owned();
        assert!(
            quiet.contains(count_line) && !quiet.contains(&listed_line),
            "{quiet}"
        );
        let shown = exited(0, run(&[args, &["--show-kept"]].concat()));
        let shown = text(&shown.stdout);
        assert!(
            shown.contains(&listed_line) && !shown.contains(count_line),
            "{shown}"
        );
    }
    let json: Value =
        serde_json::from_slice(&exited(0, run(&["prune", "--dry-run", "-o", "json"])).stdout)
            .unwrap();
    assert_eq!(json["orphans"][0]["object"]["name"], "child", "{json:#}");
    assert_eq!(json["orphans"][0]["keep"]["reason"], "owned", "{json:#}");
    assert_eq!(json["summary"]["kept"], 1, "{json:#}");
}

/// `validate --server` counts what the server accepted, and a Namespace it rejects takes its
/// objects along: they were dry-run elsewhere, which proves nothing about their home.
#[tokio::test]
async fn validate_on_a_server_does_not_accept_objects_of_a_rejected_namespace() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("rejected").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let new = format!("{ns}-new");
    let namespace = format!(
        "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: {new}}}\n\
         spec: {{finalizers: [\"not a finalizer\"]}}\n"
    );
    project(
        dir.path(),
        &ns,
        &(namespace + &config_map(&new, "inside") + &config_map(&ns, "fine")),
    );
    let replace = [(ns.as_str(), "<ns>")];
    let json = pinned(
        "validate-server",
        &exited(
            2,
            on_plane(plane, dir.path(), &["validate", "--server", "-o", "json"]),
        ),
        &replace,
    );
    assert_eq!(json["server"]["accepted"], 1, "{json:#}");
    assert_eq!(json["objects"], 3, "{json:#}");

    let output = exited(2, on_plane(plane, dir.path(), &["validate", "--server"]));
    let report = text(&output.stdout);
    assert!(!report.contains("no problems"), "{report}");
    assert!(
        report.contains(&format!(
            "not accepted (its Namespace was rejected): ConfigMap {new}/inside\n"
        )) && report
            .contains(": 1 accepted, 0 not checkable, 1 in a rejected Namespace, 1 problems\n"),
        "{report}"
    );
}

#[tokio::test]
async fn a_node_drain_reports_each_node_in_items() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("drain").await.unwrap();
    let node = format!("{ns}-n");
    common::node_with_pod(plane, &ns, &node, "bare");
    let dir = tempfile::TempDir::new().unwrap();
    let args = [
        "node",
        "drain",
        &node,
        "--force",
        "--grace-period",
        "0",
        "-o",
        "json",
    ];
    let drained = pinned(
        "node-drain",
        &exited(0, on_plane(plane, dir.path(), &args)),
        // The eviction's version is the server's: policy/v1beta1 before 1.22.
        &[
            (ns.as_str(), "<ns>"),
            ("policy/v1beta1", "<eviction>"),
            ("policy/v1", "<eviction>"),
        ],
    );
    assert_eq!(drained["items"][0]["outcome"], "drained", "{drained:#}");
}

/// `drift -o json`: in sync, then with a field changed by hand.
#[tokio::test]
async fn drift_reports_each_object_and_field_in_items() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("json-drift").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let replace = [(ns.as_str(), "<ns>")];
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);
    project(dir.path(), &ns, &config_map(&ns, "one"));
    exited(0, run(&["deploy", "--yes", "--no-stamp"]));
    pinned("drift", &exited(0, run(&["drift", "-o", "json"])), &replace);
    // managedFields have one-second timestamps: the edit must come later than capstan's write.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let patched = plane
        .kubectl()
        .args([
            "-n",
            &ns,
            "patch",
            "cm",
            "one",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"k":"w"}}"#,
        ])
        .output()
        .unwrap();
    assert!(patched.status.success(), "{}", text(&patched.stderr));
    pinned(
        "drift-drifted",
        &exited(1, run(&["drift", "-o", "json"])),
        &replace,
    );
}

#[tokio::test]
async fn a_fleet_run_reports_one_entry_per_target_and_its_groups_of_plans() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("fleet").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let replace = [(ns.as_str(), "<ns>")];
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);
    project(dir.path(), &ns, &config_map(&ns, "one"));
    let targets = format!(
        "targets:\n  one: {{context: capstan-testenv, kubeconfig: {}, labels: {{env: test}}}}\n",
        plane.kubeconfig().display()
    );
    let file = dir.path().join("capstan.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, targets + &text).unwrap();

    pinned(
        "fleet-deploy",
        &exited(
            0,
            run(&[
                "deploy",
                "--all-targets",
                "--yes",
                "--no-stamp",
                "-o",
                "json",
            ]),
        ),
        &replace,
    );
    pinned(
        "fleet-diff",
        &exited(0, run(&["diff", "--targets", "env=test", "-o", "json"])),
        &replace,
    );
    pinned(
        "fleet-unknown-target",
        &exited(2, run(&["status", "--target", "two", "-o", "json"])),
        &[
            (ns.as_str(), "<ns>"),
            (dir.path().to_str().unwrap(), "<dir>"),
        ],
    );
}
