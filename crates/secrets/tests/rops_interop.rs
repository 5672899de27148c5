//! `rops`, the Rust SOPS crate the project names, as a second implementation: a file capstan
//! encrypts opens with rops, and a file rops encrypts opens with capstan. rops reads age
//! identities only from its environment, so the test runs its body in a child process that has
//! one (setting variables in a running test process would race with the other tests).

use std::process::Command;

use capstan_secrets::{
    EncryptOptions, Format, Identities, Identity, KeySources, Recipients, SopsFile,
};
use rops::cryptography::cipher::AES256GCM;
use rops::cryptography::hasher::SHA512;
use rops::file::RopsFile;
use rops::file::builder::RopsFileBuilder;
use rops::file::format::YamlFileFormat;
use rops::file::state::EncryptedFile;
use rops::integration::{AgeIntegration, Integration};

const PLAINTEXT: &str = "database:\n    user: admin\n    password: hunter2\nreplicas: 3\n";
const KEY_FILE: &str = "ROPS_AGE_KEY_FILE";

type Encrypted = RopsFile<EncryptedFile<AES256GCM, SHA512>, YamlFileFormat>;

#[test]
fn rops_and_capstan_open_each_others_files() {
    let Some(key_file) = std::env::var_os(KEY_FILE) else {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys.txt");
        Identity::generate().write_key_file(&key).unwrap();
        // rops reads every line of a key file as a key; sops and capstan skip `#` comments.
        let bare = dir.path().join("bare.txt");
        let text = std::fs::read_to_string(&key).unwrap();
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        std::fs::write(&bare, lines.join("\n")).unwrap();
        let status = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "rops_and_capstan_open_each_others_files"])
            .env(KEY_FILE, &bare)
            .env_remove("ROPS_AGE")
            .status()
            .unwrap();
        assert!(
            status.success(),
            "the run with rops' key in the environment failed"
        );
        return;
    };
    let sources = KeySources {
        age_key_file: Some(key_file.into()),
        ..KeySources::default()
    };
    let identities = Identities::from_sources(&sources).unwrap();
    let recipient = identities.recipients().next().unwrap();

    let options = EncryptOptions {
        recipients: Recipients::any_of([recipient.clone()]),
        ..EncryptOptions::default()
    };
    let by_capstan =
        SopsFile::encrypt("s.yaml", Format::Yaml, PLAINTEXT.as_bytes(), &options).unwrap();
    let text = String::from_utf8(by_capstan.to_bytes()).unwrap();
    let opened = text
        .parse::<Encrypted>()
        .unwrap()
        .decrypt::<YamlFileFormat>()
        .unwrap();
    let opened = opened.to_string();
    assert!(
        opened.contains("password: hunter2") && opened.contains("replicas: 3"),
        "{opened}"
    );

    let key: <AgeIntegration as Integration>::KeyId = recipient.to_string().parse().unwrap();
    let by_rops = RopsFileBuilder::<YamlFileFormat>::new(PLAINTEXT)
        .unwrap()
        .add_integration_key::<AgeIntegration>(key)
        .encrypt::<AES256GCM, SHA512>()
        .unwrap()
        .to_string();
    let file = SopsFile::parse("r.yaml", Format::Yaml, by_rops.as_bytes()).unwrap();
    let plaintext = file.decrypt(&identities).unwrap().to_plaintext();
    let plaintext = std::str::from_utf8(&plaintext).unwrap();
    assert!(
        plaintext.contains("password: hunter2") && plaintext.contains("replicas: 3"),
        "{plaintext}"
    );
}
