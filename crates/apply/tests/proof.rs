//! The unchanged proof against a real control plane: objects the controllers write to after
//! capstan (a Deployment's revision annotation, a ServiceAccount's token `secrets` on 1.20) are
//! still proved unchanged from one list per type, and changes by others are still caught.

mod common;

use std::time::Duration;

use capstan_apply::{Action, Options};
use capstan_manifest::{IgnoreRule, IgnoreRules, Manifest};
use capstan_testenv::ControlPlane;
use common::{apply_only, deploy, edit_after_capstan, kubectl, manifest};

/// `count` Deployments, ServiceAccounts and Services in `ns`.
fn workloads(ns: &str, count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web-{i}, namespace: {ns}, labels: {{app: web-{i}}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web-{i}}}}}
  template:
    metadata: {{labels: {{app: web-{i}}}}}
    spec: {{serviceAccountName: web-{i}, containers: [{{name: web, image: nginx:1.25}}]}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: web-{i}, namespace: {ns}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web-{i}, namespace: {ns}}}
spec: {{selector: {{app: web-{i}}}, ports: [{{port: 80, protocol: TCP}}]}}
"
            )
        })
        .collect()
}

/// Waits until the controller manager has written to every Deployment (its revision
/// annotation) and, where the server still makes token Secrets, every ServiceAccount.
async fn controllers_wrote(plane: &ControlPlane, ns: &str) {
    assert!(
        plane.has_controllers(),
        "these tests need the controller manager"
    );
    for _ in 0..100 {
        let revisions = kubectl(
            plane,
            &[
                "get",
                "deploy",
                "-n",
                ns,
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.annotations.deployment\.kubernetes\.io/revision}{"\n"}{end}"#,
            ],
        );
        let tokens = kubectl(
            plane,
            &[
                "get",
                "sa",
                "-n",
                ns,
                "-o",
                r#"jsonpath={range .items[*]}{.metadata.name}={.secrets[0].name}{"\n"}{end}"#,
            ],
        );
        let sa_done = !token_controller(plane)
            || tokens
                .lines()
                .filter(|l| l.starts_with("web-"))
                .all(|l| !l.ends_with('='));
        if revisions.lines().all(|l| !l.is_empty()) && sa_done {
            // Let the managedFields timestamps move past capstan's second.
            tokio::time::sleep(Duration::from_millis(1100)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the controllers never wrote to the objects in {ns}");
}

/// Whether the server's token controller still writes `secrets` into ServiceAccounts (it
/// stopped in Kubernetes 1.24).
fn token_controller(plane: &ControlPlane) -> bool {
    let minor: u32 = plane
        .version()
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    minor < 24
}

async fn deployed(plane: &ControlPlane, prefix: &str, count: usize) -> (String, Manifest) {
    let ns = plane.create_namespace(prefix).await.unwrap();
    let stage = manifest(prefix, &workloads(&ns, count));
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert!(done.succeeded(), "{:?}", done.plan.objects());
    controllers_wrote(plane, &ns).await;
    (ns, stage)
}

#[tokio::test]
async fn objects_the_controllers_wrote_to_are_proved_unchanged_from_one_list_per_type() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "proof", 10).await;
    if token_controller(plane) {
        let tokens = kubectl(
            plane,
            &["get", "sa", "-n", &ns, "web-0", "-o", "jsonpath={.secrets}"],
        );
        assert!(!tokens.is_empty(), "the token controller wrote secrets");
    }
    let again = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(
        again.plan.count(Action::Unchanged),
        30,
        "{:?}",
        again.plan.objects()
    );
    // Discovery of two group-versions, the namespace list and one list per type: no read or
    // dry run per object (that would be 60 more).
    assert!(
        again.requests <= 8,
        "proved from metadata, not a dry run per object: {}",
        again.requests
    );
}

#[tokio::test]
async fn a_change_by_hand_and_a_pure_removal_are_still_caught_after_the_controllers_wrote() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "caught", 1).await;
    edit_after_capstan(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "deploy",
            "web-0",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":3}}"#,
        ],
    )
    .await;
    let mut force = Options::default();
    force.force_conflicts = true;
    let done = deploy(plane, force, &stage, apply_only()).await.unwrap();
    let updated: Vec<String> = done
        .plan
        .objects()
        .iter()
        .filter(|i| i.action() == Action::Update)
        .map(|i| i.id().kind().to_owned())
        .collect();
    assert_eq!(updated, ["Deployment"], "{:?}", done.plan.objects());
    assert_eq!(
        kubectl(
            plane,
            &[
                "get",
                "deploy",
                "-n",
                &ns,
                "web-0",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "1"
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "sa",
            "web-0",
            "--type",
            "json",
            "-p",
            r#"[{"op":"add","path":"/metadata/labels/team","value":"x"}]"#,
        ],
    );
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "deploy",
            "web-0",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/labels/app"}]"#,
        ],
    );
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let actions: Vec<(String, Action)> = done
        .plan
        .objects()
        .iter()
        .map(|i| (i.id().kind().to_owned(), i.action()))
        .collect();
    assert_eq!(
        actions,
        [
            ("ServiceAccount".to_owned(), Action::Unchanged),
            ("Deployment".to_owned(), Action::Update),
            ("Service".to_owned(), Action::Unchanged),
        ],
        "a label added by another manager changes nothing capstan applies; a removed one does"
    );
}

#[tokio::test]
async fn a_field_another_applier_shares_goes_to_the_dry_run_and_an_ignore_rule_keeps_it_out() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "shared", 1).await;
    // Another applier claims capstan's replicas with a different value.
    let patch = format!(
        "{{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{{\"name\":\"web-0\",\"namespace\":\"{ns}\"}},\"spec\":{{\"replicas\":2}}}}"
    );
    let file = std::env::temp_dir().join(format!("{ns}-scale.json"));
    std::fs::write(&file, patch).unwrap();
    kubectl(
        plane,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager",
            "autoscaler",
            "--validate=false",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&file).unwrap();
    let mut force = Options::default();
    force.force_conflicts = true;
    let done = deploy(plane, force.clone(), &stage, apply_only().dry_run(true))
        .await
        .unwrap();
    assert_eq!(done.plan.count(Action::Update), 1);

    let rule: Vec<IgnoreRule> = serde_yaml::from_str(
        "[{kind: Deployment, jsonPointers: [/spec/replicas], managers: [autoscaler]}]",
    )
    .unwrap();
    let mut options = force;
    options.ignore = IgnoreRules::new(rule).unwrap();
    let done = deploy(plane, options, &stage, apply_only()).await.unwrap();
    assert_eq!(
        done.plan.count(Action::Unchanged),
        3,
        "{:?}",
        done.plan.objects()
    );
    assert_eq!(
        kubectl(
            plane,
            &[
                "get",
                "deploy",
                "-n",
                &ns,
                "web-0",
                "-o",
                "jsonpath={.spec.replicas}"
            ]
        ),
        "2"
    );
}
