//! `capstan secrets new-sopssecret`: an encrypted `SopsSecret` for the sops-secrets-operator,
//! built and encrypted in memory so the literals never reach the disk in plaintext.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::bail;
use capstan_secrets::{Entry, Format, Item, Map, Selection, SopsFile, Tree, Value};
use clap::Args;

use super::{encrypt_options, note};

/// Write an encrypted `SopsSecret` (isindir.github.com/v1alpha3) holding one Secret made of
/// literal values. Only `spec.secretTemplates` is encrypted (`encrypted_suffix: Templates`),
/// as the operator requires.
#[derive(Debug, Args)]
pub(super) struct NewSopsSecretArgs {
    /// Name of the SopsSecret and of the Secret it creates
    #[arg(long)]
    name: String,

    /// Namespace of the SopsSecret (the Secret is created next to it)
    #[arg(long)]
    namespace: String,

    /// A key and its value, as KEY=VALUE; repeat for more keys
    #[arg(long = "from-literal", value_name = "KEY=VALUE", required = true)]
    literals: Vec<String>,

    /// The Secret's type (the operator defaults to Opaque)
    #[arg(long = "type", value_name = "TYPE")]
    secret_type: Option<String>,

    /// Write the encrypted SopsSecret to this file instead of printing it; its `.sops.yaml`
    /// rule gives the recipients unless `--age` does
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Encrypt to these age recipients (comma-separated) instead of the rule's
    #[arg(long, value_name = "RECIPIENTS")]
    age: Option<String>,
}

pub(super) fn new_sops_secret(
    args: &NewSopsSecretArgs,
    config: Option<&Path>,
) -> anyhow::Result<()> {
    let Some(path) = args.output.clone().or_else(|| {
        args.age
            .is_some()
            .then(|| PathBuf::from(format!("{}.sopssecret.yaml", args.name)))
    }) else {
        bail!("say who can open the SopsSecret: --output FILE (its `.sops.yaml` rule) or --age");
    };
    let mut options = encrypt_options(config, &path, args.age.as_deref())?;
    // The operator's CRD has no key groups: a Shamir-split key would be pruned by the API
    // server and the operator could not decrypt.
    if options.recipients.groups.len() > 1 {
        bail!(
            "the creation rule for `{}` has several key groups, which a SopsSecret cannot hold",
            path.display()
        );
    }
    // apiVersion, kind and metadata must stay readable for the API server; the operator
    // documents `--encrypted-suffix Templates` for exactly this.
    options.selection = Selection::EncryptedSuffix("Templates".to_owned());
    let tree = Tree {
        documents: vec![sops_secret(args)?],
    };
    let file = SopsFile::encrypt_tree(&path, Format::Yaml, tree, &options)?;
    match &args.output {
        Some(output) => {
            file.write()?;
            note(format_args!(
                "{}: SopsSecret {}/{} written",
                output.display(),
                args.namespace,
                args.name
            ))?;
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&file.to_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// The plaintext SopsSecret; every value is a string, as the operator's `map[string]string`
/// needs.
fn sops_secret(args: &NewSopsSecretArgs) -> anyhow::Result<Map> {
    let mut string_data = Map::default();
    for literal in &args.literals {
        // The argument may be a bare secret, so it is never quoted in errors.
        let Some((key, value)) = literal.split_once('=') else {
            bail!("a --from-literal argument has no `=`: expected KEY=VALUE");
        };
        if key.is_empty() {
            bail!("a --from-literal argument has an empty key: expected KEY=VALUE");
        }
        if string_data.get(key).is_some() {
            bail!("--from-literal gives the key `{key}` twice");
        }
        string_data.insert(key, Value::Str(value.to_owned()));
    }
    let mut template = map([("name", text(&args.name))]);
    if let Some(secret_type) = &args.secret_type {
        template.insert("type", text(secret_type));
    }
    template.insert("stringData", Value::Map(string_data));
    Ok(map([
        ("apiVersion", text("isindir.github.com/v1alpha3")),
        ("kind", text("SopsSecret")),
        (
            "metadata",
            Value::Map(map([
                ("name", text(&args.name)),
                ("namespace", text(&args.namespace)),
            ])),
        ),
        (
            "spec",
            Value::Map(map([(
                "secretTemplates",
                Value::Seq(vec![Item::Value(Value::Map(template))]),
            )])),
        ),
    ]))
}

fn text(value: &str) -> Value {
    Value::Str(value.to_owned())
}

fn map<const N: usize>(pairs: [(&str, Value); N]) -> Map {
    Map {
        entries: pairs
            .into_iter()
            .map(|(key, value)| Entry::Pair(key.to_owned(), value))
            .collect(),
    }
}
