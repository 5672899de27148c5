//! One loaded object, and how a parsed document becomes one.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::names::{dns_label_problem, label_key_problem, label_value_problem, name_problem};
use crate::{Label, Location, ObjectId, Phase, Problem, ProblemKind};

/// One object of a stage, validated and labelled.
///
/// The object is kept as compact JSON: 50,000 objects then take about as much memory as their
/// text, where a tree of values takes several times more. [`Object::json`] is a valid body for a
/// server-side apply request as it is; [`Object::to_value`] parses it when a tree is needed.
#[derive(Debug)]
pub struct Object {
    id: ObjectId,
    location: Location,
    phase: Phase,
    barrier_group: u32,
    json: Box<RawValue>,
    label_added: bool,
}

impl Object {
    /// Which object this is.
    pub fn id(&self) -> &ObjectId {
        &self.id
    }

    /// Where it was loaded from.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// When it is applied, relative to objects of other kinds.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The barrier group: objects of a later group are applied only after every object of
    /// earlier groups (kluctl's `barrier: true`). Manifests without barriers have one group, 0.
    pub fn barrier_group(&self) -> u32 {
        self.barrier_group
    }

    /// The object as compact JSON, with the discriminator label when one was given.
    pub fn json(&self) -> &str {
        self.json.get()
    }

    /// Whether loading added the discriminator label (the source did not carry it). A
    /// SOPS-encrypted object's MAC covers the source, so decrypting it means taking the label
    /// out again first.
    pub fn label_added(&self) -> bool {
        self.label_added
    }

    /// The object's labels (`metadata.labels`), with the discriminator when one was given.
    pub fn labels(&self) -> BTreeMap<String, String> {
        #[derive(Deserialize)]
        struct Object {
            metadata: Metadata,
        }
        #[derive(Deserialize)]
        struct Metadata {
            labels: Option<BTreeMap<String, String>>,
        }
        // Loading checked that labels are strings; only the labels are kept from the parse.
        serde_json::from_str::<Object>(self.json.get())
            .ok()
            .and_then(|object| object.metadata.labels)
            .unwrap_or_default()
    }

    /// The object as a tree of values.
    pub fn to_value(&self) -> Value {
        // The text was written by serde_json from a `Value`, so it always parses back.
        serde_json::from_str(self.json.get()).unwrap_or_default()
    }

    pub(crate) fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
    }
}

/// What a parsed document yields: an object, nothing (configuration such as a Kustomization
/// that sits among resources), or the problems that keep it from being an object.
pub(crate) enum Converted {
    Object {
        object: Box<Object>,
        /// The group and kind a CustomResourceDefinition defines.
        defines: Option<(String, String)>,
    },
    Skipped,
    Problems(Vec<Problem>),
}

/// Settings every conversion shares.
pub(crate) struct Convert<'a> {
    pub(crate) label: Option<&'a Label>,
    pub(crate) barrier_group: u32,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A string field at `path`; `Err` says what is wrong with it.
fn string_at<'v>(object: &'v Map<String, Value>, path: &[&str]) -> Result<Option<&'v str>, String> {
    let mut value = None;
    let mut map = Some(object);
    for key in path {
        value = map.and_then(|map| map.get(*key));
        map = value.and_then(Value::as_object);
    }
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(format!(
            "{} must be a string, not {}",
            path.join("."),
            type_name(other)
        )),
    }
}

/// Kustomize and ksops files sit among resources in GitOps trees; they configure tools.
fn is_tool_configuration(api_version: &str, kind: &str) -> bool {
    api_version.starts_with("kustomize.config.k8s.io/")
        || (api_version.starts_with("viaduct.ai/") && kind == "ksops")
}

