//! Which pods a drain evicts, skips or is blocked by: `kubectl drain`'s filters, in its order.
//!
//! kubectl runs five filters and stops at the first that keeps a pod. Finished pods (Succeeded or
//! Failed) pass every filter that could block them. One deliberate difference: kubectl keeps only
//! the last filter's status, so a controlled pod whose `emptyDir` data is deleted gets no warning
//! there; here a pod keeps the last warning any filter gave. The messages state facts without
//! naming flags: the command line adds the flag that overrides each blocker.

use std::fmt;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

/// The annotation the kubelet puts on the API server's copy of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// What a drain may do to pods that would otherwise block it, as `kubectl drain`'s flags say.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodFilters {
    /// Evict pods no controller will recreate, and pods of a DaemonSet that no longer exists
    /// (`--force`).
    pub force: bool,
    /// Leave pods of existing DaemonSets running instead of refusing the drain
    /// (`--ignore-daemonsets`).
    pub ignore_daemonsets: bool,
    /// Evict pods with `emptyDir` volumes, whose data is lost (`--delete-emptydir-data`).
    pub delete_emptydir_data: bool,
    /// Leave alone pods whose deletion started longer ago than this
    /// (`--skip-wait-for-delete-timeout`): a node that is gone never confirms it.
    pub skip_deleted_after: Option<Duration>,
}

/// Whether the DaemonSet that controls a pod exists; the caller looks it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DaemonSetLookup {
    /// The DaemonSet exists.
    Exists,
    /// The DaemonSet is gone: the pod is an orphan.
    NotFound,
    /// The lookup failed; the message says why.
    Failed(String),
}

/// Why a pod stops a drain before anything is evicted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Blocker {
    /// A running pod of an existing DaemonSet, which would be recreated on the node at once.
    DaemonSetManaged,
    /// A running pod of a DaemonSet that no longer exists: nothing recreates it.
    OrphanedDaemonSet,
    /// The pod's DaemonSet could not be read.
    DaemonSetLookup(String),
    /// A running pod with `emptyDir` volumes, whose data eviction destroys.
    LocalStorage,
    /// A running pod without a controller: nothing recreates it elsewhere.
    NoController,
}

/// A reason with a stable word for scripts (`-o json`) beside its message for people.
pub trait Reason: fmt::Display {
    /// The reason as lowercase words joined by `-`, such as `local-storage`, as every enumeration
    /// in capstan's JSON is spelled.
    fn code(&self) -> &'static str;
}

impl Reason for Blocker {
    fn code(&self) -> &'static str {
        match self {
            Self::DaemonSetManaged => "daemon-set-managed",
            Self::OrphanedDaemonSet => "orphaned-daemon-set",
            Self::DaemonSetLookup(_) => "daemon-set-lookup",
            Self::LocalStorage => "local-storage",
            Self::NoController => "no-controller",
        }
    }
}

impl Reason for Warning {
    fn code(&self) -> &'static str {
        match self {
            Self::IgnoringDaemonSet => "ignoring-daemon-set",
            Self::DeletingOrphanedDaemonSet => "deleting-orphaned-daemon-set",
            Self::DeletingLocalStorage => "deleting-local-storage",
            Self::DeletingUncontrolled => "deleting-uncontrolled",
        }
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DaemonSetManaged => f.write_str("DaemonSet-managed Pods"),
            Self::OrphanedDaemonSet => f.write_str("Pods of a DaemonSet that no longer exists"),
            Self::DaemonSetLookup(message) => {
                write!(f, "Pods whose DaemonSet cannot be read ({message})")
            }
            Self::LocalStorage => f.write_str("Pods with local storage"),
            Self::NoController => f.write_str("Pods that declare no controller"),
        }
    }
}

/// What a permissive filter lets through, said once per group of pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Warning {
    /// DaemonSet pods are left running.
    IgnoringDaemonSet,
    /// Pods of a DaemonSet that no longer exists are evicted.
    DeletingOrphanedDaemonSet,
    /// Pods with `emptyDir` volumes are evicted, and their data lost.
    DeletingLocalStorage,
    /// Pods without a controller are evicted and not recreated.
    DeletingUncontrolled,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::IgnoringDaemonSet => "ignoring DaemonSet-managed Pods",
            Self::DeletingOrphanedDaemonSet => "deleting Pods of a DaemonSet that no longer exists",
            Self::DeletingLocalStorage => "deleting Pods with local storage",
            Self::DeletingUncontrolled => "deleting Pods that declare no controller",
        })
    }
}

/// What a drain does with one pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Evict it (or delete it), saying the warning if a permissive filter let it through.
    Evict(Option<Warning>),
    /// Leave it: a mirror pod, an ignored DaemonSet pod, or one long since being deleted.
    Skip(Option<Warning>),
    /// Refuse to drain the node.
    Block(Blocker),
}

