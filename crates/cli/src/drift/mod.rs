//! `capstan drift`: what differs between a stage and the cluster, field by field, and who
//! changed it; with `--watch` a continuous check, with `--heal` re-applied through the deploy
//! path, with `--metrics` counted for Prometheus.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use capstan_apply::{DeployRequest, Deployer, Options};
use capstan_drift::{ChangeKind, FieldDrift, ObjectDrift, Report, State, WatchEvent, WatchOptions};
use capstan_manifest::{ObjectId, Selection, Selector};
use clap::Args;
use serde::Serialize;
use tokio::io::AsyncWriteExt as _;

use crate::cluster::{Cluster, ClusterArgs, block_on};
use crate::deploy::{ApplyArgs, decrypting, locked, release};
use crate::fleet::FleetArgs;
use crate::output::{self, OutputArgs};
use crate::stage::{Loaded, StageArgs};
use crate::{ExitCode, Failure};

mod fleet;

/// Check a stage for drift: per object and field, what differs from the cluster, which manager
/// changed it and when; writes nothing (unless --heal). Exits 0 in sync, 1 on drift, 2 when a
/// check failed
#[derive(Debug, Args)]
pub(crate) struct DriftArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    apply: ApplyArgs,
    #[command(flatten)]
    fleet: FleetArgs,

    /// Keep checking: watch the stage's objects and report each drift as it happens (JSON
    /// lines with -o json) until SIGINT or SIGTERM
    #[arg(long)]
    watch: bool,

    /// With --watch: check every object again this often, changed or not
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = crate::duration,
          requires = "watch")]
    resync: Duration,

    /// Re-apply drifted and missing objects through the deploy path (lock, dry run, guards),
    /// at most once per --heal-interval; never prunes. Fields another manager took need
    /// --force-conflicts; fields others added stay (capstan never owned them)
    #[arg(long)]
    heal: bool,

    /// The shortest time between two heals
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = crate::duration)]
    heal_interval: Duration,

    /// With --watch: serve Prometheus text metrics on this address (e.g. 127.0.0.1:9090)
    #[arg(long, value_name = "ADDR", requires = "watch")]
    metrics: Option<SocketAddr>,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

pub(crate) fn drift(args: &DriftArgs) -> Result<ExitCode, Failure> {
    let json = args.output.json();
    if let Some(targets) = crate::fleet::resolve(&args.fleet, &args.stage, &args.cluster)? {
        if args.watch || args.heal {
            return Err(anyhow::anyhow!(
                "--watch and --heal work on one cluster: choose it with --context, not targets"
            )
            .into());
        }
        let check = fleet::Drift { apply: &args.apply };
        return crate::fleet::check(&targets, &args.fleet, json, None, &check);
    }
    let loaded = args.stage.load()?;
    let (check, options) = check_options(&args.apply, &loaded);
    Ok(block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        if args.watch {
            return watch(args, &loaded, &cluster, check, options).await;
        }
        let report =
            capstan_drift::detect(&cluster.client, &check, &loaded.manifest, &|_| {}).await?;
        if json {
            output::print(&Json::of(&report, None))?;
        } else {
            text(&report, true)?;
        }
        if args.heal && !report.in_sync() {
            heal(args, &loaded, &cluster, &options, &report).await?;
        }
        Ok(exit_code(&report))
    })?)
}

/// The options of a check, and of a heal: a check takes the fields over in its dry run, as a
/// deploy with --force-conflicts would, because a field another manager took is the drift to
/// report, not a reason to give up.
pub(super) fn check_options(apply: &ApplyArgs, loaded: &Loaded) -> (Options, Options) {
    let (options, _secrets) = decrypting(apply.options(loaded), loaded);
    let mut check = options.clone();
    check.force_conflicts = true;
    (check, options)
}

fn exit_code(report: &Report) -> ExitCode {
    if report.count(State::Unknown) > 0 {
        ExitCode::Failure
    } else if report.in_sync() {
        ExitCode::Success
    } else {
        ExitCode::Differences
    }
}

