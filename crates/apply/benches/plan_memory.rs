//! Peak memory of planning a 50,000-object stage (the manifest crate's benchmark stage, about
//! 20 MB of YAML) against the test control plane: what a plan holds per object while a deploy
//! runs.
//!
//! The stage's objects are all new, and `verify_new` is off, so the plan settles them from two
//! hundred lists instead of 50,000 dry runs; its MachineDeployments are not served and become
//! errors of the plan. The figures are the process's peak resident set (`VmHWM`) after loading
//! and after planning.
//!
//! `KUBEBUILDER_ASSETS=$(scripts/envtest.sh) cargo bench -p capstan-apply --bench plan_memory`
//!
//! Measured on the shared 2-core VM (release build, Kubernetes 1.20.2; 37,500 creates, 12,500
//! errors, 83 requests):
//!
//! | each planned object holds | peak after load | peak after plan | the plan's share | plan time |
//! |---|---|---|---|---|
//! | its body as a `serde_json::Value` | 98,688 KiB | 718,820 KiB | 620,132 KiB | 2.6 s |
//! | the manifest's compact JSON only (body made when sent) | 98,592 KiB | 201,300 KiB | 102,708 KiB | 1.3 s |

#![allow(clippy::print_stdout, reason = "a benchmark reports its figures")]

use std::time::Instant;

use capstan_apply::{Action, Deployer, Options};
use capstan_manifest::{Input, Label, LoadOptions, load};
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;

#[path = "../../manifest/benches/support/generate.rs"]
#[allow(dead_code, reason = "only the stream form is planned")]
mod generate;

const OBJECTS: usize = 50_000;

/// The process's peak resident set so far, in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let plane = ControlPlane::shared()
        .await
        .expect("the test control plane starts");
    let client = plane.client(User::Admin).unwrap();
    let namespaces = kube::Api::<Namespace>::all(client.clone());
    for team in 0..50 {
        let mut namespace = Namespace::default();
        namespace.metadata.name = Some(format!("team-{team}"));
        // Already there from an earlier run is as good.
        let _ = namespaces.create(&PostParams::default(), &namespace).await;
    }
    let input = Input::Text {
        name: "stage.yaml".to_owned(),
        text: generate::stream(OBJECTS),
    };
    let label = Label::new(Label::DEFAULT_KEY, "plan-memory").unwrap();
    let manifest = load(&[input], &LoadOptions::with_label(label)).unwrap();
    let loaded = peak_kib();

    let mut options = Options::default();
    options.verify_new = false;
    let deployer = Deployer::new(client, options);
    let started = Instant::now();
    let plan = deployer.plan(&manifest, false, &|_| {}).await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let planned = peak_kib();
    println!(
        "{} objects: {} creates, {} errors, {} requests in {seconds:.1} s",
        plan.objects().len(),
        plan.count(Action::Create),
        plan.errors().count(),
        plan.requests(),
    );
    println!(
        "peak resident set: {loaded} KiB after loading, {planned} KiB after planning \
         (the plan's share: {} KiB)",
        planned.saturating_sub(loaded)
    );
}
