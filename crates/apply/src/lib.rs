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
//! [`SKIP_DELETE_ANNOTATION`] or `helm.sh/resource-policy: keep`, objects handed to another
//! deployer ([`HANDED_OFF_ANNOTATION`], Argo CD's [`ARGOCD_TRACKING_ANNOTATION`]), objects capstan never applied
//! (unless [`Options::force_prune`]), Namespaces holding objects of the manifests, or CRDs of
//! kinds the manifests use; and it does not run at all with an empty manifest set (unless
//! [`Options::allow_empty`]), without a discriminator, or after a failed apply.
//!
//! # Modules
//!
//! The Kubernetes layer (API wrapper, discovery, readiness, waits) is `capstan-kube`'s. Here,
//! from the bottom up, each module using only those above it:
//!
//! - `redact` (secret values, [`ValuePath`]) and `holder` ([`LockHolder`]);
//! - `error`; `vocab`, the types of results and events, without logic; `progress`, events in
//!   `capstan-kube`'s progress words;
//! - `normalize`, `proof` (the content hash), `fields` (changes per field, their managers),
//!   `diff`, `options`, `ownership`;
//! - `planned` ([`Plan`], [`Planned`]) and `context`, what every stage works with;
//! - the stages: `check` and `live` (settling objects with the server), `scan` and `cascade`
//!   (what the discriminator owns, and the guards), `plan`, `write`, `prune` (deleting) and
//!   `health`; `lock` (the stage lock) beside them;
//! - `deployer`, the facade: [`Deployer`] holds the context and calls the stages.
//!
//! [`kube::Client`]: https://docs.rs/kube/latest/kube/struct.Client.html

// Errors carry the object's identity and the server's message, so they are large; they are
// also rare and off every hot path, and boxing them would only make matching clumsier.
#![allow(clippy::result_large_err)]

mod cascade;
mod check;
mod context;
mod deployer;
mod diff;
mod error;
mod fields;
mod health;
mod holder;
mod live;
mod lock;
mod normalize;
mod options;
mod ownership;
mod plan;
mod planned;
mod progress;
mod proof;
mod prune;
mod redact;
mod scan;
mod vocab;
mod write;

pub use crate::{
    deployer::{DeployRequest, Deployer, Deployment, Inventory},
    diff::Diff,
    error::{Error, Result},
    fields::{CONTROL_PLANE_MANAGERS, FieldChange, FieldOwner, foreign_fields, has_foreign_fields},
    holder::LockHolder,
    lock::{LockRequest, StageLock, default_holder},
    options::{Options, Prepare, Prepared, ScanScope},
    planned::{Plan, Planned},
    redact::ValuePath,
    vocab::{
        ARGOCD_TRACKING_ANNOTATION, Action, Blind, Deletion, Event, HANDED_OFF_ANNOTATION,
        HASH_ANNOTATION, Health, Keep, OWNER_ANNOTATION, ObjectStatus, Orphan, Outcome, Owned,
        Progress, Removal, SKIP_DELETE_ANNOTATION, STAMP_PREFIX,
    },
};
