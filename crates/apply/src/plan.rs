//! Planning: what applying the manifests would do to each object.

use std::collections::{HashMap, HashSet};

use capstan_manifest::{Manifest, Object, ObjectId};
use futures::{StreamExt as _, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::check::Check;
use crate::deployer::Deployer;
use crate::diff::Diff;
use crate::error::{Error, Result};
use crate::normalize::{HASH_ANNOTATION, ValuePath, annotate};
use crate::options::{Event, Progress};
use crate::ownership::OWNER_ANNOTATION;
use crate::proof::{content_hash, proves_unchanged};
use crate::prune::{Blind, Orphan};
use crate::redact::Redactions;
use capstan_kube::Target;
use capstan_kube::{Catalog, Resource};

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
    pub(crate) body: Value,
    pub(crate) masked: Vec<ValuePath>,
    /// The field managers of the live object, when it was read.
    pub(crate) owners: Vec<String>,
    /// Secret values of the body, kept out of every message and diff.
    pub(crate) secrets: Redactions,
}

// By hand, so the body (which may hold decrypted secrets) never reaches a log.
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

impl Deployer {
    pub(crate) async fn make_plan<'m>(
        &self,
        manifest: &'m Manifest,
        prune: bool,
        progress: Progress<'_>,
    ) -> Result<Plan<'m>> {
        let start = self.api.requests();
        self.api.reset();
        let catalog = if prune {
            Catalog::discover(&self.api).await?
        } else {
            Catalog::discover_for(&self.api, manifest).await?
        };
        progress(Event::Discovered {
            resources: catalog.len(),
        });
        let defined = defined_kinds(manifest);
        let selected = |object: &Object| match &self.options.selection {
            Some(selection) => selection.matches(object.id(), &object.labels()),
            None => true,
        };
        let mut items: Vec<Planned<'m>> = manifest
            .iter()
            .filter(|object| selected(object))
            .map(|object| self.resolve(object, &catalog, &defined))
            .collect();
        self.explain_unknown_kinds(&mut items).await;
        self.check_namespaces(manifest, &catalog, &mut items)
            .await?;
        let labelled = self.labelled(manifest, &items).await?;
        let mut unsettled = Vec::new();
        for (index, item) in items.iter_mut().enumerate() {
            if item.error.is_some() {
                continue;
            }
            if item.pending {
                // Without its namespace it can still be validated: see `Check::Elsewhere`.
                if self.options.verify_new && item.resource.is_some() {
                    unsettled.push((index, Check::Elsewhere));
                }
                continue;
            }
            match labelled.get(&key(item)) {
                Some(live) => {
                    item.uid = live.metadata.uid.clone();
                    let hash = hash_of(item);
                    let manager = &self.options.field_manager;
                    if proves_unchanged(&live.metadata, &item.body, &hash, manager) {
                        item.action = Action::Unchanged;
                    } else {
                        unsettled.push((index, Check::Exists));
                    }
                }
                None => unsettled.push((index, Check::Unknown)),
            }
        }
        let absent = self.absent(&items, &unsettled).await?;
        progress(Event::Checking {
            total: unsettled.len(),
        });
        let checked: Vec<(usize, Planned<'m>)> = stream::iter(unsettled)
            .map(|(index, check)| {
                let item = &items[index];
                let check = match check {
                    Check::Unknown if absent.contains(&index) => Check::Absent,
                    check => check,
                };
                async move { (index, self.check(item, check).await) }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .inspect(|(_, item)| progress(Event::Checked { id: item.id() }))
            .collect()
            .await;
        for (index, item) in checked {
            items[index] = item;
        }
        let mut plan = Plan {
            items,
            orphans: None,
            catalog,
            empty: manifest.is_empty(),
            selector: manifest.label().map(|label| label.selector()),
            blind: Blind::default(),
            requests: 0,
        };
        if prune && let Some(label) = manifest.label() {
            let scan = self.scan_orphans(&plan, manifest, label, progress).await?;
            plan.orphans = Some(scan.owned);
            plan.blind = scan.blind;
        }
        plan.requests = self.api.requests() - start;
        Ok(plan)
    }

    /// Finds the object's resource type and namespace, and prepares its body.
    fn resolve<'m>(
        &self,
        object: &'m Object,
        catalog: &Catalog,
        defined: &HashSet<(String, String)>,
    ) -> Planned<'m> {
        let id = object.id();
        let mut item = Planned {
            object,
            resource: None,
            namespace: None,
            action: Action::Create,
            diff: None,
            uid: None,
            verified: false,
            pending: false,
            error: None,
            body: Value::Null,
            masked: Vec::new(),
            owners: Vec::new(),
            secrets: Redactions::default(),
        };
        match self.body(object) {
            Ok((body, masked)) => {
                item.secrets = Redactions::of(&body, &masked);
                (item.body, item.masked) = (body, masked);
            }
            Err(error) => {
                item.error = Some(error);
                return item;
            }
        }
        match catalog.resolve_id(id) {
            Some(resource) => item.place(resource, self.api.client().default_namespace()),
            // Applied once the CRD earlier in the run is Established.
            None if defined.contains(&(id.group().to_owned(), id.kind().to_owned())) => {
                item.pend();
            }
            None => {
                item.error = Some(Error::UnknownKind {
                    id: id.clone(),
                    api_version: id.api_version(),
                    kind: id.kind().to_owned(),
                })
            }
        }
        item
    }

    /// Turns "not served" into "served at another version" where the server serves the kind
    /// under another version of its group (`batch/v1beta1` CronJob on 1.20, not `batch/v1`):
    /// the fix is then the manifest's `apiVersion`, not a missing CRD.
    async fn explain_unknown_kinds(&self, items: &mut [Planned<'_>]) {
        let mut asked: HashMap<(String, String), Vec<String>> = HashMap::new();
        for item in items.iter_mut() {
            let Some(Error::UnknownKind {
                id,
                api_version,
                kind,
            }) = &item.error
            else {
                continue;
            };
            if id.group().is_empty() {
                continue;
            }
            let key = (id.group().to_owned(), kind.clone());
            if !asked.contains_key(&key) {
                let served = Catalog::versions_serving(&self.api, &key.0, &key.1).await;
                asked.insert(key.clone(), served);
            }
            let served = &asked[&key];
            if !served.is_empty() {
                item.error = Some(Error::OtherVersion {
                    id: id.clone(),
                    api_version: api_version.clone(),
                    kind: kind.clone(),
                    served: served.clone(),
                });
            }
        }
    }

    /// The body that is sent: the manifest's object (or the prepared one), with the content
    /// hash and the stamp.
    fn body(&self, object: &Object) -> Result<(Value, Vec<ValuePath>)> {
        let prepared = match &self.options.prepare {
            Some(prepare) => prepare.prepare(object).map_err(|message| Error::Prepare {
                id: object.id().clone(),
                message,
            })?,
            None => None,
        };
        let (mut body, masked) = match prepared {
            Some(prepared) => (prepared.body, prepared.masked),
            None => (object.to_value(), Vec::new()),
        };
        let owner = self.options.owner.as_deref();
        let hash = content_hash(object.json(), &self.options.field_manager, owner);
        annotate(&mut body, HASH_ANNOTATION, &hash);
        if let Some(owner) = owner {
            annotate(&mut body, OWNER_ANNOTATION, owner);
        }
        for (key, value) in &self.options.stamp {
            annotate(&mut body, key, value);
        }
        Ok((body, masked))
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
            body: self.body.clone(),
            masked: self.masked.clone(),
            owners: self.owners.clone(),
            secrets: self.secrets.clone(),
        }
    }

    /// Addresses the object through its resource type: namespaced objects without a namespace
    /// go to the client's default one, and a namespace on a cluster-scoped object is dropped
    /// from the body, as kubectl does, since the server has nowhere to put it.
    pub(crate) fn place(&mut self, resource: &Resource, default_namespace: &str) {
        if resource.namespaced {
            let namespace = self.object.id().namespace().unwrap_or(default_namespace);
            self.namespace = Some(namespace.to_owned());
        } else if let Some(Value::Object(metadata)) = self.body.get_mut("metadata") {
            metadata.remove("namespace");
        }
        self.resource = Some(resource.clone());
    }

    /// The object's CRD or namespace is created by this run: the object is new, and is applied
    /// (not dry-run) once what it needs exists.
    pub(crate) fn pend(&mut self) {
        self.pending = true;
        self.action = Action::Create;
        self.diff = Some(Diff::new(None, &self.body, &self.masked, &self.secrets));
    }
}

fn hash_of(item: &Planned<'_>) -> String {
    item.body
        .pointer(&format!(
            "/metadata/annotations/{}",
            HASH_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

pub(crate) fn type_key(resource: &Resource) -> String {
    format!("{}/{}", resource.api.group, resource.api.plural)
}

fn key(item: &Planned<'_>) -> (String, Option<String>, String) {
    let resource = item.resource.as_ref().expect("resolved");
    (
        type_key(resource),
        item.namespace.clone(),
        item.id().name().to_owned(),
    )
}

/// `(group, kind)` of every CustomResourceDefinition in the manifests.
fn defined_kinds(manifest: &Manifest) -> HashSet<(String, String)> {
    manifest
        .iter()
        .filter(|o| {
            o.id().group() == "apiextensions.k8s.io" && o.id().kind() == "CustomResourceDefinition"
        })
        .filter_map(|o| {
            let crd = o.to_value();
            let group = crd.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = crd.pointer("/spec/names/kind")?.as_str()?.to_owned();
            Some((group, kind))
        })
        .collect()
}
