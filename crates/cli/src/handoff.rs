//! `capstan handoff`: a stage's objects handed to another deployer, as the files it reads.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use capstan_manifest::{Manifest, Object};
use capstan_plugin::{Claimed, Handoff, HandoffObject, HandoffRequest, Plugin, block_on};
use clap::Args;
use serde_json::Value;

use crate::plugins::{Plugins, sourced};
use crate::stage::{load_stage, open_project};
use crate::{ExitCode, Failure};

/// Hand a stage over to another deployer (Argo CD): write the folder it syncs from, or with
/// --check fail when that folder is not up to date
#[derive(Debug, Args)]
pub(crate) struct HandoffArgs {
    /// The project folder or its capstan.yaml [default: the nearest capstan.yaml upward]
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,

    /// The stage to hand over
    #[arg(long, short = 's', value_name = "NAME")]
    stage: String,

    /// The backend: `argocd`, or a plugin with the handoff capability
    #[arg(long, value_name = "NAME", default_value = "argocd")]
    backend: String,

    /// The folder to write
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// The backend's configuration (YAML); for argocd: repoURL, targetRevision, path, project,
    /// namespace, destination, groupBy, layout, automated, createNamespace
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// The stages capstan keeps deploying, whose objects must not be handed over (repeatable)
    /// [default: every other stage]
    #[arg(long, value_name = "NAME")]
    infrastructure: Vec<String>,

    /// Write nothing; fail unless the folder holds exactly what would be written
    #[arg(long)]
    check: bool,
}

pub(crate) fn handoff(args: &HandoffArgs) -> Result<ExitCode, Failure> {
    let project = open_project(args.project.as_deref())?;
    let stage = project.stage(&args.stage)?;
    let manifest = load_stage(&project, stage)?;
    let mut infrastructure = Vec::new();
    for other in project.stages() {
        let listed = args.infrastructure.is_empty()
            || args.infrastructure.contains(&other.name().to_owned());
        if other.name() == stage.name() || !listed {
            continue;
        }
        let loaded = load_stage(&project, other)?;
        infrastructure.extend(loaded.iter().map(|object| Claimed {
            stage: other.name().to_owned(),
            source: sourced(object).source,
            object: identity(object),
        }));
    }
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_yaml::from_str(&text).with_context(|| format!("{}: not YAML", path.display()))?
        }
        None => Value::Null,
    };
    let request = HandoffRequest {
        stage: stage.name().to_owned(),
        objects: handed(&manifest),
        config,
        infrastructure,
    };
    let output = match args.backend.as_str() {
        "argocd" => block_on(capstan_argocd::ArgoCd.handoff(request))?,
        name => block_on(Plugins::load(&project)?.get(name)?.handoff(request))?,
    };
    if args.check {
        check(&args.out, &output)?;
        let (out, count) = (args.out.display(), output.files.len());
        let _ = writeln!(std::io::stderr(), "{out}: up to date ({count} files)");
    } else {
        write(&args.out, &output)?;
        let (out, count) = (args.out.display(), output.files.len());
        let _ = writeln!(std::io::stderr(), "{out}: wrote {count} files");
    }
    Ok(ExitCode::Success)
}

/// The objects as the other deployer gets them: without the discriminator capstan added when
/// loading, so nothing handed over looks like capstan's to a later prune.
fn handed(manifest: &Manifest) -> Vec<HandoffObject> {
    let key = manifest.label().map(|label| label.key().to_owned());
    manifest
        .iter()
        .map(|object| {
            let mut sourced = sourced(object);
            if let (true, Some(key)) = (object.label_added(), &key) {
                let metadata = &mut sourced.object["metadata"];
                if let Some(labels) = metadata["labels"].as_object_mut() {
                    labels.remove(key);
                    if labels.is_empty() {
                        metadata.as_object_mut().map(|m| m.remove("labels"));
                    }
                }
            }
            let encrypted = sourced.object.get("sops").is_some();
            HandoffObject {
                sourced,
                phase: object.phase() as u32,
                encrypted,
            }
        })
        .collect()
}

fn identity(object: &Object) -> Value {
    let id = object.id();
    let mut value = serde_json::json!({
        "apiVersion": id.api_version(),
        "kind": id.kind(),
        "metadata": {"name": id.name()},
    });
    if let Some(namespace) = id.namespace() {
        value["metadata"]["namespace"] = namespace.into();
    }
    value
}

/// The YAML files under `dir`, by relative path: what a handoff manages there.
fn existing(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(folder) = pending.pop() {
        let entries = match std::fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", folder.display()));
            }
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "yaml") {
                let relative = path.strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                found.insert(relative, path);
            }
        }
    }
    Ok(found)
}

fn check(dir: &Path, output: &Handoff) -> anyhow::Result<()> {
    let mut existing = existing(dir)?;
    let mut stale = Vec::new();
    for file in &output.files {
        match existing.remove(&file.path) {
            Some(path) if std::fs::read_to_string(&path).ok().as_deref() == Some(&file.text) => {}
            Some(_) => stale.push(format!("{} differs", file.path)),
            None => stale.push(format!("{} is missing", file.path)),
        }
    }
    stale.extend(
        existing
            .into_keys()
            .map(|path| format!("{path} is not handed off")),
    );
    if !stale.is_empty() {
        anyhow::bail!(
            "{} is not up to date: {}; run capstan handoff without --check",
            dir.display(),
            stale.join(", ")
        );
    }
    Ok(())
}

fn write(dir: &Path, output: &Handoff) -> anyhow::Result<()> {
    let mut existing = existing(dir)?;
    for file in &output.files {
        existing.remove(&file.path);
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    // A file the backend no longer writes would still be synced.
    for path in existing.into_values() {
        std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    }
    Ok(())
}
