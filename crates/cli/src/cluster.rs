//! Which cluster a command talks to, and the guard against deploying a stage to the wrong one.

use anyhow::Context as _;
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Options of every command that talks to a cluster.
#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// The kubeconfig context to use [default: the current context, which must be the stage's
    /// `context` when it names one]
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
}

/// A connected client and the context it came from.
pub(crate) struct Cluster {
    pub(crate) client: kube::Client,
    /// The context's name, for messages; `in-cluster` inside a Pod.
    pub(crate) context: String,
}

impl ClusterArgs {
    /// Connects to `--context`, or to the current context after checking that it is the one
    /// the stage names: deploying a stage to the wrong cluster is the costliest mistake there
    /// is, so a mismatch is refused rather than silently switched.
    pub(crate) async fn connect(&self, stage_context: Option<&str>) -> anyhow::Result<Cluster> {
        let kubeconfig = match Kubeconfig::read() {
            Ok(kubeconfig) => Some(kubeconfig),
            // Inside a Pod there is no kubeconfig; the service account is the way in.
            Err(_)
                if self.context.is_none()
                    && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
            {
                None
            }
            Err(error) => return Err(error).context("cannot read the kubeconfig"),
        };
        let Some(kubeconfig) = kubeconfig else {
            let config = kube::Config::incluster().context("cannot use the in-cluster config")?;
            let client =
                kube::Client::try_from(config).context("cannot create the Kubernetes client")?;
            return Ok(Cluster {
                client,
                context: "in-cluster".to_owned(),
            });
        };
        let current = kubeconfig.current_context.clone().unwrap_or_default();
        let context = match (&self.context, stage_context) {
            (Some(explicit), _) => explicit.clone(),
            (None, Some(wanted)) if wanted != current => anyhow::bail!(
                "the stage deploys to context {wanted:?} but the current context is {current:?}; \
                 switch with `kubectl config use-context {wanted}` or pass --context explicitly"
            ),
            (None, _) => current,
        };
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .with_context(|| format!("cannot use kubeconfig context {context:?}"))?;
        let client =
            kube::Client::try_from(config).context("cannot create the Kubernetes client")?;
        Ok(Cluster { client, context })
    }
}

/// Runs a command's async part on a small runtime of its own.
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the Kubernetes client's runtime")?
        .block_on(future)
}
