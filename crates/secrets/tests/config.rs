//! `.sops.yaml` creation rules, and `check` over a repository.

mod common;

use capstan_secrets::{
    CheckOptions, Config, EncryptOptions, Error, Format, Identity, Problem, Recipients, Selection,
    SopsFile, check,
};
use std::path::Path;

fn config(folder: &Path, text: &str) -> Config {
    let path = folder.join(".sops.yaml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

#[test]
fn the_first_rule_whose_regex_matches_the_relative_path_wins() {
    let folder = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Identity::generate().recipient(),
        Identity::generate().recipient(),
        Identity::generate().recipient(),
    );
    let config = config(
        folder.path(),
        &format!(
            "creation_rules:\n  - path_regex: ^prod/.*\\.yaml$\n    age: '{a}, {b}'\n    encrypted_regex: ^(data|stringData)$\n    mac_only_encrypted: true\n\
             \x20 - path_regex: \\.yaml$\n    key_groups:\n      - age: [{a}]\n      - age:\n          - {b}\n        merge:\n          - age: [{c}]\n    shamir_threshold: 1\n\
             \x20 - age:\n      - {c}\n"
        ),
    );
    let prod = config
        .rule_for(&folder.path().join("prod/app.yaml"))
        .unwrap();
    assert_eq!(
        prod.encrypt_options(),
        EncryptOptions {
            recipients: Recipients::any_of([a.clone(), b.clone()]),
            selection: Selection::EncryptedRegex("^(data|stringData)$".into()),
            mac_only_encrypted: true,
        }
    );
    let grouped = config
        .rule_for(&folder.path().join("staging/app.yaml"))
        .unwrap();
    // As in sops, a group's `merge`d keys come before its own.
    assert_eq!(grouped.recipients().groups, [vec![a], vec![c.clone(), b]]);
    assert_eq!(grouped.recipients().shamir_threshold, Some(1));
    // `^prod/` sees the path relative to the config's folder, so an outside file misses it.
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(
        config
            .rule_for(&outside.path().join("prod/x.json"))
            .unwrap()
            .recipients()
            .groups,
        [vec![c]]
    );
}

#[test]
fn no_matching_rule_names_the_file_and_the_config() {
    let folder = tempfile::tempdir().unwrap();
    let recipient = Identity::generate().recipient();
    let config = config(
        folder.path(),
        &format!("creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {recipient}\n"),
    );
    let file = folder.path().join("plain.txt");
    let error = config.rule_for(&file).unwrap_err();
    assert!(
        matches!(&error, Error::NoMatchingRule { path, config: c } if *path == file && c == config.path())
    );
    let message = error.to_string();
    assert!(
        message.contains("plain.txt") && message.contains(".sops.yaml"),
        "{message}"
    );
    assert_eq!(
        Config::find(&folder.path().join("sub/dir"))
            .unwrap()
            .unwrap()
            .path(),
        config.path()
    );
}

#[test]
fn invalid_and_unusable_rules_are_reported() {
    let folder = tempfile::tempdir().unwrap();
    let two = "creation_rules:\n  - age: age1x\n    encrypted_suffix: a\n    encrypted_regex: b\n";
    let error = Config::parse(folder.path().join(".sops.yaml"), two).unwrap_err();
    assert!(matches!(error, Error::Config { .. }), "{error:?}");
    let pgp = Config::parse(
        folder.path().join(".sops.yaml"),
        "creation_rules:\n  - pgp: ABCDEF\n",
    )
    .unwrap();
    let error = pgp.rule_for(&folder.path().join("a.yaml")).unwrap_err();
    assert!(error.to_string().contains("uses `pgp` keys"), "{error}");
}

#[test]
fn check_reports_plaintext_foreign_recipients_and_tampering() {
    let folder = tempfile::tempdir().unwrap();
    let (identities, recipients) = common::key();
    let recipient = recipients.groups[0][0].clone();
    let config = config(
        folder.path(),
        &format!("creation_rules:\n  - path_regex: secrets/\n    age: {recipient}\n"),
    );
    let secrets = folder.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(folder.path().join("README.md"), "not a secret").unwrap();
    std::fs::write(secrets.join("plain.yaml"), "password: hunter2\n").unwrap();
    let write = |name: &str, recipients: &Recipients| {
        let options = EncryptOptions {
            recipients: recipients.clone(),
            ..EncryptOptions::default()
        };
        let file = SopsFile::encrypt(
            secrets.join(name),
            Format::Yaml,
            b"password: hunter2\n",
            &options,
        )
        .unwrap();
        file.write().unwrap();
        String::from_utf8(file.to_bytes()).unwrap()
    };
    write("good.yaml", &recipients);
    write(
        "other.yaml",
        &Recipients::any_of([recipient.clone(), Identity::generate().recipient()]),
    );
    let tampered = write("tampered.yaml", &recipients).replace("password:", "passwort:");
    std::fs::write(secrets.join("tampered.yaml"), tampered).unwrap();

    let report = check(
        &[folder.path().to_owned()],
        &CheckOptions {
            config: &config,
            identities: Some(&identities),
        },
    )
    .unwrap();
    assert_eq!(report.checked.len(), 4, "{report:?}");
    let found: Vec<(String, &Problem)> = report
        .findings
        .iter()
        .map(|finding| {
            (
                finding
                    .path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                &finding.problem,
            )
        })
        .collect();
    assert!(
        matches!(found[0], (ref name, Problem::RecipientsDiffer(changes)) if name == "other.yaml" && changes.removed.len() == 1),
        "{found:?}"
    );
    assert!(
        matches!(found[1], (ref name, Problem::NotEncrypted) if name == "plain.yaml"),
        "{found:?}"
    );
    assert!(
        matches!(found[2], (ref name, Problem::IntegrityFailed(_)) if name == "tampered.yaml"),
        "{found:?}"
    );
    assert_eq!(found.len(), 3);
}
