//! The words of a deploy: what is done to each object and why, what a prune keeps, how an
//! object is doing, and what a run reports while it works. Types only; the stages give them
//! their values.

use std::collections::BTreeMap;

use capstan_manifest::ObjectId;
use kube::core::ApiResource;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The annotation holding the hash of the manifest an object was last applied from.
pub const HASH_ANNOTATION: &str = "capstan.io/content-hash";

/// Annotations with this prefix record the run that wrote an object (commit, time); they change
/// on every write and say nothing about the object's desired state.
pub const STAMP_PREFIX: &str = "capstan.io/deployed-";

/// The annotation recording which `project/stage` wrote an object.
pub const OWNER_ANNOTATION: &str = "capstan.io/owner";

/// Annotation that keeps an object from ever being pruned or deleted by capstan.
pub const SKIP_DELETE_ANNOTATION: &str = "capstan.io/skip-delete";

pub use capstan_manifest::HANDED_OFF_ANNOTATION;

/// Argo CD's annotation tracking: an object carrying it belongs to an Argo CD Application.
pub const ARGOCD_TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";

/// What applying an object does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Action {
    /// The object does not exist yet.
    Create,
    /// The object exists and applying changes it.
    Update,
    /// The object exists, but capstan never applied it: applying takes it over (only with
    /// [`Options::adopt`](crate::Options::adopt)), after which the stage's prune and delete
    /// go for it too.
    Adopt,
    /// Applying would change nothing; it is not written.
    Unchanged,
}

/// What happened to one object of the plan.
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The object.
    pub id: ObjectId,
    /// What the plan said to do.
    pub action: Action,
    /// `Ok` when it was written (or needed no write); the error otherwise.
    pub result: Result<()>,
}

/// A live object carrying the discriminator.
#[derive(Clone, Debug, Serialize)]
pub struct Owned {
    /// The object.
    pub id: ObjectId,
    /// Its UID.
    pub uid: String,
    /// Whether capstan's field manager has applied it.
    pub managed: bool,
    /// What keeps it from being deleted, if anything.
    pub keep: Option<Keep>,
    #[serde(skip)]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(skip)]
    pub(crate) resource: ApiResource,
}

/// A prune candidate: a live object carrying the discriminator that the manifests no longer
/// hold.
pub type Orphan = Owned;

impl Owned {
    /// Whether prune or delete will delete it.
    pub fn will_delete(&self) -> bool {
        self.keep.is_none()
    }
}

/// Why a prune or delete keeps an object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Keep {
    /// A controller made it (it has ownerReferences); it goes when its owner goes.
    Owned(String),
    /// `capstan.io/skip-delete: "true"` or `helm.sh/resource-policy: keep`.
    Protected(String),
    /// capstan never applied it (it only carries the label); `force_prune` overrides.
    NotManaged,
    /// It is already being deleted.
    Deleting,
    /// It was handed to another deployer ([`HANDED_OFF_ANNOTATION`], or Argo CD's tracking
    /// annotation), which owns it now. Nothing overrides this.
    #[serde(rename_all = "camelCase")]
    HandedOff {
        /// The deployer: the annotation's value, or `argocd` with Argo CD's tracking id.
        to: String,
    },
    /// A Namespace that still holds objects of the manifests, which deleting it would take
    /// along.
    HoldsManifestObjects,
    /// A CustomResourceDefinition whose kind the manifests still use.
    DefinesManifestKind,
    /// Its ownership record ([`OWNER_ANNOTATION`](crate::OWNER_ANNOTATION)) names another
    /// stage: the label alone proves nothing. Nothing overrides this.
    #[serde(rename_all = "camelCase")]
    OwnedElsewhere {
        /// The `project/stage` the object records.
        recorded: String,
        /// This run's `project/stage`, if it has one.
        ours: Option<String>,
    },
    /// It has no ownership record and carries a discriminator value that an earlier default
    /// (`<project>-<stage>`) could have given another stage too; `force_prune` overrides.
    #[serde(rename_all = "camelCase")]
    AmbiguousLegacyLabel {
        /// The label value.
        value: String,
    },
    /// A Namespace holding objects that are not being deleted in this run: deleting the
    /// Namespace would delete them too.
    #[serde(rename_all = "camelCase")]
    NamespaceNotEmpty {
        /// Some of those objects.
        holds: Vec<ObjectId>,
        /// How many more there are.
        more: usize,
    },
    /// A CustomResourceDefinition whose custom resources exist outside this run's deletions:
    /// deleting the definition would delete them too.
    #[serde(rename_all = "camelCase")]
    DefinitionInUse {
        /// Some of those objects.
        holds: Vec<ObjectId>,
        /// How many more there are.
        more: usize,
    },
    /// What deleting it would take along could not be checked; the message says why.
    Unverified(String),
}

