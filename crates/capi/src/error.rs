//! The one error type of capstan-capi.

use capstan_kube::Cause;
use capstan_manifest::ObjectId;

use crate::scale::Refusal;

/// Why a ClusterAPI operation did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server's API could not be discovered, or a client not made.
    #[error(transparent)]
    Kube(#[from] capstan_kube::Error),

    /// The server serves no such kind: ClusterAPI (or this provider) is not installed.
    #[error("the server serves no {group} {kind}: is ClusterAPI installed in this cluster?")]
    NotServed {
        /// The API group.
        group: String,
        /// The kind.
        kind: String,
    },

    /// The object does not exist.
    #[error("{object} does not exist")]
    NotFound {
        /// The object.
        object: ObjectId,
    },

    /// The change is one ClusterAPI would refuse or undo; nothing was written.
    #[error("{object}: {refusal}")]
    Refused {
        /// The object that was to change.
        object: ObjectId,
        /// Why it may not.
        refusal: Refusal,
    },

    /// No Machine runs the Node by any route.
    #[error(
        "no Machine runs Node {node}: none is named by its cluster.x-k8s.io/machine annotation, \
         names it in status.nodeRef, or has its provider ID{}",
        .provider_id.as_deref().map(|id| format!(" {id}")).unwrap_or_default()
    )]
    NoMachine {
        /// The Node.
        node: String,
        /// Its `spec.providerID`, if it has one.
        provider_id: Option<String>,
    },

    /// Nothing owns the Machine's replica count, so scaling down cannot remove it.
    #[error("{machine} belongs to no MachineDeployment, MachineSet or control plane to scale down")]
    NoOwner {
        /// The Machine.
        machine: ObjectId,
    },

    /// A wait ran out of time.
    #[error("gave up after {} s waiting for {what}", .waited.as_secs())]
    Timeout {
        /// How long it waited.
        waited: std::time::Duration,
        /// What it waited for.
        what: String,
    },

    /// A request about one object failed.
    #[error("{object}: {}", Cause(.cause))]
    Request {
        /// The object.
        object: ObjectId,
        /// The failed request (part of the message, so not a `source()`).
        cause: kube::Error,
    },
}

/// The result type of capstan-capi.
pub type Result<T, E = Error> = std::result::Result<T, E>;
