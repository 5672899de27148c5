//! `capstan capi scale` and `capstan capi status`: ClusterAPI's counts and health.

use std::io::Write as _;

use anyhow::Context as _;
use capstan_capi::scale::{Change, ScaleKind};
use capstan_capi::{Health, Row, ScaleRequest, Scaled, State, TreeOptions, inventory, scale, tree};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cluster::{ClusterArgs, block_on};
use crate::output::{self, OutputArgs};
use crate::stage::StageArgs;
use crate::{ExitCode, Failure};

/// ClusterAPI: scale machine pools and control planes, show a cluster's state
#[derive(Debug, Args)]
pub(crate) struct CapiArgs {
    #[command(subcommand)]
    command: CapiCommand,
}

#[derive(Debug, Subcommand)]
enum CapiCommand {
    Scale(ScaleArgs),
    Status(StatusArgs),
}

/// Scale a MachineDeployment, MachineSet or KubeadmControlPlane through its /scale
/// subresource, refusing counts ClusterAPI would refuse or revert
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("count").required(true).args(["replicas", "by"]))]
struct ScaleArgs {
    /// What to scale: KIND/NAME, KIND one of machinedeployment (md), machineset (ms),
    /// kubeadmcontrolplane (kcp)
    #[arg(value_name = "KIND/NAME")]
    target: String,

    /// The namespace
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,

    /// The replica count to set
    #[arg(long, value_name = "N")]
    replicas: Option<i32>,

    /// Change the count by this much (+2, -1)
    #[arg(long, value_name = "+N|-N", allow_hyphen_values = true)]
    by: Option<i32>,

    /// Let the server check the change without making it
    #[arg(long)]
    dry_run: bool,

    /// Also set the count in the manifest file that holds it (a plain YAML file of the stage
    /// or -f), changing only that value
    #[arg(long)]
    write_back: bool,

    /// Name the manifest that holds the count in git (--project, --stage or -f)
    #[command(flatten)]
    stage: StageArgs,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Show a cluster as a tree of its control plane, workers, machines and health checks, as
/// `clusterctl describe cluster` does; exits 1 when anything is not ready
#[derive(Debug, Args)]
struct StatusArgs {
    /// The Cluster [default: every Cluster of the namespace]
    cluster_name: Option<String>,

    /// The namespace
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,

    /// Show MachineSets between MachineDeployments and their Machines
    #[arg(long)]
    show_machinesets: bool,

    /// One row per Machine, even where their conditions agree
    #[arg(long)]
    no_grouping: bool,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// `capstan capi scale -o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScaleReport<'a> {
    #[serde(flatten)]
    scaled: &'a Scaled,
    /// Where git holds the count, when a stage was named and holds the object.
    manifest: Option<ManifestCount>,
    /// Whether `--write-back` changed the manifest file.
    written: bool,
    requests: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestCount {
    file: String,
    line: usize,
    field: &'static str,
    replicas: Option<i64>,
}

/// `capstan capi status -o json`.
#[derive(Serialize)]
struct StatusReport<'a> {
    healthy: bool,
    items: &'a [Row],
    requests: usize,
}

pub(crate) fn run(args: &CapiArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        CapiCommand::Scale(args) => run_scale(args),
        CapiCommand::Status(args) => run_status(args),
    }
}

