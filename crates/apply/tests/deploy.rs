//! Deploys against a real kube-apiserver: plan classes, ordering, conflicts, secrets, dry run.

mod common;

use std::sync::atomic::Ordering;

use capstan_apply::{Action, DeployRequest, Deployer, Options};
use capstan_testenv::{ControlPlane, User};
use common::{
    apply_only, config_maps, counting_client, data_key, deploy, deployed, edit_after_capstan,
    exists, kubectl, manifest,
};

#[tokio::test]
async fn unchanged_redeploy_sends_zero_writes_and_changes_are_updates() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("redeploy").await.unwrap();
    let first = manifest("redeploy", &config_maps(&ns, 20, "one"));
    let done = deploy(plane, Options::default(), &first, apply_only())
        .await
        .unwrap();
    assert!(done.succeeded());
    assert_eq!(done.plan.count(Action::Create), 20);

    let (client, writes) = counting_client(plane);
    let deployer = Deployer::new(client, Options::default());
    let again = deployer
        .deploy(&first, apply_only(), &|_| {}, &mut |_| true)
        .await
        .unwrap();
    assert_eq!(again.plan.count(Action::Unchanged), 20);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "an unchanged redeploy writes nothing"
    );
    assert!(
        again.requests <= 6,
        "proved from metadata, not a dry run per object: {}",
        again.requests
    );

    let text = config_maps(&ns, 20, "one").replace(
        &format!("cm-3, namespace: {ns}}}\ndata: {{key: one}}"),
        &format!("cm-3, namespace: {ns}}}\ndata: {{key: two}}"),
    );
    let changed = manifest("redeploy", &text);
    let done = deploy(plane, Options::default(), &changed, apply_only())
        .await
        .unwrap();
    assert_eq!(done.plan.count(Action::Update), 1);
    let update = done
        .plan
        .objects()
        .iter()
        .find(|i| i.action() == Action::Update)
        .unwrap();
    let diff = update.diff().unwrap().unified("cm-3");
    assert!(
        diff.contains("-  key: one") && diff.contains("+  key: two"),
        "{diff}"
    );
    assert_eq!(data_key(plane, &ns, "cm-3"), "two");
}

#[tokio::test]
async fn a_change_by_another_manager_is_noticed_despite_the_hash() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "drift", 1, "mine").await;
    edit_after_capstan(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "cm-0",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"key":"theirs"}}"#,
        ],
    )
    .await;
    let mut options = Options::default();
    options.force_conflicts = true;
    let done = deploy(plane, options, &stage, apply_only()).await.unwrap();
    assert_eq!(done.plan.count(Action::Update), 1);
    assert_eq!(data_key(plane, &ns, "cm-0"), "mine");
}

#[tokio::test]
async fn a_field_removed_by_another_manager_is_noticed_despite_the_hash() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("removal").await.unwrap();
    let stage = manifest(
        "removal",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: {ns}, labels: {{team: a}}}}\ndata: {{keep: v, gone: v}}\n"
        ),
    );
    deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    edit_after_capstan(
        plane,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "c",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/data/gone"}]"#,
        ],
    )
    .await;
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(
        done.plan.count(Action::Update),
        1,
        "{:?}",
        done.plan.objects()
    );
    assert_eq!(
        kubectl(
            plane,
            &["get", "cm", "-n", &ns, "c", "-o", "jsonpath={.data.gone}"]
        ),
        "v"
    );
    edit_after_capstan(plane, &["-n", &ns, "label", "cm", "c", "team-"]).await;
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(
        done.plan.count(Action::Update),
        1,
        "{:?}",
        done.plan.objects()
    );
}

#[tokio::test]
async fn conflicts_name_the_manager_and_field_unless_forced() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("conflict").await.unwrap();
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "create",
            "configmap",
            "cm-0",
            "--from-literal=key=kubectl",
        ],
    );
    let stage = manifest("conflict", &config_maps(&ns, 1, "capstan"));
    // Taking over a ConfigMap made by hand needs `adopt`; its fields still conflict.
    let mut adopt = Options::default();
    adopt.adopt = true;
    let refused = deploy(plane, adopt.clone(), &stage, apply_only())
        .await
        .unwrap();
    assert!(!refused.succeeded());
    assert!(
        refused.outcomes.is_empty(),
        "nothing is written when an object cannot be applied"
    );
    let error = refused.plan.errors().next().unwrap().to_string();
    assert!(
        error.contains("kubectl-create")
            && error.contains(".data.key")
            && error.contains("`Options::force_conflicts`"),
        "{error}"
    );

    let mut options = adopt;
    options.force_conflicts = true;
    assert!(
        deploy(plane, options, &stage, apply_only())
            .await
            .unwrap()
            .succeeded()
    );
    assert_eq!(data_key(plane, &ns, "cm-0"), "capstan");
}

