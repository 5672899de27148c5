//! One check of a stage: what differs from the live objects, field by field, and who made the
//! difference.

use std::collections::HashMap;

use capstan_apply::{
    Action, Deployer, FieldChange, Options, Plan, Planned, Progress, foreign_fields,
    has_foreign_fields,
};
use capstan_kube::{Api, Catalog, MetaItem, Target};
use capstan_manifest::{IgnoreRule, Manifest, ObjectId, json_pointer};

use crate::error::{Error, Result};

/// Where an object stands against the stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Applying the stage would change nothing.
    InSync,
    /// Live fields differ from the stage's.
    Drifted,
    /// The object does not exist.
    Missing,
    /// Its check failed: not known to be in sync.
    Unknown,
}

/// What kind of difference a field shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChangeKind {
    /// Another manager (a person with `kubectl edit`, another tool, a controller) changed a
    /// field capstan applied: it now owns the field.
    Changed,
    /// A field capstan applied is gone.
    Removed,
    /// capstan still owns the live field: the stage changed since it was last deployed.
    NotDeployed,
    /// Nobody owns the live field: server defaulting or a mutating webhook.
    Defaulted,
    /// Another manager (not the control plane's) added a field the stage does not set.
    Added,
}

/// One field that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldDrift {
    /// The field, as an RFC 6901 pointer (`/spec/replicas`).
    pub pointer: String,
    /// What kind of difference it is.
    pub kind: ChangeKind,
    /// The live value as compact JSON (secret values masked); `None` when absent.
    pub live: Option<String>,
    /// The stage's value, the same way.
    pub planned: Option<String>,
    /// The manager owning the live field, from `managedFields`.
    pub manager: Option<String>,
    /// That manager's operation, `Apply` or `Update`.
    pub operation: Option<String>,
    /// When that manager last wrote the object, RFC 3339.
    pub time: Option<String>,
    /// An `ignoreDifferences` rule that would silence this field, ready to paste.
    pub rule: IgnoreRule,
}

/// One object of the stage.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectDrift {
    /// The object.
    pub id: ObjectId,
    /// Where it stands.
    pub state: State,
    /// The fields that differ (for [`State::Drifted`]).
    pub fields: Vec<FieldDrift>,
    /// Why its check failed (for [`State::Unknown`]).
    pub error: Option<String>,
}

/// The result of [`detect`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// One entry per object of the stage, in apply order.
    pub items: Vec<ObjectDrift>,
    /// API requests the check made.
    pub requests: usize,
}

impl Report {
    /// Whether every object is in sync.
    pub fn in_sync(&self) -> bool {
        self.items.iter().all(|i| i.state == State::InSync)
    }

    /// Objects in `state`.
    pub fn count(&self, state: State) -> usize {
        self.items.iter().filter(|i| i.state == state).count()
    }
}

/// Checks every object of `manifest` against the cluster, writing nothing: objects proved
/// unchanged from their metadata cost no request each; the rest are read and dry-run. Fields
/// other managers added since capstan's last apply are found from one metadata list per type,
/// and only objects that have some are read. `options` are the deployer's: its
/// [`ignore`](capstan_apply::Options::ignore) rules apply, and its field manager's fields are
/// the stage's.
///
/// # Errors
///
/// [`Error::Plan`] when discovery or a list fails. A failed check of one object is
/// [`State::Unknown`].
pub async fn detect(
    client: &kube::Client,
    options: &Options,
    manifest: &Manifest,
    progress: Progress<'_>,
) -> Result<Report> {
    let deployer = Deployer::new(client.clone(), options.clone());
    let plan = deployer
        .plan(manifest, false, progress)
        .await
        .map_err(Error::Plan)?;
    let mut report = report(&plan, &options.field_manager);
    let api = Api::new(client.clone());
    added(&api, options, manifest, &mut report).await?;
    report.requests += api.requests();
    Ok(report)
}

