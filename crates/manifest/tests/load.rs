//! Loading every input form, validation messages, ordering and labelling.

use std::path::{Path, PathBuf};

use capstan_manifest::{
    Error, Format, Input, Label, LoadOptions, Manifest, Phase, ProblemKind, load,
};

mod common;
use common::{ids, load_path, namespace, problems};

fn text(name: &str, text: &str) -> Input {
    Input::Text {
        name: name.to_owned(),
        text: text.to_owned(),
    }
}

fn load_text(body: &str) -> Result<Manifest, Error> {
    load(&[text("stage.yaml", body)], &LoadOptions::default())
}

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: demo\n";

#[test]
fn multi_document_streams_skip_empty_and_null_documents() {
    let body = format!(
        "---\n# leading comment\n---\n{CONFIG_MAP}---\nnull\n---\n\n...\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: demo}}\n"
    );
    let manifest = load_text(&body).unwrap();
    assert_eq!(
        ids(&manifest),
        ["Namespace demo", "ConfigMap demo/settings"]
    );
    let map = &manifest.objects()[1];
    assert_eq!((map.location().line(), map.location().document()), (4, 1));
}

#[test]
fn yaml_lists_and_typed_lists_are_flattened() {
    let body = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: demo}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, namespace: demo}\n---\napiVersion: v1\nkind: ConfigMapList\nitems: [{apiVersion: v1, kind: ConfigMap, metadata: {name: c, namespace: demo}}]\n";
    let manifest = load_text(body).unwrap();
    assert_eq!(
        ids(&manifest),
        ["ConfigMap demo/a", "ConfigMap demo/b", "ConfigMap demo/c"]
    );
    let second = manifest.objects()[1].location();
    assert_eq!(
        (second.document(), second.item(), second.line()),
        (1, Some(2), 7)
    );
    assert_eq!(second.to_string(), "stage.yaml:7 (document 1, item 2)");
}

#[test]
fn json_objects_lists_and_one_line_json_in_a_yaml_file_load() {
    let one_line = r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"demo"}},{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"demo"}}],"kind":"List"}"#;
    let manifest = load(&[text("manifest.yaml", one_line)], &LoadOptions::default()).unwrap();
    assert_eq!(ids(&manifest), ["Namespace demo", "ConfigMap demo/a"]);
    let concatenated = "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"a\"}}\n{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"b\"}}";
    let manifest = load_text(concatenated).unwrap();
    assert_eq!(ids(&manifest), ["Namespace a", "Namespace b"]);
    assert_eq!(manifest.objects()[1].location().line(), 2);
}

#[test]
fn yaml_flow_mappings_that_look_like_json_still_load() {
    let manifest =
        load_text("{apiVersion: v1, kind: Namespace, metadata: {name: demo}}\n").unwrap();
    assert_eq!(ids(&manifest), ["Namespace demo"]);
}

#[test]
fn a_list_item_split_is_checked_against_the_whole_document() {
    // An alias into another item cannot be parsed item by item; the whole document can.
    let body = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: a, namespace: demo}\n  data: &shared {k: v}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: b, namespace: demo}\n  data: *shared\n";
    let manifest = load_text(body).unwrap();
    assert!(manifest.objects()[1].json().contains(r#""data":{"k":"v"}"#));
}

#[test]
fn folders_load_recursively_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("b/nested")).unwrap();
    std::fs::write(dir.path().join("b/nested/x.yml"), namespace("x")).unwrap();
    std::fs::write(
        dir.path().join("a.json"),
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("c.yaml"), namespace("c")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    std::fs::write(dir.path().join(".hidden.yaml"), "not: [valid").unwrap();
    let manifest = load_path(dir.path()).unwrap();
    assert_eq!(
        ids(&manifest),
        ["Namespace a", "Namespace x", "Namespace c"]
    );
}

