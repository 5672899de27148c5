//! Helpers shared by the end-to-end tests of the `capstan` binary.

// Each test binary uses its own subset of these.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

/// A temporary repository with one age identity and a `.sops.yaml` encrypting `*.yaml`
/// (except `plain.yaml`) to it.
pub(crate) struct Repo {
    pub(crate) dir: TempDir,
    pub(crate) key: PathBuf,
    pub(crate) recipient: String,
}

impl Repo {
    pub(crate) fn new() -> Self {
        let dir = TempDir::new().unwrap();
        let key = dir.path().join("key.txt");
        let recipient = keygen(&key);
        let repo = Self {
            dir,
            key,
            recipient,
        };
        repo.write_config(&[&repo.recipient.clone()]);
        repo
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn write_config(&self, recipients: &[&str]) {
        let config = format!(
            "creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: {}\n",
            recipients.join(",")
        );
        std::fs::write(self.path(".sops.yaml"), config).unwrap();
    }

    /// `capstan` run in the repository with its key and no terminal on standard input.
    pub(crate) fn capstan(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SOPS_AGE_KEY")
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .env("XDG_CONFIG_HOME", self.path("no-config"))
            .stdin(Stdio::null());
        command
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        self.capstan(args).output().unwrap()
    }

    /// A plaintext file under `secrets/`, encrypted in place.
    pub(crate) fn encrypted(&self, name: &str, plaintext: &str) -> PathBuf {
        let path = self.path(&format!("secrets/{name}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, plaintext).unwrap();
        succeeds(self.run(&["secrets", "encrypt", "-i", path.to_str().unwrap()]));
        path
    }

    pub(crate) fn decrypt(&self, path: &Path) -> String {
        text(&succeeds(self.run(&["secrets", "decrypt", path.to_str().unwrap()])).stdout)
    }

    /// The plaintext of `path` as the holder of another identity file sees it.
    pub(crate) fn decrypt_with(&self, path: &Path, identities: &Path) -> String {
        let output = self
            .capstan(&["secrets", "decrypt", path.to_str().unwrap()])
            .env("SOPS_AGE_KEY_FILE", identities)
            .output()
            .unwrap();
        text(&succeeds(output).stdout)
    }
}

pub(crate) fn keygen(path: &Path) -> String {
    let output = succeeds(
        Command::new(env!("CARGO_BIN_EXE_capstan"))
            .args(["secrets", "keygen", "--output", path.to_str().unwrap()])
            .output()
            .unwrap(),
    );
    text(&output.stderr)
        .strip_prefix("Public key: ")
        .unwrap()
        .trim()
        .to_owned()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// `output`, after checking that capstan exited with `code`; the message shows both streams.
pub(crate) fn exited(code: i32, output: Output) -> Output {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&output.stdout),
        text(&output.stderr)
    );
    output
}

pub(crate) fn succeeds(output: Output) -> Output {
    exited(0, output)
}

/// Exit code 2: capstan's code for every failure.
pub(crate) fn fails(output: Output) -> Output {
    exited(2, output)
}

/// The line of an encrypted YAML file that holds `key`.
pub(crate) fn line_of(content: &str, key: &str) -> String {
    content
        .lines()
        .find(|line| line.trim_start().starts_with(&format!("{key}:")))
        .unwrap()
        .to_owned()
}

/// A small secret file: one value to find in leaks (`hunter2`), one to keep.
pub(crate) const PLAINTEXT: &str = "db:\n    password: hunter2\n    user: admin\n";

/// Runs capstan in `dir` with the plane's kubeconfig and no terminal on standard input.
pub(crate) fn on_plane(plane: &capstan_testenv::ControlPlane, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", plane.kubeconfig())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A Node `node` and, bound to it, a pod `pod` in `ns` that declares no controller. There is no
/// scheduler and no kubelet: the pod is created bound, and a drain with grace period 0 removes
/// it at once.
pub(crate) fn node_with_pod(
    plane: &capstan_testenv::ControlPlane,
    ns: &str,
    node: &str,
    pod: &str,
) {
    // Pods are admitted once their namespace's `default` service account exists.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !plane
        .kubectl()
        .args(["get", "serviceaccount", "default", "-n", ns])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no default service account in {ns}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let objects = format!(
        "apiVersion: v1\nkind: Node\nmetadata: {{name: {node}}}\n---\n\
         apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, namespace: {ns}}}\n\
         spec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n  \
         containers: [{{name: main, image: none}}]\n"
    );
    let mut child = plane
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), objects.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "kubectl apply failed");
}

/// `../shared/testdata/crds/<name>`, or `None` (said on standard error) in a plain clone
/// without `../shared`, where the tests that need it do not run.
#[allow(clippy::print_stderr, reason = "a test says which cases it skipped")]
pub(crate) fn shared_crds(name: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/crds")
        .join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    eprintln!(
        "skipped: {} is not there (no ../shared beside the checkout)",
        dir.display()
    );
    None
}

/// The real Go sops that scripts/test.sh provisions, for the interoperability tests.
pub(crate) fn sops() -> PathBuf {
    std::env::var_os("CAPSTAN_TEST_SOPS")
        .map(PathBuf::from)
        .filter(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs the real sops: run it through scripts/test.sh, or \
                 `export CAPSTAN_TEST_SOPS=\"$(scripts/sops.sh)\"` first"
            )
        })
}
