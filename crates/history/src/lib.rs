//! Deployment history of capstan stages, kept in their own cluster: a record per deploy,
//! retention, and a revision read back as manifests for a rollback.
//!
//! Every deploy that writes something (and every failed one) becomes a revision: Secrets of
//! type [`SECRET_TYPE`] in the stage's state namespace, labelled with project and stage. A
//! revision's Secret holds its [`Summary`] (revision, time, user, commit, capstan version,
//! counts, result) in an annotation, so `capstan history` reads metadata only, and an index:
//! the objects' content digests in apply order, the discriminator label and the stage's
//! [`Inventory`] of types and namespaces. The objects themselves are stored as loaded from the
//! manifests (SOPS objects still encrypted), deflated, in content-addressed chunk Secrets of
//! at most 900 KiB shared between revisions: an object unchanged since the revision before
//! costs nothing. Values of plain Secrets are never stored: each becomes an HMAC-SHA256 under a
//! key kept in [`KEY_SECRET`], so a rollback can tell whether the live value is still the
//! recorded one, and says so when it is not ([`Unrestorable`]).
//!
//! ```no_run
//! use capstan_history::{History, Target};
//! use capstan_manifest::Label;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let client = kube::Client::try_default().await?;
//! let history = History::new(client, Target::new("capstan-system", "demo", "full"));
//! for summary in history.revisions().await? {
//!     println!("{} {} {:?}", summary.revision, summary.time, summary.result);
//! }
//! if let Some(latest) = history.latest().await? {
//!     let label = Label::new("capstan.io/discriminator", "demo.full")?;
//!     let replay = history.replay(&latest, label).await?;
//!     println!("{} objects", replay.manifest.len());
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! From the bottom up: `error`; `record` (what a revision says), `seal` (objects as stored,
//! Secret values hashed) and `pack` (compression, chunks); `store` (the Secrets on the
//! server); `history`, the facade; `replay` (a revision back as manifests).

// Errors carry the server's answer, so they are large; they are rare and off the hot path, as
// in capstan-apply.
#![allow(clippy::result_large_err)]

mod error;
mod history;
mod pack;
mod record;
mod replay;
mod seal;
mod store;

pub use crate::{
    error::{Error, Result},
    history::{History, Recorded, Run, StoredObject},
    record::{Counts, Inventory, RecordedLabel, Revision, RunResult, Summary},
    replay::{Instead, Replay, Unrestorable},
    store::{KEY_SECRET, SECRET_TYPE, Target},
};
