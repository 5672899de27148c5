//! `capstan deploy`, `diff` and `prune`: plan a stage against a cluster, show it, apply it.

use std::cell::Cell;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use capstan_apply::{
    DeployRequest, Deployer, Deployment, LockHolder, LockRequest, Options, Plan, StageLock,
};
use capstan_secrets::SopsObjects;
use clap::Args;

use std::sync::Arc;

use crate::cluster::{Cluster, ClusterArgs, block_on};
use crate::fleet::{self, FleetArgs, WaveArgs};
use crate::history::Recorder;
use crate::output::{self, OutputArgs};
use crate::progress::Bar;
use crate::prompt::confirm_change;
use crate::show::{self, KeptArgs, View};
use crate::stage::{Loaded, StageArgs};
use crate::{ExitCode, Failure};

/// Options shared by the commands that apply or delete.
#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// Requests in flight at once within a wave
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,

    /// Take over fields other field managers own instead of failing the object
    #[arg(long)]
    force_conflicts: bool,

    /// Also prune or delete objects that carry the discriminator but were never applied by
    /// capstan
    #[arg(long)]
    force_prune: bool,

    /// Allow pruning with an empty manifest set (which deletes everything the stage owns)
    #[arg(long)]
    allow_empty: bool,

    /// Also delete Namespaces and CRDs that still hold objects this run does not delete: the
    /// server deletes those objects with them (another stage's, or made by hand)
    #[arg(long)]
    force_cascade_delete: bool,

    /// Take over objects that exist but were never applied by capstan (the stage setting
    /// `adopt: true` does the same)
    #[arg(long)]
    adopt: bool,

    /// Skip the server-side dry run of new objects before the first write: faster, but a
    /// create the server rejects then fails after earlier objects were written
    #[arg(long)]
    no_verify: bool,

    /// Fail at once when another run holds the stage's lock instead of waiting for it
    #[arg(long)]
    no_wait_lock: bool,

    /// Do not record the project's commit and the time on written objects
    #[arg(long)]
    no_stamp: bool,

    /// Scan every resource type the server serves for the stage's objects, not only the
    /// types its history records (see `capstan history`)
    #[arg(long)]
    pub(crate) full_scan: bool,

    /// How long to wait for CRDs to be Established and, with --wait, for readiness
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::duration)]
    pub(crate) timeout: Duration,
}

