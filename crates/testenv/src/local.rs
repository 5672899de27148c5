//! A control plane that outlives the process that started it, for people and CI jobs
//! (`capstan local`): the test control plane's components, data and certificates in one
//! folder, with a state file to find them again from another process.

use std::{
    env, fs, io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use kube::config::Kubeconfig;
use serde::{Deserialize, Serialize};

use crate::{
    Binaries, Error, Options, Result,
    kubeconfig::{self, LOCAL_CONTEXT},
    launch::{self, Ports},
    owned::Placement,
    pki,
};

/// The state file in a local cluster's folder.
const STATE_FILE: &str = "state.json";
/// How long a component may take to exit after SIGTERM, and then after SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(15);
const KILL_GRACE: Duration = Duration::from_secs(5);

/// How to start a [`LocalCluster`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LocalOptions {
    /// The folder for its data, certificates, logs and state: made when missing, and it must be
    /// empty. [`LocalCluster::stop`] removes it.
    pub dir: PathBuf,
    /// The binaries to run; `None` finds them with [`Binaries::from_env`].
    pub binaries: Option<Binaries>,
    /// How long start-up may take before it fails with the components' logs.
    pub timeout: Duration,
    /// A kubeconfig to add the cluster, user and context [`LocalCluster::CONTEXT`] to once the
    /// cluster serves, as `kind` does (made when missing; other entries stay). `None` leaves
    /// every kubeconfig alone. [`LocalCluster::stop`] removes the entries again.
    pub merge_into: Option<PathBuf>,
    /// Whether to make [`LocalCluster::CONTEXT`] the current context of `merge_into`.
    /// [`LocalCluster::stop`] makes the context before current again, if
    /// [`LocalCluster::CONTEXT`] still is then.
    pub switch_context: bool,
}

impl LocalOptions {
    /// Options for a cluster in `dir`, with the binaries of the environment and the timeout of
    /// [`Options::default`], that changes no kubeconfig.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            binaries: None,
            timeout: Options::default().timeout,
            merge_into: None,
            switch_context: false,
        }
    }
}

/// One process of a [`LocalCluster`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Component {
    /// `etcd`, `kube-apiserver` or `kube-controller-manager`.
    pub name: String,
    /// Its process id when it was started.
    pub pid: u32,
    /// Whether that process still runs the component's binary.
    pub running: bool,
}

/// What [`LocalCluster::stop`] did besides stopping the processes and removing the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stopped {
    /// The kubeconfig the `capstan-local` entries were removed from.
    pub kubeconfig: Option<PathBuf>,
    /// The context made current again, when `capstan-local` still was the current one.
    pub restored_context: Option<String>,
}

/// What the state file records.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct State {
    /// The version of capstan that wrote the file.
    capstan_version: String,
    /// The folder as the components' arguments name it, which tells them from other processes
    /// even when the folder is later reached by another path.
    dir: PathBuf,
    kubernetes_version: String,
    etcd_version: Option<String>,
    server: String,
    kubeconfig: PathBuf,
    ports: Ports,
    /// In start order; stopped in reverse.
    components: Vec<ComponentState>,
    /// Where the context was merged, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    merged: Option<Merged>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ComponentState {
    name: String,
    pid: u32,
    /// The program exactly as started: `/proc/<pid>/cmdline` must still begin with it, so
    /// that a process id the system has handed on is never taken for ours.
    program: PathBuf,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Merged {
    path: PathBuf,
    previous_context: Option<String>,
}

/// A control plane that keeps running after the process that started it ends: etcd,
/// kube-apiserver and, when its binary is found, kube-controller-manager, started in their own
/// process groups with everything in one folder. Another process finds it again with
/// [`LocalCluster::open`] and stops it with [`LocalCluster::stop`]; dropping the value does
/// nothing.
///
/// Its kubeconfig has one context, [`LocalCluster::CONTEXT`], for an administrator
/// (`system:masters`); [`LocalOptions::merge_into`] adds it to a user's kubeconfig.
///
/// ```no_run
/// use capstan_testenv::{LocalCluster, LocalOptions};
///
/// # async fn example() -> Result<(), capstan_testenv::Error> {
/// let dir = LocalCluster::default_dir()?;
/// let mut options = LocalOptions::new(&dir);
/// options.merge_into = Some(LocalCluster::default_kubeconfig()?);
/// options.switch_context = true;
/// let cluster = LocalCluster::start(options).await?;
/// println!("serving at {}", cluster.server_url());
/// // ... later, possibly from another process:
/// if let Some(cluster) = LocalCluster::open(&dir)? {
///     cluster.stop()?;
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LocalCluster {
    dir: PathBuf,
    state: State,
}

impl LocalCluster {
    /// The name of the context, cluster and user in the kubeconfigs.
    pub const CONTEXT: &str = LOCAL_CONTEXT;

