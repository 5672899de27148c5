//! Handing a new age identity to the sops-secrets-operator in a cluster (feature `operator`):
//! the last step of a key rotation, after every file has the new recipient.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use capstan_kube::{Api, Backoff, Readiness, Target, assess, poll_until};
use kube::api::{ApiResource, GroupVersionKind, Patch, PatchParams};
use kube::core::{DynamicObject, Request, Resource as _};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The annotation `kubectl rollout restart` sets; changing it rolls the pods.
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// Where the operator reads its age key file from, and how [`hand_over`] goes. Start from
/// [`OperatorOptions::default`], the names the operator's Helm chart uses.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct OperatorOptions {
    /// The operator's namespace [default: `sops-secrets-operator`].
    pub namespace: String,
    /// The Secret holding the key file [default: `sops-age-key`].
    pub secret: String,
    /// The Secret's key that holds the key file [default: `age.key`].
    pub key: String,
    /// The operator's Deployment, restarted to read the new key [default:
    /// `sops-secrets-operator`].
    pub deployment: String,
    /// The server-side apply field manager of the Secret [default: `capstan`].
    pub field_manager: String,
    /// How long to wait for the restarted operator's rollout; `None` does not wait.
    pub wait: Option<Duration>,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        Self {
            namespace: "sops-secrets-operator".to_owned(),
            secret: "sops-age-key".to_owned(),
            key: "age.key".to_owned(),
            deployment: "sops-secrets-operator".to_owned(),
            field_manager: "capstan".to_owned(),
            wait: None,
        }
    }
}

/// What [`hand_over`] is about to change, for its confirmation callback.
#[derive(Debug)]
#[non_exhaustive]
pub struct HandOverPlan<'a> {
    /// `Secret namespace/name`.
    pub secret: &'a str,
    /// `Deployment namespace/name`.
    pub deployment: &'a str,
    /// Whether the Secret exists; it is created otherwise.
    pub secret_exists: bool,
    /// The identities of the Secret's key file that are kept after the new one, so that
    /// objects not yet encrypted to the new recipient still open.
    pub kept_identities: usize,
}

/// A step of [`hand_over`], reported when it is done.
#[derive(Debug)]
#[non_exhaustive]
pub enum HandOverEvent<'a> {
    /// The Secret holds the new identity first, then those it held.
    SecretUpdated {
        /// `Secret namespace/name`.
        secret: &'a str,
    },
    /// The Deployment's pods are being replaced, to read the new key file.
    Restarted {
        /// `Deployment namespace/name`.
        deployment: &'a str,
    },
    /// Every replica runs the restarted template.
    RolledOut {
        /// `Deployment namespace/name`.
        deployment: &'a str,
    },
}

/// What [`hand_over`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandedOver {
    /// The Secret now holds the new identity; `false` when the hand-over was not confirmed.
    pub secret_updated: bool,
    /// The operator was restarted.
    pub restarted: bool,
    /// The rollout finished (only with [`OperatorOptions::wait`]).
    pub rolled_out: bool,
    /// Requests sent, retries included.
    pub requests: usize,
}

