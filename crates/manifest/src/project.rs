//! `capstan.yaml`: a project's name and its stages.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::history::History;
use crate::ignore::{IgnoreRule, IgnoreRules};
use crate::names::dns_label_problem;
use crate::strict::{self, Failure};
use crate::targets::{self, Named, SelectorFile, Target, TargetFiles, TargetSelector};
use crate::{
    Error, Input, Label, LoadOptions, Location, Manifest, Problem, ProblemKind, Problems,
    Templating, command, lines, load,
};

/// A capstan project: the `capstan.yaml` at its root, naming the project and its stages.
///
/// ```yaml
/// name: hetzkube                           # an RFC 1123 label, as are stage names
/// labelKey: capstan.io/discriminator      # optional; kluctl.io/discriminator takes over kluctl
/// stateNamespace: capstan-system          # optional; where capstan keeps per-stage locks
/// history: {keep: 10}                     # optional; deploy records per stage (see History)
/// plugins:                                # optional; plugin libraries, relative to capstan.yaml
///   - plugins/libsite_policy.so
/// targets:                                # optional; clusters stages can go to (`Target`)
///   prod-a: {context: prod-a, labels: {env: prod}}
///   prod-b: {context: prod-b, labels: {env: prod}, discriminator: capi-b}
/// stages:
///   capi:
///     manifests: build/capi.yaml           # files or folders, relative to capstan.yaml
///     targets: {env: prod}                 # a label selector or a list of target names
///   full:
///     discriminator: full                  # optional, defaults to <name>.<stage>
///     command: [nix, build, ".#kubenix.manifestYAMLFile", --print-out-paths]
///     prune: true
///     adopt: true                          # optional; take over live objects no stage owns
///     context: my-cluster                  # the kube context this stage deploys to
///     transform: [site-policy]             # plugins that check or change the objects first
///   policy:
///     plugin: site-policy                  # the plugin renders the stage of the same name
/// ```
///
/// Project and stage names are RFC 1123 labels (lowercase letters, digits and `-`), so the
/// default discriminator `<name>.<stage>` names one stage of one project: a `-` could not
/// separate them (`rel-x` + `y-full` and `rel-x-y` + `full` would share `rel-x-y-full`).
#[derive(Clone, Debug)]
pub struct Project {
    file: PathBuf,
    name: String,
    label_key: String,
    state_namespace: String,
    plugins: Vec<PathBuf>,
    stages: Vec<Stage>,
    history: History,
    targets: Vec<Target>,
}

