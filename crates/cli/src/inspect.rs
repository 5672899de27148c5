//! `capstan list`, `status` and `delete`: what a discriminator owns on the cluster.

use std::io::Write as _;

use anyhow::Context as _;
use capstan_apply::{Deletion, Deployer, Health, Keep, Owned};
use capstan_manifest::ObjectId;
use clap::Args;
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs, block_on};
use crate::deploy::{RemoveArgs, locked, release, stage_options};
use crate::output::{self, DeleteReport, HealthItem, OutputArgs, OwnedItem};
use crate::progress::Bar;
use crate::prompt::confirm_change;
use crate::stage::{Loaded, StageArgs};
use crate::{ExitCode, Failure};

/// What `capstan list` and `capstan status` share.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// List live objects carrying the stage's discriminator
#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    inspect: InspectArgs,

    /// Scan every resource type, not only the types the stage's history records
    #[arg(long)]
    full_scan: bool,
}

/// Show the health of every object of the stage; exits 1 when any is not ready
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    inspect: InspectArgs,
    #[command(flatten)]
    fleet: crate::fleet::FleetArgs,
}

/// Delete everything carrying the stage's discriminator
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) remove: RemoveArgs,
}

/// `capstan list -o json`.
#[derive(Serialize)]
struct ListReport<'a> {
    items: Vec<OwnedItem<'a>>,
    blind: &'a capstan_apply::Blind,
    requests: usize,
}

/// `capstan status -o json`.
#[derive(Serialize)]
struct StatusReport<'a> {
    ready: bool,
    items: Vec<HealthItem<'a>>,
    requests: usize,
}

/// Live objects carrying the stage's discriminator.
pub(crate) fn list(args: &ListArgs) -> Result<ExitCode, Failure> {
    let full_scan = args.full_scan;
    let args = &args.inspect;
    let loaded = args.stage.load()?;
    let label = loaded
        .manifest
        .label()
        .context("no discriminator label to list by")?
        .clone();
    let bar = Bar::new();
    let (inventory, requests) = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let mut options = stage_options(&loaded);
        crate::history::Recorder::open(&cluster, &loaded, &mut options, full_scan).await;
        let deployer = Deployer::new(cluster.client, options);
        let owned = deployer
            .owned(&loaded.manifest, &|event| bar.event(event))
            .await;
        bar.finish();
        Ok((owned?, deployer.requests()))
    })?;
    let owned = &inventory.objects;
    let in_manifest = |id: &ObjectId| loaded.manifest.iter().any(|o| o.id() == id);
    if args.output.json() {
        output::print(&ListReport {
            items: owned
                .iter()
                .map(|o| OwnedItem::from(o).in_manifest(in_manifest(&o.id)))
                .collect(),
            blind: &inventory.blind,
            requests,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        for object in owned {
            let orphan = if in_manifest(&object.id) {
                ""
            } else {
                "  (orphan)"
            };
            let managed = if object.managed {
                ""
            } else {
                "  (not applied by capstan)"
            };
            writeln!(out, "{}{orphan}{managed}", object.id)?;
        }
        writeln!(out, "{} objects labelled {}", owned.len(), label.selector())?;
        crate::show::write_blind(&mut out, &inventory.blind)?;
    }
    Ok(ExitCode::Success)
}

/// The health of each object of the stage; exits 1 when any is not ready.
pub(crate) fn status(args: &StatusArgs) -> Result<ExitCode, Failure> {
    if let Some(fleet) =
        crate::fleet::resolve(&args.fleet, &args.inspect.stage, &args.inspect.cluster)?
    {
        let json = args.inspect.output.json();
        return crate::fleet::check(&fleet, &args.fleet, json, None, &crate::fleet::Status);
    }
    let args = &args.inspect;
    let loaded = args.stage.load()?;
    let (status, requests) = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let deployer = Deployer::new(cluster.client, stage_options(&loaded));
        let status = deployer.status(&loaded.manifest).await?;
        Ok((status, deployer.requests()))
    })?;
    let healthy = status.iter().all(|s| s.health == Health::Ready);
    if args.output.json() {
        output::print(&StatusReport {
            ready: healthy,
            items: status.iter().map(HealthItem::from).collect(),
            requests,
        })?;
    } else {
        let mut out = std::io::stdout().lock();
        for object in &status {
            let message = object
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            writeln!(
                out,
                "{:<12} {}{message}",
                format!("{:?}", object.health),
                object.id
            )?;
        }
    }
    Ok(if healthy {
        ExitCode::Success
    } else {
        ExitCode::Differences
    })
}

