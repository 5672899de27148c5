//! `.sops.yaml`: the creation rules that say which files are encrypted, to whom, and how.

use crate::{
    crypt::EncryptOptions,
    error::{Error, Result},
    file::Recipients,
    keys::Recipient,
    walk::Selection,
};
use regex::Regex;
use serde::Deserialize;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

/// The name sops looks for. (`.sops.yml` is not read by current sops either.)
const CONFIG_NAME: &str = ".sops.yaml";

/// Key types sops rules may name that capstan cannot encrypt to.
const FOREIGN_KEY_FIELDS: [&str; 7] = [
    "pgp",
    "kms",
    "gcp_kms",
    "azure_keyvault",
    "hc_vault_transit_uri",
    "hc_vault",
    "hckms",
];

/// Recipients written as one comma-separated string or as a list (each item may hold a
/// comma-separated list too); both occur in real repositories.
#[derive(Deserialize)]
#[serde(untagged)]
enum AgeField {
    One(String),
    Many(Vec<String>),
}

impl AgeField {
    fn parse(&self) -> Result<Vec<Recipient>> {
        let items = match self {
            Self::One(text) => std::slice::from_ref(text),
            Self::Many(items) => items.as_slice(),
        };
        let mut recipients: Vec<Recipient> = Vec::new();
        for item in items {
            for recipient in Recipient::parse_list(item)? {
                if !recipients.contains(&recipient) {
                    recipients.push(recipient);
                }
            }
        }
        Ok(recipients)
    }
}

#[derive(Deserialize)]
struct RawGroup {
    age: Option<AgeField>,
    #[serde(default)]
    merge: Vec<RawGroup>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

impl RawGroup {
    /// The group's recipients with its `merge`d groups folded in, and any foreign key type.
    fn flatten(&self, recipients: &mut Vec<Recipient>, foreign: &mut Option<String>) -> Result<()> {
        for group in &self.merge {
            group.flatten(recipients, foreign)?;
        }
        for recipient in self
            .age
            .as_ref()
            .map(AgeField::parse)
            .transpose()?
            .unwrap_or_default()
        {
            if !recipients.contains(&recipient) {
                recipients.push(recipient);
            }
        }
        if foreign.is_none() {
            *foreign = foreign_key_type(&self.other);
        }
        Ok(())
    }
}

fn foreign_key_type(fields: &BTreeMap<String, serde_yaml::Value>) -> Option<String> {
    FOREIGN_KEY_FIELDS
        .iter()
        .find(|name| fields.get(**name).is_some_and(|value| !value.is_null()))
        .map(|name| (*name).to_owned())
}

#[derive(Deserialize)]
struct RawRule {
    path_regex: Option<String>,
    age: Option<AgeField>,
    #[serde(default)]
    key_groups: Vec<RawGroup>,
    shamir_threshold: Option<usize>,
    mac_only_encrypted: Option<bool>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
struct RawConfig {
    #[serde(default)]
    creation_rules: Vec<RawRule>,
    #[serde(default)]
    stores: RawStores,
}

/// `stores:`; only the YAML indentation changes what capstan writes.
#[derive(Default, Deserialize)]
struct RawStores {
    #[serde(default)]
    yaml: RawStore,
}

#[derive(Default, Deserialize)]
struct RawStore {
    indent: Option<i64>,
}

/// One creation rule.
#[derive(Clone, Debug)]
pub struct CreationRule {
    path_regex: Option<Regex>,
    recipients: Recipients,
    selection: Option<Selection>,
    mac_only_encrypted: bool,
    /// A key type capstan cannot encrypt to, which makes the rule unusable here.
    foreign: Option<String>,
}

impl CreationRule {
    /// The rule's `path_regex`; `None` matches every file.
    pub fn path_regex(&self) -> Option<&str> {
        self.path_regex.as_ref().map(Regex::as_str)
    }

