//! Keeping secret values out of text: the server quotes what it rejects (`expected map, got
//! &{[hunter2]}`), so masking Secret `data` in diffs is not enough. Every message and diff
//! line about a Secret or a SOPS-decrypted object has each of that object's secret values
//! replaced, whatever shape the value has.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::Value;

/// A path to a value inside an object, one key or array index per step.
pub type ValuePath = Vec<String>;

/// What replaces a secret value in text.
const MASK: &str = "***";

/// Values shorter than this are masked only as whole words: masking every `a` in a message
/// would leave nothing readable, and a one-letter word is what the server would quote.
const SUBSTRING_MIN: usize = 4;

/// The secret values of one object, longest first.
#[derive(Clone, Default)]
pub(crate) struct Redactions(Arc<[String]>);

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
        values.retain(|v| !v.is_empty());
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self(values.into())
    }

    /// `text` with every secret value replaced by `***`.
    pub(crate) fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for value in self.0.iter() {
            text = if value.chars().count() >= SUBSTRING_MIN {
                text.replace(value.as_str(), MASK)
            } else {
                replace_words(&text, value)
            };
        }
        text
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

fn lookup<'v>(value: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(value, |value, step| match value {
        Value::Object(map) => map.get(step),
        Value::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Replaces `word` where it stands alone: not inside a longer run of letters and digits.
fn replace_words(text: &str, word: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        let alone =
            !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric);
        out.push_str(&rest[..at]);
        out.push_str(if alone { MASK } else { word });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
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
    fn decrypted_paths_are_masked_in_any_object() {
        let object = json!({"kind": "Config", "spec": {"token": {"a": "tok-abcdef"}}});
        let path = vec!["spec".to_owned(), "token".to_owned()];
        let redactions = Redactions::of(&object, &[path]);
        assert_eq!(redactions.redact("bad tok-abcdef"), "bad ***");
        assert!(Redactions::of(&object, &[]).is_empty());
    }
}
