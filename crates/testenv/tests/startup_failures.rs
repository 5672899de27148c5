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

fn options(bin_dir: &Path, apiserver_body: &str, base_dir: &Path) -> Options {
    let mut options = Options::default();
    options.binaries = Some(Binaries {
        etcd: fake(bin_dir, "etcd", "exec sleep 60"),
        kube_apiserver: fake(bin_dir, "kube-apiserver", apiserver_body),
        kube_controller_manager: None,
    });
    options.timeout = Duration::from_secs(2);
    options.base_dir = Some(base_dir.to_path_buf());
    options
}

fn assert_nothing_left(base_dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(base_dir).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn component_that_exits_fails_start_with_its_log() {
    let bins = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let body = "echo 'E1126 unable to load server certificate: boom' >&2; exit 3";
    let error = ControlPlane::start(options(bins.path(), body, base.path()))
        .await
        .unwrap_err();

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
    assert_nothing_left(base.path());
}

#[tokio::test]
async fn component_that_never_serves_fails_start_after_the_timeout() {
    let bins = tempfile::tempdir().unwrap();
    let base = tempfile::tempdir().unwrap();
    let body = "echo 'still waiting for etcd'; exec sleep 60";
    let error = ControlPlane::start(options(bins.path(), body, base.path()))
        .await
        .unwrap_err();

    let message = error.to_string();
    assert!(
        message.starts_with("control plane not ready after 2s: kube-apiserver /readyz"),
        "{message}"
    );
    assert!(
        message.contains("kube-apiserver: still waiting for etcd"),
        "{message}"
    );
    assert_nothing_left(base.path());
}

#[tokio::test]
async fn missing_binary_is_reported_before_anything_starts() {
    let base = tempfile::tempdir().unwrap();
    let mut options = Options::default();
    options.binaries = Some(Binaries {
        etcd: PathBuf::from("/nonexistent/etcd"),
        kube_apiserver: PathBuf::from("/nonexistent/kube-apiserver"),
        kube_controller_manager: None,
    });
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
