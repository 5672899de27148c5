//! `capstan secrets exec-env`, `exec-file` and `filestatus`: run a command with the secrets,
//! and tell whether a file is encrypted, as sops does.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use capstan_secrets::{Format, SopsFile, Value};
use clap::Args;
use zeroize::Zeroizing;

use super::crypt::parse_format;
use super::edit::private_folder;
use super::signals::Signals;
use super::{open_decrypted, read_file};

/// Run a command with the file's top-level values in its environment:
/// `capstan secrets exec-env secrets.env 'psql "$DATABASE_URL"'`.
///
/// The command runs through `sh -c`; capstan exits with its exit code. Nested values cannot
/// be environment variables and make the command fail before it runs, as in sops.
#[derive(Debug, Args)]
pub(crate) struct ExecEnvArgs {
    /// The encrypted file
    file: PathBuf,

    /// The shell command to run
    command: String,

    /// Run the command with the secrets only, not capstan's own environment
    #[arg(long)]
    pristine: bool,

    /// The file's format instead of the one its name implies
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,
}

/// Run a command with the file's plaintext in a temporary file: `{}` in the command stands
/// for its path, e.g. `capstan secrets exec-file kubeconfig.yaml 'kubectl --kubeconfig {} get
/// pods'`.
///
/// The file is in a private folder (0700, the file 0600) under `$TMPDIR` and is removed when
/// the command ends, or when capstan gets SIGTERM (SIGKILL leaves it, as for `edit`). sops
/// uses a named pipe by default; capstan always uses a file, like sops `--no-fifo`, so that
/// programs that read the file twice work. capstan exits with the command's exit code.
#[derive(Debug, Args)]
pub(crate) struct ExecFileArgs {
    /// The encrypted file
    file: PathBuf,

    /// The shell command to run; `{}` is replaced by the temporary file's path
    command: String,

    /// The temporary file's name
    #[arg(long, default_value = "tmp-file")]
    filename: String,

    /// Accepted for sops compatibility: capstan always writes a file
    #[arg(long)]
    no_fifo: bool,

    /// The file's format instead of the one its name implies
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,

    /// The format of the temporary file, if not the input's
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    output_type: Option<Format>,
}

/// Print whether a file is encrypted, as sops does: `{"encrypted":true}` or
/// `{"encrypted":false}`; exits 0 either way.
#[derive(Debug, Args)]
pub(crate) struct FilestatusArgs {
    /// The file
    file: PathBuf,

    /// The file's format instead of the one its name implies
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,
}

/// The exit code a finished command reports, as a shell would: 128 + the signal when one
/// ended it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from(128 + signal).unwrap_or(1);
    }
    1
}

fn scalar(value: &Value) -> Option<Zeroizing<String>> {
    Some(Zeroizing::new(match value {
        Value::Str(text) | Value::Time(text) => text.clone(),
        Value::Int(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Value::Null => String::new(),
        Value::Map(_) | Value::Seq(_) => return None,
    }))
}

pub(super) fn exec_env(args: &ExecEnvArgs) -> anyhow::Result<u8> {
    let decrypted = open_decrypted(&args.file, args.input_type, None, None)?;
    let mut variables = Vec::new();
    for (key, value) in decrypted
        .tree()
        .documents
        .first()
        .into_iter()
        .flat_map(|document| document.pairs())
    {
        let Some(text) = scalar(value) else {
            bail!(
                "`{}`: `{key}` holds a mapping or a list, which cannot be an environment \
                 variable",
                args.file.display()
            );
        };
        variables.push((key.to_owned(), text));
    }
    let mut command = Command::new("sh");
    command.arg("-c").arg(&args.command);
    if args.pristine {
        command.env_clear();
    }
    for (key, value) in &variables {
        command.env(key, value.as_str());
    }
    let status = command
        .status()
        .with_context(|| format!("cannot run `{}`", args.command))?;
    Ok(exit_code(status))
}

pub(super) fn exec_file(args: &ExecFileArgs, config: Option<&Path>) -> anyhow::Result<u8> {
    if args.filename.contains('/') || args.filename.is_empty() || args.filename == ".." {
        bail!("--filename must be a plain file name");
    }
    let decrypted = open_decrypted(&args.file, args.input_type, args.output_type, config)?;
    // Removed with the plaintext when dropped, on every way out of this function.
    let folder = private_folder("capstan-exec-")?;
    let copy = folder.path().join(&args.filename);
    capstan_secrets::write_new_private(&copy, &decrypted.to_plaintext())?;
    drop(decrypted);
    let mut signals = Signals::install()?;
    // The path reaches the command as `$1`, never spliced into its text.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(args.command.replace("{}", "\"$1\""))
        .arg("sh")
        .arg(&copy)
        .spawn()
        .with_context(|| format!("cannot run `{}`", args.command))?;
    let status = signals
        .wait(&mut child)
        .with_context(|| format!("cannot wait for `{}`", args.command))?;
    drop(folder);
    match status {
        Some(status) => Ok(exit_code(status)),
        None => {
            bail!("terminated (SIGTERM): the command was stopped and the plaintext file removed")
        }
    }
}

pub(super) fn filestatus(args: &FilestatusArgs) -> anyhow::Result<()> {
    let content = read_file(&args.file)?;
    let format = args
        .input_type
        .unwrap_or_else(|| Format::from_path(&args.file));
    // As sops: encrypted means a readable `sops` block that names a version.
    let encrypted =
        SopsFile::parse(&args.file, format, &content).is_ok_and(|file| !file.version().is_empty());
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{{\"encrypted\":{encrypted}}}")?;
    stdout.flush()?;
    Ok(())
}
