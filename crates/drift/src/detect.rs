//! One check of a stage: what differs from the live objects, field by field, and who made the
//! difference.

use capstan_apply::{Action, Deployer, FieldChange, Plan, Planned, Progress};
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
/// unchanged from their metadata cost no request each; the rest are read and dry-run.
/// The deployer's [`Options::ignore`](capstan_apply::Options::ignore) rules apply, and its
/// field manager is the one whose fields count as the stage's.
///
/// # Errors
///
/// [`Error::Plan`] when discovery or a list fails. A failed check of one object is
/// [`State::Unknown`].
pub async fn detect(
    deployer: &Deployer,
    manifest: &Manifest,
    field_manager: &str,
    progress: Progress<'_>,
) -> Result<Report> {
    let plan = deployer
        .plan(manifest, false, progress)
        .await
        .map_err(Error::Plan)?;
    Ok(report(&plan, field_manager))
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
