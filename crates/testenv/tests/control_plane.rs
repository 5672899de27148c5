//! The test control plane is real: these tests talk to the kube-apiserver it starts.

#![allow(
    clippy::disallowed_methods,
    reason = "a test reports on stderr what it checked"
)]

use std::{io::Write as _, process::Command, time::Duration};

use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    core::v1::{ConfigMap, Secret},
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams},
};
use serde_json::json;

#[tokio::test]
async fn server_side_apply_round_trips_with_field_manager() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let client = plane.client(User::Admin).unwrap();
    let info = client.apiserver_version().await.unwrap();
    // Straight to stderr, past the test harness's capture: the CI log shows which server ran.
    writeln!(
        std::io::stderr(),
        "capstan-testenv: testing against a real kube-apiserver {} (built {}, {}) at {}",
        info.git_version,
        info.build_date,
        info.platform,
        plane.server_url()
    )
    .unwrap();
    assert_eq!(info.git_version, plane.version());

    let namespace = plane.create_namespace("ssa").await.unwrap();
    let config_maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let desired = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "greeting", "namespace": namespace },
        "data": { "hello": "world" },
    });
    config_maps
        .patch(
            "greeting",
            &PatchParams::apply("capstan-test"),
            &Patch::Apply(&desired),
        )
        .await
        .unwrap();

    let live = config_maps.get("greeting").await.unwrap();
    assert_eq!(live.data.unwrap()["hello"], "world");
    let managers: Vec<_> = live
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .map(|entry| (entry.manager.unwrap(), entry.operation.unwrap()))
        .collect();
    assert_eq!(managers, [("capstan-test".to_owned(), "Apply".to_owned())]);
}

/// What capstan's deploy path needs from kube 5 and this server: discovery, a server-side-apply
/// dry run that writes nothing, and metadata-only lists filtered by label.
#[tokio::test]
async fn server_supports_discovery_dry_run_apply_and_metadata_lists() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let client = plane.client(User::Admin).unwrap();
    let namespace = plane.create_namespace("compat").await.unwrap();

    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (resource, _) = discovery
        .groups()
        .flat_map(|group| group.recommended_resources())
        .find(|(resource, _)| resource.kind == "ConfigMap")
        .expect("discovery lists ConfigMap");
    assert_eq!(resource.plural, "configmaps");

    let config_maps: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let labelled = |name: &str| {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": { "name": name, "labels": { "capstan.io/discriminator": "compat" } },
        })
    };
    let dry_run = PatchParams::apply("capstan").dry_run();
    let planned = config_maps
        .patch("planned", &dry_run, &Patch::Apply(&labelled("planned")))
        .await
        .unwrap();
    assert_eq!(planned.name_any(), "planned");
    assert!(
        config_maps.get_opt("planned").await.unwrap().is_none(),
        "a dry run wrote"
    );

    let apply = PatchParams::apply("capstan");
    config_maps
        .patch("owned", &apply, &Patch::Apply(&labelled("owned")))
        .await
        .unwrap();
    config_maps
        .patch(
            "other",
            &apply,
            &Patch::Apply(
                &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "other" }}),
            ),
        )
        .await
        .unwrap();
    let selected = config_maps
        .list_metadata(&ListParams::default().labels("capstan.io/discriminator=compat"))
        .await
        .unwrap();
    let names: Vec<_> = selected.items.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, ["owned"]);
    // Metadata lists carry managedFields, so changes by other managers stay visible.
    assert!(selected.items[0].metadata.managed_fields.is_some());
}

