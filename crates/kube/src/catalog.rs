//! Which kinds the server serves: API discovery, fetched group-version by group-version in
//! parallel and kept for the run.

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::core::ApiResource;

use capstan_manifest::{Manifest, ObjectId};

use crate::api::Api;
use crate::error::{Error, Result};

/// A served resource type.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Resource {
    /// Its group, version, kind and plural.
    pub api: ApiResource,
    /// Whether its objects live in namespaces.
    pub namespaced: bool,
    /// Served in its group's preferred version.
    pub preferred: bool,
    verbs: Vec<String>,
}

impl Resource {
    /// Whether the server allows `verb` (`list`, `delete`, `patch`, ...) on it.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `group/version resource`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}", self.api.api_version, self.api.plural)
    }
}

/// Every served resource type, by group, version and kind.
#[derive(Debug, Default)]
pub struct Catalog {
    by_kind: HashMap<(String, String, String), Resource>,
    /// Group-versions whose discovery failed (an aggregated API that is down, say).
    unavailable: Vec<String>,
}

/// Discovery requests in flight at once.
const PARALLEL: usize = 16;

impl Catalog {
    /// Discovers the server's API: one request for the groups, one per group-version, in
    /// parallel. A group-version that fails (an aggregated API that is down) is left out and
    /// listed in [`Catalog::unavailable`].
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when the groups or the core API cannot be read.
    pub async fn discover(api: &Api) -> Result<Self> {
        let client = api.client();
        let groups = client.list_api_groups().await.map_err(Error::Discovery)?;
        let mut versions = vec![("v1".to_owned(), true)];
        for group in groups.groups {
            let preferred = group.preferred_version.map(|v| v.group_version);
            for version in group.versions {
                let is_preferred = preferred.as_deref() == Some(version.group_version.as_str());
                versions.push((version.group_version, is_preferred));
            }
        }
        api.count();
        Self::fetch(api, versions).await
    }

    /// Discovers only the given group-versions (and core `v1`): all a deploy without prune
    /// needs, in one round of parallel requests. A group-version the server does not serve
    /// simply resolves nothing. No type counts as preferred, so nothing can be scanned.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when the core API cannot be read.
    pub async fn discover_only(api: &Api, group_versions: &[String]) -> Result<Self> {
        let mut versions = vec![("v1".to_owned(), false)];
        versions.extend(
            group_versions
                .iter()
                .filter(|gv| gv.as_str() != "v1")
                .map(|gv| (gv.clone(), false)),
        );
        let mut catalog = Self::fetch(api, versions).await?;
        // Absent group-versions are expected here: their CRDs may come with the manifests.
        catalog.unavailable.clear();
        Ok(catalog)
    }

    async fn fetch(api: &Api, versions: Vec<(String, bool)>) -> Result<Self> {
        let client = api.client();
        let lists: Vec<(String, bool, Option<APIResourceList>)> = stream::iter(versions)
            .map(|(group_version, preferred)| async move {
                api.count();
                let result = if group_version == "v1" {
                    client.list_core_api_resources("v1").await
                } else {
                    client.list_api_group_resources(&group_version).await
                };
                match result {
                    Ok(list) => Ok((group_version, preferred, Some(list))),
                    // The core API must answer; an aggregated group that is down only narrows
                    // what capstan can see.
                    Err(error) if group_version == "v1" => Err(Error::Discovery(error)),
                    Err(_) => Ok((group_version, preferred, None)),
                }
            })
            .buffer_unordered(PARALLEL)
            .try_collect()
            .await?;
        let mut catalog = Self::default();
        for (group_version, preferred, list) in lists {
            match list {
                Some(list) => catalog.add(&group_version, preferred, list),
                None => catalog.unavailable.push(group_version),
            }
        }
        catalog.unavailable.sort();
        Ok(catalog)
    }

