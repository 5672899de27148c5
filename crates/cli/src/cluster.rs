//! Which cluster a command talks to, and the guard against deploying a stage to the wrong one.

use std::io::Write as _;

use capstan_kube::{Api, Catalog, ConnectRequest, ContextOverride};
use clap::Args;

/// Options of every command that talks to a cluster.
#[derive(Debug, Default, Args)]
pub(crate) struct ClusterArgs {
    /// The kubeconfig context to use [default: the current context]; a stage that names its
    /// `context` accepts only that one, unless --override-stage-context
    #[arg(long, value_name = "NAME")]
    context: Option<String>,

    /// Use --context even though the stage names another context (both are printed first)
    #[arg(long, requires = "context")]
    override_stage_context: bool,
}

/// A connected client and the context it came from.
pub(crate) use capstan_kube::Connection as Cluster;

impl ClusterArgs {
    /// `--context`, when given.
    pub(crate) fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// `--context`, for commands that take the option in their own way (and have no stage).
    pub(crate) fn with_context(context: Option<String>) -> Self {
        Self {
            context,
            ..Self::default()
        }
    }

    /// Connects without a stage, and discovers what the server serves: what the commands
    /// about ClusterAPI, nodes and certificates start from.
    pub(crate) async fn discover(&self) -> anyhow::Result<(Api, Catalog)> {
        let api = Api::new(self.connect(None).await?.client);
        let catalog = Catalog::discover(&api).await?;
        Ok((api, catalog))
    }

    /// Connects to the cluster a command works on; every command builds its client here,
    /// through [`capstan_kube::connect`] and its stage-context guard.
    pub(crate) async fn connect(&self, stage_context: Option<&str>) -> anyhow::Result<Cluster> {
        let request = ConnectRequest::default()
            .context(self.context.clone())
            .stage_context(stage_context.map(str::to_owned))
            .override_stage_context(self.override_stage_context);
        Ok(capstan_kube::connect(&request, &warn_override).await?)
    }
}

/// Said before the first request, so that a wrong override can still be interrupted.
fn warn_override(used: &ContextOverride) {
    let _ = writeln!(
        std::io::stderr(),
        "warning: the stage deploys to context {:?}; using context {:?} because of \
         --override-stage-context",
        used.wanted,
        used.used
    );
}

/// Runs a command's async part on a small runtime of its own.
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    crate::runtime::runtime()?.block_on(future)
}
