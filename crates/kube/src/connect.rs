//! Which cluster a program talks to, and the guard against deploying a stage to the wrong one.

use std::path::PathBuf;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// Which context to connect with (see [`connect`]). Start from [`ConnectRequest::default`]
/// (the current context, no stage).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectRequest {
    /// The kubeconfig context asked for; `None` for the current one.
    pub context: Option<String>,
    /// The context the stage names, which is binding.
    pub stage_context: Option<String>,
    /// Use [`ConnectRequest::context`] even though the stage names another one.
    pub override_stage_context: bool,
    /// The kubeconfig to read instead of the usual one (`KUBECONFIG` or `~/.kube/config`):
    /// a fleet target's own file.
    pub kubeconfig: Option<PathBuf>,
}

impl ConnectRequest {
    /// The kubeconfig context to use; `None` for the current one.
    #[must_use]
    pub fn context(mut self, context: Option<String>) -> Self {
        self.context = context;
        self
    }

    /// The context the stage deploys to, if it names one.
    #[must_use]
    pub fn stage_context(mut self, stage_context: Option<String>) -> Self {
        self.stage_context = stage_context;
        self
    }

    /// The kubeconfig file to read; `None` for the usual one.
    #[must_use]
    pub fn kubeconfig(mut self, kubeconfig: Option<PathBuf>) -> Self {
        self.kubeconfig = kubeconfig;
        self
    }

    /// Whether an explicit context may differ from the stage's.
    #[must_use]
    pub fn override_stage_context(mut self, allow: bool) -> Self {
        self.override_stage_context = allow;
        self
    }
}

/// An explicit context used instead of the stage's, as [`ConnectRequest::override_stage_context`]
/// allowed: reported before any request is sent, so that a wrong override can still be
/// interrupted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContextOverride {
    /// The stage's context.
    pub wanted: String,
    /// The context used instead.
    pub used: String,
}

/// A connected client and the context it came from.
#[derive(Clone)]
#[non_exhaustive]
pub struct Connection {
    /// The client.
    pub client: kube::Client,
    /// The context's name, for messages; `in-cluster` inside a Pod.
    pub context: String,
}

/// Builds the client a program works with, from the kubeconfig (or, inside a Pod without one,
/// the service account).
///
/// A stage's context is binding, because deploying a stage to the wrong cluster is the
/// costliest mistake there is: without an explicit context the current one must be the
/// stage's, and an explicit context naming another one is refused unless
/// [`ConnectRequest::override_stage_context`], which `on_override` hears of first. Without a
/// stage context, the explicit or the current context is used.
///
/// # Errors
///
/// [`Error::NotStageContext`] and [`Error::OtherContext`] when the guard refuses;
/// [`Error::Kubeconfig`], [`Error::InCluster`], [`Error::Context`] and [`Error::Client`] when
/// the configuration cannot be read or used.
pub async fn connect(
    request: &ConnectRequest,
    on_override: &(dyn Fn(&ContextOverride) + Send + Sync),
) -> Result<Connection> {
    let read = match &request.kubeconfig {
        Some(path) => Kubeconfig::read_from(path),
        None => Kubeconfig::read(),
    };
    let kubeconfig = match read {
        Ok(kubeconfig) => Some(kubeconfig),
        // Inside a Pod there is no kubeconfig; the service account is the way in.
        Err(_)
            if request.context.is_none()
                && request.kubeconfig.is_none()
                && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() =>
        {
            None
        }
        Err(error) => return Err(Error::Kubeconfig(error)),
    };
    let Some(kubeconfig) = kubeconfig else {
        let config = kube::Config::incluster().map_err(Error::InCluster)?;
        let client = client(config)?;
        return Ok(Connection {
            client,
            context: "in-cluster".to_owned(),
        });
    };
    let current = kubeconfig.current_context.clone().unwrap_or_default();
    let context = choose(request, &current, on_override)?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        ..KubeConfigOptions::default()
    };
    let config = match kube::Config::from_custom_kubeconfig(kubeconfig, &options).await {
        Ok(config) => config,
        Err(source) => return Err(Error::Context { context, source }),
    };
    Ok(Connection {
        client: client(config)?,
        context,
    })
}

/// The client without kube's own retry layer: [`crate::Api`] retries what is worth retrying,
/// and a 429 can be an answer to read rather than throttling (a disruption budget refusing an
/// eviction, which kube would otherwise retry with growing delays for minutes, unseen).
fn client(mut config: kube::Config) -> Result<kube::Client> {
    config.default_retry = false;
    kube::Client::try_from(config).map_err(Error::Client)
}

/// The context to use, given the current one and the stage's.
fn choose(
    request: &ConnectRequest,
    current: &str,
    on_override: &(dyn Fn(&ContextOverride) + Send + Sync),
) -> Result<String> {
    let Some(wanted) = request.stage_context.as_deref() else {
        return Ok(request
            .context
            .clone()
            .unwrap_or_else(|| current.to_owned()));
    };
    match &request.context {
        None if wanted == current => Ok(current.to_owned()),
        None => Err(Error::NotStageContext {
            wanted: wanted.to_owned(),
            current: current.to_owned(),
        }),
        Some(explicit) if explicit == wanted => Ok(explicit.clone()),
        Some(explicit) if request.override_stage_context => {
            on_override(&ContextOverride {
                wanted: wanted.to_owned(),
                used: explicit.clone(),
            });
            Ok(explicit.clone())
        }
        Some(explicit) => Err(Error::OtherContext {
            wanted: wanted.to_owned(),
            explicit: explicit.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::{ConnectRequest, choose};

    fn request(context: Option<&str>, override_stage_context: bool) -> ConnectRequest {
        ConnectRequest::default()
            .context(context.map(str::to_owned))
            .override_stage_context(override_stage_context)
    }

    fn chosen(request: ConnectRequest, stage: Option<&str>) -> String {
        let request = request.stage_context(stage.map(str::to_owned));
        match choose(&request, "current", &|_| {}) {
            Ok(context) => context,
            Err(error) => format!("refused: {error}"),
        }
    }

    #[test]
    fn without_a_stage_context_the_explicit_or_current_context_is_used() {
        assert_eq!(chosen(request(None, false), None), "current");
        assert_eq!(chosen(request(Some("other"), false), None), "other");
    }

    #[test]
    fn a_stage_context_is_binding_unless_overridden_explicitly() {
        assert_eq!(chosen(request(None, false), Some("current")), "current");
        assert_eq!(chosen(request(Some("prod"), false), Some("prod")), "prod");
        assert_eq!(
            chosen(request(None, false), Some("prod")),
            "refused: the stage deploys to context \"prod\" but the current context is \
             \"current\""
        );
        for explicit in ["current", "other"] {
            assert_eq!(
                chosen(request(Some(explicit), false), Some("prod")),
                format!("refused: the stage deploys to context \"prod\", not \"{explicit}\"")
            );
            assert_eq!(
                chosen(request(Some(explicit), true), Some("prod")),
                explicit
            );
        }
    }

    #[test]
    fn an_override_is_reported_before_the_context_is_used() {
        let heard = Mutex::new(Vec::new());
        let request = request(Some("other"), true).stage_context(Some("prod".to_owned()));
        let used = choose(&request, "current", &|o| {
            heard
                .lock()
                .unwrap()
                .push((o.wanted.clone(), o.used.clone()));
        });
        assert_eq!(used.unwrap(), "other");
        assert_eq!(
            heard.into_inner().unwrap(),
            [("prod".to_owned(), "other".to_owned())]
        );
    }
}
