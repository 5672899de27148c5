//! Every Certificate at a glance: readiness, expiry checked against the served certificate,
//! and the time cert-manager will renew it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use capstan_kube::{Api, Catalog, Resource, condition};
use capstan_manifest::ObjectId;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;

use crate::live::{
    GROUP, IssuerRef, id_of, identity, list, name_of, namespace_of, resource, secrets, served, time,
};
use crate::renewal::{RenewalPolicy, renewal_time};
use crate::warning::Warning;
use crate::{Error, Result};

/// Namespaces whose Secrets are listed at once.
const PARALLEL: usize = 8;

/// Which Certificates to list.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListRequest {
    /// One namespace, or all with `None`.
    pub namespace: Option<String>,
    /// A label selector.
    pub selector: Option<String>,
    /// Keep only Certificates whose certificate ends within this long of `now`.
    pub expiring_within: Option<Duration>,
    /// The time to judge expiry by.
    pub now: Timestamp,
}

impl ListRequest {
    /// Every Certificate of `namespace` (of all namespaces with `None`), judged now.
    pub fn new(namespace: Option<&str>) -> Self {
        Self {
            namespace: namespace.map(str::to_owned),
            selector: None,
            expiring_within: None,
            now: Timestamp::now(),
        }
    }
}

/// One Certificate, as `list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CertificateItem {
    /// The Certificate.
    pub object: ObjectId,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// The `Ready` condition's reason.
    pub reason: Option<String>,
    /// The `Ready` condition's message.
    pub message: Option<String>,
    /// The end of validity: the served certificate's, else `status.notAfter`.
    pub not_after: Option<Timestamp>,
    /// When cert-manager renews it, computed from the served certificate and the spec.
    pub renewal_time: Option<Timestamp>,
    /// `spec.issuerRef`.
    pub issuer: IssuerRef,
    /// `spec.secretName`.
    pub secret_name: String,
    /// What deserves attention.
    pub warnings: Vec<Warning>,
}

/// The Certificates `request` names, sorted by namespace and name, each checked against its
/// Secret: one list of Certificates, then one list of Secrets per namespace that has any.
///
/// # Errors
///
/// [`Error::NotInstalled`] without cert-manager's CRDs, [`Error::Request`] when a list fails.
pub async fn list_certificates(
    api: &Api,
    catalog: &Catalog,
    request: &ListRequest,
) -> Result<Vec<CertificateItem>> {
    let certificates = resource(catalog, GROUP, "Certificate")?;
    let secrets = secrets(catalog)?;
    let found = list(
        api,
        certificates,
        request.namespace.as_deref(),
        request.selector.as_deref(),
    )
    .await?;
    let namespaces: BTreeSet<&str> = found.iter().map(namespace_of).collect();
    let by_namespace: HashMap<&str, BTreeMap<String, Value>> = stream::iter(namespaces)
        .map(|namespace| async move {
            let found = list(api, secrets, Some(namespace), None).await?;
            let by_name = found
                .into_iter()
                .map(|secret| (name_of(&secret).to_owned(), secret))
                .collect();
            Ok::<_, Error>((namespace, by_name))
        })
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
    let mut items: Vec<CertificateItem> = found
        .iter()
        .map(|certificate| {
            let secret = by_namespace
                .get(namespace_of(certificate))
                .and_then(|by_name| by_name.get(secret_name(certificate)));
            item(certificates, secrets, certificate, secret)
        })
        .filter(|item| expiring(item, request))
        .collect();
    items.sort_by(|a, b| {
        (a.object.namespace(), a.object.name()).cmp(&(b.object.namespace(), b.object.name()))
    });
    Ok(items)
}

fn expiring(item: &CertificateItem, request: &ListRequest) -> bool {
    let Some(within) = request.expiring_within else {
        return true;
    };
    let within = SignedDuration::try_from(within).unwrap_or(SignedDuration::MAX);
    let horizon = request.now.checked_add(within).unwrap_or(Timestamp::MAX);
    item.not_after.is_some_and(|end| end <= horizon)
}

pub(crate) fn secret_name(certificate: &Value) -> &str {
    certificate["spec"]["secretName"]
        .as_str()
        .unwrap_or_default()
}

/// One Certificate judged against its Secret (`None`: missing).
pub(crate) fn item(
    certificates: &Resource,
    secrets: &Resource,
    certificate: &Value,
    secret: Option<&Value>,
) -> CertificateItem {
    let secret_name = secret_name(certificate).to_owned();
    let status_not_after = time(&certificate["status"]["notAfter"]);
    let policy = RenewalPolicy::from_spec(&certificate["spec"]);
    let mut warnings = Vec::new();
    let mut not_after = status_not_after;
    let mut renewal = match (time(&certificate["status"]["notBefore"]), status_not_after) {
        (Some(start), Some(end)) => renewal_time(start, end, &policy),
        _ => time(&certificate["status"]["renewalTime"]),
    };
    match secret {
        None => warnings.push(Warning::SecretMissing {
            secret: secret_name.clone(),
        }),
        Some(secret) => {
            let id = identity(secrets, namespace_of(certificate), &secret_name);
            match served(secret, &id) {
                Err(Error::Unreadable { problem, .. }) => {
                    warnings.push(Warning::SecretUnreadable {
                        secret: secret_name.clone(),
                        problem,
                    })
                }
                Err(other) => warnings.push(Warning::SecretUnreadable {
                    secret: secret_name.clone(),
                    problem: other.to_string(),
                }),
                Ok(cert) => {
                    if let Some(status) = status_not_after.filter(|end| *end != cert.not_after) {
                        warnings.push(Warning::NotAfterMismatch {
                            status,
                            served: cert.not_after,
                        });
                    }
                    let names: Vec<String> = wanted_names(certificate)
                        .filter(|name| !cert.covers(name))
                        .map(str::to_owned)
                        .collect();
                    if !names.is_empty() {
                        warnings.push(Warning::NamesNotCovered { names });
                    }
                    not_after = Some(cert.not_after);
                    renewal = renewal_time(cert.not_before, cert.not_after, &policy);
                }
            }
        }
    }
    let ready = condition(certificate, "Ready");
    CertificateItem {
        object: id_of(certificates, certificate),
        ready: ready.is_some_and(|c| c.is_true()),
        reason: ready.and_then(|c| c.reason).map(str::to_owned),
        message: ready.and_then(|c| c.message).map(str::to_owned),
        not_after,
        renewal_time: renewal,
        issuer: IssuerRef::of(certificate),
        secret_name,
        warnings,
    }
}

/// The DNS names and IP addresses a Certificate asks for.
pub(crate) fn wanted_names(certificate: &Value) -> impl Iterator<Item = &str> {
    ["dnsNames", "ipAddresses"]
        .into_iter()
        .filter_map(|key| certificate["spec"][key].as_array())
        .flatten()
        .filter_map(Value::as_str)
}
