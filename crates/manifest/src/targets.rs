//! `targets:` of `capstan.yaml`: the clusters a stage can go to, and which of them a stage
//! (or a command line) picks.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::names::dns_label_problem;
use crate::{Label, Stage};

/// One cluster a stage can be deployed to.
///
/// ```yaml
/// targets:
///   prod-a: {context: prod-a, labels: {env: prod}}
///   prod-b:
///     context: prod-b
///     kubeconfig: ~/.kube/prod-b.yaml   # optional; relative paths are the project's
///     labels: {env: prod, region: eu}
///     discriminator: full-b             # optional; replaces the stage's on this target
///     variables: {CLUSTER: prod-b}      # the stage command's environment on this target
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    name: String,
    context: String,
    kubeconfig: Option<PathBuf>,
    labels: BTreeMap<String, String>,
    discriminator: Option<String>,
    variables: BTreeMap<String, String>,
}

impl Target {
    /// The target's name, unique in the project.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The kube context it is reached through; binding, as a stage's `context` is.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The kubeconfig holding the context, when it is not the usual one (`KUBECONFIG` or
    /// `~/.kube/config`).
    pub fn kubeconfig(&self) -> Option<&Path> {
        self.kubeconfig.as_deref()
    }

    /// Its labels, for selectors such as `{env: prod}`.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The discriminator that replaces the stage's on this target, if it sets one: every
    /// stage's that goes there (their ownership records still keep them apart).
    pub fn discriminator(&self) -> Option<&str> {
        self.discriminator.as_deref()
    }

    /// The environment variables a stage command gets on this target.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }

    /// Whether every `key=value` of `selector` is one of its labels.
    pub fn matches(&self, selector: &BTreeMap<String, String>) -> bool {
        selector
            .iter()
            .all(|(key, value)| self.labels.get(key) == Some(value))
    }
}

/// Which targets a stage goes to: `targets: [a, b]` or a label selector `targets: {env: prod}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetSelector {
    /// These targets, in this order.
    Names(Vec<String>),
    /// Every target carrying all these labels, in the order `targets:` lists them.
    Labels(BTreeMap<String, String>),
}

impl TargetSelector {
    /// `env=prod,region=eu`, as `--targets` takes it.
    ///
    /// # Errors
    ///
    /// A message when a part is not `key=value`.
    pub fn parse_labels(text: &str) -> Result<Self, String> {
        let mut labels = BTreeMap::new();
        for part in text.split(',').map(str::trim) {
            match part.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    labels.insert(key.to_owned(), value.to_owned());
                }
                _ => return Err(format!("`{part}` is not a label selector key=value")),
            }
        }
        Ok(Self::Labels(labels))
    }

    /// The targets of `all` it picks, in its order (names) or theirs (labels).
    ///
    /// # Errors
    ///
    /// A message naming a target that does not exist, or saying the selector picks none.
    pub fn select<'t>(&self, all: &'t [Target]) -> Result<Vec<&'t Target>, String> {
        let known = || {
            let names: Vec<&str> = all.iter().map(Target::name).collect();
            if names.is_empty() {
                "the project lists no `targets`".to_owned()
            } else {
                format!("known: {}", names.join(", "))
            }
        };
        let picked: Vec<&Target> = match self {
            Self::Names(names) => {
                let mut picked: Vec<&Target> = Vec::with_capacity(names.len());
                for name in names {
                    let target = all
                        .iter()
                        .find(|t| &t.name == name)
                        .ok_or_else(|| format!("unknown target `{name}` ({})", known()))?;
                    if !picked.contains(&target) {
                        picked.push(target);
                    }
                }
                picked
            }
            Self::Labels(labels) => all.iter().filter(|t| t.matches(labels)).collect(),
        };
        if picked.is_empty() {
            return Err(format!("{self} selects no target ({})", known()));
        }
        Ok(picked)
    }
}

