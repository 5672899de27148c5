//! Cordon and uncordon: whether new pods may be scheduled onto a node.

use std::fmt;

use capstan_kube::{Api, Target};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::core::{ApiResource, Resource as _};
use serde::Serialize;
use serde_json::json;

use crate::error::{Error, Result};

/// What a cordon or an uncordon did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CordonChange {
    /// The node was schedulable and is cordoned now.
    Cordoned,
    /// The node was cordoned before.
    AlreadyCordoned,
    /// The node was cordoned and is schedulable now.
    Uncordoned,
    /// The node was schedulable before.
    AlreadyUncordoned,
}

impl fmt::Display for CordonChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cordoned => "cordoned",
            Self::AlreadyCordoned => "already cordoned",
            Self::Uncordoned => "uncordoned",
            Self::AlreadyUncordoned => "already uncordoned",
        })
    }
}

/// Marks `node` unschedulable, unless it is already; `dry_run` asks the server to check the
/// change without making it.
///
/// # Errors
///
/// [`Error::NodeNotFound`], or [`Error::Request`] when the node cannot be read or patched.
pub async fn cordon(api: &Api, node: &str, dry_run: bool) -> Result<CordonChange> {
    set_unschedulable(api, node, true, dry_run).await
}

/// Makes `node` schedulable again, unless it is already.
///
/// # Errors
///
/// As [`cordon`].
pub async fn uncordon(api: &Api, node: &str, dry_run: bool) -> Result<CordonChange> {
    set_unschedulable(api, node, false, dry_run).await
}

pub(crate) fn nodes() -> ApiResource {
    ApiResource::erase::<Node>(&())
}

async fn set_unschedulable(
    api: &Api,
    node: &str,
    unschedulable: bool,
    dry_run: bool,
) -> Result<CordonChange> {
    let resource = nodes();
    let target = Target {
        resource: &resource,
        namespace: None,
        name: node,
    };
    let verb = if unschedulable { "cordon" } else { "uncordon" };
    let failed = |error| Error::Request {
        what: format!("{verb} node `{node}`"),
        error,
    };
    let live = api.get(target).await.map_err(failed)?;
    let live = live.ok_or_else(|| Error::NodeNotFound {
        node: node.to_owned(),
    })?;
    let now = live["spec"]["unschedulable"].as_bool().unwrap_or(false);
    if now == unschedulable {
        return Ok(if unschedulable {
            CordonChange::AlreadyCordoned
        } else {
            CordonChange::AlreadyUncordoned
        });
    }
    // `null` rather than `false` on uncordon: the field is omitted when unset, as kubectl
    // leaves it.
    let patch = json!({"spec": {"unschedulable": unschedulable.then_some(true)}});
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    let request = kube::core::Request::new(kube::api::DynamicObject::url_path(&resource, None));
    api.send::<serde_json::Value>(|| request.patch(node, &params, &Patch::Merge(&patch)))
        .await
        .map_err(failed)?;
    Ok(if unschedulable {
        CordonChange::Cordoned
    } else {
        CordonChange::Uncordoned
    })
}
