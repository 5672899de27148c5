//! The kubeconfig files a control plane hands out, and client configurations read from them.
//!
//! Clients are always configured from the written file, so what tests get through
//! [`crate::ControlPlane::client`] is exactly what `kubectl` and the `capstan` binary get.

use std::{fs, io, path::Path};

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
/// The context, cluster and user of a detached cluster (`capstan local`), also in the user's
/// own kubeconfig.
pub(crate) const LOCAL_CONTEXT: &str = "capstan-local";

/// A kubeconfig for a control plane started here: the cluster `cluster`, and one context per
/// `(context, user, account)`, each authenticating with the account's token file; the first
/// context is current.
pub(crate) fn for_local(
    server: &str,
    pki: &Pki,
    cluster: &str,
    contexts: &[(&str, &str, Account)],
) -> Kubeconfig {
    let users = contexts.iter().map(|(_, user, account)| {
        let auth = AuthInfo {
            token_file: Some(pki.token_file(*account).display().to_string()),
            ..AuthInfo::default()
        };
        ((*user).to_owned(), auth)
    });
    let details = Cluster {
        server: Some(server.to_owned()),
        certificate_authority: Some(pki.ca_cert.display().to_string()),
        ..Cluster::default()
    };
    let names = contexts
        .iter()
        .map(|(context, user, _)| ((*context).to_owned(), (*user).to_owned()));
    assemble(cluster, details, users.collect(), names.collect())
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
    Ok(assemble(ADMIN_CONTEXT, cluster, users, names))
}

fn assemble(
    cluster_name: &str,
    cluster: Cluster,
    users: Vec<(String, AuthInfo)>,
    contexts: Vec<(String, String)>,
) -> Kubeconfig {
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: cluster_name.to_owned(),
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
                    cluster: cluster_name.to_owned(),
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
        source: io::Error::other(error),
    })?;
    pki::write_private(path, yaml.as_bytes())
}

/// Copies the cluster, user and context named [`LOCAL_CONTEXT`] from `source` into the
/// kubeconfig at `target` (made when missing), replacing entries of that name and keeping all
/// others, and makes the context current when `switch`. Returns the current context before.
pub(crate) fn merge(target: &Path, source: &Kubeconfig, switch: bool) -> Result<Option<String>> {
    let mut config = read_user_config(target)?.unwrap_or_else(|| Kubeconfig {
        api_version: Some("v1".to_owned()),
        kind: Some("Config".to_owned()),
        ..Kubeconfig::default()
    });
    remove_local_entries(&mut config);
    let ours = |name: &String| name == LOCAL_CONTEXT;
    config.clusters.extend(
        source
            .clusters
            .iter()
            .filter(|named| ours(&named.name))
            .cloned(),
    );
    config.auth_infos.extend(
        source
            .auth_infos
            .iter()
            .filter(|named| ours(&named.name))
            .cloned(),
    );
    config.contexts.extend(
        source
            .contexts
            .iter()
            .filter(|named| ours(&named.name))
            .cloned(),
    );
    let previous = config.current_context.clone();
    if switch {
        config.current_context = Some(LOCAL_CONTEXT.to_owned());
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(Error::io(parent))?;
    }
    write(target, &config)?;
    Ok(previous)
}

/// Removes the entries named [`LOCAL_CONTEXT`] from the kubeconfig at `target`, if it exists,
/// and when [`LOCAL_CONTEXT`] is its current context makes `previous` current instead. Returns
/// whether it did.
pub(crate) fn unmerge(target: &Path, previous: Option<&str>) -> Result<bool> {
    let Some(mut config) = read_user_config(target)? else {
        return Ok(false);
    };
    remove_local_entries(&mut config);
    let restore = config.current_context.as_deref() == Some(LOCAL_CONTEXT);
    if restore {
        config.current_context = previous.map(str::to_owned);
    }
    write(target, &config)?;
    Ok(restore)
}

/// The kubeconfig at `path` as written, relative paths and all; `None` when there is none.
fn read_user_config(path: &Path) -> Result<Option<Kubeconfig>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(path)(error)),
    };
    Kubeconfig::from_yaml(&text)
        .map(Some)
        .map_err(|source| Error::KubeconfigFile {
            path: path.to_path_buf(),
            source,
        })
}

