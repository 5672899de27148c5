//! An example capstan plugin, loaded by capstan's tests through the `capstan` binary.
//!
//! It provides one stage, `policy` (a ConfigMap in the namespace `EXAMPLE_POLICY_NAMESPACE`
//! names, `default` without it, so tests can deploy it into a namespace of their own), and
//! checks the objects of
//! stages that list it under `transform:`: every object gets the label
//! `policy.example.com/checked: "true"`, and a ConfigMap with a `password` key is a problem
//! (it belongs in a Secret).

use capstan_plugin::{
    Capability, Document, Finding, Info, Plugin, Result, SourcedObject, Transformed, async_trait,
};

/// The example plugin.
#[derive(Debug, Default)]
pub struct ExampleStage;

fn policy() -> String {
    let namespace =
        std::env::var("EXAMPLE_POLICY_NAMESPACE").unwrap_or_else(|_| "default".to_owned());
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: policy\n  namespace: {namespace}\n\
         data:\n  allowed-registries: registry.example.com\n"
    )
}

#[async_trait]
impl Plugin for ExampleStage {
    fn info(&self) -> Info {
        Info {
            name: "example-stage".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: vec![Capability::Stages, Capability::Transform],
        }
    }

    async fn stages(&self) -> Result<Vec<String>> {
        Ok(vec!["policy".to_owned()])
    }

    async fn render(&self, stage: &str) -> Result<Vec<Document>> {
        match stage {
            "policy" => Ok(vec![Document {
                name: "policy.yaml".to_owned(),
                text: policy(),
            }]),
            other => Err(capstan_plugin::Error::Plugin {
                name: self.info().name,
                message: format!("no stage `{other}`; I provide `policy`"),
            }),
        }
    }

    async fn transform(&self, _stage: &str, objects: Vec<SourcedObject>) -> Result<Transformed> {
        let mut findings = Vec::new();
        let mut checked = Vec::with_capacity(objects.len());
        for mut sourced in objects {
            let object = &mut sourced.object;
            if object["kind"] == "ConfigMap" && object["data"].get("password").is_some() {
                findings.push(Finding {
                    source: sourced.source.clone(),
                    message: format!(
                        "ConfigMap {} holds a `password`; put it in a Secret",
                        object["metadata"]["name"].as_str().unwrap_or("?")
                    ),
                });
            }
            if let Some(metadata) = object["metadata"].as_object_mut() {
                let labels = metadata
                    .entry("labels")
                    .or_insert_with(|| serde_json::json!({}));
                if let Some(labels) = labels.as_object_mut() {
                    labels.insert("policy.example.com/checked".to_owned(), "true".into());
                }
            }
            checked.push(sourced);
        }
        Ok(Transformed {
            objects: checked,
            findings,
        })
    }
}

capstan_plugin::export_plugin!(ExampleStage);
