//! The fleet's JSON summary (docs/json.md, "Fleets"): one entry per target, the groups of
//! identical plans, and the targets not attempted.

use capstan_apply::{Action, Plan};
use serde::Serialize;

use super::board::{Counts, Phase, Row};
use crate::output::PlanReport;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FleetReport<'a> {
    pub(crate) stage: &'a str,
    pub(crate) dry_run: bool,
    pub(crate) succeeded: bool,
    pub(crate) targets: Vec<TargetItem<'a>>,
    pub(crate) groups: Vec<GroupItem<'a>>,
    pub(crate) not_attempted: Vec<&'a str>,
    pub(crate) requests: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TargetItem<'a> {
    target: &'a str,
    context: &'a str,
    wave: Option<usize>,
    phase: Phase,
    plan: Option<Counts>,
    done: Option<Counts>,
    health: Option<HealthCounts>,
    group: Option<usize>,
    duration_ms: u64,
    error: Option<&'a str>,
    requests: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthCounts {
    ready: usize,
    not_ready: usize,
}

/// Targets whose plans are the same, and that plan (the first target's).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GroupItem<'a> {
    pub(crate) targets: Vec<&'a str>,
    pub(crate) changes: bool,
    pub(crate) plan: PlanReport<'a>,
}

impl<'a> From<&'a Row> for TargetItem<'a> {
    fn from(row: &'a Row) -> Self {
        Self {
            target: &row.target,
            context: &row.context,
            wave: row.wave,
            phase: row.phase,
            plan: row.plan,
            done: row.done,
            health: row.ready.map(|(ready, total)| HealthCounts {
                ready,
                not_ready: total - ready,
            }),
            group: row.group,
            duration_ms: u64::try_from(row.took.as_millis()).unwrap_or(u64::MAX),
            error: row.error.as_deref(),
            requests: row.requests,
        }
    }
}

/// The report of `rows`, with `groups` of `(positions, plan)`.
pub(crate) fn report<'a>(
    stage: &'a str,
    dry_run: bool,
    rows: &'a [Row],
    groups: &'a [(Vec<usize>, &'a Plan<'a>)],
) -> FleetReport<'a> {
    FleetReport {
        stage,
        dry_run,
        succeeded: rows.iter().all(|row| !row.failed()),
        targets: rows.iter().map(TargetItem::from).collect(),
        groups: groups
            .iter()
            .map(|(positions, plan)| GroupItem {
                targets: positions.iter().map(|&p| rows[p].target.as_str()).collect(),
                changes: plan.has_changes(),
                plan: PlanReport::new(plan),
            })
            .collect(),
        not_attempted: rows
            .iter()
            .filter(|row| row.phase == Phase::NotAttempted)
            .map(|row| row.target.as_str())
            .collect(),
        requests: rows.iter().map(|row| row.requests).sum(),
    }
}

/// A plan's counts.
pub(crate) fn counts(plan: &Plan<'_>) -> Counts {
    Counts {
        create: plan.count(Action::Create),
        update: plan.count(Action::Update),
        adopt: plan.count(Action::Adopt),
        unchanged: plan.count(Action::Unchanged),
        prune: plan
            .orphans()
            .map_or(0, |o| o.iter().filter(|o| o.will_delete()).count()),
        errors: plan.errors().count(),
    }
}

/// What makes two targets' plans the same to a reader: each change with its diff, each
/// error, each orphan and its verdict; not UIDs or request counts, which differ anyway.
pub(crate) fn fingerprint(plan: &Plan<'_>) -> String {
    let mut text = String::new();
    for item in plan.objects() {
        if item.action() == Action::Unchanged && item.error().is_none() {
            continue;
        }
        let id = item.id().to_string();
        text.push_str(&format!("{id} {:?}\n", item.action()));
        if let Some(diff) = item.diff() {
            text.push_str(&diff.unified(&id));
        }
        if let Some(error) = item.error() {
            text.push_str(&format!("! {error}\n"));
        }
    }
    for orphan in plan.orphans().unwrap_or_default() {
        text.push_str(&format!("- {} {:?}\n", orphan.id, orphan.keep));
    }
    text
}

/// Positions grouped by equal fingerprints, in the order each first appears.
pub(crate) fn group(fingerprints: &[(usize, String)]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    for (position, print) in fingerprints {
        match groups.iter_mut().find(|(p, _)| p == print) {
            Some((_, members)) => members.push(*position),
            None => groups.push((print, vec![*position])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// "Same plan on 2 targets: a, b" / "Plan for c (differs from the others)".
pub(crate) fn heading(names: &[&str], groups: usize) -> String {
    match (names, groups) {
        ([only], 1) => format!("Plan for target {only}:"),
        ([only], _) => format!("Plan for target {only} (different from the others):"),
        (names, _) => format!("Same plan on {} targets: {}", names.len(), names.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::{group, heading};

    #[test]
    fn equal_plans_group_in_the_order_they_first_appear() {
        let prints = [
            (0, "a".to_owned()),
            (1, "b".to_owned()),
            (2, "a".to_owned()),
        ];
        assert_eq!(group(&prints), [vec![0, 2], vec![1]]);
        assert_eq!(heading(&["x", "z"], 2), "Same plan on 2 targets: x, z");
        assert_eq!(
            heading(&["y"], 2),
            "Plan for target y (different from the others):"
        );
        assert_eq!(heading(&["y"], 1), "Plan for target y:");
    }
}
