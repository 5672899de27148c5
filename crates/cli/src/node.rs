//! `capstan node cordon|uncordon|drain|remove|replace`: kubectl's node maintenance, with every
//! blocker known before the first eviction and the disruption budgets that hold pods named, and
//! ClusterAPI's way of removing and replacing the Machine behind a node.

use std::io::Write as _;
use std::time::Duration;

use capstan_capi::{
    Blocker, BudgetReport, CordonChange, DELETE_MACHINE_ANNOTATION, Drain, DrainEvent,
    DrainOptions, Group, NodeDrain, Outcome, PodFilters, PodRef, Route, Warning,
};
use capstan_kube::Api;
use capstan_manifest::ObjectId;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cluster::{ClusterArgs, block_on};
use crate::output::{self, OutputArgs};
use crate::progress::Bar;
use crate::{ExitCode, Failure};

/// Cordon, uncordon or drain nodes, as kubectl does; exits 2 when a node is not done
#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    #[command(subcommand)]
    command: NodeCommand,
}

#[derive(Debug, Subcommand)]
enum NodeCommand {
    /// Mark nodes unschedulable: no new pods are placed there
    Cordon(CordonArgs),
    /// Mark nodes schedulable again
    Uncordon(CordonArgs),
    /// Cordon nodes, then evict their pods; every node's blockers are reported before the
    /// first eviction, nodes drain in parallel, and a disruption budget that holds pods is named
    Drain(DrainArgs),
    /// Remove a ClusterAPI node for good: mark its Machine cluster.x-k8s.io/delete-machine and
    /// scale the Machine's owner down by one, so that exactly this Machine goes
    Remove(RemoveArgs),
    /// Replace a ClusterAPI node: optionally drain it first, delete its Machine (its owner
    /// creates another), and with --wait follow the new Machine until its Node is Ready
    Replace(ReplaceArgs),
}

#[derive(Debug, Args)]
struct RemoveArgs {
    /// The node
    #[arg(value_name = "NODE")]
    node: String,
    /// Have the server check both writes without making them
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct ReplaceArgs {
    /// The node, its drain flags, --dry-run (show the Machine that would go), --context, -o
    #[command(flatten)]
    node: DrainArgs,
    /// Cordon and drain the node before its Machine is deleted (with the drain flags)
    #[arg(long)]
    drain: bool,
    /// Follow the replacement until its Node is Ready, at most this long [default: 15m]
    #[arg(long, value_parser = crate::duration, num_args = 0..=1, default_missing_value = "15m",
          value_name = "DURATION")]
    wait: Option<Duration>,
}

#[derive(Debug, Args)]
struct CordonArgs {
    /// The nodes
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// Have the server check the change without making it
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
struct DrainArgs {
    /// The nodes
    #[arg(required = true, value_name = "NODE")]
    nodes: Vec<String>,
    /// Evict pods that declare no controller, and pods of DaemonSets that no longer exist
    #[arg(long)]
    force: bool,
    /// Leave DaemonSet-managed pods running instead of refusing to drain
    #[arg(long)]
    ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes; their data is lost
    #[arg(long)]
    delete_emptydir_data: bool,
    /// Delete pods instead of evicting them: disruption budgets are not asked
    #[arg(long)]
    disable_eviction: bool,
    /// Seconds each pod gets to stop; negative: the pod's own terminationGracePeriodSeconds
    #[arg(long, default_value_t = -1, allow_negative_numbers = true, value_name = "SECONDS")]
    grace_period: i64,
    /// Give up after this long (90s, 5m, 1h); 0 waits forever
    #[arg(long, value_parser = crate::duration, default_value = "0", value_name = "DURATION")]
    timeout: Duration,
    /// Only pods with these labels (a label selector)
    #[arg(long, value_name = "SELECTOR")]
    pod_selector: Option<String>,
    /// Leave alone pods being deleted for longer than this many seconds (a node that is gone
    /// never confirms); 0 waits for every pod
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    skip_wait_for_delete_timeout: u64,
    /// Evictions in flight at once, across all nodes
    #[arg(long, default_value_t = 32, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    max_concurrent_evictions: u16,
    /// Have the server check every cordon and eviction without making it
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(args: &NodeArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        NodeCommand::Cordon(args) => cordon(args, true),
        NodeCommand::Uncordon(args) => cordon(args, false),
        NodeCommand::Drain(args) => drain(args),
        NodeCommand::Remove(args) => remove(args),
        NodeCommand::Replace(args) => replace(args),
    }
}

/// `capstan node cordon -o json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CordonReport {
    dry_run: bool,
    items: Vec<CordonItem>,
    requests: usize,
}

