//! `capstan secrets rotate-key`: the age key rotation runbook as one command.
//!
//! The order keeps every step safe to stop after: the new identity is saved first, then the
//! new recipient is added (never the old one removed), so a failure at any point leaves every
//! file readable by the old key, and the operator's key file keeps the old identity next to
//! the new one.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use capstan_secrets::{
    CheckOptions, Config, Error, HandOverEvent, HandOverPlan, Identities, Identity, KeyChanges,
    OperatorOptions, Recipient, Recipients, SopsFile,
};
use clap::{ArgGroup, Args};
use zeroize::Zeroizing;

use super::{identities, load_config, note};
use crate::prompt::{ask, stdin_is_terminal};

/// Add a new age recipient everywhere and hand the new key to the cluster: extend every
/// `.sops.yaml` rule that has age recipients, give every matched file's data key to it
/// (`updatekeys`), and with `--cluster` put the new identity into the sops-secrets-operator's
/// key Secret (keeping the old one) and restart the operator. The old recipient is not
/// removed: that is a separate step once everything reads with the new key.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("new_key")
        .required(true)
        .multiple(true)
        .args(["new_recipient", "new_identity_file", "output"])
))]
pub(super) struct RotateKeyArgs {
    /// The age recipient to add (taken from the identity when --new-identity-file is given)
    #[arg(long, value_name = "RECIPIENT")]
    new_recipient: Option<String>,

    /// The new identity, a key file holding one `AGE-SECRET-KEY-1…` (needed for --cluster
    /// unless --output generates one)
    #[arg(long, value_name = "FILE", conflicts_with = "output")]
    new_identity_file: Option<PathBuf>,

    /// Generate the new identity into this new file (mode 0600; never overwritten)
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        conflicts_with = "new_recipient"
    )]
    output: Option<PathBuf>,

    /// Files and folders whose encrypted files get the new recipient (folders recursively,
    /// hidden ones skipped)
    #[arg(default_value = ".")]
    paths: Vec<PathBuf>,

    /// Do not ask for confirmation (needed when standard input is not a terminal)
    #[arg(long, short = 'y')]
    yes: bool,

    /// Also put the new identity into the operator's key Secret and restart the operator
    #[arg(long)]
    cluster: bool,

    /// The kubeconfig context to use instead of the current one
    #[arg(long, requires = "cluster")]
    context: Option<String>,

    /// The operator's namespace
    #[arg(long, default_value = "sops-secrets-operator")]
    namespace: String,

    /// The Secret the operator reads its age key file from
    #[arg(long, default_value = "sops-age-key")]
    secret: String,

    /// The Secret's key that holds the key file
    #[arg(long, default_value = "age.key")]
    key: String,

    /// The operator's Deployment, restarted to read the new key
    #[arg(long, default_value = "sops-secrets-operator")]
    deployment: String,

    /// Wait until the restarted operator's rollout is done
    #[arg(long, requires = "cluster")]
    wait: bool,

    /// How long --wait waits, e.g. `90s`, `5m`
    #[arg(long, default_value = "5m", value_parser = crate::duration)]
    timeout: Duration,
}

/// The new key: its recipient and, when known, the key file text for the operator.
struct NewKey {
    recipient: Recipient,
    key_file: Option<Zeroizing<String>>,
    /// A generated identity and the file to save it to, once the rotation is confirmed.
    generated: Option<(Identity, PathBuf)>,
}

/// What was done, printed at the end whether or not everything succeeded.
#[derive(Default)]
struct Summary {
    config_updated: bool,
    files_updated: usize,
    files_failed: usize,
    secret_updated: bool,
    restarted: bool,
    rolled_out: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yes_no = |done: bool| if done { "yes" } else { "no" };
        writeln!(f, "summary:")?;
        writeln!(f, "  .sops.yaml updated:   {}", yes_no(self.config_updated))?;
        writeln!(f, "  files updated:        {}", self.files_updated)?;
        writeln!(f, "  files failed:         {}", self.files_failed)?;
        writeln!(f, "  key Secret updated:   {}", yes_no(self.secret_updated))?;
        writeln!(f, "  operator restarted:   {}", yes_no(self.restarted))?;
        writeln!(f, "  rollout finished:     {}", yes_no(self.rolled_out))?;
        write!(
            f,
            "  old recipient removed: no (a separate step: remove it from `.sops.yaml`, then \
             run `capstan secrets updatekeys` and `capstan secrets rotate`)"
        )
    }
}

