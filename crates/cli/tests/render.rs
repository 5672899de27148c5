//! `capstan render` and `capstan validate` end to end: the binary, its output and exit codes,
//! and the rendered example accepted by a real API server.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capstan_testenv::ControlPlane;

fn capstan(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .unwrap()
}

fn capstan_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo")
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn validate_summarises_a_valid_stage_and_exits_zero() {
    let output = capstan(&[
        "validate",
        "--project",
        example().to_str().unwrap(),
        "--stage",
        "full",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with(
            "stage full: 14 objects in 6 waves, labelled capstan.io/discriminator=demo.full, no problems\n"
        ),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn validate_reports_every_problem_on_a_line_of_its_own_and_exits_two() {
    let stdin = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}\n---\nkind: Secret\nmetadata: {name: s}\n";
    let output = capstan_with_stdin(&["validate", "-f", "-"], stdin);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        text(&output.stderr).lines().collect::<Vec<_>>(),
        [
            "<stdin>:1 (document 1): ConfigMap Bad_Name: metadata.name \"Bad_Name\" is not a valid name: a lowercase RFC 1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit",
            "<stdin>:5 (document 2): apiVersion is missing",
            "error: 2 problems found",
        ]
    );
    let json = capstan_with_stdin(&["validate", "-f", "-", "-o", "json"], stdin);
    assert_eq!(json.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["problems"][1]["line"], 5);
    assert_eq!(report["problems"][1]["kind"], "not-an-object");
}

#[test]
fn the_project_is_found_from_a_subfolder_and_a_stage_must_be_chosen() {
    let output = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["render", "-o", "names"])
        .current_dir(example().join("apps"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).ends_with("capstan.yaml: choose a stage with --stage (capi, full)\n"),
        "{}",
        text(&output.stderr)
    );
    let output = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["render", "-o", "names", "--stage", "capi"])
        .current_dir(example().join("apps"))
        .output()
        .unwrap();
    assert_eq!(
        text(&output.stdout),
        "apiextensions.k8s.io/CustomResourceDefinition clusters.cluster.x-k8s.io\n\
         apiextensions.k8s.io/CustomResourceDefinition machinedeployments.cluster.x-k8s.io\n\
         Namespace demo-cluster\n\
         cluster.x-k8s.io/Cluster demo-cluster/demo\n\
         cluster.x-k8s.io/MachineDeployment demo-cluster/demo-workers\n"
    );
}

#[test]
fn files_can_be_labelled_on_the_command_line() {
    let stdin = b"{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}";
    let output = capstan_with_stdin(
        &["render", "-f", "-", "--discriminator", "x", "-o", "json"],
        stdin,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let list: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(
        list["items"][0]["metadata"]["labels"]["capstan.io/discriminator"],
        "x"
    );
}

/// What `capstan render` prints is what an API server accepts: the prerequisites (CRDs and
/// Namespaces) are applied for real, as a deploy's first waves would, then the whole List goes
/// through `kubectl apply --dry-run=server`.
#[tokio::test]
async fn the_rendered_example_passes_a_server_side_dry_run() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let rendered = capstan(&[
        "render",
        "--project",
        example().to_str().unwrap(),
        "--stage",
        "full",
        "-o",
        "json",
    ]);
    assert_eq!(
        rendered.status.code(),
        Some(0),
        "{}",
        text(&rendered.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let prerequisites: Vec<_> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| {
            matches!(
                item["kind"].as_str(),
                Some("CustomResourceDefinition" | "Namespace")
            )
        })
        .collect();
    let prerequisites =
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": prerequisites});

    let kubectl = |args: &[&str], stdin: &[u8]| {
        let mut child = plane
            .kubectl()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "kubectl {args:?}: {}",
            text(&output.stderr)
        );
        output
    };
    kubectl(
        &["apply", "--server-side", "-f", "-"],
        prerequisites.to_string().as_bytes(),
    );
    kubectl(
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout=60s",
            "crd/clusters.cluster.x-k8s.io",
            "crd/machinedeployments.cluster.x-k8s.io",
        ],
        b"",
    );
    let dry_run = kubectl(
        &[
            "apply",
            "--server-side",
            "--dry-run=server",
            "-f",
            "-",
            "-o",
            "name",
        ],
        &rendered.stdout,
    );
    assert_eq!(
        text(&dry_run.stdout).lines().count(),
        14,
        "{}",
        text(&dry_run.stdout)
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `validate --server` catches what only the server knows (an enum of a core field here), and
/// names the object with the server's message.
#[tokio::test]
async fn validate_on_a_server_reports_schema_errors_offline_checks_cannot_see() {
    let plane = ControlPlane::shared().await.expect("control plane");
    // The example's stage is for `capstan-local`; the test plane is another cluster.
    let validate = |project: &Path| {
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["validate", "--server", "--stage", "full"])
            .args([
                "--context",
                "capstan-testenv",
                "--override-stage-context",
                "--project",
            ])
            .arg(project)
            .env("KUBECONFIG", plane.kubeconfig())
            .output()
            .unwrap()
    };
    let good = validate(&example());
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}{}",
        text(&good.stdout),
        text(&good.stderr)
    );
    assert!(
        text(&good.stdout).contains("0 problems"),
        "{}",
        text(&good.stdout)
    );

    let dir = tempfile::TempDir::new().unwrap();
    copy_tree(&example(), dir.path());
    let web = dir.path().join("apps/web.yaml");
    let broken = std::fs::read_to_string(&web)
        .unwrap()
        .replace("protocol: TCP", "protocol: TCPX");
    std::fs::write(&web, broken).unwrap();
    let bad = validate(dir.path());
    assert_eq!(bad.status.code(), Some(2));
    let report = text(&bad.stdout);
    // The summary above the server's problems speaks of the offline checks only.
    assert!(
        report.contains("offline checks passed\n") && !report.contains("no problems"),
        "{report}"
    );
    assert!(
        report.contains("apps/Deployment shop/web") && report.contains("\"TCPX\""),
        "{report}"
    );
}
