use std::{
    env,
    net::TcpListener,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::{
    Api, Client, Config,
    api::{ObjectMeta, PostParams},
    config::{
        AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
        NamedContext,
    },
};
use tokio::sync::OnceCell;

use crate::{
    Binaries, Error, Result,
    binaries::KubeVersion,
    pki::{self, ADMIN, Account, CONTROLLER_MANAGER, Pki, USER},
    process::{POLL_INTERVAL, Process, Reaper},
};

/// Set to `true` to run tests against the cluster of the current kubeconfig instead of
/// starting one (the envtest convention).
const USE_EXISTING_CLUSTER: &str = "USE_EXISTING_CLUSTER";
/// Folder for the control plane's temporary data; the system temp folder when unset.
const DIR_VAR: &str = "CAPSTAN_TESTENV_DIR";
/// kubeconfig context of the administrator; the unprivileged user's adds `-user`.
const CONTEXT: &str = "capstan-testenv";

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
    local: Option<Local>,
}

/// What a control plane started here owns.
#[derive(Debug)]
struct Local {
    // Stopped in reverse order: the controller manager first, etcd last.
    processes: Vec<Process>,
    reaper: Reaper,
    dir: Option<tempfile::TempDir>,
}

impl Drop for Local {
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
        let binaries = match options.binaries.clone() {
            Some(binaries) => binaries,
            None => Binaries::from_env()?,
        };
        let version = binaries.apiserver_version()?;
        let launch = Launch {
            no_fsync: binaries.etcd_has_no_fsync(),
            binaries,
            version,
            options,
        };
        // Free ports are picked before the components bind them, so another process can take
        // one in between; a fresh set of ports cures that.
        let mut attempts_left = 3;
        loop {
            attempts_left -= 1;
            match launch.run().await {
                Err(Failure::PortRace(_)) if attempts_left > 0 => continue,
                Err(Failure::PortRace(error) | Failure::Fatal(error)) => return Err(error),
                Ok(plane) => return Ok(plane),
            }
        }
    }

    /// Uses an existing cluster. The unprivileged user is the administrator impersonating
    /// [`User::UNPRIVILEGED_NAME`].
    ///
    /// # Errors
    ///
    /// [`Error::Kubeconfig`] when the kubeconfig cannot be read; [`Error::Kube`] when the
    /// cluster does not answer.
    pub async fn existing(options: &KubeConfigOptions) -> Result<Self> {
        let admin = Config::from_kubeconfig(options)
            .await
            .map_err(Error::Kubeconfig)?;
        let mut user = admin.clone();
        user.auth_info.impersonate = Some(USER.name.to_owned());
        let kubeconfig = env::var_os("KUBECONFIG")
            .map(PathBuf::from)
            .or_else(|| env::home_dir().map(|home| home.join(".kube/config")))
            .unwrap_or_default();
        let client = Client::try_from(admin.clone()).map_err(Error::Kube)?;
        let version = client.apiserver_version().await.map_err(Error::Kube)?;
        Ok(Self {
            admin,
            user,
            kubeconfig,
            version: version.git_version,
            local: None,
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
        self.local
            .as_ref()
            .is_none_or(|local| local.processes.len() == 3)
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

/// Why one start-up attempt failed.
enum Failure {
    /// Another process took a port first; worth another try.
    PortRace(Error),
    Fatal(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Self::Fatal(error)
    }
}

/// Everything one start-up attempt needs.
struct Launch {
    binaries: Binaries,
    version: KubeVersion,
    no_fsync: bool,
    options: Options,
}

struct Ports {
    etcd_client: u16,
    etcd_peer: u16,
    apiserver: u16,
    controller_manager: u16,
}

impl Launch {
    async fn run(&self) -> Result<ControlPlane, Failure> {
        let base = self
            .options
            .base_dir
            .clone()
            .or_else(|| env::var_os(DIR_VAR).map(PathBuf::from))
            .unwrap_or_else(env::temp_dir);
        let dir = tempfile::Builder::new()
            .prefix("capstan-testenv-")
            .tempdir_in(&base)
            .map_err(Error::io(&base))?;
        // Armed before anything else exists, so nothing escapes it.
        let reaper = Reaper::spawn(dir.path())?;
        let mut local = Local {
            processes: Vec::new(),
            reaper,
            dir: None,
        };
        let root = dir.path().to_path_buf();
        local.dir = Some(dir);

        let accounts = [ADMIN, USER, CONTROLLER_MANAGER];
        let pki = pki::generate(&root, &accounts)?;
        let ports = Ports {
            etcd_client: free_port(&root)?,
            etcd_peer: free_port(&root)?,
            apiserver: free_port(&root)?,
            controller_manager: free_port(&root)?,
        };
        let server = format!("https://127.0.0.1:{}", ports.apiserver);

        let kubeconfig = root.join("kubeconfig");
        write_kubeconfig(
            &kubeconfig,
            &server,
            &pki,
            &[(CONTEXT, ADMIN), (&format!("{CONTEXT}-user"), USER)],
        )?;
        let admin = client_config(&kubeconfig, CONTEXT).await?;
        let user = client_config(&kubeconfig, &format!("{CONTEXT}-user")).await?;

        let etcd_data = root.join("etcd");
        local.processes.push(Process::spawn(
            "etcd",
            &self.binaries.etcd,
            &self.etcd_args(&ports, &etcd_data),
            root.join("etcd.log"),
            &mut local.reaper,
        )?);
        local.processes.push(Process::spawn(
            "kube-apiserver",
            &self.binaries.kube_apiserver,
            &self.apiserver_args(&ports, &pki),
            root.join("kube-apiserver.log"),
            &mut local.reaper,
        )?);

        let deadline = Instant::now() + self.options.timeout;
        let client = Client::try_from(admin.clone()).map_err(Error::Kube)?;
        wait_until(
            &mut local,
            deadline,
            self.options.timeout,
            "kube-apiserver /readyz",
            || {
                let client = client.clone();
                async move {
                    let request = http::Request::get("/readyz").body(Vec::new());
                    match request {
                        Ok(request) => client
                            .request_text(request)
                            .await
                            .is_ok_and(|body| body == "ok"),
                        Err(_) => false,
                    }
                }
            },
        )
        .await?;

        if let Some(controller_manager) = &self.binaries.kube_controller_manager {
            let cm_kubeconfig = root.join("kube-controller-manager.kubeconfig");
            write_kubeconfig(
                &cm_kubeconfig,
                &server,
                &pki,
                &[(CONTEXT, CONTROLLER_MANAGER)],
            )?;
            local.processes.push(Process::spawn(
                "kube-controller-manager",
                controller_manager,
                &self.controller_manager_args(&ports, &pki, &cm_kubeconfig, &root),
                root.join("kube-controller-manager.log"),
                &mut local.reaper,
            )?);
            // The service-account controller creating `default` shows the controllers are
            // running and can write, and Pods cannot be created before it exists anyway.
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
            wait_until(
                &mut local,
                deadline,
                self.options.timeout,
                "kube-controller-manager to create the `default` service account",
                || {
                    let accounts = accounts.clone();
                    async move {
                        accounts
                            .get_opt("default")
                            .await
                            .is_ok_and(|sa| sa.is_some())
                    }
                },
            )
            .await?;
        }

        Ok(ControlPlane {
            admin,
            user,
            kubeconfig,
            version: self.version.text.clone(),
            local: Some(local),
        })
    }

    fn etcd_args(&self, ports: &Ports, data: &Path) -> Vec<String> {
        let client = format!("http://127.0.0.1:{}", ports.etcd_client);
        let peer = format!("http://127.0.0.1:{}", ports.etcd_peer);
        let mut args = vec![
            format!("--data-dir={}", data.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster=default={peer}"),
            "--log-level=warn".to_owned(),
        ];
        if self.no_fsync {
            args.push("--unsafe-no-fsync".to_owned());
        }
        args
    }

    fn apiserver_args(&self, ports: &Ports, pki: &Pki) -> Vec<String> {
        let path = |path: &Path| path.display().to_string();
        let mut args = vec![
            format!("--etcd-servers=http://127.0.0.1:{}", ports.etcd_client),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.apiserver),
            format!("--tls-cert-file={}", path(&pki.serving_cert)),
            format!("--tls-private-key-file={}", path(&pki.serving_key)),
            format!("--client-ca-file={}", path(&pki.ca_cert)),
            format!("--token-auth-file={}", path(&pki.token_auth_file)),
            "--authorization-mode=RBAC".to_owned(),
            "--service-cluster-ip-range=10.0.0.0/24".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_owned(),
            format!(
                "--service-account-key-file={}",
                path(&pki.service_account_pub)
            ),
            format!(
                "--service-account-signing-key-file={}",
                path(&pki.service_account_key)
            ),
            "--allow-privileged=true".to_owned(),
        ];
        if self.version.has_insecure_port() {
            args.push("--insecure-port=0".to_owned());
        }
        if self.binaries.kube_controller_manager.is_none() {
            // Nobody creates service accounts without the controller manager, and the
            // admission plugin would refuse every Pod for want of one.
            args.push("--disable-admission-plugins=ServiceAccount".to_owned());
        }
        args
    }

    fn controller_manager_args(
        &self,
        ports: &Ports,
        pki: &Pki,
        kubeconfig: &Path,
        root: &Path,
    ) -> Vec<String> {
        let path = |path: &Path| path.display().to_string();
        let mut args = vec![
            format!("--kubeconfig={}", path(kubeconfig)),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", ports.controller_manager),
            format!(
                "--cert-dir={}",
                path(&root.join("controller-manager-certs"))
            ),
            format!(
                "--service-account-private-key-file={}",
                path(&pki.service_account_key)
            ),
            format!("--root-ca-file={}", path(&pki.ca_cert)),
            "--leader-elect=false".to_owned(),
        ];
        if self.version.has_insecure_port() {
            args.push("--port=0".to_owned());
        }
        args
    }
}

/// Polls `ready` until it holds, failing early when a component exits.
async fn wait_until<F, Fut>(
    local: &mut Local,
    deadline: Instant,
    timeout: Duration,
    waiting_for: &str,
    ready: F,
) -> Result<(), Failure>
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        if ready().await {
            return Ok(());
        }
        for process in &mut local.processes {
            if let Err(error) = process.check_running() {
                return Err(if process.lost_port_race() {
                    Failure::PortRace(error)
                } else {
                    Failure::Fatal(error)
                });
            }
        }
        if Instant::now() >= deadline {
            let logs = local.processes.iter().map(Process::log_tail).collect();
            return Err(Failure::Fatal(Error::NotReady {
                timeout,
                waiting_for: waiting_for.to_owned(),
                logs,
            }));
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A loopback port that nothing listens on right now.
fn free_port(dir: &Path) -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::io(dir))
}

/// Writes a kubeconfig with one context per `(context, account)`, the first one current.
fn write_kubeconfig(
    path: &Path,
    server: &str,
    pki: &Pki,
    contexts: &[(&str, Account)],
) -> Result<()> {
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: CONTEXT.to_owned(),
            cluster: Some(Cluster {
                server: Some(server.to_owned()),
                certificate_authority: Some(pki.ca_cert.display().to_string()),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        auth_infos: contexts
            .iter()
            .map(|(_, account)| NamedAuthInfo {
                name: account.name.to_owned(),
                auth_info: Some(AuthInfo {
                    token_file: Some(pki.token_file(*account).display().to_string()),
                    ..AuthInfo::default()
                }),
                ..NamedAuthInfo::default()
            })
            .collect(),
        contexts: contexts
            .iter()
            .map(|(context, account)| NamedContext {
                name: (*context).to_owned(),
                context: Some(Context {
                    cluster: CONTEXT.to_owned(),
                    user: Some(account.name.to_owned()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            })
            .collect(),
        current_context: contexts.first().map(|(context, _)| (*context).to_owned()),
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        ..Kubeconfig::default()
    };
    let yaml = serde_yaml::to_string(&kubeconfig).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    pki::write_private(path, yaml.as_bytes())
}

async fn client_config(kubeconfig: &Path, context: &str) -> Result<Config> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).map_err(Error::Kubeconfig)?;
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(Error::Kubeconfig)
}
