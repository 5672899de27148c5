//! Child processes that cannot outlive the process that started them.
//!
//! `Drop` stops the components when a [`crate::ControlPlane`] goes out of scope, panics
//! included. That is not enough: a control plane kept in a `static` is never dropped, and a test
//! process killed with SIGKILL (a CI timeout, a nextest slow-test kill, a user) runs no code at
//! all. So every control plane also has a *reaper*: a tiny `sh` in its own process group whose
//! standard input is a pipe from us. The kernel closes that pipe however we die; the reaper then
//! reads end-of-file, kills the components it was told about and removes the data folder.
//! After an orderly stop we tell it to stand down instead.
//!
//! A detached control plane (`capstan local`) has a reaper only while it starts: an interrupted
//! start must not leave half a cluster behind, and a started one must outlive us.

use std::{
    fs::File,
    io::{self, Read as _, Seek as _, SeekFrom, Write as _},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    time::Duration,
};

use crate::{Error, Result};

const REAPER_SCRIPT: &str = r#"
trap '' HUP INT TERM PIPE
pids=
while read -r line; do
  case $line in
    disarm) exit 0 ;;
    -*) keep=; for pid in $pids; do [ "$pid" = "${line#-}" ] || keep="$keep $pid"; done; pids=$keep ;;
    *) pids="$pids $line" ;;
  esac
done
for pid in $pids; do kill -KILL "$pid" 2>/dev/null; done
tries=0
for pid in $pids; do
  while kill -0 "$pid" 2>/dev/null && [ "$tries" -lt 40 ]; do sleep 0.05; tries=$((tries + 1)); done
done
rm -rf -- "$1"
"#;

/// Cleans up after the process that spawned it once that process is gone.
#[derive(Debug)]
pub(crate) struct Reaper {
    child: Child,
    orders: Option<ChildStdin>,
}

impl Reaper {
    /// Starts a reaper that will remove `dir` when this process dies.
    pub(crate) fn spawn(dir: &Path) -> Result<Self> {
        let mut child = Command::new("sh")
            .args(["-c", REAPER_SCRIPT, "capstan-testenv-reaper"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: signals aimed at the test's process group (Ctrl-C, a test runner's
            // group kill) must not take the reaper down with the test.
            .process_group(0)
            .spawn()
            .map_err(|error| Error::Spawn {
                path: PathBuf::from("sh"),
                reason: error.to_string(),
            })?;
        let orders = child.stdin.take();
        Ok(Self { child, orders })
    }

    /// Makes the reaper kill `pid` should this process die.
    fn watch(&mut self, pid: u32) -> io::Result<()> {
        match &mut self.orders {
            Some(orders) => writeln!(orders, "{pid}"),
            None => Ok(()),
        }
    }

    /// Makes the reaper forget `pid`, which was stopped and collected: the number may soon
    /// belong to an unrelated process.
    fn unwatch(&mut self, pid: u32) {
        if let Some(orders) = &mut self.orders {
            // If the reaper is gone it cannot kill anything by mistake either.
            let _ = writeln!(orders, "-{pid}");
        }
    }

    /// Tells the reaper that everything was stopped and removed in an orderly way.
    pub(crate) fn disarm(&mut self) {
        if let Some(mut orders) = self.orders.take() {
            // If the reaper is already gone there is nothing left for it to do anyway.
            let _ = writeln!(orders, "disarm");
        }
        let _ = self.child.wait();
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // Closing the pipe without disarming makes the reaper clean up: the safe default.
        self.orders.take();
        let _ = self.child.wait();
    }
}

/// A running component of the control plane, its output captured in a log file.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) name: &'static str,
    pub(crate) program: PathBuf,
    args: Vec<String>,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program` with `args`, logging to `log`, under the watch of `reaper`.
    pub(crate) fn spawn(
        name: &'static str,
        program: &Path,
        args: Vec<String>,
        log: PathBuf,
        reaper: &mut Reaper,
    ) -> Result<Self> {
        // Appending keeps the log of the previous run when a component is started again.
        let stdout = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(Error::io(&log))?;
        let stderr = stdout.try_clone().map_err(Error::io(&log))?;
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .map_err(|error| Error::Spawn {
                path: program.to_path_buf(),
                reason: error.to_string(),
            })?;
        let mut process = Self {
            name,
            program: program.to_path_buf(),
            args,
            child,
            log,
        };
        if let Err(error) = reaper.watch(process.pid()) {
            process.stop();
            return Err(Error::Spawn {
                path: program.to_path_buf(),
                reason: format!("cannot hand the process to its reaper: {error}"),
            });
        }
        Ok(process)
    }

    /// Starts the same program again with the same arguments and log, in place of this one,
    /// unless this one still runs.
    pub(crate) fn respawn(&mut self, reaper: &mut Reaper) -> Result<()> {
        if matches!(self.child.try_wait(), Ok(None)) {
            return Ok(());
        }
        *self = Self::spawn(
            self.name,
            &self.program,
            self.args.clone(),
            self.log.clone(),
            reaper,
        )?;
        Ok(())
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the log tail when the process has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                component: self.name,
                status: status.to_string(),
                log: self.log_tail(),
            }),
            Err(error) => Err(Error::Exited {
                component: self.name,
                status: error.to_string(),
                log: self.log_tail(),
            }),
        }
    }

    /// The last lines of the process's log.
    pub(crate) fn log_tail(&self) -> String {
        const LINES: usize = 25;
        const MAX_BYTES: u64 = 16 * 1024;
        let Ok(mut file) = File::open(&self.log) else {
            return format!("  (no log at {})", self.log.display());
        };
        let len = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LINES)..]
            .iter()
            .map(|line| format!("  {}: {line}\n", self.name))
            .collect()
    }

    /// Kills the process and waits until it is gone.
    pub(crate) fn stop(&mut self) {
        // SIGKILL: a test control plane has nothing worth a graceful shutdown, and its data
        // folder is removed right after.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process, waits until it is gone, and takes it off `reaper`'s list.
    pub(crate) fn stop_watched(&mut self, reaper: &mut Reaper) {
        self.stop();
        reaper.unwatch(self.pid());
    }

    /// Whether the process exited with an "address already in use" complaint, which a retry
    /// on other ports cures: free ports are picked before the process binds them.
    pub(crate) fn lost_port_race(&self) -> bool {
        self.log_tail().contains("address already in use")
    }
}

/// Waits a little between readiness probes.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);
