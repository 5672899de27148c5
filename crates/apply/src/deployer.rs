//! The entry point: a [`Deployer`] plans, applies, prunes, deletes and reports.

use capstan_kube::{Api, Catalog};
use capstan_manifest::{Manifest, ObjectId};
use kube::Client;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::lock::StageLock;
use crate::options::Options;
use crate::planned::Plan;
use crate::vocab::{Action, Blind, Deletion, Health, ObjectStatus, Outcome, Owned, Progress};
use crate::{cascade, health, plan, prune, scan, write};

/// Deploys manifests to one cluster and answers what a discriminator owns there.
///
/// Every method reports through a [`Progress`] callback and returns typed results; none
/// prints, and confirmation is the caller's (see [`Deployer::deploy`]).
pub struct Deployer {
    cx: Context,
    /// The stage lock this deployer works under, checked before every write and delete.
    lock: Option<StageLock>,
}

/// What [`Deployer::deploy`] should do besides applying.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DeployRequest {
    /// Delete orphans (live objects with the discriminator that the manifests dropped).
    pub prune: bool,
    /// Plan only; write and delete nothing.
    pub dry_run: bool,
    /// Wait for the written objects to be ready.
    pub wait: bool,
}

/// Built from the default (apply only): `DeployRequest::default().prune(true).wait(true)`.
impl DeployRequest {
    /// Whether to delete orphans.
    #[must_use]
    pub fn prune(mut self, prune: bool) -> Self {
        self.prune = prune;
        self
    }

    /// Whether to plan only.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Whether to wait for readiness.
    #[must_use]
    pub fn wait(mut self, wait: bool) -> Self {
        self.wait = wait;
        self
    }
}

/// What a discriminator owns on the server.
#[derive(Debug)]
#[non_exhaustive]
pub struct Inventory {
    /// The objects, each with the guards' verdict.
    pub objects: Vec<Owned>,
    /// What could not be listed.
    pub blind: Blind,
}

/// What a deploy did.
#[derive(Debug)]
pub struct Deployment<'m> {
    /// The plan it followed.
    pub plan: Plan<'m>,
    /// One entry per object when it applied; empty for a dry run, and when the plan has
    /// errors (then nothing is written).
    pub outcomes: Vec<Outcome>,
    /// The prune: `None` when not requested or a dry run, `Some(Err)` when it was refused
    /// because an apply failed.
    pub prune: Option<Result<Vec<Deletion>>>,
    /// Health of the written objects, when waiting was requested.
    pub health: Vec<ObjectStatus>,
    /// API requests made in all.
    pub requests: usize,
}

impl Deployment<'_> {
    /// Whether every object could be planned and applied, every prune deletion succeeded and
    /// every awaited object became ready.
    pub fn succeeded(&self) -> bool {
        self.plan.errors().next().is_none()
            && self.outcomes.iter().all(|o| o.result.is_ok())
            && match &self.prune {
                None => true,
                Some(Ok(deletions)) => deletions.iter().all(|d| d.result.is_ok()),
                Some(Err(_)) => false,
            }
            && self.health.iter().all(|s| s.health == Health::Ready)
    }
}

impl Deployer {
    /// A deployer talking to the cluster of `client`.
    pub fn new(client: Client, options: Options) -> Self {
        Self {
            cx: Context {
                api: Api::new(client),
                options,
            },
            lock: None,
        }
    }

    /// Works under `lock` (see [`StageLock`]): every write and delete first checks that the
    /// lock is still held, so a run that lost it (another run took it over after this one
    /// stalled) stops instead of racing the new holder.
    pub fn with_lock(mut self, lock: StageLock) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Gives the lock back, if this deployer holds one.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when it was lost during the run; a request failing.
    pub async fn release_lock(&mut self) -> Result<()> {
        match self.lock.take() {
            Some(lock) => lock.release().await,
            None => Ok(()),
        }
    }

