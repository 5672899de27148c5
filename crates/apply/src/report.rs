//! How results serialise for `--output json`.

use capstan_manifest::ObjectId;
use serde::Serializer;
use serde::ser::SerializeMap as _;

/// An object's identity as `{apiVersion, kind, namespace, name}`.
pub(crate) fn id<S: Serializer>(id: &ObjectId, serializer: S) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(None)?;
    map.serialize_entry("apiVersion", &id.api_version())?;
    map.serialize_entry("kind", id.kind())?;
    if let Some(namespace) = id.namespace() {
        map.serialize_entry("namespace", namespace)?;
    }
    map.serialize_entry("name", id.name())?;
    map.end()
}
