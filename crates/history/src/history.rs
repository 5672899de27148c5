//! The facade: a stage's [`History`], recorded, listed, read back and kept in bounds.

use std::collections::{HashMap, HashSet};

use capstan_kube::Api;
use capstan_manifest::{History as Limits, Manifest};
use futures::{StreamExt as _, TryStreamExt as _, stream};

use crate::error::{Error, Result};
use crate::pack::{CHUNK_LIMIT, deflate, pack};
use crate::record::{Entry, Index, Inventory, RecordedLabel, Revision, RunResult, Summary};
use crate::seal::{Sealed, seal};
use crate::store::{Listed, SUMMARY_ANNOTATION, Secrets, Target};

/// Chunk reads and writes in flight at once.
const PARALLEL: usize = 8;

/// The deployment history of one stage in its cluster.
pub struct History {
    api: Api,
    target: Target,
}

/// A run to record (see [`History::record`]).
#[non_exhaustive]
pub struct Run<'a> {
    /// The manifests the run deployed, as loaded.
    pub manifest: &'a Manifest,
    /// Its summary; [`Summary::revision`] and [`Summary::bytes`] are filled in on writing.
    pub summary: Summary,
    /// The types and namespaces the stage uses after the run.
    pub inventory: Inventory,
    /// Whether the run changed anything on the server. A run that changed nothing, succeeded
    /// and deployed exactly the latest revision's objects is not recorded.
    pub wrote: bool,
}

impl<'a> Run<'a> {
    /// A run of `manifest` described by `summary`.
    pub fn new(
        manifest: &'a Manifest,
        summary: Summary,
        inventory: Inventory,
        wrote: bool,
    ) -> Self {
        Self {
            manifest,
            summary,
            inventory,
            wrote,
        }
    }
}

/// What [`History::record`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recorded {
    /// A new revision, with the revisions retention removed after it.
    Written {
        /// Its number.
        revision: u64,
        /// Chunk Secrets it wrote (objects unchanged since the revision before cost none).
        chunks: usize,
        /// Revisions removed by `keep` or `maxBytes`.
        removed: Vec<u64>,
    },
    /// Nothing: the run changed nothing and deployed the latest revision's objects.
    Unchanged,
}

/// One stored object of a revision.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoredObject {
    /// The object as stored: as loaded, plain Secret values replaced by keyed hashes.
    pub value: serde_json::Value,
    /// Its barrier group.
    pub barrier_group: u32,
    /// Its content digest: equal digests, equal objects.
    pub digest: String,
}

/// The manifests' objects as stored.
fn sealed(manifest: &Manifest, key: &[u8]) -> Vec<Sealed> {
    let label_key = manifest.label().map(|l| l.key().to_owned());
    manifest
        .iter()
        .map(|object| seal(object, label_key.as_deref(), key))
        .collect()
}

fn digests(manifest: &Manifest, key: &[u8]) -> Vec<String> {
    sealed(manifest, key)
        .into_iter()
        .map(|s| s.digest)
        .collect()
}

impl History {
    /// The history of `target`, read and written with `client`.
    pub fn new(client: kube::Client, target: Target) -> Self {
        Self {
            api: Api::new(client),
            target,
        }
    }

