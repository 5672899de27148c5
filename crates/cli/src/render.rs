//! `capstan render` and `capstan validate`.

use std::collections::BTreeMap;
use std::io::Write;

use capstan_manifest::{Error, Format, Manifest, Problem};
use clap::{Args, ValueEnum};
use serde::Serialize;

use crate::stage::StageArgs;
use crate::{ExitCode, Failure};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RenderOutput {
    /// A v1 List as YAML
    Yaml,
    /// A v1 List as JSON
    Json,
    /// One object identity per line, in apply order
    Names,
}

/// Print a stage's objects as one ordered, labelled List.
#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    #[command(flatten)]
    stage: StageArgs,

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "yaml")]
    output: RenderOutput,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ValidateOutput {
    /// A summary for people
    Text,
    /// The result as JSON, problems included
    Json,
}

/// Check a stage's manifests and print a summary; every problem is reported, one per line.
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

    /// Output format
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    output: ValidateOutput,
}

pub(crate) fn render(args: &RenderArgs) -> Result<ExitCode, Failure> {
    let loaded = args.stage.load_selected()?;
    let mut stdout = std::io::stdout().lock();
    match args.output {
        RenderOutput::Yaml => loaded.manifest.write(Format::Yaml, &mut stdout)?,
        RenderOutput::Json => loaded.manifest.write(Format::Json, &mut stdout)?,
        RenderOutput::Names => {
            for object in &loaded.manifest {
                writeln!(stdout, "{}", object.id())?;
            }
            stdout.flush()?;
        }
    }
    Ok(ExitCode::Success)
}

#[derive(Serialize)]
struct Report<'a> {
    valid: bool,
    objects: usize,
    waves: usize,
    discriminator: Option<String>,
    problems: Vec<ProblemReport<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<ServerReport>,
}

/// What the API server said of the objects.
#[derive(Serialize)]
struct ServerReport {
    context: String,
    /// Objects the server accepted in a dry run.
    accepted: usize,
    /// Objects of kinds whose CRD the stage itself installs: no schema to check them against.
    unchecked: Vec<String>,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct ProblemReport<'a> {
    source: &'a str,
    line: usize,
    document: usize,
    item: Option<usize>,
    object: Option<String>,
    kind: String,
    message: &'a str,
}

impl<'a> From<&'a Problem> for ProblemReport<'a> {
    fn from(problem: &'a Problem) -> Self {
        let location = problem.location();
        Self {
            source: location.source(),
            line: location.line(),
            document: location.document(),
            item: location.item(),
            object: problem.object().map(ToString::to_string),
            kind: format!("{:?}", problem.kind()),
            message: problem.message(),
        }
    }
}

pub(crate) fn validate(args: &ValidateArgs) -> Result<ExitCode, Failure> {
    let json = matches!(args.output, ValidateOutput::Json);
    let loaded = match args.stage.load_selected() {
        Err(error) if json => match error.downcast_ref::<Error>() {
            Some(Error::Invalid(problems)) => {
                let problems = problems.iter().map(ProblemReport::from).collect();
                let report = Report {
                    valid: false,
                    objects: 0,
                    waves: 0,
                    discriminator: None,
                    problems,
                    server: None,
                };
                print_json(&report)?;
                return Ok(ExitCode::Failure);
            }
            _ => return Err(error.into()),
        },
        other => other?,
    };
    let manifest = &loaded.manifest;
    let server = match args.server {
        true => Some(check_on_server(&args.cluster, &loaded)?),
        false => None,
    };
    let valid = server.as_ref().is_none_or(|s| s.problems.is_empty());
    if json {
        let discriminator = manifest.label().map(|label| label.selector());
        let report = Report {
            valid,
            objects: manifest.len(),
            waves: manifest.waves().count(),
            discriminator,
            problems: Vec::new(),
            server,
        };
        print_json(&report)?;
    } else {
        print_summary(&loaded.what, manifest, server.is_some())?;
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
        let objects = plan.objects();
        Ok(ServerReport {
            context: cluster.context,
            // Unchanged objects were accepted when they were applied.
            accepted: objects
                .iter()
                .filter(|o| o.error().is_none())
                .filter(|o| o.is_verified() || o.action() == capstan_apply::Action::Unchanged)
                .count(),
            unchecked: objects
                .iter()
                .filter(|o| {
                    !o.is_verified()
                        && o.error().is_none()
                        && o.action() != capstan_apply::Action::Unchanged
                })
                .map(|o| o.id().to_string())
                .collect(),
            problems: plan.errors().map(ToString::to_string).collect(),
        })
    })
}

fn print_server(server: &ServerReport) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for problem in &server.problems {
        writeln!(stdout, "{problem}")?;
    }
    for id in &server.unchecked {
        writeln!(stdout, "not checked (its CRD comes with the stage): {id}")?;
    }
    writeln!(
        stdout,
        "server check on context {:?}: {} accepted, {} not checkable, {} problems",
        server.context,
        server.accepted,
        server.unchecked.len(),
        server.problems.len()
    )
}

fn print_json(report: &Report<'_>) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, report)?;
    writeln!(stdout)
}

/// The stage's shape. With a server check the verdict comes after the server's problems, so
/// this line speaks only of the offline checks.
fn print_summary(what: &str, manifest: &Manifest, server: bool) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let label = manifest.label().map_or_else(String::new, |label| {
        format!(", labelled {}", label.selector())
    });
    let scope = if server { " offline" } else { "" };
    writeln!(
        stdout,
        "{what}: {} objects in {} waves{label}, no problems{scope}",
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
