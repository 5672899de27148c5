//! kluctl projects rendered as kluctl renders them: where templating applies, the variables
//! templates see, and errors that name the file and line.
//!
//! Decryption is the host's: here a stand-in that maps a SOPS file to its plaintext (the CLI's
//! tests decrypt real files written by capstan and by sops).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use capstan_manifest::{
    Decrypt, Error, Format, Input, Label, LoadOptions, Manifest, ProblemKind, Templating, load,
};

/// "Decrypts" any SOPS file to a fixed plaintext, as a real key would.
struct Plaintext(&'static str);

impl Decrypt for Plaintext {
    fn decrypt(&self, _path: &Path, text: &str) -> Result<String, String> {
        assert!(text.contains("sops:"), "only SOPS files are decrypted");
        Ok(self.0.to_owned())
    }
}

const SOPS_VARS: &str = "hctoken: ENC[AES256_GCM,data:RkFLRQ==,iv:RkFLRQ==,tag:RkFLRQ==,type:str]
sops:
    mac: ENC[AES256_GCM,data:RkFLRQ==,iv:RkFLRQ==,tag:RkFLRQ==,type:str]
    version: 3.11.0
";

/// easykubenix's kluctl project: barrier items `prio-10`, `prio-20` and an untemplated
/// `default`, vars from a SOPS file.
fn project(root: &Path) {
    let files = [
        (
            "deployment.yaml",
            r#"{"deployments":[{"barrier":true,"path":"prio-10"},{"barrier":true,"path":"prio-20"},{"path":"default"}],"vars":[{"file":"secrets/all.yaml"}]}"#,
        ),
        (".kluctl.yaml", r#"{"targets":[{"name":"local"}]}"#),
        ("secrets/all.yaml", SOPS_VARS),
        (
            "prio-10/Namespace.yaml",
            r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"hetzkube"}}],"kind":"List"}"#,
        ),
        (
            "prio-20/Secret.yaml",
            r#"{"apiVersion":"v1","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"hcloud","namespace":"hetzkube"},"stringData":{"token":"{{ hctoken }}"}}],"kind":"List"}"#,
        ),
        ("default/.templateignore", "*"),
        (
            "default/easykubenix.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: raw, namespace: hetzkube}\ndata: {tpl: '{{ x }}'}\n",
        ),
    ];
    for (path, text) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
}

fn templating(args: &[(&str, &str)]) -> LoadOptions {
    let mut options =
        LoadOptions::with_label(Label::new("kluctl.io/discriminator", "full").unwrap());
    let mut templating = Templating::default();
    templating.args = args
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect::<BTreeMap<_, _>>();
    templating.decrypt = Some(Arc::new(Plaintext("hctoken: hc-s3cr3t-token\n")));
    options.kluctl = Some(templating);
    options
}

fn load_dir(root: &Path, options: &LoadOptions) -> Result<Manifest, Error> {
    load(&[Input::Path(root.to_owned())], options)
}

fn value(manifest: &Manifest, name: &str, pointer: &str) -> String {
    let object = manifest
        .iter()
        .find(|object| object.id().name() == name)
        .unwrap_or_else(|| panic!("no object {name}"));
    object
        .to_value()
        .pointer(pointer)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn problems(result: Result<Manifest, Error>) -> Vec<(String, ProblemKind)> {
    let Err(Error::Invalid(problems)) = result else {
        panic!("loaded")
    };
    problems
        .iter()
        .map(|problem| (problem.to_string(), problem.kind()))
        .collect()
}

#[test]
fn a_sops_var_fills_the_secret_and_templateignore_keeps_a_literal_placeholder() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let manifest = load_dir(dir.path(), &templating(&[])).unwrap();
    assert_eq!(
        value(&manifest, "hcloud", "/stringData/token"),
        "hc-s3cr3t-token"
    );
    assert_eq!(value(&manifest, "raw", "/data/tpl"), "{{ x }}");
    assert_eq!(manifest.sensitive().values(), ["hc-s3cr3t-token"]);
    let barriers: Vec<u32> = manifest.iter().map(|o| o.barrier_group()).collect();
    assert_eq!(barriers, [0, 1, 2]);
}

