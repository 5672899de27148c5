//! `capstan secrets check`: files that break `.sops.yaml`, for CI and pre-commit hooks.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use capstan_secrets::{CheckOptions, Finding, Problem};
use clap::Args;
use serde::Serialize;

use super::{identities, load_config};
use crate::output::OutputArgs;
use crate::{ExitCode, Failure};

/// Check that every file a `.sops.yaml` rule matches is encrypted, to the rule's recipients,
/// and (when an identity is available) that its MAC holds; exits 2 on any problem.
#[derive(Debug, Args)]
pub(super) struct CheckArgs {
    /// Files and folders to check (folders recursively, hidden ones skipped)
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,

    #[command(flatten)]
    pub(super) output: OutputArgs,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    clean: bool,
    checked: usize,
    macs_verified: bool,
    findings: Vec<FindingReport>,
}

#[derive(Serialize)]
struct FindingReport {
    path: String,
    problem: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    added: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    removed: Vec<String>,
}

impl From<&Finding> for FindingReport {
    fn from(finding: &Finding) -> Self {
        let (problem, message, added, removed) = match &finding.problem {
            Problem::NotEncrypted => (
                "not-encrypted",
                "not encrypted, but a `.sops.yaml` creation rule matches it".to_owned(),
                Vec::new(),
                Vec::new(),
            ),
            Problem::RecipientsDiffer(changes) => (
                "recipients-differ",
                format!(
                    "recipients differ from its creation rule (missing: {}; extra: {}); \
                     run `capstan secrets updatekeys`",
                    list(&changes.added),
                    list(&changes.removed)
                ),
                changes.added.clone(),
                changes.removed.clone(),
            ),
            Problem::IntegrityFailed(error) => {
                ("integrity", error.to_string(), Vec::new(), Vec::new())
            }
            Problem::Unreadable(error) => ("unreadable", error.to_string(), Vec::new(), Vec::new()),
            // Problems a newer library reports are still failures, shown as it describes them.
            other => ("other", format!("{other:?}"), Vec::new(), Vec::new()),
        };
        Self {
            path: finding.path.display().to_string(),
            problem,
            message,
            added,
            removed,
        }
    }
}

fn count(number: usize, noun: &str) -> String {
    let plural = if number == 1 { "" } else { "s" };
    format!("{number} {noun}{plural}")
}

fn list(recipients: &[String]) -> String {
    if recipients.is_empty() {
        "none".to_owned()
    } else {
        recipients.join(", ")
    }
}

pub(super) fn check(args: &CheckArgs, config: Option<&Path>) -> Result<ExitCode, Failure> {
    let start = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
    let config = load_config(config, start)?;
    let identities = identities()?;
    let options = CheckOptions {
        config: &config,
        identities: (!identities.is_empty()).then_some(&identities),
    };
    let report = capstan_secrets::check(&args.paths, &options)?;
    let findings: Vec<FindingReport> = report.findings.iter().map(FindingReport::from).collect();
    if args.output.json() {
        crate::output::print(&Report {
            clean: report.is_clean(),
            checked: report.checked.len(),
            macs_verified: report.macs_verified,
            findings,
        })?;
    } else {
        let mut stdout = std::io::stdout().lock();
        for finding in &findings {
            writeln!(stdout, "{}: {}", finding.path, finding.message)?;
        }
        stdout.flush()?;
        let macs = if report.macs_verified {
            ""
        } else {
            " (MACs not verified: no age identity found)"
        };
        writeln!(
            std::io::stderr().lock(),
            "checked {} against `{}`: {}{macs}",
            count(report.checked.len(), "file"),
            config.path().display(),
            count(findings.len(), "problem")
        )?;
    }
    Ok(if report.is_clean() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}
