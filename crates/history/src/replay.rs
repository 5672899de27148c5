//! A revision back as manifests, for a rollback: the objects as they were loaded then, plain
//! Secret values taken from the live Secrets where those still hold them.

use std::sync::Arc;

use capstan_manifest::{Label, LoadOptions, Location, Manifest, ObjectId, load_objects};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::history::History;
use crate::record::Revision;
use crate::seal::{hashed_keys, is_plain_secret, unseal};
use crate::store::Secrets;

/// A revision's objects as manifests, and what of them cannot be restored.
#[derive(Debug)]
#[non_exhaustive]
pub struct Replay {
    /// The objects, labelled as the revision's were, ready for a deploy.
    pub manifest: Manifest,
    /// Plain Secrets whose values the history could not give back.
    pub unrestorable: Vec<Unrestorable>,
}

/// A plain Secret of the revision whose values the history only knows by their hash, and
/// which the live Secret no longer holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Unrestorable {
    /// The Secret.
    #[serde(rename = "object")]
    pub id: ObjectId,
    /// The keys whose values differ from (or are missing in) the live Secret.
    pub keys: Vec<String>,
    /// What the rollback does instead.
    pub instead: Instead,
}

/// What a rollback does with a Secret it cannot restore.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Instead {
    /// Those keys keep their live values.
    KeepsLiveValues,
    /// The Secret no longer exists and is not recreated.
    LeftOut,
}

impl History {
    /// Revision `revision`'s objects as manifests carrying `label` (the revision's own
    /// label when it recorded one), with each plain Secret's values read back from the live
    /// Secret where their hash still matches.
    ///
    /// # Errors
    ///
    /// [`Error::Replay`] when the stored objects do not load; request failures and
    /// [`Error::Corrupt`] as in [`History::objects`].
    pub async fn replay(&self, revision: &Revision, label: Label) -> Result<Replay> {
        let stored = self.objects(revision).await?;
        let number = revision.summary.revision;
        let label = match revision.label() {
            Some(recorded) => Label::new(&recorded.key, &recorded.value).unwrap_or(label),
            None => label,
        };
        let needs_key = stored.iter().any(|s| !hashed_keys(&s.value).is_empty());
        let key = if needs_key {
            self.key().await?
        } else {
            Vec::new()
        };
        let source: Arc<str> = Arc::from(format!("revision {number}"));
        let mut objects = Vec::with_capacity(stored.len());
        let mut unrestorable = Vec::new();
        for (position, object) in stored.into_iter().enumerate() {
            let mut value = object.value;
            let location = Location::new(source.clone(), position + 1, None, 0);
            if let Some(id) = plain_secret(&value)
                && !hashed_keys(&value).is_empty()
            {
                let live = self.live_data(&id).await?;
                let missing = unseal(
                    &mut value,
                    live.as_ref().and_then(Value::as_object),
                    &key,
                    true,
                );
                if !missing.is_empty() {
                    let instead = match live {
                        Some(_) => Instead::KeepsLiveValues,
                        None => Instead::LeftOut,
                    };
                    unrestorable.push(Unrestorable {
                        id,
                        keys: missing,
                        instead,
                    });
                    if instead == Instead::LeftOut {
                        continue;
                    }
                }
            }
            objects.push((location, object.barrier_group, value));
        }
        let manifest =
            load_objects(objects, &LoadOptions::with_label(label)).map_err(|source| {
                Error::Replay {
                    revision: number,
                    source,
                }
            })?;
        Ok(Replay {
            manifest,
            unrestorable,
        })
    }

    /// The live Secret's `data`, `None` when it is gone (an empty map when it has none).
    async fn live_data(&self, id: &ObjectId) -> Result<Option<Value>> {
        let target = crate::store::Target::new(
            id.namespace().unwrap_or("default"),
            &self.target().project,
            &self.target().stage,
        );
        let secrets = Secrets {
            api: self.api(),
            target: &target,
        };
        Ok(secrets.get(id.name()).await?.map(|secret| {
            let data = secret.data.unwrap_or_default();
            let engine = base64::engine::general_purpose::STANDARD;
            Value::Object(
                data.into_iter()
                    .map(|(k, v)| (k, Value::String(base64::Engine::encode(&engine, v.0))))
                    .collect(),
            )
        }))
    }
}

/// The identity of a stored plain Secret.
fn plain_secret(value: &Value) -> Option<ObjectId> {
    let kind = value.get("kind")?.as_str()?;
    let api_version = value.get("apiVersion")?.as_str()?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = metadata.get("namespace").and_then(Value::as_str);
    let id = ObjectId::new(api_version, kind, namespace, name);
    is_plain_secret(&id, value).then_some(id)
}
