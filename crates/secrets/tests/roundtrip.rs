//! Files capstan writes decrypt again, follow the sops 3.13 layout, and honour every option.

mod common;

use capstan_secrets::{
    Edit, EncryptOptions, Error, Format, Identities, Identity, Recipients, Selection, SopsFile,
    Value,
};
use common::key;

const SAMPLE: &str = "\
# a top-level comment
db:
    user: admin
    password: hunter2
    port_unencrypted: 5432
    replicas:
        - one
        - two
flags:
    enabled: true
    ratio: 0.25
    # note above the token
    token: abc
";

/// `SAMPLE` encrypted as `s.yaml` with the default options.
fn sample_file(recipients: Recipients) -> SopsFile {
    let options = EncryptOptions {
        recipients,
        ..EncryptOptions::default()
    };
    SopsFile::encrypt("s.yaml", Format::Yaml, SAMPLE.as_bytes(), &options).unwrap()
}

fn encrypt(format: Format, plaintext: &str, options: &EncryptOptions) -> String {
    let file = SopsFile::encrypt("sample", format, plaintext.as_bytes(), options).unwrap();
    String::from_utf8(file.to_bytes()).unwrap()
}

fn decrypt(format: Format, encrypted: &str, identities: &Identities) -> Result<String, Error> {
    let file = SopsFile::parse("sample", format, encrypted.as_bytes())?;
    let plaintext = file.decrypt(identities)?.to_plaintext();
    Ok(String::from_utf8(plaintext.to_vec()).unwrap())
}

/// The lines of the encrypted document (before `sops:`) whose value is still plaintext.
fn plaintext_lines(encrypted: &str) -> Vec<String> {
    encrypted
        .lines()
        .take_while(|line| *line != "sops:")
        .filter(|line| !line.contains("ENC[") && !line.trim_end().ends_with(':'))
        .map(|line| line.trim().to_owned())
        .collect()
}

/// A fresh key, and options that encrypt every value to it.
fn key_and_default_options() -> (Identities, EncryptOptions) {
    let (identities, recipients) = key();
    let options = EncryptOptions {
        recipients,
        ..EncryptOptions::default()
    };
    (identities, options)
}

#[test]
fn yaml_round_trips_with_comments_and_every_value_type() {
    let (identities, options) = key_and_default_options();
    let plaintext = format!(
        "{SAMPLE}types:\n    int: -12\n    float: 1.5e+06\n    bool: false\n    none: null\n    empty: \"\"\n    \
         when: 2024-01-02T03:04:05Z\n    bytes: !!binary /w==\n    quoted: \"123\"\n    multi: |\n        line 1\n        line 2\n"
    );
    let encrypted = encrypt(Format::Yaml, &plaintext, &options);
    assert!(
        encrypted.contains("#ENC[AES256_GCM,"),
        "comments are encrypted:\n{encrypted}"
    );
    for kind in ["str", "int", "float", "bool", "time", "bytes", "comment"] {
        assert!(
            encrypted.contains(&format!(",type:{kind}]")),
            "type {kind}:\n{encrypted}"
        );
    }
    assert_eq!(
        plaintext_lines(&encrypted),
        ["port_unencrypted: 5432", "none: null", "empty: \"\""]
    );
    assert_eq!(
        decrypt(Format::Yaml, &encrypted, &identities).unwrap(),
        plaintext
    );
}

#[test]
fn written_yaml_follows_the_sops_3_13_layout() {
    let (_, recipients) = key();
    let recipient = recipients.groups[0][0].to_string();
    let encrypted = encrypt(
        Format::Yaml,
        SAMPLE,
        &EncryptOptions {
            recipients,
            ..EncryptOptions::default()
        },
    );
    let block: Vec<&str> = encrypted
        .lines()
        .skip_while(|line| *line != "sops:")
        .collect();
    assert_eq!(
        block[1..4],
        [
            "    age:",
            "        - enc: |",
            "            -----BEGIN AGE ENCRYPTED FILE-----"
        ]
    );
    let tail: Vec<&str> = block
        .iter()
        .copied()
        .skip_while(|line| !line.contains("-----END"))
        .collect();
    assert_eq!(tail[1], format!("          recipient: {recipient}"));
    assert!(
        tail[2].starts_with("    lastmodified: \"") && tail[2].ends_with("Z\""),
        "{}",
        tail[2]
    );
    assert!(
        tail[3].starts_with("    mac: ENC[AES256_GCM,data:") && tail[3].ends_with(",type:str]")
    );
    assert_eq!(
        tail[4..],
        [
            "    unencrypted_suffix: _unencrypted",
            "    version: 3.13.2"
        ]
    );
    assert!(
        encrypted.contains("\n    replicas:\n        - ENC["),
        "sequences are indented:\n{encrypted}"
    );
}

