//! What every stage of a run works with: the API and the options, and how a failed request
//! about an object becomes an error.

use capstan_kube::{Api, RequestFailure};
use capstan_manifest::ObjectId;

use crate::error::Error;
use crate::options::Options;
use crate::planned::Planned;

/// The state the stages (plan, write, prune, health) share; the [`Deployer`](crate::Deployer)
/// owns one.
pub(crate) struct Context {
    pub(crate) api: Api,
    pub(crate) options: Options,
}

impl Context {
    /// Requests in flight at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.options.concurrency.max(1)
    }

    /// The client's namespace, for namespaced objects that name none.
    pub(crate) fn default_namespace(&self) -> &str {
        self.api.client().default_namespace()
    }

    /// A failed request for an object, classified, with the object's secret values masked in
    /// the server's message.
    pub(crate) fn object_error(
        &self,
        item: &Planned<'_>,
        operation: &'static str,
        source: kube::Error,
    ) -> Error {
        let error = self.request_error(item.id(), operation, source);
        if item.secrets.is_empty() {
            return error;
        }
        error.redacted(&item.secrets)
    }

    /// A failed request for an object, classified.
    pub(crate) fn request_error(
        &self,
        id: &ObjectId,
        operation: &'static str,
        source: kube::Error,
    ) -> Error {
        match RequestFailure::classify(source) {
            RequestFailure::Conflict { message } => Error::Conflict {
                id: id.clone(),
                message,
            },
            RequestFailure::Rejected { code, message } => Error::Rejected {
                id: id.clone(),
                operation,
                code,
                message,
            },
            RequestFailure::Unanswered(cause) => Error::Request {
                id: id.clone(),
                operation,
                cause,
            },
        }
    }
}
