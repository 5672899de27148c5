//! One Certificate in depth, as `cmctl status certificate` shows it, with the last completed
//! CertificateRequest too.

use capstan_kube::{Api, Catalog, Resource, Target};
use capstan_manifest::ObjectId;
use serde::Serialize;
use serde_json::Value;

use crate::inventory::{CertificateItem, item, secret_name};
use crate::live::{GROUP, id_of, identity, list, resource, secrets, served, time};
use crate::renewal::backoff_until;
use crate::x509::Served;
use crate::{Error, Result};

const ACME: &str = "acme.cert-manager.io";
const REVISION: &str = "cert-manager.io/certificate-revision";

/// One entry of `status.conditions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ConditionItem {
    /// `Ready`, `Issuing`, `Approved`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Why, in one word.
    pub reason: Option<String>,
    /// Why, for people.
    pub message: Option<String>,
    /// When `status` last changed.
    pub last_transition_time: Option<k8s_openapi::jiff::Timestamp>,
}

fn conditions(object: &Value) -> Vec<ConditionItem> {
    let text = |c: &Value, key: &str| c[key].as_str().map(str::to_owned);
    object["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| ConditionItem {
            type_: text(c, "type").unwrap_or_default(),
            status: text(c, "status").unwrap_or_default(),
            reason: text(c, "reason"),
            message: text(c, "message"),
            last_transition_time: time(&c["lastTransitionTime"]),
        })
        .collect()
}

/// The Secret a Certificate fills, and what it serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SecretReport {
    /// The Secret.
    pub object: ObjectId,
    /// Whether it exists.
    pub exists: bool,
    /// The certificate of its `tls.crt`.
    pub served: Option<Served>,
    /// Why `tls.crt` cannot be read.
    pub error: Option<String>,
}

/// A CertificateRequest of the Certificate, or an ACME Order or Challenge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Step {
    /// The object.
    pub object: ObjectId,
    /// The revision it issues (CertificateRequests).
    pub revision: Option<i64>,
    /// Its conditions (CertificateRequests).
    pub conditions: Vec<ConditionItem>,
    /// `status.state` (Orders, Challenges: `valid`, `pending`, `invalid`, ...).
    pub state: Option<String>,
    /// `status.reason` (Orders, Challenges).
    pub reason: Option<String>,
    /// `spec.dnsName` (Challenges).
    pub dns_name: Option<String>,
}

/// `inspect`'s report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Inspection {
    /// What `list` says about it.
    #[serde(flatten)]
    pub summary: CertificateItem,
    /// All its conditions.
    pub conditions: Vec<ConditionItem>,
    /// `status.revision`: the latest successful issuance.
    pub revision: Option<i64>,
    /// `status.failedIssuanceAttempts`.
    pub failed_issuance_attempts: Option<u64>,
    /// `status.lastFailureTime`.
    pub last_failure_time: Option<k8s_openapi::jiff::Timestamp>,
    /// When cert-manager tries again after the failures.
    pub next_retry: Option<k8s_openapi::jiff::Timestamp>,
    /// `spec.dnsNames`.
    pub dns_names: Vec<String>,
    /// The Secret.
    pub secret: SecretReport,
    /// The CertificateRequest of the current revision (the last completed issuance).
    pub issued_request: Option<Step>,
    /// The CertificateRequest of the next revision (an issuance under way or failed).
    pub next_request: Option<Step>,
    /// The ACME Order of the next (else the issued) request.
    pub order: Option<Step>,
    /// The Order's Challenges.
    pub challenges: Vec<Step>,
}

