//! The test control plane with cert-manager v1.10.0's CRDs (from `../shared/testdata/crds`),
//! certificates made with rcgen, and the objects cert-manager would make.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use capstan_kube::{Api, Catalog, Target};
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const MANAGER: &str = "capstan-certs-test";

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/crds/cert-manager-v1.10.0")
}

/// The shared plane with cert-manager's CRDs Established and served; installed once per test
/// binary. `None`, said on standard error, without `../shared/testdata` (a plain clone): the
/// tests that need the CRDs then do not run.
#[allow(clippy::print_stderr, reason = "a test says which cases it skipped")]
pub async fn plane() -> Option<(&'static ControlPlane, Api, Catalog)> {
    let Some(plane) = ControlPlane::shared_with_crds(&crds_dir())
        .await
        .expect("the test control plane starts with the CRDs")
    else {
        eprintln!(
            "skipped: cert-manager's CRDs are not at {} (no ../shared beside the checkout)",
            crds_dir().display()
        );
        return None;
    };
    let api = Api::new(plane.client(User::Admin).unwrap());
    let catalog = Catalog::discover(&api).await.unwrap();
    Some((plane, api, catalog))
}

/// Creates (server-side applies) `object`, then writes its `status` through the subresource,
/// as the object's controller would.
pub async fn create(object: &Value) -> Value {
    let plane = ControlPlane::shared().await.unwrap();
    plane.create(object).await.unwrap()
}

/// Reads a Certificate back.
pub async fn certificate_of(api: &Api, catalog: &Catalog, namespace: &str, name: &str) -> Value {
    let resource = catalog
        .resolve("cert-manager.io", "v1", "Certificate")
        .unwrap();
    api.get(Target {
        resource: &resource.api,
        namespace: Some(namespace),
        name,
    })
    .await
    .unwrap()
    .unwrap()
}

/// Whole seconds from now, as cert-manager's timestamps are.
pub fn from_now(seconds: i64) -> Timestamp {
    let at = Timestamp::now()
        .checked_add(SignedDuration::from_secs(seconds))
        .unwrap();
    Timestamp::from_second(at.as_second()).unwrap()
}

pub const DAY: i64 = 86_400;

/// A self-signed certificate for `names`, valid between the two times; its PEM and key PEM.
pub fn issue(names: &[&str], not_before: Timestamp, not_after: Timestamp) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .unwrap();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before.as_second().try_into().unwrap());
    params.not_after = epoch + Duration::from_secs(not_after.as_second().try_into().unwrap());
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A Secret of type `kubernetes.io/tls` holding `cert`, or an Opaque one with `data` when
/// `cert` is `None`.
pub fn secret(namespace: &str, name: &str, data: Value) -> Value {
    let kind = if data.get("tls.crt").is_some() && data.get("tls.key").is_some() {
        "kubernetes.io/tls"
    } else {
        "Opaque"
    };
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": kind,
        "stringData": data,
    })
}

/// A Certificate asking for `dns_names`, filling Secret `secret`, with `status`.
pub fn certificate(
    namespace: &str,
    name: &str,
    secret: &str,
    dns_names: &[&str],
    status: Value,
) -> Value {
    json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "secretName": secret,
            "dnsNames": dns_names,
            "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}
        },
        "status": status,
    })
}

/// A Ready status for a certificate valid between the two times.
pub fn ready_status(not_before: Timestamp, not_after: Timestamp, revision: i64) -> Value {
    json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                        "message": "Certificate is up to date and has not expired",
                        "lastTransitionTime": not_before.to_string()}],
        "notBefore": not_before.to_string(),
        "notAfter": not_after.to_string(),
        "revision": revision,
    })
}

/// A Certificate with its Secret, both healthy, valid from a day ago for `days`.
pub async fn healthy(namespace: &str, name: &str, days: i64) -> Value {
    let (start, end) = (from_now(-DAY), from_now(days * DAY));
    let host = format!("{name}.example.com");
    let (crt, key) = issue(&[&host], start, end);
    create(&secret(
        namespace,
        &format!("{name}-tls"),
        json!({"tls.crt": crt, "tls.key": key}),
    ))
    .await;
    create(&certificate(
        namespace,
        name,
        &format!("{name}-tls"),
        &[&host],
        ready_status(start, end, 1),
    ))
    .await
}
