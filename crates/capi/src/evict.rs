//! One node's evictions and the wait for its pods to go: each pod evicted (or deleted) in a
//! bounded number of parallel requests, a budget's refusal retried until the deadline and
//! reported once it lasts, and one listing of the node per poll to see which pods are gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;

use capstan_kube::{Api, Backoff, Cause, Target, poll_until, status_code};
use futures::future::{join, join_all};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, DynamicObject, Preconditions};
use kube::core::{ApiResource, Request, Resource as _};
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::drain::{DrainPlan, PodRef, eviction_body};
use crate::drainer::{DrainEvent, DrainOptions, NodeDrain, OnDrainEvent, Outcome, PodFailure};
use crate::error::{Error, Result};
use crate::eviction::{Answer, BudgetReport, budget_reports};

/// How pods leave: the eviction subresource at a policy version, or a plain delete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Evict(String),
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Evict(version) => f.write_str(version),
            Self::Delete => f.write_str("delete"),
        }
    }
}

impl Method {
    /// kubectl's check: the core API's `pods/eviction` names the policy version it takes
    /// (`policy/v1beta1` before 1.22); a server without it gets deletes. Eviction is a
    /// subresource, which the catalog of kinds leaves out, so the core list is read here.
    pub(crate) async fn discover(api: &Api, disable_eviction: bool) -> Result<Self> {
        if disable_eviction {
            return Ok(Self::Delete);
        }
        api.count();
        let core = api
            .client()
            .list_core_api_resources("v1")
            .await
            .map_err(|error| Error::Request {
                what: "read whether the server evicts pods".into(),
                error,
            })?;
        let version = core.resources.iter().find_map(|resource| {
            let group = resource
                .group
                .as_deref()
                .filter(|group| !group.is_empty())?;
            let version = resource.version.as_deref().filter(|v| !v.is_empty())?;
            (resource.name == "pods/eviction").then(|| format!("{group}/{version}"))
        });
        Ok(version.map_or(Self::Delete, Self::Evict))
    }
}

/// What every node's run shares: the server, the options, one bound on evictions in flight
/// and one deadline.
pub(crate) struct Shared<'a> {
    api: &'a Api,
    method: &'a Method,
    options: &'a DrainOptions,
    on_event: &'a OnDrainEvent<'a>,
    slots: Semaphore,
    deadline: Instant,
    pods: ApiResource,
}

impl<'a> Shared<'a> {
    pub(crate) fn new(
        api: &'a Api,
        method: &'a Method,
        options: &'a DrainOptions,
        on_event: &'a OnDrainEvent<'a>,
    ) -> Self {
        let now = Instant::now();
        // No timeout is a deadline past any drain's end.
        let forever = std::time::Duration::from_secs(100 * 365 * 24 * 3600);
        let deadline = options
            .timeout
            .and_then(|timeout| now.checked_add(timeout))
            .or_else(|| now.checked_add(forever))
            .unwrap_or(now);
        Self {
            api,
            method,
            options,
            on_event,
            slots: Semaphore::new(options.max_concurrent_evictions.max(1)),
            deadline,
            pods: ApiResource::erase::<Pod>(&()),
        }
    }

    fn target<'t>(&'t self, pod: &'t PodRef) -> Target<'t> {
        Target {
            resource: &self.pods,
            namespace: pod.object.namespace(),
            name: pod.object.name(),
        }
    }
}

/// The pods of one node, from eviction to gone.
pub(crate) struct NodeRun<'a> {
    shared: &'a Shared<'a>,
    node: &'a str,
    plan: &'a DrainPlan,
    labels: HashMap<String, BTreeMap<String, String>>,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Not gone yet, and not refused for good.
    waiting: Vec<PodRef>,
    evicted: Vec<PodRef>,
    not_waited: Vec<PodRef>,
    failed: Vec<PodFailure>,
    budgets: Vec<BudgetReport>,
    wait_error: Option<Error>,
}

/// How one pod's eviction requests ended.
enum End {
    Accepted,
    Gone,
    Failed(String),
}

impl<'a> NodeRun<'a> {
    pub(crate) fn new(
        shared: &'a Shared<'a>,
        node: &'a str,
        plan: &'a DrainPlan,
        labels: HashMap<String, BTreeMap<String, String>>,
    ) -> Self {
        let state = State {
            waiting: plan.evict.clone(),
            ..State::default()
        };
        Self {
            shared,
            node,
            plan,
            labels,
            state: Mutex::new(state),
        }
    }

