//! Secrets in git, the SOPS way: files encrypted to age recipients that the real `sops` tool
//! opens, and that this crate opens when `sops` wrote them.
//!
//! # What it will expose
//!
//! - reading and writing SOPS files (YAML, JSON) with age recipients, key groups and Shamir
//!   thresholds, the `encrypted_*`/`unencrypted_*` selection options and `mac_only_encrypted`;
//!   the MAC is verified on every decryption;
//! - identities passed in code or found the way `sops` finds them (`SOPS_AGE_KEY`,
//!   `SOPS_AGE_KEY_FILE`, the user's `sops/age/keys.txt`);
//! - `.sops.yaml` creation rules;
//! - editing, `updatekeys`, data-key rotation, and the whole age key hand-over to the
//!   sops-secrets-operator as one operation that cannot lose a secret.
//!
//! Plaintext never reaches an error message, a log line or a file that outlives the process.
