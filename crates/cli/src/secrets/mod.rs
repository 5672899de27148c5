//! `capstan secrets ...`: SOPS files encrypted to age recipients, as the `sops` command
//! handles them, over the `capstan-secrets` library.
//!
//! Plaintext goes to standard output, to a file written 0600, or (for `edit` only) to a
//! private temporary folder that is removed afterwards; errors name files and key paths,
//! never values.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use capstan_secrets::{
    Config, Decrypted, EncryptOptions, Format, Identities, Identity, Recipient, Recipients,
    Selection, SopsFile,
};
use clap::{Args, Subcommand};

use crate::prompt::{ask, stdin_is_terminal};
use crate::{ExitCode, Failure};

mod check;
mod crypt;
mod edit;
mod exec;
mod rotate_key;
mod set;
mod signals;
mod sopssecret;

/// SOPS secrets: encrypt, decrypt, edit and re-key files encrypted to age recipients.
///
/// Identities are found as sops finds them, all sources combined: `SOPS_AGE_KEY`,
/// `SOPS_AGE_KEY_FILE`, `$XDG_CONFIG_HOME/sops/age/keys.txt` and the output of
/// `SOPS_AGE_KEY_CMD`. Recipients come from the first `.sops.yaml` creation rule that matches
/// the file; `.sops.yaml` is looked up from the file's folder upwards unless `--config` names
/// it.
///
/// Exit codes are sops's where sops has one: 51 MAC mismatch, 25 a value does not decrypt,
/// 128 no identity opens the data key, 100 the input file does not exist, 91 no value at the
/// `--extract`/`set`/`unset` path, 7 an invalid `set` value, 200 `edit` left the file
/// unchanged, 203 the file to encrypt is encrypted already; `exec-env`/`exec-file` exit with
/// the command's code. Every other failure is 2, as in the rest of capstan.
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
    Encrypt(crypt::EncryptArgs),
    Decrypt(crypt::DecryptArgs),
    Edit(edit::EditArgs),
    Set(set::SetArgs),
    Unset(set::UnsetArgs),
    ExecEnv(exec::ExecEnvArgs),
    ExecFile(exec::ExecFileArgs),
    Filestatus(exec::FilestatusArgs),
    Updatekeys(UpdatekeysArgs),
    Rotate(RotateArgs),
    RotateKey(rotate_key::RotateKeyArgs),
    Keygen(KeygenArgs),
    Check(check::CheckArgs),
    NewSopssecret(sopssecret::NewSopsSecretArgs),
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

    /// Also give the new data key to these age recipients (comma-separated; the first key
    /// group gets them)
    #[arg(long, value_name = "RECIPIENTS")]
    add_age: Option<String>,

    /// Stop giving the data key to these age recipients (comma-separated; every key group)
    #[arg(long, value_name = "RECIPIENTS")]
    rm_age: Option<String>,
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
    match run_command(args) {
        Ok(Exit::Code(code)) => Ok(code),
        Ok(Exit::Sops(code)) => exit(code),
        Err(failure) => match sops_code(&failure.0) {
            Some(code) => {
                crate::report(&failure);
                exit(code)
            }
            None => Err(failure),
        },
    }
}

/// How a secrets command ends when it does not fail.
enum Exit {
    Code(ExitCode),
    /// An exit code sops has and capstan's own [`ExitCode`] does not.
    Sops(u8),
}

#[expect(
    clippy::exit,
    reason = "sops's exit codes are not capstan's ExitCode values; everything was dropped already"
)]
fn exit(code: u8) -> ! {
    let _ = std::io::stdout().flush();
    std::process::exit(i32::from(code))
}

/// The exit code sops gives this failure, where it has one of its own.
fn sops_code(error: &anyhow::Error) -> Option<u8> {
    for cause in error.chain() {
        if cause.downcast_ref::<MissingInput>().is_some() {
            return Some(100);
        }
        if let Some(error) = cause.downcast_ref::<capstan_secrets::Error>() {
            return match error {
                capstan_secrets::Error::Integrity { mac: true, .. } => Some(51),
                capstan_secrets::Error::Integrity { .. } => Some(25),
                capstan_secrets::Error::NoMatchingIdentity { .. } => Some(128),
                capstan_secrets::Error::NoSuchPath { .. } => Some(91),
                capstan_secrets::Error::AlreadyEncrypted { .. } => Some(203),
                _ => None,
            };
        }
        if let Some(code) = cause.downcast_ref::<SopsCode>() {
            return Some(code.code);
        }
    }
    None
}

