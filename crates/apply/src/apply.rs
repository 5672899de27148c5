//! Writing a plan: wave by wave, CRDs Established before the custom resources that need them.

use std::time::{Duration, Instant};

use capstan_manifest::ObjectId;
use futures::{StreamExt as _, stream};
use serde_json::Value;

use crate::api::ApplyRequest;
use crate::catalog::Catalog;
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
        let request = ApplyRequest {
            manager: &self.options.field_manager,
            force: self.options.force_conflicts,
            dry_run: false,
        };
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
        let mut delay = Duration::from_millis(50);
        loop {
            let live = self
                .api
                .get(target)
                .await
                .map_err(|source| self.object_error(crd, "read", source))?;
            let established = live.as_ref().and_then(|crd| condition(crd, "Established"));
            match established {
                Some(("True", _)) => return Ok(()),
                Some((_, message)) => reason = message.map(str::to_owned),
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::NotEstablished {
                    id: crd.id().clone(),
                    seconds: self.options.timeout.as_secs(),
                    reason,
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(1));
        }
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
        loop {
            if let Ok(fresh) = Catalog::discover_only(&self.api, &versions).await {
                catalog.merge(fresh);
            }
            let mut missing = false;
            for item in items
                .iter_mut()
                .filter(|i| i.resource.is_none() && i.error.is_none())
            {
                let id = item.id();
                match catalog.resolve(id.group(), id.version(), id.kind()) {
                    Some(resource) => {
                        item.place(resource, self.api.client().default_namespace());
                    }
                    None => missing = true,
                }
            }
            if !missing || Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
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
        match source {
            kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict" => {
                Error::Conflict {
                    id: id.clone(),
                    message: status.message,
                }
            }
            kube::Error::Api(status) => Error::Rejected {
                id: id.clone(),
                operation,
                code: status.code,
                message: status.message,
            },
            source => Error::Request {
                id: id.clone(),
                operation,
                cause: source,
            },
        }
    }
}

fn wave_key(item: &Planned<'_>) -> (u32, capstan_manifest::Phase) {
    (item.object.barrier_group(), item.object.phase())
}

/// A condition's status and message.
pub(crate) fn condition<'v>(object: &'v Value, kind: &str) -> Option<(&'v str, Option<&'v str>)> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .map(|c| {
            (
                c.get("status").and_then(Value::as_str).unwrap_or_default(),
                c.get("message").and_then(Value::as_str),
            )
        })
}
