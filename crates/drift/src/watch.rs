//! The continuous check: one metadata watch per resource type of the stage (with its label
//! selector), a re-check of the objects whose `resourceVersion` changed, a full check every
//! resync interval, and reconnects with backoff after a lost watch.

use std::collections::{HashMap, HashSet};
use std::pin::Pin;
use std::time::Duration;

use capstan_apply::Options;
use capstan_kube::{Api, Catalog};
use capstan_manifest::{Manifest, Selection, Selector};
use futures::stream::{self, BoxStream, SelectAll};
use futures::{Stream, StreamExt as _};
use kube::api::{DynamicObject, PartialObjectMeta, WatchEvent as KubeEvent, WatchParams};
use kube::discovery::ApiResource;
use tokio::time::{Instant, sleep_until, timeout_at};

use crate::detect::{Report, detect};
use crate::error::{Error, Result};

/// How a [`Watcher`] works.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WatchOptions {
    /// The options of the deployers it checks with (field manager, ignore rules).
    pub options: Options,
    /// How often everything is checked again, changed or not [default: 10 minutes].
    pub resync: Duration,
    /// The longest wait before reconnecting a lost watch; waits double from one second up to
    /// it [default: 30 seconds].
    pub max_backoff: Duration,
    /// How long changes are collected before they are checked together [default: 500 ms].
    pub settle: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            options: Options::default(),
            resync: Duration::from_secs(600),
            max_backoff: Duration::from_secs(30),
            settle: Duration::from_millis(500),
        }
    }
}

/// What a [`Watcher`] saw.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent {
    /// A check ran: of the whole stage (`full`), or of the objects that changed.
    Checked {
        /// Its result.
        report: Report,
        /// Whether every object was checked.
        full: bool,
    },
    /// A watch ended with an error; it is retried after `retry_in`.
    Lost {
        /// The resource type, `group/version resource`.
        resource: String,
        /// What went wrong.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// A watch (re)connected.
    Watching {
        /// The resource type.
        resource: String,
    },
}

/// The continuous check of one stage; [`Watcher::next`] runs it until something happens.
pub struct Watcher<'m> {
    client: kube::Client,
    manifest: &'m Manifest,
    options: WatchOptions,
    feeds: SelectAll<BoxStream<'static, Item>>,
    versions: HashMap<Key, String>,
    wanted: HashSet<Key>,
    changed: HashSet<Key>,
    next_full: Instant,
    started: bool,
}

type Key = (String, Option<String>, String);

enum Item {
    Connected(String),
    Lost(String, String, Duration),
    Seen(Key, String),
}

/// Starts watching `manifest`'s objects (which must carry a discriminator label).
///
/// # Errors
///
/// [`Error::Plan`] when discovery fails.
pub async fn watch<'m>(
    client: kube::Client,
    manifest: &'m Manifest,
    options: WatchOptions,
) -> Result<Watcher<'m>> {
    let api = Api::new(client.clone());
    let catalog = Catalog::discover_for(&api, manifest)
        .await
        .map_err(|e| Error::Plan(e.into()))?;
    let selector = manifest.label().map(|label| label.selector());
    let mut resources: Vec<ApiResource> = Vec::new();
    let mut wanted = HashSet::new();
    for object in manifest.iter() {
        let id = object.id();
        wanted.insert(key(id.kind(), id.namespace(), id.name()));
        if let Some(resource) = catalog.resolve_id(id)
            && !resources.iter().any(|r| *r == resource.api)
        {
            resources.push(resource.api.clone());
        }
    }
    let feeds = resources
        .into_iter()
        .map(|resource| {
            feed(
                client.clone(),
                resource,
                selector.clone(),
                options.max_backoff,
            )
        })
        .collect();
    Ok(Watcher {
        client,
        manifest,
        next_full: Instant::now(),
        options,
        feeds,
        versions: HashMap::new(),
        wanted,
        changed: HashSet::new(),
        started: false,
    })
}

fn key(kind: &str, namespace: Option<&str>, name: &str) -> Key {
    (
        kind.to_owned(),
        namespace.map(str::to_owned),
        name.to_owned(),
    )
}