#[derive(Serialize)]
struct CordonItem {
    object: ObjectId,
    change: Option<CordonChange>,
    error: Option<String>,
}

fn cordon(args: &CordonArgs, unschedulable: bool) -> Result<ExitCode, Failure> {
    let (items, requests) = block_on(async {
        let cluster = args.cluster.connect(None).await?;
        let api = Api::new(cluster.client);
        let mut items = Vec::new();
        for node in &args.nodes {
            let change = if unschedulable {
                capstan_capi::cordon(&api, node, args.dry_run).await
            } else {
                capstan_capi::uncordon(&api, node, args.dry_run).await
            };
            items.push(CordonItem {
                object: ObjectId::new("v1", "Node", None, node),
                error: change.as_ref().err().map(ToString::to_string),
                change: change.ok(),
            });
        }
        Ok((items, api.requests()))
    })?;
    let done = items.iter().all(|item| item.error.is_none());
    if args.output.json() {
        let dry_run = args.dry_run;
        output::print(&CordonReport {
            dry_run,
            items,
            requests,
        })?;
    } else {
        let verb = if unschedulable { "cordon" } else { "uncordon" };
        for item in &items {
            match (&item.change, &item.error) {
                (Some(change), _) => say(&format!(
                    "node/{} {change}{}",
                    item.object.name(),
                    dry_run_mark(args.dry_run)
                )),
                (None, Some(error)) => complain(&format!(
                    "error: unable to {verb} node {:?}: {error}",
                    item.object.name()
                )),
                (None, None) => {}
            }
        }
    }
    Ok(if done {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// `capstan node drain -o json`: the library's result and the requests made.
#[derive(Serialize)]
struct DrainReport<'a> {
    #[serde(flatten)]
    drain: &'a Drain,
    requests: usize,
}

fn drain(args: &DrainArgs) -> Result<ExitCode, Failure> {
    let options = options(args);
    let json = args.output.json();
    let bar = Bar::new();
    let lines = Lines {
        dry_run: args.dry_run,
        deleted: args.disable_eviction,
        retry: options.retry_interval,
    };
    let on_event = |event: DrainEvent<'_>| {
        if json {
            bar.update(event.progress());
        } else {
            lines.show(event);
        }
    };
    let (drained, requests) = block_on(async {
        let cluster = args.cluster.connect(None).await?;
        let api = Api::new(cluster.client);
        let drained = capstan_capi::drain(&api, &args.nodes, &options, &on_event).await?;
        Ok((drained, api.requests()))
    })?;
    bar.finish();
    if json {
        output::print(&DrainReport {
            drain: &drained,
            requests,
        })?;
    } else {
        summary(&drained, args.dry_run);
    }
    Ok(if drained.succeeded() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// `capstan node remove -o json` and `replace -o json`.
#[derive(Serialize)]
struct MachineReport<'a, T: Serialize> {
    #[serde(flatten)]
    result: &'a T,
    requests: usize,
}

fn remove(args: &RemoveArgs) -> Result<ExitCode, Failure> {
    let (removal, requests) = block_on(async {
        let (api, catalog) = args.cluster.discover().await?;
        let removal = capstan_capi::remove_node(&api, &catalog, &args.node, args.dry_run).await?;
        Ok((removal, api.requests()))
    })?;
    if args.output.json() {
        output::print(&MachineReport {
            result: &removal,
            requests,
        })?;
    } else {
        let owner = &removal.owner;
        say(&format!(
            "node/{}: {} (found by {}) marked {DELETE_MACHINE_ANNOTATION}; {} scaled {} -> {}{}",
            removal.node,
            removal.machine,
            route(removal.route),
            owner.object,
            owner.from,
            owner.to,
            dry_run_mark(args.dry_run)
        ));
    }
    Ok(ExitCode::Success)
}

fn replace(args: &ReplaceArgs) -> Result<ExitCode, Failure> {
    let node = &args.node;
    let [name] = node.nodes.as_slice() else {
        return Err(anyhow::anyhow!("replace takes one node, not {}", node.nodes.len()).into());
    };
    if args.drain {
        let code = drain(node)?;
        if code != ExitCode::Success {
            return Ok(code);
        }
    }
    let json = node.output.json();
    let bar = Bar::new();
    let on_progress = move |progress| {
        if let (false, capstan_kube::Progress::Note(note)) = (json, &progress) {
            say(note);
        }
        bar.update(Some(progress));
    };
    let mut request = capstan_capi::ReplaceRequest::new(name);
    request.wait = args.wait;
    let (replaced, requests) = block_on(async {
        let (api, catalog) = node.cluster.discover().await?;
        if node.dry_run {
            // Nothing to ask the server to check but the lookup: deleting is one request.
            let (machine, route) = capstan_capi::machine_of(&api, &catalog, name).await?;
            let machine = machine["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            return Ok((Err((machine, route)), api.requests()));
        }
        let replaced = capstan_capi::replace_node(&api, &catalog, &request, &on_progress).await?;
        Ok((Ok(replaced), api.requests()))
    })?;
    match replaced {
        Err((machine, found)) => say(&format!(
            "node/{name}: Machine {machine} (found by {}) would be deleted (dry run: nothing deleted)",
            route(found)
        )),
        Ok(replaced) if json => output::print(&MachineReport {
            result: &replaced,
            requests,
        })?,
        Ok(replaced) => {
            say(&format!("node/{name}: {} deleted", replaced.machine));
            if let (Some(machine), Some(new)) = (&replaced.replacement, &replaced.replacement_node)
            {
                say(&format!("node/{new} Ready: {machine} replaced it"));
            }
        }
    }
    Ok(ExitCode::Success)
}

fn route(route: Route) -> &'static str {
    match route {
        Route::Annotation => "its cluster.x-k8s.io/machine annotation",
        Route::NodeRef => "the Machine's status.nodeRef",
        _ => "its provider ID",
    }
}

fn options(args: &DrainArgs) -> DrainOptions {
    let mut filters = PodFilters::default();
    filters.force = args.force;
    filters.ignore_daemonsets = args.ignore_daemonsets;
    filters.delete_emptydir_data = args.delete_emptydir_data;
    filters.skip_deleted_after = (args.skip_wait_for_delete_timeout > 0)
        .then(|| Duration::from_secs(args.skip_wait_for_delete_timeout));
    let mut options = DrainOptions::default();
    options.filters = filters;
    options.pod_selector = args.pod_selector.clone();
    options.grace_period_seconds = (args.grace_period >= 0).then_some(args.grace_period);
    options.timeout = (!args.timeout.is_zero()).then_some(args.timeout);
    options.disable_eviction = args.disable_eviction;
    options.dry_run = args.dry_run;
    options.max_concurrent_evictions = usize::from(args.max_concurrent_evictions);
    options
}

/// The text a drain prints as it goes, in kubectl's words where kubectl has them.
struct Lines {
    dry_run: bool,
    deleted: bool,
    retry: Duration,
}

impl Lines {
    fn show(&self, event: DrainEvent<'_>) {
        let mark = dry_run_mark(self.dry_run);
        match event {
            DrainEvent::Cordoned { node, change } => say(&format!("node/{node} {change}{mark}")),
            DrainEvent::Planned { node, plan } => {
                if !plan.warnings.is_empty() {
                    let groups: Vec<String> = plan.warnings.iter().map(warning).collect();
                    complain(&format!("Warning: node/{node}: {}", groups.join("; ")));
                }
                for group in &plan.blockers {
                    complain(&format!(
                        "error: node/{node}: cannot delete {}{}: {}",
                        group.reason,
                        override_hint(&group.reason),
                        pods(&group.pods)
                    ));
                }
            }
            DrainEvent::Evict { pod } => say(&format!("evicting pod {}{mark}", name(&pod.object))),
            DrainEvent::Refused { pod, message } => complain(&format!(
                "error when evicting pods/{:?} -n {:?} (will retry after {}s): {message}",
                pod.object.name(),
                pod.object.namespace().unwrap_or_default(),
                self.retry.as_secs()
            )),
            DrainEvent::Held { pod, budget } => complain(&format!(
                "pod {} is held by {}",
                name(&pod.object),
                held(budget)
            )),
            DrainEvent::Gone { pod } => {
                let verb = if self.deleted { "deleted" } else { "evicted" };
                say(&format!("pod/{} {verb}{mark}", pod.object.name()));
            }
            DrainEvent::Given { pod, message } => {
                complain(&format!("pod/{}: {message}", pod.object.name()));
            }
            _ => {}
        }
    }
}

fn summary(drained: &Drain, dry_run: bool) {
    for item in &drained.items {
        let node = item.object.name();
        match (&item.outcome, &item.error) {
            (Outcome::Drained, _) => say(&format!("node/{node} drained{}", dry_run_mark(dry_run))),
            (_, Some(error)) => complain(&format!("error: unable to drain node {node:?}: {error}")),
            _ => {}
        }
        for budget in &item.budgets {
            complain(&format!("  held by {}", held(budget)));
        }
    }
    let pending: Vec<&NodeDrain> = drained
        .items
        .iter()
        .filter(|item| item.outcome != Outcome::Drained)
        .collect();
    if !pending.is_empty() {
        complain("There are pending nodes to be drained:");
        for item in pending {
            complain(&format!(" {}", item.object.name()));
        }
    }
}

/// The flag that lets the blocked pods through, as kubectl says it.
fn override_hint(blocker: &Blocker) -> &'static str {
    match blocker {
        Blocker::DaemonSetManaged => " (use --ignore-daemonsets to ignore)",
        Blocker::OrphanedDaemonSet | Blocker::NoController => " (use --force to override)",
        Blocker::LocalStorage => " (use --delete-emptydir-data to override)",
        _ => "",
    }
}

fn warning(group: &Group<Warning>) -> String {
    format!("{}: {}", group.reason, pods(&group.pods))
}

/// `PodDisruptionBudget shop/web (minAvailable 2): 2 healthy of 2 desired, 0 disruptions
/// allowed; it holds shop/web-1, shop/web-2`.
fn held(budget: &BudgetReport) -> String {
    let demand = match (&budget.min_available, &budget.max_unavailable) {
        (Some(min), _) => format!("minAvailable {min}"),
        (None, Some(max)) => format!("maxUnavailable {max}"),
        (None, None) => "no minimum".to_owned(),
    };
    let count = |value: Option<i64>| value.map_or_else(|| "?".to_owned(), |v| v.to_string());
    format!(
        "PodDisruptionBudget {} ({demand}): {} healthy of {} desired, {} disruptions allowed; it holds {}",
        name(&budget.object),
        count(budget.current_healthy),
        count(budget.desired_healthy),
        count(budget.disruptions_allowed),
        pods(&budget.pods)
    )
}

fn pods(pods: &[PodRef]) -> String {
    let names: Vec<String> = pods.iter().map(|pod| name(&pod.object)).collect();
    names.join(", ")
}

fn name(object: &ObjectId) -> String {
    match object.namespace() {
        Some(namespace) => format!("{namespace}/{}", object.name()),
        None => object.name().to_owned(),
    }
}

fn dry_run_mark(dry_run: bool) -> &'static str {
    if dry_run { " (server dry run)" } else { "" }
}

