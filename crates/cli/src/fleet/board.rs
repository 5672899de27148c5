//! The fleet's table: one row per target, drawn live on a terminal (standard error) while the
//! targets work, and printed once at the end.

use std::io::{IsTerminal as _, Write};
use std::sync::Mutex;
use std::time::Duration;

use capstan_manifest::escape_controls;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

/// Where a target is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Phase {
    #[default]
    Pending,
    Planning,
    /// Planned, with changes to make (a dry run or `diff` ends here).
    Planned,
    /// Nothing to change.
    Unchanged,
    Applying,
    Waiting,
    Deployed,
    /// `status`: every object ready.
    Ready,
    /// `status`: some object is not ready.
    NotReady,
    /// `drift`: every object as the stage has it.
    InSync,
    /// `drift`: some object drifted or is missing.
    Drifted,
    Failed,
    /// Never started: too many targets had failed before its turn.
    NotAttempted,
}

impl Phase {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Planning => "planning",
            Self::Planned => "planned",
            Self::Unchanged => "unchanged",
            Self::Applying => "applying",
            Self::Waiting => "waiting",
            Self::Deployed => "deployed",
            Self::Ready => "ready",
            Self::NotReady => "not-ready",
            Self::InSync => "in-sync",
            Self::Drifted => "drifted",
            Self::Failed => "failed",
            Self::NotAttempted => "not-attempted",
        }
    }
}

/// Objects by what happens to them: planned, or done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counts {
    pub(crate) create: usize,
    pub(crate) update: usize,
    pub(crate) adopt: usize,
    pub(crate) unchanged: usize,
    pub(crate) prune: usize,
    pub(crate) errors: usize,
}

/// One target's line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Row {
    pub(crate) target: String,
    pub(crate) context: String,
    pub(crate) wave: Option<usize>,
    pub(crate) phase: Phase,
    /// What its plan would do.
    pub(crate) plan: Option<Counts>,
    /// What was written and deleted.
    pub(crate) done: Option<Counts>,
    /// `status` and `--wait`: objects ready and not.
    pub(crate) ready: Option<(usize, usize)>,
    /// Which group of identical plans it is in.
    pub(crate) group: Option<usize>,
    pub(crate) took: Duration,
    pub(crate) error: Option<String>,
    pub(crate) requests: usize,
}

impl Row {
    pub(crate) fn failed(&self) -> bool {
        matches!(self.phase, Phase::Failed | Phase::NotAttempted)
    }

    fn line(&self) -> String {
        let counts = self.done.or(self.plan);
        let number = |n: Option<usize>| n.map_or_else(|| "-".to_owned(), |n| n.to_string());
        let mut line = format!(
            "{:<16} {:<16} {:<13} {:>7} {:>7} {:>7} {:>7.1}s",
            self.target,
            self.context,
            self.phase.word(),
            number(counts.map(|c| c.create)),
            number(counts.map(|c| c.update + c.adopt)),
            number(counts.map(|c| c.prune)),
            self.took.as_secs_f64()
        );
        if let Some((ready, total)) = self.ready {
            line.push_str(&format!("  {ready}/{total} ready"));
        }
        if let Some(error) = &self.error {
            line.push_str("  ");
            line.push_str(error);
        }
        escape_controls(&line).into_owned()
    }
}

const HEADER: &str =
    "TARGET           CONTEXT          PHASE          CREATE  UPDATE   PRUNE     TIME";

/// The rows, and their live lines when standard error is a terminal.
pub(crate) struct Board {
    rows: Mutex<Vec<Row>>,
    bars: Vec<ProgressBar>,
    _multi: Option<MultiProgress>,
}

impl Board {
    /// A pending row per `(target, context)`; live only when `live` and standard error is a
    /// terminal.
    pub(crate) fn new(targets: Vec<(String, String)>, live: bool) -> Self {
        let rows: Vec<Row> = targets
            .into_iter()
            .map(|(target, context)| Row {
                target,
                context,
                ..Row::default()
            })
            .collect();
        let multi = (live && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let bars = match &multi {
            Some(multi) => {
                let _ = multi.println(HEADER);
                rows.iter()
                    .map(|row| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        if let Ok(style) = ProgressStyle::with_template("{msg}") {
                            bar.set_style(style);
                        }
                        bar.set_message(row.line());
                        bar
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        Self {
            rows: Mutex::new(rows),
            bars,
            _multi: multi,
        }
    }

    /// Changes a row, and redraws its line.
    pub(crate) fn update(&self, position: usize, change: impl FnOnce(&mut Row)) {
        let mut rows = self
            .rows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(row) = rows.get_mut(position) else {
            return;
        };
        change(row);
        if let Some(bar) = self.bars.get(position) {
            bar.set_message(row.line());
        }
    }

    /// Marks a target failed, with why.
    pub(crate) fn fail(&self, position: usize, error: String) {
        self.update(position, |row| {
            row.phase = Phase::Failed;
            row.error = Some(error);
        });
    }

    pub(crate) fn rows(&self) -> Vec<Row> {
        self.rows
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Ends the live lines, before anything else is printed.
    pub(crate) fn finish(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
    }

    /// The final table on standard output, and a line counting the outcomes.
    pub(crate) fn print(&self) -> std::io::Result<()> {
        self.finish();
        let rows = self.rows();
        let mut out = std::io::stdout().lock();
        writeln!(out, "{HEADER}")?;
        for row in &rows {
            writeln!(out, "{}", row.line())?;
        }
        let failed = rows.iter().filter(|r| r.phase == Phase::Failed).count();
        let skipped = rows
            .iter()
            .filter(|r| r.phase == Phase::NotAttempted)
            .count();
        write!(out, "{} targets: {failed} failed", rows.len())?;
        if skipped > 0 {
            let names: Vec<&str> = rows
                .iter()
                .filter(|r| r.phase == Phase::NotAttempted)
                .map(|r| r.target.as_str())
                .collect();
            write!(out, ", {skipped} not attempted ({})", names.join(", "))?;
        }
        writeln!(out)
    }
}
