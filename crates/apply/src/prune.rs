//! Finding what a discriminator owns on the server, and deleting it safely.

use std::collections::{BTreeMap, HashSet};

use capstan_manifest::{Label, ObjectId, Phase};
use futures::{StreamExt as _, stream};
use kube::core::ApiResource;
use serde::Serialize;

use crate::api::{MetaItem, Target};
use crate::catalog::Catalog;
use crate::deployer::Deployer;
use crate::error::{Error, Result};
use crate::options::{Event, Progress};
use crate::plan::Plan;

/// Annotation that keeps an object from ever being pruned or deleted by capstan.
pub const SKIP_DELETE_ANNOTATION: &str = "capstan.io/skip-delete";

/// A live object carrying the discriminator.
#[derive(Clone, Debug, Serialize)]
pub struct Owned {
    /// The object.
    pub id: ObjectId,
    /// Its UID.
    pub uid: String,
    /// Whether capstan's field manager has applied it.
    pub managed: bool,
    /// What keeps it from being deleted, if anything.
    pub keep: Option<Keep>,
    #[serde(skip)]
    pub(crate) resource: ApiResource,
}

/// A prune candidate: a live object carrying the discriminator that the manifests no longer
/// hold.
pub type Orphan = Owned;

impl Owned {
    /// Whether prune or delete will delete it.
    pub fn will_delete(&self) -> bool {
        self.keep.is_none()
    }
}

/// Why a prune or delete keeps an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Keep {
    /// A controller made it (it has ownerReferences); it goes when its owner goes.
    Owned(String),
    /// `capstan.io/skip-delete: "true"` or `helm.sh/resource-policy: keep`.
    Protected(String),
    /// capstan never applied it (it only carries the label); `--force-prune` overrides.
    NotManaged,
    /// It is already being deleted.
    Deleting,
    /// A Namespace that still holds objects of the manifests, which deleting it would take
    /// along.
    HoldsManifestObjects,
    /// A CustomResourceDefinition whose kind the manifests still use.
    DefinesManifestKind,
}

/// What happened to one object a prune or delete went for.
#[derive(Debug)]
pub struct Deletion {
    /// The object.
    pub id: ObjectId,
    /// `Ok(true)` deleted, `Ok(false)` already gone or replaced by another object.
    pub result: Result<bool>,
}

/// Lists in flight at once when scanning every resource type.
const SCAN_PARALLEL: usize = 16;

impl Deployer {
    /// Every live object carrying `label`, across every resource type the server serves, with
    /// the prune guards' verdict; one metadata-only list per type, in parallel.
    pub(crate) async fn scan(
        &self,
        catalog: &Catalog,
        label: &Label,
        progress: Progress<'_>,
    ) -> Result<Vec<Owned>> {
        let selector = label.selector();
        let resources: Vec<_> = catalog.deletable().collect();
        progress(Event::Scanning {
            resources: resources.len(),
        });
        let lists: Vec<Result<(ApiResource, Vec<MetaItem>)>> = stream::iter(resources)
            .map(|resource| {
                let selector = &selector;
                async move {
                    match self
                        .api
                        .list_metadata(&resource.api, None, Some(selector))
                        .await
                    {
                        Ok(items) => Ok((resource.api.clone(), items)),
                        // A type that cannot be listed after all (405, 404 of a vanishing
                        // API) holds nothing capstan could have applied through it.
                        Err(error)
                            if matches!(crate::api::status_code(&error), Some(404 | 405)) =>
                        {
                            Ok((resource.api.clone(), Vec::new()))
                        }
                        Err(source) => Err(Error::List {
                            resource: resource.describe(),
                            source,
                        }),
                    }
                }
            })
            .buffer_unordered(SCAN_PARALLEL)
            .collect()
            .await;
        let mut owned = Vec::new();
        let mut seen = HashSet::new();
        for list in lists {
            let (resource, items) = list?;
            for item in items {
                let meta = item.metadata;
                let uid = meta.uid.clone().unwrap_or_default();
                // One object can be served by two groups (Events, Ingresses on old servers).
                if !seen.insert(uid.clone()) {
                    continue;
                }
                let managed = meta.managed_fields.iter().flatten().any(|entry| {
                    entry.manager.as_deref() == Some(self.options.field_manager.as_str())
                });
                let id = ObjectId::new(
                    &resource.api_version,
                    &resource.kind,
                    meta.namespace.as_deref(),
                    meta.name.as_deref().unwrap_or_default(),
                );
                let keep = keep(&meta, managed, self.options.force_prune);
                owned.push(Owned {
                    id,
                    uid,
                    managed,
                    keep,
                    resource: resource.clone(),
                });
            }
        }
        owned.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(owned)
    }

