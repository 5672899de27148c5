//! The per-stage lock: a `coordination.k8s.io/v1` Lease that one run of a stage holds while it
//! deploys, prunes or deletes, so that two runs never overlap (see [`StageLock`]).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use capstan_manifest::Label;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Preconditions};
use serde::{Serialize, Serializer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};
use capstan_kube::{Api, Backoff, poll_until, status_code};

use self::lease::{
    OWNER_ANNOTATION, body, create_namespace, duration_of, expires_in, failure, failure_at, get,
    is_ours, json, lease_request, micro_now, post, read, send,
};

mod lease;

/// How often a waiting run looks at the Lease again.
const POLL: Duration = Duration::from_secs(1);
/// How soon a failed renewal is tried again (at most; never later than the next renewal).
const RETRY: Duration = Duration::from_secs(1);

/// What to lock, for whom and how patiently: the input of [`StageLock::acquire`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LockRequest {
    /// The namespace the Lease lives in (a project's state namespace); created when missing.
    pub namespace: String,
    /// The Lease's name: [`StageLock::name_for`] the stage's discriminator.
    pub name: String,
    /// The discriminator `key=value` the lock is for, recorded in an annotation.
    pub locks: String,
    /// Who holds the lock, as others see it: [`default_holder`] unless the caller knows better
    /// (a CI job's name). Two runs must never share one.
    pub holder: String,
    /// What the holder works on, such as `project/stage`, for messages.
    pub owner: String,
    /// How long the lock outlives its last renewal: how long a killed run blocks others.
    /// Whole seconds, at least one; renewed every third of it.
    pub lease: Duration,
    /// `None` fails at once with [`Error::Locked`] when another run holds the lock; `Some(t)`
    /// waits at most `t` for it.
    pub wait: Option<Duration>,
}

impl LockRequest {
    /// The lock of the stage `label` marks, in `namespace`, held by [`default_holder`] for
    /// `owner`, with a 30 s lease and no waiting.
    pub fn new(namespace: impl Into<String>, label: &Label, owner: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: StageLock::name_for(label),
            locks: label.selector(),
            holder: default_holder(),
            owner: owner.into(),
            lease: Duration::from_secs(30),
            wait: None,
        }
    }

    fn lease_seconds(&self) -> i32 {
        let seconds = self.lease.as_secs() + u64::from(self.lease.subsec_nanos() > 0);
        i32::try_from(seconds.max(1)).unwrap_or(i32::MAX)
    }
}

/// Who holds a stage lock, as read from its Lease.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LockHolder {
    /// The holder's identity, such as `alice@laptop pid 4242`.
    pub holder: String,
    /// What it works on, such as `project/stage`; empty when the Lease does not say.
    pub owner: String,
    /// When it took the lock, RFC 3339 in UTC.
    pub acquired: Option<String>,
    /// How long until the lock expires unless the holder renews it, by this machine's clock;
    /// `None` when the Lease records no renewal time or duration.
    #[serde(rename = "expires_in_seconds", serialize_with = "seconds")]
    pub expires_in: Option<Duration>,
}

impl LockHolder {
    fn of(lease: &Lease, now: Timestamp) -> Self {
        let spec = lease.spec.as_ref();
        let owner = lease
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(OWNER_ANNOTATION));
        Self {
            holder: spec
                .and_then(|s| s.holder_identity.clone())
                .unwrap_or_default(),
            owner: owner.cloned().unwrap_or_default(),
            acquired: spec
                .and_then(|s| s.acquire_time.as_ref())
                .map(|time| time.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            expires_in: expires_in(lease, now),
        }
    }
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.holder)?;
        if !self.owner.is_empty() {
            write!(f, " for `{}`", self.owner)?;
        }
        if let Some(acquired) = &self.acquired {
            write!(f, ", since {acquired}")?;
        }
        if let Some(expires_in) = self.expires_in {
            write!(
                f,
                ", expiring in {} s unless renewed",
                whole_seconds(expires_in)
            )?;
        }
        Ok(())
    }
}

