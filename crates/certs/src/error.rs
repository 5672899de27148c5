//! The one error type of capstan-certs.

use capstan_kube::Cause;
use capstan_manifest::ObjectId;

/// Why a cert-manager operation did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server serves no such kind: cert-manager is not installed.
    #[error("cert-manager is not installed: the server serves no cert-manager.io/v1 {kind}")]
    NotInstalled {
        /// The kind looked for.
        kind: String,
    },

    /// The object does not exist.
    #[error("{object} does not exist")]
    NotFound {
        /// The object.
        object: ObjectId,
    },

    /// The Secret holds no certificate that can be read.
    #[error("{secret}: `tls.crt` {problem}")]
    Unreadable {
        /// The Secret.
        secret: ObjectId,
        /// What is wrong (`is missing`, `holds no PEM certificate`, ...).
        problem: String,
    },

    /// The request names Certificates in a way that cannot be carried out.
    #[error("{0}")]
    Invalid(String),

    /// Listing objects failed.
    #[error("cannot list {what}: {}", Cause(.cause))]
    List {
        /// What was listed (`cert-manager.io/v1 certificates in namespace shop`).
        what: String,
        /// The failed request (part of the message, so not a `source()`).
        cause: kube::Error,
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

/// The result type of capstan-certs.
pub type Result<T, E = Error> = std::result::Result<T, E>;
