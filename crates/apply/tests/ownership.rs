//! Prune and delete remove only what the stage provably owns, and never take other objects
//! along: ownership records, the legacy label, Namespace and CRD cascades, adoption, and what a
//! deletion reports, against a real kube-apiserver.

mod common;

use capstan_apply::{Action, Deployer, Keep, Options, Removal};
use capstan_manifest::ObjectId;
use capstan_testenv::{ControlPlane, User};
use common::{apply_only, config_maps, deploy, exists, kubectl, manifest, with_prune};

fn owned_by(owner: &str) -> Options {
    let mut options = Options::default();
    options.owner = Some(owner.to_owned());
    options
}

fn keep_of(done: &capstan_apply::Deployment<'_>, name: &str) -> Option<Keep> {
    let orphans = done.plan.orphans().unwrap();
    orphans
        .iter()
        .find(|o| o.id.name() == name)
        .unwrap()
        .keep
        .clone()
}

#[tokio::test]
async fn a_stage_never_prunes_objects_recorded_for_another_stage_with_the_same_label() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("collide").await.unwrap();
    // Project `rel-x` stage `y-full` and project `rel-x-y` stage `full`: the old default gave
    // both the discriminator `rel-x-y-full`.
    let theirs = manifest("rel-x-y-full", &config_maps(&ns, 2, "theirs"));
    deploy(plane, owned_by("rel-x-y/full"), &theirs, apply_only())
        .await
        .unwrap();
    let ours_yaml =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: ours, namespace: {ns}}}\n");
    let ours = manifest("rel-x-y-full", &ours_yaml);
    let done = deploy(plane, owned_by("rel-x/y-full"), &ours, with_prune())
        .await
        .unwrap();
    assert!(done.succeeded());
    assert_eq!(
        keep_of(&done, "cm-0"),
        Some(Keep::OwnedElsewhere {
            recorded: "rel-x-y/full".to_owned(),
            ours: Some("rel-x/y-full".to_owned()),
        })
    );
    assert!(exists(plane, "cm", &ns, "cm-0") && exists(plane, "cm", &ns, "cm-1"));

    // Not even --force-prune, nor a delete of the whole stage, removes them.
    let mut force = owned_by("rel-x/y-full");
    force.force_prune = true;
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), force);
    let inventory = deployer.owned(&ours, &|_| {}).await.unwrap();
    let deletions = deployer.delete(&inventory.objects, &|_| {}).await.unwrap();
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    assert_eq!(deletions[0].id.name(), "ours");
    assert!(exists(plane, "cm", &ns, "cm-0") && exists(plane, "cm", &ns, "cm-1"));
}

#[tokio::test]
async fn objects_of_the_legacy_default_label_are_relabelled_and_still_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("legacy").await.unwrap();
    // Written by an earlier capstan: label `shop-full`, no ownership record.
    let old = manifest("shop-full", &config_maps(&ns, 3, "v"));
    deploy(plane, Options::default(), &old, apply_only())
        .await
        .unwrap();

    let mut options = owned_by("shop/full");
    options.legacy_discriminator = Some("shop-full".to_owned());
    let new = manifest("shop.full", &config_maps(&ns, 2, "v"));
    let done = deploy(plane, options.clone(), &new, with_prune())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(done.plan.count(Action::Update), 2, "migrated on write");
    assert_eq!(keep_of(&done, "cm-2"), None);
    assert!(
        !exists(plane, "cm", &ns, "cm-2"),
        "the legacy orphan is pruned"
    );
    let label = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "cm",
            "cm-0",
            "-o",
            "jsonpath={.metadata.labels}{.metadata.annotations}",
        ],
    );
    assert!(
        label.contains(r#""capstan.io/discriminator":"shop.full""#),
        "{label}"
    );
    assert!(
        label.contains(r#""capstan.io/owner":"shop/full""#),
        "{label}"
    );

    let again = deploy(plane, options, &new, with_prune()).await.unwrap();
    assert_eq!(again.plan.count(Action::Unchanged), 2);
}

#[tokio::test]
async fn a_legacy_label_that_another_stage_could_have_written_is_kept() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("ambiguous").await.unwrap();
    let old = manifest("rel-x-y-full", &config_maps(&ns, 2, "v"));
    deploy(plane, Options::default(), &old, apply_only())
        .await
        .unwrap();
    let mut options = owned_by("rel-x/y-full");
    options.legacy_discriminator = Some("rel-x-y-full".to_owned());
    let new = manifest("rel-x.y-full", &config_maps(&ns, 1, "v"));
    let done = deploy(plane, options, &new, with_prune()).await.unwrap();
    assert_eq!(
        keep_of(&done, "cm-1"),
        Some(Keep::AmbiguousLegacyLabel {
            value: "rel-x-y-full".to_owned()
        })
    );
    assert!(exists(plane, "cm", &ns, "cm-1"));
}