/// A held stage lock.
///
/// The lock is a `coordination.k8s.io/v1` Lease in the project's state namespace, named for
/// the stage's discriminator label ([`StageLock::name_for`]): the label is what prune and
/// delete act on, so two projects or stages sharing a discriminator share the lock too. The
/// Lease carries annotations naming the label (`capstan.io/lock-for`) and the holder's project
/// and stage (`capstan.io/owner`), so `kubectl get lease -o yaml` explains itself; it never
/// carries the discriminator label, so prune never sees it.
///
/// - **Holding.** [`StageLock::acquire`] creates the Lease with the holder's identity, the
///   lease duration (30 s by default) and the acquire and renew times. A background task
///   renews it every third of the lease, each write guarded by the Lease's resourceVersion.
/// - **Waiting.** When another run holds the lock, `acquire` fails at once with
///   [`Error::Locked`], or waits for it (looking once a second, and telling its callback each
///   time the holder changes) until it is free or the wait is over.
/// - **Expiry.** A run that is killed stops renewing; once `renewTime + leaseDurationSeconds`
///   is past, the next run takes the Lease over (an update guarded by resourceVersion, so of
///   two runs taking it over one wins and the other goes back to waiting) and counts the
///   transition in `leaseTransitions`. A run that is dropped without [`StageLock::release`]
///   stops renewing too, and its lock expires the same way.
/// - **Losing it.** When a renewal finds the Lease gone or held by another run, or cannot
///   reach the server for a whole lease, the lock is lost: [`StageLock::check`] fails from
///   then on, and callers check before every destructive step.
/// - **Clocks.** Expiry compares the holder's renewTime with the clock of the machine that
///   wants the lock, so clocks should agree to well within the lease. A waiting run also
///   counts a Lease as expired when it has not changed for a whole lease by its own clock,
///   so a holder whose clock runs ahead delays takeover by no more than a lease. A holder
///   whose clock runs behind by more than the lease looks expired and may be taken over
///   while it runs; its next renewal then conflicts, the lock is lost, and `check` stops it
///   before its next destructive step (what it does between two checks is not covered).
pub struct StageLock {
    api: Api,
    namespace: String,
    name: String,
    holder: String,
    /// The acquireTime this lock wrote: with the holder, what tells this lock's Lease apart
    /// from a later one of the same holder.
    acquired: Timestamp,
    lease: Duration,
    state: Arc<Mutex<State>>,
    renewal: Option<JoinHandle<()>>,
}

impl fmt::Debug for StageLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageLock")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish_non_exhaustive()
    }
}

/// What the renewal task shares with the lock.
#[derive(Debug)]
struct State {
    /// The Lease as last written by this lock: its resourceVersion guards the next write.
    lease: Lease,
    /// When it was last written, by the monotonic clock and by the wall clock (which keeps
    /// running while a laptop sleeps).
    renewed: (Instant, Timestamp),
    /// Why the lock was lost, once it was.
    lost: Option<String>,
}

impl StageLock {
    /// The Lease name of a stage's lock: `capstan-lock-` and 16 hex digits of the SHA-256 of
    /// the discriminator's `key=value`, short and valid whatever the label.
    pub fn name_for(label: &Label) -> String {
        let digest = Sha256::digest(label.selector().as_bytes());
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("capstan-lock-{hex}")
    }

