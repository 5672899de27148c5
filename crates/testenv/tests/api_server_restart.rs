//! A test can take the API server away in the middle of an operation and bring it back: the
//! outage looks like a real one to clients, and afterwards everything works as before.

use std::{io, path::Path};

use capstan_testenv::{ControlPlane, Options, User};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ObjectMeta, PostParams},
};

fn config_map(name: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some([("written".to_owned(), "before the outage".to_owned())].into()),
        ..ConfigMap::default()
    }
}

/// The I/O error at the bottom of `error`, if there is one.
fn io_error_kind(error: &kube::Error) -> Option<io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}

/// Command lines of live processes that mention `dir` (every component's flags name files
/// there), zombies aside.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .expect("this test needs /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            if stat.rsplit(')').next()?.trim_start().starts_with('Z') {
                return None;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(&needle) && !cmdline.contains("capstan-testenv-reaper"))
                .then_some(cmdline)
        })
        .collect()
}

#[tokio::test]
async fn stopped_api_server_refuses_connections_and_comes_back_with_its_data() {
    // A plane of its own: the shared one serves other tests, which must not see the outage.
    let plane = ControlPlane::start(Options::default())
        .await
        .expect("control plane");
    let namespace = plane.create_namespace("outage").await.unwrap();
    let before: Api<ConfigMap> = Api::namespaced(plane.client(User::Admin).unwrap(), &namespace);
    before
        .create(&PostParams::default(), &config_map("kept"))
        .await
        .unwrap();

    plane.stop_api_server().await.unwrap();
    // A fresh client, so that the failure is the refused connection and not a pooled one
    // that was cut.
    let during: Api<ConfigMap> = Api::namespaced(plane.client(User::Admin).unwrap(), &namespace);
    let error = during.get("kept").await.unwrap_err();
    assert_eq!(
        io_error_kind(&error),
        Some(io::ErrorKind::ConnectionRefused),
        "{error:?}"
    );
    // Stopping twice is no error: a test's cleanup may not know whether it stopped already.
    plane.stop_api_server().await.unwrap();

    plane.start_api_server().await.unwrap();
    // The client made before the outage still works: same port, certificates and tokens.
    let kept = before.get("kept").await.unwrap();
    assert_eq!(kept.data.unwrap()["written"], "before the outage");
    // So does the kubeconfig.
    let output = plane
        .kubectl()
        .args(["get", "configmap", "kept", "-n", &namespace, "-o", "name"])
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "configmap/kept"
    );

    // Dropping the plane stops the restarted server too.
    let dir = plane.kubeconfig().parent().unwrap().to_path_buf();
    assert!(!processes_using(&dir).is_empty());
    drop(plane);
    assert_eq!(processes_using(&dir), Vec::<String>::new());
    assert!(!dir.exists(), "{} is left", dir.display());
}