async fn watch(
    args: &DriftArgs,
    loaded: &Loaded,
    cluster: &Cluster,
    check: Options,
    options: Options,
) -> anyhow::Result<ExitCode> {
    let metrics = Arc::new(Metrics::default());
    if let Some(addr) = args.metrics {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tokio::spawn(serve(listener, metrics.clone()));
    }
    let mut watch_options = WatchOptions::default();
    watch_options.options = check;
    watch_options.resync = args.resync;
    let mut watcher =
        capstan_drift::watch(cluster.client.clone(), &loaded.manifest, watch_options).await?;
    let json = args.output.json();
    let mut last_heal: Option<Instant> = None;
    let mut stop = Box::pin(stopped());
    loop {
        let event = tokio::select! {
            event = watcher.next() => event,
            () = &mut stop => return Ok(ExitCode::Success),
        };
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                line(
                    json,
                    &Line::Error {
                        message: format!("{:#}", anyhow::Error::from(error)),
                    },
                )?;
                continue;
            }
        };
        match event {
            WatchEvent::Checked { report, full } => {
                metrics.checked(&report, full);
                if json {
                    line(
                        true,
                        &Line::Checked {
                            full,
                            report: Json::of(&report, Some(State::InSync)),
                        },
                    )?;
                } else {
                    text(&report, full)?;
                }
                let due = last_heal.is_none_or(|at| at.elapsed() >= args.heal_interval);
                if args.heal && due && report.items.iter().any(healable) {
                    last_heal = Some(Instant::now());
                    heal(args, loaded, cluster, &options, &report).await?;
                }
            }
            WatchEvent::Lost {
                resource,
                error,
                retry_in,
            } => {
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                line(
                    json,
                    &Line::Lost {
                        resource,
                        error,
                        retry_in: retry_in.as_secs_f64(),
                    },
                )?;
            }
            WatchEvent::Watching { resource } => line(json, &Line::Watching { resource })?,
            _ => {}
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn healable(item: &ObjectDrift) -> bool {
    matches!(item.state, State::Drifted | State::Missing)
}

/// Deploys the drifted and missing objects only, under the stage's lock, without pruning.
async fn heal(
    args: &DriftArgs,
    loaded: &Loaded,
    cluster: &Cluster,
    options: &Options,
    report: &Report,
) -> anyhow::Result<()> {
    let selectors: Vec<Selector> = report
        .items
        .iter()
        .filter(|i| healable(i))
        .filter_map(|i| name_selector(&i.id).parse().ok())
        .collect();
    let mut options = options.clone();
    options.selection = Some(Selection::new(selectors, Vec::new()));
    let deployer = Deployer::new(cluster.client.clone(), options);
    let mut deployer = locked(deployer, cluster, loaded, &args.apply).await?;
    let wanted: Vec<&ObjectId> = report
        .items
        .iter()
        .filter(|i| healable(i))
        .map(|i| &i.id)
        .collect();
    // Name selectors pick every kind of that name: only the drifted objects are written.
    let mut only_drifted = |plan: &capstan_apply::Plan<'_>| {
        plan.objects()
            .iter()
            .filter(|i| i.action() != capstan_apply::Action::Unchanged)
            .all(|i| wanted.contains(&i.id()))
    };
    let result = deployer
        .deploy(
            &loaded.manifest,
            DeployRequest::default(),
            &|_| {},
            &mut only_drifted,
        )
        .await;
    release(&mut deployer).await;
    let deployment = result?;
    let healed: Vec<&ObjectId> = deployment
        .outcomes
        .iter()
        .filter(|o| o.result.is_ok())
        .map(|o| &o.id)
        .collect();
    let failed: Vec<String> = deployment
        .outcomes
        .iter()
        .filter_map(|o| o.result.as_ref().err().map(|e| e.to_string()))
        .collect();
    if args.output.json() && args.watch {
        line(
            true,
            &Line::Healed {
                items: healed,
                errors: failed,
            },
        )?;
    } else {
        let mut err = std::io::stderr();
        for id in &healed {
            writeln!(err, "healed {id}")?;
        }
        for error in &failed {
            writeln!(err, "heal failed: {error}")?;
        }
    }
    Ok(())
}

