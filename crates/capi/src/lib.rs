//! Day-2 operations on ClusterAPI clusters, the parts operators do today with `kubectl scale`,
//! `kubectl drain` and `clusterctl describe`.
//!
//! The decisions need no server: which pods a drain evicts, skips or is blocked by
//! ([`DrainPlan`], `kubectl drain`'s filters in its order), the eviction body that makes a grace
//! period take effect ([`eviction_body`]), what the server's answer means and which disruption
//! budgets hold a pod ([`Answer`], [`budget_reports`]), which scales ClusterAPI would refuse or
//! undo ([`scale::check`]), which Machine runs a Node ([`find_machine`]), and a cluster's status
//! as a tree with a verdict ([`tree`]).
//!
//! The requests that carry them out build on `capstan-kube`'s API wrapper, discovery and
//! waits: [`scale()`], [`remove_node`] and [`replace_node`], [`inventory`] for the tree, and
//! [`cordon`], [`uncordon`] and [`drain`], which cordons every node and plans each before the
//! first eviction, evicts in parallel within a bound, retries what a disruption budget refuses
//! and reports the budget once it has held a pod for a while, and waits for the pods to go by
//! UID.
//!
//! ```no_run
//! use capstan_capi::{DrainOptions, drain};
//! use capstan_kube::{Api, ConnectRequest, connect};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let api = Api::new(connect(&ConnectRequest::default(), &|_| {}).await?.client);
//! let mut options = DrainOptions::default();
//! options.filters.ignore_daemonsets = true;
//! let drained = drain(&api, &["worker-1".to_owned()], &options, &|_| {}).await?;
//! for node in &drained.items {
//!     println!("{}: {:?}, {} pods evicted", node.object.name(), node.outcome, node.evicted.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ```
//! use capstan_capi::{DaemonSetLookup, DrainPlan, PodFilters};
//! use k8s_openapi::api::core::v1::Pod;
//!
//! let bare: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "debug", "namespace": "shop"},
//!     "status": {"phase": "Running"}
//! }))?;
//! let plan = DrainPlan::new(&[bare], &PodFilters::default(), k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
//!     |_, _| DaemonSetLookup::Exists);
//! assert!(plan.is_blocked());
//! assert_eq!(plan.blockers[0].reason.to_string(), "Pods that declare no controller");
//! # Ok::<(), serde_json::Error>(())
//! ```
//!
//! # Module map
//!
//! | module | what it holds |
//! |---|---|
//! | `filter` | one pod's verdict: kubectl's five filters, blockers and warnings |
//! | `drain` | a node's [`DrainPlan`], grouped by reason, and the eviction body |
//! | `eviction` | the server's [`Answer`] to an eviction, and the budgets that hold pods |
//! | `scale` | scalable kinds, absolute and relative changes, the webhooks' refusals |
//! | `status` | a cluster's [`tree`] of rows, as `clusterctl describe cluster` draws it, and its verdict |
//! | `scaling` | [`scale`] through `/scale`, and [`remove_node`]: mark the Machine, shrink its owner |
//! | `replace` | [`replace_node`]: delete the Machine, follow its replacement to a Ready Node |
//! | `live` | the [`inventory`] of ClusterAPI objects a [`tree`] is drawn from |
//! | `machine` | Node → Machine (annotation, `nodeRef`, provider ID) and the owner to scale down |
//! | `node` | [`cordon`] and [`uncordon`] |
//! | `drainer` | [`drain`]: cordon, plan every node, then evict in parallel; the [`Drain`] result |
//! | `evict` | one node's evictions, budget refusals and reports, and the wait for its pods to go |
//! | `error` | the crate's [`Error`] |

// Errors carry the object and kube's error; they are rare and off every hot path.
#![allow(clippy::result_large_err)]

mod drain;
mod drainer;
mod error;
mod evict;
mod eviction;
mod filter;
mod live;
mod machine;
mod node;
mod replace;
pub mod scale;
mod scaling;
mod status;

pub use crate::{
    drain::{DrainPlan, Group, PodRef, eviction_body},
    drainer::{
        Drain, DrainEvent, DrainOptions, NodeDrain, OnDrainEvent, Outcome, PodFailure, drain,
    },
    error::{Error, Result},
    eviction::{Answer, BudgetReport, budget_reports},
    filter::{Blocker, DaemonSetLookup, PodFilters, Reason, Verdict, Warning},
    live::inventory,
    machine::{
        CLUSTER_NAMESPACE_ANNOTATION, DELETE_MACHINE_ANNOTATION, MACHINE_ANNOTATION, Route,
        annotated_machine, find_machine, scaling_owner,
    },
    node::{CordonChange, cordon, uncordon},
    replace::{ReplaceRequest, Replacement, replace_node},
    scaling::{Removal, ScaleRequest, Scaled, machine_of, remove_node, scale},
    status::{Inventory, Row, State, TreeOptions, Verdict as Health, tree},
};