/// One stage: the resources it renders, and the label that marks them as its own.
#[derive(Clone, Debug)]
pub struct Stage {
    name: String,
    project: String,
    pub(crate) label: Label,
    pub(crate) legacy_label: Option<Label>,
    source: StageSource,
    prune: bool,
    adopt: bool,
    pub(crate) context: Option<String>,
    state_namespace: String,
    verify_sops_mac: bool,
    transform: Vec<String>,
    history: History,
    ignore_differences: IgnoreRules,
    pub(crate) targets: Option<TargetSelector>,
    pub(crate) variables: BTreeMap<String, String>,
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
    /// A plugin listed under `plugins:`, which renders the stage of the same name.
    Plugin {
        /// The plugin's name, as it reports it.
        name: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ProjectFile {
    name: String,
    label_key: Option<String>,
    state_namespace: Option<String>,
    #[serde(default)]
    plugins: Vec<String>,
    #[serde(default)]
    history: History,
    stages: StageFiles,
    #[serde(default)]
    targets: TargetFiles,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StageFile {
    manifests: Option<OneOrMany>,
    command: Option<Vec<String>>,
    plugin: Option<String>,
    #[serde(default)]
    transform: Vec<String>,
    discriminator: Option<String>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    adopt: bool,
    context: Option<String>,
    #[serde(default)]
    sops: SopsFile,
    #[serde(default)]
    ignore_differences: Vec<IgnoreRule>,
    targets: Option<SelectorFile>,
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

/// Stages in the order the file lists them.
type StageFiles = Named<StageFile>;

impl Project {
    /// The project file's name.
    pub const FILE_NAME: &str = "capstan.yaml";

    /// The namespace capstan keeps per-stage locks in unless `stateNamespace` names another.
    pub const DEFAULT_STATE_NAMESPACE: &str = "capstan-system";

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
    /// [`Error::Project`] when the file cannot be read, is not valid YAML, has unknown keys,
    /// names the project, a stage or `stateNamespace` with anything but an RFC 1123 label (the
    /// message gives the line), declares a stage twice or without exactly one of `manifests`,
    /// `command` and `plugin`, names a `plugin` or `transform` without `plugins:`, has a target with an invalid name, an empty context, a bad discriminator or variable name, a stage whose `targets:` names an unknown target, selects none or comes with `context`, lists a plugin path that is empty or listed twice, has a discriminator or label key that breaks Kubernetes' label rules, or
    /// a default discriminator longer than a label value may be.
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
        // serde_yaml refuses a field twice, but a stage twice would pass.
        if let Err(Failure::DuplicateKey(key)) = strict::yaml(&text) {
            return Err(invalid(lines::duplicate_key(&text, &key, 1).1));
        }
        let parsed: ProjectFile =
            serde_yaml::from_str(&text).map_err(|error| invalid(error.to_string()))?;
        // Names become label values and namespaces.
        let label_rule = |what: &str, name: &str, path: &[&str]| match dns_label_problem(name) {
            None => Ok(()),
            Some(rule) => {
                let line = lines::key_line(&text, path)
                    .map_or_else(String::new, |line| format!(" (line {line})"));
                Err(invalid(format!("{what} {name:?}{line} is not {rule}")))
            }
        };
        label_rule("the project name", &parsed.name, &["name"])?;
        if let Some(namespace) = &parsed.state_namespace {
            label_rule("stateNamespace", namespace, &["stateNamespace"])?;
        }
        for (name, _) in &parsed.stages.0 {
            label_rule("the stage name", name, &["stages", name])?;
        }
        let root = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_owned);
        let label_key = parsed
            .label_key
            .unwrap_or_else(|| Label::DEFAULT_KEY.to_owned());
        if parsed.stages.0.is_empty() {
            return Err(invalid("the project declares no stages".to_owned()));
        }
        let plugins = plugin_paths(&root, &parsed.plugins).map_err(invalid)?;
        let targets = targets::resolve(&root, parsed.targets, &label_key).map_err(invalid)?;
        let project = parsed.name;
        let state_namespace = parsed
            .state_namespace
            .unwrap_or_else(|| Project::DEFAULT_STATE_NAMESPACE.to_owned());
        let mut stages = Vec::new();
        for (name, stage) in parsed.stages.0 {
            let invalid = |message: String| invalid(format!("stage {name}: {message}"));
            let label = |value: String| {
                Label::new(label_key.clone(), value).map_err(|error| invalid(error.to_string()))
            };
            let (label, legacy_label) = match stage.discriminator {
                Some(discriminator) => (label(discriminator)?, None),
                None => {
                    let discriminator = format!("{project}.{name}");
                    if discriminator.len() > 63 {
                        return Err(invalid(format!(
                            "the default discriminator `{discriminator}` is longer than 63 \
                             characters, the limit of a label value: set `discriminator:`"
                        )));
                    }
                    (
                        label(discriminator)?,
                        Some(label(format!("{project}-{name}"))?),
                    )
                }
            };
            let source = match (stage.manifests, stage.command, stage.plugin) {
                (Some(OneOrMany::One(path)), None, None) => {
                    StageSource::Paths(vec![root.join(path)])
                }
                (Some(OneOrMany::Many(paths)), None, None) if !paths.is_empty() => {
                    StageSource::Paths(paths.iter().map(|path| root.join(path)).collect())
                }
                (None, Some(argv), None) if !argv.is_empty() => StageSource::Command {
                    argv,
                    dir: root.clone(),
                },
                (None, None, Some(name)) if !plugins.is_empty() => StageSource::Plugin { name },
                (None, None, Some(name)) => {
                    return Err(invalid(format!(
                        "comes from plugin `{name}`, but the project lists no `plugins`"
                    )));
                }
                (_, _, Some(_)) => {
                    return Err(invalid(
                        "takes `plugin` alone, without `manifests` or `command`".to_owned(),
                    ));
                }
                _ => {
                    return Err(invalid(
                        "needs exactly one of `manifests` and a non-empty `command`".to_owned(),
                    ));
                }
            };
            if !stage.transform.is_empty() && plugins.is_empty() {
                return Err(invalid(
                    "lists `transform` plugins, but the project lists no `plugins`".to_owned(),
                ));
            }
            let ignore_differences = IgnoreRules::new(stage.ignore_differences).map_err(invalid)?;
            let stage_targets = match (stage.targets, &stage.context) {
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        "takes `context` or `targets`, not both: each target names its context"
                            .to_owned(),
                    ));
                }
                (Some(file), None) => Some(targets::selector(file, &targets).map_err(invalid)?),
                (None, _) => None,
            };
            stages.push(Stage {
                name,
                project: project.clone(),
                label,
                legacy_label,
                source,
                prune: stage.prune,
                adopt: stage.adopt,
                context: stage.context,
                state_namespace: state_namespace.clone(),
                verify_sops_mac: stage.sops.verify_mac,
                transform: stage.transform,
                history: parsed.history,
                ignore_differences,
                targets: stage_targets,
                variables: BTreeMap::new(),
            });
        }
        Ok(Self {
            file,
            name: project,
            label_key,
            state_namespace,
            plugins,
            stages,
            history: parsed.history,
            targets,
        })
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How much deployment history each stage keeps (`history:`).
    pub fn history(&self) -> History {
        self.history
    }

