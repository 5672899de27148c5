//! `capstan.yaml`: a project's name and its stages.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::{
    Error, Input, Label, LoadOptions, Location, Manifest, Problem, ProblemKind, Problems, command,
    load,
};

/// A capstan project: the `capstan.yaml` at its root, naming the project and its stages.
///
/// ```yaml
/// name: hetzkube
/// labelKey: capstan.io/discriminator      # optional; kluctl.io/discriminator takes over kluctl
/// stages:
///   capi:
///     manifests: build/capi.yaml           # files or folders, relative to capstan.yaml
///   full:
///     discriminator: full                  # optional, defaults to <name>-<stage>
///     command: [nix, build, ".#kubenix.manifestYAMLFile", --print-out-paths]
///     prune: true
///     context: my-cluster                  # the kube context this stage deploys to
/// ```
#[derive(Clone, Debug)]
pub struct Project {
    file: PathBuf,
    name: String,
    label_key: String,
    stages: Vec<Stage>,
}

/// One stage: the resources it renders, and the label that marks them as its own.
#[derive(Clone, Debug)]
pub struct Stage {
    name: String,
    label: Label,
    source: StageSource,
    prune: bool,
    context: Option<String>,
    verify_sops_mac: bool,
}

/// Where a stage's manifests come from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StageSource {
    /// Files and folders (absolute, resolved against the project root).
    Paths(Vec<PathBuf>),
    /// A command run in the project root. Its standard output is manifests, or the paths of
    /// files or folders holding them, one per line (as `nix build --print-out-paths` prints).
    Command {
        /// The program and its arguments; no shell is involved.
        argv: Vec<String>,
        /// The folder it runs in.
        dir: PathBuf,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProjectFile {
    name: String,
    label_key: Option<String>,
    stages: StageFiles,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    manifests: Option<OneOrMany>,
    command: Option<Vec<String>>,
    discriminator: Option<String>,
    #[serde(default)]
    prune: bool,
    context: Option<String>,
    #[serde(default)]
    sops: SopsFile,
}

/// `sops:` of a stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SopsFile {
    /// Renderers that re-serialise objects (sorting keys, reordering named lists) break the
    /// whole-object MAC while each value's own tag still holds.
    #[serde(default = "yes")]
    verify_mac: bool,
}

impl Default for SopsFile {
    fn default() -> Self {
        Self { verify_mac: true }
    }
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Stages in the order the file lists them, which is the order people read and list them in.
struct StageFiles(Vec<(String, StageFile)>);

impl<'de> Deserialize<'de> for StageFiles {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Stages;
        impl<'de> Visitor<'de> for Stages {
            type Value = StageFiles;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from stage names to stages")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StageFiles, A::Error> {
                let mut stages = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    stages.push(entry);
                }
                Ok(StageFiles(stages))
            }
        }
        deserializer.deserialize_map(Stages)
    }
}

impl Project {
    /// The project file's name.
    pub const FILE_NAME: &str = "capstan.yaml";

    /// The project whose `capstan.yaml` is in `start` or the nearest folder above it.
    ///
    /// # Errors
    ///
    /// [`Error::ProjectNotFound`] when there is none, and the errors of [`Project::open`].
    pub fn discover(start: &Path) -> Result<Self, Error> {
        let found = start
            .ancestors()
            .map(|dir| dir.join(Self::FILE_NAME))
            .find(|file| file.is_file());
        match found {
            Some(file) => Self::open(&file),
            None => Err(Error::ProjectNotFound {
                start: start.to_owned(),
            }),
        }
    }

