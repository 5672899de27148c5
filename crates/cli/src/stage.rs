//! Which manifests a command works on: a project stage, or files named on the command line.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use capstan_manifest::{
    Input, Label, LoadOptions, Manifest, Project, Selection, Selector, Stage, StageSource,
    Templating, load,
};
use clap::{ArgGroup, Args};

use crate::kluctl;
use crate::plugins::Plugins;

/// The options every command that takes a stage accepts.
#[derive(Debug, Args)]
#[command(group = ArgGroup::new("files").args(["filename", "project_dir"]).multiple(true))]
pub(crate) struct StageArgs {
    /// The project folder or its capstan.yaml [default: the nearest capstan.yaml upward]
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,

    /// The stage to work on [default: the project's only stage]
    #[arg(long, short = 's', value_name = "NAME", conflicts_with = "filename")]
    stage: Option<String>,

    /// Load these files or folders instead of a stage ('-' reads standard input)
    #[arg(long, short = 'f', value_name = "PATH")]
    filename: Vec<PathBuf>,

    /// kluctl's --project-dir and -a (boxed: commands hold several of these argument sets).
    #[command(flatten)]
    kluctl: Box<kluctl::KluctlArgs>,

    /// With -f or --project-dir: label every object with this discriminator
    #[arg(long, requires = "files")]
    discriminator: Option<String>,

    /// With -f: the discriminator label key
    #[arg(long, requires = "discriminator", default_value = Label::DEFAULT_KEY)]
    label_key: String,

    /// Work only on objects matching this selector (repeatable; any may match):
    /// kind=[GROUP/]KIND, namespace=NS, name=[NS/]NAME, label=KEY[=VALUE|!=VALUE]
    #[arg(long, value_name = "SELECTOR")]
    include: Vec<Selector>,

    /// Leave out objects matching this selector (repeatable; same forms as --include)
    #[arg(long, value_name = "SELECTOR")]
    exclude: Vec<Selector>,
}

/// Loaded manifests and what they are, for messages.
pub(crate) struct Loaded {
    pub(crate) manifest: Manifest,
    /// `stage full` or `the given files`.
    pub(crate) what: String,
    /// The kubeconfig context the stage is meant for, if it names one.
    pub(crate) context: Option<String>,
    /// Whether the stage prunes on deploy by default.
    pub(crate) prune: bool,
    /// The project folder, for the commit a deploy records.
    pub(crate) root: Option<PathBuf>,
    /// Whether SOPS-encrypted objects must pass their MAC check.
    pub(crate) verify_sops_mac: bool,
    /// `project/stage`, recorded on every object written.
    pub(crate) owner: Option<String>,
    /// The discriminator the stage had under the old default, for objects written then.
    pub(crate) legacy_discriminator: Option<String>,
    /// Whether the stage takes over objects capstan never applied.
    pub(crate) adopt: bool,
    /// Where the stage's lock lives.
    pub(crate) state_namespace: String,
    /// `--include`/`--exclude`, when given.
    pub(crate) selection: Option<Selection>,
    /// The stage's `ignoreDifferences`.
    pub(crate) ignore: capstan_manifest::IgnoreRules,
}

impl Loaded {
    /// A project stage with these manifests, selecting all of them.
    pub(crate) fn of_stage(project: &Project, stage: &Stage, manifest: Manifest) -> Self {
        Self {
            manifest,
            what: format!("stage {}", stage.name()),
            context: stage.context().map(str::to_owned),
            prune: stage.prune(),
            root: project.file().parent().map(PathBuf::from),
            verify_sops_mac: stage.verify_sops_mac(),
            owner: Some(format!("{}/{}", stage.project(), stage.name())),
            legacy_discriminator: stage.legacy_label().map(|label| label.value().to_owned()),
            adopt: stage.adopt(),
            state_namespace: stage.state_namespace().to_owned(),
            selection: None,
            ignore: stage.ignore_differences().clone(),
        }
    }
}

/// The project at `path` (a folder or its capstan.yaml), or the nearest one above the working
/// directory.
pub(crate) fn open_project(path: Option<&Path>) -> anyhow::Result<Project> {
    Ok(match path {
        Some(path) => Project::open(path)?,
        None => Project::discover(
            &std::env::current_dir().context("cannot read the working directory")?,
        )?,
    })
}

/// Loads a project stage: rendered by its plugin or its command, or read from its files, then
/// through its `transform` plugins; a stage command's stderr streams to ours. kluctl projects
/// load untemplated, so that no decrypted value can reach what the caller writes.
pub(crate) fn load_stage(project: &Project, stage: &Stage) -> anyhow::Result<Manifest> {
    load_stage_templated(project, stage, None)
}

