//! Deploying a stage that holds SOPS-encrypted objects: Secrets decrypted in memory and masked,
//! SopsSecrets applied encrypted, the MAC verified unless the stage opts out by name.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use capstan_testenv::ControlPlane;
use common::{keygen, text};

const SOPS_SECRET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: sopssecrets.isindir.github.com}
spec:
  group: isindir.github.com
  scope: Namespaced
  names: {plural: sopssecrets, singular: sopssecret, kind: SopsSecret}
  versions:
  - name: v1alpha3
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

fn capstan(plane: &ControlPlane, dir: &Path, key: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", plane.kubeconfig())
        .env_remove("SOPS_AGE_KEY")
        .env("SOPS_AGE_KEY_FILE", key)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A project whose stage holds an encrypted Secret, an encrypted SopsSecret and its CRD.
fn project(plane: &ControlPlane, dir: &Path, key: &Path, namespace: &str, stage_extra: &str) {
    let recipient = keygen(key);
    std::fs::write(
        dir.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: .*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {recipient}\n"
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("stage")).unwrap();
    std::fs::write(dir.join("stage/crd.yaml"), SOPS_SECRET_CRD).unwrap();
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {namespace}\nstringData:\n  password: hunter2-s3cret\n  user: admin-s3cret\n"
    );
    let path = dir.join("stage/secret.yaml");
    std::fs::write(&path, secret).unwrap();
    let encrypt = capstan(
        plane,
        dir,
        key,
        &["secrets", "encrypt", "-i", path.to_str().unwrap()],
    );
    assert!(encrypt.status.success(), "{}", text(&encrypt.stderr));
    let sops_secret = capstan(
        plane,
        dir,
        key,
        &[
            "secrets",
            "new-sopssecret",
            "--name",
            "api",
            "--namespace",
            namespace,
            "--from-literal",
            "token=operator-s3cret",
            "-o",
            "stage/sopssecret.yaml",
        ],
    );
    assert!(
        sops_secret.status.success(),
        "{}",
        text(&sops_secret.stderr)
    );
    std::fs::write(
        dir.join("capstan.yaml"),
        format!("name: sops\nstages:\n  app:\n    manifests: stage\n{stage_extra}"),
    )
    .unwrap();
}

/// Changes the encrypted Secret's password from `hunter2-s3cret` to `hunter3-s3cret`, through
/// `secrets decrypt` (which prints the value: the one command that must) and `encrypt -i`.
fn change_password(plane: &ControlPlane, dir: &Path, key: &Path) {
    let path = dir.join("stage/secret.yaml");
    let path = path.to_str().unwrap();
    let decrypted = capstan(plane, dir, key, &["secrets", "decrypt", path]);
    let plaintext = text(&decrypted.stdout).replace("hunter2-s3cret", "hunter3-s3cret");
    std::fs::write(path, plaintext).unwrap();
    let encrypted = capstan(plane, dir, key, &["secrets", "encrypt", "-i", path]);
    assert!(encrypted.status.success(), "{}", text(&encrypted.stderr));
}

fn assert_no_secret(output: &Output) {
    for stream in [text(&output.stdout), text(&output.stderr)] {
        for value in ["hunter2-s3cret", "admin-s3cret", "operator-s3cret"] {
            assert!(!stream.contains(value), "{value} leaked:\n{stream}");
        }
    }
}

