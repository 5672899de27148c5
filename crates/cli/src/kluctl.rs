//! kluctl projects on the command line: `-a name=value`, and SOPS-encrypted vars files
//! decrypted in memory with the identities sops would find, as the stage's objects are.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use capstan_manifest::{Decrypt, Templating};
use capstan_secrets::{Format, Identities, SopsFile};
use clap::Args;

/// The options for kluctl projects that every command taking a stage accepts.
#[derive(Debug, Args)]
pub(crate) struct KluctlArgs {
    /// Load this kluctl project folder instead of a stage, templated (kluctl's
    /// --project-dir; the same as -f DIR)
    #[arg(long, value_name = "DIR", conflicts_with_all = ["filename", "stage", "project"])]
    pub(crate) project_dir: Option<PathBuf>,

    /// A kluctl project's deployment argument, seen by its templates as `args.NAME`
    /// (repeatable)
    #[arg(long = "arg", short = 'a', value_name = "NAME=VALUE", value_parser = parse_arg)]
    pub(crate) args: Vec<(String, String)>,
}

/// Parses `-a name=value`.
fn parse_arg(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("`{text}` is not NAME=VALUE")),
    }
}

/// How a command renders kluctl projects: `args` from `-a`, `target` the stage's name.
pub(crate) fn templating(args: &[(String, String)], target: Option<&str>) -> Templating {
    let mut templating = Templating::default();
    templating.args = args.iter().cloned().collect();
    templating.target = target.map(str::to_owned);
    templating.decrypt = Some(Arc::new(SopsVars::default()));
    templating
}

/// Decrypts vars files with `capstan-secrets`, looking the identities up on first use.
#[derive(Default)]
struct SopsVars {
    identities: OnceLock<Result<Identities, String>>,
}

impl Decrypt for SopsVars {
    fn decrypt(&self, path: &Path, text: &str) -> Result<String, String> {
        let identities = self
            .identities
            .get_or_init(|| Identities::from_env().map_err(|error| error.to_string()))
            .as_ref()
            .map_err(Clone::clone)?;
        if identities.is_empty() {
            return Err(
                "no age identity to decrypt it with: set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY".into(),
            );
        }
        let file = SopsFile::parse(path, Format::from_path(path), text.as_bytes())
            .map_err(|error| error.to_string())?;
        let decrypted = file
            .decrypt(identities)
            .map_err(|error| error.to_string())?;
        String::from_utf8(decrypted.to_plaintext().to_vec())
            .map_err(|_| "its plaintext is not UTF-8 text".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::parse_arg;

    #[test]
    fn an_arg_is_a_name_and_everything_after_the_first_equals_sign() {
        assert_eq!(parse_arg("env=a=b"), Ok(("env".into(), "a=b".into())));
        assert_eq!(parse_arg("=x"), Err("`=x` is not NAME=VALUE".into()));
        assert_eq!(parse_arg("x"), Err("`x` is not NAME=VALUE".into()));
    }
}
