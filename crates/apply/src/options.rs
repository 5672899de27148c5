//! How a [`Deployer`](crate::Deployer) works.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use capstan_manifest::{IgnoreRules, Object, Selection};
use serde_json::Value;

use crate::redact::ValuePath;

/// Options of a [`Deployer`](crate::Deployer). Start from [`Options::default`] and set fields.
#[derive(Clone)]
#[non_exhaustive]
pub struct Options {
    /// The server-side apply field manager, and the manager prune looks for [default:
    /// `capstan`].
    pub field_manager: String,
    /// Requests in flight at once within a wave [default: 8].
    pub concurrency: usize,
    /// Take over fields that other managers own instead of failing the object.
    pub force_conflicts: bool,
    /// Also prune objects carrying the discriminator that capstan never wrote (no entry of
    /// [`Options::field_manager`] in their managedFields).
    pub force_prune: bool,
    /// Allow pruning when the manifests hold no objects at all.
    pub allow_empty: bool,
    /// Dry-run new objects as well while planning, so the server has validated every write
    /// before the first one is made [default: on]. Updates are always dry-run. Off, a create the
    /// server rejects fails after the objects before it were written.
    pub verify_new: bool,
    /// The stage's ownership record, `project/stage`, written on every object as
    /// [`OWNER_ANNOTATION`](crate::OWNER_ANNOTATION). Prune and delete never touch an object
    /// whose record names another stage, whatever its label says.
    pub owner: Option<String>,
    /// The discriminator value an earlier default gave the stage (`<project>-<stage>`): objects
    /// carrying it are the stage's too, and are relabelled when next written.
    pub legacy_discriminator: Option<String>,
    /// Take over objects that exist but that capstan never applied (made by hand or by another
    /// tool). Without it such an object is an error of the plan, and nothing is written.
    pub adopt: bool,
    /// Delete a Namespace or CustomResourceDefinition even while it holds objects that are not
    /// being pruned with it, which the server then deletes too.
    pub force_cascade: bool,
    /// Work on part of the manifests only: objects outside the selection are neither planned
    /// nor written, and prune and delete consider only live objects inside it.
    pub selection: Option<Selection>,
    /// How long to wait for CustomResourceDefinitions to be Established, and for readiness
    /// [default: 5 minutes].
    pub timeout: Duration,
    /// Annotations written on every object capstan creates or updates, to tell `kubectl`
    /// users which run put it there (keys should start with
    /// [`STAMP_PREFIX`](crate::STAMP_PREFIX), which diffs ignore).
    pub stamp: BTreeMap<String, String>,
    /// Turns an object of the manifests into the body that is sent, when that differs from
    /// the object itself (decrypting SOPS values, say).
    pub prepare: Option<Arc<dyn Prepare>>,
    /// Where prune and [`Deployer::owned`](crate::Deployer::owned) look for the stage's
    /// objects: the types it recorded using, plus the manifests' own, instead of every type
    /// the server serves. `None` scans everything.
    pub scan_scope: Option<ScanScope>,
    /// Keep CustomResourceDefinitions, PersistentVolumeClaims and Namespaces from prune and
    /// delete: their deletion takes data along, which a rollback must never do unasked.
    pub keep_data_kinds: bool,
    /// Fields that plans, diffs and the unchanged proof leave alone (a stage's
    /// `ignoreDifferences`).
    pub ignore: IgnoreRules,
}

/// The resource types (and namespaces) a stage is known to have used: an inventory that
/// spares prune a list of every type the server serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanScope {
    /// `(apiVersion, kind)` of every type the stage's objects had.
    pub kinds: Vec<(String, String)>,
    /// Namespaces its objects were in: listed one by one where a list across the cluster is
    /// forbidden.
    pub namespaces: Vec<String>,
}

impl ScanScope {
    /// A scope of these types and namespaces.
    pub fn new(kinds: Vec<(String, String)>, namespaces: Vec<String>) -> Self {
        Self { kinds, namespaces }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            field_manager: "capstan".to_owned(),
            concurrency: 8,
            force_conflicts: false,
            force_prune: false,
            allow_empty: false,
            verify_new: true,
            owner: None,
            legacy_discriminator: None,
            adopt: false,
            force_cascade: false,
            selection: None,
            timeout: Duration::from_secs(300),
            stamp: BTreeMap::new(),
            prepare: None,
            scan_scope: None,
            keep_data_kinds: false,
            ignore: IgnoreRules::default(),
        }
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("field_manager", &self.field_manager)
            .field("concurrency", &self.concurrency)
            .field("force_conflicts", &self.force_conflicts)
            .field("force_prune", &self.force_prune)
            .field("allow_empty", &self.allow_empty)
            .field("verify_new", &self.verify_new)
            .field("owner", &self.owner)
            .field("legacy_discriminator", &self.legacy_discriminator)
            .field("adopt", &self.adopt)
            .field("force_cascade", &self.force_cascade)
            .field("selection", &self.selection)
            .field("timeout", &self.timeout)
            .field("stamp", &self.stamp)
            .field("prepare", &self.prepare.is_some())
            .field("scan_scope", &self.scan_scope)
            .field("keep_data_kinds", &self.keep_data_kinds)
            .field("ignore", &self.ignore)
            .finish()
    }
}

/// The body to send for an object, prepared from the manifest's copy.
#[derive(Debug)]
pub struct Prepared {
    /// The whole object as it is applied.
    pub body: Value,
    /// Values that must never be shown in a diff or report.
    pub masked: Vec<ValuePath>,
}

/// Prepares objects before they are planned and applied (see [`Options::prepare`]).
pub trait Prepare: Send + Sync {
    /// `Ok(None)` sends the object as it is.
    ///
    /// # Errors
    ///
    /// A message naming what is wrong; it must never contain a secret value. The object is
    /// then reported as failed and nothing is written.
    fn prepare(&self, object: &Object) -> Result<Option<Prepared>, String>;
}