#[test]
fn render_output_masks_sops_values_unless_revealed() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let manifest = load_dir(dir.path(), &templating(&[])).unwrap();
    let mut masked = Vec::new();
    manifest.write(Format::Yaml, &mut masked).unwrap();
    let masked = String::from_utf8(masked).unwrap();
    assert!(masked.contains("token: '***'"), "{masked}");
    assert!(!masked.contains("hc-s3cr3t-token"));
    let mut revealed = Vec::new();
    manifest
        .write_revealed(Format::Json, &mut revealed)
        .unwrap();
    assert!(
        String::from_utf8(revealed)
            .unwrap()
            .contains("hc-s3cr3t-token")
    );
}

#[test]
fn without_templating_the_placeholder_is_a_problem_as_before() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let options = LoadOptions::with_label(Label::new("kluctl.io/discriminator", "full").unwrap());
    let found = problems(load_dir(dir.path(), &options));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1, ProblemKind::TemplatePlaceholder);
}

#[test]
fn a_secret_in_a_configmap_and_its_base64_are_sensitive_and_masked_in_problems() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    fs::write(
        dir.path().join("prio-20/Config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: conf, namespace: hetzkube}\n\
         data: {url: 'https://x:{{ hctoken }}@api', b64: '{{ hctoken | b64encode }}'}\n",
    )
    .unwrap();
    let manifest = load_dir(dir.path(), &templating(&[])).unwrap();
    assert_eq!(
        value(&manifest, "conf", "/data/url"),
        "https://x:hc-s3cr3t-token@api"
    );
    assert_eq!(
        manifest.sensitive().values(),
        ["aGMtczNjcjN0LXRva2Vu", "hc-s3cr3t-token"]
    );
    // A secret in a name is refused, and the problem does not show it.
    fs::write(
        dir.path().join("prio-20/Bad.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: 'Bad_{{ hctoken }}', namespace: hetzkube}\n",
    )
    .unwrap();
    let found = problems(load_dir(dir.path(), &templating(&[])));
    assert!(
        found.iter().all(|(message, _)| !message.contains("s3cr3t")),
        "{found:?}"
    );
    assert!(found[0].0.contains("Bad_***"), "{found:?}");
}

#[test]
fn an_undefined_variable_and_an_unsupported_filter_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    fs::write(
        dir.path().join("prio-20/Config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: hetzkube}\n\
         data:\n  a: '{{ hctoken | upper }}'\n",
    )
    .unwrap();
    fs::write(
        dir.path().join("prio-10/Other.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: '{{ target.name }}-{{ db.host }}'\n",
    )
    .unwrap();
    let root = dir.path().display();
    let found = problems(load_dir(dir.path(), &templating(&[])));
    assert_eq!(
        found,
        [
            (
                format!("{root}/prio-10/Other.yaml:4: undefined variable `db.host`"),
                ProblemKind::Template
            ),
            (
                format!(
                    "{root}/prio-20/Config.yaml:5: unsupported filter `upper`: capstan renders \
                     kluctl templates with b64encode, b64decode, to_json, to_yaml, from_yaml, \
                     sha256, default"
                ),
                ProblemKind::Template
            ),
        ]
    );
}

#[test]
fn args_target_and_values_vars_reach_every_template_and_deployment_yaml() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    fs::write(
        dir.path().join("deployment.yaml"),
        "args:\n- {name: replicas, default: '1'}\n- {name: env}\n\
         deployments:\n- path: prio-10\n- path: '{{ args.env }}'\n  vars:\n  - values: {item: yes-item}\n\
         vars:\n- values: {app: {name: web}}\n- file: secrets/all.yaml\n",
    )
    .unwrap();
    fs::create_dir_all(dir.path().join("prod")).unwrap();
    fs::write(
        dir.path().join("prod/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ app.name }}', namespace: hetzkube}\n\
         data: {r: '{{ args.replicas }}', env: '{{ args.env }}', t: '{{ target.name }}', \
         d: '{{ target.discriminator }}', i: '{{ item }}'}\n",
    )
    .unwrap();
    let manifest = load_dir(dir.path(), &templating(&[("env", "prod")])).unwrap();
    let data: Vec<String> = ["r", "env", "t", "d", "i"]
        .iter()
        .map(|key| value(&manifest, "web", &format!("/data/{key}")))
        .collect();
    assert_eq!(data, ["1", "prod", "local", "full", "yes-item"]);

    let found = problems(load_dir(dir.path(), &templating(&[])));
    assert_eq!(
        found[0].0,
        format!(
            "{}/deployment.yaml: argument `env` has no default and was not given (pass -a env=VALUE)",
            dir.path().display()
        )
    );
}

#[test]
fn other_vars_sources_are_refused_naming_the_source_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    fs::write(
        dir.path().join("deployment.yaml"),
        "deployments: [{path: prio-10}]\nvars:\n- values: {a: 1}\n- clusterSecret: {name: s, namespace: n, key: k}\n",
    )
    .unwrap();
    let found = problems(load_dir(dir.path(), &templating(&[])));
    assert_eq!(
        found[0].0,
        format!(
            "{}/deployment.yaml: vars[1]: the `clusterSecret` vars source is not supported: \
             capstan reads vars from `file` and `values` only (render the variables into a \
             file of the project)",
            dir.path().display()
        )
    );
}

#[test]
fn a_sops_vars_file_without_a_decrypter_is_a_problem_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let mut options = templating(&[]);
    options.kluctl.as_mut().unwrap().decrypt = None;
    let found = problems(load_dir(dir.path(), &options));
    assert_eq!(
        found[0].0,
        format!(
            "{}/secrets/all.yaml: a SOPS-encrypted vars file, and no way to decrypt it was given",
            dir.path().display()
        )
    );
}

