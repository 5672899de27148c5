//! The load pipeline: find, read, parse, validate, label, then order.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use serde_json::Value;

use crate::input::Walker;
use crate::kluctl::Scope;
use crate::object::{Convert, Converted};
use crate::parse::Source;
use crate::{
    Error, Input, Label, Location, Manifest, ObjectId, Phase, Problem, ProblemKind, Problems,
    Sensitive, Templating,
};

/// How [`load`] treats the objects it loads.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The discriminator label to put on every object. `None` loads the objects as they are,
    /// which suits rendering, not deploying.
    pub label: Option<Label>,
    /// Render kluctl projects' templates as kluctl would. `None` loads their items as they
    /// are (and a Secret's `{{ ... }}` placeholder is then a problem).
    pub kluctl: Option<Templating>,
}

impl LoadOptions {
    /// Options that put `label` on every object.
    pub fn with_label(label: Label) -> Self {
        Self {
            label: Some(label),
            kluctl: None,
        }
    }
}

/// Loads, validates, labels and orders the objects of `inputs`.
///
/// Every input is read and every problem collected before this returns, so one run reports
/// them all. Parsing uses every core: documents of a stream, items of a `List` and files of a
/// folder parse in parallel on rayon's pool (run inside a `ThreadPool::install` to bound it).
///
/// # Errors
///
/// [`Error::Invalid`] with every problem found: unreadable files, syntax errors, mappings
/// with a key twice, documents that are not objects, invalid names, labels or namespaces, objects defined twice, objects
/// labelled for another discriminator, and Secrets with unresolved `{{ ... }}` placeholders.
pub fn load(inputs: &[Input], options: &LoadOptions) -> Result<Manifest, Error> {
    let mut walker = Walker::default();
    walker.scope = options.kluctl.clone().map(|templating| {
        let discriminator = options.label.as_ref().map(|label| label.value().to_owned());
        Scope::new(templating, discriminator)
    });
    for input in inputs {
        walker.input(input);
    }
    let problems = walker.problems;
    let taint = walker.scope.map(|scope| scope.taint);
    // Each file is parsed as soon as it is read, so a folder's texts are not all held at once.
    let parsed: Vec<Converted> = walker
        .pending
        .into_par_iter()
        .flat_map_iter(|pending| match pending.read() {
            Ok((name, text, barrier_group)) => {
                let convert = Convert {
                    label: options.label.as_ref(),
                    barrier_group,
                };
                Source {
                    name: &name,
                    text: &text,
                }
                .parse(&convert)
            }
            Err(problem) => vec![Converted::Problems(vec![problem])],
        })
        .collect();
    // Filled while the templates rendered, so read only now.
    let sensitive = Sensitive::new(taint.map(|taint| taint.take()).unwrap_or_default());
    match finish(parsed, problems, options) {
        Ok(manifest) => Ok(manifest.with_sensitive(sensitive)),
        Err(Error::Invalid(problems)) if !sensitive.is_empty() => {
            Err(Error::Invalid(problems.masked(&sensitive)))
        }
        Err(error) => Err(error),
    }
}

/// Validates, labels and orders objects a plugin handed back, each with the location it came
/// from (so that problems still name the file and line its author wrote) and its barrier group
/// ([`crate::Object::barrier_group`]).
///
/// # Errors
///
/// [`Error::Invalid`] with every problem found, as [`load`] reports them.
pub fn load_objects(
    objects: Vec<(Location, u32, Value)>,
    options: &LoadOptions,
) -> Result<Manifest, Error> {
    let parsed = objects
        .into_iter()
        .map(|(location, barrier_group, value)| {
            let convert = Convert {
                label: options.label.as_ref(),
                barrier_group,
            };
            convert.value(value, location)
        })
        .collect();
    finish(parsed, Vec::new(), options)
}

/// What every load does once the text is parsed: collect problems, find duplicates, move
/// kinds the manifests define to their phase.
fn finish(
    parsed: Vec<Converted>,
    mut problems: Vec<Problem>,
    options: &LoadOptions,
) -> Result<Manifest, Error> {
    let mut objects = Vec::with_capacity(parsed.len());
    let mut custom_kinds = HashSet::new();
    // Documents whose identity is known but which break a rule are objects too, for counts.
    let mut invalid_objects = 0;
    for converted in parsed {
        match converted {
            Converted::Object { object, defines } => {
                custom_kinds.extend(defines);
                objects.push(*object);
            }
            Converted::Skipped => {}
            Converted::Problems(found) => {
                invalid_objects += usize::from(found.first().is_some_and(|p| p.object().is_some()));
                problems.extend(found);
            }
        }
    }
    problems.extend(duplicates(&objects));
    if !problems.is_empty() {
        let found = objects.len() + invalid_objects;
        return Err(Error::Invalid(Problems::new(problems, found)));
    }
    // Only kinds in groups that look built-in (Gateway API's `*.k8s.io`) can change phase.
    if !custom_kinds.is_empty() {
        for object in &mut objects {
            if object.phase() == Phase::CustomResources {
                continue;
            }
            let id = object.id();
            if custom_kinds.contains(&(id.group().to_owned(), id.kind().to_owned())) {
                object.set_phase(Phase::CustomResources);
            }
        }
    }
    Ok(Manifest::new(objects, options.label.clone()))
}

fn duplicates(objects: &[crate::Object]) -> Vec<Problem> {
    let mut first: HashMap<&ObjectId, &Location> = HashMap::with_capacity(objects.len());
    let mut problems = Vec::new();
    for object in objects {
        match first.entry(object.id()) {
            Entry::Occupied(earlier) => {
                let message = format!("defined twice: also at {}", earlier.get());
                let problem =
                    Problem::new(object.location().clone(), ProblemKind::Duplicate, message);
                problems.push(problem.about(object.id()));
            }
            Entry::Vacant(slot) => {
                slot.insert(object.location());
            }
        }
    }
    problems
}
