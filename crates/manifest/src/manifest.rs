//! The loaded set of objects: ordered, labelled, ready to render or apply.

use std::collections::BTreeMap;
use std::io::{self, Write};

use serde::Serialize;
use serde::ser::{SerializeSeq, Serializer};

use crate::names::{label_key_problem, label_value_problem};
use crate::{Error, Object, Phase, Selection, Sensitive};

/// The label that marks objects as owned by one stage: `key=value`, for example
/// `capstan.io/discriminator=hetzkube.full`. It serialises as `{key, value}`, and reading one
/// back checks it as [`Label::new`] does.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "LabelParts")]
pub struct Label {
    key: String,
    value: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelParts {
    key: String,
    value: String,
}

impl TryFrom<LabelParts> for Label {
    type Error = Error;

    fn try_from(parts: LabelParts) -> Result<Self, Error> {
        Self::new(parts.key, parts.value)
    }
}

impl Label {
    /// The label key capstan uses unless a project names another (such as
    /// `kluctl.io/discriminator`, to take over a cluster deployed by kluctl).
    pub const DEFAULT_KEY: &str = "capstan.io/discriminator";

    /// A discriminator label.
    ///
    /// # Errors
    ///
    /// [`Error::Label`] when the key or value breaks Kubernetes' label rules, or the value is
    /// empty: an empty discriminator would select objects no stage owns.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Result<Self, Error> {
        let (key, value) = (key.into(), value.into());
        let reason = label_key_problem(&key)
            .or_else(|| label_value_problem(&value))
            .or_else(|| {
                value
                    .is_empty()
                    .then_some("the discriminator must not be empty")
            });
        match reason {
            Some(reason) => Err(Error::Label { key, value, reason }),
            None => Ok(Self { key, value }),
        }
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The discriminator.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// `key=value`, as a Kubernetes label selector.
    pub fn selector(&self) -> String {
        format!("{}={}", self.key, self.value)
    }
}

/// How [`Manifest::write`] renders the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// One YAML document holding a `v1` `List`.
    Yaml,
    /// A `v1` `List` as indented JSON.
    Json,
}

/// The objects of a stage in apply order, validated and labelled.
///
/// Apply in iteration order, wave by wave ([`Manifest::waves`]); delete in reverse order.
#[derive(Debug, Default)]
pub struct Manifest {
    objects: Vec<Object>,
    label: Option<Label>,
    sensitive: Sensitive,
}

/// Set by a handoff (`capstan handoff`) on every object it gives to another deployer, with
/// the deployer's name: once that deployer applied it the object is its, and capstan's prune
/// and delete keep it whatever its labels say. (SOPS-encrypted objects cannot carry it: a new
/// key would break their MAC.)
pub const HANDED_OFF_ANNOTATION: &str = "capstan.io/handed-off";

/// Objects that can be applied together: one phase of one barrier group.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Wave<'a> {
    /// The barrier group (see [`Object::barrier_group`]).
    pub barrier_group: u32,
    /// The phase all objects of the wave share.
    pub phase: Phase,
    /// The objects, in source order.
    pub objects: &'a [Object],
}

impl Manifest {
    pub(crate) fn new(mut objects: Vec<Object>, label: Option<Label>) -> Self {
        // A stable sort, so objects of one wave keep the order their authors gave them.
        objects.sort_by_key(|object| (object.barrier_group(), object.phase()));
        Self {
            objects,
            label,
            sensitive: Sensitive::default(),
        }
    }

    /// The same objects, with `sensitive` as their [sensitive](Manifest::sensitive) values:
    /// for hosts that rebuild a manifest from its objects (a transform plugin's output), so
    /// that the values stay masked.
    #[must_use]
    pub fn with_sensitive(mut self, sensitive: Sensitive) -> Self {
        self.sensitive = sensitive;
        self
    }