    /// The project in `path`: a `capstan.yaml`, or a folder holding one.
    ///
    /// # Errors
    ///
    /// [`Error::Project`] when the file cannot be read, is not valid YAML, has unknown keys, or
    /// declares a stage without exactly one of `manifests` and `command`, or a discriminator or
    /// label key that breaks Kubernetes' label rules.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = if path.is_dir() {
            path.join(Self::FILE_NAME)
        } else {
            path.to_owned()
        };
        let invalid = |message: String| Error::Project {
            path: file.clone(),
            message,
        };
        let text = fs::read_to_string(&file).map_err(|error| invalid(error.to_string()))?;
        let parsed: ProjectFile =
            serde_yaml::from_str(&text).map_err(|error| invalid(error.to_string()))?;
        let root = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let label_key = parsed
            .label_key
            .unwrap_or_else(|| Label::DEFAULT_KEY.to_owned());
        if parsed.stages.0.is_empty() {
            return Err(invalid("the project declares no stages".to_owned()));
        }
        let mut stages = Vec::new();
        for (name, stage) in parsed.stages.0 {
            let invalid = |message: String| invalid(format!("stage {name}: {message}"));
            let discriminator = stage
                .discriminator
                .unwrap_or_else(|| format!("{}-{name}", parsed.name));
            let label = Label::new(label_key.clone(), discriminator)
                .map_err(|error| invalid(error.to_string()))?;
            let source = match (stage.manifests, stage.command) {
                (Some(OneOrMany::One(path)), None) => StageSource::Paths(vec![root.join(path)]),
                (Some(OneOrMany::Many(paths)), None) if !paths.is_empty() => {
                    StageSource::Paths(paths.iter().map(|path| root.join(path)).collect())
                }
                (None, Some(argv)) if !argv.is_empty() => StageSource::Command {
                    argv,
                    dir: root.clone(),
                },
                _ => {
                    return Err(invalid(
                        "needs exactly one of `manifests` and a non-empty `command`".to_owned(),
                    ));
                }
            };
            stages.push(Stage {
                name,
                label,
                source,
                prune: stage.prune,
                context: stage.context,
                verify_sops_mac: stage.sops.verify_mac,
            });
        }
        Ok(Self {
            file,
            name: parsed.name,
            label_key,
            stages,
        })
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `capstan.yaml` this project was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The discriminator label key all stages use.
    pub fn label_key(&self) -> &str {
        &self.label_key
    }

    /// The stages, in the order the file lists them.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The stage called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownStage`], listing the stages there are.
    pub fn stage(&self, name: &str) -> Result<&Stage, Error> {
        self.stages
            .iter()
            .find(|stage| stage.name == name)
            .ok_or_else(|| Error::UnknownStage {
                path: self.file.clone(),
                stage: name.to_owned(),
                known: self.stages.iter().map(|stage| stage.name.clone()).collect(),
            })
    }
}

impl Stage {
    /// The stage's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The discriminator label that marks this stage's objects.
    pub fn label(&self) -> &Label {
        &self.label
    }

    /// Where its manifests come from.
    pub fn source(&self) -> &StageSource {
        &self.source
    }

    /// Whether deploying the stage prunes its orphans unless told otherwise.
    pub fn prune(&self) -> bool {
        self.prune
    }

    /// Whether the MAC of SOPS-encrypted objects must verify (`sops: {verifyMac: false}` turns
    /// it off for renderers that re-serialise objects; each value's own tag is still checked).
    pub fn verify_sops_mac(&self) -> bool {
        self.verify_sops_mac
    }

    /// The kube context the stage deploys to, if it names one.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// Renders (when the stage has a command) and loads the stage's manifests, labelled with its
    /// discriminator. `on_stderr` receives the command's standard error line by line while it
    /// runs, for showing to a person.
    ///
    /// # Errors
    ///
    /// [`Error::CommandSpawn`] and [`Error::CommandFailed`] (with the exit status and the last
    /// lines of standard error) when the command fails, and the errors of [`load`].
    pub fn load(&self, on_stderr: &mut dyn FnMut(&str)) -> Result<Manifest, Error> {
        let options = LoadOptions::with_label(self.label.clone());
        let inputs = match &self.source {
            StageSource::Paths(paths) => paths.iter().cloned().map(Input::Path).collect(),
            StageSource::Command { argv, dir } => {
                let output = command::run(&self.name, argv, dir, on_stderr)?;
                let name = format!("<output of stage {}>", self.name);
                let Ok(text) = String::from_utf8(output) else {
                    let problem = Problem::new(
                        Location::file(name.into()),
                        ProblemKind::Unreadable,
                        "not UTF-8 text",
                    );
                    return Err(Error::Invalid(Problems::new(vec![problem])));
                };
                output_inputs(name, text, dir)
            }
        };
        load(&inputs, &options)
    }
}

/// A command's output names files when every non-empty line is an existing path; otherwise it
/// is the manifests themselves.
fn output_inputs(name: String, text: String, dir: &Path) -> Vec<Input> {
    let paths: Option<Vec<PathBuf>> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| Some(dir.join(line.trim())).filter(|path| path.exists()))
        .collect();
    match paths {
        Some(paths) if !paths.is_empty() => paths.into_iter().map(Input::Path).collect(),
        _ => vec![Input::Text { name, text }],
    }
}
