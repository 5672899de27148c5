//! `capstan drift` end to end: attribution, ignore rules, `--heal`, and `--watch` across an
//! apiserver restart.

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use capstan_testenv::ControlPlane;
use serde_json::Value;

fn capstan(plane: &ControlPlane, args: &[&str]) -> Output {
    common::on_plane(plane, Path::new("."), args)
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let output = plane.kubectl().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A project with one stage `app`: a Deployment and a ConfigMap in `ns`.
fn project(dir: &Path, ns: &str, extra: &str) {
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: drift\nstages:\n  app:\n    manifests: app.yaml\n{extra}"),
    )
    .unwrap();
    let objects = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    \
         metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx:1.25}}]}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings, namespace: {ns}}}\ndata: {{mode: fast}}\n"
    );
    std::fs::write(dir.join("app.yaml"), objects).unwrap();
}

fn deployed(plane: &ControlPlane, dir: &Path, ns: &str) {
    project(dir, ns, "");
    let root = dir.to_str().unwrap();
    let out = capstan(
        plane,
        &["deploy", "--project", root, "--stage", "app", "--yes"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // managedFields have one-second timestamps: edits must come later than capstan's write.
    std::thread::sleep(Duration::from_millis(1100));
}

fn drift_json(plane: &ControlPlane, dir: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let root = dir.to_str().unwrap();
    let mut args = vec!["drift", "--project", root, "--stage", "app", "-o", "json"];
    args.extend(extra);
    let out = capstan(plane, &args);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code(), json)
}

/// `(object name, pointer, kind, manager)` of every drifted field.
fn fields(report: &Value) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for item in report["items"].as_array().unwrap() {
        for field in item["fields"].as_array().unwrap() {
            out.push((
                item["object"]["name"].as_str().unwrap().to_owned(),
                field["pointer"].as_str().unwrap().to_owned(),
                field["kind"].as_str().unwrap().to_owned(),
                field["manager"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn drift_names_the_manager_and_field_and_an_ignore_rule_silences_exactly_its_field() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("drift").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    deployed(plane, dir.path(), &ns);
    let (code, report) = drift_json(plane, dir.path(), &[]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["inSync"], true);

    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "deploy",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
    );
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "settings",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ],
    );
    kubectl(
        plane,
        &["-n", &ns, "annotate", "deploy", "web", "note=by-hand"],
    );
    let (code, report) = drift_json(plane, dir.path(), &[]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        fields(&report),
        [
            (
                "settings".into(),
                "/data/mode".into(),
                "changed".into(),
                "kubectl-patch".into()
            ),
            (
                "web".into(),
                "/spec/replicas".into(),
                "changed".into(),
                "kubectl-patch".into()
            ),
            (
                "web".into(),
                "/metadata/annotations/note".into(),
                "added".into(),
                "kubectl-annotate".into()
            ),
        ],
        "{report:#}"
    );
    let replicas = &report["items"][1]["fields"][0];
    assert_eq!(replicas["live"], 3);
    assert_eq!(replicas["planned"], 1);
    assert_eq!(replicas["operation"], "Update");
    assert!(replicas["time"].is_string());
    assert_eq!(replicas["rule"]["jsonPointers"][0], "/spec/replicas");

    project(
        dir.path(),
        &ns,
        "    ignoreDifferences:\n      - {kind: Deployment, jsonPointers: [/spec/replicas]}\n",
    );
    let (code, report) = drift_json(plane, dir.path(), &[]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(
        fields(&report),
        [
            (
                "settings".into(),
                "/data/mode".into(),
                "changed".into(),
                "kubectl-patch".into()
            ),
            (
                "web".into(),
                "/metadata/annotations/note".into(),
                "added".into(),
                "kubectl-annotate".into()
            ),
        ],
        "the rule silences the replicas and nothing else: {report:#}"
    );
}

#[tokio::test]
async fn heal_restores_the_drifted_field_and_nothing_else() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("heal").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    deployed(plane, dir.path(), &ns);
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "settings",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ],
    );
    kubectl(
        plane,
        &["-n", &ns, "annotate", "cm", "settings", "note=by-hand"],
    );
    // managedFields times have whole seconds, and a field another manager added in the second
    // of capstan's last apply counts as added after it: the heal's apply must come a second
    // later for the annotation to count as one the heal saw and left.
    std::thread::sleep(Duration::from_millis(1100));
    let deploy_version = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.metadata.resourceVersion}",
        ],
    );
    let (code, _) = drift_json(plane, dir.path(), &["--heal", "--force-conflicts"]);
    assert_eq!(code, Some(1), "the report is of the drift found");
    assert_eq!(
        kubectl(
            plane,
            &[
                "-n",
                &ns,
                "get",
                "cm",
                "settings",
                "-o",
                "jsonpath={.data.mode}"
            ]
        ),
        "fast"
    );
    assert_eq!(
        kubectl(
            plane,
            &[
                "-n",
                &ns,
                "get",
                "cm",
                "settings",
                "-o",
                "jsonpath={.metadata.annotations.note}"
            ]
        ),
        "by-hand",
        "a field capstan never applied stays"
    );
    assert_eq!(
        kubectl(
            plane,
            &[
                "-n",
                &ns,
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.metadata.resourceVersion}"
            ]
        ),
        deploy_version,
        "an object in sync is not written"
    );
    let (code, report) = drift_json(plane, dir.path(), &[]);
    assert_eq!(code, Some(0), "{report:#}");
}

