//! Encrypting and decrypting the values of a tree, and the MAC over them.

use crate::{
    cipher::{self, DataKey, OpenError, ValueCipher, random},
    error::{Error, Result},
    file::{Recipients, SopsFile, wrap_data_key},
    format::{self, Format},
    keys::{Identities, Recipient},
    metadata::{Metadata, SOPS_VERSION},
    time,
    tree::{self, Item, Tree, Value},
    walk::{self, Leaf, Rules, Selection},
};
use sha2::{Digest as _, Sha256, Sha512};
use std::{collections::HashMap, path::PathBuf};
use zeroize::{Zeroize as _, Zeroizing};

/// How to encrypt a new file: its recipients and which values to encrypt.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncryptOptions {
    /// Who can open the file.
    pub recipients: Recipients,
    /// Which values are encrypted; by default all but those under `*_unencrypted` keys.
    pub selection: Selection,
    /// Leave the values that stay plaintext out of the MAC, so they can change without
    /// breaking it (sops `mac_only_encrypted`).
    pub mac_only_encrypted: bool,
}

/// How to decrypt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptOptions {
    /// Check the MAC (the default). Only for callers that must read files whose structure
    /// was legitimately re-serialised; every value stays authenticated on its own.
    pub verify_mac: bool,
}

impl Default for DecryptOptions {
    fn default() -> Self {
        Self { verify_mac: true }
    }
}

/// The result of [`Decrypted::edit`].
#[derive(Debug)]
#[must_use]
pub enum Edit {
    /// The new content has the same tree: nothing needs writing.
    Unchanged,
    /// The file, encrypted again; unchanged values keep their ciphertext.
    Changed(Box<SopsFile>),
}

/// The IVs of the values seen while decrypting, keyed by a digest of their path, type and
/// plaintext: encrypting the same value again with the same key gives the same ciphertext.
type IvStash = HashMap<[u8; 32], [u8; 32]>;

fn stash_key(aad: &str, kind: &str, plaintext: &[u8]) -> [u8; 32] {
    let mut digest = Sha256::new();
    for part in [aad.as_bytes(), b"\0", kind.as_bytes(), b"\0", plaintext] {
        digest.update(part);
    }
    digest.finalize().into()
}

fn mac_hasher(mac_only_encrypted: bool) -> Sha512 {
    let mut hasher = Sha512::new();
    if mac_only_encrypted {
        // sha256("sops"): sops marks the reduced MAC this way.
        hasher.update(Sha256::digest(b"sops"));
    }
    hasher
}

fn mac_hex(hasher: Sha512) -> String {
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect()
}

/// A decrypted file: the plaintext tree plus what re-encrypting it needs. The plaintext is
/// wiped from memory when this is dropped.
pub struct Decrypted {
    path: PathBuf,
    format: Format,
    yaml_indent: usize,
    tree: Tree,
    metadata: Metadata,
    data_key: DataKey,
    stash: IvStash,
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        self.tree.zeroize();
    }
}

