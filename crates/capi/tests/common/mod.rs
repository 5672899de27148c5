//! The test control plane with ClusterAPI v1.5.0's CRDs (from `../shared/testdata/crds`), and
//! builders for the objects a ClusterAPI controller would make.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use capstan_kube::{Api, Catalog, Target};
use capstan_testenv::{ControlPlane, User};
use serde_json::{Value, json};

const MANAGER: &str = "capstan-capi-test";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/crds/cluster-api-v1.5.0")
}

/// The shared plane with ClusterAPI's CRDs Established and served; installed once per test
/// binary. `None`, said on standard error, without `../shared/testdata` (a plain clone): the
/// tests that need the CRDs then do not run.
#[allow(clippy::print_stderr, reason = "a test says which cases it skipped")]
pub async fn plane() -> Option<(&'static ControlPlane, Api, Catalog)> {
    let Some(plane) = ControlPlane::shared_with_crds(&crds_dir())
        .await
        .expect("the test control plane starts with the CRDs")
    else {
        eprintln!(
            "skipped: ClusterAPI's CRDs are not at {} (no ../shared beside the checkout)",
            crds_dir().display()
        );
        return None;
    };
    let api = Api::new(plane.client(User::Admin).unwrap());
    let catalog = Catalog::discover(&api).await.unwrap();
    Some((plane, api, catalog))
}

/// Creates (server-side applies) `object`, then writes its `status` through the subresource,
/// as the object's controller would.
pub async fn create(object: &Value) -> Value {
    let plane = ControlPlane::shared().await.unwrap();
    plane.create(object).await.unwrap()
}

/// Reads an object of a ClusterAPI kind (or a Node) back, at the version the tests write.
pub async fn get(
    api: &Api,
    catalog: &Catalog,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Option<Value> {
    let (group, version) = match kind {
        "KubeadmControlPlane" => ("controlplane.cluster.x-k8s.io", "v1beta1"),
        "Node" => ("", "v1"),
        _ => ("cluster.x-k8s.io", "v1beta1"),
    };
    let resource = catalog.resolve(group, version, kind).unwrap();
    api.get(Target {
        resource: &resource.api,
        namespace,
        name,
    })
    .await
    .unwrap()
}

pub fn machine_deployment(namespace: &str, name: &str, replicas: i32, labels: Value) -> Value {
    json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "clusterName": "shop", "replicas": replicas,
            "selector": {"matchLabels": {"cluster.x-k8s.io/deployment-name": name}},
            "template": {
                "metadata": {"labels": {"cluster.x-k8s.io/deployment-name": name}},
                "spec": {
                    "clusterName": "shop",
                    "bootstrap": {"dataSecretName": "bootstrap"},
                    "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCloudMachineTemplate", "name": "workers"}
                }
            }
        }
    })
}

pub fn control_plane(namespace: &str, name: &str, replicas: i32, etcd: Value) -> Value {
    json!({
        "apiVersion": "controlplane.cluster.x-k8s.io/v1beta1", "kind": "KubeadmControlPlane",
        "metadata": {"name": name, "namespace": namespace, "labels": {"cluster.x-k8s.io/cluster-name": "shop"}},
        "spec": {
            "replicas": replicas, "version": "v1.30.0",
            "machineTemplate": {"infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCloudMachineTemplate", "name": "cp"}},
            "kubeadmConfigSpec": {"clusterConfiguration": {"etcd": etcd}}
        }
    })
}

/// A Machine with `labels` (its owner's), optionally `status.nodeRef` and `spec.providerID`.
pub fn machine(
    namespace: &str,
    name: &str,
    labels: Value,
    node_ref: Option<&str>,
    provider_id: Option<&str>,
) -> Value {
    let mut machine = json!({
        "apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Machine",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "clusterName": "shop",
            "bootstrap": {"dataSecretName": "bootstrap"},
            "infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "HCloudMachine", "name": name}
        }
    });
    if let Some(id) = provider_id {
        machine["spec"]["providerID"] = json!(id);
    }
    if let Some(node) = node_ref {
        machine["status"] = json!({"nodeRef": {"apiVersion": "v1", "kind": "Node", "name": node}});
    }
    machine
}

/// A Node, Ready or not, with annotations and a provider ID.
pub fn node(name: &str, annotations: Value, provider_id: Option<&str>, ready: bool) -> Value {
    let status = if ready { "True" } else { "False" };
    let mut node = json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": annotations},
        "status": {"conditions": [{"type": "Ready", "status": status, "reason": "KubeletReady", "message": "test"}]}
    });
    if let Some(id) = provider_id {
        node["spec"] = json!({"providerID": id});
    }
    node
}