fn run_scale(args: &ScaleArgs) -> Result<ExitCode, Failure> {
    let (kind, name) = args
        .target
        .split_once('/')
        .and_then(|(kind, name)| Some((ScaleKind::parse(kind)?, name)))
        .with_context(|| {
            format!(
                "`{}` is not KIND/NAME with KIND one of machinedeployment (md), machineset (ms), \
                 kubeadmcontrolplane (kcp)",
                args.target
            )
        })?;
    let change = match (args.replicas, args.by) {
        (Some(count), _) => Change::To(count),
        (None, Some(delta)) => Change::By(delta),
        (None, None) => unreachable!("clap requires one of --replicas and --by"),
    };
    if args.write_back && !args.stage.named() {
        return Err(anyhow::anyhow!(
            "--write-back needs the manifests that hold the count: pass --stage, --project or -f"
        )
        .into());
    }
    let manifest = args.stage.named().then(|| args.stage.load()).transpose()?;
    let mut request = ScaleRequest::new(kind, &args.namespace, name, change);
    request.dry_run = args.dry_run;
    let (scaled, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let scaled = scale(&api, &catalog, &request).await?;
        Ok((scaled, api.requests()))
    })?;
    let held = manifest.as_ref().and_then(|loaded| {
        let object = loaded
            .manifest
            .iter()
            .find(|object| *object.id() == scaled.object)?;
        let replicas =
            serde_json::from_str::<serde_json::Value>(object.json()).ok()?["spec"]["replicas"]
                .as_i64();
        Some(ManifestCount {
            file: object.location().source().to_owned(),
            line: object.location().line(),
            field: "spec.replicas",
            replicas,
        })
    });
    let written = match &held {
        Some(held)
            if args.write_back
                && !scaled.dry_run
                && held.replicas != Some(i64::from(scaled.to)) =>
        {
            write_back(held, scaled.to)?;
            true
        }
        _ => false,
    };
    if args.output.json() {
        output::print(&ScaleReport {
            scaled: &scaled,
            manifest: held,
            written,
            requests,
        })?;
        return Ok(ExitCode::Success);
    }
    let mut out = std::io::stdout().lock();
    let checked = if scaled.dry_run {
        " (dry run: checked, not changed)"
    } else {
        ""
    };
    writeln!(
        out,
        "{}: replicas {} -> {}{checked}",
        scaled.object, scaled.from, scaled.to
    )?;
    match held {
        Some(held) if written => {
            writeln!(
                out,
                "git: set `spec.replicas` to {} in {}:{}",
                scaled.to, held.file, held.line
            )?;
        }
        Some(held) if held.replicas != Some(i64::from(scaled.to)) => writeln!(
            out,
            "git: `spec.replicas` of the object at {}:{} says {}; change it to {} so the next \
             deploy keeps this count",
            held.file,
            held.line,
            held.replicas
                .map_or_else(|| "nothing (1)".to_owned(), |count| count.to_string()),
            scaled.to
        )?,
        Some(held) => writeln!(
            out,
            "git: {}:{} already says {}",
            held.file, held.line, scaled.to
        )?,
        None if manifest.is_some() => {
            writeln!(out, "git: the stage does not hold {}", scaled.object)?
        }
        None => {}
    }
    Ok(ExitCode::Success)
}

/// Sets the count in the file that holds it, changing that value only, through a temporary
/// file and a rename so that a failure leaves the file as it was.
fn write_back(held: &ManifestCount, to: i32) -> anyhow::Result<()> {
    let path = std::path::Path::new(&held.file);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--write-back: cannot read {}", held.file))?;
    let edited = capstan_manifest::set_scalar(
        &text,
        held.line,
        &["spec", "replicas"],
        &to.to_string(),
    )
    .with_context(|| {
        format!(
            "--write-back: `spec.replicas` of the object at {}:{} is not a plain value on its \
                 own line (or is missing); the cluster has {to}, change the file by hand",
            held.file, held.line
        )
    })?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("--write-back: cannot write beside {}", held.file))?;
    temporary.write_all(edited.as_bytes())?;
    // A temporary file is private; the manifest keeps the mode it had.
    let mode = std::fs::metadata(path)?.permissions();
    temporary.as_file().set_permissions(mode)?;
    temporary
        .persist(path)
        .with_context(|| format!("--write-back: cannot replace {}", held.file))?;
    Ok(())
}

