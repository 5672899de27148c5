//! The processes and files a control plane owns, and how they go away.

use std::{
    env, fs,
    os::unix::fs::DirBuilderExt as _,
    path::{Path, PathBuf},
};

use crate::{
    Error, Result,
    process::{Process, Reaper},
};

/// Folder for the control plane's temporary data; the system temp folder when unset.
const DIR_VAR: &str = "CAPSTAN_TESTENV_DIR";

/// Where a control plane keeps its files, and whether they outlive this process.
#[derive(Clone, Debug)]
pub(crate) enum Placement {
    /// A fresh private folder under the given one (else `CAPSTAN_TESTENV_DIR` or the system's
    /// temporary folder), removed with the control plane.
    Temporary(Option<PathBuf>),
    /// This folder, which must be missing or empty. Once [`Owned::detach`] is called the
    /// processes and files stay when this process ends.
    Detached(PathBuf),
}

/// Everything under one private folder, watched by a reaper. For an existing cluster that is
/// just the kubeconfig it writes.
#[derive(Debug)]
pub(crate) struct Owned {
    // Stopped in reverse order: the controller manager first, etcd last.
    pub(crate) processes: Vec<Process>,
    root: PathBuf,
    // An `Option` only so that `Drop` can remove it before disarming the reaper.
    temp: Option<tempfile::TempDir>,
    detached: bool,
    reaper: Reaper,
}

impl Owned {
    /// Makes the folder and arms its reaper before anything else exists.
    pub(crate) fn new(placement: &Placement) -> Result<Self> {
        let (root, temp) = match placement {
            Placement::Temporary(base) => {
                let base = base
                    .clone()
                    .or_else(|| env::var_os(DIR_VAR).map(PathBuf::from))
                    .unwrap_or_else(env::temp_dir);
                let temp = tempfile::Builder::new()
                    .prefix("capstan-testenv-")
                    .tempdir_in(&base)
                    .map_err(Error::io(&base))?;
                (temp.path().to_path_buf(), Some(temp))
            }
            Placement::Detached(dir) => {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(Error::io(dir))?;
                // The folder is removed on failure and by `capstan local down`: it must hold
                // nothing that is not ours.
                let mut entries = fs::read_dir(dir).map_err(Error::io(dir))?;
                if entries.next().is_some() {
                    return Err(Error::DirNotEmpty { path: dir.clone() });
                }
                (dir.clone(), None)
            }
        };
        let reaper = Reaper::spawn(&root)?;
        Ok(Self {
            processes: Vec::new(),
            root,
            temp,
            detached: false,
            reaper,
        })
    }

    /// Starts a component that logs to `<name>.log` in the folder, under the reaper's watch.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: Vec<String>,
    ) -> Result<()> {
        let log = self.path().join(format!("{name}.log"));
        let process = Process::spawn(name, program, args, log, &mut self.reaper)?;
        self.processes.push(process);
        Ok(())
    }

    /// Kills the component called `name`, which keeps its place to be started again; `false`
    /// when there is no such component.
    pub(crate) fn stop(&mut self, name: &str) -> bool {
        let process = self.processes.iter_mut().find(|p| p.name == name);
        process
            .map(|process| process.stop_watched(&mut self.reaper))
            .is_some()
    }

    /// Starts the component called `name` again, as it was started first; `None` when there is
    /// no such component.
    pub(crate) fn restart(&mut self, name: &str) -> Option<Result<()>> {
        let process = self.processes.iter_mut().find(|p| p.name == name)?;
        Some(process.respawn(&mut self.reaper))
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// Lets the processes and the folder outlive this process, and returns the processes.
    pub(crate) fn detach(mut self) -> Vec<Process> {
        self.detached = true;
        std::mem::take(&mut self.processes)
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
        if let Some(temp) = self.temp.take() {
            let _ = temp.close();
        } else if !self.detached {
            let _ = fs::remove_dir_all(&self.root);
        }
        self.reaper.disarm();
    }
}
