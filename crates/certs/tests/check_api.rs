//! `check_api` on a plane without cert-manager (its own test binary, so that no other test
//! installs the CRDs first).

use capstan_certs::check_api;
use capstan_kube::Api;
use capstan_testenv::{ControlPlane, User};

#[tokio::test]
async fn check_api_without_cert_manager_says_it_is_not_installed() {
    let plane = ControlPlane::shared()
        .await
        .expect("the test control plane starts");
    let api = Api::new(plane.client(User::Admin).unwrap());
    let check = check_api(&api, "default", None).await;
    assert!(!check.usable);
    assert_eq!(
        check.problem.as_deref(),
        Some(
            "cert-manager is not installed: the server serves no cert-manager.io/v1 CertificateRequest"
        )
    );
}