pub(super) fn rotate_key(args: &RotateKeyArgs, config: Option<&Path>) -> anyhow::Result<()> {
    let new_key = new_key(args)?;
    let recipient = &new_key.recipient;
    let start = args.paths.first().map_or(Path::new("."), PathBuf::as_path);
    let config = load_config(config, start)?;
    let config_path = config.path().to_owned();
    let text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("cannot read `{}`", config_path.display()))?;
    let new_text = Config::add_recipient(&config_path, &text, recipient)?;
    let new_config = match &new_text {
        Some(text) => Config::parse(&config_path, text)?,
        None => config,
    };
    let plan = plan(&args.paths, &new_config)?;

    {
        let mut stderr = std::io::stderr().lock();
        match &new_text {
            Some(_) => writeln!(
                stderr,
                "{}: add {recipient} to the creation rules with age recipients",
                config_path.display()
            )?,
            None => writeln!(
                stderr,
                "{}: every rule with age recipients has {recipient} already",
                config_path.display()
            )?,
        }
        for file in &plan {
            writeln!(stderr, "{}: new recipients:", file.path().display())?;
            for (sign, recipients) in [("+", &file.changes.added), ("-", &file.changes.removed)] {
                for recipient in recipients {
                    writeln!(stderr, "  {sign} {recipient}")?;
                }
            }
        }
        if args.cluster {
            writeln!(
                stderr,
                "cluster: put the new identity into Secret {}/{} (key `{}`, keeping the \
                 identities there), then restart Deployment {}/{}",
                args.namespace, args.secret, args.key, args.namespace, args.deployment
            )?;
        }
    }
    if !args.yes {
        if !stdin_is_terminal() {
            bail!("nothing changed: standard input is not a terminal to confirm on; pass --yes");
        }
        if !ask("Rotate the key?", false)? {
            note(format_args!("nothing changed"))?;
            return Ok(());
        }
    }

    let mut summary = Summary::default();
    let result = apply(
        args,
        &new_key,
        &config_path,
        new_text.as_deref(),
        plan,
        &mut summary,
    );
    note(format_args!("{summary}"))?;
    result
}

/// The new recipient and identity from the arguments.
fn new_key(args: &RotateKeyArgs) -> anyhow::Result<NewKey> {
    let given = args
        .new_recipient
        .as_deref()
        .map(str::parse::<Recipient>)
        .transpose()?;
    if let Some(path) = &args.output {
        if path.exists() {
            bail!(
                "`{}` exists already; it is never overwritten",
                path.display()
            );
        }
        let identity = Identity::generate();
        return Ok(NewKey {
            recipient: identity.recipient(),
            key_file: Some(identity.to_new_key_file()),
            generated: Some((identity, path.clone())),
        });
    }
    let Some(path) = &args.new_identity_file else {
        if args.cluster {
            bail!("--cluster needs the new identity: pass --new-identity-file or --output");
        }
        return Ok(NewKey {
            recipient: given.expect("clap requires one of the new key arguments"),
            key_file: None,
            generated: None,
        });
    };
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?,
    );
    let identities = Identities::parse(&format!("`{}`", path.display()), &text)?;
    let recipients: Vec<Recipient> = identities.recipients().collect();
    let [recipient] = recipients.as_slice() else {
        bail!(
            "`{}` holds {} identities; the new key file must hold exactly one",
            path.display(),
            recipients.len()
        );
    };
    if given.as_ref().is_some_and(|given| given != recipient) {
        bail!(
            "the identity in `{}` is for {recipient}, not for --new-recipient",
            path.display()
        );
    }
    Ok(NewKey {
        recipient: recipient.clone(),
        key_file: Some(text),
        generated: None,
    })
}

/// One file to re-key: the file, the recipients its rule names and how they differ.
struct Planned {
    file: SopsFile,
    recipients: Recipients,
    changes: KeyChanges,
}

impl Planned {
    fn path(&self) -> &Path {
        self.file.path()
    }
}