/// Gives the sops-secrets-operator a new age identity: puts `new_key_file` (key file text as
/// `age-keygen` writes it) first into the operator's key Secret, keeping the identities it
/// held, restarts the operator's Deployment as `kubectl rollout restart` does, and with
/// [`OperatorOptions::wait`] waits until the rollout is done.
///
/// The Deployment is looked up first, so a wrong name changes nothing. The Secret is
/// server-side applied with force: it is usually created by Helm or `kubectl`, whose
/// ownership of the key would otherwise be a conflict. `confirm` sees the plan once the
/// Secret was read and before anything changes; `progress` hears of each step when it is
/// done, so a caller knows how far a failed hand-over got.
///
/// ```no_run
/// use std::time::Duration;
///
/// use capstan_secrets::{HandOverEvent, Identity, OperatorOptions, hand_over};
///
/// # async fn rotate() -> Result<(), Box<dyn std::error::Error>> {
/// let identity = Identity::generate();
/// let mut options = OperatorOptions::default();
/// options.wait = Some(Duration::from_secs(300));
/// let client = kube::Client::try_default().await?;
/// let mut log = Vec::new();
/// let done = hand_over(
///     client,
///     &identity.to_new_key_file(),
///     &options,
///     &mut |plan| plan.secret_exists,
///     &mut |event| log.push(format!("{event:?}")),
/// )
/// .await?;
/// assert!(done.rolled_out);
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Cluster`] when a request fails, [`Error::NotFound`] when the Deployment does not
/// exist, [`Error::Key`] when the Secret's key is not key file text, [`Error::RolloutFailed`]
/// and [`Error::RolloutTimedOut`] when the rollout fails or does not finish in time.
pub async fn hand_over(
    client: kube::Client,
    new_key_file: &str,
    options: &OperatorOptions,
    confirm: &mut dyn FnMut(&HandOverPlan<'_>) -> bool,
    progress: &mut dyn FnMut(HandOverEvent<'_>),
) -> Result<HandedOver> {
    let api = Api::new(client);
    let namespace = options.namespace.as_str();
    let deployments = resource("apps", "v1", "Deployment", "deployments");
    let secrets = resource("", "v1", "Secret", "secrets");
    let deployment = Target {
        resource: &deployments,
        namespace: Some(namespace),
        name: &options.deployment,
    };
    let secret = Target {
        resource: &secrets,
        namespace: Some(namespace),
        name: &options.secret,
    };
    let deployment_name = format!("Deployment {namespace}/{}", options.deployment);
    let secret_name = format!("Secret {namespace}/{}", options.secret);
    let failed = |action: &'static str, object: &str| {
        let object = object.to_owned();
        move |cause| Error::Cluster {
            action,
            object,
            cause,
        }
    };

    api.get(deployment)
        .await
        .map_err(failed("read", &deployment_name))?
        .ok_or_else(|| Error::NotFound {
            object: deployment_name.clone(),
        })?;
    let existing = api
        .get(secret)
        .await
        .map_err(failed("read", &secret_name))?;
    let old = match &existing {
        Some(live) => old_key_file(live, &options.key, &secret_name)?,
        None => Zeroizing::new(String::new()),
    };
    let content = merged_key_file(new_key_file, &old);
    let plan = HandOverPlan {
        secret: &secret_name,
        deployment: &deployment_name,
        secret_exists: existing.is_some(),
        kept_identities: identity_lines(&content).count() - identity_lines(new_key_file).count(),
    };
    let mut done = HandedOver::default();
    if !confirm(&plan) {
        done.requests = api.requests();
        return Ok(done);
    }

    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": options.secret, "namespace": namespace },
        "data": { options.key.as_str(): STANDARD.encode(content.as_bytes()) },
    });
    api.apply(
        secret,
        &body,
        &PatchParams::apply(&options.field_manager).force(),
    )
    .await
    .map_err(failed("apply", &secret_name))?;
    done.secret_updated = true;
    progress(HandOverEvent::SecretUpdated {
        secret: &secret_name,
    });

    let restart = json!({
        "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: crate::time::now() } } } }
    });
    let params = PatchParams {
        field_manager: Some(options.field_manager.clone()),
        ..PatchParams::default()
    };
    let request = Request::new(DynamicObject::url_path(&deployments, Some(namespace)));
    api.send::<Value>(|| request.patch(&options.deployment, &params, &Patch::Merge(&restart)))
        .await
        .map_err(failed("restart", &deployment_name))?;
    done.restarted = true;
    progress(HandOverEvent::Restarted {
        deployment: &deployment_name,
    });

    if let Some(wait) = options.wait {
        rollout(&api, deployment, &deployment_name, wait).await?;
        done.rolled_out = true;
        progress(HandOverEvent::RolledOut {
            deployment: &deployment_name,
        });
    }
    done.requests = api.requests();
    Ok(done)
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// The key file text the Secret holds under `key`, empty when it has none.
fn old_key_file(secret: &Value, key: &str, name: &str) -> Result<Zeroizing<String>> {
    let Some(encoded) = secret
        .get("data")
        .and_then(|data| data.get(key))
        .and_then(Value::as_str)
    else {
        return Ok(Zeroizing::new(String::new()));
    };
    let invalid = |reason: &str| Error::Key {
        origin: format!("key `{key}` of {name}"),
        reason: reason.to_owned(),
    };
    let bytes = Zeroizing::new(
        STANDARD
            .decode(encoded)
            .map_err(|_| invalid("not base64"))?,
    );
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid("not text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Waits until every replica runs the restarted template.
async fn rollout(api: &Api, deployment: Target<'_>, name: &str, wait: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + wait;
    let backoff = Backoff::exponential(Duration::from_millis(250), Duration::from_secs(2));
    let mut last = None;
    let rolled_out = poll_until(deadline, backoff, async || {
        let live = api.get(deployment).await.map_err(|cause| Error::Cluster {
            action: "read",
            object: name.to_owned(),
            cause,
        })?;
        let Some(live) = live else {
            return Err(Error::NotFound {
                object: name.to_owned(),
            });
        };
        let assessment = assess(&live);
        match assessment.readiness {
            Readiness::Ready => Ok(Some(())),
            Readiness::Failed => Err(Error::RolloutFailed {
                object: name.to_owned(),
                reason: assessment.message,
            }),
            _ => {
                last = assessment.message;
                Ok(None)
            }
        }
    })
    .await?;
    rolled_out.ok_or_else(|| Error::RolloutTimedOut {
        object: name.to_owned(),
        waited: wait,
        reason: last,
    })
}

/// The operator's new key file: the new identity first, then whatever the Secret held, so
/// objects not yet re-encrypted still open. Lines the new file already has are not repeated.
fn merged_key_file(new: &str, old: &str) -> Zeroizing<String> {
    let mut content = Zeroizing::new(new.trim_end().to_owned());
    content.push('\n');
    for line in old.lines() {
        if !line.trim().is_empty() && !new.lines().any(|new| new.trim() == line.trim()) {
            content.push_str(line);
            content.push('\n');
        }
    }
    content
}

fn identity_lines(key_file: &str) -> impl Iterator<Item = &str> {
    key_file
        .lines()
        .filter(|line| line.trim_start().starts_with("AGE-SECRET-KEY-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_key_file_puts_the_new_identity_first_and_keeps_old_ones_once() {
        let new = "# public key: age1new\nAGE-SECRET-KEY-1NEW\n";
        let old = "# public key: age1old\nAGE-SECRET-KEY-1OLD\n";
        let merged = merged_key_file(new, old);
        assert_eq!(
            merged.as_str(),
            "# public key: age1new\nAGE-SECRET-KEY-1NEW\n# public key: age1old\nAGE-SECRET-KEY-1OLD\n"
        );
        assert_eq!(merged_key_file(new, &merged).as_str(), merged.as_str());
    }

    #[test]
    fn the_old_key_file_is_read_from_the_secrets_data_and_never_quoted_when_invalid() {
        let secret = |value: &str| json!({ "data": { "age.key": value } });
        let text = STANDARD.encode("AGE-SECRET-KEY-1OLD\n");
        let old = old_key_file(&secret(&text), "age.key", "Secret o/k").unwrap();
        assert_eq!(old.as_str(), "AGE-SECRET-KEY-1OLD\n");
        assert!(
            old_key_file(&json!({}), "age.key", "Secret o/k")
                .unwrap()
                .is_empty()
        );
        let error = old_key_file(&secret("AGE-SECRET-KEY-1OLD"), "age.key", "Secret o/k")
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "invalid age key in key `age.key` of Secret o/k: not base64"
        );
    }
}
