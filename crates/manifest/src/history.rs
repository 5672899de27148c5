//! `history:` of `capstan.yaml`: how many deploy records a stage keeps in its cluster.

use serde::Deserialize;

/// How much deployment history each stage keeps in its state namespace (`history:` of
/// `capstan.yaml`, for every stage of the project).
///
/// ```yaml
/// history:
///   keep: 10            # revisions per stage [default: 10]; 0 records nothing
///   maxBytes: 67108864  # all of a stage's records together [default: 64 MiB]
/// ```
///
/// The oldest revisions go first when either limit is passed; the newest is always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct History {
    /// Revisions kept per stage; 0 turns recording off.
    pub keep: usize,
    /// Bytes all of a stage's record Secrets may take together.
    pub max_bytes: u64,
}

impl History {
    /// Revisions kept unless `history.keep` says otherwise.
    pub const DEFAULT_KEEP: usize = 10;
    /// Bytes kept unless `history.maxBytes` says otherwise: 64 MiB.
    pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

    /// Whether deploys of the stage are recorded at all.
    pub fn enabled(&self) -> bool {
        self.keep > 0
    }
}

impl Default for History {
    fn default() -> Self {
        Self {
            keep: Self::DEFAULT_KEEP,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}
