//! Reading cert-manager's objects and the Secrets they fill.

use capstan_kube::{Api, Catalog, Resource};
use capstan_manifest::ObjectId;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DynamicObject, ListParams};
use kube::core::{Request, Resource as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::x509::{Served, parse_chain};
use crate::{Error, Result};

pub(crate) const GROUP: &str = "cert-manager.io";

/// The served resource of a cert-manager kind (`group` `cert-manager.io` or
/// `acme.cert-manager.io`).
pub(crate) fn resource<'c>(catalog: &'c Catalog, group: &str, kind: &str) -> Result<&'c Resource> {
    catalog
        .resolve(group, "v1", kind)
        .map(|resource| &**resource)
        .ok_or_else(|| Error::NotInstalled {
            kind: kind.to_owned(),
        })
}

pub(crate) fn secrets(catalog: &Catalog) -> Result<&Resource> {
    catalog
        .resolve("", "v1", "Secret")
        .map(|resource| &**resource)
        .ok_or_else(|| Error::Invalid("the server serves no v1 Secret".to_owned()))
}

/// The identity of `object`, a live object of `resource`.
pub(crate) fn id_of(resource: &Resource, object: &Value) -> ObjectId {
    identity(resource, namespace_of(object), name_of(object))
}

pub(crate) fn identity(resource: &Resource, namespace: &str, name: &str) -> ObjectId {
    let namespace = resource.namespaced.then_some(namespace);
    ObjectId::new(
        &resource.api.api_version,
        &resource.api.kind,
        namespace,
        name,
    )
}

pub(crate) fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

pub(crate) fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or_default()
}

pub(crate) fn time(value: &Value) -> Option<Timestamp> {
    value.as_str()?.parse().ok()
}

#[derive(Deserialize)]
struct Items {
    /// `null` when empty.
    items: Option<Vec<Value>>,
}

/// Objects of `resource` in `namespace` (all with `None`), selected by label.
pub(crate) async fn list(
    api: &Api,
    resource: &Resource,
    namespace: Option<&str>,
    selector: Option<&str>,
) -> Result<Vec<Value>> {
    let failed = |cause| Error::List {
        what: listed(resource, namespace),
        cause,
    };
    let Some(namespace) = namespace else {
        return api
            .list(&resource.api, selector.unwrap_or_default())
            .await
            .map_err(failed);
    };
    // One namespace's objects in one answer: the server pages only when asked.
    let request = Request::new(DynamicObject::url_path(&resource.api, Some(namespace)));
    let mut params = ListParams::default();
    if let Some(selector) = selector {
        params = params.labels(selector);
    }
    let items: Items = api.send(|| request.list(&params)).await.map_err(failed)?;
    Ok(items.items.unwrap_or_default())
}

/// `cert-manager.io/v1 certificates in namespace shop`, for messages.
pub(crate) fn listed(resource: &Resource, namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("{} in namespace {namespace}", resource.describe()),
        None => format!("{} in all namespaces", resource.describe()),
    }
}

/// A Certificate's `spec.issuerRef`, with cert-manager's defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct IssuerRef {
    /// The issuer's name.
    pub name: String,
    /// `Issuer`, `ClusterIssuer` or an external issuer's kind.
    pub kind: String,
    /// `cert-manager.io` or an external issuer's group.
    pub group: String,
}

impl IssuerRef {
    pub(crate) fn of(certificate: &Value) -> Self {
        let text = |key: &str, default: &str| {
            certificate["spec"]["issuerRef"][key]
                .as_str()
                .filter(|text| !text.is_empty())
                .unwrap_or(default)
                .to_owned()
        };
        Self {
            name: text("name", ""),
            kind: text("kind", "Issuer"),
            group: text("group", GROUP),
        }
    }
}

impl std::fmt::Display for IssuerRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

/// The certificate a Secret serves, read from its `tls.crt`.
///
/// # Errors
///
/// [`Error::Unreadable`] when `tls.crt` is missing or is not a PEM certificate chain.
pub fn served(secret: &Value, id: &ObjectId) -> Result<Served> {
    let unreadable = |problem: String| Error::Unreadable {
        secret: id.clone(),
        problem,
    };
    let encoded = secret["data"]["tls.crt"]
        .as_str()
        .filter(|data| !data.is_empty())
        .ok_or_else(|| unreadable("is missing".to_owned()))?;
    let pem: k8s_openapi::ByteString = serde_json::from_value(Value::String(encoded.to_owned()))
        .map_err(|error| unreadable(format!("is not base64: {error}")))?;
    parse_chain(&pem.0).map_err(unreadable)
}
