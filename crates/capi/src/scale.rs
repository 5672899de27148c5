//! What may be scaled, to which count: ClusterAPI's webhooks and controllers, checked first.
//!
//! A scale the server would refuse, or that a controller would undo a moment later, is refused
//! here with the place to make the change instead.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Set on objects the Cluster topology controller manages: it reverts any other change.
const TOPOLOGY_OWNED_LABEL: &str = "topology.cluster.x-k8s.io/owned";
/// The name of a MachineDeployment's entry in `Cluster.spec.topology.workers`.
const TOPOLOGY_DEPLOYMENT_LABEL: &str = "topology.cluster.x-k8s.io/deployment-name";
const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";

/// The ClusterAPI kinds with a `/scale` subresource that capstan scales.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub enum ScaleKind {
    /// `cluster.x-k8s.io` MachineDeployment (`md`).
    MachineDeployment,
    /// `cluster.x-k8s.io` MachineSet (`ms`).
    MachineSet,
    /// `controlplane.cluster.x-k8s.io` KubeadmControlPlane (`kcp`).
    KubeadmControlPlane,
}

impl ScaleKind {
    /// The kind a command line names: the kind, its plural or its short name, in any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "machinedeployment" | "machinedeployments" | "md" => Some(Self::MachineDeployment),
            "machineset" | "machinesets" | "ms" => Some(Self::MachineSet),
            "kubeadmcontrolplane" | "kubeadmcontrolplanes" | "kcp" => {
                Some(Self::KubeadmControlPlane)
            }
            _ => None,
        }
    }

    /// The kind as Kubernetes spells it.
    pub fn kind(self) -> &'static str {
        match self {
            Self::MachineDeployment => "MachineDeployment",
            Self::MachineSet => "MachineSet",
            Self::KubeadmControlPlane => "KubeadmControlPlane",
        }
    }

    /// The API group; its version is discovery's choice (v1beta1 or v1beta2).
    pub fn group(self) -> &'static str {
        match self {
            Self::MachineDeployment | Self::MachineSet => "cluster.x-k8s.io",
            Self::KubeadmControlPlane => "controlplane.cluster.x-k8s.io",
        }
    }

    /// The resource's plural, as in its URL.
    pub fn plural(self) -> &'static str {
        match self {
            Self::MachineDeployment => "machinedeployments",
            Self::MachineSet => "machinesets",
            Self::KubeadmControlPlane => "kubeadmcontrolplanes",
        }
    }
}

/// The replica count asked for: absolute (`--replicas N`) or relative (`--by +N`/`--by -N`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Exactly this many.
    To(i32),
    /// This many more (or fewer, when negative) than now.
    By(i32),
}

impl Change {
    /// The count `current` becomes.
    ///
    /// # Errors
    ///
    /// [`Refusal::Negative`] when the count would drop below zero.
    pub fn apply(self, current: i32) -> Result<i32, Refusal> {
        let desired = match self {
            Self::To(count) => Some(count),
            Self::By(delta) => current.checked_add(delta),
        };
        desired
            .filter(|count| *count >= 0)
            .ok_or(Refusal::Negative {
                current,
                change: self,
            })
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::To(count) => write!(f, "{count}"),
            Self::By(delta) => write!(f, "{delta:+}"),
        }
    }
}

/// Why a scale is refused before any request is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The change would leave fewer than zero replicas.
    Negative {
        /// The count now.
        current: i32,
        /// The change asked for.
        change: Change,
    },
    /// A control plane needs at least one machine (KubeadmControlPlane's webhook).
    ControlPlaneZero,
    /// A control plane with etcd on its machines needs an odd count for quorum (the webhook).
    ControlPlaneEven {
        /// The count asked for.
        replicas: i32,
    },
    /// The Cluster's topology owns the count: the topology controller reverts a direct scale.
    TopologyManaged {
        /// The Cluster.
        cluster: String,
        /// The field of the Cluster that holds the count.
        field: String,
    },
    /// A MachineDeployment owns this MachineSet and resets its count.
    OwnedByDeployment {
        /// The MachineDeployment to scale instead.
        deployment: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Negative { current, change } => write!(
                f,
                "{change} replicas from {current} would leave fewer than none"
            ),
            Self::ControlPlaneZero => f.write_str("a control plane cannot have 0 replicas"),
            Self::ControlPlaneEven { replicas } => write!(
                f,
                "a control plane with stacked etcd needs an odd number of replicas for etcd \
                 quorum, not {replicas}"
            ),
            Self::TopologyManaged { cluster, field } => write!(
                f,
                "the topology of Cluster {cluster} manages the replica count and would revert \
                 the change: change `{field}` of the Cluster instead"
            ),
            Self::OwnedByDeployment { deployment } => write!(
                f,
                "MachineDeployment {deployment} owns this MachineSet and would reset its \
                 count: scale the MachineDeployment instead"
            ),
        }
    }
}

