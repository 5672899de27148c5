//! The Kubernetes layer every capstan library shares, in the spirit of kube-client and
//! kube-runtime: what talking to a real cluster takes beyond sending a request.
//!
//! - [`Api`]: a client wrapper that retries throttling, server trouble and lost connections
//!   with backoff, counts requests, stops a run early once the server is gone (a breaker), and
//!   pages through lists; [`Api::patch_status`] writes the `status` subresource.
//! - [`RequestFailure`] and [`Cause`]: what a failed request means (a field conflict, another
//!   answer, no answer) and how a person reads it.
//! - [`Catalog`]: discovery, fetched group-version by group-version in parallel and tolerant
//!   of aggregated APIs that are down; [`Catalog::first_served`] picks the version of a kind
//!   that moved (`policy/v1` or `policy/v1beta1`) by what the server serves.
//! - [`condition`] and [`assess`]: `status.conditions` by name, and whether a live object is
//!   [`Readiness::Ready`] (rollouts, Jobs, CRDs, `Ready`).
//! - [`poll_until`]: the one wait loop, with a deadline and a [`Backoff`].
//! - [`connect`]: the client from a kubeconfig context, with the stage-context guard.
//! - [`Progress`]: the words long work reports in, so that one display serves every library.
//!
//! ```no_run
//! use std::time::Duration;
//! use capstan_kube::{Api, Backoff, Catalog, ConnectRequest, Target, condition, connect, poll_until};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let connection = connect(&ConnectRequest::default(), &|_| {}).await?;
//! let api = Api::new(connection.client);
//! let catalog = Catalog::discover(&api).await?;
//! let crds = catalog
//!     .resolve("apiextensions.k8s.io", "v1", "CustomResourceDefinition")
//!     .ok_or("no CRDs")?;
//! let target = Target { resource: &crds.api, namespace: None, name: "widgets.example.com" };
//! let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
//! let backoff = Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1));
//! let established = poll_until(deadline, backoff, async || {
//!     let crd = api.get(target).await?;
//!     Ok::<_, kube::Error>(crd.filter(|crd| condition(crd, "Established").is_some_and(|c| c.is_true())))
//! })
//! .await?;
//! println!("established: {}, {} requests", established.is_some(), api.requests());
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! `failure` (status codes, retry classification, [`Cause`]) is the bottom; `api` uses it;
//! `error` formats with it; `catalog` uses `api` and `error`; `connect` uses `error`;
//! `readiness`, `wait` and `progress` stand alone.

// Errors carry the server's message and kube's error, so they are large; they are also rare
// and off every hot path.
#![allow(clippy::result_large_err)]

mod api;
mod catalog;
mod connect;
mod error;
mod failure;
mod progress;
mod readiness;
mod wait;

pub use crate::{
    api::{Api, MetaItem, Target},
    catalog::{Catalog, Resource},
    connect::{ConnectRequest, Connection, ContextOverride, connect},
    error::{Error, Result},
    failure::{Cause, RequestFailure, status_code},
    progress::{OnProgress, Progress},
    readiness::{Assessment, Condition, Readiness, assess, condition},
    wait::{Backoff, poll_until},
};
