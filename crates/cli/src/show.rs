//! How plans and results look to people: text, with coloured diffs on a terminal. JSON is
//! `output.rs`'s.

use std::io::{IsTerminal as _, Write};
use std::time::Duration;

use capstan_apply::{Action, Blind, Deletion, Deployment, Keep, Orphan, Plan, Removal};
use capstan_manifest::{Selection, escape_controls};

/// `--show-kept`, for the commands that show what a prune keeps.
#[derive(Debug, clap::Args)]
pub(crate) struct KeptArgs {
    /// Also list the kept objects that are only there because a controller copied the
    /// discriminator from their owner (the Endpoints of a Service); otherwise they are counted
    #[arg(long)]
    pub(crate) show_kept: bool,
}

/// What a listing of orphans shows besides them.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    selection: Option<&'a Selection>,
    show_kept: bool,
}

impl KeptArgs {
    /// How the stage's plan or orphans are shown.
    pub(crate) fn view<'a>(&self, loaded: &'a crate::stage::Loaded) -> View<'a> {
        View {
            selection: loaded.selection.as_ref(),
            show_kept: self.show_kept,
        }
    }
}

/// The plan: one line per object that changes, diffs (all of them with `diffs`, updates only
/// otherwise), the orphans, and a count line.
pub(crate) fn plan(plan: &Plan<'_>, diffs: bool, view: View<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let colour = std::io::stdout().is_terminal();
    write_selection(&mut out, view.selection)?;
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
        write_orphans(&mut out, orphans, view.show_kept)?;
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
pub(crate) fn orphans(orphans: &[Orphan], view: View<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    write_selection(&mut out, view.selection)?;
    write_orphans(&mut out, orphans, view.show_kept)?;
    let delete = orphans.iter().filter(|o| o.will_delete()).count();
    writeln!(out, "{delete} to delete, {} kept", orphans.len() - delete)
}

/// One line per orphan, except those a controller made (they go with their owner, and a
/// Service's Endpoints would otherwise be listed on every run): one line counts them.
fn write_orphans(out: &mut impl Write, orphans: &[Orphan], show_kept: bool) -> std::io::Result<()> {
    let mut owned = 0;
    for orphan in orphans {
        match &orphan.keep {
            None => writeln!(out, "- {} prune", orphan.id)?,
            Some(Keep::Owned(_)) if !show_kept => owned += 1,
            Some(keep) => writeln!(
                out,
                "= {} kept: {}",
                orphan.id,
                crate::inspect::keep_text(keep)
            )?,
        }
    }
    match owned {
        0 => Ok(()),
        1 => writeln!(
            out,
            "1 object kept: owned by another object; --show-kept lists it"
        ),
        n => writeln!(
            out,
            "{n} objects kept: owned by other objects; --show-kept lists them"
        ),
    }
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
