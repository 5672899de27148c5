use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use crate::{Error, Result};

/// The folder of control-plane binaries, the envtest convention.
const ASSETS_VAR: &str = "KUBEBUILDER_ASSETS";

/// Where the control plane's programs are.
///
/// [`Binaries::from_env`] finds them the way controller-runtime's envtest does, so a folder made
/// by `setup-envtest` works as well as one made by capstan's `scripts/envtest.sh`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Binaries {
    /// The `etcd` server.
    pub etcd: PathBuf,
    /// The `kube-apiserver`.
    pub kube_apiserver: PathBuf,
    /// The `kube-controller-manager`, when there is one. Without it there is no garbage
    /// collection, no namespace deletion and no Deployment, ReplicaSet or disruption controller.
    pub kube_controller_manager: Option<PathBuf>,
}

impl Binaries {
    /// The given `etcd` and `kube-apiserver`, without a controller manager.
    pub fn new(etcd: impl Into<PathBuf>, kube_apiserver: impl Into<PathBuf>) -> Self {
        Self {
            etcd: etcd.into(),
            kube_apiserver: kube_apiserver.into(),
            kube_controller_manager: None,
        }
    }

    /// Finds the binaries from the environment: each of `TEST_ASSET_ETCD`,
    /// `TEST_ASSET_KUBE_APISERVER` and `TEST_ASSET_KUBE_CONTROLLER_MANAGER` names one binary,
    /// and `KUBEBUILDER_ASSETS` names a folder holding the others.
    ///
    /// # Errors
    ///
    /// [`Error::BinariesNotFound`] when `etcd` or `kube-apiserver` is missing. The message says
    /// how to provision them.
    pub fn from_env() -> Result<Self> {
        Self::find(|name| env::var_os(name).map(PathBuf::from))
    }

