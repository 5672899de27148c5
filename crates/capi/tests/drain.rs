//! Cordon, uncordon and drain against a real control plane. There is no scheduler and no
//! kubelet: Nodes are plain objects, pods are created bound (`spec.nodeName`) with their status
//! written through the status subresource, and evictions use grace period 0 where a kubelet
//! would have finished the deletion. The controller manager runs, so disruption budgets get
//! their status and owners must exist (the garbage collector deletes pods of missing owners).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use capstan_capi::{
    Blocker, CordonChange, Drain, DrainEvent, DrainOptions, Outcome, PodFilters, cordon, drain,
    uncordon,
};
use capstan_kube::Api;
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

struct Setup {
    client: kube::Client,
    api: Api,
    ns: String,
    /// policy/v1 evictions came with 1.22; the 1.20 test server takes policy/v1beta1 only.
    v1_evictions: bool,
}

async fn setup(prefix: &str) -> Setup {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace(prefix).await.unwrap();
    // As capstan_kube::connect makes it: a budget's 429 reaches the drain instead of kube's
    // retry layer.
    let mut config = plane.config(User::Admin);
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let minor = plane
        .version()
        .split('.')
        .nth(1)
        .and_then(|m| m.parse::<u32>().ok());
    let setup = Setup {
        api: Api::new(client.clone()),
        client,
        ns,
        v1_evictions: minor.is_some_and(|minor| minor >= 22),
    };
    // The controller of the test's pods: a pod whose owner is missing is garbage collected.
    let owners: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(setup.client.clone(), &setup.ns);
    owners
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    // Pods are admitted once their namespace's `default` service account exists.
    let accounts: kube::Api<k8s_openapi::api::core::v1::ServiceAccount> =
        kube::Api::namespaced(setup.client.clone(), &setup.ns);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while accounts.get_opt("default").await.unwrap().is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no default service account"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    setup
}

