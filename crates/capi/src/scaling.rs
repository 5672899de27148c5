//! Scaling through the `/scale` subresource, and removing a chosen Node's Machine by marking
//! it and scaling its owner down, as cluster-autoscaler does.

use capstan_kube::{Api, Catalog, Resource, Target};
use capstan_manifest::ObjectId;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::core::{Request, Resource as _};
use serde::Serialize;
use serde_json::{Value, json};

use crate::machine::{
    DELETE_MACHINE_ANNOTATION, Route, annotated_machine, find_machine, scaling_owner,
};
use crate::scale::{Change, ScaleKind, check};
use crate::{Error, Result};

/// ClusterAPI's versions, newest first: discovery picks the first the server serves.
const VERSIONS: &[&str] = &["v1beta2", "v1beta1"];

/// What to scale, and to what.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ScaleRequest {
    /// The kind.
    pub kind: ScaleKind,
    /// The object's namespace.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The count asked for.
    pub change: Change,
    /// Let the server check the change without making it.
    pub dry_run: bool,
}

impl ScaleRequest {
    /// A request to scale `kind` `namespace/name` by `change`, for real.
    pub fn new(kind: ScaleKind, namespace: &str, name: &str, change: Change) -> Self {
        Self {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            change,
            dry_run: false,
        }
    }
}

/// A replica count that changed, or would have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Scaled {
    /// The scaled object.
    pub object: ObjectId,
    /// The count before.
    pub from: i32,
    /// The count after.
    pub to: i32,
    /// Whether the server only checked it.
    pub dry_run: bool,
}

/// A Node's Machine marked and its owner scaled down by one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Removal {
    /// The Node.
    pub node: String,
    /// Its Machine, now marked with `cluster.x-k8s.io/delete-machine`.
    pub machine: ObjectId,
    /// How the Machine was found.
    pub route: Route,
    /// The owner's count, before and after.
    pub owner: Scaled,
}

/// The served resource for a ClusterAPI kind.
pub(crate) fn resource<'c>(catalog: &'c Catalog, group: &str, kind: &str) -> Result<&'c Resource> {
    catalog
        .first_served(group, VERSIONS, kind)
        .map(|resource| &**resource)
        .ok_or_else(|| Error::NotServed {
            group: group.to_owned(),
            kind: kind.to_owned(),
        })
}

fn identity(resource: &Resource, namespace: &str, name: &str) -> ObjectId {
    ObjectId::new(
        &resource.api.api_version,
        &resource.api.kind,
        Some(namespace),
        name,
    )
}

fn params(dry_run: bool) -> PatchParams {
    PatchParams {
        dry_run,
        ..PatchParams::default()
    }
}

/// Sets `request.kind` `namespace/name` to the count `request.change` asks for, through the
/// `/scale` subresource, after checking the count against ClusterAPI's rules. An unchanged count
/// sends no write.
///
/// # Errors
///
/// [`Error::NotServed`] without ClusterAPI, [`Error::NotFound`], [`Error::Refused`] for a count
/// ClusterAPI would refuse or undo (nothing written), [`Error::Request`] when a request fails.
pub async fn scale(api: &Api, catalog: &Catalog, request: &ScaleRequest) -> Result<Scaled> {
    let resource = resource(catalog, request.kind.group(), request.kind.kind())?;
    let object = identity(resource, &request.namespace, &request.name);
    let live = get(api, resource, &request.namespace, &request.name, &object).await?;
    let from = replicas(&live);
    let to = request
        .change
        .apply(from)
        .map_err(|refusal| Error::Refused {
            object: object.clone(),
            refusal,
        })?;
    check(request.kind, &live, to).map_err(|refusal| Error::Refused {
        object: object.clone(),
        refusal,
    })?;
    if to != from {
        write_scale(api, resource, &object, to, request.dry_run).await?;
    }
    Ok(Scaled {
        object,
        from,
        to,
        dry_run: request.dry_run,
    })
}

