//! `capstan certs ...`: cert-manager Certificates across a cluster: expiry, inspection,
//! renewal, and whether cert-manager can do its job.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use capstan_certs::{
    CertificateItem, Inspection, ListRequest, RenewRequest, Step, check_api, check_ingress,
    inspect, list_certificates, renew,
};
use capstan_kube::Api;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cluster::{ClusterArgs, block_on};
use crate::output::{self, OutputArgs};
use crate::progress::Bar;
use crate::{ExitCode, Failure};

/// cert-manager: list Certificates with their expiry, inspect one, renew, check Ingresses and
/// the API
#[derive(Debug, Args)]
pub(crate) struct CertsArgs {
    #[command(subcommand)]
    command: CertsCommand,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    List(ListArgs),
    Inspect(InspectArgs),
    Renew(RenewArgs),
    CheckIngress(CheckIngressArgs),
    CheckApi(CheckApiArgs),
}

/// Where to look: one namespace, or all of them.
#[derive(Debug, Args)]
struct Scope {
    /// The namespace
    #[arg(
        long,
        short = 'n',
        default_value = "default",
        conflicts_with = "all_namespaces"
    )]
    namespace: String,

    /// Every namespace
    #[arg(long, short = 'A')]
    all_namespaces: bool,
}

impl Scope {
    fn namespace(&self) -> Option<&str> {
        (!self.all_namespaces).then_some(self.namespace.as_str())
    }
}

/// List Certificates with readiness, the end of validity read from their Secrets, the time
/// cert-manager renews them, issuer and Secret; with --expiring-within, only those ending
/// sooner, and exit 1 when there are any
#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    scope: Scope,

    /// A label selector
    #[arg(long, short = 'l')]
    selector: Option<String>,

    /// Only Certificates whose certificate ends within this long (30d, 72h)
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    expiring_within: Option<Duration>,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Show one Certificate as `cmctl status certificate` does: conditions, failures and the
/// next retry, the served certificate, its CertificateRequests and ACME Order; exits 1 when
/// it is not Ready
#[derive(Debug, Args)]
struct InspectArgs {
    /// The Certificate
    name: String,

    /// The namespace
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Renew Certificates now the way `cmctl renew` does (the Issuing condition), without
/// deleting their Secrets; goes on past failures and exits 1 when any failed
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["names", "all"]))]
struct RenewArgs {
    /// The Certificates
    names: Vec<String>,

    /// Every Certificate of the namespace (-A: of the cluster), or those -l selects
    #[arg(long, conflicts_with = "names")]
    all: bool,

    /// With --all, a label selector
    #[arg(long, short = 'l', requires = "all")]
    selector: Option<String>,

    #[command(flatten)]
    scope: Scope,

    /// Certificates renewed at once
    #[arg(long, default_value_t = 4, value_name = "N")]
    concurrency: usize,

    /// Wait until each new revision is Ready
    #[arg(long)]
    wait: bool,

    /// Delete each Certificate's Secret instead, the old way: whatever serves it has no
    /// certificate until cert-manager issues a new one, and the private key is lost
    #[arg(long)]
    delete_secret: bool,

    /// How long --wait waits for each Certificate
    #[arg(long, default_value = "5m", value_parser = crate::duration)]
    timeout: Duration,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Check the Ingresses annotated for cert-manager: annotation conflicts, TLS entries without
/// a Certificate, hosts it does not ask for, missing Secrets; exits 1 on any finding
#[derive(Debug, Args)]
struct CheckIngressArgs {
    #[command(flatten)]
    scope: Scope,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// Check that cert-manager's API is usable (CRDs served, a dry-run CertificateRequest
/// admitted), as `cmctl check api` does; exits 1 when it is not
#[derive(Debug, Args)]
struct CheckApiArgs {
    /// Keep checking this long until it is usable
    #[arg(long, value_name = "DURATION", value_parser = crate::duration)]
    wait: Option<Duration>,

