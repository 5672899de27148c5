//! The safety rules end to end through the `capstan` binary against the test control plane:
//! what a person sees of kept objects, adoption, selections, the stage lock and terminal
//! control characters.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use capstan_testenv::ControlPlane;
use common::{on_plane as capstan, text};

fn kubectl(plane: &ControlPlane, args: &[&str]) -> Output {
    plane.kubectl().args(args).output().unwrap()
}

/// A project with stage `app` holding `objects`, named after the test's namespace so that no
/// two tests share a discriminator.
fn project(dir: &Path, name: &str, objects: &str, extra: &str) {
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: {name}\nstages:\n  app:\n    manifests: app.yaml\n{extra}"),
    )
    .unwrap();
    std::fs::write(dir.join("app.yaml"), objects).unwrap();
}

fn config_map(ns: &str, name: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: v}}\n"
    )
}

#[tokio::test]
async fn a_hand_made_object_stops_the_deploy_until_it_is_adopted() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("cli-adopt").await.unwrap();
    assert!(
        kubectl(
            plane,
            &["-n", &ns, "create", "cm", "mine", "--from-literal=k=v"]
        )
        .status
        .success()
    );
    let dir = tempfile::TempDir::new().unwrap();
    project(
        dir.path(),
        "adopt",
        &(config_map(&ns, "mine") + &config_map(&ns, "new")),
        "",
    );

    let refused = capstan(plane, dir.path(), &["deploy", "--yes"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    let out = text(&refused.stdout);
    assert!(
        out.contains(&format!(
            "! ConfigMap {ns}/mine: exists but was never applied by capstan (managed by kubectl-create)"
        )) && out.contains("hint: take such objects over with --adopt"),
        "{out}"
    );
    assert!(
        !kubectl(plane, &["-n", &ns, "get", "cm", "new"])
            .status
            .success()
    );

    let preview = capstan(
        plane,
        dir.path(),
        &["deploy", "--dry-run", "--adopt", "-o", "json"],
    );
    let json: serde_json::Value = serde_json::from_slice(&preview.stdout).unwrap();
    assert_eq!(json["summary"]["adopt"], 1, "{json}");
    let mine = &json["items"][0];
    assert_eq!(
        (&mine["object"]["name"], &mine["action"], &mine["managers"]),
        (
            &serde_json::json!("mine"),
            &serde_json::json!("adopt"),
            &serde_json::json!(["kubectl-create"])
        ),
        "{json}"
    );

    let adopted = capstan(plane, dir.path(), &["deploy", "--yes", "--adopt"]);
    assert_eq!(adopted.status.code(), Some(0), "{}", text(&adopted.stdout));
    assert!(
        text(&adopted.stdout).contains("1 created, 0 updated, 1 adopted, 0 unchanged"),
        "{}",
        text(&adopted.stdout)
    );
}

#[tokio::test]
async fn a_selection_deploys_and_prunes_only_what_it_matches() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("cli-select").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let secret = format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: later, namespace: {ns}}}\nstringData: {{k: v}}\n"
    );
    project(
        dir.path(),
        "select",
        &(config_map(&ns, "a") + &config_map(&ns, "b") + &secret),
        "    prune: true\n",
    );
    let done = capstan(
        plane,
        dir.path(),
        &["deploy", "--yes", "--exclude", "kind=Secret"],
    );
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stdout));
    assert!(
        !kubectl(plane, &["-n", &ns, "get", "secret", "later"])
            .status
            .success()
    );
    assert!(
        kubectl(plane, &["-n", &ns, "get", "cm", "b"])
            .status
            .success()
    );

    // `b` leaves the stage; a deploy of the Secret alone must not prune it, one of ConfigMaps
    // does.
    project(
        dir.path(),
        "select",
        &(config_map(&ns, "a") + &secret),
        "    prune: true\n",
    );
    let secret_only = capstan(
        plane,
        dir.path(),
        &["deploy", "--yes", "--include", "kind=Secret"],
    );
    assert_eq!(
        secret_only.status.code(),
        Some(0),
        "{}",
        text(&secret_only.stdout)
    );
    let out = text(&secret_only.stdout);
    assert!(out.contains("0 pruned"), "{out}");
    assert!(
        kubectl(plane, &["-n", &ns, "get", "cm", "b"])
            .status
            .success()
    );
    let preview = capstan(
        plane,
        dir.path(),
        &["prune", "--dry-run", "--include", "kind=ConfigMap"],
    );
    let out = text(&preview.stdout);
    assert!(
        out.starts_with("Selection: include kind=ConfigMap")
            || out.contains(&format!("- v1/ConfigMap {ns}/b prune")),
        "{out}"
    );
    let pruned = capstan(
        plane,
        dir.path(),
        &[
            "prune",
            "--yes",
            "--include",
            "kind=ConfigMap",
            "-o",
            "json",
        ],
    );
    assert_eq!(pruned.status.code(), Some(0), "{}", text(&pruned.stdout));
    let json: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!(
        json["pruned"],
        serde_json::json!([{
            "object": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": ns, "name": "b"},
            "deleted": true,
            "result": "deleted",
            "error": null,
        }])
    );
    assert!(
        !kubectl(plane, &["-n", &ns, "get", "cm", "b"])
            .status
            .success()
    );
}

