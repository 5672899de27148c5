//! Planning: what applying the manifests would do to each object.

use std::collections::{HashMap, HashSet};

use capstan_manifest::{Label, Manifest, Object, ObjectId, Sensitive};
use futures::{StreamExt as _, stream};
use serde_json::Value;

use capstan_kube::Catalog;

use crate::cascade::guard_cascades;
use crate::check::{self, Check};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::live::{absent, check_namespaces, labelled};
use crate::planned::{Plan, Planned, key};
use crate::proof::{content_hash, proves_unchanged};
use crate::redact::{Redactions, ValuePath, paths_holding};
use crate::scan::{Scan, guard_catalog, scan};
use crate::vocab::{Action, Blind, Event, Keep, Progress};

/// Plans the manifests (see [`Deployer::plan`](crate::Deployer::plan)).
pub(crate) async fn plan<'m>(
    cx: &Context,
    manifest: &'m Manifest,
    prune: bool,
    progress: Progress<'_>,
) -> Result<Plan<'m>> {
    let start = cx.api.requests();
    cx.api.reset();
    let catalog = if prune {
        crate::scan::catalog(cx, manifest).await?
    } else {
        Catalog::discover_for(&cx.api, manifest).await?
    };
    progress(Event::Discovered {
        resources: catalog.len(),
    });
    let defined = defined_kinds(manifest);
    let selected = |object: &Object| match &cx.options.selection {
        Some(selection) => selection.matches(object.id(), &object.labels()),
        None => true,
    };
    let mut items: Vec<Planned<'m>> = manifest
        .iter()
        .filter(|object| selected(object))
        .map(|object| resolve(cx, object, &catalog, &defined, manifest.sensitive()))
        .collect();
    explain_unknown_kinds(cx, &mut items).await;
    check_namespaces(cx, manifest, &catalog, &mut items).await?;
    let labelled = labelled(cx, manifest, &items).await?;
    let mut unsettled = Vec::new();
    for (index, item) in items.iter_mut().enumerate() {
        if item.error.is_some() {
            continue;
        }
        if item.pending {
            // Without its namespace it can still be validated: see `Check::Elsewhere`.
            if cx.options.verify_new && item.resource.is_some() {
                unsettled.push((index, Check::Elsewhere));
            }
            continue;
        }
        match labelled.get(&key(item)) {
            Some(live) => {
                item.uid = live.metadata.uid.clone();
                let body = item.body(&cx.options);
                let manager = &cx.options.field_manager;
                let id = item.id();
                let ignored =
                    |path: &[String], by: Option<&str>| cx.options.ignore.ignores(id, path, by);
                if proves_unchanged(&live.metadata, &body, &item.hash, manager, &ignored) {
                    item.action = Action::Unchanged;
                } else {
                    unsettled.push((index, Check::Exists));
                }
            }
            None => unsettled.push((index, Check::Unknown)),
        }
    }
    let absent = absent(cx, &items, &unsettled).await?;
    progress(Event::Checking {
        total: unsettled.len(),
    });
    let checked: Vec<(usize, Planned<'m>)> = stream::iter(unsettled)
        .map(|(index, check)| {
            let item = &items[index];
            let check = match check {
                Check::Unknown if absent.contains(&index) => Check::Absent,
                check => check,
            };
            async move { (index, check::check(cx, item, check).await) }
        })
        .buffer_unordered(cx.concurrency())
        .inspect(|(_, item)| progress(Event::Checked { id: item.id() }))
        .collect()
        .await;
    for (index, item) in checked {
        items[index] = item;
    }
    let mut plan = Plan {
        items,
        orphans: None,
        catalog,
        empty: manifest.is_empty(),
        selector: manifest.label().map(|label| label.selector()),
        blind: Blind::default(),
        requests: 0,
    };
    if prune && let Some(label) = manifest.label() {
        let scan = orphans(cx, &plan, manifest, label, progress).await?;
        plan.orphans = Some(scan.owned);
        plan.blind = scan.blind;
    }
    plan.requests = cx.api.requests() - start;
    Ok(plan)
}

/// Finds the object's resource type and namespace, and prepares its body.
fn resolve<'m>(
    cx: &Context,
    object: &'m Object,
    catalog: &Catalog,
    defined: &HashSet<(String, String)>,
    sensitive: &Sensitive,
) -> Planned<'m> {
    let id = object.id();
    let owner = cx.options.owner.as_deref();
    let mut item = Planned {
        object,
        resource: None,
        namespace: None,
        action: Action::Create,
        diff: None,
        uid: None,
        verified: false,
        pending: false,
        error: None,
        prepared: None,
        hash: content_hash(object.json(), &cx.options.field_manager, owner),
        masked: Vec::new(),
        owners: Vec::new(),
        secrets: Redactions::default(),
    };
    match prepare(cx, object) {
        Ok(prepared) => {
            if let Some((body, masked)) = prepared {
                (item.prepared, item.masked) = (Some(body), masked);
            }
            // Only Secrets, prepared objects and those a template put a secret in have
            // values to hide.
            let held: Vec<String> = sensitive.within(object.json()).cloned().collect();
            if item.prepared.is_some()
                || !held.is_empty()
                || (id.group().is_empty() && id.kind() == "Secret")
            {
                let body = item.body(&cx.options);
                item.masked.extend(paths_holding(&body, &held));
                item.secrets = Redactions::of(&body, &item.masked).and(held);
            }
        }
        Err(error) => {
            item.error = Some(error);
            return item;
        }
    }
    match catalog.resolve_id(id) {
        Some(resource) => item.place(resource, cx.default_namespace()),
        // Applied once the CRD earlier in the run is Established.
        None if defined.contains(&(id.group().to_owned(), id.kind().to_owned())) => {
            item.pend(&cx.options);
        }
        None => {
            item.error = Some(Error::UnknownKind {
                id: id.clone(),
                api_version: id.api_version(),
                kind: id.kind().to_owned(),
            })
        }
    }
    item
}