    /// Which stage this is the history of.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// API requests made so far.
    pub fn requests(&self) -> usize {
        self.api.requests()
    }

    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    fn secrets(&self) -> Secrets<'_> {
        Secrets {
            api: &self.api,
            target: &self.target,
        }
    }

    /// Every revision, oldest first, from one metadata-only list.
    ///
    /// # Errors
    ///
    /// [`Error::Request`] when the list fails, [`Error::Corrupt`] for a revision whose summary
    /// does not parse.
    pub async fn revisions(&self) -> Result<Vec<Summary>> {
        let listed = self.secrets().list("revision").await?;
        let mut summaries = Vec::with_capacity(listed.len());
        for item in &listed {
            summaries.push(self.summary(item)?);
        }
        summaries.sort_by_key(|s| s.revision);
        Ok(summaries)
    }

    fn summary(&self, item: &Listed) -> Result<Summary> {
        let text = item
            .annotation(SUMMARY_ANNOTATION)
            .ok_or_else(|| self.secrets().corrupt(&item.name, "it has no summary"))?;
        serde_json::from_str(text).map_err(|error| {
            self.secrets()
                .corrupt(&item.name, format!("bad summary ({error})"))
        })
    }

    /// Revision `revision` (its summary and index, not its objects).
    ///
    /// # Errors
    ///
    /// [`Error::NoRevision`] naming the revisions there are; [`Error::Corrupt`] and
    /// [`Error::Request`].
    pub async fn revision(&self, revision: u64) -> Result<Revision> {
        if let Some(found) = self.secrets().revision(revision).await? {
            return Ok(found);
        }
        let known = self.revisions().await?.iter().map(|s| s.revision).collect();
        Err(Error::NoRevision {
            stage: self.target.owner(),
            revision,
            namespace: self.target.namespace.clone(),
            known,
        })
    }

    /// The newest revision, `None` without history.
    ///
    /// # Errors
    ///
    /// As [`History::revision`].
    pub async fn latest(&self) -> Result<Option<Revision>> {
        match self.revisions().await?.last() {
            Some(last) => self.revision(last.revision).await.map(Some),
            None => Ok(None),
        }
    }

    /// A revision's objects in apply order, read from its chunks.
    ///
    /// # Errors
    ///
    /// [`Error::Corrupt`] when a chunk or an object is missing or damaged; [`Error::Request`].
    pub async fn objects(&self, revision: &Revision) -> Result<Vec<StoredObject>> {
        let secrets = self.secrets();
        let chunks: Vec<_> = stream::iter(&revision.index.chunks)
            .map(|name| secrets.chunk(name))
            .buffered(PARALLEL)
            .try_collect()
            .await?;
        let name = self.target.revision_name(revision.summary.revision);
        revision
            .index
            .objects
            .iter()
            .map(|entry| {
                let bytes = chunks[entry.chunk].get(&entry.digest).ok_or_else(|| {
                    secrets.corrupt(
                        &name,
                        format!("object {} is missing from its chunk", entry.digest),
                    )
                })?;
                let value = serde_json::from_slice(bytes).map_err(|error| {
                    secrets.corrupt(
                        &name,
                        format!("object {} is not JSON ({error})", entry.digest),
                    )
                })?;
                Ok(StoredObject {
                    value,
                    barrier_group: entry.barrier_group,
                    digest: entry.digest.clone(),
                })
            })
            .collect()
    }

    /// Whether `manifest` holds exactly `revision`'s objects, in order. Reads the hashing key
    /// and never makes it: without one nothing was recorded with it, and the answer is no.
    ///
    /// # Errors
    ///
    /// Request failures, [`Error::Corrupt`] for an unusable key.
    pub async fn holds(&self, revision: &Revision, manifest: &Manifest) -> Result<bool> {
        let Some(key) = self.secrets().read_key().await? else {
            return Ok(false);
        };
        Ok(revision.has_objects(&digests(manifest, &key)))
    }

    /// The key hashing plain Secret values, made (with the namespace) on first use.
    ///
    /// # Errors
    ///
    /// [`Error::Request`], [`Error::Corrupt`] for a key Secret without a usable key.
    pub async fn key(&self) -> Result<Vec<u8>> {
        self.secrets().key().await
    }

    /// Records a run as the next revision, then applies retention (`limits`) and deletes
    /// chunks no revision references any more; a run that changed nothing and deployed the
    /// latest revision's objects makes no write at all. Call it under the stage lock.
    ///
    /// # Errors
    ///
    /// [`Error::ObjectTooLarge`], [`Error::IndexTooLarge`], and request failures. A failure
    /// after the chunks were written leaves them for the next run's collection.
    pub async fn record(&self, run: Run<'_>, limits: Limits) -> Result<Recorded> {
        let secrets = self.secrets();
        let listed = secrets.list("revision").await?;
        let mut summaries = Vec::with_capacity(listed.len());
        for item in &listed {
            summaries.push(self.summary(item)?);
        }
        let last = summaries.iter().map(|s| s.revision).max();
        let key = secrets.key().await?;
        let sealed = sealed(run.manifest, &key);
        // An unreadable latest revision shares nothing: everything is written anew.
        let previous = match last {
            Some(last) => secrets.revision(last).await.ok().flatten(),
            None => None,
        };
        let digests: Vec<String> = sealed.iter().map(|s| s.digest.clone()).collect();
        if !run.wrote
            && run.summary.result == RunResult::Succeeded
            && previous.as_ref().is_some_and(|p| p.has_objects(&digests))
        {
            self.collect(limits).await?;
            return Ok(Recorded::Unchanged);
        }
        let revision = last.unwrap_or(0) + 1;
        let (index, chunks, written) = self.store(run.manifest, &sealed, previous.as_ref()).await?;
        let index = Index {
            label: run.manifest.label().map(|l| RecordedLabel {
                key: l.key().to_owned(),
                value: l.value().to_owned(),
            }),
            inventory: run.inventory,
            chunks,
            objects: index,
        };
        let encoded = Secrets::encode_index(&index);
        if encoded.len() > CHUNK_LIMIT {
            return Err(Error::IndexTooLarge {
                objects: index.objects.len(),
                bytes: encoded.len(),
                limit: CHUNK_LIMIT,
            });
        }
        let mut summary = run.summary;
        summary.revision = revision;
        summary.bytes = (encoded.len() + written) as u64;
        secrets
            .write_revision(&summary, &encoded, &index.chunks)
            .await?;
        let removed = self.collect(limits).await?;
        Ok(Recorded::Written {
            revision,
            chunks: index.chunks.len(),
            removed,
        })
    }

    /// Writes the chunks of objects the previous revision does not hold; the entries, the
    /// chunk names they reference and the bytes written.
    async fn store(
        &self,
        manifest: &Manifest,
        sealed: &[Sealed],
        previous: Option<&Revision>,
    ) -> Result<(Vec<Entry>, Vec<String>, usize)> {
        let known: HashMap<&str, &str> = previous
            .map(|p| {
                p.index
                    .objects
                    .iter()
                    .map(|e| (e.digest.as_str(), p.index.chunks[e.chunk].as_str()))
                    .collect()
            })
            .unwrap_or_default();
        let mut fresh = Vec::new();
        let mut queued = HashSet::new();
        for item in sealed {
            if !known.contains_key(item.digest.as_str()) && queued.insert(item.digest.as_str()) {
                fresh.push((item.digest.clone(), deflate(&item.json)));
            }
        }
        let packed = pack(fresh, CHUNK_LIMIT).map_err(|(digest, bytes)| {
            let id = sealed
                .iter()
                .zip(manifest.iter())
                .find(|(s, _)| s.digest == digest)
                .map(|(_, o)| o.id().clone())
                .unwrap_or_else(|| capstan_manifest::ObjectId::new("v1", "Unknown", None, &digest));
            Error::ObjectTooLarge {
                id,
                bytes,
                limit: CHUNK_LIMIT,
            }
        })?;
        let mut home: HashMap<String, String> = known
            .iter()
            .map(|(d, c)| ((*d).to_owned(), (*c).to_owned()))
            .collect();
        let written: usize = packed.iter().map(|c| c.bytes).sum();
        let named: Vec<(String, &crate::pack::Chunk)> = packed
            .iter()
            .map(|chunk| (self.target.chunk_name(&chunk.address()), chunk))
            .collect();
        for (name, chunk) in &named {
            for digest in chunk.entries.keys() {
                home.insert(digest.clone(), name.clone());
            }
        }
        let secrets = self.secrets();
        stream::iter(&named)
            .map(|(name, chunk)| secrets.write_chunk(name, chunk))
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<()>>()
            .await?;
        let mut chunks: Vec<String> = Vec::new();
        let mut entries = Vec::with_capacity(sealed.len());
        for item in sealed {
            let name = &home[&item.digest];
            let chunk = match chunks.iter().position(|c| c == name) {
                Some(position) => position,
                None => {
                    chunks.push(name.clone());
                    chunks.len() - 1
                }
            };
            entries.push(Entry {
                digest: item.digest.clone(),
                chunk,
                barrier_group: item.barrier_group,
            });
        }
        Ok((entries, chunks, written))
    }

    /// Retention and collection: removes the oldest revisions past `limits` (never the
    /// newest), then every chunk no remaining revision references; the revisions removed.
    ///
    /// # Errors
    ///
    /// Request failures.
    pub async fn collect(&self, limits: Limits) -> Result<Vec<u64>> {
        let secrets = self.secrets();
        let listed = secrets.list("revision").await?;
        let chunks = secrets.list("chunk").await?;
        let mut revisions: Vec<(u64, &Listed)> = listed
            .iter()
            .map(|item| (self.summary(item).map_or(0, |s| s.revision), item))
            .collect();
        revisions.sort_by_key(|(revision, _)| *revision);
        let chunk_bytes: HashMap<&str, u64> = chunks
            .iter()
            .map(|c| (c.name.as_str(), c.bytes()))
            .collect();
        let total = |kept: &[(u64, &Listed)]| -> u64 {
            let refs: Vec<&Listed> = kept.iter().map(|(_, l)| *l).collect();
            let referenced = Secrets::referenced(&refs);
            let own: u64 = kept.iter().map(|(_, l)| l.bytes()).sum();
            own + referenced
                .iter()
                .map(|c| chunk_bytes.get(c.as_str()).copied().unwrap_or(0))
                .sum::<u64>()
        };
        let keep = limits.keep.max(1);
        let mut first = 0;
        while revisions.len() - first > 1
            && (revisions.len() - first > keep || total(&revisions[first..]) > limits.max_bytes)
        {
            first += 1;
        }
        let mut removed = Vec::new();
        for (revision, item) in &revisions[..first] {
            secrets.delete(&item.name, &item.uid).await?;
            removed.push(*revision);
        }
        let kept: Vec<&Listed> = revisions[first..].iter().map(|(_, l)| *l).collect();
        let referenced = Secrets::referenced(&kept);
        let garbage: Vec<&Listed> = chunks
            .iter()
            .filter(|c| !referenced.contains(&c.name))
            .collect();
        stream::iter(garbage)
            .map(|chunk| secrets.delete(&chunk.name, &chunk.uid))
            .buffer_unordered(PARALLEL)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(removed)
    }
}
