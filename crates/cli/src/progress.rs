//! Progress of long work on standard error: a bar on a terminal, nothing otherwise.

use std::io::IsTerminal as _;
use std::sync::Mutex;

use capstan_apply::Event;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Turns the deployer's events into a progress bar.
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

    /// Handles one event.
    pub(crate) fn event(&self, event: Event<'_>) {
        if !self.enabled {
            return;
        }
        let mut bar = self.bar.lock().unwrap_or_else(|poison| poison.into_inner());
        let mut replace = |total: usize, message: &str| {
            if let Some(old) = bar.replace(start(total, message)) {
                old.finish_and_clear();
            }
        };
        match event {
            Event::Checking { total } => replace(total, "checking"),
            Event::Wave { index, writes } => replace(writes, &format!("wave {index}")),
            Event::Scanning { resources } => replace(resources, "scanning resource types"),
            _ => {}
        }
        match event {
            Event::Ready { ready, total } => {
                let current = bar.get_or_insert_with(|| start(total, "waiting for readiness"));
                current.set_position(ready as u64);
            }
            Event::Establishing { count } => {
                if let Some(current) = bar.as_ref() {
                    current.set_message(format!("waiting for {count} CRDs to be Established"));
                }
            }
            Event::Checked { .. } | Event::Applied { .. } | Event::Deleted { .. } => {
                if let Some(current) = bar.as_ref() {
                    current.inc(1);
                }
            }
            _ => {}
        }
    }

    /// Removes the bar before results are printed.
    pub(crate) fn finish(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}

fn start(total: usize, message: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message.to_owned());
    bar
}
