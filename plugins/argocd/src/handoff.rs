//! From a stage's objects to the folder Argo CD syncs from.

use std::collections::{BTreeMap, HashMap};

use capstan_manifest::{HANDED_OFF_ANNOTATION, ObjectId, TreeObject, write_tree};
use capstan_plugin::{Handoff, HandoffObject, HandoffRequest, OutputFile, Source};
use serde_json::{Value, json};

use crate::config::{Automated, Config, Destination, GroupBy, Layout};
use crate::{Crossing, Error, Result};

/// Annotation Argo CD orders a sync by, lowest wave first.
const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// One handed-off object, with its identity and application.
struct Member<'a> {
    id: ObjectId,
    object: &'a HandoffObject,
}

/// The files for `request`, sorted by path: the same request always gives the same bytes.
///
/// Plaintext objects get a sync wave from their capstan phase, so Argo CD applies CRDs,
/// namespaces and configuration before the workloads that need them; SOPS-encrypted objects
/// are written unchanged, since any change would break their MAC. Each Application's own wave is
/// its earliest object's.
///
/// # Errors
///
/// [`Error::Boundary`] when an object is also in an infrastructure stage, [`Error::Ungrouped`]
/// when grouping by a label an object lacks, [`Error::Collision`] when two objects of an
/// application map to one nixidy file, and [`Error::NotAnObject`].
pub fn hand_off(request: &HandoffRequest, config: &Config) -> Result<Handoff> {
    let mut apps: BTreeMap<String, Vec<Member<'_>>> = BTreeMap::new();
    for object in &request.objects {
        let id = identity(&object.sourced.object, &object.sourced.source)?;
        let app = app_of(&id, object, config)?;
        apps.entry(app).or_default().push(Member { id, object });
    }
    check_boundary(request, &apps)?;
    let mut files = Vec::new();
    for (app, members) in &apps {
        files.push(application(app, members, config));
        match config.layout {
            Layout::Nixidy => files.extend(nixidy(app, members)?),
            Layout::Easykubenix => files.extend(unit(app, members)),
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Handoff { files })
}

fn identity(object: &Value, source: &Source) -> Result<ObjectId> {
    let text = |value: &Value| value.as_str().map(str::to_owned);
    let (Some(api_version), Some(kind), Some(name)) = (
        text(&object["apiVersion"]),
        text(&object["kind"]),
        text(&object["metadata"]["name"]),
    ) else {
        return Err(Error::NotAnObject(shown(source)));
    };
    let namespace = text(&object["metadata"]["namespace"]);
    Ok(ObjectId::new(
        &api_version,
        &kind,
        namespace.as_deref(),
        &name,
    ))
}

fn shown(source: &Source) -> String {
    format!("{}:{}", source.file, source.line)
}

fn app_of(id: &ObjectId, object: &HandoffObject, config: &Config) -> Result<String> {
    match &config.group_by {
        GroupBy::Namespace => Ok(id.namespace().unwrap_or("cluster").to_owned()),
        GroupBy::Label(label) => object.sourced.object["metadata"]["labels"][label]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Error::Ungrouped {
                object: id.to_string(),
                location: shown(&object.sourced.source),
                label: label.clone(),
            }),
    }
}

fn check_boundary(
    request: &HandoffRequest,
    apps: &BTreeMap<String, Vec<Member<'_>>>,
) -> Result<()> {
    let mut claimed = HashMap::new();
    for claim in &request.infrastructure {
        claimed.insert(identity(&claim.object, &claim.source)?, claim);
    }
    for (app, members) in apps {
        for member in members {
            if let Some(claim) = claimed.get(&member.id) {
                return Err(Error::Boundary(Box::new(Crossing {
                    object: member.id.to_string(),
                    app: app.clone(),
                    stage: request.stage.clone(),
                    location: shown(&member.object.sourced.source),
                    infrastructure: claim.stage.clone(),
                    infrastructure_location: shown(&claim.source),
                })));
            }
        }
    }
    Ok(())
}

fn application(app: &str, members: &[Member<'_>], config: &Config) -> OutputFile {
    let wave = members.iter().map(|m| m.object.phase).min().unwrap_or(0);
    let destination = match &config.destination {
        Destination::Server(server) => json!({"server": server}),
        Destination::Name(name) => json!({"name": name}),
    };
    let mut destination = destination;
    if matches!(config.group_by, GroupBy::Namespace) && app != "cluster" {
        destination["namespace"] = json!(app);
    }
    let mut sync_policy = json!({});
    if let Automated::On { prune, self_heal } = config.automated {
        sync_policy["automated"] = json!({"prune": prune, "selfHeal": self_heal});
    }
    if config.create_namespace {
        sync_policy["syncOptions"] = json!(["CreateNamespace=true"]);
    }
    let path = if config.path == "." {
        app.to_owned()
    } else {
        format!("{}/{app}", config.path.trim_end_matches('/'))
    };
    let application = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": app,
            "namespace": config.namespace,
            "annotations": {SYNC_WAVE: wave.to_string()},
        },
        "spec": {
            "project": config.project,
            "source": {
                "repoURL": config.repo_url,
                "targetRevision": config.target_revision,
                "path": path,
            },
            "destination": destination,
            "syncPolicy": sync_policy,
        },
    });
    OutputFile {
        path: format!("apps/Application-{app}.yaml"),
        text: yaml(&application),
    }
}

