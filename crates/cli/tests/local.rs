//! `capstan local up|status|down` end to end: a cluster that outlives the command that started
//! it, reached through the user's default kubeconfig, and gone without a trace after `down`.
//! Each test has a home of its own: HOME, XDG_STATE_HOME and KUBECONFIG point into a temporary
//! folder.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use common::*;
use kube::config::Kubeconfig;
use serde_json::Value;
use tempfile::TempDir;

/// A temporary home; dropping it runs `capstan local down`, so that a failed test leaves no
/// cluster running.
struct Home {
    dir: TempDir,
}

impl Home {
    fn new() -> Self {
        Self {
            dir: TempDir::new().unwrap(),
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kube/config")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state/capstan/local")
    }

    /// An environment that points into this home, with the control plane's binaries.
    fn env(&self, command: &mut Command) {
        command
            .env("HOME", self.dir.path())
            .env("XDG_STATE_HOME", self.dir.path().join("state"))
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(Stdio::null());
    }

    fn capstan(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
        command.args(args);
        self.env(&mut command);
        command.output().unwrap()
    }

    /// `kubectl` with this home's default kubeconfig and no flag to choose it.
    fn kubectl(&self, args: &[&str]) -> Output {
        // The provisioned kubectl matches the server's version.
        let program = std::env::var_os("KUBEBUILDER_ASSETS")
            .map(|dir| Path::new(&dir).join("kubectl"))
            .filter(|path| path.exists())
            .unwrap_or_else(|| "kubectl".into());
        let mut command = Command::new(program);
        command.args(args);
        self.env(&mut command);
        command.output().unwrap()
    }

    fn status(&self) -> (Option<i32>, Value) {
        let output = self.capstan(&["local", "status", "-o", "json"]);
        let status = serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|error| panic!("{error}: {}", text(&output.stdout)));
        (output.status.code(), status)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.capstan(&["local", "down"]);
    }
}

/// A kubeconfig the user had before: a context `previous`, current.
const PREVIOUS: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: previous\n  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: previous\n  user:\n    token: not-a-real-token\ncontexts:\n- name: previous\n  context:\n    cluster: previous\n    user: previous\ncurrent-context: previous\n";

fn names<T>(entries: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    entries.iter().map(|e| name(e).to_owned()).collect()
}

/// Command lines of live processes that mention `dir`, zombies aside.
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
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect()
}

