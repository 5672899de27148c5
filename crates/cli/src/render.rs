//! `capstan render` and `capstan validate`.

use std::collections::{BTreeMap, HashSet};
use std::io::{IsTerminal as _, Write};

use capstan_apply::{Action, Plan};
use capstan_manifest::{Error, Format, Manifest, ObjectId};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::output::{self, Formats, OutputArgs, ProblemItem};
use crate::stage::StageArgs;
use crate::{ExitCode, Failure};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RenderOutput {
    /// A v1 List as YAML
    Yaml,
    /// A v1 List as JSON (the Kubernetes List itself, not a capstan report)
    Json,
    /// One object identity per line, in apply order
    Names,
}

impl Formats for RenderOutput {
    const DEFAULT: &'static str = "yaml";
}

/// Print a stage's objects as one ordered, labelled List
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    output: OutputArgs<RenderOutput>,

    /// Show the values kluctl templates took from SOPS-encrypted vars files instead of `***`
    /// (only when standard output is a terminal)
    #[arg(long)]
    show_secrets: bool,
}

/// Check a stage's manifests and print a summary; every problem is reported, one per line
#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    #[command(flatten)]
    stage: StageArgs,

    /// Also have a real API server check every object with a server-side dry run (schemas,
    /// admission), through the current kubeconfig context or --context (the stage's
    /// `context` rules as for deploy); `capstan local up` provides one. Writes nothing.
    #[arg(long)]
    server: bool,

    #[command(flatten)]
    cluster: crate::cluster::ClusterArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

pub(crate) fn render(args: &RenderArgs) -> Result<ExitCode, Failure> {
    let loaded = args.stage.load_selected()?;
    let mut stdout = std::io::stdout().lock();
    // A pipe or a file would keep the values; a person at a terminal asked to see them.
    if args.show_secrets && !stdout.is_terminal() {
        return Err(anyhow::anyhow!(
            "--show-secrets shows secret values on a terminal only, and standard output is not one"
        )
        .into());
    }
    let format = match args.output.output {
        RenderOutput::Yaml => Some(Format::Yaml),
        RenderOutput::Json => Some(Format::Json),
        RenderOutput::Names => None,
    };
    match format {
        Some(format) if args.show_secrets => loaded.manifest.write_revealed(format, &mut stdout)?,
        Some(format) => loaded.manifest.write(format, &mut stdout)?,
        None => {
            for object in &loaded.manifest {
                let id = object.id().to_string();
                writeln!(stdout, "{}", loaded.manifest.sensitive().mask(&id))?;
            }
            stdout.flush()?;
        }
    }
    Ok(ExitCode::Success)
}

/// `capstan validate -o json`.
#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    /// How many objects the manifests hold, those with problems included.
    objects: usize,
    /// `None` when problems kept the manifests from loading.
    waves: Option<usize>,
    discriminator: Option<String>,
    problems: Vec<ProblemItem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<usize>,
}

/// What the API server said of the objects.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerReport {
    context: String,
    /// Objects the server accepted in a dry run.
    accepted: usize,
    /// Objects of kinds whose CRD the stage itself installs: no schema to check them against.
    unchecked: Vec<ObjectId>,
    /// Objects in a Namespace of the stage that the server rejected: accepted only in
    /// another namespace, so not accepted.
    in_rejected_namespace: Vec<ObjectId>,
    problems: Vec<ServerProblem>,
    #[serde(skip)]
    requests: usize,
}

/// An object the server rejected.
#[derive(Serialize)]
struct ServerProblem {
    object: ObjectId,
    message: String,
}

