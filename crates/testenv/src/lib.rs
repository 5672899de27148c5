//! A real Kubernetes control plane for tests and for `capstan local`: etcd, kube-apiserver and
//! kube-controller-manager started on loopback, not a mock.
//!
//! Every capstan test that talks to Kubernetes runs against one. Each test binary shares a
//! single control plane ([`ControlPlane::shared`]), and each test works in a namespace of its
//! own ([`ControlPlane::create_namespace`]), so a test binary pays for one start-up (a few
//! seconds) however many tests it has.
//!
//! ```no_run
//! use capstan_testenv::{ControlPlane, User};
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use kube::Api;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let plane = ControlPlane::shared().await?;
//! let namespace = plane.create_namespace("configmaps").await?;
//! let config_maps: Api<ConfigMap> = Api::namespaced(plane.client(User::Admin)?, &namespace);
//! assert!(config_maps.list(&Default::default()).await?.items.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Finding the binaries
//!
//! The envtest convention of controller-runtime: `KUBEBUILDER_ASSETS` names a folder holding
//! `kube-apiserver`, `etcd` and optionally `kube-controller-manager` (and `kubectl`), and
//! `TEST_ASSET_KUBE_APISERVER`, `TEST_ASSET_ETCD` and `TEST_ASSET_KUBE_CONTROLLER_MANAGER` name
//! single binaries. In a capstan checkout, `scripts/envtest.sh` provisions them. When they are
//! missing, starting fails with a message that says so: tests never skip silently.
//!
//! With `USE_EXISTING_CLUSTER=true`, [`ControlPlane::shared`] uses the cluster of the current
//! kubeconfig instead.
//!
//! # What runs
//!
//! - etcd, with its data in a private temporary folder (`CAPSTAN_TESTENV_DIR` chooses where);
//! - kube-apiserver with generated certificates, RBAC, and static-token authentication for an
//!   administrator (`system:masters`) and an unprivileged user ([`User`]);
//! - kube-controller-manager when its binary is found: garbage collection, namespace deletion,
//!   service accounts and the workload controllers.
//!
//! Releases from Kubernetes 1.20 on are supported.
//!
//! # Cleaning up
//!
//! Dropping a [`ControlPlane`] stops its processes and removes its files, also while a test
//! panics. A control plane in a `static`, like the shared one, is never dropped, and a process
//! killed with SIGKILL runs no code at all; for both, a small watcher process started first
//! notices that the test process is gone, kills the components and removes the files.
//!
//! # Outages
//!
//! [`ControlPlane::stop_api_server`] and [`ControlPlane::start_api_server`] take the API server
//! away and bring it back on the same port with the same data, for tests of how capstan copes
//! with a server that disappears in the middle of an operation.
//!
//! # A cluster that outlives its process
//!
//! [`LocalCluster`] starts the same components detached, in a folder of their choosing, and
//! finds them again from another process by the state file there: `capstan local up`, `status`
//! and `down`.
//!
//! # Module map
//!
//! | module | what it holds |
//! |---|---|
//! | `crds` | [`ControlPlane::install_crds`]: a folder of definitions, Established and served |
//! | `control_plane`, `local` | the two front doors: a plane for one process, one that outlives it |
//! | `launch` | each component's flags, free ports, waiting for readiness |
//! | `binaries` | where etcd, kube-apiserver and kube-controller-manager are found |
//! | `pki`, `kubeconfig` | fresh certificates and tokens, and the kubeconfigs that use them |
//! | `owned`, `process` | processes and files that cannot outlive their owner |
//! | `error` | the crate's error type |

mod binaries;
mod control_plane;
mod crds;
mod error;
mod kubeconfig;
mod launch;
mod local;
mod owned;
mod pki;
mod process;

pub use crate::{
    binaries::Binaries,
    control_plane::{ControlPlane, Options, User},
    error::{Error, Result},
    local::{Component, LocalCluster, LocalOptions, Stopped},
};
