//! `capstan deploy` on a fleet: plan every target under its own lock, show the plans once
//! (identical ones grouped), ask once, then apply wave by wave.

use std::io::Write as _;
use std::time::{Duration, Instant};

use capstan_apply::{Action, Deployer, Health, Plan};

use super::check::on_target;
use super::check::{exit_code, plan_groups, plan_row, show_groups};
use super::report::report;
use super::{Counts, Fleet, Limits, Member, Phase, connect, each};
use crate::cluster::block_on;
use crate::deploy::{DeployArgs, decrypting, locked, release, warn_unverified};
use crate::output;
use crate::prompt::confirm_change;
use crate::stage::Loaded;
use crate::{ExitCode, Failure};

/// One target, planned and holding its lock (unless a dry run).
struct Prepared<'m> {
    deployer: Deployer,
    plan: Plan<'m>,
    member: &'m Member,
    loaded: &'m Loaded,
}

/// How often `--wait` looks at the objects' health between waves.
const POLL: Duration = Duration::from_secs(2);

/// Deploys the stage to every target of `fleet`.
pub(crate) fn deploy(args: &DeployArgs, fleet: &Fleet) -> Result<ExitCode, Failure> {
    let json = args.output.json();
    let board = fleet.board(json);
    let limits = Limits::from(&args.fleet);
    let view = args.kept.view(&fleet.loads[0]);
    let mut rows = block_on(async {
        let mut slots = prepare(args, fleet, &board, limits).await;
        board.finish();
        let positions: Vec<Vec<usize>> = {
            let groups = groups(&slots);
            for (index, (positions, _)) in groups.iter().enumerate() {
                for &position in positions {
                    board.update(position, |row| row.group = Some(index));
                }
            }
            if !json {
                show_groups(&board.rows(), &groups, args.dry_run, view)?;
                warn_failed(&board.rows());
            }
            groups.into_iter().map(|(positions, _)| positions).collect()
        };
        let result = match args.dry_run {
            true => Ok(()),
            false => confirm_and_apply(args, fleet, &board, limits, &mut slots).await,
        };
        for prepared in slots.iter_mut().flatten() {
            release(&mut prepared.deployer).await;
        }
        result?;
        let rows = board.rows();
        if json {
            // The groups as they were planned and confirmed.
            let groups: Vec<(Vec<usize>, &Plan<'_>)> = positions
                .into_iter()
                .filter_map(|positions| {
                    let plan = &slots[positions[0]].as_ref()?.plan;
                    Some((positions, plan))
                })
                .collect();
            output::print(&report(&fleet.stage, args.dry_run, &rows, &groups))?;
        }
        Ok(rows)
    })?;
    if !json {
        board.print()?;
    }
    if args.dry_run {
        // A dry run that planned everywhere succeeded, changes or not.
        for row in &mut rows {
            if row.phase == Phase::Planned {
                row.phase = Phase::Unchanged;
            }
        }
    }
    Ok(exit_code(&rows))
}

/// The planned targets, identical plans grouped.
fn groups<'s, 'm>(slots: &'s [Option<Prepared<'m>>]) -> Vec<(Vec<usize>, &'s Plan<'m>)> {
    plan_groups(
        slots
            .iter()
            .enumerate()
            .filter_map(|(p, slot)| Some((p, &slot.as_ref()?.plan))),
    )
}

/// Connects to, locks and plans every target; `None` where that failed.
async fn prepare<'f>(
    args: &DeployArgs,
    fleet: &'f Fleet,
    board: &super::Board,
    limits: Limits,
) -> Vec<Option<Prepared<'f>>> {
    let members = fleet.members.iter().enumerate();
    let prepared = each(
        members,
        limits,
        board,
        &|| false,
        |position, member| async move {
            board.update(position, |row| row.phase = Phase::Planning);
            let loaded = fleet.loaded(member);
            let prune = (args.prune || loaded.prune) && !args.no_prune;
            let cluster = connect(&member.target).await?;
            let (options, secrets) = decrypting(args.apply.options(loaded), loaded);
            let mut deployer = Deployer::new(cluster.client.clone(), options);
            if !args.dry_run {
                deployer = locked(deployer, &cluster, loaded, &args.apply).await?;
            }
            let plan = match deployer.plan(&loaded.manifest, prune, &|_| {}).await {
                Ok(plan) => plan,
                Err(error) => {
                    release(&mut deployer).await;
                    return Err(error.into());
                }
            };
            warn_unverified(&secrets, &on_target(loaded, member));
            board.update(position, |row| {
                plan_row(&plan, row);
                row.requests = deployer.requests();
            });
            Ok(Prepared {
                deployer,
                plan,
                member,
                loaded,
            })
        },
    )
    .await;
    let mut slots: Vec<Option<Prepared<'f>>> = fleet.members.iter().map(|_| None).collect();
    for (position, prepared) in prepared {
        slots[position] = Some(prepared);
    }
    slots
}

/// Names the targets that failed before anything was asked.
fn warn_failed(rows: &[super::Row]) {
    let mut stderr = std::io::stderr();
    for row in rows.iter().filter(|row| row.phase == Phase::Failed) {
        let error = row.error.as_deref().unwrap_or("failed");
        let line = format!(
            "warning: target {} will not be deployed: {error}",
            row.target
        );
        let _ = writeln!(stderr, "{}", capstan_manifest::escape_controls(&line));
    }
}

