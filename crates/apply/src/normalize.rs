//! What the comparison of a live object with its planned state ignores, and what a diff never
//! shows.

use capstan_manifest::{IgnoreRules, ObjectId};
use serde_json::{Map, Value};

use crate::proof::{members, pointer_of};
use crate::redact::{ValuePath, is_secret};
use crate::vocab::{HASH_ANNOTATION, STAMP_PREFIX};

pub(crate) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Server-maintained fields and bookkeeping annotations, removed before comparing.
pub(crate) fn normalize(object: &mut Value) {
    let Some(object) = object.as_object_mut() else {
        return;
    };
    object.remove("status");
    let Some(Value::Object(metadata)) = object.get_mut("metadata") else {
        return;
    };
    for field in [
        "managedFields",
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "generation",
        "selfLink",
    ] {
        metadata.remove(field);
    }
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.retain(|key, _| key != LAST_APPLIED && !key.starts_with(STAMP_PREFIX));
        if annotations.is_empty() {
            metadata.remove("annotations");
        }
    }
}

/// Removes capstan's content hash, which changes whenever anything else does and would only add
/// noise to a diff.
pub(crate) fn hide_hash(object: &mut Value) {
    if let Some(Value::Object(annotations)) = object.pointer_mut("/metadata/annotations") {
        annotations.remove(HASH_ANNOTATION);
        if annotations.is_empty()
            && let Some(Value::Object(metadata)) = object.pointer_mut("/metadata")
        {
            metadata.remove("annotations");
        }
    }
}

/// The fields of the live object that `rules` ignore, as JSON pointer segments: the rules' own
/// pointers, and every field a manager owns where a rule names that manager.
pub(crate) fn ignored_fields(rules: &IgnoreRules, id: &ObjectId, live: &Value) -> Vec<Vec<String>> {
    if rules.is_empty() {
        return Vec::new();
    }
    let mut fields: Vec<Vec<String>> = rules.pointers(id).map(<[String]>::to_vec).collect();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for entry in entries {
        let manager = entry.get("manager").and_then(Value::as_str);
        let Some(owned) = entry.get("fieldsV1") else {
            continue;
        };
        for path in members(owned) {
            if let Some(pointer) = pointer_of(&path, live)
                && rules.ignores(id, &pointer, manager)
            {
                fields.push(pointer);
            }
        }
    }
    fields
}

/// Removes every field at `fields` (JSON pointer segments) from `object`. Deepest list items go
/// first, so removing one never shifts the index of another.
pub(crate) fn remove_fields(object: &mut Value, fields: &[Vec<String>]) {
    let mut fields: Vec<&Vec<String>> = fields.iter().collect();
    let segment = |s: &String| (s.parse::<usize>().ok(), s.clone());
    fields.sort_by(|a, b| b.iter().map(segment).cmp(a.iter().map(segment)));
    fields.dedup();
    for field in fields {
        let Some((last, parent)) = field.split_last() else {
            continue;
        };
        match lookup(object, parent) {
            Some(Value::Object(map)) => {
                map.remove(last);
            }
            Some(Value::Array(items)) => {
                if let Ok(index) = last.parse::<usize>()
                    && index < items.len()
                {
                    items.remove(index);
                }
            }
            _ => {}
        }
    }
}

const MASK: &str = "***";

/// Replaces secret values in both states by markers that still tell which values were added,
/// removed or changed: Secret `data` and `stringData`, and every path in `paths` (values that
/// were SOPS-encrypted in the manifest).
pub(crate) fn mask(before: Option<&mut Value>, after: &mut Value, paths: &[ValuePath]) {
    let mut all: Vec<ValuePath> = paths.to_vec();
    if is_secret(after) {
        for field in ["data", "stringData"] {
            for state in [Some(&*after), before.as_deref()].into_iter().flatten() {
                match state.get(field) {
                    Some(Value::Object(values)) => {
                        all.extend(values.keys().map(|key| vec![field.to_owned(), key.clone()]));
                    }
                    // A list, a number, a string: the wrong shape, still a secret.
                    Some(Value::Null) | None => {}
                    Some(_) => all.push(vec![field.to_owned()]),
                }
            }
        }
    }
    let mut before = before;
    for path in &all {
        let old = before.as_deref_mut().and_then(|b| lookup(b, path));
        let new = lookup(after, path);
        let changed = match (&old, &new) {
            (Some(old), Some(new)) => old != new,
            _ => false,
        };
        let (old_mark, new_mark) = if changed {
            (format!("{MASK} (before)"), format!("{MASK} (after)"))
        } else {
            (MASK.to_owned(), MASK.to_owned())
        };
        if let Some(old) = old {
            *old = Value::String(old_mark);
        }
        if let Some(new) = new {
            *new = Value::String(new_mark);
        }
    }
}

fn lookup<'v>(value: &'v mut Value, path: &[String]) -> Option<&'v mut Value> {
    path.iter().try_fold(value, |value, step| match value {
        Value::Object(map) => map.get_mut(step),
        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
        _ => None,
    })
}

/// Sets `metadata.annotations[key]`, creating the maps on the way.
pub(crate) fn annotate(object: &mut Value, key: &str, value: &str) {
    let Some(object) = object.as_object_mut() else {
        return;
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(metadata) = metadata {
        let annotations = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(annotations) = annotations {
            annotations.insert(key.to_owned(), Value::String(value.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{annotate, mask, normalize};

    #[test]
    fn server_fields_and_bookkeeping_annotations_are_ignored() {
        let mut live = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "uid": "1", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "t", "managedFields": [], "selfLink": "/x",
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                    "capstan.io/deployed-at": "now"}},
            "data": {"k": "v"}, "status": {"phase": "x"}
        });
        normalize(&mut live);
        assert_eq!(
            live,
            json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a"}, "data": {"k": "v"}})
        );
    }

    #[test]
    fn secret_values_are_masked_but_changes_stay_visible() {
        let mut before = json!({"apiVersion": "v1", "kind": "Secret",
            "data": {"same": "czE=", "changed": "b2xk", "removed": "eA=="}});
        let mut after = json!({"apiVersion": "v1", "kind": "Secret",
            "data": {"same": "czE=", "changed": "bmV3", "added": "eQ=="}});
        mask(Some(&mut before), &mut after, &[]);
        assert_eq!(
            before["data"],
            json!({"same": "***", "changed": "*** (before)", "removed": "***"})
        );
        assert_eq!(
            after["data"],
            json!({"same": "***", "changed": "*** (after)", "added": "***"})
        );
    }

    #[test]
    fn decrypted_values_are_masked_at_their_paths() {
        let mut after = json!({"kind": "Config", "spec": {"items": [{"password": "hunter2"}]}});
        let path = vec!["spec".into(), "items".into(), "0".into(), "password".into()];
        mask(None, &mut after, &[path]);
        assert_eq!(after["spec"]["items"][0]["password"], "***");
    }

    #[test]
    fn annotating_creates_missing_maps() {
        let mut object = json!({"kind": "ConfigMap"});
        annotate(&mut object, "k", "v");
        assert_eq!(object["metadata"]["annotations"]["k"], "v");
    }
}
