//! Deploys a stage to a cluster and keeps it converged: the replacement for
//! `kluctl deploy --discriminator`, `kluctl list/status` and `kubectl diff`.
//!
//! A [`Deployer`] takes manifests loaded by `capstan-manifest`, a [`kube::Client`] and
//! [`Options`], and returns a typed result per object:
//!
//! - **plan** ([`Deployer::plan`]): create, update (with a [`Diff`], secret values masked) or
//!   unchanged for every object, and with prune the orphans;
//! - **apply** ([`Deployer::apply`]): server-side apply with field manager `capstan`, wave by
//!   wave in the manifest crate's order; CustomResourceDefinitions are Established and
//!   discovery refreshed before the custom resources that need them; objects of a wave go with
//!   bounded parallelism; transient errors (429, 5xx, lost connections) are retried;
//! - **prune** ([`Deployer::prune`]) and **delete** ([`Deployer::owned`], [`Deployer::delete`]):
//!   live objects carrying the discriminator, behind guards ([`Keep`]) and with a UID
//!   precondition;
//! - **status** ([`Deployer::status`]): the [`Health`] of every object.
//!
//! [`Deployer::deploy`] strings plan, confirmation, apply, prune and wait together.
//!
//! ```no_run
//! use capstan_apply::{DeployRequest, Deployer, Options};
//! use capstan_manifest::{Input, Label, LoadOptions, load};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let label = Label::new("capstan.io/discriminator", "demo.full")?;
//! let manifest = load(&[Input::Path("stage.yaml".into())], &LoadOptions::with_label(label))?;
//! let deployer = Deployer::new(kube::Client::try_default().await?, Options::default());
//! let request = DeployRequest::default().prune(true);
//! let deployment = deployer
//!     .deploy(&manifest, request, &|_event| {}, &mut |plan| plan.count(capstan_apply::Action::Create) < 100)
//!     .await?;
//! for outcome in &deployment.outcomes {
//!     if let Err(error) = &outcome.result {
//!         eprintln!("{error}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Unchanged objects cost no request each
//!
//! Every write records a hash of the object's manifest in [`HASH_ANNOTATION`]. A redeploy lists
//! the metadata of each resource type once (with the discriminator's label selector); an object
//! whose hash matches, and whose `managedFields` show no other manager writing since capstan
//! did, is unchanged without a dry run. Anything else falls back to a read and a server-side
//! dry run, so a change by another manager or by hand is still noticed.
//!
//! # Prune guards
//!
//! Prune never deletes objects with ownerReferences, objects annotated
//! [`SKIP_DELETE_ANNOTATION`] or `helm.sh/resource-policy: keep`, objects capstan never applied
//! (unless [`Options::force_prune`]), Namespaces holding objects of the manifests, or CRDs of
//! kinds the manifests use; and it does not run at all with an empty manifest set (unless
//! [`Options::allow_empty`]), without a discriminator, or after a failed apply.
//!
//! [`kube::Client`]: https://docs.rs/kube/latest/kube/struct.Client.html

// Errors carry the object's identity and the server's message, so they are large; they are
// also rare and off every hot path, and boxing them would only make matching clumsier.
#![allow(clippy::result_large_err)]

mod apply;
mod cascade;
mod check;
mod deployer;
mod diff;
mod error;
mod health;
mod live;
mod lock;
mod normalize;
mod options;
mod ownership;
mod plan;
mod proof;
mod prune;
mod redact;

pub use crate::{
    apply::Outcome,
    deployer::{DeployRequest, Deployer, Deployment, Inventory},
    diff::Diff,
    error::{Error, Result},
    health::{Health, ObjectStatus},
    lock::{LockHolder, LockRequest, StageLock, default_holder},
    normalize::{HASH_ANNOTATION, STAMP_PREFIX, ValuePath},
    options::{Event, Options, Prepare, Prepared, Progress},
    ownership::OWNER_ANNOTATION,
    plan::{Action, Plan, Planned},
    prune::{Blind, Deletion, Keep, Orphan, Owned, Removal, SKIP_DELETE_ANNOTATION},
};
