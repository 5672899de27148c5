//! Prune and its guards, the empty-set refusal, a takeover from kluctl, and a server that
//! goes away mid-deploy, against a real kube-apiserver.

mod common;

use capstan_apply::{Action, DeployRequest, Error, Keep, Options};
use capstan_manifest::Label;
use capstan_testenv::{ControlPlane, Options as PlaneOptions};
use common::{
    apply_only, config_maps, deploy, deployed, exists, kubectl, labelled, manifest, with_prune,
};

#[tokio::test]
async fn prune_deletes_orphans_and_keeps_what_the_guards_protect() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, _) = deployed(plane, "prune", 5, "v").await;
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "annotate",
            "cm",
            "cm-3",
            "capstan.io/skip-delete=true",
        ],
    );
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "annotate",
            "cm",
            "cm-4",
            "helm.sh/resource-policy=keep",
        ],
    );
    // Labelled, but never applied by capstan: a copy made by hand.
    kubectl(plane, &["-n", &ns, "create", "cm", "foreign"]);
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "label",
            "cm",
            "foreign",
            "capstan.io/discriminator=prune",
        ],
    );

    let kept = manifest("prune", &config_maps(&ns, 1, "v"));
    let done = deploy(plane, Options::default(), &kept, with_prune())
        .await
        .unwrap();
    assert!(done.succeeded());
    let orphans = done.plan.orphans().unwrap();
    let keep = |name: &str| {
        orphans
            .iter()
            .find(|o| o.id.name() == name)
            .unwrap()
            .keep
            .clone()
    };
    assert_eq!(keep("cm-1"), None);
    assert!(matches!(keep("cm-3"), Some(Keep::Protected(_))));
    assert!(matches!(keep("cm-4"), Some(Keep::Protected(_))));
    assert_eq!(keep("foreign"), Some(Keep::NotManaged));
    assert!(!exists(plane, "cm", &ns, "cm-1") && !exists(plane, "cm", &ns, "cm-2"));
    for name in ["cm-0", "cm-3", "cm-4", "foreign"] {
        assert!(exists(plane, "cm", &ns, name), "{name} must survive");
    }

    let mut force = Options::default();
    force.force_prune = true;
    deploy(plane, force, &kept, with_prune()).await.unwrap();
    assert!(!exists(plane, "cm", &ns, "foreign"));
    assert!(
        exists(plane, "cm", &ns, "cm-3"),
        "skip-delete holds even with --force-prune"
    );
}

#[tokio::test]
async fn objects_handed_to_argo_cd_are_never_pruned_even_with_force_prune() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, _) = deployed(plane, "handed", 3, "v").await;
    let annotate = |name: &str, annotation: &str| {
        kubectl(plane, &["-n", &ns, "annotate", "cm", name, annotation]);
    };
    // As a handoff writes it, and as Argo CD's annotation tracking marks what it applied.
    annotate("cm-1", "capstan.io/handed-off=argocd");
    annotate(
        "cm-2",
        "argocd.argoproj.io/tracking-id=apps:/ConfigMap:handed/cm-2",
    );

    let mut forced = Options::default();
    forced.force_prune = true;
    let kept = manifest("handed", &config_maps(&ns, 1, "v"));
    let done = deploy(plane, forced, &kept, with_prune()).await.unwrap();
    assert!(done.succeeded());
    let orphans = done.plan.orphans().unwrap();
    let keep = |name: &str| {
        orphans
            .iter()
            .find(|o| o.id.name() == name)
            .unwrap()
            .keep
            .clone()
    };
    assert_eq!(
        keep("cm-1"),
        Some(Keep::HandedOff {
            to: "argocd".into()
        })
    );
    assert_eq!(
        keep("cm-2"),
        Some(Keep::HandedOff {
            to: "argocd (tracking id apps:/ConfigMap:handed/cm-2)".into()
        })
    );
    for name in ["cm-1", "cm-2"] {
        assert!(exists(plane, "cm", &ns, name), "{name} must survive");
    }
}

#[tokio::test]
async fn objects_with_owner_references_are_never_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "owned", 1, "v").await;
    let uid = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "cm",
            "cm-0",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    let child = format!(
        r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"child","namespace":"{ns}",
        "labels":{{"capstan.io/discriminator":"owned"}},
        "ownerReferences":[{{"apiVersion":"v1","kind":"ConfigMap","name":"cm-0","uid":"{uid}"}}]}}}}"#
    );
    let path = std::env::temp_dir().join(format!("capstan-child-{ns}.json"));
    std::fs::write(&path, child).unwrap();
    kubectl(
        plane,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "capstan",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&path).unwrap();
    let done = deploy(plane, Options::default(), &stage, with_prune())
        .await
        .unwrap();
    let orphan = &done.plan.orphans().unwrap()[0];
    assert!(matches!(&orphan.keep, Some(Keep::Owned(owner)) if owner == "ConfigMap cm-0"));
    assert!(exists(plane, "cm", &ns, "child"));
}

#[tokio::test]
async fn an_empty_manifest_set_never_prunes_unless_allowed() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, _) = deployed(plane, "empty", 2, "v").await;
    let nothing = manifest("empty", "");
    let refused = deploy(plane, Options::default(), &nothing, with_prune()).await;
    assert!(
        matches!(refused, Err(Error::EmptyManifest { .. })),
        "{refused:?}"
    );
    assert!(exists(plane, "cm", &ns, "cm-0"));
    let mut allow = Options::default();
    allow.allow_empty = true;
    deploy(plane, allow, &nothing, with_prune()).await.unwrap();
    assert!(!exists(plane, "cm", &ns, "cm-0"));
}