    /// Finds the binaries in the folder `dir`, as if `KUBEBUILDER_ASSETS` named it; the
    /// `TEST_ASSET_*` variables do not count.
    ///
    /// # Errors
    ///
    /// [`Error::BinariesNotFound`] when `etcd` or `kube-apiserver` is missing from `dir`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::find(|name| (name == ASSETS_VAR).then(|| dir.to_path_buf())).map_err(|error| {
            match error {
                Error::BinariesNotFound { missing, .. } => Error::BinariesNotFound {
                    missing,
                    searched: format!("looked in {}", dir.display()),
                },
                other => other,
            }
        })
    }

    fn find(var: impl Fn(&str) -> Option<PathBuf>) -> Result<Self> {
        let assets = var(ASSETS_VAR);
        let lookup = |override_var: &str, file: &str| -> Option<PathBuf> {
            var(override_var)
                .or_else(|| assets.as_ref().map(|dir| dir.join(file)))
                .filter(|path| is_executable(path))
        };
        let etcd = lookup("TEST_ASSET_ETCD", "etcd");
        let kube_apiserver = lookup("TEST_ASSET_KUBE_APISERVER", "kube-apiserver");
        let kube_controller_manager = lookup(
            "TEST_ASSET_KUBE_CONTROLLER_MANAGER",
            "kube-controller-manager",
        );
        match (etcd, kube_apiserver) {
            (Some(etcd), Some(kube_apiserver)) => Ok(Self {
                etcd,
                kube_apiserver,
                kube_controller_manager,
            }),
            (etcd, apiserver) => {
                let missing = [
                    (apiserver.is_none(), "kube-apiserver"),
                    (etcd.is_none(), "etcd"),
                ]
                .into_iter()
                .filter_map(|(missing, name)| missing.then_some(name))
                .collect::<Vec<_>>()
                .join(" and ");
                let searched = match assets {
                    Some(dir) => format!("{ASSETS_VAR}={}", dir.display()),
                    None => format!("{ASSETS_VAR} is not set"),
                };
                Err(Error::BinariesNotFound { missing, searched })
            }
        }
    }

    /// Asks `kube-apiserver` for its version.
    pub(crate) fn apiserver_version(&self) -> Result<KubeVersion> {
        let spawn_error = |reason: String| Error::Spawn {
            path: self.kube_apiserver.clone(),
            reason,
        };
        let output = Command::new(&self.kube_apiserver)
            .arg("--version")
            .output()
            .map_err(|error| spawn_error(error.to_string()))?;
        let text = String::from_utf8_lossy(&output.stdout);
        KubeVersion::parse(&text)
            .ok_or_else(|| spawn_error(format!("unexpected `--version` output {:?}", text.trim())))
    }

    /// The version `etcd --version` reports, such as `3.4.23`, when it reports one.
    pub(crate) fn etcd_version(&self) -> Option<String> {
        let output = Command::new(&self.etcd).arg("--version").output().ok()?;
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("etcd Version:"))
            .map(|version| version.trim().to_owned())
    }

    /// Whether this etcd accepts `--unsafe-no-fsync` (3.5 and later, and some 3.4 builds).
    pub(crate) fn etcd_has_no_fsync(&self) -> bool {
        Command::new(&self.etcd)
            .arg("--help")
            .output()
            .is_ok_and(|output| {
                let help = [output.stdout, output.stderr].concat();
                String::from_utf8_lossy(&help).contains("--unsafe-no-fsync")
            })
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A Kubernetes release, as `kube-apiserver --version` prints it (`Kubernetes v1.20.2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KubeVersion {
    pub(crate) minor: u32,
    pub(crate) text: String,
}

impl KubeVersion {
    fn parse(output: &str) -> Option<Self> {
        let text = output
            .split_whitespace()
            .find(|word| word.starts_with("v1."))?;
        let minor = text
            .strip_prefix("v1.")?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some(Self {
            minor,
            text: text.to_owned(),
        })
    }

    /// Releases before 1.24 serve an unauthenticated port unless told not to.
    pub(crate) fn has_insecure_port(&self) -> bool {
        self.minor < 24
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn fake_assets(names: &[&str]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        for name in names {
            let path = dir.path().join(name);
            std::fs::write(&path, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        dir
    }

    fn find_with(vars: &[(&str, &Path)]) -> Result<Binaries> {
        let vars: HashMap<_, _> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_path_buf()))
            .collect();
        Binaries::find(|name| vars.get(name).cloned())
    }

    #[test]
    fn assets_folder_provides_every_binary() {
        let dir = fake_assets(&["etcd", "kube-apiserver", "kube-controller-manager"]);
        let found = find_with(&[(ASSETS_VAR, dir.path())]).unwrap();
        assert_eq!(found.etcd, dir.path().join("etcd"));
        assert_eq!(found.kube_apiserver, dir.path().join("kube-apiserver"));
        assert_eq!(
            found.kube_controller_manager,
            Some(dir.path().join("kube-controller-manager"))
        );
    }

    #[test]
    fn controller_manager_is_optional() {
        let dir = fake_assets(&["etcd", "kube-apiserver"]);
        let found = find_with(&[(ASSETS_VAR, dir.path())]).unwrap();
        assert_eq!(found.kube_controller_manager, None);
    }

    #[test]
    fn single_binary_variables_win_over_the_folder() {
        let dir = fake_assets(&["etcd", "kube-apiserver"]);
        let other = fake_assets(&["my-etcd"]);
        let etcd = other.path().join("my-etcd");
        let found = find_with(&[(ASSETS_VAR, dir.path()), ("TEST_ASSET_ETCD", &etcd)]).unwrap();
        assert_eq!(found.etcd, etcd);
    }

    #[test]
    fn missing_binaries_name_the_provisioning_command() {
        let dir = fake_assets(&["etcd"]);
        let error = find_with(&[(ASSETS_VAR, dir.path())])
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("cannot find kube-apiserver: "), "{error}");
        assert!(error.contains("scripts/envtest.sh"), "{error}");

        let error = find_with(&[]).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot find kube-apiserver and etcd: "),
            "{error}"
        );
        assert!(error.contains("KUBEBUILDER_ASSETS is not set"), "{error}");

        // Tests `unwrap()` this error, which prints `Debug`: it must carry the same advice.
        let debug = format!("{:?}", find_with(&[]).unwrap_err());
        assert_eq!(debug, error);
    }

    #[test]
    fn one_folder_provides_the_binaries_and_is_named_when_they_are_missing() {
        let dir = fake_assets(&["etcd", "kube-apiserver"]);
        let found = Binaries::from_dir(dir.path()).unwrap();
        assert_eq!(found.kube_apiserver, dir.path().join("kube-apiserver"));

        let empty = tempfile::tempdir().unwrap();
        let error = Binaries::from_dir(empty.path()).unwrap_err().to_string();
        assert!(
            error.ends_with(&format!("(looked in {})", empty.path().display())),
            "{error}"
        );
    }

    #[test]
    fn non_executable_files_do_not_count() {
        let dir = fake_assets(&["etcd"]);
        std::fs::write(dir.path().join("kube-apiserver"), "not a program").unwrap();
        assert!(find_with(&[(ASSETS_VAR, dir.path())]).is_err());
    }

    #[test]
    fn version_is_read_from_apiserver_output() {
        let old = KubeVersion::parse("Kubernetes v1.20.2\n").unwrap();
        assert_eq!((old.minor, old.text.as_str()), (20, "v1.20.2"));
        assert!(old.has_insecure_port());
        let new = KubeVersion::parse("Kubernetes v1.33.0-rc.1").unwrap();
        assert_eq!(new.minor, 33);
        assert!(!new.has_insecure_port());
        assert_eq!(KubeVersion::parse("garbage"), None);
    }
}
