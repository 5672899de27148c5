//! `capstan secrets ...` end to end: the binary with keys it generated itself, in temporary
//! folders. Each child process gets its key through `SOPS_AGE_KEY_FILE`, so tests never touch
//! the test process's environment or the user's keys.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

#[test]
fn keygen_writes_a_private_identity_and_never_overwrites_it() {
    let repo = Repo::new();
    assert!(repo.recipient.starts_with("age1"), "{}", repo.recipient);
    let content = std::fs::read_to_string(&repo.key).unwrap();
    assert!(content.contains(&format!("# public key: {}\n", repo.recipient)));
    assert!(content.contains("AGE-SECRET-KEY-1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&repo.key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    fails(repo.run(&["secrets", "keygen", "--output", repo.key.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&repo.key).unwrap(), content);
}

#[test]
fn encrypt_then_decrypt_gives_the_plaintext_back() {
    let repo = Repo::new();
    let path = repo.path("secrets/app.yaml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, PLAINTEXT).unwrap();

    let output = succeeds(repo.run(&["secrets", "encrypt", "secrets/app.yaml"]));
    let encrypted = text(&output.stdout);
    assert!(
        encrypted.contains("password: ENC[AES256_GCM,data:"),
        "{encrypted}"
    );
    assert!(encrypted.contains(&repo.recipient));
    assert!(!encrypted.contains("hunter2"));
    // Without --in-place the file stays as it was.
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PLAINTEXT);

    succeeds(repo.run(&["secrets", "encrypt", "--in-place", "secrets/app.yaml"]));
    assert!(!std::fs::read_to_string(&path).unwrap().contains("hunter2"));
    assert_eq!(repo.decrypt(&path), PLAINTEXT);

    let output_file = repo.path("plain.yaml");
    succeeds(repo.run(&[
        "secrets",
        "decrypt",
        "secrets/app.yaml",
        "--output",
        output_file.to_str().unwrap(),
    ]));
    assert_eq!(std::fs::read_to_string(&output_file).unwrap(), PLAINTEXT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&output_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn encrypt_names_the_file_when_no_rule_matches() {
    let repo = Repo::new();
    std::fs::write(repo.path("other.yaml"), PLAINTEXT).unwrap();
    let output = fails(repo.run(&["secrets", "encrypt", "other.yaml"]));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no creation rule"), "{stderr}");
    assert!(stderr.contains("other.yaml"), "{stderr}");
}

#[test]
fn encrypt_with_age_overrides_the_rule() {
    let repo = Repo::new();
    let other_key = repo.path("other-key.txt");
    let other = keygen(&other_key);
    std::fs::write(repo.path("other.yaml"), PLAINTEXT).unwrap();
    succeeds(repo.run(&["secrets", "encrypt", "-i", "--age", &other, "other.yaml"]));
    let encrypted = std::fs::read_to_string(repo.path("other.yaml")).unwrap();
    assert!(encrypted.contains(&other) && !encrypted.contains(&repo.recipient));
    assert_eq!(
        repo.decrypt_with(&repo.path("other.yaml"), &other_key),
        PLAINTEXT
    );
}

#[test]
fn decrypt_extracts_one_value() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let output = succeeds(repo.run(&[
        "secrets",
        "decrypt",
        "--extract",
        r#"["db"]["password"]"#,
        path.to_str().unwrap(),
    ]));
    assert_eq!(output.stdout, b"hunter2");

    // sops's exit code for a path that names nothing.
    let output = exited(
        91,
        repo.run(&[
            "secrets",
            "decrypt",
            "--extract",
            r#"["db"]["missing"]"#,
            path.to_str().unwrap(),
        ]),
    );
    assert!(text(&output.stderr).contains("has no value at"));
}

#[test]
fn decrypt_without_a_matching_identity_fails_without_leaking() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let stranger = repo.path("stranger.txt");
    keygen(&stranger);
    let output = repo
        .capstan(&["secrets", "decrypt", path.to_str().unwrap()])
        .env("SOPS_AGE_KEY_FILE", &stranger)
        .output()
        .unwrap();
    // sops's exit code when no key opens the data key.
    let output = exited(128, output);
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no identity opens"), "{stderr}");
    assert!(!stderr.contains("hunter2"));
}

/// `capstan secrets edit` with `script` as the editor and a private, empty `TMPDIR`, which
/// [`assert_tmpdir_empty`] checks afterwards.
fn edit_command(repo: &Repo, path: &Path, script: &str) -> Command {
    let editor = repo.path("editor.sh");
    std::fs::write(&editor, format!("#!/bin/sh\n{script}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::create_dir_all(repo.path("tmp")).unwrap();
    let mut command = repo.capstan(&["secrets", "edit", path.to_str().unwrap()]);
    command
        .env_remove("VISUAL")
        .env("EDITOR", &editor)
        .env("TMPDIR", repo.path("tmp"));
    command
}

fn assert_tmpdir_empty(repo: &Repo) {
    let left: Vec<_> = std::fs::read_dir(repo.path("tmp")).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}");
}

/// Runs `capstan secrets edit` with `script` as the editor; the private `TMPDIR` must be
/// empty again afterwards: the plaintext copy is gone on every path.
fn edit_with(repo: &Repo, path: &Path, script: &str) -> Output {
    let output = edit_command(repo, path, script).output().unwrap();
    assert_tmpdir_empty(repo);
    output
}

#[test]
fn edit_without_changes_writes_nothing_and_exits_200() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    // sops's exit code for an edit that changed nothing.
    let output = exited(200, edit_with(&repo, &path, "touch \"$1\""));
    assert!(text(&output.stderr).contains("unchanged"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn edit_with_changes_keeps_the_ciphertext_of_other_values() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read_to_string(&path).unwrap();
    // The editor also records the permissions of the private copy and its folder.
    let modes = repo.path("modes");
    let script = format!(
        "stat -c %a \"$(dirname \"$1\")\" \"$1\" > '{}'\nsed -i 's/hunter2/swordfish/' \"$1\"",
        modes.display()
    );
    succeeds(edit_with(&repo, &path, &script));
    assert_eq!(std::fs::read_to_string(&modes).unwrap(), "700\n600\n");
    let after = std::fs::read_to_string(&path).unwrap();
    assert_ne!(line_of(&after, "password"), line_of(&before, "password"));
    assert_eq!(line_of(&after, "user"), line_of(&before, "user"));
    assert_eq!(
        repo.decrypt(&path),
        PLAINTEXT.replace("hunter2", "swordfish")
    );
}

#[test]
fn edit_with_invalid_content_aborts_without_a_terminal() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let output = fails(edit_with(
        &repo,
        &path,
        "printf 'db: [unclosed\\n' > \"$1\"",
    ));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("left unchanged"), "{stderr}");
    assert!(
        !stderr.contains("unclosed") && !stderr.contains("hunter2"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn edit_aborts_when_the_editor_fails() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let output = fails(edit_with(
        &repo,
        &path,
        "sed -i 's/hunter2/swordfish/' \"$1\"\nexit 3",
    ));
    assert!(text(&output.stderr).contains("failed"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// Ctrl-C while the editor is open reaches capstan and the editor alike; the editor here
/// sends it to capstan (its parent, or its grandparent when `sh` did not exec it) and then
/// exits as an interrupted editor does.
#[cfg(target_os = "linux")]
#[test]
fn edit_interrupted_removes_the_plaintext_copy() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let script = "for pid in $PPID $(cut -d' ' -f4 /proc/$PPID/stat); do\n\
                  \x20 case $(readlink /proc/$pid/exe) in *capstan) kill -INT $pid;; esac\n\
                  done\n\
                  sleep 0.2\n\
                  exit 130";
    let output = fails(edit_with(&repo, &path, script));
    assert!(text(&output.stderr).contains("failed"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

/// SIGTERM goes to capstan alone (`kill`, a service manager, a CI timeout), not to the editor:
/// capstan must stop the editor and remove the plaintext copy itself. The editor here sends
/// SIGTERM to capstan and then waits much longer than the test would.
#[cfg(target_os = "linux")]
#[test]
fn edit_terminated_stops_the_editor_and_removes_the_plaintext_copy() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let pid_file = repo.path("editor.pid");
    let script = format!(
        "echo $$ > '{}'\n\
         for pid in $PPID $(cut -d' ' -f4 /proc/$PPID/stat); do\n\
         \x20 case $(readlink /proc/$pid/exe) in *capstan) kill -TERM $pid;; esac\n\
         done\n\
         exec sleep 60",
        pid_file.display()
    );
    // Output goes to files, not pipes: capstan's exit is what the test waits for, and an
    // editor left running would still hold pipes open.
    let (stdout, stderr) = (repo.path("stdout"), repo.path("stderr"));
    let status = edit_command(&repo, &path, &script)
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .status()
        .unwrap();
    let editor = std::fs::read_to_string(&pid_file).unwrap();
    let editor_runs = Path::new(&format!("/proc/{}", editor.trim())).exists();
    if editor_runs {
        let _ = Command::new("kill").arg(editor.trim()).status();
    }
    assert_tmpdir_empty(&repo);
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(!editor_runs, "the editor {editor} still runs");
    assert_eq!(
        stderr,
        format!(
            "error: terminated (SIGTERM): the editor was stopped and the plaintext copy \
             removed; `{}` left unchanged\n",
            path.display()
        )
    );
    assert!(std::fs::read(&stdout).unwrap().is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn updatekeys_with_yes_adds_a_recipient_and_both_keys_open_the_file() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let second_key = repo.path("second.txt");
    let second = keygen(&second_key);
    repo.write_config(&[&repo.recipient, &second]);

    let output = succeeds(repo.run(&["secrets", "updatekeys", "--yes", path.to_str().unwrap()]));
    assert!(text(&output.stderr).contains(&format!("+ {second}")));
    assert_eq!(repo.decrypt(&path), PLAINTEXT);
    assert_eq!(repo.decrypt_with(&path, &second_key), PLAINTEXT);
}

#[test]
fn updatekeys_refuses_without_a_terminal_or_yes() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let second = keygen(&repo.path("second.txt"));
    repo.write_config(&[&repo.recipient, &second]);

    let output = fails(repo.run(&["secrets", "updatekeys", path.to_str().unwrap()]));
    assert!(text(&output.stderr).contains("--yes"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn rotate_changes_every_ciphertext_and_keeps_the_values() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read_to_string(&path).unwrap();
    succeeds(repo.run(&["secrets", "rotate", path.to_str().unwrap()]));
    let after = std::fs::read_to_string(&path).unwrap();
    assert_ne!(line_of(&after, "password"), line_of(&before, "password"));
    assert_ne!(line_of(&after, "user"), line_of(&before, "user"));
    assert_ne!(line_of(&after, "mac"), line_of(&before, "mac"));
    assert_eq!(repo.decrypt(&path), PLAINTEXT);
}

#[test]
fn check_reports_a_file_that_must_be_encrypted() {
    let repo = Repo::new();
    repo.encrypted("good.yaml", PLAINTEXT);
    succeeds(repo.run(&["secrets", "check"]));

    std::fs::write(repo.path("secrets/leak.yaml"), PLAINTEXT).unwrap();
    let output = fails(repo.run(&["secrets", "check"]));
    let stdout = text(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("secrets/leak.yaml: not encrypted"),
        "{stdout}"
    );

    let output = fails(repo.run(&["secrets", "check", "-o", "json", "."]));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["clean"], false);
    assert_eq!(report["findings"][0]["problem"], "not-encrypted");
}

#[test]
fn new_sopssecret_encrypts_the_literals_in_memory() {
    let repo = Repo::new();
    std::fs::create_dir_all(repo.path("secrets")).unwrap();
    let output = succeeds(repo.run(&[
        "secrets",
        "new-sopssecret",
        "--name",
        "db",
        "--namespace",
        "apps",
        "--from-literal",
        "password=hunter2",
        "--from-literal",
        "url=postgres://a=b",
        "--output",
        "secrets/db.yaml",
    ]));
    assert!(output.stdout.is_empty());
    let path = repo.path("secrets/db.yaml");
    let encrypted = std::fs::read_to_string(&path).unwrap();
    assert!(encrypted.contains("apiVersion: isindir.github.com/v1alpha3"));
    assert!(encrypted.contains("kind: SopsSecret"));
    assert!(encrypted.contains("encrypted_suffix: Templates"));
    assert!(!encrypted.contains("hunter2"), "{encrypted}");
    assert!(encrypted.contains(&repo.recipient));
    assert_eq!(
        repo.decrypt(&path),
        "apiVersion: isindir.github.com/v1alpha3\n\
         kind: SopsSecret\n\
         metadata:\n    name: db\n    namespace: apps\n\
         spec:\n    secretTemplates:\n        - name: db\n          stringData:\n            \
         password: hunter2\n            url: postgres://a=b\n"
    );
}
