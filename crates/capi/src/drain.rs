//! A node's drain, decided before anything is evicted: every blocking pod is known first.

use capstan_manifest::ObjectId;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;
use serde_json::{Value, json};

use crate::filter::{Blocker, DaemonSetLookup, PodFilters, Reason, Verdict, Warning};

/// One pod, with the UID that tells it apart from a pod recreated under the same name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PodRef {
    /// `v1 Pod namespace/name`.
    pub object: ObjectId,
    /// The pod's UID when it was listed; waiting for deletion compares it.
    pub uid: String,
}

impl PodRef {
    fn of(pod: &Pod) -> Self {
        let metadata = &pod.metadata;
        Self {
            object: ObjectId::new(
                "v1",
                "Pod",
                metadata.namespace.as_deref(),
                metadata.name.as_deref().unwrap_or_default(),
            ),
            uid: metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// Pods that share a reason, in the order they were listed.
///
/// Serialises as `{"reason": "local-storage", "message": "Pods with local storage", "pods": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Group<T> {
    /// Why these pods are here.
    pub reason: T,
    /// The pods.
    pub pods: Vec<PodRef>,
}

impl<T: Reason> Serialize for Group<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            reason: &'static str,
            message: String,
            pods: &'a [PodRef],
        }
        Shown {
            reason: self.reason.code(),
            message: self.reason.to_string(),
            pods: &self.pods,
        }
        .serialize(serializer)
    }
}

/// What draining one node will do, decided from its pods before the first eviction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DrainPlan {
    /// Pods to evict (or delete), in listing order.
    pub evict: Vec<PodRef>,
    /// Pods left alone: mirror pods, ignored DaemonSet pods, long-deleted pods.
    pub skip: Vec<PodRef>,
    /// What the permissive filters let through, a group per warning.
    pub warnings: Vec<Group<Warning>>,
    /// Pods that stop the drain, a group per reason. Non-empty means nothing is evicted.
    pub blockers: Vec<Group<Blocker>>,
}

impl DrainPlan {
    /// Runs every pod through `filters`; `daemon_set(namespace, name)` says whether a pod's
    /// DaemonSet exists (asked once per running DaemonSet pod).
    pub fn new(
        pods: &[Pod],
        filters: &PodFilters,
        now: Timestamp,
        mut daemon_set: impl FnMut(&str, &str) -> DaemonSetLookup,
    ) -> Self {
        let mut plan = Self::default();
        for pod in pods {
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let verdict = filters.verdict(pod, now, |name| daemon_set(namespace, name));
            let pod = PodRef::of(pod);
            let warning = match verdict {
                Verdict::Evict(warning) => {
                    plan.evict.push(pod.clone());
                    warning
                }
                Verdict::Skip(warning) => {
                    plan.skip.push(pod.clone());
                    warning
                }
                Verdict::Block(blocker) => {
                    add(&mut plan.blockers, blocker, pod);
                    continue;
                }
            };
            if let Some(warning) = warning {
                add(&mut plan.warnings, warning, pod);
            }
        }
        plan
    }

    /// Whether any pod stops the drain.
    pub fn is_blocked(&self) -> bool {
        !self.blockers.is_empty()
    }
}

fn add<T: PartialEq>(groups: &mut Vec<Group<T>>, reason: T, pod: PodRef) {
    match groups.iter_mut().find(|group| group.reason == reason) {
        Some(group) => group.pods.push(pod),
        None => groups.push(Group {
            reason,
            pods: vec![pod],
        }),
    }
}

