//! A stage's `context` is binding for every command that talks to a cluster: `deploy`,
//! `validate --server` and `secrets rotate-key --cluster`, end to end against the test
//! control plane's kubeconfig (contexts `capstan-testenv`, current, and
//! `capstan-testenv-user`).

mod common;

use std::path::Path;
use std::process::Output;

use capstan_testenv::ControlPlane;
use common::{Repo, fails, keygen, succeeds, text};
use tempfile::TempDir;

const CURRENT: &str = "capstan-testenv";
const OTHER: &str = "capstan-testenv-user";

/// Runs capstan with the plane's kubeconfig and no terminal on standard input.
fn capstan(plane: &ControlPlane, args: &[&str]) -> Output {
    common::on_plane(plane, Path::new("."), args)
}

/// A project whose one stage `app`, for kubeconfig context `context`, holds a ConfigMap `one`
/// in `namespace`.
fn project(dir: &Path, namespace: &str, context: &str) {
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: ctx\nstages:\n  app:\n    manifests: app.yaml\n    context: {context}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: one, namespace: {namespace}}}\n\
             data: {{k: v}}\n"
        ),
    )
    .unwrap();
}

/// The shared plane, a fresh namespace and a project for `context` deploying into it.
async fn setup(prefix: &str, context: &str) -> (&'static ControlPlane, String, TempDir) {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace(prefix).await.unwrap();
    let dir = TempDir::new().unwrap();
    project(dir.path(), &ns, context);
    (plane, ns, dir)
}

fn exists(plane: &ControlPlane, namespace: &str, name: &str) -> bool {
    plane
        .kubectl()
        .args(["get", "cm", "-n", namespace, name])
        .output()
        .unwrap()
        .status
        .success()
}

#[tokio::test]
async fn a_context_that_is_neither_current_nor_the_stages_is_refused_and_nothing_is_written() {
    let (plane, ns, dir) = setup("ctx-refused", CURRENT).await;
    let root = dir.path().to_str().unwrap();

    let refused = fails(capstan(
        plane,
        &["deploy", "--project", root, "--yes", "--context", OTHER],
    ));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: the stage deploys to context \"{CURRENT}\", not \"{OTHER}\"; pass \
             --override-stage-context with `--context {OTHER}` to use it anyway\n"
        )
    );
    assert!(!exists(plane, &ns, "one"), "nothing was deployed");
}

#[tokio::test]
async fn overriding_the_stage_context_deploys_after_naming_both_contexts() {
    let (plane, ns, dir) = setup("ctx-override", "production").await;
    let root = dir.path().to_str().unwrap();
    let deploy = ["deploy", "--project", root, "--yes", "--context", CURRENT];

    // The current context, named explicitly, is still not the stage's.
    let refused = fails(capstan(plane, &deploy));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: the stage deploys to context \"production\", not \"{CURRENT}\"; pass \
             --override-stage-context with `--context {CURRENT}` to use it anyway\n"
        )
    );
    assert!(!exists(plane, &ns, "one"));

    let overridden = succeeds(capstan(
        plane,
        &[&deploy[..], &["--override-stage-context"]].concat(),
    ));
    let stderr = text(&overridden.stderr);
    assert_eq!(
        stderr.lines().next(),
        Some(
            format!(
                "warning: the stage deploys to context \"production\"; using context \
                 \"{CURRENT}\" because of --override-stage-context"
            )
            .as_str()
        ),
        "{stderr}"
    );
    assert!(
        exists(plane, &ns, "one"),
        "deployed to the overriding context"
    );
}

#[tokio::test]
async fn the_override_flag_needs_an_explicit_context() {
    let plane = ControlPlane::shared().await.unwrap();
    let dir = TempDir::new().unwrap();
    project(dir.path(), "default", "production");
    let root = dir.path().to_str().unwrap();
    let output = capstan(
        plane,
        &[
            "deploy",
            "--project",
            root,
            "--yes",
            "--override-stage-context",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(
            "error: the following required arguments were not provided:\n  --context <NAME>\n"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn validate_on_the_server_refuses_a_stage_for_another_context() {
    let (plane, _, dir) = setup("ctx-validate", "production").await;
    let root = dir.path().to_str().unwrap();

    let refused = fails(capstan(plane, &["validate", "--project", root, "--server"]));
    assert_eq!(
        text(&refused.stderr),
        format!(
            "error: the stage deploys to context \"production\" but the current context is \
             \"{CURRENT}\"; switch with `kubectl config use-context production` or pass \
             `--context production`\n"
        )
    );
    // Without --server nothing talks to a cluster, so the stage's context does not matter.
    succeeds(capstan(plane, &["validate", "--project", root]));
}

#[tokio::test]
async fn rotate_key_reaches_the_cluster_through_the_common_context_rules() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("ctx-rotate").await.unwrap();
    let repo = Repo::new();
    repo.encrypted("app.yaml", common::PLAINTEXT);
    keygen(&repo.path("new.txt"));
    let rotate = |context: &str| {
        repo.capstan(&[
            "secrets",
            "rotate-key",
            "--new-identity-file",
            "new.txt",
            "--yes",
            "--cluster",
            "--namespace",
            &ns,
            "--context",
            context,
        ])
        .env("KUBECONFIG", plane.kubeconfig())
        .output()
        .unwrap()
    };

    let unknown = fails(rotate("nowhere"));
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("error: cannot use kubeconfig context \"nowhere\": "),
        "{stderr}"
    );
    // The unprivileged context is the one used: it may not even read the operator.
    let forbidden = fails(rotate(OTHER));
    let stderr = text(&forbidden.stderr);
    assert!(
        stderr.contains(&format!(
            "error: cannot read Deployment {ns}/sops-secrets-operator: "
        )) && stderr.contains("forbidden"),
        "{stderr}"
    );
    assert!(stderr.contains("key Secret updated:   no"), "{stderr}");
}