/// Adds the fields other managers added to objects otherwise in sync or drifted.
async fn added(
    api: &Api,
    options: &Options,
    manifest: &Manifest,
    report: &mut Report,
) -> Result<()> {
    let Some(label) = manifest.label() else {
        return Ok(());
    };
    let catalog = Catalog::discover_for(api, manifest)
        .await
        .map_err(|e| Error::Plan(e.into()))?;
    let mut listed: HashMap<String, HashMap<(Option<String>, String), MetaItem>> = HashMap::new();
    for item in &mut report.items {
        if !matches!(item.state, State::InSync | State::Drifted) {
            continue;
        }
        let Some(resource) = catalog.resolve_id(&item.id) else {
            continue;
        };
        let key = resource.describe();
        if !listed.contains_key(&key) {
            let list = api
                .list_metadata(&resource.api, None, Some(&label.selector()))
                .await
                .map_err(|cause| Error::List {
                    resource: key.clone(),
                    cause,
                })?;
            let by_name = list
                .into_iter()
                .map(|meta| {
                    let id = (
                        meta.metadata.namespace.clone(),
                        meta.metadata.name.clone().unwrap_or_default(),
                    );
                    (id, meta)
                })
                .collect();
            listed.insert(key.clone(), by_name);
        }
        let namespace = item.id.namespace().map(str::to_owned);
        let Some(meta) = listed[&key].get(&(namespace.clone(), item.id.name().to_owned())) else {
            continue;
        };
        let entries = meta.metadata.managed_fields.as_deref().unwrap_or_default();
        if !has_foreign_fields(entries, &options.field_manager) {
            continue;
        }
        let target = Target {
            resource: &resource.api,
            namespace: namespace.as_deref(),
            name: item.id.name(),
        };
        let live = match api.get(target).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(error) => {
                item.state = State::Unknown;
                item.error = Some(format!("{}: cannot read it: {error}", item.id));
                continue;
            }
        };
        for change in foreign_fields(&live, &options.field_manager) {
            let manager = change.owner.as_ref().map(|o| o.manager.as_str());
            let known = item
                .fields
                .iter()
                .any(|f| f.pointer == json_pointer(&change.path));
            if known || options.ignore.ignores(&item.id, &change.path, manager) {
                continue;
            }
            item.fields
                .push(field(&item.id, &change, &options.field_manager));
            item.state = State::Drifted;
        }
    }
    Ok(())
}

/// The report of a plan made without prune.
pub fn report(plan: &Plan<'_>, field_manager: &str) -> Report {
    Report {
        items: plan
            .objects()
            .iter()
            .map(|item| object(item, field_manager))
            .collect(),
        requests: plan.requests(),
    }
}

fn object(item: &Planned<'_>, field_manager: &str) -> ObjectDrift {
    let id = item.id().clone();
    let mut drift = ObjectDrift {
        id,
        state: State::InSync,
        fields: Vec::new(),
        error: None,
    };
    if let Some(error) = item.error() {
        drift.state = State::Unknown;
        drift.error = Some(error.to_string());
        return drift;
    }
    match item.action() {
        Action::Unchanged => {}
        Action::Create => drift.state = State::Missing,
        Action::Update | Action::Adopt => {
            drift.state = State::Drifted;
            drift.fields = item
                .diff()
                .map(|diff| {
                    diff.changes()
                        .iter()
                        .map(|change| field(&drift.id, change, field_manager))
                        .collect()
                })
                .unwrap_or_default();
            if drift.fields.is_empty() && item.action() == Action::Update {
                // Only capstan's bookkeeping differs (an ownership record, a stamp).
                drift.state = State::InSync;
            }
        }
        _ => {
            drift.state = State::Unknown;
            drift.error = Some(format!("unexpected plan action {:?}", item.action()));
        }
    }
    drift
}

fn field(id: &ObjectId, change: &FieldChange, field_manager: &str) -> FieldDrift {
    let owner = change.owner.as_ref();
    let kind = match (&change.live, owner) {
        (None, _) => ChangeKind::Removed,
        (Some(_), Some(owner)) if change.planned.is_none() && owner.manager != field_manager => {
            ChangeKind::Added
        }
        (Some(_), None) => ChangeKind::Defaulted,
        (Some(_), Some(owner)) if owner.manager == field_manager => ChangeKind::NotDeployed,
        (Some(_), Some(_)) => ChangeKind::Changed,
    };
    let manager = owner.map(|o| o.manager.clone());
    FieldDrift {
        pointer: json_pointer(&change.path),
        kind,
        live: change.live.clone(),
        planned: change.planned.clone(),
        rule: IgnoreRule::for_field(id, &change.path, manager.as_deref()),
        manager,
        operation: owner.map(|o| o.operation.clone()),
        time: owner.and_then(|o| o.time.clone()),
    }
}
