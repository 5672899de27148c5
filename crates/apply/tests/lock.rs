//! The per-stage lock against a real kube-apiserver: refusal, waiting, expiry, takeover,
//! renewal, and the namespace it lives in.

use std::sync::Mutex;
use std::time::Duration;

use capstan_apply::{Error, LockHolder, LockRequest, StageLock};
use capstan_manifest::Label;
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};

const ALICE: &str = "alice@laptop pid 1";
const BOB: &str = "bob@ci pid 2";

fn label(value: &str) -> Label {
    Label::new(Label::DEFAULT_KEY, value).unwrap()
}

/// The lock of the stage `value` in `namespace`, held by `holder` for `demo/<value>`.
fn request(namespace: &str, value: &str, holder: &str) -> LockRequest {
    let mut request = LockRequest::new(namespace, &label(value), format!("demo/{value}"));
    request.holder = holder.to_owned();
    request
}

async fn acquire(plane: &ControlPlane, request: LockRequest) -> Result<StageLock, Error> {
    StageLock::acquire(plane.client(User::Admin).unwrap(), request, &|_| {}).await
}

fn leases(plane: &ControlPlane, namespace: &str) -> Api<Lease> {
    Api::namespaced(plane.client(User::Admin).unwrap(), namespace)
}

async fn lease(plane: &ControlPlane, namespace: &str, value: &str) -> Option<Lease> {
    let name = StageLock::name_for(&label(value));
    leases(plane, namespace).get_opt(&name).await.unwrap()
}

fn spec(lease: &Lease) -> &LeaseSpec {
    lease.spec.as_ref().unwrap()
}

fn holder_of(lease: &Lease) -> &str {
    spec(lease).holder_identity.as_deref().unwrap()
}

/// Makes `holder` the Lease's holder by hand, as another run taking it over would.
async fn take_over_by_hand(plane: &ControlPlane, namespace: &str, value: &str, holder: &str) {
    let name = StageLock::name_for(&label(value));
    let now = MicroTime(Timestamp::now());
    let patch = serde_json::json!({
        "spec": { "holderIdentity": holder, "acquireTime": now, "renewTime": now }
    });
    leases(plane, namespace)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_run_without_waiting_is_refused_with_a_message_naming_the_holder() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-refused").await.unwrap();
    let first = acquire(plane, request(&ns, "refused", ALICE))
        .await
        .unwrap();

    let waits = Mutex::new(0);
    let second = StageLock::acquire(
        plane.client(User::Admin).unwrap(),
        request(&ns, "refused", BOB),
        &|_| *waits.lock().unwrap() += 1,
    )
    .await;
    let Err(error @ Error::Locked { .. }) = second else {
        panic!("not refused: {second:?}");
    };
    let Error::Locked { holder, .. } = &error else {
        unreachable!()
    };
    let live = lease(plane, &ns, "refused").await.unwrap();
    let acquired = spec(&live).acquire_time.as_ref().unwrap().0;
    assert_eq!(
        holder.acquired.as_deref(),
        Some(acquired.strftime("%Y-%m-%dT%H:%M:%SZ").to_string().as_str())
    );
    let expires_in = holder.expires_in.unwrap();
    assert!(expires_in <= Duration::from_secs(30), "{expires_in:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "another run holds the stage lock, Lease `{ns}/{}`: `{ALICE}` for `demo/refused`, \
             since {}, expiring in {} s unless renewed",
            first.name(),
            holder.acquired.as_deref().unwrap(),
            expires_in.as_secs() + u64::from(expires_in.subsec_nanos() > 0)
        )
    );
    assert_eq!(*waits.lock().unwrap(), 0, "nobody waited");
    assert_eq!(holder_of(&live), ALICE, "the first run still holds it");
    first.release().await.unwrap();
}

#[tokio::test]
async fn a_waiting_run_gets_the_lock_once_the_holder_releases_it() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-wait").await.unwrap();
    let first = acquire(plane, request(&ns, "wait", ALICE)).await.unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        first.release().await
    });

    let heard = Mutex::new(Vec::<LockHolder>::new());
    let mut waiting = request(&ns, "wait", BOB);
    waiting.wait = Some(Duration::from_secs(120));
    let second = StageLock::acquire(plane.client(User::Admin).unwrap(), waiting, &|holder| {
        heard.lock().unwrap().push(holder.clone())
    })
    .await
    .unwrap();
    release.await.unwrap().unwrap();

    let heard = heard.into_inner().unwrap();
    let names: Vec<&str> = heard.iter().map(|h| h.holder.as_str()).collect();
    assert_eq!(names, [ALICE], "told once, of the holder it waited for");
    assert_eq!(heard[0].owner, "demo/wait");
    let live = lease(plane, &ns, "wait").await.unwrap();
    assert_eq!(holder_of(&live), BOB);
    second.release().await.unwrap();
    assert!(lease(plane, &ns, "wait").await.is_none(), "released");
}

