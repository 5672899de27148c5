//! `capstan local up|status|down`: a Kubernetes cluster on this machine, from the binaries the
//! tests use, over `capstan-testenv`'s `LocalCluster`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use capstan_testenv::{Binaries, LocalCluster, LocalOptions};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::OutputArgs;
use crate::{ExitCode, Failure};

/// A local Kubernetes cluster to try capstan on and for CI jobs: etcd, kube-apiserver and
/// kube-controller-manager on loopback, running in the background.
///
/// The binaries come from `--assets`, else from KUBEBUILDER_ASSETS or the TEST_ASSET_ETCD,
/// TEST_ASSET_KUBE_APISERVER and TEST_ASSET_KUBE_CONTROLLER_MANAGER variables; in a capstan
/// checkout, `export KUBEBUILDER_ASSETS="$(scripts/envtest.sh)"` provisions them.
#[derive(Debug, Args)]
pub(crate) struct LocalArgs {
    /// The cluster's folder for data, certificates, logs and state [default:
    /// $XDG_STATE_HOME/capstan/local, else ~/.local/state/capstan/local]
    #[arg(long, global = true, value_name = "DIR")]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    Up(UpArgs),
    Status(StatusArgs),
    /// Stop the local cluster and remove its folder and its kubeconfig context
    ///
    /// Removes `capstan-local` from the kubeconfig `up` added it to and, if it is still the
    /// current context, makes the context before current again. When no cluster runs, says so
    /// and succeeds.
    Down,
}

/// Start the local cluster in the background and make `capstan-local` the current context
///
/// Waits until the cluster serves, then adds the context `capstan-local` to your kubeconfig
/// (the first file in KUBECONFIG, else ~/.kube/config) and makes it current, so that kubectl
/// and capstan use the cluster without flags. When the cluster runs already, says so and
/// succeeds.
#[derive(Debug, Args)]
struct UpArgs {
    /// Folder holding kube-apiserver, etcd and optionally kube-controller-manager
    #[arg(long, value_name = "DIR")]
    assets: Option<PathBuf>,

    /// Add the context `capstan-local` without making it the current one
    #[arg(long)]
    no_switch: bool,
}

/// Show whether the local cluster runs, where it serves and what it consists of.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the cluster runs; 2 it does not (or only partly) run, or the \
                  status cannot be read."
)]
struct StatusArgs {
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: &LocalArgs) -> Result<ExitCode, Failure> {
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => LocalCluster::default_dir()?,
    };
    match &args.command {
        LocalCommand::Up(up_args) => up(&dir, up_args),
        LocalCommand::Status(status_args) => status(&dir, &status_args.output),
        LocalCommand::Down => down(&dir),
    }
}

fn up(dir: &Path, args: &UpArgs) -> Result<ExitCode, Failure> {
    let mut stderr = std::io::stderr().lock();
    if let Some(cluster) = LocalCluster::open(dir)? {
        if cluster.is_running() {
            writeln!(
                stderr,
                "a local cluster is already running at {} (Kubernetes {}), from {}",
                cluster.server_url(),
                cluster.version(),
                cluster.dir().display()
            )?;
            return Ok(ExitCode::Success);
        }
        writeln!(
            stderr,
            "the local cluster in {} no longer runs completely; replacing it",
            cluster.dir().display()
        )?;
    }
    let binaries = match &args.assets {
        Some(assets) => Binaries::from_dir(assets),
        None => Binaries::from_env(),
    }
    .context("`capstan local up` needs the control plane's binaries")?;
    let mut options = LocalOptions::new(dir);
    options.merge_into = Some(LocalCluster::default_kubeconfig()?);
    options.switch_context = !args.no_switch;
    options.binaries = Some(binaries);
    let components = if options
        .binaries
        .as_ref()
        .is_some_and(|binaries| binaries.kube_controller_manager.is_some())
    {
        "etcd, kube-apiserver and kube-controller-manager"
    } else {
        "etcd and kube-apiserver (no kube-controller-manager found, so no controllers)"
    };
    writeln!(stderr, "starting {components} in {} ...", dir.display())?;
    let cluster = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the Kubernetes client's runtime")?
        .block_on(LocalCluster::start(options))?;

    let kubeconfig = cluster.merged_kubeconfig().map_or_else(
        || cluster.kubeconfig().display().to_string(),
        |path| path.display().to_string(),
    );
    writeln!(
        stderr,
        "local cluster running at {} (Kubernetes {})",
        cluster.server_url(),
        cluster.version()
    )?;
    if args.no_switch {
        writeln!(
            stderr,
            "context `{}` added to {kubeconfig}; use it with `kubectl --context {}`",
            LocalCluster::CONTEXT,
            LocalCluster::CONTEXT
        )?;
    } else {
        let previous = cluster
            .previous_context()
            .map_or_else(String::new, |context| format!(" (was `{context}`)"));
        writeln!(
            stderr,
            "context `{}` added to {kubeconfig} and made current{previous}",
            LocalCluster::CONTEXT
        )?;
    }
    writeln!(
        stderr,
        "try `kubectl get namespaces` or `capstan deploy`; the cluster's own kubeconfig is {}\n\
         stop it and remove its data with `capstan local down`",
        cluster.kubeconfig().display()
    )?;
    Ok(ExitCode::Success)
}

