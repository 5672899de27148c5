//! cert-manager `Certificate`s at a glance: when each expires, whether it is healthy, and
//! renewal on demand, the job `cmctl status` and `cmctl renew` do today, for a whole fleet.
//!
//! - [`list_certificates`]: every Certificate with readiness, the end of validity read from
//!   the served certificate (the Secret's `tls.crt`, cross-checked with the status), the time
//!   cert-manager renews it ([`renewal_time`], its own arithmetic) and [`Warning`]s.
//! - [`renew`]: `cmctl renew`'s trigger (the `Issuing` condition, reason `ManuallyTriggered`,
//!   through the status subresource), many at a time, going on past failures, optionally
//!   waiting for each new revision; deleting the Secret instead only when asked.
//! - [`inspect`]: one Certificate as `cmctl status certificate` shows it, with the served
//!   certificate's X.509 details, the issued and the next CertificateRequest, and ACME's Order
//!   and Challenges.
//! - [`check_ingress`]: Ingresses annotated for ingress-shim whose TLS entries lack a
//!   Certificate or a Secret, or whose annotations conflict; [`check_api`]: whether
//!   cert-manager's API takes a CertificateRequest (`cmctl check api`).
//!
//! ```no_run
//! use capstan_certs::{ListRequest, list_certificates};
//! use capstan_kube::{Api, Catalog, ConnectRequest, connect};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let connection = connect(&ConnectRequest::default(), &|_| {}).await?;
//! let api = Api::new(connection.client);
//! let catalog = Catalog::discover(&api).await?;
//! let mut request = ListRequest::new(None);
//! request.expiring_within = Some(std::time::Duration::from_secs(30 * 86_400));
//! for item in list_certificates(&api, &catalog, &request).await? {
//!     println!("{} ends {:?}", item.object, item.not_after);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Modules
//!
//! `x509` (the served certificate) and `renewal` (cert-manager's arithmetic) need no server;
//! `live` reads objects and Secrets; `inventory`, `inspect`, `renew` and `checks` build on
//! it; `warning` and `error` are the words they report in.

// Errors carry the object and kube's error; they are rare and off every hot path.
#![allow(clippy::result_large_err)]

mod checks;
mod error;
mod inspect;
mod inventory;
mod live;
mod renew;
mod renewal;
mod warning;
mod x509;

pub use crate::{
    checks::{ApiCheck, IngressFinding, IngressProblem, check_api, check_ingress},
    error::{Error, Result},
    inspect::{ConditionItem, Inspection, SecretReport, Step, inspect},
    inventory::{CertificateItem, ListRequest, list_certificates},
    live::{IssuerRef, served},
    renew::{MANUALLY_TRIGGERED, Outcome, RenewRequest, Renewal, renew},
    renewal::{RenewalPolicy, backoff_until, renewal_time},
    warning::Warning,
    x509::{Served, parse_chain},
};
