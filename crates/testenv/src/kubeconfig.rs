//! The kubeconfig files a control plane hands out, and client configurations read from them.
//!
//! Clients are always configured from the written file, so what tests get through
//! [`crate::ControlPlane::client`] is exactly what `kubectl` and the `capstan` binary get.

use std::path::Path;

use kube::{
    Config,
    config::{
        AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
        NamedContext,
    },
};

use crate::{
    Error, Result,
    pki::{self, Account, Pki, USER},
};

/// The administrator's context.
pub(crate) const ADMIN_CONTEXT: &str = "capstan-testenv";
/// The unprivileged user's context.
pub(crate) const USER_CONTEXT: &str = "capstan-testenv-user";

/// A kubeconfig for a control plane started here: one context per `(context, account)`, each
/// authenticating with the account's token file, the first context current.
pub(crate) fn for_local(server: &str, pki: &Pki, contexts: &[(&str, Account)]) -> Kubeconfig {
    let users = contexts.iter().map(|(_, account)| {
        let auth = AuthInfo {
            token_file: Some(pki.token_file(*account).display().to_string()),
            ..AuthInfo::default()
        };
        (account.name.to_owned(), auth)
    });
    let cluster = Cluster {
        server: Some(server.to_owned()),
        certificate_authority: Some(pki.ca_cert.display().to_string()),
        ..Cluster::default()
    };
    let names = contexts
        .iter()
        .map(|(context, account)| ((*context).to_owned(), account.name.to_owned()));
    assemble(cluster, users.collect(), names.collect())
}

/// A kubeconfig for an existing cluster: its current context as the administrator, and the same
/// credentials impersonating the unprivileged user.
///
/// # Errors
///
/// [`Error::Kubeconfig`] when the user's kubeconfig cannot be read or has no usable current
/// context.
pub(crate) fn for_existing(options: &KubeConfigOptions) -> Result<Kubeconfig> {
    use kube::config::KubeconfigError::{CurrentContextNotSet, LoadClusterOfContext, LoadContext};
    let source = Kubeconfig::read().map_err(Error::Kubeconfig)?;
    let context_name = options
        .context
        .clone()
        .or_else(|| source.current_context.clone())
        .ok_or(Error::Kubeconfig(CurrentContextNotSet))?;
    let context = source
        .contexts
        .iter()
        .find(|named| named.name == context_name)
        .and_then(|named| named.context.clone())
        .ok_or_else(|| Error::Kubeconfig(LoadContext(context_name.clone())))?;
    let cluster = source
        .clusters
        .iter()
        .find(|named| named.name == context.cluster)
        .and_then(|named| named.cluster.clone())
        .ok_or_else(|| Error::Kubeconfig(LoadClusterOfContext(context.cluster.clone())))?;
    let admin = context
        .user
        .as_ref()
        .and_then(|user| source.auth_infos.iter().find(|named| &named.name == user))
        .and_then(|named| named.auth_info.clone())
        .unwrap_or_default();
    let mut user = admin.clone();
    user.impersonate = Some(USER.name.to_owned());
    let users = vec![("admin".to_owned(), admin), (USER.name.to_owned(), user)];
    let names = vec![
        (ADMIN_CONTEXT.to_owned(), "admin".to_owned()),
        (USER_CONTEXT.to_owned(), USER.name.to_owned()),
    ];
    Ok(assemble(cluster, users, names))
}

fn assemble(
    cluster: Cluster,
    users: Vec<(String, AuthInfo)>,
    contexts: Vec<(String, String)>,
) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: ADMIN_CONTEXT.to_owned(),
            cluster: Some(cluster),
            ..NamedCluster::default()
        }],
        auth_infos: users
            .into_iter()
            .map(|(name, auth)| NamedAuthInfo {
                name,
                auth_info: Some(auth),
                ..NamedAuthInfo::default()
            })
            .collect(),
        current_context: contexts.first().map(|(context, _)| context.clone()),
        contexts: contexts
            .into_iter()
            .map(|(name, user)| NamedContext {
                name,
                context: Some(Context {
                    cluster: ADMIN_CONTEXT.to_owned(),
                    user: Some(user),
                    ..Context::default()
                }),
                ..NamedContext::default()
            })
            .collect(),
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        ..Kubeconfig::default()
    }
}

/// Writes `kubeconfig` readable by its owner only: it holds or points at credentials.
pub(crate) fn write(path: &Path, kubeconfig: &Kubeconfig) -> Result<()> {
    let yaml = serde_yaml::to_string(kubeconfig).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    pki::write_private(path, yaml.as_bytes())
}

/// The client configuration of `context` in the kubeconfig file at `path`.
pub(crate) async fn client_config(path: &Path, context: &str) -> Result<Config> {
    let kubeconfig = Kubeconfig::read_from(path).map_err(Error::Kubeconfig)?;
    let options = KubeConfigOptions {
        context: Some(context.to_owned()),
        ..KubeConfigOptions::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(Error::Kubeconfig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_kubeconfig_has_a_context_per_account_and_the_first_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::generate(dir.path(), &[pki::ADMIN, USER]).unwrap();
        let config = for_local(
            "https://127.0.0.1:6443",
            &pki,
            &[(ADMIN_CONTEXT, pki::ADMIN), (USER_CONTEXT, USER)],
        );
        assert_eq!(config.current_context.as_deref(), Some(ADMIN_CONTEXT));
        let contexts: Vec<_> = config
            .contexts
            .iter()
            .map(|named| {
                (
                    named.name.as_str(),
                    named.context.as_ref().unwrap().user.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            contexts,
            [
                (ADMIN_CONTEXT, Some("capstan-admin")),
                (USER_CONTEXT, Some("capstan-user"))
            ]
        );
        let user = config.auth_infos[1].auth_info.as_ref().unwrap();
        assert_eq!(
            user.token_file,
            Some(pki.token_file(USER).display().to_string())
        );
    }
}