/// A failure that sops reports with its own exit code.
#[derive(Debug)]
struct SopsCode {
    code: u8,
    message: String,
}

impl std::fmt::Display for SopsCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SopsCode {}

/// The input file does not exist (sops exit code 100).
#[derive(Debug)]
struct MissingInput(PathBuf);

impl std::fmt::Display for MissingInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` does not exist", self.0.display())
    }
}

impl std::error::Error for MissingInput {}

fn run_command(args: &SecretsArgs) -> Result<Exit, Failure> {
    let config = args.config.as_deref();
    match &args.command {
        SecretsCommand::Encrypt(command) => crypt::encrypt(command, config)?,
        SecretsCommand::Decrypt(command) => crypt::decrypt(command, config)?,
        SecretsCommand::Edit(command) => {
            if !edit::edit(command, config)? {
                return Ok(Exit::Sops(200));
            }
        }
        SecretsCommand::Set(command) => set::set(command, config)?,
        SecretsCommand::Unset(command) => set::unset(command, config)?,
        SecretsCommand::ExecEnv(command) => return Ok(Exit::Sops(exec::exec_env(command)?)),
        SecretsCommand::ExecFile(command) => {
            return Ok(Exit::Sops(exec::exec_file(command, config)?));
        }
        SecretsCommand::Filestatus(command) => exec::filestatus(command)?,
        SecretsCommand::Updatekeys(command) => update_keys(command, config)?,
        SecretsCommand::Rotate(command) => rotate(command, config)?,
        SecretsCommand::RotateKey(command) => rotate_key::rotate_key(command, config)?,
        SecretsCommand::Keygen(command) => keygen(command)?,
        SecretsCommand::Check(command) => return Ok(Exit::Code(check::check(command, config)?)),
        SecretsCommand::NewSopssecret(command) => sopssecret::new_sops_secret(command, config)?,
    }
    Ok(Exit::Code(ExitCode::Success))
}

/// Reads an encrypted file, failing with sops's code 100 when it does not exist.
fn read_encrypted(path: &Path, format: Option<Format>) -> anyhow::Result<SopsFile> {
    let content = read_file(path)?;
    let format = format.unwrap_or_else(|| Format::from_path(path));
    Ok(SopsFile::parse(path, format, &content)?)
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    match std::fs::read(path) {
        Ok(content) => Ok(content),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(MissingInput(path.to_owned()).into())
        }
        Err(error) => {
            Err(anyhow::Error::new(error).context(format!("cannot read `{}`", path.display())))
        }
    }
}

/// The `.sops.yaml` that applies to `start`, if any: for the `stores` settings, which are
/// optional.
fn find_config(given: Option<&Path>, start: &Path) -> anyhow::Result<Option<Config>> {
    if let Some(path) = given {
        return Ok(Some(Config::load(path)?));
    }
    Ok(Config::find(config_folder(start))?)
}

/// Reads and decrypts a file as every command does: the format from `--input-type` or the
/// name, `.sops.yaml` `stores` applied, the MAC verified, and the plaintext in `output`'s
/// format when given.
fn open_decrypted(
    path: &Path,
    input: Option<Format>,
    output: Option<Format>,
    config: Option<&Path>,
) -> anyhow::Result<Decrypted> {
    let identities = identities()?;
    let mut file = read_encrypted(path, input)?;
    apply_stores(&mut file, find_config(config, path).ok().flatten().as_ref());
    let mut decrypted = file.decrypt(&identities)?;
    if let Some(format) = output {
        decrypted.set_format(format);
    }
    Ok(decrypted)
}

/// Applies `.sops.yaml` `stores.yaml.indent`, if there is one, to a file about to be shown
/// or written.
fn apply_stores(file: &mut SopsFile, config: Option<&Config>) {
    if let Some(indent) = config.and_then(Config::yaml_indent) {
        file.set_yaml_indent(indent);
    }
}

fn config_folder(start: &Path) -> &Path {
    if start.is_dir() {
        start
    } else {
        start
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    }
}

/// The `.sops.yaml` given with `--config`, or the nearest one above `start` (a file or a
/// folder).
fn load_config(given: Option<&Path>, start: &Path) -> anyhow::Result<Config> {
    if let Some(path) = given {
        return Ok(Config::load(path)?);
    }
    let folder = config_folder(start);
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
    encrypt_options_with(
        given_config,
        path,
        &Overrides {
            age,
            ..Overrides::default()
        },
    )
}

/// The encrypt flags that override `.sops.yaml`, as in sops.
#[derive(Default)]
struct Overrides<'a> {
    /// `--age`: replaces every key of the rule (one key group).
    age: Option<&'a str>,
    /// A suffix/regex flag: replaces the rule's.
    selection: Option<Selection>,
    /// `--mac-only-encrypted`: or-ed with the rule's.
    mac_only_encrypted: bool,
    /// `--shamir-secret-sharing-threshold`: replaces the rule's.
    shamir_threshold: Option<usize>,
}

fn encrypt_options_with(
    given_config: Option<&Path>,
    path: &Path,
    overrides: &Overrides<'_>,
) -> anyhow::Result<EncryptOptions> {
    let mut options = match overrides.age {
        None => {
            let config = load_config(given_config, path)?;
            config.rule_for(path)?.encrypt_options()
        }
        Some(age) => {
            let recipients = Recipient::parse_list(age)?;
            if recipients.is_empty() {
                bail!("--age names no recipient");
            }
            // The rule still decides which values are encrypted when one matches, as in sops,
            // where key flags replace only the rule's keys; without a rule the sops defaults
            // apply.
            let rule_options = load_config(given_config, path).ok().and_then(|config| {
                config
                    .rule_for(path)
                    .ok()
                    .map(|rule| rule.encrypt_options())
            });
            EncryptOptions {
                recipients: Recipients::any_of(recipients),
                ..rule_options.unwrap_or_default()
            }
        }
    };
    if let Some(selection) = &overrides.selection {
        options.selection = selection.clone();
    }
    options.mac_only_encrypted |= overrides.mac_only_encrypted;
    if let Some(threshold) = overrides.shamir_threshold {
        options.recipients.shamir_threshold = Some(threshold);
    }
    Ok(options)
}

/// The identities sops would find, with a note on standard error for each key that had to
/// be skipped.
fn identities() -> anyhow::Result<Identities> {
    let identities = Identities::from_env()?;
    for skipped in identities.skipped() {
        note(format_args!("note: {skipped}"))?;
    }
    Ok(identities)
}

/// Writes a line on standard error, where progress and questions go so that standard output
/// carries only data.
fn note(message: std::fmt::Arguments<'_>) -> std::io::Result<()> {
    writeln!(std::io::stderr().lock(), "{message}")
}

fn update_keys(args: &UpdatekeysArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let identities = identities()?;
    for path in &args.files {
        let config = load_config(config, path)?;
        let recipients = config.rule_for(path)?.recipients();
        let mut file = read_encrypted(path, None)?;
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

fn rotate(args: &RotateArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let identities = identities()?;
    let add = args
        .add_age
        .as_deref()
        .map(Recipient::parse_list)
        .transpose()?;
    let remove = args
        .rm_age
        .as_deref()
        .map(Recipient::parse_list)
        .transpose()?;
    for path in &args.files {
        let mut file = read_encrypted(path, None)?;
        apply_stores(&mut file, find_config(config, path)?.as_ref());
        let decrypted = file.decrypt(&identities)?;
        let mut recipients = decrypted.recipients()?;
        if let Some(remove) = &remove {
            for group in &mut recipients.groups {
                group.retain(|recipient| !remove.contains(recipient));
            }
        }
        if let (Some(add), Some(first)) = (&add, recipients.groups.first_mut()) {
            for recipient in add {
                if !first.contains(recipient) {
                    first.push(recipient.clone());
                }
            }
        }
        decrypted.rotate_to(&recipients)?.write()?;
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