/// Apply a stage with server-side apply: plan, confirm, apply in waves, prune, wait
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) apply: ApplyArgs,
    #[command(flatten)]
    pub(crate) fleet: FleetArgs,
    #[command(flatten)]
    pub(crate) waves: WaveArgs,

    /// Change nothing: show what would be created, updated and pruned
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Delete objects the stage no longer holds [default: the stage's `prune`]
    #[arg(long, overrides_with = "no_prune")]
    pub(crate) prune: bool,

    /// Do not prune, even if the stage says so
    #[arg(long)]
    pub(crate) no_prune: bool,

    /// Do not ask for confirmation (required when standard input is not a terminal)
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Wait until written objects are ready (rollouts, Jobs, CRDs, Ready conditions)
    #[arg(long)]
    pub(crate) wait: bool,

    #[command(flatten)]
    pub(crate) kept: KeptArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Show what a deploy would change; exits 1 when something would
#[derive(Debug, Args)]
pub(crate) struct DiffArgs {
    #[command(flatten)]
    stage: StageArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
    #[command(flatten)]
    fleet: FleetArgs,

    /// Also show what a prune would delete
    #[arg(long)]
    prune: bool,

    /// Scan every resource type for orphans, not only the types the stage's history records
    #[arg(long)]
    full_scan: bool,

    #[command(flatten)]
    kept: KeptArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Delete objects carrying the stage's discriminator that the stage no longer holds
#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) remove: RemoveArgs,
}

/// What `capstan prune` and `capstan delete` share.
#[derive(Debug, Args)]
pub(crate) struct RemoveArgs {
    #[command(flatten)]
    pub(crate) stage: StageArgs,
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    #[command(flatten)]
    pub(crate) apply: ApplyArgs,

    /// Change nothing: show what would be deleted
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    #[command(flatten)]
    pub(crate) kept: KeptArgs,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Options that decrypt the stage's SOPS-encrypted objects in memory; the returned handle
/// names the objects whose MAC did not verify, for [`warn_unverified`].
pub(crate) fn decrypting(mut options: Options, loaded: &Loaded) -> (Options, Arc<SopsObjects>) {
    let secrets = SopsObjects::from_env()
        .label(loaded.manifest.label().cloned())
        .verify_mac(loaded.verify_sops_mac);
    let secrets = Arc::new(secrets);
    options.prepare = Some(secrets.clone());
    (options, secrets)
}

/// Names the objects decrypted without a verified MAC: allowed by the stage, never silent.
pub(crate) fn warn_unverified(secrets: &SopsObjects, what: &str) {
    let names = secrets.unverified();
    if !names.is_empty() {
        let mut stderr = std::io::stderr();
        let _ = writeln!(
            stderr,
            "warning: {what} has `sops: {{verifyMac: false}}`; the MAC of these objects did not \
             verify, only each value's own authentication tag was checked:"
        );
        for name in names {
            let _ = writeln!(stderr, "  {name}");
        }
    }
}

/// What every command that plans a stage needs to know about it: who owns its objects, the
/// label it had before, whether it adopts, and the selection.
pub(crate) fn stage_options(loaded: &Loaded) -> Options {
    let mut options = Options::default();
    options.owner.clone_from(&loaded.owner);
    options
        .legacy_discriminator
        .clone_from(&loaded.legacy_discriminator);
    options.adopt = loaded.adopt;
    options.selection.clone_from(&loaded.selection);
    options.ignore.clone_from(&loaded.ignore);
    options
}

impl ApplyArgs {
    pub(crate) fn options(&self, loaded: &Loaded) -> Options {
        let mut options = stage_options(loaded);
        options.concurrency = usize::from(self.concurrency);
        options.force_conflicts = self.force_conflicts;
        options.force_prune = self.force_prune;
        options.force_cascade = self.force_cascade_delete;
        options.adopt |= self.adopt;
        options.verify_new = !self.no_verify;
        options.allow_empty = self.allow_empty;
        options.timeout = self.timeout;
        if !self.no_stamp {
            options.stamp = stamp(loaded.root.as_deref());
        }
        options
    }
}

pub(crate) fn deploy(args: &DeployArgs) -> Result<ExitCode, Failure> {
    if let Some(fleet) = fleet::resolve(&args.fleet, &args.stage, &args.cluster)? {
        return fleet::deploy(args, &fleet);
    }
    let loaded = args.stage.load()?;
    let prune = (args.prune || loaded.prune) && !args.no_prune;
    let (mut options, secrets) = decrypting(args.apply.options(&loaded), &loaded);
    let request = DeployRequest::default()
        .prune(prune)
        .dry_run(args.dry_run)
        .wait(args.wait);
    let json = args.output.json();
    let view = args.kept.view(&loaded);
    let started = Instant::now();
    // The summary's time is capstan's, not the time a person took to answer the prompt.
    let prompt = Cell::new(Duration::ZERO);
    let bar = Bar::new();
    let deployment = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let full_scan = args.apply.full_scan;
        let recorder = Recorder::open(&cluster, &loaded, &mut options, full_scan).await;
        if let Some(recorder) = &recorder {
            recorder.note_rollback(&loaded.manifest).await;
        }
        let run = Run {
            cluster: &cluster,
            loaded: &loaded,
            apply: &args.apply,
            secrets: &secrets,
            request,
            dry_run: args.dry_run,
            yes: args.yes,
            view: (!json).then_some(view),
            bar: &bar,
            prompt: &prompt,
        };
        run.deploy(options, recorder.as_ref(), None).await
    })?;
    let (deployment, warning) = deployment;
    if args.dry_run {
        warn_unverified(&secrets, &loaded.what);
    }
    let plan = |plan: &Plan<'_>| show::plan(plan, true, view);
    let preview = args.dry_run.then_some(&plan as Preview<'_>);
    let took = started.elapsed().saturating_sub(prompt.get());
    let code = finish(&deployment, json, args.dry_run, took, preview);
    if let Some(warning) = warning {
        crate::history::warn(&warning);
    }
    code
}

/// One deploy as `deploy` and `rollback` run it: under the stage's lock, its plan confirmed,
/// recorded in the stage's history (unless a dry run), the lock given back.
pub(crate) struct Run<'a, 'm> {
    pub(crate) cluster: &'a Cluster,
    pub(crate) loaded: &'m Loaded,
    pub(crate) apply: &'a ApplyArgs,
    pub(crate) secrets: &'a SopsObjects,
    pub(crate) request: DeployRequest,
    pub(crate) dry_run: bool,
    pub(crate) yes: bool,
    /// How the plan is shown before asking; `None` for JSON output.
    pub(crate) view: Option<View<'m>>,
    pub(crate) bar: &'a Bar,
    /// The time a person took to answer, which the summary's time leaves out.
    pub(crate) prompt: &'a Cell<Duration>,
}

impl<'m> Run<'_, 'm> {
    /// Deploys with `options`; the warning says why the history could not be written.
    ///
    /// # Errors
    ///
    /// The lock cannot be taken, or the deploy fails before it has a result.
    pub(crate) async fn deploy(
        self,
        options: Options,
        recorder: Option<&Recorder>,
        rollback_of: Option<u64>,
    ) -> anyhow::Result<(Deployment<'m>, Option<String>)> {
        let mut deployer = Deployer::new(self.cluster.client.clone(), options);
        if !self.dry_run {
            deployer = locked(deployer, self.cluster, self.loaded, self.apply).await?;
        }
        let mut ask = |plan: &Plan<'_>| {
            self.bar.finish();
            warn_unverified(self.secrets, &self.loaded.what);
            let asking = Instant::now();
            let context = &self.cluster.context;
            let yes = confirm(plan, self.loaded, context, self.yes, self.view);
            self.prompt.set(self.prompt.get() + asking.elapsed());
            yes
        };
        let progress = |event: capstan_apply::Event<'_>| self.bar.event(event);
        let deployment = deployer
            .deploy(&self.loaded.manifest, self.request, &progress, &mut ask)
            .await;
        self.bar.finish();
        let warning = match (recorder, &deployment) {
            (Some(recorder), Ok(deployment)) if !self.dry_run => {
                recorder
                    .record(&self.loaded.manifest, deployment, rollback_of)
                    .await
            }
            _ => None,
        };
        release(&mut deployer).await;
        Ok((deployment?, warning))
    }
}

