//! Writes the tree layout the loader reads: `<namespace|none>/<Kind>/<name>.yaml` with a
//! `kustomization.yaml`, so the layout is defined in one crate.

use serde_json::{Value, json};

use crate::ObjectId;

/// One file of a written tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// The path relative to the tree's root, with `/` separators.
    pub path: String,
    /// The file's content.
    pub text: String,
}

/// One object to write into a tree.
#[derive(Clone, Copy, Debug)]
pub struct TreeObject<'a> {
    /// Which object it is; decides its path.
    pub id: &'a ObjectId,
    /// The object, written as it is: a SOPS-encrypted object stays encrypted.
    pub value: &'a Value,
    /// Whether it is SOPS-encrypted, and so deployed through a ksops generator.
    pub encrypted: bool,
}

/// Where the tree layout puts an object: `<namespace|none>/<Kind>/<name>.yaml`.
pub fn tree_path(id: &ObjectId) -> String {
    format!(
        "{}/{}/{}.yaml",
        id.namespace().unwrap_or("none"),
        id.kind(),
        id.name()
    )
}

/// Writes `objects` as a tree easykubenix's GitOps rendering would (and [`crate::load`] reads
/// back): a YAML file per object, a `kustomization.yaml` listing the plaintext files under
/// `resources`, and beside each SOPS-encrypted object a `<name>.ksops-generator.yaml`, listed
/// under `generators`, so that Argo CD decrypts it with ksops and the plaintext never reaches
/// the folder. Files come sorted by path, whatever the order of `objects`: the same objects
/// always give the same bytes.
pub fn write_tree(objects: &[TreeObject<'_>]) -> Vec<TreeFile> {
    let mut files = Vec::with_capacity(objects.len() + 1);
    let mut resources = Vec::new();
    let mut generators = Vec::new();
    for object in objects {
        let path = tree_path(object.id);
        if object.encrypted {
            let generator = path.replace(".yaml", ".ksops-generator.yaml");
            let ksops = json!({
                "apiVersion": "viaduct.ai/v1",
                "kind": "ksops",
                "metadata": {
                    "name": format!("{}-{}", object.id.kind().to_lowercase(), object.id.name()),
                    "annotations": {"config.kubernetes.io/function": "exec:\n  path: ksops\n"},
                },
                "files": [path],
            });
            files.push(TreeFile {
                path: generator.clone(),
                text: yaml(&ksops),
            });
            generators.push(generator);
        } else {
            resources.push(path.clone());
        }
        files.push(TreeFile {
            path,
            text: yaml(object.value),
        });
    }
    resources.sort();
    generators.sort();
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    if !generators.is_empty() {
        kustomization["generators"] = json!(generators);
    }
    files.push(TreeFile {
        path: "kustomization.yaml".to_owned(),
        text: yaml(&kustomization),
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// YAML for a value that came from JSON: it always serialises.
pub(crate) fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{TreeObject, tree_path, write_tree};
    use crate::{Input, LoadOptions, ObjectId, load};

    #[test]
    fn objects_go_to_namespace_or_none_then_kind_then_name() {
        let namespaced = ObjectId::new("apps/v1", "Deployment", Some("web"), "api");
        let cluster = ObjectId::new("v1", "Namespace", None, "web");
        assert_eq!(tree_path(&namespaced), "web/Deployment/api.yaml");
        assert_eq!(tree_path(&cluster), "none/Namespace/web.yaml");
    }

    #[test]
    fn a_written_tree_loads_back_with_the_encrypted_object_behind_a_generator() {
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}});
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "web"},
            "data": {"password": "ENC[AES256_GCM,data:abc=,iv:x,tag:y,type:str]"},
        });
        let ids = [
            ObjectId::new("v1", "Secret", Some("web"), "db"),
            ObjectId::new("v1", "Namespace", None, "web"),
        ];
        let objects = [
            TreeObject {
                id: &ids[0],
                value: &secret,
                encrypted: true,
            },
            TreeObject {
                id: &ids[1],
                value: &namespace,
                encrypted: false,
            },
        ];
        let files = write_tree(&objects);
        let paths: Vec<&str> = files.iter().map(|file| file.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "kustomization.yaml",
                "none/Namespace/web.yaml",
                "web/Secret/db.ksops-generator.yaml",
                "web/Secret/db.yaml",
            ]
        );
        assert_eq!(
            files[0].text,
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- none/Namespace/web.yaml\ngenerators:\n- web/Secret/db.ksops-generator.yaml\n"
        );
        assert!(
            files[3].text.contains("ENC[AES256_GCM,data:abc=,"),
            "{}",
            files[3].text
        );

        let dir = tempfile::tempdir().unwrap();
        for file in &files {
            let path = dir.path().join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &file.text).unwrap();
        }
        let manifest = load(
            &[Input::Path(dir.path().to_owned())],
            &LoadOptions::default(),
        )
        .unwrap();
        let loaded: Vec<String> = manifest
            .iter()
            .map(|object| object.id().to_string())
            .collect();
        assert_eq!(loaded, ["Namespace web", "Secret web/db"]);
    }
}
