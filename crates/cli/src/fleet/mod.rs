//! Fleets: one stage on many targets of `capstan.yaml` at once, each cluster isolated from
//! the others' failures, with one table, one JSON summary and one exit code.
//!
//! `deploy`, `diff`, `status` and `drift` come here when target flags are given or the stage
//! lists `targets:`. Every per-target piece of work goes through [`each`]: bounded by
//! `--parallel`, cut off by `--target-timeout`, its phase shown on the [`Board`]. Read-only
//! commands are a [`Check`] (`diff`, `status`, `drift`), deploys have their own flow in
//! `deploy.rs` (plan everywhere, confirm once, apply in waves).

mod args;
mod board;
mod check;
mod deploy;
mod report;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use capstan_kube::ConnectRequest;
use capstan_manifest::{Project, Stage, Target, TargetSelector};
use futures::StreamExt as _;

use crate::cluster::{Cluster, ClusterArgs};
use crate::stage::{Loaded, StageArgs, open_project};

pub(crate) use args::{FleetArgs, WaveArgs};
pub(crate) use board::{Board, Counts, Phase, Row};
pub(crate) use check::{Check, Diff, Status, check};
pub(crate) use deploy::deploy;

/// A stage on its targets: each target, and the stage loaded once per distinct set of
/// variables and discriminator.
pub(crate) struct Fleet {
    pub(crate) stage: String,
    pub(crate) members: Vec<Member>,
    pub(crate) loads: Vec<Loaded>,
}

/// One target of the fleet.
pub(crate) struct Member {
    pub(crate) target: Target,
    /// Which of [`Fleet::loads`] it deploys.
    pub(crate) load: usize,
}

impl Fleet {
    pub(crate) fn loaded(&self, member: &Member) -> &Loaded {
        &self.loads[member.load]
    }

    /// The table's first rows: every target, pending.
    pub(crate) fn board(&self, json: bool) -> Board {
        Board::new(
            self.members
                .iter()
                .map(|m| (m.target.name().to_owned(), m.target.context().to_owned()))
                .collect(),
            !json,
        )
    }
}

/// The fleet the command line asks for: `None` when it names no targets and the stage lists
/// none, so that a single-cluster project works exactly as before.
///
/// # Errors
///
/// Target flags without a project stage, unknown targets, a selection outside the stage's
/// `targets`, and the errors of loading the stage.
pub(crate) fn resolve(
    args: &FleetArgs,
    stage_args: &StageArgs,
    cluster: &ClusterArgs,
) -> anyhow::Result<Option<Fleet>> {
    let flags = !args.target.is_empty() || args.targets.is_some() || args.all_targets;
    if !flags && stage_args.files() {
        return Ok(None);
    }
    let project = match open_project(stage_args.project()) {
        Ok(project) => project,
        // Without target flags the ordinary path reports a missing project its own way.
        Err(_) if !flags => return Ok(None),
        Err(error) => return Err(error),
    };
    let stage = match (stage_args.stage(), project.stages()) {
        (Some(name), _) => project.stage(name)?,
        (None, [only]) => only,
        (None, _) if !flags => return Ok(None),
        (None, _) => anyhow::bail!(
            "{}: choose a stage with --stage for the targets",
            project.file().display()
        ),
    };
    let chosen = match (&args.target, &args.targets, args.all_targets) {
        (names, _, _) if !names.is_empty() => Some(TargetSelector::Names(names.clone())),
        (_, Some(selector), _) => Some(selector.clone()),
        (_, _, true) => None,
        _ => match stage.targets() {
            Some(selector) => {
                // clap refuses --context beside the target flags; here the stage chose them.
                if let Some(context) = cluster.context() {
                    anyhow::bail!(
                        "stage {} goes to its `targets`, each with its own context: choose \
                         among them with --target instead of --context {context:?}",
                        stage.name()
                    );
                }
                Some(selector.clone())
            }
            None => return Ok(None),
        },
    };
    let invalid = |message: String| anyhow::anyhow!("{}: {message}", project.file().display());
    let mut picked = match &chosen {
        Some(selector) => selector.select(project.targets()).map_err(invalid)?,
        None if project.targets().is_empty() => {
            return Err(invalid(
                "--all-targets: the project lists no `targets`".to_owned(),
            ));
        }
        None => project.targets().iter().collect(),
    };
    // A stage's context is binding: targets named on the command line must be that cluster.
    if let Some(context) = stage.context()
        && let Some(other) = picked.iter().find(|t| t.context() != context)
    {
        return Err(invalid(format!(
            "stage {} deploys to context {context:?}, but target {} is context {:?}",
            stage.name(),
            other.name(),
            other.context()
        )));
    }
    if let Some(own) = stage.targets() {
        let allowed = own.select(project.targets()).map_err(invalid)?;
        if let Some(outside) = picked.iter().find(|t| !allowed.contains(t)) {
            let names: Vec<&str> = allowed.iter().map(|t| t.name()).collect();
            return Err(invalid(format!(
                "stage {} does not go to target {} (its targets: {})",
                stage.name(),
                outside.name(),
                names.join(", ")
            )));
        }
        if args.all_targets {
            picked = allowed;
        }
    }
    Ok(Some(load(&project, stage, &picked, stage_args)?))
}

