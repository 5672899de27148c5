//! Which kinds the server serves: API discovery, fetched group-version by group-version in
//! parallel and kept for the run.

use std::collections::HashMap;

use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::core::ApiResource;

use crate::api::Api;
use crate::error::{Error, Result};

/// A served resource type.
#[derive(Clone, Debug)]
pub(crate) struct Resource {
    pub(crate) api: ApiResource,
    pub(crate) namespaced: bool,
    /// Served in its group's preferred version.
    pub(crate) preferred: bool,
    verbs: Vec<String>,
}

impl Resource {
    pub(crate) fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `group/version resource`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("{} {}", self.api.api_version, self.api.plural)
    }
}

/// Every served resource type, by group, version and kind.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    by_kind: HashMap<(String, String, String), Resource>,
    /// Group-versions whose discovery failed (an aggregated API that is down, say).
    pub(crate) unavailable: Vec<String>,
}

/// Discovery requests in flight at once.
const PARALLEL: usize = 16;

impl Catalog {
    /// Discovers the server's API: one request for the groups, one per group-version.
    pub(crate) async fn discover(api: &Api) -> Result<Self> {
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
    pub(crate) async fn discover_only(api: &Api, group_versions: &[String]) -> Result<Self> {
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
    pub(crate) fn merge(&mut self, other: Catalog) {
        for (key, resource) in other.by_kind {
            self.by_kind.entry(key).or_insert(resource);
        }
    }

    /// The resource type of `group`/`version`/`kind`, if served.
    pub(crate) fn resolve(&self, group: &str, version: &str, kind: &str) -> Option<&Resource> {
        self.by_kind
            .get(&(group.to_owned(), version.to_owned(), kind.to_owned()))
    }

    /// Every type that can be listed and deleted, in its group's preferred version: where
    /// labelled objects can hide.
    pub(crate) fn deletable(&self) -> impl Iterator<Item = &Resource> {
        self.by_kind
            .values()
            .filter(|r| r.preferred && r.supports("list") && r.supports("delete"))
    }

    /// The type served for `group` and `plural` in its preferred version, or any served one.
    pub(crate) fn by_plural(&self, group: &str, plural: &str) -> Option<&Resource> {
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
    pub(crate) async fn versions_serving(api: &Api, group: &str, kind: &str) -> Vec<String> {
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

    /// How many group-versions were queried, for request accounting in reports.
    pub(crate) fn len(&self) -> usize {
        self.by_kind.len()
    }
}
