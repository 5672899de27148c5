//! YAML to [`Tree`], typed the way go-yaml v3 (and so sops) types plain scalars, with comment
//! lines kept as tree entries.
//!
//! saphyr-parser supplies the events and their spans; comments, which no Rust YAML parser
//! reports, are read from the source text between consecutive events.

use crate::{
    time,
    tree::{Entry, Item, Map, Tree, Value},
};
use base64::Engine as _;
use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::collections::HashMap;

/// A comment found between two events.
struct Comment {
    text: String,
    line: usize,
    column: usize,
    /// Written after other content on its line, so it belongs to the item of that line.
    inline: bool,
}

enum Frame {
    /// A mapping, and the key (with its line) whose value comes next.
    Map {
        map: Map,
        key: Option<(String, usize)>,
    },
    Seq {
        items: Vec<Item>,
    },
}

struct Level {
    frame: Frame,
    anchor: usize,
    /// Column of the collection's first item: comments left of it belong to a parent.
    column: usize,
    line: usize,
    /// Line and entry index of the last item added, where an inline comment goes.
    last_item: Option<(usize, usize)>,
}

#[derive(Default)]
struct Builder {
    stack: Vec<Level>,
    documents: Vec<Map>,
    anchors: HashMap<usize, Value>,
    pending: Vec<Comment>,
    document_had_root: bool,
}

/// Parses YAML text into its documents. Errors give a position, never the text.
pub(crate) fn parse(source: &str) -> Result<Tree, String> {
    let mut parser = Parser::new_from_str(source);
    let mut builder = Builder::default();
    let mut cursor = Cursor::default();
    while let Some(event) = parser.next_event() {
        let (event, span) = event.map_err(|error| {
            let marker = error.marker();
            format!(
                "line {} column {}: {}",
                marker.line(),
                marker.col() + 1,
                error.info()
            )
        })?;
        let start = span.start.index();
        if start > cursor.chars {
            let gap = cursor.advance(source, start);
            builder.add_comments(source, gap);
        }
        let quoted = match &event {
            Event::Scalar(
                _,
                style @ (ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted),
                ..,
            ) => Some(*style),
            _ => None,
        };
        builder.event(event, &span)?;
        let end = match quoted {
            Some(style) => quoted_end(source, &mut cursor, start, style),
            None => span.end.index(),
        };
        if end > cursor.chars {
            cursor.advance(source, end);
        }
    }
    if builder.stack.is_empty() {
        Ok(Tree {
            documents: builder.documents,
        })
    } else {
        Err("unexpected end of input".to_owned())
    }
}

/// Walks the source by character index, as saphyr's markers count, keeping the byte offset.
#[derive(Default)]
struct Cursor {
    chars: usize,
    bytes: usize,
    /// Line breaks before `bytes`, so comment lines are numbered without rescanning.
    breaks: usize,
}

impl Cursor {
    /// Moves to character `to` and returns the byte range passed over and the line breaks
    /// before it.
    fn advance(&mut self, source: &str, to: usize) -> (usize, usize, usize) {
        let (from, breaks) = (self.bytes, self.breaks);
        for ch in source[self.bytes..].chars().take(to - self.chars) {
            self.bytes += ch.len_utf8();
            self.breaks += usize::from(ch == '\n');
        }
        self.chars = to;
        (from, self.bytes, breaks)
    }
}

/// saphyr ends a quoted scalar's span after any comment that follows it on the line; the
/// closing quote is found here instead.
fn quoted_end(source: &str, cursor: &mut Cursor, start: usize, style: ScalarStyle) -> usize {
    cursor.advance(source, start.max(cursor.chars));
    let text = &source[cursor.bytes..];
    let quote = if style == ScalarStyle::DoubleQuoted {
        '"'
    } else {
        '\''
    };
    let Some(open) = text.find(quote) else {
        return start;
    };
    let body = &text[open + 1..];
    let mut chars = body.char_indices().peekable();
    while let Some((index, ch)) = chars.next() {
        if ch == '\\' && quote == '"' {
            chars.next();
        } else if ch == quote {
            if quote == '\'' && chars.peek().is_some_and(|(_, next)| *next == '\'') {
                chars.next();
                continue;
            }
            let end_byte = open + 1 + index + 1;
            return cursor.chars + text[..end_byte].chars().count();
        }
    }
    start
}

impl Builder {
    fn add_comments(&mut self, source: &str, (from, to, breaks): (usize, usize, usize)) {
        let mut line_offset = from;
        for (index, line) in source[from..to].split_inclusive('\n').enumerate() {
            if let Some(hash) = line.find('#') {
                let absolute = line_offset + hash;
                let line_start = source[..absolute].rfind('\n').map_or(0, |i| i + 1);
                let before = &source[line_start..absolute];
                if before.is_empty() || before.ends_with([' ', '\t']) {
                    self.place_comment(Comment {
                        text: line[hash + 1..].trim_end_matches(['\n', '\r']).to_owned(),
                        line: breaks + index + 1,
                        column: before.chars().count(),
                        inline: !before.trim().is_empty(),
                    });
                }
            }
            line_offset += line.len();
        }
    }

