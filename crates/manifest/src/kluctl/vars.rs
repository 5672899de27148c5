//! kluctl's `vars:` sources: `file` (plain or SOPS-encrypted) and `values`, merged in order
//! into the variables templates see.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Decrypt;
use super::template::{Renderer, Taint};
use crate::{Location, Problem, ProblemKind};

/// Sources kluctl has that capstan does not read: they need a cluster, a network or a vault
/// while loading, which would make a render depend on more than the project folder.
const ELSEWHERE: &[&str] = &[
    "git",
    "gitFiles",
    "clusterConfigMap",
    "clusterSecret",
    "clusterObject",
    "http",
    "awsSecretsManager",
    "gcpSecretManager",
    "azureKeyVault",
    "vault",
    "systemEnvVars",
];

/// One entry of `vars:`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    file: Option<String>,
    values: Option<Value>,
    #[serde(default)]
    ignore_missing: bool,
    #[serde(default)]
    no_override: bool,
    #[serde(default)]
    sensitive: bool,
    target_path: Option<String>,
    when: Option<Value>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

/// What reading vars needs besides the entries.
pub(crate) struct Sources<'a> {
    /// The folder of the `deployment.yaml` the entries are in: `file` paths are relative to it.
    pub(crate) dir: &'a Path,
    /// That `deployment.yaml`, for problems.
    pub(crate) file: &'a Path,
    pub(crate) decrypt: Option<&'a dyn Decrypt>,
    pub(crate) taint: &'a Arc<Taint>,
}

impl Sources<'_> {
    /// Merges the variables of `entries` into `vars`, in order; each entry's file is rendered
    /// with the variables of the entries before it, as kluctl does.
    ///
    /// # Errors
    ///
    /// A problem naming the entry and the file: an unsupported source or option, a file that
    /// cannot be read, decrypted, rendered or parsed.
    pub(crate) fn merge(
        &self,
        vars: &mut Value,
        entries: &[Value],
        at: &str,
    ) -> Result<(), Problem> {
        for (index, entry) in entries.iter().enumerate() {
            let what = format!("{at}[{index}]");
            let source: Source = serde_json::from_value(entry.clone())
                .map_err(|error| self.problem(format!("{what}: {error}")))?;
            let loaded = self.load(&source, vars, &what)?;
            let Some(mut loaded) = loaded else { continue };
            if let Some(path) = &source.target_path {
                for step in path.rsplit('.') {
                    loaded = Value::Object(Map::from_iter([(step.to_owned(), loaded)]));
                }
            }
            if !loaded.is_object() {
                let message = format!("{what}: vars must be a mapping (or use `targetPath`)");
                return Err(self.problem(message));
            }
            merge(vars, loaded, source.no_override);
        }
        Ok(())
    }

    /// The entry's variables, `None` for a missing file that may be missing.
    fn load(&self, source: &Source, vars: &Value, what: &str) -> Result<Option<Value>, Problem> {
        if let Some(name) = source
            .other
            .keys()
            .find(|key| ELSEWHERE.contains(&key.as_str()))
        {
            let message = format!(
                "{what}: the `{name}` vars source is not supported: capstan reads vars from \
                 `file` and `values` only (render the variables into a file of the project)"
            );
            return Err(self.problem(message));
        }
        if let Some(key) = source.other.keys().next() {
            return Err(self.problem(format!("{what}: unknown field `{key}`")));
        }
        if source.when.is_some() {
            let message =
                format!("{what}: `when` is not supported: capstan loads every vars source");
            return Err(self.problem(message));
        }
        match (&source.file, &source.values) {
            (Some(file), None) => self.file(file, source, vars, what),
            (None, Some(values)) => {
                if source.sensitive {
                    self.taint.add(leaves(values));
                }
                Ok(Some(values.clone()))
            }
            _ => Err(self.problem(format!("{what}: needs exactly one of `file` and `values`"))),
        }
    }

    fn file(
        &self,
        file: &str,
        source: &Source,
        vars: &Value,
        what: &str,
    ) -> Result<Option<Value>, Problem> {
        let path = self.dir.join(file);
        let name: Arc<str> = path.display().to_string().into();
        let at = |message: String| {
            Problem::new(
                Location::file(name.clone()),
                ProblemKind::Configuration,
                message,
            )
        };
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound && source.ignore_missing => {
                return Ok(None);
            }
            Err(error) => return Err(at(format!("vars file of {what}: {error}"))),
        };
        let encrypted = is_sops(&text);
        let text = if encrypted {
            let Some(decrypt) = self.decrypt else {
                return Err(at(
                    "a SOPS-encrypted vars file, and no way to decrypt it was given".into(),
                ));
            };
            decrypt.decrypt(&path, &text).map_err(at)?
        } else {
            text
        };
        // A syntax error quotes the text it stopped at, which in a decrypted file is a secret.
        let rendered = Renderer::new(vars, self.taint)
            .render(&name, &text)
            .map_err(|problem| {
                match encrypted && problem.message().starts_with("template error") {
                    true => Problem::new(
                        problem.location().clone(),
                        ProblemKind::Template,
                        "the decrypted vars file does not render (its text is not shown)",
                    ),
                    false => problem,
                }
            })?;
        let value: Value = serde_yaml::from_str::<Option<Value>>(&rendered)
            .map_err(|error| match (encrypted, error.location()) {
                (true, Some(place)) => at(format!(
                    "the decrypted vars file is not YAML at line {} (its text is not shown)",
                    place.line()
                )),
                (true, None) => {
                    at("the decrypted vars file is not YAML (its text is not shown)".into())
                }
                (false, _) => at(format!("vars file is not YAML: {error}")),
            })?
            .unwrap_or_else(|| Value::Object(Map::new()));
        if encrypted || source.sensitive {
            self.taint.add(leaves(&value));
        }
        Ok(Some(value))
    }

    fn problem(&self, message: String) -> Problem {
        let name = self.file.display().to_string().into();
        Problem::new(Location::file(name), ProblemKind::Configuration, message)
    }
}

/// Whether `text` is a SOPS file: a mapping with sops' metadata at its top.
fn is_sops(text: &str) -> bool {
    serde_yaml::from_str::<serde_yaml::Mapping>(text)
        .ok()
        .and_then(|file| file.get("sops").and_then(|sops| sops.get("mac")).cloned())
        .is_some()
}

/// Every string and number below `value`, as text.
fn leaves(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(text) => out.push(text.clone()),
            Value::Number(number) => out.push(number.to_string()),
            Value::Bool(_) | Value::Null => {}
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.values()),
        }
    }
    out
}

/// kluctl's merge: mappings merge key by key, anything else replaces (unless `keep`).
pub(crate) fn merge(into: &mut Value, from: Value, keep: bool) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                match into.get_mut(&key) {
                    Some(existing) => merge(existing, value, keep),
                    None => {
                        into.insert(key, value);
                    }
                }
            }
        }
        (_, _) if keep => {}
        (into, from) => *into = from,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::merge;

    #[test]
    fn mappings_merge_and_no_override_keeps_what_was_there() {
        let mut vars = json!({"a": {"x": 1, "y": [1]}, "b": 1});
        merge(&mut vars, json!({"a": {"y": [2], "z": 3}, "c": 4}), false);
        assert_eq!(
            vars,
            json!({"a": {"x": 1, "y": [2], "z": 3}, "b": 1, "c": 4})
        );
        merge(&mut vars, json!({"b": 9, "d": 5}), true);
        assert_eq!(
            vars,
            json!({"a": {"x": 1, "y": [2], "z": 3}, "b": 1, "c": 4, "d": 5})
        );
    }
}