#[test]
fn kluctl_projects_load_in_item_order_with_barriers() {
    let manifest = load(&[Input::Path(data("kluctl"))], &LoadOptions::default()).unwrap();
    let order: Vec<(u32, String)> = manifest
        .iter()
        .map(|object| (object.barrier_group(), object.id().to_string()))
        .collect();
    assert_eq!(
        order,
        [
            (0, "Namespace demo".to_owned()),
            (1, "Secret demo/token".to_owned()),
            (
                2,
                "rbac.authorization.k8s.io/ClusterRole demo-reader".to_owned()
            ),
            (2, "apps/Deployment demo/web".to_owned()),
            (2, "Service demo/web".to_owned()),
        ]
    );
    assert_eq!(manifest.waves().count(), 4);
}

#[test]
fn gitops_trees_load_what_their_kustomization_lists() {
    let manifest = load(&[Input::Path(data("gitops"))], &LoadOptions::default()).unwrap();
    assert_eq!(
        ids(&manifest),
        [
            "Namespace demo",
            "ConfigMap demo/settings",
            "Secret demo/creds"
        ]
    );
}

#[test]
fn kustomizations_named_anything_are_configuration_not_resources() {
    let body = format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n---\n{CONFIG_MAP}"
    );
    assert_eq!(ids(&load_text(&body).unwrap()), ["ConfigMap demo/settings"]);
}

#[test]
fn objects_are_ordered_for_apply_and_ties_keep_source_order() {
    let object = |api: &str, kind: &str, name: &str| {
        format!("apiVersion: {api}\nkind: {kind}\nmetadata: {{name: {name}}}\n---\n")
    };
    let body = [
        object("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "hook"),
        object("example.com/v1", "Widget", "w"),
        object("apps/v1", "Deployment", "d2"),
        object("v1", "ServiceAccount", "sa"),
        object("apps/v1", "Deployment", "d1"),
        object("rbac.authorization.k8s.io/v1", "ClusterRole", "r"),
        object("v1", "Namespace", "ns"),
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec: {group: example.com, names: {kind: Widget}}\n".to_owned(),
    ]
    .concat();
    let manifest = load_text(&body).unwrap();
    let phases: Vec<Phase> = manifest.iter().map(|object| object.phase()).collect();
    assert!(phases.is_sorted());
    let names: Vec<&str> = manifest.iter().map(|object| object.id().name()).collect();
    assert_eq!(
        names,
        [
            "widgets.example.com",
            "ns",
            "r",
            "sa",
            "d2",
            "d1",
            "w",
            "hook"
        ]
    );
    let delete: Vec<&str> = manifest
        .iter()
        .rev()
        .map(|object| object.id().name())
        .collect();
    assert_eq!(delete.first(), Some(&"hook"));
}

#[test]
fn kinds_defined_by_a_crd_in_the_set_are_custom_resources_even_in_k8s_io_groups() {
    let body = "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r, namespace: demo}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: demo}\n---\napiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: httproutes.gateway.networking.k8s.io}\nspec: {group: gateway.networking.k8s.io, names: {kind: HTTPRoute}}\n";
    let manifest = load_text(body).unwrap();
    let phases: Vec<(&str, Phase)> = manifest
        .iter()
        .map(|object| (object.id().name(), object.phase()))
        .collect();
    assert_eq!(
        phases,
        [
            (
                "httproutes.gateway.networking.k8s.io",
                Phase::CustomResourceDefinitions
            ),
            ("d", Phase::Workloads),
            ("r", Phase::CustomResources),
        ]
    );
}

#[test]
fn every_object_gets_the_discriminator_label() {
    let label = Label::new("capstan.io/discriminator", "demo-full").unwrap();
    let body = format!(
        "{CONFIG_MAP}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n  labels: {{team: a, capstan.io/discriminator: demo-full}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n  labels: null\n"
    );
    let manifest = load(
        &[text("stage.yaml", &body)],
        &LoadOptions::with_label(label.clone()),
    )
    .unwrap();
    for object in &manifest {
        let value = object.to_value();
        assert_eq!(
            value["metadata"]["labels"]["capstan.io/discriminator"],
            "demo-full",
            "{}",
            object.id()
        );
    }
    assert_eq!(
        manifest.objects()[0].to_value()["metadata"]["labels"]["team"],
        "a"
    );
    assert_eq!(manifest.label(), Some(&label));
    assert_eq!(label.selector(), "capstan.io/discriminator=demo-full");
}

#[test]
fn kluctl_labels_can_be_taken_over() {
    let label = Label::new("kluctl.io/discriminator", "full").unwrap();
    let body = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n  labels: {kluctl.io/discriminator: full}\n";
    let manifest = load(&[text("stage.yaml", body)], &LoadOptions::with_label(label)).unwrap();
    assert_eq!(manifest.len(), 1);
    assert!(
        !manifest.objects()[0].label_added(),
        "the source carried it already"
    );
}

#[test]
fn objects_record_whether_loading_added_the_label() {
    let label = Label::new("capstan.io/discriminator", "s").unwrap();
    let body = "apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n";
    let manifest = load(&[text("stage.yaml", body)], &LoadOptions::with_label(label)).unwrap();
    assert!(manifest.objects()[0].label_added());
}

#[test]
fn invalid_discriminator_labels_are_refused() {
    let error = Label::new("capstan.io/discriminator", "").unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid discriminator label capstan.io/discriminator=: the discriminator must not be empty"
    );
    assert!(Label::new("bad key!", "x").is_err());
    assert!(Label::new("capstan.io/discriminator", "no spaces").is_err());
}

