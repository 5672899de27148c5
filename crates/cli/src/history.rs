//! `capstan history` and `history show`, and what a deploy asks of the stage's history: the
//! inventory that narrows its prune scan before, the record of what it did after.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;

use capstan_apply::{Action, Deployment, Options, ScanScope};
use capstan_history::{
    Counts, History, Inventory, Revision, Run, RunResult, StoredObject, Summary, Target,
};
use capstan_manifest::{History as Limits, Manifest, ObjectId, Project, Stage};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs, block_on};
use crate::output::{self, OutputArgs};
use crate::stage::{Loaded, open_project};
use crate::{ExitCode, Failure};

/// List a stage's deployment history (kept in its cluster), or show one revision
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct HistoryArgs {
    #[command(subcommand)]
    command: Option<HistoryCommand>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    Show(ShowArgs),
}

/// Show one revision: its summary and objects, or a diff against the live state or another
/// revision
#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The revision
    pub(crate) revision: u64,
    /// Compare with the live state (`live`: what rolling back to it would change) or with
    /// another revision (a number)
    #[arg(long, value_name = "live|REV")]
    pub(crate) diff: Option<String>,
    #[command(flatten)]
    pub(crate) common: Common,
}

#[derive(Debug, Args)]
pub(crate) struct Common {
    #[command(flatten)]
    pub(crate) at: StageRef,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// A project stage, named without loading its manifests.
#[derive(Debug, Args)]
pub(crate) struct StageRef {
    /// The project folder or its capstan.yaml [default: the nearest capstan.yaml upward]
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
    /// The stage [default: the project's only stage]
    #[arg(long, short = 's', value_name = "NAME")]
    stage: Option<String>,
}

impl StageRef {
    /// The project and the stage.
    pub(crate) fn open(&self) -> anyhow::Result<(Project, Stage)> {
        let project = open_project(self.project.as_deref())?;
        let stage = match (&self.stage, project.stages()) {
            (Some(name), _) => project.stage(name)?.clone(),
            (None, [only]) => only.clone(),
            (None, _) => anyhow::bail!("{}: choose a stage with --stage", project.file().display()),
        };
        Ok((project, stage))
    }
}

/// Where `stage` keeps its history.
pub(crate) fn target(stage: &Stage) -> Target {
    Target::new(stage.state_namespace(), stage.project(), stage.name())
}

pub(crate) fn run(args: &HistoryArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        None => list(&args.common),
        Some(HistoryCommand::Show(show)) => crate::rollback::show(show),
    }
}

fn list(common: &Common) -> Result<ExitCode, Failure> {
    let (_, stage) = common.at.open()?;
    let (revisions, requests) = block_on(async {
        let cluster = common.cluster.connect(stage.context()).await?;
        let history = History::new(cluster.client, target(&stage));
        Ok((history.revisions().await?, history.requests()))
    })?;
    if common.output.json() {
        output::print(&Items {
            items: &revisions,
            requests,
        })?;
        return Ok(ExitCode::Success);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{:>4}  {:<20}  {:<16}  {:<12}  {:>7}  {:>7}  {:>6}  RESULT",
        "REV", "TIME", "USER", "COMMIT", "CREATED", "UPDATED", "PRUNED"
    )?;
    for s in &revisions {
        let commit = s.commit.as_deref().unwrap_or("-");
        let result = describe(s);
        writeln!(
            out,
            "{:>4}  {:<20}  {:<16}  {:<12}  {:>7}  {:>7}  {:>6}  {result}",
            s.revision,
            s.time,
            s.user.as_deref().unwrap_or("-"),
            commit.get(..12).unwrap_or(commit),
            s.counts.created,
            s.counts.updated,
            s.counts.pruned,
        )?;
    }
    if revisions.is_empty() {
        writeln!(out, "stage {} has no history yet", stage.name())?;
    }
    Ok(ExitCode::Success)
}

/// `succeeded`, `failed`, with `rollback to N` when it was one.
pub(crate) fn describe(summary: &Summary) -> String {
    let result = match summary.result {
        RunResult::Succeeded => "succeeded",
        _ => "failed",
    };
    match summary.rollback_of {
        Some(to) => format!("{result} (rollback to {to})"),
        None => result.to_owned(),
    }
}

/// `{"items": [...], "requests": N}`.
#[derive(Serialize)]
pub(crate) struct Items<'a, T: Serialize> {
    pub(crate) items: &'a [T],
    pub(crate) requests: usize,
}

/// The stored object's identity.
pub(crate) fn stored_id(object: &StoredObject) -> ObjectId {
    let text = |pointer: &str| object.value.pointer(pointer).and_then(|v| v.as_str());
    ObjectId::new(
        text("/apiVersion").unwrap_or_default(),
        text("/kind").unwrap_or_default(),
        text("/metadata/namespace"),
        text("/metadata/name").unwrap_or_default(),
    )
}

/// The history a deploy of a project stage keeps, and what it knew before the deploy.
pub(crate) struct Recorder {
    history: History,
    limits: Limits,
    user: Option<String>,
    commit: Option<String>,
    latest: Option<Revision>,
}

