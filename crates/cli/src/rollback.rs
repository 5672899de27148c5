//! `capstan rollback` and `capstan history show`: a recorded revision back as manifests,
//! planned and applied through the same path as `deploy`, with neither git nor the renderer.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use capstan_apply::{DeployRequest, Deployer, Plan};
use capstan_history::{History, Instead, Replay, Revision, RunResult, Summary};
use capstan_manifest::{Manifest, ObjectId, Project, Stage};
use clap::Args;
use serde::Serialize;

use crate::cluster::{ClusterArgs, block_on};
use crate::deploy::{ApplyArgs, Preview, Run, decrypting, finish, warn_unverified};
use crate::history::{Items, Recorder, ShowArgs, StageRef, describe, stored_id, target, warn};
use crate::output::{self, OutputArgs};
use crate::progress::Bar;
use crate::show::{self, KeptArgs};
use crate::stage::Loaded;
use crate::{ExitCode, Failure};

/// Put a stage back to a revision of its history: a plan from the live state to the
/// revision's objects, confirmation, then apply and prune as `deploy` does (lock,
/// verification, guards); recorded as a new revision. Needs neither git nor the renderer
#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    at: StageRef,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    apply: ApplyArgs,

    /// The revision to go back to [default: the newest successful revision before the latest]
    #[arg(long, value_name = "REV")]
    to: Option<u64>,

    /// Also delete CustomResourceDefinitions, PersistentVolumeClaims and Namespaces the
    /// revision lacks (a rollback keeps them otherwise: their deletion takes data along)
    #[arg(long)]
    allow_data_deletion: bool,

    /// Change nothing: show what the rollback would create, update and delete
    #[arg(long)]
    dry_run: bool,

    /// Do not ask for confirmation (required when standard input is not a terminal)
    #[arg(long, short = 'y')]
    yes: bool,

    #[command(flatten)]
    kept: KeptArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// The revision a rollback goes to when `--to` names none.
fn default_target(revisions: &[Summary]) -> anyhow::Result<u64> {
    let (latest, earlier) = revisions
        .split_last()
        .ok_or_else(|| anyhow::anyhow!("the stage has no history to roll back to"))?;
    earlier
        .iter()
        .rev()
        .find(|s| s.result == RunResult::Succeeded)
        .map(|s| s.revision)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no successful revision before revision {}: name one with --to",
                latest.revision
            )
        })
}

/// The stage with a revision's objects as its manifests.
fn replayed(project: &Project, stage: &Stage, manifest: Manifest, revision: u64) -> Loaded {
    let mut loaded = Loaded::of_stage(project, stage, manifest);
    loaded.what = format!("stage {} at revision {revision}", stage.name());
    loaded.prune = true;
    loaded
}

/// Says which Secrets the rollback cannot restore, and what it does instead.
fn warn_unrestorable(replay: &Replay) {
    for secret in &replay.unrestorable {
        let keys = secret.keys.join(", ");
        let instead = match secret.instead {
            Instead::KeepsLiveValues => "they keep their live values",
            _ => "the Secret is gone and is not recreated",
        };
        warn(&format!(
            "{}: the history holds only hashes of plain Secret values, and the live Secret no \
             longer has the recorded values of {keys}: {instead}",
            secret.id
        ));
    }
}

