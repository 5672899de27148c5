//! Proving an object unchanged from its metadata alone, so a redeploy costs one list request
//! per resource type instead of a dry run per object.
//!
//! Every write records the hash of the manifest the object came from in
//! [`HASH_ANNOTATION`](crate::HASH_ANNOTATION). Server-side apply of the same manifest is
//! idempotent, so the object is unchanged when the hash still matches and nobody has written the
//! object since capstan did. The second half is read from `managedFields`: every manager's entry
//! carries the time of its last change, so any other manager's entry at or after capstan's own
//! (timestamps have one-second resolution, hence "at") means somebody else may have changed it.
//! Status-only writes by controllers do not count: status is never compared. A write that only
//! *removes* fields leaves no newer entry at all, though: the fields just vanish from capstan's
//! entry. So capstan's entry must still own every field of the body it would send. When the
//! proof fails the planner falls back to a server-side dry run.

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
/// `hash`, would change nothing.
pub(crate) fn proves_unchanged(
    live: &ObjectMeta,
    body: &Value,
    hash: &str,
    field_manager: &str,
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
    let owned = ours.fields_v1.as_ref().map(|fields| &fields.0);
    if !owned.is_some_and(|owned| owns_body(owned, body)) {
        return false;
    }
    entries
        .iter()
        .filter(|e| !is_ours(e, field_manager) && !touches_only_status(e))
        .all(|e| e.time.as_ref().is_some_and(|time| time < applied))
}

/// Whether `owned` (a `fieldsV1` set) holds every field of the body; identity fields
/// (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`) are never listed there.
fn owns_body(owned: &Value, body: &Value) -> bool {
    let (Value::Object(owned), Value::Object(body)) = (owned, body) else {
        return false;
    };
    body.iter().all(|(key, value)| match key.as_str() {
        "apiVersion" | "kind" => true,
        "metadata" => {
            let mut metadata = value.clone();
            if let Value::Object(fields) = &mut metadata {
                fields.remove("name");
                fields.remove("namespace");
            }
            owns_field(owned, key, &metadata)
        }
        _ => owns_field(owned, key, value),
    })
}

fn owns_field(owned: &serde_json::Map<String, Value>, key: &str, value: &Value) -> bool {
    if value.is_null()
        || value
            .as_object()
            .is_some_and(|map| map.is_empty() && key == "metadata")
    {
        return true;
    }
    let Some(node) = owned.get(&format!("f:{key}")) else {
        return false;
    };
    match value {
        Value::Object(map) if !map.is_empty() => owns_body_fields(node, map),
        Value::Array(items) => owns_list(node, items),
        _ => true,
    }
}

fn owns_body_fields(node: &Value, map: &serde_json::Map<String, Value>) -> bool {
    match node {
        Value::Object(owned) => map.iter().all(|(key, value)| owns_field(owned, key, value)),
        _ => false,
    }
}

/// A list is owned as a whole (atomic: no children), or item by item: by key (`k:{...}`),
/// value (`v:...`) or index (`i:N`); every item of the body must still be there.
fn owns_list(node: &Value, items: &[Value]) -> bool {
    let Value::Object(children) = node else {
        return false;
    };
    let members: Vec<(&String, &Value)> = children.iter().filter(|(key, _)| *key != ".").collect();
    if members.is_empty() {
        return true;
    }
    if members.len() != items.len() {
        return false;
    }
    members.iter().all(|(key, fields)| {
        let item = if let Some(keys) = key.strip_prefix("k:") {
            let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
                return false;
            };
            items
                .iter()
                .find(|item| keys.iter().all(|(k, v)| item.get(k) == Some(v)))
        } else if let Some(index) = key.strip_prefix("i:") {
            index.parse::<usize>().ok().and_then(|i| items.get(i))
        } else {
            // `v:` members of a set of scalars: the count above is all that can be checked.
            return key.starts_with("v:");
        };
        match item {
            Some(Value::Object(map)) => owns_body_fields(fields, map),
            Some(_) => true,
            None => false,
        }
    })
}

fn is_ours(entry: &ManagedFieldsEntry, field_manager: &str) -> bool {
    entry.manager.as_deref() == Some(field_manager)
        && entry.operation.as_deref() == Some("Apply")
        && entry.subresource.as_deref().is_none_or(str::is_empty)
}

/// Controllers write status through the status subresource (named in the entry from
/// Kubernetes 1.22 on; before that, the entry's fields are all under `f:status`).
fn touches_only_status(entry: &ManagedFieldsEntry) -> bool {
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
        assert!(proves_unchanged(&meta, &body(), &hash, "capstan"));
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
                !proves_unchanged(&meta, &body(), &hash, "capstan"),
                "{second}"
            );
        }
    }

    #[test]
    fn a_different_manifest_or_a_missing_apply_entry_defeats_the_proof() {
        let hash = content_hash("{}", "capstan", None);
        let other = content_hash("{\"a\":1}", "capstan", None);
        let meta = live(&other, vec![entry("capstan", "Apply", 200, json!({}))]);
        assert!(!proves_unchanged(&meta, &body(), &hash, "capstan"));
        let meta = live(&hash, vec![entry("capstan", "Update", 200, json!({}))]);
        assert!(!proves_unchanged(&meta, &body(), &hash, "capstan"));
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
            vec![entry("capstan", "Apply", 200, json!({"f:data": {}}))],
        );
        assert!(!proves_unchanged(&meta, &body(), &hash, "capstan"));
    }

    #[test]
    fn list_items_are_matched_by_key_and_counted() {
        let body = json!({"spec": {"ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}],
            "args": ["-v"]}});
        let both = json!({"f:spec": {"f:args": {}, "f:ports": {
            ".": {},
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}},
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}, "f:protocol": {}}}}});
        assert!(super::owns_body(&both, &body));
        let one = json!({"f:spec": {"f:args": {}, "f:ports": {
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {"f:port": {}, "f:protocol": {}}}}});
        assert!(
            !super::owns_body(&one, &body),
            "an item removed by someone else"
        );
    }
}
