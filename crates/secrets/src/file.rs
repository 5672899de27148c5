//! [`SopsFile`]: an encrypted file in memory, its key groups, and how it is read and written.

use crate::{
    cipher::DataKey,
    error::{Error, Result},
    format::{self, Format},
    keys::{Identities, Recipient},
    metadata::{AgeKey, KeyGroup, Metadata},
    shamir,
    tree::Tree,
};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Who can open a file: one or more key groups of age recipients.
///
/// With one group any of its recipients opens the file. With several, the data key is split
/// with Shamir's scheme and `shamir_threshold` groups (all, when `None`) are needed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recipients {
    /// The key groups, each a list of recipients.
    pub groups: Vec<Vec<Recipient>>,
    /// How many groups must take part in opening the file.
    pub shamir_threshold: Option<usize>,
}

impl Recipients {
    /// One key group: any of these recipients opens the file.
    pub fn any_of(recipients: impl IntoIterator<Item = Recipient>) -> Self {
        Self {
            groups: vec![recipients.into_iter().collect()],
            shamir_threshold: None,
        }
    }

    fn strings(&self) -> Vec<Vec<String>> {
        let group = |group: &Vec<Recipient>| group.iter().map(ToString::to_string).collect();
        self.groups.iter().map(group).collect()
    }
}

/// What [`SopsFile::update_keys`] changed, or would change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyChanges {
    /// Recipients that gain access, per key group.
    pub added: Vec<String>,
    /// Recipients (or foreign key types such as `pgp keys`) that lose access.
    pub removed: Vec<String>,
}

impl KeyChanges {
    /// Whether the file already has exactly these recipients.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// An encrypted SOPS file: the tree with its encrypted values, and the metadata.
///
/// Reading it needs no key; [`SopsFile::decrypt`] needs an identity.
#[derive(Clone, Debug)]
pub struct SopsFile {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) tree: Tree,
    pub(crate) metadata: Metadata,
    /// Spaces per YAML level when written (sops `stores.yaml.indent`).
    pub(crate) yaml_indent: usize,
}

