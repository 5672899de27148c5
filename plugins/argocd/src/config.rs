//! The backend's configuration: where Argo CD finds the output, and how its Applications sync.

use serde::Deserialize;

/// How the handed-off stage becomes Argo CD Applications. Every field has a default.
///
/// ```yaml
/// repoURL: https://git.example.com/deploy.git
/// targetRevision: main          # default HEAD
/// path: rendered                # where the output folder is in the repository; default "."
/// project: default
/// namespace: argocd             # where the Application objects live
/// destination: {server: https://kubernetes.default.svc}   # or {name: my-cluster}
/// groupBy: namespace            # or {label: app.kubernetes.io/part-of}
/// layout: nixidy                # or easykubenix
/// automated: {prune: true, selfHeal: true}                # or false for manual sync
/// createNamespace: true
/// ```
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The repository Argo CD reads the output from.
    #[serde(default = "Config::default_repo", rename = "repoURL")]
    pub repo_url: String,
    /// The revision it reads.
    #[serde(default = "Config::default_revision")]
    pub target_revision: String,
    /// The output folder's path in the repository.
    #[serde(default = "Config::default_path")]
    pub path: String,
    /// The Argo CD project.
    #[serde(default = "Config::default_project")]
    pub project: String,
    /// The namespace of the Application objects.
    #[serde(default = "Config::default_namespace")]
    pub namespace: String,
    /// The cluster the Applications deploy to.
    #[serde(default)]
    pub destination: Destination,
    /// How objects are grouped into Applications.
    #[serde(default)]
    pub group_by: GroupBy,
    /// The folder layout.
    #[serde(default)]
    pub layout: Layout,
    /// Automated sync, or `false` for manual sync.
    #[serde(default)]
    pub automated: Automated,
    /// Whether Argo CD creates an Application's destination namespace.
    #[serde(default = "yes")]
    pub create_namespace: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            repo_url: Self::default_repo(),
            target_revision: Self::default_revision(),
            path: Self::default_path(),
            project: Self::default_project(),
            namespace: Self::default_namespace(),
            destination: Destination::default(),
            group_by: GroupBy::default(),
            layout: Layout::default(),
            automated: Automated::default(),
            create_namespace: true,
        }
    }
}

impl Config {
    fn default_repo() -> String {
        "https://git.example.com/deploy.git".to_owned()
    }
    fn default_revision() -> String {
        "HEAD".to_owned()
    }
    fn default_path() -> String {
        ".".to_owned()
    }
    fn default_project() -> String {
        "default".to_owned()
    }
    fn default_namespace() -> String {
        "argocd".to_owned()
    }
}

fn yes() -> bool {
    true
}

/// The cluster of an Application: by API server URL or by the name Argo CD knows it by.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum Destination {
    /// `destination.server`.
    Server(String),
    /// `destination.name`.
    Name(String),
}

impl Default for Destination {
    fn default() -> Self {
        Self::Server("https://kubernetes.default.svc".to_owned())
    }
}

/// How objects are grouped into Applications.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub enum GroupBy {
    /// One Application per namespace; cluster-scoped objects go to the application `cluster`.
    #[default]
    Namespace,
    /// One Application per value of this label.
    Label(String),
}

/// The folder layout of the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// nixidy's: `apps/Application-<app>.yaml` and `<app>/<Kind>-<name>.yaml`.
    #[default]
    Nixidy,
    /// easykubenix's deployment units: `<app>/<namespace|none>/<Kind>/<name>.yaml` with a
    /// `kustomization.yaml`, and a ksops generator beside each SOPS-encrypted object.
    Easykubenix,
}

/// Automated sync: on unless `false`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(untagged)]
pub enum Automated {
    /// `false`: manual sync.
    Off(bool),
    /// `{prune, selfHeal}`.
    On {
        /// Whether Argo CD deletes what the folder no longer holds.
        #[serde(default = "yes")]
        prune: bool,
        /// Whether Argo CD reverts drift.
        #[serde(default = "yes", rename = "selfHeal")]
        self_heal: bool,
    },
}

impl Default for Automated {
    fn default() -> Self {
        Self::On {
            prune: true,
            self_heal: true,
        }
    }
}
