//! Whether cert-manager can work: its API (`cmctl check api`), and the Ingresses that ask it
//! for certificates (ingress-shim's annotations).

use std::collections::HashSet;
use std::time::Duration;

use capstan_kube::{Api, Backoff, Catalog, Cause, poll_until};
use capstan_manifest::ObjectId;
use kube::api::{DynamicObject, PostParams};
use kube::core::{Request, Resource as _};
use serde::Serialize;
use serde_json::{Value, json};

use crate::inventory::{secret_name, wanted_names};
use crate::live::{GROUP, id_of, list, listed, namespace_of, resource, secrets};
use crate::{Error, Result};

const CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
const ISSUER: &str = "cert-manager.io/issuer";
const ISSUER_KIND: &str = "cert-manager.io/issuer-kind";
const ISSUER_GROUP: &str = "cert-manager.io/issuer-group";
const TLS_ACME: &str = "kubernetes.io/tls-acme";
/// A CSR for `CN=capstan-check-api` (base64 of its PEM; its key was thrown away): a request
/// cert-manager's webhook accepts, so that only an unusable API fails the dry run.
const CHECK_CSR: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0KTUlIVk1INENBUUF3SERFYU1CZ0dBMVVFQXd3UlkyRndjM1JoYmkxamFHVmpheTFoY0drd1dUQVRCZ2NxaGtqTwpQUUlCQmdncWhrak9QUU1CQndOQ0FBUTFpZHFFb1RkWElKZE14TTQ0LzB6OSt2NGFtaFl1SnB2UnMxdGpURnBMCnZNTmoybDB0WFRSV08vMDc3bmxkTi83U1drTEhpdFl4V0RiTUR6NWJaYzE3b0FBd0NnWUlLb1pJemowRUF3SUQKUndBd1JBSWdMbzlXaHlHTGVFSTFJTmZxVDZoVU44NE53TVp5S2dtN1VFbldWNldZckxnQ0lCdDlnK1lmUDFtVgpaY0NOTE96S2h5T3U4S0c4OXJNcHF6UFcxVkZsRldsZQotLS0tLUVORCBDRVJUSUZJQ0FURSBSRVFVRVNULS0tLS0K";

/// What is wrong with an annotated Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum IngressProblem {
    /// Annotations ingress-shim rejects, so it makes no Certificate.
    AnnotationConflict {
        /// ingress-shim's complaint.
        detail: String,
    },
    /// A TLS entry whose Secret no Certificate fills.
    NoCertificate {
        /// `tls[].secretName`.
        secret: String,
        /// `tls[].hosts`.
        hosts: Vec<String>,
    },
    /// Hosts of a TLS entry its Certificate does not ask for.
    HostsNotCovered {
        /// The Certificate's name.
        certificate: String,
        /// The hosts.
        hosts: Vec<String>,
    },
    /// A TLS entry whose Certificate exists but whose Secret does not (yet).
    SecretMissing {
        /// The Certificate's name.
        certificate: String,
        /// The Secret's name.
        secret: String,
    },
}

impl std::fmt::Display for IngressProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AnnotationConflict { detail } => write!(f, "{detail}"),
            Self::NoCertificate { secret, hosts } => write!(
                f,
                "no Certificate fills Secret {secret} (hosts {})",
                hosts.join(", ")
            ),
            Self::HostsNotCovered { certificate, hosts } => write!(
                f,
                "Certificate {certificate} does not ask for {}",
                hosts.join(", ")
            ),
            Self::SecretMissing {
                certificate,
                secret,
            } => write!(f, "Certificate {certificate} has no Secret {secret}"),
        }
    }
}

/// One problem of one Ingress.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IngressFinding {
    /// The Ingress.
    pub object: ObjectId,
    /// What is wrong.
    pub problem: IngressProblem,
}