fn name_selector(id: &ObjectId) -> String {
    match id.namespace() {
        Some(namespace) => format!("name={namespace}/{}", id.name()),
        None => format!("name={}", id.name()),
    }
}

/// `capstan drift` as text: one block per object that is not in sync, with a rule to paste.
pub(super) fn text(report: &Report, full: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for item in report.items.iter().filter(|i| i.state != State::InSync) {
        match item.state {
            State::Missing => writeln!(out, "{}: missing", item.id)?,
            State::Unknown => writeln!(
                out,
                "{}: unknown: {}",
                item.id,
                item.error.as_deref().unwrap_or_default()
            )?,
            _ => writeln!(out, "{}: drifted", item.id)?,
        }
        for field in &item.fields {
            writeln!(out, "  {} {}", field.pointer, describe(field))?;
        }
        if let Some(field) = item.fields.first() {
            writeln!(out, "  to ignore, add to the stage's ignoreDifferences:")?;
            for rule_line in field.rule.to_yaml().lines() {
                writeln!(out, "    {rule_line}")?;
            }
        }
    }
    if full {
        writeln!(
            out,
            "{} objects: {} in sync, {} drifted, {} missing, {} unknown ({} requests)",
            report.items.len(),
            report.count(State::InSync),
            report.count(State::Drifted),
            report.count(State::Missing),
            report.count(State::Unknown),
            report.requests
        )?;
    }
    Ok(())
}

fn describe(field: &FieldDrift) -> String {
    let by = match (&field.manager, &field.operation, &field.time) {
        (Some(manager), Some(operation), Some(time)) => {
            format!(" by {manager} ({operation}, {time})")
        }
        (Some(manager), _, _) => format!(" by {manager}"),
        _ => String::new(),
    };
    let values = format!(
        "{} -> {}",
        field.live.as_deref().unwrap_or("(absent)"),
        field.planned.as_deref().unwrap_or("(absent)")
    );
    format!("{}{by}: live {values} in the stage", kind(field.kind))
}

fn kind(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Changed => "changed",
        ChangeKind::Removed => "removed",
        ChangeKind::NotDeployed => "not-deployed",
        ChangeKind::Defaulted => "defaulted",
        ChangeKind::Added => "added",
        _ => "other",
    }
}

fn state(state: State) -> &'static str {
    match state {
        State::InSync => "in-sync",
        State::Drifted => "drifted",
        State::Missing => "missing",
        _ => "unknown",
    }
}

/// `capstan drift -o json` (docs/json.md).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Json<'r> {
    in_sync: bool,
    items: Vec<JsonItem<'r>>,
    summary: Summary,
    requests: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    in_sync: usize,
    drifted: usize,
    missing: usize,
    unknown: usize,
}

#[derive(Serialize)]
struct JsonItem<'r> {
    object: &'r ObjectId,
    state: &'static str,
    fields: Vec<JsonField<'r>>,
    error: Option<&'r str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonField<'r> {
    pointer: &'r str,
    kind: &'static str,
    live: Option<serde_json::Value>,
    planned: Option<serde_json::Value>,
    manager: Option<&'r str>,
    operation: Option<&'r str>,
    time: Option<&'r str>,
    rule: &'r capstan_manifest::IgnoreRule,
}

