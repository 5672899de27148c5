//! Starts a real, throwaway Kubernetes control plane with `capstan-testenv`, applies a
//! ConfigMap to it with server-side apply, and keeps it running until Enter is pressed (or
//! standard input closes), so `kubectl` can be pointed at it.
//!
//! ```sh
//! KUBEBUILDER_ASSETS="$(scripts/envtest.sh)" cargo run -p capstan-examples --example local-control-plane
//! ```
#![expect(clippy::print_stdout, reason = "printing is this program's job")]

use capstan_testenv::{ControlPlane, Options, User};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use tokio::io::AsyncBufReadExt as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("starting etcd, kube-apiserver and kube-controller-manager ...");
    let plane = ControlPlane::start(Options::default()).await?;
    println!(
        "kube-apiserver {} ready at {}",
        plane.version(),
        plane.server_url()
    );

    let namespace = plane.create_namespace("example").await?;
    let config_maps: Api<ConfigMap> = Api::namespaced(plane.client(User::Admin)?, &namespace);
    let greeting = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": "greeting" },
        "data": { "hello": "world" },
    });
    let applied = config_maps
        .patch(
            "greeting",
            &PatchParams::apply("capstan"),
            &Patch::Apply(&greeting),
        )
        .await?;
    println!(
        "server-side applied configmap/greeting in namespace {namespace} (resourceVersion {})",
        applied.metadata.resource_version.unwrap_or_default()
    );

    println!();
    // scripts/envtest.sh puts a kubectl beside the control plane's binaries.
    let kubectl = std::env::var_os("KUBEBUILDER_ASSETS")
        .map(|dir| std::path::PathBuf::from(dir).join("kubectl"))
        .filter(|path| path.exists())
        .unwrap_or_else(|| "kubectl".into());
    println!(
        "try: {} --kubeconfig {} get configmaps -A",
        kubectl.display(),
        plane.kubeconfig().display()
    );
    println!("press Enter to stop the control plane and remove its files");
    let mut line = String::new();
    tokio::io::BufReader::new(tokio::io::stdin())
        .read_line(&mut line)
        .await?;
    drop(plane);
    println!("stopped; nothing left behind");
    Ok(())
}