    /// The namespace of the dry-run CertificateRequest
    #[arg(long, short = 'n', default_value = "default")]
    namespace: String,

    #[command(flatten)]
    cluster: ClusterArgs,

    #[command(flatten)]
    output: OutputArgs,
}

/// A run's items and its request count: `list`, `renew`, `check-ingress` under `-o json`.
#[derive(Serialize)]
struct ItemsReport<'a, T: Serialize> {
    items: &'a [T],
    requests: usize,
}

pub(crate) fn run(args: &CertsArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        CertsCommand::List(args) => run_list(args),
        CertsCommand::Inspect(args) => run_inspect(args),
        CertsCommand::Renew(args) => run_renew(args),
        CertsCommand::CheckIngress(args) => run_check_ingress(args),
        CertsCommand::CheckApi(args) => run_check_api(args),
    }
}

fn time(at: Option<k8s_openapi::jiff::Timestamp>) -> String {
    at.map_or_else(|| "<none>".to_owned(), |at| at.to_string())
}

fn warn(object: &impl std::fmt::Display, warning: &impl std::fmt::Display) -> std::io::Result<()> {
    writeln!(std::io::stderr(), "warning: {object}: {warning}")
}

fn run_list(args: &ListArgs) -> Result<ExitCode, Failure> {
    let mut request = ListRequest::new(args.scope.namespace());
    request.selector.clone_from(&args.selector);
    request.expiring_within = args.expiring_within;
    let (items, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let items = list_certificates(&api, &catalog, &request).await?;
        Ok((items, api.requests()))
    })?;
    let code = if args.expiring_within.is_some() && !items.is_empty() {
        ExitCode::Differences
    } else {
        ExitCode::Success
    };
    if args.output.json() {
        output::print(&ItemsReport {
            items: &items,
            requests,
        })?;
        return Ok(code);
    }
    print_table(&items)?;
    for item in &items {
        for warning in &item.warnings {
            warn(&item.object, warning)?;
        }
    }
    Ok(code)
}

fn print_table(items: &[CertificateItem]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if items.is_empty() {
        return writeln!(out, "no Certificates");
    }
    let rows: Vec<[String; 7]> = items
        .iter()
        .map(|item| {
            [
                item.object.namespace().unwrap_or_default().to_owned(),
                item.object.name().to_owned(),
                match (&item.ready, &item.reason) {
                    (true, _) => "True".to_owned(),
                    (false, Some(reason)) => format!("False ({reason})"),
                    (false, None) => "False".to_owned(),
                },
                time(item.not_after),
                time(item.renewal_time),
                item.issuer.to_string(),
                item.secret_name.clone(),
            ]
        })
        .collect();
    let header = [
        "NAMESPACE",
        "NAME",
        "READY",
        "NOT AFTER",
        "RENEWAL",
        "ISSUER",
        "SECRET",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(header.map(str::to_owned)).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        writeln!(
            out,
            "{}",
            capstan_manifest::escape_controls(line.join("  ").trim_end())
        )?;
    }
    Ok(())
}

/// `capstan certs inspect -o json`.
#[derive(Serialize)]
struct InspectReport<'a> {
    #[serde(flatten)]
    inspection: &'a Inspection,
    requests: usize,
}

fn run_inspect(args: &InspectArgs) -> Result<ExitCode, Failure> {
    let (report, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let report = inspect(&api, &catalog, &args.namespace, &args.name).await?;
        Ok((report, api.requests()))
    })?;
    let code = if report.summary.ready {
        ExitCode::Success
    } else {
        ExitCode::Differences
    };
    if args.output.json() {
        output::print(&InspectReport {
            inspection: &report,
            requests,
        })?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    // Line by line: server text may carry control sequences, the layout's newlines stay.
    for line in describe(&report).lines() {
        writeln!(out, "{}", capstan_manifest::escape_controls(line))?;
    }
    for warning in &report.summary.warnings {
        warn(&report.summary.object, warning)?;
    }
    Ok(code)
}

