//! Files written by the real sops (3.7 to 3.13) decrypt, verify their MAC and, for the 3.13
//! ones, are reproduced byte for byte.

mod common;

use capstan_secrets::{Edit, Error, Format, SopsFile, Tree};
use common::{identities, vectors, without_comments};
use std::path::Path;

/// The plaintext tree of a `*_plaintext.yaml` / `*-raw-*.yaml` file, without comments.
fn plaintext(path: &Path) -> Tree {
    let bytes = std::fs::read(path).unwrap();
    without_comments(&Tree::parse(path, Format::from_path(path), &bytes).unwrap())
}

fn decrypt(file: &Path, key: &Path) -> Tree {
    let file = SopsFile::read(file).unwrap();
    without_comments(file.decrypt(&identities(key)).unwrap().tree())
}

#[test]
fn rops_vectors_decrypt_to_their_plaintext() {
    let Some(dir) = vectors("rops_vectors_decrypt_to_their_plaintext") else {
        return;
    };
    let dir = dir.join("rops");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix("age_")
            .and_then(|n| n.strip_suffix(".yaml"))
        else {
            continue;
        };
        if stem.ends_with("_plaintext") {
            continue;
        }
        let expected = plaintext(&dir.join(format!("age_{stem}_plaintext.yaml")));
        assert_eq!(decrypt(&path, &dir.join("age-key.txt")), expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7);
}

#[test]
fn operator_vectors_decrypt_to_their_plaintext() {
    let Some(dir) = vectors("operator_vectors_decrypt_to_their_plaintext") else {
        return;
    };
    let dir = dir.join("sops-secrets-operator");
    for (encrypted, raw) in [
        ("00-test-secrets.yaml", "00-raw-test-secrets.yaml"),
        ("02-test-secrets.yaml", "02-raw-test-secrets.yaml"),
        (
            "03-test-secrets-enforce-ownership.yaml",
            "03-raw-test-secrets-enforce-ownership.yaml",
        ),
        (
            "04-test-secrets-mac-only.yaml",
            "04-raw-test-secrets-mac-only.yaml",
        ),
    ] {
        let decrypted = decrypt(&dir.join(encrypted), &dir.join("key-file.txt"));
        // The operator's Makefile wrote `Pa$$word` through make, which expanded `$$` to its
        // process id before sops encrypted it; the MAC vouches for the decrypted value.
        let raw = std::fs::read_to_string(dir.join(raw))
            .unwrap()
            .replace("Pa$$word", "Pa58163word");
        let expected = without_comments(
            &Tree::parse(Path::new(encrypted), Format::Yaml, raw.as_bytes()).unwrap(),
        );
        assert_eq!(decrypted, expected, "{encrypted}");
    }
}

#[test]
fn a_tampered_vector_fails_its_integrity_check_without_showing_values() {
    let Some(dir) = vectors("a_tampered_vector_fails_its_integrity_check_without_showing_values")
    else {
        return;
    };
    let dir = dir.join("sops-secrets-operator");
    let file = SopsFile::read(dir.join("01-test-secrets.yaml")).unwrap();
    let error = file
        .decrypt(&identities(&dir.join("key-file.txt")))
        .unwrap_err();
    assert!(matches!(error, Error::Integrity { .. }), "{error:?}");
    let message = format!("{error:?}");
    let raw = std::fs::read_to_string(dir.join("01-raw-test-secrets.yaml")).unwrap();
    for line in raw.lines() {
        if let Some((_, value)) = line.split_once(": ") {
            let value = value.trim();
            assert!(
                value.len() < 8 || !message.contains(value),
                "{message} shows `{value}`"
            );
        }
    }
}