    /// Takes the lock, creating its namespace when missing, waiting for it as `request.wait`
    /// allows; `on_wait` hears of each new holder while waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Locked`] when another run holds the lock and `wait` is `None` or over;
    /// [`Error::LockForbidden`] when the user may not read or write the Lease or create its
    /// namespace; [`Error::Lock`] when a request fails otherwise.
    pub async fn acquire(
        client: kube::Client,
        request: LockRequest,
        on_wait: &(dyn Fn(&LockHolder) + Send + Sync),
    ) -> Result<Self> {
        let api = Api::new(client);
        let started = Instant::now();
        let mut told: Option<String> = None;
        let mut observed: Option<(String, Instant)> = None;
        let mut namespace_made = false;
        let mut holder = None;
        let deadline = started + request.wait.unwrap_or_default();
        let taken = poll_until(deadline, Backoff::fixed(POLL), async || {
            // Races (a namespace just made, a Lease just gone or just taken) are looked at
            // again at once; only a live holder is waited for.
            loop {
                let now = micro_now();
                match send::<Lease>(&api, &request, |r| {
                    r.create(&post(), body(&request, now, None))
                })
                .await
                {
                    Ok(lease) => return Ok(Some((now, lease))),
                    Err(error) if status_code(&error) == Some(409) => {}
                    Err(error) if status_code(&error) == Some(404) && !namespace_made => {
                        create_namespace(&api, &request).await?;
                        namespace_made = true;
                        continue;
                    }
                    Err(error) => return Err(failure(&request, "create", error)),
                }
                let Some(lease) = read(&api, &request).await? else {
                    continue;
                };
                if is_ours(&lease, &request.holder, now) {
                    // A create whose answer was lost and that the retry found in place.
                    return Ok(Some((now, lease)));
                }
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                let unchanged_since = match &observed {
                    Some((seen, since)) if *seen == version => *since,
                    _ => observed.insert((version, Instant::now())).1,
                };
                let current = LockHolder::of(&lease, Timestamp::now());
                let stale =
                    unchanged_since.elapsed() >= duration_of(&lease).unwrap_or(request.lease);
                if current.holder.is_empty() || current.expires_in == Some(Duration::ZERO) || stale
                {
                    let now = micro_now();
                    let taken = body(&request, now, Some(lease));
                    let name = request.name.clone();
                    match send::<Lease>(&api, &request, |r| {
                        r.replace(&name, &post(), taken.clone())
                    })
                    .await
                    {
                        Ok(lease) => return Ok(Some((now, lease))),
                        // Another run was quicker, or the holder released it: look again.
                        Err(error) if matches!(status_code(&error), Some(404 | 409)) => continue,
                        Err(error) => return Err(failure(&request, "take over", error)),
                    }
                }
                let waiting = request.wait.is_some_and(|limit| started.elapsed() < limit);
                if waiting && told.as_deref() != Some(current.holder.as_str()) {
                    on_wait(&current);
                    told = Some(current.holder.clone());
                }
                holder = Some(current);
                return Ok(None);
            }
        })
        .await?;
        match (taken, holder) {
            (Some((acquired, lease)), _) => Ok(Self::start(api, request, acquired, lease)),
            (None, holder) => Err(Error::Locked {
                waited: request.wait.map(|_| started.elapsed()),
                namespace: request.namespace,
                name: request.name,
                holder: holder.expect("a wait that timed out saw a holder"),
            }),
        }
    }

    fn start(api: Api, request: LockRequest, acquired: Timestamp, lease: Lease) -> Self {
        let state = Arc::new(Mutex::new(State {
            lease,
            renewed: (Instant::now(), acquired),
            lost: None,
        }));
        let renewal = tokio::spawn(renew_until_lost(
            api.clone(),
            request.holder.clone(),
            acquired,
            request.lease,
            state.clone(),
        ));
        Self {
            api,
            namespace: request.namespace,
            name: request.name,
            holder: request.holder,
            acquired,
            lease: request.lease,
            state,
            renewal: Some(renewal),
        }
    }

    /// The Lease's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the lock is still held: call it before every destructive step.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] once a renewal found the Lease gone or taken over, or the lock has
    /// not been renewed for a whole lease (the server did not answer, or the machine slept).
    pub fn check(&self) -> Result<()> {
        let mut state = lock(&self.state);
        if state.lost.is_none() {
            let (at, wall) = state.renewed;
            let by_wall = Timestamp::now().duration_since(wall);
            let late = at
                .elapsed()
                .max(Duration::try_from(by_wall).unwrap_or_default());
            if late >= self.lease {
                state.lost = Some(format!("not renewed for {} s", whole_seconds(late)));
            }
        }
        match &state.lost {
            Some(reason) => Err(self.lost(reason.clone())),
            None => Ok(()),
        }
    }