/// Asks once for every target with changes, then applies wave by wave.
async fn confirm_and_apply(
    args: &DeployArgs,
    fleet: &Fleet,
    board: &super::Board,
    limits: Limits,
    slots: &mut [Option<Prepared<'_>>],
) -> anyhow::Result<()> {
    let waves = args.waves.split(slots.len());
    for (index, range) in waves.iter().enumerate() {
        for position in range.clone() {
            board.update(position, |row| row.wave = Some(index + 1));
        }
    }
    let changing: Vec<&str> = slots
        .iter()
        .flatten()
        .filter(|p| p.plan.has_changes() && p.plan.errors().next().is_none())
        .map(|p| p.member.target.name())
        .collect();
    if changing.is_empty() {
        return Ok(());
    }
    let question = format!(
        "Apply stage {} to {} target{} ({})?",
        fleet.stage,
        changing.len(),
        if changing.len() == 1 { "" } else { "s" },
        changing.join(", ")
    );
    if !args.yes && !confirm_change(&question) {
        anyhow::bail!(capstan_apply::Error::NotConfirmed);
    }
    let max = args.waves.max_failures();
    // Waiting belongs to the apply phase of a target, on top of its own timeout.
    let limits = Limits {
        timeout: limits.timeout
            + if args.wait {
                args.apply.timeout
            } else {
                Duration::ZERO
            },
        ..limits
    };
    for range in waves {
        let end = range.end;
        let stop = || board.rows()[..end].iter().filter(|r| r.failed()).count() > max;
        let wave = slots[range.clone()]
            .iter_mut()
            .enumerate()
            .filter_map(|(offset, slot)| Some((range.start + offset, slot.as_mut()?)));
        each(wave, limits, board, &stop, |position, prepared| {
            apply_one(args, board, position, prepared)
        })
        .await;
        // Targets whose planning failed never started: they are already failed.
        if stop() {
            for position in end..slots.len() {
                board.update(position, |row| {
                    if !row.failed() {
                        row.phase = Phase::NotAttempted;
                    }
                });
            }
            break;
        }
    }
    Ok(())
}

/// Applies one target's plan, prunes, and with `--wait` waits until its objects are ready.
async fn apply_one(
    args: &DeployArgs,
    board: &super::Board,
    position: usize,
    prepared: &mut Prepared<'_>,
) -> anyhow::Result<()> {
    if !prepared.plan.has_changes() || prepared.plan.errors().next().is_some() {
        return Ok(());
    }
    board.update(position, |row| row.phase = Phase::Applying);
    let Prepared {
        deployer,
        plan,
        loaded,
        ..
    } = prepared;
    let outcomes = deployer.apply(plan, &|_| {}).await?;
    let prune = plan.orphans().is_some();
    let deletions = match prune {
        true => Some(deployer.prune(plan, &outcomes, &|_| {}).await),
        false => None,
    };
    let done_with = |action: Action| {
        outcomes
            .iter()
            .filter(|o| o.action == action && o.result.is_ok())
            .count()
    };
    let mut errors: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(ToString::to_string))
        .collect();
    let pruned = match &deletions {
        Some(Ok(deletions)) => {
            errors.extend(
                deletions
                    .iter()
                    .filter_map(|d| d.result.as_ref().err().map(ToString::to_string)),
            );
            deletions.iter().filter(|d| d.deleted()).count()
        }
        Some(Err(error)) => {
            errors.push(format!("prune refused: {error}"));
            0
        }
        None => 0,
    };
    let done = Counts {
        create: done_with(Action::Create),
        update: done_with(Action::Update),
        adopt: done_with(Action::Adopt),
        unchanged: done_with(Action::Unchanged),
        prune: pruned,
        errors: errors.len(),
    };
    board.update(position, |row| {
        row.done = Some(done);
        row.requests = deployer.requests();
    });
    if let Some(first) = errors.first() {
        anyhow::bail!("{} failed, first: {first}", errors.len());
    }
    if args.wait {
        board.update(position, |row| row.phase = Phase::Waiting);
        wait_ready(args, board, position, deployer, loaded).await?;
    }
    board.update(position, |row| {
        row.phase = Phase::Deployed;
        row.requests = deployer.requests();
    });
    Ok(())
}

/// Polls the health of the stage's objects until all are ready or `--timeout` passes.
async fn wait_ready(
    args: &DeployArgs,
    board: &super::Board,
    position: usize,
    deployer: &Deployer,
    loaded: &Loaded,
) -> anyhow::Result<()> {
    let manifest = &loaded.manifest;
    let deadline = Instant::now() + args.apply.timeout;
    loop {
        let status = deployer.status(manifest).await?;
        let ready = status.iter().filter(|s| s.health == Health::Ready).count();
        board.update(position, |row| row.ready = Some((ready, status.len())));
        if ready == status.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let first = status.iter().find(|s| s.health != Health::Ready);
            let what = first.map(|s| s.id.to_string()).unwrap_or_default();
            anyhow::bail!(
                "{} of {} objects not ready after {}s, first: {what}",
                status.len() - ready,
                status.len(),
                args.apply.timeout.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}