    fn place_comment(&mut self, comment: Comment) {
        if comment.inline
            && let Some(level) = self.stack.last_mut()
            && let Some((line, index)) = level.last_item
            && line == comment.line
        {
            let text = comment.text;
            match &mut level.frame {
                Frame::Map { map, .. } => map.entries.insert(index, Entry::Comment(text)),
                Frame::Seq { items } => items.insert(index, Item::Comment(text)),
            }
            level.last_item = Some((line, index + 1));
            return;
        }
        self.pending.push(comment);
    }

    /// Moves pending comments into the innermost collection, before the item that starts now.
    fn flush_comments(&mut self) {
        let Some(level) = self.stack.last_mut() else {
            return;
        };
        for comment in self.pending.drain(..) {
            match &mut level.frame {
                Frame::Map { map, .. } => map.entries.push(Entry::Comment(comment.text)),
                Frame::Seq { items } => items.push(Item::Comment(comment.text)),
            }
        }
    }

    /// Adds a finished node to its parent, or makes it the document's root.
    fn complete(&mut self, value: Value, anchor: usize, line: usize) -> Result<(), String> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        let Some(level) = self.stack.last_mut() else {
            let root = match value {
                Value::Map(root) => root,
                Value::Null => Map::default(),
                _ => {
                    return Err(format!(
                        "the document starting on line {line} is not a mapping"
                    ));
                }
            };
            self.documents.push(root);
            self.document_had_root = true;
            return Ok(());
        };
        match &mut level.frame {
            Frame::Map { map, key } => {
                let (key, key_line) = key.take().ok_or("a mapping value without a key")?;
                level.last_item = Some((key_line, map.entries.len()));
                map.entries.push(Entry::Pair(key, value));
            }
            Frame::Seq { items } => {
                level.last_item = Some((line, items.len()));
                items.push(Item::Value(value));
            }
        }
        Ok(())
    }

    /// Takes a key if the innermost collection is a mapping waiting for one.
    fn take_key(&mut self, key: Value, line: usize, position: &str) -> Result<bool, String> {
        let Some(Level {
            frame: Frame::Map {
                map,
                key: slot @ None,
            },
            ..
        }) = self.stack.last_mut()
        else {
            return Ok(false);
        };
        let Value::Str(name) = key else {
            return Err(format!("a key that is not a string at {position}"));
        };
        if map.get(&name).is_some() {
            return Err(format!("duplicate key at {position}"));
        }
        *slot = Some((name, line));
        self.flush_comments();
        Ok(true)
    }

    fn event(&mut self, event: Event<'_>, span: &Span) -> Result<(), String> {
        let line = span.start.line();
        let position = format!("line {line} column {}", span.start.col() + 1);
        match event {
            Event::DocumentStart(_) => self.document_had_root = false,
            Event::DocumentEnd => {
                if !self.document_had_root {
                    self.documents.push(Map::default());
                }
                if let Some(root) = self.documents.last_mut() {
                    root.entries
                        .extend(self.pending.drain(..).map(|c| Entry::Comment(c.text)));
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if matches!(
                    self.stack.last(),
                    Some(Level {
                        frame: Frame::Map { key: None, .. },
                        ..
                    })
                ) {
                    return Err(format!("a key that is not a string at {position}"));
                }
                // Comments indented like the new collection's first item belong inside it.
                let column = span.start.col();
                let (inner, outer): (Vec<_>, Vec<_>) = self
                    .pending
                    .drain(..)
                    .partition(|c| c.column >= column && !c.inline);
                self.pending = outer;
                self.flush_comments();
                self.pending = inner;
                let frame = if matches!(event, Event::MappingStart(..)) {
                    Frame::Map {
                        map: Map::default(),
                        key: None,
                    }
                } else {
                    Frame::Seq { items: Vec::new() }
                };
                self.stack.push(Level {
                    frame,
                    anchor,
                    column,
                    line,
                    last_item: None,
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let level = self
                    .stack
                    .pop()
                    .ok_or_else(|| format!("unbalanced at {position}"))?;
                let (own, parent): (Vec<_>, Vec<_>) = self
                    .pending
                    .drain(..)
                    .partition(|c| c.column >= level.column);
                self.pending = parent;
                let value = match level.frame {
                    Frame::Map { mut map, .. } => {
                        map.entries
                            .extend(own.into_iter().map(|c| Entry::Comment(c.text)));
                        Value::Map(map)
                    }
                    Frame::Seq { mut items } => {
                        items.extend(own.into_iter().map(|c| Item::Comment(c.text)));
                        Value::Seq(items)
                    }
                };
                self.complete(value, level.anchor, level.line)?;
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(&text, style, tag.as_deref())
                    .ok_or_else(|| format!("invalid scalar at {position}"))?;
                if anchor != 0 {
                    self.anchors.insert(anchor, value.clone());
                }
                if !self.take_key(value.clone(), line, &position)? {
                    self.flush_comments();
                    self.complete(value, 0, line)?;
                }
            }
            Event::Alias(id) => {
                let value = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| format!("unknown alias at {position}"))?;
                if !self.take_key(value.clone(), line, &position)? {
                    self.flush_comments();
                    self.complete(value, 0, line)?;
                }
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }
}

/// Types a scalar as go-yaml v3 does: only plain scalars are resolved, tags from the core
/// schema force a type, and other tags are ignored (sops drops them).
fn scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Option<Value> {
    let core = tag
        .filter(|tag| tag.handle == "tag:yaml.org,2002:")
        .map(|tag| tag.suffix.as_str());
    match core {
        Some("str") => return Some(Value::Str(text.to_owned())),
        Some("binary") => {
            let compact: String = text.split_whitespace().collect();
            return base64::engine::general_purpose::STANDARD
                .decode(compact)
                .ok()
                .map(Value::Bytes);
        }
        Some("timestamp") => return time::yaml_timestamp(text).map(Value::Time),
        Some("int" | "float" | "bool" | "null") => {}
        _ if style != ScalarStyle::Plain => return Some(Value::Str(text.to_owned())),
        _ => {}
    }
    let resolved = resolve_plain(text)?;
    match (core, &resolved) {
        (Some("int"), Value::Int(_))
        | (Some("bool"), Value::Bool(_))
        | (Some("null"), Value::Null)
        | (None, _) => Some(resolved),
        (Some("float"), Value::Float(_)) => Some(resolved),
        (Some("float"), Value::Int(int)) => Some(Value::Float(*int as f64)),
        _ => None,
    }
}

/// go-yaml v3's `resolve` for an untagged plain scalar.
fn resolve_plain(text: &str) -> Option<Value> {
    let value = match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Value::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => Value::Float(f64::NAN),
        _ => match text.as_bytes()[0] {
            b'0'..=b'9' | b'+' | b'-' => {
                if let Some(stamp) = time::yaml_timestamp(text) {
                    return Some(Value::Time(stamp));
                }
                let plain = text.replace('_', "");
                if let Some(int) = go_parse_int(&plain) {
                    return int.map(Value::Int);
                }
                if is_yaml_float(&plain) {
                    return plain
                        .parse()
                        .ok()
                        .map(Value::Float)
                        .or(Some(Value::Str(text.to_owned())));
                }
                Value::Str(text.to_owned())
            }
            b'.' => text
                .parse()
                .map_or_else(|_| Value::Str(text.to_owned()), Value::Float),
            _ => Value::Str(text.to_owned()),
        },
    };
    Some(value)
}

/// Go's `strconv.ParseInt(s, 0, 64)`: `0x`, `0o`, `0b` and legacy `0777` octal prefixes.
/// `Some(None)` is an integer only an unsigned 64-bit type holds, which sops rejects.
fn go_parse_int(text: &str) -> Option<Option<i64>> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = digits.to_ascii_lowercase();
    let (radix, body) = if let Some(body) = lower.strip_prefix("0x") {
        (16, body)
    } else if let Some(body) = lower.strip_prefix("0o") {
        (8, body)
    } else if let Some(body) = lower.strip_prefix("0b") {
        (2, body)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u128::from_str_radix(body, radix).ok()?;
    let signed = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    match i64::try_from(signed) {
        Ok(value) => Some(Some(value)),
        // Go reads it as uint64, which sops cannot hold; anything larger becomes a float.
        Err(_) if !negative && u64::try_from(magnitude).is_ok() => Some(None),
        Err(_) => None,
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`, go-yaml's float pattern.
fn is_yaml_float(text: &str) -> bool {
    let text = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", fraction)) => all_digits(fraction),
        Some((whole, fraction)) => {
            all_digits(whole) && (fraction.is_empty() || all_digits(fraction))
        }
        None => all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| all_digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// Whether go-yaml reads the text, written plain, back as this same string; otherwise it
/// must be quoted. YAML 1.1 booleans and base-60 numbers count as non-strings here, as
/// go-yaml quotes them for older readers.
pub(crate) fn resolves_to_string(text: &str) -> bool {
    let old_bool = matches!(
        text,
        "y" | "Y"
            | "yes"
            | "Yes"
            | "YES"
            | "n"
            | "N"
            | "no"
            | "No"
            | "NO"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    );
    matches!(resolve_plain(text), Some(Value::Str(_)))
        && !old_bool
        && !is_base60_float(text)
        && text != "<<"
}

/// `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`
fn is_base60_float(text: &str) -> bool {
    let text = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let mut parts = whole.split(':');
    let head = parts.next().unwrap_or_default();
    let sexagesimal: Vec<&str> = parts.collect();
    head.starts_with(|c: char| c.is_ascii_digit())
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_')
        && !sexagesimal.is_empty()
        && sexagesimal.iter().all(|part| {
            matches!(part.as_bytes(), [d] if d.is_ascii_digit())
                || matches!(part.as_bytes(), [a @ b'0'..=b'5', b] if b.is_ascii_digit() && a.is_ascii_digit())
        })
        && fraction.bytes().all(|b| b.is_ascii_digit() || b == b'_')
}
