//! kluctl project folders: `deployment.yaml`'s items in order with their barriers and, when
//! asked ([`Templating`]), rendered with Jinja as kluctl renders them.

mod ignore;
mod template;
mod vars;

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::input::Walker;
use crate::{Location, Problem, ProblemKind};

pub(crate) use self::ignore::TemplateIgnore;
pub(crate) use self::template::{Renderer, Taint};

/// Decrypts a SOPS-encrypted kluctl vars file in memory; the host provides it (capstan's CLI
/// with `capstan-secrets`), so that this crate links no cryptography.
pub trait Decrypt: Send + Sync {
    /// The plaintext of `text`, the file at `path`.
    ///
    /// # Errors
    ///
    /// Why it cannot be decrypted, naming the file; never a value or a key.
    fn decrypt(&self, path: &Path, text: &str) -> Result<String, String>;
}

/// How kluctl projects are templated: the context kluctl would give their templates.
///
/// Without it ([`LoadOptions::kluctl`](crate::LoadOptions::kluctl) `None`) a kluctl project's
/// items load as they are. With it, every item file and `deployment.yaml` itself is rendered
/// with Jinja (minijinja, undefined variables are errors), except what `.templateignore`
/// files exclude, with these variables:
///
/// - the `vars:` of `deployment.yaml` (root and item level): `file` (plain, or SOPS-encrypted
///   and decrypted in memory by [`Templating::decrypt`]) and `values`, merged in order;
/// - `args`: [`Templating::args`] over the defaults `deployment.yaml` declares under `args:`;
/// - `target.name` ([`Templating::target`], else the only target of `.kluctl.yaml`) and
///   `target.discriminator` (the discriminator the objects are labelled with).
///
/// Every value of a SOPS-encrypted vars file (and what a filter made of it) ends up in
/// [`Manifest::sensitive`](crate::Manifest::sensitive), wherever the templates put it.
///
/// ```
/// use capstan_manifest::{Input, LoadOptions, Templating, load};
///
/// let dir = std::env::temp_dir().join(format!("capstan-doc-kluctl-{}", std::process::id()));
/// std::fs::create_dir_all(dir.join("app"))?;
/// std::fs::write(dir.join("deployment.yaml"), "deployments: [{path: app}]\nvars: [{values: {size: 3}}]\n")?;
/// std::fs::write(
///     dir.join("app/cm.yaml"),
///     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: '{{ args.env }}-{{ size }}'}\n",
/// )?;
/// let mut templating = Templating::default();
/// templating.args.insert("env".into(), "prod".into());
/// let mut options = LoadOptions::default();
/// options.kluctl = Some(templating);
/// let manifest = load(&[Input::Path(dir.clone())], &options)?;
/// assert_eq!(manifest.objects()[0].id().name(), "prod-3");
/// # std::fs::remove_dir_all(dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Templating {
    /// `-a name=value`: kluctl's deployment arguments.
    pub args: BTreeMap<String, String>,
    /// The name templates see as `target.name`.
    pub target: Option<String>,
    /// Opens SOPS-encrypted vars files; without it they are a problem.
    pub decrypt: Option<Arc<dyn Decrypt>>,
}

// By hand: `decrypt` has no Debug, and argument values may be secrets.
impl fmt::Debug for Templating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templating")
            .field("args", &self.args.keys().collect::<Vec<_>>())
            .field("target", &self.target)
            .field("decrypt", &self.decrypt.is_some())
            .finish()
    }
}

/// Templating while a walk is inside a kluctl project.
pub(crate) struct Scope {
    pub(crate) options: Templating,
    pub(crate) discriminator: Option<String>,
    /// The variables of the deployment being walked.
    vars: Value,
    /// Renders the files of the deployment item being walked.
    pub(crate) renderer: Option<Arc<Renderer>>,
    /// The `.templateignore` files of the outermost project being walked.
    pub(crate) ignore: Option<TemplateIgnore>,
    pub(crate) taint: Arc<Taint>,
}

impl Scope {
    pub(crate) fn new(options: Templating, discriminator: Option<String>) -> Self {
        Self {
            options,
            discriminator,
            vars: Value::Null,
            renderer: None,
            ignore: None,
            taint: Arc::default(),
        }
    }
}

