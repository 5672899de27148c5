//! A deploy that cannot write everything writes nothing; namespace-scoped users can deploy;
//! no secret value reaches a message or a diff; against a real kube-apiserver.

mod common;

use std::sync::Arc;

use capstan_apply::{Action, DeployRequest, Deployer, Options, Prepare, Prepared};
use capstan_manifest::Object;
use capstan_testenv::{ControlPlane, User};
use common::{apply_only, config_maps, deploy, exists, kubectl, manifest, with_prune};
use serde_json::json;

/// Grants the unprivileged user a Role `name` in `ns` with `rules` (kubectl's role flags).
fn grant(plane: &ControlPlane, ns: &str, name: &str, rules: &[&str]) {
    let mut args = vec!["-n", ns, "create", "role", name];
    args.extend_from_slice(rules);
    kubectl(plane, &args);
    let user = format!("--user={}", User::UNPRIVILEGED_NAME);
    let role = format!("--role={name}");
    kubectl(
        plane,
        &["-n", ns, "create", "rolebinding", name, &role, &user],
    );
}

async fn deploy_as_user<'m>(
    plane: &ControlPlane,
    options: Options,
    manifest: &'m capstan_manifest::Manifest,
    request: DeployRequest,
) -> capstan_apply::Deployment<'m> {
    Deployer::new(plane.client(User::Unprivileged).unwrap(), options)
        .deploy(manifest, request, &|_| {}, &mut |_| true)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_create_the_user_may_not_make_stops_the_deploy_before_any_write() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("rbac").await.unwrap();
    grant(
        plane,
        &ns,
        "configmaps",
        &[
            "--verb=get,list,create,patch,update,delete",
            "--resource=configmaps",
        ],
    );
    grant(
        plane,
        &ns,
        "read-secrets",
        &["--verb=get,list", "--resource=secrets"],
    );
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}}}\nstringData: {{k: v}}\n",
        config_maps(&ns, 3, "v")
    );
    let stage = manifest("rbac", &yaml);
    let done = deploy_as_user(plane, Options::default(), &stage, apply_only()).await;
    let errors: Vec<String> = done.plan.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("Secret {ns}/s: dry-run apply rejected:")),
        "{errors:?}"
    );
    assert!(done.outcomes.is_empty());
    assert!(!exists(plane, "cm", &ns, "cm-0"), "nothing may be written");

    // Without verification the same deploy writes the ConfigMaps, then fails: the mode users
    // choose when they accept partial writes.
    let mut unverified = Options::default();
    unverified.verify_new = false;
    let done = deploy_as_user(plane, unverified, &stage, apply_only()).await;
    assert!(!done.succeeded());
    assert!(exists(plane, "cm", &ns, "cm-0"));
    assert!(!exists(plane, "secret", &ns, "s"));
}

#[tokio::test]
async fn an_object_over_the_size_limit_stops_the_deploy_before_any_write() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("toolarge").await.unwrap();
    let big = "x".repeat(1024 * 1024 + 1);
    let yaml = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big, namespace: {ns}}}\ndata: {{big: {big}}}\n",
        config_maps(&ns, 2, "v")
    );
    let stage = manifest("toolarge", &yaml);
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(done.plan.errors().count(), 1);
    assert!(!exists(plane, "cm", &ns, "cm-0"), "nothing may be written");
    assert!(
        done.plan
            .objects()
            .iter()
            .filter(|o| o.error().is_none())
            .all(|o| o.is_verified())
    );
}

#[tokio::test]
async fn a_namespace_scoped_user_deploys_and_prunes_within_the_stages_namespaces() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("tenant").await.unwrap();
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "create",
            "rolebinding",
            "tenant-admin",
            "--clusterrole=admin",
            &format!("--user={}", User::UNPRIVILEGED_NAME),
        ],
    );
    let three = manifest("tenant", &config_maps(&ns, 3, "v"));
    let done = deploy_as_user(plane, Options::default(), &three, with_prune()).await;
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(done.plan.count(Action::Create), 3);
    assert_eq!(done.plan.blind().namespaces, std::slice::from_ref(&ns));

    let two = manifest("tenant", &config_maps(&ns, 2, "v"));
    let done = deploy_as_user(plane, Options::default(), &two, with_prune()).await;
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(done.plan.count(Action::Unchanged), 2);
    let pruned = done.prune.unwrap().unwrap();
    assert_eq!(pruned.len(), 1);
    assert!(pruned[0].deleted() && pruned[0].id.name() == "cm-2");
    assert!(!exists(plane, "cm", &ns, "cm-2"));
}

const VALUE: &str = "hunter2-very-secret";

#[tokio::test]
async fn a_secret_of_the_wrong_shape_never_reaches_a_message_or_a_diff() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("shape").await.unwrap();
    let yaml = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}}}\ndata: [{VALUE}]\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: t, namespace: {ns}}}\nstringData: {{k: {{nested: {VALUE}-2}}}}\n"
    );
    let stage = manifest("shape", &yaml);
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let errors: Vec<String> = done.plan.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    let everything = format!("{errors:?} {:?}", done.plan);
    assert!(!everything.contains("hunter2"), "{everything}");

    let mut unverified = Options::default();
    unverified.verify_new = false;
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), unverified);
    let plan = deployer.plan(&stage, false, &|_| {}).await.unwrap();
    for item in plan.objects() {
        let diff = item.diff().unwrap().unified("x");
        assert!(!diff.contains("hunter2"), "{diff}");
        assert!(diff.contains("***"), "{diff}");
    }
}

/// Plays a SOPS decryption: the manifest holds a placeholder, the body sent holds the value.
struct Decrypt;

impl Prepare for Decrypt {
    fn prepare(&self, object: &Object) -> Result<Option<Prepared>, String> {
        let mut body = object.to_value();
        body["data"] = json!({"k": [VALUE]});
        Ok(Some(Prepared {
            body,
            masked: vec![vec!["data".to_owned(), "k".to_owned()]],
        }))
    }
}

#[tokio::test]
async fn a_decrypted_value_never_reaches_the_servers_message() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("decrypted").await.unwrap();
    let stage = manifest("decrypted", &config_maps(&ns, 1, "ENC"));
    let mut options = Options::default();
    options.prepare = Some(Arc::new(Decrypt));
    let done = deploy(plane, options, &stage, apply_only()).await.unwrap();
    let errors: Vec<String> = done.plan.errors().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("***") && !errors[0].contains("hunter2"),
        "{errors:?}"
    );
}
