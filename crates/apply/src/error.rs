//! The one error type of capstan-apply.

use std::time::Duration;

use capstan_kube::Cause;
use capstan_manifest::ObjectId;

use crate::lock::LockHolder;

/// Why a deploy, prune, delete or query failed, as a whole or for one object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Discovery failed (see [`capstan_kube::Error`]).
    #[error(transparent)]
    Kube(#[from] capstan_kube::Error),

    /// Listing a resource type failed.
    #[error("cannot list {resource}: {}", Cause(.cause))]
    List {
        /// `group/version resource`, for the message.
        resource: String,
        /// What the server or the connection said (part of the message, so not a `source()`).
        cause: kube::Error,
    },

    /// The server does not serve the object's kind, and the manifests hold no
    /// CustomResourceDefinition for it.
    #[error("{id}: the server does not serve {api_version} {kind}; install its CRD first")]
    UnknownKind {
        /// The object.
        id: ObjectId,
        /// Its `apiVersion`.
        api_version: String,
        /// Its kind.
        kind: String,
    },

    /// The server serves the object's kind, but under other versions of its group.
    #[error("{id}: the server serves {} {kind}, not {api_version}", served.join(" and "))]
    OtherVersion {
        /// The object.
        id: ObjectId,
        /// The manifest's `apiVersion`.
        api_version: String,
        /// Its kind.
        kind: String,
        /// The group-versions that serve the kind.
        served: Vec<String>,
    },

    /// The object's namespace neither exists nor is part of the manifests.
    #[error("{id}: namespace {namespace:?} does not exist and the manifests do not create it")]
    MissingNamespace {
        /// The object.
        id: ObjectId,
        /// The namespace.
        namespace: String,
    },

    /// Another field manager owns fields the object sets to other values.
    #[error(
        "{id}: {message} (taking the fields over needs `Options::force_conflicts`; or remove \
         them from the manifest)"
    )]
    Conflict {
        /// The object.
        id: ObjectId,
        /// The server's message, which names the managers and the fields.
        message: String,
    },

    /// The server rejected a request for the object.
    #[error("{id}: {operation} rejected: {message}")]
    Rejected {
        /// The object.
        id: ObjectId,
        /// `apply`, `dry-run apply`, `read` or `delete`.
        operation: &'static str,
        /// The HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },

    /// A request for the object failed without an answer from the server, after retries.
    #[error("{id}: {operation} failed: {}", Cause(.cause))]
    Request {
        /// The object.
        id: ObjectId,
        /// `apply`, `dry-run apply`, `read` or `delete`.
        operation: &'static str,
        /// What the connection said (part of the message, so not a `source()`).
        cause: kube::Error,
    },

    /// Preparing the object's body failed (for example, decrypting its SOPS values).
    #[error("{id}: {message}")]
    Prepare {
        /// The object.
        id: ObjectId,
        /// What went wrong; never holds a secret value.
        message: String,
    },

    /// A CustomResourceDefinition did not become Established in time.
    #[error("{id}: not Established after {seconds} s{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    NotEstablished {
        /// The CRD.
        id: ObjectId,
        /// How long capstan waited.
        seconds: u64,
        /// The server's last condition message, if any.
        reason: Option<String>,
    },

    /// The object was not applied because an earlier wave failed.
    #[error("{id}: not applied because an earlier wave failed")]
    Skipped {
        /// The object.
        id: ObjectId,
    },

    /// Prune and delete need a discriminator label.
    #[error(
        "refusing to {operation} without a discriminator label: it is what marks capstan's objects"
    )]
    NoDiscriminator {
        /// `prune` or `delete`.
        operation: &'static str,
    },

    /// Prune would delete everything the discriminator owns.
    #[error(
        "refusing to prune with an empty manifest set without `Options::allow_empty`: every \
         object labelled {selector} would be deleted (a failed render often looks like this)"
    )]
    EmptyManifest {
        /// The label selector.
        selector: String,
    },

    /// Prune never runs after a failed apply.
    #[error("not pruning: {failed} object(s) failed to apply in this run")]
    ApplyFailed {
        /// How many.
        failed: usize,
    },

    /// The plan has objects that cannot be applied, so nothing was written.
    #[error("{count} object(s) cannot be applied; nothing was changed")]
    Unplannable {
        /// How many.
        count: usize,
    },

    /// The confirmation callback declined.
    #[error("not confirmed; nothing was changed")]
    NotConfirmed,

    /// Another run holds the stage lock.
    #[error(
        "another run holds the stage lock, Lease `{namespace}/{name}`: {holder}{}",
        waited.map(|w| format!("; still held after waiting {} s", w.as_secs())).unwrap_or_default()
    )]
    Locked {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Who holds it.
        holder: LockHolder,
        /// How long this run waited, when it was allowed to.
        waited: Option<Duration>,
    },

    /// A held stage lock is gone: taken over, deleted, or not renewed in time.
    #[error("lost the stage lock, Lease `{namespace}/{name}`: {reason}")]
    LockLost {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What happened to it.
        reason: String,
    },

    /// The user may not write the stage lock or create its namespace.
    #[error(
        "not allowed to {operation} the stage lock, Lease `{namespace}/{name}`: {message}; a \
         project can set `stateNamespace:` in capstan.yaml to a namespace the user may write"
    )]
    LockForbidden {
        /// `create`, `read`, `take over`, `release` or `create the namespace of`.
        operation: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// The server's message.
        message: String,
    },

    /// A request for the stage lock failed.
    #[error("cannot {operation} the stage lock, Lease `{namespace}/{name}`")]
    Lock {
        /// `create`, `read`, `take over`, `release` or `create the namespace of`.
        operation: &'static str,
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// What the server or the connection said.
        #[source]
        source: kube::Error,
    },

    /// The object exists but capstan never applied it; taking it over needs
    /// [`Options::adopt`](crate::Options::adopt).
    #[error(
        "{id}: exists but was never applied by capstan ({}); adopting it would make the \
         stage's prune and delete go for it",
        if managers.is_empty() {
            "no field manager recorded".to_owned()
        } else {
            format!("managed by {}", managers.join(", "))
        }
    )]
    NotAdopted {
        /// The object.
        id: ObjectId,
        /// Its current field managers.
        managers: Vec<String>,
    },
}

impl Error {
    /// The error with every secret value of its object masked in the server's message.
    pub(crate) fn redacted(self, secrets: &crate::redact::Redactions) -> Self {
        match self {
            Self::Conflict { id, message } => Self::Conflict {
                id,
                message: secrets.redact(&message),
            },
            Self::Rejected {
                id,
                operation,
                code,
                message,
            } => Self::Rejected {
                id,
                operation,
                code,
                message: secrets.redact(&message),
            },
            other => other,
        }
    }

    /// The object the error is about, if it is about one.
    pub fn object(&self) -> Option<&ObjectId> {
        match self {
            Self::UnknownKind { id, .. }
            | Self::OtherVersion { id, .. }
            | Self::MissingNamespace { id, .. }
            | Self::Conflict { id, .. }
            | Self::Rejected { id, .. }
            | Self::Request { id, .. }
            | Self::Prepare { id, .. }
            | Self::NotEstablished { id, .. }
            | Self::NotAdopted { id, .. }
            | Self::Skipped { id } => Some(id),
            _ => None,
        }
    }
}

/// The result type of capstan-apply.
pub type Result<T, E = Error> = std::result::Result<T, E>;
