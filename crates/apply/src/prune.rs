//! Finding what a discriminator owns on the server, and deleting it safely.

use std::collections::{BTreeMap, HashSet};

use capstan_manifest::{Label, Manifest, ObjectId, Phase};
use futures::{StreamExt as _, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use serde::{Deserialize, Serialize};

use crate::deployer::Deployer;
use crate::error::{Error, Result};
use crate::options::{Event, Progress};
use crate::ownership;
use crate::plan::Plan;
use capstan_kube::{Catalog, Resource};
use capstan_kube::{MetaItem, Target};

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
    pub(crate) labels: BTreeMap<String, String>,
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Keep {
    /// A controller made it (it has ownerReferences); it goes when its owner goes.
    Owned(String),
    /// `capstan.io/skip-delete: "true"` or `helm.sh/resource-policy: keep`.
    Protected(String),
    /// capstan never applied it (it only carries the label); `force_prune` overrides.
    NotManaged,
    /// It is already being deleted.
    Deleting,
    /// A Namespace that still holds objects of the manifests, which deleting it would take
    /// along.
    HoldsManifestObjects,
    /// A CustomResourceDefinition whose kind the manifests still use.
    DefinesManifestKind,
    /// Its ownership record ([`OWNER_ANNOTATION`](crate::OWNER_ANNOTATION)) names another
    /// stage: the label alone proves nothing. Nothing overrides this.
    #[serde(rename_all = "camelCase")]
    OwnedElsewhere {
        /// The `project/stage` the object records.
        recorded: String,
        /// This run's `project/stage`, if it has one.
        ours: Option<String>,
    },
    /// It has no ownership record and carries a discriminator value that an earlier default
    /// (`<project>-<stage>`) could have given another stage too; `force_prune` overrides.
    #[serde(rename_all = "camelCase")]
    AmbiguousLegacyLabel {
        /// The label value.
        value: String,
    },
    /// A Namespace holding objects that are not being deleted in this run: deleting the
    /// Namespace would delete them too.
    #[serde(rename_all = "camelCase")]
    NamespaceNotEmpty {
        /// Some of those objects.
        holds: Vec<ObjectId>,
        /// How many more there are.
        more: usize,
    },
    /// A CustomResourceDefinition whose custom resources exist outside this run's deletions:
    /// deleting the definition would delete them too.
    #[serde(rename_all = "camelCase")]
    DefinitionInUse {
        /// Some of those objects.
        holds: Vec<ObjectId>,
        /// How many more there are.
        more: usize,
    },
    /// What deleting it would take along could not be checked; the message says why.
    Unverified(String),
}

/// What a delete request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Removal {
    /// This run deleted it.
    Deleted,
    /// It was gone already (another run, a person, its owner's garbage collection).
    AlreadyGone,
    /// Another object with the same name has replaced it since the scan: left alone.
    Replaced,
}

/// What happened to one object a prune or delete went for.
#[derive(Debug)]
#[non_exhaustive]
pub struct Deletion {
    /// The object.
    pub id: ObjectId,
    /// What the server said, or why the request failed.
    pub result: Result<Removal>,
}

impl Deletion {
    /// Whether this run deleted the object (not: found it gone, or replaced).
    pub fn deleted(&self) -> bool {
        matches!(self.result, Ok(Removal::Deleted))
    }
}

/// What a scan could not see, because the user may not list it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Blind {
    /// Cluster-wide lists were forbidden: namespaced types were listed in these namespaces
    /// (the manifests') only.
    pub namespaces: Vec<String>,
    /// Types that could not be listed at all, as `group/version resource`: their objects are
    /// never pruned by this run.
    pub types: Vec<String>,
}

impl Blind {
    /// Whether the scan saw everything.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.types.is_empty()
    }
}

/// Lists in flight at once when scanning every resource type.
pub(crate) const SCAN_PARALLEL: usize = 16;

/// Everything a scan found, and what it could not look at.
pub(crate) struct Scan {
    pub(crate) owned: Vec<Owned>,
    pub(crate) blind: Blind,
}

