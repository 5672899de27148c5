//! Writing a plan: wave by wave, CRDs Established before the custom resources that need them.

use std::time::{Duration, Instant};

use capstan_kube::{Backoff, Catalog, condition, poll_until};
use futures::{StreamExt as _, stream};
use kube::api::PatchParams;
use serde_json::Value;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::planned::{Plan, Planned};
use crate::vocab::{Action, Event, Outcome, Progress};

/// Applies the plan's creates and updates. A failed object does not stop the others of its
/// wave, but no later wave starts.
pub(crate) async fn write(
    cx: &Context,
    plan: &mut Plan<'_>,
    progress: Progress<'_>,
) -> Vec<Outcome> {
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
            refresh(cx, &mut plan.catalog, versions, &mut plan.items[start..end]).await;
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
        .map(|(index, item)| async move { (index, write_one(cx, item).await) })
        .buffer_unordered(cx.concurrency())
        .inspect(|(index, result)| {
            progress(Event::Applied {
                id: items[*index].id(),
                action: items[*index].action,
                ok: result.is_ok(),
            })
        })
        .collect()
        .await;
        let mut wave_outcomes: Vec<Option<Result<()>>> = (0..items.len()).map(|_| None).collect();
        for (index, result) in results {
            wave_outcomes[index] = Some(result.map(|uid| {
                if uid.is_some() {
                    items[index].uid = uid;
                }
            }));
        }
        failed = wave_outcomes.iter().flatten().any(Result::is_err);
        if !failed && let Err(errors) = establish(cx, items, progress).await {
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
async fn write_one(cx: &Context, item: &Planned<'_>) -> Result<Option<String>> {
    let Some(target) = item.target() else {
        return Err(Error::UnknownKind {
            id: item.id().clone(),
            api_version: item.id().api_version(),
            kind: item.id().kind().to_owned(),
        });
    };
    let mut request = PatchParams::apply(&cx.options.field_manager);
    request.force = cx.options.force_conflicts;
    let applied = cx
        .api
        .apply(target, &item.body(&cx.options), &request)
        .await
        .map_err(|source| cx.object_error(item, "apply", source))?;
    Ok(applied
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Waits until the wave's CRDs are Established; errors by index into `items`.
async fn establish(
    cx: &Context,
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
    let deadline = Instant::now() + cx.options.timeout;
    let errors: Vec<(usize, Error)> = stream::iter(crds)
        .map(|index| async move { (index, wait_established(cx, &items[index], deadline).await) })
        .buffer_unordered(cx.concurrency())
        .filter_map(|(index, result)| async move { result.err().map(|e| (index, e)) })
        .collect()
        .await;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

async fn wait_established(cx: &Context, crd: &Planned<'_>, deadline: Instant) -> Result<()> {
    let target = crd.target().expect("applied CRDs are resolved");
    let mut reason = None;
    let established = poll_until(deadline, ESTABLISHING, async || {
        let live = cx
            .api
            .get(target)
            .await
            .map_err(|source| cx.object_error(crd, "read", source))?;
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
        seconds: cx.options.timeout.as_secs(),
        reason,
    })
}

/// Rediscovers the API until the wave's kinds are served (a CRD Established in an earlier
/// wave takes a moment to appear in discovery) or the timeout passes; kinds that never
/// appear fail when written.
async fn refresh(
    cx: &Context,
    catalog: &mut Catalog,
    versions: Vec<String>,
    items: &mut [Planned<'_>],
) {
    let deadline = Instant::now() + cx.options.timeout;
    let served = poll_until(deadline, REDISCOVERY, async || {
        if let Ok(fresh) = Catalog::discover_only(&cx.api, &versions).await {
            catalog.merge(fresh);
        }
        let mut missing = false;
        for item in items
            .iter_mut()
            .filter(|i| i.resource.is_none() && i.error.is_none())
        {
            match catalog.resolve_id(item.id()) {
                Some(resource) => {
                    item.place(resource, cx.default_namespace());
                }
                None => missing = true,
            }
        }
        Ok::<_, std::convert::Infallible>((!missing).then_some(()))
    });
    // Kinds still missing at the deadline fail when written.
    let _ = served.await;
}

/// A CRD is usually Established within a second: look often at first.
const ESTABLISHING: Backoff =
    Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));

/// Discovery shows a new kind a moment after its CRD is Established.
const REDISCOVERY: Backoff = Backoff::fixed(Duration::from_millis(200));

fn wave_key(item: &Planned<'_>) -> (u32, capstan_manifest::Phase) {
    (item.object.barrier_group(), item.object.phase())
}
