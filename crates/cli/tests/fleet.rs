//! Fleets end to end: one stage on three real control planes at once, in waves, with one
//! table, one JSON summary and one exit code. The planes start together and serve every case
//! of the one test, which runs the cases in order (two cores run three API servers).

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use capstan_apply::{LockRequest, StageLock};
use capstan_manifest::Label;
use capstan_testenv::{ControlPlane, Options, User};
use common::text;
use serde_json::Value;

/// A project `e2e` with stage `app` (rendered by a command that counts its runs in
/// `renders.log`) on targets `a`, `b` and `c`, one per plane; `b` has its own discriminator.
fn project(dir: &Path, planes: &[ControlPlane]) {
    let mut yaml = String::from("name: e2e\ntargets:\n");
    for ((name, env), plane) in [("a", "prod"), ("b", "prod"), ("c", "dev")]
        .iter()
        .zip(planes)
    {
        let extra = if *name == "b" {
            ", discriminator: fleet-b"
        } else {
            ""
        };
        yaml.push_str(&format!(
            "  {name}: {{context: capstan-testenv, kubeconfig: {}, labels: {{env: {env}}}{extra}}}\n",
            plane.kubeconfig().display()
        ));
    }
    yaml.push_str(
        "stages:\n  app:\n    command: [sh, -c, 'echo run >> renders.log; cat app.yaml']\n    prune: true\n\
         \x20 prod:\n    manifests: app.yaml\n    targets: {env: prod}\n",
    );
    std::fs::write(dir.join("capstan.yaml"), yaml).unwrap();
    objects(dir, "v1");
}

fn objects(dir: &Path, value: &str) {
    let objects = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: fleet}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: one, namespace: fleet}}\ndata: {{k: {value}}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: two, namespace: fleet}}\ndata: {{k: v}}\n"
    );
    std::fs::write(dir.join("app.yaml"), objects).unwrap();
}

fn capstan(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("no-kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The JSON summary of a run that exited with `code`.
fn summary(code: i32, output: Output) -> Value {
    let output = common::exited(code, output);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    })
}

fn target<'v>(summary: &'v Value, name: &str) -> &'v Value {
    summary["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["target"] == name)
        .unwrap_or_else(|| panic!("no target {name} in {summary}"))
}

