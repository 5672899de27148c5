//! Where keys are in YAML (and JSON) text, for messages: serde's parsers do not say, so the text
//! is scanned again with saphyr-parser, which reports lines. Only error paths pay for it.

use std::borrow::Cow;
use std::collections::HashMap;

use saphyr_parser::{Event, Parser};

enum Frame<'t> {
    Sequence,
    Mapping {
        /// Mappings are numbered in the order they open.
        number: usize,
        next_is_key: bool,
        /// The key whose value is being read.
        key: Option<Cow<'t, str>>,
    },
}

/// Calls `visit` with each scalar key of `text` in order: the number of the mapping that holds
/// it, the keys leading to that mapping (`None` when a sequence is on the way), the key and its
/// line (from 1); stops when `visit` returns true. Aliases used as keys are not seen.
fn scan_keys<'t>(
    text: &'t str,
    mut visit: impl FnMut(usize, Option<&[&str]>, &str, usize) -> bool,
) {
    let mut frames: Vec<Frame<'t>> = Vec::new();
    let mut mappings = 0;
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { return };
        let scalar = match event {
            Event::MappingStart(..) => {
                frames.push(Frame::Mapping {
                    number: mappings,
                    next_is_key: true,
                    key: None,
                });
                mappings += 1;
                continue;
            }
            Event::SequenceStart(..) => {
                frames.push(Frame::Sequence);
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                frames.pop();
                None
            }
            Event::Scalar(value, ..) => Some(value),
            Event::Alias(_) => None,
            _ => continue,
        };
        // A node is complete: in a mapping, keys and values take turns.
        let Some((
            Frame::Mapping {
                number,
                next_is_key,
                key,
            },
            around,
        )) = frames.split_last_mut()
        else {
            continue;
        };
        if *next_is_key && let Some(scalar) = scalar {
            let path: Option<Vec<&str>> = around
                .iter()
                .map(|frame| match frame {
                    Frame::Mapping { key, .. } => key.as_deref(),
                    Frame::Sequence => None,
                })
                .collect();
            if visit(*number, path.as_deref(), &scalar, span.start.line()) {
                return;
            }
            *key = Some(scalar);
        }
        *next_is_key = !*next_is_key;
    }
}

/// The line (from 1) of the key at `path` (keys from the top of the document).
pub(crate) fn key_line(text: &str, path: &[&str]) -> Option<usize> {
    let (last, outer) = path.split_last()?;
    let mut found = None;
    scan_keys(text, |_, around, key, line| {
        let here = key == *last && around == Some(outer);
        if here {
            found = Some(line);
        }
        here
    });
    found
}

/// The lines (from 1) of the first and second `key` in the first mapping that holds it twice.
fn duplicate_lines(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut first: HashMap<usize, usize> = HashMap::new();
    let mut found = None;
    scan_keys(text, |mapping, _, seen, line| {
        if seen != key {
            return false;
        }
        match first.get(&mapping) {
            Some(earlier) => found = Some((*earlier, line)),
            None => {
                first.insert(mapping, line);
            }
        }
        found.is_some()
    });
    found
}

/// The message for a mapping of `text` that holds `key` twice, and the line of the second
/// occurrence; `text` starts on line `first_line` of its file.
pub(crate) fn duplicate_key(text: &str, key: &str, first_line: usize) -> (usize, String) {
    let message = format!("key `{key}` appears twice in one mapping");
    match duplicate_lines(text, key) {
        Some((first, second)) => {
            let (first, second) = (first_line + first - 1, first_line + second - 1);
            (second, format!("{message} (lines {first} and {second})"))
        }
        // An alias as a key, or text the two parsers read differently.
        None => (first_line, message),
    }
}

#[cfg(test)]
mod tests {
    use super::{duplicate_key, key_line};

    #[test]
    fn duplicates_are_found_in_the_mapping_that_repeats_the_key() {
        let text =
            "name: top\nmetadata:\n  labels: {name: x}\n  name: a\n  spec: [name]\n  name: b\n";
        let message = "key `name` appears twice in one mapping (lines 14 and 16)";
        assert_eq!(duplicate_key(text, "name", 11), (16, message.to_owned()));
        let json = "{\"a\": 1,\n \"b\": {\"a\": 2},\n \"a\": 3}";
        let message = "key `a` appears twice in one mapping (lines 1 and 3)";
        assert_eq!(duplicate_key(json, "a", 1), (3, message.to_owned()));
        let message = "key `a` appears twice in one mapping";
        assert_eq!(duplicate_key("[a, a]", "a", 5), (5, message.to_owned()));
    }

    #[test]
    fn key_lines_follow_the_path_of_mapping_keys() {
        let text = "name: p\nstages:\n  full:\n    name: x\n  capi: {}\nlist:\n- capi: 1\n";
        assert_eq!(key_line(text, &["name"]), Some(1));
        assert_eq!(key_line(text, &["stages", "capi"]), Some(5));
        assert_eq!(key_line(text, &["stages", "full", "name"]), Some(4));
        assert_eq!(key_line(text, &["capi"]), None);
        assert_eq!(key_line(text, &[]), None);
    }
}
