//! Deleting a Namespace deletes everything in it, and deleting a CustomResourceDefinition
//! deletes every custom resource of its kinds, in every namespace. Neither may take along an
//! object that the same run is not deleting anyway: another stage's objects, or things made by
//! hand.

use std::collections::HashSet;

use capstan_manifest::ObjectId;
use futures::{StreamExt as _, stream};

use crate::deployer::Deployer;
use crate::prune::{Keep, Owned, SCAN_PARALLEL};
use capstan_kube::MetaItem;
use capstan_kube::{Catalog, Resource};

/// How many of the objects that hold a Namespace or CRD back a [`Keep`] names.
const NAMED: usize = 5;

/// What the cluster makes in every namespace by itself: these go with the namespace without
/// anybody missing them.
const NAMESPACE_FURNITURE: [(&str, &str); 2] = [
    ("ServiceAccount", "default"),
    ("ConfigMap", "kube-root-ca.crt"),
];

impl Deployer {
    /// Keeps each Namespace and CRD about to be deleted whose deletion would take along
    /// objects that are not in `owned` with a delete verdict too, unless
    /// [`Options::force_cascade`](crate::Options::force_cascade).
    pub(crate) async fn guard_cascades(&self, catalog: &Catalog, owned: &mut [Owned]) {
        if self.options.force_cascade {
            return;
        }
        let going: HashSet<String> = owned
            .iter()
            .filter(|o| o.will_delete())
            .map(|o| o.uid.clone())
            .collect();
        let going = &going;
        let candidates: Vec<usize> = (0..owned.len())
            .filter(|&i| {
                owned[i].will_delete() && (owned[i].id.is_namespace() || owned[i].id.is_crd())
            })
            .collect();
        let owned_ref = &*owned;
        let verdicts: Vec<(usize, Option<Keep>)> = stream::iter(candidates)
            .map(|index| async move {
                let id = &owned_ref[index].id;
                let keep = if id.is_namespace() {
                    self.namespace_verdict(catalog, id.name(), owned_ref, going)
                        .await
                } else {
                    self.definition_verdict(catalog, id.name(), going).await
                };
                (index, keep)
            })
            .buffer_unordered(SCAN_PARALLEL)
            .collect()
            .await;
        for (index, keep) in verdicts {
            owned[index].keep = keep;
        }
    }

    /// Lists every namespaced type in the namespace and keeps it if anything there stays.
    async fn namespace_verdict(
        &self,
        catalog: &Catalog,
        namespace: &str,
        owned: &[Owned],
        going: &HashSet<String>,
    ) -> Option<Keep> {
        let resources: Vec<&Resource> = catalog
            .deletable()
            .filter(|r| r.namespaced && r.api.plural != "events")
            .collect();
        let lists: Vec<Result<Vec<(ObjectId, MetaItem)>, String>> = stream::iter(resources)
            .map(|resource| self.contents(resource, Some(namespace)))
            .buffer_unordered(SCAN_PARALLEL)
            .collect()
            .await;
        let mut contents = Vec::new();
        for list in lists {
            match list {
                Ok(items) => contents.extend(items),
                Err(message) => return Some(Keep::Unverified(message)),
            }
        }
        // Endpoints carry no ownerReferences: they go with the Service of the same name.
        let services: HashSet<&str> = owned
            .iter()
            .filter(|o| o.will_delete() && o.id.group().is_empty() && o.id.kind() == "Service")
            .filter(|o| o.id.namespace() == Some(namespace))
            .map(|o| o.id.name())
            .collect();
        let staying = staying(contents, going, |id, _| {
            let kind = id.kind();
            let core = id.group().is_empty();
            (core && NAMESPACE_FURNITURE.contains(&(kind, id.name())))
                || (core && kind == "Endpoints" && services.contains(id.name()))
        });
        holds(staying, |holds, more| Keep::NamespaceNotEmpty {
            holds,
            more,
        })
    }

    /// Lists the definition's custom resources across the cluster and keeps it if any stays.
    async fn definition_verdict(
        &self,
        catalog: &Catalog,
        name: &str,
        going: &HashSet<String>,
    ) -> Option<Keep> {
        let (plural, group) = name.split_once('.')?;
        // Not served (yet, or any more): there is nothing of its kinds to take along.
        let resource = catalog.by_plural(group, plural)?;
        match self.contents(resource, None).await {
            Ok(items) => holds(staying(items, going, |_, _| false), |holds, more| {
                Keep::DefinitionInUse { holds, more }
            }),
            Err(message) => Some(Keep::Unverified(message)),
        }
    }

    /// Every object of a type (in one namespace, or all), unselected.
    async fn contents(
        &self,
        resource: &Resource,
        namespace: Option<&str>,
    ) -> Result<Vec<(ObjectId, MetaItem)>, String> {
        match self.api.list_metadata(&resource.api, namespace, None).await {
            Ok(items) => Ok(items
                .into_iter()
                .map(|item| {
                    let id = ObjectId::new(
                        &resource.api.api_version,
                        &resource.api.kind,
                        item.metadata.namespace.as_deref(),
                        item.metadata.name.as_deref().unwrap_or_default(),
                    );
                    (id, item)
                })
                .collect()),
            Err(error) if matches!(capstan_kube::status_code(&error), Some(404 | 405)) => {
                Ok(Vec::new())
            }
            Err(error) => Err(format!(
                "cannot list {} to see what deleting it would take along: {error}",
                resource.describe()
            )),
        }
    }
}

/// The objects that survive this run: not deleted by it, not owned (transitively) only by what
/// it deletes, not the token of a ServiceAccount it deletes, and not made by the cluster for
/// what it deletes (`incidental`).
fn staying(
    items: Vec<(ObjectId, MetaItem)>,
    going: &HashSet<String>,
    incidental: impl Fn(&ObjectId, &MetaItem) -> bool,
) -> Vec<ObjectId> {
    let mut going: HashSet<String> = going.clone();
    let mut rest: Vec<(ObjectId, MetaItem)> = items;
    // A Pod owned by a ReplicaSet owned by a Deployment that goes, goes: repeat until no owner
    // chain gains a member.
    loop {
        let before = rest.len();
        rest.retain(|(id, item)| {
            let uid = item.metadata.uid.clone().unwrap_or_default();
            let owners = item
                .metadata
                .owner_references
                .as_deref()
                .unwrap_or_default();
            let collected = !owners.is_empty() && owners.iter().all(|o| going.contains(&o.uid));
            // Token Secrets name their ServiceAccount in an annotation, not an owner reference.
            let token_of_going = item
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.uid"))
                .is_some_and(|account| going.contains(account));
            if going.contains(&uid) || collected || token_of_going || incidental(id, item) {
                going.insert(uid);
                return false;
            }
            true
        });
        if rest.len() == before {
            break;
        }
    }
    let mut staying: Vec<ObjectId> = rest.into_iter().map(|(id, _)| id).collect();
    staying.sort();
    staying
}

fn holds(staying: Vec<ObjectId>, keep: impl Fn(Vec<ObjectId>, usize) -> Keep) -> Option<Keep> {
    if staying.is_empty() {
        return None;
    }
    let more = staying.len().saturating_sub(NAMED);
    Some(keep(staying.into_iter().take(NAMED).collect(), more))
}
