//! age recipients and identities: parsing, the sops way of finding identities, and wrapping a
//! data key (or Shamir share) for one recipient.

use crate::error::{Error, Result};
use age::{
    armor::{ArmoredReader, ArmoredWriter, Format},
    secrecy::ExposeSecret as _,
    x25519,
};
use std::{
    fmt,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    str::FromStr,
};
use zeroize::Zeroizing;

/// An age X25519 recipient (`age1…`): who a file is encrypted to.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(x25519::Recipient);

impl FromStr for Recipient {
    type Err = Error;

    /// Parses an `age1…` recipient; surrounding whitespace is ignored, as sops ignores it.
    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        x25519::Recipient::from_str(text)
            .map(Self)
            .map_err(|reason| Error::Key {
                origin: format!("recipient `{text}`"),
                reason: match text.starts_with("age1pq1") {
                    true => "a post-quantum recipient, which capstan's age library (0.12) \
                             cannot encrypt to; use an X25519 recipient (age1…)"
                        .to_owned(),
                    false => reason.to_owned(),
                },
            })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl Recipient {
    /// Parses a comma-separated list, the form `.sops.yaml` and `--age` accept; empty items
    /// are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] for an item that is not an age recipient.
    pub fn parse_list(text: &str) -> Result<Vec<Self>> {
        text.split(',')
            .filter(|item| !item.trim().is_empty())
            .map(str::parse)
            .collect()
    }

    /// Encrypts `payload` to this recipient as an armoured age file, as sops stores it.
    pub(crate) fn wrap(&self, payload: &[u8]) -> String {
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&self.0 as &dyn age::Recipient))
                .expect("one X25519 recipient is always a valid recipient set");
        let mut armored = Vec::new();
        // Writing to a Vec cannot fail.
        let output = ArmoredWriter::wrap_output(&mut armored, Format::AsciiArmor)
            .and_then(|writer| encryptor.wrap_output(writer))
            .and_then(|mut writer| writer.write_all(payload).map(|()| writer))
            .and_then(|writer| writer.finish())
            .and_then(|armor| armor.finish());
        output.expect("writing an age file to memory cannot fail");
        String::from_utf8(armored).expect("ASCII armour is ASCII")
    }
}

/// An age X25519 identity (`AGE-SECRET-KEY-1…`): what opens a file. `Debug` never shows it.
#[derive(Clone)]
pub struct Identity(x25519::Identity);

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.recipient())
    }
}

impl Identity {
    /// A new random identity, as `age-keygen` makes one.
    pub fn generate() -> Self {
        Self(x25519::Identity::generate())
    }

    /// The recipient that files for this identity are encrypted to.
    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    /// The identity in the `age-keygen` key file layout, with `created` and `public key`
    /// comment lines; `created` is an RFC 3339 time.
    pub fn to_key_file(&self, created: &str) -> Zeroizing<String> {
        Zeroizing::new(format!(
            "# created: {created}\n# public key: {}\n{}\n",
            self.recipient(),
            self.0.to_string().expose_secret()
        ))
    }

    /// [`Identity::to_key_file`] created now: what `age-keygen` prints for a new identity.
    pub fn to_new_key_file(&self) -> Zeroizing<String> {
        self.to_key_file(&crate::time::now())
    }

    /// Writes a new key file readable by its owner only (mode 0600 on Unix) and returns the
    /// recipient; an existing file is never overwritten.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file exists or cannot be written.
    pub fn write_key_file(&self, path: &Path) -> Result<Recipient> {
        let text = self.to_key_file(&crate::time::now());
        crate::write::write_new_private(path, text.as_bytes())?;
        Ok(self.recipient())
    }
}

/// The identities a decryption may use, and notes on the keys that were skipped because
/// capstan cannot use them.
#[derive(Clone, Debug, Default)]
pub struct Identities {
    keys: Vec<Identity>,
    skipped: Vec<String>,
}

/// Where sops looks for identities; [`KeySources::from_env`] fills it the way sops does.
/// `Debug` does not show the key text.
#[derive(Clone, Default)]
pub struct KeySources {
    /// The content of `SOPS_AGE_KEY`: key file text, comment lines allowed.
    pub age_key: Option<Zeroizing<String>>,
    /// The path in `SOPS_AGE_KEY_FILE`.
    pub age_key_file: Option<PathBuf>,
    /// The command in `SOPS_AGE_KEY_CMD`, run with `sh -c`; its standard output is key file
    /// text.
    pub age_key_cmd: Option<String>,
    /// The user's configuration folder (`$XDG_CONFIG_HOME`, else `~/.config`); sops reads
    /// `sops/age/keys.txt` below it when that file exists.
    pub config_dir: Option<PathBuf>,
}

impl fmt::Debug for KeySources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySources")
            .field("age_key", &self.age_key.as_ref().map(|_| "<redacted>"))
            .field("age_key_file", &self.age_key_file)
            .field("age_key_cmd", &self.age_key_cmd)
            .field("config_dir", &self.config_dir)
            .finish()
    }
}

