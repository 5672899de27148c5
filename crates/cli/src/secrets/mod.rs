//! `capstan secrets ...`: SOPS files encrypted to age recipients, as the `sops` command
//! handles them, over the `capstan-secrets` library.
//!
//! Plaintext goes to standard output, to a file written 0600, or (for `edit` only) to a
//! private temporary folder that is removed afterwards; errors name files and key paths,
//! never values.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use capstan_secrets::{
    Config, EncryptOptions, Format, Identities, Identity, Recipient, Recipients, SopsFile,
};
use clap::{Args, Subcommand};

use crate::{ExitCode, Failure};

mod check;
mod edit;
mod rotate_key;
mod sopssecret;

/// SOPS secrets: encrypt, decrypt, edit and re-key files encrypted to age recipients.
///
/// Identities are found as sops finds them: `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, then
/// `$XDG_CONFIG_HOME/sops/age/keys.txt`. Recipients come from the first `.sops.yaml`
/// creation rule that matches the file; `.sops.yaml` is looked up from the file's folder
/// upwards unless `--config` names it.
#[derive(Debug, Args)]
pub(crate) struct SecretsArgs {
    /// The `.sops.yaml` to use instead of searching for one
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    Encrypt(EncryptArgs),
    Decrypt(DecryptArgs),
    Edit(edit::EditArgs),
    Updatekeys(UpdatekeysArgs),
    Rotate(RotateArgs),
    RotateKey(rotate_key::RotateKeyArgs),
    Keygen(KeygenArgs),
    Check(check::CheckArgs),
    NewSopssecret(sopssecret::NewSopsSecretArgs),
}

/// Encrypt a plaintext file with the recipients of its `.sops.yaml` rule; prints the result
/// unless `--in-place`.
#[derive(Debug, Args)]
struct EncryptArgs {
    /// The plaintext file (YAML, JSON, dotenv, or anything else as binary)
    file: PathBuf,

    /// Replace the file with its encrypted version instead of printing it
    #[arg(long, short = 'i')]
    in_place: bool,

    /// Encrypt to these age recipients (comma-separated) instead of the rule's
    #[arg(long, value_name = "RECIPIENTS")]
    age: Option<String>,
}

/// Decrypt a file and print its plaintext, or one value of it.
#[derive(Debug, Args)]
struct DecryptArgs {
    /// The encrypted file
    file: PathBuf,

    /// Print only the value at this path, e.g. '["data"]["password"]' or '["list"][0]'
    #[arg(long, value_name = "PATH")]
    extract: Option<String>,

    /// Write the plaintext to this file (mode 0600, replaced atomically) instead
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Give files' data keys to the recipients their `.sops.yaml` rule names now; values stay
/// as they are.
#[derive(Debug, Args)]
struct UpdatekeysArgs {
    /// The encrypted files
    #[arg(required = true)]
    files: Vec<PathBuf>,

