//! Starting a control plane: flags for each component, free ports, and waiting for readiness.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client, Config};
use serde::{Deserialize, Serialize};

use crate::{
    Binaries, Error, Result,
    binaries::KubeVersion,
    kubeconfig::{self, ADMIN_CONTEXT, LOCAL_CONTEXT, USER_CONTEXT},
    owned::{Owned, Placement},
    pki::{self, ADMIN, Account, CONTROLLER_MANAGER, Pki, USER},
    process::{POLL_INTERVAL, Process},
};

/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// A control plane that serves, with everything needed to reach it.
pub(crate) struct Started {
    pub(crate) owned: Owned,
    /// The kubeconfig in the control plane's folder; its current context is the administrator.
    pub(crate) kubeconfig: PathBuf,
    pub(crate) admin: Config,
    pub(crate) server: String,
    pub(crate) ports: Ports,
    pub(crate) version: String,
    pub(crate) controllers: bool,
}

/// Starts a control plane from `binaries` (else those of the environment) in `placement`, and
/// waits up to `timeout` until it serves.
pub(crate) async fn start(
    binaries: Option<Binaries>,
    placement: Placement,
    timeout: Duration,
) -> Result<Started> {
    let binaries = match binaries {
        Some(binaries) => binaries,
        None => Binaries::from_env()?,
    };
    let version = binaries.apiserver_version()?;
    let launch = Launch {
        no_fsync: binaries.etcd_has_no_fsync(),
        binaries,
        version,
        placement,
        timeout,
    };
    // Free ports are picked before the components bind them, so another process can take
    // one in between; a fresh set of ports cures that.
    let mut attempts_left = 3;
    loop {
        attempts_left -= 1;
        match launch.run().await {
            Err(Failure::PortRace(_)) if attempts_left > 0 => continue,
            Err(Failure::PortRace(error) | Failure::Fatal(error)) => return Err(error),
            Ok(started) => return Ok(started),
        }
    }
}

/// Waits up to `timeout` until the kube-apiserver of `owned`, started again, serves.
pub(crate) async fn wait_for_apiserver(
    owned: &mut Owned,
    admin: &Config,
    timeout: Duration,
) -> Result<()> {
    let client = Client::try_from(admin.clone()).map_err(Error::Kube)?;
    let deadline = Instant::now() + timeout;
    wait_until(owned, deadline, timeout, APISERVER_READY, || {
        apiserver_ready(client.clone())
    })
    .await
    .map_err(Failure::into_error)
}

/// The kube-apiserver's name among the components.
pub(crate) const APISERVER: &str = "kube-apiserver";
const APISERVER_READY: &str = "kube-apiserver /readyz";

async fn apiserver_ready(client: Client) -> bool {
    match http::Request::get("/readyz").body(Vec::new()) {
        Ok(request) => client
            .request_text(request)
            .await
            .is_ok_and(|body| body == "ok"),
        Err(_) => false,
    }
}

/// Why one start-up attempt failed.
enum Failure {
    /// Another process took a port first; worth another try.
    PortRace(Error),
    Fatal(Error),
}

impl Failure {
    fn into_error(self) -> Error {
        match self {
            Self::PortRace(error) | Self::Fatal(error) => error,
        }
    }
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
    placement: Placement,
    timeout: Duration,
}

/// The loopback ports a control plane listens on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Ports {
    pub(crate) etcd_client: u16,
    pub(crate) etcd_peer: u16,
    pub(crate) apiserver: u16,
    pub(crate) controller_manager: u16,
}