/// kluctl's `deployment.yaml`: the fields that decide what is deployed, and in which order.
#[derive(Deserialize)]
struct Deployment {
    #[serde(default)]
    deployments: Vec<DeploymentItem>,
    #[serde(default)]
    vars: Vec<Value>,
}

#[derive(Deserialize)]
struct DeploymentItem {
    path: Option<String>,
    include: Option<String>,
    #[serde(default)]
    barrier: bool,
    git: Option<serde_yaml::Value>,
    oci: Option<serde_yaml::Value>,
    #[serde(default)]
    vars: Vec<Value>,
}

/// `args:` of a root `deployment.yaml`, read before rendering (they are its input).
#[derive(Deserialize)]
struct Declared {
    #[serde(default)]
    args: Vec<Arg>,
}

#[derive(Deserialize)]
struct Arg {
    name: String,
    default: Option<Value>,
}

pub(crate) fn deployment_file(dir: &Path) -> Option<PathBuf> {
    ["deployment.yaml", "deployment.yml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// Whether `dir` is a kluctl project folder: it has a `.kluctl.yaml`, or a `deployment.yaml`
/// listing `deployments`.
pub fn is_project(dir: &Path) -> bool {
    if dir.join(".kluctl.yaml").is_file() || dir.join(".kluctl.yml").is_file() {
        return true;
    }
    deployment_file(dir)
        .and_then(|path| fs::read_to_string(path).ok())
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Mapping>(&text).ok())
        .is_some_and(|file| file.contains_key("deployments"))
}

fn name_of(path: &Path) -> Arc<str> {
    path.display().to_string().into()
}

impl Walker {
    /// A kluctl project: its deployment items in order, each barrier starting a new group.
    /// Variables files, `.templateignore` and other kluctl configuration are not resources.
    pub(crate) fn kluctl(&mut self, dir: &Path) {
        let Some(file) = deployment_file(dir) else {
            let message =
                "a kluctl project needs a deployment.yaml listing its deployments".to_owned();
            return self.problem(dir, ProblemKind::Configuration, message);
        };
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            Err(error) => {
                return self.problem(&file, ProblemKind::Configuration, error.to_string());
            }
        };
        let outer = self.scope.as_ref().map(|scope| scope.vars.clone());
        let text = match self.render_deployment(dir, &file, text) {
            Ok(text) => text,
            Err(problem) => return self.problems.push(problem),
        };
        let deployment: Deployment = match serde_yaml::from_str(&text) {
            Ok(deployment) => deployment,
            Err(error) => {
                return self.problem(&file, ProblemKind::Configuration, error.to_string());
            }
        };
        let renderer = match self.enter(dir, &file, &deployment.vars, "vars") {
            Ok(renderer) => renderer,
            Err(problem) => return self.problems.push(problem),
        };
        for (index, item) in deployment.deployments.iter().enumerate() {
            let item_renderer = if item.vars.is_empty() {
                None
            } else {
                let saved = self.scope.as_ref().map(|scope| scope.vars.clone());
                let at = format!("deployments[{index}].vars");
                let entered = self.enter(dir, &file, &item.vars, &at);
                if let (Some(scope), Some(saved)) = (self.scope.as_mut(), saved) {
                    scope.vars = saved;
                }
                match entered {
                    Ok(renderer) => renderer,
                    Err(problem) => {
                        self.problems.push(problem);
                        continue;
                    }
                }
            };
            self.set_renderer(item_renderer.or_else(|| renderer.clone()));
            self.item(dir, &file, index, item);
        }
        if let (Some(scope), Some(outer)) = (self.scope.as_mut(), outer) {
            scope.vars = outer;
        }
        self.set_renderer(None);
    }

    fn set_renderer(&mut self, renderer: Option<Arc<Renderer>>) {
        if let Some(scope) = self.scope.as_mut() {
            scope.renderer = renderer;
        }
    }

    fn item(&mut self, dir: &Path, file: &Path, index: usize, item: &DeploymentItem) {
        match (&item.path, &item.include) {
            (Some(path), None) => self.path(&dir.join(path)),
            (None, Some(include)) => self.within(&dir.join(include), Self::kluctl),
            (None, None) if item.git.is_some() || item.oci.is_some() => {
                let message = format!(
                    "deployments[{index}] takes its resources from git or OCI; capstan loads local \
                     folders only (render them into the project first)"
                );
                self.problem(file, ProblemKind::Configuration, message);
            }
            (None, None) if item.barrier => {}
            _ => {
                let message =
                    format!("deployments[{index}] must have exactly one of `path` and `include`");
                self.problem(file, ProblemKind::Configuration, message);
            }
        }
        if item.barrier {
            self.barrier_group += 1;
        }
    }

    /// `deployment.yaml` rendered with the variables of the deployment that includes it (for
    /// the root: `args` and `target`); kluctl makes its own `vars` visible only below it.
    fn render_deployment(
        &mut self,
        dir: &Path,
        file: &Path,
        text: String,
    ) -> Result<String, Problem> {
        let Some(scope) = self.scope.as_mut() else {
            return Ok(text);
        };
        // Outside any item: a project of its own, not one an item includes.
        if scope.renderer.is_none() {
            scope.ignore = Some(TemplateIgnore::new(dir));
            scope.vars = root_vars(scope, dir, file, &text)?;
        }
        if let Some(ignore) = scope.ignore.as_mut()
            && ignore.ignores(file)?
        {
            return Ok(text);
        }
        Renderer::new(&scope.vars, &scope.taint).render(&name_of(file), &text)
    }

    /// Merges `entries` into the scope's variables, and the renderer for files that see them.
    fn enter(
        &mut self,
        dir: &Path,
        file: &Path,
        entries: &[Value],
        at: &str,
    ) -> Result<Option<Arc<Renderer>>, Problem> {
        let Some(scope) = self.scope.as_mut() else {
            return Ok(None);
        };
        let sources = vars::Sources {
            dir,
            file,
            decrypt: scope.options.decrypt.as_deref(),
            taint: &scope.taint,
        };
        let mut merged = scope.vars.clone();
        sources.merge(&mut merged, entries, at)?;
        let renderer = Arc::new(Renderer::new(&merged, &scope.taint));
        scope.vars = merged;
        Ok(Some(renderer))
    }
}

