//! Splits YAML text into pieces that parse independently, so big inputs parse on every core.
//!
//! Two cuts are safe without parsing. A `---` or `...` line at column 0 always separates
//! documents: the YAML spec forbids such lines inside any node. And in a block-style `items:`
//! sequence at column 0, a `-` at the sequence's own indentation always starts the next item,
//! because everything inside an item is indented further. Item splitting is still only an
//! optimisation: when any piece fails to parse, the caller parses the whole document instead,
//! which also covers aliases that point into another item.

/// A piece of a larger text, and the line it starts on (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece<'a> {
    pub(crate) text: &'a str,
    pub(crate) line: usize,
}

/// Lines of `text` with their byte offsets and line numbers, line endings kept.
fn lines(text: &str, first_line: usize) -> impl Iterator<Item = (usize, usize, &str)> {
    text.split_inclusive('\n')
        .scan(0, |offset, line| {
            let start = *offset;
            *offset += line.len();
            Some((start, line))
        })
        .enumerate()
        .map(move |(index, (start, line))| (start, first_line + index, line))
}

/// Whether `line` is `marker` alone or followed by whitespace (`--- !tag`, `--- # note`).
fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a line carries no content: blank, a comment, a bare marker or a directive.
fn is_trivial(line: &str) -> bool {
    let rest = if is_marker(line, "---") || is_marker(line, "...") {
        &line[3..]
    } else {
        line
    };
    let rest = rest.trim();
    rest.is_empty() || rest.starts_with('#') || line.starts_with('%')
}

/// The documents of a YAML stream that hold anything besides comments and markers. Each
/// starts at its first line of content, so its line is where a reader finds the object.
pub(crate) fn documents(text: &str) -> Vec<Piece<'_>> {
    let mut documents = Vec::new();
    // Where the current document's content starts, once a line of content has been seen.
    let mut start: Option<(usize, usize)> = None;
    let mut push = |start: Option<(usize, usize)>, end: usize| {
        if let Some((offset, line)) = start {
            documents.push(Piece {
                text: &text[offset..end],
                line,
            });
        }
    };
    for (offset, number, line) in lines(text, 1) {
        if is_marker(line, "---") {
            push(start.take(), offset);
        }
        if start.is_none() && !is_trivial(line) {
            start = Some((offset, number));
        }
        if is_marker(line, "...") {
            push(start.take(), offset + line.len());
        }
    }
    push(start, text.len());
    documents
}

/// A block-style `List` document cut into its `items`.
#[derive(Debug)]
pub(crate) struct ListPieces<'a> {
    /// The document with `items: []` in place of its items, to check that it is a `List`.
    pub(crate) header: String,
    /// Each item's lines; [`item_text`] turns one into a parseable document.
    pub(crate) items: Vec<Piece<'a>>,
    /// The column of the items' `-`.
    pub(crate) indent: usize,
}

/// Cuts a document with a column-0 block sequence `items:` into its items, or `None` when the
/// document has no such sequence.
pub(crate) fn list_items<'a>(document: Piece<'a>) -> Option<ListPieces<'a>> {
    let text = document.text;
    let mut all = lines(text, document.line).peekable();
    let (items_key, _, _) = all.find(|(_, _, line)| {
        line.strip_prefix("items:").is_some_and(|rest| {
            let rest = rest.trim();
            rest.is_empty() || rest.starts_with('#')
        })
    })?;
    let mut items: Vec<Piece<'a>> = Vec::new();
    let mut indent = None;
    let mut end = text.len();
    let mut open: Option<(usize, usize)> = None;
    for (offset, number, line) in all {
        let content = line.trim_start_matches(' ');
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let column = line.len() - content.len();
        let dash = is_marker(content, "-");
        let indent = *indent.get_or_insert(column);
        if column > indent {
            continue;
        }
        if column < indent || (column == indent && !dash) {
            if column == 0 && !dash {
                end = offset;
                break;
            }
            return None;
        }
        if let Some((from, line)) = open.replace((offset, number)) {
            items.push(Piece {
                text: &text[from..offset],
                line,
            });
        }
    }
    if let Some((from, line)) = open {
        items.push(Piece {
            text: &text[from..end],
            line,
        });
    }
    if items.is_empty() {
        return None;
    }
    let indent = indent?;
    let header = format!("{}items: []\n{}", &text[..items_key], &text[end..]);
    Some(ListPieces {
        header,
        items,
        indent,
    })
}

/// An item's text as a document of its own: the `-` becomes a space, so the item's mapping
/// keeps the indentation its later lines already have.
pub(crate) fn item_text(item: &str, indent: usize) -> String {
    let mut text = String::with_capacity(item.len());
    text.push_str(&item[..indent]);
    text.push(' ');
    text.push_str(&item[indent + 1..]);
    text
}

#[cfg(test)]
mod tests {
    use super::{Piece, documents, item_text, list_items};

    fn texts<'a>(pieces: &[Piece<'a>]) -> Vec<(&'a str, usize)> {
        pieces
            .iter()
            .map(|piece| (piece.text, piece.line))
            .collect()
    }

    #[test]
    fn documents_split_at_column_zero_markers_only() {
        let text = "a: 1\n---\nb: |\n  ---\n  x\n--- # next\nc: 3\n...\n---\n# only a comment\n";
        assert_eq!(
            texts(&documents(text)),
            [("a: 1\n", 1), ("b: |\n  ---\n  x\n", 3), ("c: 3\n...\n", 7)]
        );
    }

    #[test]
    fn a_marker_line_may_carry_the_document() {
        assert_eq!(
            texts(&documents("--- {a: 1}\n---\n")),
            [("--- {a: 1}\n", 1)]
        );
        assert_eq!(texts(&documents("---x: 1\n")), [("---x: 1\n", 1)]);
    }

    #[test]
    fn list_items_are_cut_at_their_own_indentation() {
        let text = "apiVersion: v1\nitems:\n  - kind: A\n    data:\n      - x\n  # note\n  - kind: B\nkind: List\n";
        let pieces = list_items(Piece { text, line: 10 }).unwrap();
        assert_eq!(
            texts(&pieces.items),
            [
                ("  - kind: A\n    data:\n      - x\n  # note\n", 12),
                ("  - kind: B\n", 16)
            ]
        );
        assert_eq!(pieces.header, "apiVersion: v1\nitems: []\nkind: List\n");
        assert_eq!(
            item_text(pieces.items[1].text, pieces.indent),
            "    kind: B\n"
        );
    }

    #[test]
    fn indentless_items_end_at_the_next_key() {
        let text = "items:\n- kind: A\n  x: 1\n- kind: B\nkind: List";
        let pieces = list_items(Piece { text, line: 1 }).unwrap();
        assert_eq!(
            texts(&pieces.items),
            [("- kind: A\n  x: 1\n", 2), ("- kind: B\n", 4)]
        );
        assert_eq!(pieces.header, "items: []\nkind: List");
    }

    #[test]
    fn documents_without_block_items_are_not_cut() {
        assert!(
            list_items(Piece {
                text: "kind: List\nitems: []\n",
                line: 1
            })
            .is_none()
        );
        assert!(
            list_items(Piece {
                text: "spec:\n  items:\n  - a\n",
                line: 1
            })
            .is_none()
        );
        assert!(
            list_items(Piece {
                text: "items:\nkind: List\n",
                line: 1
            })
            .is_none()
        );
    }
}
