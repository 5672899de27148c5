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
use tokio::sync::{Mutex, OnceCell};

use crate::{
    Binaries, Error, Result,
    kubeconfig::{self, ADMIN_CONTEXT, USER_CONTEXT},
    launch::{self, APISERVER},
    owned::{Owned, Placement},
    pki::USER,
};

/// Set to `true` to run tests against the cluster of the current kubeconfig instead of
/// starting one (the envtest convention).
const USE_EXISTING_CLUSTER: &str = "USE_EXISTING_CLUSTER";

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
    admin: Config,
    user: Config,
    kubeconfig: PathBuf,
    version: String,
    controllers: bool,
    timeout: Duration,
    /// Its `Drop` stops the processes and removes the files. Behind a lock because a test stops
    /// and starts the API server through `&self` while other tasks use the control plane.
    owned: Mutex<Owned>,
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
        let placement = Placement::Temporary(options.base_dir);
        let started = launch::start(options.binaries, placement, options.timeout).await?;
        let user = kubeconfig::client_config(&started.kubeconfig, USER_CONTEXT).await?;
        Ok(Self {
            admin: started.admin,
            user,
            kubeconfig: started.kubeconfig,
            version: started.version,
            controllers: started.controllers,
            timeout: options.timeout,
            owned: Mutex::new(started.owned),
        })
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
        let owned = Owned::new(&Placement::Temporary(None))?;
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
            timeout: Options::default().timeout,
            owned: Mutex::new(owned),
        })
    }

    /// Kills the kube-apiserver, as a crash would, for tests of how capstan copes with a
    /// server that goes away. Requests fail with connection errors until
    /// [`ControlPlane::start_api_server`]; etcd and the controllers keep running. Does nothing
    /// when it is stopped already.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] for an existing cluster ([`ControlPlane::existing`]), whose
    /// processes are not capstan's to stop.
    pub async fn stop_api_server(&self) -> Result<()> {
        if self.owned.lock().await.stop(APISERVER) {
            Ok(())
        } else {
            Err(Error::NotStarted { action: "stop" })
        }
    }

    /// Starts the kube-apiserver stopped by [`ControlPlane::stop_api_server`] again, on the
    /// same port with the same certificates, tokens and etcd data, and waits until it serves
    /// as [`ControlPlane::start`] does. Clients made before, and the kubeconfig, keep working.
    /// Only waits when it runs already.
    ///
    /// # Errors
    ///
    /// [`Error::NotStarted`] for an existing cluster; [`Error::Spawn`], [`Error::Exited`] or
    /// [`Error::NotReady`] when it does not come back, for example because another process
    /// took its port in the meantime.
    pub async fn start_api_server(&self) -> Result<()> {
        let mut owned = self.owned.lock().await;
        match owned.restart(APISERVER) {
            Some(restarted) => restarted?,
            None => return Err(Error::NotStarted { action: "start" }),
        }
        launch::wait_for_apiserver(&mut owned, &self.admin, self.timeout).await
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