impl Convert<'_> {
    pub(crate) fn value(&self, value: Value, location: Location) -> Converted {
        let Value::Object(mut object) = value else {
            let message = format!(
                "not a Kubernetes object: the document is {}",
                type_name(&value)
            );
            return Converted::Problems(vec![Problem::new(
                location,
                ProblemKind::NotAnObject,
                message,
            )]);
        };
        let problem = |kind, message: String| Problem::new(location.clone(), kind, message);
        let mut missing = Vec::new();
        let mut fields = [None; 4];
        for (slot, path) in fields.iter_mut().zip([
            &["apiVersion"][..],
            &["kind"],
            &["metadata", "name"],
            &["metadata", "namespace"],
        ]) {
            match string_at(&object, path) {
                Ok(Some(text)) => *slot = Some(text),
                Ok(None) if path[..] != ["metadata", "namespace"] => {
                    missing.push(problem(
                        ProblemKind::NotAnObject,
                        format!("{} is missing", path.join(".")),
                    ));
                }
                Ok(None) => {}
                Err(message) => missing.push(problem(ProblemKind::NotAnObject, message)),
            }
        }
        // A Kustomization usually has no metadata, so it is recognised before names are asked for.
        if let [Some(api_version), Some(kind), ..] = fields
            && is_tool_configuration(api_version, kind)
        {
            return Converted::Skipped;
        }
        let [Some(api_version), Some(kind), Some(name), namespace] = fields else {
            return Converted::Problems(missing);
        };
        if !missing.is_empty() {
            return Converted::Problems(missing);
        }
        let id = ObjectId::new(api_version, kind, namespace, name);
        let mut problems = Vec::new();
        if api_version.matches('/').count() > 1 || api_version.is_empty() {
            problems.push(format!(
                "apiVersion {api_version:?} is not `group/version` or `version`"
            ));
        }
        if let Some(rule) = name_problem(id.group(), kind, name) {
            problems.push(format!(
                "metadata.name {name:?} is not a valid name: {rule}"
            ));
        }
        if let Some(rule) = namespace.and_then(dns_label_problem) {
            problems.push(format!(
                "metadata.namespace {:?} is not valid: {rule}",
                namespace.unwrap_or_default()
            ));
        }
        let mut problems: Vec<Problem> = problems
            .into_iter()
            .map(|message| problem(ProblemKind::InvalidName, message))
            .collect();
        problems.extend(
            label_problems(&object)
                .into_iter()
                .map(|message| problem(ProblemKind::InvalidLabel, message)),
        );
        if id.group().is_empty() && kind == "Secret" {
            problems.extend(
                placeholder_problems(&object)
                    .into_iter()
                    .map(|message| problem(ProblemKind::TemplatePlaceholder, message)),
            );
        }
        let defines = (id.group() == "apiextensions.k8s.io" && kind == "CustomResourceDefinition")
            .then(|| defined_kind(&object))
            .flatten();
        let mut label_added = false;
        if let Some(label) = self.label {
            match apply_label(&mut object, label) {
                Ok(added) => label_added = added,
                Err(message) => problems.push(problem(ProblemKind::DiscriminatorConflict, message)),
            }
        }
        if !problems.is_empty() {
            return Converted::Problems(problems.into_iter().map(|p| p.about(&id)).collect());
        }
        let json =
            serde_json::value::to_raw_value(&object).unwrap_or_else(|_| RawValue::NULL.to_owned());
        let phase = Phase::of(id.group(), id.kind(), false);
        let object = Object {
            id,
            location,
            phase,
            barrier_group: self.barrier_group,
            json,
            label_added,
        };
        Converted::Object {
            object: Box::new(object),
            defines,
        }
    }
}

fn label_problems(object: &Map<String, Value>) -> Vec<String> {
    let Some(labels) = object.get("metadata").and_then(|m| m.get("labels")) else {
        return Vec::new();
    };
    let Value::Object(labels) = labels else {
        return if labels.is_null() {
            Vec::new()
        } else {
            vec![format!(
                "metadata.labels must be a mapping, not {}",
                type_name(labels)
            )]
        };
    };
    let mut problems = Vec::new();
    for (key, value) in labels {
        if let Some(rule) = label_key_problem(key) {
            problems.push(format!("label key {key:?} is not valid: {rule}"));
        }
        match value {
            Value::String(text) => {
                if let Some(rule) = label_value_problem(text) {
                    problems.push(format!(
                        "label {key:?}: value {text:?} is not valid: {rule}"
                    ));
                }
            }
            other => problems.push(format!(
                "label {key:?}: value must be a string, not {}",
                type_name(other)
            )),
        }
    }
    problems
}

/// kluctl-era renders leave `{{ var }}` in Secrets for kluctl's Jinja pass to fill in.
fn placeholder_problems(object: &Map<String, Value>) -> Vec<String> {
    let mut problems = Vec::new();
    for field in ["data", "stringData"] {
        let Some(Value::Object(values)) = object.get(field) else {
            continue;
        };
        for (key, value) in values {
            let Value::String(text) = value else { continue };
            let opens = text.find("{{");
            if opens.is_some_and(|at| text[at..].contains("}}")) {
                // The value itself is never quoted: it may hold the secret around the placeholder.
                problems.push(format!(
                    "{field}.{key} holds an unresolved template placeholder ({{{{ ... }}}}); \
                     capstan does not template: resolve it when rendering, or encrypt the value with sops"
                ));
            }
        }
    }
    problems
}

fn defined_kind(object: &Map<String, Value>) -> Option<(String, String)> {
    let group = string_at(object, &["spec", "group"]).ok()??;
    let kind = string_at(object, &["spec", "names", "kind"]).ok()??;
    Some((group.to_owned(), kind.to_owned()))
}

/// Labels the object; `Ok(true)` when the label was not there before.
fn apply_label(object: &mut Map<String, Value>, label: &Label) -> Result<bool, String> {
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(metadata) = metadata.as_object_mut() else {
        return Err("metadata must be a mapping".to_owned());
    };
    let labels = metadata
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if labels.is_null() {
        *labels = Value::Object(Map::new());
    }
    let Some(labels) = labels.as_object_mut() else {
        return Ok(false); // already reported by label_problems
    };
    match labels.get(label.key()) {
        Some(Value::String(existing)) if existing != label.value() => Err(format!(
            "already labelled {}={existing}, but this stage's discriminator is {}: another stage or \
             project owns it (change the manifest or the stage's discriminator)",
            label.key(),
            label.value()
        )),
        _ => Ok(labels
            .insert(
                label.key().to_owned(),
                Value::String(label.value().to_owned()),
            )
            .is_none()),
    }
}
