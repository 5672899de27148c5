//! A planned change field by field, and who last wrote each field of the live object (from its
//! `managedFields`), for reports that name the manager behind a drift.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use serde::Serialize;
use serde_json::Value;

use crate::normalize::LAST_APPLIED;
use crate::proof::{is_ours, item_index, members, pointer_of, touches_only_status};
use crate::redact::{Redactions, is_secret};

/// Field managers of the control plane itself: what they write beside capstan (a Deployment's
/// revision annotation, a ServiceAccount's token `secrets`) is the cluster's bookkeeping, never
/// somebody else's addition.
pub const CONTROL_PLANE_MANAGERS: &[&str] = &[
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-apiserver",
];

/// One field whose live value differs from the planned one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FieldChange {
    /// The field as JSON pointer segments (`["spec", "replicas"]`).
    pub path: Vec<String>,
    /// The live value as compact JSON, secret values masked; `None` when the field is absent.
    pub live: Option<String>,
    /// The planned value, the same way.
    pub planned: Option<String>,
    /// The manager whose `managedFields` entry owns the live field, if any does.
    pub owner: Option<FieldOwner>,
}

/// A `managedFields` entry, as far as a report needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FieldOwner {
    /// The field manager (`kubectl-edit`, `kube-controller-manager`, `capstan`).
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// When the manager last changed the object, RFC 3339.
    pub time: Option<String>,
}

/// Whether a manager other than `field_manager` and the control plane's has written fields
/// capstan does not own since capstan last applied the object: from its metadata alone.
pub fn has_foreign_fields(entries: &[ManagedFieldsEntry], field_manager: &str) -> bool {
    !foreign(entries, field_manager).is_empty()
}

/// The fields of `live` (a whole object) that managers other than `field_manager` and the
/// control plane's added since capstan last applied it, and capstan does not own: each with its
/// live value (every value of a Secret masked; kubectl's last-applied annotation left out), no planned value, and its owner.
pub fn foreign_fields(live: &Value, field_manager: &str) -> Vec<FieldChange> {
    let entries: Vec<ManagedFieldsEntry> = live
        .pointer("/metadata/managedFields")
        .and_then(|entries| serde_json::from_value(entries.clone()).ok())
        .unwrap_or_default();
    let secret = is_secret(live);
    let mut out = Vec::new();
    for (entry, paths) in foreign(&entries, field_manager) {
        for path in paths {
            let Some(pointer) = pointer_of(&path, live) else {
                continue;
            };
            let value = pointer.iter().try_fold(live, |value, step| match value {
                Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                other => other.get(step),
            });
            if pointer.len() == 3
                && pointer[..2] == ["metadata", "annotations"]
                && pointer[2] == LAST_APPLIED
            {
                continue;
            }
            out.push(FieldChange {
                // Whatever someone added to a Secret may hold a secret value (a client-side
                // apply's last-applied annotation holds them all).
                live: value.map(|v| {
                    if secret {
                        "\"***\"".to_owned()
                    } else {
                        v.to_string()
                    }
                }),
                planned: None,
                owner: Some(FieldOwner {
                    manager: entry.manager.clone().unwrap_or_default(),
                    operation: entry.operation.clone().unwrap_or_default(),
                    time: entry.time.as_ref().map(|t| t.0.to_string()),
                }),
                path: pointer,
            });
        }
    }
    out
}

/// The entries of other managers newer than capstan's, with the paths they own that capstan's
/// entry does not (status and list-item markers left out).
fn foreign<'e>(
    entries: &'e [ManagedFieldsEntry],
    field_manager: &str,
) -> Vec<(&'e ManagedFieldsEntry, Vec<Vec<String>>)> {
    let Some(ours) = entries.iter().find(|e| is_ours(e, field_manager)) else {
        return Vec::new();
    };
    let owned = ours
        .fields_v1
        .as_ref()
        .map(|f| members(&f.0))
        .unwrap_or_default();
    entries
        .iter()
        .filter(|e| !is_ours(e, field_manager) && !touches_only_status(e))
        .filter(|e| {
            e.manager
                .as_deref()
                .is_some_and(|m| m != field_manager && !CONTROL_PLANE_MANAGERS.contains(&m))
        })
        .filter(|e| match (&e.time, &ours.time) {
            (Some(theirs), Some(applied)) => theirs >= applied,
            _ => true,
        })
        .filter_map(|e| {
            let mut paths: Vec<Vec<String>> = e
                .fields_v1
                .as_ref()
                .map(|f| members(&f.0))
                .unwrap_or_default()
                .into_iter()
                .filter(|path| path.first().is_none_or(|first| first != "f:status"))
                .filter(|path| !owned.contains(path))
                .filter(|path| !owned.iter().any(|o| o.starts_with(path)))
                .collect();
            paths.sort();
            (!paths.is_empty()).then_some((e, paths))
        })
        .collect()
}

/// The fields where `before` and `after` (normalised and masked) differ, owners looked up in
/// `live`, the object as the server returned it.
pub(crate) fn changes(
    live: Option<&Value>,
    before: Option<&Value>,
    after: &Value,
    secrets: &Redactions,
) -> Vec<FieldChange> {
    let Some(before) = before else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut path = Vec::new();
    walk(Some(before), Some(after), &mut path, &mut out);
    let show = |value: Option<&Value>| value.map(|v| secrets.redact(&v.to_string()));
    out.into_iter()
        .map(|(path, old, new)| FieldChange {
            owner: live.and_then(|live| owner_of(live, &path)),
            live: show(old),
            planned: show(new),
            path,
        })
        .collect()
}

type Change<'v> = (Vec<String>, Option<&'v Value>, Option<&'v Value>);