    /// The `capstan.yaml` this project was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The discriminator label key all stages use.
    pub fn label_key(&self) -> &str {
        &self.label_key
    }

    /// The namespace where capstan keeps per-stage locks (`stateNamespace`, by default
    /// [`Project::DEFAULT_STATE_NAMESPACE`]).
    pub fn state_namespace(&self) -> &str {
        &self.state_namespace
    }

    /// The plugin libraries the project lists (`plugins:`), resolved against its folder.
    pub fn plugins(&self) -> &[PathBuf] {
        &self.plugins
    }

    /// The stages, in the order the file lists them.
    pub fn stages(&self) -> &[Stage] {
        &self.stages
    }

    /// The clusters stages can go to (`targets:`), in the order the file lists them.
    pub fn targets(&self) -> &[Target] {
        &self.targets
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

    /// The name of the project the stage belongs to.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The discriminator label that marks this stage's objects: `discriminator:`, or by default
    /// `<project>.<stage>`.
    pub fn label(&self) -> &Label {
        &self.label
    }

    /// The label earlier versions of capstan gave the stage's objects by default,
    /// `<project>-<stage>`, so that objects they deployed can be found and relabelled. `None`
    /// when the stage sets `discriminator:`, which never changed.
    pub fn legacy_label(&self) -> Option<Label> {
        self.legacy_label.clone()
    }

    /// Where its manifests come from.
    pub fn source(&self) -> &StageSource {
        &self.source
    }

    /// Whether deploying the stage prunes its orphans unless told otherwise.
    pub fn prune(&self) -> bool {
        self.prune
    }

    /// Whether deploying the stage takes over live objects that no stage owns yet (`adopt:
    /// true`), as `--adopt` does for one run; off by default.
    pub fn adopt(&self) -> bool {
        self.adopt
    }

    /// The namespace where capstan keeps the stage's lock: the project's `stateNamespace`.
    pub fn state_namespace(&self) -> &str {
        &self.state_namespace
    }

    /// Whether the MAC of SOPS-encrypted objects must verify (`sops: {verifyMac: false}` turns
    /// it off for renderers that re-serialise objects; each value's own tag is still checked).
    pub fn verify_sops_mac(&self) -> bool {
        self.verify_sops_mac
    }

    /// The plugins that check or change the stage's objects before they are applied
    /// (`transform:`), by name, in order.
    pub fn transform(&self) -> &[String] {
        &self.transform
    }

    /// The kube context the stage deploys to, if it names one.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// How much deployment history the stage keeps: the project's `history:`.
    pub fn history(&self) -> History {
        self.history
    }

    /// The fields `diff`, `drift` and the unchanged proof leave alone (`ignoreDifferences:`).
    pub fn ignore_differences(&self) -> &IgnoreRules {
        &self.ignore_differences
    }

    /// Renders (when the stage has a command) and loads the stage's manifests, labelled with its
    /// discriminator. `on_stderr` receives the command's standard error line by line while it
    /// runs, for showing to a person.
    ///
    /// # Errors
    ///
    /// [`Error::CommandSpawn`] and [`Error::CommandFailed`] (with the exit status and the last
    /// lines of standard error) when the command fails, [`Error::PluginStage`] when a plugin
    /// provides the stage, and the errors of [`load`].
    pub fn load(&self, on_stderr: &mut dyn FnMut(&str)) -> Result<Manifest, Error> {
        self.load_templated(on_stderr, None)
    }

    /// Loads the stage's manifests as [`Stage::load`] does, rendering kluctl projects among
    /// them with `templating` ([`LoadOptions::kluctl`]).
    ///
    /// # Errors
    ///
    /// The errors of [`Stage::load`].
    pub fn load_templated(
        &self,
        on_stderr: &mut dyn FnMut(&str),
        templating: Option<Templating>,
    ) -> Result<Manifest, Error> {
        let inputs = match &self.source {
            StageSource::Paths(paths) => paths.iter().cloned().map(Input::Path).collect(),
            StageSource::Command { argv, dir } => {
                let output = command::run(&self.name, argv, dir, &self.variables, on_stderr)?;
                let name = format!("<output of stage {}>", self.name);
                let Ok(text) = String::from_utf8(output) else {
                    let problem = Problem::new(
                        Location::file(name.into()),
                        ProblemKind::Unreadable,
                        "not UTF-8 text",
                    );
                    return Err(Error::Invalid(Problems::new(vec![problem], 0)));
                };
                output_inputs(name, text, dir)
            }
            StageSource::Plugin { name } => {
                return Err(Error::PluginStage {
                    stage: self.name.clone(),
                    plugin: name.clone(),
                });
            }
        };
        let mut options = LoadOptions::with_label(self.label.clone());
        options.kluctl = templating;
        load(&inputs, &options)
    }

    /// Loads `inputs` as the stage's manifests, labelled with its discriminator: how a host
    /// loads the documents a plugin rendered for the stage.
    ///
    /// # Errors
    ///
    /// The errors of [`load`].
    pub fn load_inputs(&self, inputs: &[Input]) -> Result<Manifest, Error> {
        load(inputs, &LoadOptions::with_label(self.label.clone()))
    }
}

/// `plugins:` resolved against the project folder; a path listed twice would load one library
/// twice under one name.
fn plugin_paths(root: &Path, listed: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut paths: Vec<PathBuf> = Vec::with_capacity(listed.len());
    for (index, path) in listed.iter().enumerate() {
        if path.trim().is_empty() {
            return Err(format!(
                "plugins[{index}] is empty: give the library's path"
            ));
        }
        let resolved = root.join(path);
        if paths.contains(&resolved) {
            return Err(format!("plugin `{path}` is listed twice"));
        }
        paths.push(resolved);
    }
    Ok(paths)
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
