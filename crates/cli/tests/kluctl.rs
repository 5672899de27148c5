//! kluctl projects deploy unchanged (issue 19): easykubenix's project folder, its SOPS vars
//! file encrypted by capstan and by the real sops, templated where kluctl templates, its
//! secrets masked wherever a template put them, and the README's migration table run command
//! by command.
//!
//! The project is a copy of `../shared/testdata/easykubenix/kluctlProject` when that folder
//! exists (else the same files written here), with three changes: its namespace is the test's,
//! `default/` holds a ConfigMap with a literal `{{ x }}` instead of kinds whose CRDs the test
//! control plane lacks, and `secrets/all.yaml` (a stand-in no key opens) is re-created.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capstan_testenv::ControlPlane;
use common::{exited, fails, keygen, sops, succeeds, text};

#[allow(
    clippy::disallowed_methods,
    reason = "a test says on stderr whether it copied the shared project"
)]
fn say(message: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{message}");
}

const TOKEN: &str = "hc-s3cr3t-token-1";

/// The shared project's files, for a plain clone without `../shared`.
const FALLBACK: &[(&str, &str)] = &[
    (
        "deployment.yaml",
        r#"{"deployments":[{"barrier":true,"path":"prio-10","skipDeleteIfTags":true},{"barrier":true,"path":"prio-20","skipDeleteIfTags":true},{"path":"default","skipDeleteIfTags":true}],"vars":[{"file":"secrets/all.yaml"}]}"#,
    ),
    (".kluctl.yaml", r#"{"targets":[{"name":"local"}]}"#),
    (
        "prio-10/Namespace.yaml",
        r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"hetzkube"}}],"kind":"List"}"#,
    ),
    (
        "prio-10/CustomResourceDefinition.yaml",
        r#"{"apiVersion":"v1","items":[],"kind":"List"}"#,
    ),
    (
        "prio-20/Secret.yaml",
        r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"hcloud","namespace":"hetzkube"},"stringData":{"token":"{{ hctoken }}"}}],"kind":"List"}"#,
    ),
    ("default/.templateignore", "*"),
];

fn shared() -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata/easykubenix/kluctlProject");
    path.is_dir().then_some(path)
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::write(&target, fs::read(entry.path()).unwrap()).unwrap();
        }
    }
}

/// Who encrypts `secrets/all.yaml`.
#[derive(Clone, Copy)]
enum Encrypter {
    Capstan,
    Sops,
}

/// A temporary folder with an age key, the project in `project/`, and a private `tmp/` that
/// capstan's temporary files go to.
struct Kluctl {
    dir: tempfile::TempDir,
    key: PathBuf,
    recipient: String,
    namespace: String,
}

impl Kluctl {
    fn new(namespace: &str, encrypter: Encrypter) -> Self {
        let dir = tempfile::TempDir::new().unwrap();
        let key = dir.path().join("key.txt");
        let recipient = keygen(&key);
        let kluctl = Self {
            dir,
            key,
            recipient,
            namespace: namespace.to_owned(),
        };
        fs::create_dir_all(kluctl.path("tmp")).unwrap();
        let project = kluctl.project();
        match shared() {
            Some(shared) => {
                say(&format!("copied {}", shared.display()));
                copy_dir(&shared, &project);
            }
            None => {
                say("../shared/testdata is missing: writing the kluctl project's files here");
                for (path, text) in FALLBACK {
                    let path = project.join(path);
                    fs::create_dir_all(path.parent().unwrap()).unwrap();
                    fs::write(path, text).unwrap();
                }
            }
        }
        let literal = r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"raw","namespace":"hetzkube"},"data":{"tpl":"{{ x }}"}}],"kind":"List"}"#;
        fs::write(project.join("default/easykubenix.yaml"), literal).unwrap();
        let config = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"conf\",\"namespace\":\"hetzkube\"},\"data\":{\"url\":\"https://hc:{{ hctoken }}@api\",\"env\":\"{{ get_var('args.env', 'dev') }}\"}}";
        fs::write(project.join("prio-20/ConfigMap.yaml"), config).unwrap();
        kluctl.rename_namespace();
        kluctl.set_token(TOKEN, encrypter);
        kluctl
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn project(&self) -> PathBuf {
        self.path("project")
    }

    fn rename_namespace(&self) {
        for dir in ["prio-10", "prio-20", "default"] {
            for entry in fs::read_dir(self.project().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let text = fs::read_to_string(&path).unwrap();
                fs::write(
                    &path,
                    text.replace("\"hetzkube\"", &format!("\"{}\"", self.namespace)),
                )
                .unwrap();
            }
        }
    }

    /// `secrets/all.yaml` holding `token`, encrypted in place.
    fn set_token(&self, token: &str, encrypter: Encrypter) {
        let path = self.project().join("secrets/all.yaml");
        fs::write(&path, format!("hctoken: {token}\n")).unwrap();
        let file = path.to_str().unwrap();
        let mut command = match encrypter {
            Encrypter::Capstan => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
                command.args(["secrets", "encrypt", "--age", &self.recipient, "-i", file]);
                command
            }
            Encrypter::Sops => {
                let mut command = Command::new(sops());
                command.args(["encrypt", "--age", &self.recipient, "--in-place", file]);
                command
            }
        };
        let output = command
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .env("XDG_CONFIG_HOME", self.path("no-config"))
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        succeeds(output);
        assert!(!fs::read_to_string(&path).unwrap().contains(token));
    }

    /// capstan in the folder, on `plane`, with the key, temporary files in `tmp/`, and no
    /// terminal; `DIR` in `args` is the project folder.
    fn run(&self, plane: Option<&ControlPlane>, args: &[&str]) -> Output {
        let project = self.project();
        let args: Vec<&str> = args
            .iter()
            .map(|arg| {
                if *arg == "DIR" {
                    project.to_str().unwrap()
                } else {
                    arg
                }
            })
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_capstan"));
        command
            .args(&args)
            .current_dir(self.dir.path())
            .env_remove("SOPS_AGE_KEY")
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .env("XDG_CONFIG_HOME", self.path("no-config"))
            .env("TMPDIR", self.path("tmp"))
            .stdin(Stdio::null());
        match plane {
            Some(plane) => command.env("KUBECONFIG", plane.kubeconfig()),
            None => command.env("KUBECONFIG", self.path("no-kubeconfig")),
        };
        let output = command.output().unwrap();
        assert_no_leak(&output);
        output
    }

    /// No file under the folder holds a decrypted value, and capstan left no temporary file.
    fn assert_nothing_decrypted_on_disk(&self) {
        let mut stack = vec![self.dir.path().to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let bytes = fs::read(&path).unwrap();
                    let content = String::from_utf8_lossy(&bytes);
                    assert!(
                        !content.contains("s3cr3t"),
                        "{} holds a secret",
                        path.display()
                    );
                }
            }
        }
        assert_eq!(fs::read_dir(self.path("tmp")).unwrap().count(), 0);
    }
}