#[test]
fn each_selection_option_encrypts_exactly_what_it_selects() {
    let (identities, recipients) = key();
    let db_plain = [
        "user: admin",
        "password: hunter2",
        "port_unencrypted: 5432",
        "- one",
        "- two",
    ];
    let all_but = |encrypted: &[&str]| -> Vec<&str> {
        let mut lines = db_plain.to_vec();
        lines.extend([
            "enabled: true",
            "ratio: 0.25",
            "# note above the token",
            "token: abc",
        ]);
        lines.retain(|line| !encrypted.contains(line));
        lines
    };
    let cases = [
        (
            Selection::EncryptedSuffix("word".into()),
            all_but(&["password: hunter2"]),
        ),
        (
            Selection::UnencryptedSuffix("_unencrypted".into()),
            vec!["port_unencrypted: 5432"],
        ),
        (
            Selection::EncryptedRegex("^(password|token)$".into()),
            all_but(&["password: hunter2", "token: abc"]),
        ),
        (
            Selection::UnencryptedRegex("^(db|enabled)$".into()),
            all_but(&["ratio: 0.25", "# note above the token", "token: abc"]),
        ),
        // The marker comment itself stays readable; what follows it is encrypted.
        (
            Selection::EncryptedCommentRegex("note".into()),
            all_but(&["token: abc"]),
        ),
        (
            Selection::UnencryptedCommentRegex("note".into()),
            vec!["# note above the token", "token: abc"],
        ),
    ];
    for (selection, plaintext) in cases {
        let options = EncryptOptions {
            recipients: recipients.clone(),
            selection: selection.clone(),
            ..EncryptOptions::default()
        };
        let encrypted = encrypt(Format::Yaml, SAMPLE, &options);
        let visible: Vec<String> = plaintext_lines(&encrypted)
            .into_iter()
            .filter(|line| line != "# a top-level comment")
            .collect();
        assert_eq!(visible, plaintext, "{selection:?}:\n{encrypted}");
        assert_eq!(
            decrypt(Format::Yaml, &encrypted, &identities).unwrap(),
            SAMPLE,
            "{selection:?}"
        );
    }
}

#[test]
fn mac_only_encrypted_lets_plaintext_values_change_and_the_full_mac_does_not() {
    let (identities, recipients) = key();
    for mac_only_encrypted in [true, false] {
        let options = EncryptOptions {
            recipients: recipients.clone(),
            selection: Selection::EncryptedSuffix("word".into()),
            mac_only_encrypted,
        };
        let encrypted = encrypt(Format::Yaml, SAMPLE, &options);
        assert_eq!(
            encrypted.contains("    mac_only_encrypted: true\n"),
            mac_only_encrypted
        );
        let altered = encrypted.replace("user: admin", "user: root");
        let result = decrypt(Format::Yaml, &altered, &identities);
        if mac_only_encrypted {
            assert_eq!(result.unwrap(), SAMPLE.replace("user: admin", "user: root"));
        } else {
            assert!(matches!(result, Err(Error::Integrity { .. })), "{result:?}");
        }
    }
}

#[test]
fn key_groups_need_the_shamir_threshold_of_groups() {
    let identities: Vec<Identity> = (0..3).map(|_| Identity::generate()).collect();
    let recipients = Recipients {
        groups: identities
            .iter()
            .map(|identity| vec![identity.recipient()])
            .collect(),
        shamir_threshold: Some(2),
    };
    let encrypted = encrypt(
        Format::Yaml,
        SAMPLE,
        &EncryptOptions {
            recipients,
            ..EncryptOptions::default()
        },
    );
    assert!(
        encrypted.contains("\n    key_groups:\n        - age:\n            - enc: |\n"),
        "{encrypted}"
    );
    assert!(
        encrypted.contains("\n          hc_vault: []\n")
            && encrypted.contains("\n    shamir_threshold: 2\n")
    );
    let two: Identities = identities[1..].iter().cloned().collect();
    assert_eq!(decrypt(Format::Yaml, &encrypted, &two).unwrap(), SAMPLE);
    let one: Identities = identities[..1].iter().cloned().collect();
    let error = decrypt(Format::Yaml, &encrypted, &one).unwrap_err();
    assert!(
        matches!(error, Error::NoMatchingIdentity { .. }),
        "{error:?}"
    );
}

