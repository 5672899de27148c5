use std::{
    env,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::core::v1::Namespace;
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, PostParams},
    config::KubeConfigOptions,
};
use tokio::sync::OnceCell;

use crate::{
    Binaries, Error, Result,
    kubeconfig::{self, ADMIN_CONTEXT, USER_CONTEXT},
    launch,
    pki::USER,
    process::{Process, Reaper},
};

/// Set to `true` to run tests against the cluster of the current kubeconfig instead of
/// starting one (the envtest convention).
const USE_EXISTING_CLUSTER: &str = "USE_EXISTING_CLUSTER";
/// Folder for the control plane's temporary data; the system temp folder when unset.
const DIR_VAR: &str = "CAPSTAN_TESTENV_DIR";

/// Who a client acts as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// Member of `system:masters`: may do anything.
    Admin,
    /// Authenticated, with no other permission, for tests of RBAC behaviour. Its user name is
    /// [`User::UNPRIVILEGED_NAME`], for RoleBindings.
    Unprivileged,
}

impl User {
    /// The Kubernetes user name of [`User::Unprivileged`].
    pub const UNPRIVILEGED_NAME: &str = USER.name;
}

/// How to start a control plane. `Options::default()` finds the binaries from the environment
/// and waits up to a minute and a half for readiness.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Options {
    /// The binaries to run; `None` finds them with [`Binaries::from_env`].
    pub binaries: Option<Binaries>,
    /// How long start-up may take before it fails with the components' logs.
    pub timeout: Duration,
    /// Where the temporary data folder is made; `None` uses `CAPSTAN_TESTENV_DIR`, or else the
    /// system's temporary folder.
    pub base_dir: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            binaries: None,
            // kube-apiserver 1.20 takes 5 to 15 s on two busy cores; leave room for a loaded CI.
            timeout: Duration::from_secs(90),
            base_dir: None,
        }
    }
}

/// A Kubernetes control plane to test against: a real etcd, kube-apiserver and (when its
/// binary is there) kube-controller-manager started on loopback, or an existing cluster.
///
/// Dropping a started control plane stops its processes and removes its files. See the crate
/// documentation for how it also cleans up after a killed test process.
#[derive(Debug)]
pub struct ControlPlane {
    pub(crate) admin: Config,
    pub(crate) user: Config,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) version: String,
    pub(crate) controllers: bool,
    /// Held for its `Drop`, which stops the processes and removes the files.
    pub(crate) _owned: Owned,
}

/// The processes and files a control plane owns: everything under one private folder, watched
/// by a reaper. For an existing cluster that is just the kubeconfig it writes.
#[derive(Debug)]
pub(crate) struct Owned {
    // Stopped in reverse order: the controller manager first, etcd last.
    pub(crate) processes: Vec<Process>,
    root: PathBuf,
    // An `Option` only so that `Drop` can remove it before disarming the reaper.
    dir: Option<tempfile::TempDir>,
    reaper: Reaper,
}

impl Owned {
    /// Makes the private folder, under `base` or else `CAPSTAN_TESTENV_DIR` or the system's
    /// temporary folder, and arms its reaper before anything else exists.
    pub(crate) fn new(base: Option<PathBuf>) -> Result<Self> {
        let base = base
            .or_else(|| env::var_os(DIR_VAR).map(PathBuf::from))
            .unwrap_or_else(env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("capstan-testenv-")
            .tempdir_in(&base)
            .map_err(Error::io(&base))?;
        let reaper = Reaper::spawn(dir.path())?;
        Ok(Self {
            processes: Vec::new(),
            root: dir.path().to_path_buf(),
            dir: Some(dir),
            reaper,
        })
    }

    /// Starts a component that logs to `<name>.log` in the folder, under the reaper's watch.
    pub(crate) fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: &[String],
    ) -> Result<()> {
        let log = self.path().join(format!("{name}.log"));
        let process = Process::spawn(name, program, args, log, &mut self.reaper)?;
        self.processes.push(process);
        Ok(())
    }

    /// The private folder.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        for process in self.processes.iter_mut().rev() {
            process.stop();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
        self.reaper.disarm();
    }
}

static SHARED: OnceCell<Result<ControlPlane, Arc<Error>>> = OnceCell::const_new();
static NAMESPACES: AtomicU32 = AtomicU32::new(0);

