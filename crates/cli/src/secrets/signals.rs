//! What capstan does with signals while plaintext exists on disk (`edit`, `exec-file`).

use std::process::{Child, ExitStatus};

#[cfg(unix)]
use anyhow::Context as _;

/// The signals capstan handles while a plaintext copy exists.
///
/// `Ctrl-C`, `Ctrl-\` and a closing terminal (SIGINT, SIGQUIT, SIGHUP) are kept from killing
/// capstan, as git does around its editor: those signals reach the whole foreground process
/// group, so the editor gets them too and decides. If it exits on them, the edit aborts like
/// any editor failure and the copy is removed.
///
/// SIGTERM is sent to capstan alone (by `kill`, a service manager, a CI runner timing out), so
/// capstan acts on it: it stops the editor, removes the copy and its folder, and fails with
/// "terminated". Only SIGKILL, which no program can catch, leaves the copy behind.
///
/// The handlers stay installed while this lives (and, as tokio never removes them, until
/// capstan exits).
#[cfg(unix)]
pub(super) struct Signals {
    runtime: tokio::runtime::Runtime,
    terminate: tokio::signal::unix::Signal,
    _terminal: Vec<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    pub(super) fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let runtime = crate::runtime::runtime()?;
        let (terminate, terminal) = runtime
            .block_on(async {
                let terminal = [
                    SignalKind::interrupt(),
                    SignalKind::quit(),
                    SignalKind::hangup(),
                ]
                .into_iter()
                .map(signal)
                .collect::<std::io::Result<Vec<_>>>()?;
                Ok::<_, std::io::Error>((signal(SignalKind::terminate())?, terminal))
            })
            .context("cannot catch terminal signals")?;
        Ok(Self {
            runtime,
            terminate,
            _terminal: terminal,
        })
    }

    /// Waits for the editor; `None` when SIGTERM came first, after the editor was stopped.
    pub(super) fn wait(&mut self, editor: &mut Child) -> std::io::Result<Option<ExitStatus>> {
        let Self {
            runtime, terminate, ..
        } = self;
        runtime.block_on(async {
            loop {
                if let Some(status) = editor.try_wait()? {
                    return Ok(Some(status));
                }
                let tick = std::time::Duration::from_millis(25);
                if tokio::time::timeout(tick, terminate.recv()).await.is_ok() {
                    // The copy is about to be removed; an editor left running would write
                    // the plaintext back when it saves.
                    editor.kill()?;
                    editor.wait()?;
                    return Ok(None);
                }
            }
        })
    }
}

/// Where signals are not Unix signals, the editor is simply waited for.
#[cfg(not(unix))]
pub(super) struct Signals;

#[cfg(not(unix))]
impl Signals {
    pub(super) fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    pub(super) fn wait(&mut self, editor: &mut Child) -> std::io::Result<Option<ExitStatus>> {
        editor.wait().map(Some)
    }
}