fn assert_no_leak(output: &Output) {
    for stream in [text(&output.stdout), text(&output.stderr)] {
        assert!(!stream.contains("s3cr3t"), "a secret leaked:\n{stream}");
        // base64 of `hc-s3cr3t-token-`, which every token here starts with.
        assert!(
            !stream.contains("aGMtczNjcjN0LXRva2VuL"),
            "a secret leaked:\n{stream}"
        );
    }
}

fn kubectl(plane: &ControlPlane, args: &[&str]) -> String {
    text(&plane.kubectl().args(args).output().unwrap().stdout)
}

async fn deploys_on_the_plane(encrypter: Encrypter, prefix: &str) {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace(prefix).await.unwrap();
    let kluctl = Kluctl::new(&ns, encrypter);
    let deploy = [
        "deploy",
        "--discriminator",
        "full",
        "--project-dir",
        "DIR",
        "--yes",
        "--adopt",
    ];
    succeeds(kluctl.run(Some(plane), &deploy));

    let token = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "secret",
            "hcloud",
            "-o",
            "jsonpath={.data.token}",
        ],
    );
    assert_eq!(token, "aGMtczNjcjN0LXRva2VuLTE=", "base64 of {TOKEN}");
    let url = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "configmap",
            "conf",
            "-o",
            "jsonpath={.data.url}",
        ],
    );
    assert_eq!(url, format!("https://hc:{TOKEN}@api"));
    let literal = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "configmap",
            "raw",
            "-o",
            "jsonpath={.data.tpl}",
        ],
    );
    assert_eq!(literal, "{{ x }}", ".templateignore keeps it");
    kluctl.assert_nothing_decrypted_on_disk();
}

#[tokio::test]
async fn the_shared_project_deploys_with_its_vars_file_encrypted_by_capstan() {
    deploys_on_the_plane(Encrypter::Capstan, "kluctl-capstan").await;
}

#[tokio::test]
async fn the_shared_project_deploys_with_its_vars_file_encrypted_by_sops() {
    deploys_on_the_plane(Encrypter::Sops, "kluctl-sops").await;
}

#[tokio::test]
async fn a_sops_var_in_a_configmap_is_masked_in_diff_and_plan_output() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("kluctl-mask").await.unwrap();
    let kluctl = Kluctl::new(&ns, Encrypter::Capstan);
    let target = ["--discriminator", "full", "--project-dir", "DIR"];
    succeeds(kluctl.run(
        Some(plane),
        &[&["deploy", "--yes", "--adopt"][..], &target].concat(),
    ));
    kluctl.set_token("hc-s3cr3t-token-2", Encrypter::Capstan);

    let diff = exited(
        1,
        kluctl.run(Some(plane), &[&["diff"][..], &target].concat()),
    );
    let diff = text(&diff.stdout);
    assert!(diff.contains("ConfigMap"), "{diff}");
    assert!(diff.contains("***"), "{diff}");
    let plan = succeeds(kluctl.run(
        Some(plane),
        &[&["deploy", "--dry-run"][..], &target].concat(),
    ));
    assert!(text(&plan.stdout).contains("***"), "{}", text(&plan.stdout));
    let json = exited(
        1,
        kluctl.run(
            Some(plane),
            &[&["diff", "-o", "json"][..], &target].concat(),
        ),
    );
    assert!(text(&json.stdout).contains("***"), "{}", text(&json.stdout));
    kluctl.assert_nothing_decrypted_on_disk();
}