    /// The default folder: `$XDG_STATE_HOME/capstan/local`, else
    /// `~/.local/state/capstan/local`.
    ///
    /// # Errors
    ///
    /// [`Error::NoHome`] when neither `XDG_STATE_HOME` nor `HOME` is set.
    pub fn default_dir() -> Result<PathBuf> {
        // The XDG specification says to ignore relative paths.
        let state_home = env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .filter(|path| path.is_absolute());
        let state_home = match state_home {
            Some(path) => path,
            None => home()?.join(".local/state"),
        };
        Ok(state_home.join("capstan/local"))
    }

    /// The kubeconfig that `kubectl` and capstan read and change by default: the first path in
    /// `KUBECONFIG`, else `~/.kube/config`.
    ///
    /// # Errors
    ///
    /// [`Error::NoHome`] when `KUBECONFIG` names no file and `HOME` is not set.
    pub fn default_kubeconfig() -> Result<PathBuf> {
        let first = env::var_os("KUBECONFIG")
            .and_then(|paths| env::split_paths(&paths).find(|path| !path.as_os_str().is_empty()));
        match first {
            Some(path) => Ok(path),
            None => Ok(home()?.join(".kube/config")),
        }
    }

    /// Starts a cluster in `options.dir`, waits until it serves, and merges its context into
    /// `options.merge_into`. A cluster recorded there that no longer runs completely is stopped
    /// and removed first.
    ///
    /// A failed or interrupted start (Ctrl-C, SIGKILL) leaves nothing behind: until the
    /// cluster is ready the same watcher as a test control plane's removes it.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyRunning`] when a cluster runs from the folder; [`Error::DirNotEmpty`]
    /// when the folder holds other files; the errors of [`crate::ControlPlane::start`] when
    /// the cluster does not come up; [`Error::KubeconfigFile`] or [`Error::Io`] when
    /// `options.merge_into` cannot be read or written (the cluster is stopped again).
    pub async fn start(options: LocalOptions) -> Result<Self> {
        let dir = std::path::absolute(&options.dir).map_err(Error::io(&options.dir))?;
        if let Some(previous) = Self::open(&dir)? {
            if previous.is_running() {
                return Err(Error::AlreadyRunning { dir });
            }
            previous.stop()?;
        }
        let binaries = match options.binaries {
            Some(binaries) => binaries,
            None => Binaries::from_env()?,
        };
        let etcd_version = binaries.etcd_version();
        let placement = Placement::Detached(dir.clone());
        let started = launch::start(Some(binaries), placement, options.timeout).await?;
        let components = started
            .owned
            .processes
            .iter()
            .map(|process| ComponentState {
                name: process.name.to_owned(),
                pid: process.pid(),
                program: process.program.clone(),
            })
            .collect();
        let mut cluster = Self {
            dir: dir.clone(),
            state: State {
                capstan_version: env!("CARGO_PKG_VERSION").to_owned(),
                dir,
                kubernetes_version: started.version,
                etcd_version,
                server: started.server,
                kubeconfig: started.kubeconfig,
                ports: started.ports,
                components,
                merged: None,
            },
        };
        // Until the state is on disk nobody could find the processes again: a failure here
        // still stops them and removes the folder.
        cluster.save()?;
        started.owned.detach();
        if let Some(path) = &options.merge_into
            && let Err(error) = cluster.merge(path, options.switch_context)
        {
            // A cluster the user's tools cannot reach is no use; `stop` undoes the rest.
            let _ = cluster.stop();
            return Err(error);
        }
        Ok(cluster)
    }