#[test]
fn json_dotenv_and_binary_round_trip() {
    let (identities, options) = key_and_default_options();
    let json = "{\n\t\"a\": \"x\",\n\t\"n\": 1,\n\t\"f\": 1.5,\n\t\"list\": [\n\t\ttrue,\n\t\tnull\n\t],\n\t\"empty\": {}\n}\n";
    let encrypted = encrypt(Format::Json, json, &options);
    assert!(
        encrypted.starts_with("{\n\t\"a\": \"ENC[AES256_GCM,") && encrypted.ends_with("\n\t}\n}\n"),
        "{encrypted}"
    );
    assert!(
        encrypted.contains(",type:int]") && encrypted.contains("\n\t\t\"version\": \"3.13.2\"")
    );
    assert_eq!(
        decrypt(Format::Json, &encrypted, &identities).unwrap(),
        json
    );

    let dotenv = "#comment\nKEY=value\nMULTI=a\\nb\n";
    let encrypted = encrypt(Format::Dotenv, dotenv, &options);
    assert!(
        encrypted.contains("\nsops_age__list_0__map_enc=-----BEGIN AGE ENCRYPTED FILE-----\\n"),
        "{encrypted}"
    );
    assert!(encrypted.contains("\nsops_version=3.13.2\n"));
    assert_eq!(
        decrypt(Format::Dotenv, &encrypted, &identities).unwrap(),
        dotenv
    );

    let binary = [0u8, 159, 146, 150, 10];
    let file = SopsFile::encrypt("blob", Format::Binary, &binary, &options).unwrap();
    let encrypted = String::from_utf8(file.to_bytes()).unwrap();
    assert!(
        encrypted.contains(",type:str]") && !encrypted.contains("unencrypted_suffix"),
        "{encrypted}"
    );
    let file = SopsFile::parse("blob", Format::Binary, encrypted.as_bytes()).unwrap();
    assert_eq!(
        file.decrypt(&identities).unwrap().to_plaintext().as_slice(),
        binary
    );
}

#[test]
fn editing_keeps_unchanged_ciphertexts_and_reports_no_change() {
    let (identities, recipients) = key();
    let file = sample_file(recipients);
    let before = String::from_utf8(file.to_bytes()).unwrap();
    let decrypted = file.decrypt(&identities).unwrap();
    assert!(matches!(
        decrypted.edit(SAMPLE.as_bytes()).unwrap(),
        Edit::Unchanged
    ));
    let Edit::Changed(edited) = decrypted
        .edit(SAMPLE.replace("hunter2", "correct horse").as_bytes())
        .unwrap()
    else {
        panic!("an edit went unnoticed");
    };
    let after = String::from_utf8(edited.to_bytes()).unwrap();
    let changed: Vec<_> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.trim().split(':').next().unwrap().to_owned())
        .collect();
    assert!(
        changed.first().is_some_and(|key| key == "password"),
        "{changed:?}"
    );
    assert!(
        changed
            .iter()
            .skip(1)
            .all(|key| key == "lastmodified" || key == "mac"),
        "{changed:?}"
    );
    let error = decrypted
        .edit(b"db: [unclosed\npassword: hunter2\n")
        .unwrap_err();
    assert!(
        matches!(error, Error::Syntax { .. }) && !format!("{error:?}").contains("hunter2"),
        "{error:?}"
    );
}

#[test]
fn update_keys_keeps_the_data_key_and_rotate_replaces_it() {
    let (old_identities, recipients) = key();
    let mut file = sample_file(recipients.clone());
    let values_before = String::from_utf8(file.to_bytes())
        .unwrap()
        .split("sops:")
        .next()
        .unwrap()
        .to_owned();
    let (new_identities, new_recipients) = key();
    let new = new_recipients.groups[0][0].clone();
    let both = Recipients::any_of([recipients.groups[0][0].clone(), new.clone()]);
    let changes = file.update_keys(&old_identities, &both).unwrap();
    assert_eq!(
        (changes.added, changes.removed.len()),
        (vec![new.to_string()], 0)
    );
    assert!(file.update_keys(&new_identities, &both).unwrap().is_empty());
    let after = String::from_utf8(file.to_bytes()).unwrap();
    assert!(
        after.starts_with(&values_before),
        "values and their ciphertexts stay"
    );
    assert_eq!(
        file.decrypt(&new_identities)
            .unwrap()
            .to_plaintext()
            .as_slice(),
        SAMPLE.as_bytes()
    );

    let removed = file
        .update_keys(&new_identities, &new_recipients)
        .unwrap()
        .removed;
    assert_eq!(removed, [recipients.groups[0][0].to_string()]);
    assert!(matches!(
        file.decrypt(&old_identities),
        Err(Error::NoMatchingIdentity { .. })
    ));

    let rotated = file.decrypt(&new_identities).unwrap().rotate().unwrap();
    let rotated_text = String::from_utf8(rotated.to_bytes()).unwrap();
    assert!(!rotated_text.starts_with(&values_before[..values_before.find("ENC[").unwrap() + 30]));
    assert_eq!(
        rotated
            .decrypt(&new_identities)
            .unwrap()
            .to_plaintext()
            .as_slice(),
        SAMPLE.as_bytes()
    );
}