/// Reads Certificate `namespace/name`, its Secret, its CertificateRequests and, for ACME, the
/// Order and Challenges.
///
/// # Errors
///
/// [`Error::NotInstalled`], [`Error::NotFound`] for a missing Certificate,
/// [`Error::Request`]. A missing or unreadable Secret is part of the report.
pub async fn inspect(
    api: &Api,
    catalog: &Catalog,
    namespace: &str,
    name: &str,
) -> Result<Inspection> {
    let certificates = resource(catalog, GROUP, "Certificate")?;
    let requests = resource(catalog, GROUP, "CertificateRequest")?;
    let secrets = secrets(catalog)?;
    let object = identity(certificates, namespace, name);
    let certificate = get(api, certificates, namespace, name, &object)
        .await?
        .ok_or_else(|| Error::NotFound {
            object: object.clone(),
        })?;
    let secret_id = identity(secrets, namespace, secret_name(&certificate));
    let secret = get(api, secrets, namespace, secret_id.name(), &secret_id).await?;
    let revision = certificate["status"]["revision"].as_i64();
    let uid = certificate["metadata"]["uid"].as_str().unwrap_or_default();
    let owned: Vec<Value> = list(api, requests, Some(namespace), None)
        .await?
        .into_iter()
        .filter(|request| controlled_by(request, uid))
        .collect();
    let of_revision = |wanted: i64| {
        owned.iter().find(|request| {
            request["metadata"]["annotations"][REVISION].as_str() == Some(&wanted.to_string())
        })
    };
    let issued = revision.and_then(of_revision);
    let next = of_revision(revision.unwrap_or(0) + 1);
    let (order, challenges) = match (next.or(issued), catalog.resolve(ACME, "v1", "Order")) {
        (Some(request), Some(orders)) => acme(api, catalog, orders, request).await?,
        _ => (None, Vec::new()),
    };
    let status = &certificate["status"];
    let failed_issuance_attempts = status["failedIssuanceAttempts"].as_u64();
    let last_failure_time = time(&status["lastFailureTime"]);
    let served = secret.as_ref().map(|secret| served(secret, &secret_id));
    Ok(Inspection {
        summary: item(certificates, secrets, &certificate, secret.as_ref()),
        conditions: conditions(&certificate),
        revision,
        failed_issuance_attempts,
        last_failure_time,
        next_retry: last_failure_time
            .zip(failed_issuance_attempts.filter(|n| *n > 0))
            .map(|(failed, attempts)| {
                backoff_until(failed, u32::try_from(attempts).unwrap_or(u32::MAX))
            }),
        dns_names: certificate["spec"]["dnsNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        secret: SecretReport {
            object: secret_id,
            exists: secret.is_some(),
            error: served
                .as_ref()
                .and_then(|s| s.as_ref().err())
                .map(ToString::to_string),
            served: served.and_then(Result::ok),
        },
        issued_request: issued.map(|request| step(requests, request)),
        next_request: next.map(|request| step(requests, request)),
        order,
        challenges,
    })
}

async fn acme(
    api: &Api,
    catalog: &Catalog,
    orders: &Resource,
    request: &Value,
) -> Result<(Option<Step>, Vec<Step>)> {
    let namespace = request["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let uid = request["metadata"]["uid"].as_str().unwrap_or_default();
    let Some(order) = list(api, orders, Some(namespace), None)
        .await?
        .into_iter()
        .find(|order| controlled_by(order, uid))
    else {
        return Ok((None, Vec::new()));
    };
    let challenges = match catalog.resolve(ACME, "v1", "Challenge") {
        Some(challenges) => {
            let order_uid = order["metadata"]["uid"].as_str().unwrap_or_default();
            list(api, challenges, Some(namespace), None)
                .await?
                .iter()
                .filter(|challenge| controlled_by(challenge, order_uid))
                .map(|challenge| step(challenges, challenge))
                .collect()
        }
        None => Vec::new(),
    };
    Ok((Some(step(orders, &order)), challenges))
}

fn step(resource: &Resource, object: &Value) -> Step {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    Step {
        object: id_of(resource, object),
        revision: object["metadata"]["annotations"][REVISION]
            .as_str()
            .and_then(|text| text.parse().ok()),
        conditions: conditions(object),
        state: text(&object["status"]["state"]),
        reason: text(&object["status"]["reason"]),
        dns_name: text(&object["spec"]["dnsName"]),
    }
}

fn controlled_by(object: &Value, uid: &str) -> bool {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|owner| owner["controller"] == true && owner["uid"] == uid)
}

async fn get(
    api: &Api,
    resource: &Resource,
    namespace: &str,
    name: &str,
    object: &ObjectId,
) -> Result<Option<Value>> {
    let target = Target {
        resource: &resource.api,
        namespace: Some(namespace),
        name,
    };
    api.get(target).await.map_err(|cause| Error::Request {
        object: object.clone(),
        cause,
    })
}