    /// Values that must never be shown: those a kluctl project's templates took from
    /// SOPS-encrypted vars files, wherever they put them (and what a filter made of them).
    /// [`Manifest::write`] masks them; deployers mask them in diffs and messages.
    pub fn sensitive(&self) -> &Sensitive {
        &self.sensitive
    }

    /// The objects in apply order.
    pub fn objects(&self) -> &[Object] {
        &self.objects
    }

    /// The objects in apply order.
    pub fn iter(&self) -> std::slice::Iter<'_, Object> {
        self.objects.iter()
    }

    /// How many objects there are.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Drops the objects `selection` does not select; the others keep their order.
    pub fn select(&mut self, selection: &Selection) {
        if selection.is_empty() {
            return;
        }
        let about_labels = selection.is_about_labels();
        let none = BTreeMap::new();
        self.objects.retain(|object| {
            if about_labels {
                selection.matches(object.id(), &object.labels())
            } else {
                selection.matches(object.id(), &none)
            }
        });
    }

    /// The discriminator label every object carries, if one was given when loading.
    pub fn label(&self) -> Option<&Label> {
        self.label.as_ref()
    }

    /// The objects grouped into waves, in apply order. A wave ends where the phase or the
    /// barrier group changes.
    pub fn waves(&self) -> impl Iterator<Item = Wave<'_>> {
        self.objects
            .chunk_by(|a, b| (a.barrier_group(), a.phase()) == (b.barrier_group(), b.phase()))
            .map(|objects| Wave {
                barrier_group: objects[0].barrier_group(),
                phase: objects[0].phase(),
                objects,
            })
    }

    /// Writes the objects as one `v1` `List`, in apply order, with every
    /// [sensitive](Manifest::sensitive) value masked as `***`.
    ///
    /// Barrier groups are not part of a `List`: loading the output again orders it by phase
    /// alone.
    ///
    /// # Errors
    ///
    /// Errors of the writer.
    pub fn write(&self, format: Format, writer: impl Write) -> io::Result<()> {
        self.write_list(format, writer, &self.sensitive)
    }

    /// Writes the objects as [`Manifest::write`] does, sensitive values included: for a person
    /// who asked to see them, never for a log or a file.
    ///
    /// # Errors
    ///
    /// Errors of the writer.
    pub fn write_revealed(&self, format: Format, writer: impl Write) -> io::Result<()> {
        self.write_list(format, writer, &Sensitive::default())
    }

    fn write_list(
        &self,
        format: Format,
        mut writer: impl Write,
        masked: &Sensitive,
    ) -> io::Result<()> {
        let list = List {
            api_version: "v1",
            kind: "List",
            items: Items(&self.objects, masked),
        };
        match format {
            Format::Yaml => serde_yaml::to_writer(&mut writer, &list).map_err(io::Error::other)?,
            Format::Json => {
                serde_json::to_writer_pretty(&mut writer, &list)?;
                writer.write_all(b"\n")?;
            }
        }
        writer.flush()
    }
}

impl<'a> IntoIterator for &'a Manifest {
    type Item = &'a Object;
    type IntoIter = std::slice::Iter<'a, Object>;

    fn into_iter(self) -> Self::IntoIter {
        self.objects.iter()
    }
}

#[derive(Serialize)]
struct List<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    items: Items<'a>,
}

struct Items<'a>(&'a [Object], &'a Sensitive);

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for object in self.0 {
            let mut value = object.to_value();
            if !self.1.is_empty() {
                self.1.mask_value(&mut value);
            }
            seq.serialize_element(&value)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::Label;

    #[test]
    fn a_label_reads_back_and_is_checked_when_read() {
        let label = Label::new("capstan.io/discriminator", "shop.full").unwrap();
        let json = serde_json::to_string(&label).unwrap();
        assert_eq!(
            json,
            r#"{"key":"capstan.io/discriminator","value":"shop.full"}"#
        );
        assert_eq!(serde_json::from_str::<Label>(&json).unwrap(), label);
        assert!(serde_json::from_str::<Label>(r#"{"key":"bad key","value":"x"}"#).is_err());
    }
}
