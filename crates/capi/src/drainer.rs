//! Draining nodes: cordon them all, decide every node's plan before the first eviction, then
//! evict the pods of every unblocked node in parallel and wait until they are gone.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use capstan_kube::{Api, Progress, Target};
use capstan_manifest::ObjectId;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::core::ApiResource;
use serde::Serialize;

use crate::drain::{DrainPlan, PodRef};
use crate::error::{Error, Result};
use crate::evict::{Method, NodeRun, Shared};
use crate::eviction::BudgetReport;
use crate::filter::{DaemonSetLookup, PodFilters, daemon_set_of, finished};
use crate::node::{CordonChange, cordon};

/// How to drain, as `kubectl drain`'s flags say, and how patiently.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainOptions {
    /// Which pods may be evicted (`--force`, `--ignore-daemonsets`, `--delete-emptydir-data`,
    /// `--skip-wait-for-delete-timeout`).
    pub filters: PodFilters,
    /// Only pods with these labels (`--pod-selector`).
    pub pod_selector: Option<String>,
    /// The pods' grace period; `None` leaves each pod's own (`--grace-period`, kubectl's -1).
    pub grace_period_seconds: Option<i64>,
    /// The whole drain's deadline, evictions and waits; `None` waits forever (`--timeout`).
    pub timeout: Option<Duration>,
    /// Delete pods instead of evicting them: disruption budgets are not asked
    /// (`--disable-eviction`).
    pub disable_eviction: bool,
    /// Have the server check every change without making it (`--dry-run`, kubectl's
    /// `--dry-run=server`).
    pub dry_run: bool,
    /// Evictions in flight at once, across all nodes (`--max-concurrent-evictions`); at least 1.
    pub max_concurrent_evictions: usize,
    /// Between attempts at evicting a pod a budget holds (kubectl: 5 s).
    pub retry_interval: Duration,
    /// How long a budget holds a pod before it is reported.
    pub report_after: Duration,
    /// Between looks at whether evicted pods are gone (kubectl: 1 s).
    pub poll_interval: Duration,
}

impl Default for DrainOptions {
    fn default() -> Self {
        Self {
            filters: PodFilters::default(),
            pod_selector: None,
            grace_period_seconds: None,
            timeout: None,
            disable_eviction: false,
            dry_run: false,
            max_concurrent_evictions: 32,
            retry_interval: Duration::from_secs(5),
            report_after: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// How a node's drain ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outcome {
    /// Every pod to evict is gone (with a dry run: the server accepted every eviction).
    Drained,
    /// Pods the filters refuse stop it; nothing was evicted.
    Blocked,
    /// The node could not be cordoned or read, or evictions were refused for good.
    Failed,
    /// The timeout passed with pods left.
    TimedOut,
}

/// A pod whose eviction the server refused for good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct PodFailure {
    /// The pod.
    #[serde(flatten)]
    pub pod: PodRef,
    /// The server's answer.
    pub message: String,
}

/// What draining one node did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct NodeDrain {
    /// `v1 Node name`.
    pub object: ObjectId,
    /// How it ended.
    pub outcome: Outcome,
    /// What the cordon did; `None` when it failed.
    pub cordon: Option<CordonChange>,
    /// The plan made from its pods before any eviction.
    pub plan: DrainPlan,
    /// Pods evicted (or deleted) and gone; with a dry run, those the server would evict.
    pub evicted: Vec<PodRef>,
    /// Pods being deleted for longer than `--skip-wait-for-delete-timeout`: not waited for.
    pub not_waited: Vec<PodRef>,
    /// Pods whose eviction was refused for good.
    pub failed: Vec<PodFailure>,
    /// Pods still on the node when the timeout passed.
    pub left: Vec<PodRef>,
    /// Disruption budgets that held pods longer than [`DrainOptions::report_after`], as they
    /// stood when reported.
    pub budgets: Vec<BudgetReport>,
    /// Why the node is not drained.
    #[serde(serialize_with = "message")]
    pub error: Option<Error>,
}

/// What a drain of several nodes did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Drain {
    /// `policy/v1` or `policy/v1beta1` for evictions, `delete` with
    /// [`DrainOptions::disable_eviction`] or when the server cannot evict.
    pub method: String,
    /// Whether the server only checked the changes.
    pub dry_run: bool,
    /// One per node, in the order asked.
    pub items: Vec<NodeDrain>,
}

