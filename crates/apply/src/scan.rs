//! Finding what a discriminator owns on the server, with the prune guards' verdict on each.

use std::collections::HashSet;

use capstan_kube::Catalog;
use capstan_kube::{MetaItem, Resource};
use capstan_manifest::{Label, ObjectId};
use futures::{StreamExt as _, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::ownership;
use crate::vocab::{
    ARGOCD_TRACKING_ANNOTATION, Blind, Event, HANDED_OFF_ANNOTATION, Keep, Owned, Progress,
    SKIP_DELETE_ANNOTATION,
};

/// Lists in flight at once when scanning every resource type.
pub(crate) const SCAN_PARALLEL: usize = 16;

/// Everything a scan found, and what it could not look at.
pub(crate) struct Scan {
    pub(crate) owned: Vec<Owned>,
    pub(crate) blind: Blind,
}

/// Every live object carrying `label`, across every resource type the server serves, with
/// the prune guards' verdict; one metadata-only list per type, in parallel. When the user
/// may not list a type across the cluster, it is listed in `namespaces` instead: a forbidden
/// list is reported in [`Blind`], never taken for an empty one.
pub(crate) async fn scan(
    cx: &Context,
    catalog: &Catalog,
    label: &Label,
    namespaces: &[String],
    progress: Progress<'_>,
) -> Result<Scan> {
    let selector = ownership::selector(label, &cx.options);
    let resources: Vec<_> = catalog.deletable().collect();
    progress(Event::Scanning {
        resources: resources.len(),
    });
    let lists: Vec<Result<Listed>> = stream::iter(resources)
        .map(|resource| list_scoped(cx, resource, &selector, namespaces))
        .buffer_unordered(SCAN_PARALLEL)
        .collect()
        .await;
    let mut owned = Vec::new();
    let mut blind = Blind::default();
    let mut seen = HashSet::new();
    for list in lists {
        let listed = list?;
        if listed.narrowed {
            blind.namespaces = namespaces.to_vec();
        }
        if let Some(resource) = listed.unlisted {
            blind.types.push(resource);
        }
        for item in listed.items {
            let meta = item.metadata;
            let uid = meta.uid.clone().unwrap_or_default();
            // One object can be served by two groups (Events, Ingresses on old servers).
            if !seen.insert(uid.clone()) {
                continue;
            }
            let managed =
                meta.managed_fields.iter().flatten().any(|entry| {
                    entry.manager.as_deref() == Some(cx.options.field_manager.as_str())
                });
            let id = ObjectId::new(
                &listed.resource.api_version,
                &listed.resource.kind,
                meta.namespace.as_deref(),
                meta.name.as_deref().unwrap_or_default(),
            );
            let keep = keep(cx, &meta, label, managed);
            owned.push(Owned {
                id,
                uid,
                managed,
                keep,
                labels: meta.labels.unwrap_or_default(),
                resource: listed.resource.clone(),
            });
        }
    }
    owned.sort_by(|a, b| a.id.cmp(&b.id));
    blind.types.sort();
    Ok(Scan { owned, blind })
}

/// One type's labelled objects: across the cluster, or in `namespaces` when that is
/// forbidden.
async fn list_scoped<'a>(
    cx: &'a Context,
    resource: &'a Resource,
    selector: &'a str,
    namespaces: &'a [String],
) -> Result<Listed> {
    let api = &cx.api;
    let list =
        |namespace: Option<&'a str>| api.list_metadata(&resource.api, namespace, Some(selector));
    let mut listed = Listed {
        resource: resource.api.clone(),
        items: Vec::new(),
        narrowed: false,
        unlisted: None,
    };
    let error = match list(None).await {
        Ok(items) => {
            listed.items = items;
            return Ok(listed);
        }
        Err(error) => error,
    };
    match capstan_kube::status_code(&error) {
        // A type that cannot be listed after all (405, 404 of a vanishing API) holds
        // nothing capstan could have applied through it.
        Some(404 | 405) => return Ok(listed),
        Some(403) if resource.namespaced && !namespaces.is_empty() => {}
        Some(403) => {
            listed.unlisted = Some(resource.describe());
            return Ok(listed);
        }
        _ => {
            return Err(Error::List {
                resource: resource.describe(),
                cause: error,
            });
        }
    }
    listed.narrowed = true;
    for namespace in namespaces {
        match list(Some(namespace)).await {
            Ok(items) => listed.items.extend(items),
            Err(error) if capstan_kube::status_code(&error) == Some(403) => {
                listed.unlisted = Some(format!("{} in {namespace}", resource.describe()));
            }
            Err(source) => {
                return Err(Error::List {
                    resource: resource.describe(),
                    cause: source,
                });
            }
        }
    }
    Ok(listed)
}

fn keep(cx: &Context, meta: &ObjectMeta, label: &Label, managed: bool) -> Option<Keep> {
    if let Some(owner) = meta.owner_references.iter().flatten().next() {
        return Some(Keep::Owned(format!("{} {}", owner.kind, owner.name)));
    }
    let annotations = meta.annotations.as_ref();
    let annotation = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    if annotation(SKIP_DELETE_ANNOTATION) == Some("true") {
        return Some(Keep::Protected(format!(
            "{SKIP_DELETE_ANNOTATION}: \"true\""
        )));
    }
    if annotation("helm.sh/resource-policy") == Some("keep") {
        return Some(Keep::Protected("helm.sh/resource-policy: keep".to_owned()));
    }
    if let Some(to) = annotation(HANDED_OFF_ANNOTATION) {
        return Some(Keep::HandedOff { to: to.to_owned() });
    }
    if let Some(id) = annotation(ARGOCD_TRACKING_ANNOTATION) {
        return Some(Keep::HandedOff {
            to: format!("argocd (tracking id {id})"),
        });
    }
    if meta.deletion_timestamp.is_some() {
        return Some(Keep::Deleting);
    }
    if let Some(keep) = ownership::verdict(meta, label, &cx.options) {
        return Some(keep);
    }
    if !managed && !cx.options.force_prune {
        return Some(Keep::NotManaged);
    }
    None
}

/// One type's part of a scan.
struct Listed {
    resource: ApiResource,
    items: Vec<MetaItem>,
    /// Listed per namespace, because the cluster-wide list was forbidden.
    narrowed: bool,
    /// Not (entirely) listed, because it was forbidden.
    unlisted: Option<String>,
}