#[test]
fn plain_folders_and_lists_are_never_templated() {
    let dir = tempfile::tempdir().unwrap();
    let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: '{{ nope | upper }}'}\n";
    fs::write(dir.path().join("cm.yaml"), text).unwrap();
    let manifest = load_dir(dir.path(), &templating(&[])).unwrap();
    assert_eq!(value(&manifest, "plain", "/data/a"), "{{ nope | upper }}");
    let stdin = Input::Text {
        name: "<stdin>".into(),
        text: text.into(),
    };
    let manifest = load(&[stdin], &templating(&[])).unwrap();
    assert_eq!(value(&manifest, "plain", "/data/a"), "{{ nope | upper }}");
}

#[test]
fn an_included_deployment_sees_the_vars_above_it_and_adds_its_own() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let root = dir.path();
    fs::write(
        root.join("deployment.yaml"),
        "deployments: [{include: sub}, {path: prio-10}]\nvars: [{values: {team: ops}}]\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("sub/app")).unwrap();
    fs::write(
        root.join("sub/deployment.yaml"),
        "deployments: [{path: '{{ team }}-app'}]\nvars: [{values: {size: big}}]\n",
    )
    .unwrap();
    fs::create_dir_all(root.join("sub/ops-app")).unwrap();
    fs::write(
        root.join("sub/ops-app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ team }}-{{ size }}', namespace: x}\n",
    )
    .unwrap();
    // Vars of the included deployment end with it.
    fs::write(
        root.join("prio-10/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \"{{ get_var('size', 'none') }}\", namespace: x}\n",
    )
    .unwrap();
    let manifest = load_dir(root, &templating(&[])).unwrap();
    let names: Vec<&str> = manifest.iter().map(|o| o.id().name()).collect();
    assert_eq!(names, ["hetzkube", "ops-big", "none"]);
}

#[test]
fn a_decrypted_vars_file_that_does_not_parse_is_named_without_its_text() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let mut options = templating(&[]);
    let broken = "hctoken: {{ s3cr3t-part\n";
    options.kluctl.as_mut().unwrap().decrypt = Some(Arc::new(Plaintext(broken)));
    let found = problems(load_dir(dir.path(), &options));
    assert_eq!(
        found[0].0,
        format!(
            "{}/secrets/all.yaml:1: the decrypted vars file does not render (its text is not shown)",
            dir.path().display()
        )
    );
    let mut options = templating(&[]);
    let broken = "hctoken: [s3cr3t-part\n";
    options.kluctl.as_mut().unwrap().decrypt = Some(Arc::new(Plaintext(broken)));
    let found = problems(load_dir(dir.path(), &options));
    assert_eq!(
        found[0].0,
        format!(
            "{}/secrets/all.yaml: the decrypted vars file is not YAML at line 2 (its text is not shown)",
            dir.path().display()
        )
    );
}
