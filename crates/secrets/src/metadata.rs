//! The `sops` metadata block: read in any layout sops ever wrote, written in the layout of
//! sops 3.13 (keys sorted alphabetically at every level).

use crate::{
    tree::{Item, Map, Value},
    walk::Selection,
};

/// The sops version whose layout this crate writes, stored in `version` of new files.
pub const SOPS_VERSION: &str = "3.13.2";

/// Key types sops knows besides age. capstan cannot use them, but keeps them in the file.
const FOREIGN_KEY_TYPES: [&str; 6] = ["azure_kv", "gcp_kms", "hc_vault", "hckms", "kms", "pgp"];

/// One age recipient of a file and the data key (or share) encrypted to it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct AgeKey {
    pub(crate) recipient: String,
    /// The armoured age file holding the data key or share.
    pub(crate) enc: String,
}

/// The master keys that each hold the same data key (or, with several groups, the same share).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct KeyGroup {
    pub(crate) age: Vec<AgeKey>,
    /// Non-empty lists of other key types (PGP, KMS, …), kept as found.
    pub(crate) foreign: Vec<(String, Value)>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Metadata {
    pub(crate) key_groups: Vec<KeyGroup>,
    /// As stored; `None` means "all groups".
    pub(crate) shamir_threshold: Option<usize>,
    pub(crate) lastmodified: String,
    /// The encrypted MAC, or empty.
    pub(crate) mac: String,
    /// `None` when the file names no rule (binary files); sops then applies `_unencrypted`.
    pub(crate) selection: Option<Selection>,
    pub(crate) mac_only_encrypted: bool,
    pub(crate) version: String,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::Str(text) | Value::Time(text) => Some(text.clone()),
        Value::Int(number) => Some(number.to_string()),
        Value::Float(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn maps(value: &Value) -> impl Iterator<Item = &Map> {
    let items = match value {
        Value::Seq(items) => items.as_slice(),
        _ => &[],
    };
    items.iter().filter_map(|item| match item {
        Item::Value(Value::Map(map)) => Some(map),
        _ => None,
    })
}

fn is_non_empty_list(value: &Value) -> bool {
    matches!(value, Value::Seq(items) if items.iter().any(|item| matches!(item, Item::Value(_))))
}

fn parse_group(map: &Map) -> Result<KeyGroup, String> {
    let mut group = KeyGroup::default();
    if let Some(age) = map.get("age") {
        for entry in maps(age) {
            let field = |name| {
                entry
                    .get(name)
                    .and_then(text)
                    .ok_or(format!("an age key without `{name}`"))
            };
            group.age.push(AgeKey {
                recipient: field("recipient")?,
                enc: field("enc")?,
            });
        }
    }
    for name in FOREIGN_KEY_TYPES {
        if let Some(list) = map.get(name).filter(|list| is_non_empty_list(list)) {
            group.foreign.push((name.to_owned(), list.clone()));
        }
    }
    Ok(group)
}

impl KeyGroup {
    /// The group's keys as people name them: age recipients as they are, other key types
    /// with their identifying field, e.g. "PGP key 85D77543B3D624B63CEA9E6DBC17301B491B3F21".
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.age.iter().map(|key| key.recipient.clone()).collect();
        keys.extend(self.foreign_keys());
        keys
    }

    /// The non-age keys, described.
    pub(crate) fn foreign_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for (kind, list) in &self.foreign {
            let (name, fields): (&str, &[&str]) = match kind.as_str() {
                "pgp" => ("PGP key", &["fp"]),
                "kms" => ("AWS KMS key", &["arn"]),
                "gcp_kms" => ("GCP KMS key", &["resource_id"]),
                "azure_kv" => ("Azure Key Vault key", &["vault_url", "name"]),
                "hc_vault" => ("HashiCorp Vault key", &["vault_address", "key_name"]),
                "hckms" => ("HuaweiCloud KMS key", &["key_id"]),
                other => (other, &[]),
            };
            for entry in maps(list) {
                let id: Vec<String> = fields
                    .iter()
                    .filter_map(|field| entry.get(field).and_then(text))
                    .collect();
                keys.push(match id.is_empty() {
                    true => name.to_owned(),
                    false => format!("{name} {}", id.join("/")),
                });
            }
        }
        keys
    }
}

