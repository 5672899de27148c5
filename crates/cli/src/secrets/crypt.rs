//! `capstan secrets encrypt` and `decrypt`, with sops's flags for formats, standard input,
//! output files and the selection options.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use capstan_secrets::{DecryptOptions, Format, Selection, SopsFile};
use clap::Args;

use super::{
    Overrides, apply_stores, encrypt_options_with, find_config, identities, note, read_file,
};

/// A format name for `--input-type`/`--output-type`.
pub(super) fn parse_format(name: &str) -> Result<Format, String> {
    Format::from_name(name).ok_or_else(|| {
        format!("`{name}` is not a format capstan knows: yaml, json, dotenv, ini or binary")
    })
}

/// sops's format flags.
#[derive(Debug, Args)]
pub(super) struct TypeArgs {
    /// The input's format instead of the one its name implies: yaml, json, dotenv, ini or binary
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    pub(super) input_type: Option<Format>,

    /// The output's format, if not the input's: yaml, json, dotenv, ini or binary
    #[arg(long, value_name = "TYPE", value_parser = parse_format)]
    pub(super) output_type: Option<Format>,

    /// The path `.sops.yaml` rules and the format are taken from instead of the file's (for
    /// standard input, `-`)
    #[arg(long, value_name = "PATH")]
    pub(super) filename_override: Option<PathBuf>,
}

/// Where the content came from and what it is.
pub(super) struct Input {
    /// The file, `None` for standard input.
    pub(super) file: Option<PathBuf>,
    /// The path rules and messages use: `--filename-override`, else the file.
    pub(super) path: PathBuf,
    pub(super) format: Format,
    pub(super) content: Vec<u8>,
}

impl TypeArgs {
    /// Reads `file` (`-` for standard input) and settles its format.
    pub(super) fn read(&self, file: &Path) -> anyhow::Result<Input> {
        let stdin = file == Path::new("-");
        let path = self
            .filename_override
            .clone()
            .unwrap_or_else(|| file.to_owned());
        if stdin && self.input_type.is_none() && self.filename_override.is_none() {
            bail!(
                "reading standard input needs --input-type (yaml, json, dotenv, ini, binary) or \
                 --filename-override to tell its format"
            );
        }
        let format = self.input_type.unwrap_or_else(|| Format::from_path(&path));
        let content = if stdin {
            let mut content = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut content)
                .context("cannot read standard input")?;
            content
        } else {
            read_file(file)?
        };
        Ok(Input {
            file: (!stdin).then(|| file.to_owned()),
            path,
            format,
            content,
        })
    }
}

/// Where the result goes.
fn emit(
    content: &[u8],
    input: &Input,
    in_place: bool,
    output: Option<&Path>,
    private: bool,
) -> anyhow::Result<()> {
    let target = match (in_place, output, &input.file) {
        (true, _, None) => bail!("--in-place needs a file, not standard input"),
        (true, _, Some(file)) => Some(file.as_path()),
        (false, output, _) => output,
    };
    match target {
        Some(path) if private => Ok(capstan_secrets::replace_private(path, content)?),
        Some(path) => std::fs::write(path, content)
            .with_context(|| format!("cannot write `{}`", path.display())),
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(content)?;
            stdout.flush()?;
            Ok(())
        }
    }
}

/// The selection flags; at most one may be given, as in `.sops.yaml`.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub(super) struct SelectionArgs {
    /// Encrypt only the values under keys matching this regular expression
    #[arg(long, value_name = "REGEX")]
    encrypted_regex: Option<String>,

    /// Encrypt only the values under keys ending with this suffix
    #[arg(long, value_name = "SUFFIX")]
    encrypted_suffix: Option<String>,

    /// Leave the values under keys matching this regular expression unencrypted
    #[arg(long, value_name = "REGEX")]
    unencrypted_regex: Option<String>,

    /// Leave the values under keys ending with this suffix unencrypted (default
    /// `_unencrypted`)
    #[arg(long, value_name = "SUFFIX")]
    unencrypted_suffix: Option<String>,

    /// Encrypt only the values after a comment matching this regular expression
    #[arg(long, value_name = "REGEX")]
    encrypted_comment_regex: Option<String>,

    /// Leave the values after a comment matching this regular expression unencrypted
    #[arg(long, value_name = "REGEX")]
    unencrypted_comment_regex: Option<String>,
}

impl SelectionArgs {
    fn selection(&self) -> Option<Selection> {
        let pick = |value: &Option<String>, make: fn(String) -> Selection| value.clone().map(make);
        pick(&self.encrypted_regex, Selection::EncryptedRegex)
            .or_else(|| pick(&self.encrypted_suffix, Selection::EncryptedSuffix))
            .or_else(|| pick(&self.unencrypted_regex, Selection::UnencryptedRegex))
            .or_else(|| pick(&self.unencrypted_suffix, Selection::UnencryptedSuffix))
            .or_else(|| {
                pick(
                    &self.encrypted_comment_regex,
                    Selection::EncryptedCommentRegex,
                )
            })
            .or_else(|| {
                pick(
                    &self.unencrypted_comment_regex,
                    Selection::UnencryptedCommentRegex,
                )
            })
    }
}

