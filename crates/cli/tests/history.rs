//! `capstan history`, `history show` and `rollback` end to end against the test control
//! plane: records after create, update, prune and failed deploys, none after a no-op, a
//! rollback that needs no manifests, and the inventory that narrows prune.

mod common;

use std::process::Output;

use capstan_testenv::ControlPlane;
use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A project named `prefix` (a discriminator of its own: the tests run at once) with one
/// pruning stage `app` whose history lives in the test's namespace.
struct Stage<'a> {
    plane: &'a ControlPlane,
    dir: tempfile::TempDir,
    ns: String,
}

impl Stage<'_> {
    fn write(&self, objects: &[String]) {
        std::fs::write(self.dir.path().join("app.yaml"), objects.join("---\n")).unwrap();
    }

    fn run(&self, command: &[&str], extra: &[&str]) -> Output {
        let root = self.dir.path().to_str().unwrap();
        let args: Vec<&str> = command
            .iter()
            .copied()
            .chain(["--project", root, "--stage", "app"])
            .chain(extra.iter().copied())
            .collect();
        common::on_plane(self.plane, self.dir.path(), &args)
    }

    fn json(&self, command: &[&str], extra: &[&str]) -> Value {
        let output = self.run(command, &[extra, &["-o", "json"]].concat());
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|_| panic!("{}\n{}", text(&output.stdout), text(&output.stderr)))
    }

    fn revisions(&self) -> Vec<Value> {
        self.json(&["history"], &[])["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.plane.kubectl().args(args).output().unwrap()
    }

    fn data(&self, name: &str) -> Option<String> {
        let output = self.kubectl(&[
            "-n",
            &self.ns,
            "get",
            "cm",
            name,
            "-o",
            "jsonpath={.data.k}",
        ]);
        output.status.success().then(|| text(&output.stdout))
    }
}

async fn stage<'a>(plane: &'a ControlPlane, prefix: &str) -> Stage<'a> {
    let ns = plane.create_namespace(prefix).await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("capstan.yaml"),
        format!(
            "name: {prefix}\nstateNamespace: {ns}\nstages:\n  app:\n    manifests: app.yaml\n    prune: true\n"
        ),
    )
    .unwrap();
    Stage { plane, dir, ns }
}

fn config_map(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: {ns}}}\ndata: {{k: {value}}}\n"
    )
}

fn secret(ns: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s, namespace: {ns}}}\nstringData: {{token: {value}}}\n"
    )
}

/// A CRD whose name is unique to the namespace.
fn crd(ns: &str) -> (String, String) {
    let group = format!("{ns}.example.com");
    let name = format!("widgets.{group}");
    let text = format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\n\
         metadata: {{name: {name}}}\nspec:\n  group: {group}\n  scope: Namespaced\n  \
         names: {{plural: widgets, singular: widget, kind: Widget}}\n  versions:\n  - name: v1\n    \
         served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {{type: object, \
         x-kubernetes-preserve-unknown-fields: true}}\n"
    );
    (name, text)
}

fn succeeded(output: Output) -> Output {
    common::succeeds(output)
}

