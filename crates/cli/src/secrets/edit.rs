//! `capstan secrets edit`: the plaintext in an editor, then encrypted again with the same
//! data key so that values that did not change keep their ciphertext.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use capstan_secrets::{Edit, Error, Format};
use clap::Args;

use super::crypt::parse_format;
use super::signals::Signals;
use super::{note, open_decrypted};
use crate::prompt::{ask, stdin_is_terminal};

/// Edit an encrypted file: decrypt it to a private temporary copy, open `$VISUAL` or
/// `$EDITOR` (default `vi`) on it, and encrypt it again in place if it changed.
///
/// The copy lives in a private folder `capstan-edit-XXXXXX` (mode 0700, the file 0600) under
/// `$TMPDIR` (else `/tmp`). It is removed when the edit ends in any way: saved, unchanged,
/// invalid, editor failure, Ctrl-C (the editor decides; capstan waits for it), a closed
/// terminal, or SIGTERM (capstan stops the editor, removes the folder and fails). Only SIGKILL,
/// which no program can catch, leaves the folder and the plaintext in it behind: remove
/// `$TMPDIR/capstan-edit-*` yourself after `kill -9`, an out-of-memory kill or a power loss
/// (a tmpfs `/tmp` is emptied on reboot).
#[derive(Debug, Args)]
pub(super) struct EditArgs {
    /// The encrypted file
    file: PathBuf,

    /// The file's format instead of the one its name implies: yaml, json, dotenv, ini or binary
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,

    /// The format to edit in and to write the file back in, if not the input's
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    output_type: Option<Format>,
}

/// Returns whether the file changed (sops exits 200 when it did not).
pub(super) fn edit(args: &EditArgs, config: Option<&Path>) -> anyhow::Result<bool> {
    let decrypted = open_decrypted(&args.file, args.input_type, args.output_type, config)?;
    // The folder is removed, plaintext included, when `folder` is dropped: on success, on
    // every error returned below, and on a panic. tempfile would create it with the umask's
    // permissions (0755 typically), so it is made private explicitly.
    let folder = private_folder("capstan-edit-")?;
    // The copy keeps the file's name so editors pick the right syntax.
    let name = args.file.file_name().unwrap_or("secret".as_ref());
    let copy = folder.path().join(name);
    capstan_secrets::write_new_private(&copy, &decrypted.to_plaintext())?;
    let mut signals = Signals::install()?;
    loop {
        run_editor(&copy, &args.file, &mut signals)?;
        let content = std::fs::read(&copy)
            .with_context(|| format!("cannot read the edited copy of `{}`", args.file.display()))?;
        match decrypted.edit(&content) {
            Ok(Edit::Unchanged) => {
                note(format_args!(
                    "{}: unchanged, not written (exit code 200, as sops)",
                    args.file.display()
                ))?;
                return Ok(false);
            }
            Ok(Edit::Changed(file)) => {
                file.write()?;
                return Ok(true);
            }
            Err(error @ (Error::Syntax { .. } | Error::AlreadyEncrypted { .. })) => {
                reopen_or_abort(&error, &args.file)?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// After invalid content: asks on a terminal whether to edit again, else gives up leaving the
/// original as it was.
fn reopen_or_abort(error: &Error, original: &Path) -> anyhow::Result<()> {
    if stdin_is_terminal() {
        note(format_args!("error: {error}"))?;
        if ask("Reopen the editor?", true)? {
            return Ok(());
        }
    }
    bail!(
        "{error}; `{}` left unchanged, the edits are discarded",
        original.display()
    )
}

/// A new folder under `$TMPDIR` that only its owner can enter; removed with everything in it
/// when dropped.
pub(super) fn private_folder(prefix: &str) -> anyhow::Result<tempfile::TempDir> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(prefix);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    builder
        .tempdir()
        .context("cannot create a private temporary folder")
}

/// Runs the user's editor on `copy`. The editor setting goes through `sh` as git does, so
/// values such as `code --wait` work; the file name is passed as an argument, never spliced
/// into the command. A plain command line is `exec`ed, so the editor itself is capstan's child
/// and SIGTERM can stop it; one with shell syntax (`;`, `|`, quotes…) runs under `sh`.
fn run_editor(copy: &Path, original: &Path, signals: &mut Signals) -> anyhow::Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(std::env::var_os)
        .find(|value| !value.is_empty())
        .map_or_else(
            || "vi".to_owned(),
            |value| value.to_string_lossy().into_owned(),
        );
    let plain = editor
        .chars()
        .all(|c| c.is_alphanumeric() || " _-./=+:,@%~".contains(c));
    let exec = if plain { "exec " } else { "" };
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{exec}{editor} \"$1\""))
        .arg("sh")
        .arg(copy)
        .spawn()
        .with_context(|| format!("cannot run the editor `{editor}`"))?;
    let status = signals
        .wait(&mut child)
        .with_context(|| format!("cannot wait for the editor `{editor}`"))?;
    let Some(status) = status else {
        bail!(
            "terminated (SIGTERM): the editor was stopped and the plaintext copy removed; `{}` \
             left unchanged",
            original.display()
        );
    };
    if !status.success() {
        bail!(
            "the editor `{editor}` failed ({status}); `{}` left unchanged",
            original.display()
        );
    }
    Ok(())
}