impl Drain {
    /// Whether every node is drained.
    pub fn succeeded(&self) -> bool {
        self.items
            .iter()
            .all(|node| node.outcome == Outcome::Drained)
    }
}

/// What a drain reports while it runs; the callback is called from the drain's own task.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum DrainEvent<'a> {
    /// A node was cordoned (or already was).
    Cordoned {
        /// The node.
        node: &'a str,
        /// What the cordon did.
        change: CordonChange,
    },
    /// A node's pods were sorted; a blocked plan means nothing of it is evicted.
    Planned {
        /// The node.
        node: &'a str,
        /// The plan.
        plan: &'a DrainPlan,
    },
    /// Evictions start: this many pods on the nodes that are not blocked.
    Evicting {
        /// How many pods.
        total: usize,
    },
    /// The first eviction request of a pod is sent.
    Evict {
        /// The pod.
        pod: &'a PodRef,
    },
    /// A disruption budget refused an eviction; it is tried again.
    Refused {
        /// The pod.
        pod: &'a PodRef,
        /// The server's message and the budgets' causes.
        message: &'a str,
    },
    /// A budget has held a pod for [`DrainOptions::report_after`].
    Held {
        /// The pod.
        pod: &'a PodRef,
        /// The budget, what it demands and what it has.
        budget: &'a BudgetReport,
    },
    /// A pod is gone (evicted and deleted), or will be with a dry run.
    Gone {
        /// The pod.
        pod: &'a PodRef,
    },
    /// A pod is done with otherwise: refused for good, or no longer waited for.
    Given {
        /// The pod.
        pod: &'a PodRef,
        /// Why.
        message: &'a str,
    },
}

impl DrainEvent<'_> {
    /// The step of progress the event means, for a display shared with other libraries.
    pub fn progress(&self) -> Option<Progress> {
        match self {
            Self::Evicting { total } => Some(Progress::Phase {
                name: "evicting pods".into(),
                total: *total,
            }),
            Self::Gone { .. } | Self::Given { .. } => Some(Progress::Advance(1)),
            Self::Held { budget, .. } => {
                Some(Progress::Note(format!("held by {}", budget.object.name())))
            }
            _ => None,
        }
    }
}

/// A drain's event callback.
pub type OnDrainEvent<'a> = dyn Fn(DrainEvent<'_>) + Send + Sync + 'a;

/// Drains `nodes` as `kubectl drain` does, with these differences: all nodes are cordoned and
/// planned before the first eviction, nodes drain in parallel, and a budget holding a pod is
/// reported. A node that fails does not stop the others; the result says how each ended.
///
/// `api`'s client must leave 429s to the caller, as [`capstan_kube::connect`] makes it (kube's
/// `Config::default_retry` off): otherwise kube retries a budget's refusal itself, for minutes
/// and unseen, and the drain can neither report it nor keep its deadline.
///
/// # Errors
///
/// [`Error::Request`] when the server's eviction support cannot be read.
pub async fn drain(
    api: &Api,
    nodes: &[String],
    options: &DrainOptions,
    on_event: &OnDrainEvent<'_>,
) -> Result<Drain> {
    let method = Method::discover(api, options.disable_eviction).await?;
    let mut items: Vec<NodeDrain> = join_all(nodes.iter().map(|node| async {
        let change = cordon(api, node, options.dry_run).await;
        if let Ok(change) = change {
            on_event(DrainEvent::Cordoned { node, change });
        }
        NodeDrain::start(node, change)
    }))
    .await;
    let pods: Vec<Vec<Pod>> = join_all(items.iter_mut().map(|item| async {
        if item.error.is_some() {
            return Vec::new();
        }
        match plan(api, item.object.name(), options).await {
            Ok((plan, pods)) => {
                item.plan = plan;
                on_event(DrainEvent::Planned {
                    node: item.object.name(),
                    plan: &item.plan,
                });
                pods
            }
            Err(error) => {
                item.fail(Outcome::Failed, error);
                Vec::new()
            }
        }
    }))
    .await;
    for item in &mut items {
        if item.error.is_none() && item.plan.is_blocked() {
            let pods = item
                .plan
                .blockers
                .iter()
                .map(|group| group.pods.len())
                .sum();
            let node = item.object.name().to_owned();
            item.fail(Outcome::Blocked, Error::Blocked { node, pods });
        }
    }
    let total = items
        .iter()
        .filter(|item| item.error.is_none())
        .map(|item| item.plan.evict.len())
        .sum();
    on_event(DrainEvent::Evicting { total });
    let shared = Shared::new(api, &method, options, on_event);
    join_all(
        items
            .iter_mut()
            .zip(&pods)
            .filter(|(item, _)| item.error.is_none())
            .map(|(item, pods)| async {
                let labels = labels_by_uid(pods);
                NodeRun::new(&shared, item.object.name(), &item.plan, labels)
                    .run()
                    .await
                    .finish(item);
            }),
    )
    .await;
    Ok(Drain {
        method: method.to_string(),
        dry_run: options.dry_run,
        items,
    })
}

