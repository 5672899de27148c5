//! The one error type of capstan-capi.

use std::fmt;

use capstan_kube::Cause;
use capstan_manifest::ObjectId;

use crate::scale::Refusal;

/// Why a ClusterAPI operation or a drain did not happen, or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server's API could not be read.
    #[error(transparent)]
    Kube(#[from] capstan_kube::Error),

    /// A request was refused or not answered.
    #[error("cannot {what}: {}", Cause(.error))]
    Request {
        /// What the request was for (`cordon node \`n1\``).
        what: String,
        /// The failure.
        error: kube::Error,
    },

    /// The node does not exist.
    #[error("node `{node}` not found")]
    NodeNotFound {
        /// The node.
        node: String,
    },

    /// The server serves no such kind: ClusterAPI (or this provider) is not installed.
    #[error("the server serves no {group} {kind}: is ClusterAPI installed in this cluster?")]
    NotServed {
        /// The API group.
        group: String,
        /// The kind.
        kind: String,
    },

    /// The object does not exist.
    #[error("{object} does not exist")]
    NotFound {
        /// The object.
        object: ObjectId,
    },

    /// The change is one ClusterAPI would refuse or undo; nothing was written.
    #[error("{object}: {refusal}")]
    Refused {
        /// The object that was to change.
        object: ObjectId,
        /// Why it may not.
        refusal: Refusal,
    },

    /// No Machine runs the Node by any route.
    #[error(
        "no Machine runs Node {node}: none is named by its cluster.x-k8s.io/machine annotation, \
         names it in status.nodeRef, or has its provider ID{}",
        .provider_id.as_deref().map(|id| format!(" {id}")).unwrap_or_default()
    )]
    NoMachine {
        /// The Node.
        node: String,
        /// Its `spec.providerID`, if it has one.
        provider_id: Option<String>,
    },

    /// Nothing owns the Machine's replica count, so scaling down cannot remove it.
    #[error("{machine} belongs to no MachineDeployment, MachineSet or control plane to scale down")]
    NoOwner {
        /// The Machine.
        machine: ObjectId,
    },

    /// No replacement Machine had a Ready Node in time; the old Machine stays deleted.
    #[error("gave up after {} s waiting for a Ready replacement for Node {node} (its Machine {machine} is deleting)", .waited.as_secs())]
    NoReplacement {
        /// The Node replaced.
        node: String,
        /// Its Machine.
        machine: ObjectId,
        /// How long it waited.
        waited: std::time::Duration,
    },

    /// Pods the filters refuse stop the drain of the node; nothing of it was evicted.
    #[error("node `{node}` was not drained: {pods} pod(s) block it, so none was evicted")]
    Blocked {
        /// The node.
        node: String,
        /// How many pods block it.
        pods: usize,
    },

    /// The server refused to evict (or delete) pods for good, such as a pod under two
    /// disruption budgets.
    #[error("node `{node}` was not drained: {}", Failures(.failures))]
    Evictions {
        /// The node.
        node: String,
        /// Each pod, with the server's answer.
        failures: Vec<(ObjectId, String)>,
    },

    /// The timeout passed with pods still on the node.
    #[error("node `{node}` was not drained within the timeout: pods left: {}", Names(.pods))]
    Timeout {
        /// The node.
        node: String,
        /// The pods still there.
        pods: Vec<ObjectId>,
    },
}

/// `ns/a, ns/b`.
struct Names<'a>(&'a [ObjectId]);

impl fmt::Display for Names<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, pod) in self.0.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(
                f,
                "{separator}{}/{}",
                pod.namespace().unwrap_or_default(),
                pod.name()
            )?;
        }
        Ok(())
    }
}

/// `cannot evict pod ns/a: <answer>; cannot evict pod ns/b: <answer>`.
struct Failures<'a>(&'a [(ObjectId, String)]);

impl fmt::Display for Failures<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (pod, message)) in self.0.iter().enumerate() {
            let separator = if index == 0 { "" } else { "; " };
            write!(
                f,
                "{separator}cannot evict pod {}: {message}",
                Names(std::slice::from_ref(pod))
            )?;
        }
        Ok(())
    }
}

/// The result type of capstan-capi.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_every_pod_left() {
        let pod = |name: &str| ObjectId::new("v1", "Pod", Some("shop"), name);
        let error = Error::Timeout {
            node: "n1".into(),
            pods: vec![pod("web-1"), pod("web-2")],
        };
        assert_eq!(
            error.to_string(),
            "node `n1` was not drained within the timeout: pods left: shop/web-1, shop/web-2"
        );
    }

    #[test]
    fn a_refused_request_shows_the_servers_answer_once() {
        let status =
            kube::core::Status::failure("nodes \"n1\" is forbidden", "Forbidden").with_code(403);
        let error = Error::Request {
            what: "cordon node `n1`".into(),
            error: kube::Error::Api(Box::new(status)),
        };
        assert_eq!(
            error.to_string(),
            "cannot cordon node `n1`: 403 Forbidden: nodes \"n1\" is forbidden"
        );
        assert!(std::error::Error::source(&error).is_none());
    }
}