/// What the root deployment's templates start from: `args` and `target`.
fn root_vars(scope: &Scope, dir: &Path, file: &Path, text: &str) -> Result<Value, Problem> {
    let mut args = Map::new();
    // Undeclared args are allowed; declared ones without a default must be given.
    let declared = serde_yaml::from_str::<Declared>(text)
        .map(|d| d.args)
        .unwrap_or_default();
    for arg in declared {
        match (&arg.default, scope.options.args.contains_key(&arg.name)) {
            (_, true) => {}
            (Some(default), false) => {
                args.insert(arg.name, default.clone());
            }
            (None, false) => {
                let message = format!(
                    "argument `{}` has no default and was not given (pass -a {}=VALUE)",
                    arg.name, arg.name
                );
                return Err(Problem::new(
                    Location::file(name_of(file)),
                    ProblemKind::Configuration,
                    message,
                ));
            }
        }
    }
    for (name, value) in &scope.options.args {
        args.insert(name.clone(), Value::String(value.clone()));
    }
    let mut target = Map::new();
    if let Some(name) = scope.options.target.clone().or_else(|| only_target(dir)) {
        target.insert("name".into(), Value::String(name));
    }
    if let Some(discriminator) = &scope.discriminator {
        target.insert("discriminator".into(), Value::String(discriminator.clone()));
    }
    Ok(Value::Object(Map::from_iter([
        ("args".to_owned(), Value::Object(args)),
        ("target".to_owned(), Value::Object(target)),
    ])))
}

/// The name of the one target `.kluctl.yaml` defines, if it defines exactly one.
fn only_target(dir: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Project {
        #[serde(default)]
        targets: Vec<Target>,
    }
    #[derive(Deserialize)]
    struct Target {
        name: String,
    }
    let text = [".kluctl.yaml", ".kluctl.yml"]
        .iter()
        .find_map(|name| fs::read_to_string(dir.join(name)).ok())?;
    let project: Project = serde_yaml::from_str(&text).ok()?;
    match <[Target; 1]>::try_from(project.targets) {
        Ok([only]) => Some(only.name),
        Err(_) => None,
    }
}
