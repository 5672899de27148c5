//! The plan and its entries: what planning found for each object, and what writing needs of
//! it.

use capstan_kube::{Catalog, Resource, Target};
use capstan_manifest::{Object, ObjectId};
use serde_json::Value;

use crate::diff::Diff;
use crate::error::Error;
use crate::normalize::annotate;
use crate::options::Options;
use crate::redact::{Redactions, ValuePath};
use crate::vocab::{Action, Blind, HASH_ANNOTATION, OWNER_ANNOTATION, Orphan};

/// The plan for one object.
pub struct Planned<'m> {
    pub(crate) object: &'m Object,
    pub(crate) resource: Option<Resource>,
    pub(crate) namespace: Option<String>,
    pub(crate) action: Action,
    pub(crate) diff: Option<Diff>,
    pub(crate) uid: Option<String>,
    pub(crate) verified: bool,
    /// Waits for a CRD or Namespace that the same run creates: planned as a create.
    pub(crate) pending: bool,
    pub(crate) error: Option<Error>,
    /// The body a [`Prepare`](crate::Prepare) made, when it made one; otherwise the body is
    /// the manifest's compact JSON, parsed when it is sent (see `Planned::body`).
    pub(crate) prepared: Option<Value>,
    /// The [`HASH_ANNOTATION`] the body carries.
    pub(crate) hash: String,
    pub(crate) masked: Vec<ValuePath>,
    /// The field managers of the live object, when it was read.
    pub(crate) owners: Vec<String>,
    /// Secret values of the body, kept out of every message and diff.
    pub(crate) secrets: Redactions,
}

// By hand, so a prepared body (which may hold decrypted secrets) never reaches a log.
impl std::fmt::Debug for Planned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned")
            .field("id", self.id())
            .field("action", &self.action)
            .field("verified", &self.verified)
            .field("pending", &self.pending)
            .field("uid", &self.uid)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl Planned<'_> {
    /// The object.
    pub fn id(&self) -> &ObjectId {
        self.object.id()
    }

    /// What applying it does.
    pub fn action(&self) -> Action {
        self.action
    }

    /// The change, for creates and updates: live and planned state, secrets masked.
    pub fn diff(&self) -> Option<&Diff> {
        self.diff.as_ref()
    }

    /// Whether the server has dry-run the object. New objects are dry-run only with
    /// [`Options::verify_new`](crate::Options::verify_new); objects whose CRD or Namespace
    /// the same run creates cannot be, until it exists.
    pub fn is_verified(&self) -> bool {
        self.verified
    }

    /// Why the object cannot be applied, if it cannot.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// The object's UID, when it exists.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// The field managers of the live object (`kubectl-create`, `helm`, ...), when planning
    /// read it: for an [`Action::Adopt`], who made the object.
    pub fn owners(&self) -> &[String] {
        &self.owners
    }

    /// The body that is sent: the manifest's object (or the prepared one) with the content
    /// hash, the ownership record and the stamp; without a namespace when the type is
    /// cluster-scoped, as kubectl does, since the server has nowhere to put it. Made afresh
    /// each time, so that a plan of many objects holds their compact JSON only.
    pub(crate) fn body(&self, options: &Options) -> Value {
        let mut body = match &self.prepared {
            Some(prepared) => prepared.clone(),
            None => self.object.to_value(),
        };
        annotate(&mut body, HASH_ANNOTATION, &self.hash);
        if let Some(owner) = &options.owner {
            annotate(&mut body, OWNER_ANNOTATION, owner);
        }
        for (key, value) in &options.stamp {
            annotate(&mut body, key, value);
        }
        let cluster_scoped = self.resource.as_ref().is_some_and(|r| !r.namespaced);
        if cluster_scoped && let Some(Value::Object(metadata)) = body.get_mut("metadata") {
            metadata.remove("namespace");
        }
        body
    }

    pub(crate) fn target(&self) -> Option<Target<'_>> {
        self.resource.as_ref().map(|resource| Target {
            resource: &resource.api,
            namespace: self.namespace.as_deref(),
            name: self.object.id().name(),
        })
    }
}

