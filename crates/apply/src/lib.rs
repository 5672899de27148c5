//! Deploys a stage to a cluster and keeps it converged: the replacement for
//! `kluctl deploy --discriminator`, `kluctl list/status` and `kubectl diff`.
//!
//! # What it will expose
//!
//! A `Deployer` that takes the objects loaded by `capstan-manifest`, a [`kube::Client`] and
//! options, and returns a typed result per object:
//!
//! - **plan**: a server-side apply dry run per object, compared with the live object after
//!   normalisation, classified as create, update or unchanged (Secret values always masked);
//! - **apply**: server-side apply with field manager `capstan`, in waves (CRDs established and
//!   discovery refreshed before the custom resources that need them), bounded parallelism and
//!   retries of transient errors; unchanged objects cost no write;
//! - **prune** and **delete**: live objects carrying the stage's discriminator label that the
//!   manifests no longer hold, behind guards that make an accidental mass deletion impossible;
//! - **list** and **status** of everything a stage owns.
//!
//! Progress and confirmation are callbacks: the crate never prints and never reads a terminal.
//!
//! [`kube::Client`]: https://docs.rs/kube/latest/kube/struct.Client.html