/// What `--metrics` serves at `addr`.
fn scrape(addr: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    response
}

/// Lines of a running `drift --watch -o json`, parsed, as they come.
fn lines(child: &mut std::process::Child) -> mpsc::Receiver<Value> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(value) = serde_json::from_str(&line) {
                let _ = send.send(value);
            }
        }
    });
    receive
}

/// Waits up to 30 seconds for a line that `wanted` accepts.
fn until(lines: &mpsc::Receiver<Value>, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return line,
            Ok(_) => {}
            Err(_) => panic!("no such line from drift --watch within 30 s"),
        }
    }
}

fn reports_drift_of(line: &Value, name: &str) -> bool {
    line["event"] == "checked"
        && line["items"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|i| i["object"]["name"] == name && i["state"] == "drifted")
        })
}

#[tokio::test]
async fn watch_reports_a_change_as_it_happens_survives_an_apiserver_restart_and_stops_on_sigterm() {
    // A plane of its own: the outage must not reach the other tests.
    let plane = ControlPlane::start(capstan_testenv::Options::default())
        .await
        .unwrap();
    let ns = plane.create_namespace("watch").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    deployed(&plane, dir.path(), &ns);
    let root = dir.path().to_str().unwrap();
    let metrics = format!("127.0.0.1:{}", 20_000 + std::process::id() % 20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args([
            "drift",
            "--project",
            root,
            "--stage",
            "app",
            "--watch",
            "--metrics",
            &metrics,
            "-o",
            "json",
        ])
        .env("KUBECONFIG", plane.kubeconfig())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines(&mut child);
    let first = until(&lines, |l| l["event"] == "checked");
    assert_eq!(first["full"], true);
    assert_eq!(first["inSync"], true, "{first:#}");
    until(&lines, |l| l["event"] == "watching");
    let scraped = scrape(&metrics);
    assert!(
        scraped.contains("\ncapstan_drift_objects 2\n")
            && scraped.contains("\ncapstan_drift_drifted 0\n"),
        "{scraped}"
    );

    kubectl(
        &plane,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "settings",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"mode":"slow"}}"#,
        ],
    );
    let seen = until(&lines, |l| reports_drift_of(l, "settings"));
    assert_eq!(seen["full"], false, "a re-check of the changed object only");

    plane.stop_api_server().await.unwrap();
    until(&lines, |l| l["event"] == "lost");
    plane.start_api_server().await.unwrap();
    until(&lines, |l| l["event"] == "watching");
    kubectl(
        &plane,
        &[
            "-n",
            &ns,
            "patch",
            "deploy",
            "web",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":2}}"#,
        ],
    );
    until(&lines, |l| reports_drift_of(l, "web"));

    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