/// ingress-shim's complaint about an Ingress's annotations, if any; `None` also for an
/// Ingress it ignores.
fn annotation_conflict(annotations: &Value) -> Option<Option<String>> {
    let text = |key: &str| annotations[key].as_str();
    let (issuer, cluster_issuer) = (text(ISSUER), text(CLUSTER_ISSUER));
    let acme = text(TLS_ACME) == Some("true");
    if issuer.is_none() && cluster_issuer.is_none() && !acme {
        return None;
    }
    let conflict = if issuer.is_some() && cluster_issuer.is_some() {
        Some(format!(
            "both {ISSUER:?} and {CLUSTER_ISSUER:?} may not be set"
        ))
    } else if cluster_issuer.is_some() && text(ISSUER_GROUP).is_some() {
        Some(format!(
            "both {CLUSTER_ISSUER:?} and {ISSUER_GROUP:?} may not be set"
        ))
    } else if cluster_issuer.is_some() && text(ISSUER_KIND).is_some() {
        Some(format!(
            "both {CLUSTER_ISSUER:?} and {ISSUER_KIND:?} may not be set"
        ))
    } else if issuer.or(cluster_issuer).is_some_and(str::is_empty) {
        Some("failed to determine issuer name to be used for ingress resource".to_owned())
    } else {
        None
    };
    Some(conflict)
}

/// Checks the Ingresses of `namespace` (all with `None`) that ask cert-manager for
/// certificates: annotation conflicts, TLS entries without a Certificate (one controlled by
/// the Ingress, or named as the Secret, as ingress-shim names it), hosts the Certificate
/// does not ask for, and Certificates whose Secret is missing.
///
/// # Errors
///
/// [`Error::NotInstalled`], [`Error::Invalid`] when the server serves no Ingress,
/// [`Error::Request`] when a list fails.
pub async fn check_ingress(
    api: &Api,
    catalog: &Catalog,
    namespace: Option<&str>,
) -> Result<Vec<IngressFinding>> {
    let certificates = resource(catalog, GROUP, "Certificate")?;
    let ingresses = catalog
        .first_served("networking.k8s.io", &["v1", "v1beta1"], "Ingress")
        .or_else(|| catalog.resolve("extensions", "v1beta1", "Ingress"))
        .ok_or_else(|| Error::Invalid("the server serves no Ingress".to_owned()))?;
    let secrets = secrets(catalog)?;
    let found = list(api, ingresses, namespace, None).await?;
    let annotated: Vec<(&Value, Option<String>)> = found
        .iter()
        .filter_map(|ingress| {
            annotation_conflict(&ingress["metadata"]["annotations"]).map(|c| (ingress, c))
        })
        .collect();
    if annotated.is_empty() {
        return Ok(Vec::new());
    }
    let certs = list(api, certificates, namespace, None).await?;
    let secret_names: HashSet<(String, String)> = api
        .list_metadata(&secrets.api, namespace, None)
        .await
        .map_err(|cause| Error::List {
            what: listed(secrets, namespace),
            cause,
        })?
        .into_iter()
        .map(|item| {
            (
                item.metadata.namespace.unwrap_or_default(),
                item.metadata.name.unwrap_or_default(),
            )
        })
        .collect();
    let mut findings = Vec::new();
    for (ingress, conflict) in annotated {
        let object = id_of(ingresses, ingress);
        if let Some(detail) = conflict {
            findings.push(IngressFinding {
                object,
                problem: IngressProblem::AnnotationConflict { detail },
            });
            continue;
        }
        let ns = namespace_of(ingress);
        let uid = &ingress["metadata"]["uid"];
        for tls in ingress["spec"]["tls"].as_array().into_iter().flatten() {
            let Some(secret) = tls["secretName"].as_str() else {
                continue;
            };
            let hosts: Vec<&str> = tls["hosts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let certificate = certs.iter().find(|c| {
                namespace_of(c) == ns
                    && secret_name(c) == secret
                    && (c["metadata"]["name"] == secret
                        || c["metadata"]["ownerReferences"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|o| o["controller"] == true && o["uid"] == *uid))
            });
            let problem = match certificate {
                None => IngressProblem::NoCertificate {
                    secret: secret.to_owned(),
                    hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
                },
                Some(certificate) => {
                    let asked: HashSet<&str> = wanted_names(certificate).collect();
                    let name = certificate["metadata"]["name"].as_str().unwrap_or_default();
                    let missing: Vec<String> = hosts
                        .iter()
                        .filter(|host| !asked.contains(**host))
                        .map(|host| (*host).to_owned())
                        .collect();
                    if !missing.is_empty() {
                        IngressProblem::HostsNotCovered {
                            certificate: name.to_owned(),
                            hosts: missing,
                        }
                    } else if !secret_names.contains(&(ns.to_owned(), secret.to_owned())) {
                        IngressProblem::SecretMissing {
                            certificate: name.to_owned(),
                            secret: secret.to_owned(),
                        }
                    } else {
                        continue;
                    }
                }
            };
            findings.push(IngressFinding {
                object: object.clone(),
                problem,
            });
        }
    }
    Ok(findings)
}