#[tokio::test]
async fn crd_namespace_and_custom_resource_deploy_in_one_run() {
    let plane = ControlPlane::shared().await.unwrap();
    let stage = manifest(
        "crd",
        r#"
apiVersion: crd.capstan.test/v1
kind: Widget
metadata: {name: w, namespace: widgets}
spec: {size: 3}
---
apiVersion: v1
kind: Namespace
metadata: {name: widgets}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: widget-reader, namespace: widgets}
rules: [{apiGroups: [crd.capstan.test], resources: [widgets], verbs: [get]}]
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.crd.capstan.test}
spec:
  group: crd.capstan.test
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    );
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert!(done.succeeded(), "{:?}", done.outcomes);
    let order: Vec<&str> = done.outcomes.iter().map(|o| o.id.kind()).collect();
    assert_eq!(
        order,
        [
            "CustomResourceDefinition",
            "Namespace",
            "ClusterRole",
            "Widget"
        ]
    );
    assert_eq!(
        kubectl(
            plane,
            &[
                "get",
                "widgets",
                "-n",
                "widgets",
                "w",
                "-o",
                "jsonpath={.spec.size}"
            ]
        ),
        "3"
    );
    let again = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(
        again.plan.count(Action::Unchanged),
        4,
        "a namespace on a cluster-scoped object is ignored"
    );
}

#[tokio::test]
async fn dry_run_leaves_the_server_untouched() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("dryrun").await.unwrap();
    let stage = manifest("dryrun", &config_maps(&ns, 3, "x"));
    let (client, writes) = counting_client(plane);
    let mut options = Options::default();
    options.verify_new = true;
    let deployer = Deployer::new(client, options);
    let plan = deployer
        .deploy(
            &stage,
            DeployRequest::default().prune(true).dry_run(true),
            &|_| {},
            &mut |_| panic!("a dry run asks nothing"),
        )
        .await
        .unwrap();
    assert_eq!(plan.plan.count(Action::Create), 3);
    assert!(plan.plan.objects().iter().all(|i| i.is_verified()));
    assert!(plan.outcomes.is_empty());
    assert!(!exists(plane, "cm", &ns, "cm-0"));
    // Dry-run applies are PATCH requests with dryRun=All; nothing else was sent.
    assert_eq!(writes.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn secret_values_never_appear_in_diffs_or_debug_output() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("secret").await.unwrap();
    let secret = |value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}}}\nstringData: {{password: {value}, same: unchanged-s3cret}}\n"
        )
    };
    let first = manifest("secret", &secret("first-s3cret"));
    deploy(plane, Options::default(), &first, apply_only())
        .await
        .unwrap();
    let second = manifest("secret", &secret("second-s3cret"));
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), Options::default());
    let plan = deployer.plan(&second, false, &|_| {}).await.unwrap();
    let item = &plan.objects()[0];
    assert_eq!(item.action(), Action::Update);
    let diff = item.diff().unwrap().unified("s");
    let debug = format!("{plan:?}");
    for shown in [&diff, &debug] {
        for value in [
            "first-s3cret",
            "second-s3cret",
            "unchanged-s3cret",
            "Zmlyc3Qtc3NjcmV0",
        ] {
            assert!(!shown.contains(value), "{value} leaked: {shown}");
        }
    }
    assert!(
        diff.contains("password: '*** (before)'") && diff.contains("password: '*** (after)'"),
        "{diff}"
    );
}