impl NodeDrain {
    fn start(node: &str, cordon: Result<CordonChange>) -> Self {
        let mut item = Self {
            object: ObjectId::new("v1", "Node", None, node),
            outcome: Outcome::Drained,
            cordon: cordon.as_ref().ok().copied(),
            plan: DrainPlan::default(),
            evicted: Vec::new(),
            not_waited: Vec::new(),
            failed: Vec::new(),
            left: Vec::new(),
            budgets: Vec::new(),
            error: None,
        };
        if let Err(error) = cordon {
            item.fail(Outcome::Failed, error);
        }
        item
    }

    pub(crate) fn fail(&mut self, outcome: Outcome, error: Error) {
        self.outcome = outcome;
        self.error = Some(error);
    }
}

/// The pods on `node` and what to do with each.
async fn plan(api: &Api, node: &str, options: &DrainOptions) -> Result<(DrainPlan, Vec<Pod>)> {
    let pods = list_pods(api, node, options.pod_selector.as_deref()).await?;
    let daemon_sets = daemon_sets(api, &pods).await;
    let plan = DrainPlan::new(
        &pods,
        &options.filters,
        Timestamp::now(),
        |namespace, name| {
            daemon_sets
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .unwrap_or(DaemonSetLookup::NotFound)
        },
    );
    Ok((plan, pods))
}

pub(crate) async fn list_pods(api: &Api, node: &str, selector: Option<&str>) -> Result<Vec<Pod>> {
    let resource = ApiResource::erase::<Pod>(&());
    let fields = format!("spec.nodeName={node}");
    api.list_selected(&resource, None, selector, Some(&fields))
        .await
        .map_err(|error| Error::Request {
            what: format!("list the pods of node `{node}`"),
            error,
        })
}

/// Whether each DaemonSet that controls a running pod exists, read once per DaemonSet.
async fn daemon_sets(api: &Api, pods: &[Pod]) -> HashMap<(String, String), DaemonSetLookup> {
    let resource = ApiResource::erase::<DaemonSet>(&());
    let mut wanted: Vec<(String, String)> = pods
        .iter()
        .filter(|pod| !finished(pod))
        .filter_map(|pod| {
            let name = daemon_set_of(pod)?;
            Some((pod.metadata.namespace.clone()?, name.to_owned()))
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let found = join_all(wanted.iter().map(|(namespace, name)| {
        let target = Target {
            resource: &resource,
            namespace: Some(namespace),
            name,
        };
        async move {
            match api.get(target).await {
                Ok(Some(_)) => DaemonSetLookup::Exists,
                Ok(None) => DaemonSetLookup::NotFound,
                Err(error) => DaemonSetLookup::Failed(capstan_kube::Cause(&error).to_string()),
            }
        }
    }))
    .await;
    wanted.into_iter().zip(found).collect()
}

fn labels_by_uid(pods: &[Pod]) -> HashMap<String, BTreeMap<String, String>> {
    pods.iter()
        .map(|pod| {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            (uid, pod.metadata.labels.clone().unwrap_or_default())
        })
        .collect()
}

fn message<S: serde::Serializer>(error: &Option<Error>, serializer: S) -> Result<S::Ok, S::Error> {
    match error {
        Some(error) => serializer.serialize_str(&error.to_string()),
        None => serializer.serialize_none(),
    }
}
