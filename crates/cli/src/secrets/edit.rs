//! `capstan secrets edit`: the plaintext in an editor, then encrypted again with the same
//! data key so that values that did not change keep their ciphertext.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use capstan_secrets::{Edit, Error, SopsFile};
use clap::Args;

use super::{ask, identities, note, stdin_is_terminal};

/// Edit an encrypted file: decrypt it to a private temporary copy, open `$VISUAL` or
/// `$EDITOR` (default `vi`) on it, and encrypt it again in place if it changed.
#[derive(Debug, Args)]
pub(super) struct EditArgs {
    /// The encrypted file
    file: PathBuf,
}

pub(super) fn edit(args: &EditArgs) -> anyhow::Result<()> {
    let identities = identities()?;
    let decrypted = SopsFile::read(&args.file)?.decrypt(&identities)?;
    // The folder is removed, plaintext included, when `folder` is dropped: on success, on
    // every error returned below, and on a panic. tempfile would create it with the umask's
    // permissions (0755 typically), so it is made private explicitly.
    let mut builder = tempfile::Builder::new();
    builder.prefix("capstan-edit-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
    let folder = builder
        .tempdir()
        .context("cannot create a private temporary folder")?;
    // The copy keeps the file's name so editors pick the right syntax.
    let name = args.file.file_name().unwrap_or("secret".as_ref());
    let copy = folder.path().join(name);
    write_new_private(&copy, &decrypted.to_plaintext())?;
    #[cfg(unix)]
    let _signals = survive_terminal_signals()?;
    loop {
        run_editor(&copy, &args.file)?;
        let content = std::fs::read(&copy)
            .with_context(|| format!("cannot read the edited copy of `{}`", args.file.display()))?;
        match decrypted.edit(&content) {
            Ok(Edit::Unchanged) => {
                note(format_args!("{}: unchanged", args.file.display()))?;
                return Ok(());
            }
            Ok(Edit::Changed(file)) => {
                file.write()?;
                return Ok(());
            }
            Err(error @ (Error::Syntax { .. } | Error::AlreadyEncrypted { .. })) => {
                reopen_or_abort(&error, &args.file)?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Keeps `Ctrl-C`, `Ctrl-\` and a closing terminal from killing capstan while the plaintext
/// copy exists, as git does around its editor: those signals reach the whole foreground
/// process group, so the editor gets them too and decides. If it exits on them, the edit
/// aborts like any editor failure and the copy is removed. The handlers stay installed while
/// the returned guard lives (and, as tokio never removes them, until capstan exits).
#[cfg(unix)]
fn survive_terminal_signals()
-> anyhow::Result<(tokio::runtime::Runtime, Vec<tokio::signal::unix::Signal>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("cannot start the signal handler")?;
    let signals = runtime
        .block_on(async {
            [
                SignalKind::interrupt(),
                SignalKind::quit(),
                SignalKind::hangup(),
            ]
            .into_iter()
            .map(signal)
            .collect::<std::io::Result<Vec<_>>>()
        })
        .context("cannot catch terminal signals")?;
    Ok((runtime, signals))
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

/// Creates `path` readable by its owner only, failing if something is already there.
fn write_new_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .and_then(|mut file| file.write_all(content))
        .with_context(|| format!("cannot write the plaintext copy `{}`", path.display()))
}

/// Runs the user's editor on `copy`. The editor setting goes through `sh` as git does, so
/// values such as `code --wait` work; the file name is passed as an argument, never spliced
/// into the command.
fn run_editor(copy: &Path, original: &Path) -> anyhow::Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .into_iter()
        .filter_map(std::env::var_os)
        .find(|value| !value.is_empty())
        .map_or_else(
            || "vi".to_owned(),
            |value| value.to_string_lossy().into_owned(),
        );
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(copy)
        .status()
        .with_context(|| format!("cannot run the editor `{editor}`"))?;
    if !status.success() {
        bail!(
            "the editor `{editor}` failed ({status}); `{}` left unchanged",
            original.display()
        );
    }
    Ok(())
}
