//! Reading a namespace's ClusterAPI objects for the status tree.

use capstan_kube::{Api, Catalog};
use serde_json::Value;

use crate::scaling::resource;
use crate::status::Inventory;
use crate::{Error, Result};

/// The ClusterAPI objects of `namespace` (every namespace when `None`), kind by kind at the
/// version discovery chose. Kinds the server does not serve (no MachineHealthChecks, a control
/// plane provider other than kubeadm) are empty, except Clusters.
///
/// # Errors
///
/// [`Error::NotServed`] without ClusterAPI's Cluster; [`Error::Request`] when a list fails.
pub async fn inventory(api: &Api, catalog: &Catalog, namespace: Option<&str>) -> Result<Inventory> {
    resource(catalog, "cluster.x-k8s.io", "Cluster")?;
    let list = async |group: &str, kind: &str| -> Result<Vec<Value>> {
        let Ok(resource) = resource(catalog, group, kind) else {
            return Ok(Vec::new());
        };
        let items = api
            .list(&resource.api, "")
            .await
            .map_err(|error| Error::Request {
                what: format!("list {kind}s"),
                error,
            })?;
        Ok(items
            .into_iter()
            .filter(|item| {
                namespace.is_none_or(|namespace| item["metadata"]["namespace"] == namespace)
            })
            .map(|mut item| {
                // List items of built-in types leave these out; the tree needs them.
                item["apiVersion"] = resource.api.api_version.clone().into();
                item["kind"] = kind.into();
                item
            })
            .collect())
    };
    Ok(Inventory {
        clusters: list("cluster.x-k8s.io", "Cluster").await?,
        control_planes: list("controlplane.cluster.x-k8s.io", "KubeadmControlPlane").await?,
        machine_deployments: list("cluster.x-k8s.io", "MachineDeployment").await?,
        machine_sets: list("cluster.x-k8s.io", "MachineSet").await?,
        machines: list("cluster.x-k8s.io", "Machine").await?,
        health_checks: list("cluster.x-k8s.io", "MachineHealthCheck").await?,
    })
}
