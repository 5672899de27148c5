//! Helpers for deploy tests against the real test control plane.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use capstan_apply::{DeployRequest, Deployer, Deployment, Options};
use capstan_manifest::{Input, Label, LoadOptions, Manifest, load};
use capstan_testenv::{ControlPlane, User};

/// Manifests from YAML text, labelled with `discriminator`.
pub fn manifest(discriminator: &str, yaml: &str) -> Manifest {
    labelled(Label::new(Label::DEFAULT_KEY, discriminator).unwrap(), yaml)
}

pub fn labelled(label: Label, yaml: &str) -> Manifest {
    let input = Input::Text {
        name: "test.yaml".to_owned(),
        text: yaml.to_owned(),
    };
    load(&[input], &LoadOptions::with_label(label)).expect("test manifests are valid")
}

/// `count` ConfigMaps in `namespace`, with `value` in each.
pub fn config_maps(namespace: &str, count: usize, value: &str) -> String {
    (0..count)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {namespace}}}\ndata: {{key: {value}}}\n"
            )
        })
        .collect()
}

/// A client that counts the write requests (anything but GET) it sends.
pub fn counting_client(plane: &ControlPlane) -> (kube::Client, Arc<AtomicUsize>) {
    let writes = Arc::new(AtomicUsize::new(0));
    let counter = writes.clone();
    let layer =
        tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            if request.method() != http::Method::GET {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            request
        });
    let builder = kube::client::ClientBuilder::try_from(plane.config(User::Admin)).unwrap();
    (builder.with_layer(&layer).build(), writes)
}

pub async fn deploy<'m>(
    plane: &ControlPlane,
    options: Options,
    manifest: &'m Manifest,
    request: DeployRequest,
) -> Result<Deployment<'m>, capstan_apply::Error> {
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), options);
    deployer
        .deploy(manifest, request, &|_| {}, &mut |_| true)
        .await
}

pub fn apply_only() -> DeployRequest {
    DeployRequest::default()
}

pub fn with_prune() -> DeployRequest {
    DeployRequest::default().prune(true)
}

/// A fresh namespace (named after `discriminator`) with `count` ConfigMaps holding `value`,
/// deployed by capstan; the manifests are returned for redeploying.
pub async fn deployed(
    plane: &ControlPlane,
    discriminator: &str,
    count: usize,
    value: &str,
) -> (String, Manifest) {
    let ns = plane.create_namespace(discriminator).await.unwrap();
    let stage = manifest(discriminator, &config_maps(&ns, count, value));
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert!(done.succeeded());
    (ns, stage)
}

/// Runs kubectl once capstan's last write is in the past: managedFields timestamps have
/// one-second resolution, and the edit must come strictly later.
pub async fn edit_after_capstan(plane: &ControlPlane, args: &[&str]) {
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    kubectl(plane, args);
}

/// `data.key` of a ConfigMap made by [`config_maps`].
pub fn data_key(plane: &ControlPlane, namespace: &str, name: &str) -> String {
    kubectl(
        plane,
        &[
            "get",
            "cm",
            "-n",
            namespace,
            name,
            "-o",
            "jsonpath={.data.key}",
        ],
    )
}

/// Runs kubectl against the plane; panics with its stderr on failure.
pub fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    let output = plane.kubectl().args(args).output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

pub fn exists(plane: &ControlPlane, kind: &str, namespace: &str, name: &str) -> bool {
    plane
        .kubectl()
        .args(["get", kind, "-n", namespace, name])
        .output()
        .unwrap()
        .status
        .success()
}
