//! Secrets in git, the SOPS way: files encrypted to age recipients that the real `sops` tool
//! opens, and that this crate opens when `sops` wrote them.
//!
//! ```
//! use capstan_secrets::{EncryptOptions, Format, Identities, Identity, Recipients, SopsFile};
//!
//! # fn main() -> Result<(), capstan_secrets::Error> {
//! let identity = Identity::generate();
//! let options = EncryptOptions {
//!     recipients: Recipients::any_of([identity.recipient()]),
//!     ..EncryptOptions::default()
//! };
//! let plaintext = b"db:\n    password: hunter2\n    port_unencrypted: 5432\n";
//! let file = SopsFile::encrypt("secrets.yaml", Format::Yaml, plaintext, &options)?;
//! let encrypted = String::from_utf8(file.to_bytes()).unwrap();
//! assert!(encrypted.contains("password: ENC[AES256_GCM,data:"));
//! assert!(encrypted.contains("port_unencrypted: 5432"));
//!
//! // Reading needs no key; decrypting verifies every value and the MAC.
//! let file = SopsFile::parse("secrets.yaml", Format::Yaml, encrypted.as_bytes())?;
//! let identities: Identities = [identity].into_iter().collect();
//! let decrypted = file.decrypt(&identities)?;
//! assert_eq!(decrypted.to_plaintext().as_slice(), plaintext);
//! assert_eq!(decrypted.extract(r#"["db"]["password"]"#)?.as_slice(), b"hunter2");
//! # Ok(())
//! # }
//! ```
//!
//! # What it covers
//!
//! - YAML (several documents, comments kept and encrypted like sops does), JSON, dotenv, INI
//!   and binary files; values of type `str`, `int`, `float`, `bool`, `bytes` and `time`;
//! - age X25519 recipients, one key group or several with a Shamir threshold;
//! - the `encrypted_*`/`unencrypted_*` suffix, regex and comment-regex options, and
//!   `mac_only_encrypted`; the MAC is verified on every decryption;
//! - identities given in code or found the sops way ([`Identities::from_env`]:
//!   `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `$XDG_CONFIG_HOME/sops/age/keys.txt`);
//! - `.sops.yaml` creation rules ([`Config`]), and adding a recipient to them in place
//!   ([`Config::add_recipient`]);
//! - the operations behind `sops edit` ([`Decrypted::edit`], which keeps the ciphertext of
//!   unchanged values), `updatekeys` ([`SopsFile::update_keys`]), `rotate`
//!   ([`Decrypted::rotate`]), age key generation ([`Identity::generate`]) and a repository
//!   [`check`].
//!
//! # Features
//!
//! - `deploy`: `SopsObjects`, which decrypts a stage's SOPS-encrypted objects in memory for
//!   a `capstan_apply::Deployer`, so that a program deploys such a stage with the libraries
//!   alone (`examples/deploy-sops.rs`). `capstan-apply` knows nothing of age; this crate
//!   depends on it, never the other way round.
//! - `operator`: `hand_over`, the key hand-over to the sops-secrets-operator in a cluster
//!   (its key Secret, a rollout restart, the rollout wait) over `capstan-kube`.
//!
//! Files are written in the layout of sops [`SOPS_VERSION`] (3.13: metadata keys sorted,
//! `lastmodified` double-quoted, 4-space YAML indentation, tab-indented JSON), and that
//! version is recorded in new files. Files from every earlier layout are read.
//!
//! The library never prints, never reads the terminal, and never writes plaintext to disk.
//! Errors name the file and, for values, their key path, but never contain a value, a data
//! key or an identity. Decrypted trees and data keys are wiped from memory when dropped.
//!
//! # Why not the `rops` crate
//!
//! `rops` (0.1.7) implements the same value encryption, but its API cannot produce files
//! that are byte-compatible with sops: it drops `version` and comments, has no key groups or
//! Shamir, writes YAML through serde_yaml (2-space indentation, unquoted `lastmodified`,
//! which sops 3.13 cannot load), types YAML scalars differently from go-yaml (timestamps,
//! octal), reads identities only from its own environment variables and key file, always
//! rotates the data key when a recipient is removed, and keeps its data-key type private. So
//! this crate implements the format on the primitives directly: `aes-gcm` with sops's
//! 32-byte nonces, `sha2`, `age` for the key envelopes, and `saphyr-parser` for YAML events
//! (from which comments and go-yaml's scalar typing are recovered). `rops` still serves as
//! the second implementation: the `rops_interop` test has each open the other's files, and the
//! `rops` command-line tool is the speed peer (`benches/compare-rops.sh`).

mod check;
mod cipher;
mod config;
mod config_edit;
mod crypt;
mod dotenv;
mod error;
mod file;
mod format;
mod ini;
mod json;
mod keys;
mod metadata;
#[cfg(feature = "deploy")]
mod objects;
#[cfg(feature = "operator")]
mod operator;
mod shamir;
mod time;
mod tree;
mod walk;
mod write;
mod yaml;

pub use crate::{
    check::{CheckOptions, CheckReport, Finding, Problem, check},
    config::{Config, CreationRule},
    crypt::{DecryptOptions, Decrypted, Edit, EncryptOptions},
    error::{Error, Result},
    file::{KeyChanges, Recipients, SopsFile},
    format::Format,
    keys::{Identities, Identity, KeySources, Recipient},
    metadata::SOPS_VERSION,
    tree::{Entry, Item, Map, PathStep, Tree, Value, parse_path},
    walk::Selection,
    write::{replace_private, write_new_private},
};

#[cfg(feature = "deploy")]
pub use crate::objects::SopsObjects;
#[cfg(feature = "operator")]
pub use crate::operator::{HandOverEvent, HandOverPlan, HandedOver, OperatorOptions, hand_over};