/// Encrypt a plaintext file with the recipients of its `.sops.yaml` rule; prints the result
/// unless `--in-place` or `--output`.
///
/// The flags override the rule as in sops: `--age` replaces its keys (one key group), a
/// suffix/regex flag its selection, `--shamir-secret-sharing-threshold` its threshold, and
/// `--mac-only-encrypted` adds to it.
#[derive(Debug, Args)]
pub(crate) struct EncryptArgs {
    /// The plaintext file (YAML, JSON, dotenv, or anything else as binary); `-` reads
    /// standard input
    file: PathBuf,

    /// Replace the file with its encrypted version instead of printing it
    #[arg(long, short = 'i', conflicts_with = "output")]
    in_place: bool,

    /// Write the encrypted file here instead of printing it
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    #[command(flatten)]
    types: TypeArgs,

    /// Encrypt to these age recipients (comma-separated) instead of the rule's; default
    /// `$SOPS_AGE_RECIPIENTS`
    #[arg(long, short = 'a', value_name = "RECIPIENTS")]
    age: Option<String>,

    #[command(flatten)]
    selection: SelectionArgs,

    /// Leave the unencrypted values out of the MAC, so they can change without breaking it
    #[arg(long)]
    mac_only_encrypted: bool,

    /// How many key groups are needed to open the file
    #[arg(long, value_name = "N")]
    shamir_secret_sharing_threshold: Option<usize>,

    /// Spaces per YAML level (default: `.sops.yaml` `stores.yaml.indent`, else 4)
    #[arg(long, value_name = "N")]
    indent: Option<usize>,
}

pub(super) fn encrypt(args: &EncryptArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let input = args.types.read(&args.file)?;
    let from_env = std::env::var("SOPS_AGE_RECIPIENTS").ok();
    let age = args
        .age
        .as_deref()
        .or(from_env.as_deref())
        .filter(|age| !age.trim().is_empty());
    if input.file.is_none() && age.is_none() && args.types.filename_override.is_none() {
        bail!(
            "encrypting standard input needs --filename-override to find its `.sops.yaml` \
             rule, or --age"
        );
    }
    let options = encrypt_options_with(
        config,
        &input.path,
        &Overrides {
            age,
            selection: args.selection.selection(),
            mac_only_encrypted: args.mac_only_encrypted,
            shamir_threshold: args.shamir_secret_sharing_threshold,
        },
    )?;
    let named = input.file.clone().unwrap_or_else(|| input.path.clone());
    let mut file = SopsFile::encrypt(&named, input.format, &input.content, &options)?;
    if let Some(format) = args.types.output_type {
        file.set_format(format);
    }
    apply_stores(
        &mut file,
        find_config(config, &input.path).ok().flatten().as_ref(),
    );
    if let Some(indent) = args.indent {
        file.set_yaml_indent(indent);
    }
    if args.in_place && input.file.is_some() {
        // Replaced atomically, keeping the file's permissions.
        return Ok(file.write()?);
    }
    emit(
        &file.to_bytes(),
        &input,
        args.in_place,
        args.output.as_deref(),
        false,
    )
}

/// Decrypt a file and print its plaintext, or one value of it.
#[derive(Debug, Args)]
pub(crate) struct DecryptArgs {
    /// The encrypted file; `-` reads standard input
    file: PathBuf,

    /// Print only the value at this path, e.g. '["data"]["password"]' or '["list"][0]'
    #[arg(long, value_name = "PATH")]
    extract: Option<String>,

    /// Write the plaintext to this file (mode 0600, replaced atomically) instead
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,

    /// Replace the encrypted file with its plaintext (mode 0600), as `sops decrypt -i` does
    #[arg(long, short = 'i', conflicts_with_all = ["output", "extract"])]
    in_place: bool,

    /// Do not verify the MAC: for recovering a file whose structure changed. Every value is
    /// still authenticated on its own; a warning says the MAC was not checked
    #[arg(long)]
    ignore_mac: bool,

    #[command(flatten)]
    types: TypeArgs,
}

pub(super) fn decrypt(args: &DecryptArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let input = args.types.read(&args.file)?;
    let identities = identities()?;
    let mut file = SopsFile::parse(&input.path, input.format, &input.content)?;
    apply_stores(
        &mut file,
        find_config(config, &input.path).ok().flatten().as_ref(),
    );
    if args.ignore_mac {
        note(format_args!(
            "warning: {}: the MAC is not verified (--ignore-mac): values may have been \
             removed, added or reordered",
            input.path.display()
        ))?;
    }
    let options = DecryptOptions {
        verify_mac: !args.ignore_mac,
    };
    let mut decrypted = file.decrypt_with(&identities, &options)?;
    if let Some(format) = args.types.output_type {
        decrypted.set_format(format);
    }
    let plaintext = match &args.extract {
        Some(path) => decrypted.extract(path)?,
        None => decrypted.to_plaintext(),
    };
    emit(
        &plaintext,
        &input,
        args.in_place,
        args.output.as_deref(),
        true,
    )
}
