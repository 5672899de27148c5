//! What a revision records: the summary every listing shows, and the index of its objects.

use serde::{Deserialize, Serialize};

/// How a recorded run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RunResult {
    /// Every object applied, every prune deletion done.
    Succeeded,
    /// Something failed: objects that could not be planned or applied, a failed prune.
    Failed,
}

/// What a run did, by count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Objects of the revision.
    pub objects: usize,
    /// Created.
    pub created: usize,
    /// Updated (adopted ones included).
    pub updated: usize,
    /// Unchanged.
    pub unchanged: usize,
    /// Deleted by prune.
    pub pruned: usize,
    /// Objects that failed: to plan, to apply or to delete.
    pub failed: usize,
}

/// One revision as `capstan history` lists it; kept in an annotation of the revision's
/// Secret, so a listing reads metadata only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The revision number, from 1.
    pub revision: u64,
    /// When the run ended (RFC 3339, UTC).
    pub time: String,
    /// The kubeconfig user of the run, when known.
    pub user: Option<String>,
    /// The project's commit as deploys stamp it (`-dirty` with local changes).
    pub commit: Option<String>,
    /// The capstan version that ran.
    pub version: String,
    /// What the run did.
    pub counts: Counts,
    /// How it ended.
    pub result: RunResult,
    /// The revision this run rolled back to, for a rollback.
    pub rollback_of: Option<u64>,
    /// Bytes the revision's own Secret and the chunks it wrote take.
    pub bytes: u64,
}

/// The resource types and namespaces a stage has used: where prune looks for its objects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Inventory {
    /// `(apiVersion, kind)`, sorted.
    pub kinds: Vec<(String, String)>,
    /// Namespaces, sorted.
    pub namespaces: Vec<String>,
}

impl Inventory {
    /// The inventory of these types and namespaces, sorted and without repeats.
    pub fn new(
        kinds: impl IntoIterator<Item = (String, String)>,
        namespaces: impl IntoIterator<Item = String>,
    ) -> Self {
        let mut kinds: Vec<_> = kinds.into_iter().collect();
        kinds.sort();
        kinds.dedup();
        let mut namespaces: Vec<_> = namespaces.into_iter().collect();
        namespaces.sort();
        namespaces.dedup();
        Self { kinds, namespaces }
    }
}

/// The discriminator label the revision's objects carried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordedLabel {
    /// The label key.
    pub key: String,
    /// The discriminator.
    pub value: String,
}

/// One object of a revision: its content digest and where its content is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// The digest of the stored object, its key in the chunk.
    #[serde(rename = "d")]
    pub(crate) digest: String,
    /// The index of its chunk in [`Index::chunks`].
    #[serde(rename = "c")]
    pub(crate) chunk: usize,
    /// Its barrier group.
    #[serde(rename = "b", default, skip_serializing_if = "is_zero")]
    pub(crate) barrier_group: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The data of a revision's Secret: everything but the objects' contents.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    pub(crate) label: Option<RecordedLabel>,
    pub(crate) inventory: Inventory,
    /// Names of the chunk Secrets holding the objects.
    pub(crate) chunks: Vec<String>,
    /// The objects in apply order.
    pub(crate) objects: Vec<Entry>,
}

/// A revision read back: its summary and what it recorded.
#[derive(Clone, Debug)]
pub struct Revision {
    /// As listed.
    pub summary: Summary,
    pub(crate) index: Index,
}

impl Revision {
    /// The types and namespaces the stage had used by this revision.
    pub fn inventory(&self) -> &Inventory {
        &self.index.inventory
    }

    /// The discriminator label of its objects, when they had one.
    pub fn label(&self) -> Option<&RecordedLabel> {
        self.index.label.as_ref()
    }

    /// Whether `digests` are exactly this revision's objects, in order.
    pub(crate) fn has_objects(&self, digests: &[String]) -> bool {
        self.index.objects.len() == digests.len()
            && self
                .index
                .objects
                .iter()
                .zip(digests)
                .all(|(entry, digest)| &entry.digest == digest)
    }
}