pub(crate) fn rollback(args: &RollbackArgs) -> Result<ExitCode, Failure> {
    let (project, stage) = args.at.open()?;
    let json = args.output.json();
    let started = Instant::now();
    let prompt = Cell::new(Duration::ZERO);
    let bar = Bar::new();
    let code = block_on(async {
        let cluster = args.cluster.connect(stage.context()).await?;
        let history = History::new(cluster.client.clone(), target(&stage));
        let to = match args.to {
            Some(to) => to,
            None => default_target(&history.revisions().await?)?,
        };
        let revision: Revision = history.revision(to).await?;
        let replay = history.replay(&revision, stage.label().clone()).await?;
        warn_unrestorable(&replay);
        let loaded = replayed(&project, &stage, replay.manifest, to);
        let mut options = args.apply.options(&loaded);
        options.keep_data_kinds = !args.allow_data_deletion;
        let commit = format!("{}commit", capstan_apply::STAMP_PREFIX);
        match (
            &revision.summary.commit,
            options.stamp.contains_key(&commit),
        ) {
            // The objects are that commit's again, whatever the working tree holds now.
            (Some(recorded), true) => {
                options.stamp.insert(commit, recorded.clone());
            }
            _ => {
                options.stamp.remove(&commit);
            }
        }
        let recorder = Recorder::open(&cluster, &loaded, &mut options, args.apply.full_scan).await;
        let (options, secrets) = decrypting(options, &loaded);
        let view = args.kept.view(&loaded);
        let run = Run {
            cluster: &cluster,
            loaded: &loaded,
            apply: &args.apply,
            secrets: &secrets,
            request: DeployRequest::default().prune(true).dry_run(args.dry_run),
            dry_run: args.dry_run,
            yes: args.yes,
            view: (!json).then_some(view),
            bar: &bar,
            prompt: &prompt,
        };
        let (deployment, warning) = run.deploy(options, recorder.as_ref(), Some(to)).await?;
        let plan = |plan: &Plan<'_>| show::plan(plan, true, view);
        let preview = args.dry_run.then_some(&plan as Preview<'_>);
        let took = started.elapsed().saturating_sub(prompt.get());
        let code =
            finish(&deployment, json, args.dry_run, took, preview).map_err(|failure| failure.0)?;
        if let Some(warning) = warning {
            warn(&warning);
        }
        Ok(code)
    })?;
    Ok(code)
}

/// `capstan history show REV`.
pub(crate) fn show(args: &ShowArgs) -> Result<ExitCode, Failure> {
    let common = &args.common;
    let (project, stage) = common.at.open()?;
    let json = common.output.json();
    block_on(async {
        let cluster = common.cluster.connect(stage.context()).await?;
        let history = History::new(cluster.client.clone(), target(&stage));
        let revision = history.revision(args.revision).await?;
        match args.diff.as_deref() {
            None => {
                let objects = history.objects(&revision).await?;
                let ids: Vec<ObjectId> = objects.iter().map(stored_id).collect();
                print_revision(&revision, &ids, json, history.requests())?;
                Ok(ExitCode::Success)
            }
            Some("live") => {
                let replay = history.replay(&revision, stage.label().clone()).await?;
                warn_unrestorable(&replay);
                let loaded = replayed(&project, &stage, replay.manifest, args.revision);
                let mut options = crate::deploy::stage_options(&loaded);
                options.keep_data_kinds = true;
                // Only for the scan scope: the latest revision's inventory, as a deploy uses.
                Recorder::open(&cluster, &loaded, &mut options, false).await;
                let (options, secrets) = decrypting(options, &loaded);
                let bar = Bar::new();
                let deployer = Deployer::new(cluster.client.clone(), options);
                let plan = deployer
                    .plan(&loaded.manifest, true, &|event| bar.event(event))
                    .await;
                bar.finish();
                let plan = plan?;
                warn_unverified(&secrets, &loaded.what);
                if json {
                    output::plan(&plan)?;
                } else {
                    let kept = KeptArgs { show_kept: false };
                    show::plan(&plan, true, kept.view(&loaded))?;
                }
                Ok(match (plan.errors().next(), plan.has_changes()) {
                    (Some(_), _) => ExitCode::Failure,
                    (None, true) => ExitCode::Differences,
                    (None, false) => ExitCode::Success,
                })
            }
            Some(other) => {
                let other: u64 = other.parse().map_err(|_| {
                    anyhow::anyhow!("--diff takes `live` or a revision number, not {other:?}")
                })?;
                let theirs = history.revision(other).await?;
                let changes = compare(
                    &history.objects(&theirs).await?,
                    &history.objects(&revision).await?,
                );
                let shown = Shown {
                    from: other,
                    to: args.revision,
                    requests: history.requests(),
                };
                print_changes(&changes, &shown, json)?;
                Ok(if changes.is_empty() {
                    ExitCode::Success
                } else {
                    ExitCode::Differences
                })
            }
        }
    })
    .map_err(Failure::from)
}

/// One revision for `history show`.
#[derive(Serialize)]
struct RevisionReport<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    items: Vec<ObjectItem<'a>>,
    requests: usize,
}

#[derive(Serialize)]
struct ObjectItem<'a> {
    object: &'a ObjectId,
}

fn print_revision(
    revision: &Revision,
    ids: &[ObjectId],
    json: bool,
    requests: usize,
) -> std::io::Result<()> {
    let summary = &revision.summary;
    if json {
        return output::print(&RevisionReport {
            summary,
            items: ids.iter().map(|object| ObjectItem { object }).collect(),
            requests,
        });
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "revision {}: {}", summary.revision, describe(summary))?;
    writeln!(out, "time:    {}", summary.time)?;
    writeln!(out, "user:    {}", summary.user.as_deref().unwrap_or("-"))?;
    writeln!(out, "commit:  {}", summary.commit.as_deref().unwrap_or("-"))?;
    writeln!(out, "capstan: {}", summary.version)?;
    let c = &summary.counts;
    writeln!(
        out,
        "counts:  {} objects; {} created, {} updated, {} unchanged, {} pruned, {} failed",
        c.objects, c.created, c.updated, c.unchanged, c.pruned, c.failed
    )?;
    for id in ids {
        writeln!(out, "  {id}")?;
    }
    Ok(())
}

/// How an object differs between two revisions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Serialize)]
struct ChangeItem {
    object: ObjectId,
    change: Change,
}

/// What changed from `before` to `after`, by identity and digest.
fn compare(
    before: &[capstan_history::StoredObject],
    after: &[capstan_history::StoredObject],
) -> Vec<ChangeItem> {
    let index = |objects: &[capstan_history::StoredObject]| -> BTreeMap<ObjectId, String> {
        objects
            .iter()
            .map(|o| (stored_id(o), o.digest.clone()))
            .collect()
    };
    let (before, after) = (index(before), index(after));
    let mut changes = Vec::new();
    for (id, digest) in &after {
        match before.get(id) {
            None => changes.push((id.clone(), Change::Added)),
            Some(old) if old != digest => changes.push((id.clone(), Change::Changed)),
            Some(_) => {}
        }
    }
    for id in before.keys().filter(|id| !after.contains_key(*id)) {
        changes.push((id.clone(), Change::Removed));
    }
    changes.sort();
    changes
        .into_iter()
        .map(|(object, change)| ChangeItem { object, change })
        .collect()
}

/// Which revisions `history show --diff` compared.
struct Shown {
    from: u64,
    to: u64,
    requests: usize,
}

fn print_changes(changes: &[ChangeItem], shown: &Shown, json: bool) -> std::io::Result<()> {
    let Shown { from, to, requests } = *shown;
    if json {
        return output::print(&Items {
            items: changes,
            requests,
        });
    }
    let mut out = std::io::stdout().lock();
    for item in changes {
        let word = match item.change {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        };
        writeln!(out, "{word:<8} {}", item.object)?;
    }
    writeln!(
        out,
        "{} objects differ from revision {from} to revision {to}",
        changes.len()
    )
}
