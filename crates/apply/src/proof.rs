//! Proving an object unchanged from its metadata alone, so a redeploy costs one list request
//! per resource type instead of a dry run per object.
//!
//! Every write records the hash of the manifest the object came from in
//! [`HASH_ANNOTATION`](crate::HASH_ANNOTATION). Server-side apply of the same manifest is
//! idempotent, so the object is unchanged when the hash still matches and nothing capstan applied
//! has changed since. That second half is read from `managedFields`:
//!
//! - a manager that changes a field capstan applied takes it over (the server moves the field to
//!   the writer's entry), and a field removed by anyone leaves every entry; so capstan's own
//!   entry must still own every field of the body it would send;
//! - another manager's entry newer than capstan's (timestamps have one-second resolution, hence
//!   "at or after") is harmless when its fields are disjoint from capstan's: the controller
//!   manager writing a Deployment's revision annotation or, before 1.24, a ServiceAccount's
//!   `secrets`. An entry sharing a field with capstan's (another applier of the same value)
//!   cannot be told apart from a change, so it sends the object to the dry run;
//! - status-only writes never count: status is never compared.
//!
//! Fields an ignore rule names are left out of both checks. When the proof fails the planner
//! falls back to a server-side dry run.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::vocab::HASH_ANNOTATION;

/// The hash of an object's manifest text. Computed from the manifest as loaded (for SOPS
/// objects, the encrypted text), so it never depends on, or reveals, a secret value. The
/// ownership record is part of what is applied, so it is hashed too: an object written before
/// records existed fails the proof once and gets its record on that write.
pub(crate) fn content_hash(
    manifest_json: &str,
    field_manager: &str,
    owner: Option<&str>,
) -> String {
    let mut digest = Sha256::new();
    digest.update(field_manager.as_bytes());
    digest.update([0]);
    if let Some(owner) = owner {
        digest.update(owner.as_bytes());
        digest.update([0]);
    }
    digest.update(manifest_json.as_bytes());
    let bytes = digest.finalize();
    let hex: String = bytes[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("v1.{hex}")
}

/// Whether the live object's metadata proves that applying `body`, whose manifest hashed to
/// `hash`, would change nothing. `ignored` says which fields (as JSON pointer segments) do not
/// matter, and for which manager.
pub(crate) fn proves_unchanged(
    live: &ObjectMeta,
    body: &Value,
    hash: &str,
    field_manager: &str,
    ignored: &dyn Fn(&[String], Option<&str>) -> bool,
) -> bool {
    if live.deletion_timestamp.is_some() {
        return false;
    }
    let recorded = live
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(HASH_ANNOTATION));
    if recorded.map(String::as_str) != Some(hash) {
        return false;
    }
    let entries = live.managed_fields.as_deref().unwrap_or_default();
    let Some(ours) = entries.iter().find(|e| is_ours(e, field_manager)) else {
        return false;
    };
    let Some(applied) = &ours.time else {
        return false;
    };
    let Some(owned) = ours.fields_v1.as_ref().map(|fields| &fields.0) else {
        return false;
    };
    // A field capstan no longer owns may be one an ignore rule leaves to its new owner; which
    // of the other managers that is, the entries cannot say without the object.
    let others = || entries.iter().filter(|e| !is_ours(e, field_manager));
    let unowned_ignored = |path: &[String]| {
        ignored(path, None) || others().any(|e| ignored(path, e.manager.as_deref()))
    };
    if !owns_body(owned, body, &unowned_ignored) {
        return false;
    }
    let ours_members = members(owned);
    others().filter(|e| !touches_only_status(e)).all(|e| {
        e.time.as_ref().is_some_and(|time| time < applied)
            || e.fields_v1.as_ref().is_some_and(|fields| {
                members(&fields.0)
                    .iter()
                    .filter(|path| ours_members.contains(*path))
                    .all(|path| {
                        pointer_of(path, body)
                            .is_some_and(|pointer| ignored(&pointer, e.manager.as_deref()))
                    })
            })
    })
}