#[tokio::test]
async fn history_records_deploys_and_rollback_restores_a_revision_without_its_manifests() {
    let plane = ControlPlane::shared().await.unwrap();
    let s = stage(plane, "hist").await;
    let ns = s.ns.clone();
    s.write(&[
        config_map(&ns, "one", "v1"),
        config_map(&ns, "two", "v1"),
        secret(&ns, "t0p-s3cret-value"),
    ]);
    succeeded(s.run(&["deploy"], &["--yes"]));
    let revisions = s.revisions();
    assert_eq!(revisions.len(), 1, "{revisions:?}");
    assert_eq!(revisions[0]["revision"], 1);
    assert_eq!(revisions[0]["counts"]["created"], 3);
    assert_eq!(revisions[0]["result"], "succeeded");
    assert_eq!(revisions[0]["version"], env!("CARGO_PKG_VERSION"));

    // A no-op redeploy records nothing.
    succeeded(s.run(&["deploy"], &["--yes"]));
    assert_eq!(s.revisions().len(), 1);

    // Update `one`, drop `two` (pruned), then add `three` and a CRD.
    s.write(&[
        config_map(&ns, "one", "v2"),
        secret(&ns, "t0p-s3cret-value"),
    ]);
    succeeded(s.run(&["deploy"], &["--yes"]));
    let (crd_name, crd_text) = crd(&ns);
    s.write(&[
        config_map(&ns, "one", "v2"),
        config_map(&ns, "three", "v1"),
        secret(&ns, "t0p-s3cret-value"),
        crd_text,
    ]);
    succeeded(s.run(&["deploy"], &["--yes"]));
    let revisions = s.revisions();
    assert_eq!(revisions.len(), 3, "{revisions:?}");
    assert_eq!(revisions[1]["counts"]["updated"], 1);
    assert_eq!(revisions[1]["counts"]["pruned"], 1);
    assert_eq!(revisions[2]["counts"]["created"], 2);

    // A failed deploy is recorded with its result.
    let mut broken = vec![config_map(&ns, "one", "v2")];
    broken.push(format!(
        "apiVersion: nowhere.example.com/v1\nkind: Nothing\nmetadata: {{name: x, namespace: {ns}}}\n"
    ));
    s.write(&broken);
    common::fails(s.run(&["deploy"], &["--yes"]));
    let revisions = s.revisions();
    assert_eq!(revisions.len(), 4);
    assert_eq!(revisions[3]["result"], "failed");
    assert_eq!(revisions[3]["counts"]["failed"], 1);

    let shown = s.json(&["history", "show", "1"], &[]);
    assert_eq!(shown["revision"], 1);
    assert_eq!(shown["items"].as_array().unwrap().len(), 3);
    let changes = s.json(&["history", "show", "3"], &["--diff", "1"]);
    let mut words: Vec<String> = changes["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["change"].as_str().unwrap(),
                c["object"]["name"].as_str().unwrap()
            )
        })
        .collect();
    words.sort();
    let mut expected = vec![
        format!("added {crd_name}"),
        "added three".to_owned(),
        "changed one".to_owned(),
        "removed two".to_owned(),
    ];
    expected.sort();
    assert_eq!(words, expected);

    // The manifests are gone: rollback needs only capstan.yaml and the history.
    std::fs::remove_file(s.dir.path().join("app.yaml")).unwrap();
    let rollback = s.run(&["rollback"], &["--to", "1", "--yes"]);
    let out = text(&rollback.stdout);
    assert_eq!(
        rollback.status.code(),
        Some(0),
        "{out}\n{}",
        text(&rollback.stderr)
    );
    assert!(
        out.contains(&format!("ConfigMap {ns}/two")),
        "the plan names the recreated object: {out}"
    );
    assert!(
        out.contains(&format!("ConfigMap {ns}/three")),
        "and the deleted one: {out}"
    );
    assert!(
        out.contains("a rollback keeps CRDs"),
        "the CRD is kept, with the reason: {out}"
    );
    assert!(!out.contains("t0p-s3cret-value"), "{out}");
    assert_eq!(
        s.data("one").as_deref(),
        Some("v1"),
        "updated object restored"
    );
    assert_eq!(
        s.data("two").as_deref(),
        Some("v1"),
        "pruned object recreated"
    );
    assert_eq!(s.data("three"), None, "object added since deleted");
    assert!(s.kubectl(&["get", "crd", &crd_name]).status.success());
    let secret_value = s.kubectl(&[
        "-n",
        &ns,
        "get",
        "secret",
        "s",
        "-o",
        "jsonpath={.data.token}",
    ]);
    assert_eq!(
        text(&secret_value.stdout),
        "dDBwLXMzY3JldC12YWx1ZQ==",
        "the live value matched its hash"
    );

    let revisions = s.revisions();
    assert_eq!(revisions.len(), 5);
    assert_eq!(revisions[4]["rollbackOf"], 1);
    assert_eq!(revisions[4]["result"], "succeeded");

    // Only with the flag does a rollback delete the CRD.
    succeeded(s.run(
        &["rollback"],
        &["--to", "1", "--yes", "--allow-data-deletion"],
    ));
    assert!(!s.kubectl(&["get", "crd", &crd_name]).status.success());

    // With the manifests back, diff says the live state is a rollback's.
    s.write(&[
        config_map(&ns, "one", "v2"),
        secret(&ns, "t0p-s3cret-value"),
    ]);
    let diff = s.run(&["diff"], &[]);
    assert!(
        text(&diff.stderr).contains("rolled the stage back to revision 1"),
        "{}",
        text(&diff.stderr)
    );
}

#[tokio::test]
async fn prune_scans_the_recorded_kinds_and_falls_back_to_a_full_scan_without_a_record() {
    let plane = ControlPlane::shared().await.unwrap();
    let s = stage(plane, "inventory").await;
    let ns = s.ns.clone();
    let service = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: web, namespace: {ns}}}\n\
         spec: {{ports: [{{port: 80, protocol: TCP}}]}}\n"
    );
    s.write(&[config_map(&ns, "one", "v1"), service]);
    succeeded(s.run(&["deploy"], &["--yes"]));

    // The manifests no longer use Services: the recorded inventory still finds the orphan.
    s.write(&[config_map(&ns, "one", "v1")]);
    let scoped = s.json(&["diff"], &["--prune"]);
    let full = s.json(&["diff"], &["--prune", "--full-scan"]);
    let orphans = |report: &Value| -> Vec<String> {
        report["orphans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                format!(
                    "{} {}",
                    o["object"]["kind"].as_str().unwrap(),
                    o["object"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(orphans(&scoped), ["Service web"], "{scoped}");
    assert_eq!(orphans(&full), ["Service web"]);
    let (few, many) = (
        scoped["requests"].as_u64().unwrap(),
        full["requests"].as_u64().unwrap(),
    );
    assert!(
        few < 20 && few * 3 < many,
        "scoped {few} requests, full {many}"
    );

    // A damaged record: a clear warning, and prune scans everything.
    let revision = "capstan-history.inventory.app.r1";
    succeeded(s.kubectl(&[
        "-n",
        &ns,
        "patch",
        "secret",
        revision,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"index":"bm90IGRlZmxhdGU="}}"#,
    ]));
    let deployed = s.run(&["deploy"], &["--yes", "-o", "json"]);
    let stderr = text(&deployed.stderr);
    assert_eq!(deployed.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "warning: cannot read the stage's history: the history record `{ns}/{revision}` is unreadable"
        )) && stderr.contains("scanning every resource type"),
        "{stderr}"
    );
    let report: Value = serde_json::from_slice(&deployed.stdout).unwrap();
    assert_eq!(report["pruned"][0]["object"]["name"], "web", "{report}");
    let shown = s.run(&["history", "show", "1"], &[]);
    common::fails(shown);
    let missing = s.run(&["history", "show", "9"], &[]);
    assert!(text(&common::fails(missing).stderr).contains(&format!(
        "stage inventory/app has no revision 9 in `{ns}` (it has 1, 2)"
    )),);
}
