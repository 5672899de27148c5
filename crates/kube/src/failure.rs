//! What a failed request means: its status code, whether retrying can help, and how a person
//! reads it.

use std::fmt;

/// The HTTP status of an error the server answered.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// What a 1.20 apiserver's 500 says when the request itself is invalid (a server-side apply
/// body that does not fit the schema; newer servers answer 4xx): retrying cannot help.
const INVALID_REQUEST_500: &str = "failed to create typed patch object";

/// Throttling, server trouble and lost connections pass; anything else would fail again.
pub(crate) fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) if status.message.starts_with(INVALID_REQUEST_500) => false,
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// A failed request as a person reads it: the server's code, reason and message, without the
/// struct dump kube's own message appends. For messages that show their cause themselves
/// (and so return no `source()`).
pub struct Cause<'a>(pub &'a kube::Error);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            kube::Error::Api(status) if status.reason.is_empty() => {
                write!(f, "{} {}", status.code, status.message)
            }
            kube::Error::Api(status) => {
                write!(f, "{} {}: {}", status.code, status.reason, status.message)
            }
            other => write!(f, "{other}"),
        }
    }
}

/// A failed request about one object, sorted by what the caller can do about it.
/// Exhaustive, so that callers map every kind to an error of their own.
#[derive(Debug)]
pub enum RequestFailure {
    /// Another field manager owns fields the request sets (409 `Conflict`): forcing the apply
    /// takes them over.
    Conflict {
        /// The server's message, which names the managers and the fields.
        message: String,
    },
    /// The server answered with another error.
    Rejected {
        /// The HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// No answer from the server (after retries), or the request could not be built.
    Unanswered(kube::Error),
}

impl RequestFailure {
    /// Sorts a failed request.
    pub fn classify(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if status.code == 409 && status.reason == "Conflict" => {
                Self::Conflict {
                    message: status.message,
                }
            }
            kube::Error::Api(status) => Self::Rejected {
                code: status.code,
                message: status.message,
            },
            other => Self::Unanswered(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Cause, RequestFailure, is_transient};

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure(message, reason).with_code(code),
        ))
    }

    #[test]
    fn a_servers_answer_reads_as_code_reason_and_message() {
        let error = api_error(401, "Unauthorized", "the token is not valid");
        assert_eq!(
            Cause(&error).to_string(),
            "401 Unauthorized: the token is not valid"
        );
        assert_eq!(Cause(&api_error(500, "", "boom")).to_string(), "500 boom");
    }

    #[test]
    fn a_500_saying_the_request_is_invalid_is_not_retried() {
        let invalid = api_error(
            500,
            "InternalError",
            "failed to create typed patch object: .spec.x: field not declared in schema",
        );
        assert!(!is_transient(&invalid));
        assert!(is_transient(&api_error(
            500,
            "InternalError",
            "etcd timeout"
        )));
        assert!(is_transient(&api_error(
            429,
            "TooManyRequests",
            "slow down"
        )));
        assert!(!is_transient(&api_error(422, "Invalid", "bad")));
    }

    #[test]
    fn conflicts_are_told_from_other_answers_and_from_no_answer() {
        assert!(matches!(
            RequestFailure::classify(api_error(409, "Conflict", "owned by kubectl")),
            RequestFailure::Conflict { message } if message == "owned by kubectl"
        ));
        assert!(matches!(
            RequestFailure::classify(api_error(409, "AlreadyExists", "exists")),
            RequestFailure::Rejected { code: 409, .. }
        ));
        assert!(matches!(
            RequestFailure::classify(kube::Error::Service("gone".into())),
            RequestFailure::Unanswered(_)
        ));
    }
}