/// The body of an eviction of `pod` at `api_version` (`policy/v1`, or `policy/v1beta1` on
/// servers before 1.22, as discovery says).
///
/// Written out rather than taken from kube's `Api::evict`, which puts the options under the key
/// `delete_options` with no `apiVersion`: the server ignores them there, so a grace period
/// never takes effect.
pub fn eviction_body(
    api_version: &str,
    pod: &ObjectId,
    grace_period_seconds: Option<i64>,
    dry_run: bool,
) -> Value {
    let mut options = serde_json::Map::new();
    if let Some(seconds) = grace_period_seconds {
        options.insert("gracePeriodSeconds".into(), seconds.into());
    }
    if dry_run {
        options.insert("dryRun".into(), json!(["All"]));
    }
    json!({
        "apiVersion": api_version,
        "kind": "Eviction",
        "metadata": {"name": pod.name(), "namespace": pod.namespace()},
        "deleteOptions": options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, owner: Option<(&str, &str)>, empty_dir: bool) -> Pod {
        let owners: Vec<Value> = owner
            .map(|(kind, owner)| {
                json!({"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true})
            })
            .into_iter()
            .collect();
        let volumes: Vec<Value> = if empty_dir {
            vec![json!({"name": "scratch", "emptyDir": {}})]
        } else {
            Vec::new()
        };
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "ownerReferences": owners},
            "spec": {"containers": [{"name": "main"}], "volumes": volumes},
            "status": {"phase": "Running"}
        }))
        .unwrap()
    }

    fn names(pods: &[PodRef]) -> Vec<&str> {
        pods.iter().map(|pod| pod.object.name()).collect()
    }

    #[test]
    fn every_blocking_pod_is_reported_grouped_by_reason_in_listing_order() {
        let pods = [
            pod("web-1", Some(("ReplicaSet", "web")), false),
            pod("bare-1", None, false),
            pod("cache-0", Some(("StatefulSet", "cache")), true),
            pod("bare-2", None, false),
            pod("agent-x", Some(("DaemonSet", "agent")), false),
        ];
        let plan = DrainPlan::new(
            &pods,
            &PodFilters::default(),
            Timestamp::UNIX_EPOCH,
            |_, _| DaemonSetLookup::Exists,
        );
        assert!(plan.is_blocked());
        let blockers: Vec<(Blocker, Vec<&str>)> = plan
            .blockers
            .iter()
            .map(|group| (group.reason.clone(), names(&group.pods)))
            .collect();
        assert_eq!(
            blockers,
            [
                (Blocker::NoController, vec!["bare-1", "bare-2"]),
                (Blocker::LocalStorage, vec!["cache-0"]),
                (Blocker::DaemonSetManaged, vec!["agent-x"]),
            ]
        );
        assert_eq!(names(&plan.evict), ["web-1"]);
    }

    #[test]
    fn permissive_filters_evict_with_one_warning_group_each_and_skip_daemon_sets() {
        let pods = [
            pod("agent-x", Some(("DaemonSet", "agent")), false),
            pod("cache-0", Some(("StatefulSet", "cache")), true),
            pod("bare-1", None, false),
        ];
        let filters = PodFilters {
            force: true,
            ignore_daemonsets: true,
            delete_emptydir_data: true,
            ..PodFilters::default()
        };
        let mut asked = Vec::new();
        let plan = DrainPlan::new(&pods, &filters, Timestamp::UNIX_EPOCH, |namespace, name| {
            asked.push(format!("{namespace}/{name}"));
            DaemonSetLookup::Exists
        });
        assert_eq!(asked, ["shop/agent"]);
        assert!(!plan.is_blocked());
        assert_eq!(names(&plan.evict), ["cache-0", "bare-1"]);
        assert_eq!(names(&plan.skip), ["agent-x"]);
        let warnings: Vec<Warning> = plan.warnings.iter().map(|group| group.reason).collect();
        assert_eq!(
            warnings,
            [
                Warning::IgnoringDaemonSet,
                Warning::DeletingLocalStorage,
                Warning::DeletingUncontrolled
            ]
        );
        assert_eq!(plan.evict[0].uid, "uid-cache-0");
    }

    #[test]
    fn the_eviction_body_carries_its_options_under_delete_options() {
        let pod = ObjectId::new("v1", "Pod", Some("shop"), "web-1");
        assert_eq!(
            eviction_body("policy/v1beta1", &pod, Some(0), true),
            json!({
                "apiVersion": "policy/v1beta1",
                "kind": "Eviction",
                "metadata": {"name": "web-1", "namespace": "shop"},
                "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]},
            })
        );
        // kubectl's default grace period (-1) omits the field: the pod's own period applies.
        assert_eq!(
            eviction_body("policy/v1", &pod, None, false)["deleteOptions"],
            json!({})
        );
    }

    #[test]
    fn the_plan_serialises_with_object_identities_and_camel_case_reasons() {
        let pods = [pod("bare-1", None, false)];
        let plan = DrainPlan::new(
            &pods,
            &PodFilters::default(),
            Timestamp::UNIX_EPOCH,
            |_, _| DaemonSetLookup::Exists,
        );
        assert_eq!(
            serde_json::to_value(&plan).unwrap(),
            json!({
                "evict": [],
                "skip": [],
                "warnings": [],
                "blockers": [{
                    "reason": "no-controller",
                    "message": "Pods that declare no controller",
                    "pods": [{
                        "object": {"apiVersion": "v1", "kind": "Pod", "namespace": "shop", "name": "bare-1"},
                        "uid": "uid-bare-1"
                    }]
                }]
            })
        );
    }
}