/// Checks that `object`, a live object of `kind`, may be scaled to `desired`.
///
/// # Errors
///
/// A [`Refusal`] when ClusterAPI's webhooks would refuse the count, or a controller would undo
/// it.
pub fn check(kind: ScaleKind, object: &Value, desired: i32) -> Result<(), Refusal> {
    let labels = &object["metadata"]["labels"];
    if labels.get(TOPOLOGY_OWNED_LABEL).is_some() {
        let cluster = labels[CLUSTER_NAME_LABEL]
            .as_str()
            .or_else(|| object["spec"]["clusterName"].as_str())
            .unwrap_or("(unknown)");
        let field = match kind {
            ScaleKind::KubeadmControlPlane => "spec.topology.controlPlane.replicas".to_owned(),
            _ => format!(
                "spec.topology.workers.machineDeployments[name={}].replicas",
                labels[TOPOLOGY_DEPLOYMENT_LABEL].as_str().unwrap_or("?")
            ),
        };
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        return Err(Refusal::TopologyManaged {
            cluster: format!("{namespace}/{cluster}"),
            field,
        });
    }
    match kind {
        ScaleKind::KubeadmControlPlane if desired == 0 => Err(Refusal::ControlPlaneZero),
        ScaleKind::KubeadmControlPlane if desired % 2 == 0 && stacked_etcd(object) => {
            Err(Refusal::ControlPlaneEven { replicas: desired })
        }
        ScaleKind::MachineSet => match deployment_owner(object) {
            Some(deployment) => Err(Refusal::OwnedByDeployment { deployment }),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether etcd runs on the control plane's machines: it does unless configured as external.
fn stacked_etcd(object: &Value) -> bool {
    object["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["etcd"]["external"].is_null()
}

fn deployment_owner(object: &Value) -> Option<String> {
    let owners = object["metadata"]["ownerReferences"].as_array()?;
    owners
        .iter()
        .find(|owner| owner["kind"] == "MachineDeployment" && owner["controller"] == true)
        .and_then(|owner| owner["name"].as_str())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn control_plane(etcd: Value) -> Value {
        json!({
            "metadata": {"name": "cp", "namespace": "fleet"},
            "spec": {"replicas": 3, "kubeadmConfigSpec": {"clusterConfiguration": {"etcd": etcd}}}
        })
    }

    #[test]
    fn kinds_are_named_as_kubectl_names_them() {
        for text in ["MachineDeployment", "machinedeployments", "md", "MD"] {
            assert_eq!(ScaleKind::parse(text), Some(ScaleKind::MachineDeployment));
        }
        assert_eq!(
            ScaleKind::parse("kcp"),
            Some(ScaleKind::KubeadmControlPlane)
        );
        assert_eq!(ScaleKind::parse("ms"), Some(ScaleKind::MachineSet));
        assert_eq!(ScaleKind::parse("deployment"), None);
    }

    #[test]
    fn a_change_is_absolute_or_relative_and_never_below_zero() {
        assert_eq!(Change::To(5).apply(2), Ok(5));
        assert_eq!(Change::By(2).apply(3), Ok(5));
        assert_eq!(Change::By(-3).apply(3), Ok(0));
        let refusal = Change::By(-4).apply(3).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "-4 replicas from 3 would leave fewer than none"
        );
        assert!(Change::To(-1).apply(3).is_err());
        assert!(Change::By(i32::MAX).apply(1).is_err());
    }

    #[test]
    fn a_stacked_etcd_control_plane_refuses_zero_and_even_counts() {
        let stacked = control_plane(json!({"local": {}}));
        assert_eq!(
            check(ScaleKind::KubeadmControlPlane, &stacked, 0),
            Err(Refusal::ControlPlaneZero)
        );
        assert_eq!(
            check(ScaleKind::KubeadmControlPlane, &stacked, 4),
            Err(Refusal::ControlPlaneEven { replicas: 4 })
        );
        assert_eq!(check(ScaleKind::KubeadmControlPlane, &stacked, 5), Ok(()));
        let external = control_plane(json!({"external": {"endpoints": ["https://etcd:2379"]}}));
        assert_eq!(check(ScaleKind::KubeadmControlPlane, &external, 2), Ok(()));
        assert_eq!(
            check(ScaleKind::KubeadmControlPlane, &external, 0),
            Err(Refusal::ControlPlaneZero)
        );
    }

    #[test]
    fn a_topology_managed_object_points_at_the_cluster_field() {
        let managed = json!({
            "metadata": {"name": "shop-md-0-x7", "namespace": "fleet", "labels": {
                TOPOLOGY_OWNED_LABEL: "", TOPOLOGY_DEPLOYMENT_LABEL: "md-0", CLUSTER_NAME_LABEL: "shop"
            }},
            "spec": {"replicas": 2}
        });
        let refusal = check(ScaleKind::MachineDeployment, &managed, 3).unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "the topology of Cluster fleet/shop manages the replica count and would revert the \
             change: change `spec.topology.workers.machineDeployments[name=md-0].replicas` of \
             the Cluster instead"
        );
        let refusal = check(ScaleKind::KubeadmControlPlane, &managed, 3).unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("`spec.topology.controlPlane.replicas`")
        );
    }

    #[test]
    fn a_machine_set_of_a_deployment_is_scaled_through_the_deployment() {
        let owned = json!({"metadata": {"name": "md-0-abc", "ownerReferences": [
            {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "MachineDeployment", "name": "md-0", "uid": "1", "controller": true}
        ]}});
        assert_eq!(
            check(ScaleKind::MachineSet, &owned, 1),
            Err(Refusal::OwnedByDeployment {
                deployment: "md-0".into()
            })
        );
        assert_eq!(
            check(ScaleKind::MachineSet, &json!({"metadata": {}}), 1),
            Ok(())
        );
    }
}