impl PodFilters {
    /// The verdict on `pod` at time `now`, from kubectl's filters in kubectl's order: long
    /// deleted, DaemonSet, mirror, local storage, no controller. `daemon_set` is asked only for
    /// running pods controlled by a DaemonSet.
    pub fn verdict(
        &self,
        pod: &Pod,
        now: Timestamp,
        daemon_set: impl FnOnce(&str) -> DaemonSetLookup,
    ) -> Verdict {
        if self.long_deleted(pod, now) {
            return Verdict::Skip(None);
        }
        let finished = finished(pod);
        let mut warning = None;
        if let Some(name) = daemon_set_of(pod).filter(|_| !finished) {
            match daemon_set(name) {
                DaemonSetLookup::Exists if self.ignore_daemonsets => {
                    return Verdict::Skip(Some(Warning::IgnoringDaemonSet));
                }
                DaemonSetLookup::Exists => return Verdict::Block(Blocker::DaemonSetManaged),
                DaemonSetLookup::NotFound if self.force => {
                    warning = Some(Warning::DeletingOrphanedDaemonSet);
                }
                DaemonSetLookup::NotFound => return Verdict::Block(Blocker::OrphanedDaemonSet),
                DaemonSetLookup::Failed(message) => {
                    return Verdict::Block(Blocker::DaemonSetLookup(message));
                }
            }
        }
        let annotations = pod.metadata.annotations.as_ref();
        if annotations.is_some_and(|annotations| annotations.contains_key(MIRROR_ANNOTATION)) {
            return Verdict::Skip(None);
        }
        if has_empty_dir(pod) && !finished {
            if !self.delete_emptydir_data {
                return Verdict::Block(Blocker::LocalStorage);
            }
            warning = Some(Warning::DeletingLocalStorage);
        }
        if controller_of(pod).is_none() && !finished {
            if !self.force {
                return Verdict::Block(Blocker::NoController);
            }
            warning = Some(Warning::DeletingUncontrolled);
        }
        Verdict::Evict(warning)
    }

    /// Whether the pod's deletion started longer ago than [`PodFilters::skip_deleted_after`].
    pub fn long_deleted(&self, pod: &Pod, now: Timestamp) -> bool {
        let (Some(after), Some(deleted)) = (
            self.skip_deleted_after,
            pod.metadata.deletion_timestamp.as_ref(),
        ) else {
            return false;
        };
        // kubectl compares whole seconds and needs a strictly positive window.
        let elapsed = now.as_second() - deleted.0.as_second();
        !after.is_zero() && elapsed > after.as_secs().try_into().unwrap_or(i64::MAX)
    }
}

