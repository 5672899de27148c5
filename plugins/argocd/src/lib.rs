//! Hands applications over to Argo CD: a capstan handoff backend that, instead of applying a
//! stage, writes the folder Argo CD syncs from.
//!
//! The stage's objects are grouped into applications (by namespace, or by a label), and each
//! application becomes an Argo CD `Application` plus its rendered manifests, in nixidy's layout
//! (`apps/Application-<app>.yaml`, `<app>/<Kind>-<name>.yaml`) or easykubenix's deployment
//! units (`<app>/<namespace|none>/<Kind>/<name>.yaml` with a `kustomization.yaml` and a ksops
//! generator beside each SOPS-encrypted object, which stays encrypted). Sync waves follow
//! capstan's phases. An object that a stage capstan deploys also holds is refused: one
//! deployer per object.
//!
//! [`ArgoCd`] is the backend as a [`capstan_plugin::Plugin`], linked into `capstan handoff`;
//! [`hand_off`] is the pure function behind it.
//!
//! ```
//! use capstan_argocd::{Config, hand_off};
//! use capstan_plugin::{HandoffObject, HandoffRequest, Source, SourcedObject};
//!
//! let object = serde_json::json!({
//!     "apiVersion": "v1", "kind": "ConfigMap",
//!     "metadata": {"name": "settings", "namespace": "web"},
//! });
//! let source = Source { file: "apps.yaml".into(), line: 1, document: 1, item: None };
//! let request = HandoffRequest {
//!     stage: "apps".into(),
//!     objects: vec![HandoffObject {
//!         sourced: SourcedObject { source, object },
//!         phase: 3,
//!         encrypted: false,
//!     }],
//!     config: serde_json::Value::Null,
//!     infrastructure: Vec::new(),
//! };
//! let handoff = hand_off(&request, &Config::default())?;
//! let paths: Vec<&str> = handoff.files.iter().map(|file| file.path.as_str()).collect();
//! assert_eq!(paths, ["apps/Application-web.yaml", "web/ConfigMap-settings.yaml"]);
//! # Ok::<(), capstan_argocd::Error>(())
//! ```
//!
//! # Migrating a stage to Argo CD
//!
//! Hand the stage over (`capstan handoff --stage apps --backend argocd --out DIR`), commit
//! `DIR` and let Argo CD sync it: Argo CD takes the objects over where they are. Then remove
//! the stage from what capstan deploys, and never `capstan prune` it again: its objects still
//! carry the stage's discriminator until Argo CD rewrites them, and a prune would delete what
//! Argo CD now owns. The handed-off files never carry capstan's discriminator.
//!
//! # Module map
//!
//! | module | what it holds |
//! |---|---|
//! | `config` | the configuration: repository, destination, grouping, layout, sync policy |
//! | `handoff` | the objects to files |
//! | `plugin` | the backend as a plugin |
//! | `error` | the one error type |

mod config;
mod error;
mod handoff;
mod plugin;

pub use config::{Automated, Config, Destination, GroupBy, Layout};
pub use error::{Crossing, Error, Result};
pub use handoff::hand_off;
pub use plugin::ArgoCd;
