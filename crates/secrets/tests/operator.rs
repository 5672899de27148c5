//! The key hand-over to the sops-secrets-operator against a real kube-apiserver: what it
//! refuses to start, and what it leaves alone when it is not confirmed.

use capstan_secrets::{Error, HandOverEvent, Identity, OperatorOptions, hand_over};
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
use kube::api::{Api, PostParams};

fn options(namespace: &str) -> OperatorOptions {
    let mut options = OperatorOptions::default();
    namespace.clone_into(&mut options.namespace);
    options
}

#[tokio::test]
async fn without_the_operators_deployment_nothing_changes() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let namespace = plane.create_namespace("hand-over-missing").await.unwrap();
    let key_file = Identity::generate().to_new_key_file();

    let mut events = Vec::new();
    let error = hand_over(
        plane.client(User::Admin).unwrap(),
        &key_file,
        &options(&namespace),
        &mut |_| panic!("nothing to confirm without the Deployment"),
        &mut |event| events.push(format!("{event:?}")),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("Deployment {namespace}/sops-secrets-operator not found")
    );
    assert!(events.is_empty(), "{events:?}");
    let secrets: Api<Secret> = Api::namespaced(plane.client(User::Admin).unwrap(), &namespace);
    assert!(secrets.get_opt("sops-age-key").await.unwrap().is_none());
}

#[tokio::test]
async fn a_declined_hand_over_shows_the_plan_and_changes_nothing() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let namespace = plane.create_namespace("hand-over-declined").await.unwrap();
    let client = plane.client(User::Admin).unwrap();
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "sops-secrets-operator" },
        "spec": {
            "selector": { "matchLabels": { "app": "operator" } },
            "template": {
                "metadata": { "labels": { "app": "operator" } },
                "spec": { "containers": [{ "name": "operator", "image": "registry.k8s.io/pause:3.10" }] },
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let old = Identity::generate().to_new_key_file();
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "sops-age-key" },
        "stringData": { "age.key": old.as_str() },
    }))
    .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let before = secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let mut seen = None;
    let mut events: Vec<String> = Vec::new();
    let done = hand_over(
        client,
        &Identity::generate().to_new_key_file(),
        &options(&namespace),
        &mut |plan| {
            seen = Some((
                plan.secret.to_owned(),
                plan.deployment.to_owned(),
                plan.secret_exists,
                plan.kept_identities,
            ));
            false
        },
        &mut |event: HandOverEvent<'_>| events.push(format!("{event:?}")),
    )
    .await
    .unwrap();
    assert_eq!(
        seen,
        Some((
            format!("Secret {namespace}/sops-age-key"),
            format!("Deployment {namespace}/sops-secrets-operator"),
            true,
            1
        ))
    );
    assert!(!done.secret_updated && !done.restarted && !done.rolled_out);
    assert!(events.is_empty(), "{events:?}");
    let after = secrets.get("sops-age-key").await.unwrap();
    assert_eq!(
        after.metadata.resource_version,
        before.metadata.resource_version
    );
    let live = deployments.get("sops-secrets-operator").await.unwrap();
    let annotations = live.spec.unwrap().template.metadata.unwrap().annotations;
    assert!(annotations.is_none_or(|a| !a.contains_key("kubectl.kubernetes.io/restartedAt")));
}
