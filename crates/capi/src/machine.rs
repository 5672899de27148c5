//! Which Machine runs a Node, and which object owns the Machine's replica count.
//!
//! ClusterAPI indexes Machines by node name and provider ID only in its own controller's cache;
//! the API server offers no field selector for either, so the Machines are listed and matched
//! here, in ClusterAPI's order of preference.

use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use serde_json::Value;

use crate::scale::ScaleKind;

/// The Machine's name, written on its Node by the Machine controller.
pub const MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/machine";
/// The namespace of the Node's Cluster (and so of its Machine).
pub const CLUSTER_NAMESPACE_ANNOTATION: &str = "cluster.x-k8s.io/cluster-namespace";
/// Marks a Machine to go first when its owner scales down; only its presence counts.
pub const DELETE_MACHINE_ANNOTATION: &str = "cluster.x-k8s.io/delete-machine";
const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";

/// How a Node was matched to its Machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Route {
    /// The Node's `cluster.x-k8s.io/machine` annotation.
    Annotation,
    /// The Machine's `status.nodeRef.name`.
    NodeRef,
    /// The same `spec.providerID` on both.
    ProviderId,
}

/// The Machine (namespace, name) the Node's annotations name, if they do.
pub fn annotated_machine(node: &Node) -> Option<(&str, &str)> {
    let annotations = node.metadata.annotations.as_ref()?;
    let name = annotations.get(MACHINE_ANNOTATION)?;
    let namespace = annotations.get(CLUSTER_NAMESPACE_ANNOTATION)?;
    Some((namespace.as_str(), name.as_str()))
}

/// The Machine among `machines` (live objects as JSON) that runs `node`, and how it was found:
/// the annotation, then `status.nodeRef`, then the provider ID.
pub fn find_machine<'a>(node: &Node, machines: &'a [Value]) -> Option<(&'a Value, Route)> {
    let named = |namespace: &str, name: &str| {
        machines.iter().find(|machine| {
            machine["metadata"]["namespace"] == namespace && machine["metadata"]["name"] == name
        })
    };
    if let Some(machine) =
        annotated_machine(node).and_then(|(namespace, name)| named(namespace, name))
    {
        return Some((machine, Route::Annotation));
    }
    let node_name = node.metadata.name.as_deref()?;
    if let Some(machine) = machines
        .iter()
        .find(|machine| machine["status"]["nodeRef"]["name"] == node_name)
    {
        return Some((machine, Route::NodeRef));
    }
    let provider_id = node.spec.as_ref()?.provider_id.as_deref()?;
    machines
        .iter()
        .find(|machine| machine["spec"]["providerID"] == provider_id)
        .map(|machine| (machine, Route::ProviderId))
}

/// The object whose replica count keeps `machine` alive, which a removal scales down: its
/// MachineDeployment (a MachineSet's count is the Deployment's to set), else its MachineSet or
/// KubeadmControlPlane. `None` for a Machine nothing owns.
pub fn scaling_owner(machine: &Value) -> Option<(ScaleKind, String)> {
    if let Some(deployment) = machine["metadata"]["labels"][DEPLOYMENT_NAME_LABEL].as_str() {
        return Some((ScaleKind::MachineDeployment, deployment.to_owned()));
    }
    let owners = machine["metadata"]["ownerReferences"].as_array()?;
    let owner = owners.iter().find(|owner| owner["controller"] == true)?;
    let kind = ScaleKind::parse(owner["kind"].as_str()?)?;
    Some((kind, owner["name"].as_str()?.to_owned()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(annotations: Value, provider_id: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "worker-1", "annotations": annotations},
            "spec": {"providerID": provider_id}
        }))
        .unwrap()
    }

    fn machine(name: &str, node_ref: Option<&str>, provider_id: &str) -> Value {
        json!({
            "metadata": {"name": name, "namespace": "fleet"},
            "spec": {"providerID": provider_id},
            "status": {"nodeRef": node_ref.map(|name| json!({"kind": "Node", "name": name}))}
        })
    }

    fn found(node: &Node, machines: &[Value]) -> Option<(String, Route)> {
        find_machine(node, machines).map(|(machine, route)| {
            (
                machine["metadata"]["name"].as_str().unwrap().to_owned(),
                route,
            )
        })
    }

    #[test]
    fn the_annotation_wins_over_node_ref_and_provider_id() {
        let annotated = node(
            json!({MACHINE_ANNOTATION: "m-a", CLUSTER_NAMESPACE_ANNOTATION: "fleet"}),
            "hcloud://1",
        );
        let machines = [
            machine("m-ref", Some("worker-1"), "hcloud://1"),
            machine("m-a", None, ""),
        ];
        assert_eq!(
            found(&annotated, &machines),
            Some(("m-a".into(), Route::Annotation))
        );
    }

    #[test]
    fn without_annotations_node_ref_comes_before_provider_id() {
        let bare = node(json!({}), "hcloud://1");
        let machines = [
            machine("m-id", None, "hcloud://1"),
            machine("m-ref", Some("worker-1"), ""),
        ];
        assert_eq!(
            found(&bare, &machines),
            Some(("m-ref".into(), Route::NodeRef))
        );
        let machines = [
            machine("m-other", Some("worker-2"), ""),
            machine("m-id", None, "hcloud://1"),
        ];
        assert_eq!(
            found(&bare, &machines),
            Some(("m-id".into(), Route::ProviderId))
        );
        assert_eq!(
            found(&bare, &[machine("m-x", Some("worker-2"), "hcloud://2")]),
            None
        );
    }

    #[test]
    fn an_annotation_naming_a_missing_machine_falls_back_to_the_other_routes() {
        let stale = node(
            json!({MACHINE_ANNOTATION: "gone", CLUSTER_NAMESPACE_ANNOTATION: "fleet"}),
            "hcloud://1",
        );
        let machines = [machine("m-ref", Some("worker-1"), "")];
        assert_eq!(
            found(&stale, &machines),
            Some(("m-ref".into(), Route::NodeRef))
        );
    }

    #[test]
    fn a_deployment_machine_is_scaled_down_through_its_deployment() {
        let of_deployment = json!({"metadata": {
            "labels": {DEPLOYMENT_NAME_LABEL: "md-0"},
            "ownerReferences": [{"kind": "MachineSet", "name": "md-0-abc", "controller": true}]
        }});
        assert_eq!(
            scaling_owner(&of_deployment),
            Some((ScaleKind::MachineDeployment, "md-0".into()))
        );
        let control_plane = json!({"metadata": {"ownerReferences": [
            {"kind": "KubeadmControlPlane", "name": "cp", "controller": true}
        ]}});
        assert_eq!(
            scaling_owner(&control_plane),
            Some((ScaleKind::KubeadmControlPlane, "cp".into()))
        );
        assert_eq!(scaling_owner(&json!({"metadata": {}})), None);
    }
}
