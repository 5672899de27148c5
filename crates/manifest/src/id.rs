//! The identity every capstan crate uses to name a Kubernetes object.

use std::fmt;
use std::hash::{Hash, Hasher};

use crate::escape_controls;

/// Which object a manifest describes: group, version, kind, namespace and name.
///
/// Two identities name the same object when group, kind, namespace and name match. The version
/// is only how the object is spelled (`apps/v1` and `apps/v1beta2` address the same
/// Deployment), so equality, hashing and ordering ignore it.
///
/// The namespace is what the manifest says. Whether a kind is namespaced is the API server's
/// knowledge (discovery), not the manifest's, so an object without a namespace is not assumed to
/// be cluster-scoped here.
///
/// Displays as `apps/Deployment web/api`: the group (omitted for the core group), the kind,
/// then `namespace/name` or just `name`, with control characters escaped
/// ([`escape_controls`](crate::escape_controls)). Serialises as `{apiVersion, kind, namespace, name}`,
/// the way Kubernetes names an object (without `namespace` when there is none).
#[derive(Clone, Debug)]
pub struct ObjectId {
    group: String,
    version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl ObjectId {
    /// An identity from its parts. `api_version` is `group/version`, or `version` for the core
    /// group, as in a manifest's `apiVersion`.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let (group, version) = split_api_version(api_version);
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// The API group; empty for the core group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The API version within the group, such as `v1`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// `group/version`, or `version` for the core group: the manifest's `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kind, such as `Deployment`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The namespace the manifest names, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a Namespace, whose deletion deletes everything in it.
    pub fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.kind == "Namespace"
    }

    /// Whether this is a CustomResourceDefinition, whose deletion deletes every object of its
    /// kinds.
    pub fn is_crd(&self) -> bool {
        self.group == "apiextensions.k8s.io" && self.kind == "CustomResourceDefinition"
    }

    fn key(&self) -> (&str, &str, Option<&str>, &str) {
        (
            &self.group,
            &self.kind,
            self.namespace.as_deref(),
            &self.name,
        )
    }
}

/// Splits `apiVersion` into group and version; the core group has no slash.
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

impl PartialEq for ObjectId {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for ObjectId {}

impl Hash for ObjectId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for ObjectId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ObjectId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl serde::Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("apiVersion", &self.api_version())?;
        map.serialize_entry("kind", &self.kind)?;
        if let Some(namespace) = &self.namespace {
            map.serialize_entry("namespace", namespace)?;
        }
        map.serialize_entry("name", &self.name)?;
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for ObjectId {
    /// Reads back what [`Serialize`](serde::Serialize) writes: `{apiVersion, kind, namespace,
    /// name}`, the namespace optional.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Parts {
            api_version: String,
            kind: String,
            namespace: Option<String>,
            name: String,
        }
        let parts = Parts::deserialize(deserializer)?;
        Ok(Self::new(
            &parts.api_version,
            &parts.kind,
            parts.namespace.as_deref(),
            &parts.name,
        ))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}/", escape_controls(&self.group))?;
        }
        write!(f, "{} ", escape_controls(&self.kind))?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{}/", escape_controls(namespace))?;
        }
        f.write_str(&escape_controls(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectId;

    #[test]
    fn an_identity_reads_back_what_it_writes() {
        for id in [
            ObjectId::new("apps/v1", "Deployment", Some("shop"), "web"),
            ObjectId::new("v1", "Namespace", None, "shop"),
        ] {
            let json = serde_json::to_string(&id).unwrap();
            let back: ObjectId = serde_json::from_str(&json).unwrap();
            assert_eq!(
                (back.api_version(), &back),
                (id.api_version(), &id),
                "{json}"
            );
        }
        let unknown =
            serde_json::from_str::<ObjectId>(r#"{"apiVersion":"v1","kind":"A","name":"a","x":1}"#);
        assert!(unknown.is_err());
    }

    #[test]
    fn serialises_as_kubernetes_names_objects() {
        let deployment = ObjectId::new("apps/v1", "Deployment", Some("web"), "api");
        let text = serde_json::to_string(&deployment).unwrap();
        assert_eq!(
            text,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","namespace":"web","name":"api"}"#
        );
        let role = ObjectId::new("rbac.authorization.k8s.io/v1", "ClusterRole", None, "view");
        assert!(!serde_json::to_string(&role).unwrap().contains("namespace"));
    }

    #[test]
    fn display_names_group_kind_namespace_and_name() {
        let deployment = ObjectId::new("apps/v1", "Deployment", Some("web"), "api");
        assert_eq!(deployment.to_string(), "apps/Deployment web/api");
        let map = ObjectId::new("v1", "ConfigMap", Some("web"), "settings");
        assert_eq!(map.to_string(), "ConfigMap web/settings");
        let role = ObjectId::new(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "reader",
        );
        assert_eq!(
            role.to_string(),
            "rbac.authorization.k8s.io/ClusterRole reader"
        );
    }

    #[test]
    fn display_escapes_control_characters_but_serialisation_keeps_them() {
        let id = ObjectId::new(
            "ex\u{9b}.com/v1",
            "Wid\u{7}get",
            Some("a\nb"),
            "\u{1b}[2Jweb",
        );
        assert_eq!(
            id.to_string(),
            r"ex\u{9b}.com/Wid\u{7}get a\nb/\u{1b}[2Jweb"
        );
        // JSON escapes C0 itself, and leaves C1 to whoever prints it.
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            "{\"apiVersion\":\"ex\u{9b}.com/v1\",".to_owned()
                + r#""kind":"Wid\u0007get","namespace":"a\nb","name":"\u001b[2Jweb"}"#
        );
    }

    #[test]
    fn versions_of_one_object_are_the_same_identity() {
        let v1 = ObjectId::new("apps/v1", "Deployment", Some("web"), "api");
        let beta = ObjectId::new("apps/v1beta2", "Deployment", Some("web"), "api");
        assert_eq!(v1, beta);
        assert_eq!(beta.api_version(), "apps/v1beta2");
        assert_ne!(v1, ObjectId::new("apps/v1", "Deployment", None, "api"));
    }

    #[test]
    fn core_group_is_empty() {
        let id = ObjectId::new("v1", "Secret", Some("a"), "b");
        assert_eq!(
            (id.group(), id.version(), id.api_version().as_str()),
            ("", "v1", "v1")
        );
    }
}
