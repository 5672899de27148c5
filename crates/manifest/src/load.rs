//! The load pipeline: find, read, parse, validate, label, then order.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use rayon::prelude::*;

use crate::input::Walker;
use crate::object::{Convert, Converted};
use crate::parse::Source;
use crate::{
    Error, Input, Label, Location, Manifest, ObjectId, Phase, Problem, ProblemKind, Problems,
};

/// How [`load`] treats the objects it loads.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The discriminator label to put on every object. `None` loads the objects as they are,
    /// which suits rendering, not deploying.
    pub label: Option<Label>,
}

impl LoadOptions {
    /// Options that put `label` on every object.
    pub fn with_label(label: Label) -> Self {
        Self { label: Some(label) }
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
    for input in inputs {
        walker.input(input);
    }
    let mut problems = walker.problems;
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