/// What a delete request found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Removal {
    /// This run deleted it.
    Deleted,
    /// It was gone already (another run, a person, its owner's garbage collection).
    AlreadyGone,
    /// Another object with the same name has replaced it since the scan: left alone.
    Replaced,
}

/// What happened to one object a prune or delete went for.
#[derive(Debug)]
#[non_exhaustive]
pub struct Deletion {
    /// The object.
    pub id: ObjectId,
    /// What the server said, or why the request failed.
    pub result: Result<Removal>,
}

impl Deletion {
    /// Whether this run deleted the object (not: found it gone, or replaced).
    pub fn deleted(&self) -> bool {
        matches!(self.result, Ok(Removal::Deleted))
    }
}

/// What a scan could not see, because the user may not list it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Blind {
    /// Cluster-wide lists were forbidden: namespaced types were listed in these namespaces
    /// (the manifests') only.
    pub namespaces: Vec<String>,
    /// Types that could not be listed at all, as `group/version resource`: their objects are
    /// never pruned by this run.
    pub types: Vec<String>,
}

impl Blind {
    /// Whether the scan saw everything.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty() && self.types.is_empty()
    }
}

/// How an object is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Rolled out, complete, Established or `Ready`; or a kind without readiness rules that
    /// exists.
    Ready,
    /// On its way.
    Progressing,
    /// It will not get there without help (a failed Job, an exceeded progress deadline).
    Failed,
    /// Not on the server, or without the discriminator.
    Missing,
}

/// The health of one object of the manifests.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct ObjectStatus {
    /// The object.
    pub id: ObjectId,
    /// How it is doing.
    pub health: Health,
    /// Why, when it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a [`Deployer`](crate::Deployer) reports while it works.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// The server's API was discovered.
    Discovered {
        /// How many resource types it serves.
        resources: usize,
    },
    /// Planning needs a dry run for this many objects (the rest were settled from metadata).
    Checking {
        /// How many objects.
        total: usize,
    },
    /// One more object was planned.
    Checked {
        /// The object.
        id: &'a ObjectId,
    },
    /// A wave of writes starts.
    Wave {
        /// The number of the wave, from 1.
        index: usize,
        /// Objects it writes.
        writes: usize,
    },
    /// An object was written, or failed.
    Applied {
        /// The object.
        id: &'a ObjectId,
        /// What was done.
        action: Action,
        /// Whether it succeeded.
        ok: bool,
    },
    /// Waiting for CustomResourceDefinitions to be Established.
    Establishing {
        /// How many.
        count: usize,
    },
    /// Looking for objects the discriminator owns across this many resource types.
    Scanning {
        /// How many types.
        resources: usize,
    },
    /// An object was deleted, or failed to be.
    Deleted {
        /// The object.
        id: &'a ObjectId,
        /// Whether it succeeded.
        ok: bool,
    },
    /// Waiting for readiness starts.
    Waiting {
        /// Objects waited for.
        total: usize,
    },
    /// Waiting for readiness: this many of the objects are ready.
    Ready {
        /// Ready objects.
        ready: usize,
        /// All objects waited for.
        total: usize,
    },
}

/// A progress callback; it is called from the deploying task, never concurrently.
pub type Progress<'a> = &'a (dyn Fn(Event<'_>) + Send + Sync);
