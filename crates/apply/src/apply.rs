//! Writing a plan: wave by wave, CRDs Established before the custom resources that need them.

use std::time::{Duration, Instant};

use capstan_kube::{Backoff, Catalog, RequestFailure, condition, poll_until};
use capstan_manifest::ObjectId;
use futures::{StreamExt as _, stream};
use kube::api::PatchParams;
use serde_json::Value;

use crate::deployer::Deployer;
use crate::error::{Error, Result};
use crate::options::{Event, Progress};
use crate::plan::{Action, Plan, Planned};

/// What happened to one object of the plan.
#[derive(Debug)]
pub struct Outcome {
    /// The object.
    pub id: ObjectId,
    /// What the plan said to do.
    pub action: Action,
    /// `Ok` when it was written (or needed no write); the error otherwise.
    pub result: Result<()>,
}

impl Deployer {
    /// Applies the plan's creates and updates. A failed object does not stop the others of its
    /// wave, but no later wave starts.
    pub(crate) async fn write(&self, plan: &mut Plan<'_>, progress: Progress<'_>) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(plan.items.len());
        let mut failed = false;
        let mut start = 0;
        let mut wave = 0;
        while start < plan.items.len() {
            let key = wave_key(&plan.items[start]);
            let end = start
                + plan.items[start..]
                    .iter()
                    .take_while(|item| wave_key(item) == key)
                    .count();
            if failed {
                outcomes.extend(plan.items[start..end].iter().map(|item| Outcome {
                    id: item.id().clone(),
                    action: item.action,
                    result: Err(Error::Skipped {
                        id: item.id().clone(),
                    }),
                }));
                start = end;
                continue;
            }
            if plan.items[start..end].iter().any(|i| i.resource.is_none()) {
                let versions = plan.items[start..end]
                    .iter()
                    .map(|i| i.id().api_version())
                    .collect();
                self.refresh(&mut plan.catalog, versions, &mut plan.items[start..end])
                    .await;
            }
            wave += 1;
            let items = &mut plan.items[start..end];
            let writes = items
                .iter()
                .filter(|i| i.action != Action::Unchanged)
                .count();
            if writes > 0 {
                progress(Event::Wave {
                    index: wave,
                    writes,
                });
            }
            let results: Vec<(usize, Result<Option<String>>)> = stream::iter(
                items
                    .iter()
                    .enumerate()
                    .filter(|(_, item)| item.action != Action::Unchanged),
            )
            .map(|(index, item)| async move { (index, self.write_one(item).await) })
            .buffer_unordered(self.options.concurrency.max(1))
            .inspect(|(index, result)| {
                progress(Event::Applied {
                    id: items[*index].id(),
                    action: items[*index].action,
                    ok: result.is_ok(),
                })
            })
            .collect()
            .await;
            let mut wave_outcomes: Vec<Option<Result<()>>> =
                (0..items.len()).map(|_| None).collect();
            for (index, result) in results {
                wave_outcomes[index] = Some(result.map(|uid| {
                    if uid.is_some() {
                        items[index].uid = uid;
                    }
                }));
            }
            failed = wave_outcomes.iter().flatten().any(Result::is_err);
            if !failed && let Err(errors) = self.establish(items, progress).await {
                failed = true;
                for (index, error) in errors {
                    wave_outcomes[index] = Some(Err(error));
                }
            }
            outcomes.extend(
                items
                    .iter()
                    .zip(wave_outcomes)
                    .map(|(item, result)| Outcome {
                        id: item.id().clone(),
                        action: item.action,
                        result: result.unwrap_or(Ok(())),
                    }),
            );
            start = end;
        }
        outcomes
    }

    /// One server-side apply; the object's UID on success.
    async fn write_one(&self, item: &Planned<'_>) -> Result<Option<String>> {
        let Some(target) = item.target() else {
            return Err(Error::UnknownKind {
                id: item.id().clone(),
                api_version: item.id().api_version(),
                kind: item.id().kind().to_owned(),
            });
        };
        let mut request = PatchParams::apply(&self.options.field_manager);
        request.force = self.options.force_conflicts;
        let applied = self
            .api
            .apply(target, &item.body, &request)
            .await
            .map_err(|source| self.object_error(item, "apply", source))?;
        Ok(applied
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned))
    }

    /// Waits until the wave's CRDs are Established; errors by index into `items`.
    async fn establish(
        &self,
        items: &[Planned<'_>],
        progress: Progress<'_>,
    ) -> Result<(), Vec<(usize, Error)>> {
        let crds: Vec<usize> = items
            .iter()
            .enumerate()
            .filter(|(_, i)| {
                i.id().group() == "apiextensions.k8s.io"
                    && i.id().kind() == "CustomResourceDefinition"
                    && i.action != Action::Unchanged
            })
            .map(|(index, _)| index)
            .collect();
        if crds.is_empty() {
            return Ok(());
        }
        progress(Event::Establishing { count: crds.len() });
        let deadline = Instant::now() + self.options.timeout;
        let errors: Vec<(usize, Error)> =
            stream::iter(crds)
                .map(|index| async move {
                    (index, self.wait_established(&items[index], deadline).await)
                })
                .buffer_unordered(self.options.concurrency.max(1))
                .filter_map(|(index, result)| async move { result.err().map(|e| (index, e)) })
                .collect()
                .await;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    async fn wait_established(&self, crd: &Planned<'_>, deadline: Instant) -> Result<()> {
        let target = crd.target().expect("applied CRDs are resolved");
        let mut reason = None;
        let established = poll_until(deadline, ESTABLISHING, async || {
            let live = self
                .api
                .get(target)
                .await
                .map_err(|source| self.object_error(crd, "read", source))?;
            match live.as_ref().and_then(|crd| condition(crd, "Established")) {
                Some(established) if established.is_true() => return Ok::<_, Error>(Some(())),
                Some(established) => reason = established.message.map(str::to_owned),
                None => {}
            }
            Ok(None)
        })
        .await?;
        established.ok_or_else(|| Error::NotEstablished {
            id: crd.id().clone(),
            seconds: self.options.timeout.as_secs(),
            reason,
        })
    }

    /// Rediscovers the API until the wave's kinds are served (a CRD Established in an earlier
    /// wave takes a moment to appear in discovery) or the timeout passes; kinds that never
    /// appear fail when written.
    async fn refresh(
        &self,
        catalog: &mut Catalog,
        versions: Vec<String>,
        items: &mut [Planned<'_>],
    ) {
        let deadline = Instant::now() + self.options.timeout;
        let served = poll_until(deadline, REDISCOVERY, async || {
            if let Ok(fresh) = Catalog::discover_only(&self.api, &versions).await {
                catalog.merge(fresh);
            }
            let mut missing = false;
            for item in items
                .iter_mut()
                .filter(|i| i.resource.is_none() && i.error.is_none())
            {
                match catalog.resolve_id(item.id()) {
                    Some(resource) => {
                        item.place(resource, self.api.client().default_namespace());
                    }
                    None => missing = true,
                }
            }
            Ok::<_, std::convert::Infallible>((!missing).then_some(()))
        });
        // Kinds still missing at the deadline fail when written.
        let _ = served.await;
    }

    /// A failed request for an object, classified.
    pub(crate) fn object_error(
        &self,
        item: &Planned<'_>,
        operation: &'static str,
        source: kube::Error,
    ) -> Error {
        let error = self.request_error(item.id(), operation, source);
        if item.secrets.is_empty() {
            return error;
        }
        error.redacted(&item.secrets)
    }

    pub(crate) fn request_error(
        &self,
        id: &ObjectId,
        operation: &'static str,
        source: kube::Error,
    ) -> Error {
        match RequestFailure::classify(source) {
            RequestFailure::Conflict { message } => Error::Conflict {
                id: id.clone(),
                message,
            },
            RequestFailure::Rejected { code, message } => Error::Rejected {
                id: id.clone(),
                operation,
                code,
                message,
            },
            RequestFailure::Unanswered(cause) => Error::Request {
                id: id.clone(),
                operation,
                cause,
            },
        }
    }
}

/// A CRD is usually Established within a second: look often at first.
const ESTABLISHING: Backoff =
    Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));

/// Discovery shows a new kind a moment after its CRD is Established.
const REDISCOVERY: Backoff = Backoff::fixed(Duration::from_millis(200));

fn wave_key(item: &Planned<'_>) -> (u32, capstan_manifest::Phase) {
    (item.object.barrier_group(), item.object.phase())
}
