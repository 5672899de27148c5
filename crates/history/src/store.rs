//! The records in the cluster: Secrets of type [`SECRET_TYPE`] in the stage's state
//! namespace. Per revision one Secret with its summary (an annotation, so listings read
//! metadata only) and its index; per chunk one Secret of deflated objects, named after its
//! contents and shared by every revision that holds them; one key Secret for hashing plain
//! Secret values.

use std::collections::{BTreeMap, HashSet};

use capstan_kube::Api;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::core::{ApiResource, Request};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::pack::{Chunk, deflate, inflate};
use crate::record::{Index, Revision, Summary};

/// The type of every Secret the history writes.
pub const SECRET_TYPE: &str = "capstan.io/history";

/// The Secret holding the key that hashes plain Secret values, one per state namespace.
pub const KEY_SECRET: &str = "capstan-history-key";

pub(crate) const PROJECT_LABEL: &str = "capstan.io/history-project";
pub(crate) const STAGE_LABEL: &str = "capstan.io/history-stage";
pub(crate) const ROLE_LABEL: &str = "capstan.io/history-role";
pub(crate) const SUMMARY_ANNOTATION: &str = "capstan.io/history-summary";
pub(crate) const CHUNKS_ANNOTATION: &str = "capstan.io/history-chunks";
pub(crate) const BYTES_ANNOTATION: &str = "capstan.io/history-bytes";
const INDEX_KEY: &str = "index";

/// Which stage's history, and where it lives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Target {
    /// The state namespace (`stateNamespace` of `capstan.yaml`).
    pub namespace: String,
    /// The project's name.
    pub project: String,
    /// The stage's name.
    pub stage: String,
}

impl Target {
    /// The history of `project`'s `stage`, kept in `namespace`.
    pub fn new(
        namespace: impl Into<String>,
        project: impl Into<String>,
        stage: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            project: project.into(),
            stage: stage.into(),
        }
    }

    /// `project/stage`.
    pub fn owner(&self) -> String {
        format!("{}/{}", self.project, self.stage)
    }

    /// The name of revision `revision`'s Secret.
    pub fn revision_name(&self, revision: u64) -> String {
        format!(
            "capstan-history.{}.{}.r{revision}",
            self.project, self.stage
        )
    }

    pub(crate) fn chunk_name(&self, address: &str) -> String {
        format!(
            "capstan-history.{}.{}.c-{address}",
            self.project, self.stage
        )
    }

    pub(crate) fn selector(&self, role: &str) -> String {
        format!(
            "{PROJECT_LABEL}={},{STAGE_LABEL}={},{ROLE_LABEL}={role}",
            self.project, self.stage
        )
    }

    fn labels(&self, role: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (PROJECT_LABEL.to_owned(), self.project.clone()),
            (STAGE_LABEL.to_owned(), self.stage.clone()),
            (ROLE_LABEL.to_owned(), role.to_owned()),
        ])
    }
}

/// A record Secret's metadata, as a listing gives it.
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) uid: String,
    pub(crate) annotations: BTreeMap<String, String>,
}

impl Listed {
    pub(crate) fn bytes(&self) -> u64 {
        self.annotation(BYTES_ANNOTATION)
            .and_then(|b| b.parse().ok())
            .unwrap_or(0)
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.get(key).map(String::as_str)
    }
}

/// Requests about the Secrets of one state namespace.
pub(crate) struct Secrets<'a> {
    pub(crate) api: &'a Api,
    pub(crate) target: &'a Target,
}