/// The members of a `fieldsV1` set: every path to a leaf (`{}`) or to a node marked `"."`.
pub(crate) fn members(fields: &Value) -> HashSet<Vec<String>> {
    fn walk(node: &Value, path: &mut Vec<String>, out: &mut HashSet<Vec<String>>) {
        let Value::Object(children) = node else {
            return;
        };
        if children.is_empty() || children.contains_key(".") {
            out.insert(path.clone());
        }
        for (key, child) in children.iter().filter(|(key, _)| *key != ".") {
            path.push(key.clone());
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = HashSet::new();
    if let Value::Object(children) = fields {
        let mut path = Vec::new();
        for (key, child) in children.iter().filter(|(key, _)| *key != ".") {
            path.push(key.clone());
            walk(child, &mut path, &mut out);
            path.pop();
        }
    }
    out
}

/// A `fieldsV1` path as JSON pointer segments, list items found in `object` by key, value or
/// index. `None` when an item is not in `object`.
pub(crate) fn pointer_of(path: &[String], object: &Value) -> Option<Vec<String>> {
    let mut pointer = Vec::with_capacity(path.len());
    let mut node = Some(object);
    for step in path {
        if let Some(field) = step.strip_prefix("f:") {
            pointer.push(field.to_owned());
            node = node.and_then(|n| n.get(field));
            continue;
        }
        let items = node.and_then(Value::as_array)?;
        let index = item_index(step, items)?;
        pointer.push(index.to_string());
        node = items.get(index);
    }
    Some(pointer)
}

/// The position in `items` of the list member a `fieldsV1` key (`k:{...}`, `v:...`, `i:N`)
/// names.
pub(crate) fn item_index(step: &str, items: &[Value]) -> Option<usize> {
    if let Some(keys) = step.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return None;
        };
        items
            .iter()
            .position(|item| keys.iter().all(|(k, v)| item.get(k) == Some(v)))
    } else if let Some(value) = step.strip_prefix("v:") {
        let value: Value = serde_json::from_str(value).ok()?;
        items.iter().position(|item| *item == value)
    } else {
        step.strip_prefix("i:")?.parse().ok()
    }
}

/// Whether `owned` (a `fieldsV1` set) holds every field of the body that `ignored` does not
/// name; identity fields (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`) are never
/// listed there.
fn owns_body(owned: &Value, body: &Value, ignored: &dyn Fn(&[String]) -> bool) -> bool {
    let (Value::Object(owned), Value::Object(body)) = (owned, body) else {
        return false;
    };
    let walk = Walk { ignored };
    let mut path = Vec::new();
    body.iter().all(|(key, value)| match key.as_str() {
        "apiVersion" | "kind" => true,
        "metadata" => {
            let mut metadata = value.clone();
            if let Value::Object(fields) = &mut metadata {
                fields.remove("name");
                fields.remove("namespace");
            }
            walk.field(owned, key, &metadata, &mut path)
        }
        _ => walk.field(owned, key, value, &mut path),
    })
}

/// A walk of the body beside capstan's `fieldsV1`, `path` being the JSON pointer segments of the
/// value at hand.
struct Walk<'i> {
    ignored: &'i dyn Fn(&[String]) -> bool,
}

impl Walk<'_> {
    fn field(
        &self,
        owned: &serde_json::Map<String, Value>,
        key: &str,
        value: &Value,
        path: &mut Vec<String>,
    ) -> bool {
        path.push(key.to_owned());
        let owns = self.owns(owned, key, value, path);
        path.pop();
        owns
    }

    fn owns(
        &self,
        owned: &serde_json::Map<String, Value>,
        key: &str,
        value: &Value,
        path: &mut Vec<String>,
    ) -> bool {
        if value.is_null()
            || value
                .as_object()
                .is_some_and(|map| map.is_empty() && key == "metadata")
            || (self.ignored)(path)
        {
            return true;
        }
        let Some(node) = owned.get(&format!("f:{key}")) else {
            return false;
        };
        // A leaf owns the whole value: an atomic map such as a Deployment's `selector`.
        if node.as_object().is_some_and(serde_json::Map::is_empty) {
            return true;
        }
        match value {
            Value::Object(map) if !map.is_empty() => self.fields(node, map, path),
            Value::Array(items) => self.list(node, items, path),
            _ => true,
        }
    }

    fn fields(
        &self,
        node: &Value,
        map: &serde_json::Map<String, Value>,
        path: &mut Vec<String>,
    ) -> bool {
        match node {
            Value::Object(owned) => map
                .iter()
                .all(|(key, value)| self.field(owned, key, value, path)),
            _ => false,
        }
    }

    /// A list is owned as a whole (atomic: no children), or item by item: by key (`k:{...}`),
    /// value (`v:...`) or index (`i:N`); every item of the body must still be there.
    fn list(&self, node: &Value, items: &[Value], path: &mut Vec<String>) -> bool {
        let Value::Object(children) = node else {
            return false;
        };
        let members: Vec<(&String, &Value)> =
            children.iter().filter(|(key, _)| *key != ".").collect();
        if members.is_empty() {
            return true;
        }
        if members.len() != items.len() {
            return false;
        }
        members.iter().all(|(key, fields)| {
            if key.starts_with("v:") {
                // A set of scalars: the count above is all that can be checked.
                return true;
            }
            let Some(index) = item_index(key, items) else {
                return false;
            };
            match &items[index] {
                Value::Object(map) => {
                    path.push(index.to_string());
                    let owns = self.fields(fields, map, path);
                    path.pop();
                    owns
                }
                _ => true,
            }
        })
    }
}