/// Removes the Machine that runs `node`: finds it (annotation, `status.nodeRef`, provider ID),
/// marks it `cluster.x-k8s.io/delete-machine` and scales its owner down by one, so that the
/// owner deletes this Machine and no other, and creates no replacement. With `dry_run` the
/// server checks both writes and nothing changes.
///
/// A mark whose scale-down fails is taken off again, so a failed removal leaves no Machine
/// marked for a later, unrelated scale-down.
///
/// # Errors
///
/// [`Error::NodeNotFound`], [`Error::NoMachine`], [`Error::NoOwner`],
/// [`Error::Refused`] when the owner may not shrink (a control plane of one, say), and
/// [`Error::Request`].
pub async fn remove_node(
    api: &Api,
    catalog: &Catalog,
    node: &str,
    dry_run: bool,
) -> Result<Removal> {
    let (machine, route) = machine_of(api, catalog, node).await?;
    let machines = resource(catalog, "cluster.x-k8s.io", "Machine")?;
    let namespace = machine["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let machine_name = machine["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let machine_id = identity(machines, &namespace, &machine_name);
    let (kind, owner_name) = scaling_owner(&machine).ok_or_else(|| Error::NoOwner {
        machine: machine_id.clone(),
    })?;
    let owners = resource(catalog, kind.group(), kind.kind())?;
    let owner_id = identity(owners, &namespace, &owner_name);
    let owner = get(api, owners, &namespace, &owner_name, &owner_id).await?;
    let from = replicas(&owner);
    let to = Change::By(-1)
        .apply(from)
        .and_then(|to| check(kind, &owner, to).map(|()| to))
        .map_err(|refusal| Error::Refused {
            object: owner_id.clone(),
            refusal,
        })?;
    mark(api, machines, &machine_id, Some(""), dry_run).await?;
    if let Err(error) = write_scale(api, owners, &owner_id, to, dry_run).await {
        // Best effort: the scale-down's error is the one to report.
        let _ = mark(api, machines, &machine_id, None, dry_run).await;
        return Err(error);
    }
    Ok(Removal {
        node: node.to_owned(),
        machine: machine_id,
        route,
        owner: Scaled {
            object: owner_id,
            from,
            to,
            dry_run,
        },
    })
}

/// The served Node resource.
pub(crate) fn nodes(catalog: &Catalog) -> Result<&Resource> {
    catalog
        .resolve("", "v1", "Node")
        .map(|resource| &**resource)
        .ok_or_else(|| Error::NotServed {
            group: "core".into(),
            kind: "Node".into(),
        })
}

/// The Machine that runs `node`, and the route that found it.
///
/// # Errors
///
/// [`Error::NodeNotFound`], [`Error::NoMachine`], [`Error::Request`].
pub async fn machine_of(api: &Api, catalog: &Catalog, node: &str) -> Result<(Value, Route)> {
    let nodes = nodes(catalog)?;
    let node_id = ObjectId::new("v1", "Node", None, node);
    let target = Target {
        resource: &nodes.api,
        namespace: None,
        name: node,
    };
    let live = api
        .get(target)
        .await
        .map_err(|error| Error::Request {
            what: format!("read {node_id}"),
            error,
        })?
        .ok_or_else(|| Error::NodeNotFound {
            node: node.to_owned(),
        })?;
    let node_object: Node = serde_json::from_value(live).map_err(|error| Error::Request {
        what: format!("read {node_id}"),
        error: kube::Error::SerdeError(error),
    })?;
    let machines = resource(catalog, "cluster.x-k8s.io", "Machine")?;
    if let Some((namespace, name)) = annotated_machine(&node_object) {
        let id = identity(machines, namespace, name);
        let target = Target {
            resource: &machines.api,
            namespace: Some(namespace),
            name,
        };
        let found = api.get(target).await.map_err(|error| Error::Request {
            what: format!("read {id}"),
            error,
        })?;
        if let Some(machine) = found {
            return Ok((machine, Route::Annotation));
        }
    }
    // Neither status.nodeRef nor the provider ID is a field the server can select on.
    let all = api
        .list(&machines.api, "")
        .await
        .map_err(|error| Error::Request {
            what: "list Machines".to_owned(),
            error,
        })?;
    find_machine(&node_object, &all)
        .map(|(machine, route)| (machine.clone(), route))
        .ok_or_else(|| Error::NoMachine {
            node: node.to_owned(),
            provider_id: node_object.spec.and_then(|spec| spec.provider_id),
        })
}

async fn get(
    api: &Api,
    resource: &Resource,
    namespace: &str,
    name: &str,
    id: &ObjectId,
) -> Result<Value> {
    let target = Target {
        resource: &resource.api,
        namespace: Some(namespace),
        name,
    };
    api.get(target)
        .await
        .map_err(|error| Error::Request {
            what: format!("read {id}"),
            error,
        })?
        .ok_or_else(|| Error::NotFound { object: id.clone() })
}

fn replicas(object: &Value) -> i32 {
    // ClusterAPI defaults an unset count to one.
    object["spec"]["replicas"]
        .as_i64()
        .and_then(|count| i32::try_from(count).ok())
        .unwrap_or(1)
}

async fn write_scale(
    api: &Api,
    resource: &Resource,
    id: &ObjectId,
    to: i32,
    dry_run: bool,
) -> Result<()> {
    let request = Request::new(DynamicObject::url_path(&resource.api, id.namespace()));
    let body = json!({"spec": {"replicas": to}});
    let params = params(dry_run);
    api.send::<Value>(|| {
        request.patch_subresource("scale", id.name(), &params, &Patch::Merge(&body))
    })
    .await
    .map(drop)
    .map_err(|error| Error::Request {
        what: format!("scale {id} to {to}"),
        error,
    })
}

/// Sets (`Some`) or removes (`None`) the delete-machine mark.
async fn mark(
    api: &Api,
    resource: &Resource,
    id: &ObjectId,
    value: Option<&str>,
    dry_run: bool,
) -> Result<()> {
    let request = Request::new(DynamicObject::url_path(&resource.api, id.namespace()));
    let body = json!({"metadata": {"annotations": {DELETE_MACHINE_ANNOTATION: value}}});
    let params = params(dry_run);
    api.send::<Value>(|| request.patch(id.name(), &params, &Patch::Merge(&body)))
        .await
        .map(drop)
        .map_err(|error| Error::Request {
            what: format!("annotate {id}"),
            error,
        })
}
