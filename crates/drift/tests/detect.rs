//! Drift detection against the real control plane: attribution to the manager that made the
//! change, the kinds of change, and the watcher's re-check of a changed object.

use std::time::Duration;

use capstan_apply::{DeployRequest, Deployer, Options};
use capstan_drift::{ChangeKind, State, WatchEvent, WatchOptions, Watcher, detect, watch};
use capstan_manifest::{Input, Label, LoadOptions, Manifest, load};
use capstan_testenv::{ControlPlane, User};

fn manifest(discriminator: &str, ns: &str) -> Manifest {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a, namespace: {ns}}}\ndata: {{k: v, gone: v}}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: b, namespace: {ns}}}\ndata: {{k: v}}\n"
    );
    let label = Label::new(Label::DEFAULT_KEY, discriminator).unwrap();
    let input = Input::Text {
        name: "test.yaml".to_owned(),
        text,
    };
    load(&[input], &LoadOptions::with_label(label)).unwrap()
}

async fn deployed(plane: &ControlPlane, prefix: &str) -> (String, Manifest) {
    let ns = plane.create_namespace(prefix).await.unwrap();
    let stage = manifest(prefix, &ns);
    let deployer = Deployer::new(plane.client(User::Admin).unwrap(), Options::default());
    let done = deployer
        .deploy(&stage, DeployRequest::default(), &|_| {}, &mut |_| true)
        .await
        .unwrap();
    assert!(done.succeeded());
    // managedFields have one-second timestamps: edits must come later than capstan's write.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    (ns, stage)
}

fn kubectl(plane: &ControlPlane, editor: Option<&str>, args: &[&str]) {
    let mut command = plane.kubectl();
    if let Some(editor) = editor {
        command.env("KUBE_EDITOR", editor);
    }
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn forced() -> Options {
    let mut options = Options::default();
    options.force_conflicts = true;
    options
}

#[tokio::test]
async fn a_change_with_kubectl_edit_and_a_removal_are_attributed_and_classified() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "edit").await;
    // `kubectl edit` with a script for an editor: the manager is `kubectl-edit`.
    kubectl(
        plane,
        Some("sed -i s/k:\\ v/k:\\ edited/"),
        &["-n", &ns, "edit", "cm", "a"],
    );
    kubectl(
        plane,
        None,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "a",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/data/gone"}]"#,
        ],
    );
    let client = plane.client(User::Admin).unwrap();
    let report = detect(&client, &forced(), &stage, &|_| {}).await.unwrap();
    assert_eq!(report.count(State::InSync), 1);
    let a = &report.items[0];
    assert_eq!(a.state, State::Drifted);
    let fields: Vec<(&str, ChangeKind, Option<&str>)> = a
        .fields
        .iter()
        .map(|f| (f.pointer.as_str(), f.kind, f.manager.as_deref()))
        .collect();
    assert_eq!(
        fields,
        [
            ("/data/k", ChangeKind::Changed, Some("kubectl-edit")),
            ("/data/gone", ChangeKind::Removed, None),
        ],
        "{a:?}"
    );
    let edited = &a.fields[0];
    assert_eq!(edited.live.as_deref(), Some("\"edited\""));
    assert_eq!(edited.planned.as_deref(), Some("\"v\""));
    assert_eq!(edited.operation.as_deref(), Some("Update"));
}

/// The watcher's next event, within 30 seconds.
async fn next(watcher: &mut Watcher<'_>) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(30), watcher.next())
        .await
        .expect("an event within 30 s")
        .unwrap()
}

#[tokio::test]
async fn the_watcher_rechecks_only_the_object_that_changed() {
    let plane = ControlPlane::shared().await.unwrap();
    let (ns, stage) = deployed(plane, "watcher").await;
    let mut options = WatchOptions::default();
    options.options = forced();
    let client = plane.client(User::Admin).unwrap();
    let mut watcher = watch(client, &stage, options).await.unwrap();
    let WatchEvent::Checked { report, full: true } = next(&mut watcher).await else {
        panic!("the first event is the full check");
    };
    assert!(report.in_sync(), "{report:?}");
    loop {
        if let WatchEvent::Watching { .. } = next(&mut watcher).await {
            break;
        }
    }
    kubectl(
        plane,
        None,
        &[
            "-n",
            &ns,
            "patch",
            "cm",
            "b",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"k":"w"}}"#,
        ],
    );
    loop {
        if let WatchEvent::Checked { report, full } = next(&mut watcher).await {
            assert!(!full);
            let checked: Vec<&str> = report.items.iter().map(|i| i.id.name()).collect();
            assert_eq!(checked, ["b"], "{report:?}");
            assert_eq!(report.items[0].state, State::Drifted);
            break;
        }
    }
}