#[tokio::test]
async fn the_lease_of_a_killed_run_is_taken_over_once_it_expired() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-expired").await.unwrap();
    let long_ago = |seconds: i64| MicroTime(Timestamp::now() - SignedDuration::from_secs(seconds));
    let killed = Lease {
        metadata: ObjectMeta {
            name: Some(StageLock::name_for(&label("expired"))),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("killed@laptop pid 9".to_owned()),
            lease_duration_seconds: Some(10),
            acquire_time: Some(long_ago(200)),
            renew_time: Some(long_ago(120)),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
    };
    leases(plane, &ns)
        .create(&PostParams::default(), &killed)
        .await
        .unwrap();

    let lock = acquire(plane, request(&ns, "expired", ALICE))
        .await
        .unwrap();
    let live = lease(plane, &ns, "expired").await.unwrap();
    assert_eq!(holder_of(&live), ALICE);
    assert_eq!(spec(&live).lease_transitions, Some(4));
    assert_eq!(spec(&live).lease_duration_seconds, Some(30));
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get("capstan.io/lock-for").map(String::as_str),
        Some("capstan.io/discriminator=expired")
    );
    assert_eq!(
        annotations.get("capstan.io/owner").map(String::as_str),
        Some("demo/expired")
    );
    lock.check().unwrap();
    lock.release().await.unwrap();
}

#[tokio::test]
async fn releasing_a_lock_another_run_took_over_leaves_their_lease_alone() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-lost").await.unwrap();
    let mut short = request(&ns, "lost", ALICE);
    short.lease = Duration::from_secs(3);
    let lock = acquire(plane, short).await.unwrap();
    take_over_by_hand(plane, &ns, "lost", BOB).await;

    let message = format!(
        "lost the stage lock, Lease `{ns}/{}`: `{BOB}` for `demo/lost` took it over",
        lock.name()
    );
    // The renewal notices within a renewal interval; a second is a third of the lease.
    let mut checked = lock.check();
    for _ in 0..300 {
        if checked.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        checked = lock.check();
    }
    assert_eq!(checked.unwrap_err().to_string(), message);
    assert_eq!(lock.release().await.unwrap_err().to_string(), message);
    let live = lease(plane, &ns, "lost")
        .await
        .expect("their Lease is kept");
    assert_eq!(holder_of(&live), BOB);
}

#[tokio::test]
async fn a_held_lock_is_renewed_past_its_lease_duration() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-renew").await.unwrap();
    let mut short = request(&ns, "renew", ALICE);
    short.lease = Duration::from_secs(2);
    let lock = acquire(plane, short).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    lock.check().unwrap();
    let refused = acquire(plane, request(&ns, "renew", BOB)).await;
    assert!(
        matches!(&refused, Err(Error::Locked { holder, .. }) if holder.holder == ALICE),
        "{refused:?}"
    );
    let live = lease(plane, &ns, "renew").await.unwrap();
    let (acquired, renewed) = (
        spec(&live).acquire_time.as_ref().unwrap().0,
        spec(&live).renew_time.as_ref().unwrap().0,
    );
    assert!(
        renewed > acquired,
        "renewed at {renewed}, acquired at {acquired}"
    );
    lock.release().await.unwrap();
    acquire(plane, request(&ns, "renew", BOB))
        .await
        .unwrap()
        .release()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_state_namespace_is_created_without_the_discriminator() {
    let plane = ControlPlane::shared().await.unwrap();
    // A name no test created: the lock must make it.
    let ns = format!("{}-state", plane.create_namespace("lock-ns").await.unwrap());
    let lock = acquire(plane, request(&ns, "state", ALICE)).await.unwrap();

    let namespaces: Api<Namespace> = Api::all(plane.client(User::Admin).unwrap());
    let made = namespaces.get(&ns).await.unwrap();
    assert_eq!(
        made.metadata
            .labels
            .unwrap_or_default()
            .get(Label::DEFAULT_KEY),
        None
    );
    let live = lease(plane, &ns, "state").await.unwrap();
    assert_eq!(live.metadata.labels, None, "prune must never see the lock");
    lock.release().await.unwrap();
}

#[tokio::test]
async fn a_user_who_may_not_write_the_lock_is_pointed_at_the_state_namespace_setting() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("lock-forbidden").await.unwrap();
    let refused = StageLock::acquire(
        plane.client(User::Unprivileged).unwrap(),
        request(&ns, "forbidden", ALICE),
        &|_| {},
    )
    .await
    .unwrap_err();
    let Error::LockForbidden { message, .. } = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(
        refused.to_string(),
        format!(
            "not allowed to create the stage lock, Lease `{ns}/{}`: {message}; a project can set \
             `stateNamespace:` in capstan.yaml to a namespace the user may write",
            StageLock::name_for(&label("forbidden"))
        )
    );
    assert!(
        message.contains(&format!("in the namespace \"{ns}\"")),
        "{message}"
    );
}
