//! Whether applied objects are ready: rollouts done, Jobs complete, CRDs Established, generic
//! `Ready` conditions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capstan_manifest::{Label, Manifest, ObjectId};
use futures::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::apply::condition;
use crate::catalog::Catalog;
use crate::deployer::Deployer;
use crate::error::{Error, Result};
use crate::options::{Event, Progress};

/// How an object is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Rolled out, complete, Established or `Ready`; or a kind without readiness rules that
    /// exists.
    Ready,
    /// On its way.
    Progressing,
    /// It will not get there without help (a failed Job, an exceeded progress deadline).
    Failed,
    /// Not on the server, or without the discriminator.
    Missing,
}

/// The health of one object of the manifests.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectStatus {
    /// The object.
    pub id: ObjectId,
    /// How it is doing.
    pub health: Health,
    /// Why, when it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl Deployer {
    /// The health of every object of the manifests, from one labelled list per resource type.
    pub(crate) async fn health(
        &self,
        catalog: &Catalog,
        manifest: &Manifest,
        label: &Label,
        only: Option<&[ObjectId]>,
    ) -> Result<Vec<ObjectStatus>> {
        let selector = label.selector();
        let objects: Vec<&ObjectId> = manifest
            .iter()
            .map(|o| o.id())
            .filter(|id| only.is_none_or(|only| only.contains(id)))
            .collect();
        let mut types: Vec<_> = objects
            .iter()
            .filter_map(|id| catalog.resolve(id.group(), id.version(), id.kind()))
            .collect();
        types.sort_by(|a, b| {
            a.api
                .api_version
                .cmp(&b.api.api_version)
                .then(a.api.plural.cmp(&b.api.plural))
        });
        types.dedup_by(|a, b| {
            a.api.api_version == b.api.api_version && a.api.plural == b.api.plural
        });
        let lists: Vec<Result<Vec<Value>>> = stream::iter(types)
            .map(|resource| {
                let selector = &selector;
                async move {
                    let mut items =
                        self.api
                            .list(&resource.api, selector)
                            .await
                            .map_err(|source| Error::List {
                                resource: resource.describe(),
                                cause: source,
                            })?;
                    // List items leave out their type; the readiness rules need it.
                    for item in &mut items {
                        item["apiVersion"] = Value::from(resource.api.api_version.as_str());
                        item["kind"] = Value::from(resource.api.kind.as_str());
                    }
                    Ok(items)
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut live: HashMap<ObjectId, Value> = HashMap::new();
        for list in lists {
            for object in list? {
                let text = |pointer: &str| {
                    object
                        .pointer(pointer)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let namespace = object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str);
                let id = ObjectId::new(
                    &text("/apiVersion"),
                    &text("/kind"),
                    namespace,
                    &text("/metadata/name"),
                );
                live.insert(id, object);
            }
        }
        let default = self.api.client().default_namespace();
        Ok(objects
            .into_iter()
            .map(|id| {
                let namespaced = catalog
                    .resolve(id.group(), id.version(), id.kind())
                    .is_some_and(|r| r.namespaced);
                let key = if namespaced && id.namespace().is_none() {
                    ObjectId::new(&id.api_version(), id.kind(), Some(default), id.name())
                } else {
                    id.clone()
                };
                let (health, message) = match live.get(&key) {
                    Some(object) => assess(object),
                    None => (Health::Missing, None),
                };
                ObjectStatus {
                    id: id.clone(),
                    health,
                    message,
                }
            })
            .collect())
    }

    /// Polls the health of `ids` until all are ready or one failed, or the timeout passes.
    pub(crate) async fn wait_ready(
        &self,
        catalog: &Catalog,
        manifest: &Manifest,
        label: &Label,
        ids: &[ObjectId],
        progress: Progress<'_>,
    ) -> Result<Vec<ObjectStatus>> {
        let deadline = Instant::now() + self.options.timeout;
        loop {
            let status = self.health(catalog, manifest, label, Some(ids)).await?;
            let ready = status.iter().filter(|s| s.health == Health::Ready).count();
            progress(Event::Ready {
                ready,
                total: status.len(),
            });
            let failed = status.iter().any(|s| s.health == Health::Failed);
            if ready == status.len() || failed || Instant::now() >= deadline {
                return Ok(status);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The health of a live object.
pub(crate) fn assess(object: &Value) -> (Health, Option<String>) {
    let int = |pointer: &str| object.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let group_kind = (
        object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default(),
        object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    if matches!(group_kind.1, "Deployment" | "StatefulSet" | "DaemonSet")
        && group_kind.0 == "apps/v1"
        && int("/status/observedGeneration") < int("/metadata/generation")
    {
        return (
            Health::Progressing,
            Some("the controller has not seen the new generation".into()),
        );
    }
    let progressing = |message: String| (Health::Progressing, Some(message));
    match group_kind {
        ("apps/v1", "Deployment") => {
            if let Some(("False", message)) = condition(object, "Progressing") {
                return (Health::Failed, message.map(str::to_owned));
            }
            let want = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (updated, available) = (
                int("/status/updatedReplicas"),
                int("/status/availableReplicas"),
            );
            if updated < want || available < want || int("/status/replicas") > want {
                return progressing(format!(
                    "{available} of {want} replicas available, {updated} updated"
                ));
            }
        }
        ("apps/v1", "StatefulSet") => {
            let want = object
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let (ready, updated) = (int("/status/readyReplicas"), int("/status/updatedReplicas"));
            if ready < want || updated < want {
                return progressing(format!(
                    "{ready} of {want} replicas ready, {updated} updated"
                ));
            }
        }
        ("apps/v1", "DaemonSet") => {
            let want = int("/status/desiredNumberScheduled");
            let (updated, available) = (
                int("/status/updatedNumberScheduled"),
                int("/status/numberAvailable"),
            );
            if updated < want || available < want {
                return progressing(format!(
                    "{available} of {want} pods available, {updated} updated"
                ));
            }
        }
        ("batch/v1", "Job") => {
            if let Some(("True", message)) = condition(object, "Failed") {
                return (Health::Failed, message.map(str::to_owned));
            }
            if !matches!(condition(object, "Complete"), Some(("True", _))) {
                return progressing("not complete".to_owned());
            }
        }
        (api_version, "CustomResourceDefinition")
            if api_version.starts_with("apiextensions.k8s.io/") =>
        {
            if !matches!(condition(object, "Established"), Some(("True", _))) {
                return progressing("not Established".to_owned());
            }
        }
        _ => {
            if let Some((status, message)) = condition(object, "Ready")
                && status != "True"
            {
                let message = message.map_or_else(|| "not Ready".to_owned(), str::to_owned);
                return (Health::Progressing, Some(message));
            }
        }
    }
    (Health::Ready, None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{Health, assess};

    #[test]
    fn deployments_are_ready_when_every_replica_is_updated_and_available() {
        let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 1}});
        assert_eq!(assess(&deployment).0, Health::Progressing);
        deployment["status"]["availableReplicas"] = json!(2);
        assert_eq!(assess(&deployment).0, Health::Ready);
        deployment["metadata"]["generation"] = json!(3);
        assert_eq!(assess(&deployment).0, Health::Progressing);
    }

    #[test]
    fn jobs_fail_or_complete_by_condition() {
        let job = |kind: &str| {
            json!({"apiVersion": "batch/v1", "kind": "Job",
            "status": {"conditions": [{"type": kind, "status": "True", "message": "m"}]}})
        };
        assert_eq!(assess(&job("Complete")).0, Health::Ready);
        assert_eq!(assess(&job("Failed")).0, Health::Failed);
    }

    #[test]
    fn other_kinds_follow_their_ready_condition_or_are_ready_when_present() {
        let cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
            "status": {"conditions": [{"type": "Ready", "status": "False", "message": "issuing"}]}});
        assert_eq!(assess(&cert), (Health::Progressing, Some("issuing".into())));
        assert_eq!(
            assess(&json!({"apiVersion": "v1", "kind": "ConfigMap"})).0,
            Health::Ready
        );
    }
}