impl Setup {
    fn node_name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.ns)
    }

    async fn node(&self, suffix: &str) -> String {
        let name = self.node_name(suffix);
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        let node = json!({"metadata": {"name": name, "labels": {"capstan.io/test-node": name}}});
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(node).unwrap(),
            )
            .await
            .unwrap();
        name
    }

    fn pods(&self) -> kube::Api<Pod> {
        kube::Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn owner_uid(&self) -> String {
        let owners: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
            kube::Api::namespaced(self.client.clone(), &self.ns);
        owners.get("owner").await.unwrap().metadata.uid.unwrap()
    }

    /// A running, ready pod on `node` controlled by the namespace's owner; `spec` is merged
    /// into its spec, and `controlled: false` leaves the controller out.
    async fn pod(&self, node: &str, name: &str, labels: Value, spec: Value, controlled: bool) {
        let owners = if controlled {
            json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                    "uid": self.owner_uid().await, "controller": true}])
        } else {
            json!([])
        };
        // No token to mount: the token controller of a new namespace may not have made one yet.
        let mut pod_spec = json!({"nodeName": node, "automountServiceAccountToken": false,
            "containers": [{"name": "main", "image": "none"}]});
        merge(&mut pod_spec, spec);
        let pod = json!({
            "metadata": {"name": name, "labels": labels, "ownerReferences": owners},
            "spec": pod_spec,
        });
        let pods = self.pods();
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap();
        self.ready(name).await;
    }

    async fn ready(&self, name: &str) {
        let status = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}]}});
        self.pods()
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    async fn exists(&self, name: &str) -> bool {
        self.pods().get_opt(name).await.unwrap().is_some()
    }

    async fn unschedulable(&self, node: &str) -> Option<bool> {
        let nodes: kube::Api<Node> = kube::Api::all(self.client.clone());
        nodes.get(node).await.unwrap().spec.unwrap().unschedulable
    }

    async fn drain(&self, nodes: &[String], options: &DrainOptions) -> Drain {
        drain(&self.api, nodes, options, &|_| {}).await.unwrap()
    }

    /// The budgets' API at the version the server's evictions use.
    fn budgets(&self) -> kube::Api<DynamicObject> {
        let version = if self.v1_evictions { "v1" } else { "v1beta1" };
        let gvk = GroupVersionKind::gvk("policy", version, "PodDisruptionBudget");
        let resource = ApiResource::from_gvk(&gvk);
        kube::Api::namespaced_with(self.client.clone(), &self.ns, &resource)
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

fn quick() -> DrainOptions {
    let mut options = DrainOptions::default();
    options.grace_period_seconds = Some(0);
    options.timeout = Some(Duration::from_secs(60));
    options.poll_interval = Duration::from_millis(200);
    options.retry_interval = Duration::from_millis(500);
    options
}

fn names(pods: &[capstan_capi::PodRef]) -> Vec<&str> {
    let mut names: Vec<&str> = pods.iter().map(|pod| pod.object.name()).collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn cordon_and_uncordon_say_when_there_was_nothing_to_change() {
    let setup = setup("cordon").await;
    let node = setup.node("n").await;
    let api = &setup.api;
    assert_eq!(
        cordon(api, &node, false).await.unwrap(),
        CordonChange::Cordoned
    );
    assert_eq!(setup.unschedulable(&node).await, Some(true));
    assert_eq!(
        cordon(api, &node, false).await.unwrap(),
        CordonChange::AlreadyCordoned
    );
    assert_eq!(
        uncordon(api, &node, false).await.unwrap(),
        CordonChange::Uncordoned
    );
    // Uncordon removes the field, as kubectl's patch does.
    assert_eq!(setup.unschedulable(&node).await, None);
    assert_eq!(
        uncordon(api, &node, false).await.unwrap(),
        CordonChange::AlreadyUncordoned
    );
    let missing = cordon(api, &setup.node_name("absent"), false)
        .await
        .unwrap_err();
    assert_eq!(
        missing.to_string(),
        format!("node `{}` not found", setup.node_name("absent"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_blocking_filter_stops_the_node_before_any_eviction_until_its_flag_allows_it() {
    let setup = setup("filters").await;
    let node = setup.node("n").await;
    setup.pod(&node, "web", json!({}), json!({}), true).await;
    setup.pod(&node, "bare", json!({}), json!({}), false).await;
    let scratch = json!({"volumes": [{"name": "scratch", "emptyDir": {}}]});
    setup.pod(&node, "scratch", json!({}), scratch, true).await;
    let agent = daemon_set_pod(&setup, &node).await;

    let blocked = setup.drain(std::slice::from_ref(&node), &quick()).await;
    let item = &blocked.items[0];
    assert_eq!(item.outcome, Outcome::Blocked);
    assert_eq!(item.cordon, Some(CordonChange::Cordoned));
    let blockers: Vec<(Blocker, Vec<&str>)> = item
        .plan
        .blockers
        .iter()
        .map(|group| (group.reason.clone(), names(&group.pods)))
        .collect();
    assert!(
        blockers.contains(&(Blocker::NoController, vec!["bare"])),
        "{blockers:?}"
    );
    assert!(
        blockers.contains(&(Blocker::LocalStorage, vec!["scratch"])),
        "{blockers:?}"
    );
    assert!(
        blockers.contains(&(Blocker::DaemonSetManaged, vec![agent.as_str()])),
        "{blockers:?}"
    );
    assert_eq!(blockers.len(), 3);
    assert_eq!(
        item.error.as_ref().unwrap().to_string(),
        format!("node `{node}` was not drained: 3 pod(s) block it, so none was evicted")
    );
    for pod in ["web", "bare", "scratch", agent.as_str()] {
        assert!(
            setup.exists(pod).await,
            "{pod} was evicted from a blocked node"
        );
    }

    let mut options = quick();
    let mut filters = PodFilters::default();
    filters.force = true;
    filters.delete_emptydir_data = true;
    filters.ignore_daemonsets = true;
    options.filters = filters;
    let drained = setup.drain(std::slice::from_ref(&node), &options).await;
    let item = &drained.items[0];
    assert_eq!(item.outcome, Outcome::Drained, "{:?}", item.error);
    assert_eq!(item.cordon, Some(CordonChange::AlreadyCordoned));
    assert_eq!(names(&item.evicted), ["bare", "scratch", "web"]);
    assert_eq!(names(&item.plan.skip), [agent.as_str()]);
    for pod in ["web", "bare", "scratch"] {
        assert!(!setup.exists(pod).await, "{pod} is still there");
    }
    assert!(
        setup.exists(&agent).await,
        "the DaemonSet's pod was evicted"
    );
    let expected = if setup.v1_evictions {
        "policy/v1"
    } else {
        "policy/v1beta1"
    };
    assert_eq!(drained.method, expected);
}

/// A pod of a real DaemonSet on `node`: the DaemonSet controller creates it for the node, and
/// the test binds it there as the scheduler would.
async fn daemon_set_pod(setup: &Setup, node: &str) -> String {
    let sets: kube::Api<k8s_openapi::api::apps::v1::DaemonSet> =
        kube::Api::namespaced(setup.client.clone(), &setup.ns);
    let set = json!({
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {
                    "nodeSelector": {"capstan.io/test-node": node},
                    // New nodes without a kubelet are tainted not-ready and unreachable.
                    "tolerations": [{"operator": "Exists"}],
                    "automountServiceAccountToken": false,
                    "containers": [{"name": "main", "image": "none"}]
                }
            }
        }
    });
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(set).unwrap(),
    )
    .await
    .unwrap();
    let pods = setup.pods();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let name = loop {
        let listed = pods
            .list(&kube::api::ListParams::default().labels("app=agent"))
            .await
            .unwrap();
        if let Some(pod) = listed.items.first() {
            break pod.metadata.name.clone().unwrap();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no DaemonSet pod appeared"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let binding = json!({"apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name}, "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
    let request = kube::core::Request::new(format!("/api/v1/namespaces/{}/pods", setup.ns));
    let request = request
        .create_subresource(
            "binding",
            &name,
            &PostParams::default(),
            binding.to_string().into_bytes(),
        )
        .unwrap();
    setup.client.request::<Value>(request).await.unwrap();
    setup.ready(&name).await;
    name
}

#[tokio::test(flavor = "multi_thread")]
async fn a_budget_holds_pods_with_a_report_until_it_is_relaxed() {
    let setup = setup("budget").await;
    let node = setup.node("n").await;
    for name in ["web-1", "web-2"] {
        setup
            .pod(&node, name, json!({"app": "web"}), json!({}), true)
            .await;
    }
    let budget = json!({
        "apiVersion": if setup.v1_evictions { "policy/v1" } else { "policy/v1beta1" },
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
    });
    let budgets = setup.budgets();
    budgets
        .create(
            &PostParams::default(),
            &serde_json::from_value(budget).unwrap(),
        )
        .await
        .unwrap();
    // The disruption controller must have counted the pods, or evictions are refused as
    // "still being processed" rather than by the budget's numbers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while budgets.get("web").await.unwrap().data["status"]["currentHealthy"] != json!(2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the budget got no status"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut options = quick();
    options.report_after = Duration::from_secs(1);
    let held = AtomicBool::new(false);
    let notes = Mutex::new(Vec::new());
    let on_event = |event: DrainEvent<'_>| {
        if let DrainEvent::Held { pod, budget } = event {
            held.store(true, Ordering::SeqCst);
            notes.lock().unwrap().push((
                pod.object.name().to_owned(),
                budget.object.name().to_owned(),
            ));
        }
    };
    let relax = async {
        while !held.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let patch = json!({"spec": {"minAvailable": 0}});
        budgets
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    };
    let nodes = [node.clone()];
    let (drained, ()) = tokio::join!(drain(&setup.api, &nodes, &options, &on_event), relax);
    let drained = drained.unwrap();
    let item = &drained.items[0];
    assert_eq!(item.outcome, Outcome::Drained, "{:?}", item.error);
    assert_eq!(names(&item.evicted), ["web-1", "web-2"]);
    assert!(!notes.lock().unwrap().is_empty());
    assert_eq!(item.budgets.len(), 1, "{:?}", item.budgets);
    let report = &item.budgets[0];
    assert_eq!(report.object.name(), "web");
    assert_eq!(report.object.namespace(), Some(setup.ns.as_str()));
    assert_eq!(report.min_available, Some(json!(2)));
    assert_eq!(report.max_unavailable, None);
    assert_eq!(
        (
            report.current_healthy,
            report.desired_healthy,
            report.disruptions_allowed
        ),
        (Some(2), Some(2), Some(0))
    );
    assert!(!report.pods.is_empty());
    assert!(
        report
            .pods
            .iter()
            .all(|pod| pod.object.name().starts_with("web-"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grace_period_of_zero_overrides_the_pods_own() {
    let setup = setup("grace").await;
    let node = setup.node("n").await;
    let slow = json!({"terminationGracePeriodSeconds": 300});
    setup.pod(&node, "slow", json!({}), slow, true).await;
    let drained = setup.drain(std::slice::from_ref(&node), &quick()).await;
    assert_eq!(
        drained.items[0].outcome,
        Outcome::Drained,
        "{:?}",
        drained.items[0].error
    );
    assert!(!setup.exists("slow").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_timeout_names_the_pods_still_on_the_node() {
    let setup = setup("timeout").await;
    let node = setup.node("n").await;
    let slow = json!({"terminationGracePeriodSeconds": 300});
    setup.pod(&node, "slow", json!({}), slow, true).await;
    let mut options = quick();
    // The pod's own 300 s apply, and no kubelet finishes the deletion.
    options.grace_period_seconds = None;
    options.timeout = Some(Duration::from_secs(2));
    let drained = setup.drain(std::slice::from_ref(&node), &options).await;
    let item = &drained.items[0];
    assert_eq!(item.outcome, Outcome::TimedOut);
    assert_eq!(names(&item.left), ["slow"]);
    assert_eq!(
        item.error.as_ref().unwrap().to_string(),
        format!(
            "node `{node}` was not drained within the timeout: pods left: {}/slow",
            setup.ns
        )
    );
    assert!(!drained.succeeded());
    setup
        .pods()
        .delete("slow", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing() {
    let setup = setup("dry").await;
    let node = setup.node("n").await;
    setup.pod(&node, "web", json!({}), json!({}), true).await;
    let mut options = quick();
    options.dry_run = true;
    let drained = setup.drain(std::slice::from_ref(&node), &options).await;
    let item = &drained.items[0];
    assert_eq!(item.outcome, Outcome::Drained, "{:?}", item.error);
    assert!(drained.dry_run);
    assert_eq!(names(&item.evicted), ["web"]);
    assert_eq!(setup.unschedulable(&node).await, None);
    let web = setup.pods().get("web").await.unwrap();
    assert!(web.metadata.deletion_timestamp.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_drain_in_one_run() {
    let setup = setup("parallel").await;
    let nodes = [setup.node("a").await, setup.node("b").await];
    for (node, prefix) in nodes.iter().zip(["a", "b"]) {
        for index in 0..3 {
            let name = format!("{prefix}-{index}");
            setup.pod(node, &name, json!({}), json!({}), true).await;
        }
    }
    let mut options = quick();
    options.max_concurrent_evictions = 2;
    let drained = setup.drain(&nodes, &options).await;
    assert!(drained.succeeded(), "{drained:?}");
    assert_eq!(names(&drained.items[0].evicted), ["a-0", "a-1", "a-2"]);
    assert_eq!(names(&drained.items[1].evicted), ["b-0", "b-1", "b-2"]);
    for node in &nodes {
        assert_eq!(setup.unschedulable(node).await, Some(true));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_eviction_deletes_past_a_budget() {
    let setup = setup("delete").await;
    let node = setup.node("n").await;
    setup
        .pod(&node, "web", json!({"app": "web"}), json!({}), true)
        .await;
    let budget = json!({
        "apiVersion": if setup.v1_evictions { "policy/v1" } else { "policy/v1beta1" },
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}
    });
    setup
        .budgets()
        .create(
            &PostParams::default(),
            &serde_json::from_value(budget).unwrap(),
        )
        .await
        .unwrap();
    let mut options = quick();
    options.disable_eviction = true;
    let drained = setup.drain(std::slice::from_ref(&node), &options).await;
    assert_eq!(drained.method, "delete");
    assert_eq!(
        drained.items[0].outcome,
        Outcome::Drained,
        "{:?}",
        drained.items[0].error
    );
    assert!(!setup.exists("web").await);
}
