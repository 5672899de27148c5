//! Problems found in manifests, each pointing at the file, document and line it is about.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use crate::{ObjectId, escape_controls};

/// Where an object or a problem comes from.
///
/// Displays as `path:line` (control characters in the path escaped), then the document (1-based, counting documents that hold anything)
/// and, for objects inside a `List`, the item (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    source: Arc<str>,
    document: usize,
    item: Option<usize>,
    line: usize,
}

impl Location {
    /// A location: `source`, the document (from 1, 0 for the whole source), the item of a
    /// `List` (from 1) and the line (from 1, 0 for the whole source). Hosts use it to keep the
    /// locations of objects that went through a plugin.
    pub fn new(source: Arc<str>, document: usize, item: Option<usize>, line: usize) -> Self {
        Self {
            source,
            document,
            item,
            line,
        }
    }

    pub(crate) fn with_item(&self, item: usize) -> Self {
        Self {
            item: Some(item),
            ..self.clone()
        }
    }

    /// The whole of a source, for problems such as an unreadable file.
    pub(crate) fn file(source: Arc<str>) -> Self {
        Self::new(source, 0, None, 0)
    }

    /// The file path as given (`<stdin>` for standard input).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The document within the file, from 1; 0 when the location is the whole file.
    pub fn document(&self) -> usize {
        self.document
    }

    /// The item within a `List` document, from 1.
    pub fn item(&self) -> Option<usize> {
        self.item
    }

    /// The line, from 1; 0 when the location is the whole file.
    pub fn line(&self) -> usize {
        self.line
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_controls(&self.source))?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if self.document > 0 {
            write!(f, " (document {}", self.document)?;
            if let Some(item) = self.item {
                write!(f, ", item {item}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// What kind of problem a [`Problem`] is, for callers that react to some kinds differently.
///
/// Serializes as lowercase words: `not-an-object`, `invalid-name`, ...
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ProblemKind {
    /// The file or command output could not be read.
    Unreadable,
    /// The text is not valid YAML or JSON.
    Syntax,
    /// A mapping holds the same key twice, which YAML 1.2 forbids (and JSON parsers resolve
    /// differently).
    DuplicateKey,
    /// A document is not a mapping, or lacks `apiVersion`, `kind` or `metadata.name`.
    NotAnObject,
    /// A name or namespace breaks Kubernetes' naming rules.
    InvalidName,
    /// A label key or value breaks Kubernetes' label rules.
    InvalidLabel,
    /// Two manifests describe the same object, or a folder is reached a second time (which
    /// would load its objects twice).
    Duplicate,
    /// A symbolic link leads back to a folder that holds it, so the walk would never end.
    Cycle,
    /// The object already carries the discriminator label with another value.
    DiscriminatorConflict,
    /// A Secret value still holds a `{{ ... }}` template placeholder.
    TemplatePlaceholder,
    /// A kluctl template does not render: an undefined variable, an unsupported filter or
    /// function, a syntax error.
    Template,
    /// A project, kluctl deployment, kustomization or ksops generator file is invalid, names a
    /// path that cannot be loaded, or asks for what capstan does not do.
    Configuration,
    /// A transform plugin refused the object (site policy).
    Policy,
}

/// One problem in the manifests: where, which object (when known), and what is wrong.
///
/// Displays as one line, `file:line (document N): kind namespace/name: message`, which editors
/// and CI logs turn into a link. Control characters from the manifests (in a path, a name, a
/// label value) are escaped, in the message too ([`escape_controls`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    location: Location,
    object: Option<Box<ObjectId>>,
    kind: ProblemKind,
    message: String,
}

impl Problem {
    /// A problem at `location`; control characters in `message` are escaped.
    pub fn new(location: Location, kind: ProblemKind, message: impl Into<String>) -> Self {
        let message = message.into();
        // Messages quote names, keys and values from the manifests; escaping them once here
        // covers every message, and `message()` hands out safe text too.
        let message = match escape_controls(&message) {
            Cow::Borrowed(_) => message,
            Cow::Owned(escaped) => escaped,
        };
        Self {
            location,
            object: None,
            kind,
            message,
        }
    }

    /// The same problem, about `object`.
    pub fn about(mut self, object: &ObjectId) -> Self {
        self.object = Some(Box::new(object.clone()));
        self
    }

    /// Where the problem is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The object it concerns, once its identity is known.
    pub fn object(&self) -> Option<&ObjectId> {
        self.object.as_deref()
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ProblemKind {
        self.kind
    }

    /// The problem alone, without location or object.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Masks secret values the message quotes (a rendered template can put one anywhere).
    pub(crate) fn mask(&mut self, sensitive: &crate::Sensitive) {
        if let Cow::Owned(masked) = sensitive.mask(&self.message) {
            self.message = masked;
        }
        // An identity cannot hold `***`; a masked one moves into the message.
        if let Some(object) = &self.object
            && let Cow::Owned(id) = sensitive.mask(&object.to_string())
        {
            self.message = format!("{id}: {}", self.message);
            self.object = None;
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.location)?;
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in one load: per-object problems in source order, then the ones that
/// compare objects (duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(Vec<Problem>, usize);

impl Problems {
    /// `objects`: how many objects the load found, those with problems included.
    pub fn new(problems: Vec<Problem>, objects: usize) -> Self {
        Self(problems, objects)
    }

    /// How many objects the manifests hold, those with problems included: what a load
    /// without problems would have counted, for reports that go on to list the problems.
    pub fn objects(&self) -> usize {
        self.1
    }

    /// The problems, in source order.
    pub fn iter(&self) -> std::slice::Iter<'_, Problem> {
        self.0.iter()
    }

    /// How many problems there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems with every secret value their messages quote masked.
    pub(crate) fn masked(mut self, sensitive: &crate::Sensitive) -> Self {
        self.0
            .iter_mut()
            .for_each(|problem| problem.mask(sensitive));
        self
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a Problem;
    type IntoIter = std::slice::Iter<'a, Problem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, problem) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
