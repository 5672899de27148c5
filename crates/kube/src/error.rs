//! The one error type of capstan-kube.

use kube::config::{InClusterError, KubeconfigError};

use crate::failure::Cause;

/// Why discovery or connecting failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server's API could not be discovered.
    #[error("cannot discover the server's API: {}", Cause(.0))]
    Discovery(kube::Error),

    /// The kubeconfig could not be read.
    #[error("cannot read the kubeconfig")]
    Kubeconfig(#[source] KubeconfigError),

    /// Inside a Pod without a kubeconfig, the service account could not be used.
    #[error("cannot use the in-cluster config")]
    InCluster(#[source] InClusterError),

    /// The kubeconfig context could not be used (missing, or its credentials unreadable).
    #[error("cannot use kubeconfig context {context:?}")]
    Context {
        /// The context.
        context: String,
        /// What is wrong with it.
        #[source]
        source: KubeconfigError,
    },

    /// The client could not be built from a valid configuration.
    #[error("cannot create the Kubernetes client")]
    Client(#[source] kube::Error),

    /// No context was asked for, and the current one is not the stage's.
    #[error("the stage deploys to context {wanted:?} but the current context is {current:?}")]
    NotStageContext {
        /// The stage's context.
        wanted: String,
        /// The kubeconfig's current context.
        current: String,
    },

    /// The context asked for is not the stage's, and no override allows it.
    #[error("the stage deploys to context {wanted:?}, not {explicit:?}")]
    OtherContext {
        /// The stage's context.
        wanted: String,
        /// The context asked for.
        explicit: String,
    },
}

/// The result type of capstan-kube.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn a_servers_answer_is_shown_once_without_a_struct_dump() {
        let status =
            kube::core::Status::failure("the token is not valid", "Unauthorized").with_code(401);
        let error = Error::Discovery(kube::Error::Api(Box::new(status)));
        assert_eq!(
            format!("{error}"),
            "cannot discover the server's API: 401 Unauthorized: the token is not valid"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