/// Loads a project stage as [`load_stage`] does, rendering kluctl projects with `templating`.
fn load_stage_templated(
    project: &Project,
    stage: &Stage,
    templating: Option<Templating>,
) -> anyhow::Result<Manifest> {
    let plugins = match (stage.source(), stage.transform()) {
        (StageSource::Plugin { .. }, _) | (_, [_, ..]) => Some(Plugins::load(project)?),
        _ => None,
    };
    let mut manifest = match (stage.source(), &plugins) {
        (StageSource::Plugin { name }, Some(plugins)) => plugins.render(name, stage)?,
        _ => {
            let mut stderr = std::io::stderr();
            stage.load_templated(
                &mut |line| {
                    let _ = writeln!(stderr, "{line}");
                },
                templating,
            )?
        }
    };
    if let Some(plugins) = &plugins {
        let sensitive = manifest.sensitive().clone();
        manifest = plugins
            .transform(stage, manifest)?
            .with_sensitive(sensitive);
    }
    Ok(manifest)
}

impl StageArgs {
    /// Whether the command line names manifests (`--project`, `--stage` or `-f`), for commands
    /// that read them only when asked.
    pub(crate) fn named(&self) -> bool {
        self.project.is_some()
            || self.stage.is_some()
            || !self.filename.is_empty()
            || self.kluctl.project_dir.is_some()
    }

    /// Loads the stage's manifests, or the files; a stage command's stderr streams to ours.
    pub(crate) fn load(&self) -> anyhow::Result<Loaded> {
        if self.files() {
            return self.load_files();
        }
        let project = open_project(self.project.as_deref())?;
        let stage = match (&self.stage, project.stages()) {
            (Some(name), _) => project.stage(name)?,
            (None, [only]) => only,
            (None, stages) => {
                let names: Vec<&str> = stages.iter().map(|stage| stage.name()).collect();
                anyhow::bail!(
                    "{}: choose a stage with --stage ({})",
                    project.file().display(),
                    names.join(", ")
                )
            }
        };
        let manifest = self.render(&project, stage)?;
        let mut loaded = Loaded::of_stage(&project, stage, manifest);
        loaded.selection = self.selection();
        Ok(loaded)
    }

    /// Loads the manifests and keeps only what `--include`/`--exclude` select: for commands
    /// that only read them (`render`, `validate`). Commands that prune keep the whole set, so
    /// that unselected objects are never taken for orphans.
    pub(crate) fn load_selected(&self) -> anyhow::Result<Loaded> {
        let mut loaded = self.load()?;
        if let Some(selection) = &loaded.selection {
            loaded.manifest.select(selection);
        }
        Ok(loaded)
    }

    /// `--project`, when given.
    pub(crate) fn project(&self) -> Option<&Path> {
        self.project.as_deref()
    }

    /// `--stage`, when given.
    pub(crate) fn stage(&self) -> Option<&str> {
        self.stage.as_deref()
    }

    /// Whether `-f` or `--project-dir` name files instead of a stage.
    pub(crate) fn files(&self) -> bool {
        !self.filename.is_empty() || self.kluctl.project_dir.is_some()
    }

    /// Renders and loads a stage of `project`, templating kluctl projects with this command
    /// line's `-a` args.
    pub(crate) fn render(&self, project: &Project, stage: &Stage) -> anyhow::Result<Manifest> {
        let templating = kluctl::templating(&self.kluctl.args, Some(stage.name()));
        load_stage_templated(project, stage, Some(templating))
    }

    /// `--include`/`--exclude`, when given.
    pub(crate) fn selection(&self) -> Option<Selection> {
        let selection = Selection::new(self.include.clone(), self.exclude.clone());
        (!selection.is_empty()).then_some(selection)
    }

    fn load_files(&self) -> anyhow::Result<Loaded> {
        let mut inputs = Vec::new();
        if let Some(dir) = &self.kluctl.project_dir {
            anyhow::ensure!(
                dir.is_dir() && capstan_manifest::is_kluctl_project(dir),
                "--project-dir {}: not a kluctl project folder (it needs a deployment.yaml \
                 listing deployments, or a .kluctl.yaml); use -f for other files",
                dir.display()
            );
            inputs.push(Input::Path(dir.clone()));
        }
        for path in &self.filename {
            if path.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("cannot read standard input")?;
                inputs.push(Input::Text {
                    name: "<stdin>".to_owned(),
                    text,
                });
            } else {
                inputs.push(Input::Path(path.clone()));
            }
        }
        let mut options = match &self.discriminator {
            Some(value) => {
                LoadOptions::with_label(Label::new(self.label_key.clone(), value.clone())?)
            }
            None => LoadOptions::default(),
        };
        options.kluctl = Some(kluctl::templating(&self.kluctl.args, None));
        Ok(Loaded {
            manifest: load(&inputs, &options)?,
            what: "the given files".to_owned(),
            context: None,
            prune: false,
            root: None,
            verify_sops_mac: true,
            owner: None,
            legacy_discriminator: None,
            adopt: false,
            state_namespace: Project::DEFAULT_STATE_NAMESPACE.to_owned(),
            selection: self.selection(),
            ignore: capstan_manifest::IgnoreRules::default(),
        })
    }
}