fn phases(summary: &Value) -> Vec<(String, String)> {
    summary["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap().to_owned(),
                t["phase"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let output = plane.kubectl().args(args).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

/// A field of ConfigMap `fleet/one` on `plane`, by JSONPath.
fn one(plane: &ControlPlane, path: &str) -> String {
    let path = format!("jsonpath={path}");
    kubectl(
        plane,
        &["get", "configmap", "one", "-n", "fleet", "-o", &path],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_goes_to_three_clusters_in_waves_with_one_summary() {
    let (a, b, c) = tokio::join!(
        ControlPlane::start(Options::default()),
        ControlPlane::start(Options::default()),
        ControlPlane::start(Options::default()),
    );
    let planes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let dir = tempfile::TempDir::new().unwrap();
    let root = dir.path();
    project(root, &planes);
    // Deploy to all three: one JSON entry per target, each created everything; the stage
    // rendered twice (b's discriminator differs), not three times.
    let deployed = summary(
        0,
        fleet(root, &["deploy", "--all-targets", "--yes", "-o", "json"]),
    );
    assert_eq!(
        phases(&deployed),
        pairs(&[("a", "deployed"), ("b", "deployed"), ("c", "deployed")])
    );
    for name in ["a", "b", "c"] {
        assert_eq!(target(&deployed, name)["done"]["create"], 3, "{deployed}");
    }
    assert_eq!(
        std::fs::read_to_string(root.join("renders.log")).unwrap(),
        "run\nrun\n"
    );
    // The JSON summary's shape.
    let keys =
        |value: &Value| -> Vec<String> { value.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(&deployed),
        [
            "stage",
            "dryRun",
            "succeeded",
            "targets",
            "groups",
            "notAttempted",
            "requests"
        ]
    );
    assert_eq!(
        keys(target(&deployed, "a")),
        [
            "target",
            "context",
            "wave",
            "phase",
            "plan",
            "done",
            "health",
            "group",
            "durationMs",
            "error",
            "requests"
        ]
    );
    assert_eq!(deployed["succeeded"], true);
    assert_eq!(target(&deployed, "a")["wave"], 1);

    // The per-target discriminator: b's objects carry its own, a's and c's the stage's.
    let label = |plane: &ControlPlane| one(plane, "{.metadata.labels}");
    assert!(label(&planes[0]).contains(r#""capstan.io/discriminator":"e2e.app""#));
    assert!(label(&planes[1]).contains(r#""capstan.io/discriminator":"fleet-b""#));
    assert!(label(&planes[2]).contains(r#""capstan.io/discriminator":"e2e.app""#));

    // A label selection: only the prod targets, and nothing to do there.
    let prod = summary(
        0,
        fleet(root, &["diff", "--targets", "env=prod", "-o", "json"]),
    );
    assert_eq!(
        phases(&prod),
        pairs(&[("a", "unchanged"), ("b", "unchanged")])
    );

    // A diff that differs on one target: the same (empty) plan on a and b, another on c.
    kubectl(&planes[2], &["delete", "configmap", "two", "-n", "fleet"]);
    let differs = fleet(root, &["diff", "--all-targets"]);
    let shown = text(&common::exited(1, differs).stdout);
    assert!(shown.contains("Same plan on 2 targets: a, b"), "{shown}");
    assert!(
        shown.contains(
            "Plan for target c (different from the others):\n+ ConfigMap fleet/two create"
        ),
        "{shown}"
    );
    let differs = summary(1, fleet(root, &["diff", "--all-targets", "-o", "json"]));
    let groups = differs["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{differs}");
    assert_eq!(groups[0]["targets"], serde_json::json!(["a", "b"]));
    assert_eq!(groups[0]["changes"], false);
    assert_eq!(groups[1]["targets"], serde_json::json!(["c"]));
    assert_eq!(groups[1]["changes"], true);
    assert_eq!(target(&differs, "c")["group"], 1);
    assert_eq!(target(&differs, "c")["phase"], "planned");

    // Status on every target: c misses the ConfigMap deleted by hand.
    let status = summary(1, fleet(root, &["status", "--all-targets", "-o", "json"]));
    assert_eq!(
        phases(&status),
        pairs(&[("a", "ready"), ("b", "ready"), ("c", "not-ready")])
    );
    assert_eq!(target(&status, "c")["health"]["notReady"], 1, "{status}");

    // Drift on every target: c misses that ConfigMap, a and b are in sync.
    let drift = summary(1, fleet(root, &["drift", "--all-targets", "-o", "json"]));
    assert_eq!(
        phases(&drift),
        pairs(&[("a", "in-sync"), ("b", "in-sync"), ("c", "drifted")])
    );
    let shown = text(&common::exited(1, fleet(root, &["drift", "--all-targets"])).stdout);
    assert!(
        shown.contains("target c:\nConfigMap fleet/two: missing"),
        "{shown}"
    );

    // The lock is per target: another run holding a's lock fails a alone.
    let lock = StageLock::acquire(
        planes[0].client(User::Admin).unwrap(),
        LockRequest::new(
            "capstan-system",
            &Label::new("capstan.io/discriminator", "e2e.app").unwrap(),
            "someone/else",
        ),
        &|_| {},
    )
    .await
    .unwrap();
    objects(root, "v2");
    let locked = summary(
        2,
        fleet(
            root,
            &[
                "deploy",
                "--all-targets",
                "--yes",
                "--no-wait-lock",
                "--wait",
                "-o",
                "json",
            ],
        ),
    );
    assert_eq!(
        phases(&locked),
        pairs(&[("a", "failed"), ("b", "deployed"), ("c", "deployed")])
    );
    let error = target(&locked, "a")["error"].as_str().unwrap();
    assert!(error.contains("someone/else"), "{error}");
    assert_eq!(target(&locked, "b")["health"]["notReady"], 0, "{locked}");

    // A dry run takes no lock and writes nothing: a's plan differs, b and c have nothing to do.
    let dry = summary(
        0,
        fleet(
            root,
            &["deploy", "--all-targets", "--dry-run", "-o", "json"],
        ),
    );
    assert_eq!(dry["dryRun"], true);
    assert_eq!(
        phases(&dry),
        pairs(&[("a", "planned"), ("b", "unchanged"), ("c", "unchanged")])
    );
    assert_eq!(dry["groups"][0]["targets"], serde_json::json!(["a"]));
    assert_eq!(target(&dry, "a")["plan"]["update"], 1, "{dry}");
    assert_eq!(one(&planes[0], "{.data.k}"), "v1");
    lock.release().await.unwrap();

    // One API server stopped: the others deploy, the summary names it, exit 2.
    planes[2].stop_api_server().await.unwrap();
    objects(root, "v3");
    let down = summary(
        2,
        fleet(
            root,
            &[
                "deploy",
                "--all-targets",
                "--yes",
                "--target-timeout",
                "20s",
                "-o",
                "json",
            ],
        ),
    );
    assert_eq!(
        phases(&down),
        pairs(&[("a", "deployed"), ("b", "deployed"), ("c", "failed")])
    );
    assert!(target(&down, "c")["error"].is_string(), "{down}");
    assert_eq!(down["succeeded"], false);

    // Waves stop after a failure: c first, alone, fails; a and b are never attempted.
    objects(root, "v4");
    let in_waves = ["deploy", "--target", "c,a,b", "--waves", "1,rest", "--yes"];
    let json = [&in_waves[..], &["--target-timeout", "20s", "-o", "json"]].concat();
    let waves = summary(2, fleet(root, &json));
    assert_eq!(
        phases(&waves),
        pairs(&[
            ("c", "failed"),
            ("a", "not-attempted"),
            ("b", "not-attempted")
        ])
    );
    assert_eq!(waves["notAttempted"], serde_json::json!(["a", "b"]));
    assert_eq!(target(&waves, "a")["wave"], 2);
    assert_eq!(
        one(&planes[0], "{.data.k}"),
        "v3",
        "a target not attempted is not written"
    );
    let text_run = [&in_waves[..], &["--target-timeout", "5s"]].concat();
    let table = text(&common::exited(2, fleet(root, &text_run)).stdout);
    assert!(
        table.contains("3 targets: 1 failed, 2 not attempted (a, b)"),
        "{table}"
    );

    // A stage that lists its targets goes to them without flags, and only to them. It was
    // never deployed, so a has nothing labelled e2e.prod; on b, every stage has b's
    // discriminator, and app's objects are there under it.
    let prod = summary(1, on_stage(root, "prod", &["status", "-o", "json"]));
    assert_eq!(phases(&prod), pairs(&[("a", "not-ready"), ("b", "ready")]));
    let outside = common::fails(on_stage(root, "prod", &["status", "--target", "c"]));
    assert!(
        text(&outside.stderr).contains("stage prod does not go to target c (its targets: a, b)"),
        "{}",
        text(&outside.stderr)
    );
    let context = common::fails(on_stage(root, "prod", &["status", "--context", "x"]));
    assert!(
        text(&context.stderr).contains("choose among them with --target instead of --context"),
        "{}",
        text(&context.stderr)
    );
}

/// capstan on one stage of the project.
fn on_stage(root: &Path, stage: &str, args: &[&str]) -> Output {
    let project = root.to_str().unwrap();
    let mut all = vec![args[0], "--project", project, "--stage", stage];
    all.extend_from_slice(&args[1..]);
    capstan(root, &all)
}

/// capstan on the project's stage `app`.
fn fleet(root: &Path, args: &[&str]) -> Output {
    let project = root.to_str().unwrap();
    let mut all = vec![args[0], "--project", project, "--stage", "app"];
    all.extend_from_slice(&args[1..]);
    capstan(root, &all)
}