    /// Evicts every pod of the plan, and (unless this is a dry run) waits for them to go.
    pub(crate) async fn run(self) -> State {
        let evictions = join_all(self.plan.evict.iter().map(|pod| self.evict(pod)));
        if self.shared.options.dry_run {
            evictions.await;
        } else {
            join(evictions, self.wait()).await;
        }
        self.state
            .into_inner()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn with<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        change(
            &mut self
                .state
                .lock()
                .unwrap_or_else(|poison| poison.into_inner()),
        )
    }

    fn emit(&self, event: DrainEvent<'_>) {
        (self.shared.on_event)(event);
    }

    async fn evict(&self, pod: &PodRef) {
        let Ok(_slot) = self.shared.slots.acquire().await else {
            return;
        };
        self.emit(DrainEvent::Evict { pod });
        let options = self.shared.options;
        let mut refused_since: Option<Instant> = None;
        let mut reported = false;
        let retry = Backoff::fixed(options.retry_interval);
        let end = poll_until(self.shared.deadline, retry, async || {
            Ok::<_, kube::Error>(match self.request(pod).await? {
                Answer::Evicted => Some(End::Accepted),
                Answer::Gone => Some(End::Gone),
                Answer::Budget { message, causes } => {
                    let message = std::iter::once(message).chain(causes).collect::<Vec<_>>();
                    self.emit(DrainEvent::Refused {
                        pod,
                        message: &message.join(" "),
                    });
                    let since = *refused_since.get_or_insert_with(Instant::now);
                    if !reported && since.elapsed() >= options.report_after {
                        reported = true;
                        self.report(pod).await;
                    }
                    None
                }
                // kubectl: a pod that is already going is waited for; otherwise the namespace
                // controller will delete it soon, so the eviction is tried again.
                Answer::NamespaceTerminating => self.deleting(pod).await.then_some(End::Accepted),
                Answer::Failed { code, message } => Some(End::Failed(format!("{code} {message}"))),
            })
        })
        .await;
        match end {
            Ok(Some(End::Accepted)) if options.dry_run => self.gone(pod),
            Ok(Some(End::Accepted)) | Ok(None) => {}
            Ok(Some(End::Gone)) => self.gone(pod),
            Ok(Some(End::Failed(message))) => self.give_up(pod, message),
            Err(error) => self.give_up(pod, Cause(&error).to_string()),
        }
    }

    /// One eviction (or delete) of `pod`, as the server answered it.
    async fn request(&self, pod: &PodRef) -> Result<Answer, kube::Error> {
        let options = self.shared.options;
        let target = self.shared.target(pod);
        let version = match self.shared.method {
            Method::Evict(version) => version,
            Method::Delete => return self.delete(pod).await,
        };
        let body = eviction_body(
            version,
            &pod.object,
            options.grace_period_seconds,
            options.dry_run,
        );
        let (code, body) = self
            .shared
            .api
            .create_subresource(target, "eviction", &body)
            .await?;
        Ok(Answer::new(code, &body))
    }

