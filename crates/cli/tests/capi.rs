//! `capstan capi scale` and `capstan capi status` end to end on the real control plane, with
//! ClusterAPI's CRDs deployed by capstan itself.

mod common;

use capstan_testenv::ControlPlane;
use common::{on_plane, shared_crds};
use serde_json::Value;

const STAGE: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: capi-cli}
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: Cluster
metadata: {name: shop, namespace: capi-cli}
spec: {}
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: md-0
  namespace: capi-cli
  labels: {cluster.x-k8s.io/cluster-name: shop}
spec:
  clusterName: shop
  replicas: 2
  selector: {matchLabels: {cluster.x-k8s.io/deployment-name: md-0}}
  template:
    metadata: {labels: {cluster.x-k8s.io/deployment-name: md-0}}
    spec:
      clusterName: shop
      bootstrap: {dataSecretName: bootstrap}
      infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: HCloudMachineTemplate, name: workers}
";

const MACHINE: &str = "\
apiVersion: cluster.x-k8s.io/v1beta1
kind: Machine
metadata:
  name: m-0
  namespace: capi-cli
  labels: {cluster.x-k8s.io/cluster-name: shop, cluster.x-k8s.io/deployment-name: md-0, cluster.x-k8s.io/set-name: md-0-abc}
spec:
  clusterName: shop
  bootstrap: {dataSecretName: bootstrap}
  infrastructureRef: {apiVersion: infrastructure.cluster.x-k8s.io/v1beta1, kind: HCloudMachine, name: m-0}
---
apiVersion: v1
kind: Node
metadata:
  name: capi-cli-n0
  annotations: {cluster.x-k8s.io/machine: m-0, cluster.x-k8s.io/cluster-namespace: capi-cli}
";

fn json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{error}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[tokio::test]
async fn scale_says_where_git_holds_the_count_and_status_gates_on_readiness() {
    let plane = ControlPlane::shared().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capstan = |args: &str| {
        on_plane(
            plane,
            dir.path(),
            &args.split_whitespace().collect::<Vec<_>>(),
        )
    };
    let Some(crds) = shared_crds("cluster-api-v1.5.0") else {
        return;
    };
    let deployed = on_plane(
        plane,
        dir.path(),
        &[
            "deploy",
            "-f",
            crds.to_str().unwrap(),
            "--discriminator",
            "capi-crds",
            "--yes",
        ],
    );
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    std::fs::write(dir.path().join("stage.yaml"), STAGE).unwrap();
    let deployed = capstan("deploy -f stage.yaml --discriminator capi-cli --yes");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );

    let scaled = capstan("capi scale md/md-0 -n capi-cli --by +1 -f stage.yaml -o json");
    assert!(
        scaled.status.success(),
        "{}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let report = json(&scaled);
    assert_eq!(report["object"]["kind"], "MachineDeployment");
    assert_eq!(
        (&report["from"], &report["to"], &report["dryRun"]),
        (&Value::from(2), &Value::from(3), &Value::from(false))
    );
    assert_eq!(report["manifest"]["file"], "stage.yaml");
    assert_eq!(report["manifest"]["field"], "spec.replicas");
    assert_eq!(report["manifest"]["replicas"], 2);
    assert!(report["requests"].as_u64().unwrap() > 0);

    let text = capstan("capi scale md/md-0 -n capi-cli --replicas 5 --dry-run -f stage.yaml");
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(
        said.contains("replicas 3 -> 5 (dry run: checked, not changed)"),
        "{said}"
    );
    assert!(
        said.contains("git: `spec.replicas` of the object at stage.yaml:"),
        "{said}"
    );

    let written = capstan("capi scale md/md-0 -n capi-cli --replicas 4 -f stage.yaml --write-back");
    assert!(
        written.status.success(),
        "{}",
        String::from_utf8_lossy(&written.stderr)
    );
    assert!(
        String::from_utf8_lossy(&written.stdout)
            .contains("git: set `spec.replicas` to 4 in stage.yaml:")
    );
    let file = std::fs::read_to_string(dir.path().join("stage.yaml")).unwrap();
    assert_eq!(
        file,
        STAGE.replace("  replicas: 2\n", "  replicas: 4\n"),
        "only the count changed"
    );

    let refused = capstan("capi scale md/md-0 -n capi-cli --by -9");
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr)
            .contains("-9 replicas from 4 would leave fewer than none")
    );

    // Nothing has set the objects' conditions: not ready yet, so the exit code is 1.
    let status = capstan("capi status shop -n capi-cli -o json");
    assert_eq!(
        status.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let report = json(&status);
    assert_eq!(report["healthy"], false);
    assert_eq!(report["items"][0]["label"], "Cluster/shop");
    assert_eq!(report["items"][0]["children"][0]["label"], "Workers");
    assert_eq!(
        report["items"][0]["children"][0]["children"][0]["object"]["name"],
        "md-0"
    );
    let table = capstan("capi status -n capi-cli");
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("└─Workers"), "{table}");
    assert!(table.contains("  └─MachineDeployment/md-0"), "{table}");
    let missing = capstan("capi status nope -n capi-cli -o json");
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        json(&missing)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no Cluster nope in namespace capi-cli")
    );

    std::fs::write(dir.path().join("machine.yaml"), MACHINE).unwrap();
    let deployed = capstan("deploy -f machine.yaml --discriminator capi-cli-m --yes");
    assert!(
        deployed.status.success(),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let checked = capstan("node remove capi-cli-n0 --dry-run");
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(
        said.contains("node/capi-cli-n0: cluster.x-k8s.io/Machine capi-cli/m-0 (found by its cluster.x-k8s.io/machine annotation) marked cluster.x-k8s.io/delete-machine; cluster.x-k8s.io/MachineDeployment capi-cli/md-0 scaled 4 -> 3 (server dry run)"),
        "{said}{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let would = capstan("node replace capi-cli-n0 --dry-run");
    assert!(String::from_utf8_lossy(&would.stdout).contains(
        "Machine m-0 (found by its cluster.x-k8s.io/machine annotation) would be deleted (dry run: nothing deleted)"
    ));
    let removed = json(&capstan("node remove capi-cli-n0 -o json"));
    assert_eq!(
        (
            &removed["route"],
            &removed["owner"]["from"],
            &removed["owner"]["to"]
        ),
        (&Value::from("annotation"), &Value::from(4), &Value::from(3))
    );
    assert_eq!(removed["machine"]["name"], "m-0");
    let replaced = json(&capstan("node replace capi-cli-n0 -o json"));
    assert_eq!(replaced["machine"]["name"], "m-0");
    assert_eq!(replaced["replacement"], Value::Null);
    assert!(replaced["requests"].as_u64().unwrap() > 0);
}
