//! A cluster's state as one tree, in the shape of `clusterctl describe cluster`, with a verdict
//! CI can gate on.
//!
//! Every row shows its object's readiness condition: `Ready`, or `Available` for objects served
//! at v1beta2, which dropped `Ready` from most kinds. Machines of one parent whose conditions
//! agree (status, severity, reason) fold into one row, as clusterctl folds them.

use capstan_kube::{Condition, condition};
use capstan_manifest::ObjectId;
use serde::Serialize;
use serde_json::Value;

const CLUSTER_NAME_LABEL: &str = "cluster.x-k8s.io/cluster-name";
const CONTROL_PLANE_LABEL: &str = "cluster.x-k8s.io/control-plane";
const DEPLOYMENT_NAME_LABEL: &str = "cluster.x-k8s.io/deployment-name";
const SET_NAME_LABEL: &str = "cluster.x-k8s.io/set-name";

/// The live objects of one namespace that a tree is built from, as JSON with `apiVersion` and
/// `kind`.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Inventory {
    /// Clusters.
    pub clusters: Vec<Value>,
    /// Control planes (KubeadmControlPlane or another provider's).
    pub control_planes: Vec<Value>,
    /// MachineDeployments.
    pub machine_deployments: Vec<Value>,
    /// MachineSets.
    pub machine_sets: Vec<Value>,
    /// Machines.
    pub machines: Vec<Value>,
    /// MachineHealthChecks.
    pub health_checks: Vec<Value>,
}

/// How the tree is laid out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeOptions {
    /// Show MachineSets between MachineDeployments and their Machines.
    pub machine_sets: bool,
    /// One row per Machine, even where their conditions agree.
    pub no_grouping: bool,
}

/// `True`, `False` or `Unknown`, as a condition says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The condition holds.
    True,
    /// It does not.
    False,
    /// Nobody knows yet.
    Unknown,
}

/// One row of the tree: an object, a folded group of Machines, or a heading (`Workers`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Row {
    /// What the row shows, as clusterctl names it: `Cluster/shop`,
    /// `ControlPlane - KubeadmControlPlane/shop-cp`, `Workers`, `3 Machines...`.
    pub label: String,
    /// The object; none for headings and groups.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectId>,
    /// The readiness condition's status; none when the object has none.
    pub ready: Option<State>,
    /// Its severity, when ClusterAPI gives one.
    pub severity: Option<String>,
    /// Its reason.
    pub reason: Option<String>,
    /// Its message.
    pub message: Option<String>,
    /// When it last changed (RFC 3339).
    pub since: Option<String>,
    /// Whether the object is being deleted.
    pub deleting: bool,
    /// The Machines a group row stands for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<String>,
    /// The rows below.
    pub children: Vec<Row>,
}

/// Whether a tree is all ready, for an exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every object's readiness condition is `True`.
    Healthy,
    /// Some object's is `False` or `Unknown`, or missing.
    Degraded,
}

impl Row {
    fn heading(label: &str, children: Vec<Row>) -> Self {
        Self {
            label: label.to_owned(),
            object: None,
            ready: None,
            severity: None,
            reason: None,
            message: None,
            since: None,
            deleting: false,
            members: Vec::new(),
            children,
        }
    }

    fn of(object: &Value, prefix: Option<&str>) -> Self {
        let id = identity(object);
        let label = match prefix {
            Some(prefix) => format!("{prefix} - {}/{}", id.kind(), id.name()),
            None => format!("{}/{}", id.kind(), id.name()),
        };
        let ready = condition(object, "Ready").or_else(|| condition(object, "Available"));
        let mut row = Self::heading(&label, Vec::new());
        row.object = Some(id);
        row.deleting = !object["metadata"]["deletionTimestamp"].is_null();
        if let Some(ready) = ready {
            row.set_condition(ready);
        }
        row
    }

    fn set_condition(&mut self, condition: Condition<'_>) {
        self.ready = Some(match condition.status {
            "True" => State::True,
            "False" => State::False,
            _ => State::Unknown,
        });
        self.severity = condition.severity.map(str::to_owned);
        self.reason = condition.reason.map(str::to_owned);
        self.message = condition.message.map(str::to_owned);
        self.since = condition.last_transition_time.map(str::to_owned);
    }