#[tokio::test]
async fn encrypted_secrets_are_decrypted_in_memory_and_sops_secrets_stay_encrypted() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("sops").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let key = dir.path().join("key.txt");
    project(plane, dir.path(), &key, &ns, "");

    let deployed = capstan(plane, dir.path(), &key, &["deploy", "--yes"]);
    assert!(
        deployed.status.success(),
        "{}{}",
        text(&deployed.stdout),
        text(&deployed.stderr)
    );
    assert_no_secret(&deployed);
    let get = |args: &[&str]| text(&plane.kubectl().args(args).output().unwrap().stdout);
    let password = get(&[
        "-n",
        &ns,
        "get",
        "secret",
        "db",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(
        password, "aHVudGVyMi1zM2NyZXQ=",
        "base64 of the decrypted value"
    );
    let template = get(&[
        "-n",
        &ns,
        "get",
        "sopssecret",
        "api",
        "-o",
        "jsonpath={.spec}",
    ]);
    assert!(
        template.contains("ENC[AES256_GCM,"),
        "applied encrypted: {template}"
    );
    assert!(!template.contains("operator-s3cret"));

    // A changed value shows as changed, never as itself.
    change_password(plane, dir.path(), &key);
    let diff = capstan(plane, dir.path(), &key, &["diff"]);
    assert_eq!(diff.status.code(), Some(1), "{}", text(&diff.stderr));
    assert_no_secret(&diff);
    assert!(!text(&diff.stdout).contains("hunter3-s3cret"));
    assert!(
        text(&diff.stdout).contains("*** (after)"),
        "{}",
        text(&diff.stdout)
    );
}

#[tokio::test]
async fn a_broken_mac_fails_the_deploy_unless_the_stage_opts_out_and_then_names_the_object() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("sopsmac").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let key = dir.path().join("key.txt");
    project(plane, dir.path(), &key, &ns, "");
    // Re-serialised as a renderer would: the two values swap places, each keeps its own tag.
    let path = dir.path().join("stage/secret.yaml");
    let encrypted = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = encrypted.lines().collect();
    let password = lines
        .iter()
        .position(|l| l.starts_with("    password:"))
        .unwrap();
    let mut swapped: Vec<&str> = lines.clone();
    swapped.swap(password, password + 1);
    std::fs::write(&path, swapped.join("\n") + "\n").unwrap();

    let refused = capstan(plane, dir.path(), &key, &["deploy", "--yes"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stdout).contains("verifyMac: false"),
        "{}",
        text(&refused.stdout)
    );
    assert_no_secret(&refused);

    let stage = std::fs::read_to_string(dir.path().join("capstan.yaml")).unwrap();
    std::fs::write(
        dir.path().join("capstan.yaml"),
        stage + "    sops: {verifyMac: false}\n",
    )
    .unwrap();
    let deployed = capstan(plane, dir.path(), &key, &["deploy", "--yes"]);
    assert!(
        deployed.status.success(),
        "{}{}",
        text(&deployed.stdout),
        text(&deployed.stderr)
    );
    let warning = text(&deployed.stderr);
    assert!(
        warning.contains("verifyMac: false") && warning.contains(&format!("Secret {ns}/db")),
        "{warning}"
    );
    assert_no_secret(&deployed);
}

/// The history keeps SOPS objects encrypted; a rollback decrypts them in memory as a deploy
/// does, without the manifests.
#[tokio::test]
async fn a_rollback_decrypts_the_recorded_sops_objects_in_memory() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("sops-rollback").await.unwrap();
    let dir = tempfile::TempDir::new().unwrap();
    let key = dir.path().join("key.txt");
    project(
        plane,
        dir.path(),
        &key,
        &ns,
        "    discriminator: sops-rollback\n",
    );
    let config = dir.path().join("capstan.yaml");
    let text_of = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("stateNamespace: {ns}\n{text_of}")).unwrap();
    let run = |args: &[&str]| {
        let output = capstan(plane, dir.path(), &key, args);
        assert!(
            output.status.success(),
            "{args:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert_no_secret(&output);
        output
    };
    let password = || {
        let output = plane
            .kubectl()
            .args([
                "-n",
                &ns,
                "get",
                "secret",
                "db",
                "-o",
                "jsonpath={.data.password}",
            ])
            .output()
            .unwrap();
        text(&output.stdout)
    };
    run(&["deploy", "--yes"]);
    change_password(plane, dir.path(), &key);
    run(&["deploy", "--yes"]);
    assert_eq!(
        password(),
        "aHVudGVyMy1zM2NyZXQ=",
        "base64 of hunter3-s3cret"
    );

    std::fs::remove_dir_all(dir.path().join("stage")).unwrap();
    let rolled = run(&["rollback", "--to", "1", "--yes"]);
    assert!(!text(&rolled.stdout).contains("hunter3-s3cret"));
    assert_eq!(
        password(),
        "aHVudGVyMi1zM2NyZXQ=",
        "base64 of hunter2-s3cret"
    );
}
