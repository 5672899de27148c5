//! Settling an object with the server: a read, then a server-side dry run.

use kube::api::PatchParams;
use serde_json::Value;

use crate::context::Context;
use crate::diff::Diff;
use crate::error::Error;
use crate::normalize::{ignored_fields, normalize, remove_fields};
use crate::planned::Planned;
use crate::vocab::Action;

/// Settles one object with the server: a read, then a dry run for objects that exist (and,
/// with `verify_new`, for new ones).
pub(crate) async fn check<'m>(cx: &Context, original: &Planned<'m>, check: Check) -> Planned<'m> {
    if check == Check::Elsewhere {
        return check_elsewhere(cx, original).await;
    }
    let mut item = original.clone_plan();
    let target = original.target().expect("checked objects are resolved");
    let live = if check == Check::Absent {
        None
    } else {
        match cx.api.get(target).await {
            Ok(live) => live,
            Err(source) => {
                item.error = Some(cx.object_error(&item, "read", source));
                return item;
            }
        }
    };
    item.uid = live
        .as_ref()
        .and_then(|l| l.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let adopting = match &live {
        Some(live) => {
            item.owners = managers(live);
            !item.owners.contains(&cx.options.field_manager)
        }
        None => false,
    };
    if adopting && !cx.options.adopt {
        item.error = Some(Error::NotAdopted {
            id: item.id().clone(),
            managers: item.owners.clone(),
        });
        return item;
    }
    if live.is_none() && !cx.options.verify_new {
        item.action = Action::Create;
        let body = item.body(&cx.options);
        item.diff = Some(Diff::new(None, &body, &item.masked, &item.secrets));
        return item;
    }
    let mut request = PatchParams::apply(&cx.options.field_manager).dry_run();
    request.force = cx.options.force_conflicts;
    let body = original.body(&cx.options);
    let planned = match cx.api.apply(target, &body, &request).await {
        Ok(planned) => planned,
        Err(source) => {
            item.error = Some(cx.object_error(&item, "dry-run apply", source));
            return item;
        }
    };
    item.verified = true;
    let (live, planned) = without_ignored(cx, &item, live, planned);
    item.action = match &live {
        None => Action::Create,
        // Even with nothing to change, taking an object over is a write: it makes capstan
        // one of its managers, and so the object the stage's prune and delete go for.
        Some(_) if adopting => Action::Adopt,
        Some(live) if same(live, &planned) => Action::Unchanged,
        Some(_) => Action::Update,
    };
    if item.action != Action::Unchanged {
        item.diff = Some(Diff::new(
            live.as_ref(),
            &planned,
            &item.masked,
            &item.secrets,
        ));
    }
    item
}

/// Validates an object whose namespace the run creates by dry-running it in the client's
/// default namespace instead (as kluctl does), forcing conflicts, since only the schema and
/// admission matter here.
async fn check_elsewhere<'m>(cx: &Context, original: &Planned<'m>) -> Planned<'m> {
    let mut item = original.clone_plan();
    let namespace = cx.default_namespace().to_owned();
    let mut body = original.body(&cx.options);
    body["metadata"]["namespace"] = Value::String(namespace.clone());
    let mut target = original.target().expect("checked objects are resolved");
    target.namespace = Some(&namespace);
    let request = PatchParams::apply(&cx.options.field_manager)
        .dry_run()
        .force();
    match cx.api.apply(target, &body, &request).await {
        Ok(_) => item.verified = true,
        Err(source) => item.error = Some(cx.object_error(&item, "dry-run apply", source)),
    }
    item.diff = original.diff.clone();
    item
}

/// What planning knows of an object before asking the server about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// It carries the discriminator, but its metadata does not prove it unchanged.
    Exists,
    /// Not labelled: it may or may not exist.
    Unknown,
    /// Listed as not existing.
    Absent,
    /// Its namespace does not exist yet; validate it in another.
    Elsewhere,
}

/// Both states without the fields the stage's ignore rules name.
fn without_ignored(
    cx: &Context,
    item: &Planned<'_>,
    live: Option<Value>,
    mut planned: Value,
) -> (Option<Value>, Value) {
    let Some(mut live) = live else {
        return (None, planned);
    };
    let fields = ignored_fields(&cx.options.ignore, item.id(), &live);
    remove_fields(&mut live, &fields);
    remove_fields(&mut planned, &fields);
    (Some(live), planned)
}

/// Whether the live object and the dry-run result agree on everything but server bookkeeping.
fn same(live: &Value, planned: &Value) -> bool {
    let (mut live, mut planned) = (live.clone(), planned.clone());
    normalize(&mut live);
    normalize(&mut planned);
    live == planned
}

/// The field managers of a live object, each once, in the order the server lists them.
fn managers(live: &Value) -> Vec<String> {
    let mut managers: Vec<String> = Vec::new();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for manager in entries.filter_map(|e| e.get("manager").and_then(Value::as_str)) {
        if !managers.iter().any(|m| m == manager) {
            managers.push(manager.to_owned());
        }
    }
    managers
}