impl ControlPlane {
    /// The control plane shared by every test of this test binary, started by the first test
    /// that asks. With `USE_EXISTING_CLUSTER=true` it is the cluster of the current kubeconfig.
    ///
    /// A `static` is never dropped: when the test binary exits, the reaper stops the processes
    /// and removes the files.
    ///
    /// # Errors
    ///
    /// [`Error::Shared`] wrapping why it could not start; every later call gets the same error.
    pub async fn shared() -> Result<&'static Self> {
        let started = SHARED
            .get_or_init(|| async {
                let use_existing =
                    env::var(USE_EXISTING_CLUSTER).is_ok_and(|value| value == "true");
                let started = if use_existing {
                    Self::existing(&KubeConfigOptions::default()).await
                } else {
                    Self::start(Options::default()).await
                };
                started.map_err(Arc::new)
            })
            .await;
        started
            .as_ref()
            .map_err(|error| Error::Shared(Arc::clone(error)))
    }

    /// Starts etcd, kube-apiserver and, when its binary is found, kube-controller-manager on
    /// free loopback ports, and waits until they serve.
    ///
    /// # Errors
    ///
    /// [`Error::BinariesNotFound`] when the binaries are missing; [`Error::Exited`] or
    /// [`Error::NotReady`], with the last lines of the components' logs, when the control
    /// plane does not come up.
    pub async fn start(options: Options) -> Result<Self> {
        launch::start(options).await
    }

    /// Uses an existing cluster: the context `options` names, or the current one of the
    /// kubeconfig (`KUBECONFIG` or `~/.kube/config`). The unprivileged user is the same
    /// credentials impersonating [`User::UNPRIVILEGED_NAME`].
    ///
    /// # Errors
    ///
    /// [`Error::Kubeconfig`] when the kubeconfig cannot be read; [`Error::Kube`] when the
    /// cluster does not answer.
    pub async fn existing(options: &KubeConfigOptions) -> Result<Self> {
        let owned = Owned::new(None)?;
        let path = owned.path().join("kubeconfig");
        kubeconfig::write(&path, &kubeconfig::for_existing(options)?)?;
        let admin = kubeconfig::client_config(&path, ADMIN_CONTEXT).await?;
        let user = kubeconfig::client_config(&path, USER_CONTEXT).await?;
        let client = Client::try_from(admin.clone()).map_err(Error::Kube)?;
        let version = client.apiserver_version().await.map_err(Error::Kube)?;
        Ok(Self {
            admin,
            user,
            kubeconfig: path,
            version: version.git_version,
            controllers: true,
            _owned: owned,
        })
    }

    /// A new client acting as `user`. Call it inside the Tokio runtime that will use the client:
    /// a client is bound to the runtime it was made in.
    ///
    /// # Errors
    ///
    /// [`Error::Kube`] when the client cannot be built (it makes no request).
    pub fn client(&self, user: User) -> Result<Client> {
        Client::try_from(self.config(user)).map_err(Error::Kube)
    }

    /// The client configuration for `user`.
    pub fn config(&self, user: User) -> Config {
        match user {
            User::Admin => self.admin.clone(),
            User::Unprivileged => self.user.clone(),
        }
    }

    /// A kubeconfig file for `kubectl`, the `capstan` binary and other programs. Its current
    /// context `capstan-testenv` is the administrator; `capstan-testenv-user` is the
    /// unprivileged user.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// A `kubectl` command for this control plane, as the administrator unless the arguments
    /// name another `--context`. The binary is the provisioned one next to the control plane's
    /// (`$KUBEBUILDER_ASSETS/kubectl`, whose version matches the server), else `kubectl` on the
    /// `PATH`.
    pub fn kubectl(&self) -> std::process::Command {
        let program = env::var_os("KUBEBUILDER_ASSETS")
            .map(|dir| Path::new(&dir).join("kubectl"))
            .filter(|path| path.exists())
            .unwrap_or_else(|| "kubectl".into());
        let mut command = std::process::Command::new(program);
        command.arg("--kubeconfig").arg(&self.kubeconfig);
        command
    }

    /// The API server's version, for example `v1.20.2`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The API server's URL.
    pub fn server_url(&self) -> String {
        self.admin.cluster_url.to_string()
    }

    /// Whether controllers run: garbage collection, namespace deletion, Deployments. An
    /// existing cluster is assumed to have them.
    pub fn has_controllers(&self) -> bool {
        self.controllers
    }

    /// Creates a namespace of its own for one test, named `<prefix>-<unique suffix>`.
    ///
    /// # Errors
    ///
    /// [`Error::Kube`] when the namespace cannot be created.
    pub async fn create_namespace(&self, prefix: &str) -> Result<String> {
        let count = NAMESPACES.fetch_add(1, Ordering::Relaxed);
        // The process id keeps names apart when several test binaries share an existing cluster.
        let name = format!("{prefix}-{}-{count}", std::process::id());
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("capstan.io/test".to_owned(), "true".to_owned())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let namespaces: Api<Namespace> = Api::all(self.client(User::Admin)?);
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .map_err(Error::Kube)?;
        Ok(name)
    }
}
