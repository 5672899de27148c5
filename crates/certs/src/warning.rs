//! What deserves attention about a Certificate without being a failure.

use std::fmt;

use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

/// Something about a Certificate worth telling its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    tag = "kind",
    rename_all = "kebab-case",
    rename_all_fields = "camelCase"
)]
#[non_exhaustive]
pub enum Warning {
    /// `spec.secretName` names no Secret.
    SecretMissing {
        /// The Secret's name.
        secret: String,
    },
    /// The Secret's `tls.crt` is missing or cannot be read.
    SecretUnreadable {
        /// The Secret's name.
        secret: String,
        /// What is wrong with it.
        problem: String,
    },
    /// `status.notAfter` is not the end of the certificate the Secret serves.
    NotAfterMismatch {
        /// What the Certificate's status says.
        status: Timestamp,
        /// What the served certificate says.
        served: Timestamp,
    },
    /// Names the Certificate asks for that the served certificate does not carry.
    NamesNotCovered {
        /// The missing DNS names and IP addresses.
        names: Vec<String>,
    },
    /// `Issuing` is already `True`: a renewal changes nothing until that issuance ends.
    AlreadyIssuing {
        /// Since when (the condition's `lastTransitionTime`).
        since: Option<Timestamp>,
    },
    /// The Secret was deleted to force a new certificate (`renew` with `delete_secret`).
    SecretDeleted {
        /// The Secret's name.
        secret: String,
    },
    /// The last issuance failed and cert-manager's backoff has not run out.
    Backoff {
        /// `status.failedIssuanceAttempts`.
        failed_attempts: u32,
        /// `status.lastFailureTime`.
        last_failure: Timestamp,
        /// When the backoff runs out.
        until: Timestamp,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SecretMissing { secret } => write!(f, "Secret {secret} does not exist"),
            Self::SecretUnreadable { secret, problem } => {
                write!(f, "Secret {secret}: `tls.crt` {problem}")
            }
            Self::NotAfterMismatch { status, served } => write!(
                f,
                "status.notAfter says {status} but the Secret's certificate ends {served}"
            ),
            Self::NamesNotCovered { names } => write!(
                f,
                "the Secret's certificate does not name {}",
                names.join(", ")
            ),
            Self::AlreadyIssuing { since } => {
                write!(f, "Issuing is already True")?;
                if let Some(since) = since {
                    write!(f, " (since {since})")?;
                }
                write!(
                    f,
                    ": the issuance under way goes on and this renewal adds nothing"
                )
            }
            Self::SecretDeleted { secret } => write!(
                f,
                "deleted Secret {secret}: whatever serves it has no certificate until \
                 cert-manager issues a new one, and its private key is gone"
            ),
            Self::Backoff {
                failed_attempts,
                last_failure,
                until,
            } => write!(
                f,
                "issuance failed {failed_attempts} time(s), last at {last_failure}: \
                 cert-manager backs off until {until}; versions before 1.7 wait for it"
            ),
        }
    }
}
