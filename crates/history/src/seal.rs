//! Objects as the history stores them: as loaded from the manifests (SOPS objects still
//! encrypted, the discriminator label taken out again where loading added it, so a replay
//! loads them exactly as a deploy did), with every value of a plain Secret replaced by a keyed
//! hash.

use base64::Engine as _;
use capstan_manifest::Object;
use hmac::{Hmac, Mac as _};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// What a stored value of a plain Secret starts with; the rest is the hex HMAC-SHA256 of the
/// value's bytes (the decoded bytes for `data`, the text for `stringData`).
pub(crate) const HASHED: &str = "capstan-history:hmac-sha256:";

/// The fields of a Secret that hold values.
pub(crate) const VALUE_FIELDS: [&str; 2] = ["data", "stringData"];

/// An object ready to be stored.
pub(crate) struct Sealed {
    /// The hex digest of `json`, its key in a chunk.
    pub(crate) digest: String,
    /// The stored form, compact JSON.
    pub(crate) json: Vec<u8>,
    pub(crate) barrier_group: u32,
}

/// The stored form of `object`, loaded with the discriminator label `label_key`; `key`
/// hashes plain Secret values.
pub(crate) fn seal(object: &Object, label_key: Option<&str>, key: &[u8]) -> Sealed {
    let mut value = object.to_value();
    if let (true, Some(label_key)) = (object.label_added(), label_key) {
        unlabel(&mut value, label_key);
    }
    if is_plain_secret(object.id(), &value) {
        for field in VALUE_FIELDS {
            let Some(Value::Object(values)) = value.get_mut(field) else {
                continue;
            };
            for stored in values.values_mut() {
                let bytes = value_bytes(field, stored);
                *stored = Value::String(format!("{HASHED}{}", keyed_hash(key, &bytes)));
            }
        }
    }
    let json = serde_json::to_vec(&value).unwrap_or_default();
    Sealed {
        digest: digest(&json),
        json,
        barrier_group: object.barrier_group(),
    }
}

/// Takes out the labels loading added: the stored object is the source's, and loading it
/// with the same label gives back the same object (a SOPS MAC covers the source).
fn unlabel(value: &mut Value, label_key: &str) {
    if let Some(Value::Object(metadata)) = value.get_mut("metadata")
        && let Some(Value::Object(labels)) = metadata.get_mut("labels")
    {
        labels.remove(label_key);
        if labels.is_empty() {
            metadata.remove("labels");
        }
    }
}

/// A core Secret whose values are in clear: not SOPS-encrypted (those keep their `sops:`
/// block, and their values are ciphertext).
pub(crate) fn is_plain_secret(id: &capstan_manifest::ObjectId, value: &Value) -> bool {
    id.group().is_empty() && id.kind() == "Secret" && value.get("sops").is_none()
}

/// The bytes a value stands for: `data` holds base64, `stringData` text.
pub(crate) fn value_bytes(field: &str, value: &Value) -> Vec<u8> {
    let text = value.as_str().unwrap_or_default();
    match field {
        "data" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec()),
        _ => text.as_bytes().to_vec(),
    }
}

/// HMAC-SHA256 of `bytes` under `key`, hex.
pub(crate) fn keyed_hash(key: &[u8], bytes: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(bytes);
    hex(&mac.finalize().into_bytes())
}

/// The first 128 bits of SHA-256, hex: the content address of a stored object.
pub(crate) fn digest(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes)[..16])
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys of a stored Secret whose values are hashed, per field.
pub(crate) fn hashed_keys(value: &Value) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    for field in VALUE_FIELDS {
        if let Some(Value::Object(values)) = value.get(field) {
            for (name, stored) in values {
                if stored.as_str().is_some_and(|s| s.starts_with(HASHED)) {
                    keys.push((field, name.clone()));
                }
            }
        }
    }
    keys
}