/// Whether cert-manager's API is usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ApiCheck {
    /// Whether a CertificateRequest can be created (the server checked a dry run).
    pub usable: bool,
    /// Why not.
    pub problem: Option<String>,
}

/// Checks, as `cmctl check api` does, that cert-manager's CRDs are served and that a
/// CertificateRequest passes the server's admission (its webhook) in a dry run, in namespace
/// `namespace`; with `wait`, checks again until it is usable or the time is up. Every
/// problem, an unreachable server included, is the check's answer, not an error.
pub async fn check_api(api: &Api, namespace: &str, wait: Option<Duration>) -> ApiCheck {
    let deadline = tokio::time::Instant::now() + wait.unwrap_or_default();
    let backoff = Backoff::exponential(Duration::from_millis(500), Duration::from_secs(5));
    let mut last = None;
    let usable = poll_until(deadline, backoff, async || {
        match check_once(api, namespace).await {
            Ok(()) => return Ok::<_, std::convert::Infallible>(Some(())),
            Err(problem) => last = Some(problem),
        }
        Ok(None)
    })
    .await
    .unwrap_or_else(|never| match never {});
    ApiCheck {
        usable: usable.is_some(),
        problem: if usable.is_some() { None } else { last },
    }
}

async fn check_once(api: &Api, namespace: &str) -> Result<(), String> {
    let catalog = Catalog::discover(api)
        .await
        .map_err(|error| error.to_string())?;
    let requests = resource(&catalog, GROUP, "CertificateRequest").map_err(|e| e.to_string())?;
    let body = json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "CertificateRequest",
        "metadata": {"generateName": "capstan-check-api-", "namespace": namespace},
        "spec": {"request": CHECK_CSR, "issuerRef": {"name": "capstan-check-api"}}
    });
    let bytes = serde_json::to_vec(&body).map_err(|error| error.to_string())?;
    let request = Request::new(DynamicObject::url_path(&requests.api, Some(namespace)));
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    api.send::<Value>(|| request.create(&params, bytes.clone()))
        .await
        .map(drop)
        .map_err(|cause| {
            format!(
                "a dry-run CertificateRequest was refused: {}",
                Cause(&cause)
            )
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::annotation_conflict;

    #[test]
    fn ingress_shim_conflicts_are_found_and_unannotated_ingresses_ignored() {
        assert_eq!(annotation_conflict(&json!({})), None);
        assert_eq!(
            annotation_conflict(&json!({"cert-manager.io/issuer": "ca"})),
            Some(None)
        );
        assert_eq!(
            annotation_conflict(&json!({"cert-manager.io/issuer": "a", "cert-manager.io/cluster-issuer": "b"})),
            Some(Some(
                r#"both "cert-manager.io/issuer" and "cert-manager.io/cluster-issuer" may not be set"#.to_owned()
            ))
        );
        assert_eq!(
            annotation_conflict(&json!({"cert-manager.io/cluster-issuer": "b", "cert-manager.io/issuer-kind": "X"})),
            Some(Some(
                r#"both "cert-manager.io/cluster-issuer" and "cert-manager.io/issuer-kind" may not be set"#.to_owned()
            ))
        );
        assert_eq!(
            annotation_conflict(&json!({"cert-manager.io/cluster-issuer": ""})),
            Some(Some(
                "failed to determine issuer name to be used for ingress resource".to_owned()
            ))
        );
    }
}