    /// Stops renewing and deletes the Lease, only if it is still this lock's (a UID and
    /// resourceVersion precondition): someone else's Lease is never removed.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when the lock was lost before (the Lease is then left to whoever
    /// has it); [`Error::LockForbidden`] or [`Error::Lock`] when the delete fails.
    pub async fn release(mut self) -> Result<()> {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
            // Waiting for it to end means no renewal can follow the delete.
            let _ = renewal.await;
        }
        let (mut lease, lost) = {
            let state = lock(&self.state);
            (state.lease.clone(), state.lost.clone())
        };
        // A server that stopped answering a renewal gets another chance.
        self.api.reset();
        let target = (self.namespace.as_str(), self.name.as_str());
        for _ in 0..3 {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: lease.metadata.uid.clone(),
                    resource_version: lease.metadata.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            let result = self
                .api
                .send::<Value>(|| lease_request(target.0).delete(target.1, &params))
                .await;
            match result {
                Ok(_) => return lost.map_or(Ok(()), |reason| Err(self.lost(reason))),
                Err(error) if status_code(&error) == Some(404) => {
                    return Err(self.lost(lost.unwrap_or_else(|| "it was deleted".to_owned())));
                }
                Err(error) if status_code(&error) == Some(409) => {}
                Err(error) => return Err(failure_at(target, "release", error)),
            }
            let live = get(&self.api, target)
                .await
                .map_err(|error| failure_at(target, "release", error))?;
            match live {
                None => {
                    return Err(self.lost(lost.unwrap_or_else(|| "it was deleted".to_owned())));
                }
                // A renewal stopped after it was sent: the Lease is still this lock's.
                Some(live) if is_ours(&live, &self.holder, self.acquired) => lease = live,
                Some(live) => return Err(self.lost(taken_over(&live))),
            }
        }
        Err(self.lost("the Lease kept changing while it was being released".to_owned()))
    }

    fn lost(&self, reason: String) -> Error {
        Error::LockLost {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            reason,
        }
    }
}

impl Drop for StageLock {
    /// Stops renewing; the Lease then expires like a killed run's.
    fn drop(&mut self) {
        if let Some(renewal) = self.renewal.take() {
            renewal.abort();
        }
    }
}

/// `user@host pid N`: who runs this process, where, readable in messages and unique while it
/// runs. The user comes from `USER`, the host from the kernel (a Pod's name in a cluster).
pub fn default_holder() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|user| !user.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{user}@{host} pid {}", std::process::id())
}

/// Renews the Lease every third of `lease` until it is lost or the task is aborted.
async fn renew_until_lost(
    api: Api,
    holder: String,
    acquired: Timestamp,
    lease: Duration,
    state: Arc<Mutex<State>>,
) {
    let interval = lease / 3;
    let mut delay = interval;
    loop {
        tokio::time::sleep(delay).await;
        let current = lock(&state).lease.clone();
        // A server that stopped answering for one renewal may answer the next.
        api.reset();
        let now = micro_now();
        let outcome = renew(&api, &holder, acquired, current, now).await;
        let mut state = lock(&state);
        match outcome {
            Ok(renewed) => {
                state.lease = renewed;
                state.renewed = (Instant::now(), now);
                delay = interval;
            }
            Err(Renewal::Lost(reason)) => {
                state.lost = Some(reason);
                return;
            }
            Err(Renewal::Failed(error)) => {
                let late = state.renewed.0.elapsed();
                if late >= lease {
                    state.lost = Some(format!(
                        "not renewed for {} s; the last attempt failed: {error}",
                        whole_seconds(late)
                    ));
                    return;
                }
                delay = RETRY.min(interval);
            }
        }
    }
}

enum Renewal {
    /// The Lease is gone or someone else's.
    Lost(String),
    /// No answer, or an error worth trying again.
    Failed(kube::Error),
}

