//! The `--output` option and the JSON contract every `-o json` follows (docs/json.md): one
//! object per run, camelCase keys, lowercase enum words from serde, an object's identity always
//! as `object`, sets of objects as `items`, and failures as `{"error": ...}`.

use std::io::Write as _;

use capstan_apply::{
    Action, Blind, Deletion, Deployment, Health, Keep, ObjectStatus, Owned, Plan, Removal,
};
use capstan_manifest::{ObjectId, Problem, ProblemKind};
use serde::Serialize;

/// Output formats of the commands that report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// For people
    Text,
    /// For scripts: one JSON object on standard output (see docs/json.md)
    Json,
}

/// A set of output formats, with the one used when `-o` is not given.
pub(crate) trait Formats: clap::ValueEnum + Clone + Send + Sync + 'static {
    /// Its name on the command line. A name, not a value: clap's `default_value_t` keeps the
    /// default in a static that every type of a generic argument struct would share.
    const DEFAULT: &'static str;
}

impl Formats for Output {
    const DEFAULT: &'static str = "text";
}

/// `--output`/`-o`, flattened into every command that has a choice of format; `F` is the set
/// of formats (`render` has its own).
#[derive(Debug, clap::Args)]
pub(crate) struct OutputArgs<F: Formats = Output> {
    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = F::DEFAULT)]
    pub(crate) output: F,
}

impl OutputArgs {
    pub(crate) fn json(&self) -> bool {
        self.output == Output::Json
    }
}

/// Whether the command line asks for `-o json`, read from the innermost subcommand's
/// `output` argument: every command that offers JSON flattens [`OutputArgs`], so none needs
/// asking by name (`render -o json` prints a Kubernetes List, not a report: its `output` is of
/// another type, and its failures stay text).
pub(crate) fn requested(matches: &clap::ArgMatches) -> bool {
    let mut matches = matches;
    while let Some((_, inner)) = matches.subcommand() {
        matches = inner;
    }
    matches!(
        matches.try_get_one::<Output>("output"),
        Ok(Some(Output::Json))
    )
}

/// Writes `value` as the run's one JSON document.
pub(crate) fn print(value: &impl Serialize) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// A failed run under `-o json`: the message, and the manifests' problems when that is what
/// failed.
#[derive(Serialize)]
pub(crate) struct ErrorReport<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    problems: Vec<ProblemItem<'a>>,
}

impl<'a> ErrorReport<'a> {
    pub(crate) fn new(error: &'a anyhow::Error) -> Self {
        let (message, problems) = match error.downcast_ref::<capstan_manifest::Error>() {
            // The problems speak for themselves; the message is the count stderr ends with.
            Some(capstan_manifest::Error::Invalid(problems)) => (
                crate::problems_found(problems.len()),
                problems.iter().map(ProblemItem::from).collect(),
            ),
            _ => (format!("{error:#}"), Vec::new()),
        };
        Self {
            error: ErrorBody { message, problems },
        }
    }
}

/// One problem in the manifests.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProblemItem<'a> {
    file: &'a str,
    line: usize,
    document: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<&'a ObjectId>,
    kind: ProblemKind,
    message: &'a str,
}

impl<'a> From<&'a Problem> for ProblemItem<'a> {
    fn from(problem: &'a Problem) -> Self {
        let location = problem.location();
        Self {
            file: location.source(),
            line: location.line(),
            document: location.document(),
            item: location.item(),
            object: problem.object(),
            kind: problem.kind(),
            message: problem.message(),
        }
    }
}

/// A live object carrying the discriminator: `list`, `delete`, a plan's orphans.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnedItem<'a> {
    object: &'a ObjectId,
    uid: &'a str,
    managed: bool,
    keep: Option<&'a Keep>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_manifest: Option<bool>,
}

impl<'a> From<&'a Owned> for OwnedItem<'a> {
    fn from(owned: &'a Owned) -> Self {
        Self {
            object: &owned.id,
            uid: &owned.uid,
            managed: owned.managed,
            keep: owned.keep.as_ref(),
            in_manifest: None,
        }
    }
}

impl OwnedItem<'_> {
    /// For `list`, which says which live objects the stage still holds.
    pub(crate) fn in_manifest(mut self, held: bool) -> Self {
        self.in_manifest = Some(held);
        self
    }
}

/// How one object is doing: `status`, and a deploy with `--wait`.
#[derive(Serialize)]
pub(crate) struct HealthItem<'a> {
    object: &'a ObjectId,
    health: Health,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl<'a> From<&'a ObjectStatus> for HealthItem<'a> {
    fn from(status: &'a ObjectStatus) -> Self {
        Self {
            object: &status.id,
            health: status.health,
            message: status.message.as_deref(),
        }
    }
}

/// What a delete request did to one object.
#[derive(Serialize)]
pub(crate) struct DeletionItem<'a> {
    object: &'a ObjectId,
    deleted: bool,
    result: Option<&'static str>,
    error: Option<String>,
}