impl SopsFile {
    /// Reads and parses a file, choosing the format from its name.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when it cannot be read, and the errors of [`SopsFile::parse`].
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(Error::io(path))?;
        Self::parse(path, Format::from_path(path), &bytes)
    }

    /// Parses encrypted content; `path` is where it came from (or will go), used in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Syntax`] for content that is not valid in the format,
    /// [`Error::NotEncrypted`] when there is no `sops` block and [`Error::Metadata`] when the
    /// block is malformed.
    pub fn parse(path: impl Into<PathBuf>, format: Format, content: &[u8]) -> Result<Self> {
        let path = path.into();
        let (tree, metadata) =
            format::parse_encrypted(format, content).map_err(|reason| Error::Syntax {
                path: path.clone(),
                format: format.name(),
                reason,
            })?;
        let Some(metadata) = metadata else {
            return Err(Error::NotEncrypted { path });
        };
        let metadata = Metadata::parse(&metadata).map_err(|reason| Error::Metadata {
            path: path.clone(),
            reason,
        })?;
        Ok(Self {
            path,
            format,
            tree,
            metadata,
            yaml_indent: format::YAML_INDENT,
        })
    }

    /// Where the file came from or will be written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The age recipients of each key group, as `age1…` strings.
    pub fn recipients(&self) -> Vec<Vec<String>> {
        self.metadata.recipients()
    }

    /// The `lastmodified` time of the last encryption, as written in the file.
    pub fn last_modified(&self) -> &str {
        &self.metadata.lastmodified
    }

    /// The sops version recorded in the file.
    pub fn version(&self) -> &str {
        &self.metadata.version
    }

    /// The encrypted file's content, in the layout of sops [`SOPS_VERSION`](crate::SOPS_VERSION).
    pub fn to_bytes(&self) -> Vec<u8> {
        format::emit_encrypted(
            self.format,
            &self.tree,
            &self.metadata.to_map(),
            self.yaml_indent,
        )
    }

    /// Writes the file in another format from now on, as `sops encrypt --output-type` does:
    /// the values and their ciphertexts stay the same.
    pub fn set_format(&mut self, format: Format) {
        self.format = format;
    }

    /// Writes YAML with `indent` spaces per level (at least 1) instead of sops's default of 4,
    /// as `.sops.yaml` `stores: {yaml: {indent: N}}` asks; the plaintext of
    /// [`SopsFile::decrypt`] and the files made from it follow the same setting.
    pub fn set_yaml_indent(&mut self, indent: usize) {
        self.yaml_indent = indent.max(1);
    }

    /// Writes the file to [`SopsFile::path`], replacing any existing file atomically (a
    /// temporary file next to it is renamed over it) and keeping its permissions.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the folder is not writable.
    pub fn write(&self) -> Result<()> {
        crate::write::replace(&self.path, &self.to_bytes(), crate::write::Mode::Keep)
    }

    /// The recipients [`SopsFile::update_keys`] would add and remove; needs no key.
    pub fn key_changes(&self, recipients: &Recipients) -> KeyChanges {
        let old = self.recipients();
        let new = recipients.strings();
        let mut changes = KeyChanges::default();
        for index in 0..old.len().max(new.len()) {
            let (old, new) = (old.get(index), new.get(index));
            changes.added.extend(missing_from(new, old));
            changes.removed.extend(missing_from(old, new));
        }
        for group in &self.metadata.key_groups {
            changes
                .removed
                .extend(group.foreign.iter().map(|(kind, _)| format!("{kind} keys")));
        }
        changes
    }

    /// sops `updatekeys`: gives the same data key to `recipients` instead of the current
    /// ones. Values, MAC, `lastmodified` and `version` stay as they are. Does nothing when
    /// the recipients are already these.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatchingIdentity`] when no identity opens the data key, and
    /// [`Error::Options`] for an empty group or an impossible threshold.
    pub fn update_keys(
        &mut self,
        identities: &Identities,
        recipients: &Recipients,
    ) -> Result<KeyChanges> {
        let changes = self.key_changes(recipients);
        if changes.is_empty() {
            return Ok(changes);
        }
        let data_key = self.data_key(identities)?;
        let (groups, threshold) = wrap_data_key(&self.path, &data_key, recipients)?;
        self.metadata.key_groups = groups;
        self.metadata.shamir_threshold = threshold;
        Ok(changes)
    }

    /// Opens the data key with the identities: any key of a single group, or enough groups'
    /// shares for the Shamir threshold.
    pub(crate) fn data_key(&self, identities: &Identities) -> Result<DataKey> {
        let groups = &self.metadata.key_groups;
        let shares: Vec<Option<Zeroizing<Vec<u8>>>> = groups
            .iter()
            .map(|group| group.age.iter().find_map(|key| identities.unwrap(&key.enc)))
            .collect();
        let opened: Vec<Zeroizing<Vec<u8>>> = shares.iter().flatten().cloned().collect();
        let needed = match groups.len() {
            1 => 1,
            count => self.metadata.shamir_threshold.unwrap_or(count),
        };
        if opened.len() < needed {
            return Err(Error::NoMatchingIdentity {
                path: self.path.clone(),
                recipients: self.recipients().concat(),
                details: self.why_closed(&shares, needed, identities),
            });
        }
        if groups.len() == 1 {
            return DataKey::from_slice(&opened[0])
                .ok_or_else(|| self.integrity("the data key has the wrong length"));
        }
        let secret = shamir::combine(&opened)
            .ok_or_else(|| self.integrity("the key shares do not combine"))?;
        DataKey::from_slice(&secret)
            .ok_or_else(|| self.integrity("the combined data key has the wrong length"))
    }

    /// Says who the file is encrypted to and, with several key groups, what each gave, as
    /// sops lists its per-group results.
    fn why_closed(
        &self,
        shares: &[Option<Zeroizing<Vec<u8>>>],
        needed: usize,
        identities: &Identities,
    ) -> String {
        let groups = &self.metadata.key_groups;
        let foreign_only = |group: &KeyGroup| group.age.is_empty() && !group.foreign.is_empty();
        let unusable = |keys: Vec<String>| {
            let which = match keys.len() {
                1 => "which capstan cannot use",
                _ => "none of which capstan can use",
            };
            format!("{}, {which}", keys.join(", "))
        };
        let no_identity = match identities.is_empty() {
            true => {
                "no age identity was found (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, SOPS_AGE_KEY_CMD \
                     or sops/age/keys.txt)"
            }
            false => "none of the identities matches",
        };
        let describe = |group: &KeyGroup| match foreign_only(group) {
            true => unusable(group.foreign_keys()),
            false => {
                let mut text = group.describe().join(", ");
                if group
                    .age
                    .iter()
                    .any(|key| key.recipient.starts_with("age1pq1"))
                {
                    text.push_str(
                        " (post-quantum age recipients need an identity capstan cannot use)",
                    );
                }
                text
            }
        };
        if let [group] = groups.as_slice() {
            if foreign_only(group) {
                return format!("it is encrypted to {}", describe(group));
            }
            return format!("it is encrypted to {}; {no_identity}", describe(group));
        }
        let results: Vec<String> = groups
            .iter()
            .zip(shares)
            .enumerate()
            .map(|(index, (group, share))| {
                let result = match (share, foreign_only(group)) {
                    (Some(_), _) => "opened".to_owned(),
                    (None, true) => "capstan cannot use these keys".to_owned(),
                    (None, false) => no_identity.replace("none of the identities", "no identity"),
                };
                format!("group {} ({}): {result}", index + 1, describe(group))
            })
            .collect();
        let opened = shares.iter().flatten().count();
        format!(
            "{needed} of {} key groups are needed and {opened} opened: {}",
            groups.len(),
            results.join("; ")
        )
    }

    pub(crate) fn mac_failure(&self, what: &str) -> Error {
        Error::Integrity {
            path: self.path.clone(),
            what: what.to_owned(),
            mac: true,
        }
    }

    pub(crate) fn integrity(&self, what: &str) -> Error {
        Error::Integrity {
            path: self.path.clone(),
            what: what.to_owned(),
            mac: false,
        }
    }
}