/// The object as written: with its sync wave and the mark that keeps capstan's prune off it,
/// unless it is encrypted (a new key would break its MAC).
fn written(member: &Member<'_>) -> Value {
    let mut object = member.object.sourced.object.clone();
    if let (false, Some(metadata)) = (member.object.encrypted, object["metadata"].as_object_mut()) {
        let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations
                .entry(SYNC_WAVE)
                .or_insert_with(|| json!(member.object.phase.to_string()));
            annotations.insert(HANDED_OFF_ANNOTATION.to_owned(), json!("argocd"));
        }
    }
    object
}

fn nixidy(app: &str, members: &[Member<'_>]) -> Result<Vec<OutputFile>> {
    let mut files: BTreeMap<String, (&Member<'_>, String)> = BTreeMap::new();
    for member in members {
        let path = format!("{app}/{}-{}.yaml", member.id.kind(), member.id.name());
        if let Some((first, _)) = files.get(&path) {
            let described =
                |m: &Member<'_>| format!("{} ({})", m.id, shown(&m.object.sourced.source));
            return Err(Error::Collision {
                path,
                first: described(first),
                second: described(member),
            });
        }
        files.insert(path, (member, yaml(&written(member))));
    }
    Ok(files
        .into_iter()
        .map(|(path, (_, text))| OutputFile { path, text })
        .collect())
}

fn unit(app: &str, members: &[Member<'_>]) -> Vec<OutputFile> {
    let values: Vec<Value> = members.iter().map(written).collect();
    let objects: Vec<TreeObject<'_>> = members
        .iter()
        .zip(&values)
        .map(|(member, value)| TreeObject {
            id: &member.id,
            value,
            encrypted: member.object.encrypted,
        })
        .collect();
    write_tree(&objects)
        .into_iter()
        .map(|file| OutputFile {
            path: format!("{app}/{}", file.path),
            text: file.text,
        })
        .collect()
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use capstan_plugin::{HandoffObject, HandoffRequest, Source, SourcedObject};
    use serde_json::{Value, json};

    use super::hand_off;
    use crate::{Automated, Config, Destination, GroupBy};

    fn object(line: usize, value: Value) -> HandoffObject {
        let source = Source {
            file: "apps.yaml".to_owned(),
            line,
            document: line,
            item: None,
        };
        HandoffObject {
            sourced: SourcedObject {
                source,
                object: value,
            },
            phase: 4,
            encrypted: false,
        }
    }

    fn request(objects: Vec<HandoffObject>) -> HandoffRequest {
        HandoffRequest {
            stage: "apps".to_owned(),
            objects,
            config: Value::Null,
            infrastructure: Vec::new(),
        }
    }

    fn config_map(name: &str, namespace: &str, part_of: Option<&str>) -> Value {
        let mut value = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace},
        });
        if let Some(part_of) = part_of {
            value["metadata"]["labels"] = json!({"app.kubernetes.io/part-of": part_of});
        }
        value
    }

    fn by_label() -> Config {
        Config {
            group_by: GroupBy::Label("app.kubernetes.io/part-of".to_owned()),
            ..Config::default()
        }
    }

    #[test]
    fn grouping_by_a_label_puts_objects_of_several_namespaces_into_one_application() {
        let objects = vec![
            object(1, config_map("a", "one", Some("shop"))),
            object(2, config_map("b", "two", Some("shop"))),
        ];
        let handoff = hand_off(&request(objects), &by_label()).unwrap();
        let paths: Vec<&str> = handoff
            .files
            .iter()
            .map(|file| file.path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "apps/Application-shop.yaml",
                "shop/ConfigMap-a.yaml",
                "shop/ConfigMap-b.yaml"
            ]
        );
        // No destination namespace: the application spans several.
        assert!(
            !handoff.files[0].text.contains("    namespace:"),
            "{}",
            handoff.files[0].text
        );
    }

    #[test]
    fn an_object_without_the_grouping_label_is_named_with_its_source() {
        let objects = vec![object(3, config_map("a", "one", None))];
        let error = hand_off(&request(objects), &by_label()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ConfigMap one/a (apps.yaml:3) has no label `app.kubernetes.io/part-of`, which decides its Argo CD application"
        );
    }

    #[test]
    fn two_objects_for_one_nixidy_file_are_refused_naming_both() {
        let objects = vec![
            object(1, config_map("a", "one", Some("shop"))),
            object(5, config_map("a", "two", Some("shop"))),
        ];
        let error = hand_off(&request(objects), &by_label()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "ConfigMap one/a (apps.yaml:1) and ConfigMap two/a (apps.yaml:5) would both be written to `shop/ConfigMap-a.yaml`"
        );
    }

    #[test]
    fn manual_sync_and_a_named_cluster_come_from_the_configuration() {
        let config = Config {
            automated: Automated::Off(false),
            create_namespace: false,
            destination: Destination::Name("prod".to_owned()),
            ..Config::default()
        };
        let objects = vec![object(1, config_map("a", "web", None))];
        let handoff = hand_off(&request(objects), &config).unwrap();
        let application: Value = serde_yaml::from_str(&handoff.files[0].text).unwrap();
        assert_eq!(
            application["spec"]["destination"],
            json!({"name": "prod", "namespace": "web"})
        );
        assert_eq!(application["spec"]["syncPolicy"], json!({}));
    }

    #[test]
    fn the_configuration_refuses_unknown_fields() {
        let error = serde_json::from_value::<Config>(json!({"repoUrl": "x"})).unwrap_err();
        assert!(
            error.to_string().starts_with("unknown field `repoUrl`"),
            "{error}"
        );
    }
}