pub(crate) fn validate(args: &ValidateArgs) -> Result<ExitCode, Failure> {
    let json = args.output.json();
    let loaded = match args.stage.load_selected() {
        Err(error) if json => match error.downcast_ref::<Error>() {
            Some(Error::Invalid(problems)) => {
                let report = Report {
                    valid: false,
                    objects: problems.objects(),
                    waves: None,
                    discriminator: None,
                    problems: problems.iter().map(ProblemItem::from).collect(),
                    server: None,
                    requests: None,
                };
                output::print(&report)?;
                return Ok(ExitCode::Failure);
            }
            _ => return Err(error.into()),
        },
        other => other?,
    };
    let manifest = &loaded.manifest;
    let server = if args.server {
        Some(check_on_server(&args.cluster, &loaded)?)
    } else {
        None
    };
    let valid = server.as_ref().is_none_or(|s| s.problems.is_empty());
    if json {
        let discriminator = manifest.label().map(|label| label.selector());
        let report = Report {
            valid,
            objects: manifest.len(),
            waves: Some(manifest.waves().count()),
            discriminator,
            problems: Vec::new(),
            requests: server.as_ref().map(|s| s.requests),
            server,
        };
        output::print(&report)?;
    } else {
        let verdict = match &server {
            None => "no problems",
            Some(server) if server.problems.is_empty() => "no problems",
            // The server's problems follow: this line must not read as a clean bill.
            Some(_) => "offline checks passed",
        };
        print_summary(&loaded.what, manifest, verdict)?;
        if let Some(server) = &server {
            print_server(server)?;
        }
    }
    Ok(if valid {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// A plan with every object dry-run, new ones included.
fn check_on_server(
    cluster: &crate::cluster::ClusterArgs,
    loaded: &crate::stage::Loaded,
) -> anyhow::Result<ServerReport> {
    let manifest = &loaded.manifest;
    let mut options = crate::deploy::stage_options(loaded);
    // Validation writes nothing: an object made by hand is checked like any other.
    options.adopt = true;
    let (options, secrets) = crate::deploy::decrypting(options, loaded);
    crate::cluster::block_on(async {
        let cluster = cluster.connect(loaded.context.as_deref()).await?;
        let deployer = capstan_apply::Deployer::new(cluster.client, options);
        let plan = deployer.plan(manifest, false, &|_| {}).await?;
        crate::deploy::warn_unverified(&secrets, &loaded.what);
        Ok(server_report(cluster.context, &plan, deployer.requests()))
    })
}

/// Sorts the plan's objects into accepted, not checkable, rejected, and held back by their
/// rejected Namespace (they were dry-run in another namespace, which proves their schema only).
fn server_report(context: String, plan: &Plan<'_>, requests: usize) -> ServerReport {
    let objects = plan.objects();
    let rejected: HashSet<&str> = objects
        .iter()
        .filter(|o| o.error().is_some() && o.id().is_namespace())
        .map(|o| o.id().name())
        .collect();
    let mut report = ServerReport {
        context,
        accepted: 0,
        unchecked: Vec::new(),
        in_rejected_namespace: Vec::new(),
        problems: Vec::new(),
        requests,
    };
    for object in objects {
        let id = object.id();
        if let Some(error) = object.error() {
            report.problems.push(ServerProblem {
                object: id.clone(),
                message: error.to_string(),
            });
        } else if id.namespace().is_some_and(|ns| rejected.contains(ns)) {
            report.in_rejected_namespace.push(id.clone());
        } else if object.is_verified() || object.action() == Action::Unchanged {
            // Unchanged objects were accepted when they were applied.
            report.accepted += 1;
        } else {
            report.unchecked.push(id.clone());
        }
    }
    report
}

fn print_server(server: &ServerReport) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for problem in &server.problems {
        writeln!(stdout, "{}", problem.message)?;
    }
    for id in &server.unchecked {
        writeln!(stdout, "not checked (its CRD comes with the stage): {id}")?;
    }
    for id in &server.in_rejected_namespace {
        writeln!(stdout, "not accepted (its Namespace was rejected): {id}")?;
    }
    let held = match server.in_rejected_namespace.len() {
        0 => String::new(),
        n => format!(", {n} in a rejected Namespace"),
    };
    writeln!(
        stdout,
        "server check on context {:?}: {} accepted, {} not checkable{held}, {} problems",
        server.context,
        server.accepted,
        server.unchecked.len(),
        server.problems.len()
    )
}

/// The stage's shape and the `verdict` on it.
fn print_summary(what: &str, manifest: &Manifest, verdict: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let label = manifest.label().map_or_else(String::new, |label| {
        format!(", labelled {}", label.selector())
    });
    writeln!(
        stdout,
        "{what}: {} objects in {} waves{label}, {verdict}",
        manifest.len(),
        manifest.waves().count()
    )?;
    let mut kinds: BTreeMap<(u32, capstan_manifest::Phase), BTreeMap<&str, usize>> =
        BTreeMap::new();
    for object in manifest {
        *kinds
            .entry((object.barrier_group(), object.phase()))
            .or_default()
            .entry(object.id().kind())
            .or_default() += 1;
    }
    for (number, ((group, phase), kinds)) in kinds.iter().enumerate() {
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, count)| format!("{count} {kind}"))
            .collect();
        writeln!(
            stdout,
            "  wave {} (barrier group {group}, {phase:?}): {}",
            number + 1,
            kinds.join(", ")
        )?;
    }
    Ok(())
}