/// Puts back the hashed values of a stored Secret that `live` (the live Secret's `data`)
/// still holds; returns the keys it could not restore, whose stored hash is then removed
/// (`keep_live` puts the live value there instead, so the rollback leaves it as it is).
pub(crate) fn unseal(
    stored: &mut Value,
    live: Option<&Map<String, Value>>,
    key: &[u8],
    keep_live: bool,
) -> Vec<String> {
    let mut missing = Vec::new();
    for field in VALUE_FIELDS {
        let Some(Value::Object(values)) = stored.get_mut(field) else {
            continue;
        };
        let mut drop = Vec::new();
        for (name, value) in values.iter_mut() {
            let Some(hash) = value.as_str().and_then(|s| s.strip_prefix(HASHED)) else {
                continue;
            };
            let current = live.and_then(|data| data.get(name));
            let bytes = current.map(|v| value_bytes("data", v));
            match (bytes, current) {
                (Some(bytes), Some(current)) if keyed_hash(key, &bytes) == hash => {
                    *value = restored(field, current, &bytes);
                }
                (_, current) => {
                    missing.push(name.clone());
                    match current {
                        Some(current) if keep_live => {
                            let bytes = value_bytes("data", current);
                            *value = restored(field, current, &bytes);
                        }
                        _ => drop.push(name.clone()),
                    }
                }
            }
        }
        for name in drop {
            values.remove(&name);
        }
    }
    missing
}

/// The live value in the form `field` takes.
fn restored(field: &str, live: &Value, bytes: &[u8]) -> Value {
    match field {
        "data" => live.clone(),
        _ => Value::String(String::from_utf8_lossy(bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use capstan_manifest::{Input, Label, LoadOptions, load};

    use super::*;

    fn loaded(text: &str) -> capstan_manifest::Manifest {
        let label = Label::new("capstan.io/discriminator", "demo.full").unwrap();
        let input = Input::Text {
            name: "test.yaml".to_owned(),
            text: text.to_owned(),
        };
        load(&[input], &LoadOptions::with_label(label)).unwrap()
    }

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: app}\n\
                          data: {password: aHVudGVyMg==}\nstringData: {token: s3cr3t-t0ken}\n";

    #[test]
    fn plain_secret_values_are_stored_as_keyed_hashes_only() {
        let manifest = loaded(SECRET);
        let sealed = seal(
            &manifest.objects()[0],
            Some("capstan.io/discriminator"),
            b"key",
        );
        let text = String::from_utf8(sealed.json).unwrap();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cr3t-t0ken"), "{text}");
        assert!(text.contains(HASHED), "{text}");
        assert!(!text.contains("capstan.io/discriminator"), "{text}");
    }

    #[test]
    fn hashed_values_come_back_only_from_a_live_secret_that_still_holds_them() {
        let manifest = loaded(SECRET);
        let sealed = seal(
            &manifest.objects()[0],
            Some("capstan.io/discriminator"),
            b"key",
        );
        let value: Value = serde_json::from_slice(&sealed.json).unwrap();
        let live = serde_json::json!({"password": "aHVudGVyMg==", "token": "b3RoZXI="});
        let mut restored = value.clone();
        let missing = unseal(&mut restored, live.as_object(), b"key", false);
        assert_eq!(missing, ["token"]);
        assert_eq!(restored["data"]["password"], "aHVudGVyMg==");
        assert!(restored["stringData"].get("token").is_none());
        let mut kept = value;
        unseal(&mut kept, live.as_object(), b"key", true);
        assert_eq!(kept["stringData"]["token"], "other");
    }

    #[test]
    fn a_changed_value_changes_the_digest_and_the_same_object_keeps_it() {
        let one = seal(&loaded(SECRET).objects()[0], None, b"key");
        let again = seal(&loaded(SECRET).objects()[0], None, b"key");
        let other = seal(
            &loaded(&SECRET.replace("aHVudGVyMg==", "b3RoZXI=")).objects()[0],
            None,
            b"key",
        );
        assert_eq!(one.digest, again.digest);
        assert_ne!(one.digest, other.digest);
        assert_eq!(one.digest.len(), 32);
    }
}
