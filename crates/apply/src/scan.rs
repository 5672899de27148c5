//! Finding what a discriminator owns on the server, with the prune guards' verdict on each.

use std::collections::HashSet;
use std::sync::Arc;

use capstan_kube::Catalog;
use capstan_kube::{MetaItem, Resource};
use capstan_manifest::{Label, Manifest, ObjectId};
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

/// The catalog a scan needs. With a [`ScanScope`](crate::ScanScope), only the group-versions
/// of its kinds and the manifests' are discovered, a round of requests instead of one per
/// group-version the server serves; when a recorded kind is no longer served at its recorded
/// version, objects of it could hide elsewhere, so everything is discovered after all.
///
/// # Errors
///
/// Discovery failing.
pub(crate) async fn catalog(cx: &Context, manifest: &Manifest) -> Result<Catalog> {
    if let Some(scope) = &cx.options.scan_scope {
        let mut versions: Vec<String> = scope.kinds.iter().map(|(v, _)| v.clone()).collect();
        versions.extend(manifest.iter().map(|o| o.id().api_version()));
        versions.sort();
        versions.dedup();
        let catalog = Catalog::discover_only(&cx.api, &versions).await?;
        if scoped(cx, &catalog, manifest).is_some() {
            return Ok(catalog);
        }
    }
    Ok(Catalog::discover(&cx.api).await?)
}

/// The types a scoped scan lists: the scope's and the manifests' kinds, once per group and
/// kind. `None` (scan every type) without a scope or when a scope kind is not in `catalog`.
fn scoped<'c>(
    cx: &Context,
    catalog: &'c Catalog,
    manifest: &Manifest,
) -> Option<Vec<&'c Arc<Resource>>> {
    let scope = cx.options.scan_scope.as_ref()?;
    let mut seen = HashSet::new();
    let mut resources = Vec::new();
    let recorded = scope
        .kinds
        .iter()
        .map(|(v, k)| (v.clone(), k.clone(), true));
    let current = manifest
        .iter()
        .map(|o| (o.id().api_version(), o.id().kind().to_owned(), false));
    for (api_version, kind, required) in recorded.chain(current) {
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        match catalog.resolve(group, version, &kind) {
            Some(resource) if resource.supports("list") && resource.supports("delete") => {
                if seen.insert((group.to_owned(), kind)) {
                    resources.push(resource);
                }
            }
            Some(_) => {}
            // A CRD the manifests bring along this run holds no live objects yet.
            None if !required => {}
            None => return None,
        }
    }
    Some(resources)
}

/// The catalog the cascade guards need for a scan's deletable Namespaces and CRDs: their
/// contents may be of any type, so a scoped catalog will not do and everything is
/// discovered. `None`: `catalog` will do.
///
/// # Errors
///
/// Discovery failing.
pub(crate) async fn guard_catalog(cx: &Context, owned: &[Owned]) -> Result<Option<Catalog>> {
    let cascades = owned
        .iter()
        .any(|o| o.will_delete() && (o.id.is_namespace() || o.id.is_crd()));
    if cx.options.scan_scope.is_none() || !cascades || cx.options.force_cascade {
        return Ok(None);
    }
    Ok(Some(Catalog::discover(&cx.api).await?))
}

/// Every live object carrying `label`, across every resource type the server serves (or
/// those of [`Options::scan_scope`](crate::Options::scan_scope)), with the prune guards'
/// verdict; one metadata-only list per type, in parallel. When the user may not list a type
/// across the cluster, it is listed in `namespaces` instead: a forbidden list is reported in
/// [`Blind`], never taken for an empty one.
pub(crate) async fn scan(
    cx: &Context,
    catalog: &Catalog,
    manifest: &Manifest,
    label: &Label,
    namespaces: &[String],
    progress: Progress<'_>,
) -> Result<Scan> {
    let selector = ownership::selector(label, &cx.options);
    let resources: Vec<_> = match scoped(cx, catalog, manifest) {
        Some(resources) => resources,
        None => catalog.deletable().collect(),
    };
    let mut namespaces = namespaces.to_vec();
    if let Some(scope) = &cx.options.scan_scope {
        namespaces.extend(scope.namespaces.iter().cloned());
        namespaces.sort();
        namespaces.dedup();
    }
    let namespaces = namespaces.as_slice();
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
            let keep = keep(cx, &meta, label, managed, &listed.resource);
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

/// Types whose deletion takes data along: every custom resource of a CRD, a volume's claim,
/// everything in a Namespace.
fn holds_data(resource: &ApiResource) -> bool {
    matches!(
        (resource.group.as_str(), resource.kind.as_str()),
        ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("", "PersistentVolumeClaim" | "Namespace")
    )
}

fn keep(
    cx: &Context,
    meta: &ObjectMeta,
    label: &Label,
    managed: bool,
    resource: &ApiResource,
) -> Option<Keep> {
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
    if cx.options.keep_data_kinds && holds_data(resource) {
        return Some(Keep::Protected(
            "the rule that a rollback keeps CRDs, PersistentVolumeClaims and Namespaces".to_owned(),
        ));
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