#[tokio::test]
async fn wait_reports_readiness_and_gives_up_at_the_timeout() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("wait").await.unwrap();
    let gadget = |name: &str, ready: &str| {
        format!(
            "---\napiVersion: wait.capstan.test/v1\nkind: Gadget\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             status: {{conditions: [{{type: Ready, status: \"{ready}\", message: warming up}}]}}\n"
        )
    };
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.wait.capstan.test}
spec:
  group: wait.capstan.test
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - {name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}
"#;
    let stage = manifest(
        "wait",
        &format!(
            "{crd}{}{}",
            gadget("ready", "True"),
            gadget("slow", "False")
        ),
    );
    let mut options = Options::default();
    options.timeout = std::time::Duration::from_secs(2);
    let done = deploy(plane, options, &stage, DeployRequest::default().wait(true))
        .await
        .unwrap();
    let health = |name: &str| {
        done.health
            .iter()
            .find(|s| s.id.name() == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        health("gadgets.wait.capstan.test").health,
        capstan_apply::Health::Ready
    );
    assert_eq!(health("ready").health, capstan_apply::Health::Ready);
    let slow = health("slow");
    assert_eq!(slow.health, capstan_apply::Health::Progressing);
    assert_eq!(slow.message.as_deref(), Some("warming up"));
    assert!(
        !done.succeeded(),
        "an object that never got ready fails the deploy"
    );
}

#[tokio::test]
async fn a_kind_served_at_another_version_is_reported_as_such() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("version").await.unwrap();
    // Kubernetes 1.20 serves CronJob as batch/v1beta1 only; batch/v1 came with 1.21.
    let stage = manifest(
        "version",
        &format!(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata: {{name: nightly, namespace: {ns}}}\n\
             spec: {{schedule: '@daily', jobTemplate: {{spec: {{template: {{spec: \
             {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}}}}}}}}}\n---\n\
             apiVersion: nowhere.example.com/v1\nkind: Gadget\nmetadata: {{name: g, namespace: {ns}}}\n"
        ),
    );
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let errors: Vec<String> = done.plan.errors().map(ToString::to_string).collect();
    if plane.version().starts_with("v1.20") {
        assert_eq!(
            errors,
            [
                format!(
                    "batch/CronJob {ns}/nightly: the server serves batch/v1beta1 CronJob, not batch/v1"
                ),
                format!(
                    "nowhere.example.com/Gadget {ns}/g: the server does not serve \
                     nowhere.example.com/v1 Gadget; install its CRD first"
                ),
            ]
        );
    } else {
        assert_eq!(errors.len(), 1, "{errors:?}");
    }
}

#[tokio::test]
async fn one_request_the_server_drops_fails_its_object_and_not_the_run() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("dropped").await.unwrap();
    // The 1.20 apiserver panics on a dry-run apply of an APIService and drops the connection.
    let api_service = format!(
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\n\
         metadata: {{name: v1alpha1.{ns}.example.com}}\n\
         spec: {{group: {ns}.example.com, version: v1alpha1, groupPriorityMinimum: 100, \
         versionPriority: 100, service: {{name: api, namespace: {ns}}}}}\n---\n"
    );
    let stage = manifest("dropped", &(api_service + &config_maps(&ns, 3, "v")));
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), Options::default());
    let plan = deployer.plan(&stage, false, &|_| {}).await.unwrap();
    let config_maps: Vec<_> = plan
        .objects()
        .iter()
        .filter(|o| o.id().kind() == "ConfigMap")
        .collect();
    assert_eq!(config_maps.len(), 3);
    assert!(
        config_maps
            .iter()
            .all(|o| o.error().is_none() && o.is_verified()),
        "{plan:?}"
    );
    let errors: Vec<String> = plan.errors().map(ToString::to_string).collect();
    if plane.version().starts_with("v1.20") {
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("dropped this request"), "{errors:?}");
    }
}

#[tokio::test]
async fn a_body_that_does_not_fit_the_schema_is_not_retried() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("schema").await.unwrap();
    let deployment = |replicas: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d, namespace: {ns}}}\n\
             spec: {{replicas: {replicas}, selector: {{matchLabels: {{a: b}}}}, template: \
             {{metadata: {{labels: {{a: b}}}}, spec: {{containers: [{{name: c, image: x}}]}}}}}}\n"
        )
    };
    let requests = |yaml: String| async move {
        let stage = manifest("schema", &yaml);
        let deployer = Deployer::new(plane.client(User::Admin).unwrap(), Options::default());
        let plan = deployer.plan(&stage, false, &|_| {}).await.unwrap();
        (plan.errors().count(), plan.requests())
    };
    let (valid_errors, valid) = requests(deployment("1")).await;
    let (invalid_errors, invalid) = requests(deployment("'three'")).await;
    assert_eq!((valid_errors, invalid_errors), (0, 1));
    assert_eq!(
        invalid, valid,
        "one dry run each: the rejected one is not retried"
    );
}