    /// The scan minus everything the plan holds (by identity, and by UID for objects served
    /// under two groups).
    pub(crate) async fn scan_orphans(
        &self,
        plan: &Plan<'_>,
        label: &Label,
        progress: Progress<'_>,
    ) -> Result<Vec<Orphan>> {
        let wanted: HashSet<&ObjectId> = plan.items.iter().map(|i| i.id()).collect();
        let uids: HashSet<&str> = plan.items.iter().filter_map(|i| i.uid()).collect();
        let namespaces: HashSet<&str> = plan
            .items
            .iter()
            .filter_map(|i| i.namespace.as_deref())
            .collect();
        let kinds: HashSet<(&str, &str)> = plan
            .items
            .iter()
            .map(|i| (i.id().group(), i.id().kind()))
            .collect();
        let mut orphans = self.scan(&plan.catalog, label, progress).await?;
        orphans.retain(|o| !wanted.contains(&o.id) && !uids.contains(o.uid.as_str()));
        for orphan in &mut orphans {
            if orphan.keep.is_some() {
                continue;
            }
            let id = &orphan.id;
            if id.group().is_empty() && id.kind() == "Namespace" && namespaces.contains(id.name()) {
                orphan.keep = Some(Keep::HoldsManifestObjects);
            } else if id.kind() == "CustomResourceDefinition" {
                let defines = id
                    .name()
                    .split_once('.')
                    .is_some_and(|(_, group)| kinds.iter().any(|(g, _)| *g == group));
                if defines {
                    orphan.keep = Some(Keep::DefinesManifestKind);
                }
            }
        }
        Ok(orphans)
    }

    /// Deletes the objects whose verdict is delete: in the reverse of apply order, one phase at
    /// a time, each with a UID precondition so a replaced object survives.
    pub(crate) async fn delete_owned(
        &self,
        owned: &[Owned],
        progress: Progress<'_>,
    ) -> Vec<Deletion> {
        let mut phases: BTreeMap<std::cmp::Reverse<Phase>, Vec<&Owned>> = BTreeMap::new();
        for object in owned.iter().filter(|o| o.will_delete()) {
            let phase = Phase::of(object.id.group(), object.id.kind(), false);
            phases
                .entry(std::cmp::Reverse(phase))
                .or_default()
                .push(object);
        }
        let mut deletions = Vec::new();
        for objects in phases.into_values() {
            let done: Vec<Deletion> = stream::iter(objects)
                .map(|object| async move {
                    let target = Target {
                        resource: &object.resource,
                        namespace: object.id.namespace(),
                        name: object.id.name(),
                    };
                    let result = match self.api.delete(target, &object.uid).await {
                        // A changed UID (409) means the object was replaced: not ours to delete.
                        Err(error) if crate::api::status_code(&error) == Some(409) => Ok(false),
                        result => result
                            .map_err(|source| self.request_error(&object.id, "delete", source)),
                    };
                    Deletion {
                        id: object.id.clone(),
                        result,
                    }
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .inspect(|d| {
                    progress(Event::Deleted {
                        id: &d.id,
                        ok: d.result.is_ok(),
                    })
                })
                .collect()
                .await;
            deletions.extend(done);
        }
        deletions
    }
}

fn keep(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    managed: bool,
    force: bool,
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
    if meta.deletion_timestamp.is_some() {
        return Some(Keep::Deleting);
    }
    if !managed && !force {
        return Some(Keep::NotManaged);
    }
    None
}
