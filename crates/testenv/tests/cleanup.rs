//! A control plane never outlives the test process that started it: not when a test panics, not
//! when the process exits with the shared control plane still in its `static`, and not when the
//! process is killed with SIGKILL, also after its API server was stopped and started again.
//!
//! Each test runs this same test binary again as a child, filtered to the ignored `victim` test,
//! which starts a control plane, reports its data folder, and then dies in the way under test.

#![allow(
    clippy::disallowed_methods,
    reason = "the victim process waits on standard input to be killed"
)]

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use capstan_testenv::{ControlPlane, Options};

const MODE_VAR: &str = "CAPSTAN_TESTENV_VICTIM";
const DIR_PREFIX: &str = "control plane data folder: ";

#[tokio::test]
#[ignore = "runs only as the child process of the cleanup tests"]
async fn victim() {
    let mode = std::env::var(MODE_VAR).expect("CAPSTAN_TESTENV_VICTIM names how to die");
    let owned;
    let plane = if mode == "panic" {
        owned = ControlPlane::start(Options::default()).await.unwrap();
        &owned
    } else {
        ControlPlane::shared().await.unwrap()
    };
    if mode == "restart-then-sigkill" {
        plane.stop_api_server().await.unwrap();
        plane.start_api_server().await.unwrap();
    }
    // Tell the parent where the control plane lives, and wait until it has seen it run.
    let dir = plane.kubeconfig().parent().unwrap();
    println!("{DIR_PREFIX}{}", dir.display());
    std::io::stdin().read_line(&mut String::new()).unwrap();
    match mode.as_str() {
        "panic" => panic!("the victim panics on purpose"),
        "sigkill" | "restart-then-sigkill" => std::future::pending().await, // until killed
        "exit" => {}
        other => panic!("unknown victim mode {other}"),
    }
}

#[test]
fn panicking_test_stops_its_control_plane_and_removes_its_files() {
    let (mut victim, dir) = start_victim("panic");
    let status = victim.wait().unwrap();
    assert!(!status.success(), "the victim was meant to fail");
    // Drop ran while unwinding, before the process ended: nothing should be left right away.
    assert_clean(&dir, Duration::ZERO);
}

#[test]
fn sigkilled_test_process_leaves_nothing_behind() {
    let (mut victim, dir) = start_victim("sigkill");
    victim.kill().unwrap(); // SIGKILL: the victim runs no code of its own after this
    victim.wait().unwrap();
    assert_clean(&dir, Duration::from_secs(10));
}

#[test]
fn sigkilled_test_process_leaves_no_restarted_api_server_behind() {
    let (mut victim, dir) = start_victim("restart-then-sigkill");
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert_clean(&dir, Duration::from_secs(10));
}

#[test]
fn shared_control_plane_is_cleaned_up_when_the_test_binary_exits() {
    let (mut victim, dir) = start_victim("exit");
    assert!(victim.wait().unwrap().success());
    assert_clean(&dir, Duration::from_secs(10));
}

/// Runs the victim and returns once its control plane is up, with the plane's data folder.
fn start_victim(mode: &str) -> (Child, PathBuf) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["victim", "--exact", "--ignored", "--nocapture"])
        .env(MODE_VAR, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let dir = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix(DIR_PREFIX).map(PathBuf::from))
        .unwrap_or_else(|| panic!("the {mode} victim did not start a control plane"));
    // Keep reading: a closed pipe would make the victim's test harness fail on its next line.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        dir.is_dir(),
        "{} should exist while the victim runs",
        dir.display()
    );
    let running = processes_using(&dir);
    assert!(
        running.len() >= 2,
        "expected etcd and kube-apiserver running from {}, found {running:?}",
        dir.display()
    );
    writeln!(child.stdin.take().unwrap(), "seen").unwrap();
    (child, dir)
}

/// Waits up to `grace` for the folder to disappear and every process using it to end.
fn assert_clean(dir: &Path, grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        let left = processes_using(dir);
        if left.is_empty() && !dir.exists() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "left behind after {grace:?}: folder exists: {}, processes: {left:?}",
            dir.exists()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Command lines of live processes that mention `dir` (every component's flags name files there).
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let Ok(entries) = fs::read_dir("/proc") else {
        panic!("these tests need /proc to find left-over processes");
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| {
            let status = fs::read_to_string(entry.path().join("stat")).ok()?;
            // A zombie has ended; only its parent has not collected it yet.
            if status.rsplit(')').next()?.trim_start().starts_with('Z') {
                return None;
            }
            let cmdline = fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (cmdline.contains(&needle) && !cmdline.contains("capstan-testenv-reaper"))
                .then_some(cmdline)
        })
        .collect()
}