impl Recorder {
    /// The history of the loaded stage, with its latest revision read. `None` for files given
    /// with `-f` (no project, no stage) and for `history: {keep: 0}`. The latest revision's
    /// inventory becomes `options`' scan scope unless `full_scan`; a history that cannot be
    /// read is a warning, and then everything is scanned.
    pub(crate) async fn open(
        cluster: &Cluster,
        loaded: &Loaded,
        options: &mut Options,
        full_scan: bool,
    ) -> Option<Self> {
        let (project, stage) = loaded.owner.as_deref()?.split_once('/')?;
        let limits = loaded
            .root
            .as_deref()
            .and_then(|root| Project::open(root).ok())
            .map(|p| p.history())
            .unwrap_or_default();
        if !limits.enabled() {
            return None;
        }
        let target = Target::new(&loaded.state_namespace, project, stage);
        let history = History::new(cluster.client.clone(), target);
        let latest = match history.latest().await {
            Ok(latest) => latest,
            Err(error) => {
                warn(&format!(
                    "{:#}; scanning every resource type",
                    anyhow::Error::from(error).context("cannot read the stage's history")
                ));
                None
            }
        };
        if let Some(latest) = &latest
            && !full_scan
        {
            let inventory = latest.inventory();
            options.scan_scope = Some(ScanScope::new(
                inventory.kinds.clone(),
                inventory.namespaces.clone(),
            ));
        }
        let commit_key = format!("{}commit", capstan_apply::STAMP_PREFIX);
        Some(Self {
            history,
            limits,
            user: kube_user(&cluster.context),
            commit: options.stamp.get(&commit_key).cloned(),
            latest,
        })
    }

    /// Says when the latest revision rolled the stage back and `manifest` is not what it
    /// deployed: the live state is the rollback's, not the project's.
    pub(crate) async fn note_rollback(&self, manifest: &Manifest) {
        let Some(latest) = &self.latest else { return };
        let Some(to) = latest.summary.rollback_of else {
            return;
        };
        if !self.history.holds(latest, manifest).await.unwrap_or(false) {
            let _ = writeln!(
                std::io::stderr(),
                "note: revision {} rolled the stage back to revision {to}; the live state is \
                 that revision's, not the current manifests'",
                latest.summary.revision
            );
        }
    }

    /// Records what `deployment` did (nothing for a run that changed nothing and deployed the
    /// latest revision's objects); a warning when that failed, which the caller prints after
    /// the deploy's result: the deploy's own result stands either way, and the next deploy
    /// records its state again.
    pub(crate) async fn record(
        &self,
        manifest: &Manifest,
        deployment: &Deployment<'_>,
        rollback_of: Option<u64>,
    ) -> Option<String> {
        let counts = counts(deployment);
        let summary = Summary {
            revision: 0,
            time: now(),
            user: self.user.clone(),
            commit: self.commit.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            counts: Counts {
                objects: manifest.len(),
                ..counts
            },
            result: if deployment.succeeded() {
                RunResult::Succeeded
            } else {
                RunResult::Failed
            },
            rollback_of,
            bytes: 0,
        };
        let wrote = counts.created + counts.updated + counts.pruned > 0;
        let inventory = inventory(deployment, manifest, self.latest.as_ref());
        let run = Run::new(manifest, summary, inventory, wrote);
        match self.history.record(run, self.limits).await {
            Ok(_) => None,
            Err(error) => Some(format!(
                "{:#}",
                anyhow::Error::from(error).context(
                    "the deploy's result stands, but its history record could not be written \
                     (the next deploy records the stage again)"
                )
            )),
        }
    }
}

/// Prints a warning on standard error.
pub(crate) fn warn(message: &str) {
    let _ = writeln!(std::io::stderr(), "warning: {message}");
}

/// The user of the kubeconfig context, as the kubeconfig names it.
fn kube_user(context: &str) -> Option<String> {
    let config = kube::config::Kubeconfig::read().ok()?;
    config
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .user
        .clone()
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn counts(deployment: &Deployment<'_>) -> Counts {
    let mut counts = Counts::default();
    for outcome in &deployment.outcomes {
        match (&outcome.result, outcome.action) {
            (Err(_), _) => counts.failed += 1,
            (Ok(()), Action::Create) => counts.created += 1,
            (Ok(()), Action::Unchanged) => counts.unchanged += 1,
            (Ok(()), _) => counts.updated += 1,
        }
    }
    if deployment.outcomes.is_empty() {
        counts.failed += deployment.plan.errors().count();
    }
    if let Some(Ok(deletions)) = &deployment.prune {
        counts.pruned = deletions.iter().filter(|d| d.deleted()).count();
        counts.failed += deletions.iter().filter(|d| d.result.is_err()).count();
    }
    counts
}

/// The types and namespaces the stage uses after the run: the manifests', and those of
/// orphans that are still there. Without a complete prune scan nothing is known about the
/// orphans, so the previous inventory carries over.
fn inventory(
    deployment: &Deployment<'_>,
    manifest: &Manifest,
    latest: Option<&Revision>,
) -> Inventory {
    let mut kinds: Vec<(String, String)> = Vec::new();
    let mut namespaces: Vec<String> = Vec::new();
    let mut add = |id: &ObjectId| {
        kinds.push((id.api_version(), id.kind().to_owned()));
        namespaces.extend(id.namespace().map(str::to_owned));
    };
    manifest.iter().for_each(|o| add(o.id()));
    let deleted: BTreeMap<&ObjectId, bool> = match &deployment.prune {
        Some(Ok(deletions)) => deletions.iter().map(|d| (&d.id, d.deleted())).collect(),
        _ => BTreeMap::new(),
    };
    let plan = &deployment.plan;
    match plan.orphans() {
        Some(orphans) if plan.blind().is_empty() => orphans
            .iter()
            .filter(|o| !deleted.get(&o.id).copied().unwrap_or(false))
            .for_each(|o| add(&o.id)),
        _ => {
            if let Some(latest) = latest {
                kinds.extend(latest.inventory().kinds.iter().cloned());
                namespaces.extend(latest.inventory().namespaces.iter().cloned());
            }
        }
    }
    Inventory::new(kinds, namespaces)
}