fn say(line: &str) {
    let _ = writeln!(
        std::io::stdout(),
        "{}",
        capstan_manifest::escape_controls(line)
    );
}

fn complain(line: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "{}",
        capstan_manifest::escape_controls(line)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_blocker_names_the_flag_that_lets_it_through() {
        assert_eq!(
            format!(
                "{}{}",
                Blocker::LocalStorage,
                override_hint(&Blocker::LocalStorage)
            ),
            "Pods with local storage (use --delete-emptydir-data to override)"
        );
        assert_eq!(
            override_hint(&Blocker::DaemonSetManaged),
            " (use --ignore-daemonsets to ignore)"
        );
        assert_eq!(
            override_hint(&Blocker::NoController),
            " (use --force to override)"
        );
        assert_eq!(override_hint(&Blocker::DaemonSetLookup("x".into())), "");
    }

    #[test]
    fn a_grace_period_below_zero_leaves_the_pods_own() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(subcommand)]
            command: NodeCommand,
        }
        let parsed = Wrap::parse_from(["x", "drain", "n1", "--timeout", "0"]);
        let NodeCommand::Drain(args) = parsed.command else {
            panic!("not a drain");
        };
        let defaults = options(&args);
        assert_eq!(defaults.grace_period_seconds, None);
        assert_eq!(defaults.timeout, None);
        let parsed = Wrap::parse_from([
            "x",
            "drain",
            "n1",
            "--grace-period",
            "0",
            "--timeout",
            "90s",
        ]);
        let NodeCommand::Drain(args) = parsed.command else {
            panic!("not a drain");
        };
        let given = options(&args);
        assert_eq!(given.grace_period_seconds, Some(0));
        assert_eq!(given.timeout, Some(Duration::from_secs(90)));
    }
}