impl Watcher<'_> {
    /// Waits for the next thing to report: a check (the first is a full one), a lost watch or a
    /// reconnect.
    ///
    /// # Errors
    ///
    /// [`Error::Plan`] when a check cannot run at all (discovery or a list failing); the
    /// watcher can be asked again.
    pub async fn next(&mut self) -> Result<WatchEvent> {
        loop {
            if Instant::now() >= self.next_full {
                return self.full().await;
            }
            let settle = (!self.changed.is_empty()).then(|| Instant::now() + self.options.settle);
            let deadline = settle.map_or(self.next_full, |s| s.min(self.next_full));
            let item = match timeout_at(deadline, self.feeds.next()).await {
                Ok(Some(item)) => Some(item),
                // No types to watch: only the resync is left.
                Ok(None) => {
                    sleep_until(deadline).await;
                    None
                }
                Err(_) => None,
            };
            match item {
                Some(Item::Connected(resource)) => return Ok(WatchEvent::Watching { resource }),
                Some(Item::Lost(resource, error, retry_in)) => {
                    return Ok(WatchEvent::Lost {
                        resource,
                        error,
                        retry_in,
                    });
                }
                Some(Item::Seen(key, version)) => self.seen(key, version),
                None if !self.changed.is_empty() => return self.changes().await,
                None => {}
            }
        }
    }

    fn seen(&mut self, key: Key, version: String) {
        if !self.wanted.contains(&key) {
            return;
        }
        let before = self.versions.insert(key.clone(), version.clone());
        // The first sight of an object (the watch's initial list) follows the full check.
        if self.started && before.is_some_and(|b| b != version) {
            self.changed.insert(key);
        }
    }

    async fn full(&mut self) -> Result<WatchEvent> {
        self.started = true;
        self.changed.clear();
        self.next_full = Instant::now() + self.options.resync;
        let report = detect(&self.client, &self.options.options, self.manifest, &|_| {}).await?;
        Ok(WatchEvent::Checked { report, full: true })
    }

    async fn changes(&mut self) -> Result<WatchEvent> {
        let selectors = self
            .changed
            .drain()
            .filter_map(|(_, namespace, name)| {
                let text = match namespace {
                    Some(namespace) => format!("name={namespace}/{name}"),
                    None => format!("name={name}"),
                };
                text.parse::<Selector>().ok()
            })
            .collect();
        let mut options = self.options.options.clone();
        options.selection = Some(Selection::new(selectors, Vec::new()));
        let report = detect(&self.client, &options, self.manifest, &|_| {}).await?;
        Ok(WatchEvent::Checked {
            report,
            full: false,
        })
    }
}

/// One resource type's watch as a stream that never ends: connects, reports what it sees,
/// and reconnects after errors (waiting, doubling up to `max_backoff`) and timeouts (at once,
/// from the last version seen).
fn feed(
    client: kube::Client,
    resource: ApiResource,
    selector: Option<String>,
    max_backoff: Duration,
) -> BoxStream<'static, Item> {
    type Events = Pin<
        Box<dyn Stream<Item = kube::Result<KubeEvent<PartialObjectMeta<DynamicObject>>>> + Send>,
    >;
    struct State {
        api: kube::Api<DynamicObject>,
        params: WatchParams,
        name: String,
        kind: String,
        version: String,
        events: Option<Events>,
        wait: Option<Duration>,
        backoff: Duration,
        max_backoff: Duration,
    }
    let mut params = WatchParams::default().timeout(290);
    if let Some(selector) = &selector {
        params = params.labels(selector);
    }
    let state = State {
        api: kube::Api::all_with(client, &resource),
        params,
        name: format!("{} {}", resource.api_version, resource.plural),
        kind: resource.kind.clone(),
        version: "0".to_owned(),
        events: None,
        wait: None,
        backoff: Duration::from_secs(1),
        max_backoff,
    };
    let lost = |state: &mut State, error: String| {
        state.events = None;
        let wait = state.backoff;
        state.wait = Some(wait);
        state.backoff = (state.backoff * 2).min(state.max_backoff);
        Item::Lost(state.name.clone(), error, wait)
    };
    stream::unfold(state, move |mut state| async move {
        loop {
            let Some(events) = state.events.as_mut() else {
                if let Some(wait) = state.wait.take() {
                    tokio::time::sleep(wait).await;
                }
                match state
                    .api
                    .watch_metadata(&state.params, &state.version)
                    .await
                {
                    Ok(events) => {
                        state.events = Some(Box::pin(events));
                        let name = state.name.clone();
                        return Some((Item::Connected(name), state));
                    }
                    Err(error) => {
                        let item = lost(&mut state, error.to_string());
                        return Some((item, state));
                    }
                }
            };
            match events.next().await {
                Some(Ok(KubeEvent::Added(meta) | KubeEvent::Modified(meta))) => {
                    state.backoff = Duration::from_secs(1);
                    let Some(version) = meta.metadata.resource_version.clone() else {
                        continue;
                    };
                    state.version.clone_from(&version);
                    let id = key(
                        &state.kind,
                        meta.metadata.namespace.as_deref(),
                        meta.metadata.name.as_deref().unwrap_or_default(),
                    );
                    return Some((Item::Seen(id, version), state));
                }
                Some(Ok(KubeEvent::Deleted(meta))) => {
                    if let Some(version) = meta.metadata.resource_version.clone() {
                        state.version = version;
                    }
                    let id = key(
                        &state.kind,
                        meta.metadata.namespace.as_deref(),
                        meta.metadata.name.as_deref().unwrap_or_default(),
                    );
                    return Some((Item::Seen(id, String::new()), state));
                }
                Some(Ok(KubeEvent::Bookmark(bookmark))) => {
                    state.version = bookmark.metadata.resource_version;
                }
                Some(Ok(KubeEvent::Error(status))) => {
                    // 410 Gone: the version is too old to resume from; start over.
                    if status.code == 410 {
                        state.version = "0".to_owned();
                    }
                    let item = lost(&mut state, status.message);
                    return Some((item, state));
                }
                Some(Err(error)) => {
                    let item = lost(&mut state, error.to_string());
                    return Some((item, state));
                }
                // The server ended the watch (its timeout): resume where it stopped.
                None => state.events = None,
            }
        }
    })
    .boxed()
}