/// The deployer, working under the stage's lock in the cluster: a run that finds the lock
/// held waits for it (up to `--timeout`), naming the holder, or fails at once with
/// `--no-wait-lock`. Manifests without a discriminator prune nothing and take no lock.
pub(crate) async fn locked(
    deployer: Deployer,
    cluster: &Cluster,
    loaded: &Loaded,
    apply: &ApplyArgs,
) -> anyhow::Result<Deployer> {
    let Some(label) = loaded.manifest.label() else {
        return Ok(deployer);
    };
    let owner = loaded.owner.clone().unwrap_or_else(|| label.selector());
    let mut request = LockRequest::new(&loaded.state_namespace, label, owner);
    request.wait = (!apply.no_wait_lock).then_some(apply.timeout);
    let on_wait = |holder: &LockHolder| {
        let _ = writeln!(std::io::stderr(), "waiting for the stage lock: {holder}");
    };
    let lock = StageLock::acquire(cluster.client.clone(), request, &on_wait).await?;
    Ok(deployer.with_lock(lock))
}

/// Gives the stage lock back; a lock lost at the very end changes nothing that was done, so
/// it is a warning.
pub(crate) async fn release(deployer: &mut Deployer) {
    if let Err(error) = deployer.release_lock().await {
        let _ = writeln!(std::io::stderr(), "warning: {error}");
    }
}

