//! Values that must never be shown, wherever they ended up: what a SOPS-encrypted kluctl vars
//! file held, put into any object by a template.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

/// What replaces a sensitive value in text.
pub const MASK: &str = "***";

/// Values shorter than this are masked only as whole words: masking every `a` in a message
/// would leave nothing readable, and a one-letter word is what a server would quote.
const SUBSTRING_MIN: usize = 4;

/// A set of secret values to mask in any text shown to a person: diffs, reports, errors and
/// `render` output. [`Manifest::sensitive`](crate::Manifest::sensitive) holds the values a
/// kluctl project's templates took from SOPS-encrypted vars files.
///
/// ```
/// use capstan_manifest::Sensitive;
///
/// let sensitive = Sensitive::new(["hunter2-password".to_owned(), "ab".to_owned()]);
/// assert_eq!(sensitive.mask("token hunter2-password, tab ab"), "token ***, tab ***");
/// ```
#[derive(Clone, Default)]
pub struct Sensitive(Arc<[String]>);

// By hand: the values themselves must never reach a log.
impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sensitive({} values)", self.0.len())
    }
}

impl Sensitive {
    /// The set of `values`; empty ones are dropped, since they give nothing away.
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<String> = values.into_iter().filter(|v| !v.is_empty()).collect();
        // Longest first, so a value that holds another is masked whole.
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self(values.into())
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many values there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The values, longest first.
    pub fn values(&self) -> &[String] {
        &self.0
    }

    /// The values that occur in `json`, an object's compact JSON: what its diffs and the
    /// server's messages about it can quote.
    pub fn within(&self, json: &str) -> impl Iterator<Item = &String> {
        self.0.iter().filter(move |value| {
            let escaped = serde_json::to_string(value.as_str()).unwrap_or_default();
            json.contains(escaped.trim_matches('"'))
        })
    }

    /// `text` with every value replaced by `***`.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        for value in self.0.iter() {
            if !text.contains(value.as_str()) {
                continue;
            }
            text = Cow::Owned(if value.chars().count() >= SUBSTRING_MIN {
                text.replace(value.as_str(), MASK)
            } else {
                replace_words(&text, value)
            });
        }
        text
    }

    /// Masks every string in `value` (keys stay: they name, they do not hold, a secret).
    pub fn mask_value(&self, value: &mut Value) {
        match value {
            Value::String(text) => {
                if let Cow::Owned(masked) = self.mask(text) {
                    *text = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| self.mask_value(item)),
            Value::Object(map) => map.values_mut().for_each(|item| self.mask_value(item)),
            Value::Number(_) | Value::Bool(_) | Value::Null => {
                if let Some(number) = value.as_number().map(ToString::to_string)
                    && self.0.contains(&number)
                {
                    *value = Value::String(MASK.to_owned());
                }
            }
        }
    }
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

    use super::Sensitive;

    #[test]
    fn short_values_are_masked_as_whole_words_only() {
        let sensitive = Sensitive::new(["42".to_owned()]);
        assert_eq!(
            sensitive.mask("port 42, not 420 or a42"),
            "port ***, not 420 or a42"
        );
    }

    #[test]
    fn every_string_and_number_of_an_object_is_masked_where_it_holds_a_value() {
        let sensitive = Sensitive::new(["s3cr3t-token".to_owned(), "5432".to_owned()]);
        let mut object =
            json!({"data": {"url": "https://u:s3cr3t-token@db", "port": 5432, "n": 1}});
        sensitive.mask_value(&mut object);
        assert_eq!(
            object,
            json!({"data": {"url": "https://u:***@db", "port": "***", "n": 1}})
        );
    }

    #[test]
    fn values_are_found_in_json_in_their_escaped_form() {
        let sensitive = Sensitive::new(["line\"one".to_owned(), "absent".to_owned()]);
        let found: Vec<&String> = sensitive.within(r#"{"v":"line\"one"}"#).collect();
        assert_eq!(found, ["line\"one"]);
    }
}