impl std::fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decrypted")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SopsFile {
    /// Encrypts plaintext content to a new file at `path` (not written yet).
    ///
    /// # Errors
    ///
    /// [`Error::Syntax`] for content that is not valid in the format,
    /// [`Error::AlreadyEncrypted`] when it has a top-level `sops` key, and
    /// [`Error::Options`] for unusable options.
    pub fn encrypt(
        path: impl Into<PathBuf>,
        format: Format,
        plaintext: &[u8],
        options: &EncryptOptions,
    ) -> Result<Self> {
        let path = path.into();
        let tree = format::parse_plain(format, plaintext).map_err(|reason| Error::Syntax {
            path: path.clone(),
            format: format.name(),
            reason,
        })?;
        Self::encrypt_tree(path, format, tree, options)
    }

    /// Encrypts a tree built in memory, so plaintext never has to be written anywhere.
    ///
    /// # Errors
    ///
    /// As [`SopsFile::encrypt`].
    pub fn encrypt_tree(
        path: impl Into<PathBuf>,
        format: Format,
        tree: Tree,
        options: &EncryptOptions,
    ) -> Result<Self> {
        let path = path.into();
        if format::has_metadata_key(format, &tree) {
            return Err(Error::AlreadyEncrypted { path });
        }
        let invalid = |reason: String| Error::Options {
            path: path.clone(),
            reason,
        };
        if tree.documents.is_empty() {
            return Err(invalid("there is no document to encrypt".to_owned()));
        }
        let rules = options
            .selection
            .compile()
            .map_err(|error| invalid(format!("invalid regular expression: {error}")))?;
        let data_key = DataKey::generate();
        let (key_groups, shamir_threshold) = wrap_data_key(&path, &data_key, &options.recipients)?;
        let metadata = Metadata {
            key_groups,
            shamir_threshold,
            lastmodified: String::new(),
            mac: String::new(),
            // Since sops 3.11 binary files record no rule; their one value is always encrypted.
            selection: (format != Format::Binary).then(|| options.selection.clone()),
            mac_only_encrypted: options.mac_only_encrypted,
            version: SOPS_VERSION.to_owned(),
        };
        seal(Sealing {
            path,
            format,
            yaml_indent: format::YAML_INDENT,
            tree,
            metadata,
            data_key: &data_key,
            rules: &rules,
            stash: &IvStash::new(),
        })
    }

    /// Decrypts every value and verifies the MAC.
    ///
    /// # Errors
    ///
    /// [`Error::NoMatchingIdentity`] when no identity opens the data key, and
    /// [`Error::Integrity`] when a value, the MAC or the data key fails authentication.
    pub fn decrypt(&self, identities: &Identities) -> Result<Decrypted> {
        self.decrypt_with(identities, &DecryptOptions::default())
    }

    /// [`SopsFile::decrypt`] with options.
    ///
    /// # Errors
    ///
    /// As [`SopsFile::decrypt`].
    pub fn decrypt_with(
        &self,
        identities: &Identities,
        options: &DecryptOptions,
    ) -> Result<Decrypted> {
        let data_key = self.data_key(identities)?;
        let cipher = data_key.cipher();
        let rules = self.rules()?;
        let mut tree = self.tree.clone();
        // An encrypted comment inside a list is stored as a list item (see `seal`); it is a
        // comment again once read.
        walk::for_each_item(&mut tree, &mut |item| {
            if let Item::Value(Value::Str(text)) = item
                && cipher::is_comment_envelope(text)
            {
                *item = Item::Comment(std::mem::take(text));
            }
        });
        let mut stash = IvStash::new();
        let mut hasher = mac_hasher(self.metadata.mac_only_encrypted);
        let mac_only = self.metadata.mac_only_encrypted;
        walk::walk(&mut tree, &rules, &mut |leaf, aad, encrypted| {
            match leaf {
                Leaf::Value(value) => {
                    if encrypted {
                        self.open_value(&cipher, value, aad, &mut stash)?;
                    }
                    if (encrypted || !mac_only)
                        && let Some((bytes, _)) =
                            cipher::typed_bytes(value, self.format == Format::Binary)
                    {
                        hasher.update(&bytes);
                    }
                }
                Leaf::Comment(text) if encrypted && cipher::is_envelope(text) => {
                    // sops keeps comments it cannot decrypt (files from before comment encryption).
                    if let Ok(opened) = cipher.open(text, aad.as_bytes())
                        && opened.kind == "comment"
                        && let Ok(plain) = String::from_utf8(opened.plaintext.to_vec())
                    {
                        stash.insert(stash_key(aad, "comment", plain.as_bytes()), opened.iv);
                        *text = plain;
                    }
                }
                Leaf::Comment(_) => {}
            }
            Ok::<_, Error>(())
        })?;
        if options.verify_mac {
            self.verify_mac(&cipher, mac_hex(hasher))?;
        }
        Ok(Decrypted {
            path: self.path.clone(),
            format: self.format,
            yaml_indent: self.yaml_indent,
            tree,
            metadata: self.metadata.clone(),
            data_key,
            stash,
        })
    }

    fn rules(&self) -> Result<Rules> {
        let selection = self.metadata.selection.clone().unwrap_or_default();
        selection.compile().map_err(|error| Error::Metadata {
            path: self.path.clone(),
            reason: format!("invalid regular expression: {error}"),
        })
    }

    fn open_value(
        &self,
        cipher: &ValueCipher,
        value: &mut Value,
        aad: &str,
        stash: &mut IvStash,
    ) -> Result<()> {
        match value {
            Value::Null => Ok(()),
            empty if is_empty(empty) => Ok(()),
            Value::Str(text) => {
                let opened =
                    cipher
                        .open(text, aad.as_bytes())
                        .map_err(|error| match error {
                            OpenError::Malformed => self
                                .integrity(&format!("the value at `{aad}` is not a sops envelope")),
                            OpenError::Forged => self
                                .integrity(&format!("the value at `{aad}` does not authenticate")),
                        })?;
                stash.insert(stash_key(aad, &opened.kind, &opened.plaintext), opened.iv);
                *value = cipher::typed_value(opened.plaintext, &opened.kind).ok_or_else(|| {
                    self.integrity(&format!("the value at `{aad}` does not match its type"))
                })?;
                Ok(())
            }
            _ => Err(self.integrity(&format!(
                "the value at `{aad}` should be encrypted but is not"
            ))),
        }
    }

    fn verify_mac(&self, cipher: &ValueCipher, computed: String) -> Result<()> {
        if self.metadata.mac.is_empty() {
            return Err(self.mac_failure("the file has no MAC"));
        }
        let aad = time::mac_additional_data(&self.metadata.lastmodified).ok_or_else(|| {
            Error::Metadata {
                path: self.path.clone(),
                reason: "`lastmodified` is not an RFC 3339 time".to_owned(),
            }
        })?;
        let stored = cipher
            .open(&self.metadata.mac, aad.as_bytes())
            .map_err(|_| self.mac_failure("the MAC does not decrypt (the metadata was altered)"))?;
        if stored.plaintext.as_slice() == computed.as_bytes() {
            Ok(())
        } else {
            Err(self.mac_failure("MAC mismatch (the values or their order were altered)"))
        }
    }
}

