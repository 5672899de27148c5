//! `capstan node cordon|uncordon|drain` end to end: kubectl's lines, the flag that overrides each
//! blocker, and the exit codes.

mod common;

use capstan_testenv::ControlPlane;
use common::{exited, node_with_pod, on_plane, text};

#[tokio::test]
async fn a_blocked_drain_names_the_overriding_flag_and_the_forced_one_evicts() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("node").await.unwrap();
    let node = format!("{ns}-n");
    node_with_pod(plane, &ns, &node, "bare");
    let dir = tempfile::TempDir::new().unwrap();
    let run = |args: &[&str]| on_plane(plane, dir.path(), args);

    let blocked = exited(2, run(&["node", "drain", &node, "--grace-period", "0"]));
    assert_eq!(text(&blocked.stdout), format!("node/{node} cordoned\n"));
    let stderr = text(&blocked.stderr);
    assert!(
        stderr.contains(&format!(
            "error: node/{node}: cannot delete Pods that declare no controller \
             (use --force to override): {ns}/bare\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "error: unable to drain node {node:?}: node `{node}` was not drained: 1 pod(s) \
             block it, so none was evicted\nThere are pending nodes to be drained:\n {node}\n"
        )),
        "{stderr}"
    );

    let drained = exited(
        0,
        run(&["node", "drain", &node, "--force", "--grace-period", "0"]),
    );
    assert_eq!(
        text(&drained.stdout),
        format!(
            "node/{node} already cordoned\nevicting pod {ns}/bare\npod/bare evicted\nnode/{node} drained\n"
        )
    );
    assert_eq!(
        text(&drained.stderr),
        format!("Warning: node/{node}: deleting Pods that declare no controller: {ns}/bare\n")
    );
}

#[tokio::test]
async fn cordon_and_uncordon_say_what_they_did_and_what_already_was() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("cordon").await.unwrap();
    let node = format!("{ns}-n");
    node_with_pod(plane, &ns, &node, "bare");
    let dir = tempfile::TempDir::new().unwrap();
    let run = |args: &[&str]| text(&exited(0, on_plane(plane, dir.path(), args)).stdout);

    assert_eq!(
        run(&["node", "cordon", &node, "--dry-run"]),
        format!("node/{node} cordoned (server dry run)\n")
    );
    assert_eq!(
        run(&["node", "cordon", &node]),
        format!("node/{node} cordoned\n")
    );
    assert_eq!(
        run(&["node", "cordon", &node]),
        format!("node/{node} already cordoned\n")
    );
    assert_eq!(
        run(&["node", "uncordon", &node]),
        format!("node/{node} uncordoned\n")
    );
    assert_eq!(
        run(&["node", "uncordon", &node]),
        format!("node/{node} already uncordoned\n")
    );
    let missing = exited(
        2,
        on_plane(plane, dir.path(), &["node", "cordon", "absent-node"]),
    );
    assert_eq!(
        text(&missing.stderr),
        "error: unable to cordon node \"absent-node\": node `absent-node` not found\n"
    );
}
