//! The crate's error type.

use std::path::PathBuf;

use crate::Problems;

/// Why manifests or a project could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifests have problems; each names its file, document and line.
    #[error("{0}")]
    Invalid(Problems),
    /// A discriminator label breaks Kubernetes' label rules.
    #[error("invalid discriminator label {key}={value}: {reason}")]
    Label {
        /// The label key.
        key: String,
        /// The discriminator.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// No `capstan.yaml` in the folder or above it.
    #[error("no capstan.yaml in {} or any folder above it (pass --project, or -f to load files)", .start.display())]
    ProjectNotFound {
        /// Where the search started.
        start: PathBuf,
    },
    /// The project file cannot be read or is invalid.
    #[error("{}: {message}", .path.display())]
    Project {
        /// The project file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The project has no stage of that name.
    #[error("{}: no stage named {stage:?} (stages: {})", .path.display(), .known.join(", "))]
    UnknownStage {
        /// The project file.
        path: PathBuf,
        /// The stage asked for.
        stage: String,
        /// The stages the project has.
        known: Vec<String>,
    },
    /// A stage's command could not be started.
    #[error("stage {stage}: cannot run `{program}`: {source}")]
    CommandSpawn {
        /// The stage.
        stage: String,
        /// The program.
        program: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A stage's command failed.
    #[error(
        "stage {stage}: `{command}` {status}{}",
        if .stderr_tail.is_empty() { String::new() } else { format!("; its last output:\n  {}", .stderr_tail.join("\n  ")) }
    )]
    CommandFailed {
        /// The stage.
        stage: String,
        /// The command line.
        command: String,
        /// How it ended, such as `exited with code 1`.
        status: String,
        /// The last lines it wrote to standard error.
        stderr_tail: Vec<String>,
    },
}