#[test]
fn missing_and_mistyped_identity_fields_are_named() {
    let body = "kind: ConfigMap\nmetadata: {namespace: demo}\n---\napiVersion: 1\nkind: [x]\nmetadata: {name: a}\n---\n- just a list\n---\nplain text\n";
    assert_eq!(
        problems(load_text(body)),
        [
            "stage.yaml:1 (document 1): apiVersion is missing",
            "stage.yaml:1 (document 1): metadata.name is missing",
            "stage.yaml:4 (document 2): apiVersion must be a string, not a number",
            "stage.yaml:4 (document 2): kind must be a string, not a list",
            "stage.yaml:8 (document 3): not a Kubernetes object: the document is a list",
            "stage.yaml:10 (document 4): not a Kubernetes object: the document is a string",
        ]
    );
}

#[test]
fn invalid_names_namespaces_and_labels_are_named() {
    let body = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Web_1\n  namespace: demo.x\n  labels: {app: a b, -bad: x, n: 1}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web.v2}\n";
    let found = problems(load_text(body));
    let expected = [
        "stage.yaml:1 (document 1): apps/Deployment demo.x/Web_1: metadata.name \"Web_1\" is not a valid name: a lowercase RFC 1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', each dot-separated part starting and ending with a letter or digit",
        "stage.yaml:1 (document 1): apps/Deployment demo.x/Web_1: metadata.namespace \"demo.x\" is not valid: a lowercase RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit",
        "stage.yaml:1 (document 1): apps/Deployment demo.x/Web_1: label \"app\": value \"a b\" is not valid: at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        "stage.yaml:1 (document 1): apps/Deployment demo.x/Web_1: label key \"-bad\" is not valid: a label key is an optional DNS subdomain prefix and '/', then at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
        "stage.yaml:1 (document 1): apps/Deployment demo.x/Web_1: label \"n\": value must be a string, not a number",
        "stage.yaml:8 (document 2): Service web.v2: metadata.name \"web.v2\" is not a valid name: a lowercase RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit",
    ];
    assert_eq!(found, expected);
}

#[test]
fn duplicates_name_both_places() {
    let body = format!("{CONFIG_MAP}---\n{CONFIG_MAP}");
    let inputs = [text("a.yaml", &body), text("b.yaml", CONFIG_MAP)];
    assert_eq!(
        problems(load(&inputs, &LoadOptions::default())),
        [
            "a.yaml:7 (document 2): ConfigMap demo/settings: defined twice: also at a.yaml:1 (document 1)",
            "b.yaml:1 (document 1): ConfigMap demo/settings: defined twice: also at a.yaml:1 (document 1)",
        ]
    );
}

#[test]
fn a_key_twice_in_a_yaml_mapping_is_a_problem_naming_both_lines() {
    let body = format!(
        "{CONFIG_MAP}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n  namespace: demo\n"
    );
    let result = load_text(&body);
    let kind = match &result {
        Err(Error::Invalid(problems)) => problems.iter().next().map(|problem| problem.kind()),
        _ => None,
    };
    assert_eq!(kind, Some(ProblemKind::DuplicateKey));
    assert_eq!(
        problems(result),
        ["stage.yaml:11 (document 2): key `name` appears twice in one mapping (lines 10 and 11)"]
    );
}

