use std::{fmt, path::PathBuf};

/// Everything that can go wrong while reading, writing or re-keying a SOPS file.
///
/// Every variant names the file (or `.sops.yaml`) it is about. None carries a plaintext value,
/// a data key or an identity: parse errors give a line and column, decryption errors the key
/// path of the value, never the value.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("cannot access `{}`", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The content is not valid YAML, JSON or dotenv, or not a tree sops can hold.
    #[error("`{}` is not valid {format}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// `YAML`, `JSON` or `dotenv`.
        format: &'static str,
        /// Where and why, without the offending text.
        reason: String,
    },

    /// The file has no `sops` metadata block: it is not encrypted.
    #[error("`{}` is not a SOPS file: it has no `sops` metadata", path.display())]
    NotEncrypted {
        /// The file.
        path: PathBuf,
    },

    /// The file to encrypt already has a top-level `sops` key.
    #[error("`{}` already has a top-level `sops` key: it is encrypted already", path.display())]
    AlreadyEncrypted {
        /// The file.
        path: PathBuf,
    },

    /// The `sops` metadata block is malformed.
    #[error("`{}` has invalid sops metadata: {reason}", path.display())]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// None of the identities opens the file's data key, or (with several key groups) too
    /// few groups open for the Shamir threshold.
    #[error("no identity opens the data key of `{}`: {details}", path.display())]
    NoMatchingIdentity {
        /// The file.
        path: PathBuf,
        /// The age recipients the file is encrypted to.
        recipients: Vec<String>,
        /// Who the file is encrypted to and, per key group, what opened and what did not,
        /// e.g. "it is encrypted to PGP key 85D7…, which capstan cannot use".
        details: String,
    },

    /// A value, the MAC or the data key failed authentication: the file was altered or the
    /// metadata does not belong to it.
    #[error("`{}` failed its integrity check: {what}", path.display())]
    Integrity {
        /// The file.
        path: PathBuf,
        /// Which part failed, e.g. "the value at `data:password:`" or "MAC mismatch".
        what: String,
        /// Whether it is the MAC that failed (every value authenticated on its own), which
        /// sops reports with exit code 51 rather than 25.
        mac: bool,
    },

    /// An age recipient or identity, given in code, in a key file or in `.sops.yaml`, is
    /// malformed.
    #[error("invalid age key in {origin}: {reason}")]
    Key {
        /// Where the key came from: a file, an environment variable, or a recipient string.
        origin: String,
        /// What is wrong; for identities this never quotes the key.
        reason: String,
    },

    /// The options ask for something sops cannot express.
    #[error("cannot encrypt `{}`: {reason}", path.display())]
    Options {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// `.sops.yaml` is malformed.
    #[error("invalid config `{}`: {reason}", path.display())]
    Config {
        /// The `.sops.yaml` file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// No creation rule of `.sops.yaml` matches the file.
    #[error("no creation rule in `{}` matches `{}`", config.display(), path.display())]
    NoMatchingRule {
        /// The file.
        path: PathBuf,
        /// The `.sops.yaml` file.
        config: PathBuf,
    },

    /// A path given to extract a value does not exist in the file.
    #[error("`{}` has no value at {tree_path}", path.display())]
    NoSuchPath {
        /// The file.
        path: PathBuf,
        /// The path, in sops `["a"][0]` syntax.
        tree_path: String,
    },

    /// A request to the cluster failed (feature `operator`).
    #[cfg(feature = "operator")]
    #[error("cannot {action} {object}: {}", capstan_kube::Cause(cause))]
    Cluster {
        /// `read`, `apply` or `restart`.
        action: &'static str,
        /// The object, e.g. `Secret sops-secrets-operator/sops-age-key`.
        object: String,
        /// What the server or the connection said (part of the message, so not a `source()`).
        cause: kube::Error,
    },

    /// An object the operation needs does not exist (feature `operator`).
    #[cfg(feature = "operator")]
    #[error("{object} not found")]
    NotFound {
        /// The object, e.g. `Deployment sops-secrets-operator/sops-secrets-operator`.
        object: String,
    },

    /// A rollout stopped short of ready (feature `operator`).
    #[cfg(feature = "operator")]
    #[error("the rollout of {object} failed{}", suffix(reason.as_deref()))]
    RolloutFailed {
        /// The Deployment.
        object: String,
        /// Why, as its conditions say.
        reason: Option<String>,
    },

    /// A rollout did not finish in time (feature `operator`).
    #[cfg(feature = "operator")]
    #[error("timed out after {waited:?} waiting for the rollout of {object}{}", suffix(reason.as_deref()))]
    RolloutTimedOut {
        /// The Deployment.
        object: String,
        /// How long it was waited for.
        waited: std::time::Duration,
        /// How far it got at the end.
        reason: Option<String>,
    },
}

#[cfg(feature = "operator")]
fn suffix(reason: Option<&str>) -> String {
    reason
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

impl fmt::Debug for Error {
    // Tests `unwrap()` these errors; the message and its causes say more than the variant.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The result of a secrets operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