#[tokio::test]
async fn objects_deployed_by_kluctl_are_taken_over_with_its_label_key() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("kluctl").await.unwrap();
    let yaml = config_maps(&ns, 2, "v");
    let path = std::env::temp_dir().join(format!("capstan-kluctl-{ns}.yaml"));
    std::fs::write(&path, &yaml).unwrap();
    kubectl(
        plane,
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "kluctl",
            "-f",
            path.to_str().unwrap(),
        ],
    );
    std::fs::remove_file(&path).unwrap();
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "label",
            "cm",
            "--all",
            "kluctl.io/discriminator=legacy",
        ],
    );

    let label = Label::new("kluctl.io/discriminator", "legacy").unwrap();
    let stage = labelled(label, &config_maps(&ns, 1, "v"));
    // A takeover is an adoption: the stage setting `adopt: true` (here the option) allows it.
    let mut adopt = Options::default();
    adopt.adopt = true;
    let done = deploy(plane, adopt, &stage, with_prune()).await.unwrap();
    assert!(done.succeeded());
    assert_eq!(
        done.plan.count(Action::Adopt),
        1,
        "taken over: label and content hash added"
    );
    let orphan = &done.plan.orphans().unwrap()[0];
    assert_eq!(
        orphan.keep,
        Some(Keep::NotManaged),
        "kluctl's objects need --force-prune"
    );
    let mut force = Options::default();
    force.force_prune = true;
    deploy(plane, force, &stage, with_prune()).await.unwrap();
    assert!(!exists(plane, "cm", &ns, "cm-1") && exists(plane, "cm", &ns, "cm-0"));
}

#[tokio::test]
async fn a_server_lost_mid_deploy_fails_cleanly_prunes_nothing_and_the_next_run_converges() {
    let plane = ControlPlane::start(PlaneOptions::default()).await.unwrap();
    let ns = plane.create_namespace("fault").await.unwrap();
    let old = manifest(
        "fault",
        &config_maps(&ns, 1, "old").replace("cm-0", "orphan"),
    );
    deploy(&plane, Options::default(), &old, apply_only())
        .await
        .unwrap();
    let stage = manifest("fault", &config_maps(&ns, 400, "v"));
    let mut options = Options::default();
    options.concurrency = 2;
    let deployer =
        capstan_apply::Deployer::new(plane.client(capstan_testenv::User::Admin).unwrap(), options);
    let request = DeployRequest::default().prune(true);
    // Planning dry-runs every create first; the server goes away once writing has begun.
    let writing = tokio::sync::Notify::new();
    let stop = async {
        writing.notified().await;
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        plane.stop_api_server().await.unwrap();
    };
    let progress = |event: capstan_apply::Event<'_>| {
        if matches!(event, capstan_apply::Event::Wave { .. }) {
            writing.notify_one();
        }
    };
    let mut confirm = |_: &capstan_apply::Plan<'_>| true;
    let (deployed, ()) = tokio::join!(
        deployer.deploy(&stage, request, &progress, &mut confirm),
        stop
    );
    let deployed = deployed.expect("the plan finished before the server went away");
    assert!(!deployed.succeeded());
    let failed = deployed
        .outcomes
        .iter()
        .filter(|o| o.result.is_err())
        .count();
    assert!(
        failed > 0 && failed < 400,
        "some applied, some not: {failed}"
    );
    assert!(matches!(
        deployed.prune,
        Some(Err(Error::ApplyFailed { .. }))
    ));

    plane.start_api_server().await.unwrap();
    assert!(exists(&plane, "cm", &ns, "orphan"), "nothing was pruned");
    let again = deploy(&plane, Options::default(), &stage, with_prune())
        .await
        .unwrap();
    assert!(again.succeeded());
    assert!(
        again.plan.count(Action::Unchanged) > 0,
        "what was applied before is not rewritten"
    );
    assert!(!exists(&plane, "cm", &ns, "orphan") && exists(&plane, "cm", &ns, "cm-399"));
}

#[tokio::test]
async fn a_namespace_that_still_holds_stage_objects_is_never_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let namespace = "prune-holder";
    let objects = config_maps(namespace, 1, "v");
    let with_namespace =
        format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {namespace}}}\n{objects}");
    deploy(
        plane,
        Options::default(),
        &manifest("holder", &with_namespace),
        apply_only(),
    )
    .await
    .unwrap();
    let without = manifest("holder", &objects);
    let done = deploy(plane, Options::default(), &without, with_prune())
        .await
        .unwrap();
    let orphan = &done.plan.orphans().unwrap()[0];
    assert_eq!(orphan.id.kind(), "Namespace");
    assert_eq!(orphan.keep, Some(Keep::HoldsManifestObjects));
    assert!(exists(plane, "cm", namespace, "cm-0"));
}

#[tokio::test]
async fn a_plan_with_objects_that_cannot_be_applied_never_prunes() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, _) = deployed(plane, "unplannable", 2, "v").await;
    // cm-1 is dropped, and the render now holds an object in a namespace nobody creates.
    let broken = manifest(
        "unplannable",
        &format!(
            "{}{}",
            config_maps(&ns, 1, "v"),
            config_maps("no-such-namespace", 1, "v")
        ),
    );
    let deployer = capstan_apply::Deployer::new(
        plane.client(capstan_testenv::User::Admin).unwrap(),
        Options::default(),
    );
    let plan = deployer.plan(&broken, true, &|_| {}).await.unwrap();
    assert!(matches!(
        plan.errors().next(),
        Some(Error::MissingNamespace { .. })
    ));
    let refused = deployer.prune(&plan, &[], &|_| {}).await;
    assert!(
        matches!(refused, Err(Error::Unplannable { count: 1 })),
        "{refused:?}"
    );
    assert!(exists(plane, "cm", &ns, "cm-1"));
}
