//! The status tree of a small cluster read from the real control plane.

mod common;

use capstan_capi::{Health, TreeOptions, inventory, tree};
use common::{control_plane, create, machine, machine_deployment, plane};
use serde_json::{Value, json};

fn ready(status: &str, reason: &str) -> Value {
    let mut condition =
        json!({"type": "Ready", "status": status, "lastTransitionTime": "2026-12-02T10:00:00Z"});
    if status != "True" {
        condition["reason"] = json!(reason);
        condition["severity"] = json!("Warning");
    }
    json!({"conditions": [condition]})
}

async fn with_status(mut object: Value, status: Value) {
    object["status"] = status;
    create(&object).await;
}

#[tokio::test]
async fn a_small_clusters_tree_is_read_at_the_served_version_and_gates_on_readiness() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("capi-status").await.unwrap();
    let cluster = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster",
        "metadata": {"name": "shop", "namespace": ns},
        "spec": {"controlPlaneRef": {"apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane", "name": "cp"}}
    });
    with_status(cluster, ready("True", "")).await;
    with_status(
        control_plane(&ns, "cp", 3, json!({"local": {}})),
        ready("True", ""),
    )
    .await;
    let md_labels = json!({"cluster.x-k8s.io/cluster-name": "shop"});
    with_status(
        machine_deployment(&ns, "md-0", 2, md_labels),
        ready("False", "WaitingForAvailableMachines"),
    )
    .await;
    for name in ["cp-a", "cp-b", "cp-c"] {
        let labels =
            json!({"cluster.x-k8s.io/cluster-name": "shop", "cluster.x-k8s.io/control-plane": ""});
        with_status(machine(&ns, name, labels, None, None), ready("True", "")).await;
    }
    for (name, state) in [("md-0-x", "True"), ("md-0-y", "False")] {
        let labels = json!({"cluster.x-k8s.io/cluster-name": "shop", "cluster.x-k8s.io/deployment-name": "md-0"});
        with_status(
            machine(&ns, name, labels, None, None),
            ready(state, "NodeNotReady"),
        )
        .await;
    }

    let objects = inventory(&api, &catalog, Some(&ns)).await.unwrap();
    let row = tree(&objects, "shop", TreeOptions::default()).unwrap();
    assert_eq!(row.verdict(), Health::Degraded);
    let json = serde_json::to_value(&row).unwrap();
    assert_eq!(json["label"], "Cluster/shop");
    assert_eq!(json["object"]["apiVersion"], "cluster.x-k8s.io/v1beta1");
    assert_eq!(
        json["children"][0]["label"],
        "ControlPlane - KubeadmControlPlane/cp"
    );
    assert_eq!(json["children"][0]["children"][0]["label"], "3 Machines...");
    let deployment = &json["children"][1]["children"][0];
    assert_eq!(deployment["label"], "MachineDeployment/md-0");
    assert_eq!(
        (&deployment["ready"], &deployment["reason"]),
        (&json!("false"), &json!("WaitingForAvailableMachines"))
    );
    assert_eq!(deployment["children"].as_array().unwrap().len(), 2);
    assert!(
        inventory(&api, &catalog, Some("capi-status-none"))
            .await
            .unwrap()
            .clusters
            .is_empty()
    );
}