    /// Who files under this rule are encrypted to.
    pub fn recipients(&self) -> &Recipients {
        &self.recipients
    }

    /// The options to encrypt a new file under this rule.
    pub fn encrypt_options(&self) -> EncryptOptions {
        EncryptOptions {
            recipients: self.recipients.clone(),
            selection: self.selection.clone().unwrap_or_default(),
            mac_only_encrypted: self.mac_only_encrypted,
        }
    }
}

/// A parsed `.sops.yaml`.
#[derive(Clone, Debug)]
pub struct Config {
    path: PathBuf,
    rules: Vec<CreationRule>,
    yaml_indent: Option<usize>,
}

impl Config {
    /// Reads a `.sops.yaml`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when it cannot be read and the errors of [`Config::parse`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::parse(path, &text)
    }

    /// Finds `.sops.yaml` as sops does: in `start` (sops uses the working directory) or the
    /// nearest of its parents. `None` when there is none.
    ///
    /// # Errors
    ///
    /// As [`Config::load`] for the file found.
    pub fn find(start: &Path) -> Result<Option<Self>> {
        let start = std::path::absolute(start).map_err(Error::io(start))?;
        for folder in start.ancestors().take(100) {
            let candidate = folder.join(CONFIG_NAME);
            if candidate.is_file() {
                return Self::load(candidate).map(Some);
            }
        }
        Ok(None)
    }

    /// Parses `.sops.yaml` text; `path` is where it lives, which rule paths are relative to.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for invalid YAML, an invalid regular expression or recipient, or a
    /// rule with more than one of the suffix/regex options.
    pub fn parse(path: impl Into<PathBuf>, text: &str) -> Result<Self> {
        let path = path.into();
        let invalid = |reason: String| Error::Config {
            path: path.clone(),
            reason,
        };
        let raw: RawConfig =
            serde_yaml::from_str(text).map_err(|error| invalid(error.to_string()))?;
        let mut rules = Vec::new();
        for (index, rule) in raw.creation_rules.into_iter().enumerate() {
            let at = |reason: String| invalid(format!("creation rule {}: {reason}", index + 1));
            let path_regex = match rule.path_regex.filter(|pattern| !pattern.is_empty()) {
                Some(pattern) => Some(Regex::new(&pattern).map_err(|error| at(error.to_string()))?),
                None => None,
            };
            let mut selections = Vec::new();
            for (name, make) in Selection::FIELDS {
                if let Some(pattern) = rule.other.get(name).and_then(serde_yaml::Value::as_str) {
                    selections.push(make(pattern.to_owned()));
                }
            }
            if selections.len() > 1 {
                return Err(at(
                    "more than one of the encrypted/unencrypted suffix and regex options"
                        .to_owned(),
                ));
            }
            let selection = selections.pop();
            if let Some(selection) = &selection {
                selection.compile().map_err(|error| at(error.to_string()))?;
            }
            let reason_of = |error: Error| at(error.to_string());
            let mut foreign = None;
            let groups = if rule.key_groups.is_empty() {
                foreign = foreign_key_type(&rule.other);
                let age = rule
                    .age
                    .as_ref()
                    .map(AgeField::parse)
                    .transpose()
                    .map_err(reason_of)?;
                age.into_iter().filter(|group| !group.is_empty()).collect()
            } else {
                let mut groups = Vec::new();
                for group in &rule.key_groups {
                    let mut recipients = Vec::new();
                    group
                        .flatten(&mut recipients, &mut foreign)
                        .map_err(reason_of)?;
                    groups.push(recipients);
                }
                groups
            };
            rules.push(CreationRule {
                path_regex,
                recipients: Recipients {
                    groups,
                    shamir_threshold: rule.shamir_threshold.filter(|t| *t != 0),
                },
                selection,
                mac_only_encrypted: rule.mac_only_encrypted.unwrap_or(false),
                foreign,
            });
        }
        let yaml_indent = match raw.stores.yaml.indent {
            None => None,
            Some(indent @ 1..=64) => Some(indent as usize),
            Some(indent) => {
                return Err(invalid(format!(
                    "`stores.yaml.indent` must be between 1 and 64, not {indent}"
                )));
            }
        };
        Ok(Self {
            path,
            rules,
            yaml_indent,
        })
    }