    /// Do not ask for confirmation (needed when standard input is not a terminal)
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Give files a new data key and encrypt every value again, in place.
#[derive(Debug, Args)]
struct RotateArgs {
    /// The encrypted files
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Generate an age identity, as `age-keygen` does.
#[derive(Debug, Args)]
struct KeygenArgs {
    /// Write the identity to this new file (mode 0600; an existing file is never
    /// overwritten) instead of printing it
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
}

pub(crate) fn run(args: &SecretsArgs) -> Result<ExitCode, Failure> {
    let config = args.config.as_deref();
    match &args.command {
        SecretsCommand::Encrypt(command) => encrypt(command, config)?,
        SecretsCommand::Decrypt(command) => decrypt(command)?,
        SecretsCommand::Edit(command) => edit::edit(command)?,
        SecretsCommand::Updatekeys(command) => update_keys(command, config)?,
        SecretsCommand::Rotate(command) => rotate(command)?,
        SecretsCommand::RotateKey(command) => rotate_key::rotate_key(command, config)?,
        SecretsCommand::Keygen(command) => keygen(command)?,
        SecretsCommand::Check(command) => return check::check(command, config),
        SecretsCommand::NewSopssecret(command) => sopssecret::new_sops_secret(command, config)?,
    }
    Ok(ExitCode::Success)
}

/// The `.sops.yaml` given with `--config`, or the nearest one above `start` (a file or a
/// folder).
fn load_config(given: Option<&Path>, start: &Path) -> anyhow::Result<Config> {
    if let Some(path) = given {
        return Ok(Config::load(path)?);
    }
    let folder = if start.is_dir() {
        start
    } else {
        start
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    Config::find(folder)?.ok_or_else(|| {
        anyhow!(
            "no `.sops.yaml` in `{}` or its parents to take `{}`'s recipients from",
            folder.display(),
            start.display()
        )
    })
}

/// How to encrypt a new file at `path`: its creation rule's options, with the recipients
/// replaced by `--age` when given.
fn encrypt_options(
    given_config: Option<&Path>,
    path: &Path,
    age: Option<&str>,
) -> anyhow::Result<EncryptOptions> {
    let Some(age) = age else {
        let config = load_config(given_config, path)?;
        return Ok(config.rule_for(path)?.encrypt_options());
    };
    let recipients = Recipient::parse_list(age)?;
    if recipients.is_empty() {
        bail!("--age names no recipient");
    }
    // The rule still decides which values are encrypted when one matches, as in sops, where
    // key flags replace only the rule's keys; without a rule the sops defaults apply.
    let rule_options = load_config(given_config, path).ok().and_then(|config| {
        config
            .rule_for(path)
            .ok()
            .map(|rule| rule.encrypt_options())
    });
    Ok(EncryptOptions {
        recipients: Recipients::any_of(recipients),
        ..rule_options.unwrap_or_default()
    })
}

fn identities() -> anyhow::Result<Identities> {
    Ok(Identities::from_env()?)
}

/// Writes `content` to `path` readable by its owner only, replacing any file there at once:
/// readers see the old file or the new one, never a part.
fn write_private(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let folder = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let failed = || format!("cannot write `{}`", path.display());
    // A named temporary file is created 0600, so the plaintext is never readable by others.
    let mut file = tempfile::NamedTempFile::new_in(folder).with_context(failed)?;
    file.write_all(content).with_context(failed)?;
    file.as_file().sync_all().with_context(failed)?;
    file.persist(path)
        .map_err(|error| error.error)
        .with_context(failed)?;
    Ok(())
}

/// Writes a line on standard error, where progress and questions go so that standard output
/// carries only data.
fn note(message: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stderr().lock(), "{message}")
}

/// Asks a yes/no question on the terminal; an empty answer is `default`. Callers make sure
/// standard input is a terminal, so this never waits on a pipe.
fn ask(question: &str, default: bool) -> anyhow::Result<bool> {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    {
        let mut stderr = std::io::stderr().lock();
        write!(stderr, "{question} {hint} ")?;
        stderr.flush()?;
    }
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        return Ok(false);
    }
    Ok(match answer.trim().to_ascii_lowercase().as_str() {
        "" => default,
        "y" | "yes" => true,
        _ => false,
    })
}

fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

fn encrypt(args: &EncryptArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let options = encrypt_options(config, &args.file, args.age.as_deref())?;
    let plaintext = std::fs::read(&args.file)
        .with_context(|| format!("cannot read `{}`", args.file.display()))?;
    let file = SopsFile::encrypt(
        &args.file,
        Format::from_path(&args.file),
        &plaintext,
        &options,
    )?;
    if args.in_place {
        file.write()?;
    } else {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&file.to_bytes())?;
        stdout.flush()?;
    }
    Ok(())
}

fn decrypt(args: &DecryptArgs) -> anyhow::Result<()> {
    let identities = identities()?;
    let decrypted = SopsFile::read(&args.file)?.decrypt(&identities)?;
    let plaintext = match &args.extract {
        Some(path) => decrypted.extract(path)?,
        None => decrypted.to_plaintext(),
    };
    match &args.output {
        Some(output) => write_private(output, &plaintext)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&plaintext)?;
            stdout.flush()?;
        }
    }
    Ok(())
}

fn update_keys(args: &UpdatekeysArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let identities = identities()?;
    for path in &args.files {
        let config = load_config(config, path)?;
        let recipients = config.rule_for(path)?.recipients();
        let mut file = SopsFile::read(path)?;
        let changes = file.key_changes(recipients);
        if changes.is_empty() {
            note(format_args!(
                "{}: recipients already match `{}`",
                path.display(),
                config.path().display()
            ))?;
            continue;
        }
        {
            let mut stderr = std::io::stderr().lock();
            writeln!(stderr, "{}: new recipients:", path.display())?;
            for added in &changes.added {
                writeln!(stderr, "  + {added}")?;
            }
            for removed in &changes.removed {
                writeln!(stderr, "  - {removed}")?;
            }
        }
        if !args.yes {
            if !stdin_is_terminal() {
                bail!(
                    "not updating the keys of `{}`: standard input is not a terminal to \
                     confirm on; pass --yes",
                    path.display()
                );
            }
            if !ask("Update the keys?", false)? {
                note(format_args!("{}: keys left as they were", path.display()))?;
                continue;
            }
        }
        file.update_keys(&identities, recipients)?;
        file.write()?;
        note(format_args!("{}: keys updated", path.display()))?;
    }
    Ok(())
}

fn rotate(args: &RotateArgs) -> anyhow::Result<()> {
    let identities = identities()?;
    for path in &args.files {
        let decrypted = SopsFile::read(path)?.decrypt(&identities)?;
        decrypted.rotate()?.write()?;
        note(format_args!("{}: new data key", path.display()))?;
    }
    Ok(())
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<()> {
    let identity = Identity::generate();
    let recipient = match &args.output {
        Some(path) => identity.write_key_file(path)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(identity.to_new_key_file().as_bytes())?;
            stdout.flush()?;
            // age-keygen repeats the recipient only when the key file is not on screen.
            if std::io::stdout().is_terminal() {
                return Ok(());
            }
            identity.recipient()
        }
    };
    note(format_args!("Public key: {recipient}"))?;
    Ok(())
}
