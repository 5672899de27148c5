//! [`Tree`] to YAML text in the layout go-yaml v3 gives sops: indentation 4 (sequences
//! indented under their key), the libyaml rules for when a string needs quotes, literal
//! blocks for multi-line strings, no line folding.

use super::parse::resolves_to_string;
use crate::tree::{Entry, Item, Map, Tree, Value};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use std::fmt::Write as _;

/// Writes the documents, separated by `---`.
pub(crate) fn emit(tree: &Tree, indent: usize) -> String {
    let mut emitter = Emitter {
        out: String::new(),
        indent,
    };
    for (index, document) in tree.documents.iter().enumerate() {
        if index > 0 {
            emitter.out.push_str("---\n");
        }
        if document.entries.is_empty() {
            emitter.out.push_str("{}\n");
        } else {
            emitter.map(document, 0, false);
        }
    }
    emitter.out
}

/// A YAML rendering of one value outside any document, as `sops decrypt --extract` prints
/// a non-string scalar or a sequence.
pub(crate) fn emit_value(value: &Value, indent: usize) -> String {
    let mut emitter = Emitter {
        out: String::new(),
        indent,
    };
    match value {
        Value::Map(map) if !map.entries.is_empty() => emitter.map(map, 0, false),
        Value::Seq(items) if !items.is_empty() => emitter.seq(items, 0, false),
        _ => {
            emitter.scalar(value, 0, 0);
        }
    }
    emitter.out
}

struct Emitter {
    out: String,
    indent: usize,
}

impl Emitter {
    /// go-yaml's rule: the next multiple of the indentation above `column`.
    fn child(&self, column: usize) -> usize {
        (column / self.indent + 1) * self.indent
    }

    fn pad(&mut self, column: usize) {
        self.out.extend(std::iter::repeat_n(' ', column));
    }

    fn map(&mut self, map: &Map, column: usize, mut inline: bool) {
        for entry in &map.entries {
            if !inline {
                self.pad(column);
            }
            inline = false;
            match entry {
                Entry::Comment(text) => {
                    let _ = writeln!(self.out, "#{text}");
                }
                Entry::Pair(key, value) => {
                    self.out.push_str(&quote(key));
                    self.out.push(':');
                    match value {
                        Value::Map(child) if !child.entries.is_empty() => {
                            self.out.push('\n');
                            self.map(child, self.child(column), false);
                        }
                        Value::Seq(items) if !items.is_empty() => {
                            self.out.push('\n');
                            self.seq(items, self.child(column), false);
                        }
                        scalar => {
                            self.out.push(' ');
                            self.scalar(scalar, column, self.child(column));
                        }
                    }
                }
            }
        }
    }

    fn seq(&mut self, items: &[Item], column: usize, mut inline: bool) {
        for item in items {
            if !inline {
                self.pad(column);
            }
            inline = false;
            match item {
                Item::Comment(text) => {
                    let _ = writeln!(self.out, "#{text}");
                }
                Item::Value(value) => {
                    self.out.push_str("- ");
                    match value {
                        Value::Map(map) if !map.entries.is_empty() => {
                            // A comment cannot follow `- ` on the same line.
                            let leading = map
                                .entries
                                .iter()
                                .take_while(|e| matches!(e, Entry::Comment(_)));
                            if leading.count() > 0 {
                                self.out.push('\n');
                                self.map(map, column + 2, false);
                            } else {
                                self.map(map, column + 2, true);
                            }
                        }
                        Value::Seq(inner) if !inner.is_empty() => {
                            if matches!(inner.first(), Some(Item::Comment(_))) {
                                self.out.push('\n');
                                self.seq(inner, column + 2, false);
                            } else {
                                self.seq(inner, column + 2, true);
                            }
                        }
                        scalar => self.scalar(scalar, column, column + 2),
                    }
                }
            }
        }
    }

    /// Writes a scalar (or an empty collection) and its line break; `block` is where the
    /// lines of a literal block go, `parent` the column of the node that holds it.
    fn scalar(&mut self, value: &Value, parent: usize, block: usize) {
        match value {
            Value::Null => self.out.push_str("null"),
            Value::Bool(flag) => self.out.push_str(if *flag { "true" } else { "false" }),
            Value::Int(number) => {
                let _ = write!(self.out, "{number}");
            }
            Value::Float(number) => self.out.push_str(&go_yaml_float(*number)),
            Value::Time(text) => self.out.push_str(text),
            Value::Bytes(bytes) => {
                self.out.push_str("!!binary ");
                self.out.push_str(&STANDARD.encode(bytes));
            }
            Value::Map(_) => self.out.push_str("{}"),
            Value::Seq(_) => self.out.push_str("[]"),
            Value::Str(text) => {
                if text.contains('\n') && block_allowed(text) {
                    self.literal(text, block, block - parent);
                    return;
                }
                self.out.push_str(&quote(text));
            }
        }
        self.out.push('\n');
    }

