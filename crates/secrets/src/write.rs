//! How files reach the disk: whole or not at all, and private when they hold a key or a
//! plaintext. Every writer of the crate and of the `capstan` binary goes through here.

use std::{fs::OpenOptions, io::Write as _, path::Path};

use crate::{
    cipher::random,
    error::{Error, Result},
};

/// Creates `path` readable and writable by its owner only (mode 0600 on Unix) and writes
/// `content` to it; anything already at `path` is left alone and is an error.
///
/// For identities and plaintext copies: the file is never readable by others, not even for
/// the moment between its creation and a `chmod`.
///
/// ```
/// # fn main() -> Result<(), capstan_secrets::Error> {
/// let folder = tempfile::tempdir().unwrap();
/// let path = folder.path().join("keys.txt");
/// capstan_secrets::write_new_private(&path, b"AGE-SECRET-KEY-1...\n")?;
/// assert!(capstan_secrets::write_new_private(&path, b"again").is_err());
/// # Ok(())
/// # }
/// ```
///
/// # Errors
///
/// [`Error::Io`] when `path` exists or cannot be written.
pub fn write_new_private(path: &Path, content: &[u8]) -> Result<()> {
    private(OpenOptions::new().write(true).create_new(true))
        .open(path)
        .and_then(|mut file| {
            file.write_all(content)?;
            file.sync_all()
        })
        .map_err(Error::io(path))
}

/// Replaces `path` with `content` at once, readers seeing the old file or the new one and
/// never a part, in a file readable by its owner only (mode 0600 on Unix), whatever the
/// permissions of the file it replaces.
///
/// # Errors
///
/// [`Error::Io`] when the folder is not writable.
pub fn replace_private(path: &Path, content: &[u8]) -> Result<()> {
    replace(path, content, Mode::Private)
}

/// Who may read a file [`replace`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The permissions of the file it replaces, else the umask's.
    Keep,
    /// Its owner only.
    Private,
}

/// Writes `content` to a temporary file next to `path` and renames it over `path`.
pub(crate) fn replace(path: &Path, content: &[u8], mode: Mode) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let suffix: String = random::<6>()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let temporary = folder.join(format!(".{name}.{suffix}.tmp"));
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    if mode == Mode::Private {
        private(&mut options);
    }
    let result = (|| {
        let mut file = options.open(&temporary)?;
        file.write_all(content)?;
        file.sync_all()?;
        if mode == Mode::Keep
            && let Ok(existing) = std::fs::metadata(path)
        {
            std::fs::set_permissions(&temporary, existing.permissions())?;
        }
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(Error::io(path))
}

/// Opens new files with mode 0600 where files have modes.
fn private(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, 0o600);
    options
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_private_file_is_owner_only_and_never_replaces_one() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("key.txt");
        write_new_private(&path, b"first").unwrap();
        assert_eq!(mode(&path), 0o600);
        let error = write_new_private(&path, b"second").unwrap_err();
        assert!(matches!(error, Error::Io { .. }), "{error:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
    }

    #[test]
    fn a_private_replacement_is_owner_only_even_over_a_readable_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("plain.yaml");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        replace_private(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
    }

    #[test]
    fn a_kept_replacement_keeps_the_permissions_of_the_file_it_replaces() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("secrets.yaml");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"new", Mode::Keep).unwrap();
        assert_eq!(mode(&path), 0o640);
        assert_eq!(std::fs::read_dir(folder.path()).unwrap().count(), 1);
    }
}
