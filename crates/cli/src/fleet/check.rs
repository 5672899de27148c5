//! Read-only commands on a fleet: `diff`, `status` and `drift` are each a [`Check`], run on every
//! target by [`check`], which groups identical plans and sets the exit code.

use std::io::Write as _;

use capstan_apply::{Deployer, Health, ObjectStatus, Plan};

use super::report::{counts, fingerprint, group, heading, report};
use super::{Fleet, FleetArgs, Limits, Phase, Row, connect, each};
use crate::cluster::{Cluster, block_on};
use crate::deploy::{decrypting, stage_options, warn_unverified};
use crate::output;
use crate::show::{self, View};
use crate::stage::Loaded;
use crate::{ExitCode, Failure};

/// A command that looks at one target and changes nothing there. A new read-only fleet
/// command (such as `drift`) implements this and calls [`check`]; the fleet does the rest:
/// the targets, `--parallel`, `--target-timeout`, the table, the JSON summary, exit codes.
pub(crate) trait Check {
    /// What it found on one target; may borrow the target's manifests.
    type Report<'m>;

    /// Looks at the target behind `cluster`, returning the report and the API requests made.
    async fn check<'m>(
        &self,
        cluster: Cluster,
        loaded: &'m Loaded,
    ) -> anyhow::Result<(Self::Report<'m>, usize)>;

    /// Fills the target's row from the report: its phase ([`Phase::Planned`] or
    /// [`Phase::NotReady`] or [`Phase::Drifted`] make the exit code 1, [`Phase::Failed`] 2) and counts.
    fn row(&self, report: &Self::Report<'_>, row: &mut Row);

    /// The plan targets are grouped by, for a check that plans.
    fn plan<'r>(&self, report: &'r Self::Report<'_>) -> Option<&'r Plan<'r>>;

    /// The text of one target's report, for a check that does not plan.
    fn show(&self, target: &str, report: &Self::Report<'_>) -> std::io::Result<()>;
}

/// `capstan diff` on each target.
pub(crate) struct Diff {
    pub(crate) prune: bool,
}

/// `capstan status` on each target.
pub(crate) struct Status;

impl Check for Diff {
    type Report<'m> = Plan<'m>;

    async fn check<'m>(
        &self,
        cluster: Cluster,
        loaded: &'m Loaded,
    ) -> anyhow::Result<(Plan<'m>, usize)> {
        let (options, secrets) = decrypting(stage_options(loaded), loaded);
        let deployer = Deployer::new(cluster.client, options);
        let plan = deployer.plan(&loaded.manifest, self.prune, &|_| {}).await?;
        let what = format!("{} on context {}", loaded.what, cluster.context);
        warn_unverified(&secrets, &what);
        Ok((plan, deployer.requests()))
    }

    fn row(&self, plan: &Plan<'_>, row: &mut Row) {
        plan_row(plan, row);
    }

    fn plan<'r>(&self, plan: &'r Plan<'_>) -> Option<&'r Plan<'r>> {
        Some(plan)
    }

    fn show(&self, _: &str, _: &Plan<'_>) -> std::io::Result<()> {
        Ok(())
    }
}

impl Check for Status {
    type Report<'m> = Vec<ObjectStatus>;

    async fn check(
        &self,
        cluster: Cluster,
        loaded: &Loaded,
    ) -> anyhow::Result<(Vec<ObjectStatus>, usize)> {
        let deployer = Deployer::new(cluster.client, stage_options(loaded));
        let status = deployer.status(&loaded.manifest).await?;
        Ok((status, deployer.requests()))
    }

    fn row(&self, status: &Vec<ObjectStatus>, row: &mut Row) {
        let ready = status.iter().filter(|s| s.health == Health::Ready).count();
        row.ready = Some((ready, status.len()));
        row.phase = if ready == status.len() {
            Phase::Ready
        } else {
            Phase::NotReady
        };
    }

    fn plan<'r>(&self, _: &'r Vec<ObjectStatus>) -> Option<&'r Plan<'r>> {
        None
    }

    fn show(&self, target: &str, status: &Vec<ObjectStatus>) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for object in status.iter().filter(|s| s.health != Health::Ready) {
            let message = object
                .message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let line = format!("{target}: {:?} {}{message}", object.health, object.id);
            writeln!(out, "{}", capstan_manifest::escape_controls(&line))?;
        }
        Ok(())
    }
}

