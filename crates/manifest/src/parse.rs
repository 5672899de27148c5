//! Parses the text of one source into objects, in parallel where the text allows it.

use std::sync::Arc;

use rayon::prelude::*;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::lines;
use crate::object::{Convert, Converted};
use crate::split::{Piece, documents, item_text, list_items};
use crate::strict::{self, Failure, JsonList};
use crate::{Location, Problem, ProblemKind};

/// One source's text, with the name problems are reported under.
pub(crate) struct Source<'a> {
    pub(crate) name: &'a Arc<str>,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    fn location(&self, document: usize, item: Option<usize>, line: usize) -> Location {
        Location::new(self.name.clone(), document, item, line)
    }

    /// Every object (or problem) in the source, in source order.
    pub(crate) fn parse(&self, convert: &Convert<'_>) -> Vec<Converted> {
        let text = self.text.strip_prefix('\u{feff}').unwrap_or(self.text);
        let source = Source {
            name: self.name,
            text,
        };
        if text.trim_start().starts_with(['{', '[']) {
            // JSON is far faster to parse as JSON; text that only looks like it (a YAML flow
            // mapping) fails here and goes the YAML way.
            if let Some(converted) = source.parse_json(convert) {
                return converted;
            }
        }
        documents(text)
            .into_par_iter()
            .enumerate()
            .flat_map_iter(|(index, piece)| source.parse_yaml_document(piece, index + 1, convert))
            .collect()
    }

    fn parse_yaml_document(
        &self,
        piece: Piece<'_>,
        document: usize,
        convert: &Convert<'_>,
    ) -> Vec<Converted> {
        if let Some(converted) = self.parse_yaml_list(piece, document, convert) {
            return converted;
        }
        match strict::yaml(piece.text) {
            Ok(value) => expand(value, self.location(document, None, piece.line), convert),
            Err(Failure::DuplicateKey(key)) => {
                vec![self.duplicate_key(&key, piece.text, document, None, piece.line)]
            }
            Err(Failure::Other(error)) => {
                let (line, message) = syntax(&error, piece.line);
                let location = self.location(document, None, line);
                vec![Converted::Problems(vec![Problem::new(
                    location,
                    ProblemKind::Syntax,
                    message,
                )])]
            }
        }
    }

    /// A block-style `List` parsed item by item, or `None` when the document is not one or an
    /// item does not parse alone.
    fn parse_yaml_list(
        &self,
        piece: Piece<'_>,
        document: usize,
        convert: &Convert<'_>,
    ) -> Option<Vec<Converted>> {
        let pieces = list_items(piece)?;
        let header = strict::yaml(&pieces.header).ok()?;
        if !header.as_object().is_some_and(is_list_kind) {
            return None;
        }
        let items: Option<Vec<Vec<Converted>>> = pieces
            .items
            .par_iter()
            .enumerate()
            .map(|(index, item)| {
                let text = item_text(item.text, pieces.indent);
                let parsed = strict::yaml(&text);
                self.value(
                    parsed,
                    &text,
                    (document, Some(index + 1), item.line),
                    convert,
                )
            })
            .collect();
        Some(items?.into_iter().flatten().collect())
    }

    fn parse_json(&self, convert: &Convert<'_>) -> Option<Vec<Converted>> {
        let documents = serde_json::Deserializer::from_str(self.text)
            .into_iter::<&RawValue>()
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let mut lines = Lines::new(self.text);
        let mut converted = Vec::new();
        for (index, raw) in documents.into_iter().enumerate() {
            let document = index + 1;
            let line = lines.at(raw.get());
            if let Ok(JsonList {
                kind: Some(kind),
                items: Some(items),
            }) = strict::json_list(raw.get())
                && kind.ends_with("List")
            {
                let located: Vec<_> = items
                    .into_iter()
                    .map(|item| (lines.at(item.get()), item))
                    .collect();
                let items = located
                    .into_par_iter()
                    .enumerate()
                    .map(|(index, (line, item))| {
                        let parsed = strict::json(item.get());
                        self.value(
                            parsed,
                            item.get(),
                            (document, Some(index + 1), line),
                            convert,
                        )
                    })
                    .collect::<Option<Vec<_>>>()?;
                converted.extend(items.into_iter().flatten());
            } else {
                let parsed = strict::json(raw.get());
                converted.extend(self.value(parsed, raw.get(), (document, None, line), convert)?);
            }
        }
        Some(converted)
    }

    /// The objects of a piece parsed alone: a problem for a repeated key, and `None` for other
    /// errors, which the whole text parsed another way may not have.
    fn value<E>(
        &self,
        parsed: Result<Value, Failure<E>>,
        text: &str,
        (document, item, line): (usize, Option<usize>, usize),
        convert: &Convert<'_>,
    ) -> Option<Vec<Converted>> {
        match parsed {
            Ok(value) => Some(expand(value, self.location(document, item, line), convert)),
            Err(Failure::DuplicateKey(key)) => {
                Some(vec![self.duplicate_key(&key, text, document, item, line)])
            }
            Err(Failure::Other(_)) => None,
        }
    }

    /// The problem of a mapping in `text` (which starts on `first_line`) that repeats `key`.
    fn duplicate_key(
        &self,
        key: &str,
        text: &str,
        document: usize,
        item: Option<usize>,
        first_line: usize,
    ) -> Converted {
        let (line, message) = lines::duplicate_key(text, key, first_line);
        let location = self.location(document, item, line);
        Converted::Problems(vec![Problem::new(
            location,
            ProblemKind::DuplicateKey,
            message,
        )])
    }
}

/// Line numbers of positions in a text, counted forward from the last position asked about.
struct Lines<'a> {
    text: &'a str,
    offset: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            offset: 0,
            line: 1,
        }
    }

    /// The line `part` (a slice of the text, at or after the previous one) starts on.
    fn at(&mut self, part: &str) -> usize {
        let offset = (part.as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize);
        let offset = offset.clamp(self.offset, self.text.len());
        self.line += self.text.as_bytes()[self.offset..offset]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.offset = offset;
        self.line
    }
}

fn is_list_kind(object: &Map<String, Value>) -> bool {
    object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.ends_with("List"))
}

/// A parsed document: nothing for `null`, each item of a `List`, or one object.
fn expand(value: Value, location: Location, convert: &Convert<'_>) -> Vec<Converted> {
    let mut list = match value {
        Value::Null => return Vec::new(),
        Value::Object(object) if is_list_kind(&object) => object,
        other => return vec![convert.value(other, location)],
    };
    match list.remove("items") {
        Some(Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .flat_map(|(index, item)| {
                // Items of a List nested in a List keep the outer item's number.
                let location = match location.item() {
                    Some(_) => location.clone(),
                    None => location.with_item(index + 1),
                };
                expand(item, location, convert)
            })
            .collect(),
        Some(Value::Null) => Vec::new(),
        items => {
            if let Some(items) = items {
                list.insert("items".to_owned(), items);
            }
            vec![convert.value(Value::Object(list), location)]
        }
    }
}

/// The line (in the whole source) and message of a YAML syntax error in a piece that starts on
/// `first_line`; the message drops serde_yaml's piece-relative position.
fn syntax(error: &serde_yaml::Error, first_line: usize) -> (usize, String) {
    let message = error.to_string();
    match error.location() {
        Some(at) => {
            let message = message
                .split_once(" at line ")
                .map_or(message.as_str(), |(message, _)| message)
                .to_owned();
            (
                first_line + at.line() - 1,
                format!("{message} (column {})", at.column()),
            )
        }
        None => (first_line, message),
    }
}