impl<'r> Json<'r> {
    /// The report; `skip` leaves out the objects in that state (the watch's lines list only
    /// what is not in sync).
    fn of(report: &'r Report, skip: Option<State>) -> Self {
        let items = report
            .items
            .iter()
            .filter(|i| Some(i.state) != skip)
            .map(|item| JsonItem {
                object: &item.id,
                state: state(item.state),
                error: item.error.as_deref(),
                fields: item
                    .fields
                    .iter()
                    .map(|f| JsonField {
                        pointer: &f.pointer,
                        kind: kind(f.kind),
                        live: f.live.as_deref().map(json_value),
                        planned: f.planned.as_deref().map(json_value),
                        manager: f.manager.as_deref(),
                        operation: f.operation.as_deref(),
                        time: f.time.as_deref(),
                        rule: &f.rule,
                    })
                    .collect(),
            })
            .collect();
        Self {
            in_sync: report.in_sync(),
            items,
            summary: Summary {
                in_sync: report.count(State::InSync),
                drifted: report.count(State::Drifted),
                missing: report.count(State::Missing),
                unknown: report.count(State::Unknown),
            },
            requests: report.requests,
        }
    }
}

/// A value the report holds as compact JSON text (masked where secret), as JSON again.
fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
}

/// One line of `drift --watch -o json`.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
enum Line<'r> {
    Checked {
        full: bool,
        #[serde(flatten)]
        report: Json<'r>,
    },
    #[serde(rename_all = "camelCase")]
    Lost {
        resource: String,
        error: String,
        retry_in: f64,
    },
    Watching {
        resource: String,
    },
    Healed {
        items: Vec<&'r ObjectId>,
        errors: Vec<String>,
    },
    Error {
        message: String,
    },
}

/// A watch event: a compact JSON line on standard output, or a line on standard error.
fn line(json: bool, line: &Line<'_>) -> std::io::Result<()> {
    if json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, line)?;
        writeln!(out)?;
        return out.flush();
    }
    let mut err = std::io::stderr();
    match line {
        Line::Lost {
            resource,
            error,
            retry_in,
        } => {
            writeln!(
                err,
                "watch of {resource} lost ({error}); retrying in {retry_in}s"
            )
        }
        Line::Watching { resource } => writeln!(err, "watching {resource}"),
        Line::Error { message } => writeln!(err, "error: {message}"),
        _ => Ok(()),
    }
}

/// What `--metrics` serves.
#[derive(Default)]
struct Metrics {
    objects: AtomicU64,
    drifted: AtomicU64,
    checks: AtomicU64,
    errors: AtomicU64,
}

impl Metrics {
    fn checked(&self, report: &Report, full: bool) {
        self.checks.fetch_add(1, Ordering::Relaxed);
        if full {
            let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
            self.objects
                .store(count(report.items.len()), Ordering::Relaxed);
            let drifted = report.items.len() - report.count(State::InSync);
            self.drifted.store(count(drifted), Ordering::Relaxed);
        }
        let unknown = u64::try_from(report.count(State::Unknown)).unwrap_or(u64::MAX);
        self.errors.fetch_add(unknown, Ordering::Relaxed);
    }

    fn text(&self) -> String {
        let get = |v: &AtomicU64| v.load(Ordering::Relaxed);
        format!(
            "# HELP capstan_drift_objects Objects of the stage at the last full check.\n\
             # TYPE capstan_drift_objects gauge\ncapstan_drift_objects {}\n\
             # HELP capstan_drift_drifted Objects not in sync at the last full check.\n\
             # TYPE capstan_drift_drifted gauge\ncapstan_drift_drifted {}\n\
             # HELP capstan_drift_checks_total Checks run.\n\
             # TYPE capstan_drift_checks_total counter\ncapstan_drift_checks_total {}\n\
             # HELP capstan_drift_errors_total Failed checks and lost watches.\n\
             # TYPE capstan_drift_errors_total counter\ncapstan_drift_errors_total {}\n",
            get(&self.objects),
            get(&self.drifted),
            get(&self.checks),
            get(&self.errors)
        )
    }
}

/// Answers every connection with the metrics, whatever it asked for.
async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    while let Ok((mut socket, _)) = listener.accept().await {
        let body = metrics.text();
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        tokio::spawn(async move {
            let mut request = [0_u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            let _ = socket.write_all(response.as_bytes()).await;
            let _ = socket.shutdown().await;
        });
    }
}