async fn renew(
    api: &Api,
    holder: &str,
    acquired: Timestamp,
    mut lease: Lease,
    now: Timestamp,
) -> Result<Lease, Renewal> {
    let namespace = lease.metadata.namespace.clone().unwrap_or_default();
    let name = lease.metadata.name.clone().unwrap_or_default();
    // Twice: once more when the first write conflicted with an earlier renewal of this lock
    // whose answer was lost.
    for _ in 0..2 {
        lease.metadata.managed_fields = None;
        lease.spec.get_or_insert_default().renew_time = Some(MicroTime(now));
        let data = json(&lease);
        let request = lease_request(&namespace);
        match api
            .send::<Lease>(|| request.replace(&name, &post(), data.clone()))
            .await
        {
            Ok(renewed) => return Ok(renewed),
            Err(error) if status_code(&error) == Some(404) => {
                return Err(Renewal::Lost("it was deleted".to_owned()));
            }
            Err(error) if status_code(&error) == Some(409) => {}
            Err(error) => return Err(Renewal::Failed(error)),
        }
        match get(api, (&namespace, &name)).await {
            Ok(None) => return Err(Renewal::Lost("it was deleted".to_owned())),
            Ok(Some(live)) if is_ours(&live, holder, acquired) => lease = live,
            Ok(Some(live)) => return Err(Renewal::Lost(taken_over(&live))),
            Err(error) => return Err(Renewal::Failed(error)),
        }
    }
    Err(Renewal::Failed(kube::Error::Service(
        "the Lease kept changing while it was being renewed".into(),
    )))
}

/// Who has the Lease now, without times: the reason a lock was lost.
fn taken_over(lease: &Lease) -> String {
    let holder = LockHolder::of(lease, Timestamp::now());
    match (holder.holder.as_str(), holder.owner.as_str()) {
        ("", _) => "another run released it".to_owned(),
        (holder, "") => format!("`{holder}` took it over"),
        (holder, owner) => format!("`{holder}` for `{owner}` took it over"),
    }
}

fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn seconds<S: Serializer>(duration: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    duration.map(whole_seconds).serialize(serializer)
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // The state stays consistent even if a holder panicked: every update is one assignment.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_names_are_short_stable_and_differ_by_key_and_value() {
        let name = |key: &str, value: &str| StageLock::name_for(&Label::new(key, value).unwrap());
        let full = name(Label::DEFAULT_KEY, "full");
        assert_eq!(full, name(Label::DEFAULT_KEY, "full"));
        assert_eq!(full.len(), "capstan-lock-".len() + 16);
        assert!(full.starts_with("capstan-lock-"));
        assert_ne!(full, name(Label::DEFAULT_KEY, "fuller"));
        assert_ne!(full, name("kluctl.io/discriminator", "full"));
    }

    #[test]
    fn a_holder_reads_as_who_for_what_since_when_and_until_when() {
        let holder = LockHolder {
            holder: "alice@laptop pid 42".to_owned(),
            owner: "demo/prod".to_owned(),
            acquired: Some("2025-01-02T03:04:05Z".to_owned()),
            expires_in: Some(Duration::from_millis(29_100)),
        };
        assert_eq!(
            holder.to_string(),
            "`alice@laptop pid 42` for `demo/prod`, since 2025-01-02T03:04:05Z, expiring in 30 s \
             unless renewed"
        );
        assert_eq!(
            serde_json::to_value(&holder).unwrap(),
            serde_json::json!({
                "holder": "alice@laptop pid 42",
                "owner": "demo/prod",
                "acquired": "2025-01-02T03:04:05Z",
                "expires_in_seconds": 30,
            })
        );
    }

    #[test]
    fn the_default_holder_names_user_host_and_process() {
        let holder = default_holder();
        assert!(
            holder.ends_with(&format!(" pid {}", std::process::id())) && holder.contains('@'),
            "{holder}"
        );
    }
}