/// Loads the stage once per distinct (discriminator, variables): targets that share both
/// share the rendered manifests.
fn load(
    project: &Project,
    stage: &Stage,
    picked: &[&Target],
    stage_args: &StageArgs,
) -> anyhow::Result<Fleet> {
    let selection = stage_args.selection();
    let mut keys: Vec<(Option<&str>, &BTreeMap<String, String>)> = Vec::new();
    let mut loads = Vec::new();
    let mut members = Vec::with_capacity(picked.len());
    for target in picked {
        let key = (target.discriminator(), target.variables());
        let load = match keys.iter().position(|k| *k == key) {
            Some(index) => index,
            None => {
                let on_target = stage
                    .for_target(target)
                    .map_err(|message| anyhow::anyhow!("target {}: {message}", target.name()))?;
                let manifest = stage_args.render(project, &on_target).with_context(|| {
                    format!("stage {} for target {}", stage.name(), target.name())
                })?;
                let mut loaded = Loaded::of_stage(project, &on_target, manifest);
                // Each target names its own context; the stage's was refused above.
                loaded.context = None;
                loaded.selection.clone_from(&selection);
                loads.push(loaded);
                keys.push(key);
                loads.len() - 1
            }
        };
        members.push(Member {
            target: (*target).clone(),
            load,
        });
    }
    Ok(Fleet {
        stage: stage.name().to_owned(),
        members,
        loads,
    })
}

/// The client of one target: its context (binding, as a stage's is) from its kubeconfig.
pub(crate) async fn connect(target: &Target) -> anyhow::Result<Cluster> {
    let context = Some(target.context().to_owned());
    let request = ConnectRequest::default()
        .context(context.clone())
        .stage_context(context)
        .kubeconfig(target.kubeconfig().map(PathBuf::from));
    Ok(capstan_kube::connect(&request, &|_| {}).await?)
}

/// How the targets are worked on: how many at once, how long each may take.
#[derive(Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) parallel: usize,
    pub(crate) timeout: Duration,
}

impl From<&FleetArgs> for Limits {
    fn from(args: &FleetArgs) -> Self {
        Self {
            parallel: usize::from(args.parallel),
            timeout: args.target_timeout,
        }
    }
}

/// Runs `work` for each `(position, input)`, at most `limits.parallel` at once, each cut off
/// after `limits.timeout`; results come back in input order. A target whose work fails is
/// marked failed on the board; the others go on. With `stop`, no target starts once it says
/// so (it is asked as each one is about to start): those are marked not attempted and left
/// out of the results.
pub(crate) async fn each<S, T, F, Fut>(
    inputs: impl IntoIterator<Item = (usize, S)>,
    limits: Limits,
    board: &Board,
    stop: &dyn Fn() -> bool,
    work: F,
) -> Vec<(usize, T)>
where
    F: Fn(usize, S) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let work = &work;
    let results: Vec<Option<(usize, T)>> = futures::stream::iter(inputs)
        .map(|(position, input)| async move {
            if stop() {
                board.update(position, |row| row.phase = Phase::NotAttempted);
                return None;
            }
            let started = Instant::now();
            let result = tokio::time::timeout(limits.timeout, work(position, input)).await;
            board.update(position, |row| row.took += started.elapsed());
            let error = match result {
                Ok(Ok(value)) => return Some((position, value)),
                Ok(Err(error)) => format!("{error:#}"),
                Err(_) => {
                    let phase = board.rows()[position].phase;
                    format!(
                        "no answer within {}s (--target-timeout), {}",
                        limits.timeout.as_secs(),
                        phase.word()
                    )
                }
            };
            board.fail(position, error);
            None
        })
        .buffered(limits.parallel)
        .collect()
        .await;
    results.into_iter().flatten().collect()
}