impl Deployer {
    /// Every live object carrying `label`, across every resource type the server serves, with
    /// the prune guards' verdict; one metadata-only list per type, in parallel. When the user
    /// may not list a type across the cluster, it is listed in `namespaces` instead: a forbidden
    /// list is reported in [`Blind`], never taken for an empty one.
    pub(crate) async fn scan(
        &self,
        catalog: &Catalog,
        label: &Label,
        namespaces: &[String],
        progress: Progress<'_>,
    ) -> Result<Scan> {
        let selector = ownership::selector(label, &self.options);
        let resources: Vec<_> = catalog.deletable().collect();
        progress(Event::Scanning {
            resources: resources.len(),
        });
        let lists: Vec<Result<Listed>> = stream::iter(resources)
            .map(|resource| self.list_scoped(resource, &selector, namespaces))
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
                let managed = meta.managed_fields.iter().flatten().any(|entry| {
                    entry.manager.as_deref() == Some(self.options.field_manager.as_str())
                });
                let id = ObjectId::new(
                    &listed.resource.api_version,
                    &listed.resource.kind,
                    meta.namespace.as_deref(),
                    meta.name.as_deref().unwrap_or_default(),
                );
                let keep = self.keep(&meta, label, managed);
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
        &'a self,
        resource: &'a Resource,
        selector: &'a str,
        namespaces: &'a [String],
    ) -> Result<Listed> {
        let api = &self.api;
        let list = |namespace: Option<&'a str>| {
            api.list_metadata(&resource.api, namespace, Some(selector))
        };
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

    /// The scan minus everything the manifests hold (by identity, and by UID for objects
    /// served under two groups), with the cascade guards applied.
    pub(crate) async fn scan_orphans(
        &self,
        plan: &Plan<'_>,
        manifest: &Manifest,
        label: &Label,
        progress: Progress<'_>,
    ) -> Result<Scan> {
        let wanted: HashSet<&ObjectId> = manifest.iter().map(|o| o.id()).collect();
        let uids: HashSet<&str> = plan.items.iter().filter_map(|i| i.uid()).collect();
        let namespaces: HashSet<&str> = plan
            .items
            .iter()
            .filter_map(|i| i.namespace.as_deref())
            .collect();
        let kinds: HashSet<(&str, &str)> = manifest
            .iter()
            .map(|o| (o.id().group(), o.id().kind()))
            .collect();
        let mut scan = self
            .scan(&plan.catalog, label, &plan_namespaces(plan), progress)
            .await?;
        scan.owned
            .retain(|o| !wanted.contains(&o.id) && !uids.contains(o.uid.as_str()));
        if let Some(selection) = &self.options.selection {
            scan.owned.retain(|o| selection.matches(&o.id, &o.labels));
        }
        for orphan in &mut scan.owned {
            if orphan.keep.is_some() {
                continue;
            }
            let id = &orphan.id;
            if id.is_namespace() && namespaces.contains(id.name()) {
                orphan.keep = Some(Keep::HoldsManifestObjects);
            } else if id.is_crd() {
                let defines = id
                    .name()
                    .split_once('.')
                    .is_some_and(|(_, group)| kinds.iter().any(|(g, _)| *g == group));
                if defines {
                    orphan.keep = Some(Keep::DefinesManifestKind);
                }
            }
        }
        self.guard_cascades(&plan.catalog, &mut scan.owned).await;
        Ok(scan)
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
                        Ok(true) => Ok(Removal::Deleted),
                        Ok(false) => Ok(Removal::AlreadyGone),
                        // A changed UID (409) means the object was replaced: not ours to delete.
                        Err(error) if capstan_kube::status_code(&error) == Some(409) => {
                            Ok(Removal::Replaced)
                        }
                        Err(source) => Err(self.request_error(&object.id, "delete", source)),
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

    fn keep(&self, meta: &ObjectMeta, label: &Label, managed: bool) -> Option<Keep> {
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
        if let Some(keep) = ownership::verdict(meta, label, &self.options) {
            return Some(keep);
        }
        if !managed && !self.options.force_prune {
            return Some(Keep::NotManaged);
        }
        None
    }
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

/// The namespaces the plan's objects live in, for scans that may not list the whole cluster.
pub(crate) fn plan_namespaces(plan: &Plan<'_>) -> Vec<String> {
    let mut namespaces: Vec<String> = plan
        .items
        .iter()
        .filter_map(|i| i.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}