pub(crate) fn is_ours(entry: &ManagedFieldsEntry, field_manager: &str) -> bool {
    entry.manager.as_deref() == Some(field_manager)
        && entry.operation.as_deref() == Some("Apply")
        && entry.subresource.as_deref().is_none_or(str::is_empty)
}

/// Controllers write status through the status subresource (named in the entry from
/// Kubernetes 1.22 on; before that, the entry's fields are all under `f:status`).
pub(crate) fn touches_only_status(entry: &ManagedFieldsEntry) -> bool {
    if entry.subresource.as_deref() == Some("status") {
        return true;
    }
    match entry.fields_v1.as_ref().map(|fields| &fields.0) {
        Some(Value::Object(fields)) => {
            !fields.is_empty() && fields.keys().all(|key| key == "f:status")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        FieldsV1, ManagedFieldsEntry, ObjectMeta, Time,
    };
    use serde_json::json;

    use super::{content_hash, proves_unchanged};

    fn entry(
        manager: &str,
        operation: &str,
        second: i64,
        fields: serde_json::Value,
    ) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
            )),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn body() -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"},
            "data": {"k": "v"}})
    }

    fn live(hash: &str, entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            annotations: Some([("capstan.io/content-hash".to_owned(), hash.to_owned())].into()),
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn same_hash_and_no_later_writer_proves_unchanged() {
        let hash = content_hash("{}", "capstan", None);
        let meta = live(
            &hash,
            vec![
                entry("kubectl", "Update", 100, json!({"f:data": {}})),
                entry("capstan", "Apply", 200, json!({"f:data": {"f:k": {}}})),
                entry(
                    "kube-controller-manager",
                    "Update",
                    300,
                    json!({"f:status": {}}),
                ),
            ],
        );
        assert!(proves_unchanged(
            &meta,
            &body(),
            &hash,
            "capstan",
            &|_, _| false
        ));
    }

    #[test]
    fn another_manager_writing_at_or_after_capstan_defeats_the_proof() {
        let hash = content_hash("{}", "capstan", None);
        for second in [200, 201] {
            let meta = live(
                &hash,
                vec![
                    entry("capstan", "Apply", 200, json!({"f:data": {}})),
                    entry("kubectl-edit", "Update", second, json!({"f:data": {}})),
                ],
            );
            assert!(
                !proves_unchanged(&meta, &body(), &hash, "capstan", &|_, _| false),
                "{second}"
            );
        }
    }

    #[test]
    fn a_different_manifest_or_a_missing_apply_entry_defeats_the_proof() {
        let hash = content_hash("{}", "capstan", None);
        let other = content_hash("{\"a\":1}", "capstan", None);
        let meta = live(&other, vec![entry("capstan", "Apply", 200, json!({}))]);
        assert!(!proves_unchanged(
            &meta,
            &body(),
            &hash,
            "capstan",
            &|_, _| false
        ));
        let meta = live(&hash, vec![entry("capstan", "Update", 200, json!({}))]);
        assert!(!proves_unchanged(
            &meta,
            &body(),
            &hash,
            "capstan",
            &|_, _| false
        ));
    }

    #[test]
    fn the_hash_depends_on_the_field_manager() {
        assert_ne!(
            content_hash("{}", "capstan", None),
            content_hash("{}", "other", None)
        );
    }

    #[test]
    fn the_hash_depends_on_the_ownership_record() {
        let legacy = content_hash("{}", "capstan", None);
        assert_ne!(content_hash("{}", "capstan", Some("shop/full")), legacy);
        assert_ne!(
            content_hash("{}", "capstan", Some("shop/full")),
            content_hash("{}", "capstan", Some("shop/capi"))
        );
    }

    #[test]
    fn a_field_gone_from_capstans_entry_defeats_the_proof() {
        let hash = content_hash("{}", "capstan", None);
        let meta = live(
            &hash,
            // The server drops a map's node with its last field (`{}` would be a leaf: the
            // whole map, owned atomically).
            vec![entry("capstan", "Apply", 200, json!({"f:metadata": {}}))],
        );
        assert!(!proves_unchanged(
            &meta,
            &body(),
            &hash,
            "capstan",
            &|_, _| false
        ));
    }

    #[test]
    fn a_later_writer_of_other_fields_leaves_the_proof_standing() {
        let hash = content_hash("{}", "capstan", None);
        let ours = json!({"f:metadata": {"f:annotations": {"f:capstan.io/content-hash": {}}},
            "f:data": {"f:k": {}}});
        let revision = json!({"f:metadata": {"f:annotations": {
            "f:deployment.kubernetes.io/revision": {}}}});
        let tokens = json!({"f:secrets": {".": {}, "k:{\"name\":\"t\"}": {".": {}, "f:name": {}}}});
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "annotations": {"capstan.io/content-hash": hash}},
            "data": {"k": "v"}});
        let meta = live(
            &hash,
            vec![
                entry("capstan", "Apply", 200, ours.clone()),
                entry("kube-controller-manager", "Update", 201, revision),
                entry("kube-controller-manager", "Update", 202, tokens),
            ],
        );
        assert!(proves_unchanged(&meta, &body, &hash, "capstan", &|_, _| {
            false
        }));
        let shared = live(
            &hash,
            vec![
                entry("capstan", "Apply", 200, ours.clone()),
                entry("other", "Apply", 201, json!({"f:data": {"f:k": {}}})),
            ],
        );
        assert!(
            !proves_unchanged(&shared, &body, &hash, "capstan", &|_, _| false),
            "a field two appliers share may have changed"
        );
        let ignore_k = |path: &[String], manager: Option<&str>| {
            path == ["data", "k"] && manager == Some("other")
        };
        assert!(proves_unchanged(
            &shared, &body, &hash, "capstan", &ignore_k
        ));
    }

    #[test]
    fn a_field_taken_over_by_an_ignored_manager_leaves_the_proof_standing() {
        let hash = content_hash("{}", "capstan", None);
        let meta = live(
            &hash,
            vec![
                entry("capstan", "Apply", 200, json!({})),
                entry("hpa", "Update", 300, json!({"f:data": {"f:k": {}}})),
            ],
        );
        assert!(!proves_unchanged(
            &meta,
            &body(),
            &hash,
            "capstan",
            &|_, _| false
        ));
        let by_hpa =
            |path: &[String], manager: Option<&str>| path == ["data"] && manager == Some("hpa");
        assert!(proves_unchanged(&meta, &body(), &hash, "capstan", &by_hpa));
    }

    #[test]
    fn an_atomic_map_is_owned_by_its_leaf() {
        let body = json!({"spec": {"selector": {"matchLabels": {"app": "web"}}}});
        let owned = json!({"f:spec": {"f:selector": {}}});
        assert!(super::owns_body(&owned, &body, &|_| false));
    }

    #[test]
    fn fields_v1_paths_become_pointers_through_the_object() {
        let object =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "args": ["x", "y"]}]}});
        let path: Vec<String> = ["f:spec", "f:containers", "k:{\"name\":\"b\"}", "f:args"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            super::pointer_of(&path, &object).unwrap(),
            ["spec", "containers", "1", "args"]
        );
        let missing = ["f:spec", "f:containers", "k:{\"name\":\"c\"}"].map(str::to_owned);
        assert_eq!(super::pointer_of(&missing, &object), None);
        let members = super::members(&json!({"f:a": {".": {}, "f:b": {}}, "f:c": {}}));
        assert_eq!(members.len(), 3, "{members:?}");
    }

    #[test]
    fn list_items_are_matched_by_key_and_counted() {
        let body = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
            "args": ["-v"]}});
        let both = json!({"f:spec": {"f:args": {}, "f:ports": {
            ".": {},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}}});
        assert!(super::owns_body(&both, &body, &|_| false));
        let one = json!({"f:spec": {"f:args": {}, "f:ports": {
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:port": {}, "f:protocol": {}}}}});
        assert!(
            !super::owns_body(&one, &body, &|_| false),
            "an item removed by someone else"
        );
    }
}