/// `inspect`'s text, in `cmctl status certificate`'s order.
fn describe(report: &Inspection) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let summary = &report.summary;
    let _ = writeln!(text, "Name: {}", summary.object.name());
    let _ = writeln!(
        text,
        "Namespace: {}",
        summary.object.namespace().unwrap_or_default()
    );
    let _ = writeln!(text, "Conditions:");
    if report.conditions.is_empty() {
        let _ = writeln!(text, "  No Conditions set");
    }
    for c in &report.conditions {
        let _ = writeln!(
            text,
            "  {}: {}, Reason: {}, Message: {}",
            c.type_,
            c.status,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        );
    }
    let _ = writeln!(text, "DNS Names:");
    for name in &report.dns_names {
        let _ = writeln!(text, "- {name}");
    }
    let _ = writeln!(text, "Issuer: {}", summary.issuer);
    let _ = writeln!(
        text,
        "Revision: {}",
        report
            .revision
            .map_or_else(|| "<none>".to_owned(), |r| r.to_string())
    );
    if let Some(attempts) = report.failed_issuance_attempts {
        let _ = writeln!(
            text,
            "Failed Issuance Attempts: {attempts}, last at {}, next retry {}",
            time(report.last_failure_time),
            time(report.next_retry)
        );
    }
    let _ = writeln!(text, "Secret: {}", report.secret.object.name());
    match (&report.secret.served, &report.secret.error) {
        (Some(served), _) => {
            let _ = writeln!(text, "  Subject: {}", served.subject);
            let _ = writeln!(text, "  Issuer: {}", served.issuer);
            let _ = writeln!(text, "  Serial Number: {}", served.serial);
            let _ = writeln!(
                text,
                "  SANs: {}",
                served
                    .dns_names
                    .iter()
                    .chain(&served.ip_addresses)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let _ = writeln!(text, "  Public Key Algorithm: {}", served.key_algorithm);
            let _ = writeln!(text, "  Not Before: {}", served.not_before);
            let _ = writeln!(text, "  Not After: {}", served.not_after);
            let _ = writeln!(text, "  Chain Length: {}", served.chain_length);
        }
        (None, Some(error)) => {
            let _ = writeln!(text, "  error: {error}");
        }
        (None, None) => {
            let _ = writeln!(text, "  error: the Secret does not exist");
        }
    }
    let _ = writeln!(text, "Not After: {}", time(summary.not_after));
    let _ = writeln!(text, "Renewal Time: {}", time(summary.renewal_time));
    for (label, request) in [
        ("issued", &report.issued_request),
        ("next", &report.next_request),
    ] {
        match request {
            Some(request) => step(&mut text, &format!("CertificateRequest ({label})"), request),
            None => {
                let _ = writeln!(text, "CertificateRequest ({label}): <none>");
            }
        }
    }
    if let Some(order) = &report.order {
        step(&mut text, "Order", order);
    }
    if !report.challenges.is_empty() {
        let _ = writeln!(text, "Challenges:");
        for challenge in &report.challenges {
            let _ = writeln!(
                text,
                "- Name: {}, Domain: {}, State: {}, Reason: {}",
                challenge.object.name(),
                challenge.dns_name.as_deref().unwrap_or_default(),
                challenge.state.as_deref().unwrap_or_default(),
                challenge.reason.as_deref().unwrap_or_default()
            );
        }
    }
    text
}

fn step(text: &mut String, label: &str, step: &Step) {
    use std::fmt::Write as _;
    let _ = writeln!(text, "{label}:");
    let _ = writeln!(text, "  Name: {}", step.object.name());
    if let Some(revision) = step.revision {
        let _ = writeln!(text, "  Revision: {revision}");
    }
    if let Some(state) = &step.state {
        let _ = writeln!(
            text,
            "  State: {state}, Reason: {}",
            step.reason.as_deref().unwrap_or_default()
        );
    }
    for c in &step.conditions {
        let _ = writeln!(
            text,
            "  {}: {}, Reason: {}, Message: {}",
            c.type_,
            c.status,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        );
    }
}