    /// The text of the `.sops.yaml` at `path` with `recipient` added to the age recipients
    /// of every creation rule that has some (`age` as a string or a list, and each
    /// `key_groups[].age`). Only the text is edited: comments, anchors (an aliased list is
    /// extended where its anchor is defined), quoting and layout stay. `None` when every such
    /// rule already holds the recipient.
    ///
    /// # Errors
    ///
    /// The errors of [`Config::parse`], and [`Error::Config`] naming the rule whose `age`
    /// field is laid out in a way that cannot be extended.
    pub fn add_recipient(path: &Path, text: &str, recipient: &Recipient) -> Result<Option<String>> {
        crate::config_edit::add_recipient(path, text, recipient)
    }

    /// Replaces the `.sops.yaml` at `path` with `text` atomically, keeping its permissions,
    /// after checking that `text` is a valid configuration; returns it parsed.
    ///
    /// # Errors
    ///
    /// The errors of [`Config::parse`] (nothing is written then), and [`Error::Io`].
    pub fn replace(path: &Path, text: &str) -> Result<Self> {
        let config = Self::parse(path, text)?;
        crate::write::replace(path, text.as_bytes(), crate::write::Mode::Keep)?;
        Ok(config)
    }

    /// `stores: {yaml: {indent: N}}`: the spaces per level of the YAML files written under
    /// this configuration (see [`SopsFile::set_yaml_indent`](crate::SopsFile::set_yaml_indent)).
    pub fn yaml_indent(&self) -> Option<usize> {
        self.yaml_indent
    }

    /// Where the configuration was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The creation rules, in order.
    pub fn rules(&self) -> &[CreationRule] {
        &self.rules
    }

    /// The first rule whose `path_regex` matches `file`. As in sops, the regex sees the path
    /// relative to the configuration's folder when the file is below it, else the absolute
    /// path.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatchingRule`] naming the file and the configuration, and
    /// [`Error::Config`] when the matching rule has no age recipients or also names key
    /// types capstan cannot encrypt to.
    pub fn rule_for(&self, file: &Path) -> Result<&CreationRule> {
        let absolute = std::path::absolute(file).map_err(Error::io(file))?;
        // `--config my.yaml` has the parent `""`, which is the working directory.
        let folder = self
            .path
            .parent()
            .map(|parent| match parent.as_os_str().is_empty() {
                true => std::path::absolute("."),
                false => std::path::absolute(parent),
            })
            .transpose()
            .map_err(Error::io(&self.path))?;
        let relative =
            folder.and_then(|folder| absolute.strip_prefix(folder).ok().map(Path::to_path_buf));
        let subject = relative.unwrap_or(absolute);
        let subject = subject
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let (index, rule) = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, rule)| {
                rule.path_regex
                    .as_ref()
                    .is_none_or(|regex| regex.is_match(&subject))
            })
            .ok_or_else(|| Error::NoMatchingRule {
                path: file.to_owned(),
                config: self.path.clone(),
            })?;
        let unusable = |reason: String| Error::Config {
            path: self.path.clone(),
            reason: format!(
                "creation rule {} (matching `{}`) {reason}",
                index + 1,
                file.display()
            ),
        };
        if let Some(kind) = &rule.foreign {
            return Err(unusable(format!(
                "uses `{kind}` keys; capstan encrypts to age recipients only"
            )));
        }
        if rule.recipients.groups.is_empty() {
            return Err(unusable("has no age recipients".to_owned()));
        }
        Ok(rule)
    }
}
