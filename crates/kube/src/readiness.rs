//! Whether a live object is ready: its `status.conditions`, and the rollout rules of the
//! built-in workloads.

use serde_json::Value;

/// One entry of an object's `status.conditions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Condition<'v> {
    /// `True`, `False` or `Unknown`.
    pub status: &'v str,
    /// Why, in one word.
    pub reason: Option<&'v str>,
    /// Why, for people.
    pub message: Option<&'v str>,
    /// How bad a `False` is, where ClusterAPI's v1beta1 conditions say: `Error`, `Warning` or
    /// `Info`.
    pub severity: Option<&'v str>,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: Option<&'v str>,
}

impl Condition<'_> {
    /// Whether the condition holds (`status: "True"`).
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// The condition of type `name` (`Ready`, `Established`, `Complete`, ...) of a live object.
pub fn condition<'v>(object: &'v Value, name: &str) -> Option<Condition<'v>> {
    let text = |c: &'v Value, key: &str| c.get(key).and_then(Value::as_str);
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| text(c, "type") == Some(name))
        .map(|c| Condition {
            status: text(c, "status").unwrap_or_default(),
            reason: text(c, "reason"),
            message: text(c, "message"),
            severity: text(c, "severity").filter(|severity| !severity.is_empty()),
            last_transition_time: text(c, "lastTransitionTime"),
        })
}

/// How far a live object is from ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Readiness {
    /// Rolled out, complete, Established or `Ready`; or a kind without readiness rules.
    Ready,
    /// On its way.
    Progressing,
    /// It will not get there without help (a failed Job, an exceeded progress deadline).
    Failed,
}

/// The [`Readiness`] of a live object, and why when it is not ready.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Assessment {
    /// How far it is.
    pub readiness: Readiness,
    /// Why, when it is not ready.
    pub message: Option<String>,
}

impl Assessment {
    fn new(readiness: Readiness, message: impl Into<Option<String>>) -> Self {
        Self {
            readiness,
            message: message.into(),
        }
    }
}

/// Assesses a live object (with `apiVersion` and `kind`, which list items leave out):
/// Deployments, StatefulSets and DaemonSets by their rollout, Jobs by `Complete`/`Failed`,
/// CustomResourceDefinitions by `Established`, anything else by its `Ready` condition if it
/// has one.
pub fn assess(object: &Value) -> Assessment {
    let int = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let text = |key: &str| object.get(key).and_then(Value::as_str).unwrap_or_default();
    let group_kind = (text("apiVersion"), text("kind"));
    if matches!(group_kind.1, "Deployment" | "StatefulSet" | "DaemonSet")
        && group_kind.0 == "apps/v1"
        && int("/status/observedGeneration") < int("/metadata/generation")
    {
        return Assessment::new(
            Readiness::Progressing,
            "the controller has not seen the new generation".to_owned(),
        );
    }
    let progressing = |message: String| Assessment::new(Readiness::Progressing, message);
    let message = |c: Condition<'_>| c.message.map(str::to_owned);
    let want = || {
        object
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    };
    match group_kind {
        ("apps/v1", "Deployment") => {
            if let Some(c) = condition(object, "Progressing").filter(|c| c.status == "False") {
                return Assessment::new(Readiness::Failed, message(c));
            }
            let want = want();
            let (updated, available) = (
                int("/status/updatedReplicas"),
                int("/status/availableReplicas"),
            );
            if updated < want || available < want || int("/status/replicas") > want {
                return progressing(format!(
                    "{available} of {want} replicas available, {updated} updated"
                ));
            }
        }
        ("apps/v1", "StatefulSet") => {
            let want = want();
            let (ready, updated) = (int("/status/readyReplicas"), int("/status/updatedReplicas"));
            if ready < want || updated < want {
                return progressing(format!(
                    "{ready} of {want} replicas ready, {updated} updated"
                ));
            }
        }
        ("apps/v1", "DaemonSet") => {
            let want = int("/status/desiredNumberScheduled");
            let (updated, available) = (
                int("/status/updatedNumberScheduled"),
                int("/status/numberAvailable"),
            );
            if updated < want || available < want {
                return progressing(format!(
                    "{available} of {want} pods available, {updated} updated"
                ));
            }
        }
        ("batch/v1", "Job") => {
            if let Some(c) = condition(object, "Failed").filter(Condition::is_true) {
                return Assessment::new(Readiness::Failed, message(c));
            }
            if !condition(object, "Complete").is_some_and(|c| c.is_true()) {
                return progressing("not complete".to_owned());
            }
        }
        (api_version, "CustomResourceDefinition")
            if api_version.starts_with("apiextensions.k8s.io/") =>
        {
            if !condition(object, "Established").is_some_and(|c| c.is_true()) {
                return progressing("not Established".to_owned());
            }
        }
        _ => {
            if let Some(c) = condition(object, "Ready").filter(|c| !c.is_true()) {
                return progressing(message(c).unwrap_or_else(|| "not Ready".to_owned()));
            }
        }
    }
    Assessment::new(Readiness::Ready, None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Readiness, assess, condition};

    #[test]
    fn deployments_are_ready_when_every_replica_is_updated_and_available() {
        let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(assess(&deployment).readiness, Readiness::Progressing);
        deployment["status"]["availableReplicas"] = json!(2);
        assert_eq!(assess(&deployment).readiness, Readiness::Ready);
        deployment["metadata"]["generation"] = json!(3);
        assert_eq!(assess(&deployment).readiness, Readiness::Progressing);
    }

    #[test]
    fn jobs_fail_or_complete_by_condition() {
        let job = |kind: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job",
            "status": {"conditions": [{"type": kind, "status": "True", "message": "m"}]}})
        };
        assert_eq!(assess(&job("Complete")).readiness, Readiness::Ready);
        assert_eq!(assess(&job("Failed")).readiness, Readiness::Failed);
    }

    #[test]
    fn other_kinds_follow_their_ready_condition_or_are_ready_when_present() {
        let cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "status": {"conditions": [{"type": "Ready", "status": "False", "message": "issuing"}]}});
        let assessment = assess(&cert);
        assert_eq!(
            (assessment.readiness, assessment.message.as_deref()),
            (Readiness::Progressing, Some("issuing"))
        );
        assert_eq!(
            assess(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).readiness,
            Readiness::Ready
        );
    }

    #[test]
    fn a_condition_is_found_by_its_type_with_reason_and_message() {
        let crd = json!({"status": {"conditions": [
            {"type": "NamesAccepted", "status": "True"},
            {"type": "Established", "status": "False", "reason": "Installing", "message": "wait"}]}});
        let established = condition(&crd, "Established").unwrap();
        assert!(!established.is_true());
        assert_eq!(
            (established.reason, established.message),
            (Some("Installing"), Some("wait"))
        );
        assert!(condition(&crd, "NamesAccepted").unwrap().is_true());
        assert!(condition(&crd, "Ready").is_none());
    }
}
