//! SOPS-encrypted objects in a stage: decrypted in memory for the deploy, never on disk, with
//! their encrypted values masked in every diff and report. `SopsSecret`s stay encrypted: the
//! operator decrypts them in the cluster.

use std::sync::{Mutex, OnceLock};

use capstan_apply::{Prepare, Prepared, ValuePath};
use capstan_manifest::{Label, Object};
use capstan_secrets::{DecryptOptions, Error, Format, Identities, SopsFile};
use serde_json::Value;

/// Decrypts objects with a top-level `sops` block.
pub(crate) struct SopsObjects {
    label: Option<Label>,
    verify_mac: bool,
    identities: OnceLock<Result<Identities, String>>,
    /// Objects whose MAC did not verify but were decrypted because the stage allows it.
    unverified: Mutex<Vec<String>>,
}

impl SopsObjects {
    pub(crate) fn new(label: Option<Label>, verify_mac: bool) -> Self {
        Self {
            label,
            verify_mac,
            identities: OnceLock::new(),
            unverified: Mutex::new(Vec::new()),
        }
    }

    /// Objects decrypted without a valid MAC; the caller warns about them by name.
    pub(crate) fn unverified(&self) -> Vec<String> {
        let mut names = self
            .unverified
            .lock()
            .map(|names| names.clone())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn identities(&self) -> Result<&Identities, String> {
        self.identities
            .get_or_init(|| match Identities::from_env() {
                Ok(identities) if identities.is_empty() => Err(
                    "no age identity to decrypt it with: set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"
                        .to_owned(),
                ),
                Ok(identities) => Ok(identities),
                Err(error) => Err(error.to_string()),
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Prepare for SopsObjects {
    fn prepare(&self, object: &Object) -> Result<Option<Prepared>, String> {
        let id = object.id();
        let mut value = object.to_value();
        let is_sops_secret = id.group() == "isindir.github.com" && id.kind() == "SopsSecret";
        if value.get("sops").is_none() || is_sops_secret {
            return Ok(None);
        }
        // The MAC covers the object as its author encrypted it, without the label loading added.
        let label = self.label.as_ref().filter(|_| object.label_added());
        if let Some(label) = label {
            remove_label(&mut value, label.key());
        }
        let mut masked = Vec::new();
        encrypted_paths(&value, &mut Vec::new(), &mut masked);
        let text = serde_json::to_vec(&value).map_err(|error| error.to_string())?;
        let file = SopsFile::parse(id.to_string(), Format::Json, &text)
            .map_err(|error| format!("cannot read its sops metadata: {error}"))?;
        let identities = self.identities()?;
        let strict = DecryptOptions::default();
        let decrypted = match file.decrypt_with(identities, &strict) {
            Err(Error::Integrity { .. }) if !self.verify_mac => {
                let lenient = DecryptOptions { verify_mac: false };
                let decrypted = file.decrypt_with(identities, &lenient).map_err(describe)?;
                if let Ok(mut names) = self.unverified.lock() {
                    names.push(id.to_string());
                }
                decrypted
            }
            result => result.map_err(describe)?,
        };
        let plaintext = decrypted.to_plaintext();
        let mut body: Value = serde_json::from_slice(&plaintext)
            .map_err(|_| "its plaintext is not JSON".to_owned())?;
        if let Some(label) = label {
            body["metadata"]["labels"][label.key()] = Value::String(label.value().to_owned());
        }
        Ok(Some(Prepared { body, masked }))
    }
}

fn describe(error: Error) -> String {
    match error {
        Error::Integrity { what, .. } => format!(
            "SOPS integrity check failed ({what}); if a renderer re-serialised the object, set \
             `sops: {{verifyMac: false}}` on the stage"
        ),
        error => error.to_string(),
    }
}

fn remove_label(object: &mut Value, key: &str) {
    if let Some(Value::Object(labels)) = object.pointer_mut("/metadata/labels") {
        labels.remove(key);
        if labels.is_empty()
            && let Some(Value::Object(metadata)) = object.pointer_mut("/metadata")
        {
            metadata.remove("labels");
        }
    }
}

/// Paths of every encrypted value (`ENC[...]`), which must never be shown once decrypted.
fn encrypted_paths(value: &Value, path: &mut ValuePath, found: &mut Vec<ValuePath>) {
    match value {
        Value::String(text) if text.starts_with("ENC[") => found.push(path.clone()),
        Value::Object(map) => {
            for (key, value) in map {
                if key != "sops" || !path.is_empty() {
                    path.push(key.clone());
                    encrypted_paths(value, path, found);
                    path.pop();
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(index.to_string());
                encrypted_paths(item, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}