fn walk<'v>(
    old: Option<&'v Value>,
    new: Option<&'v Value>,
    path: &mut Vec<String>,
    out: &mut Vec<Change<'v>>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys = a.keys().chain(b.keys().filter(|k| !a.contains_key(*k)));
            for key in keys {
                path.push(key.clone());
                walk(a.get(key), b.get(key), path, out);
                path.pop();
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (index, (x, y)) in a.iter().zip(b).enumerate() {
                path.push(index.to_string());
                walk(Some(x), Some(y), path, out);
                path.pop();
            }
        }
        (a, b) if a != b => out.push((path.clone(), a, b)),
        _ => {}
    }
}

/// The entry of `live`'s `managedFields` that owns the field at `path` or, for a field inside
/// an atomic value, the value.
pub(crate) fn owner_of(live: &Value, path: &[String]) -> Option<FieldOwner> {
    let entries = live.pointer("/metadata/managedFields")?.as_array()?;
    entries.iter().find_map(|entry| {
        let fields = entry.get("fieldsV1")?;
        owns(fields, live, path).then(|| FieldOwner {
            manager: text(entry, "manager").unwrap_or_default(),
            operation: text(entry, "operation").unwrap_or_default(),
            time: text(entry, "time"),
        })
    })
}

fn text(entry: &Value, key: &str) -> Option<String> {
    entry.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn owns(fields: &Value, object: &Value, path: &[String]) -> bool {
    let (mut node, mut value) = (fields, Some(object));
    for step in path {
        let Value::Object(children) = node else {
            return false;
        };
        if children.is_empty() {
            return true;
        }
        let child = match value {
            Some(Value::Array(items)) => children.iter().find_map(|(key, child)| {
                let index = item_index(key, items)?;
                (index.to_string() == *step).then_some(child)
            }),
            _ => children.get(&format!("f:{step}")),
        };
        let Some(child) = child else {
            return false;
        };
        node = child;
        value = value.and_then(|v| match v {
            Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
            other => other.get(step),
        });
    }
    node.as_object()
        .is_some_and(|children| children.is_empty() || children.contains_key("."))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{changes, foreign_fields, owner_of};
    use crate::redact::Redactions;

    type Row = (String, Option<String>, Option<String>, Option<String>);

    #[test]
    fn changes_are_listed_per_field_with_their_owner() {
        let live = json!({"metadata": {"managedFields": [
            {"manager": "capstan", "operation": "Apply", "time": "t1",
             "fieldsV1": {"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}}}}}},
            {"manager": "kubectl-edit", "operation": "Update", "time": "t2",
             "fieldsV1": {"f:spec": {"f:replicas": {}, "f:containers": {"k:{\"name\":\"web\"}": {"f:image": {}}}}}}]},
            "spec": {"replicas": 3, "containers": [{"name": "web", "image": "b"}]}});
        let before =
            json!({"spec": {"replicas": 3, "containers": [{"name": "web", "image": "b"}]}});
        let after = json!({"spec": {"replicas": 1, "containers": [{"name": "web", "image": "a"}],
            "paused": false}});
        let found = changes(Some(&live), Some(&before), &after, &Redactions::default());
        let summary: Vec<Row> = found
            .iter()
            .map(|c| {
                (
                    c.path.join("/"),
                    c.live.clone(),
                    c.planned.clone(),
                    c.owner.as_ref().map(|o| o.manager.clone()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "spec/replicas".into(),
                    Some("3".into()),
                    Some("1".into()),
                    Some("kubectl-edit".into())
                ),
                (
                    "spec/containers/0/image".into(),
                    Some("\"b\"".into()),
                    Some("\"a\"".into()),
                    Some("kubectl-edit".into())
                ),
                ("spec/paused".into(), None, Some("false".into()), None),
            ]
        );
        let name = ["spec", "containers", "0", "name"].map(str::to_owned);
        assert_eq!(owner_of(&live, &name).unwrap().manager, "capstan");
    }

    #[test]
    fn fields_others_added_after_capstan_are_listed_except_the_control_planes() {
        let entry = |manager: &str, time: &str, fields: serde_json::Value| json!({"manager": manager, "operation": "Update", "time": time, "fieldsV1": fields});
        let mut live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"annotations": {"note": "x", "deployment.kubernetes.io/revision": "1",
                "kubectl.kubernetes.io/last-applied-configuration": "{}"},
            "managedFields": [
                {"manager": "capstan", "operation": "Apply", "time": "2026-01-01T00:00:00Z",
                 "fieldsV1": {"f:data": {"f:k": {}}}},
                entry("kubectl-annotate", "2026-01-01T00:00:05Z", json!({"f:metadata": {"f:annotations": {
                    "f:note": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {}}}})),
                entry("kube-controller-manager", "2026-01-01T00:00:05Z", json!({"f:metadata": {
                    "f:annotations": {"f:deployment.kubernetes.io/revision": {}}}})),
                entry("old-tool", "2025-01-01T00:00:00Z", json!({"f:data": {"f:old": {}}}))]},
            "data": {"k": "v", "old": "x"}});
        let found = foreign_fields(&live, "capstan");
        let seen: Vec<(String, Option<String>)> = found
            .iter()
            .map(|c| (c.path.join("/"), c.live.clone()))
            .collect();
        assert_eq!(
            seen,
            [(
                "metadata/annotations/note".to_owned(),
                Some("\"x\"".to_owned())
            )]
        );
        live["kind"] = json!("Secret");
        assert_eq!(
            foreign_fields(&live, "capstan")[0].live.as_deref(),
            Some("\"***\"")
        );
    }
}
