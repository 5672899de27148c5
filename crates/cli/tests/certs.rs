//! `capstan certs list` and `capstan certs renew` end to end on the real control plane, with
//! cert-manager's CRDs deployed by capstan itself.

mod common;

use capstan_kube::{Api, Catalog, Target, condition};
use capstan_testenv::{ControlPlane, User};
use common::{exited, on_plane, shared_crds, succeeds};
use serde_json::{Value, json};

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Applies `object` and then its `status`.
async fn create(object: Value) {
    let plane = ControlPlane::shared().await.unwrap();
    plane.create(&object).await.unwrap();
}

#[tokio::test]
async fn list_reports_expiring_certificates_in_json_and_renew_triggers_issuance() {
    let plane = ControlPlane::shared().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let Some(crds) = shared_crds("cert-manager-v1.10.0") else {
        return;
    };
    succeeds(on_plane(
        plane,
        dir.path(),
        &[
            "deploy",
            "-f",
            crds.to_str().unwrap(),
            "--discriminator",
            "certs-crds",
            "--yes",
            "--wait",
        ],
    ));
    let api = Api::new(plane.client(User::Admin).unwrap());
    let catalog = Catalog::discover(&api).await.unwrap();
    let ns = plane.create_namespace("certs-cli").await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (start, end) = (now - 86_400, now + 10 * 86_400);
    let mut params = rcgen::CertificateParams::new(vec!["web.example.com".to_owned()]).unwrap();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + std::time::Duration::from_secs(start);
    params.not_after = epoch + std::time::Duration::from_secs(end);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    create(json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "web-tls", "namespace": ns},
        "stringData": {"tls.crt": cert.pem(), "tls.key": key.serialize_pem()}
    }))
    .await;
    let rfc3339 = |seconds: u64| {
        k8s_openapi::jiff::Timestamp::from_second(seconds as i64)
            .unwrap()
            .to_string()
    };
    create(json!({
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"secretName": "web-tls", "dnsNames": ["web.example.com"], "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "Certificate is up to date and has not expired", "lastTransitionTime": rfc3339(start)}],
            "notBefore": rfc3339(start), "notAfter": rfc3339(end), "revision": 1
        }
    }))
    .await;

    let listed = exited(
        1,
        on_plane(
            plane,
            dir.path(),
            &[
                "certs",
                "list",
                "-n",
                &ns,
                "--expiring-within",
                "30d",
                "-o",
                "json",
            ],
        ),
    );
    let report = json(&listed);
    assert_eq!(
        report["items"][0]["object"],
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate", "namespace": ns, "name": "web"})
    );
    assert_eq!(report["items"][0]["ready"], true);
    assert_eq!(report["items"][0]["notAfter"], rfc3339(end));
    assert_eq!(
        report["items"][0]["issuer"],
        json!({"name": "ca", "kind": "ClusterIssuer", "group": "cert-manager.io"})
    );
    assert_eq!(report["items"][0]["warnings"], json!([]));
    assert!(
        report["requests"].as_u64().unwrap() > 2,
        "discovery and two lists"
    );
    let listed = succeeds(on_plane(
        plane,
        dir.path(),
        &["certs", "list", "-n", &ns, "--expiring-within", "5d"],
    ));
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "no Certificates\n");

    let table = succeeds(on_plane(plane, dir.path(), &["certs", "list", "-n", &ns]));
    let table = String::from_utf8_lossy(&table.stdout).into_owned();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NAMESPACE"), "{table}");
    assert!(
        lines[1].contains(&format!("web   True   {}", rfc3339(end))),
        "{table}"
    );
    let inspected = succeeds(on_plane(
        plane,
        dir.path(),
        &["certs", "inspect", "web", "-n", &ns],
    ));
    let inspected = String::from_utf8_lossy(&inspected.stdout).into_owned();
    assert!(
        inspected.contains("Secret: web-tls\n  Subject: CN=rcgen self signed cert"),
        "{inspected}"
    );
    assert!(inspected.contains("  Chain Length: 1\n"), "{inspected}");

    let renewed = succeeds(on_plane(
        plane,
        dir.path(),
        &["certs", "renew", "web", "-n", &ns, "-o", "json"],
    ));
    let report = json(&renewed);
    assert_eq!(report["items"][0]["outcome"], "triggered");
    assert_eq!(report["items"][0]["revision"], 1);
    let resource = catalog
        .resolve("cert-manager.io", "v1", "Certificate")
        .unwrap();
    let live = api
        .get(Target {
            resource: &resource.api,
            namespace: Some(&ns),
            name: "web",
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        condition(&live, "Issuing").unwrap().reason,
        Some("ManuallyTriggered")
    );

    let failed = exited(
        1,
        on_plane(
            plane,
            dir.path(),
            &["certs", "renew", "web", "gone", "-n", &ns],
        ),
    );
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert!(stdout.contains(&format!("cert-manager.io/Certificate {ns}/gone: failed: cert-manager.io/Certificate {ns}/gone does not exist")), "{stdout}");
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("Issuing is already True"), "{stderr}");
}
