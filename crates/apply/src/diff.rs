//! A planned change, as text a person can review.

use serde::Serialize;
use serde_json::Value;
use similar::TextDiff;

use crate::fields::{self, FieldChange};
use crate::normalize::{hide_hash, mask, normalize};
use crate::redact::{Redactions, ValuePath};

/// An object's live state and its planned state, normalised, with every secret value masked.
///
/// Both sides are YAML; [`Diff::unified`] renders the change as a unified diff.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    before: String,
    after: String,
    #[serde(skip)]
    changes: Vec<FieldChange>,
}

impl Diff {
    /// Builds the diff from whole objects; `masked` names values (besides Secret data) that must
    /// never be shown, and `secrets` are masked wherever else they appear.
    pub(crate) fn new(
        before: Option<&Value>,
        after: &Value,
        masked: &[ValuePath],
        secrets: &Redactions,
    ) -> Self {
        let live = before;
        let mut before = before.cloned();
        let mut after = after.clone();
        for state in before.iter_mut().chain(Some(&mut after)) {
            normalize(state);
            hide_hash(state);
        }
        mask(before.as_mut(), &mut after, masked);
        let text = |value: &Value| secrets.redact(&to_yaml(value));
        Self {
            before: before.as_ref().map(text).unwrap_or_default(),
            after: text(&after),
            changes: fields::changes(live, before.as_ref(), &after, secrets),
        }
    }

    /// The change field by field, each with the manager that owns the live field (empty for an
    /// object that does not exist yet).
    pub fn changes(&self) -> &[FieldChange] {
        &self.changes
    }

    /// The live object as YAML; empty for an object that does not exist yet.
    pub fn before(&self) -> &str {
        &self.before
    }

    /// The object as it will be, as YAML.
    pub fn after(&self) -> &str {
        &self.after
    }

    /// Whether the two sides are the same text: an update that only refreshes capstan's own
    /// bookkeeping.
    pub fn is_empty(&self) -> bool {
        self.before == self.after
    }

    /// A unified diff with three lines of context, headed `--- name (live)` and
    /// `+++ name (planned)`.
    pub fn unified(&self, name: &str) -> String {
        TextDiff::from_lines(&self.before, &self.after)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{name} (live)"), &format!("{name} (planned)"))
            .to_string()
    }
}

fn to_yaml(value: &Value) -> String {
    // A Value always serialises.
    serde_yaml::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Diff;
    use crate::redact::Redactions;

    #[test]
    fn unified_diff_shows_changed_lines_and_hides_bookkeeping() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "1",
                "annotations": {"capstan.io/content-hash": "old"}},
            "data": {"k": "old"}});
        let planned = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "annotations": {"capstan.io/content-hash": "new"}},
            "data": {"k": "new"}});
        let diff = Diff::new(Some(&live), &planned, &[], &Redactions::default());
        let text = diff.unified("v1/ConfigMap a");
        assert!(text.contains("-  k: old\n+  k: new\n"), "{text}");
        assert!(
            !text.contains("uid") && !text.contains("content-hash"),
            "{text}"
        );
    }

    #[test]
    fn new_objects_have_an_empty_before() {
        let diff = Diff::new(
            None,
            &json!({"kind": "ConfigMap"}),
            &[],
            &Redactions::default(),
        );
        assert_eq!(diff.before(), "");
        assert!(diff.unified("x").contains("+kind: ConfigMap"));
    }
}