    /// Whether this row and every row below it are ready. An object without a readiness
    /// condition is not: nothing has said it is ready yet.
    pub fn verdict(&self) -> Verdict {
        let heading = self.object.is_none() && self.members.is_empty();
        let own = heading || self.ready == Some(State::True);
        if own
            && self
                .children
                .iter()
                .all(|row| row.verdict() == Verdict::Healthy)
        {
            Verdict::Healthy
        } else {
            Verdict::Degraded
        }
    }
}

/// The tree of `cluster` (a name in the inventory's namespace): the Cluster, its control plane
/// and Machines, its workers (MachineDeployments, optionally MachineSets, and their Machines;
/// Machines of neither under `Other`) and its MachineHealthChecks. `None` when the inventory
/// holds no such Cluster.
pub fn tree(inventory: &Inventory, cluster: &str, options: TreeOptions) -> Option<Row> {
    let of_cluster = |objects: &'_ [Value]| -> Vec<Value> {
        let mut mine: Vec<Value> = objects
            .iter()
            .filter(|object| {
                object["metadata"]["labels"][CLUSTER_NAME_LABEL] == cluster
                    || object["spec"]["clusterName"] == cluster
            })
            .cloned()
            .collect();
        mine.sort_by(|a, b| name(a).cmp(name(b)));
        mine
    };
    let root = inventory
        .clusters
        .iter()
        .find(|object| name(object) == cluster)?;
    let machines = of_cluster(&inventory.machines);
    let group = |filter: &dyn Fn(&Value) -> bool| -> Vec<Row> {
        let members: Vec<&Value> = machines.iter().filter(|machine| filter(machine)).collect();
        fold(&members, options.no_grouping)
    };
    let label = |machine: &Value, key: &str| {
        machine["metadata"]["labels"][key]
            .as_str()
            .map(str::to_owned)
    };
    let mut row = Row::of(root, None);
    let control_plane_name = root["spec"]["controlPlaneRef"]["name"].as_str();
    for control_plane in inventory
        .control_planes
        .iter()
        .filter(|object| Some(name(object)) == control_plane_name)
    {
        let mut cp = Row::of(control_plane, Some("ControlPlane"));
        cp.children = group(&|machine| label(machine, CONTROL_PLANE_LABEL).is_some());
        row.children.push(cp);
    }
    let mut workers = Vec::new();
    let sets = of_cluster(&inventory.machine_sets);
    for deployment in of_cluster(&inventory.machine_deployments) {
        let deployment_name = name(&deployment).to_owned();
        let mut md = Row::of(&deployment, None);
        let in_deployment = |machine: &Value| {
            label(machine, DEPLOYMENT_NAME_LABEL).as_deref() == Some(&deployment_name)
        };
        if options.machine_sets {
            for set in sets.iter().filter(|set| in_deployment(set)) {
                let set_name = name(set).to_owned();
                let mut ms = Row::of(set, None);
                ms.children =
                    group(&|machine| label(machine, SET_NAME_LABEL).as_deref() == Some(&set_name));
                md.children.push(ms);
            }
        } else {
            md.children = group(&in_deployment);
        }
        workers.push(md);
    }
    let other = group(&|machine| {
        label(machine, CONTROL_PLANE_LABEL).is_none()
            && label(machine, DEPLOYMENT_NAME_LABEL).is_none()
    });
    if !other.is_empty() {
        workers.push(Row::heading("Other", other));
    }
    if !workers.is_empty() {
        row.children.push(Row::heading("Workers", workers));
    }
    let checks: Vec<Row> = of_cluster(&inventory.health_checks)
        .iter()
        .map(|check| {
            let mut row = Row::of(check, None);
            if let Some(allowed) = condition(check, "RemediationAllowed") {
                row.set_condition(allowed);
            }
            row
        })
        .collect();
    if !checks.is_empty() {
        row.children
            .push(Row::heading("MachineHealthChecks", checks));
    }
    Some(row)
}