pub(crate) fn finished(pod: &Pod) -> bool {
    let phase = pod
        .status
        .as_ref()
        .and_then(|status| status.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

fn controller_of(
    pod: &Pod,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference> {
    pod.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|owner| owner.controller == Some(true))
}

/// The name of the DaemonSet controlling the pod; kubectl requires both `apps/v1` and the kind.
pub(crate) fn daemon_set_of(pod: &Pod) -> Option<&str> {
    controller_of(pod)
        .filter(|owner| owner.api_version == "apps/v1" && owner.kind == "DaemonSet")
        .map(|owner| owner.name.as_str())
}

fn has_empty_dir(pod: &Pod) -> bool {
    let volumes = pod.spec.as_ref().and_then(|spec| spec.volumes.as_ref());
    volumes.is_some_and(|volumes| volumes.iter().any(|volume| volume.empty_dir.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(extra: serde_json::Value) -> Pod {
        let mut value = serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop", "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "1", "controller": true}
            ]},
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": "Running"}
        });
        merge(&mut value, extra);
        serde_json::from_value(value).unwrap()
    }

    fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
                for (key, value) in patch {
                    merge(base.entry(key).or_insert(serde_json::Value::Null), value);
                }
            }
            (base, patch) => *base = patch,
        }
    }

    fn daemon_set_pod(phase: &str) -> Pod {
        pod(serde_json::json!({
            "metadata": {"ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "2", "controller": true}
            ]},
            "status": {"phase": phase}
        }))
    }

    fn now() -> Timestamp {
        "2026-12-02T10:00:00Z".parse().unwrap()
    }

    fn verdict(filters: &PodFilters, pod: &Pod, lookup: DaemonSetLookup) -> Verdict {
        filters.verdict(pod, now(), |name| {
            assert_eq!(name, "agent");
            lookup
        })
    }

    #[test]
    fn a_replicated_pod_is_evicted_without_any_flag() {
        let filters = PodFilters::default();
        let verdict = filters.verdict(&pod(serde_json::json!({})), now(), |_| unreachable!());
        assert_eq!(verdict, Verdict::Evict(None));
    }

    #[test]
    fn daemon_set_pods_block_unless_ignored_and_orphans_need_force() {
        let strict = PodFilters::default();
        let running = daemon_set_pod("Running");
        assert_eq!(
            verdict(&strict, &running, DaemonSetLookup::Exists),
            Verdict::Block(Blocker::DaemonSetManaged)
        );
        let ignoring = PodFilters {
            ignore_daemonsets: true,
            ..PodFilters::default()
        };
        assert_eq!(
            verdict(&ignoring, &running, DaemonSetLookup::Exists),
            Verdict::Skip(Some(Warning::IgnoringDaemonSet))
        );
        assert_eq!(
            verdict(&ignoring, &running, DaemonSetLookup::NotFound),
            Verdict::Block(Blocker::OrphanedDaemonSet)
        );
        let forced = PodFilters {
            force: true,
            ..PodFilters::default()
        };
        assert_eq!(
            verdict(&forced, &running, DaemonSetLookup::NotFound),
            Verdict::Evict(Some(Warning::DeletingOrphanedDaemonSet))
        );
        assert_eq!(
            verdict(
                &forced,
                &running,
                DaemonSetLookup::Failed("forbidden".into())
            ),
            Verdict::Block(Blocker::DaemonSetLookup("forbidden".into()))
        );
    }

    #[test]
    fn finished_pods_pass_every_blocking_filter_without_a_lookup() {
        let strict = PodFilters::default();
        for phase in ["Succeeded", "Failed"] {
            let finished = daemon_set_pod(phase);
            assert_eq!(
                strict.verdict(&finished, now(), |_| unreachable!()),
                Verdict::Evict(None)
            );
            let bare = pod(serde_json::json!({
                "metadata": {"ownerReferences": []},
                "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]},
                "status": {"phase": phase}
            }));
            assert_eq!(
                strict.verdict(&bare, now(), |_| unreachable!()),
                Verdict::Evict(None)
            );
        }
    }

    #[test]
    fn mirror_pods_are_never_touched_even_with_force() {
        let forced = PodFilters {
            force: true,
            delete_emptydir_data: true,
            ..PodFilters::default()
        };
        let mirror = pod(serde_json::json!({
            "metadata": {"annotations": {MIRROR_ANNOTATION: "abc"}, "ownerReferences": []}
        }));
        assert_eq!(
            forced.verdict(&mirror, now(), |_| unreachable!()),
            Verdict::Skip(None)
        );
    }

    #[test]
    fn local_storage_blocks_before_the_missing_controller_and_the_last_warning_wins() {
        let bare = pod(serde_json::json!({
            "metadata": {"ownerReferences": []},
            "spec": {"volumes": [{"name": "scratch", "emptyDir": {}}]}
        }));
        let strict = PodFilters::default();
        assert_eq!(
            strict.verdict(&bare, now(), |_| unreachable!()),
            Verdict::Block(Blocker::LocalStorage)
        );
        let data = PodFilters {
            delete_emptydir_data: true,
            ..PodFilters::default()
        };
        assert_eq!(
            data.verdict(&bare, now(), |_| unreachable!()),
            Verdict::Block(Blocker::NoController)
        );
        let both = PodFilters {
            delete_emptydir_data: true,
            force: true,
            ..PodFilters::default()
        };
        assert_eq!(
            both.verdict(&bare, now(), |_| unreachable!()),
            Verdict::Evict(Some(Warning::DeletingUncontrolled))
        );
    }

    #[test]
    fn an_owner_that_is_not_the_controller_does_not_count() {
        let owned = pod(serde_json::json!({
            "metadata": {"ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "3"}
            ]}
        }));
        assert_eq!(
            PodFilters::default().verdict(&owned, now(), |_| unreachable!()),
            Verdict::Block(Blocker::NoController)
        );
    }

    #[test]
    fn pods_deleted_longer_ago_than_the_window_are_skipped() {
        let deleting = pod(serde_json::json!({
            "metadata": {"deletionTimestamp": "2026-12-02T09:58:00Z"}
        }));
        let window = |seconds| PodFilters {
            skip_deleted_after: Some(Duration::from_secs(seconds)),
            ..PodFilters::default()
        };
        assert_eq!(
            window(60).verdict(&deleting, now(), |_| unreachable!()),
            Verdict::Skip(None)
        );
        assert_eq!(
            window(120).verdict(&deleting, now(), |_| unreachable!()),
            Verdict::Evict(None)
        );
        assert_eq!(
            PodFilters::default().verdict(&deleting, now(), |_| unreachable!()),
            Verdict::Evict(None)
        );
    }
}
