//! `ignoreDifferences` of a stage: fields that `diff`, `drift` and the unchanged proof leave
//! alone, as Argo CD's rules of the same name do.
//!
//! ```yaml
//! stages:
//!   full:
//!     manifests: build/full.yaml
//!     ignoreDifferences:
//!       - kind: Deployment                 # optional selectors: group, kind, namespace, name
//!         jsonPointers: [/spec/replicas]
//!         managers: [kube-controller-manager]   # optional: only what these managers wrote
//!       - managers: [vpa-recommender]      # everything these managers own
//! ```
//!
//! A rule with pointers and managers ignores its pointers only where one of its managers owns
//! the field; with pointers alone, whoever owns it; with managers alone, every field they own.

use serde::{Deserialize, Serialize};

use crate::ObjectId;

/// One rule of `ignoreDifferences`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IgnoreRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    json_pointers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    managers: Vec<String>,
}

/// A stage's `ignoreDifferences`, pointers parsed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IgnoreRules {
    rules: Vec<(IgnoreRule, Vec<Vec<String>>)>,
}

impl IgnoreRule {
    /// The narrowest rule for one field of one object (`pointer` as segments), which the
    /// manager that wrote it, when known, scopes further: what `drift` suggests pasting.
    pub fn for_field(id: &ObjectId, pointer: &[String], manager: Option<&str>) -> Self {
        Self {
            group: (!id.group().is_empty()).then(|| id.group().to_owned()),
            kind: Some(id.kind().to_owned()),
            namespace: id.namespace().map(str::to_owned),
            name: Some(id.name().to_owned()),
            json_pointers: vec![json_pointer(pointer)],
            managers: manager.map(str::to_owned).into_iter().collect(),
        }
    }

