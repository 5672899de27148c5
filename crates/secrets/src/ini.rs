//! The INI store, as sops reads and writes INI through go-ini: sections are top-level
//! mappings of strings, comments are kept, and the metadata is a `[sops]` section of
//! flattened keys (`age__list_0__map_enc = …`).
//!
//! The rules below were taken from what sops 3.11 does with real files (the interop tests
//! hold them): keys before the first header form an implicit `DEFAULT` section, which is
//! always the first (and empty when nothing precedes a header); a header always starts a new
//! section; `=` or `:` separates a key from its value; both are trimmed; a value loses
//! everything from its first `;` or `#` (an inline comment, kept as the key's comment), then
//! one pair of surrounding double quotes; backquoted and `"""` values are taken whole.
//! Comment lines before a header are the section's comment, those before a key the key's;
//! trailing ones are dropped. In the tree, a section's comment comes first in its mapping and
//! a key's comment right after the key, where sops puts them.

use crate::{
    dotenv,
    tree::{Entry, Map, Value},
};

/// The name go-ini gives the section of keys that precede every header.
const DEFAULT_SECTION: &str = "DEFAULT";

/// Comment lines as one comment: the first marker and surrounding space removed, later lines
/// kept with theirs (as sops stores them).
fn comment_text(lines: &[String]) -> String {
    let joined = lines.join("\n");
    joined[1..].trim().to_owned()
}

fn strip_value(raw: &str) -> (String, Option<String>) {
    let value = raw.trim();
    if let Some(rest) = value.strip_prefix('`')
        && let Some(end) = rest.find('`')
    {
        return (rest[..end].to_owned(), None);
    }
    let (value, comment) = match value.find([';', '#']) {
        Some(at) => (value[..at].trim_end(), Some(value[at..].to_owned())),
        None => (value, None),
    };
    let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) if value.len() >= 2 => inner,
        _ => value,
    };
    (value.to_owned(), comment)
}

/// Parses INI text into one document: a mapping of sections.
pub(crate) fn parse(text: &str) -> Result<Map, String> {
    let mut document = Map::default();
    let mut section = (DEFAULT_SECTION.to_owned(), Map::default());
    let mut pending: Vec<String> = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((number, line)) = lines.next() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with(';') || line.starts_with('#') {
            pending.push(line.to_owned());
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: a section header without `]`", number + 1))?;
            let (done, map) =
                std::mem::replace(&mut section, (name.trim().to_owned(), Map::default()));
            document.entries.push(Entry::Pair(done, Value::Map(map)));
            if !pending.is_empty() {
                section
                    .1
                    .entries
                    .push(Entry::Comment(comment_text(&pending)));
                pending.clear();
            }
            continue;
        }
        let at = line
            .find(['=', ':'])
            .ok_or_else(|| format!("line {} has no `=`", number + 1))?;
        let key = line[..at].trim().to_owned();
        let raw = line[at + 1..].trim();
        let (value, inline) = if let Some(rest) = raw.strip_prefix("\"\"\"") {
            // A value over several lines, up to the closing `"""`.
            let mut value = rest.to_owned();
            loop {
                if let Some(inner) = value.strip_suffix("\"\"\"") {
                    break (inner.to_owned(), None);
                }
                let (_, next) = lines
                    .next()
                    .ok_or_else(|| format!("line {}: `\"\"\"` is never closed", number + 1))?;
                value.push('\n');
                value.push_str(next);
            }
        } else {
            strip_value(raw)
        };
        section.1.insert(key, Value::Str(value));
        if let Some(inline) = inline {
            pending.push(inline);
        }
        if !pending.is_empty() {
            section
                .1
                .entries
                .push(Entry::Comment(comment_text(&pending)));
            pending.clear();
        }
    }
    document
        .entries
        .push(Entry::Pair(section.0, Value::Map(section.1)));
    Ok(document)
}

fn comment_lines(out: &mut String, text: &str) {
    for line in text.split('\n') {
        match line.chars().next() {
            Some(marker @ (';' | '#')) => {
                out.push(marker);
                out.push(' ');
                out.push_str(line[1..].trim());
            }
            _ => {
                out.push_str("; ");
                out.push_str(line);
            }
        }
        out.push('\n');
    }
}

/// go-ini's quoting of a value.
fn quoted(value: &str) -> String {
    if value.contains(['\n', '`']) {
        format!("\"\"\"{value}\"\"\"")
    } else if value.contains(['#', ';']) {
        format!("`{value}`")
    } else if value.trim() != value {
        format!("\"{value}\"")
    } else {
        value.to_owned()
    }
}

