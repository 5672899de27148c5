//! Deploys a folder of manifests with `capstan-apply` alone, as a controller or a CI tool that
//! links capstan's crates would: load and label, plan, apply in waves, prune, report.
//!
//! ```text
//! cargo run -p capstan-examples --example deploy -- examples/demo/apps demo-apps [--prune]
//! ```
//!
//! It uses the current kubeconfig context (`capstan local up` makes one).
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "reporting is this program's job"
)]

use capstan_apply::{Action, DeployRequest, Deployer, Event, Options};
use capstan_manifest::{Input, Label, LoadOptions, load};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(folder), Some(discriminator)) = (args.next(), args.next()) else {
        return Err("usage: deploy FOLDER DISCRIMINATOR [--prune]".into());
    };
    let prune = args.next().as_deref() == Some("--prune");

    let label = Label::new(Label::DEFAULT_KEY, discriminator)?;
    let manifest = load(
        &[Input::Path(folder.into())],
        &LoadOptions::with_label(label),
    )?;

    let mut options = Options::default();
    options.field_manager = "capstan-example".to_owned();
    let deployer = Deployer::new(kube::Client::try_default().await?, options);

    // Progress arrives as events; a controller would log them or update a status.
    let progress = |event: Event<'_>| {
        if let Event::Applied { id, action, ok } = event {
            eprintln!("{action:?} {id}: {}", if ok { "ok" } else { "failed" });
        }
    };
    // A tool without a person to ask decides by policy: here, never prune more than 10 objects.
    let mut confirm = |plan: &capstan_apply::Plan<'_>| {
        let deletes = plan
            .orphans()
            .unwrap_or_default()
            .iter()
            .filter(|o| o.will_delete())
            .count();
        deletes <= 10
    };
    let request = DeployRequest::default().prune(prune);
    let deployment = deployer
        .deploy(&manifest, request, &progress, &mut confirm)
        .await?;

    for error in deployment.plan.errors() {
        eprintln!("cannot apply: {error}");
    }
    for outcome in &deployment.outcomes {
        if let Err(error) = &outcome.result {
            eprintln!("failed: {error}");
        }
    }
    println!(
        "{} created, {} updated, {} unchanged, {} requests; succeeded: {}",
        deployment.plan.count(Action::Create),
        deployment.plan.count(Action::Update),
        deployment.plan.count(Action::Unchanged),
        deployment.requests,
        deployment.succeeded()
    );
    Ok(())
}
