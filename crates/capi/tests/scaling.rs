//! Scaling, removing and replacing nodes against the real control plane with ClusterAPI's CRDs
//! (and no ClusterAPI controllers: the tests play their part where one is needed).

mod common;

use std::time::Duration;

use capstan_capi::scale::{Change, Refusal, ScaleKind};
use capstan_capi::{
    DELETE_MACHINE_ANNOTATION, Error, MACHINE_ANNOTATION, ReplaceRequest, Route, ScaleRequest,
    remove_node, replace_node, scale,
};
use common::{control_plane, create, get, machine, machine_deployment, node, plane};
use serde_json::json;

fn replicas(object: &serde_json::Value) -> i64 {
    object["spec"]["replicas"].as_i64().unwrap()
}

#[tokio::test]
async fn a_machine_deployment_scales_to_a_count_or_by_a_delta_and_a_dry_run_changes_nothing() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-scale").await.unwrap();
    create(&machine_deployment(&ns, "md-0", 2, json!({}))).await;
    let by = ScaleRequest::new(ScaleKind::MachineDeployment, &ns, "md-0", Change::By(1));
    let scaled = scale(&api, &catalog, &by).await.unwrap();
    assert_eq!((scaled.from, scaled.to), (2, 3));
    let to = ScaleRequest::new(ScaleKind::MachineDeployment, &ns, "md-0", Change::To(1));
    assert_eq!(scale(&api, &catalog, &to).await.unwrap().to, 1);
    let mut dry = ScaleRequest::new(ScaleKind::MachineDeployment, &ns, "md-0", Change::To(5));
    dry.dry_run = true;
    let checked = scale(&api, &catalog, &dry).await.unwrap();
    assert_eq!((checked.from, checked.to, checked.dry_run), (1, 5, true));
    let live = get(&api, &catalog, "MachineDeployment", Some(&ns), "md-0")
        .await
        .unwrap();
    assert_eq!(replicas(&live), 1);
    let json = serde_json::to_value(&checked).unwrap();
    assert_eq!(json["object"]["kind"], "MachineDeployment");
    assert_eq!(json["dryRun"], true);
}

#[tokio::test]
async fn refused_scales_write_nothing_and_say_why() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-refuse").await.unwrap();
    create(&control_plane(&ns, "cp", 3, json!({"local": {}}))).await;
    let even = ScaleRequest::new(ScaleKind::KubeadmControlPlane, &ns, "cp", Change::By(1));
    let error = scale(&api, &catalog, &even).await.unwrap_err();
    assert!(
        matches!(
            &error,
            Error::Refused {
                refusal: Refusal::ControlPlaneEven { replicas: 4 },
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().starts_with(&format!(
            "controlplane.cluster.x-k8s.io/KubeadmControlPlane {ns}/cp: "
        )),
        "{error}"
    );
    let zero = ScaleRequest::new(ScaleKind::KubeadmControlPlane, &ns, "cp", Change::To(0));
    assert!(matches!(
        scale(&api, &catalog, &zero).await,
        Err(Error::Refused {
            refusal: Refusal::ControlPlaneZero,
            ..
        })
    ));
    let live = get(&api, &catalog, "KubeadmControlPlane", Some(&ns), "cp")
        .await
        .unwrap();
    assert_eq!(replicas(&live), 3);

    let managed = machine_deployment(
        &ns,
        "md-topo",
        2,
        json!({
            "topology.cluster.x-k8s.io/owned": "", "topology.cluster.x-k8s.io/deployment-name": "md-0",
            "cluster.x-k8s.io/cluster-name": "shop"
        }),
    );
    create(&managed).await;
    let request = ScaleRequest::new(ScaleKind::MachineDeployment, &ns, "md-topo", Change::To(3));
    let error = scale(&api, &catalog, &request).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("spec.topology.workers.machineDeployments[name=md-0].replicas"),
        "{error}"
    );
    let missing = ScaleRequest::new(ScaleKind::MachineDeployment, &ns, "nope", Change::To(3));
    assert!(matches!(
        scale(&api, &catalog, &missing).await,
        Err(Error::NotFound { .. })
    ));
}

/// A MachineDeployment of `replicas` and one Machine of it per `(machine, node)` pair, each
/// Node found by a different route.
async fn workers(ns: &str) {
    create(&machine_deployment(ns, "md-0", 3, json!({}))).await;
    let labels = json!({"cluster.x-k8s.io/deployment-name": "md-0", "cluster.x-k8s.io/set-name": "md-0-abc"});
    create(&machine(ns, "m-annotated", labels.clone(), None, None)).await;
    create(&machine(
        ns,
        "m-ref",
        labels.clone(),
        Some(&format!("{ns}-ref")),
        None,
    ))
    .await;
    create(&machine(
        ns,
        "m-id",
        labels,
        None,
        Some(&format!("hcloud://{ns}")),
    ))
    .await;
    let annotations =
        json!({MACHINE_ANNOTATION: "m-annotated", "cluster.x-k8s.io/cluster-namespace": ns});
    create(&node(&format!("{ns}-annotated"), annotations, None, true)).await;
    create(&node(&format!("{ns}-ref"), json!({}), None, true)).await;
    create(&node(
        &format!("{ns}-id"),
        json!({}),
        Some(&format!("hcloud://{ns}")),
        true,
    ))
    .await;
}