impl Secrets<'_> {
    fn request(&self) -> Request {
        Request::new(format!(
            "/api/v1/namespaces/{}/secrets",
            self.target.namespace
        ))
    }

    fn failed(&self, operation: &'static str, name: &str, source: kube::Error) -> Error {
        Error::Request {
            operation,
            namespace: self.target.namespace.clone(),
            name: name.to_owned(),
            source,
        }
    }

    pub(crate) fn corrupt(&self, name: &str, message: impl Into<String>) -> Error {
        Error::Corrupt {
            namespace: self.target.namespace.clone(),
            name: name.to_owned(),
            message: message.into(),
        }
    }

    /// The metadata of the stage's record Secrets of `role`.
    pub(crate) async fn list(&self, role: &str) -> Result<Vec<Listed>> {
        let secrets = ApiResource::erase::<Secret>(&());
        let selector = self.target.selector(role);
        let items = self
            .api
            .list_metadata(&secrets, Some(&self.target.namespace), Some(&selector))
            .await
            .map_err(|error| self.failed("list", &format!("secrets {selector}"), error))?;
        Ok(items
            .into_iter()
            .map(|item| Listed {
                name: item.metadata.name.unwrap_or_default(),
                uid: item.metadata.uid.unwrap_or_default(),
                annotations: item.metadata.annotations.unwrap_or_default(),
            })
            .collect())
    }

    /// A Secret, `None` when there is none.
    pub(crate) async fn get(&self, name: &str) -> Result<Option<Secret>> {
        let request = self.request();
        match self
            .api
            .send::<Secret>(|| request.get(name, &Default::default()))
            .await
        {
            Ok(secret) => Ok(Some(secret)),
            Err(error) if capstan_kube::status_code(&error) == Some(404) => Ok(None),
            Err(error) => Err(self.failed("read", name, error)),
        }
    }

    /// Creates a Secret; `Ok(false)` when one of that name exists already.
    pub(crate) async fn create(&self, secret: &Secret) -> Result<bool> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let body = serde_json::to_vec(secret).unwrap_or_default();
        let request = self.request();
        match self
            .api
            .send::<Value>(|| request.create(&PostParams::default(), body.clone()))
            .await
        {
            Ok(_) => Ok(true),
            Err(error) if capstan_kube::status_code(&error) == Some(409) => Ok(false),
            Err(error) => Err(self.failed("create", &name, error)),
        }
    }

    /// Deletes a Secret if it still has `uid`; one already gone is as good.
    pub(crate) async fn delete(&self, name: &str, uid: &str) -> Result<()> {
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = self.request();
        match self
            .api
            .send::<Value>(|| request.delete(name, &params))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if capstan_kube::status_code(&error) == Some(404) => Ok(()),
            Err(error) => Err(self.failed("delete", name, error)),
        }
    }

    /// The state namespace, created if it is missing.
    async fn ensure_namespace(&self) -> Result<()> {
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(self.target.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let body = serde_json::to_vec(&namespace).unwrap_or_default();
        let request = Request::new("/api/v1/namespaces");
        match self
            .api
            .send::<Value>(|| request.create(&PostParams::default(), body.clone()))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if capstan_kube::status_code(&error) == Some(409) => Ok(()),
            Err(error) => Err(self.failed("create", "namespace", error)),
        }
    }

    /// The key that hashes plain Secret values, made on first use (with the namespace).
    pub(crate) async fn key(&self) -> Result<Vec<u8>> {
        for _ in 0..2 {
            if let Some(key) = self.read_key().await? {
                return Ok(key);
            }
            let mut key = vec![0u8; 32];
            getrandom::fill(&mut key).map_err(|error| Error::Random(error.to_string()))?;
            self.ensure_namespace().await?;
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(KEY_SECRET.to_owned()),
                    namespace: Some(self.target.namespace.clone()),
                    ..ObjectMeta::default()
                },
                type_: Some(format!("{SECRET_TYPE}-key")),
                data: Some(BTreeMap::from([(
                    "key".to_owned(),
                    ByteString(key.clone()),
                )])),
                ..Secret::default()
            };
            if self.create(&secret).await? {
                return Ok(key);
            }
            // Another run made it meanwhile: read theirs.
        }
        Err(self.corrupt(KEY_SECRET, "it could neither be read nor made"))
    }

    /// The key that hashes plain Secret values, `None` before the first record.
    pub(crate) async fn read_key(&self) -> Result<Option<Vec<u8>>> {
        let Some(secret) = self.get(KEY_SECRET).await? else {
            return Ok(None);
        };
        secret
            .data
            .and_then(|mut data| data.remove("key"))
            .map(|key| key.0)
            .filter(|key| key.len() >= 32)
            .map(Some)
            .ok_or_else(|| self.corrupt(KEY_SECRET, "it holds no `key` of 32 bytes"))
    }

    /// Writes a chunk (one already there with the same contents is as good); its bytes.
    pub(crate) async fn write_chunk(&self, name: &str, chunk: &Chunk) -> Result<()> {
        let data = chunk
            .entries
            .iter()
            .map(|(digest, bytes)| (digest.clone(), ByteString(bytes.clone())))
            .collect();
        let annotations = BTreeMap::from([(BYTES_ANNOTATION.to_owned(), chunk.bytes.to_string())]);
        let secret = self.secret(name, "chunk", annotations, data);
        self.create(&secret).await.map(|_| ())
    }

    /// Writes a revision's Secret.
    pub(crate) async fn write_revision(
        &self,
        summary: &Summary,
        index: &[u8],
        chunks: &[String],
    ) -> Result<()> {
        let name = self.target.revision_name(summary.revision);
        let annotations = BTreeMap::from([
            (
                SUMMARY_ANNOTATION.to_owned(),
                serde_json::to_string(summary).unwrap_or_default(),
            ),
            (CHUNKS_ANNOTATION.to_owned(), chunks.join(",")),
            (BYTES_ANNOTATION.to_owned(), summary.bytes.to_string()),
        ]);
        let data = BTreeMap::from([(INDEX_KEY.to_owned(), ByteString(index.to_vec()))]);
        let secret = self.secret(&name, "revision", annotations, data);
        if self.create(&secret).await? {
            Ok(())
        } else {
            Err(self.corrupt(&name, "a revision of this number exists already"))
        }
    }

    fn secret(
        &self,
        name: &str,
        role: &str,
        annotations: BTreeMap<String, String>,
        data: BTreeMap<String, ByteString>,
    ) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.target.namespace.clone()),
                labels: Some(self.target.labels(role)),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            },
            type_: Some(SECRET_TYPE.to_owned()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// Reads revision `revision`.
    pub(crate) async fn revision(&self, revision: u64) -> Result<Option<Revision>> {
        let name = self.target.revision_name(revision);
        let Some(secret) = self.get(&name).await? else {
            return Ok(None);
        };
        let summary = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SUMMARY_ANNOTATION))
            .ok_or_else(|| self.corrupt(&name, format!("it has no `{SUMMARY_ANNOTATION}`")))?;
        let summary: Summary = serde_json::from_str(summary)
            .map_err(|error| self.corrupt(&name, format!("bad summary ({error})")))?;
        let index = secret
            .data
            .and_then(|mut data| data.remove(INDEX_KEY))
            .ok_or_else(|| self.corrupt(&name, format!("it has no `{INDEX_KEY}`")))?;
        let index = inflate(&index.0).map_err(|message| self.corrupt(&name, message))?;
        let index: Index = serde_json::from_slice(&index)
            .map_err(|error| self.corrupt(&name, format!("bad index ({error})")))?;
        if index.objects.iter().any(|e| e.chunk >= index.chunks.len()) {
            return Err(self.corrupt(&name, "an object names a chunk the index lacks"));
        }
        Ok(Some(Revision { summary, index }))
    }

    /// The contents of `chunk`, by digest, inflated.
    pub(crate) async fn chunk(&self, name: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        let secret = self
            .get(name)
            .await?
            .ok_or_else(|| self.corrupt(name, "the chunk is missing"))?;
        let mut entries = BTreeMap::new();
        for (digest, bytes) in secret.data.unwrap_or_default() {
            let bytes = inflate(&bytes.0).map_err(|message| self.corrupt(name, message))?;
            entries.insert(digest, bytes);
        }
        Ok(entries)
    }

    /// Compressed index of a revision.
    pub(crate) fn encode_index(index: &Index) -> Vec<u8> {
        deflate(&serde_json::to_vec(index).unwrap_or_default())
    }

    /// Chunk names a listed revision references.
    pub(crate) fn referenced(revisions: &[&Listed]) -> HashSet<String> {
        revisions
            .iter()
            .filter_map(|r| r.annotation(CHUNKS_ANNOTATION))
            .flat_map(|chunks| chunks.split(',').filter(|c| !c.is_empty()))
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pack::CHUNK_LIMIT;
    use crate::record::{Entry, Inventory};
    use crate::seal::digest;

    #[test]
    fn the_index_of_a_10000_object_revision_fits_its_secret_several_times_over() {
        let index = Index {
            label: None,
            inventory: Inventory::default(),
            chunks: (0..20)
                .map(|i| format!("capstan-history.p.s.c-{i:016}"))
                .collect(),
            objects: (0..10_000u32)
                .map(|i| Entry {
                    digest: digest(&i.to_le_bytes()),
                    chunk: (i / 500) as usize,
                    barrier_group: 0,
                })
                .collect(),
        };
        let bytes = Secrets::encode_index(&index).len();
        assert!(bytes * 3 < CHUNK_LIMIT, "{bytes} bytes");
    }
}
