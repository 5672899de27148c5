//! Whether applied objects are ready: rollouts done, Jobs complete, CRDs Established, generic
//! `Ready` conditions.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use capstan_kube::{Backoff, Catalog, Readiness, assess, poll_until};
use capstan_manifest::{Label, Manifest, ObjectId};
use futures::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
            .filter_map(|id| catalog.resolve_id(id))
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
                let namespaced = catalog.resolve_id(id).is_some_and(|r| r.namespaced);
                let key = if namespaced && id.namespace().is_none() {
                    ObjectId::new(&id.api_version(), id.kind(), Some(default), id.name())
                } else {
                    id.clone()
                };
                let (health, message) = match live.get(&key) {
                    Some(object) => health_of(object),
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
        progress(Event::Waiting { total: ids.len() });
        let deadline = Instant::now() + self.options.timeout;
        let mut last = Vec::new();
        let settled = poll_until(deadline, READINESS, async || {
            let status = self.health(catalog, manifest, label, Some(ids)).await?;
            let ready = status.iter().filter(|s| s.health == Health::Ready).count();
            progress(Event::Ready {
                ready,
                total: status.len(),
            });
            let failed = status.iter().any(|s| s.health == Health::Failed);
            if ready == status.len() || failed {
                return Ok::<_, Error>(Some(status));
            }
            last = status;
            Ok(None)
        })
        .await?;
        Ok(settled.unwrap_or(last))
    }
}

/// Rollouts take seconds: once a second is often enough.
const READINESS: Backoff = Backoff::fixed(Duration::from_secs(1));

/// The health of a live object.
fn health_of(object: &Value) -> (Health, Option<String>) {
    let assessment = assess(object);
    let health = match assessment.readiness {
        Readiness::Ready => Health::Ready,
        Readiness::Failed => Health::Failed,
        _ => Health::Progressing,
    };
    (health, assessment.message)
}