    /// The cluster recorded in `dir`, running or not; `None` when there is none.
    ///
    /// # Errors
    ///
    /// [`Error::State`] or [`Error::Io`] when the state file cannot be read.
    pub fn open(dir: &Path) -> Result<Option<Self>> {
        let dir = std::path::absolute(dir).map_err(Error::io(dir))?;
        let path = dir.join(STATE_FILE);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Error::io(&path)(error)),
        };
        let state = serde_json::from_slice(&text).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Self { dir, state }))
    }

    /// Whether every component still runs.
    pub fn is_running(&self) -> bool {
        self.components().iter().all(|component| component.running)
    }

    /// The components in start order, and whether each still runs.
    pub fn components(&self) -> Vec<Component> {
        self.state
            .components
            .iter()
            .map(|component| Component {
                name: component.name.clone(),
                pid: component.pid,
                running: runs(component, &self.state.dir),
            })
            .collect()
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kubeconfig in the cluster's folder, with the one context [`LocalCluster::CONTEXT`].
    pub fn kubeconfig(&self) -> &Path {
        &self.state.kubeconfig
    }

    /// The API server's URL.
    pub fn server_url(&self) -> &str {
        &self.state.server
    }

    /// The API server's version, for example `v1.20.2`.
    pub fn version(&self) -> &str {
        &self.state.kubernetes_version
    }

    /// The kubeconfig the cluster's context was merged into, if it was.
    pub fn merged_kubeconfig(&self) -> Option<&Path> {
        self.state
            .merged
            .as_ref()
            .map(|merged| merged.path.as_path())
    }

    /// The current context of [`LocalCluster::merged_kubeconfig`] before the cluster's context
    /// was merged into it.
    pub fn previous_context(&self) -> Option<&str> {
        self.state.merged.as_ref()?.previous_context.as_deref()
    }

    /// Adds the cluster's entries to the kubeconfig at `path`; see [`LocalOptions::merge_into`].
    fn merge(&mut self, path: &Path, switch: bool) -> Result<()> {
        let path = std::path::absolute(path).map_err(Error::io(path))?;
        let source = Kubeconfig::read_from(&self.state.kubeconfig).map_err(|source| {
            Error::KubeconfigFile {
                path: self.state.kubeconfig.clone(),
                source,
            }
        })?;
        // A context left over from a cluster whose folder was deleted is no context to go
        // back to.
        let previous_context =
            kubeconfig::merge(&path, &source, switch)?.filter(|context| context != LOCAL_CONTEXT);
        self.state.merged = Some(Merged {
            path,
            previous_context,
        });
        self.save()
    }

    /// Stops the components that still run (SIGTERM, then SIGKILL), removes the cluster's
    /// entries from the kubeconfig it was merged into, and removes its folder.
    ///
    /// # Errors
    ///
    /// [`Error::StillRunning`] when a component survives SIGKILL; [`Error::Io`] or
    /// [`Error::KubeconfigFile`] when the kubeconfig or the folder cannot be changed.
    pub fn stop(self) -> Result<Stopped> {
        for component in self.state.components.iter().rev() {
            stop(component, &self.state.dir)?;
        }
        let mut stopped = Stopped {
            kubeconfig: None,
            restored_context: None,
        };
        if let Some(merged) = &self.state.merged {
            let previous = merged.previous_context.as_deref();
            if kubeconfig::unmerge(&merged.path, previous)? {
                stopped.restored_context = merged.previous_context.clone();
            }
            stopped.kubeconfig = Some(merged.path.clone());
        }
        match fs::remove_dir_all(&self.dir) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                Err(Error::io(&self.dir)(error))
            }
            _ => Ok(stopped),
        }
    }

    fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&self.state).map_err(|source| Error::State {
            path: path.clone(),
            source,
        })?;
        pki::write_private(&path, &json)
    }
}

fn home() -> Result<PathBuf> {
    env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .ok_or(Error::NoHome)
}

/// Whether `component`'s process still runs its program from `dir`. A process id is reused once
/// its process has ended, so the command line must match too: every component's arguments name
/// files in its folder.
fn runs(component: &ComponentState, dir: &Path) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{}/cmdline", component.pid)) else {
        return false;
    };
    let mut args = cmdline
        .split(|byte| *byte == 0)
        .map(String::from_utf8_lossy);
    let program = component.program.to_string_lossy();
    let dir = dir.to_string_lossy();
    args.next().is_some_and(|first| first == program) && args.any(|arg| arg.contains(&*dir))
}

/// Ends `component` if it runs: SIGTERM, so that etcd closes its data cleanly, then SIGKILL.
fn stop(component: &ComponentState, dir: &Path) -> Result<()> {
    for (signal, grace) in [("TERM", TERM_GRACE), ("KILL", KILL_GRACE)] {
        if !runs(component, dir) {
            return Ok(());
        }
        // The shell's built-in `kill`: these processes are not our children, and there is no
        // other way to signal them without unsafe code.
        let _ = Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "capstan-local-stop", signal])
            .arg(component.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + grace;
        while runs(component, dir) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if runs(component, dir) {
        return Err(Error::StillRunning {
            component: component.name.clone(),
            pid: component.pid,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Child;

    use super::*;

    fn component(program: &str, pid: u32) -> ComponentState {
        ComponentState {
            name: "etcd".to_owned(),
            pid,
            program: PathBuf::from(program),
        }
    }

    /// `tail -f file`, killed when dropped so that a failed test leaves nothing running.
    struct Tail(Child);

    impl Tail {
        fn spawn(file: &Path) -> Self {
            let child = Command::new("tail")
                .arg("-f")
                .arg(file)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            // `spawn` returns while the kernel may still be setting up the new command line.
            let cmdline = format!("/proc/{}/cmdline", child.id());
            let deadline = Instant::now() + Duration::from_secs(5);
            while fs::read(&cmdline).unwrap_or_default().is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            Self(child)
        }
    }

    impl Drop for Tail {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn recorded_component_runs_only_while_its_program_runs_from_its_folder_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("etcd.log");
        fs::write(&log, "").unwrap();
        let mut tail = Tail::spawn(&log);
        let ours = component("tail", tail.0.id());
        assert!(runs(&ours, dir.path()));
        assert!(!runs(&ours, Path::new("/elsewhere")));

        stop(&ours, dir.path()).unwrap();
        // Our own child lingers as a zombie until collected; it runs nothing.
        assert!(!runs(&ours, dir.path()));
        assert!(tail.0.wait().unwrap().code().is_none(), "ended by a signal");
    }

    #[test]
    fn process_id_handed_on_to_another_program_is_never_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut unrelated = Tail::spawn(Path::new("/dev/null"));
        let recorded = component("/opt/envtest/etcd", unrelated.0.id());
        assert!(!runs(&recorded, dir.path()));
        stop(&recorded, dir.path()).unwrap();
        assert!(unrelated.0.try_wait().unwrap().is_none(), "it was killed");
    }
}