/// The encrypted files under `paths` whose recipients differ from their rule in `config`.
fn plan(paths: &[PathBuf], config: &Config) -> anyhow::Result<Vec<Planned>> {
    let options = CheckOptions {
        config,
        identities: None,
    };
    let report = capstan_secrets::check(paths, &options)?;
    let mut plan = Vec::new();
    for path in &report.checked {
        let file = match SopsFile::read(path) {
            Ok(file) => file,
            // A plaintext file a rule matches has no data key to hand over; `check` reports it.
            Err(Error::NotEncrypted { .. } | Error::Syntax { .. }) => {
                note(format_args!("{}: not encrypted, skipped", path.display()))?;
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        let recipients = config.rule_for(path)?.recipients().clone();
        let changes = file.key_changes(&recipients);
        if !changes.is_empty() {
            plan.push(Planned {
                file,
                recipients,
                changes,
            });
        }
    }
    Ok(plan)
}

/// Carries out the confirmed plan, recording each step in `summary`.
fn apply(
    args: &RotateKeyArgs,
    new_key: &NewKey,
    config_path: &Path,
    new_text: Option<&str>,
    plan: Vec<Planned>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    // Found before anything changes: without them no file could be re-keyed.
    let identities = if plan.is_empty() {
        Identities::new()
    } else {
        identities()?
    };
    // Saved before anything else changes, so no file is ever encrypted to a key nobody holds.
    if let Some((identity, path)) = &new_key.generated {
        identity.write_key_file(path)?;
        note(format_args!("{}: new identity written", path.display()))?;
    }
    if let Some(text) = new_text {
        Config::replace(config_path, text)?;
        summary.config_updated = true;
        note(format_args!("{}: recipient added", config_path.display()))?;
    }
    for mut planned in plan {
        // Each file is re-keyed with the same data key and written atomically, so it opens
        // with the old key whatever happens to the others.
        let result = planned
            .file
            .update_keys(&identities, &planned.recipients)
            .and_then(|_| planned.file.write());
        match result {
            Ok(()) => {
                summary.files_updated += 1;
                note(format_args!("{}: keys updated", planned.path().display()))?;
            }
            Err(error) => {
                summary.files_failed += 1;
                note(format_args!("error: {error}"))?;
            }
        }
    }
    if summary.files_failed > 0 {
        let cluster = if args.cluster {
            "; the cluster was left as it was"
        } else {
            ""
        };
        bail!(
            "{} file(s) could not be re-keyed{cluster}",
            summary.files_failed
        );
    }
    if args.cluster {
        let key_file = new_key
            .key_file
            .as_ref()
            .ok_or_else(|| anyhow!("--cluster needs the new identity"))?;
        crate::cluster::block_on(hand_over(args, key_file, summary))?;
    }
    Ok(())
}

/// Gives the operator the new identity and restarts it, noting each step as it is done.
async fn hand_over(
    args: &RotateKeyArgs,
    new_key_file: &str,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    // The one way capstan connects: the same kubeconfig rules and messages as every command.
    let client = crate::cluster::ClusterArgs::with_context(args.context.clone())
        .connect(None)
        .await?
        .client;
    let mut options = OperatorOptions::default();
    options.namespace.clone_from(&args.namespace);
    options.secret.clone_from(&args.secret);
    options.key.clone_from(&args.key);
    options.deployment.clone_from(&args.deployment);
    options.wait = args.wait.then_some(args.timeout);
    // The rotation as a whole was confirmed before any file changed.
    let mut confirm = |_: &HandOverPlan<'_>| true;
    let mut progress = |event: HandOverEvent<'_>| {
        let _ = match event {
            HandOverEvent::SecretUpdated { secret } => {
                summary.secret_updated = true;
                note(format_args!(
                    "{secret}: holds the new identity (and the previous ones)"
                ))
            }
            HandOverEvent::Restarted { deployment } => {
                summary.restarted = true;
                note(format_args!("{deployment}: restarted"))
            }
            HandOverEvent::RolledOut { deployment } => {
                summary.rolled_out = true;
                note(format_args!("{deployment}: rollout finished"))
            }
            _ => Ok(()),
        };
    };
    capstan_secrets::hand_over(client, new_key_file, &options, &mut confirm, &mut progress).await?;
    Ok(())
}