fn namespace_stage(ns: &str, with_namespace: bool, configmaps: usize) -> String {
    let mut yaml = String::new();
    if with_namespace {
        yaml.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"
        ));
    }
    yaml.push_str(&config_maps(ns, configmaps, "v"));
    yaml
}

#[tokio::test]
async fn a_namespace_holding_objects_that_stay_is_never_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = format!("cascade-{}", std::process::id());
    let full = manifest("cascade", &namespace_stage(&ns, true, 1));
    deploy(plane, Options::default(), &full, apply_only())
        .await
        .unwrap();
    kubectl(plane, &["-n", &ns, "create", "cm", "by-hand"]);
    kubectl(
        plane,
        &[
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "also",
            "--from-literal=k=v",
        ],
    );

    // The stage drops its Namespace and everything in it.
    let rest = plane.create_namespace("cascade-rest").await.unwrap();
    let empty_but_label = manifest("cascade", &config_maps(&rest, 1, "v"));
    let done = deploy(plane, Options::default(), &empty_but_label, with_prune())
        .await
        .unwrap();
    let holds = vec![
        ObjectId::new("v1", "ConfigMap", Some(&ns), "by-hand"),
        ObjectId::new("v1", "Secret", Some(&ns), "also"),
    ];
    let Some(Keep::NamespaceNotEmpty { holds: named, more }) = keep_of(&done, &ns) else {
        panic!("{:?}", done.plan.orphans());
    };
    let mut named_sorted = named.clone();
    named_sorted.sort();
    let mut expected = holds.clone();
    expected.sort();
    assert_eq!((named_sorted, more), (expected, 0));
    assert_eq!(
        keep_of(&done, "cm-0"),
        None,
        "its own objects are still pruned"
    );
    assert!(exists(plane, "cm", &ns, "by-hand"));

    // --force-prune does not override it; --force-cascade-delete does.
    let mut force = Options::default();
    force.force_prune = true;
    let done = deploy(plane, force, &empty_but_label, with_prune())
        .await
        .unwrap();
    assert!(matches!(
        keep_of(&done, &ns),
        Some(Keep::NamespaceNotEmpty { .. })
    ));
    let mut cascade = Options::default();
    cascade.force_cascade = true;
    let done = deploy(plane, cascade, &empty_but_label, with_prune())
        .await
        .unwrap();
    assert_eq!(keep_of(&done, &ns), None);
}

#[tokio::test]
async fn a_namespace_holding_only_what_goes_with_it_is_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = format!("goes-{}", std::process::id());
    let full = manifest("goes", &namespace_stage(&ns, true, 2));
    deploy(plane, Options::default(), &full, apply_only())
        .await
        .unwrap();
    // The cluster's own furniture (the default ServiceAccount and its token, kube-root-ca.crt)
    // goes with the namespace without anybody missing it.
    let elsewhere = plane.create_namespace("goes-rest").await.unwrap();
    let rest = manifest("goes", &config_maps(&elsewhere, 1, "v"));
    let done = deploy(plane, Options::default(), &rest, with_prune())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    assert_eq!(keep_of(&done, &ns), None, "{:?}", done.plan.orphans());
    let deleted = done.prune.unwrap().unwrap();
    assert!(deleted.iter().any(|d| d.id.is_namespace() && d.deleted()));
}