impl KeySources {
    /// The sources named by `SOPS_AGE_KEY`, `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`,
    /// `XDG_CONFIG_HOME` and `HOME`.
    pub fn from_env() -> Self {
        let var = |name| std::env::var_os(name).filter(|value| !value.is_empty());
        Self {
            age_key: std::env::var("SOPS_AGE_KEY").ok().map(Zeroizing::new),
            age_key_file: var("SOPS_AGE_KEY_FILE").map(PathBuf::from),
            age_key_cmd: std::env::var("SOPS_AGE_KEY_CMD")
                .ok()
                .filter(|command| !command.trim().is_empty()),
            config_dir: var("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| var("HOME").map(|home| PathBuf::from(home).join(".config"))),
        }
    }
}

impl Identities {
    /// No identities yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one identity.
    pub fn push(&mut self, identity: Identity) {
        self.keys.push(identity);
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The recipients of the identities, to tell which files they open.
    pub fn recipients(&self) -> impl Iterator<Item = Recipient> + '_ {
        self.keys.iter().map(Identity::recipient)
    }

    /// One note per key that was read but skipped because capstan cannot use it (a
    /// post-quantum or plugin identity), naming where it was; never the key.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    fn extend(&mut self, other: Self) {
        self.keys.extend(other.keys);
        self.skipped.extend(other.skipped);
    }

    /// Reads key file text: one `AGE-SECRET-KEY-1…` per line (since sops 3.13 several per
    /// line, separated by whitespace), blank lines and `#` comments ignored. `origin` names
    /// the source in errors.
    ///
    /// Post-quantum identities (`AGE-SECRET-KEY-PQ-1…`, age 1.3's hybrid ML-KEM-768 + X25519)
    /// and plugin identities (`AGE-PLUGIN-…`) are skipped with a note in
    /// [`Identities::skipped`]: the age crate capstan builds on (0.12) cannot decrypt with
    /// them, and one of them must not make the other keys of the file unusable.
    ///
    /// # Errors
    ///
    /// [`Error::Key`] naming the line of an invalid key; the key itself is never quoted.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let mut identities = Self::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("line {} of {origin}", number + 1);
            for key in line.split_whitespace() {
                let upper = key.to_ascii_uppercase();
                let unusable = if upper.starts_with("AGE-SECRET-KEY-PQ-1") {
                    Some("a post-quantum (ML-KEM-768 + X25519) age identity")
                } else if upper.starts_with("AGE-PLUGIN-") {
                    Some("an age plugin identity")
                } else {
                    None
                };
                if let Some(kind) = unusable {
                    identities.skipped.push(format!(
                        "skipped {kind} on {}: capstan's age library cannot use it",
                        at()
                    ));
                    continue;
                }
                let identity = x25519::Identity::from_str(key).map_err(|_| Error::Key {
                    origin: at(),
                    reason: "not an age X25519 identity (AGE-SECRET-KEY-1…)".to_owned(),
                })?;
                identities.push(Identity(identity));
            }
        }
        Ok(identities)
    }

    /// Collects the identities of every source that is present, as sops does (it combines
    /// them rather than stopping at the first).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when `SOPS_AGE_KEY_FILE` names a file that cannot be read, and
    /// [`Error::Key`] for an invalid key in any source.
    pub fn from_sources(sources: &KeySources) -> Result<Self> {
        let mut identities = Self::new();
        if let Some(text) = &sources.age_key {
            identities.extend(Self::parse("SOPS_AGE_KEY", text)?);
        }
        let mut read = |path: &Path, required: bool| -> Result<()> {
            match std::fs::read_to_string(path) {
                Ok(text) => {
                    let text = Zeroizing::new(text);
                    let origin = format!("`{}`", path.display());
                    identities.extend(Self::parse(&origin, &text)?);
                    Ok(())
                }
                Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(Error::io(path)(error)),
            }
        };
        if let Some(path) = &sources.age_key_file {
            read(path, true)?;
        }
        if let Some(dir) = &sources.config_dir {
            read(&dir.join("sops/age/keys.txt"), false)?;
        }
        if let Some(command) = &sources.age_key_cmd {
            identities.extend(Self::from_command(command)?);
        }
        Ok(identities)
    }

    /// The identities a command prints, as sops runs `SOPS_AGE_KEY_CMD`: through `sh -c`,
    /// with the terminal (for a passphrase prompt) on its standard input and error.
    fn from_command(command: &str) -> Result<Self> {
        let origin = "SOPS_AGE_KEY_CMD";
        let failed = |reason: String| Error::Key {
            origin: origin.to_owned(),
            reason,
        };
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|error| failed(format!("cannot run the command: {error}")))?;
        let text = Zeroizing::new(output.stdout);
        if !output.status.success() {
            return Err(failed(format!("the command failed ({})", output.status)));
        }
        let text = std::str::from_utf8(&text)
            .map_err(|_| failed("the command's output is not UTF-8".to_owned()))?;
        Self::parse(&format!("the output of {origin}"), text)
    }

    /// [`Identities::from_sources`] with [`KeySources::from_env`].
    ///
    /// # Errors
    ///
    /// As [`Identities::from_sources`].
    pub fn from_env() -> Result<Self> {
        Self::from_sources(&KeySources::from_env())
    }

    /// Opens an armoured age file with any of the identities; `None` when none fits or the
    /// text is not an age file.
    pub(crate) fn unwrap(&self, armored: &str) -> Option<Zeroizing<Vec<u8>>> {
        let decryptor =
            age::Decryptor::new_buffered(ArmoredReader::new(armored.as_bytes())).ok()?;
        let identities = self
            .keys
            .iter()
            .map(|identity| &identity.0 as &dyn age::Identity);
        let mut reader = decryptor.decrypt(identities).ok()?;
        let mut payload = Zeroizing::new(Vec::new());
        reader.read_to_end(&mut payload).ok()?;
        Some(payload)
    }
}

