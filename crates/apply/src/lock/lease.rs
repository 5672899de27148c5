//! The Lease of a stage lock: what a lock writes into it, how it reads one, and the requests.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::core::{Request, Resource as _};
use serde::Serialize;
use serde_json::Value;

use super::LockRequest;
use crate::error::{Error, Result};
use capstan_kube::{Api, status_code};

/// Names the discriminator `key=value` a Lease locks, for people reading it with kubectl.
const LOCK_FOR_ANNOTATION: &str = "capstan.io/lock-for";
/// Names the holder's project and stage, for messages.
pub(super) const OWNER_ANNOTATION: &str = "capstan.io/owner";

/// The Lease this request writes: a new one, or `base` taken over.
pub(super) fn body(request: &LockRequest, now: Timestamp, base: Option<Lease>) -> Vec<u8> {
    let mut lease = base.unwrap_or_else(|| Lease {
        metadata: ObjectMeta {
            name: Some(request.name.clone()),
            namespace: Some(request.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            lease_transitions: Some(0),
            ..LeaseSpec::default()
        }),
    });
    lease.metadata.managed_fields = None;
    let annotations = lease.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(LOCK_FOR_ANNOTATION.to_owned(), request.locks.clone());
    annotations.insert(OWNER_ANNOTATION.to_owned(), request.owner.clone());
    let spec = lease.spec.get_or_insert_default();
    let previous = spec.holder_identity.take().unwrap_or_default();
    if !previous.is_empty() && previous != request.holder {
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
    }
    spec.holder_identity = Some(request.holder.clone());
    spec.lease_duration_seconds = Some(request.lease_seconds());
    spec.acquire_time = Some(MicroTime(now));
    spec.renew_time = Some(MicroTime(now));
    json(&lease)
}

pub(super) fn json(object: &impl Serialize) -> Vec<u8> {
    // Kubernetes objects serialise without fallible parts (no maps with non-string keys).
    serde_json::to_vec(object).unwrap_or_default()
}

/// Whether `lease` is the one a lock of `holder` acquired at `acquired` holds.
pub(super) fn is_ours(lease: &Lease, holder: &str, acquired: Timestamp) -> bool {
    let spec = lease.spec.as_ref();
    spec.and_then(|s| s.holder_identity.as_deref()) == Some(holder)
        && spec
            .and_then(|s| s.acquire_time.as_ref())
            .is_some_and(|time| time.0.as_microsecond() == acquired.as_microsecond())
}

pub(super) fn duration_of(lease: &Lease) -> Option<Duration> {
    let seconds = lease.spec.as_ref()?.lease_duration_seconds?;
    Some(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)))
}

/// How long until `renewTime + leaseDurationSeconds` (or `acquireTime + …`) is past.
pub(super) fn expires_in(lease: &Lease, now: Timestamp) -> Option<Duration> {
    let spec = lease.spec.as_ref()?;
    let since = spec.renew_time.as_ref().or(spec.acquire_time.as_ref())?.0;
    let seconds = i64::from(spec.lease_duration_seconds?);
    let left = since.as_microsecond() + seconds * 1_000_000 - now.as_microsecond();
    Some(Duration::from_micros(u64::try_from(left).unwrap_or(0)))
}

/// Now, to the microsecond a MicroTime keeps, so that what was written compares equal to
/// what is read back.
pub(super) fn micro_now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
}

pub(super) fn post() -> PostParams {
    PostParams::default()
}

pub(super) fn lease_request(namespace: &str) -> Request {
    Request::new(Lease::url_path(&(), Some(namespace)))
}

pub(super) async fn send<T: serde::de::DeserializeOwned>(
    api: &Api,
    request: &LockRequest,
    make: impl Fn(&Request) -> Result<http::Request<Vec<u8>>, kube::core::request::Error>,
) -> Result<T, kube::Error> {
    let leases = lease_request(&request.namespace);
    api.send(|| make(&leases)).await
}

pub(super) async fn read(api: &Api, request: &LockRequest) -> Result<Option<Lease>> {
    get(api, (&request.namespace, &request.name))
        .await
        .map_err(|error| failure(request, "read", error))
}

pub(super) async fn get(
    api: &Api,
    (namespace, name): (&str, &str),
) -> Result<Option<Lease>, kube::Error> {
    let leases = lease_request(namespace);
    match api
        .send::<Lease>(|| leases.get(name, &Default::default()))
        .await
    {
        Ok(lease) => Ok(Some(lease)),
        Err(error) if status_code(&error) == Some(404) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates the lock's namespace; one that appeared meanwhile is as good.
pub(super) async fn create_namespace(api: &Api, request: &LockRequest) -> Result<()> {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(request.namespace.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    let data = json(&namespace);
    let namespaces = Request::new(Namespace::url_path(&(), None));
    match api
        .send::<Value>(|| namespaces.create(&post(), data.clone()))
        .await
    {
        Ok(_) => Ok(()),
        Err(error) if status_code(&error) == Some(409) => Ok(()),
        Err(error) => Err(failure(request, "create the namespace of", error)),
    }
}

pub(super) fn failure(request: &LockRequest, operation: &'static str, error: kube::Error) -> Error {
    failure_at((&request.namespace, &request.name), operation, error)
}

pub(super) fn failure_at(
    (namespace, name): (&str, &str),
    operation: &'static str,
    error: kube::Error,
) -> Error {
    match error {
        kube::Error::Api(status) if status.code == 403 => Error::LockForbidden {
            operation,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: status.message,
        },
        source => Error::Lock {
            operation,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_its_duration_after_its_last_renewal() {
        let at = |s: i64| Timestamp::from_second(s).unwrap();
        let lease = Lease {
            spec: Some(LeaseSpec {
                renew_time: Some(MicroTime(at(1_000))),
                lease_duration_seconds: Some(30),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        assert_eq!(expires_in(&lease, at(1_010)), Some(Duration::from_secs(20)));
        assert_eq!(expires_in(&lease, at(1_031)), Some(Duration::ZERO));
        assert_eq!(expires_in(&Lease::default(), at(1_010)), None);
    }
}
