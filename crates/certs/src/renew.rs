//! Renewal on demand, as `cmctl renew` does it (the `Issuing` condition, reason
//! `ManuallyTriggered`, set through the status subresource), for many Certificates at once,
//! going on past failures, optionally waiting for each new revision to be Ready.

use std::time::Duration;

use capstan_kube::{
    Api, Backoff, Catalog, OnProgress, Progress, Resource, Target, condition, poll_until,
    status_code,
};
use capstan_manifest::ObjectId;
use futures::{StreamExt as _, stream};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use serde::Serialize;
use serde_json::{Value, json};

use crate::live::{GROUP, id_of, identity, list, resource, time};
use crate::renewal::backoff_until;
use crate::warning::Warning;
use crate::{Error, Result};

/// The reason and message cmctl writes, which cert-manager's controllers recognise.
pub const MANUALLY_TRIGGERED: &str = "ManuallyTriggered";
const MESSAGE: &str = "Certificate re-issuance manually triggered";
/// Tries of a status write that lost a race with cert-manager (409).
const ATTEMPTS: u32 = 3;

/// Which Certificates to renew, and how.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RenewRequest {
    /// The namespace of `names`; for `all`, one namespace or all with `None`.
    pub namespace: Option<String>,
    /// Certificates by name; empty with `all`.
    pub names: Vec<String>,
    /// Every Certificate of the namespace (or cluster) that `selector` selects.
    pub all: bool,
    /// A label selector, with `all`.
    pub selector: Option<String>,
    /// Certificates renewed at once.
    pub concurrency: usize,
    /// Wait this long for each new revision to be Ready; `None`: do not wait.
    pub wait: Option<Duration>,
    /// Delete each Certificate's Secret instead of setting `Issuing`, the old way: whatever
    /// serves the Secret has no certificate until cert-manager issues a new one, and the
    /// private key is lost. Each renewal warns so ([`Warning::SecretDeleted`]).
    pub delete_secret: bool,
}

impl RenewRequest {
    /// Renew `names` in `namespace`, four at a time, without waiting.
    pub fn new(namespace: &str, names: &[&str]) -> Self {
        Self {
            namespace: Some(namespace.to_owned()),
            names: names.iter().map(|name| (*name).to_owned()).collect(),
            all: false,
            selector: None,
            concurrency: 4,
            wait: None,
            delete_secret: false,
        }
    }

    /// Renew every Certificate of `namespace` (all namespaces with `None`).
    pub fn all(namespace: Option<&str>) -> Self {
        Self {
            namespace: namespace.map(str::to_owned),
            all: true,
            ..Self::new("", &[])
        }
    }
}

/// How the renewal of one Certificate went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outcome {
    /// `Issuing` set; not waited for.
    Triggered,
    /// The new revision is Ready.
    Renewed,
    /// `Issuing` set, but the new revision was not Ready in time.
    TimedOut,
    /// The trigger could not be written.
    Failed,
}

/// One Certificate's renewal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Renewal {
    /// The Certificate.
    pub object: ObjectId,
    /// How it went.
    pub outcome: Outcome,
    /// `status.revision` before the renewal.
    pub revision: Option<i64>,
    /// The Ready revision waited for.
    pub new_revision: Option<i64>,
    /// Why it failed, or what it last said while being waited for.
    pub error: Option<String>,
    /// Why it may not do what was asked.
    pub warnings: Vec<Warning>,
}

impl Renewal {
    /// Whether the renewal went as asked (triggered, and Ready when waited for).
    pub fn succeeded(&self) -> bool {
        matches!(self.outcome, Outcome::Triggered | Outcome::Renewed)
    }
}

/// Renews the Certificates `request` names, `request.concurrency` at a time, each
/// independently: a failure is that Certificate's [`Outcome::Failed`], and the others go on.
/// Reports a phase `renewing` and one step per Certificate done.
///
/// # Errors
///
/// [`Error::NotInstalled`], [`Error::Invalid`] for names together with `all` (or neither),
/// [`Error::Request`] when listing the Certificates fails. A named Certificate that does not
/// exist is a failed renewal, not an error.
pub async fn renew(
    api: &Api,
    catalog: &Catalog,
    request: &RenewRequest,
    on_progress: &OnProgress,
) -> Result<Vec<Renewal>> {
    let certificates = resource(catalog, GROUP, "Certificate")?;
    let secrets = request
        .delete_secret
        .then(|| crate::live::secrets(catalog))
        .transpose()?;
    let targets: Vec<(ObjectId, Option<Value>)> = match (request.all, request.names.is_empty()) {
        (true, true) => list(
            api,
            certificates,
            request.namespace.as_deref(),
            request.selector.as_deref(),
        )
        .await?
        .into_iter()
        .map(|certificate| (id_of(certificates, &certificate), Some(certificate)))
        .collect(),
        (false, false) if request.selector.is_none() => {
            let namespace = request.namespace.as_deref().ok_or_else(|| {
                Error::Invalid("Certificates named for renewal need a namespace".to_owned())
            })?;
            request
                .names
                .iter()
                .map(|name| (identity(certificates, namespace, name), None))
                .collect()
        }
        _ => {
            return Err(Error::Invalid(
                "name one or more Certificates, or renew all of them (optionally by label \
                 selector), not both"
                    .to_owned(),
            ));
        }
    };
    on_progress(Progress::Phase {
        name: "renewing".to_owned(),
        total: targets.len(),
    });
    let renewals: Vec<Renewal> = stream::iter(targets)
        .map(|(object, listed)| async move {
            let renewal = renew_one(api, certificates, secrets, object, listed, request.wait).await;
            on_progress(Progress::Advance(1));
            renewal
        })
        .buffered(request.concurrency.max(1))
        .collect()
        .await;
    Ok(renewals)
}

