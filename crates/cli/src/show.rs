//! How plans and results look: text for people (coloured diffs on a terminal), JSON for
//! scripts.

use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use capstan_apply::{Action, Blind, Deletion, Deployment, Orphan, Plan, Removal};
use capstan_manifest::{Selection, escape_controls};
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
pub(crate) fn plan(
    plan: &Plan<'_>,
    diffs: bool,
    selection: Option<&Selection>,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let colour = std::io::stdout().is_terminal();
    write_selection(&mut out, selection)?;
    for item in plan.objects() {
        if let Some(error) = item.error() {
            writeln!(out, "! {}", escape_controls(&error.to_string()))?;
            continue;
        }
        let (mark, word) = match item.action() {
            Action::Create => ('+', "create".to_owned()),
            Action::Update => ('~', "update".to_owned()),
            Action::Adopt => (
                '*',
                format!("adopt (managed by {})", item.owners().join(", ")),
            ),
            _ => continue,
        };
        let note = if item.is_verified() || !diffs {
            ""
        } else {
            " (not yet validated by the server)"
        };
        writeln!(out, "{mark} {} {word}{note}", item.id())?;
        if let Some(diff) = item.diff()
            && (diffs || item.action() != Action::Create)
        {
            write_diff(&mut out, &diff.unified(&item.id().to_string()), colour)?;
        }
    }
    if let Some(orphans) = plan.orphans() {
        write_orphans(&mut out, orphans)?;
    }
    write_blind(&mut out, plan.blind())?;
    write_hints(&mut out, plan.errors())?;
    for api in plan.unavailable_apis() {
        writeln!(
            out,
            "warning: API {api} is unavailable; its objects were not checked"
        )?;
    }
    let prune = plan
        .orphans()
        .map_or(0, |o| o.iter().filter(|o| o.will_delete()).count());
    let adopt = match plan.count(Action::Adopt) {
        0 => String::new(),
        n => format!("{n} to adopt, "),
    };
    writeln!(
        out,
        "Plan: {} to create, {} to update, {adopt}{} unchanged, {} to prune, {} errors",
        plan.count(Action::Create),
        plan.count(Action::Update),
        plan.count(Action::Unchanged),
        prune,
        plan.errors().count()
    )
}

fn write_selection(out: &mut impl Write, selection: Option<&Selection>) -> std::io::Result<()> {
    match selection {
        Some(selection) => writeln!(
            out,
            "Selection: {}; objects outside it are neither written nor deleted",
            escape_controls(&selection.to_string())
        ),
        None => Ok(()),
    }
}

/// What the user may not list, once.
pub(crate) fn write_blind(out: &mut impl Write, blind: &Blind) -> std::io::Result<()> {
    if !blind.namespaces.is_empty() {
        writeln!(
            out,
            "note: listing across the cluster is forbidden to you; looked only in namespace(s) {}",
            blind.namespaces.join(", ")
        )?;
    }
    if !blind.types.is_empty() {
        writeln!(
            out,
            "note: not allowed to list {}; objects of these types are never pruned by this run",
            blind.types.join(", ")
        )?;
    }
    Ok(())
}

/// What to do about errors the libraries describe without naming capstan's flags.
fn write_hints<'e>(
    out: &mut impl Write,
    errors: impl Iterator<Item = &'e capstan_apply::Error>,
) -> std::io::Result<()> {
    for hint in crate::hints::for_objects(errors) {
        writeln!(out, "hint: {hint}")?;
    }
    Ok(())
}

/// One line per deletion: deleted, found gone, replaced, or failed.
pub(crate) fn write_deletions(out: &mut impl Write, deletions: &[Deletion]) -> std::io::Result<()> {
    for deletion in deletions {
        match &deletion.result {
            Ok(Removal::Deleted) => writeln!(out, "- {} deleted", deletion.id)?,
            Ok(Removal::Replaced) => {
                writeln!(
                    out,
                    "= {} replaced by a new object since the scan: kept",
                    deletion.id
                )?;
            }
            Ok(_) => writeln!(out, "= {} already gone", deletion.id)?,
            Err(error) => writeln!(out, "! {}", escape_controls(&error.to_string()))?,
        }
    }
    Ok(())
}

/// The orphans alone, for `capstan prune` and `capstan delete`.
pub(crate) fn orphans(orphans: &[Orphan], selection: Option<&Selection>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write_selection(&mut out, selection)?;
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
        let line = escape_controls(line);
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
        writeln!(out, "! {}", escape_controls(&error.to_string()))?;
    }
    let (pruned, prune_failed) = match &deployment.prune {
        Some(Ok(deletions)) => {
            write_deletions(&mut out, deletions)?;
            let failed = deletions.iter().filter(|d| d.result.is_err()).count();
            (deletions.iter().filter(|d| d.deleted()).count(), failed)
        }
        Some(Err(error)) => {
            writeln!(out, "! {}", escape_controls(&error.to_string()))?;
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
        "{outcome}: {} created, {} updated, {}{} unchanged, {} pruned, {} failed in {:.1} s ({} requests)",
        written(Action::Create),
        written(Action::Update),
        match written(Action::Adopt) {
            0 => String::new(),
            n => format!("{n} adopted, "),
        },
        written(Action::Unchanged),
        pruned,
        failed.len() + prune_failed + deployment.plan.errors().count(),
        took.as_secs_f64(),
        deployment.requests
    )?;
    if deployment.plan.errors().next().is_some() {
        write_hints(&mut out, deployment.plan.errors())?;
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
            if item.action() == Action::Adopt {
                entry["managers"] = json!(item.owners());
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
            "adopt": plan.count(Action::Adopt),
            "unchanged": plan.count(Action::Unchanged),
            "prune": plan.orphans().map_or(0, |o| o.iter().filter(|o| o.will_delete()).count()),
            "errors": plan.errors().count(),
        },
        "unavailableApis": plan.unavailable_apis(),
        "blind": plan.blind(),
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
                    "deleted": d.deleted(),
                    "result": d.result.as_ref().ok(),
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