/// The recipients of group `a` that group `b` lacks.
fn missing_from(a: Option<&Vec<String>>, b: Option<&Vec<String>>) -> Vec<String> {
    let b = b.map(Vec::as_slice).unwrap_or_default();
    a.into_iter()
        .flatten()
        .filter(|r| !b.contains(r))
        .cloned()
        .collect()
}

/// Encrypts the data key (or, with several groups, one Shamir share per group) to every
/// recipient. Returns the key groups and the threshold to record.
pub(crate) fn wrap_data_key(
    path: &Path,
    data_key: &DataKey,
    recipients: &Recipients,
) -> Result<(Vec<KeyGroup>, Option<usize>)> {
    let invalid = |reason: String| Error::Options {
        path: path.to_owned(),
        reason,
    };
    let count = recipients.groups.len();
    if count == 0 || recipients.groups.iter().any(Vec::is_empty) {
        return Err(invalid(
            "every key group needs at least one age recipient".to_owned(),
        ));
    }
    let threshold = recipients.shamir_threshold.unwrap_or(count);
    if count > 1 && !(2..=count).contains(&threshold) {
        return Err(invalid(format!(
            "a Shamir threshold of {threshold} does not fit {count} key groups"
        )));
    }
    if count > 255 {
        return Err(invalid("more than 255 key groups".to_owned()));
    }
    let payloads = if count == 1 {
        vec![Zeroizing::new(data_key.as_bytes().to_vec())]
    } else {
        shamir::split(data_key.as_bytes(), count, threshold)
    };
    let groups = recipients
        .groups
        .iter()
        .zip(&payloads)
        .map(|(group, payload)| KeyGroup {
            age: group
                .iter()
                .map(|recipient| AgeKey {
                    recipient: recipient.to_string(),
                    enc: recipient.wrap(payload),
                })
                .collect(),
            foreign: Vec::new(),
        })
        .collect();
    Ok((groups, (count > 1).then_some(threshold)))
}
