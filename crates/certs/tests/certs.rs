//! Listing, inspecting and renewing Certificates on the real control plane, with cert-manager's
//! CRDs and certificates made in the tests.

mod common;

use std::time::Duration;

use capstan_certs::{
    Error, IngressProblem, ListRequest, Outcome, RenewRequest, Warning, check_api, check_ingress,
    inspect, list_certificates, renew,
};
use capstan_kube::{Api, Catalog, Target, condition};
use common::{
    DAY, certificate, certificate_of, create, from_now, healthy, issue, plane, ready_status, secret,
};
use kube::api::{Patch, PatchParams};
use serde_json::json;

fn warnings_of(items: &[capstan_certs::CertificateItem], name: &str) -> Vec<Warning> {
    items
        .iter()
        .find(|item| item.object.name() == name)
        .unwrap_or_else(|| panic!("{name} is listed"))
        .warnings
        .clone()
}

#[tokio::test]
async fn list_reads_expiry_from_the_secret_and_warns_of_every_disagreement() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-list").await.unwrap();
    let fine = healthy(&ns, "fine", 60).await;
    let (start, end) = (from_now(-DAY), from_now(60 * DAY));
    // Status says one end, the Secret's certificate another.
    let served_end = from_now(20 * DAY);
    let (crt, key) = issue(&["drift.example.com"], start, served_end);
    create(&secret(
        &ns,
        "drift-tls",
        json!({"tls.crt": crt, "tls.key": key}),
    ))
    .await;
    create(&certificate(
        &ns,
        "drift",
        "drift-tls",
        &["drift.example.com"],
        ready_status(start, end, 1),
    ))
    .await;
    create(&certificate(
        &ns,
        "orphan",
        "gone-tls",
        &["orphan.example.com"],
        ready_status(start, end, 1),
    ))
    .await;
    let (crt, key) = issue(&["old.example.com"], start, end);
    create(&secret(
        &ns,
        "names-tls",
        json!({"tls.crt": crt, "tls.key": key}),
    ))
    .await;
    create(&certificate(
        &ns,
        "names",
        "names-tls",
        &["new.example.com", "old.example.com"],
        ready_status(start, end, 1),
    ))
    .await;
    create(&secret(&ns, "garbled-tls", json!({"tls.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "tls.key": "k"}))).await;
    create(&certificate(
        &ns,
        "garbled",
        "garbled-tls",
        &["garbled.example.com"],
        ready_status(start, end, 1),
    ))
    .await;
    create(&secret(&ns, "opaque-tls", json!({"other": "x"}))).await;
    create(&certificate(
        &ns,
        "opaque",
        "opaque-tls",
        &["opaque.example.com"],
        json!({}),
    ))
    .await;

    let before = api.requests();
    let items = list_certificates(&api, &catalog, &ListRequest::new(Some(&ns)))
        .await
        .unwrap();
    assert_eq!(
        api.requests() - before,
        2,
        "one list of Certificates, one of Secrets"
    );
    let names: Vec<&str> = items.iter().map(|item| item.object.name()).collect();
    assert_eq!(
        names,
        ["drift", "fine", "garbled", "names", "opaque", "orphan"]
    );

    let fine_item = items
        .iter()
        .find(|item| item.object.name() == "fine")
        .unwrap();
    assert!(fine_item.ready);
    assert_eq!(fine_item.warnings, []);
    assert_eq!(
        fine_item.not_after.map(|t| t.to_string()),
        fine["status"]["notAfter"].as_str().map(str::to_owned)
    );
    // A third of the lifetime before the end, truncated to the second.
    let time = |key: &str| {
        fine["status"][key]
            .as_str()
            .unwrap()
            .parse::<k8s_openapi::jiff::Timestamp>()
            .unwrap()
    };
    let (fine_start, fine_end) = (time("notBefore"), time("notAfter"));
    let third = fine_end.duration_since(fine_start) / 3;
    let expected = fine_end.checked_sub(third).unwrap();
    assert_eq!(
        fine_item.renewal_time,
        Some(k8s_openapi::jiff::Timestamp::from_second(expected.as_second()).unwrap())
    );
    assert_eq!(fine_item.issuer.to_string(), "ClusterIssuer/ca");

    assert_eq!(
        warnings_of(&items, "drift"),
        [Warning::NotAfterMismatch {
            status: end,
            served: served_end
        }]
    );
    assert_eq!(
        items
            .iter()
            .find(|item| item.object.name() == "drift")
            .unwrap()
            .not_after,
        Some(served_end),
        "the served certificate's end is the one that counts"
    );
    assert_eq!(
        warnings_of(&items, "orphan"),
        [Warning::SecretMissing {
            secret: "gone-tls".to_owned()
        }]
    );
    assert_eq!(
        warnings_of(&items, "names"),
        [Warning::NamesNotCovered {
            names: vec!["new.example.com".to_owned()]
        }]
    );
    let garbled = warnings_of(&items, "garbled");
    assert!(
        matches!(&garbled[..], [Warning::SecretUnreadable { secret, problem }] if secret == "garbled-tls" && problem.starts_with("PEM block 1 is not an X.509 certificate")),
        "{garbled:?}"
    );
    assert_eq!(
        warnings_of(&items, "opaque"),
        [Warning::SecretUnreadable {
            secret: "opaque-tls".to_owned(),
            problem: "is missing".to_owned()
        }]
    );
    assert_eq!(
        Warning::SecretUnreadable {
            secret: "opaque-tls".to_owned(),
            problem: "is missing".to_owned()
        }
        .to_string(),
        "Secret opaque-tls: `tls.crt` is missing"
    );
}

#[tokio::test]
async fn expiring_within_keeps_what_ends_before_the_horizon_and_selectors_select() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-expiring").await.unwrap();
    healthy(&ns, "soon", 10).await;
    healthy(&ns, "later", 60).await;
    let mut request = ListRequest::new(Some(&ns));
    request.expiring_within = Some(Duration::from_secs(30 * 86_400));
    let items = list_certificates(&api, &catalog, &request).await.unwrap();
    assert_eq!(
        items.iter().map(|i| i.object.name()).collect::<Vec<_>>(),
        ["soon"]
    );
    let mut request = ListRequest::new(None);
    request.selector = Some("app=later".to_owned());
    let items = list_certificates(&api, &catalog, &request).await.unwrap();
    assert!(
        items
            .iter()
            .any(|i| i.object.name() == "later" && i.object.namespace() == Some(&ns))
    );
    assert!(items.iter().all(|i| i.object.name() == "later"));
}

#[tokio::test]
async fn inspect_shows_the_served_certificate_and_the_requests_of_a_healthy_and_a_failing_certificate()
 {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-inspect").await.unwrap();
    let web = healthy(&ns, "web", 60).await;
    let request = |name: &str,
                   owner: &serde_json::Value,
                   revision: i64,
                   ready: &str,
                   reason: &str| {
        json!({
            "apiVersion": "cert-manager.io/v1", "kind": "CertificateRequest",
            "metadata": {
                "name": name, "namespace": ns,
                "annotations": {"cert-manager.io/certificate-revision": revision.to_string()},
                "ownerReferences": [{"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                    "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"], "controller": true}]
            },
            "spec": {"request": "LS0t", "issuerRef": {"name": "ca"}},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": reason,
                "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
        })
    };
    create(&request("web-1", &web, 1, "True", "Issued")).await;
    let report = inspect(&api, &catalog, &ns, "web").await.unwrap();
    assert!(report.summary.ready);
    assert_eq!(report.revision, Some(1));
    assert_eq!(
        report.issued_request.as_ref().map(|r| r.object.name()),
        Some("web-1")
    );
    assert_eq!(report.next_request, None);
    let served = report.secret.served.as_ref().unwrap();
    assert_eq!(served.dns_names, ["web.example.com"]);
    assert_eq!(served.chain_length, 1);
    assert_eq!(served.key_algorithm, "ecdsa");
    assert_eq!(report.next_retry, None);

    let failed = create(&certificate(&ns, "broken", "broken-tls", &["broken.example.com"], json!({
        "conditions": [
            {"type": "Ready", "status": "False", "reason": "DoesNotExist", "message": "Issuing certificate as Secret does not exist", "lastTransitionTime": "2026-01-01T00:00:00Z"},
            {"type": "Issuing", "status": "False", "reason": "Failed", "message": "The certificate request has failed to complete and will be retried", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ],
        "lastFailureTime": "2026-01-01T00:00:00Z",
        "failedIssuanceAttempts": 3
    }))).await;
    create(&request("broken-1", &failed, 1, "False", "Failed")).await;
    let report = inspect(&api, &catalog, &ns, "broken").await.unwrap();
    assert!(!report.summary.ready);
    assert_eq!(report.summary.reason.as_deref(), Some("DoesNotExist"));
    assert_eq!(report.conditions.len(), 2);
    assert_eq!(report.failed_issuance_attempts, Some(3));
    assert_eq!(
        report.next_retry.map(|t| t.to_string()).as_deref(),
        Some("2026-01-01T04:00:00Z")
    );
    let next = report.next_request.as_ref().unwrap();
    assert_eq!(
        (next.object.name(), next.conditions[0].reason.as_deref()),
        ("broken-1", Some("Failed"))
    );
    assert!(!report.secret.exists);
    assert_eq!(
        report.summary.warnings,
        [Warning::SecretMissing {
            secret: "broken-tls".to_owned()
        }]
    );

    let missing = inspect(&api, &catalog, &ns, "nothing").await.unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("cert-manager.io/Certificate {ns}/nothing does not exist")
    );
}

/// Plays cert-manager: once `name` is triggered, issues revision 2 and clears `Issuing`.
async fn issue_when_triggered(
    api: Api,
    catalog: Catalog,
    ns: String,
    name: String,
) -> serde_json::Value {
    let resource = catalog
        .resolve("cert-manager.io", "v1", "Certificate")
        .unwrap()
        .api
        .clone();
    loop {
        let live = certificate_of(&api, &catalog, &ns, &name).await;
        if condition(&live, "Issuing")
            .is_some_and(|c| c.is_true() && c.reason == Some("ManuallyTriggered"))
        {
            let mut status = ready_status(from_now(0), from_now(90 * DAY), 2);
            status["conditions"][0]["reason"] = json!("Ready");
            api.patch_status(
                Target {
                    resource: &resource,
                    namespace: Some(&ns),
                    name: &name,
                },
                &Patch::Merge(
                    json!({"status": {"revision": 2, "conditions": status["conditions"]}}),
                ),
                &PatchParams::default(),
            )
            .await
            .unwrap();
            return live;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn renew_sets_issuing_goes_on_past_failures_and_waits_for_the_new_revision() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-renew").await.unwrap();
    healthy(&ns, "web", 60).await;
    let busy = healthy(&ns, "busy", 60).await;
    let mut busy_status = busy["status"].clone();
    busy_status["conditions"].as_array_mut().unwrap().push(json!({
        "type": "Issuing", "status": "True", "reason": "Renewing", "message": "Renewing certificate as renewal was scheduled",
        "lastTransitionTime": "2026-01-01T00:00:00Z"
    }));
    busy_status["lastFailureTime"] = json!(from_now(-600).to_string());
    busy_status["failedIssuanceAttempts"] = json!(1);
    let certificates = catalog
        .resolve("cert-manager.io", "v1", "Certificate")
        .unwrap();
    api.patch_status(
        Target {
            resource: &certificates.api,
            namespace: Some(&ns),
            name: "busy",
        },
        &Patch::Merge(json!({"status": busy_status})),
        &PatchParams::default(),
    )
    .await
    .unwrap();

    let manager = tokio::spawn(issue_when_triggered(
        api.clone(),
        catalog_clone(&api).await,
        ns.clone(),
        "web".to_owned(),
    ));
    // `busy` never gets a new revision: it is renewed without waiting, below.
    let mut request = RenewRequest::new(&ns, &["web", "missing"]);
    request.wait = Some(Duration::from_secs(30));
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = progress.clone();
    let renewals = renew(&api, &catalog, &request, &move |p| {
        seen.lock().unwrap().push(p)
    })
    .await
    .unwrap();
    let triggered = manager.await.unwrap();
    let issuing = condition(&triggered, "Issuing").unwrap();
    assert_eq!(
        issuing.message,
        Some("Certificate re-issuance manually triggered")
    );
    assert_eq!(
        triggered["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Issuing")
            .unwrap()["observedGeneration"],
        triggered["metadata"]["generation"]
    );
    assert_eq!(renewals[0].outcome, Outcome::Renewed);
    assert_eq!(
        (renewals[0].revision, renewals[0].new_revision),
        (Some(1), Some(2))
    );
    assert_eq!(renewals[1].outcome, Outcome::Failed);
    assert_eq!(
        renewals[1].error.as_deref(),
        Some(format!("cert-manager.io/Certificate {ns}/missing does not exist").as_str())
    );
    assert_eq!(
        progress.lock().unwrap().len(),
        3,
        "a phase and a step per Certificate"
    );

    let mut request = RenewRequest::all(Some(&ns));
    request.selector = Some("app=busy".to_owned());
    let renewals = renew(&api, &catalog, &request, &|_| {}).await.unwrap();
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].outcome, Outcome::Triggered);
    assert!(
        matches!(renewals[0].warnings[0], Warning::AlreadyIssuing { .. }),
        "{:?}",
        renewals[0].warnings
    );
    assert!(
        matches!(
            renewals[0].warnings[1],
            Warning::Backoff {
                failed_attempts: 1,
                ..
            }
        ),
        "{:?}",
        renewals[0].warnings
    );
    let after = certificate_of(&api, &catalog, &ns, "busy").await;
    let issuing = condition(&after, "Issuing").unwrap();
    assert_eq!(
        (issuing.reason, issuing.last_transition_time),
        (Some("ManuallyTriggered"), Some("2026-01-01T00:00:00Z"))
    );

    healthy(&ns, "legacy", 60).await;
    let mut request = RenewRequest::new(&ns, &["legacy"]);
    request.delete_secret = true;
    let renewals = renew(&api, &catalog, &request, &|_| {}).await.unwrap();
    assert_eq!(renewals[0].outcome, Outcome::Triggered);
    assert_eq!(
        renewals[0]
            .warnings
            .last()
            .map(ToString::to_string)
            .as_deref(),
        Some(
            "deleted Secret legacy-tls: whatever serves it has no certificate until cert-manager \
             issues a new one, and its private key is gone"
        )
    );
    let secrets = catalog.resolve("", "v1", "Secret").unwrap();
    let gone = api
        .get(Target {
            resource: &secrets.api,
            namespace: Some(&ns),
            name: "legacy-tls",
        })
        .await
        .unwrap();
    assert!(gone.is_none() || gone.unwrap()["metadata"]["deletionTimestamp"].is_string());
    assert!(
        condition(
            &certificate_of(&api, &catalog, &ns, "legacy").await,
            "Issuing"
        )
        .is_none(),
        "the Secret's deletion is the whole trigger"
    );

    let mut both = RenewRequest::new(&ns, &["web"]);
    both.all = true;
    assert!(matches!(
        renew(&api, &catalog, &both, &|_| {}).await,
        Err(Error::Invalid(_))
    ));
}

async fn catalog_clone(api: &Api) -> Catalog {
    Catalog::discover(api).await.unwrap()
}

#[tokio::test]
async fn the_ingress_check_finds_conflicts_missing_certificates_and_missing_secrets() {
    let Some((plane, api, catalog)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-ingress").await.unwrap();
    healthy(&ns, "shop", 60).await;
    let (start, end) = (from_now(-DAY), from_now(60 * DAY));
    create(&certificate(
        &ns,
        "pending-tls",
        "pending-tls",
        &["pending.example.com"],
        ready_status(start, end, 1),
    ))
    .await;
    let ingress = |name: &str, annotations: serde_json::Value, tls: serde_json::Value| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations},
            "spec": {"tls": tls, "rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
        })
    };
    create(&ingress(
        "plain",
        json!({}),
        json!([{"hosts": ["x.example.com"], "secretName": "x-tls"}]),
    ))
    .await;
    create(&ingress(
        "both",
        json!({"cert-manager.io/issuer": "a", "cert-manager.io/cluster-issuer": "b"}),
        json!([]),
    ))
    .await;
    create(&ingress(
        "shop",
        json!({"cert-manager.io/cluster-issuer": "ca"}),
        json!([
            {"hosts": ["shop.example.com"], "secretName": "shop-tls"},
            {"hosts": ["new.example.com"], "secretName": "new-tls"},
            {"hosts": ["pending.example.com"], "secretName": "pending-tls"}
        ]),
    ))
    .await;
    // `shop-tls` is filled by Certificate `shop`, which is named otherwise and not controlled
    // by the Ingress: ingress-shim would make its own, so it counts as missing.
    let findings = check_ingress(&api, &catalog, Some(&ns)).await.unwrap();
    let problems: Vec<(&str, &IngressProblem)> = findings
        .iter()
        .map(|f| (f.object.name(), &f.problem))
        .collect();
    assert_eq!(
        problems,
        [
            ("both", &IngressProblem::AnnotationConflict { detail: r#"both "cert-manager.io/issuer" and "cert-manager.io/cluster-issuer" may not be set"#.to_owned() }),
            ("shop", &IngressProblem::NoCertificate { secret: "shop-tls".to_owned(), hosts: vec!["shop.example.com".to_owned()] }),
            ("shop", &IngressProblem::NoCertificate { secret: "new-tls".to_owned(), hosts: vec!["new.example.com".to_owned()] }),
            ("shop", &IngressProblem::SecretMissing { certificate: "pending-tls".to_owned(), secret: "pending-tls".to_owned() }),
        ]
    );
}

#[tokio::test]
async fn check_api_passes_once_the_crds_are_served() {
    let Some((plane, api, _)) = plane().await else {
        return;
    };
    let ns = plane.create_namespace("certs-api").await.unwrap();
    let check = check_api(&api, &ns, None).await;
    assert_eq!((check.usable, check.problem), (true, None));
}
