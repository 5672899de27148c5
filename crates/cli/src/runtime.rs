//! The one Tokio runtime builder of the binary: for a command's requests to Kubernetes, for
//! `capstan local`, and for the signal handlers of `secrets edit`.

use anyhow::Context as _;
use tokio::runtime::Runtime;

/// A small runtime of its own for a command: two workers are plenty for a command-line tool's
/// requests, and the machines capstan runs on in CI often have two cores.
pub(crate) fn runtime() -> anyhow::Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start capstan's async runtime")
}
