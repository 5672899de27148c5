//! Deploys a stage that holds a SOPS-encrypted Secret with capstan's libraries alone, as a
//! controller or a CI tool would: `capstan-manifest` opens the project and loads the stage,
//! `capstan-secrets` decrypts the Secret in memory (never on disk), and `capstan-apply` plans
//! and applies the stage with its discriminator, the Secret's values masked in every diff.
//!
//! ```text
//! SOPS_AGE_KEY_FILE=examples/sops/age-test-key.txt \
//!     cargo run -p capstan-examples --example deploy-sops -- examples/sops app
//! ```
//!
//! It uses the current kubeconfig context (`capstan local up` makes one). Its test deploys
//! `examples/sops` to the test control plane: `cargo test -p capstan-examples`.
#![expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "reporting is this program's job"
)]

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use capstan_apply::{Action, DeployRequest, Deployer, Options};
use capstan_manifest::{ObjectId, Project};
use capstan_secrets::{Identities, SopsObjects};

/// What a deploy did.
struct Report {
    created: usize,
    updated: usize,
    unchanged: usize,
    requests: usize,
    /// Objects that could not be planned or applied, with why.
    failed: Vec<String>,
    /// Objects decrypted although their MAC did not verify (the stage allows it).
    unverified: Vec<ObjectId>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} updated, {} unchanged, {} requests",
            self.created, self.updated, self.unchanged, self.requests
        )?;
        for failure in &self.failed {
            write!(f, "\nfailed: {failure}")?;
        }
        for id in &self.unverified {
            write!(f, "\nwarning: the MAC of {id} did not verify")?;
        }
        Ok(())
    }
}

/// Deploys stage `stage` of the project at `project`, decrypting its SOPS-encrypted objects
/// with `identities`.
async fn deploy_stage(
    project: &Path,
    stage: &str,
    identities: Identities,
    client: kube::Client,
) -> Result<Report, Box<dyn std::error::Error>> {
    let project = Project::open(&project.join("capstan.yaml"))?;
    let stage = project.stage(stage)?;
    // A stage may be rendered by a command; its standard error is worth passing on.
    let manifest = stage.load(&mut |line| eprintln!("{line}"))?;

    let secrets = SopsObjects::with_identities(identities)
        .label(manifest.label().cloned())
        .verify_mac(stage.verify_sops_mac());
    let secrets = Arc::new(secrets);
    let mut options = Options::default();
    options.field_manager = "capstan-example".to_owned();
    options.owner = Some(format!("{}/{}", stage.project(), stage.name()));
    options.prepare = Some(secrets.clone());

    let deployer = Deployer::new(client, options);
    // No person to ask: a tool decides by policy, and this one deploys whatever it planned.
    let request = DeployRequest::default().prune(stage.prune());
    let deployment = deployer
        .deploy(&manifest, request, &|_| {}, &mut |_| true)
        .await?;

    let mut failed: Vec<String> = deployment.plan.errors().map(ToString::to_string).collect();
    failed.extend(
        deployment
            .outcomes
            .iter()
            .filter_map(|outcome| outcome.result.as_ref().err())
            .map(ToString::to_string),
    );
    Ok(Report {
        created: deployment.plan.count(Action::Create),
        updated: deployment.plan.count(Action::Update),
        unchanged: deployment.plan.count(Action::Unchanged),
        requests: deployment.requests,
        failed,
        unverified: secrets.unverified(),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(project), Some(stage)) = (args.next(), args.next()) else {
        return Err("usage: deploy-sops PROJECT_FOLDER STAGE".into());
    };
    // Identities the sops way: SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt.
    let identities = Identities::from_env()?;
    let client = kube::Client::try_default().await?;
    let report = deploy_stage(Path::new(&project), &stage, identities, client).await?;
    println!("{report}");
    if report.failed.is_empty() {
        Ok(())
    } else {
        Err("the stage was not deployed completely".into())
    }
}

#[cfg(test)]
mod tests {
    use capstan_testenv::{ControlPlane, User};
    use k8s_openapi::{ByteString, api::core::v1::Secret};
    use kube::Api;

    use super::*;

    #[tokio::test]
    async fn the_example_stage_lands_with_its_secret_decrypted_in_the_cluster() {
        let plane = ControlPlane::shared()
            .await
            .expect("the test control plane (scripts/envtest.sh provisions its binaries)");
        let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("sops");
        let key = std::fs::read_to_string(project.join("age-test-key.txt")).unwrap();
        let identities = Identities::parse("`age-test-key.txt`", &key).unwrap();

        let client = plane.client(User::Admin).unwrap();
        let report = deploy_stage(&project, "app", identities, client.clone())
            .await
            .unwrap();
        assert!(
            report.failed.is_empty() && report.unverified.is_empty(),
            "{report}"
        );

        // The namespace is the one the encrypted Secret names: its MAC covers it.
        let secrets: Api<Secret> = Api::namespaced(client, "capstan-sops-example");
        let secret = secrets.get("db").await.unwrap();
        let data = secret.data.unwrap();
        assert_eq!(data["username"], ByteString(b"app".to_vec()));
        assert_eq!(
            data["password"],
            ByteString(b"correct-horse-battery-staple".to_vec())
        );
        let labels = secret.metadata.labels.unwrap();
        assert_eq!(
            labels
                .get(capstan_manifest::Label::DEFAULT_KEY)
                .map(String::as_str),
            Some("sops-example.app")
        );
    }
}
