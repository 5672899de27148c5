use std::{fmt, path::PathBuf, sync::Arc, time::Duration};

/// Everything that can go wrong while starting or using a test control plane.
///
/// `Debug` prints the message and its causes, because tests `unwrap()` these errors and the
/// message is what tells a developer to provision the binaries.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The control plane's binaries were not found where the envtest convention looks.
    #[error(
        "cannot find {missing}: set KUBEBUILDER_ASSETS to a folder that holds kube-apiserver and \
         etcd (optionally kube-controller-manager), or name each binary with TEST_ASSET_ETCD, \
         TEST_ASSET_KUBE_APISERVER and TEST_ASSET_KUBE_CONTROLLER_MANAGER; in a capstan \
         checkout `export KUBEBUILDER_ASSETS=\"$(scripts/envtest.sh)\"` provisions them ({searched})"
    )]
    BinariesNotFound {
        /// The binaries that are missing, for example `kube-apiserver and etcd`.
        missing: String,
        /// Where they were looked for.
        searched: String,
    },

    /// A file or folder of the control plane could not be written or read.
    #[error("cannot prepare `{}`", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A binary could not be started, or its version could not be read.
    #[error("cannot run `{}`: {reason}", path.display())]
    Spawn {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// Generating the control plane's certificates or keys failed.
    #[error("cannot generate the control plane's certificates")]
    Certificates(#[source] rcgen::Error),

    /// A component exited before the control plane was ready.
    #[error("{component} exited while starting ({status}); last lines of its log:\n{log}")]
    Exited {
        /// `etcd`, `kube-apiserver` or `kube-controller-manager`.
        component: &'static str,
        /// How it exited.
        status: String,
        /// The tail of its log.
        log: String,
    },

    /// The control plane did not become ready in time.
    #[error(
        "control plane not ready after {timeout:?}: {waiting_for}; last lines of the logs:\n{logs}"
    )]
    NotReady {
        /// How long it waited.
        timeout: Duration,
        /// What it was waiting for.
        waiting_for: String,
        /// The tail of each component's log.
        logs: String,
    },

    /// A kubeconfig for the control plane could not be turned into a client configuration.
    #[error("cannot configure a client for the control plane")]
    Kubeconfig(#[source] kube::config::KubeconfigError),

    /// A request to the control plane failed.
    #[error("request to the test control plane failed")]
    Kube(#[source] kube::Error),

    /// The user's kubeconfig file could not be read.
    #[error("cannot read the kubeconfig `{}`", path.display())]
    KubeconfigFile {
        /// The kubeconfig file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },

    /// A component can only be stopped and started on a control plane capstan started.
    #[error(
        "cannot {action} the API server of an existing cluster: only a control plane from \
         `ControlPlane::start` can"
    )]
    NotStarted {
        /// `stop` or `start`.
        action: &'static str,
    },

    /// The folder for a local cluster holds files that are not a local cluster's.
    #[error(
        "`{}` is not empty and holds no capstan local cluster; choose an empty or new folder",
        path.display()
    )]
    DirNotEmpty {
        /// The folder.
        path: PathBuf,
    },

    /// A local cluster already runs from this folder.
    #[error("a local cluster is already running from `{}`", dir.display())]
    AlreadyRunning {
        /// Its folder.
        dir: PathBuf,
    },

    /// The state file of a local cluster could not be read or written.
    #[error("the local cluster state `{}` is unusable", path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// A component of a local cluster did not end when told to.
    #[error("{component} (pid {pid}) is still running after SIGKILL")]
    StillRunning {
        /// `etcd`, `kube-apiserver` or `kube-controller-manager`.
        component: String,
        /// Its process id.
        pid: u32,
    },

    /// The home folder is unknown, so the default folders cannot be found.
    #[error("cannot find the home folder: HOME is not set")]
    NoHome,

    /// The control plane shared by this test binary failed to start; every test that asks for
    /// it gets the same error.
    #[error(transparent)]
    Shared(Arc<Error>),
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            write!(f, "\n  caused by: {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

/// The result of a control-plane operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;