impl fmt::Display for TargetSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Names(names) => write!(f, "targets {}", names.join(", ")),
            Self::Labels(labels) => {
                let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "selector {}", pairs.join(","))
            }
        }
    }
}

impl Stage {
    /// The targets the stage lists (`targets:`), if it lists any.
    pub fn targets(&self) -> Option<&TargetSelector> {
        self.targets.as_ref()
    }

    /// The stage as it runs on `target`: the target's context, its discriminator (when it
    /// sets one) and its variables for the stage command.
    ///
    /// # Errors
    ///
    /// A message when the target's discriminator is not a valid label value (checked when
    /// the project was opened, so only for targets built elsewhere).
    pub fn for_target(&self, target: &Target) -> Result<Stage, String> {
        let mut stage = self.clone();
        stage.context = Some(target.context.clone());
        stage.variables = target.variables.clone();
        if let Some(discriminator) = &target.discriminator {
            stage.label = Label::new(self.label.key().to_owned(), discriminator.clone())
                .map_err(|error| error.to_string())?;
            // The override never had the old `<project>-<stage>` default.
            stage.legacy_label = None;
        }
        Ok(stage)
    }

    /// The environment variables its command runs with (a target's `variables`).
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.variables
    }
}

/// A mapping of names to entries, in the order the file lists them, which is the order
/// people read them in (`stages:`, `targets:`).
pub(crate) struct Named<T>(pub(crate) Vec<(String, T)>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// `targets:` as written.
pub(crate) type TargetFiles = Named<TargetFile>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TargetFile {
    context: String,
    kubeconfig: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    discriminator: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
}

/// A stage's `targets:` as written.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum SelectorFile {
    Names(Vec<String>),
    Labels(BTreeMap<String, String>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Named<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Named<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named<T>, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Named(entries))
            }
        }
        deserializer.deserialize_map(Entries(std::marker::PhantomData))
    }
}

/// The project's targets, checked: names are DNS labels, contexts are not empty, discriminators
/// are label values under `label_key`, variables are environment variable names.
pub(crate) fn resolve(
    root: &Path,
    files: TargetFiles,
    label_key: &str,
) -> Result<Vec<Target>, String> {
    let mut targets: Vec<Target> = Vec::with_capacity(files.0.len());
    for (name, file) in files.0 {
        if let Some(rule) = dns_label_problem(&name) {
            return Err(format!("the target name {name:?} is not {rule}"));
        }
        let invalid = |message: String| format!("target {name}: {message}");
        if file.context.trim().is_empty() {
            return Err(invalid("`context` is empty".to_owned()));
        }
        if let Some(discriminator) = &file.discriminator {
            Label::new(label_key.to_owned(), discriminator.clone())
                .map_err(|error| invalid(error.to_string()))?;
        }
        if let Some(bad) = file.variables.keys().find(|key| !is_variable_name(key)) {
            return Err(invalid(format!(
                "variable `{bad}` is not an environment variable name (letters, digits and \
                 `_`, not starting with a digit)"
            )));
        }
        targets.push(Target {
            name,
            context: file.context,
            kubeconfig: file.kubeconfig.map(|path| root.join(path)),
            labels: file.labels,
            discriminator: file.discriminator,
            variables: file.variables,
        });
    }
    Ok(targets)
}

/// A stage's `targets:`, checked against the project's targets.
pub(crate) fn selector(file: SelectorFile, targets: &[Target]) -> Result<TargetSelector, String> {
    let selector = match file {
        SelectorFile::Names(names) => TargetSelector::Names(names),
        SelectorFile::Labels(labels) => TargetSelector::Labels(labels),
    };
    selector.select(targets)?;
    Ok(selector)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::is_variable_name;

    #[test]
    fn variable_names_are_what_a_shell_exports() {
        assert!(is_variable_name("CLUSTER"));
        assert!(is_variable_name("_x1"));
        assert!(!is_variable_name("1X"));
        assert!(!is_variable_name("A-B"));
        assert!(!is_variable_name(""));
    }
}