    /// `--disable-eviction`: a delete of this very pod (by UID); budgets are not asked.
    async fn delete(&self, pod: &PodRef) -> Result<Answer, kube::Error> {
        let options = self.shared.options;
        let params = DeleteParams {
            grace_period_seconds: options
                .grace_period_seconds
                .map(|seconds| u32::try_from(seconds.max(0)).unwrap_or(u32::MAX)),
            dry_run: options.dry_run,
            preconditions: Some(Preconditions {
                uid: Some(pod.uid.clone()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let request = Request::new(DynamicObject::url_path(
            &self.shared.pods,
            pod.object.namespace(),
        ));
        let name = pod.object.name();
        match self
            .shared
            .api
            .send::<Value>(|| request.delete(name, &params))
            .await
        {
            Ok(_) => Ok(Answer::Evicted),
            // 409: the UID precondition failed, so the pod listed is gone (a new one has its name).
            Err(error) if matches!(status_code(&error), Some(404 | 409)) => Ok(Answer::Gone),
            Err(kube::Error::Api(status)) => Ok(Answer::Failed {
                code: status.code,
                message: status.message,
            }),
            Err(error) => Err(error),
        }
    }

    /// Whether this very pod (same UID) is being deleted already.
    async fn deleting(&self, pod: &PodRef) -> bool {
        let live = self.shared.api.get(self.shared.target(pod)).await;
        live.ok().flatten().is_some_and(|live| {
            let metadata = &live["metadata"];
            metadata["uid"].as_str() == Some(pod.uid.as_str())
                && !metadata["deletionTimestamp"].is_null()
        })
    }

    /// Says which budgets hold `pod`, as they stand now, and keeps them for the result.
    async fn report(&self, pod: &PodRef) {
        let Method::Evict(version) = self.shared.method else {
            return;
        };
        // The budgets' version goes with the eviction's: policy/v1 from 1.22, v1beta1 until 1.24.
        let resource = ApiResource {
            group: "policy".into(),
            version: version.trim_start_matches("policy/").into(),
            api_version: version.clone(),
            kind: "PodDisruptionBudget".into(),
            plural: "poddisruptionbudgets".into(),
        };
        let Ok(budgets) = self
            .shared
            .api
            .list_selected::<Value>(&resource, pod.object.namespace(), None, None)
            .await
        else {
            return;
        };
        let labels = self.labels.get(&pod.uid).cloned().unwrap_or_default();
        for budget in budget_reports(&budgets, &[(pod.clone(), labels)]) {
            self.emit(DrainEvent::Held {
                pod,
                budget: &budget,
            });
            self.with(|state| keep(&mut state.budgets, budget));
        }
    }

    fn gone(&self, pod: &PodRef) {
        let was_waiting = self.with(|state| {
            let before = state.waiting.len();
            state.waiting.retain(|waiting| waiting.uid != pod.uid);
            let was_waiting = state.waiting.len() < before;
            if was_waiting {
                state.evicted.push(pod.clone());
            }
            was_waiting
        });
        if was_waiting {
            self.emit(DrainEvent::Gone { pod });
        }
    }

    fn give_up(&self, pod: &PodRef, message: String) {
        self.with(|state| {
            state.waiting.retain(|waiting| waiting.uid != pod.uid);
            state.failed.push(PodFailure {
                pod: pod.clone(),
                message: message.clone(),
            });
        });
        self.emit(DrainEvent::Given {
            pod,
            message: &message,
        });
    }

    /// Lists the node's pods each poll: a pod of the plan whose UID is no longer there is gone
    /// (deleted, or replaced by a pod of the same name).
    async fn wait(&self) {
        let options = self.shared.options;
        let poll = Backoff::fixed(options.poll_interval);
        let waited = poll_until(self.shared.deadline, poll, async || {
            if self.with(|state| state.waiting.is_empty()) {
                return Ok(Some(()));
            }
            let selector = options.pod_selector.as_deref();
            let listed = crate::drainer::list_pods(self.shared.api, self.node, selector).await?;
            let now = Timestamp::now();
            let present: HashMap<&str, &Pod> = listed
                .iter()
                .filter_map(|pod| Some((pod.metadata.uid.as_deref()?, pod)))
                .collect();
            let waiting = self.with(|state| state.waiting.clone());
            let mut not_waited = HashSet::new();
            for pod in &waiting {
                match present.get(pod.uid.as_str()) {
                    None => self.gone(pod),
                    Some(live) if options.filters.long_deleted(live, now) => {
                        not_waited.insert(pod.uid.clone());
                        self.emit(DrainEvent::Given {
                            pod,
                            message: "deleted too long ago to wait for",
                        });
                    }
                    Some(_) => {}
                }
            }
            self.with(|state| {
                let (skipped, kept) = std::mem::take(&mut state.waiting)
                    .into_iter()
                    .partition(|pod| not_waited.contains(&pod.uid));
                state.waiting = kept;
                state.not_waited.extend::<Vec<PodRef>>(skipped);
            });
            Ok::<_, Error>(None)
        })
        .await;
        if let Err(error) = waited {
            self.with(|state| state.wait_error = Some(error));
        }
    }
}

impl State {
    /// Moves the run's findings into the node's result, with the outcome they make.
    pub(crate) fn finish(self, item: &mut NodeDrain) {
        let node = item.object.name().to_owned();
        item.evicted = self.evicted;
        item.not_waited = self.not_waited;
        item.budgets = self.budgets;
        item.left = self.waiting;
        item.failed = self.failed;
        if let Some(error) = self.wait_error {
            item.fail(Outcome::Failed, error);
        } else if !item.failed.is_empty() {
            let failures = item
                .failed
                .iter()
                .map(|failure| (failure.pod.object.clone(), failure.message.clone()))
                .collect();
            item.fail(Outcome::Failed, Error::Evictions { node, failures });
        } else if !item.left.is_empty() {
            let pods = item.left.iter().map(|pod| pod.object.clone()).collect();
            item.fail(Outcome::TimedOut, Error::Timeout { node, pods });
        }
    }
}

/// Keeps the latest word of each budget, with every pod it held.
fn keep(budgets: &mut Vec<BudgetReport>, report: BudgetReport) {
    match budgets.iter_mut().find(|kept| kept.object == report.object) {
        Some(kept) => {
            let mut pods = std::mem::take(&mut kept.pods);
            for pod in &report.pods {
                if !pods.contains(pod) {
                    pods.push(pod.clone());
                }
            }
            *kept = BudgetReport { pods, ..report };
        }
        None => budgets.push(report),
    }
}