/// Turns "not served" into "served at another version" where the server serves the kind
/// under another version of its group (`batch/v1beta1` CronJob on 1.20, not `batch/v1`):
/// the fix is then the manifest's `apiVersion`, not a missing CRD.
async fn explain_unknown_kinds(cx: &Context, items: &mut [Planned<'_>]) {
    let mut asked: HashMap<(String, String), Vec<String>> = HashMap::new();
    for item in items.iter_mut() {
        let Some(Error::UnknownKind {
            id,
            api_version,
            kind,
        }) = &item.error
        else {
            continue;
        };
        if id.group().is_empty() {
            continue;
        }
        let key = (id.group().to_owned(), kind.clone());
        if !asked.contains_key(&key) {
            let served = Catalog::versions_serving(&cx.api, &key.0, &key.1).await;
            asked.insert(key.clone(), served);
        }
        let served = &asked[&key];
        if !served.is_empty() {
            item.error = Some(Error::OtherVersion {
                id: id.clone(),
                api_version: api_version.clone(),
                kind: kind.clone(),
                served: served.clone(),
            });
        }
    }
}

/// The body a [`Prepare`](crate::Prepare) makes of the object, if it makes one.
fn prepare(cx: &Context, object: &Object) -> Result<Option<(Value, Vec<ValuePath>)>> {
    let Some(prepare) = &cx.options.prepare else {
        return Ok(None);
    };
    let prepared = prepare.prepare(object).map_err(|message| Error::Prepare {
        id: object.id().clone(),
        message,
    })?;
    Ok(prepared.map(|prepared| (prepared.body, prepared.masked)))
}

/// The scan minus everything the manifests hold (by identity, and by UID for objects
/// served under two groups), with the cascade guards applied.
async fn orphans(
    cx: &Context,
    plan: &Plan<'_>,
    manifest: &Manifest,
    label: &Label,
    progress: Progress<'_>,
) -> Result<Scan> {
    let wanted: HashSet<&ObjectId> = manifest.iter().map(|o| o.id()).collect();
    let uids: HashSet<&str> = plan.items.iter().filter_map(|i| i.uid()).collect();
    let namespaces: HashSet<&str> = plan
        .items
        .iter()
        .filter_map(|i| i.namespace.as_deref())
        .collect();
    let kinds: HashSet<(&str, &str)> = manifest
        .iter()
        .map(|o| (o.id().group(), o.id().kind()))
        .collect();
    let listed_in = plan_namespaces(plan);
    let mut found = scan(cx, &plan.catalog, manifest, label, &listed_in, progress).await?;
    found
        .owned
        .retain(|o| !wanted.contains(&o.id) && !uids.contains(o.uid.as_str()));
    if let Some(selection) = &cx.options.selection {
        found.owned.retain(|o| selection.matches(&o.id, &o.labels));
    }
    for orphan in &mut found.owned {
        if orphan.keep.is_some() {
            continue;
        }
        let id = &orphan.id;
        if id.is_namespace() && namespaces.contains(id.name()) {
            orphan.keep = Some(Keep::HoldsManifestObjects);
        } else if id.is_crd() {
            let defines = id
                .name()
                .split_once('.')
                .is_some_and(|(_, group)| kinds.iter().any(|(g, _)| *g == group));
            if defines {
                orphan.keep = Some(Keep::DefinesManifestKind);
            }
        }
    }
    let full = guard_catalog(cx, &found.owned).await?;
    guard_cascades(cx, full.as_ref().unwrap_or(&plan.catalog), &mut found.owned).await;
    Ok(found)
}

/// The namespaces the plan's objects live in, for scans that may not list the whole cluster.
fn plan_namespaces(plan: &Plan<'_>) -> Vec<String> {
    let mut namespaces: Vec<String> = plan
        .items
        .iter()
        .filter_map(|i| i.namespace.clone())
        .collect();
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// `(group, kind)` of every CustomResourceDefinition in the manifests.
fn defined_kinds(manifest: &Manifest) -> HashSet<(String, String)> {
    manifest
        .iter()
        .filter(|o| {
            o.id().group() == "apiextensions.k8s.io" && o.id().kind() == "CustomResourceDefinition"
        })
        .filter_map(|o| {
            let crd = o.to_value();
            let group = crd.pointer("/spec/group")?.as_str()?.to_owned();
            let kind = crd.pointer("/spec/names/kind")?.as_str()?.to_owned();
            Some((group, kind))
        })
        .collect()
}
