//! Drift detection for capstan stages: what differs between a stage and the cluster, field by
//! field, who changed it and when (from `managedFields`), without writing anything.
//!
//! A check is a plan without prune ([`capstan_apply::Deployer::plan`]): objects the unchanged
//! proof covers cost no request each, the rest a read and a server-side dry run; fields other
//! managers added are found from one metadata list per type. Each
//! difference is attributed to the manager that owns the live field and classified
//! ([`ChangeKind`]); each comes with the [`IgnoreRule`](capstan_manifest::IgnoreRule) that would
//! silence it.
//!
//! ```no_run
//! use capstan_apply::Options;
//! use capstan_drift::{State, detect};
//! use capstan_manifest::{Input, Label, LoadOptions, load};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let label = Label::new("capstan.io/discriminator", "demo.full")?;
//! let manifest = load(&[Input::Path("stage.yaml".into())], &LoadOptions::with_label(label))?;
//! let client = kube::Client::try_default().await?;
//! let report = detect(&client, &Options::default(), &manifest, &|_| {}).await?;
//! for item in report.items.iter().filter(|i| i.state == State::Drifted) {
//!     for field in &item.fields {
//!         println!("{} {}: {:?} by {:?}", item.id, field.pointer, field.kind, field.manager);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! - `error`;
//! - `detect`, one check ([`detect`], [`Report`]);
//! - `watch`, the continuous check ([`watch`]): a watch per type, re-checks of changed
//!   objects, a full re-check every resync interval, reconnects with backoff.

mod detect;
mod error;
mod watch;

pub use crate::{
    detect::{ChangeKind, FieldDrift, ObjectDrift, Report, State, detect, report},
    error::{Error, Result},
    watch::{WatchEvent, WatchOptions, Watcher, watch},
};
