//! What the server holds of the planned objects, found with as few requests as possible:
//! metadata-only lists instead of a read per object.

use std::collections::{HashMap, HashSet};

use capstan_manifest::{Manifest, Object, ObjectId};
use futures::{StreamExt as _, stream};

use crate::check::Check;
use crate::deployer::Deployer;
use crate::error::{Error, Result};
use crate::ownership;
use crate::plan::{Planned, type_key};
use capstan_kube::{Catalog, Resource};
use capstan_kube::{MetaItem, Target, status_code};

/// Objects of one type in one namespace at or above this many are checked for existence with
/// one list instead of a read each.
const LIST_THRESHOLD: usize = 8;

/// A type whose objects span more namespaces than this is listed across the cluster at once.
const NAMESPACE_LISTS: usize = 8;

impl Deployer {
    /// Objects in a namespace that does not exist: planned after the run creates it, or an
    /// error when the manifests do not create it.
    pub(crate) async fn check_namespaces(
        &self,
        manifest: &Manifest,
        catalog: &Catalog,
        items: &mut [Planned<'_>],
    ) -> Result<()> {
        let namespaces = match catalog.resolve("", "v1", "Namespace") {
            Some(namespaces) if items.iter().any(|i| i.namespace.is_some()) => namespaces,
            _ => return Ok(()),
        };
        let existing = self.existing_namespaces(namespaces, items).await?;
        let created: HashSet<&str> = manifest
            .iter()
            .map(Object::id)
            .filter(|id| id.group().is_empty() && id.kind() == "Namespace")
            .map(ObjectId::name)
            .collect();
        for item in items.iter_mut() {
            let Some(namespace) = item.namespace.as_deref() else {
                continue;
            };
            if existing.as_ref().is_none_or(|e| e.contains(namespace)) {
                continue;
            }
            if created.contains(namespace) {
                // Known to be new: it cannot exist before its namespace does.
                item.pend();
            } else {
                item.error = Some(Error::MissingNamespace {
                    id: item.id().clone(),
                    namespace: namespace.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// The names of the Namespaces that exist, from one list; for a user who may not list
    /// Namespaces, from a read of each one the manifests use. `None` when even that is
    /// forbidden: a namespace nobody may read is not known to be missing, and the dry run
    /// decides.
    async fn existing_namespaces(
        &self,
        namespaces: &Resource,
        items: &[Planned<'_>],
    ) -> Result<Option<HashSet<String>>> {
        let list_error = |source| Error::List {
            resource: namespaces.describe(),
            cause: source,
        };
        match self.api.list_metadata(&namespaces.api, None, None).await {
            Ok(list) => {
                return Ok(Some(
                    list.into_iter().filter_map(|i| i.metadata.name).collect(),
                ));
            }
            Err(error) if status_code(&error) == Some(403) => {}
            Err(error) => return Err(list_error(error)),
        }
        let wanted: HashSet<&str> = items
            .iter()
            .filter_map(|i| i.namespace.as_deref())
            .collect();
        let mut existing = HashSet::new();
        for name in wanted {
            let target = Target {
                resource: &namespaces.api,
                namespace: None,
                name,
            };
            match self.api.get(target).await {
                Ok(Some(_)) => {
                    existing.insert(name.to_owned());
                }
                Ok(None) => {}
                Err(error) if status_code(&error) == Some(403) => return Ok(None),
                // The read's own failure: a list the user may not make says nothing about it.
                Err(error) => return Err(list_error(error)),
            }
        }
        Ok(Some(existing))
    }

    /// Live objects carrying the discriminator, of every type the manifests use: one
    /// metadata-only list per type.
    pub(crate) async fn labelled(
        &self,
        manifest: &Manifest,
        items: &[Planned<'_>],
    ) -> Result<HashMap<(String, Option<String>, String), MetaItem>> {
        let Some(label) = manifest.label() else {
            return Ok(HashMap::new());
        };
        let selector = ownership::selector(label, &self.options);
        // A list reads every object of its range from etcd before the label selector applies,
        // so a stage's few namespaces are listed one by one rather than the whole cluster.
        let mut scopes: HashMap<String, (&Resource, HashSet<Option<&str>>)> = HashMap::new();
        for item in items {
            if let Some(resource) = &item.resource {
                let scope = scopes
                    .entry(type_key(resource))
                    .or_insert_with(|| (resource, HashSet::new()));
                scope.1.insert(item.namespace.as_deref());
            }
        }
        let scoped: HashMap<String, Vec<&str>> = scopes
            .iter()
            .map(|(key, (_, namespaces))| {
                (key.clone(), namespaces.iter().flatten().copied().collect())
            })
            .collect();
        let mut requests: Vec<(String, &Resource, Option<&str>)> = Vec::new();
        for (key, (resource, namespaces)) in scopes {
            if namespaces.len() > NAMESPACE_LISTS || namespaces.contains(&None) {
                requests.push((key, resource, None));
            } else {
                requests.extend(namespaces.into_iter().map(|ns| (key.clone(), resource, ns)));
            }
        }
        let lists: Vec<Result<(String, Vec<MetaItem>)>> = stream::iter(requests)
            .map(|(key, resource, namespace)| {
                let selector = &selector;
                let scoped = &scoped;
                async move {
                    let list = |namespace| {
                        self.api
                            .list_metadata(&resource.api, namespace, Some(selector))
                    };
                    let error = |source| Error::List {
                        resource: resource.describe(),
                        cause: source,
                    };
                    match list(namespace).await {
                        Ok(items) => Ok((key, items)),
                        // Not allowed across the cluster: the namespaces the stage uses, one
                        // by one, are what a namespace-scoped user may read.
                        Err(source)
                            if namespace.is_none()
                                && resource.namespaced
                                && status_code(&source) == Some(403) =>
                        {
                            let mut items = Vec::new();
                            for namespace in scoped.get(&key).into_iter().flatten() {
                                items.extend(list(Some(namespace)).await.map_err(error)?);
                            }
                            Ok((key, items))
                        }
                        Err(source) => Err(error(source)),
                    }
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut live = HashMap::new();
        for list in lists {
            let (resource, items) = list?;
            for item in items {
                let name = item.metadata.name.clone().unwrap_or_default();
                let namespace = item.metadata.namespace.clone();
                live.insert((resource.clone(), namespace, name), item);
            }
        }
        Ok(live)
    }

    /// Which unsettled objects are known not to exist, from one metadata list per type and
    /// namespace where many objects share them.
    pub(crate) async fn absent(
        &self,
        items: &[Planned<'_>],
        unsettled: &[(usize, Check)],
    ) -> Result<HashSet<usize>> {
        let mut groups: HashMap<(String, Option<&str>), Vec<usize>> = HashMap::new();
        for &(index, check) in unsettled {
            if check == Check::Unknown {
                let item = &items[index];
                if let Some(resource) = &item.resource {
                    groups
                        .entry((type_key(resource), item.namespace.as_deref()))
                        .or_default()
                        .push(index);
                }
            }
        }
        let groups: Vec<_> = groups
            .into_values()
            .filter(|indices| indices.len() >= LIST_THRESHOLD)
            .collect();
        let lists: Vec<Result<HashSet<usize>>> = stream::iter(groups)
            .map(|indices| async move {
                let first = &items[indices[0]];
                let resource = first.resource.as_ref().expect("grouped by resource");
                let names: HashSet<String> = match self
                    .api
                    .list_metadata(&resource.api, first.namespace.as_deref(), None)
                    .await
                {
                    Ok(list) => list
                        .into_iter()
                        .filter_map(|item| item.metadata.name)
                        .collect(),
                    // Forbidden is not absent: each object is then read on its own.
                    Err(error) if status_code(&error) == Some(403) => return Ok(HashSet::new()),
                    Err(source) => {
                        return Err(Error::List {
                            resource: resource.describe(),
                            cause: source,
                        });
                    }
                };
                Ok(indices
                    .into_iter()
                    .filter(|&i| !names.contains(items[i].id().name()))
                    .collect())
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut absent = HashSet::new();
        for list in lists {
            absent.extend(list?);
        }
        Ok(absent)
    }
}
