//! Adding an age recipient to `.sops.yaml` by editing its text, so that the author's comments,
//! anchors, quoting and layout survive (re-serialising through a YAML library would lose them).
//!
//! saphyr-parser gives every node's position; the recipient is inserted right after the last
//! recipient of each `age` field, in the field's own style.

use crate::{
    config::Config,
    error::{Error, Result},
    keys::Recipient,
};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::{collections::HashMap, path::Path};

/// A YAML node with the character positions (saphyr's markers count characters) it spans.
#[derive(Clone)]
enum Node {
    Scalar {
        value: String,
        style: ScalarStyle,
        start: usize,
        end: usize,
    },
    /// An alias to anchor `id`, ending at `end`.
    Alias {
        id: usize,
        end: usize,
    },
    Seq {
        items: Vec<Self>,
        flow: bool,
    },
    Map {
        entries: Vec<(Self, Self)>,
    },
}

impl Node {
    fn get(&self, key: &str) -> Option<&Self> {
        let Self::Map { entries } = self else {
            return None;
        };
        entries
            .iter()
            .find(|(name, _)| matches!(name, Self::Scalar { value, .. } if value == key))
            .map(|(_, value)| value)
    }
}

struct Tree<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    source: &'a str,
    anchors: HashMap<usize, Node>,
}

impl<'a> Tree<'a> {
    fn next(&mut self) -> std::result::Result<(Event<'a>, Span), String> {
        match self.parser.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(error)) => Err(format!(
                "line {} column {}: {}",
                error.marker().line(),
                error.marker().col() + 1,
                error.info()
            )),
            None => Err("unexpected end of input".to_owned()),
        }
    }

    /// The node whose first event is `event`, reading the events of its children.
    fn node(&mut self, event: Event<'a>, span: Span) -> std::result::Result<Node, String> {
        let (node, anchor) = match event {
            Event::Scalar(value, style, anchor, _) => (
                Node::Scalar {
                    value: value.into_owned(),
                    style,
                    start: span.start.index(),
                    end: span.end.index(),
                },
                anchor,
            ),
            Event::Alias(id) => (
                Node::Alias {
                    id,
                    end: span.end.index(),
                },
                0,
            ),
            Event::SequenceStart(anchor, _) => {
                let flow = self.opens_flow(span.start.index());
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span)?);
                }
                (Node::Seq { items, flow }, anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span)?;
                    let (event, span) = self.next()?;
                    entries.push((key, self.node(event, span)?));
                }
                (Node::Map { entries }, anchor)
            }
            _ => return Err("unexpected YAML event".to_owned()),
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    /// Whether the collection starting at character `at` is in flow style (`[…]`); its
    /// span starts at any anchor or tag in front of the bracket.
    fn opens_flow(&self, at: usize) -> bool {
        let mut rest = self.source.chars().skip(at).peekable();
        loop {
            while rest.next_if(|c| c.is_whitespace()).is_some() {}
            match rest.peek() {
                Some('&' | '!') => while rest.next_if(|c| !c.is_whitespace()).is_some() {},
                next => return next == Some(&'['),
            }
        }
    }

    /// The first document's root node; `None` for an empty file.
    fn root(&mut self) -> std::result::Result<Option<Node>, String> {
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentStart(_) => {}
                Event::StreamEnd | Event::DocumentEnd => return Ok(None),
                event => return self.node(event, span).map(Some),
            }
        }
    }

    /// An alias replaced by the node its anchor names.
    fn resolve<'n>(&'n self, node: &'n Node) -> &'n Node {
        match node {
            Node::Alias { id, .. } => self.anchors.get(id).unwrap_or(node),
            node => node,
        }
    }
}

/// Where the text of a scalar or alias ends (a character index): quoted scalars end at their
/// closing quote and block scalars at their last character, not at the trailing line breaks
/// or comments saphyr's span may include.
fn content_end(source: &[char], node: &Node) -> Option<usize> {
    match node {
        Node::Alias { end, .. } => Some(*end),
        Node::Scalar {
            style, start, end, ..
        } => match style {
            ScalarStyle::Plain => Some(*end),
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                let quote = if *style == ScalarStyle::DoubleQuoted {
                    '"'
                } else {
                    '\''
                };
                let open = (*start..source.len()).find(|&i| source[i] == quote)?;
                // Recipients hold neither quotes nor escapes, so the next quote closes it.
                (open + 1..source.len()).find(|&i| source[i] == quote)
            }
            ScalarStyle::Literal | ScalarStyle::Folded => {
                let mut end = (*end).min(source.len());
                while end > *start && source[end - 1].is_whitespace() {
                    end -= 1;
                }
                Some(end)
            }
        },
        Node::Seq { .. } | Node::Map { .. } => None,
    }
}