    /// `indicator` is how far the lines sit right of the parent node, which a reader needs
    /// when the first line starts with a space or is empty. (go-yaml always writes its
    /// indentation there, which only reads back at the top level.)
    fn literal(&mut self, text: &str, column: usize, indicator: usize) {
        self.out.push('|');
        if text.starts_with([' ', '\n']) {
            let _ = write!(self.out, "{indicator}");
        }
        let trailing = text.len() - text.trim_end_matches('\n').len();
        // libyaml keeps ("+") every break when there are several, or nothing but one.
        match trailing {
            0 => self.out.push('-'),
            1 if text.len() > 1 => {}
            _ => self.out.push('+'),
        }
        self.out.push('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        for line in body.split('\n') {
            if !line.is_empty() {
                self.pad(column);
                self.out.push_str(line);
            }
            self.out.push('\n');
        }
    }
}

/// go-yaml's `strconv.FormatFloat(f, 'g', -1, 64)`, with YAML's names for the specials.
fn go_yaml_float(number: f64) -> String {
    if number.is_nan() {
        return ".nan".to_owned();
    }
    if number.is_infinite() {
        return if number > 0.0 { ".inf" } else { "-.inf" }.to_owned();
    }
    let scientific = format!("{number:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    // With the shortest precision Go switches to an exponent below 1e-4 and from 1e6 on.
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    } else {
        format!("{number}")
    }
}

/// Whether libyaml may write the string as a literal block.
fn block_allowed(text: &str) -> bool {
    let analysis = analyze(text);
    !analysis.special && !analysis.space_break && !text.ends_with(' ')
}

struct Analysis {
    special: bool,
    space_break: bool,
    plain_allowed: bool,
    single_allowed: bool,
}

fn is_printable(ch: char) -> bool {
    matches!(ch, '\n' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}' | '\u{10000}'..='\u{10FFFF}')
        || (('\u{E000}'..='\u{FFFD}').contains(&ch) && ch != '\u{FEFF}')
}

fn is_break(ch: char) -> bool {
    matches!(ch, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `yaml_emitter_analyze_scalar`, for block context.
fn analyze(text: &str) -> Analysis {
    let chars: Vec<char> = text.chars().collect();
    let mut indicators = text.starts_with("---") || text.starts_with("...");
    let (mut special, mut line_breaks) = (false, false);
    let (mut leading, mut trailing) = (false, false);
    let (mut space_break, mut break_space) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let blank_or_end = |index: usize| {
        chars
            .get(index)
            .is_none_or(|c| matches!(c, ' ' | '\t') || is_break(*c))
    };
    for (index, &ch) in chars.iter().enumerate() {
        let first = index == 0;
        let last = index + 1 == chars.len();
        let followed_by_blank = blank_or_end(index + 1);
        let preceded_by_blank = first || blank_or_end(index - 1);
        if first {
            indicators |= "#,[]{}&*!|>'\"%@`".contains(ch)
                || (matches!(ch, '?' | ':' | '-') && followed_by_blank);
        } else {
            indicators |= (ch == ':' && followed_by_blank) || (ch == '#' && preceded_by_blank);
        }
        special |= !is_printable(ch) || ch == '\u{FEFF}';
        if ch == ' ' {
            leading |= first;
            trailing |= last;
            break_space |= previous_break;
            (previous_space, previous_break) = (true, false);
        } else if is_break(ch) {
            line_breaks = true;
            leading |= first;
            trailing |= last;
            space_break |= previous_space;
            (previous_space, previous_break) = (false, true);
        } else {
            (previous_space, previous_break) = (false, false);
        }
    }
    let plain_allowed = !(leading
        || trailing
        || break_space
        || space_break
        || special
        || line_breaks
        || indicators);
    Analysis {
        special,
        space_break,
        plain_allowed,
        single_allowed: !(break_space || space_break || special),
    }
}

/// A string as go-yaml writes it on one line: plain when it reads back as the same string,
/// else single-quoted, else double-quoted with escapes.
fn quote(text: &str) -> String {
    let analysis = analyze(text);
    let plain_is_string = !text.is_empty() && resolves_to_string(text);
    if plain_is_string && analysis.plain_allowed {
        return text.to_owned();
    }
    if plain_is_string && analysis.single_allowed && !text.contains('\n') {
        return format!("'{}'", text.replace('\'', "''"));
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{B}' => out.push_str("\\v"),
            '\u{C}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1B}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{A0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            ch if !is_printable(ch) || ch == '\u{FEFF}' => {
                let code = u32::from(ch);
                let _ = match code {
                    0..=0xFF => write!(out, "\\x{code:02X}"),
                    0x100..=0xFFFF => write!(out, "\\u{code:04X}"),
                    _ => write!(out, "\\U{code:08X}"),
                };
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
    out
}
