//! cert-manager `Certificate`s at a glance: when each expires, whether it is healthy, and
//! renewal on demand, the job `cmctl status` and `cmctl renew` do today.
//!
//! # What it will expose
//!
//! - expiry read from the issued certificate itself (the Secret's `tls.crt`), not only from the
//!   `Certificate` status;
//! - a health summary per `Certificate` from its conditions and its latest
//!   `CertificateRequest`;
//! - renewal, triggered the way cert-manager expects (the `Issuing` condition).
