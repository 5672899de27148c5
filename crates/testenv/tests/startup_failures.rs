//! When a control plane cannot start, the error says why with the components' own words, and
//! nothing is left behind. Fake binaries play the broken components.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use capstan_testenv::{Binaries, ControlPlane, Error, Options};

/// Writes an executable shell script that answers `--version` like kube-apiserver 1.20 and
/// `--help` like nothing in particular, and otherwise runs `body`.
fn fake(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\ncase \"$1\" in\n--version) echo 'Kubernetes v1.20.2'; exit 0 ;;\n--help) exit 0 ;;\nesac\n{body}\n"
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Starts a control plane whose fake kube-apiserver runs `apiserver_body` next to a fake etcd
/// that just waits, checks that the failed start left nothing behind, and returns its error.
async fn failed_start(apiserver_body: &str) -> Error {
    let bins = tempfile::tempdir().unwrap();
    failed_start_in(bins.path(), apiserver_body).await
}

/// [`failed_start`] with the fake binaries in `bins`.
async fn failed_start_in(bins: &Path, apiserver_body: &str) -> Error {
    let base = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.binaries = Some(Binaries::new(
        fake(bins, "etcd", "exec sleep 60"),
        fake(bins, "kube-apiserver", apiserver_body),
    ));
    options.timeout = Duration::from_secs(2);
    options.base_dir = Some(base.path().to_path_buf());
    let error = ControlPlane::start(options).await.unwrap_err();
    assert_nothing_left(base.path());
    error
}

fn assert_nothing_left(base_dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(base_dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn component_that_exits_fails_start_with_its_log() {
    let error =
        failed_start("echo 'E1126 unable to load server certificate: boom' >&2; exit 3").await;
    assert!(
        matches!(
            error,
            Error::Exited {
                component: "kube-apiserver",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("kube-apiserver exited while starting (exit status: 3)"),
        "{message}"
    );
    assert!(
        message.contains("kube-apiserver: E1126 unable to load server certificate: boom"),
        "{message}"
    );
}

#[tokio::test]
async fn component_that_never_serves_fails_start_after_the_timeout() {
    let message = failed_start("echo 'still waiting for etcd'; exec sleep 60")
        .await
        .to_string();
    assert!(
        message.starts_with("control plane not ready after 2s: kube-apiserver /readyz"),
        "{message}"
    );
    assert!(
        message.contains("kube-apiserver: still waiting for etcd"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_binary_is_reported_before_anything_starts() {
    let base = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.binaries = Some(Binaries::new(
        "/nonexistent/etcd",
        "/nonexistent/kube-apiserver",
    ));
    options.base_dir = Some(base.path().to_path_buf());
    let error = ControlPlane::start(options).await.unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot run `/nonexistent/kube-apiserver`"),
        "{error}"
    );
    assert_nothing_left(base.path());
}

#[tokio::test]
async fn lost_port_race_is_retried_on_fresh_ports() {
    let bins = tempfile::tempdir().unwrap();
    let attempts = bins.path().join("attempts");
    let body = format!(
        "echo \"$@\" >> {}; echo 'listen tcp 127.0.0.1:6443: bind: address already in use' >&2; exit 1",
        attempts.display()
    );
    let error = failed_start_in(bins.path(), &body).await;
    assert!(matches!(error, Error::Exited { .. }), "{error:?}");

    let attempts = std::fs::read_to_string(attempts).unwrap();
    let ports: std::collections::HashSet<_> = attempts
        .lines()
        .map(|line| {
            line.split_whitespace()
                .find(|arg| arg.starts_with("--secure-port="))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(attempts.lines().count(), 3, "three attempts: {attempts}");
    assert_eq!(ports.len(), 3, "each on other ports: {ports:?}");
}