/// `stage full on target a`, for warnings about one target.
pub(crate) fn on_target(loaded: &Loaded, member: &super::Member) -> String {
    format!("{} on target {}", loaded.what, member.target.name())
}

/// A row from a target's plan: planned or unchanged, failed when objects cannot be applied.
pub(crate) fn plan_row(plan: &Plan<'_>, row: &mut Row) {
    row.plan = Some(counts(plan));
    row.phase = if plan.has_changes() {
        Phase::Planned
    } else {
        Phase::Unchanged
    };
    if let Some(error) = plan.errors().next() {
        let count = plan.errors().count();
        row.phase = Phase::Failed;
        row.error = Some(format!("{count} objects cannot be applied, first: {error}"));
    }
}

/// Shows the plans, each group of identical ones once, under a heading naming its targets.
pub(crate) fn show_groups(
    rows: &[Row],
    groups: &[(Vec<usize>, &Plan<'_>)],
    diffs: bool,
    view: View<'_>,
) -> std::io::Result<()> {
    for (positions, plan) in groups {
        let names: Vec<&str> = positions.iter().map(|&p| rows[p].target.as_str()).collect();
        writeln!(std::io::stdout(), "{}", heading(&names, groups.len()))?;
        show::plan(plan, diffs, view)?;
    }
    Ok(())
}

/// The groups of identical plans among `plans`.
pub(crate) fn plan_groups<'p, 'm>(
    plans: impl IntoIterator<Item = (usize, &'p Plan<'m>)>,
) -> Vec<(Vec<usize>, &'p Plan<'m>)> {
    let plans: Vec<(usize, &Plan<'m>)> = plans.into_iter().collect();
    let prints: Vec<(usize, String)> = plans
        .iter()
        .map(|(p, plan)| (*p, fingerprint(plan)))
        .collect();
    group(&prints)
        .into_iter()
        .filter_map(|positions| {
            let first = positions[0];
            let plan = plans.iter().find(|(p, _)| *p == first)?.1;
            Some((positions, plan))
        })
        .collect()
}

/// The exit code of a fleet: 2 when any target failed, else 1 when any differs or is not
/// ready, else 0.
pub(crate) fn exit_code(rows: &[Row]) -> ExitCode {
    if rows.iter().any(Row::failed) {
        ExitCode::Failure
    } else if rows
        .iter()
        .any(|row| matches!(row.phase, Phase::Planned | Phase::NotReady | Phase::Drifted))
    {
        ExitCode::Differences
    } else {
        ExitCode::Success
    }
}

/// Runs `check` on every target of `fleet` and reports.
pub(crate) fn check<C: Check>(
    fleet: &Fleet,
    args: &FleetArgs,
    json: bool,
    view: Option<View<'_>>,
    check: &C,
) -> Result<ExitCode, Failure> {
    let board = fleet.board(json);
    let limits = Limits::from(args);
    let reports = block_on(async {
        let members = fleet.members.iter().enumerate();
        Ok(
            each(members, limits, &board, &|| false, |position, member| {
                let board = &board;
                async move {
                    board.update(position, |row| row.phase = Phase::Planning);
                    let cluster = connect(&member.target).await?;
                    let (report, requests) = check.check(cluster, fleet.loaded(member)).await?;
                    board.update(position, |row| {
                        row.requests = requests;
                        check.row(&report, row);
                    });
                    Ok(report)
                }
            })
            .await,
        )
    })?;
    board.finish();
    let groups = plan_groups(
        reports
            .iter()
            .filter_map(|(position, report)| Some((*position, check.plan(report)?))),
    );
    let mut rows = board.rows();
    for (index, (positions, _)) in groups.iter().enumerate() {
        for &position in positions {
            rows[position].group = Some(index);
        }
    }
    if json {
        output::print(&report(&fleet.stage, true, &rows, &groups))?;
    } else {
        if let Some(view) = view {
            show_groups(&rows, &groups, true, view)?;
        }
        for (position, report) in &reports {
            check.show(&rows[*position].target, report)?;
        }
        board.print()?;
    }
    Ok(exit_code(&rows))
}
