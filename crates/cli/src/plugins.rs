//! `capstan plugins list`, and the plugins a project's stages come from or go through.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use capstan_manifest::{
    Error as ManifestError, Input, LoadOptions, Location, Manifest, Object, ObjectId, Problem,
    ProblemKind, Problems, Project, Stage, load_objects,
};
use capstan_plugin::{Capability, Loaded, Plugin as _, Source, SourcedObject, block_on};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::{self, OutputArgs};
use crate::{ExitCode, Failure};

/// Show the plugins a project lists in capstan.yaml
#[derive(Debug, Args)]
pub(crate) struct PluginsArgs {
    #[command(subcommand)]
    command: PluginsCommand,
}

#[derive(Debug, Subcommand)]
enum PluginsCommand {
    List(ListArgs),
}

/// List the project's plugins: name, version, capabilities and library path (loading each)
#[derive(Debug, Args)]
struct ListArgs {
    /// The project folder or its capstan.yaml [default: the nearest capstan.yaml upward]
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,

    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: &PluginsArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        PluginsCommand::List(args) => list(args),
    }
}

#[derive(Serialize)]
struct ListReport {
    items: Vec<PluginItem>,
}

#[derive(Serialize)]
struct PluginItem {
    name: String,
    version: String,
    capabilities: Vec<&'static str>,
    path: PathBuf,
}

fn list(args: &ListArgs) -> Result<ExitCode, Failure> {
    let project = crate::stage::open_project(args.project.as_deref())?;
    let plugins = Plugins::load(&project)?;
    let items: Vec<PluginItem> = plugins
        .loaded
        .iter()
        .map(|plugin| {
            let info = plugin.info();
            PluginItem {
                name: info.name,
                version: info.version,
                capabilities: info.capabilities.iter().map(|c| c.as_str()).collect(),
                path: plugin.path().to_owned(),
            }
        })
        .collect();
    if args.output.json() {
        output::print(&ListReport { items })?;
        return Ok(ExitCode::Success);
    }
    let mut out = std::io::stdout().lock();
    if items.is_empty() {
        writeln!(out, "{}: no plugins", project.file().display())?;
    }
    for item in &items {
        let capabilities = if item.capabilities.is_empty() {
            "-".to_owned()
        } else {
            item.capabilities.join(",")
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}",
            item.name,
            item.version,
            capabilities,
            item.path.display()
        )?;
    }
    Ok(ExitCode::Success)
}

/// A project's plugins, loaded from the paths `capstan.yaml` lists.
pub(crate) struct Plugins {
    file: PathBuf,
    loaded: Vec<Loaded>,
}

impl Plugins {
    /// Loads every listed plugin; two plugins of one name would make stages ambiguous.
    pub(crate) fn load(project: &Project) -> anyhow::Result<Self> {
        let mut loaded: Vec<Loaded> = Vec::new();
        for path in project.plugins() {
            let plugin = Loaded::load(path)?;
            let name = plugin.info().name;
            if let Some(first) = loaded.iter().find(|other| other.info().name == name) {
                anyhow::bail!(
                    "{}: plugins {} and {} are both called `{name}`",
                    project.file().display(),
                    first.path().display(),
                    path.display()
                );
            }
            loaded.push(plugin);
        }
        Ok(Self {
            file: project.file().to_owned(),
            loaded,
        })
    }

    pub(crate) fn get(&self, name: &str) -> anyhow::Result<&Loaded> {
        self.loaded
            .iter()
            .find(|plugin| plugin.info().name == name)
            .with_context(|| {
                let names: Vec<String> = self.loaded.iter().map(|p| p.info().name).collect();
                format!(
                    "{}: no plugin called `{name}` (plugins: {})",
                    self.file.display(),
                    names.join(", ")
                )
            })
    }

    /// The stage's manifests as the plugin `name` renders them; each document is loaded like a
    /// file named `<plugin NAME>/DOCUMENT`, so problems point into it.
    pub(crate) fn render(&self, name: &str, stage: &Stage) -> anyhow::Result<Manifest> {
        let plugin = self.get(name)?;
        let documents = block_on(plugin.render(stage.name()))?;
        let inputs: Vec<Input> = documents
            .into_iter()
            .map(|document| Input::Text {
                name: format!("<plugin {name}>/{}", document.name),
                text: document.text,
            })
            .collect();
        Ok(stage.load_inputs(&inputs)?)
    }

    /// Runs the stage's `transform` plugins in order; their findings fail the load as problems
    /// at the objects' own files and lines.
    pub(crate) fn transform(&self, stage: &Stage, manifest: Manifest) -> anyhow::Result<Manifest> {
        let mut manifest = manifest;
        for name in stage.transform() {
            let plugin = self.get(name)?;
            // The trait's default passes objects through, which would hide a misconfiguration.
            if !plugin.info().capabilities.contains(&Capability::Transform) {
                anyhow::bail!(
                    "{}: stage {} lists `{name}` under `transform`, but plugin {name} ({}) does \
                     not transform objects",
                    self.file.display(),
                    stage.name(),
                    plugin.path().display()
                );
            }
            let groups: HashMap<Source, (u32, ObjectId)> = manifest
                .iter()
                .map(|object| {
                    let id = object.id().clone();
                    (source(object.location()), (object.barrier_group(), id))
                })
                .collect();
            let objects = manifest.iter().map(sourced).collect();
            let transformed = block_on(plugin.transform(stage.name(), objects))?;
            if !transformed.findings.is_empty() {
                let problems = transformed
                    .findings
                    .into_iter()
                    .map(|finding| {
                        let problem =
                            Problem::new(location(&finding.source), ProblemKind::Policy, {
                                format!("{} (plugin {name})", finding.message)
                            });
                        match groups.get(&finding.source) {
                            Some((_, id)) => problem.about(id),
                            None => problem,
                        }
                    })
                    .collect();
                let problems = Problems::new(problems, manifest.len());
                return Err(ManifestError::Invalid(problems).into());
            }
            let objects = transformed
                .objects
                .into_iter()
                .map(|sourced| {
                    let group = groups.get(&sourced.source).map_or(0, |(group, _)| *group);
                    (location(&sourced.source), group, sourced.object)
                })
                .collect();
            let options = LoadOptions::with_label(stage.label().clone());
            manifest = load_objects(objects, &options)?;
        }
        Ok(manifest)
    }
}

/// An object as plugins receive it.
pub(crate) fn sourced(object: &Object) -> SourcedObject {
    SourcedObject {
        source: source(object.location()),
        object: object.to_value(),
    }
}

fn source(location: &Location) -> Source {
    Source {
        file: location.source().to_owned(),
        line: location.line(),
        document: location.document(),
        item: location.item(),
    }
}

fn location(source: &Source) -> Location {
    Location::new(
        source.file.as_str().into(),
        source.document,
        source.item,
        source.line,
    )
}