/// The insertion (character index, text) that adds `recipient` to one `age` field, or `None`
/// when the field is empty or already holds it.
fn insertion(
    tree: &Tree<'_>,
    source: &[char],
    field: &Node,
    recipient: &str,
) -> std::result::Result<Option<(usize, String)>, String> {
    let holds = |node: &Node| match tree.resolve(node) {
        Node::Scalar { value, .. } => value.split(',').any(|item| item.trim() == recipient),
        _ => false,
    };
    let field = tree.resolve(field);
    match field {
        Node::Scalar { value, .. } => {
            if value.trim().is_empty() || holds(field) {
                return Ok(None);
            }
            let end = content_end(source, field).ok_or("an unterminated quoted `age` value")?;
            Ok(Some((end, format!(",{recipient}"))))
        }
        Node::Seq { items, flow } => {
            let Some(last) = items.last() else {
                return Ok(None);
            };
            if items.iter().any(holds) {
                return Ok(None);
            }
            let end = content_end(source, last).ok_or("an `age` list item that is not a string")?;
            if *flow {
                return Ok(Some((end, format!(", {recipient}"))));
            }
            let start = match last {
                Node::Scalar { start, .. } => *start,
                // An alias item starts at its `*`, the character after the `- ` prefix.
                _ => (0..end).rev().find(|&i| source[i] == '*').unwrap_or(end),
            };
            let line_start = (0..start)
                .rev()
                .find(|&i| source[i] == '\n')
                .map_or(0, |i| i + 1);
            let prefix: String = source[line_start..start].iter().collect();
            if prefix.trim() != "-" {
                return Err(format!(
                    "an `age` list laid out in a way capstan cannot extend (line {})",
                    source[..start].iter().filter(|c| **c == '\n').count() + 1
                ));
            }
            // The new item goes on its own line after the last one, past any comment there.
            Ok(Some(
                match (end..source.len()).find(|&i| source[i] == '\n') {
                    Some(newline) => (newline + 1, format!("{prefix}{recipient}\n")),
                    None => (source.len(), format!("\n{prefix}{recipient}\n")),
                },
            ))
        }
        Node::Alias { .. } | Node::Map { .. } => {
            Err("an `age` field that is neither a string nor a list".to_owned())
        }
    }
}

