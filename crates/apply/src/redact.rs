//! Keeping secret values out of text: the server quotes what it rejects (`expected map, got
//! &{[hunter2]}`), so masking Secret `data` in diffs is not enough. Every message and diff
//! line about a Secret or a SOPS-decrypted object has each of that object's secret values
//! replaced, whatever shape the value has, and so is every value a kluctl template took from a
//! SOPS-encrypted vars file ([`Sensitive`]), in whatever object it was put.

use base64::Engine as _;
use capstan_manifest::Sensitive;
use serde_json::Value;

/// A path to a value inside an object, one key or array index per step.
pub type ValuePath = Vec<String>;

/// The secret values of one object.
#[derive(Clone, Default)]
pub(crate) struct Redactions(Sensitive);

// By hand: the values themselves must never reach a log.
impl std::fmt::Debug for Redactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactions({} values)", self.0.len())
    }
}

impl Redactions {
    /// The values of a v1 Secret's `data` and `stringData` (and what `data` decodes to), and
    /// every value at or below a `masked` path.
    pub(crate) fn of(body: &Value, masked: &[ValuePath]) -> Self {
        let mut values = Vec::new();
        if is_secret(body) {
            for field in ["data", "stringData"] {
                if let Some(value) = body.get(field) {
                    leaves(value, &mut values);
                }
            }
            if let Some(data) = body.get("data") {
                let mut encoded = Vec::new();
                leaves(data, &mut encoded);
                values.extend(encoded.iter().filter_map(|text| decode(text)));
            }
        }
        for path in masked {
            if let Some(value) = lookup(body, path) {
                leaves(value, &mut values);
            }
        }
        Self(Sensitive::new(values))
    }

    /// These and `more` values, such as the manifest's [`Sensitive`] values an object holds.
    pub(crate) fn and(self, more: Vec<String>) -> Self {
        if more.is_empty() {
            return self;
        }
        Self(Sensitive::new(self.0.values().iter().cloned().chain(more)))
    }

    /// `text` with every secret value replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        self.0.mask(text).into_owned()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub(crate) fn is_secret(object: &Value) -> bool {
    object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("Secret")
}

/// Every scalar below `value`, as text.
fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => out.push(text.clone()),
        Value::Number(number) => out.push(number.to_string()),
        Value::Bool(_) | Value::Null => {}
        Value::Array(items) => items.iter().for_each(|item| leaves(item, out)),
        Value::Object(map) => map.values().for_each(|item| leaves(item, out)),
    }
}

fn decode(text: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The paths of the strings in `object` that hold one of `values`, so that a diff marks them
/// as it marks decrypted values.
pub(crate) fn paths_holding(object: &Value, values: &[String]) -> Vec<ValuePath> {
    fn walk(value: &Value, values: &[String], path: &mut ValuePath, out: &mut Vec<ValuePath>) {
        match value {
            Value::String(text) if values.iter().any(|v| text.contains(v.as_str())) => {
                out.push(path.clone());
            }
            Value::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    path.push(index.to_string());
                    walk(item, values, path, out);
                    path.pop();
                }
            }
            Value::Object(map) => {
                for (key, item) in map {
                    path.push(key.clone());
                    walk(item, values, path, out);
                    path.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if !values.is_empty() {
        walk(object, values, &mut Vec::new(), &mut out);
    }
    out
}

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, step| match value {
        Value::Object(map) => map.get(step),
        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Redactions;

    #[test]
    fn values_of_any_shape_are_masked_in_server_messages() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "data": ["hunter2-password", {"nested": 12345678}], "stringData": {"k": "s3cr3t!"}});
        let redactions = Redactions::of(&secret, &[]);
        let message = "Secret \"db\" is invalid: data: expected map, got &{[hunter2-password \
                       map[nested:12345678]]}, stringData.k: s3cr3t!";
        assert_eq!(
            redactions.redact(message),
            "Secret \"db\" is invalid: data: expected map, got &{[*** map[nested:***]]}, \
             stringData.k: ***"
        );
    }

    #[test]
    fn base64_data_is_masked_encoded_and_decoded() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "data": {"p": "aHVudGVyMg=="}});
        let redactions = Redactions::of(&secret, &[]);
        assert_eq!(
            redactions.redact("got aHVudGVyMg== which is hunter2"),
            "got *** which is ***"
        );
    }

    #[test]
    fn short_values_are_masked_only_as_whole_words() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"pin": "42"}});
        let redactions = Redactions::of(&secret, &[]);
        assert_eq!(
            redactions.redact("value 42 at line 420, pin=42"),
            "value *** at line 420, pin=***"
        );
    }

    #[test]
    fn debug_output_counts_the_values_and_shows_none() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"k": "hunter2"}});
        assert_eq!(
            format!("{:?}", Redactions::of(&secret, &[])),
            "Redactions(1 values)"
        );
    }

    #[test]
    fn values_a_template_put_anywhere_are_masked_and_their_paths_found() {
        let object =
            json!({"kind": "ConfigMap", "data": {"url": "https://u:tok-abcdef@db", "n": "1"}});
        let values = vec!["tok-abcdef".to_owned()];
        let redactions = Redactions::of(&object, &[]).and(values.clone());
        assert_eq!(
            redactions.redact("bad https://u:tok-abcdef@db"),
            "bad https://u:***@db"
        );
        assert_eq!(
            super::paths_holding(&object, &values),
            [vec!["data", "url"]]
        );
    }

    #[test]
    fn decrypted_paths_are_masked_in_any_object() {
        let object = json!({"kind": "Config", "spec": {"token": {"a": "tok-abcdef"}}});
        let path = vec!["spec".to_owned(), "token".to_owned()];
        let redactions = Redactions::of(&object, &[path]);
        assert_eq!(redactions.redact("bad tok-abcdef"), "bad ***");
        assert!(Redactions::of(&object, &[]).is_empty());
    }
}
