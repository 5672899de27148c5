//! Jinja rendering the way kluctl does it: strict about undefined variables, and with only
//! the filters and functions kluctl projects use, so that anything else is an error rather
//! than a silently different render.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use minijinja::value::Serde;
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};
use sha2::Digest as _;

use crate::{Location, Problem, ProblemKind};

/// The filters a template may use; any other is an error naming it.
pub(crate) const FILTERS: &[&str] = &[
    "b64encode",
    "b64decode",
    "to_json",
    "to_yaml",
    "from_yaml",
    "sha256",
    "default",
];

/// Values that must be masked: those of SOPS-encrypted vars files, and what a filter made of
/// text holding one (its base64 or JSON form), found while templates render in parallel.
#[derive(Default)]
pub(crate) struct Taint(Mutex<Vec<String>>);

impl Taint {
    pub(crate) fn add(&self, values: impl IntoIterator<Item = String>) {
        if let Ok(mut all) = self.0.lock() {
            all.extend(values);
        }
    }

    pub(crate) fn take(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|mut all| std::mem::take(&mut *all))
            .unwrap_or_default()
    }

    /// Remembers `output` when `input` holds a value already known to be sensitive.
    fn derive(&self, input: &str, output: &str) {
        if let Ok(mut all) = self.0.lock()
            && all
                .iter()
                .any(|value| !value.is_empty() && input.contains(value.as_str()))
        {
            all.push(output.to_owned());
        }
    }
}

/// Renders the files of one kluctl deployment with its variables.
pub(crate) struct Renderer {
    env: Environment<'static>,
    context: Value,
}

impl Renderer {
    pub(crate) fn new(vars: &serde_json::Value, taint: &Arc<Taint>) -> Self {
        let mut env = Environment::empty();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let tainting = |f: fn(&str) -> Result<String, Error>| {
            let taint = Arc::clone(taint);
            move |input: &str| {
                let output = f(input)?;
                taint.derive(input, &output);
                Ok::<_, Error>(output)
            }
        };
        env.add_filter("b64encode", tainting(b64encode));
        env.add_filter("b64decode", tainting(b64decode));
        env.add_filter("sha256", tainting(sha256));
        let taint_json = Arc::clone(taint);
        env.add_filter("to_json", move |value: Value| {
            let text = to_json(&value)?;
            taint_json.derive(&text, &text);
            Ok::<_, Error>(text)
        });
        let taint_yaml = Arc::clone(taint);
        env.add_filter("to_yaml", move |value: Value| {
            let text = to_yaml(&value)?;
            taint_yaml.derive(&text, &text);
            Ok::<_, Error>(text)
        });
        env.add_filter("from_yaml", from_yaml);
        env.add_filter("default", default);
        env.add_function("get_var", get_var);
        Self {
            env,
            context: Value::from(Serde(vars)),
        }
    }

    /// Renders `text`, the file `name`.
    pub(crate) fn render(&self, name: &Arc<str>, text: &str) -> Result<String, Problem> {
        self.env
            .render_named_str(name, text, &self.context)
            .map_err(|error| self.problem(name, text, &error))
    }

    /// The error as a problem at its line, naming what is missing or unsupported.
    fn problem(&self, name: &Arc<str>, text: &str, error: &Error) -> Problem {
        let line = error.line().unwrap_or(0);
        let detail = error.detail().unwrap_or_default();
        let message = match error.kind() {
            ErrorKind::UndefinedError => self.undefined(text, line),
            ErrorKind::UnknownFilter => {
                let filter = detail
                    .strip_prefix("filter ")
                    .and_then(|rest| rest.strip_suffix(" is unknown"))
                    .unwrap_or(detail);
                format!(
                    "unsupported filter `{filter}`: capstan renders kluctl templates with {}",
                    FILTERS.join(", ")
                )
            }
            ErrorKind::UnknownFunction => {
                let function = detail.strip_suffix(" is unknown").unwrap_or(detail);
                format!("unsupported function `{function}`: capstan knows only get_var")
            }
            _ if detail.is_empty() => format!("template error: {}", error.kind()),
            _ => format!("template error: {}: {detail}", error.kind()),
        };
        Problem::new(
            Location::new(name.clone(), 0, None, line),
            ProblemKind::Template,
            message,
        )
    }