    fn add(&mut self, group_version: &str, preferred: bool, list: APIResourceList) {
        let (group, version) = match group_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", group_version),
        };
        for resource in list.resources {
            // Subresources (`deployments/scale`) are not objects of their own.
            if resource.name.contains('/') {
                continue;
            }
            let api = ApiResource {
                group: group.to_owned(),
                version: version.to_owned(),
                api_version: group_version.to_owned(),
                kind: resource.kind.clone(),
                plural: resource.name,
            };
            let key = (group.to_owned(), version.to_owned(), resource.kind);
            self.by_kind.insert(
                key,
                Resource {
                    api,
                    namespaced: resource.namespaced,
                    preferred,
                    verbs: resource.verbs,
                },
            );
        }
    }

    /// Adds what another discovery found (types served since this one was made).
    pub fn merge(&mut self, other: Catalog) {
        for (key, resource) in other.by_kind {
            self.by_kind.entry(key).or_insert(resource);
        }
    }

    /// Discovers what the manifests' objects need: [`Catalog::discover_only`] of every
    /// `apiVersion` they use.
    ///
    /// # Errors
    ///
    /// [`Error::Discovery`] when the core API cannot be read.
    pub async fn discover_for(api: &Api, manifest: &Manifest) -> Result<Self> {
        Self::discover_only(api, &group_versions(manifest)).await
    }

    /// Group-versions whose discovery failed: kinds there could not be resolved.
    pub fn unavailable(&self) -> &[String] {
        &self.unavailable
    }

    /// The resource type of `group`/`version`/`kind`, if served.
    pub fn resolve(&self, group: &str, version: &str, kind: &str) -> Option<&Resource> {
        self.by_kind
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
    }

    /// The resource type of an object, if its `apiVersion` and kind are served.
    pub fn resolve_id(&self, id: &ObjectId) -> Option<&Resource> {
        self.resolve(id.group(), id.version(), id.kind())
    }

    /// The first of `versions` at which the server serves `group`'s `kind`: for a kind that
    /// moved (`policy/v1` PodDisruptionBudget, `policy/v1beta1` before 1.21), the newest the
    /// server has.
    pub fn first_served(&self, group: &str, versions: &[&str], kind: &str) -> Option<&Resource> {
        versions
            .iter()
            .find_map(|version| self.resolve(group, version, kind))
    }

    /// Every type that can be listed and deleted, in its group's preferred version: where
    /// labelled objects can hide.
    pub fn deletable(&self) -> impl Iterator<Item = &Resource> {
        self.by_kind
            .values()
            .filter(|r| r.preferred && r.supports("list") && r.supports("delete"))
    }

    /// The type served for `group` and `plural` in its preferred version, or any served one.
    pub fn by_plural(&self, group: &str, plural: &str) -> Option<&Resource> {
        let mut served = self
            .by_kind
            .values()
            .filter(|r| r.api.group == group && r.api.plural == plural);
        let first = served.next()?;
        Some(
            std::iter::once(first)
                .chain(served)
                .find(|r| r.preferred)
                .unwrap_or(first),
        )
    }

    /// The other group-versions of `group` that serve `kind`, from a fresh look at the
    /// server's API groups: for telling "served at another version" from "not served at all".
    pub async fn versions_serving(api: &Api, group: &str, kind: &str) -> Vec<String> {
        let client = api.client();
        api.count();
        let Ok(groups) = client.list_api_groups().await else {
            return Vec::new();
        };
        let Some(found) = groups.groups.into_iter().find(|g| g.name == group) else {
            return Vec::new();
        };
        let mut serving = Vec::new();
        for version in found.versions {
            api.count();
            let Ok(list) = client
                .list_api_group_resources(&version.group_version)
                .await
            else {
                continue;
            };
            if list
                .resources
                .iter()
                .any(|r| r.kind == kind && !r.name.contains('/'))
            {
                serving.push(version.group_version);
            }
        }
        serving
    }

    /// How many resource types the server serves.
    pub fn len(&self) -> usize {
        self.by_kind.len()
    }

    /// Whether no type is known.
    pub fn is_empty(&self) -> bool {
        self.by_kind.is_empty()
    }
}

/// Every `apiVersion` the manifests use, once.
fn group_versions(manifest: &Manifest) -> Vec<String> {
    let mut versions: Vec<String> = manifest.iter().map(|o| o.id().api_version()).collect();
    versions.sort();
    versions.dedup();
    versions
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{APIResource, APIResourceList};

    use super::Catalog;

    fn served(group_version: &str, kind: &str, plural: &str) -> APIResourceList {
        APIResourceList {
            group_version: group_version.to_owned(),
            resources: vec![APIResource {
                kind: kind.to_owned(),
                name: plural.to_owned(),
                namespaced: true,
                verbs: vec!["list".to_owned(), "delete".to_owned()],
                ..APIResource::default()
            }],
        }
    }

    #[test]
    fn a_moved_kind_resolves_at_the_newest_version_the_server_serves() {
        let mut old = Catalog::default();
        old.add(
            "policy/v1beta1",
            true,
            served(
                "policy/v1beta1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
        );
        let pdb = old.first_served("policy", &["v1", "v1beta1"], "PodDisruptionBudget");
        assert_eq!(pdb.unwrap().api.api_version, "policy/v1beta1");

        let mut new = Catalog::default();
        new.add(
            "policy/v1",
            true,
            served("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
        );
        new.add(
            "policy/v1beta1",
            false,
            served(
                "policy/v1beta1",
                "PodDisruptionBudget",
                "poddisruptionbudgets",
            ),
        );
        let pdb = new.first_served("policy", &["v1", "v1beta1"], "PodDisruptionBudget");
        assert_eq!(pdb.unwrap().api.api_version, "policy/v1");
        assert!(
            new.first_served("policy", &["v2"], "PodDisruptionBudget")
                .is_none()
        );
    }

    #[test]
    fn subresources_are_not_types_of_their_own() {
        let mut catalog = Catalog::default();
        let mut list = served("apps/v1", "Deployment", "deployments");
        list.resources.push(APIResource {
            kind: "Scale".to_owned(),
            name: "deployments/scale".to_owned(),
            ..APIResource::default()
        });
        catalog.add("apps/v1", true, list);
        assert_eq!(catalog.len(), 1);
        assert!(
            catalog
                .resolve("apps", "v1", "Deployment")
                .unwrap()
                .supports("delete")
        );
    }
}
