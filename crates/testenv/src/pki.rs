//! The control plane's certificates, keys and tokens, all generated fresh for each start.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::{Error, Result};

/// One identity the API server accepts, by bearer token.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Account {
    pub(crate) name: &'static str,
    pub(crate) groups: &'static [&'static str],
}

/// The administrator, with every permission (`system:masters`).
pub(crate) const ADMIN: Account = Account {
    name: "capstan-admin",
    groups: &["system:masters"],
};

/// A user with no permission beyond what every authenticated user has, for RBAC tests.
pub(crate) const USER: Account = Account {
    name: "capstan-user",
    groups: &[],
};

/// The controller manager's own identity; its controllers need broad access.
pub(crate) const CONTROLLER_MANAGER: Account = Account {
    name: "system:kube-controller-manager",
    groups: &["system:masters"],
};

/// Paths of everything [`generate`] wrote.
#[derive(Debug)]
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) service_account_pub: PathBuf,
    pub(crate) token_auth_file: PathBuf,
    dir: PathBuf,
}

impl Pki {
    /// The file holding the bearer token of `account`.
    pub(crate) fn token_file(&self, account: Account) -> PathBuf {
        self.dir
            .join(format!("{}.token", account.name.replace(':', "_")))
    }
}

/// Writes a CA, a serving certificate for loopback, a service-account signing key and one
/// random token per account into `dir`.
pub(crate) fn generate(dir: &Path, accounts: &[Account]) -> Result<Pki> {
    let ca_key = KeyPair::generate().map_err(Error::Certificates)?;
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "capstan-testenv-ca");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(Error::Certificates)?;
    let issuer = Issuer::new(ca_params, ca_key);

    // The names in-cluster clients use as well as loopback, so the same certificate serves
    // the controller manager and anything that follows the service-account convention.
    let names = [
        "127.0.0.1",
        "::1",
        "localhost",
        "10.0.0.1",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
    ];
    let serving_key = KeyPair::generate().map_err(Error::Certificates)?;
    let mut serving_params =
        CertificateParams::new(names.map(String::from).to_vec()).map_err(Error::Certificates)?;
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params
        .signed_by(&serving_key, &issuer)
        .map_err(Error::Certificates)?;

    let service_account_key = KeyPair::generate().map_err(Error::Certificates)?;

    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("sa.key"),
        service_account_pub: dir.join("sa.pub"),
        token_auth_file: dir.join("tokens.csv"),
        dir: dir.to_path_buf(),
    };
    write_private(&pki.ca_cert, ca_cert.pem().as_bytes())?;
    write_private(&pki.serving_cert, serving_cert.pem().as_bytes())?;
    write_private(&pki.serving_key, serving_key.serialize_pem().as_bytes())?;
    write_private(
        &pki.service_account_key,
        service_account_key.serialize_pem().as_bytes(),
    )?;
    write_private(
        &pki.service_account_pub,
        service_account_key.public_key_pem().as_bytes(),
    )?;

    // kube-apiserver's static token file: token,user,uid,"group1,group2"
    let mut csv = String::new();
    for account in accounts {
        let token = random_token()?;
        write_private(&pki.token_file(*account), token.as_bytes())?;
        csv.push_str(&format!(
            "{token},{name},{name},\"{groups}\"\n",
            name = account.name,
            groups = account.groups.join(",")
        ));
    }
    write_private(&pki.token_auth_file, csv.as_bytes())?;
    Ok(pki)
}

fn random_token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|error| Error::Io {
        path: PathBuf::from("(system random source)"),
        source: error.into(),
    })?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Writes a file only its owner can read: keys and tokens must not leak to other local users.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(contents))
        .map_err(Error::io(path))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn writes_private_files_and_one_token_per_account() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path(), &[ADMIN, USER]).unwrap();
        for path in [
            &pki.ca_cert,
            &pki.serving_key,
            &pki.service_account_key,
            &pki.token_auth_file,
        ] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let csv = fs::read_to_string(&pki.token_auth_file).unwrap();
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines.len(), 2);
        let admin_token = fs::read_to_string(pki.token_file(ADMIN)).unwrap();
        assert_eq!(
            lines[0],
            format!("{admin_token},capstan-admin,capstan-admin,\"system:masters\"")
        );
        assert!(lines[1].ends_with(",capstan-user,capstan-user,\"\""));
        assert_ne!(
            admin_token,
            fs::read_to_string(pki.token_file(USER)).unwrap()
        );
    }

    #[test]
    fn colon_in_account_name_is_not_used_in_file_names() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate(dir.path(), &[CONTROLLER_MANAGER]).unwrap();
        assert!(
            pki.token_file(CONTROLLER_MANAGER)
                .ends_with("system_kube-controller-manager.token")
        );
        assert!(pki.token_file(CONTROLLER_MANAGER).exists());
    }
}
