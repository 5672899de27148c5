//! The crate's error type.

use std::path::{Path, PathBuf};

use crate::{Problems, escape_controls};

/// A path for a message; file names may hold control characters too.
fn shown(path: &Path) -> String {
    escape_controls(&path.display().to_string()).into_owned()
}

/// Lines a command wrote, for a message.
fn tail(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let lines: Vec<_> = lines.iter().map(|line| escape_controls(line)).collect();
    format!("; its last output:\n  {}", lines.join("\n  "))
}

/// Why manifests or a project could not be loaded.
///
/// Messages escape control characters in what they quote ([`escape_controls`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifests have problems; each names its file, document and line.
    #[error("{0}")]
    Invalid(Problems),
    /// A discriminator label breaks Kubernetes' label rules.
    #[error(
        "invalid discriminator label {}={}: {reason}",
        escape_controls(.key),
        escape_controls(.value)
    )]
    Label {
        /// The label key.
        key: String,
        /// The discriminator.
        value: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// An `--include` or `--exclude` selector is none of the forms [`Selector`](crate::Selector)
    /// takes.
    #[error("invalid selector `{}`: {reason}", escape_controls(.selector))]
    Selector {
        /// The selector as given.
        selector: String,
        /// What is wrong with it, and the forms a selector takes.
        reason: String,
    },
    /// No `capstan.yaml` in the folder or above it.
    #[error("no capstan.yaml in {} or any folder above it (pass --project, or -f to load files)", shown(.start))]
    ProjectNotFound {
        /// Where the search started.
        start: PathBuf,
    },
    /// The project file cannot be read or is invalid.
    #[error("{}: {}", shown(.path), escape_controls(.message))]
    Project {
        /// The project file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The project has no stage of that name.
    #[error("{}: no stage named {stage:?} (stages: {})", shown(.path), escape_controls(&.known.join(", ")))]
    UnknownStage {
        /// The project file.
        path: PathBuf,
        /// The stage asked for.
        stage: String,
        /// The stages the project has.
        known: Vec<String>,
    },
    /// A stage's command could not be started.
    #[error(
        "stage {}: cannot run `{}`: {cause}",
        escape_controls(.stage),
        escape_controls(.program)
    )]
    CommandSpawn {
        /// The stage.
        stage: String,
        /// The program.
        program: String,
        /// Why it could not start (part of the message, so not a `source()`).
        cause: std::io::Error,
    },
    /// A stage's command failed.
    #[error(
        "stage {}: `{}` {status}{}",
        escape_controls(.stage),
        escape_controls(.command),
        tail(.stderr_tail)
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
    /// The stage's manifests come from a plugin, which this crate cannot call: the host loads
    /// the plugin, asks it to render, and passes the documents to [`crate::Stage::load_inputs`].
    #[error(
        "stage {}: its manifests come from plugin `{}`, which must render them",
        escape_controls(.stage),
        escape_controls(.plugin)
    )]
    PluginStage {
        /// The stage.
        stage: String,
        /// The plugin's name.
        plugin: String,
    },
}