/// Machine rows, folding those whose conditions agree into `N Machines...` unless told not to.
fn fold(machines: &[&Value], no_grouping: bool) -> Vec<Row> {
    let rows: Vec<Row> = machines
        .iter()
        .map(|machine| Row::of(machine, None))
        .collect();
    if no_grouping {
        return rows;
    }
    let mut folded: Vec<Row> = Vec::new();
    for row in rows {
        let same = |other: &Row| {
            !row.deleting
                && !other.deleting
                && (other.ready, &other.severity, &other.reason)
                    == (row.ready, &row.severity, &row.reason)
        };
        match folded.iter_mut().find(|other| same(other)) {
            Some(group) => {
                if group.members.is_empty() {
                    group.members.push(group_name(group));
                    group.object = None;
                }
                group.members.push(group_name(&row));
                group.since = group.since.take().max(row.since);
                let shown: Vec<&str> = group.members.iter().take(2).map(String::as_str).collect();
                let more = if group.members.len() > 2 { ", ..." } else { "" };
                group.label = format!("{} Machines...", group.members.len());
                group.message = Some(format!("See {}{more}", shown.join(", ")));
            }
            None => folded.push(row),
        }
    }
    folded
}

fn group_name(row: &Row) -> String {
    row.object
        .as_ref()
        .map_or_else(|| row.label.clone(), |id| id.name().to_owned())
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn identity(object: &Value) -> ObjectId {
    ObjectId::new(
        object["apiVersion"].as_str().unwrap_or_default(),
        object["kind"].as_str().unwrap_or_default(),
        object["metadata"]["namespace"].as_str(),
        name(object),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ready(status: &str, reason: Option<&str>) -> Value {
        json!([{"type": "Ready", "status": status, "reason": reason,
                "severity": if status == "True" { "" } else { "Warning" },
                "lastTransitionTime": "2026-12-02T10:00:00Z"}])
    }

    fn object(kind: &str, name: &str, labels: Value, conditions: Value) -> Value {
        let group = match kind {
            "KubeadmControlPlane" => "controlplane.cluster.x-k8s.io/v1beta1",
            _ => "cluster.x-k8s.io/v1beta1",
        };
        json!({
            "apiVersion": group, "kind": kind,
            "metadata": {"name": name, "namespace": "fleet", "labels": labels},
            "spec": {"clusterName": "shop", "controlPlaneRef": {"name": "shop-cp"}},
            "status": {"conditions": conditions}
        })
    }

    fn machine(name: &str, role: (&str, &str), status: &str) -> Value {
        let mut labels = json!({CLUSTER_NAME_LABEL: "shop"});
        labels[role.0] = json!(role.1);
        object("Machine", name, labels, ready(status, None))
    }

    fn inventory() -> Inventory {
        Inventory {
            clusters: vec![object("Cluster", "shop", json!({}), ready("True", None))],
            control_planes: vec![object(
                "KubeadmControlPlane",
                "shop-cp",
                json!({}),
                ready("True", None),
            )],
            machine_deployments: vec![object(
                "MachineDeployment",
                "md-0",
                json!({CLUSTER_NAME_LABEL: "shop"}),
                ready("False", Some("WaitingForAvailableMachines")),
            )],
            machine_sets: Vec::new(),
            machines: vec![
                machine("cp-a", (CONTROL_PLANE_LABEL, ""), "True"),
                machine("cp-b", (CONTROL_PLANE_LABEL, ""), "True"),
                machine("cp-c", (CONTROL_PLANE_LABEL, ""), "True"),
                machine("md-0-x", (DEPLOYMENT_NAME_LABEL, "md-0"), "True"),
                machine("md-0-y", (DEPLOYMENT_NAME_LABEL, "md-0"), "False"),
                machine("stray", ("unrelated", "x"), "True"),
            ],
            health_checks: Vec::new(),
        }
    }

    fn labels(row: &Row, depth: usize, out: &mut Vec<String>) {
        out.push(format!("{}{}", "  ".repeat(depth), row.label));
        for child in &row.children {
            labels(child, depth + 1, out);
        }
    }

    fn shape(row: &Row) -> Vec<String> {
        let mut out = Vec::new();
        labels(row, 0, &mut out);
        out
    }

    #[test]
    fn the_tree_has_clusterctls_shape_and_folds_agreeing_machines() {
        let row = tree(&inventory(), "shop", TreeOptions::default()).unwrap();
        assert_eq!(
            shape(&row),
            [
                "Cluster/shop",
                "  ControlPlane - KubeadmControlPlane/shop-cp",
                "    3 Machines...",
                "  Workers",
                "    MachineDeployment/md-0",
                "      Machine/md-0-x",
                "      Machine/md-0-y",
                "    Other",
                "      Machine/stray",
            ]
        );
        let folded = &row.children[0].children[0];
        assert_eq!(folded.members, ["cp-a", "cp-b", "cp-c"]);
        assert_eq!(folded.message.as_deref(), Some("See cp-a, cp-b, ..."));
        assert_eq!(row.verdict(), Verdict::Degraded);
    }

    #[test]
    fn without_grouping_every_machine_has_its_row() {
        let options = TreeOptions {
            no_grouping: true,
            ..TreeOptions::default()
        };
        let row = tree(&inventory(), "shop", options).unwrap();
        assert_eq!(row.children[0].children.len(), 3);
    }

    #[test]
    fn a_row_carries_the_condition_and_the_verdict_follows_every_row() {
        let mut all_ready = inventory();
        all_ready.machine_deployments[0]["status"]["conditions"] = ready("True", None);
        all_ready
            .machines
            .retain(|machine| name(machine) != "md-0-y");
        let row = tree(&all_ready, "shop", TreeOptions::default()).unwrap();
        assert_eq!(row.verdict(), Verdict::Healthy);

        let row = tree(&inventory(), "shop", TreeOptions::default()).unwrap();
        let deployment = &row.children[1].children[0];
        assert_eq!(deployment.ready, Some(State::False));
        assert_eq!(deployment.severity.as_deref(), Some("Warning"));
        assert_eq!(
            deployment.reason.as_deref(),
            Some("WaitingForAvailableMachines")
        );
        assert_eq!(deployment.since.as_deref(), Some("2026-12-02T10:00:00Z"));
        assert!(tree(&inventory(), "other", TreeOptions::default()).is_none());
    }

    #[test]
    fn v1beta2_objects_are_read_by_their_available_condition() {
        let mut inventory = inventory();
        inventory.clusters[0]["status"]["conditions"] =
            json!([{"type": "Available", "status": "False", "reason": "NotAvailable"}]);
        let row = tree(&inventory, "shop", TreeOptions::default()).unwrap();
        assert_eq!(
            (row.ready, row.reason.as_deref()),
            (Some(State::False), Some("NotAvailable"))
        );
    }

    #[test]
    fn machine_sets_sit_between_deployments_and_machines_when_asked_for() {
        let mut inventory = inventory();
        let mut set = object(
            "MachineSet",
            "md-0-abc",
            json!({CLUSTER_NAME_LABEL: "shop", DEPLOYMENT_NAME_LABEL: "md-0"}),
            ready("True", None),
        );
        set["metadata"]["labels"][DEPLOYMENT_NAME_LABEL] = json!("md-0");
        inventory.machine_sets.push(set);
        for machine in &mut inventory.machines {
            if machine["metadata"]["labels"][DEPLOYMENT_NAME_LABEL] == "md-0" {
                machine["metadata"]["labels"][SET_NAME_LABEL] = json!("md-0-abc");
            }
        }
        let options = TreeOptions {
            machine_sets: true,
            ..TreeOptions::default()
        };
        let row = tree(&inventory, "shop", options).unwrap();
        let deployment = &row.children[1].children[0];
        assert_eq!(deployment.children[0].label, "MachineSet/md-0-abc");
        assert_eq!(deployment.children[0].children.len(), 2);
    }

    #[test]
    fn the_json_of_a_row_names_its_object_and_lowercase_states() {
        let row = tree(&inventory(), "shop", TreeOptions::default()).unwrap();
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(
            json["object"],
            json!({"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "namespace": "fleet", "name": "shop"})
        );
        assert_eq!(json["ready"], "true");
        assert_eq!(json["children"][1]["label"], "Workers");
        assert!(json["children"][1].get("object").is_none());
        assert_eq!(
            json["children"][0]["children"][0]["members"],
            json!(["cp-a", "cp-b", "cp-c"])
        );
    }
}