struct Section<'a> {
    name: &'a str,
    comment: Vec<&'a str>,
    /// Key, value, and the comments written above it.
    keys: Vec<(String, String, Vec<&'a str>)>,
}

fn sections(document: &Map) -> Vec<Section<'_>> {
    let mut sections = Vec::new();
    for (name, value) in document.pairs() {
        let mut section = Section {
            name,
            comment: Vec::new(),
            keys: Vec::new(),
        };
        if let Value::Map(map) = value {
            for entry in &map.entries {
                match (entry, section.keys.last_mut()) {
                    (Entry::Comment(text), None) => section.comment.push(text),
                    (Entry::Comment(text), Some(last)) => last.2.push(text),
                    (Entry::Pair(key, value), _) => {
                        section
                            .keys
                            .push((key.clone(), dotenv::scalar_text(value), Vec::new()));
                    }
                }
            }
        }
        sections.push(section);
    }
    sections
}

/// Writes the document (and, flattened into a last `[sops]` section, the metadata) as go-ini
/// does: `=` aligned within a section, a blank line between sections.
pub(crate) fn emit(document: &Map, metadata: Option<&Map>) -> String {
    let mut all = sections(document);
    let mut flat = Vec::new();
    for (key, value) in metadata.iter().flat_map(|metadata| metadata.pairs()) {
        dotenv::flatten(key, value, &mut flat);
    }
    if metadata.is_some() {
        all.push(Section {
            name: "sops",
            comment: Vec::new(),
            keys: flat
                .into_iter()
                .map(|(key, value)| (key, value.replace('\n', "\\n"), Vec::new()))
                .collect(),
        });
    }
    let mut out = String::new();
    let mut first = true;
    for (index, section) in all.iter().enumerate() {
        let implicit = index == 0 && section.name == DEFAULT_SECTION;
        if implicit && section.keys.is_empty() {
            continue;
        }
        if !first {
            out.push('\n');
        }
        first = false;
        // Comments are stored before the key they precede; the first key's come last.
        for comment in &section.comment {
            comment_lines(&mut out, comment);
        }
        if !implicit {
            out.push('[');
            out.push_str(section.name);
            out.push_str("]\n");
        }
        let width = section
            .keys
            .iter()
            .map(|(key, ..)| key.chars().count())
            .max();
        for (key, value, comments) in &section.keys {
            for comment in comments {
                comment_lines(&mut out, comment);
            }
            let pad = width.unwrap_or(0) - key.chars().count();
            out.push_str(key);
            out.extend(std::iter::repeat_n(' ', pad));
            out.push_str(" = ");
            out.push_str(&quoted(value));
            out.push('\n');
        }
    }
    out
}

/// Removes the `[sops]` section and rebuilds the metadata mapping from its flattened keys.
pub(crate) fn take_metadata(document: &mut Map) -> Option<Map> {
    let Some(Value::Map(section)) = document.remove("sops") else {
        return None;
    };
    let mut metadata = Map::default();
    for (key, value) in section.pairs() {
        let value = match value {
            Value::Str(text) => Value::Str(text.replace("\\n", "\n")),
            other => other.clone(),
        };
        dotenv::insert(&mut metadata, key, value);
    }
    Some(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_comments_and_quotes_read_as_sops_reads_them() {
        let text = "top = 1\n; about s\n[s]\n# above k\nk : v ; inline\nq = \"a;b\"\nsp = \" x\"\n";
        let document = parse(text).unwrap();
        let expected = "top = 1\n\n; about s\n[s]\n; above k\n; inline\nk  = v\n; b\"\nq  = \"a\nsp = \" x\"\n";
        assert_eq!(emit(&document, None), expected);
        let Some(Value::Map(s)) = document.get("s") else {
            panic!("no section s");
        };
        assert_eq!(s.get("sp"), Some(&Value::Str(" x".to_owned())));
        assert_eq!(s.entries[0], Entry::Comment("about s".to_owned()));
        assert_eq!(s.entries[2], Entry::Comment("above k\n; inline".to_owned()));
    }

    #[test]
    fn an_empty_default_section_is_kept_but_not_written() {
        let document = parse("; c\n[DEFAULT]\nd = 1\n").unwrap();
        assert_eq!(document.pairs().count(), 2);
        assert_eq!(emit(&document, None), "; c\n[DEFAULT]\nd = 1\n");
    }
}
