//! Day-2 operations on ClusterAPI clusters, the parts operators do today with `kubectl` and
//! `clusterctl`.
//!
//! # What it will expose
//!
//! - scaling `MachineDeployment`s and `KubeadmControlPlane`s;
//! - cordon and drain of a node with `kubectl drain` semantics (eviction API with
//!   PodDisruptionBudgets respected, the `policy/v1beta1` fallback for older servers, DaemonSet
//!   and mirror pods skipped);
//! - replacing a machine safely;
//! - a status view of clusters, control planes and machine deployments.
