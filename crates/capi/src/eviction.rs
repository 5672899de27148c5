//! What the server's answer to an eviction means, and who holds a pod that cannot be evicted.
//!
//! kubectl retries a disruption budget's 429 and repeats "Cannot evict pod" until it is
//! stopped; a [`BudgetReport`] instead names the budget, what it demands and what it has, and
//! the pods of the node it holds, so an operator knows what to relax.

use std::collections::BTreeMap;

use capstan_manifest::ObjectId;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Status};
use kube::core::{Selector, SelectorExt as _};
use serde::Serialize;
use serde_json::Value;

use crate::drain::PodRef;

/// The server's answer to one eviction request, as a drain acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Answer {
    /// Accepted: wait for the pod to go.
    Evicted,
    /// The pod is already gone.
    Gone,
    /// A disruption budget forbids it now (429): retry later. `causes` are the budgets' own
    /// words ("The disruption budget web needs 2 healthy pods and has 2 currently").
    Budget {
        /// The server's message.
        message: String,
        /// The budgets' messages.
        causes: Vec<String>,
    },
    /// The pod's namespace is being deleted (403): retry, or wait if the pod is deleting.
    NamespaceTerminating,
    /// Anything else, including a pod under two budgets, which the server never evicts (500):
    /// the eviction of this pod fails.
    Failed {
        /// The HTTP status.
        code: u16,
        /// The server's message.
        message: String,
    },
}

impl Answer {
    /// Reads an answer from its HTTP status and body (a `Status` for every failure).
    pub fn new(code: u16, body: &[u8]) -> Self {
        if (200..300).contains(&code) {
            return Self::Evicted;
        }
        let status: Status = serde_json::from_slice(body).unwrap_or_default();
        let causes = status
            .details
            .and_then(|details| details.causes)
            .unwrap_or_default();
        let message = status
            .message
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        match code {
            404 => Self::Gone,
            429 => Self::Budget {
                message,
                causes: causes
                    .into_iter()
                    .filter_map(|cause| cause.message)
                    .collect(),
            },
            403 if causes
                .iter()
                .any(|cause| cause.reason.as_deref() == Some("NamespaceTerminating")) =>
            {
                Self::NamespaceTerminating
            }
            _ => Self::Failed { code, message },
        }
    }
}

/// A disruption budget that holds pods of a drain, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct BudgetReport {
    /// The PodDisruptionBudget.
    pub object: ObjectId,
    /// `spec.minAvailable`, as written (a count or a percentage).
    pub min_available: Option<Value>,
    /// `spec.maxUnavailable`, as written.
    pub max_unavailable: Option<Value>,
    /// `status.currentHealthy`: pods the budget counts as healthy now.
    pub current_healthy: Option<i64>,
    /// `status.desiredHealthy`: pods it must keep healthy.
    pub desired_healthy: Option<i64>,
    /// `status.disruptionsAllowed` (`podDisruptionsAllowed` before policy/v1).
    pub disruptions_allowed: Option<i64>,
    /// The drain's pods it selects, still waiting.
    pub pods: Vec<PodRef>,
}

/// The budgets among `budgets` (live PodDisruptionBudgets as JSON, either policy version) that
/// select any of `blocked` (waiting pods, with their labels), each with the pods it holds.
pub fn budget_reports(
    budgets: &[Value],
    blocked: &[(PodRef, BTreeMap<String, String>)],
) -> Vec<BudgetReport> {
    budgets
        .iter()
        .filter_map(|budget| {
            let namespace = budget["metadata"]["namespace"].as_str()?;
            let selector = selector(&budget["spec"]["selector"])?;
            let pods: Vec<PodRef> = blocked
                .iter()
                .filter(|(pod, labels)| {
                    pod.object.namespace() == Some(namespace) && selector.matches(labels)
                })
                .map(|(pod, _)| pod.clone())
                .collect();
            (!pods.is_empty()).then(|| report(budget, namespace, pods))
        })
        .collect()
}

