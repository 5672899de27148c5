//! Replacing a Node: delete its Machine, whose owner then creates another, and follow the new
//! one until its Node is Ready.
//!
//! A MachineSet counts a Machine that is being deleted, so the replacement is created only once
//! the old Machine is gone (drained, its infrastructure deleted): the wait covers all of that.

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_kube::{Api, Backoff, Catalog, OnProgress, Progress, Target, condition, poll_until};
use capstan_manifest::ObjectId;
use serde::Serialize;
use serde_json::Value;

use crate::machine::Route;
use crate::scaling::{machine_of, nodes, resource};
use crate::{Error, Result};

/// The labels that name a Machine's owner, so its siblings (and its replacement) can be found.
const OWNER_LABELS: &[&str] = &[
    "cluster.x-k8s.io/set-name",
    "cluster.x-k8s.io/control-plane-name",
];

/// Which Node to replace, and whether to wait for the new one.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplaceRequest {
    /// The Node.
    pub node: String,
    /// How long to follow the replacement until its Node is Ready; `None` returns once the old
    /// Machine's deletion is accepted.
    pub wait: Option<Duration>,
}

impl ReplaceRequest {
    /// Replaces `node` without waiting.
    pub fn new(node: &str) -> Self {
        Self {
            node: node.to_owned(),
            wait: None,
        }
    }
}

/// A Node's Machine deleted, and the Machine and Node that took its place when waited for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Replacement {
    /// The Node replaced.
    pub node: String,
    /// Its Machine, now deleting.
    pub machine: ObjectId,
    /// How the Machine was found.
    pub route: Route,
    /// The new Machine, when waited for.
    pub replacement: Option<ObjectId>,
    /// The new Machine's Node, Ready, when waited for.
    pub replacement_node: Option<String>,
}

/// Deletes the Machine that runs `request.node` (with its UID as precondition), and with
/// `request.wait` follows its owner's new Machine until that Machine's Node is Ready, reporting
/// each stage through `on_progress`.
///
/// # Errors
///
/// As [`machine_of`](crate::machine_of); [`Error::NoOwner`] for a Machine nothing would replace
/// (deleting it only removes capacity); [`Error::NoReplacement`] when no replacement was Ready in time
/// (the old Machine stays deleted); [`Error::Request`].
pub async fn replace_node(
    api: &Api,
    catalog: &Catalog,
    request: &ReplaceRequest,
    on_progress: &OnProgress,
) -> Result<Replacement> {
    let (machine, route) = machine_of(api, catalog, &request.node).await?;
    let machines = resource(catalog, "cluster.x-k8s.io", "Machine")?;
    let meta = &machine["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or_default();
    let name = meta["name"].as_str().unwrap_or_default();
    let id = ObjectId::new(&machines.api.api_version, "Machine", Some(namespace), name);
    let owner = OWNER_LABELS
        .iter()
        .find_map(|key| {
            meta["labels"][key]
                .as_str()
                .map(|value| format!("{key}={value}"))
        })
        .ok_or_else(|| Error::NoOwner {
            machine: id.clone(),
        })?;
    let request_error = |error| Error::Request {
        what: format!("follow the replacement of {id}"),
        error,
    };
    let siblings = |all: Vec<Value>| -> Vec<Value> {
        all.into_iter()
            .filter(|other| other["metadata"]["namespace"] == namespace)
            .collect()
    };
    let before: BTreeSet<String> = siblings(
        api.list(&machines.api, &owner)
            .await
            .map_err(request_error)?,
    )
    .iter()
    .filter_map(|other| other["metadata"]["uid"].as_str().map(str::to_owned))
    .collect();
    let target = Target {
        resource: &machines.api,
        namespace: Some(namespace),
        name,
    };
    api.delete(target, meta["uid"].as_str().unwrap_or_default())
        .await
        .map_err(request_error)?;
    let mut replacement = Replacement {
        node: request.node.clone(),
        machine: id.clone(),
        route,
        replacement: None,
        replacement_node: None,
    };
    let Some(wait) = request.wait else {
        return Ok(replacement);
    };
    on_progress(Progress::Phase {
        name: format!("waiting for the replacement of {}", request.node),
        total: 1,
    });
    let nodes = nodes(catalog)?;
    let deadline = tokio::time::Instant::now() + wait;
    let backoff = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(10));
    let mut announced = BTreeSet::new();
    let found = poll_until(deadline, backoff, async || {
        let current = siblings(
            api.list(&machines.api, &owner)
                .await
                .map_err(request_error)?,
        );
        for new in current.iter().filter(|other| {
            other["metadata"]["uid"]
                .as_str()
                .is_some_and(|uid| !before.contains(uid))
        }) {
            let new_name = new["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if announced.insert(new_name.clone()) {
                on_progress(Progress::Note(format!("new Machine {new_name}")));
            }
            let Some(node) = new["status"]["nodeRef"]["name"].as_str() else {
                continue;
            };
            let target = Target {
                resource: &nodes.api,
                namespace: None,
                name: node,
            };
            let live = api.get(target).await.map_err(request_error)?;
            if live.is_some_and(|live| condition(&live, "Ready").is_some_and(|c| c.is_true())) {
                return Ok(Some((new_name, node.to_owned())));
            }
        }
        Ok::<_, Error>(None)
    })
    .await?;
    let (new_name, node) = found.ok_or_else(|| Error::NoReplacement {
        node: request.node.clone(),
        machine: id.clone(),
        waited: wait,
    })?;
    on_progress(Progress::Advance(1));
    replacement.replacement = Some(ObjectId::new(
        &machines.api.api_version,
        "Machine",
        Some(namespace),
        &new_name,
    ));
    replacement.replacement_node = Some(node);
    Ok(replacement)
}
