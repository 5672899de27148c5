//! `capstan list`, `status` and `delete`: what a discriminator owns on the cluster.

use std::io::Write as _;

use anyhow::Context as _;
use capstan_apply::{Deletion, Deployer, Health, Keep, Owned};
use capstan_manifest::ObjectId;
use clap::Args;
use serde_json::json;

use crate::cluster::{Cluster, ClusterArgs, block_on};
use crate::deploy::{RemoveArgs, locked, release, stage_options};
use crate::progress::Bar;
use crate::prompt::confirm_change;
use crate::show::{Output, print_json};
use crate::stage::{Loaded, StageArgs};
use crate::{ExitCode, Failure};

/// `capstan list` and `capstan status`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    cluster: ClusterArgs,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: Output,
}

/// Live objects carrying the stage's discriminator.
pub(crate) fn list(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let loaded = args.stage.load()?;
    let label = loaded
        .manifest
        .label()
        .context("no discriminator label to list by")?
        .clone();
    let bar = Bar::new();
    let inventory = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let owned = Deployer::new(cluster.client, stage_options(&loaded))
            .owned(&loaded.manifest, &|event| bar.event(event))
            .await;
        bar.finish();
        Ok(owned?)
    })?;
    let owned = &inventory.objects;
    let in_manifest = |id: &ObjectId| loaded.manifest.iter().any(|o| o.id() == id);
    match args.output {
        Output::Json => print_json(&json!(
            owned
                .iter()
                .map(
                    |o| json!({"object": o.id, "uid": o.uid, "managed": o.managed,
                "inManifest": in_manifest(&o.id), "keep": o.keep})
                )
                .collect::<Vec<_>>()
        ))?,
        Output::Text => {
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
    }
    Ok(ExitCode::Success)
}

/// The health of each object of the stage; exits 1 when any is not ready.
pub(crate) fn status(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let loaded = args.stage.load()?;
    let status = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        Ok(Deployer::new(cluster.client, stage_options(&loaded))
            .status(&loaded.manifest)
            .await?)
    })?;
    match args.output {
        Output::Json => print_json(&json!(status))?,
        Output::Text => {
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
    }
    let healthy = status.iter().all(|s| s.health == Health::Ready);
    Ok(if healthy {
        ExitCode::Success
    } else {
        ExitCode::Differences
    })
}

/// Deletes everything carrying the discriminator, behind the prune guards.
pub(crate) fn delete(args: &RemoveArgs) -> Result<ExitCode, Failure> {
    let loaded = args.stage.load()?;
    loaded.manifest.label().context(
        "refusing to delete without a discriminator label (pass --discriminator with -f)",
    )?;
    let options = args.apply.options(&loaded);
    let bar = Bar::new();
    let (owned, deletions) = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let mut deployer = Deployer::new(cluster.client.clone(), options);
        if !args.dry_run {
            deployer = locked(deployer, &cluster, &loaded, &args.apply).await?;
        }
        let result = delete_locked(&deployer, &cluster, &loaded, args, &bar).await;
        release(&mut deployer).await;
        result
    })?;
    let failed = deletions
        .iter()
        .flatten()
        .filter(|d| d.result.is_err())
        .count();
    match args.output {
        Output::Json => print_json(&json!({
            "objects": owned.iter().map(|o| json!({"object": o.id, "keep": o.keep})).collect::<Vec<_>>(),
            "deleted": deletions.iter().flatten().map(|d| json!({"object": d.id,
                "deleted": d.deleted(),
                "result": d.result.as_ref().ok(),
                "error": d.result.as_ref().err().map(ToString::to_string)})).collect::<Vec<_>>(),
        }))?,
        Output::Text => match &deletions {
            None => crate::show::orphans(&owned, loaded.selection.as_ref())?,
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
        },
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
    if args.output == Output::Text {
        crate::show::orphans(&owned, loaded.selection.as_ref())?;
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