/// A budget's selector; an empty one selects every pod of its namespace (policy/v1), and a
/// missing or unreadable one none.
fn selector(value: &Value) -> Option<Selector> {
    let selector: LabelSelector = serde_json::from_value(value.clone()).ok()?;
    Selector::try_from(selector).ok()
}

fn report(budget: &Value, namespace: &str, pods: Vec<PodRef>) -> BudgetReport {
    let spec = &budget["spec"];
    let status = &budget["status"];
    let present = |value: &Value| (!value.is_null()).then(|| value.clone());
    BudgetReport {
        object: ObjectId::new(
            budget["apiVersion"].as_str().unwrap_or("policy/v1"),
            "PodDisruptionBudget",
            Some(namespace),
            budget["metadata"]["name"].as_str().unwrap_or_default(),
        ),
        min_available: present(&spec["minAvailable"]),
        max_unavailable: present(&spec["maxUnavailable"]),
        current_healthy: status["currentHealthy"].as_i64(),
        desired_healthy: status["desiredHealthy"].as_i64(),
        disruptions_allowed: status["disruptionsAllowed"]
            .as_i64()
            .or_else(|| status["podDisruptionsAllowed"].as_i64()),
        pods,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_budget_refusal_keeps_the_budgets_own_words() {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429,
            "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}]}
        });
        assert_eq!(
            Answer::new(429, body.to_string().as_bytes()),
            Answer::Budget {
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                causes: vec![
                    "The disruption budget web needs 2 healthy pods and has 2 currently".into()
                ],
            }
        );
    }

    #[test]
    fn gone_accepted_terminating_and_two_budgets_are_told_apart() {
        assert_eq!(Answer::new(201, b"{}"), Answer::Evicted);
        assert_eq!(Answer::new(404, b"{}"), Answer::Gone);
        let terminating = json!({"code": 403, "message": "forbidden",
            "details": {"causes": [{"reason": "NamespaceTerminating", "message": "namespace shop is being terminated"}]}});
        assert_eq!(
            Answer::new(403, terminating.to_string().as_bytes()),
            Answer::NamespaceTerminating
        );
        let two = json!({"code": 500, "message":
            "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."});
        assert!(matches!(
            Answer::new(500, two.to_string().as_bytes()),
            Answer::Failed { code: 500, message } if message.contains("more than one PodDisruptionBudget")
        ));
        assert_eq!(
            Answer::new(403, b"forbidden\n"),
            Answer::Failed {
                code: 403,
                message: "forbidden".into()
            }
        );
    }

    fn blocked(name: &str, namespace: &str, app: &str) -> (PodRef, BTreeMap<String, String>) {
        let pod = PodRef {
            object: ObjectId::new("v1", "Pod", Some(namespace), name),
            uid: format!("uid-{name}"),
        };
        (pod, BTreeMap::from([("app".to_owned(), app.to_owned())]))
    }

    #[test]
    fn a_report_names_the_budget_its_demand_and_the_pods_it_holds() {
        let budgets = [
            json!({
                "apiVersion": "policy/v1beta1",
                "metadata": {"name": "web", "namespace": "shop"},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
                "status": {"currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0}
            }),
            json!({
                "metadata": {"name": "db", "namespace": "shop"},
                "spec": {"maxUnavailable": "10%", "selector": {"matchLabels": {"app": "db"}}}
            }),
        ];
        let pods = [
            blocked("web-1", "shop", "web"),
            blocked("web-2", "other", "web"),
            blocked("cache-1", "shop", "cache"),
        ];
        let reports = budget_reports(&budgets, &pods);
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert_eq!(
            report.object.to_string(),
            "policy/PodDisruptionBudget shop/web"
        );
        assert_eq!(report.min_available, Some(json!(2)));
        assert_eq!(report.max_unavailable, None);
        assert_eq!(
            (
                report.current_healthy,
                report.desired_healthy,
                report.disruptions_allowed
            ),
            (Some(2), Some(2), Some(0))
        );
        let held: Vec<&str> = report.pods.iter().map(|pod| pod.object.name()).collect();
        assert_eq!(held, ["web-1"]);
    }
}