#[test]
fn render_masks_sops_values_and_shows_them_only_on_a_terminal() {
    let kluctl = Kluctl::new("render", Encrypter::Capstan);
    let rendered =
        succeeds(kluctl.run(None, &["render", "--project-dir", "DIR", "-a", "env=prod"]));
    let rendered = text(&rendered.stdout);
    assert!(rendered.contains("token: '***'"), "{rendered}");
    assert!(rendered.contains("url: https://hc:***@api"), "{rendered}");
    assert!(rendered.contains("env: prod"), "{rendered}");
    assert!(rendered.contains("tpl: '{{ x }}'"), "{rendered}");
    let refused = fails(kluctl.run(None, &["render", "--project-dir", "DIR", "--show-secrets"]));
    assert_eq!(
        text(&refused.stderr).lines().next().unwrap_or_default(),
        "error: --show-secrets shows secret values on a terminal only, and standard output is not one"
    );
}

#[test]
fn an_undefined_variable_and_an_unsupported_filter_fail_naming_file_and_line() {
    let kluctl = Kluctl::new("errors", Encrypter::Capstan);
    let path = kluctl.project().join("prio-20/Extra.yaml");
    fs::write(
        &path,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra, namespace: errors}\ndata:\n  a: '{{ db.password }}'\n  b: '{{ hctoken | upper }}'\n",
    )
    .unwrap();
    let output = fails(kluctl.run(None, &["validate", "--project-dir", "DIR"]));
    let stderr = text(&output.stderr);
    let shown = path.display();
    assert_eq!(
        stderr,
        format!("{shown}:5: undefined variable `db.password`\nerror: 1 problem found\n")
    );
    fs::write(&path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: extra}\ndata:\n  b: '{{ hctoken | upper }}'\n").unwrap();
    let output = fails(kluctl.run(None, &["validate", "--project-dir", "DIR"]));
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!("{shown}:5: unsupported filter `upper`: ")),
        "{stderr}"
    );
}

#[test]
fn project_dir_refuses_a_folder_that_is_not_a_kluctl_project() {
    let kluctl = Kluctl::new("notkluctl", Encrypter::Capstan);
    let output = fails(kluctl.run(None, &["render", "--project-dir", "tmp"]));
    assert_eq!(
        text(&output.stderr).lines().next().unwrap_or_default(),
        "error: --project-dir tmp: not a kluctl project folder (it needs a deployment.yaml \
         listing deployments, or a .kluctl.yaml); use -f for other files"
    );
}

/// The capstan commands of the README's "Coming from kluctl" table, in order.
fn migration_commands() -> Vec<Vec<String>> {
    let readme =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("### Coming from kluctl")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README has a Coming from kluctl section");
    let mut commands = Vec::new();
    for row in section.lines().filter(|line| line.starts_with("| `kluctl")) {
        let capstan = row.split(" | ").nth(1).unwrap();
        for quoted in capstan.split('`').skip(1).step_by(2) {
            if let Some(args) = quoted.strip_prefix("capstan ") {
                commands.push(args.split(' ').map(str::to_owned).collect());
            }
        }
    }
    commands
}

#[tokio::test]
async fn every_command_of_the_readme_migration_table_runs() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("kluctl-readme").await.unwrap();
    let kluctl = Kluctl::new(&ns, Encrypter::Sops);
    let project = kluctl.project();
    fs::write(
        kluctl.path("capstan.yaml"),
        format!(
            "name: readme\nstages:\n  local: {{manifests: {}, discriminator: full}}\n",
            project.display()
        ),
    )
    .unwrap();
    // The Namespace the harness made is taken over once; the table's commands start after.
    let adopt = [
        "deploy",
        "--discriminator",
        "full",
        "--project-dir",
        "DIR",
        "--yes",
        "--adopt",
    ];
    succeeds(kluctl.run(Some(plane), &adopt));
    let commands = migration_commands();
    assert_eq!(commands.len(), 10, "{commands:?}");
    for args in &commands {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = kluctl.run(Some(plane), &args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "capstan {}\nstdout: {}\nstderr: {}",
            args.join(" "),
            text(&output.stdout),
            text(&output.stderr)
        );
    }
    let left = kubectl(
        plane,
        &[
            "-n",
            &ns,
            "get",
            "configmap",
            "-l",
            "capstan.io/discriminator=full",
            "-o",
            "name",
        ],
    );
    assert_eq!(left, "", "the table ends with a delete");
    kluctl.assert_nothing_decrypted_on_disk();
}
