//! `capstan secrets ...` against sops's command line (issue 12): the flags and commands sops
//! users type, and the exit codes scripts written for sops check. Tests that compare with the
//! real sops read it from `CAPSTAN_TEST_SOPS` (set by `scripts/test.sh`) and fail, naming the
//! provisioning command, without it.

mod common;

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

use common::*;

/// The real sops, in the repository, with the repository's key and no `.sops.yaml` search
/// surprises beyond the repository's own.
fn run_sops(repo: &Repo, args: &[&str]) -> Output {
    Command::new(sops())
        .args(args)
        .current_dir(repo.dir.path())
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env("SOPS_AGE_KEY_FILE", &repo.key)
        .env("XDG_CONFIG_HOME", repo.path("no-config"))
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn with_stdin(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

const DOTENV: &str = "# settings\nDB_USER=admin\nDB_PASSWORD=hunter2\n";

/// Item 7: the format comes from `--input-type`/`--output-type` when the name says nothing.
#[test]
fn a_dotenv_file_named_txt_is_encrypted_and_decrypted_as_dotenv_with_the_type_flags() {
    let repo = Repo::new();
    std::fs::write(repo.path("app.txt"), DOTENV).unwrap();
    let args = [
        "secrets",
        "encrypt",
        "--input-type",
        "dotenv",
        "--age",
        &repo.recipient,
    ];
    let output = succeeds(repo.run(&[&args[..], &["-i", "app.txt"]].concat()));
    assert!(output.stdout.is_empty());
    let encrypted = std::fs::read_to_string(repo.path("app.txt")).unwrap();
    assert!(
        encrypted.starts_with("#ENC[AES256_GCM,data:"),
        "{encrypted}"
    );
    assert!(
        encrypted.contains("\nDB_USER=ENC[AES256_GCM,data:"),
        "{encrypted}"
    );
    assert!(encrypted.contains("\nsops_version="), "{encrypted}");
    let plain = succeeds(repo.run(&["secrets", "decrypt", "--input-type", "dotenv", "app.txt"]));
    assert_eq!(text(&plain.stdout), DOTENV);
    let json = succeeds(repo.run(&[
        "secrets",
        "decrypt",
        "--input-type",
        "dotenv",
        "--output-type",
        "json",
        "app.txt",
    ]));
    assert_eq!(
        text(&json.stdout),
        "{\n\t\"DB_USER\": \"admin\",\n\t\"DB_PASSWORD\": \"hunter2\"\n}\n"
    );
    // And so does the real sops, whose output type follows the file name unless given.
    let theirs = run_sops(
        &repo,
        &[
            "decrypt",
            "--input-type",
            "dotenv",
            "--output-type",
            "dotenv",
            "app.txt",
        ],
    );
    assert_eq!(text(&theirs.stdout), DOTENV, "{}", text(&theirs.stderr));
}

/// Item 8: `-` reads standard input, with the type or a name for the rule.
#[test]
fn standard_input_is_encrypted_by_the_rule_of_the_filename_override_and_decrypted_again() {
    let repo = Repo::new();
    let mut command = repo.capstan(&[
        "secrets",
        "encrypt",
        "--filename-override",
        "secrets/from-stdin.yaml",
        "-",
    ]);
    let output = exited(0, with_stdin(command, PLAINTEXT.as_bytes()));
    let encrypted = output.stdout;
    assert!(text(&encrypted).contains(&repo.recipient));
    command = repo.capstan(&["secrets", "decrypt", "--input-type", "yaml", "-"]);
    let output = exited(0, with_stdin(command, &encrypted));
    assert_eq!(text(&output.stdout), PLAINTEXT);

    let output = fails(repo.run(&["secrets", "decrypt", "-"]));
    assert!(text(&output.stderr).contains("needs --input-type"));
    let output = fails(repo.run(&["secrets", "encrypt", "--input-type", "yaml", "-"]));
    assert!(text(&output.stderr).contains("--filename-override"));
}

/// Item 9: `decrypt -i` is supported and private; `--ignore-mac` recovers with a warning.
#[test]
fn decrypt_in_place_writes_private_plaintext_and_ignore_mac_warns() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let encrypted = std::fs::read_to_string(&path).unwrap();
    // Two values swapped: each still authenticates (same path), the MAC does not.
    let (password, user) = (line_of(&encrypted, "password"), line_of(&encrypted, "user"));
    let swapped = encrypted
        .replace(&password, "PASSWORD_LINE")
        .replace(&user, &password.replacen("password", "user", 1))
        .replace("PASSWORD_LINE", &user.replacen("user", "password", 1));
    std::fs::write(repo.path("secrets/swapped.yaml"), &swapped).unwrap();
    let output = exited(
        25,
        repo.run(&["secrets", "decrypt", "secrets/swapped.yaml"]),
    );
    assert!(text(&output.stderr).contains("does not authenticate"));

    let reordered = {
        let (head, rest) = encrypted.split_once("sops:").unwrap();
        let mut lines: Vec<&str> = head.lines().collect();
        lines.swap(1, 2);
        format!("{}\nsops:{rest}", lines.join("\n"))
    };
    std::fs::write(repo.path("secrets/reordered.yaml"), &reordered).unwrap();
    let output = exited(
        51,
        repo.run(&["secrets", "decrypt", "secrets/reordered.yaml"]),
    );
    assert!(
        text(&output.stderr).contains("MAC mismatch"),
        "{}",
        text(&output.stderr)
    );
    let output = succeeds(repo.run(&[
        "secrets",
        "decrypt",
        "--ignore-mac",
        "secrets/reordered.yaml",
    ]));
    assert_eq!(
        text(&output.stdout),
        "db:\n    user: admin\n    password: hunter2\n"
    );
    assert!(
        text(&output.stderr)
            .starts_with("warning: secrets/reordered.yaml: the MAC is not verified")
    );

    succeeds(repo.run(&["secrets", "decrypt", "-i", path.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), PLAINTEXT);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// Item 10: the selection flags, `--mac-only-encrypted` and the threshold override the rule,
/// and the real sops opens the result.
#[test]
fn encrypt_flags_override_the_rule_and_sops_opens_the_result() {
    let repo = Repo::new();
    let plain = "public: 1\npassword: hunter2\n";
    std::fs::create_dir_all(repo.path("secrets")).unwrap();
    std::fs::write(repo.path("secrets/partial.yaml"), plain).unwrap();
    let output = succeeds(repo.run(&[
        "secrets",
        "encrypt",
        "--encrypted-regex",
        "^password$",
        "--mac-only-encrypted",
        "secrets/partial.yaml",
    ]));
    let encrypted = text(&output.stdout);
    assert!(
        encrypted.starts_with("public: 1\npassword: ENC["),
        "{encrypted}"
    );
    assert!(encrypted.contains("    encrypted_regex: ^password$\n"));
    assert!(encrypted.contains("    mac_only_encrypted: true\n"));
    std::fs::write(repo.path("secrets/partial.yaml"), &encrypted).unwrap();
    let theirs = run_sops(&repo, &["decrypt", "secrets/partial.yaml"]);
    assert_eq!(text(&theirs.stdout), plain, "{}", text(&theirs.stderr));

    let output = fails(repo.run(&[
        "secrets",
        "encrypt",
        "--encrypted-regex",
        "a",
        "--unencrypted-suffix",
        "b",
        "secrets/partial.yaml",
    ]));
    assert!(text(&output.stderr).contains("cannot be used with"));

    // Three key groups, any two of which open the file.
    let (second_key, third_key) = (repo.path("second.txt"), repo.path("third.txt"));
    let (second, third) = (keygen(&second_key), keygen(&third_key));
    std::fs::write(
        repo.path(".sops.yaml"),
        format!(
            "creation_rules:\n  - key_groups:\n      - age: [{}]\n      - age: [{second}]\n      - age: [{third}]\n",
            repo.recipient
        ),
    )
    .unwrap();
    std::fs::write(repo.path("groups.yaml"), PLAINTEXT).unwrap();
    let output = succeeds(repo.run(&[
        "secrets",
        "encrypt",
        "--shamir-secret-sharing-threshold",
        "2",
        "groups.yaml",
    ]));
    assert!(text(&output.stdout).contains("    shamir_threshold: 2\n"));
    std::fs::write(repo.path("groups.yaml"), &output.stdout).unwrap();
    let both = repo.path("both.txt");
    std::fs::write(
        &both,
        [
            std::fs::read(&second_key).unwrap(),
            std::fs::read(&third_key).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    assert_eq!(
        repo.decrypt_with(&repo.path("groups.yaml"), &both),
        PLAINTEXT
    );
    let output = repo
        .capstan(&["secrets", "decrypt", "groups.yaml"])
        .env("SOPS_AGE_KEY_FILE", &third_key)
        .output()
        .unwrap();
    let stderr = text(&exited(128, output).stderr);
    assert!(
        stderr.contains("2 of 3 key groups are needed and 1 opened"),
        "{stderr}"
    );
}

/// Item 11: `rotate --add-age/--rm-age`.
#[test]
fn rotate_adds_and_removes_age_recipients() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let other_key = repo.path("other.txt");
    let other = keygen(&other_key);
    succeeds(repo.run(&[
        "secrets",
        "rotate",
        "--add-age",
        &other,
        path.to_str().unwrap(),
    ]));
    assert_eq!(repo.decrypt_with(&path, &other_key), PLAINTEXT);
    assert_eq!(repo.decrypt(&path), PLAINTEXT);
    succeeds(repo.run(&[
        "secrets",
        "rotate",
        "--rm-age",
        &repo.recipient,
        path.to_str().unwrap(),
    ]));
    assert_eq!(repo.decrypt_with(&path, &other_key), PLAINTEXT);
    let content = std::fs::read_to_string(&path).unwrap();
    assert!(!content.contains(&repo.recipient), "{content}");
}

/// Item 12: `set` and `unset` in place, keeping the other ciphertexts; sops reads the result.
#[test]
fn set_and_unset_change_one_value_and_keep_the_others() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let file = path.to_str().unwrap();
    let before = std::fs::read_to_string(&path).unwrap();
    succeeds(repo.run(&[
        "secrets",
        "set",
        file,
        r#"["db"]["password"]"#,
        r#""swordfish""#,
    ]));
    let after = std::fs::read_to_string(&path).unwrap();
    assert_eq!(line_of(&after, "user"), line_of(&before, "user"));
    assert_ne!(line_of(&after, "password"), line_of(&before, "password"));
    succeeds(repo.run(&["secrets", "set", file, r#"["db"]["ports"]"#, "[5432, 5433]"]));
    let mut command = repo.capstan(&["secrets", "set", "--value-stdin", file, r#"["token"]"#]);
    command.stdin(Stdio::piped());
    exited(0, with_stdin(command, b"\"t0ps3cret\"\n"));
    let unchanged = std::fs::read(&path).unwrap();
    succeeds(repo.run(&[
        "secrets",
        "set",
        "--idempotent",
        file,
        r#"["token"]"#,
        r#""t0ps3cret""#,
    ]));
    assert_eq!(std::fs::read(&path).unwrap(), unchanged);
    exited(
        7,
        repo.run(&["secrets", "set", file, r#"["token"]"#, "not json"]),
    );

    succeeds(repo.run(&["secrets", "unset", file, r#"["db"]["user"]"#]));
    exited(
        91,
        repo.run(&["secrets", "unset", file, r#"["db"]["user"]"#]),
    );
    succeeds(repo.run(&[
        "secrets",
        "unset",
        "--idempotent",
        file,
        r#"["db"]["user"]"#,
    ]));
    let expected = "db:\n    password: swordfish\n    ports:\n        - 5432\n        - 5433\ntoken: t0ps3cret\n";
    assert_eq!(repo.decrypt(&path), expected);
    let theirs = run_sops(&repo, &["decrypt", file]);
    assert_eq!(text(&theirs.stdout), expected, "{}", text(&theirs.stderr));
}

/// Item 12: `exec-env`, `exec-file` and `filestatus`.
#[test]
fn exec_env_and_exec_file_run_commands_with_the_secrets_and_filestatus_tells_encrypted() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", "user: admin\npassword: hunter2\nport: 5432\n");
    let file = path.to_str().unwrap();
    let output = succeeds(repo.run(&[
        "secrets",
        "exec-env",
        file,
        "echo \"$user:$password:$port\"",
    ]));
    assert_eq!(text(&output.stdout), "admin:hunter2:5432\n");
    exited(7, repo.run(&["secrets", "exec-env", file, "exit 7"]));
    let nested = repo.encrypted("nested.yaml", PLAINTEXT);
    let output = fails(repo.run(&["secrets", "exec-env", nested.to_str().unwrap(), "true"]));
    assert!(text(&output.stderr).contains("`db` holds a mapping"));

    let tmp = repo.path("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let output = repo
        .capstan(&[
            "secrets",
            "exec-file",
            file,
            "stat -c %a {}; cat {}; exit 3",
        ])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    let output = exited(3, output);
    assert_eq!(
        text(&output.stdout),
        "600\nuser: admin\npassword: hunter2\nport: 5432\n"
    );
    assert_eq!(std::fs::read_dir(&tmp).unwrap().count(), 0);

    let status = succeeds(repo.run(&["secrets", "filestatus", file]));
    assert_eq!(text(&status.stdout), "{\"encrypted\":true}\n");
    std::fs::write(repo.path("plain.yaml"), PLAINTEXT).unwrap();
    let status = succeeds(repo.run(&["secrets", "filestatus", "plain.yaml"]));
    assert_eq!(text(&status.stdout), "{\"encrypted\":false}\n");
    let theirs = run_sops(&repo, &["filestatus", file]);
    assert_eq!(text(&theirs.stdout), "{\"encrypted\":true}\n");
}

/// Item 13: `SOPS_AGE_KEY_CMD` and `SOPS_AGE_RECIPIENTS`; item 3: an unusable identity in a
/// key file is skipped with a note.
#[test]
fn key_cmd_and_recipients_variables_and_post_quantum_identities_are_handled_as_sops() {
    let repo = Repo::new();
    std::fs::write(repo.path("plain.txt"), DOTENV).unwrap();
    let output = repo
        .capstan(&["secrets", "encrypt", "--input-type", "dotenv", "plain.txt"])
        .env("SOPS_AGE_RECIPIENTS", &repo.recipient)
        .output()
        .unwrap();
    let encrypted = succeeds(output).stdout;
    std::fs::write(repo.path("enc.txt"), &encrypted).unwrap();
    let output = repo
        .capstan(&["secrets", "decrypt", "--input-type", "dotenv", "enc.txt"])
        .env_remove("SOPS_AGE_KEY_FILE")
        .env("SOPS_AGE_KEY_CMD", format!("cat '{}'", repo.key.display()))
        .output()
        .unwrap();
    assert_eq!(text(&succeeds(output).stdout), DOTENV);

    let mixed = repo.path("mixed.txt");
    let key = std::fs::read_to_string(&repo.key).unwrap();
    std::fs::write(
        &mixed,
        format!("AGE-SECRET-KEY-PQ-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n{key}"),
    )
    .unwrap();
    let output = repo
        .capstan(&["secrets", "decrypt", "--input-type", "dotenv", "enc.txt"])
        .env("SOPS_AGE_KEY_FILE", &mixed)
        .output()
        .unwrap();
    let output = succeeds(output);
    assert_eq!(text(&output.stdout), DOTENV);
    assert_eq!(
        text(&output.stderr),
        format!(
            "note: skipped a post-quantum (ML-KEM-768 + X25519) age identity on line 1 of \
             `{}`: capstan's age library cannot use it\n",
            mixed.display()
        )
    );
}

/// Item 6: `--config my.yaml`, a bare relative name, in encrypt, updatekeys and check.
#[test]
fn a_config_named_by_a_bare_file_name_works_everywhere() {
    let repo = Repo::new();
    std::fs::rename(repo.path(".sops.yaml"), repo.path("my.yaml")).unwrap();
    std::fs::create_dir_all(repo.path("secrets")).unwrap();
    std::fs::write(repo.path("secrets/app.yaml"), PLAINTEXT).unwrap();
    let with = |args: &[&str]| repo.run(&[&["secrets", "--config", "my.yaml"], args].concat());
    succeeds(with(&["encrypt", "-i", "secrets/app.yaml"]));
    let output = succeeds(with(&["updatekeys", "-y", "secrets/app.yaml"]));
    assert!(text(&output.stderr).contains("recipients already match"));
    succeeds(with(&["check", "secrets"]));
}

/// Item 14: the exit codes scripts written for sops check, side by side with sops.
#[test]
fn exit_codes_match_sops_for_the_failures_scripts_check() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let file = path.to_str().unwrap();
    let stranger = repo.path("stranger.txt");
    keygen(&stranger);
    let both = |capstan: Output, sops: Output, code: i32, what: &str| {
        assert_eq!(
            capstan.status.code(),
            Some(code),
            "capstan, {what}: {}",
            text(&capstan.stderr)
        );
        assert_eq!(
            sops.status.code(),
            Some(code),
            "sops, {what}: {}",
            text(&sops.stderr)
        );
    };
    both(
        repo.run(&["secrets", "decrypt", "missing.yaml"]),
        run_sops(&repo, &["decrypt", "missing.yaml"]),
        100,
        "missing file",
    );
    both(
        repo.run(&["secrets", "encrypt", "--age", &repo.recipient, file]),
        run_sops(&repo, &["encrypt", "--age", &repo.recipient, file]),
        203,
        "already encrypted",
    );
    let capstan = repo
        .capstan(&["secrets", "decrypt", file])
        .env("SOPS_AGE_KEY_FILE", &stranger)
        .output()
        .unwrap();
    let mut sops = Command::new(sops());
    let sops = sops
        .args(["decrypt", file])
        .env("SOPS_AGE_KEY_FILE", &stranger)
        .env("XDG_CONFIG_HOME", repo.path("no-config"))
        .output()
        .unwrap();
    both(capstan, sops, 128, "no key");
    let encrypted = std::fs::read_to_string(&path).unwrap();
    let (head, rest) = encrypted.split_once("sops:").unwrap();
    let mut lines: Vec<&str> = head.lines().collect();
    lines.swap(1, 2);
    std::fs::write(
        repo.path("reordered.yaml"),
        format!("{}\nsops:{rest}", lines.join("\n")),
    )
    .unwrap();
    both(
        repo.run(&["secrets", "decrypt", "reordered.yaml"]),
        run_sops(&repo, &["decrypt", "reordered.yaml"]),
        51,
        "MAC mismatch",
    );
}
