//! Which of a stage's objects a command works on: `--include` and `--exclude` selectors.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::names::{dns_label_problem, label_key_problem, label_value_problem};
use crate::{Error, ObjectId, escape_controls};

/// The forms a selector takes, for error messages.
const FORMS: &str = "kind=KIND, kind=GROUP/KIND, namespace=NAMESPACE, name=NAME, \
                     name=NAMESPACE/NAME, label=KEY=VALUE, label=KEY!=VALUE or label=KEY";

/// Objects an `--include` or `--exclude` names, parsed from one of:
///
/// - `kind=KIND`: objects of that kind in any API group, so `kind=Secret` is the core Secret
///   (and a `Secret` kind of any custom group); kinds compare regardless of case, as
///   `kind=deployment` is what people type;
/// - `kind=GROUP/KIND`: that kind in that group only, such as `kind=apps/Deployment`;
/// - `namespace=NAMESPACE`: objects the manifests put in that namespace (the Namespace object
///   itself has no namespace, so `name=NAMESPACE` selects it);
/// - `name=NAMESPACE/NAME`: the object of that name in that namespace;
/// - `name=NAME`: objects of that name in any namespace or none;
/// - `label=KEY=VALUE`, `label=KEY!=VALUE` (which, as in kubectl, also matches objects without
///   the label) and `label=KEY` (objects with the label, whatever its value).
///
/// Displays, and serialises, as it was written.
///
/// ```
/// use capstan_manifest::{ObjectId, Selector};
///
/// let selector: Selector = "kind=apps/Deployment".parse()?;
/// let web = ObjectId::new("apps/v1", "Deployment", Some("shop"), "web");
/// assert!(selector.matches(&web, &Default::default()));
/// # Ok::<(), capstan_manifest::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    text: String,
    rule: Rule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rule {
    Kind {
        group: Option<String>,
        kind: String,
    },
    Namespace(String),
    Name {
        namespace: Option<String>,
        name: String,
    },
    Label {
        key: String,
        test: LabelTest,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelTest {
    Exists,
    Equals(String),
    Differs(String),
}

impl Selector {
    /// Whether the object `id`, with `labels`, is one this selector names.
    pub fn matches(&self, id: &ObjectId, labels: &BTreeMap<String, String>) -> bool {
        match &self.rule {
            Rule::Kind { group, kind } => {
                group.as_deref().is_none_or(|group| group == id.group())
                    && kind.eq_ignore_ascii_case(id.kind())
            }
            Rule::Namespace(namespace) => id.namespace() == Some(namespace.as_str()),
            Rule::Name { namespace, name } => {
                namespace
                    .as_deref()
                    .is_none_or(|namespace| id.namespace() == Some(namespace))
                    && id.name() == name
            }
            Rule::Label { key, test } => {
                let value = labels.get(key);
                match test {
                    LabelTest::Exists => value.is_some(),
                    LabelTest::Equals(wanted) => value == Some(wanted),
                    LabelTest::Differs(unwanted) => value != Some(unwanted),
                }
            }
        }
    }

    fn is_about_labels(&self) -> bool {
        matches!(self.rule, Rule::Label { .. })
    }
}

/// What is wrong with the value of a selector, if anything.
fn parse_rule(field: &str, value: &str) -> Result<Rule, String> {
    let dns_label = |what: &str, name: &str| match dns_label_problem(name) {
        Some(rule) => Err(format!("the {what} `{name}` is not {rule}")),
        None => Ok(name.to_owned()),
    };
    let two_parts = |what: &str| match value.split_once('/') {
        Some((_, rest)) if rest.contains('/') => Err(format!("a {what} has at most one `/`")),
        Some((first, second)) => Ok((Some(first), second)),
        None => Ok((None, value)),
    };
    match field {
        "kind" => {
            let (group, kind) = two_parts("kind")?;
            if group.is_some_and(str::is_empty) || kind.is_empty() {
                return Err("the group or kind is empty".to_owned());
            }
            Ok(Rule::Kind {
                group: group.map(str::to_owned),
                kind: kind.to_owned(),
            })
        }
        "namespace" => Ok(Rule::Namespace(dns_label("namespace", value)?)),
        "name" => {
            let (namespace, name) = two_parts("name")?;
            if name.is_empty() {
                return Err("the name is empty".to_owned());
            }
            Ok(Rule::Name {
                namespace: namespace.map(|ns| dns_label("namespace", ns)).transpose()?,
                name: name.to_owned(),
            })
        }
        "label" => {
            let (key, test) = match value.split_once("!=") {
                Some((key, unwanted)) => (key, LabelTest::Differs(unwanted.to_owned())),
                None => match value.split_once('=') {
                    Some((key, wanted)) => (key, LabelTest::Equals(wanted.to_owned())),
                    None => (value, LabelTest::Exists),
                },
            };
            if let Some(rule) = label_key_problem(key) {
                return Err(format!("the label key `{key}` is not valid: {rule}"));
            }
            if let LabelTest::Equals(text) | LabelTest::Differs(text) = &test
                && let Some(rule) = label_value_problem(text)
            {
                return Err(format!("the label value `{text}` is not valid: {rule}"));
            }
            Ok(Rule::Label {
                key: key.to_owned(),
                test,
            })
        }
        other => Err(format!("`{other}` is not something to select by")),
    }
}

impl FromStr for Selector {
    type Err = Error;

    /// # Errors
    ///
    /// [`Error::Selector`] when `text` is none of the forms above, or names an invalid
    /// namespace or label; the message lists the forms.
    fn from_str(text: &str) -> Result<Self, Error> {
        let rule = match text.split_once('=') {
            Some((field, value)) => parse_rule(field, value),
            None => Err("it has no `=`".to_owned()),
        };
        match rule {
            Ok(rule) => Ok(Self {
                text: text.to_owned(),
                rule,
            }),
            Err(reason) => Err(Error::Selector {
                selector: text.to_owned(),
                reason: format!("{reason}; a selector is {FORMS}"),
            }),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_controls(&self.text))
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// The objects a command works on: those that match any `include` selector (every object when
/// there are none) and no `exclude` selector.
///
/// Displays as one line, such as `include kind=Secret; exclude namespace=kube-system`, or
/// `all objects` when empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Selection {
    include: Vec<Selector>,
    exclude: Vec<Selector>,
}

impl Selection {
    /// The objects that match any of `include` (all when it is empty) and none of `exclude`.
    pub fn new(include: Vec<Selector>, exclude: Vec<Selector>) -> Self {
        Self { include, exclude }
    }

    /// Whether the selection selects every object.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// The include selectors.
    pub fn include(&self) -> &[Selector] {
        &self.include
    }

    /// The exclude selectors.
    pub fn exclude(&self) -> &[Selector] {
        &self.exclude
    }

    /// Whether the object `id`, with `labels`, is selected.
    pub fn matches(&self, id: &ObjectId, labels: &BTreeMap<String, String>) -> bool {
        let included = self.include.is_empty()
            || self
                .include
                .iter()
                .any(|selector| selector.matches(id, labels));
        included
            && !self
                .exclude
                .iter()
                .any(|selector| selector.matches(id, labels))
    }

    /// Whether matching needs the objects' labels, which take a parse to read.
    pub(crate) fn is_about_labels(&self) -> bool {
        self.include
            .iter()
            .chain(&self.exclude)
            .any(Selector::is_about_labels)
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("all objects");
        }
        let mut parts = Vec::new();
        for (word, selectors) in [("include", &self.include), ("exclude", &self.exclude)] {
            if !selectors.is_empty() {
                let listed: Vec<String> = selectors.iter().map(ToString::to_string).collect();
                parts.push(format!("{word} {}", listed.join(", ")));
            }
        }
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{Selection, Selector};
    use crate::ObjectId;

    fn selector(text: &str) -> Selector {
        text.parse().unwrap()
    }

    fn error(text: &str) -> String {
        text.parse::<Selector>().unwrap_err().to_string()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect()
    }

    const FORMS: &str = "a selector is kind=KIND, kind=GROUP/KIND, namespace=NAMESPACE, name=NAME, name=NAMESPACE/NAME, label=KEY=VALUE, label=KEY!=VALUE or label=KEY";

    #[test]
    fn every_form_parses_and_displays_as_written() {
        for text in [
            "kind=Deployment",
            "kind=apps/Deployment",
            "namespace=shop",
            "name=shop/web",
            "name=web",
            "label=app=web",
            "label=app!=web",
            "label=app.kubernetes.io/name",
        ] {
            assert_eq!(selector(text).to_string(), text);
            assert_eq!(
                serde_json::to_string(&selector(text)).unwrap(),
                format!("{text:?}")
            );
        }
    }

    #[test]
    fn bad_selectors_say_why_and_list_the_forms() {
        let cases = [
            ("web", "it has no `=`"),
            ("group=apps", "`group` is not something to select by"),
            ("kind=", "the group or kind is empty"),
            ("kind=/Secret", "the group or kind is empty"),
            ("kind=a/b/C", "a kind has at most one `/`"),
            ("name=shop/", "the name is empty"),
            (
                "namespace=Shop",
                "the namespace `Shop` is not a lowercase RFC 1123 label: at most 63 characters, lowercase letters, digits and '-', starting and ending with a letter or digit",
            ),
            (
                "label=app=a b",
                "the label value `a b` is not valid: at most 63 characters: letters, digits, '-', '_' and '.', starting and ending with a letter or digit",
            ),
        ];
        for (text, reason) in cases {
            assert_eq!(
                error(text),
                format!("invalid selector `{text}`: {reason}; {FORMS}")
            );
        }
        assert_eq!(
            error("x\u{1b}[2J"),
            format!("invalid selector `x\\u{{1b}}[2J`: it has no `=`; {FORMS}")
        );
    }

    #[test]
    fn kinds_match_in_any_group_unless_one_is_named() {
        let deployment = ObjectId::new("apps/v1", "Deployment", Some("shop"), "web");
        let secret = ObjectId::new("v1", "Secret", Some("shop"), "web");
        let none = BTreeMap::new();
        assert!(selector("kind=Deployment").matches(&deployment, &none));
        assert!(selector("kind=deployment").matches(&deployment, &none));
        assert!(selector("kind=apps/Deployment").matches(&deployment, &none));
        assert!(!selector("kind=extensions/Deployment").matches(&deployment, &none));
        assert!(selector("kind=Secret").matches(&secret, &none));
        assert!(!selector("kind=Secret").matches(&deployment, &none));
    }

    #[test]
    fn namespaces_and_names_match_as_documented() {
        let web = ObjectId::new("apps/v1", "Deployment", Some("shop"), "web");
        let role = ObjectId::new("rbac.authorization.k8s.io/v1", "ClusterRole", None, "web");
        let shop = ObjectId::new("v1", "Namespace", None, "shop");
        let none = BTreeMap::new();
        assert!(selector("namespace=shop").matches(&web, &none));
        assert!(!selector("namespace=shop").matches(&shop, &none));
        assert!(selector("name=shop").matches(&shop, &none));
        assert!(selector("name=shop/web").matches(&web, &none));
        assert!(!selector("name=shop/web").matches(&role, &none));
        assert!(selector("name=web").matches(&web, &none));
        assert!(selector("name=web").matches(&role, &none));
    }

    #[test]
    fn labels_match_by_value_difference_or_presence() {
        let id = ObjectId::new("v1", "ConfigMap", Some("shop"), "c");
        let web = labels(&[("app", "web")]);
        let db = labels(&[("app", "db")]);
        let none = BTreeMap::new();
        assert!(selector("label=app=web").matches(&id, &web));
        assert!(!selector("label=app=web").matches(&id, &db));
        assert!(!selector("label=app!=web").matches(&id, &web));
        assert!(selector("label=app!=web").matches(&id, &db));
        assert!(selector("label=app!=web").matches(&id, &none));
        assert!(selector("label=app").matches(&id, &db));
        assert!(!selector("label=app").matches(&id, &none));
    }

    #[test]
    fn a_selection_takes_any_include_and_no_exclude() {
        let secret = ObjectId::new("v1", "Secret", Some("kube-system"), "s");
        let map = ObjectId::new("v1", "ConfigMap", Some("shop"), "c");
        let deployment = ObjectId::new("apps/v1", "Deployment", Some("shop"), "d");
        let none = BTreeMap::new();
        let selection = Selection::new(
            vec![selector("kind=Secret"), selector("kind=ConfigMap")],
            vec![selector("namespace=kube-system")],
        );
        let chosen: Vec<bool> = [&secret, &map, &deployment]
            .iter()
            .map(|id| selection.matches(id, &none))
            .collect();
        assert_eq!(chosen, [false, true, false]);
        assert_eq!(
            selection.to_string(),
            "include kind=Secret, kind=ConfigMap; exclude namespace=kube-system"
        );
        let only_exclude = Selection::new(Vec::new(), vec![selector("kind=Secret")]);
        assert!(only_exclude.matches(&map, &none) && !only_exclude.matches(&secret, &none));
        assert_eq!(only_exclude.to_string(), "exclude kind=Secret");
        let all = Selection::default();
        assert!(all.is_empty() && all.matches(&secret, &none));
        assert_eq!(all.to_string(), "all objects");
        assert_eq!(
            serde_json::to_string(&selection).unwrap(),
            r#"{"include":["kind=Secret","kind=ConfigMap"],"exclude":["namespace=kube-system"]}"#
        );
    }
}
