//! The one error type of capstan-argocd.

/// Why a handoff to Argo CD failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend's configuration is invalid.
    #[error("the argocd configuration is invalid: {0}")]
    Config(String),

    /// Grouping by a label, and an object lacks it.
    #[error("{object} ({location}) has no label `{label}`, which decides its Argo CD application")]
    Ungrouped {
        /// The object, as `Kind namespace/name`.
        object: String,
        /// Where it is written.
        location: String,
        /// The label grouped by.
        label: String,
    },

    /// An object is both handed to Argo CD and deployed by capstan.
    #[error(
        "{} is in Argo CD application `{}` of stage {} ({}) and in infrastructure stage {} \
         ({}), which capstan deploys: an object has one deployer, so take it out of one of them",
        .0.object, .0.app, .0.stage, .0.location, .0.infrastructure, .0.infrastructure_location
    )]
    Boundary(Box<Crossing>),

    /// Two objects of one application would be written to the same file.
    #[error("{first} and {second} would both be written to `{path}`")]
    Collision {
        /// The file.
        path: String,
        /// One object, with its source.
        first: String,
        /// The other.
        second: String,
    },

    /// A handed-off object lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("the object at {0} is not a Kubernetes object")]
    NotAnObject(String),
}

/// An object on both sides of the boundary: in an application and an infrastructure stage.
#[derive(Debug)]
pub struct Crossing {
    /// The object, as `Kind namespace/name`.
    pub object: String,
    /// The application it would belong to.
    pub app: String,
    /// The stage handed off.
    pub stage: String,
    /// Where the stage writes it.
    pub location: String,
    /// The infrastructure stage.
    pub infrastructure: String,
    /// Where that stage writes it.
    pub infrastructure_location: String,
}

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