#[test]
fn sops_nix_and_helm_secrets_vectors_verify_their_mac_in_every_format() {
    let Some(dir) = vectors("sops_nix_and_helm_secrets_vectors_verify_their_mac_in_every_format")
    else {
        return;
    };
    let nix = dir.join("sops-nix");
    let keys = identities(&nix.join("age-keys.txt"));
    let file = SopsFile::read(nix.join("secrets.yaml")).unwrap();
    assert!(!file.decrypt(&keys).unwrap().to_plaintext().is_empty());
    // The JSON, dotenv, INI and binary files of sops-nix are encrypted to PGP keys only:
    // their metadata must still be read, and the error must say which keys they are and
    // that capstan cannot use them (issue 12, item 5).
    for name in ["secrets.json", "secrets.env", "secrets.ini", "secrets.bin"] {
        let file = SopsFile::read(nix.join(name)).unwrap();
        assert_eq!(file.recipients(), [Vec::<String>::new()], "{name}");
        let error = file.decrypt(&keys).unwrap_err();
        assert!(
            matches!(error, Error::NoMatchingIdentity { .. }),
            "{name}: {error:?}"
        );
        let keys = if name.ends_with(".env") || name.ends_with(".ini") {
            "PGP key 7FB89715AADA920D65D25E63F9BA9DEBD03F57C0, PGP key \
             2504791468B153B8A3963CC97BA53D1919C5DFD4, none of which capstan can use"
        } else {
            "PGP key 7FB89715AADA920D65D25E63F9BA9DEBD03F57C0, which capstan cannot use"
        };
        assert_eq!(
            error.to_string(),
            format!(
                "no identity opens the data key of `{}`: it is encrypted to {keys}",
                nix.join(name).display()
            ),
            "{name}"
        );
    }
    let helm = dir.join("helm-secrets");
    let file = SopsFile::read(helm.join("secrets.age.yaml")).unwrap();
    file.decrypt(&identities(&helm.join("key.txt"))).unwrap();
}

#[test]
fn a_file_sops_3_13_wrote_is_reproduced_byte_for_byte() {
    let Some(dir) = vectors("a_file_sops_3_13_wrote_is_reproduced_byte_for_byte") else {
        return;
    };
    let path = dir.join("sops-secrets-operator/04-test-secrets-mac-only.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let file = SopsFile::read(&path).unwrap();
    assert_eq!(String::from_utf8(file.to_bytes()).unwrap(), original);
}

#[test]
fn re_encrypting_a_sops_file_keeps_every_unchanged_ciphertext() {
    let Some(dir) = vectors("re_encrypting_a_sops_file_keeps_every_unchanged_ciphertext") else {
        return;
    };
    let dir = dir.join("sops-secrets-operator");
    let path = dir.join("04-test-secrets-mac-only.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let decrypted = SopsFile::read(&path)
        .unwrap()
        .decrypt(&identities(&dir.join("key-file.txt")))
        .unwrap();
    let edited = String::from_utf8(decrypted.to_plaintext().to_vec())
        .unwrap()
        .replace("test-sopssecret-04", "renamed");
    let Edit::Changed(file) = decrypted.edit(edited.as_bytes()).unwrap() else {
        panic!("the edit changed nothing")
    };
    let rewritten = String::from_utf8(file.to_bytes()).unwrap();
    let changed: Vec<_> = original
        .lines()
        .zip(rewritten.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.trim())
        .collect();
    // The edited value, the MAC and its time, and the version (bumped like `sops edit` does).
    assert_eq!(changed.len(), 4, "{changed:#?}");
    assert!(changed[0].starts_with("name: test-sopssecret-04"));
    assert!(changed[1].starts_with("lastmodified:") && changed[2].starts_with("mac:"));
    assert_eq!(changed[3], "version: 3.13.1");
    assert!(matches!(
        decrypted.edit(&decrypted.to_plaintext()).unwrap(),
        Edit::Unchanged
    ));
}

/// The text with everything random (ciphertexts, age bodies, times) and the version blanked.
fn layout(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| {
            !line
                .trim_start()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        })
        .map(|line| match line.find("ENC[") {
            Some(at) => format!("{}ENC[…]", &line[..at]),
            None if line.contains("lastmodified:") || line.contains("version:") => {
                line.split(':').next().unwrap().to_owned()
            }
            None if line.contains("recipient: age1") => {
                line.split("age1").next().unwrap().to_owned()
            }
            None => line.to_owned(),
        })
        .collect()
}

#[test]
fn a_sopssecret_capstan_writes_has_the_layout_sops_3_13_gave_the_same_input() {
    let Some(dir) =
        vectors("a_sopssecret_capstan_writes_has_the_layout_sops_3_13_gave_the_same_input")
    else {
        return;
    };
    let dir = dir.join("sops-secrets-operator");
    let sops_wrote = std::fs::read_to_string(dir.join("04-test-secrets-mac-only.yaml")).unwrap();
    let raw = std::fs::read(dir.join("04-raw-test-secrets-mac-only.yaml")).unwrap();
    let options = capstan_secrets::EncryptOptions {
        recipients: capstan_secrets::Recipients::any_of([
            capstan_secrets::Identity::generate().recipient()
        ]),
        selection: capstan_secrets::Selection::EncryptedSuffix("Templates".into()),
        mac_only_encrypted: true,
    };
    let file = SopsFile::encrypt("04.yaml", Format::Yaml, &raw, &options).unwrap();
    let capstan_wrote = String::from_utf8(file.to_bytes()).unwrap();
    assert_eq!(layout(&capstan_wrote), layout(&sops_wrote));
}
