//! The one error type of capstan-drift.

/// Why a drift check or a watch failed as a whole (single objects whose check failed are
/// [`State::Unknown`](crate::State::Unknown) in the report instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Planning the stage failed: discovery or a list.
    #[error("cannot check the stage for drift")]
    Plan(#[source] capstan_apply::Error),

    /// Listing a resource type's metadata failed.
    #[error("cannot list {resource}")]
    List {
        /// `group/version resource`.
        resource: String,
        /// What the server or the connection said.
        #[source]
        cause: kube::Error,
    },
}

/// The result of capstan-drift's functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
