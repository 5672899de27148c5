//! How plans and results look: text for people (coloured diffs on a terminal), JSON for
//! scripts.

use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use capstan_apply::{Action, Deployment, Orphan, Plan};
use serde_json::{Value, json};

/// Output formats of the cluster commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// For people
    Text,
    /// For scripts: one JSON document on standard output
    Json,
}

/// The plan: one line per object that changes, diffs (all of them with `diffs`, updates only
/// otherwise), the orphans, and a count line.
pub(crate) fn plan(plan: &Plan<'_>, diffs: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let colour = std::io::stdout().is_terminal();
    for item in plan.objects() {
        if let Some(error) = item.error() {
            writeln!(out, "! {error}")?;
            continue;
        }
        let (mark, word) = match item.action() {
            Action::Create => ('+', "create"),
            Action::Update => ('~', "update"),
            Action::Unchanged => continue,
        };
        let note = if item.is_verified() || !diffs {
            ""
        } else {
            " (not yet validated by the server)"
        };
        writeln!(out, "{mark} {} {word}{note}", item.id())?;
        if let Some(diff) = item.diff()
            && (diffs || item.action() == Action::Update)
        {
            write_diff(&mut out, &diff.unified(&item.id().to_string()), colour)?;
        }
    }
    if let Some(orphans) = plan.orphans() {
        write_orphans(&mut out, orphans)?;
    }
    for api in plan.unavailable_apis() {
        writeln!(
            out,
            "warning: API {api} is unavailable; its objects were not checked"
        )?;
    }
    let prune = plan
        .orphans()
        .map_or(0, |o| o.iter().filter(|o| o.will_delete()).count());
    writeln!(
        out,
        "Plan: {} to create, {} to update, {} unchanged, {} to prune, {} errors",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Unchanged),
        prune,
        plan.errors().count()
    )
}

/// The orphans alone, for `capstan prune`.
pub(crate) fn orphans(orphans: &[Orphan]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write_orphans(&mut out, orphans)?;
    let delete = orphans.iter().filter(|o| o.will_delete()).count();
    writeln!(out, "{delete} to delete, {} kept", orphans.len() - delete)
}

fn write_orphans(out: &mut impl Write, orphans: &[Orphan]) -> std::io::Result<()> {
    for orphan in orphans {
        match &orphan.keep {
            None => writeln!(out, "- {} prune", orphan.id)?,
            Some(keep) => writeln!(
                out,
                "= {} kept: {}",
                orphan.id,
                crate::inspect::keep_text(keep)
            )?,
        }
    }
    Ok(())
}

fn write_diff(out: &mut impl Write, text: &str, colour: bool) -> std::io::Result<()> {
    for line in text.lines() {
        let code = match line.as_bytes().first() {
            _ if !colour => None,
            Some(b'+') => Some("32"),
            Some(b'-') => Some("31"),
            Some(b'@') => Some("36"),
            _ => None,
        };
        match code {
            Some(code) => writeln!(out, "    \x1b[{code}m{line}\x1b[0m")?,
            None => writeln!(out, "    {line}")?,
        }
    }
    Ok(())
}

/// What a deploy or prune did, after the fact.
pub(crate) fn summary(deployment: &Deployment<'_>, took: Duration) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let failed: Vec<_> = deployment
        .outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    let written = |action| {
        deployment
            .outcomes
            .iter()
            .filter(|o| o.action == action && o.result.is_ok())
            .count()
    };
    for error in deployment.plan.errors().chain(failed.iter().copied()) {
        writeln!(out, "! {error}")?;
    }
    let (pruned, prune_failed) = match &deployment.prune {
        Some(Ok(deletions)) => {
            for deletion in deletions {
                match &deletion.result {
                    Ok(_) => writeln!(out, "- {} deleted", deletion.id)?,
                    Err(error) => writeln!(out, "! {error}")?,
                }
            }
            let ok = deletions.iter().filter(|d| d.result.is_ok()).count();
            (ok, deletions.len() - ok)
        }
        Some(Err(error)) => {
            writeln!(out, "! {error}")?;
            (0, 0)
        }
        None => (0, 0),
    };
    for status in deployment
        .health
        .iter()
        .filter(|s| s.health != capstan_apply::Health::Ready)
    {
        let message = status.message.as_deref().unwrap_or_default();
        writeln!(out, "! {}: {:?} {message}", status.id, status.health)?;
    }
    let outcome = if deployment.succeeded() {
        "Done"
    } else {
        "FAILED"
    };
    writeln!(
        out,
        "{outcome}: {} created, {} updated, {} unchanged, {} pruned, {} failed in {:.1} s ({} requests)",
        written(Action::Create),
        written(Action::Update),
        written(Action::Unchanged),
        pruned,
        failed.len() + prune_failed + deployment.plan.errors().count(),
        took.as_secs_f64(),
        deployment.requests
    )?;
    if deployment.plan.errors().next().is_some() {
        writeln!(
            out,
            "Nothing was changed: the objects above cannot be applied."
        )?;
    } else if !failed.is_empty() {
        writeln!(
            out,
            "Nothing was pruned; fix the failures and deploy again: unchanged objects cost nothing."
        )?;
    }
    Ok(())
}

/// The plan as data.
pub(crate) fn plan_json(plan: &Plan<'_>) -> std::io::Result<()> {
    print_json(&plan_value(plan))
}

fn plan_value(plan: &Plan<'_>) -> Value {
    let objects: Vec<Value> = plan
        .objects()
        .iter()
        .map(|item| {
            let mut entry = json!({
                "object": item.id(),
                "action": item.action(),
                "verified": item.is_verified(),
            });
            if let Some(diff) = item.diff() {
                entry["diff"] = json!(diff.unified(&item.id().to_string()));
            }
            if let Some(error) = item.error() {
                entry["error"] = json!(error.to_string());
            }
            entry
        })
        .collect();
    json!({
        "objects": objects,
        "orphans": plan.orphans(),
        "summary": {
            "create": plan.count(Action::Create),
            "update": plan.count(Action::Update),
            "unchanged": plan.count(Action::Unchanged),
            "prune": plan.orphans().map_or(0, |o| o.iter().filter(|o| o.will_delete()).count()),
            "errors": plan.errors().count(),
        },
        "unavailableApis": plan.unavailable_apis(),
        "requests": plan.requests(),
    })
}

/// A deploy or prune as data: the plan, then what happened.
pub(crate) fn deployment_json(deployment: &Deployment<'_>, dry_run: bool) -> std::io::Result<()> {
    let mut value = plan_value(&deployment.plan);
    value["dryRun"] = json!(dry_run);
    value["succeeded"] = json!(deployment.succeeded());
    value["requests"] = json!(deployment.requests);
    value["results"] = deployment
        .outcomes
        .iter()
        .map(|o| {
            json!({
                "object": o.id,
                "action": o.action,
                "ok": o.result.is_ok(),
                "error": o.result.as_ref().err().map(ToString::to_string),
            })
        })
        .collect();
    value["pruned"] = match &deployment.prune {
        None => Value::Null,
        Some(Err(error)) => json!({ "refused": error.to_string() }),
        Some(Ok(deletions)) => deletions
            .iter()
            .map(|d| {
                json!({
                    "object": d.id,
                    "deleted": matches!(d.result, Ok(true)),
                    "error": d.result.as_ref().err().map(ToString::to_string),
                })
            })
            .collect(),
    };
    value["health"] = json!(deployment.health);
    print_json(&value)
}

pub(crate) fn print_json(value: &Value) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}
