//! The order objects are applied in.

/// The apply phase of a kind. Objects are applied phase by phase, in this order, and deleted in
/// the reverse order; within a phase they keep their source order.
///
/// The order makes every object's prerequisites exist first: a custom resource needs its
/// CustomResourceDefinition, a namespaced object its Namespace, a Pod's ServiceAccount and
/// ConfigMaps must exist before the workload that mounts them, and an admission webhook must not
/// intercept requests before the Service that answers it has endpoints, so webhooks come last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Phase {
    /// CustomResourceDefinitions.
    CustomResourceDefinitions,
    /// Namespaces.
    Namespaces,
    /// Cluster-wide policy and RBAC: ClusterRoles and their bindings (and namespaced Roles and
    /// RoleBindings), PriorityClasses, StorageClasses, PersistentVolumes, IngressClasses,
    /// RuntimeClasses, PodSecurityPolicies, API priority and fairness.
    ClusterPolicy,
    /// Namespaced configuration: ServiceAccounts, Secrets, ConfigMaps, quotas and limits,
    /// NetworkPolicies, PersistentVolumeClaims, PodDisruptionBudgets.
    Configuration,
    /// Workloads, Services and every other built-in kind.
    Workloads,
    /// Custom resources: kinds defined by a CustomResourceDefinition in the same manifests, and
    /// kinds outside the built-in API groups.
    CustomResources,
    /// APIServices and admission webhooks and policies, after the resources they intercept.
    Admission,
}

impl Phase {
    /// The phase of `group`/`kind`. `custom` says the manifests hold the kind's
    /// CustomResourceDefinition, which settles it for groups that look built-in (Gateway API
    /// lives in `gateway.networking.k8s.io`, yet is installed by CRDs).
    pub fn of(group: &str, kind: &str, custom: bool) -> Self {
        match (group, kind) {
            _ if custom => Self::CustomResources,
            ("apiextensions.k8s.io", "CustomResourceDefinition") => Self::CustomResourceDefinitions,
            ("", "Namespace") => Self::Namespaces,
            ("rbac.authorization.k8s.io", _)
            | ("", "PersistentVolume")
            | ("scheduling.k8s.io", "PriorityClass")
            | ("storage.k8s.io", "StorageClass" | "CSIDriver")
            | ("policy", "PodSecurityPolicy")
            | ("networking.k8s.io", "IngressClass")
            | ("node.k8s.io", "RuntimeClass")
            | ("flowcontrol.apiserver.k8s.io", _) => Self::ClusterPolicy,
            ("", "ServiceAccount" | "Secret" | "ConfigMap" | "ResourceQuota" | "LimitRange")
            | ("", "PersistentVolumeClaim")
            | ("networking.k8s.io", "NetworkPolicy")
            | ("policy", "PodDisruptionBudget") => Self::Configuration,
            ("apiregistration.k8s.io", "APIService") | ("admissionregistration.k8s.io", _) => {
                Self::Admission
            }
            _ if is_built_in_group(group) => Self::Workloads,
            _ => Self::CustomResources,
        }
    }
}

/// Kubernetes reserves the core group, unqualified names and `*.k8s.io` for its own APIs
/// (`*.x-k8s.io`, used by SIG projects such as ClusterAPI, is not reserved).
fn is_built_in_group(group: &str) -> bool {
    !group.contains('.') || group.ends_with(".k8s.io")
}

#[cfg(test)]
mod tests {
    use super::Phase;

    #[test]
    fn kinds_fall_into_the_documented_phases() {
        let cases = [
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                Phase::CustomResourceDefinitions,
            ),
            ("", "Namespace", Phase::Namespaces),
            (
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                Phase::ClusterPolicy,
            ),
            ("scheduling.k8s.io", "PriorityClass", Phase::ClusterPolicy),
            ("storage.k8s.io", "StorageClass", Phase::ClusterPolicy),
            ("", "ServiceAccount", Phase::Configuration),
            ("", "Secret", Phase::Configuration),
            ("", "ConfigMap", Phase::Configuration),
            ("", "Service", Phase::Workloads),
            ("apps", "Deployment", Phase::Workloads),
            ("batch", "CronJob", Phase::Workloads),
            (
                "cluster.x-k8s.io",
                "MachineDeployment",
                Phase::CustomResources,
            ),
            ("cert-manager.io", "ClusterIssuer", Phase::CustomResources),
            ("apiregistration.k8s.io", "APIService", Phase::Admission),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
                Phase::Admission,
            ),
        ];
        for (group, kind, phase) in cases {
            assert_eq!(Phase::of(group, kind, false), phase, "{group}/{kind}");
        }
    }

    #[test]
    fn kinds_with_a_crd_in_the_manifests_are_custom_resources() {
        assert_eq!(
            Phase::of("gateway.networking.k8s.io", "HTTPRoute", false),
            Phase::Workloads
        );
        assert_eq!(
            Phase::of("gateway.networking.k8s.io", "HTTPRoute", true),
            Phase::CustomResources
        );
    }

    #[test]
    fn phases_are_ordered_for_apply() {
        assert!(Phase::CustomResourceDefinitions < Phase::Namespaces);
        assert!(Phase::Namespaces < Phase::ClusterPolicy);
        assert!(Phase::Configuration < Phase::Workloads);
        assert!(Phase::CustomResources < Phase::Admission);
    }
}