impl Metadata {
    /// Reads the block; the reason of an error never quotes a value.
    pub(crate) fn parse(map: &Map) -> Result<Self, String> {
        let field = |name: &str| map.get(name).and_then(text);
        let flat = parse_group(map)?;
        let key_groups = if !flat.age.is_empty() || !flat.foreign.is_empty() {
            vec![flat]
        } else {
            let groups = map
                .get("key_groups")
                .map(|groups| maps(groups).map(parse_group).collect());
            groups.transpose()?.unwrap_or_default()
        };
        if key_groups.is_empty() {
            return Err("no keys found".to_owned());
        }
        let mut selections = Vec::new();
        for (name, make) in Selection::FIELDS {
            if let Some(pattern) = field(name).filter(|pattern| !pattern.is_empty()) {
                selections.push(make(pattern));
            }
        }
        if selections.len() > 1 {
            return Err(
                "more than one of the encrypted/unencrypted suffix and regex fields".to_owned(),
            );
        }
        let selection = selections.pop();
        if let Some(selection) = &selection {
            selection
                .compile()
                .map_err(|error| format!("invalid regular expression: {error}"))?;
        }
        let lastmodified = field("lastmodified").filter(|text| !text.is_empty());
        let shamir_threshold = match field("shamir_threshold") {
            Some(text) => Some(
                text.parse()
                    .map_err(|_| "`shamir_threshold` is not a number")?,
            ),
            None => None,
        };
        Ok(Self {
            key_groups,
            shamir_threshold: shamir_threshold.filter(|threshold| *threshold != 0),
            lastmodified: lastmodified.ok_or("`lastmodified` is missing")?,
            mac: field("mac").unwrap_or_default(),
            selection,
            mac_only_encrypted: field("mac_only_encrypted").is_some_and(|flag| flag == "true"),
            version: field("version").unwrap_or_default(),
        })
    }

    /// The block as sops 3.13 writes it: every mapping's keys sorted, empty fields left out.
    pub(crate) fn to_map(&self) -> Map {
        let mut entries: Vec<(String, Value)> = Vec::new();
        let str = |text: &str| Value::Str(text.to_owned());
        if let [group] = self.key_groups.as_slice() {
            entries.extend(group_entries(group, false));
        } else {
            let groups = self
                .key_groups
                .iter()
                .map(|group| Item::Value(Value::Map(sorted(group_entries(group, true)))));
            entries.push(("key_groups".to_owned(), Value::Seq(groups.collect())));
            let threshold = self.shamir_threshold.unwrap_or(self.key_groups.len());
            entries.push(("shamir_threshold".to_owned(), Value::Int(threshold as i64)));
        }
        entries.push(("lastmodified".to_owned(), str(&self.lastmodified)));
        entries.push(("mac".to_owned(), str(&self.mac)));
        if let Some(selection) = &self.selection {
            let (name, pattern) = selection.field();
            entries.push((name.to_owned(), str(pattern)));
        }
        if self.mac_only_encrypted {
            entries.push(("mac_only_encrypted".to_owned(), Value::Bool(true)));
        }
        entries.push(("version".to_owned(), str(&self.version)));
        sorted(entries)
    }

    /// The age recipients of each key group.
    pub(crate) fn recipients(&self) -> Vec<Vec<String>> {
        let group = |group: &KeyGroup| group.age.iter().map(|key| key.recipient.clone()).collect();
        self.key_groups.iter().map(group).collect()
    }
}

fn group_entries(group: &KeyGroup, in_key_groups: bool) -> Vec<(String, Value)> {
    let age = group.age.iter().map(|key| {
        let item = [
            ("enc".to_owned(), Value::Str(key.enc.clone())),
            ("recipient".to_owned(), Value::Str(key.recipient.clone())),
        ];
        Item::Value(Value::Map(item.into_iter().collect()))
    });
    let mut entries = group.foreign.clone();
    if !group.age.is_empty() || in_key_groups {
        entries.push(("age".to_owned(), Value::Seq(age.collect())));
    }
    // Inside key groups sops writes `hc_vault` even when empty (its field has no omitempty).
    if in_key_groups && !entries.iter().any(|(name, _)| name == "hc_vault") {
        entries.push(("hc_vault".to_owned(), Value::Seq(Vec::new())));
    }
    entries
}

fn sorted(mut entries: Vec<(String, Value)>) -> Map {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}