/// Renews one Certificate: deletes its Secret when `secrets` is given, else sets `Issuing`.
async fn renew_one(
    api: &Api,
    certificates: &Resource,
    secrets: Option<&Resource>,
    object: ObjectId,
    listed: Option<Value>,
    wait: Option<Duration>,
) -> Renewal {
    let mut renewal = Renewal {
        object,
        outcome: Outcome::Failed,
        revision: None,
        new_revision: None,
        error: None,
        warnings: Vec::new(),
    };
    let (namespace, name) = (
        renewal.object.namespace().map(str::to_owned),
        renewal.object.name().to_owned(),
    );
    let target = Target {
        resource: &certificates.api,
        namespace: namespace.as_deref(),
        name: &name,
    };
    let mut live = listed;
    for attempt in 1..=ATTEMPTS {
        let certificate = match live.take() {
            Some(certificate) => certificate,
            None => match api.get(target).await {
                Ok(Some(certificate)) => certificate,
                Ok(None) => {
                    renewal.error = Some(format!("{} does not exist", renewal.object));
                    return renewal;
                }
                Err(cause) => {
                    renewal.error = Some(
                        Error::Request {
                            object: renewal.object.clone(),
                            cause,
                        }
                        .to_string(),
                    );
                    return renewal;
                }
            },
        };
        renewal.revision = certificate["status"]["revision"].as_i64();
        renewal.warnings = warnings(&certificate, Timestamp::now());
        if let Some(secrets) = secrets {
            let secret = certificate["spec"]["secretName"]
                .as_str()
                .unwrap_or_default();
            match delete_secret(api, secrets, namespace.as_deref(), secret).await {
                Ok(()) => {
                    renewal.outcome = Outcome::Triggered;
                    renewal.warnings.push(Warning::SecretDeleted {
                        secret: secret.to_owned(),
                    });
                    break;
                }
                Err(error) => {
                    renewal.error = Some(error.to_string());
                    return renewal;
                }
            }
        }
        match api
            .patch_status(
                target,
                &Patch::Merge(trigger(&certificate, Timestamp::now())),
                &PatchParams::default(),
            )
            .await
        {
            Ok(_) => {
                renewal.outcome = Outcome::Triggered;
                break;
            }
            // cert-manager wrote the status in between: read it again, keep its rules.
            Err(cause) if status_code(&cause) == Some(409) && attempt < ATTEMPTS => {}
            Err(cause) => {
                renewal.error = Some(
                    Error::Request {
                        object: renewal.object.clone(),
                        cause,
                    }
                    .to_string(),
                );
                return renewal;
            }
        }
    }
    if let Some(wait) = wait {
        wait_ready(api, target, wait, &mut renewal).await;
    }
    renewal
}

/// Deletes Secret `namespace/name` if it exists (only the one read, by its UID).
async fn delete_secret(
    api: &Api,
    secrets: &Resource,
    namespace: Option<&str>,
    name: &str,
) -> Result<()> {
    let target = Target {
        resource: &secrets.api,
        namespace,
        name,
    };
    let failed = |cause| Error::Request {
        object: identity(secrets, namespace.unwrap_or_default(), name),
        cause,
    };
    let Some(secret) = api.get(target).await.map_err(failed)? else {
        return Ok(());
    };
    let uid = secret["metadata"]["uid"].as_str().unwrap_or_default();
    api.delete(target, uid).await.map(drop).map_err(failed)
}