/// See [`Config::add_recipient`].
pub(crate) fn add_recipient(
    path: &Path,
    text: &str,
    recipient: &Recipient,
) -> Result<Option<String>> {
    let invalid = |reason: String| Error::Config {
        path: path.to_owned(),
        reason,
    };
    // Refuse what sops would refuse before touching it.
    Config::parse(path, text)?;
    let recipient = recipient.to_string();
    let source: Vec<char> = text.chars().collect();
    let mut tree = Tree {
        parser: Parser::new_from_str(text),
        source: text,
        anchors: HashMap::new(),
    };
    let root = tree.root().map_err(&invalid)?;
    let rules = match root.as_ref().and_then(|root| root.get("creation_rules")) {
        Some(node) => match tree.resolve(node) {
            Node::Seq { items, .. } => items.clone(),
            _ => Vec::new(),
        },
        None => Vec::new(),
    };
    let mut insertions: Vec<(usize, String)> = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let rule = tree.resolve(rule);
        let mut fields: Vec<&Node> = rule.get("age").into_iter().collect();
        if let Some(Node::Seq { items, .. }) = rule.get("key_groups").map(|n| tree.resolve(n)) {
            fields.extend(
                items
                    .iter()
                    .filter_map(|group| tree.resolve(group).get("age")),
            );
        }
        for field in fields {
            let at = |reason: String| invalid(format!("creation rule {}: {reason}", index + 1));
            if let Some(insertion) = insertion(&tree, &source, field, &recipient).map_err(at)? {
                // A field reached through several aliases is edited once, where it is defined.
                if !insertions.iter().any(|(at, _)| *at == insertion.0) {
                    insertions.push(insertion);
                }
            }
        }
    }
    if insertions.is_empty() {
        return Ok(None);
    }
    insertions.sort_by_key(|(at, _)| *at);
    let mut edited = String::with_capacity(text.len() + insertions.len() * 80);
    let mut next = 0;
    for (at, insert) in &insertions {
        edited.extend(&source[next..*at]);
        edited.push_str(insert);
        next = *at;
    }
    edited.extend(&source[next..]);
    // The edit must say what was meant: every rule with age recipients now includes this one.
    let config = Config::parse(path, &edited)?;
    let missing = config.rules().iter().position(|rule| {
        rule.recipients()
            .groups
            .iter()
            .any(|group| !group.iter().any(|r| r.to_string() == recipient))
    });
    if let Some(index) = missing {
        return Err(invalid(format!(
            "creation rule {}: could not add the recipient to its text",
            index + 1
        )));
    }
    Ok(Some(edited))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Identity;

    fn recipients() -> (String, String, Recipient) {
        let new = Identity::generate().recipient();
        (
            Identity::generate().recipient().to_string(),
            Identity::generate().recipient().to_string(),
            new,
        )
    }

    fn add(text: &str, recipient: &Recipient) -> Option<String> {
        add_recipient(Path::new(".sops.yaml"), text, recipient).unwrap()
    }

    #[test]
    fn extends_strings_in_their_quoting_and_keeps_comments() {
        let (a, b, new) = recipients();
        let text = format!(
            "# who can read what\ncreation_rules:\n  # production\n  - path_regex: ^prod/\n    \
             age: \"{a},{b}\" # ops and ci\n  - path_regex: ^dev/\n    age: '{a}'\n  \
             - path_regex: ^plain/\n    age: {b}\n"
        );
        let edited = add(&text, &new).unwrap();
        assert_eq!(
            edited,
            format!(
                "# who can read what\ncreation_rules:\n  # production\n  - path_regex: ^prod/\n    \
                 age: \"{a},{b},{new}\" # ops and ci\n  - path_regex: ^dev/\n    age: '{a},{new}'\n  \
                 - path_regex: ^plain/\n    age: {b},{new}\n"
            )
        );
        assert_eq!(add(&edited, &new), None);
    }

    #[test]
    fn extends_block_and_flow_lists_and_key_groups() {
        let (a, b, new) = recipients();
        let text = format!(
            "creation_rules:\n  - path_regex: ^a/\n    age:\n      - {a}\n      - \"{b}\"  # ci\n    \
             encrypted_regex: ^data$\n  - path_regex: ^b/\n    key_groups:\n      - age: [{a}, {b}]\n      \
             - age:\n          - {b}\n"
        );
        let edited = add(&text, &new).unwrap();
        assert_eq!(
            edited,
            format!(
                "creation_rules:\n  - path_regex: ^a/\n    age:\n      - {a}\n      - \"{b}\"  # ci\n      \
                 - {new}\n    encrypted_regex: ^data$\n  - path_regex: ^b/\n    key_groups:\n      \
                 - age: [{a}, {b}, {new}]\n      - age:\n          - {b}\n          - {new}\n"
            )
        );
        assert_eq!(add(&edited, &new), None);
    }

    #[test]
    fn edits_anchors_where_they_are_defined() {
        let (a, b, new) = recipients();
        let text = format!(
            "keys:\n  - &ops {a}\n  - &all [{a}, {b}]\ncreation_rules:\n  - path_regex: ^x/\n    \
             age: *all\n  - path_regex: ^y/\n    age: *all\n  - path_regex: ^z/\n    key_groups:\n      \
             - age:\n          - *ops\n"
        );
        let edited = add(&text, &new).unwrap();
        assert_eq!(
            edited,
            format!(
                "keys:\n  - &ops {a}\n  - &all [{a}, {b}, {new}]\ncreation_rules:\n  - path_regex: ^x/\n    \
                 age: *all\n  - path_regex: ^y/\n    age: *all\n  - path_regex: ^z/\n    key_groups:\n      \
                 - age:\n          - *ops\n          - {new}\n"
            )
        );
    }

    #[test]
    fn leaves_rules_that_hold_it_or_have_no_age_keys() {
        let (a, _, new) = recipients();
        let text = format!(
            "creation_rules:\n  - path_regex: ^a/\n    age: {a},{new}\n  - path_regex: ^b/\n    \
             pgp: ABCDEF\n  - path_regex: ^c/\n    age: >-\n      {a}\n"
        );
        let edited = add(&text, &new).unwrap();
        assert_eq!(
            edited,
            text.replace(&format!("      {a}\n"), &format!("      {a},{new}\n"))
        );
        let untouched = format!("creation_rules:\n  - age: [{new}]\n");
        assert_eq!(add(&untouched, &new), None);
    }
}