#[test]
fn extract_gives_raw_strings_and_formatted_values() {
    let (identities, recipients) = key();
    let file = sample_file(recipients);
    let decrypted = file.decrypt(&identities).unwrap();
    assert_eq!(
        decrypted
            .extract(r#"["db"]["password"]"#)
            .unwrap()
            .as_slice(),
        b"hunter2"
    );
    assert_eq!(
        decrypted
            .extract(r#"["db"]['replicas'][1]"#)
            .unwrap()
            .as_slice(),
        b"two"
    );
    assert_eq!(
        decrypted
            .extract(r#"["db"]["replicas"]"#)
            .unwrap()
            .as_slice(),
        b"- one\n- two\n"
    );
    assert_eq!(
        decrypted
            .extract(r#"["flags"]["enabled"]"#)
            .unwrap()
            .as_slice(),
        b"true\n"
    );
    assert!(matches!(
        decrypted.extract(r#"["db"]["nope"]"#),
        Err(Error::NoSuchPath { .. })
    ));
    assert_eq!(
        decrypted
            .tree()
            .get(&capstan_secrets::parse_path(r#"["flags"]["ratio"]"#).unwrap()),
        Some(&Value::Float(0.25))
    );
}

#[test]
fn files_are_written_atomically_and_key_files_privately() {
    let folder = tempfile::tempdir().unwrap();
    let identity = Identity::generate();
    let key_path = folder.path().join("keys.txt");
    let recipient = identity.write_key_file(&key_path).unwrap();
    assert!(
        identity.write_key_file(&key_path).is_err(),
        "an existing key file is never overwritten"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let sources = capstan_secrets::KeySources {
        age_key_file: Some(key_path),
        ..Default::default()
    };
    let identities = Identities::from_sources(&sources).unwrap();

    let path = folder.path().join("s.yaml");
    let options = EncryptOptions {
        recipients: Recipients::any_of([recipient]),
        ..EncryptOptions::default()
    };
    SopsFile::encrypt(&path, Format::Yaml, SAMPLE.as_bytes(), &options)
        .unwrap()
        .write()
        .unwrap();
    let file = SopsFile::read(&path).unwrap();
    assert_eq!(
        file.decrypt(&identities).unwrap().to_plaintext().as_slice(),
        SAMPLE.as_bytes()
    );
    file.write().unwrap();
    let names: Vec<_> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "no temporary file is left behind: {names:?}"
    );
}

#[test]
fn identities_come_from_every_sops_source() {
    let folder = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        Identity::generate(),
        Identity::generate(),
        Identity::generate(),
    );
    std::fs::create_dir_all(folder.path().join("sops/age")).unwrap();
    std::fs::write(
        folder.path().join("sops/age/keys.txt"),
        c.to_key_file("2024-01-01T00:00:00Z").as_bytes(),
    )
    .unwrap();
    std::fs::write(
        folder.path().join("b.txt"),
        b.to_key_file("2024-01-01T00:00:00Z").as_bytes(),
    )
    .unwrap();
    let sources = capstan_secrets::KeySources {
        age_key: Some(a.to_key_file("2024-01-01T00:00:00Z")),
        age_key_file: Some(folder.path().join("b.txt")),
        config_dir: Some(folder.path().to_owned()),
        ..capstan_secrets::KeySources::default()
    };
    let identities = Identities::from_sources(&sources).unwrap();
    for identity in [a, b, c] {
        let options = EncryptOptions {
            recipients: Recipients::any_of([identity.recipient()]),
            ..EncryptOptions::default()
        };
        let encrypted = encrypt(Format::Yaml, SAMPLE, &options);
        assert_eq!(
            decrypt(Format::Yaml, &encrypted, &identities).unwrap(),
            SAMPLE
        );
    }
    let missing = capstan_secrets::KeySources {
        age_key_file: Some(folder.path().join("nope")),
        ..Default::default()
    };
    assert!(matches!(
        Identities::from_sources(&missing),
        Err(Error::Io { .. })
    ));
}
