//! The `Plugin` trait and the data it exchanges with capstan.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// A capstan plugin: a name, a version, and any of three optional capabilities.
///
/// The same trait serves a plugin linked into a Rust program and one loaded at run time
/// ([`crate::Loaded`] implements it too, so hosts treat both alike). Every capability has a
/// default: a plugin implements only the methods of the capabilities it lists in
/// [`Info::capabilities`].
#[async_trait]
pub trait Plugin: Send + Sync {
    /// Who the plugin is and what it offers; cheap, and called once.
    fn info(&self) -> Info;

    /// [`Capability::Stages`]: the names of the stages the plugin provides.
    ///
    /// # Errors
    ///
    /// The plugin's own failures, as [`Error::Plugin`].
    async fn stages(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// [`Capability::Stages`]: the manifests of one stage, as named documents (YAML or JSON),
    /// which capstan loads like files so that problems name the document and its line.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the plugin's own failures, as [`Error::Plugin`].
    async fn render(&self, stage: &str) -> Result<Vec<Document>> {
        let _ = stage;
        Err(unsupported(&self.info(), "provide stages"))
    }

    /// [`Capability::Transform`]: looks at (and may change) a stage's objects before they are
    /// applied. Each object keeps its [`Source`], and each [`Finding`] names one, so problems
    /// point at the file and line the object came from.
    ///
    /// # Errors
    ///
    /// The plugin's own failures, as [`Error::Plugin`]; problems with the objects are
    /// [`Transformed::findings`], not errors.
    async fn transform(&self, stage: &str, objects: Vec<SourcedObject>) -> Result<Transformed> {
        let _ = stage;
        Ok(Transformed {
            objects,
            findings: Vec::new(),
        })
    }

    /// [`Capability::Handoff`]: turns a stage's objects into the files another deployer reads.
    /// The plugin returns the files rather than writing them, so the host can compare them
    /// with a folder (`--check`) as well as write them.
    ///
    /// # Errors
    ///
    /// [`Error::Unsupported`] by default; the plugin's own failures, as [`Error::Plugin`].
    async fn handoff(&self, request: HandoffRequest) -> Result<Handoff> {
        let _ = request;
        Err(unsupported(&self.info(), "hand off stages"))
    }
}

fn unsupported(info: &Info, capability: &'static str) -> Error {
    Error::Unsupported {
        name: info.name.clone(),
        capability,
    }
}

/// A plugin's name, version and capabilities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// How `capstan.yaml` and messages refer to the plugin.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// What it offers.
    pub capabilities: Vec<Capability>,
}

/// One optional capability of a plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Provides stages: [`Plugin::stages`] and [`Plugin::render`].
    Stages,
    /// Transforms or validates stages' objects: [`Plugin::transform`].
    Transform,
    /// Hands a stage's objects to another deployer: [`Plugin::handoff`].
    Handoff,
    /// A capability a newer SDK added, which this one ignores.
    #[serde(other)]
    Unknown,
}

impl Capability {
    /// The capability's name, as `capstan plugins list` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stages => "stages",
            Self::Transform => "transform",
            Self::Handoff => "handoff",
            Self::Unknown => "unknown",
        }
    }
}

/// A named document of manifests a plugin rendered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// The name messages give it, e.g. `policy.yaml`.
    pub name: String,
    /// YAML (one or more documents) or JSON.
    pub text: String,
}

/// Where an object came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// The file (or named document) it was read from.
    pub file: String,
    /// The line its document starts on, from 1.
    pub line: usize,
    /// The document within the file, from 1.
    pub document: usize,
    /// Its position in a `List` document, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

/// A Kubernetes object with where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcedObject {
    /// Where it was read.
    pub source: Source,
    /// The object.
    pub object: Value,
}

/// A problem a plugin found with one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The object's source, so the message names its file and line.
    pub source: Source,
    /// What is wrong.
    pub message: String,
}

/// What [`Plugin::transform`] returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transformed {
    /// The objects to apply instead of those given.
    pub objects: Vec<SourcedObject>,
    /// Problems; any one stops the stage.
    pub findings: Vec<Finding>,
}

/// What [`Plugin::handoff`] is given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandoffRequest {
    /// The stage handed off.
    pub stage: String,
    /// Its objects, in apply order, with each one's capstan phase (`namespaces`, `crds`, ...).
    pub objects: Vec<HandoffObject>,
    /// The backend's configuration, as the host read it.
    pub config: Value,
    /// The objects of the stages capstan keeps deploying itself, which the handed-off objects
    /// must not include: an object has one deployer.
    #[serde(default)]
    pub infrastructure: Vec<Claimed>,
}

/// An object a stage capstan deploys claims.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Claimed {
    /// The stage.
    pub stage: String,
    /// Where the object is written.
    pub source: Source,
    /// Its `apiVersion`, `kind`, `metadata.namespace` and `metadata.name`, as in a manifest.
    pub object: Value,
}

/// One object handed off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandoffObject {
    /// The object and where it came from.
    #[serde(flatten)]
    pub sourced: SourcedObject,
    /// The position of its phase in capstan's apply order, from 0.
    pub phase: u32,
    /// Whether the object is SOPS-encrypted: a backend must copy it unchanged.
    pub encrypted: bool,
}

/// The files a handoff backend produced, paths relative to the output folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handoff {
    /// The files, sorted by path.
    pub files: Vec<OutputFile>,
}

/// One output file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// The path, relative and with `/` separators.
    pub path: String,
    /// The content.
    pub text: String,
}