    /// The rule as one YAML list item, ready to paste under `ignoreDifferences:`.
    pub fn to_yaml(&self) -> String {
        // A struct of strings always serialises.
        let body = serde_yaml::to_string(self).unwrap_or_default();
        let mut lines = body.lines();
        let mut out = String::new();
        if let Some(first) = lines.next() {
            out.push_str("- ");
            out.push_str(first);
            out.push('\n');
        }
        for line in lines {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    fn selects(&self, id: &ObjectId) -> bool {
        let matches = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        matches(&self.group, id.group())
            && matches(&self.kind, id.kind())
            && matches(&self.name, id.name())
            && matches(&self.namespace, id.namespace().unwrap_or_default())
    }
}

impl IgnoreRules {
    /// Parses the pointers of `rules`.
    ///
    /// # Errors
    ///
    /// A message naming the rule (counting from 1) when a pointer does not start with `/`, or a
    /// rule has neither `jsonPointers` nor `managers`.
    pub fn new(rules: Vec<IgnoreRule>) -> Result<Self, String> {
        let mut parsed = Vec::with_capacity(rules.len());
        for (index, rule) in rules.into_iter().enumerate() {
            let number = index + 1;
            if rule.json_pointers.is_empty() && rule.managers.is_empty() {
                return Err(format!(
                    "ignoreDifferences rule {number} names neither `jsonPointers` nor `managers`"
                ));
            }
            let pointers = rule
                .json_pointers
                .iter()
                .map(|pointer| {
                    segments(pointer).ok_or_else(|| {
                        format!(
                            "ignoreDifferences rule {number}: `{pointer}` is not a JSON pointer \
                             (it must start with `/`)"
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            parsed.push((rule, pointers));
        }
        Ok(Self { rules: parsed })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The pointers of the rules for `id` that name no manager: ignored whoever owns them.
    pub fn pointers<'r>(&'r self, id: &'r ObjectId) -> impl Iterator<Item = &'r [String]> + 'r {
        self.rules
            .iter()
            .filter(move |(rule, _)| rule.managers.is_empty() && rule.selects(id))
            .flat_map(|(_, pointers)| pointers.iter().map(Vec::as_slice))
    }

    /// Whether a rule ignores the field at `path` (JSON pointer segments) of object `id`, owned
    /// by `manager` (`None`: whoever owns it is not known, so rules naming managers do not
    /// apply).
    pub fn ignores(&self, id: &ObjectId, path: &[String], manager: Option<&str>) -> bool {
        self.rules.iter().any(|(rule, pointers)| {
            rule.selects(id)
                && (rule.managers.is_empty()
                    || manager.is_some_and(|m| rule.managers.iter().any(|r| r == m)))
                && (pointers.is_empty() || pointers.iter().any(|p| path.starts_with(p)))
        })
    }
}

/// The segments of an RFC 6901 pointer, `~1` and `~0` unescaped; `None` when it does not start
/// with `/`. The empty pointer (the whole object) has no segments.
fn segments(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Segments as an RFC 6901 pointer.
pub fn json_pointer(segments: &[String]) -> String {
    segments
        .iter()
        .map(|segment| format!("/{}", segment.replace('~', "~0").replace('/', "~1")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{IgnoreRule, IgnoreRules, json_pointer, segments};
    use crate::ObjectId;

    fn rules(yaml: &str) -> IgnoreRules {
        IgnoreRules::new(serde_yaml::from_str(yaml).unwrap()).unwrap()
    }

    fn path(pointer: &str) -> Vec<String> {
        segments(pointer).unwrap()
    }

    fn deployment() -> ObjectId {
        ObjectId::new("apps/v1", "Deployment", Some("shop"), "web")
    }

    #[test]
    fn a_pointer_rule_ignores_its_field_and_everything_below_only() {
        let rules = rules(
            "[{kind: Deployment, jsonPointers: [/spec/replicas, /metadata/annotations/a~1b]}]",
        );
        let id = deployment();
        assert!(rules.ignores(&id, &path("/spec/replicas"), None));
        assert!(rules.ignores(&id, &path("/metadata/annotations/a~1b"), Some("x")));
        assert!(!rules.ignores(&id, &path("/spec/template"), None));
        let other = ObjectId::new("v1", "ConfigMap", Some("shop"), "web");
        assert!(!rules.ignores(&other, &path("/spec/replicas"), None));
    }

    #[test]
    fn a_manager_rule_needs_that_manager() {
        let rules = rules("[{jsonPointers: [/spec/replicas], managers: [hpa]}, {managers: [vpa]}]");
        let id = deployment();
        assert!(rules.ignores(&id, &path("/spec/replicas"), Some("hpa")));
        assert!(!rules.ignores(&id, &path("/spec/replicas"), Some("kubectl-edit")));
        assert!(!rules.ignores(&id, &path("/spec/replicas"), None));
        assert!(rules.ignores(&id, &path("/spec/template/x"), Some("vpa")));
    }

    #[test]
    fn rules_without_fields_or_with_bad_pointers_are_refused() {
        let none: Vec<IgnoreRule> = serde_yaml::from_str("[{kind: Deployment}]").unwrap();
        assert_eq!(
            IgnoreRules::new(none).unwrap_err(),
            "ignoreDifferences rule 1 names neither `jsonPointers` nor `managers`"
        );
        let bad: Vec<IgnoreRule> = serde_yaml::from_str("[{jsonPointers: [spec]}]").unwrap();
        assert_eq!(
            IgnoreRules::new(bad).unwrap_err(),
            "ignoreDifferences rule 1: `spec` is not a JSON pointer (it must start with `/`)"
        );
    }

    #[test]
    fn a_suggested_rule_round_trips_and_silences_exactly_its_field() {
        let id = deployment();
        let field = path("/metadata/labels/app.kubernetes.io~1tier");
        let rule = IgnoreRule::for_field(&id, &field, Some("kubectl-edit"));
        let yaml = rule.to_yaml();
        assert!(
            yaml.starts_with("- group: apps\n  kind: Deployment\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("/metadata/labels/app.kubernetes.io~1tier"),
            "{yaml}"
        );
        let rules = rules(&yaml);
        assert!(rules.ignores(&id, &field, Some("kubectl-edit")));
        assert!(!rules.ignores(&id, &path("/metadata/labels/other"), Some("kubectl-edit")));
        assert_eq!(
            json_pointer(&field),
            "/metadata/labels/app.kubernetes.io~1tier"
        );
    }
}