impl<'a> From<&'a Deletion> for DeletionItem<'a> {
    fn from(deletion: &'a Deletion) -> Self {
        Self {
            object: &deletion.id,
            deleted: deletion.deleted(),
            result: deletion.result.as_ref().ok().map(|removal| match removal {
                Removal::Deleted => "deleted",
                Removal::AlreadyGone => "already-gone",
                Removal::Replaced => "replaced",
                // What a newer library reports is still not a deletion by this run.
                _ => "other",
            }),
            error: deletion.result.as_ref().err().map(ToString::to_string),
        }
    }
}

/// `capstan delete -o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteReport<'a> {
    pub(crate) dry_run: bool,
    pub(crate) items: Vec<OwnedItem<'a>>,
    pub(crate) deleted: Vec<DeletionItem<'a>>,
    pub(crate) requests: usize,
}

/// One object of a plan.
#[derive(Serialize)]
struct PlanItem<'a> {
    object: &'a ObjectId,
    action: Action,
    verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    managers: Option<&'a [String]>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    create: usize,
    update: usize,
    adopt: usize,
    unchanged: usize,
    prune: usize,
    kept: usize,
    errors: usize,
}

/// A plan: `diff`, and the first half of a deploy or prune.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlanReport<'a> {
    items: Vec<PlanItem<'a>>,
    orphans: Option<Vec<OwnedItem<'a>>>,
    summary: Summary,
    unavailable_apis: &'a [String],
    blind: &'a Blind,
}

impl<'a> PlanReport<'a> {
    pub(crate) fn new(plan: &'a Plan<'_>) -> Self {
        let items = plan
            .objects()
            .iter()
            .map(|item| PlanItem {
                object: item.id(),
                action: item.action(),
                verified: item.is_verified(),
                diff: item.diff().map(|d| d.unified(&item.id().to_string())),
                error: item.error().map(ToString::to_string),
                managers: (item.action() == Action::Adopt).then(|| item.owners()),
            })
            .collect();
        let orphans = plan.orphans();
        let prune = orphans.map_or(0, |o| o.iter().filter(|o| o.will_delete()).count());
        Self {
            items,
            orphans: orphans.map(|o| o.iter().map(OwnedItem::from).collect()),
            summary: Summary {
                create: plan.count(Action::Create),
                update: plan.count(Action::Update),
                adopt: plan.count(Action::Adopt),
                unchanged: plan.count(Action::Unchanged),
                prune,
                kept: orphans.map_or(0, <[Owned]>::len) - prune,
                errors: plan.errors().count(),
            },
            unavailable_apis: plan.unavailable_apis(),
            blind: plan.blind(),
        }
    }
}

/// `capstan diff -o json`.
#[derive(Serialize)]
struct DiffReport<'a> {
    #[serde(flatten)]
    plan: PlanReport<'a>,
    requests: usize,
}

pub(crate) fn plan(plan: &Plan<'_>) -> std::io::Result<()> {
    print(&DiffReport {
        plan: PlanReport::new(plan),
        requests: plan.requests(),
    })
}

/// One write of a deploy.
#[derive(Serialize)]
struct ResultItem<'a> {
    object: &'a ObjectId,
    action: Action,
    ok: bool,
    error: Option<String>,
}

/// `capstan deploy -o json` and `capstan prune -o json`: the plan, then what happened.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeploymentReport<'a> {
    dry_run: bool,
    succeeded: bool,
    #[serde(flatten)]
    plan: PlanReport<'a>,
    results: Vec<ResultItem<'a>>,
    /// `None` when no prune ran.
    pruned: Option<Vec<DeletionItem<'a>>>,
    prune_error: Option<String>,
    health: Vec<HealthItem<'a>>,
    requests: usize,
}

pub(crate) fn deployment(deployment: &Deployment<'_>, dry_run: bool) -> std::io::Result<()> {
    let (pruned, prune_error) = match &deployment.prune {
        None => (None, None),
        Some(Ok(deletions)) => (Some(deletions.iter().map(Into::into).collect()), None),
        Some(Err(error)) => (None, Some(error.to_string())),
    };
    print(&DeploymentReport {
        dry_run,
        succeeded: deployment.succeeded(),
        plan: PlanReport::new(&deployment.plan),
        results: deployment
            .outcomes
            .iter()
            .map(|o| ResultItem {
                object: &o.id,
                action: o.action,
                ok: o.result.is_ok(),
                error: o.result.as_ref().err().map(ToString::to_string),
            })
            .collect(),
        pruned,
        prune_error,
        health: deployment.health.iter().map(Into::into).collect(),
        requests: deployment.requests,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    fn requested(args: &[&str]) -> bool {
        let matches = crate::Cli::command()
            .try_get_matches_from([&["capstan"], args].concat())
            .unwrap();
        super::requested(&matches)
    }

    #[test]
    fn json_is_requested_by_every_command_with_output_json_and_by_no_other_output_option() {
        assert!(requested(&["deploy", "-o", "json"]));
        assert!(requested(&["validate", "--output", "json"]));
        assert!(requested(&["secrets", "check", "-o", "json"]));
        assert!(requested(&["local", "status", "-o", "json"]));
        assert!(!requested(&["deploy"]));
        assert!(!requested(&["status", "-o", "text"]));
        // A Kubernetes List, and sops' output file: not capstan's JSON reports.
        assert!(!requested(&["render", "-o", "json"]));
        assert!(!requested(&["secrets", "keygen", "--output", "key.txt"]));
    }
}
