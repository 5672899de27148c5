//! Which cluster a command talks to, and the guard against deploying a stage to the wrong one.

use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};

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
pub(crate) struct Cluster {
    pub(crate) client: kube::Client,
    /// The context's name, for messages; `in-cluster` inside a Pod.
    pub(crate) context: String,
}

impl ClusterArgs {
    /// `--context`, for commands that take the option in their own way (and have no stage).
    pub(crate) fn with_context(context: Option<String>) -> Self {
        Self {
            context,
            ..Self::default()
        }
    }

    /// Connects to the cluster a command works on; every command builds its client here.
    ///
    /// A stage's `context` is binding, because deploying a stage to the wrong cluster is the
    /// costliest mistake there is: without `--context` the current context must be the
    /// stage's, and `--context` naming another one is refused unless
    /// `--override-stage-context`, which prints both names before anything is sent. Without
    /// a stage context, `--context` or the current context is used.
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
        let context = self.choose(&current, stage_context)?;
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

    /// The context to use, given the current one and the stage's.
    fn choose(&self, current: &str, stage_context: Option<&str>) -> anyhow::Result<String> {
        let Some(wanted) = stage_context else {
            return Ok(self.context.clone().unwrap_or_else(|| current.to_owned()));
        };
        match &self.context {
            None if wanted == current => Ok(current.to_owned()),
            None => anyhow::bail!(
                "the stage deploys to context {wanted:?} but the current context is {current:?}; \
                 switch with `kubectl config use-context {wanted}` or pass `--context {wanted}`"
            ),
            Some(explicit) if explicit == wanted => Ok(explicit.clone()),
            Some(explicit) if self.override_stage_context => {
                warn_override(wanted, explicit);
                Ok(explicit.clone())
            }
            Some(explicit) => anyhow::bail!(
                "the stage deploys to context {wanted:?}, not {explicit:?}; pass \
                 --override-stage-context with `--context {explicit}` to use it anyway"
            ),
        }
    }
}

/// Said before the first request, so that a wrong override can still be interrupted.
fn warn_override(wanted: &str, explicit: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "warning: the stage deploys to context {wanted:?}; using context {explicit:?} because \
         of --override-stage-context"
    );
}

/// Runs a command's async part on a small runtime of its own.
pub(crate) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    crate::runtime::runtime()?.block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(context: Option<&str>, override_stage_context: bool) -> ClusterArgs {
        ClusterArgs {
            context: context.map(str::to_owned),
            override_stage_context,
        }
    }

    fn chosen(args: &ClusterArgs, stage: Option<&str>) -> String {
        match args.choose("current", stage) {
            Ok(context) => context,
            Err(error) => format!("refused: {error}"),
        }
    }

    #[test]
    fn without_a_stage_context_the_explicit_or_current_context_is_used() {
        assert_eq!(chosen(&args(None, false), None), "current");
        assert_eq!(chosen(&args(Some("other"), false), None), "other");
    }

    #[test]
    fn a_stage_context_is_binding_unless_overridden_explicitly() {
        assert_eq!(chosen(&args(None, false), Some("current")), "current");
        assert_eq!(chosen(&args(Some("prod"), false), Some("prod")), "prod");
        assert_eq!(
            chosen(&args(None, false), Some("prod")),
            "refused: the stage deploys to context \"prod\" but the current context is \
             \"current\"; switch with `kubectl config use-context prod` or pass `--context prod`"
        );
        for explicit in ["current", "other"] {
            assert_eq!(
                chosen(&args(Some(explicit), false), Some("prod")),
                format!(
                    "refused: the stage deploys to context \"prod\", not \"{explicit}\"; pass \
                     --override-stage-context with `--context {explicit}` to use it anyway"
                )
            );
            assert_eq!(chosen(&args(Some(explicit), true), Some("prod")), explicit);
        }
    }
}