/// Shows the plan (unless the output is JSON) and asks; refuses without a terminal unless
/// `--yes`.
pub(crate) fn confirm(
    plan: &Plan<'_>,
    loaded: &Loaded,
    context: &str,
    yes: bool,
    text: Option<View<'_>>,
) -> bool {
    let what = &loaded.what;
    if let Some(view) = text
        && show::plan(plan, false, view).is_err()
    {
        return false;
    }
    yes || confirm_change(&format!("Apply {what} to context {context:?}?"))
}

/// Shows a plan before anything happened (a dry run, a prune with nothing to delete).
pub(crate) type Preview<'a> = &'a dyn Fn(&Plan<'_>) -> std::io::Result<()>;

/// Prints the result: as JSON, as a `preview` of the plan when nothing was meant to change,
/// or as a summary; the exit code says whether everything succeeded.
pub(crate) fn finish(
    deployment: &Deployment<'_>,
    json: bool,
    dry_run: bool,
    took: Duration,
    preview: Option<Preview<'_>>,
) -> Result<ExitCode, Failure> {
    match (json, preview) {
        (true, _) => output::deployment(deployment, dry_run)?,
        (false, Some(preview)) => preview(&deployment.plan)?,
        (false, None) => show::summary(deployment, took)?,
    }
    Ok(if deployment.succeeded() {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

/// `capstan diff`: exits 0 when nothing would change, 1 when something would.
pub(crate) fn diff(args: &DiffArgs) -> Result<ExitCode, Failure> {
    if let Some(fleet) = fleet::resolve(&args.fleet, &args.stage, &args.cluster)? {
        let view = args.kept.view(&fleet.loads[0]);
        let json = args.output.json();
        let check = fleet::Diff { prune: args.prune };
        return fleet::check(&fleet, &args.fleet, json, Some(view), &check);
    }
    let loaded = args.stage.load()?;
    let (mut options, secrets) = decrypting(stage_options(&loaded), &loaded);
    let bar = Bar::new();
    let plan = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        let recorder = Recorder::open(&cluster, &loaded, &mut options, args.full_scan).await;
        if let Some(recorder) = &recorder {
            recorder.note_rollback(&loaded.manifest).await;
        }
        let deployer = Deployer::new(cluster.client, options);
        let plan = deployer
            .plan(&loaded.manifest, args.prune, &|event| bar.event(event))
            .await;
        bar.finish();
        Ok(plan?)
    })?;
    warn_unverified(&secrets, &loaded.what);
    if args.output.json() {
        output::plan(&plan)?;
    } else {
        show::plan(&plan, true, args.kept.view(&loaded))?;
    }
    Ok(match (plan.errors().next(), plan.has_changes()) {
        (Some(_), _) => ExitCode::Failure,
        (None, true) => ExitCode::Differences,
        (None, false) => ExitCode::Success,
    })
}

/// `capstan prune`: deletes the orphans of a stage without applying anything.
pub(crate) fn prune(args: &PruneArgs) -> Result<ExitCode, Failure> {
    let args = &args.remove;
    let loaded = args.stage.load()?;
    let label = loaded.manifest.label().context(
        "refusing to prune without a discriminator label (pass --discriminator with -f)",
    )?;
    if loaded.manifest.is_empty() && !args.apply.allow_empty {
        return Err(capstan_apply::Error::EmptyManifest {
            selector: label.selector(),
        }
        .into());
    }
    // Pruning needs the objects' identities, not their bodies: no key is needed to prune.
    let mut options = args.apply.options(&loaded);
    let bar = Bar::new();
    let started = Instant::now();
    let prompt = Cell::new(Duration::ZERO);
    let view = args.kept.view(&loaded);
    let deployment = block_on(async {
        let cluster = args.cluster.connect(loaded.context.as_deref()).await?;
        Recorder::open(&cluster, &loaded, &mut options, args.apply.full_scan).await;
        let mut deployer = Deployer::new(cluster.client.clone(), options);
        if !args.dry_run {
            deployer = locked(deployer, &cluster, &loaded, &args.apply).await?;
        }
        let result = prune_locked(&deployer, &cluster, &loaded, args, &bar, &prompt).await;
        release(&mut deployer).await;
        result
    })?;
    let orphans = |plan: &Plan<'_>| show::orphans(plan.orphans().unwrap_or_default(), view);
    let preview = deployment
        .prune
        .is_none()
        .then_some(&orphans as Preview<'_>);
    let took = started.elapsed().saturating_sub(prompt.get());
    finish(&deployment, args.output.json(), args.dry_run, took, preview)
}

/// The part of `capstan prune` that runs under the lock.
async fn prune_locked<'m>(
    deployer: &Deployer,
    cluster: &Cluster,
    loaded: &'m Loaded,
    args: &RemoveArgs,
    bar: &Bar,
    prompt: &Cell<Duration>,
) -> anyhow::Result<Deployment<'m>> {
    {
        let progress = |event: capstan_apply::Event<'_>| bar.event(event);
        let plan = deployer.plan(&loaded.manifest, true, &progress).await?;
        bar.finish();
        let mut deployment = Deployment {
            requests: 0,
            outcomes: Vec::new(),
            prune: None,
            health: Vec::new(),
            plan,
        };
        let deletes = deployment
            .plan
            .orphans()
            .unwrap_or_default()
            .iter()
            .any(|o| o.will_delete());
        if !args.dry_run && deletes {
            if !args.output.json() {
                show::orphans(
                    deployment.plan.orphans().unwrap_or_default(),
                    args.kept.view(loaded),
                )?;
            }
            // With objects that cannot be applied, `prune` refuses anyway: nothing to ask.
            let refused = deployment.plan.errors().next().is_some();
            let asking = Instant::now();
            let declined = !args.yes
                && !refused
                && !confirm_change(&format!(
                    "Delete these objects from context {:?}?",
                    cluster.context
                ));
            prompt.set(prompt.get() + asking.elapsed());
            if declined {
                anyhow::bail!(capstan_apply::Error::NotConfirmed);
            }
            deployment.prune = Some(deployer.prune(&deployment.plan, &[], &progress).await);
            bar.finish();
        }
        deployment.requests = deployer.requests();
        Ok(deployment)
    }
}

/// The annotations recording this run: the project's commit (`-dirty` with local changes)
/// and the time.
fn stamp(root: Option<&std::path::Path>) -> std::collections::BTreeMap<String, String> {
    let mut stamp = std::collections::BTreeMap::new();
    let now = k8s_openapi::jiff::Timestamp::now().round(k8s_openapi::jiff::Unit::Second);
    if let Ok(now) = now {
        stamp.insert(
            format!("{}at", capstan_apply::STAMP_PREFIX),
            now.to_string(),
        );
    }
    let git = |args: &[&str]| {
        let root = root?;
        let output = std::process::Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()?;
        output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    if let Some(commit) = git(&["rev-parse", "HEAD"]) {
        let dirty = git(&["status", "--porcelain", "--untracked-files=no", "."])
            .is_some_and(|s| !s.is_empty());
        let suffix = if dirty { "-dirty" } else { "" };
        stamp.insert(
            format!("{}commit", capstan_apply::STAMP_PREFIX),
            format!("{commit}{suffix}"),
        );
    }
    stamp
}