/// Kubernetes 1.20 built with a newer Go than its own segfaulted on the first custom resource it
/// encoded (its vendored reflect2 predates Go 1.18; scripts/envtest.sh swaps in 1.0.2).
#[tokio::test]
async fn custom_resources_are_stored_and_served() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let client = plane.client(User::Admin).unwrap();
    let namespace = plane.create_namespace("crd").await.unwrap();
    let group = format!("{namespace}.capstan.test");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    });
    let params = PatchParams::apply("capstan-test");
    crds.patch(&format!("widgets.{group}"), &params, &Patch::Apply(&crd))
        .await
        .unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(&group, "v1", "Widget"),
        "widgets",
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    let widget = json!({
        "apiVersion": format!("{group}/v1"),
        "kind": "Widget",
        "metadata": {"name": "w", "labels": {"a": "b"}},
        "spec": {"size": 3, "tags": {"x": "y", "z": "w"}}
    });
    // The CRD needs a moment to be served after it is established.
    let mut applied = None;
    for _ in 0..100 {
        match widgets.patch("w", &params, &Patch::Apply(&widget)).await {
            Ok(object) => {
                applied = Some(object);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let applied = applied.expect("the custom resource was never accepted");
    assert_eq!(applied.data["spec"]["tags"]["z"], "w");
    assert_eq!(
        widgets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );
}

#[tokio::test]
async fn unprivileged_user_is_subject_to_rbac() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let namespace = plane.create_namespace("rbac").await.unwrap();
    let secrets: Api<Secret> =
        Api::namespaced(plane.client(User::Unprivileged).unwrap(), &namespace);
    let error = secrets.list(&ListParams::default()).await.unwrap_err();
    let kube::Error::Api(status) = error else {
        panic!("expected a Forbidden answer, got {error:?}");
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status.message.contains(User::UNPRIVILEGED_NAME),
        "{}",
        status.message
    );

    // The administrator may; the list may hold the service-account token the controllers add.
    let admin: Api<Secret> = Api::namespaced(plane.client(User::Admin).unwrap(), &namespace);
    admin.list(&ListParams::default()).await.unwrap();
}

#[tokio::test]
async fn controllers_run_when_the_controller_manager_is_present() {
    let plane = ControlPlane::shared().await.expect("control plane");
    assert!(
        plane.has_controllers(),
        "no kube-controller-manager: provision it with scripts/envtest.sh"
    );
    let namespace = plane.create_namespace("controllers").await.unwrap();
    let client = plane.client(User::Admin).unwrap();
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "namespace": namespace },
        "spec": {
            "replicas": 1,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.invalid/web:1" }] },
            },
        },
    });
    Api::<Deployment>::namespaced(client.clone(), &namespace)
        .patch(
            "web",
            &PatchParams::apply("capstan-test"),
            &Patch::Apply(&deployment),
        )
        .await
        .unwrap();

    // The deployment controller answers with a ReplicaSet owned by the Deployment.
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client, &namespace);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let owned = replica_sets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .any(|rs| {
                rs.owner_references()
                    .iter()
                    .any(|owner| owner.name == "web")
            });
        if owned {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ReplicaSet after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn kubeconfig_drives_kubectl_as_both_users() {
    let plane = ControlPlane::shared().await.expect("control plane");
    let namespace = plane.create_namespace("kubectl").await.unwrap();
    let run = |context: &str| {
        plane
            .kubectl()
            .args([
                "--context",
                context,
                "get",
                "namespace",
                &namespace,
                "-o",
                "name",
            ])
            .output()
            .unwrap_or_else(|error| panic!("cannot run kubectl: {error}"))
    };

    let admin = run("capstan-testenv");
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&admin.stdout).trim(),
        format!("namespace/{namespace}")
    );

    let user = run("capstan-testenv-user");
    assert!(!user.status.success());
    assert!(
        String::from_utf8_lossy(&user.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&user.stderr)
    );
}

/// `USE_EXISTING_CLUSTER=true` runs the suite against the current kubeconfig's cluster: this test
/// runs the other tests of this binary again, in a child process whose kubeconfig is the shared
/// control plane's, as a user's own cluster would be.
#[tokio::test]
async fn suite_runs_against_an_existing_cluster() {
    const THIS_TEST: &str = "suite_runs_against_an_existing_cluster";
    let plane = ControlPlane::shared().await.expect("control plane");
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--skip", THIS_TEST, "--test-threads=2"])
        .env("USE_EXISTING_CLUSTER", "true")
        .env("KUBECONFIG", plane.kubeconfig())
        .env_remove("KUBEBUILDER_ASSETS")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("test result: ok."), "{stdout}");
    assert!(
        !stdout.contains("ok. 0 passed"),
        "the child ran no test: {stdout}"
    );
    // The child's control plane was ours: it ran no etcd or kube-apiserver of its own.
    assert!(
        stderr.contains(&format!("at {}", plane.server_url())),
        "{stderr}"
    );
}
