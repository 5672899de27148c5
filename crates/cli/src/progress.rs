//! Progress of long work on standard error: a bar on a terminal, nothing otherwise.

use std::io::IsTerminal as _;
use std::sync::Mutex;

use capstan_kube::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar for the libraries' progress: a phase each, and a finished phase's line stays on
/// screen above what follows.
pub(crate) struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
}

impl Bar {
    /// A bar that draws only when standard error is a terminal.
    pub(crate) fn new() -> Self {
        Self {
            bar: Mutex::new(None),
            enabled: std::io::stderr().is_terminal(),
        }
    }

    /// Shows a deployer's event, by the step of progress it means.
    pub(crate) fn event(&self, event: capstan_apply::Event<'_>) {
        self.update(event.progress());
    }

    /// Shows one step of progress; events without one (`None`) change nothing.
    pub(crate) fn update(&self, progress: Option<Progress>) {
        let Some(progress) = progress.filter(|_| self.enabled) else {
            return;
        };
        let mut bar = self.bar.lock().unwrap_or_else(|poison| poison.into_inner());
        match progress {
            Progress::Phase { name, total } => {
                if let Some(old) = bar.replace(start(total, name)) {
                    old.finish();
                }
            }
            Progress::Advance(steps) => {
                if let Some(current) = bar.as_ref() {
                    current.inc(steps as u64);
                }
            }
            Progress::Position(done) => {
                if let Some(current) = bar.as_ref() {
                    current.set_position(done as u64);
                }
            }
            Progress::Note(note) => {
                if let Some(current) = bar.as_ref() {
                    current.set_message(note);
                }
            }
            _ => {}
        }
    }

    /// Ends the last phase before results are printed, leaving its line in place.
    pub(crate) fn finish(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            bar.finish();
        }
    }
}

fn start(total: usize, name: String) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(name);
    bar
}