#[tokio::test]
async fn removing_a_node_marks_its_machine_and_scales_the_owner_down_by_each_route() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-remove").await.unwrap();
    workers(&ns).await;

    let dry = remove_node(&api, &catalog, &format!("{ns}-annotated"), true)
        .await
        .unwrap();
    assert_eq!(
        (dry.route, dry.owner.from, dry.owner.to),
        (Route::Annotation, 3, 2)
    );
    let md = get(&api, &catalog, "MachineDeployment", Some(&ns), "md-0")
        .await
        .unwrap();
    assert_eq!(replicas(&md), 3, "a dry run scales nothing");
    let m = get(&api, &catalog, "Machine", Some(&ns), "m-annotated")
        .await
        .unwrap();
    assert!(
        m["metadata"]["annotations"]
            .get(DELETE_MACHINE_ANNOTATION)
            .is_none(),
        "a dry run marks nothing"
    );

    let expected = [
        ("annotated", "m-annotated", Route::Annotation, 2),
        ("ref", "m-ref", Route::NodeRef, 1),
        ("id", "m-id", Route::ProviderId, 0),
    ];
    for (node, machine, route, count) in expected {
        let removal = remove_node(&api, &catalog, &format!("{ns}-{node}"), false)
            .await
            .unwrap();
        assert_eq!(
            (removal.machine.name(), removal.route, removal.owner.to),
            (machine, route, count)
        );
        assert_eq!(
            removal.owner.object.to_string(),
            format!("cluster.x-k8s.io/MachineDeployment {ns}/md-0")
        );
        let marked = get(&api, &catalog, "Machine", Some(&ns), machine)
            .await
            .unwrap();
        assert_eq!(
            marked["metadata"]["annotations"][DELETE_MACHINE_ANNOTATION],
            ""
        );
        let md = get(&api, &catalog, "MachineDeployment", Some(&ns), "md-0")
            .await
            .unwrap();
        assert_eq!(replicas(&md), i64::from(count));
    }
}

#[tokio::test]
async fn a_node_without_a_machine_or_an_owner_to_shrink_is_refused_before_any_write() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-orphan").await.unwrap();
    create(&node(
        &format!("{ns}-bare"),
        json!({}),
        Some("hcloud://none"),
        true,
    ))
    .await;
    let error = remove_node(&api, &catalog, &format!("{ns}-bare"), false)
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no Machine runs Node {ns}-bare: none is named by its cluster.x-k8s.io/machine \
             annotation, names it in status.nodeRef, or has its provider ID hcloud://none"
        )
    );
    create(&control_plane(&ns, "cp", 1, json!({"local": {}}))).await;
    let labels =
        json!({"cluster.x-k8s.io/control-plane": "", "cluster.x-k8s.io/control-plane-name": "cp"});
    let mut only = machine(&ns, "cp-0", labels, Some(&format!("{ns}-cp")), None);
    only["metadata"]["ownerReferences"] = json!([{"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": "cp", "uid": "00000000-0000-0000-0000-000000000000", "controller": true}]);
    create(&only).await;
    create(&node(&format!("{ns}-cp"), json!({}), None, true)).await;
    let error = remove_node(&api, &catalog, &format!("{ns}-cp"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            Error::Refused {
                refusal: Refusal::ControlPlaneZero,
                ..
            }
        ),
        "{error}"
    );
    let cp0 = get(&api, &catalog, "Machine", Some(&ns), "cp-0")
        .await
        .unwrap();
    assert!(
        cp0["metadata"]["annotations"]
            .get(DELETE_MACHINE_ANNOTATION)
            .is_none()
    );
}

#[tokio::test]
async fn replacing_a_node_deletes_its_machine_and_follows_the_new_one_to_a_ready_node() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-replace").await.unwrap();
    workers(&ns).await;
    // The MachineSet controller's part: a new Machine, later a Ready Node for it.
    let controller = async {
        let ns2 = &ns;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let labels = json!({"cluster.x-k8s.io/deployment-name": "md-0", "cluster.x-k8s.io/set-name": "md-0-abc"});
        create(&machine(
            ns2,
            "m-new",
            labels,
            Some(format!("{ns}-new").as_str()),
            None,
        ))
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        create(&node(&format!("{ns}-new"), json!({}), None, false)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        create(&node(&format!("{ns}-new"), json!({}), None, true)).await;
    };
    let mut request = ReplaceRequest::new(&format!("{ns}-ref"));
    request.wait = Some(Duration::from_secs(60));
    let notes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let heard = notes.clone();
    let on_progress = move |progress| heard.lock().unwrap().push(format!("{progress:?}"));
    let (replaced, ()) = tokio::join!(
        replace_node(&api, &catalog, &request, &on_progress),
        controller
    );
    let replaced = replaced.unwrap();
    assert_eq!(replaced.machine.name(), "m-ref");
    assert_eq!(
        replaced.replacement.as_ref().map(|id| id.name()),
        Some("m-new")
    );
    assert_eq!(
        replaced.replacement_node.as_deref(),
        Some(format!("{ns}-new").as_str())
    );
    assert!(
        get(&api, &catalog, "Machine", Some(&ns), "m-ref")
            .await
            .is_none()
    );
    assert!(
        notes
            .lock()
            .unwrap()
            .iter()
            .any(|note| note.contains("new Machine m-new"))
    );
}

#[tokio::test]
async fn a_replacement_that_never_comes_times_out_naming_what_it_waited_for() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-late").await.unwrap();
    workers(&ns).await;
    let mut request = ReplaceRequest::new(&format!("{ns}-id"));
    request.wait = Some(Duration::from_secs(2));
    let error = replace_node(&api, &catalog, &request, &|_| {})
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NoReplacement { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("a Ready replacement for Node {ns}-id")),
        "{error}"
    );
}