    fn holds_lock(&self) -> Result<()> {
        self.lock.as_ref().map_or(Ok(()), StageLock::check)
    }

    /// API requests this deployer has made so far, retries included.
    pub fn requests(&self) -> usize {
        self.cx.api.requests()
    }

    /// Plans the manifests: for each object, create, update (with a diff) or unchanged, and,
    /// with `prune`, the orphans. Writes nothing.
    ///
    /// Unchanged objects are proven from metadata where possible (see the crate docs); the
    /// rest are read and dry-run with server-side apply.
    ///
    /// # Errors
    ///
    /// Discovery or a list failing. Problems with single objects (unknown kinds, conflicts,
    /// rejected dry runs) are not errors here: they are in [`Plan::errors`].
    pub async fn plan<'m>(
        &self,
        manifest: &'m Manifest,
        prune: bool,
        progress: Progress<'_>,
    ) -> Result<Plan<'m>> {
        plan::plan(&self.cx, manifest, prune, progress).await
    }

    /// Applies a plan's creates and updates, wave by wave; returns one outcome per object.
    ///
    /// # Errors
    ///
    /// [`Error::Unplannable`] when the plan has object errors: then nothing is written.
    pub async fn apply(&self, plan: &mut Plan<'_>, progress: Progress<'_>) -> Result<Vec<Outcome>> {
        let count = plan.errors().count();
        if count > 0 {
            return Err(Error::Unplannable { count });
        }
        self.holds_lock()?;
        self.cx.api.reset();
        Ok(write::write(&self.cx, plan, progress).await)
    }

    /// Deletes a plan's orphans (those the guards allow), after a successful apply.
    ///
    /// # Errors
    ///
    /// [`Error::ApplyFailed`] when any outcome failed, [`Error::Unplannable`] when the plan has
    /// object errors, [`Error::EmptyManifest`] for an empty
    /// manifest set without [`Options::allow_empty`], [`Error::NoDiscriminator`] when the plan
    /// was made without prune or a label. Nothing is deleted then.
    pub async fn prune(
        &self,
        plan: &Plan<'_>,
        outcomes: &[Outcome],
        progress: Progress<'_>,
    ) -> Result<Vec<Deletion>> {
        let failed = outcomes.iter().filter(|o| o.result.is_err()).count();
        if failed > 0 {
            return Err(Error::ApplyFailed { failed });
        }
        // Objects that cannot be applied may mean a broken render: never prune on one.
        let count = plan.errors().count();
        if count > 0 {
            return Err(Error::Unplannable { count });
        }
        let orphans = plan
            .orphans
            .as_deref()
            .ok_or(Error::NoDiscriminator { operation: "prune" })?;
        if plan.empty && !self.cx.options.allow_empty {
            return Err(Error::EmptyManifest {
                selector: plan.selector.clone().unwrap_or_default(),
            });
        }
        self.holds_lock()?;
        Ok(prune::delete(&self.cx, orphans, progress).await)
    }

    /// The whole deploy: plan, ask `confirm` when anything would change, apply, prune and wait,
    /// as `request` says.
    ///
    /// # Errors
    ///
    /// Refusals that change nothing: no discriminator or an empty manifest set with prune
    /// ([`Error::NoDiscriminator`], [`Error::EmptyManifest`]), `confirm` declining
    /// ([`Error::NotConfirmed`]); and discovery or list failures. Objects that cannot be
    /// applied are in [`Plan::errors`] (and then nothing is written); failures of single
    /// writes are in [`Deployment::outcomes`].
    pub async fn deploy<'m>(
        &self,
        manifest: &'m Manifest,
        request: DeployRequest,
        progress: Progress<'_>,
        confirm: &mut dyn FnMut(&Plan<'m>) -> bool,
    ) -> Result<Deployment<'m>> {
        let start = self.cx.api.requests();
        if request.prune {
            let label = manifest
                .label()
                .ok_or(Error::NoDiscriminator { operation: "prune" })?;
            if manifest.is_empty() && !self.cx.options.allow_empty {
                return Err(Error::EmptyManifest {
                    selector: label.selector(),
                });
            }
        }
        let mut plan = self.plan(manifest, request.prune, progress).await?;
        if request.dry_run || plan.errors().next().is_some() {
            return Ok(Deployment {
                plan,
                outcomes: Vec::new(),
                prune: None,
                health: Vec::new(),
                requests: self.cx.api.requests() - start,
            });
        }
        if plan.has_changes() && !confirm(&plan) {
            return Err(Error::NotConfirmed);
        }
        self.holds_lock()?;
        let outcomes = write::write(&self.cx, &mut plan, progress).await;
        let prune = match request.prune {
            true => Some(self.prune(&plan, &outcomes, progress).await),
            false => None,
        };
        let health = match (request.wait, manifest.label()) {
            (true, Some(label)) if outcomes.iter().all(|o| o.result.is_ok()) => {
                let written: Vec<ObjectId> = outcomes
                    .iter()
                    .filter(|o| o.action != Action::Unchanged)
                    .map(|o| o.id.clone())
                    .collect();
                health::wait_ready(&self.cx, &plan.catalog, manifest, label, &written, progress)
                    .await?
            }
            _ => Vec::new(),
        };
        Ok(Deployment {
            plan,
            outcomes,
            prune,
            health,
            requests: self.cx.api.requests() - start,
        })
    }

    /// Every live object carrying the manifests' discriminator, across all resource types (or
    /// those of [`Options::scan_scope`]), with what would keep each from being deleted (the
    /// cascade guards included). A user who
    /// may not list across the cluster gets what the manifests' namespaces hold.
    ///
    /// # Errors
    ///
    /// [`Error::NoDiscriminator`] for manifests loaded without a label; discovery or a list
    /// failing.
    pub async fn owned(&self, manifest: &Manifest, progress: Progress<'_>) -> Result<Inventory> {
        let label = manifest.label().ok_or(Error::NoDiscriminator {
            operation: "delete",
        })?;
        self.cx.api.reset();
        let catalog = scan::catalog(&self.cx, manifest).await?;
        let mut namespaces: Vec<String> = manifest
            .iter()
            .filter_map(|o| o.id().namespace().map(str::to_owned))
            .collect();
        namespaces.sort();
        namespaces.dedup();
        let mut scan =
            scan::scan(&self.cx, &catalog, manifest, label, &namespaces, progress).await?;
        if let Some(selection) = &self.cx.options.selection {
            scan.owned.retain(|o| selection.matches(&o.id, &o.labels));
        }
        let full = scan::guard_catalog(&self.cx, &scan.owned).await?;
        let guards = full.as_ref().unwrap_or(&catalog);
        cascade::guard_cascades(&self.cx, guards, &mut scan.owned).await;
        Ok(Inventory {
            objects: scan.owned,
            blind: scan.blind,
        })
    }

    /// Deletes the given objects (those without a [`Keep`](crate::Keep) reason) in reverse
    /// apply order, each only if its UID is unchanged. Asking first is the caller's job.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when the deployer's lock is no longer held: nothing is deleted.
    pub async fn delete(&self, owned: &[Owned], progress: Progress<'_>) -> Result<Vec<Deletion>> {
        self.holds_lock()?;
        self.cx.api.reset();
        Ok(prune::delete(&self.cx, owned, progress).await)
    }

    /// The health of every object of the manifests on the server.
    ///
    /// # Errors
    ///
    /// [`Error::NoDiscriminator`] for manifests loaded without a label; discovery or a list
    /// failing.
    pub async fn status(&self, manifest: &Manifest) -> Result<Vec<ObjectStatus>> {
        let label = manifest.label().ok_or(Error::NoDiscriminator {
            operation: "status",
        })?;
        self.cx.api.reset();
        let catalog = Catalog::discover_for(&self.cx.api, manifest).await?;
        health::health(&self.cx, &catalog, manifest, label, None).await
    }
}