/// Waits for a revision after `renewal.revision` with `Ready` `True`.
async fn wait_ready(api: &Api, target: Target<'_>, wait: Duration, renewal: &mut Renewal) {
    let deadline = tokio::time::Instant::now() + wait;
    let backoff = Backoff::exponential(Duration::from_millis(200), Duration::from_secs(5));
    let before = renewal.revision.unwrap_or(0);
    let mut last = None;
    let ready = poll_until(deadline, backoff, async || {
        let Some(certificate) = api.get(target).await? else {
            last = Some("the Certificate was deleted".to_owned());
            return Ok(None);
        };
        let revision = certificate["status"]["revision"].as_i64().unwrap_or(0);
        let ready = condition(&certificate, "Ready");
        last = ready.and_then(|c| c.message).map(str::to_owned);
        Ok::<_, kube::Error>(
            (revision > before && ready.is_some_and(|c| c.is_true())).then_some(revision),
        )
    })
    .await;
    match ready {
        Ok(Some(revision)) => {
            renewal.outcome = Outcome::Renewed;
            renewal.new_revision = Some(revision);
        }
        Ok(None) => {
            renewal.outcome = Outcome::TimedOut;
            renewal.error = Some(format!(
                "no Ready revision after {} within {} s{}",
                before,
                wait.as_secs(),
                last.map(|message| format!(" (Ready says: {message})"))
                    .unwrap_or_default()
            ));
        }
        Err(cause) => {
            renewal.outcome = Outcome::TimedOut;
            renewal.error = Some(
                Error::Request {
                    object: renewal.object.clone(),
                    cause,
                }
                .to_string(),
            );
        }
    }
}

/// The warnings a renewal of `certificate` deserves at `now`.
fn warnings(certificate: &Value, now: Timestamp) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if let Some(issuing) = condition(certificate, "Issuing").filter(|c| c.is_true()) {
        warnings.push(Warning::AlreadyIssuing {
            since: issuing.last_transition_time.and_then(|t| t.parse().ok()),
        });
    }
    let status = &certificate["status"];
    let attempts = status["failedIssuanceAttempts"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok());
    if let (Some(last_failure), Some(failed_attempts)) = (
        time(&status["lastFailureTime"]),
        attempts.filter(|n| *n > 0),
    ) {
        let until = backoff_until(last_failure, failed_attempts);
        if now < until {
            warnings.push(Warning::Backoff {
                failed_attempts,
                last_failure,
                until,
            });
        }
    }
    warnings
}

/// The status patch that sets `Issuing` as cert-manager's `SetCertificateCondition` does:
/// an existing condition with the same status keeps its `lastTransitionTime`. The conditions
/// are a whole list in a merge patch, so the patch carries the `resourceVersion` it was made
/// from, and a concurrent write fails it (409) instead of being undone.
fn trigger(certificate: &Value, now: Timestamp) -> Value {
    let mut conditions: Vec<Value> = certificate["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let previous = conditions.iter().position(|c| c["type"] == "Issuing");
    let kept_since = previous
        .map(|index| &conditions[index])
        .filter(|c| c["status"] == "True")
        .map(|c| c["lastTransitionTime"].clone());
    let issuing = json!({
        "type": "Issuing",
        "status": "True",
        "reason": MANUALLY_TRIGGERED,
        "message": MESSAGE,
        "lastTransitionTime": kept_since.unwrap_or_else(|| json!(now.to_string())),
        "observedGeneration": certificate["metadata"]["generation"],
    });
    match previous {
        Some(index) => conditions[index] = issuing,
        None => conditions.push(issuing),
    }
    json!({
        "metadata": {"resourceVersion": certificate["metadata"]["resourceVersion"]},
        "status": {"conditions": conditions},
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    use super::{trigger, warnings};
    use crate::Warning;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn a_trigger_replaces_a_failed_issuing_condition_with_a_new_transition_time() {
        let certificate = json!({
            "metadata": {"generation": 3, "resourceVersion": "42"},
            "status": {"conditions": [
                {"type": "Ready", "status": "True"},
                {"type": "Issuing", "status": "False", "reason": "Failed", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}
        });
        let patch = trigger(&certificate, at("2026-02-01T00:00:00Z"));
        assert_eq!(
            patch,
            json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
                     "message": "Certificate re-issuance manually triggered",
                     "lastTransitionTime": "2026-02-01T00:00:00Z", "observedGeneration": 3}
                ]}
            })
        );
    }

    #[test]
    fn a_trigger_while_issuing_keeps_the_transition_time_and_warns() {
        let certificate = json!({
            "metadata": {"generation": 1},
            "status": {"conditions": [
                {"type": "Issuing", "status": "True", "reason": "Renewing", "lastTransitionTime": "2026-01-01T00:00:00Z"}
            ]}
        });
        let patch = trigger(&certificate, at("2026-02-01T00:00:00Z"));
        assert_eq!(
            patch["status"]["conditions"][0]["lastTransitionTime"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(
            warnings(&certificate, at("2026-02-01T00:00:00Z")),
            [Warning::AlreadyIssuing {
                since: Some(at("2026-01-01T00:00:00Z"))
            }]
        );
    }

    #[test]
    fn a_recent_failure_warns_of_the_backoff_and_an_old_one_does_not() {
        let certificate = json!({"status": {"lastFailureTime": "2026-01-01T00:00:00Z", "failedIssuanceAttempts": 2}});
        assert_eq!(
            warnings(&certificate, at("2026-01-01T01:00:00Z")),
            [Warning::Backoff {
                failed_attempts: 2,
                last_failure: at("2026-01-01T00:00:00Z"),
                until: at("2026-01-01T02:00:00Z")
            }]
        );
        assert_eq!(warnings(&certificate, at("2026-01-01T03:00:00Z")), []);
    }
}