fn crd(group: &str) -> String {
    format!(
        r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: widgets.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"#
    )
}

#[tokio::test]
async fn a_crd_whose_custom_resources_stay_is_never_pruned() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("crdcascade").await.unwrap();
    let group = format!("{ns}.example.com");
    let widget = |name: &str| {
        format!(
            "apiVersion: {group}/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: {ns}}}\n"
        )
    };
    let stage = manifest(
        "crdcascade",
        &format!("{}---\n{}", crd(&group), widget("mine")),
    );
    deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let path = std::env::temp_dir().join(format!("capstan-widget-{ns}.yaml"));
    std::fs::write(&path, widget("by-hand")).unwrap();
    kubectl(plane, &["create", "-f", path.to_str().unwrap()]);
    std::fs::remove_file(&path).unwrap();

    let other =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: rest, namespace: {ns}}}\n");
    let remaining = manifest("crdcascade", &other);
    let done = deploy(plane, Options::default(), &remaining, with_prune())
        .await
        .unwrap();
    let crd_name = format!("widgets.{group}");
    assert_eq!(
        keep_of(&done, &crd_name),
        Some(Keep::DefinitionInUse {
            holds: vec![ObjectId::new(
                &format!("{group}/v1"),
                "Widget",
                Some(&ns),
                "by-hand"
            )],
            more: 0,
        })
    );
    assert_eq!(
        keep_of(&done, "mine"),
        None,
        "the stage's own resource is pruned"
    );
    assert!(exists(plane, "widgets", &ns, "by-hand"));

    // Once nothing but the stage's own resources would go with it, the CRD is pruned too.
    kubectl(plane, &["-n", &ns, "delete", "widgets", "by-hand"]);
    let done = deploy(plane, Options::default(), &remaining, with_prune())
        .await
        .unwrap();
    assert!(done.succeeded(), "{done:?}");
    let deleted = done.prune.unwrap().unwrap();
    assert!(
        deleted.iter().any(|d| d.id.is_crd() && d.deleted()),
        "{deleted:?}"
    );
}

#[tokio::test]
async fn a_deletion_counts_only_what_this_run_deleted() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("counted").await.unwrap();
    let stage = manifest("counted", &config_maps(&ns, 3, "v"));
    deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), Options::default());
    let inventory = deployer.owned(&stage, &|_| {}).await.unwrap();
    let first = deployer.delete(&inventory.objects, &|_| {}).await.unwrap();
    assert_eq!(first.iter().filter(|d| d.deleted()).count(), 3);
    // A second run working from the same scan (a race) finds them gone: it deleted nothing.
    let second = deployer.delete(&inventory.objects, &|_| {}).await.unwrap();
    assert!(
        second
            .iter()
            .all(|d| matches!(d.result, Ok(Removal::AlreadyGone))),
        "{second:?}"
    );
}

#[tokio::test]
async fn an_object_made_by_hand_is_adopted_only_when_asked() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("adopt").await.unwrap();
    kubectl(
        plane,
        &["-n", &ns, "create", "cm", "cm-0", "--from-literal=key=v"],
    );
    let stage = manifest("adopt", &config_maps(&ns, 2, "v"));
    let done = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    let errors: Vec<String> = done.plan.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [format!(
            "ConfigMap {ns}/cm-0: exists but was never applied by capstan (managed by \
             kubectl-create); adopting it would make the stage's prune and delete go for it"
        )]
    );
    assert!(!exists(plane, "cm", &ns, "cm-1"), "nothing is written");

    let mut adopt = Options::default();
    adopt.adopt = true;
    let done = deploy(plane, adopt, &stage, apply_only()).await.unwrap();
    assert!(done.succeeded());
    let adopted = &done.plan.objects()[0];
    assert_eq!(adopted.action(), Action::Adopt);
    assert_eq!(adopted.owners(), ["kubectl-create"]);
    let again = deploy(plane, Options::default(), &stage, apply_only())
        .await
        .unwrap();
    assert_eq!(
        again.plan.count(Action::Unchanged),
        2,
        "adopted objects are capstan's"
    );
}
