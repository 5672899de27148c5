//! Installing CustomResourceDefinitions from a folder, and creating the objects (status
//! included) that those tools' controllers would make, for tests of capstan's commands for them
//! (ClusterAPI's, cert-manager's).

use std::path::Path;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use serde::Deserialize as _;
use serde_json::{Value, json};

use crate::User;
use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};

/// How long a definition may take to be Established and served.
const READY_WITHIN: Duration = Duration::from_secs(60);

impl ControlPlane {
    /// The [shared](ControlPlane::shared) plane with the definitions of `dir` installed, once
    /// per test binary and folder (tests running at once wait for the first to install them).
    /// `Ok(None)` when `dir` does not exist, such as test data beside the checkout that a plain
    /// clone lacks: the caller says which tests it skipped.
    ///
    /// # Errors
    ///
    /// Those of [`ControlPlane::shared`] and [`ControlPlane::install_crds`].
    pub async fn shared_with_crds(dir: &Path) -> Result<Option<&'static Self>> {
        static INSTALLED: tokio::sync::Mutex<Vec<std::path::PathBuf>> =
            tokio::sync::Mutex::const_new(Vec::new());
        if !dir.is_dir() {
            return Ok(None);
        }
        let plane = Self::shared().await?;
        let mut installed = INSTALLED.lock().await;
        if !installed.iter().any(|done| done == dir) {
            plane.install_crds(dir).await?;
            installed.push(dir.to_owned());
        }
        Ok(Some(plane))
    }

    /// Server-side applies every CustomResourceDefinition in the YAML files of `dir` (in name
    /// order, several documents a file allowed) and waits until each is Established and its
    /// kinds are served, so a test can create its custom resources at once. Applying the same
    /// folder again changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when a file cannot be read or is not YAML definitions, [`Error::Kube`] when
    /// a request fails, [`Error::NotReady`] when a definition is not served in time.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>> {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client(User::Admin)?);
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(Error::io(dir))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        files.sort();
        let mut installed = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(Error::io(file.clone()))?;
            for document in serde_yaml::Deserializer::from_str(&text) {
                let crd = Option::<CustomResourceDefinition>::deserialize(document)
                    .map_err(|error| Error::io(file.clone())(std::io::Error::other(error)))?;
                let Some(crd) = crd else { continue };
                let name = crd.metadata.name.clone().unwrap_or_default();
                let params = PatchParams::apply("capstan-testenv").force();
                crds.patch(&name, &params, &Patch::Apply(&crd))
                    .await
                    .map_err(Error::Kube)?;
                installed.push((name, crd));
            }
        }
        let deadline = tokio::time::Instant::now() + READY_WITHIN;
        for (name, crd) in &installed {
            while !self.served(&crds, name, crd).await? {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::NotReady {
                        timeout: READY_WITHIN,
                        waiting_for: format!("CustomResourceDefinition {name} to be served"),
                        logs: String::new(),
                    });
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(installed.into_iter().map(|(name, _)| name).collect())
    }

    /// Server-side applies `object` (any kind the server serves, at its `apiVersion`), then
    /// writes its `status`, if it has one, through the status subresource, as the object's
    /// controller would; the object as stored.
    ///
    /// # Errors
    ///
    /// [`Error::Kube`] when the kind is not served or a request fails.
    pub async fn create(&self, object: &Value) -> Result<Value> {
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let api_version = text(&object["apiVersion"]);
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &text(&object["kind"]));
        let client = self.client(User::Admin)?;
        let (resource, capabilities) = kube::discovery::pinned_kind(&client, &gvk)
            .await
            .map_err(Error::Kube)?;
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(namespace) if capabilities.scope == kube::discovery::Scope::Namespaced => {
                Api::namespaced_with(client, namespace, &resource)
            }
            _ => Api::all_with(client, &resource),
        };
        let name = text(&object["metadata"]["name"]);
        let mut body = object.clone();
        let status = body.as_object_mut().and_then(|body| body.remove("status"));
        let params = PatchParams::apply("capstan-testenv").force();
        let mut stored = api
            .patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(Error::Kube)?;
        if let Some(status) = status {
            let patch = Patch::Merge(json!({ "status": status }));
            stored = api
                .patch_status(&name, &PatchParams::default(), &patch)
                .await
                .map_err(Error::Kube)?;
        }
        serde_json::to_value(stored).map_err(|error| Error::Kube(kube::Error::SerdeError(error)))
    }

    /// Whether `name` is Established and discovery lists its plural at its storage version.
    async fn served(
        &self,
        crds: &Api<CustomResourceDefinition>,
        name: &str,
        crd: &CustomResourceDefinition,
    ) -> Result<bool> {
        let live = crds.get(name).await.map_err(Error::Kube)?;
        let established = live
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .iter()
            .any(|condition| condition.type_ == "Established" && condition.status == "True");
        if !established {
            return Ok(false);
        }
        let spec = &crd.spec;
        let Some(version) = spec.versions.iter().find(|version| version.storage) else {
            return Ok(true);
        };
        let group_version = format!("{}/{}", spec.group, version.name);
        let served = self
            .client(User::Admin)?
            .list_api_group_resources(&group_version)
            .await
            .is_ok_and(|list| list.resources.iter().any(|r| r.name == spec.names.plural));
        Ok(served)
    }
}
