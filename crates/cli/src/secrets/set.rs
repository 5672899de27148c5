//! `capstan secrets set` and `unset`: change one value of an encrypted file in place, as
//! sops does, without the plaintext ever reaching the disk.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use capstan_secrets::{Error, Format, Value, parse_path};
use clap::Args;

use super::crypt::parse_format;
use super::{SopsCode, note, open_decrypted, read_file};

/// Set one value of an encrypted file, in place: `capstan secrets set secrets.yaml
/// '["db"]["password"]' '"hunter2"'`.
///
/// The value is JSON, so objects and arrays set whole subtrees; missing mappings on the path
/// are created and an index past the end of a list appends. Other values keep their
/// ciphertext; `lastmodified` and the MAC are renewed.
#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The encrypted file
    file: PathBuf,

    /// Where, in `--extract` syntax: '["key"]["list"][0]'
    path: String,

    /// The JSON value; with --value-file the file holding it; omitted with --value-stdin
    #[arg(required_unless_present = "value_stdin")]
    value: Option<String>,

    /// Read the value from the file named by VALUE (keeps it out of process listings)
    #[arg(long, conflicts_with = "value_stdin")]
    value_file: bool,

    /// Read the value from standard input (keeps it out of process listings)
    #[arg(long)]
    value_stdin: bool,

    /// Do not write the file when the value is already this one
    #[arg(long)]
    idempotent: bool,

    /// The file's format instead of the one its name implies
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,
}

/// Remove one value (a key or a list item) from an encrypted file, in place.
#[derive(Debug, Args)]
pub(crate) struct UnsetArgs {
    /// The encrypted file
    file: PathBuf,

    /// Where, in `--extract` syntax: '["key"]["list"][0]'
    path: String,

    /// Succeed without writing when there is nothing at the path
    #[arg(long)]
    idempotent: bool,

    /// The file's format instead of the one its name implies
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    input_type: Option<Format>,
}

fn no_such_path(file: &Path, path: &str) -> anyhow::Error {
    Error::NoSuchPath {
        path: file.to_owned(),
        tree_path: path.to_owned(),
    }
    .into()
}

/// sops exits 7 for a value that is not JSON.
fn invalid_value(reason: &str) -> anyhow::Error {
    SopsCode {
        code: 7,
        message: format!("the value is not valid JSON ({reason})"),
    }
    .into()
}

fn read_value(args: &SetArgs) -> anyhow::Result<Value> {
    let text = if args.value_stdin {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .context("cannot read the value from standard input")?;
        text
    } else {
        let value = args.value.clone().unwrap_or_default();
        if args.value_file {
            let bytes = read_file(Path::new(&value))?;
            String::from_utf8(bytes).map_err(|_| invalid_value("not UTF-8"))?
        } else {
            value
        }
    };
    Value::from_json(text.trim_end_matches('\n')).map_err(|reason| invalid_value(&reason))
}

pub(super) fn set(args: &SetArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let steps = parse_path(&args.path).ok_or_else(|| no_such_path(&args.file, &args.path))?;
    let value = read_value(args)?;
    let decrypted = open_decrypted(&args.file, args.input_type, None, config)?;
    let mut tree = decrypted.tree().clone();
    let changed = tree
        .set(&steps, value)
        .ok_or_else(|| no_such_path(&args.file, &args.path))?;
    if !changed && args.idempotent {
        note(format_args!(
            "{}: {} already has this value; not written",
            args.file.display(),
            args.path
        ))?;
        return Ok(());
    }
    decrypted.reencrypt(tree)?.write()?;
    Ok(())
}

pub(super) fn unset(args: &UnsetArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let steps = parse_path(&args.path).ok_or_else(|| no_such_path(&args.file, &args.path))?;
    if steps.is_empty() {
        bail!("unset needs a path below the top level");
    }
    let decrypted = open_decrypted(&args.file, args.input_type, None, config)?;
    let mut tree = decrypted.tree().clone();
    if !tree.unset(&steps) {
        if args.idempotent {
            return Ok(());
        }
        return Err(no_such_path(&args.file, &args.path));
    }
    decrypted.reencrypt(tree)?.write()?;
    Ok(())
}