#[tokio::test]
async fn a_namespace_that_holds_other_objects_is_shown_kept_before_anything_happens() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = format!("cli-keepns-{}", std::process::id());
    let rest = plane.create_namespace("cli-keepns-rest").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let namespace = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n");
    project(
        dir.path(),
        "keepns",
        &(namespace + &config_map(&rest, "stays")),
        "",
    );
    let done = capstan(plane, dir.path(), &["deploy", "--yes"]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stdout));
    assert!(
        kubectl(plane, &["-n", &ns, "create", "cm", "by-hand"])
            .status
            .success()
    );

    project(dir.path(), "keepns", &config_map(&rest, "stays"), "");
    let preview = capstan(plane, dir.path(), &["deploy", "--dry-run", "--prune"]);
    let out = text(&preview.stdout);
    assert!(
        out.contains(&format!(
            "= Namespace {ns} kept: deleting it would delete what it holds: ConfigMap {ns}/by-hand \
             (--force-cascade-delete deletes them)"
        )),
        "{out}"
    );
    let pruned = capstan(plane, dir.path(), &["prune", "--yes", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&pruned.stdout).unwrap();
    assert_eq!(
        json["orphans"][0]["keep"]["reason"], "namespace-not-empty",
        "{json}"
    );
    assert!(kubectl(plane, &["get", "namespace", &ns]).status.success());
}

#[test]
fn control_characters_in_names_never_reach_the_terminal_raw() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("evil.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: \"Config\\e[2JMap\"\nmetadata: {name: \"a\\ab\"}\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["validate", "-f", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    for stream in [&output.stdout, &output.stderr] {
        assert!(
            !stream.iter().any(|b| *b == 0x1b || *b == 0x07),
            "{}",
            String::from_utf8_lossy(stream)
        );
    }
    assert!(
        text(&output.stderr).contains("\\u{1b}"),
        "{}",
        text(&output.stderr)
    );
}

#[tokio::test]
async fn a_second_run_of_a_stage_waits_for_the_lock_or_fails_at_once_naming_the_holder() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("cli-lock").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("capstan.yaml"),
        format!("name: lockd\nstateNamespace: {ns}\nstages:\n  app:\n    manifests: app.yaml\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("app.yaml"), config_map(&ns, "locked")).unwrap();

    let label =
        capstan_manifest::Label::new(capstan_manifest::Label::DEFAULT_KEY, "lockd.app").unwrap();
    let mut request = capstan_apply::LockRequest::new(&ns, &label, "lockd/app");
    request.holder = "another-laptop pid 1".to_owned();
    let client = plane.client(capstan_testenv::User::Admin).unwrap();
    let held = capstan_apply::StageLock::acquire(client, request, &|_| {})
        .await
        .unwrap();

    let refused = capstan(plane, dir.path(), &["deploy", "--yes", "--no-wait-lock"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("another run holds the stage lock")
            && stderr.contains("another-laptop pid 1"),
        "{stderr}"
    );
    assert!(
        !kubectl(plane, &["-n", &ns, "get", "cm", "locked"])
            .status
            .success()
    );

    let waiting = {
        let dir = dir.path().to_owned();
        let kubeconfig = plane.kubeconfig().to_owned();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_capstan"))
                .args(["deploy", "--yes", "--timeout", "60s"])
                .current_dir(dir)
                .env("KUBECONFIG", kubeconfig)
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    held.release().await.unwrap();
    let done = waiting.join().unwrap();
    assert_eq!(
        done.status.code(),
        Some(0),
        "{}{}",
        text(&done.stdout),
        text(&done.stderr)
    );
    assert!(
        text(&done.stderr)
            .contains("waiting for the stage lock: `another-laptop pid 1` for `lockd/app`"),
        "{}",
        text(&done.stderr)
    );
    assert!(
        kubectl(plane, &["-n", &ns, "get", "cm", "locked"])
            .status
            .success()
    );
}