fn run_renew(args: &RenewArgs) -> Result<ExitCode, Failure> {
    let mut request = if args.all {
        RenewRequest::all(args.scope.namespace())
    } else {
        if args.scope.all_namespaces {
            return Err(
                anyhow::anyhow!("cannot name Certificates together with --all-namespaces").into(),
            );
        }
        let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
        RenewRequest::new(&args.scope.namespace, &names)
    };
    request.selector.clone_from(&args.selector);
    request.concurrency = args.concurrency;
    request.wait = args.wait.then_some(args.timeout);
    request.delete_secret = args.delete_secret;
    let bar = Arc::new(Bar::new());
    let shown = Arc::clone(&bar);
    let (renewals, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let renewals = renew(&api, &catalog, &request, &move |p| shown.update(Some(p))).await?;
        Ok((renewals, api.requests()))
    })?;
    bar.finish();
    let code = if renewals.iter().all(capstan_certs::Renewal::succeeded) {
        ExitCode::Success
    } else {
        ExitCode::Differences
    };
    if args.output.json() {
        output::print(&ItemsReport {
            items: &renewals,
            requests,
        })?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    if renewals.is_empty() {
        writeln!(out, "no Certificates")?;
    }
    for renewal in &renewals {
        let what = match (&renewal.outcome, renewal.new_revision) {
            (capstan_certs::Outcome::Renewed, Some(revision)) => {
                format!("renewed: revision {revision} is Ready")
            }
            (capstan_certs::Outcome::Triggered, _) => "renewal triggered".to_owned(),
            (capstan_certs::Outcome::TimedOut, _) => "triggered, not Ready in time".to_owned(),
            _ => "failed".to_owned(),
        };
        let error = renewal
            .error
            .as_deref()
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}",
            capstan_manifest::escape_controls(&format!("{}: {what}{error}", renewal.object))
        )?;
        for warning in &renewal.warnings {
            warn(&renewal.object, warning)?;
        }
    }
    Ok(code)
}

fn run_check_ingress(args: &CheckIngressArgs) -> Result<ExitCode, Failure> {
    let (findings, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let findings = check_ingress(&api, &catalog, args.scope.namespace()).await?;
        Ok((findings, api.requests()))
    })?;
    let code = if findings.is_empty() {
        ExitCode::Success
    } else {
        ExitCode::Differences
    };
    if args.output.json() {
        output::print(&ItemsReport {
            items: &findings,
            requests,
        })?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    if findings.is_empty() {
        writeln!(out, "no problems found")?;
    }
    for finding in &findings {
        writeln!(
            out,
            "{}",
            capstan_manifest::escape_controls(&format!("{}: {}", finding.object, finding.problem))
        )?;
    }
    Ok(code)
}

/// `capstan certs check-api -o json`.
#[derive(Serialize)]
struct ApiReport<'a> {
    #[serde(flatten)]
    check: &'a capstan_certs::ApiCheck,
    requests: usize,
}

fn run_check_api(args: &CheckApiArgs) -> Result<ExitCode, Failure> {
    let (check, requests) = block_on(async {
        let cluster = args.cluster.connect(None).await?;
        let api = Api::new(cluster.client);
        let check = check_api(&api, &args.namespace, args.wait).await;
        Ok((check, api.requests()))
    })?;
    let code = if check.usable {
        ExitCode::Success
    } else {
        ExitCode::Differences
    };
    if args.output.json() {
        output::print(&ApiReport {
            check: &check,
            requests,
        })?;
        return Ok(code);
    }
    match &check.problem {
        None => writeln!(std::io::stdout(), "The cert-manager API is ready")?,
        Some(problem) => writeln!(
            std::io::stdout(),
            "{}",
            capstan_manifest::escape_controls(&format!("not ready: {problem}"))
        )?,
    }
    Ok(code)
}
