//! `capstan deploy`, `diff`, `list`, `status`, `prune` and `delete` end to end against the
//! test control plane, with their exit codes.

mod common;

use std::path::Path;
use std::process::Output;

use capstan_testenv::ControlPlane;

/// Runs capstan with the plane's kubeconfig and no terminal on standard input.
fn capstan(plane: &ControlPlane, args: &[&str]) -> Output {
    common::on_plane(plane, Path::new("."), args)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A project with one stage `app` of two ConfigMaps and a Secret in `namespace`.
fn project(dir: &Path, namespace: &str, extra: &str) {
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: e2e\nstages:\n  app:\n    manifests: app.yaml\n{extra}"),
    )
    .unwrap();
    let objects = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: one, namespace: {namespace}}}\ndata: {{k: v}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: two, namespace: {namespace}}}\ndata: {{k: v}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {namespace}}}\nstringData: {{token: t0p-s3cret}}\n"
    );
    std::fs::write(dir.join("app.yaml"), objects).unwrap();
}

#[tokio::test]
async fn deploy_diff_list_status_prune_and_delete_with_their_exit_codes() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("cli").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    project(dir.path(), &ns, "");
    let root = dir.path().to_str().unwrap();
    let stage = ["--project", root, "--stage", "app"];
    let with = |command: &str, extra: &[&str]| -> Vec<String> {
        [command]
            .iter()
            .chain(&stage)
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let run =
        |args: Vec<String>| capstan(plane, &args.iter().map(String::as_str).collect::<Vec<_>>());

    let diff = run(with("diff", &[]));
    assert_eq!(
        diff.status.code(),
        Some(1),
        "differences: {}",
        text(&diff.stderr)
    );
    assert!(
        !text(&diff.stdout).contains("t0p-s3cret"),
        "{}",
        text(&diff.stdout)
    );

    let refused = run(with("deploy", &[]));
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("pass --yes"),
        "{}",
        text(&refused.stderr)
    );

    let deployed = run(with("deploy", &["--yes", "-o", "json"]));
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}",
        text(&deployed.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&deployed.stdout).unwrap();
    assert_eq!(report["summary"]["create"], 3);
    assert!(!text(&deployed.stdout).contains("t0p-s3cret"));

    assert_eq!(
        run(with("diff", &[])).status.code(),
        Some(0),
        "nothing left to change"
    );
    let list = run(with("list", &["-o", "json"]));
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(listed["items"].as_array().unwrap().len(), 3);
    let status = run(with("status", &[]));
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));

    // Drop `two` from the stage: prune deletes it.
    let all = std::fs::read_to_string(dir.path().join("app.yaml")).unwrap();
    let objects: Vec<&str> = all.split("---\n").collect();
    std::fs::write(
        dir.path().join("app.yaml"),
        [objects[0], objects[2]].join("---\n"),
    )
    .unwrap();
    let preview = run(with("prune", &["--dry-run"]));
    assert_eq!(preview.status.code(), Some(0), "{}", text(&preview.stderr));
    assert!(
        text(&preview.stdout).contains(&format!("- ConfigMap {ns}/two prune")),
        "{}",
        text(&preview.stdout)
    );
    let dry = run(with("deploy", &["--dry-run", "--prune"]));
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert!(
        text(&dry.stdout).contains("0 to create, 0 to update, 2 unchanged, 1 to prune"),
        "{}",
        text(&dry.stdout)
    );
    let pruned = run(with("prune", &["--yes"]));
    assert_eq!(
        pruned.status.code(),
        Some(0),
        "{}{}",
        text(&pruned.stdout),
        text(&pruned.stderr)
    );
    assert!(
        text(&pruned.stdout).contains(&format!("- ConfigMap {ns}/two deleted")),
        "{}",
        text(&pruned.stdout)
    );

    let deleted = run(with("delete", &["--yes"]));
    assert_eq!(deleted.status.code(), Some(0), "{}", text(&deleted.stderr));
    assert_eq!(
        run(with("status", &[])).status.code(),
        Some(1),
        "everything is missing now"
    );
}

#[tokio::test]
async fn a_stage_for_another_context_is_refused_unless_the_context_is_explicit() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("context").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    project(dir.path(), &ns, "    context: production\n");
    let root = dir.path().to_str().unwrap();
    let refused = capstan(plane, &["deploy", "--project", root, "--yes"]);
    assert_eq!(refused.status.code(), Some(2));
    let message = text(&refused.stderr);
    assert!(
        message.contains("\"production\"") && message.contains("--context"),
        "{message}"
    );
    assert!(
        !plane
            .kubectl()
            .args(["get", "cm", "-n", &ns, "one"])
            .output()
            .unwrap()
            .status
            .success()
    );
}