struct Sealing<'a> {
    path: PathBuf,
    format: Format,
    yaml_indent: usize,
    tree: Tree,
    metadata: Metadata,
    data_key: &'a DataKey,
    rules: &'a Rules,
    stash: &'a IvStash,
}

/// Encrypts a plaintext tree, sets `lastmodified` to now and computes the MAC.
fn seal(mut job: Sealing<'_>) -> Result<SopsFile> {
    let cipher = job.data_key.cipher();
    let mac_only = job.metadata.mac_only_encrypted;
    let bytes_as_str = job.format == Format::Binary;
    let mut hasher = mac_hasher(mac_only);
    let iv_for = |aad: &str, kind: &str, plaintext: &[u8]| {
        job.stash
            .get(&stash_key(aad, kind, plaintext))
            .copied()
            .unwrap_or_else(random)
    };
    walk::walk(&mut job.tree, job.rules, &mut |leaf, aad, encrypt| {
        match leaf {
            Leaf::Value(value) => {
                let empty = is_empty(value);
                let Some((bytes, kind)) = cipher::typed_bytes(value, bytes_as_str) else {
                    return Ok(());
                };
                if encrypt || !mac_only {
                    hasher.update(&bytes);
                }
                if encrypt && !empty {
                    let envelope =
                        cipher.seal(&bytes, aad.as_bytes(), kind, &iv_for(aad, kind, &bytes));
                    drop(bytes);
                    value.zeroize();
                    *value = Value::Str(envelope);
                }
            }
            Leaf::Comment(text) if encrypt && !text.is_empty() => {
                let envelope = cipher.seal(
                    text.as_bytes(),
                    aad.as_bytes(),
                    "comment",
                    &iv_for(aad, "comment", text.as_bytes()),
                );
                text.zeroize();
                *text = envelope;
            }
            Leaf::Comment(_) => {}
        }
        Ok::<_, Error>(())
    })?;
    // As sops does, an encrypted comment inside a list is written as a list item, `-
    // ENC[…,type:comment]`: YAML has no way to attach a comment to an item.
    walk::for_each_item(&mut job.tree, &mut |item| {
        if let Item::Comment(text) = item
            && cipher::is_comment_envelope(text)
        {
            *item = Item::Value(Value::Str(std::mem::take(text)));
        }
    });
    job.metadata.lastmodified = time::now();
    let mac = Zeroizing::new(mac_hex(hasher));
    job.metadata.mac = cipher.seal(
        mac.as_bytes(),
        job.metadata.lastmodified.as_bytes(),
        "str",
        &random(),
    );
    Ok(SopsFile {
        path: job.path,
        format: job.format,
        yaml_indent: job.yaml_indent,
        tree: job.tree,
        metadata: job.metadata,
    })
}

/// sops never encrypts an empty string: the envelope format cannot hold empty data. The same
/// goes for empty bytes.
fn is_empty(value: &Value) -> bool {
    matches!(value, Value::Str(text) if text.is_empty())
        || matches!(value, Value::Bytes(bytes) if bytes.is_empty())
}

/// Orders `major.minor.patch` versions; anything unparsable counts as oldest.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-', '+'])
        .take(3)
        .map(|part| part.parse().unwrap_or(0))
        .collect()
}

impl Decrypted {
    /// The plaintext tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Prints the plaintext, and writes the files made from it, in another format from now
    /// on, as `sops decrypt --output-type` does.
    pub fn set_format(&mut self, format: Format) {
        self.format = format;
    }

    /// The plaintext in the file's format, as `sops decrypt` prints it (binary files give
    /// their raw content).
    pub fn to_plaintext(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(format::emit_plain(
            self.format,
            &self.tree,
            self.yaml_indent,
        ))
    }

