//! `check`: which files break the rules of `.sops.yaml`, for CI and pre-commit hooks.

use crate::{
    config::Config,
    error::{Error, Result},
    file::{KeyChanges, SopsFile},
    format::Format,
    keys::Identities,
};
use std::path::{Path, PathBuf};

/// What [`check`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions<'a> {
    /// The rules files are checked against.
    pub config: &'a Config,
    /// Identities to verify MACs with; without them MACs are not checked.
    pub identities: Option<&'a Identities>,
}

/// A problem with one file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// A creation rule matches the file, but it is not a SOPS file.
    NotEncrypted,
    /// The file's recipients are not the ones its rule names.
    RecipientsDiffer(KeyChanges),
    /// A value or the MAC fails authentication ([`Error::Integrity`]).
    IntegrityFailed(Error),
    /// The file could not be read or opened (no matching identity, malformed metadata…).
    Unreadable(Error),
}

/// One file and what is wrong with it.
#[derive(Debug)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// The problem.
    pub problem: Problem,
}

/// The outcome of [`check`].
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The files a creation rule matched, and which were therefore checked.
    pub checked: Vec<PathBuf>,
    /// Whether MACs were verified (identities were given).
    pub macs_verified: bool,
    /// The problems found, in the order files were checked.
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether every checked file is fine.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Walks `paths` (folders recursively, skipping hidden ones such as `.git`) and checks every
/// file a creation rule matches: it must be encrypted, to the rule's recipients, and (when
/// identities are given) its MAC must hold.
///
/// # Errors
///
/// [`Error::Io`] when a folder cannot be listed. Problems with files are findings, not errors.
pub fn check(paths: &[PathBuf], options: &CheckOptions<'_>) -> Result<CheckReport> {
    let mut report = CheckReport {
        macs_verified: options.identities.is_some(),
        ..CheckReport::default()
    };
    for path in paths {
        visit(path, options, &mut report)?;
    }
    Ok(report)
}

fn visit(path: &Path, options: &CheckOptions<'_>, report: &mut CheckReport) -> Result<()> {
    if path.is_dir() {
        let mut children = std::fs::read_dir(path)
            .and_then(|entries| {
                entries
                    .map(|entry| entry.map(|entry| entry.path()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(Error::io(path))?;
        children.sort();
        for child in children {
            let hidden = child
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with('.'));
            if !(hidden && child.is_dir()) {
                visit(&child, options, report)?;
            }
        }
        return Ok(());
    }
    let same_as_config =
        |config: &Path| std::fs::canonicalize(config).ok() == std::fs::canonicalize(path).ok();
    if same_as_config(options.config.path()) {
        return Ok(());
    }
    let rule = match options.config.rule_for(path) {
        Ok(rule) => rule,
        Err(Error::NoMatchingRule { .. }) => return Ok(()),
        Err(error) => return finding(report, path, Problem::Unreadable(error)),
    };
    report.checked.push(path.to_owned());
    let content = match std::fs::read(path) {
        Ok(content) => content,
        Err(error) => return finding(report, path, Problem::Unreadable(Error::io(path)(error))),
    };
    let file = match SopsFile::parse(path, Format::from_path(path), &content) {
        Ok(file) => file,
        Err(Error::NotEncrypted { .. } | Error::Syntax { .. }) => {
            return finding(report, path, Problem::NotEncrypted);
        }
        Err(error) => return finding(report, path, Problem::Unreadable(error)),
    };
    let changes = file.key_changes(rule.recipients());
    if !changes.is_empty() {
        finding(report, path, Problem::RecipientsDiffer(changes))?;
    }
    if let Some(identities) = options.identities {
        match file.decrypt(identities) {
            Ok(_) => {}
            Err(error @ Error::Integrity { .. }) => {
                finding(report, path, Problem::IntegrityFailed(error))?
            }
            Err(error) => finding(report, path, Problem::Unreadable(error))?,
        }
    }
    Ok(())
}

fn finding(report: &mut CheckReport, path: &Path, problem: Problem) -> Result<()> {
    report.findings.push(Finding {
        path: path.to_owned(),
        problem,
    });
    Ok(())
}