fn run_status(args: &StatusArgs) -> Result<ExitCode, Failure> {
    let (objects, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let objects = inventory(&api, &catalog, Some(&args.namespace)).await?;
        Ok((objects, api.requests()))
    })?;
    let names: Vec<String> = match &args.cluster_name {
        Some(name) => vec![name.clone()],
        None => objects
            .clusters
            .iter()
            .filter_map(|cluster| cluster["metadata"]["name"].as_str().map(str::to_owned))
            .collect(),
    };
    let mut options = TreeOptions::default();
    options.machine_sets = args.show_machinesets;
    options.no_grouping = args.no_grouping;
    let rows = names
        .iter()
        .map(|name| {
            tree(&objects, name, options)
                .with_context(|| format!("no Cluster {name} in namespace {}", args.namespace))
        })
        .collect::<anyhow::Result<Vec<Row>>>()?;
    let healthy = !rows.is_empty() && rows.iter().all(|row| row.verdict() == Health::Healthy);
    if args.output.json() {
        output::print(&StatusReport {
            healthy,
            items: &rows,
            requests,
        })?;
    } else {
        let now = now();
        let mut lines = Vec::new();
        for row in &rows {
            draw(row, "", "", now, &mut lines);
        }
        write_table(&lines)?;
        if rows.is_empty() {
            writeln!(
                std::io::stderr(),
                "no Cluster in namespace {}",
                args.namespace
            )?;
        }
    }
    Ok(if healthy {
        ExitCode::Success
    } else {
        ExitCode::Differences
    })
}

/// One table line: the tree-prefixed name and the columns after it.
type Line = [String; 6];

/// Draws `row` and its children with clusterctl's prefixes: `├─` and `└─`, continued by `│ `
/// and two spaces.
fn draw(row: &Row, prefix: &str, children_prefix: &str, now: i64, lines: &mut Vec<Line>) {
    let deleting = if row.deleting { "!! DELETED !! " } else { "" };
    let ready = match row.ready {
        Some(State::True) => "True",
        Some(State::False) => "False",
        Some(State::Unknown) => "Unknown",
        None => "",
    };
    let mut message = row.message.clone().unwrap_or_default().replace('\n', " ");
    if message.chars().count() > 100 {
        message = format!("{} ...", message.chars().take(100).collect::<String>());
    }
    lines.push([
        capstan_manifest::escape_controls(&format!("{prefix}{deleting}{}", row.label)).into_owned(),
        ready.to_owned(),
        row.severity.clone().unwrap_or_default(),
        row.reason.clone().unwrap_or_default(),
        row.since
            .as_deref()
            .map(|since| age(since, now))
            .unwrap_or_default(),
        capstan_manifest::escape_controls(&message).into_owned(),
    ]);
    for (index, child) in row.children.iter().enumerate() {
        let last = index + 1 == row.children.len();
        let (branch, continued) = if last {
            ("└─", "  ")
        } else {
            ("├─", "│ ")
        };
        draw(
            child,
            &format!("{children_prefix}{branch}"),
            &format!("{children_prefix}{continued}"),
            now,
            lines,
        );
    }
}

fn write_table(lines: &[Line]) -> std::io::Result<()> {
    let header = ["NAME", "READY", "SEVERITY", "REASON", "SINCE", "MESSAGE"].map(str::to_owned);
    let all: Vec<&Line> = std::iter::once(&header).chain(lines).collect();
    let width = |column: usize| {
        all.iter()
            .map(|line| line[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..6).map(width).collect();
    let mut out = std::io::stdout().lock();
    for line in all {
        let mut text = String::new();
        for (column, cell) in line.iter().enumerate() {
            if column == 5 {
                text.push_str(cell);
            } else {
                let pad = widths[column] - cell.chars().count();
                text.push_str(&format!("{cell}{}  ", " ".repeat(pad)));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            elapsed.as_secs().try_into().unwrap_or(i64::MAX)
        })
}

/// A condition's age as kubectl shows ages: `45s`, `12m`, `5h`, `3d`.
fn age(since: &str, now: i64) -> String {
    let Ok(then) = since.parse::<k8s_openapi::jiff::Timestamp>() else {
        return String::new();
    };
    let seconds = (now - then.as_second()).max(0);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..7200 => format!("{}m", seconds / 60),
        7200..172_800 => format!("{}h", seconds / 3600),
        _ => format!("{}d", seconds / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_as_kubectl_writes_them() {
        let then = "2026-12-02T10:00:00Z";
        let at = |seconds: i64| age(then, 1_796_205_600 + seconds);
        assert_eq!(at(45), "45s");
        assert_eq!(at(600), "10m");
        assert_eq!(at(5 * 3600), "5h");
        assert_eq!(at(3 * 86_400), "3d");
        assert_eq!(age("not a time", 0), "");
    }
}