    /// One value, as `sops decrypt --extract '["a"]["b"][0]'` prints it: strings raw with no
    /// line break, other values in the file's format.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchPath`] when the path is malformed or names nothing.
    pub fn extract(&self, path: &str) -> Result<Zeroizing<Vec<u8>>> {
        let missing = || Error::NoSuchPath {
            path: self.path.clone(),
            tree_path: path.to_owned(),
        };
        let steps = tree::parse_path(path).ok_or_else(missing)?;
        let value = self.tree.get(&steps).ok_or_else(missing)?;
        Ok(Zeroizing::new(format::emit_value(
            self.format,
            value,
            self.yaml_indent,
        )))
    }

    /// Takes edited plaintext (in the file's format) and encrypts it again with the same data
    /// key, as `sops edit` does after the editor closes.
    ///
    /// # Errors
    ///
    /// [`Error::Syntax`] when the content is not valid (the message gives a position, never
    /// the text), [`Error::AlreadyEncrypted`] when it gained a `sops` key.
    pub fn edit(&self, plaintext: &[u8]) -> Result<Edit> {
        let tree = format::parse_plain(self.format, plaintext).map_err(|reason| Error::Syntax {
            path: self.path.clone(),
            format: self.format.name(),
            reason,
        })?;
        if format::has_metadata_key(self.format, &tree) {
            return Err(Error::AlreadyEncrypted {
                path: self.path.clone(),
            });
        }
        if tree == self.tree {
            return Ok(Edit::Unchanged);
        }
        self.reencrypt(tree)
            .map(|file| Edit::Changed(Box::new(file)))
    }

    /// Encrypts a new tree with the same data key and recipients. Values that did not change
    /// keep their ciphertext; `lastmodified` and the MAC are renewed, and `version` moves up
    /// to [`SOPS_VERSION`](crate::SOPS_VERSION) if it was older.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyEncrypted`] when the tree has a top-level `sops` key.
    pub fn reencrypt(&self, tree: Tree) -> Result<SopsFile> {
        if format::has_metadata_key(self.format, &tree) {
            return Err(Error::AlreadyEncrypted {
                path: self.path.clone(),
            });
        }
        let mut metadata = self.metadata.clone();
        if version_key(&metadata.version) < version_key(SOPS_VERSION) {
            metadata.version = SOPS_VERSION.to_owned();
        }
        self.seal_with(tree, metadata, &self.data_key)
    }

    /// sops `rotate`: a new data key for the same recipients, every value encrypted again.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when the file also has non-age keys (PGP, KMS…), which capstan
    /// cannot give the new data key to.
    pub fn rotate(&self) -> Result<SopsFile> {
        self.rotate_to(&self.recipients()?)
    }

    /// The file's recipients, parsed, with its Shamir threshold: where [`Decrypted::rotate`]
    /// starts from, for callers that add or remove some (sops `rotate --add-age/--rm-age`).
    ///
    /// # Errors
    ///
    /// [`Error::Options`] when the file also has non-age keys (PGP, KMS…), which capstan
    /// cannot give a data key to.
    pub fn recipients(&self) -> Result<Recipients> {
        if self
            .metadata
            .key_groups
            .iter()
            .any(|group| !group.foreign.is_empty())
        {
            return Err(Error::Options {
                path: self.path.clone(),
                reason: "the file also has non-age keys, which capstan cannot re-key".to_owned(),
            });
        }
        let groups = self
            .metadata
            .recipients()
            .iter()
            .map(|group| {
                group
                    .iter()
                    .map(|r| r.parse())
                    .collect::<Result<Vec<Recipient>>>()
            })
            .collect::<Result<_>>()?;
        Ok(Recipients {
            groups,
            shamir_threshold: self.metadata.shamir_threshold,
        })
    }

    /// [`Decrypted::rotate`] to other recipients: a new data key for them, every value
    /// encrypted again.
    ///
    /// # Errors
    ///
    /// [`Error::Options`] for an empty key group or an impossible threshold.
    pub fn rotate_to(&self, recipients: &Recipients) -> Result<SopsFile> {
        let data_key = DataKey::generate();
        let mut metadata = self.metadata.clone();
        (metadata.key_groups, metadata.shamir_threshold) =
            wrap_data_key(&self.path, &data_key, recipients)?;
        self.seal_with(self.tree.clone(), metadata, &data_key)
    }

    fn seal_with(&self, tree: Tree, metadata: Metadata, data_key: &DataKey) -> Result<SopsFile> {
        let selection = metadata.selection.clone().unwrap_or_default();
        let rules = selection.compile().map_err(|error| Error::Metadata {
            path: self.path.clone(),
            reason: format!("invalid regular expression: {error}"),
        })?;
        seal(Sealing {
            path: self.path.clone(),
            format: self.format,
            yaml_indent: self.yaml_indent,
            tree,
            metadata,
            data_key,
            rules: &rules,
            stash: &self.stash,
        })
    }
}