/// What a deploy of the manifests would do: an entry per object in apply order, and the
/// orphans a prune would look at.
#[derive(Debug)]
pub struct Plan<'m> {
    pub(crate) items: Vec<Planned<'m>>,
    pub(crate) orphans: Option<Vec<Orphan>>,
    pub(crate) catalog: Catalog,
    pub(crate) empty: bool,
    /// The discriminator's label selector, when the manifests have one.
    pub(crate) selector: Option<String>,
    pub(crate) blind: Blind,
    pub(crate) requests: usize,
}

impl<'m> Plan<'m> {
    /// The objects, in apply order.
    pub fn objects(&self) -> &[Planned<'m>] {
        &self.items
    }

    /// Prune candidates, when the plan was made with prune: live objects carrying the
    /// discriminator that the manifests no longer hold, each with the verdict of the guards.
    pub fn orphans(&self) -> Option<&[Orphan]> {
        self.orphans.as_deref()
    }

    /// Whether applying would write anything, and pruning (if planned) delete anything.
    pub fn has_changes(&self) -> bool {
        self.items.iter().any(|i| i.action != Action::Unchanged)
            || self
                .orphans
                .iter()
                .flatten()
                .any(|orphan| orphan.will_delete())
    }

    /// How many objects take each action.
    pub fn count(&self, action: Action) -> usize {
        self.items
            .iter()
            .filter(|i| i.action == action && i.error.is_none())
            .count()
    }

    /// Objects that cannot be applied, with the reason.
    pub fn errors(&self) -> impl Iterator<Item = &Error> {
        self.items.iter().filter_map(|i| i.error.as_ref())
    }

    /// API requests made while planning.
    pub fn requests(&self) -> usize {
        self.requests
    }

    /// Group-versions whose discovery failed: kinds there could not be checked or scanned.
    pub fn unavailable_apis(&self) -> &[String] {
        self.catalog.unavailable()
    }

    /// What the prune scan could not see because listing it is forbidden to the user; its
    /// objects are never pruned by this plan.
    pub fn blind(&self) -> &Blind {
        &self.blind
    }
}

impl Planned<'_> {
    pub(crate) fn clone_plan(&self) -> Self {
        Self {
            object: self.object,
            resource: self.resource.clone(),
            namespace: self.namespace.clone(),
            action: self.action,
            diff: None,
            uid: self.uid.clone(),
            verified: false,
            pending: self.pending,
            error: None,
            prepared: self.prepared.clone(),
            hash: self.hash.clone(),
            masked: self.masked.clone(),
            owners: self.owners.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Addresses the object through its resource type: namespaced objects without a namespace
    /// go to the client's default one.
    pub(crate) fn place(&mut self, resource: &Resource, default_namespace: &str) {
        if resource.namespaced {
            let namespace = self.object.id().namespace().unwrap_or(default_namespace);
            self.namespace = Some(namespace.to_owned());
        }
        self.resource = Some(resource.clone());
    }

    /// The object's CRD or namespace is created by this run: the object is new, and is applied
    /// (not dry-run) once what it needs exists.
    pub(crate) fn pend(&mut self, options: &Options) {
        self.pending = true;
        self.action = Action::Create;
        let body = self.body(options);
        self.diff = Some(Diff::new(None, &body, &self.masked, &self.secrets));
    }
}

pub(crate) fn type_key(resource: &Resource) -> String {
    format!("{}/{}", resource.api.group, resource.api.plural)
}

pub(crate) fn key(item: &Planned<'_>) -> (String, Option<String>, String) {
    let resource = item.resource.as_ref().expect("resolved");
    (
        type_key(resource),
        item.namespace.clone(),
        item.id().name().to_owned(),
    )
}
