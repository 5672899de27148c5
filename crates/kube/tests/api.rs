//! The API wrapper and discovery against the real test control plane.

use std::time::Duration;

use capstan_kube::{Api, Backoff, Catalog, Target, condition, poll_until};
use capstan_testenv::{ControlPlane, User};
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

const MANAGER: &str = "capstan-kube-test";

fn widgets_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.status.capstan.test"},
        "spec": {
            "group": "status.capstan.test",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }}
            }]
        }
    })
}

/// Applies the Widget CRD and waits until discovery serves it.
async fn served_widgets(api: &Api) -> Catalog {
    let catalog = Catalog::discover(api).await.unwrap();
    let crds = catalog
        .resolve("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
        .unwrap();
    let target = Target {
        resource: &crds.api,
        namespace: None,
        name: "widgets.status.capstan.test",
    };
    api.apply(target, &widgets_crd(), &PatchParams::apply(MANAGER))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));
    let established = poll_until(deadline, backoff, async || {
        let crd = api.get(target).await?;
        let done = crd
            .as_ref()
            .and_then(|crd| condition(crd, "Established"))
            .is_some_and(|c| c.is_true());
        Ok::<_, kube::Error>(done.then_some(()))
    })
    .await
    .unwrap();
    assert!(established.is_some(), "the CRD became Established");
    let served = poll_until(
        deadline,
        Backoff::fixed(Duration::from_millis(200)),
        async || {
            let fresh = Catalog::discover_only(api, &["status.capstan.test/v1".to_owned()]).await?;
            let served = fresh
                .resolve("status.capstan.test", "v1", "Widget")
                .is_some();
            Ok::<_, capstan_kube::Error>(served.then_some(fresh))
        },
    )
    .await
    .unwrap();
    served.expect("discovery serves the new kind")
}

#[tokio::test]
async fn a_status_patch_writes_the_status_subresource_that_an_apply_leaves_alone() {
    let plane = ControlPlane::shared().await.unwrap();
    let api = Api::new(plane.client(User::Admin).unwrap());
    let ns = plane.create_namespace("status-patch").await.unwrap();
    let catalog = served_widgets(&api).await;
    let widgets = catalog
        .resolve("status.capstan.test", "v1", "Widget")
        .unwrap();
    let target = Target {
        resource: &widgets.api,
        namespace: Some(&ns),
        name: "one",
    };
    let widget = json!({
        "apiVersion": "status.capstan.test/v1", "kind": "Widget",
        "metadata": {"name": "one", "namespace": ns},
        "spec": {"size": 1},
        "status": {"phase": "ignored"}
    });
    let applied = api
        .apply(target, &widget, &PatchParams::apply(MANAGER))
        .await
        .unwrap();
    assert_eq!(
        applied.get("status"),
        None,
        "a write of the object drops its status"
    );

    let status = json!({
        "apiVersion": "status.capstan.test/v1", "kind": "Widget",
        "metadata": {"name": "one", "namespace": ns},
        "status": {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let requests = api.requests();
    let patched = api
        .patch_status(target, &Patch::Apply(&status), &PatchParams::apply(MANAGER))
        .await
        .unwrap();
    assert_eq!(api.requests(), requests + 1, "one request, counted");
    assert_eq!(patched["status"]["phase"], "Ready");
    assert_eq!(patched["spec"]["size"], 1, "the spec is untouched");

    let merged = api
        .patch_status(
            target,
            &Patch::Merge(json!({"status": {"phase": "Done"}})),
            &PatchParams::default(),
        )
        .await
        .unwrap();
    assert_eq!(merged["status"]["phase"], "Done");
    let live = api.get(target).await.unwrap().unwrap();
    assert!(condition(&live, "Ready").unwrap().is_true());

    let missing = Target {
        name: "absent",
        ..target
    };
    let error = api
        .patch_status(
            missing,
            &Patch::Merge(json!({"status": {}})),
            &PatchParams::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(capstan_kube::status_code(&error), Some(404));
}

#[tokio::test]
async fn a_moved_kind_resolves_at_a_version_the_server_serves() {
    let plane = ControlPlane::shared().await.unwrap();
    let api = Api::new(plane.client(User::Admin).unwrap());
    let catalog = Catalog::discover(&api).await.unwrap();
    let pdb = catalog
        .first_served("policy", &["v1", "v1beta1"], "PodDisruptionBudget")
        .expect("every supported server serves PodDisruptionBudgets");
    let newest = if catalog
        .resolve("policy", "v1", "PodDisruptionBudget")
        .is_some()
    {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    assert_eq!(pdb.api.api_version, newest);
    assert!(
        catalog.unavailable().is_empty(),
        "{:?}",
        catalog.unavailable()
    );
}

#[tokio::test]
async fn lists_page_through_every_object() {
    let plane = ControlPlane::shared().await.unwrap();
    let api = Api::new(plane.client(User::Admin).unwrap());
    let ns = plane.create_namespace("paging").await.unwrap();
    let catalog = Catalog::discover(&api).await.unwrap();
    let config_maps = catalog.resolve("", "v1", "ConfigMap").unwrap();
    for i in 0..3 {
        let name = format!("cm-{i}");
        let target = Target {
            resource: &config_maps.api,
            namespace: Some(&ns),
            name: &name,
        };
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": ns, "labels": {"page": "yes"}}});
        api.apply(target, &body, &PatchParams::apply(MANAGER))
            .await
            .unwrap();
    }
    let listed = api
        .list_metadata(&config_maps.api, Some(&ns), Some("page=yes"))
        .await
        .unwrap();
    assert_eq!(listed.len(), 3);
    let whole = api.list(&config_maps.api, "page=yes").await.unwrap();
    assert!(
        whole
            .iter()
            .filter(|o| o["metadata"]["namespace"] == ns.as_str())
            .count()
            == 3
    );
}