#[test]
fn local_cluster_runs_in_the_background_behind_the_default_kubeconfig_and_down_undoes_it_all() {
    let home = Home::new();
    std::fs::create_dir_all(home.kubeconfig().parent().unwrap()).unwrap();
    std::fs::write(home.kubeconfig(), PREVIOUS).unwrap();

    let up = succeeds(home.capstan(&["local", "up"]));
    let stderr = text(&up.stderr);
    assert!(
        stderr.contains(&format!(
            "context `capstan-local` added to {} and made current (was `previous`)",
            home.kubeconfig().display()
        )),
        "{stderr}"
    );

    let (code, status) = home.status();
    assert_eq!(code, Some(0), "{status:#}");
    assert_eq!(status["running"], true, "{status:#}");
    assert!(
        status["server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{status:#}"
    );
    assert!(status["version"].as_str().unwrap().starts_with("v1."));
    assert_eq!(
        status["kubeconfig"],
        home.kubeconfig().display().to_string()
    );
    assert_eq!(status["dir"], home.state_dir().display().to_string());
    let components = status["components"].as_array().unwrap();
    let started: Vec<_> = components.iter().map(|c| c["name"].clone()).collect();
    assert_eq!(started[..2], ["etcd", "kube-apiserver"], "{status:#}");
    let pids: Vec<u64> = components
        .iter()
        .map(|c| c["pid"].as_u64().unwrap())
        .collect();
    // The command that started them has ended; they run on.
    for pid in &pids {
        assert!(Path::new(&format!("/proc/{pid}")).exists(), "pid {pid}");
    }

    let namespaces = succeeds(home.kubectl(&["get", "namespaces", "-o", "name"]));
    let namespaces = text(&namespaces.stdout);
    assert!(namespaces.contains("namespace/kube-system"), "{namespaces}");

    let again = succeeds(home.capstan(&["local", "up"]));
    assert!(
        text(&again.stderr).starts_with("a local cluster is already running at "),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(home.status().1["components"], status["components"]);

    let text_status = succeeds(home.capstan(&["local", "status"]));
    assert!(text(&text_status.stdout).starts_with("running\n"));

    let down = succeeds(home.capstan(&["local", "down"]));
    let stderr = text(&down.stderr);
    assert!(
        stderr.contains(&format!(
            "context `capstan-local` removed from {}; current context is `previous` again",
            home.kubeconfig().display()
        )),
        "{stderr}"
    );

    let (code, status) = home.status();
    assert_eq!(code, Some(2), "{status:#}");
    assert_eq!(status["running"], false, "{status:#}");
    assert_eq!(processes_using(&home.state_dir()), Vec::<String>::new());
    for pid in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie its new parent has not collected yet.
        assert!(
            stat.is_empty()
                || stat
                    .rsplit(')')
                    .next()
                    .unwrap()
                    .trim_start()
                    .starts_with('Z'),
            "pid {pid} still runs: {stat}"
        );
    }
    assert!(!home.state_dir().exists());

    let restored = Kubeconfig::read_from(home.kubeconfig()).unwrap();
    assert_eq!(restored.current_context.as_deref(), Some("previous"));
    assert_eq!(names(&restored.contexts, |c| &c.name), ["previous"]);
    assert_eq!(names(&restored.clusters, |c| &c.name), ["previous"]);
    assert_eq!(names(&restored.auth_infos, |c| &c.name), ["previous"]);

    let down = succeeds(home.capstan(&["local", "down"]));
    assert!(
        text(&down.stderr).contains("nothing to stop"),
        "{}",
        text(&down.stderr)
    );
}

#[test]
fn status_without_a_cluster_exits_2_and_down_succeeds() {
    let home = Home::new();
    let status = home.capstan(&["local", "status"]);
    assert_eq!(status.status.code(), Some(2));
    assert_eq!(
        text(&status.stdout),
        format!(
            "not running: no local cluster in {}\n",
            home.state_dir().display()
        )
    );
    let down = succeeds(home.capstan(&["local", "down"]));
    assert_eq!(
        text(&down.stderr),
        format!(
            "no local cluster in {}: nothing to stop\n",
            home.state_dir().display()
        )
    );
    assert!(!home.kubeconfig().exists());
}

#[test]
fn up_without_binaries_says_how_to_provision_them_and_leaves_nothing() {
    let home = Home::new();
    let empty = TempDir::new().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
    command.args(["local", "up"]);
    home.env(&mut command);
    let output = command
        .env("KUBEBUILDER_ASSETS", empty.path())
        .env_remove("TEST_ASSET_ETCD")
        .env_remove("TEST_ASSET_KUBE_APISERVER")
        .env_remove("TEST_ASSET_KUBE_CONTROLLER_MANAGER")
        .output()
        .unwrap();
    let stderr = text(&fails(output).stderr);
    assert!(
        stderr.starts_with(
            "error: `capstan local up` needs the control plane's binaries: cannot find \
             kube-apiserver and etcd: set KUBEBUILDER_ASSETS"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("scripts/envtest.sh"), "{stderr}");
    assert!(!home.state_dir().exists());
    assert!(!home.kubeconfig().exists());
}

#[test]
fn up_refuses_a_folder_with_other_files_and_keeps_them() {
    let home = Home::new();
    let dir = home.dir.path().join("mine");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let output = fails(home.capstan(&["local", "up", "--dir", dir.to_str().unwrap()]));
    let stderr = text(&output.stderr);
    assert!(
        stderr.ends_with(&format!(
            "\nerror: `{}` is not empty and holds no capstan local cluster; choose an empty or \
             new folder\n",
            dir.display()
        )),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!home.kubeconfig().exists());
}
