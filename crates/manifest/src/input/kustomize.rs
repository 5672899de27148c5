//! Folders with a kustomization: loaded as `kustomize build` loads them, or refused.
//!
//! A GitOps tree is deployed by Argo CD (or a person) with `kustomize build`. Loading the same
//! folder file by file would deploy something else whenever the kustomization does more than
//! list files: a listed file that is missing would go unnoticed (and its objects be pruned), an
//! unlisted file would be deployed, and a transformer such as `namespace:` ignored. So capstan
//! loads exactly what the kustomization lists, and refuses every field it does not apply.

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Walker;
use crate::ProblemKind;

/// The names kustomize looks for, in its order; a folder with more than one is an error.
const FILE_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

const ADVICE: &str = "use a stage `command: [kustomize, build, DIR]` instead";

/// The fields of a kustomization that capstan applies itself.
#[derive(Deserialize)]
struct Kustomization {
    resources: Option<Vec<String>>,
    generators: Option<Vec<String>>,
    #[serde(flatten)]
    other: serde_yaml::Mapping,
}

/// A ksops generator: SOPS-encrypted manifests, which capstan decrypts itself.
#[derive(Deserialize)]
struct Generator {
    kind: Option<String>,
    files: Option<Vec<String>>,
    #[serde(flatten)]
    other: serde_yaml::Mapping,
}

/// The kustomization files in `dir`.
pub(super) fn files_in(dir: &Path) -> Vec<PathBuf> {
    FILE_NAMES
        .iter()
        .map(|name| dir.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// Whether `path` names a kustomization file.
pub(super) fn is_file_name(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| FILE_NAMES.contains(&name))
}

/// kustomize takes a resource it cannot find on disk for a URL; capstan loads no URLs.
fn is_remote(entry: &str) -> bool {
    entry.contains("://") || entry.starts_with("git@") || entry.starts_with("github.com/")
}

/// Why a listed path cannot be loaded.
fn unreadable(what: &str, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("{what} does not exist"),
        _ => format!("{what} cannot be read: {error}"),
    }
}

/// Whether `path` is in or below `dir`, as kustomize's default load restrictor requires of files.
fn is_within(path: &Path, dir: &Path) -> bool {
    match (fs::canonicalize(path), fs::canonicalize(dir)) {
        (Ok(path), Ok(dir)) => path.starts_with(dir),
        _ => false,
    }
}

impl Walker {
    /// A folder with a kustomization: exactly its `resources` (files, and folders that have a
    /// kustomization of their own), then the files its ksops generators decrypt.
    pub(super) fn kustomization(&mut self, dir: &Path) {
        let found = files_in(dir);
        let [file] = found.as_slice() else {
            let names: Vec<_> = found.iter().filter_map(|path| path.file_name()).collect();
            let message = format!(
                "holds {names:?}: kustomize refuses a folder with more than one kustomization file"
            );
            return self.problem(dir, ProblemKind::Configuration, message);
        };
        let Some(kustomization) = self.configuration::<Kustomization>(file) else {
            return;
        };
        if self.refuse_other_fields(file, &kustomization.other, &[]) {
            return;
        }
        for (index, entry) in kustomization.resources.iter().flatten().enumerate() {
            self.resource(file, dir, &format!("resources[{index}] `{entry}`"), entry);
        }
        for (index, entry) in kustomization.generators.iter().flatten().enumerate() {
            self.generator(file, dir, &format!("generators[{index}] `{entry}`"), entry);
        }
    }

    /// Reads a configuration file, or records why it cannot be read.
    fn configuration<T: DeserializeOwned>(&mut self, file: &Path) -> Option<T> {
        let parsed = fs::read_to_string(file)
            .map_err(|error| error.to_string())
            .and_then(|text| serde_yaml::from_str(&text).map_err(|error| error.to_string()));
        parsed
            .map_err(|message| self.problem(file, ProblemKind::Configuration, message))
            .ok()
    }

    /// Records a problem for each field other than `apiVersion`, `kind` and the `allowed`
    /// ones; whether there was any.
    fn refuse_other_fields(
        &mut self,
        file: &Path,
        fields: &serde_yaml::Mapping,
        allowed: &[&str],
    ) -> bool {
        let mut refused = false;
        for field in fields.keys() {
            let name = match field.as_str() {
                Some("apiVersion" | "kind") => continue,
                Some(name) if allowed.contains(&name) => continue,
                Some(name) => name.to_owned(),
                None => format!("{field:?}"),
            };
            let message = format!(
                "capstan does not apply `{name}`, so it would deploy something else than \
                 `kustomize build`: {ADVICE}"
            );
            self.problem(file, ProblemKind::Configuration, message);
            refused = true;
        }
        refused
    }

    fn resource(&mut self, file: &Path, dir: &Path, what: &str, entry: &str) {
        let path = dir.join(entry);
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => {
                if files_in(&path).is_empty() {
                    let message = format!(
                        "{what} is a folder without a kustomization file, which kustomize refuses"
                    );
                    self.problem(file, ProblemKind::Configuration, message);
                } else {
                    self.within(&path, Self::kustomization);
                }
            }
            Ok(_) if !is_within(&path, dir) => {
                let message = format!(
                    "{what} is outside the kustomization's folder, which kustomize refuses to load"
                );
                self.problem(file, ProblemKind::Configuration, message);
            }
            Ok(_) => self.file(path),
            Err(_) if is_remote(entry) => {
                let message = format!("{what} is remote; capstan loads local files only: {ADVICE}");
                self.problem(file, ProblemKind::Configuration, message);
            }
            Err(error) => {
                self.problem(file, ProblemKind::Configuration, unreadable(what, &error));
            }
        }
    }

    /// A ksops generator: the encrypted files it lists, which ksops reads from the
    /// kustomization's folder (kustomize runs it there).
    fn generator(&mut self, file: &Path, dir: &Path, what: &str, entry: &str) {
        let path = dir.join(entry);
        let not_ksops = |walker: &mut Self| {
            let message = format!(
                "{what} is not a ksops generator (a file of kind `ksops`), the only kind capstan \
                 runs: {ADVICE}"
            );
            walker.problem(file, ProblemKind::Configuration, message);
        };
        match fs::metadata(&path) {
            Ok(metadata) if metadata.is_dir() => return not_ksops(self),
            Ok(_) => {}
            Err(error) => {
                return self.problem(file, ProblemKind::Configuration, unreadable(what, &error));
            }
        }
        let Some(generator) = self.configuration::<Generator>(&path) else {
            return;
        };
        if generator.kind.as_deref() != Some("ksops") {
            return not_ksops(self);
        }
        if self.refuse_other_fields(&path, &generator.other, &["metadata"]) {
            return;
        }
        for (index, listed) in generator.files.iter().flatten().enumerate() {
            let encrypted = dir.join(listed);
            if encrypted.is_file() {
                self.file(encrypted);
            } else {
                let message = format!(
                    "files[{index}] `{listed}` does not exist in `{}`, the kustomization's folder, \
                     where ksops reads it from",
                    dir.display()
                );
                self.problem(&path, ProblemKind::Configuration, message);
            }
        }
    }
}