fn remove_local_entries(config: &mut Kubeconfig) {
    config.clusters.retain(|named| named.name != LOCAL_CONTEXT);
    config
        .auth_infos
        .retain(|named| named.name != LOCAL_CONTEXT);
    config.contexts.retain(|named| named.name != LOCAL_CONTEXT);
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
            ADMIN_CONTEXT,
            &[
                (ADMIN_CONTEXT, pki::ADMIN.name, pki::ADMIN),
                (USER_CONTEXT, USER.name, USER),
            ],
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

    /// A user's kubeconfig with a relative CA path and a field kube does not model.
    const USER_CONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: work\n  cluster:\n    server: https://work.example:6443\n    certificate-authority: certs/ca.crt\nusers:\n- name: me\n  user:\n    token: secret-token\ncontexts:\n- name: work\n  context:\n    cluster: work\n    user: me\ncurrent-context: work\nunknown-field: kept\n";

    fn local_source() -> Kubeconfig {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki::generate(dir.path(), &[pki::ADMIN]).unwrap();
        for_local(
            "https://127.0.0.1:6443",
            &pki,
            LOCAL_CONTEXT,
            &[(LOCAL_CONTEXT, LOCAL_CONTEXT, pki::ADMIN)],
        )
    }

    fn names(config: &Kubeconfig) -> Vec<String> {
        config.contexts.iter().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn merge_adds_the_local_context_keeps_the_rest_and_returns_the_previous_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, USER_CONFIG).unwrap();

        let previous = merge(&path, &local_source(), true).unwrap();
        assert_eq!(previous.as_deref(), Some("work"));
        let text = fs::read_to_string(&path).unwrap();
        let merged = Kubeconfig::from_yaml(&text).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some(LOCAL_CONTEXT));
        assert_eq!(names(&merged), ["work", LOCAL_CONTEXT]);
        assert_eq!(merged.clusters.len(), 2);
        assert_eq!(merged.auth_infos.len(), 2);
        // Written back as the user wrote it: no paths made absolute, no fields lost.
        assert!(
            text.contains("certificate-authority: certs/ca.crt"),
            "{text}"
        );
        assert!(text.contains("token: secret-token"), "{text}");
        assert!(text.contains("unknown-field: kept"), "{text}");

        // Merging again replaces the entries instead of adding more.
        merge(&path, &local_source(), true).unwrap();
        let again = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(names(&again), ["work", LOCAL_CONTEXT]);
        assert_eq!(again.clusters.len(), 2);
    }

    #[test]
    fn merge_without_switch_leaves_the_current_context_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, USER_CONFIG).unwrap();
        merge(&path, &local_source(), false).unwrap();
        let merged = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some("work"));
        assert_eq!(names(&merged), ["work", LOCAL_CONTEXT]);
    }

    #[test]
    fn merge_creates_a_missing_kubeconfig_and_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".kube/config");
        assert_eq!(merge(&path, &local_source(), true).unwrap(), None);
        let merged = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(merged.current_context.as_deref(), Some(LOCAL_CONTEXT));
        assert_eq!(merged.api_version.as_deref(), Some("v1"));
    }

    #[test]
    fn unmerge_restores_the_previous_context_only_while_the_local_one_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, USER_CONFIG).unwrap();
        merge(&path, &local_source(), true).unwrap();
        assert!(unmerge(&path, Some("work")).unwrap());
        let restored = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(restored.current_context.as_deref(), Some("work"));
        assert_eq!(names(&restored), ["work"]);
        assert_eq!(restored.clusters.len(), 1);
        assert_eq!(restored.auth_infos.len(), 1);

        // The user moved on to another context: it stays current.
        merge(&path, &local_source(), true).unwrap();
        let mut config = Kubeconfig::read_from(&path).unwrap();
        config.current_context = Some("other".to_owned());
        write(&path, &config).unwrap();
        assert!(!unmerge(&path, Some("work")).unwrap());
        let kept = Kubeconfig::read_from(&path).unwrap();
        assert_eq!(kept.current_context.as_deref(), Some("other"));
        assert_eq!(names(&kept), ["work"]);
    }

    #[test]
    fn unmerge_of_a_missing_kubeconfig_does_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        assert!(!unmerge(&path, None).unwrap());
        assert!(!path.exists());
    }
}
