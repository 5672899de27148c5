//! The one error type of capstan-history.

/// What can go wrong reading or writing a stage's history.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request to the server failed.
    #[error("cannot {operation} `{namespace}/{name}`")]
    Request {
        /// What capstan tried (`read`, `create`, `delete`, `list`).
        operation: &'static str,
        /// The state namespace.
        namespace: String,
        /// The Secret, or the kind of Secret listed.
        name: String,
        /// The server's answer.
        #[source]
        source: kube::Error,
    },
    /// The stage has no revision with this number (it was never written, or retention
    /// removed it).
    #[error("stage {stage} has no revision {revision} in `{namespace}`{}", listing(.known))]
    NoRevision {
        /// `project/stage`.
        stage: String,
        /// The number asked for.
        revision: u64,
        /// The state namespace.
        namespace: String,
        /// The revisions there are.
        known: Vec<u64>,
    },
    /// A record Secret is damaged: missing data, bad compression or JSON, a chunk missing.
    #[error("the history record `{namespace}/{name}` is unreadable: {message}")]
    Corrupt {
        /// The state namespace.
        namespace: String,
        /// The record Secret.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// One object is too large to fit a record Secret even alone, compressed.
    #[error("{id} takes {bytes} bytes compressed, more than a history chunk holds ({limit})")]
    ObjectTooLarge {
        /// The object.
        id: capstan_manifest::ObjectId,
        /// Its compressed size.
        bytes: usize,
        /// What a chunk may hold.
        limit: usize,
    },
    /// The list of a revision's objects does not fit one Secret.
    #[error(
        "the index of {objects} objects takes {bytes} bytes compressed, more than a history \
         record holds ({limit})"
    )]
    IndexTooLarge {
        /// Objects in the revision.
        objects: usize,
        /// The compressed index's size.
        bytes: usize,
        /// What a record may hold.
        limit: usize,
    },
    /// The stored objects do not load as manifests again.
    #[error("revision {revision} does not load as manifests")]
    Replay {
        /// The revision.
        revision: u64,
        /// What the loader found.
        #[source]
        source: capstan_manifest::Error,
    },
    /// The system's random source failed while making the hashing key.
    #[error("cannot make a random key for hashing Secret values: {0}")]
    Random(String),
}

fn listing(known: &[u64]) -> String {
    match known {
        [] => " (it has no history yet)".to_owned(),
        _ => {
            let list: Vec<String> = known.iter().map(u64::to_string).collect();
            format!(" (it has {})", list.join(", "))
        }
    }
}

/// `Result` with capstan-history's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