/// `capstan local status -o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    running: bool,
    dir: PathBuf,
    server: Option<String>,
    version: Option<String>,
    context: &'static str,
    kubeconfig: Option<PathBuf>,
    cluster_kubeconfig: Option<PathBuf>,
    components: Vec<ComponentStatus>,
}

#[derive(Serialize)]
struct ComponentStatus {
    name: String,
    pid: u32,
    running: bool,
}

fn status(dir: &Path, output: &OutputArgs) -> Result<ExitCode, Failure> {
    let cluster = LocalCluster::open(dir)?;
    let components: Vec<ComponentStatus> = cluster
        .iter()
        .flat_map(LocalCluster::components)
        .map(|component| ComponentStatus {
            name: component.name,
            pid: component.pid,
            running: component.running,
        })
        .collect();
    let running = !components.is_empty() && components.iter().all(|c| c.running);
    let status = Status {
        running,
        dir: cluster
            .as_ref()
            .map_or_else(|| dir.to_path_buf(), |c| c.dir().to_path_buf()),
        server: cluster.as_ref().map(|c| c.server_url().to_owned()),
        version: cluster.as_ref().map(|c| c.version().to_owned()),
        context: LocalCluster::CONTEXT,
        kubeconfig: cluster
            .as_ref()
            .and_then(|c| c.merged_kubeconfig().map(Path::to_path_buf)),
        cluster_kubeconfig: cluster.as_ref().map(|c| c.kubeconfig().to_path_buf()),
        components,
    };
    if output.json() {
        crate::output::print(&status)?;
    } else {
        write_status(&mut std::io::stdout().lock(), &status)?;
    }
    Ok(if running {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

fn write_status(out: &mut impl std::io::Write, status: &Status) -> std::io::Result<()> {
    let dir = status.dir.display();
    if status.components.is_empty() {
        return writeln!(out, "not running: no local cluster in {dir}");
    }
    if status.running {
        writeln!(out, "running")?;
    } else {
        writeln!(
            out,
            "not running: some of its processes have ended; `capstan local down` cleans up, \
             `capstan local up` starts a new one"
        )?;
    }
    let unknown = String::new();
    writeln!(
        out,
        "server:      {} (Kubernetes {})",
        status.server.as_ref().unwrap_or(&unknown),
        status.version.as_ref().unwrap_or(&unknown)
    )?;
    match &status.kubeconfig {
        Some(path) => writeln!(
            out,
            "kubeconfig:  {} (context `{}`)",
            path.display(),
            status.context
        )?,
        None => writeln!(out, "kubeconfig:  (not merged into yours)")?,
    }
    if let Some(path) = &status.cluster_kubeconfig {
        writeln!(out, "own config:  {}", path.display())?;
    }
    writeln!(out, "data:        {dir}")?;
    let processes: Vec<String> = status
        .components
        .iter()
        .map(|component| {
            let ended = if component.running { "" } else { " (ended)" };
            format!("{} {}{ended}", component.name, component.pid)
        })
        .collect();
    writeln!(out, "processes:   {}", processes.join(", "))
}

fn down(dir: &Path) -> Result<ExitCode, Failure> {
    let mut stderr = std::io::stderr().lock();
    let Some(cluster) = LocalCluster::open(dir)? else {
        writeln!(
            stderr,
            "no local cluster in {}: nothing to stop",
            dir.display()
        )?;
        return Ok(ExitCode::Success);
    };
    let dir = cluster.dir().to_path_buf();
    let stopped = cluster.stop()?;
    writeln!(
        stderr,
        "local cluster stopped and {} removed",
        dir.display()
    )?;
    if let Some(kubeconfig) = &stopped.kubeconfig {
        let restored = stopped
            .restored_context
            .as_ref()
            .map_or_else(String::new, |context| {
                format!("; current context is `{context}` again")
            });
        writeln!(
            stderr,
            "context `{}` removed from {}{restored}",
            LocalCluster::CONTEXT,
            kubeconfig.display()
        )?;
    }
    Ok(ExitCode::Success)
}