#[test]
fn a_key_twice_in_a_list_item_is_a_problem_of_that_item() {
    let body = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: b\n    labels: {team: x, team: y}\n";
    assert_eq!(
        problems(load_text(body)),
        [
            "stage.yaml:11 (document 1, item 2): key `team` appears twice in one mapping (lines 11 and 11)"
        ]
    );
    // Top-level keys of the List repeat: the whole document is the problem.
    let body = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: a}\nkind: List\n";
    assert_eq!(
        problems(load_text(body)),
        ["stage.yaml:7 (document 1): key `kind` appears twice in one mapping (lines 2 and 7)"]
    );
}

#[test]
fn a_key_twice_in_json_is_a_problem_naming_both_lines() {
    let object = "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\",\n \"metadata\": {\"name\": \"a\",\n  \"name\": \"b\"}}";
    let list = "{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\n {\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"c\"}},\n {\"kind\": \"Namespace\",\n  \"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"d\"}}]}";
    let wrapper = "{\"kind\": \"List\", \"items\": [],\n \"items\": []}";
    let inputs = [
        text("object.json", object),
        text("list.json", list),
        text("wrapper.json", wrapper),
    ];
    assert_eq!(
        problems(load(&inputs, &LoadOptions::default())),
        [
            "object.json:3 (document 1): key `name` appears twice in one mapping (lines 2 and 3)",
            "list.json:4 (document 1, item 2): key `kind` appears twice in one mapping (lines 3 and 4)",
            "wrapper.json:2 (document 1): key `items` appears twice in one mapping (lines 1 and 2)",
        ]
    );
}

#[test]
fn objects_owned_by_another_discriminator_are_refused() {
    let label = Label::new("capstan.io/discriminator", "demo-full").unwrap();
    let body = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n  labels: {capstan.io/discriminator: other-full}\n";
    let found = problems(load(
        &[text("stage.yaml", body)],
        &LoadOptions::with_label(label),
    ));
    assert_eq!(
        found,
        [
            "stage.yaml:1 (document 1): Namespace demo: already labelled capstan.io/discriminator=other-full, but this stage's discriminator is demo-full: another stage or project owns it (change the manifest or the stage's discriminator)"
        ]
    );
}

#[test]
fn template_placeholders_in_secrets_are_refused_without_showing_the_value() {
    let body = "apiVersion: v1\nkind: Secret\nmetadata: {name: hcloud, namespace: demo}\nstringData:\n  token: \"prefix-{{ hctoken }}\"\ndata:\n  ok: aGVsbG8=\n";
    let found = problems(load_text(body));
    assert_eq!(
        found,
        [
            "stage.yaml:1 (document 1): Secret demo/hcloud: stringData.token holds an unresolved template placeholder ({{ ... }}); capstan does not template: resolve it when rendering, or encrypt the value with sops"
        ]
    );
    assert!(!found[0].contains("prefix"));
    // Other kinds may hold braces legitimately (Helm-style config, Go templates in ConfigMaps).
    load_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: t}\ndata: {tpl: \"{{ .Values }}\"}\n",
    )
    .unwrap();
}

#[test]
fn control_characters_from_manifests_are_escaped_in_ids_and_problems() {
    // YAML's "\a" and "\e" are BEL and ESC; kinds and data keys are not validated.
    let body = "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: demo}\nstringData: {\"\\e[2J\": \"{{ x }}\"}\n";
    assert_eq!(
        problems(load(
            &[text("stage\u{9b}.yaml", body)],
            &LoadOptions::default()
        )),
        [
            r"stage\u{9b}.yaml:1 (document 1): Secret demo/s: stringData.\u{1b}[2J holds an unresolved template placeholder ({{ ... }}); capstan does not template: resolve it when rendering, or encrypt the value with sops"
        ]
    );
    let widget =
        load_text("apiVersion: example.com/v1\nkind: \"Wid\\aget\"\nmetadata: {name: w}\n")
            .unwrap();
    assert_eq!(ids(&widget), [r"example.com/Wid\u{7}get w"]);
    assert_eq!(widget.objects()[0].id().kind(), "Wid\u{7}get");
}