/// Deletes everything carrying the discriminator, behind the prune guards.
pub(crate) fn delete(args: &DeleteArgs) -> Result<ExitCode, Failure> {
    let args = &args.remove;
    let loaded = args.stage.load()?;
    loaded.manifest.label().context(
        "refusing to delete without a discriminator label (pass --discriminator with -f)",
    )?;
    let options = args.apply.options(&loaded);
    let bar = Bar::new();
    let (owned, deletions, requests) = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let mut deployer = Deployer::new(cluster.client.clone(), options);
        if !args.dry_run {
            deployer = locked(deployer, &cluster, &loaded, &args.apply).await?;
        }
        let result = delete_locked(&deployer, &cluster, &loaded, args, &bar).await;
        release(&mut deployer).await;
        let (owned, deletions) = result?;
        Ok((owned, deletions, deployer.requests()))
    })?;
    let failed = deletions
        .iter()
        .flatten()
        .filter(|d| d.result.is_err())
        .count();
    if args.output.json() {
        output::print(&DeleteReport {
            dry_run: args.dry_run,
            items: owned.iter().map(OwnedItem::from).collect(),
            deleted: deletions.iter().flatten().map(Into::into).collect(),
            requests,
        })?;
    } else {
        match &deletions {
            None => crate::show::orphans(&owned, args.kept.view(&loaded))?,
            Some(deletions) => {
                let mut out = std::io::stdout().lock();
                crate::show::write_deletions(&mut out, deletions)?;
                let deleted = deletions.iter().filter(|d| d.deleted()).count();
                writeln!(
                    out,
                    "{deleted} deleted, {} already gone, {failed} failed",
                    deletions.len() - deleted - failed
                )?;
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// The part of `capstan delete` that runs under the lock: what the stage owns, then, confirmed,
/// its deletion.
async fn delete_locked(
    deployer: &Deployer,
    cluster: &Cluster,
    loaded: &Loaded,
    args: &RemoveArgs,
    bar: &Bar,
) -> anyhow::Result<(Vec<Owned>, Option<Vec<Deletion>>)> {
    let progress = |event: capstan_apply::Event<'_>| bar.event(event);
    let owned = deployer.owned(&loaded.manifest, &progress).await;
    bar.finish();
    let owned = owned?.objects;
    let deletes = owned.iter().any(|o| o.will_delete());
    if args.dry_run || !deletes {
        return Ok((owned, None));
    }
    if !args.output.json() {
        crate::show::orphans(&owned, args.kept.view(loaded))?;
    }
    if !args.yes
        && !confirm_change(&format!(
            "Delete these objects from context {:?}?",
            cluster.context
        ))
    {
        anyhow::bail!(capstan_apply::Error::NotConfirmed);
    }
    let deletions = deployer.delete(&owned, &progress).await;
    bar.finish();
    Ok((owned, Some(deletions?)))
}

/// Why an object is kept, in words.
pub(crate) fn keep_text(keep: &Keep) -> String {
    match keep {
        Keep::Owned(owner) => format!("owned by {owner}"),
        Keep::Protected(annotation) => format!("protected by {annotation}"),
        Keep::NotManaged => "never applied by capstan (--force-prune deletes it)".to_owned(),
        Keep::Deleting => "already being deleted".to_owned(),
        Keep::HandedOff { to } => format!("handed off to {to}, which owns it now"),
        Keep::HoldsManifestObjects => "holds objects of the stage".to_owned(),
        Keep::DefinesManifestKind => "defines a kind the stage uses".to_owned(),
        Keep::OwnedElsewhere { recorded, ours } => format!(
            "its ownership record names {recorded}, not {}",
            ours.as_deref()
                .unwrap_or("this run (which has no project stage)")
        ),
        Keep::AmbiguousLegacyLabel { value } => format!(
            "written before ownership records, with discriminator {value:?}, which another \
             project's stage could have had too (--force-prune deletes it)"
        ),
        Keep::NamespaceNotEmpty { holds, more } => format!(
            "deleting it would delete what it holds: {} (--force-cascade-delete deletes them)",
            named(holds, *more)
        ),
        Keep::DefinitionInUse { holds, more } => format!(
            "deleting it would delete its custom resources: {} (--force-cascade-delete deletes \
             them)",
            named(holds, *more)
        ),
        Keep::Unverified(message) => message.clone(),
        _ => format!("{keep:?}"),
    }
}

/// A few objects by name, and how many more there are.
fn named(holds: &[ObjectId], more: usize) -> String {
    let mut text = holds
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}