    /// Which variables of the line at fault are not defined (minijinja's error does not say
    /// without its debug info, which would show every variable's value).
    fn undefined(&self, text: &str, line: usize) -> String {
        // Parsing needs no filters; an environment of the text's lifetime can hold it.
        let env = Environment::empty();
        let Ok(template) = env.template_from_str(text) else {
            return "undefined variable".to_owned();
        };
        let at_line = text.lines().nth(line.saturating_sub(1)).unwrap_or_default();
        let mut missing: Vec<String> = template
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| !self.defines(path))
            .collect();
        missing.sort();
        let on_line: Vec<String> = missing
            .iter()
            .filter(|path| at_line.contains(path.as_str()))
            .cloned()
            .collect();
        let named = if on_line.is_empty() { missing } else { on_line };
        match named.as_slice() {
            [] => "undefined variable".to_owned(),
            [one] => format!("undefined variable `{one}`"),
            many => format!("undefined variables `{}`", many.join("`, `")),
        }
    }

    fn defines(&self, path: &str) -> bool {
        if FILTERS.contains(&path) || path == "get_var" {
            return true;
        }
        path.split('.')
            .try_fold(self.context.clone(), |value, step| {
                value.get_attr(step).ok().filter(|v| !v.is_undefined())
            })
            .is_some()
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

fn b64encode(text: &str) -> Result<String, Error> {
    Ok(base64::engine::general_purpose::STANDARD.encode(text))
}

fn b64decode(text: &str) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|_| invalid("b64decode: the value is not base64"))?;
    String::from_utf8(bytes).map_err(|_| invalid("b64decode: the value is not UTF-8 text"))
}

fn sha256(text: &str) -> Result<String, Error> {
    let digest = sha2::Sha256::digest(text.as_bytes());
    Ok(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

fn to_json(value: &Value) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|error| invalid(format!("to_json: {error}")))
}

fn to_yaml(value: &Value) -> Result<String, Error> {
    serde_yaml::to_string(value).map_err(|error| invalid(format!("to_yaml: {error}")))
}

fn from_yaml(text: &str) -> Result<Value, Error> {
    let value: serde_json::Value = serde_yaml::from_str(text)
        .map_err(|error| invalid(format!("from_yaml: not YAML: {error}")))?;
    Ok(Value::from(Serde(value)))
}

/// Jinja's `default`: the fallback for undefined values (and, with `true`, for falsy ones).
fn default(value: Value, fallback: Option<Value>, falsy: Option<bool>) -> Value {
    let fallback = fallback.unwrap_or_else(|| Value::from(""));
    if value.is_undefined() || (falsy == Some(true) && !value.is_true()) {
        fallback
    } else {
        value
    }
}

/// kluctl's `get_var('a.b.c', default)`: the variable at a dotted path, or the default.
fn get_var(state: &State, path: &str, default: Option<Value>) -> Result<Value, Error> {
    let mut steps = path.split('.');
    let found = steps
        .next()
        .and_then(|first| state.lookup(first))
        .and_then(|value| {
            steps.try_fold(value, |value, step| {
                value.get_attr(step).ok().filter(|v| !v.is_undefined())
            })
        })
        .filter(|value| !value.is_undefined());
    match (found, default) {
        (Some(value), _) => Ok(value),
        (None, Some(default)) => Ok(default),
        (None, None) => Err(Error::new(
            ErrorKind::UndefinedError,
            format!("get_var: `{path}` is not defined and no default was given"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::{Renderer, Taint};

    fn render(vars: serde_json::Value, text: &str) -> Result<String, String> {
        let renderer = Renderer::new(&vars, &Arc::new(Taint::default()));
        renderer
            .render(&"t.yaml".into(), text)
            .map_err(|problem| format!("{}: {}", problem.location(), problem.message()))
    }

    #[test]
    fn the_filters_kluctl_projects_use_render() {
        let vars = json!({"a": {"b": "x"}, "yaml": "k: [1, 2]"});
        let text = "{{ 'hi' | b64encode }} {{ 'aGk=' | b64decode }} {{ a | to_json }} \
                    {{ 'x' | sha256 }} {{ (yaml | from_yaml).k[1] }} {{ missing | default('d') }} \
                    {{ get_var('a.b', 'no') }} {{ get_var('a.c', 'no') }} {{ a | to_yaml }}";
        assert_eq!(
            render(vars, text).unwrap(),
            "aGk= hi {\"b\":\"x\"} \
             2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881 2 d x no b: x\n"
        );
    }

    #[test]
    fn an_undefined_variable_is_named_with_its_line() {
        let text = "a: {{ known }}\nb: {{ nope.deeper }}\n";
        assert_eq!(
            render(json!({"known": 1}), text).unwrap_err(),
            "t.yaml:2: undefined variable `nope.deeper`"
        );
    }

    #[test]
    fn an_unsupported_filter_is_an_error_naming_it() {
        let error = render(json!({"x": "a"}), "\n\nv: {{ x | upper }}").unwrap_err();
        assert_eq!(
            error,
            "t.yaml:3: unsupported filter `upper`: capstan renders kluctl templates with \
             b64encode, b64decode, to_json, to_yaml, from_yaml, sha256, default"
        );
    }

    #[test]
    fn what_a_filter_makes_of_a_secret_is_secret_too() {
        let taint = Arc::new(Taint::default());
        taint.add(["hunter2".to_owned()]);
        let renderer = Renderer::new(&json!({"s": "hunter2"}), &taint);
        let out = renderer
            .render(
                &"t".into(),
                "{{ ('u:' ~ s) | b64encode }} {{ 'x' | b64encode }}",
            )
            .unwrap();
        assert_eq!(out, "dTpodW50ZXIy eA==");
        assert_eq!(taint.take(), ["hunter2", "dTpodW50ZXIy"]);
    }
}