impl Launch {
    async fn run(&self) -> Result<Started, Failure> {
        let mut owned = Owned::new(&self.placement)?;
        let root = owned.path().to_path_buf();

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
        // A detached cluster is for people and their tools: one context, named as it will be in
        // their own kubeconfig. A test plane has both users.
        let (cluster, contexts): (_, &[(&str, &str, Account)]) = match self.placement {
            Placement::Temporary(_) => (
                ADMIN_CONTEXT,
                &[
                    (ADMIN_CONTEXT, ADMIN.name, ADMIN),
                    (USER_CONTEXT, USER.name, USER),
                ],
            ),
            Placement::Detached(_) => (LOCAL_CONTEXT, &[(LOCAL_CONTEXT, LOCAL_CONTEXT, ADMIN)]),
        };
        kubeconfig::write(
            &kubeconfig,
            &kubeconfig::for_local(&server, &pki, cluster, contexts),
        )?;
        let admin = kubeconfig::client_config(&kubeconfig, contexts[0].0).await?;

        let etcd_data = root.join("etcd");
        owned.spawn(
            "etcd",
            &self.binaries.etcd,
            self.etcd_args(&ports, &etcd_data),
        )?;
        owned.spawn(
            APISERVER,
            &self.binaries.kube_apiserver,
            self.apiserver_args(&ports, &pki),
        )?;

        let deadline = Instant::now() + self.timeout;
        let client = Client::try_from(admin.clone()).map_err(Error::Kube)?;
        wait_until(&mut owned, deadline, self.timeout, APISERVER_READY, || {
            apiserver_ready(client.clone())
        })
        .await?;

        if let Some(controller_manager) = &self.binaries.kube_controller_manager {
            let cm_kubeconfig = root.join("kube-controller-manager.kubeconfig");
            let contexts = [(ADMIN_CONTEXT, CONTROLLER_MANAGER.name, CONTROLLER_MANAGER)];
            kubeconfig::write(
                &cm_kubeconfig,
                &kubeconfig::for_local(&server, &pki, ADMIN_CONTEXT, &contexts),
            )?;
            owned.spawn(
                "kube-controller-manager",
                controller_manager,
                self.controller_manager_args(&ports, &pki, &cm_kubeconfig, &root),
            )?;
            // The service-account controller creating `default` shows the controllers are
            // running and can write, and Pods cannot be created before it exists anyway.
            let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
            wait_until(
                &mut owned,
                deadline,
                self.timeout,
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

        Ok(Started {
            owned,
            kubeconfig,
            admin,
            server,
            ports,
            version: self.version.text.clone(),
            controllers: self.binaries.kube_controller_manager.is_some(),
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
    owned: &mut Owned,
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
        // A probe stuck in a TLS handshake or a slow request must not outlast the deadline.
        if tokio::time::timeout(PROBE_TIMEOUT, ready()).await == Ok(true) {
            return Ok(());
        }
        for process in &mut owned.processes {
            if let Err(error) = process.check_running() {
                return Err(if process.lost_port_race() {
                    Failure::PortRace(error)
                } else {
                    Failure::Fatal(error)
                });
            }
        }
        if Instant::now() >= deadline {
            let logs = owned.processes.iter().map(Process::log_tail).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn launch(minor: u32, controller_manager: bool, no_fsync: bool) -> Launch {
        Launch {
            binaries: Binaries {
                etcd: PathBuf::from("etcd"),
                kube_apiserver: PathBuf::from("kube-apiserver"),
                kube_controller_manager: controller_manager
                    .then(|| PathBuf::from("kube-controller-manager")),
            },
            version: KubeVersion {
                minor,
                text: format!("v1.{minor}.0"),
            },
            no_fsync,
            placement: Placement::Temporary(None),
            timeout: Duration::from_secs(1),
        }
    }

    const PORTS: Ports = Ports {
        etcd_client: 1,
        etcd_peer: 2,
        apiserver: 3,
        controller_manager: 4,
    };

    fn args(launch: &Launch) -> (Vec<String>, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::generate(dir.path(), &[ADMIN]).unwrap();
        let apiserver = launch.apiserver_args(&PORTS, &pki);
        let cm =
            launch.controller_manager_args(&PORTS, &pki, Path::new("cm.kubeconfig"), dir.path());
        (apiserver, cm)
    }

    fn has(args: &[String], flag: &str) -> bool {
        args.iter().any(|arg| arg == flag)
    }

    #[test]
    fn old_servers_get_their_insecure_ports_closed() {
        let (apiserver, cm) = args(&launch(20, true, false));
        assert!(has(&apiserver, "--insecure-port=0"), "{apiserver:?}");
        assert!(has(&cm, "--port=0"), "{cm:?}");
    }

    #[test]
    fn current_servers_get_no_flags_they_removed() {
        let (apiserver, cm) = args(&launch(33, true, false));
        assert!(
            !apiserver
                .iter()
                .any(|arg| arg.starts_with("--insecure-port")),
            "{apiserver:?}"
        );
        assert!(!cm.iter().any(|arg| arg.starts_with("--port")), "{cm:?}");
    }

    #[test]
    fn service_account_admission_is_off_only_without_controller_manager() {
        let flag = "--disable-admission-plugins=ServiceAccount";
        assert!(has(&args(&launch(20, false, false)).0, flag));
        assert!(!has(&args(&launch(20, true, false)).0, flag));
    }

    #[test]
    fn etcd_skips_fsync_only_when_it_can() {
        let data = Path::new("/data");
        assert!(has(
            &launch(20, true, true).etcd_args(&PORTS, data),
            "--unsafe-no-fsync"
        ));
        assert!(!has(
            &launch(20, true, false).etcd_args(&PORTS, data),
            "--unsafe-no-fsync"
        ));
    }

    #[test]
    fn service_account_flags_are_set_on_both_components() {
        let (apiserver, cm) = args(&launch(20, true, false));
        for prefix in [
            "--service-account-issuer=",
            "--service-account-key-file=",
            "--service-account-signing-key-file=",
        ] {
            assert!(
                apiserver.iter().any(|arg| arg.starts_with(prefix)),
                "{prefix}"
            );
        }
        for prefix in [
            "--service-account-private-key-file=",
            "--root-ca-file=",
            "--kubeconfig=",
        ] {
            assert!(cm.iter().any(|arg| arg.starts_with(prefix)), "{prefix}");
        }
        assert!(has(&cm, "--leader-elect=false"));
    }
}