impl FromIterator<Identity> for Identities {
    fn from_iter<I: IntoIterator<Item = Identity>>(iter: I) -> Self {
        Self {
            keys: iter.into_iter().collect(),
            skipped: Vec::new(),
        }
    }
}

impl FromStr for Identity {
    type Err = Error;

    /// Parses one `AGE-SECRET-KEY-1…` identity.
    fn from_str(text: &str) -> Result<Self> {
        x25519::Identity::from_str(text.trim())
            .map(Self)
            .map_err(|_| Error::Key {
                origin: "an identity given in code".to_owned(),
                reason: "not an age X25519 identity (AGE-SECRET-KEY-1…)".to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_payload_opens_with_its_identity_only() {
        let identity = Identity::generate();
        let armored = identity.recipient().wrap(b"data key");
        assert!(armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(armored.ends_with("\n-----END AGE ENCRYPTED FILE-----\n"));
        assert!(
            armored
                .lines()
                .all(|line| line.len() <= 64 || line.starts_with("-----"))
        );
        let mine: Identities = [identity].into_iter().collect();
        assert_eq!(mine.unwrap(&armored).unwrap().as_slice(), b"data key");
        let other: Identities = [Identity::generate()].into_iter().collect();
        assert!(other.unwrap(&armored).is_none());
    }

    #[test]
    fn key_files_allow_comments_and_errors_never_quote_keys() {
        let identity = Identity::generate();
        let file = identity.to_key_file("2024-01-01T00:00:00Z");
        assert_eq!(Identities::parse("keys.txt", &file).unwrap().keys.len(), 1);
        let error = Identities::parse("keys.txt", "# c\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid age key in line 2 of keys.txt: not an age X25519 identity (AGE-SECRET-KEY-1…)"
        );
    }

    #[test]
    fn post_quantum_and_plugin_identities_are_skipped_with_a_note_and_the_others_kept() {
        let identity = Identity::generate();
        let text = format!(
            "# created: 2025-01-01T00:00:00Z\n\
             AGE-SECRET-KEY-PQ-1XQZ9A8M3L5V0PQ7N2S4C6D8F0G2H4J6K8L0M2N4P6Q8R0S2T4V6W8X0Y2Z4\n\
             {}\n\
             AGE-PLUGIN-YUBIKEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQ\n",
            identity.to_key_file("x").lines().last().unwrap()
        );
        let identities = Identities::parse("`keys.txt`", &text).unwrap();
        assert_eq!(
            identities.recipients().collect::<Vec<_>>(),
            [identity.recipient()]
        );
        assert_eq!(
            identities.skipped(),
            [
                "skipped a post-quantum (ML-KEM-768 + X25519) age identity on line 2 of \
                 `keys.txt`: capstan's age library cannot use it",
                "skipped an age plugin identity on line 4 of `keys.txt`: capstan's age \
                 library cannot use it"
            ]
        );
    }

    #[test]
    fn key_cmd_output_is_read_like_a_key_file() {
        let identity = Identity::generate();
        let key = identity.to_key_file("x");
        let sources = KeySources {
            age_key_cmd: Some(format!("printf '%s' '{}'", key.as_str())),
            ..KeySources::default()
        };
        let identities = Identities::from_sources(&sources).unwrap();
        assert_eq!(
            identities.recipients().collect::<Vec<_>>(),
            [identity.recipient()]
        );
        let failing = KeySources {
            age_key_cmd: Some("exit 3".to_owned()),
            ..KeySources::default()
        };
        assert_eq!(
            Identities::from_sources(&failing).unwrap_err().to_string(),
            "invalid age key in SOPS_AGE_KEY_CMD: the command failed (exit status: 3)"
        );
    }

    #[test]
    fn recipient_lists_are_comma_separated_and_trimmed() {
        let (a, b) = (
            Identity::generate().recipient(),
            Identity::generate().recipient(),
        );
        let list = Recipient::parse_list(&format!(" {a} ,{b},")).unwrap();
        assert_eq!(list, [a, b]);
    }
}
