//! Deleting what a discriminator owns: in reverse apply order, each object only if it is still
//! the one that was found.

use std::collections::BTreeMap;

use capstan_kube::{Target, status_code};
use capstan_manifest::Phase;
use futures::{StreamExt as _, stream};

use crate::context::Context;
use crate::vocab::{Deletion, Event, Owned, Progress, Removal};

/// Deletes the objects whose verdict is delete: in the reverse of apply order, one phase at
/// a time, each with a UID precondition so a replaced object survives.
pub(crate) async fn delete(cx: &Context, owned: &[Owned], progress: Progress<'_>) -> Vec<Deletion> {
    let mut phases: BTreeMap<std::cmp::Reverse<Phase>, Vec<&Owned>> = BTreeMap::new();
    for object in owned.iter().filter(|o| o.will_delete()) {
        let phase = Phase::of(object.id.group(), object.id.kind(), false);
        phases
            .entry(std::cmp::Reverse(phase))
            .or_default()
            .push(object);
    }
    let mut deletions = Vec::new();
    for objects in phases.into_values() {
        let done: Vec<Deletion> = stream::iter(objects)
            .map(|object| async move {
                let target = Target {
                    resource: &object.resource,
                    namespace: object.id.namespace(),
                    name: object.id.name(),
                };
                let result = match cx.api.delete(target, &object.uid).await {
                    Ok(true) => Ok(Removal::Deleted),
                    Ok(false) => Ok(Removal::AlreadyGone),
                    // A changed UID (409) means the object was replaced: not ours to delete.
                    Err(error) if status_code(&error) == Some(409) => Ok(Removal::Replaced),
                    Err(source) => Err(cx.request_error(&object.id, "delete", source)),
                };
                Deletion {
                    id: object.id.clone(),
                    result,
                }
            })
            .buffer_unordered(cx.concurrency())
            .inspect(|d| {
                progress(Event::Deleted {
                    id: &d.id,
                    ok: d.result.is_ok(),
                })
            })
            .collect()
            .await;
        deletions.extend(done);
    }
    deletions
}