#[test]
fn syntax_errors_point_at_the_line_in_the_file() {
    let body =
        format!("{CONFIG_MAP}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: [unclosed\n");
    let found = problems(load_text(&body));
    // libyaml notices the unclosed flow sequence at the end of the text.
    assert_eq!(
        found,
        ["stage.yaml:10 (document 2): did not find expected ',' or ']' (column 1)"]
    );
    let kind = match load_text(&body) {
        Err(Error::Invalid(problems)) => problems.iter().next().map(|problem| problem.kind()),
        _ => None,
    };
    assert_eq!(kind, Some(ProblemKind::Syntax));
}

#[test]
fn every_problem_of_every_file_is_reported() {
    let inputs = [
        text(
            "a.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: A}\n",
        ),
        Input::Path(PathBuf::from("/nonexistent/capstan/stage.yaml")),
        text("c.yaml", "kind: x\n"),
    ];
    let found = problems(load(&inputs, &LoadOptions::default()));
    assert_eq!(found.len(), 4, "{found:#?}");
    assert!(
        found[0].starts_with("/nonexistent/capstan/stage.yaml: No such file or directory"),
        "{found:#?}"
    );
}

#[test]
fn rendering_and_loading_again_gives_the_same_objects() {
    let label = Label::new("capstan.io/discriminator", "demo-full").unwrap();
    let options = LoadOptions::with_label(label);
    let manifest = load(&[Input::Path(data("gitops"))], &options).unwrap();
    for format in [Format::Yaml, Format::Json] {
        let mut rendered = Vec::new();
        manifest.write(format, &mut rendered).unwrap();
        let again = load(
            &[text("rendered", &String::from_utf8(rendered).unwrap())],
            &options,
        )
        .unwrap();
        let json = |manifest: &Manifest| {
            manifest
                .iter()
                .map(|o| o.json().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(json(&again), json(&manifest), "{format:?}");
    }
}

#[test]
fn rendered_yaml_keeps_key_order_and_quotes_strings_that_look_like_numbers() {
    let manifest = load(
        &[Input::Path(data("gitops/bootstrap/demo/ConfigMap"))],
        &LoadOptions::default(),
    )
    .unwrap();
    let mut rendered = Vec::new();
    manifest.write(Format::Yaml, &mut rendered).unwrap();
    let rendered = String::from_utf8(rendered).unwrap();
    assert_eq!(
        rendered,
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: settings\n    namespace: demo\n  data:\n    mode: '0644'\n"
    );
}

#[test]
fn objects_a_plugin_hands_back_keep_their_locations_labels_and_order() {
    use capstan_manifest::{Location, load_objects};
    let label = Label::new("capstan.io/discriminator", "shop.full").unwrap();
    let at = |line| Location::new("apps.yaml".into(), line, None, line);
    let objects = vec![
        (
            at(1),
            0,
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "web"}}),
        ),
        (
            at(5),
            0,
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "web"}}),
        ),
    ];
    let manifest = load_objects(objects, &LoadOptions::with_label(label.clone())).unwrap();
    let loaded: Vec<String> = manifest
        .iter()
        .map(|object| format!("{} at {}", object.id(), object.location()))
        .collect();
    assert_eq!(
        loaded,
        [
            "Namespace web at apps.yaml:5 (document 5)",
            "ConfigMap web/c at apps.yaml:1 (document 1)"
        ]
    );
    assert!(
        manifest.objects()[1]
            .labels()
            .contains_key("capstan.io/discriminator")
    );

    let invalid = vec![(
        at(3),
        0,
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}),
    )];
    let Err(Error::Invalid(problems)) = load_objects(invalid, &LoadOptions::with_label(label))
    else {
        panic!("an invalid name is a problem");
    };
    let problem = problems.iter().next().unwrap();
    assert_eq!(problem.location().to_string(), "apps.yaml:3 (document 3)");
    assert_eq!(problem.kind(), ProblemKind::InvalidName);
}
