//! The file formats (sops "stores"): telling them apart, reading, and writing them with or
//! without the metadata block.

use crate::{
    dotenv, ini, json,
    tree::{Entry, Map, Tree, Value},
    yaml,
};
use std::path::Path;

/// The indentation sops uses for YAML unless `.sops.yaml` says otherwise.
pub(crate) const YAML_INDENT: usize = 4;

/// A file format sops can encrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// YAML, possibly with several documents; comments are kept.
    Yaml,
    /// A JSON object.
    Json,
    /// `KEY=VALUE` lines.
    Dotenv,
    /// INI sections of `key = value` lines.
    Ini,
    /// Any other file: its whole content is one value, and the encrypted file is JSON.
    Binary,
}

impl Format {
    /// The format sops picks from a file name: `.yaml`/`.yml`, `.json`, a name ending in
    /// `.env`, `.ini`, and binary for everything else.
    pub fn from_path(path: &Path) -> Self {
        let name = path
            .file_name()
            .map(|name| name.to_string_lossy())
            .unwrap_or_default();
        match path.extension().and_then(|extension| extension.to_str()) {
            Some("yaml" | "yml") => Self::Yaml,
            Some("json") => Self::Json,
            Some("ini") => Self::Ini,
            _ if name.ends_with(".env") => Self::Dotenv,
            _ => Self::Binary,
        }
    }

    /// The format named as sops's `--input-type`/`--output-type` name it: `yaml`, `json`,
    /// `dotenv`, `ini`, `binary`; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "yaml" => Self::Yaml,
            "json" => Self::Json,
            "dotenv" => Self::Dotenv,
            "ini" => Self::Ini,
            "binary" => Self::Binary,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Yaml => "YAML",
            Self::Json | Self::Binary => "JSON",
            Self::Dotenv => "dotenv",
            Self::Ini => "INI",
        }
    }
}

fn text(bytes: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(bytes)
        .map_err(|error| format!("not UTF-8 after byte {}", error.valid_up_to()))
}

/// Reads plaintext content.
pub(crate) fn parse_plain(format: Format, bytes: &[u8]) -> Result<Tree, String> {
    let documents = match format {
        Format::Yaml => return yaml::parse(text(bytes)?),
        Format::Json => vec![json::parse(text(bytes)?)?],
        Format::Dotenv => vec![dotenv::parse(text(bytes)?)?],
        Format::Ini => vec![ini::parse(text(bytes)?)?],
        Format::Binary => {
            let data = match std::str::from_utf8(bytes) {
                Ok(text) => Value::Str(text.to_owned()),
                Err(_) => Value::Bytes(bytes.to_vec()),
            };
            vec![[("data".to_owned(), data)].into_iter().collect()]
        }
    };
    Ok(Tree { documents })
}

/// Reads an encrypted file and takes its metadata block out of the tree; `None` when there
/// is none.
pub(crate) fn parse_encrypted(format: Format, bytes: &[u8]) -> Result<(Tree, Option<Map>), String> {
    let read_as = if format == Format::Binary {
        Format::Json
    } else {
        format
    };
    let mut tree = parse_plain(read_as, bytes)?;
    let metadata = match format {
        Format::Dotenv => tree.documents.first_mut().and_then(dotenv::take_metadata),
        Format::Ini => tree.documents.first_mut().and_then(ini::take_metadata),
        _ => {
            let mut found = None;
            for (index, document) in tree.documents.iter_mut().enumerate() {
                // sops reads the first document's block and drops the copies in the others.
                match document.remove("sops") {
                    Some(Value::Map(map)) if index == 0 => found = Some(map),
                    Some(_) if index == 0 => return Err("`sops` is not a mapping".to_owned()),
                    _ => {}
                }
                if index == 0 && document.get("sops").is_some() {
                    return Err("duplicate `sops` key".to_owned());
                }
            }
            found
        }
    };
    Ok((tree, metadata))
}

/// Whether plaintext about to be encrypted already carries sops metadata.
pub(crate) fn has_metadata_key(format: Format, tree: &Tree) -> bool {
    tree.documents.first().is_some_and(|document| match format {
        Format::Dotenv => document.pairs().any(|(key, _)| key.starts_with("sops_")),
        _ => document.get("sops").is_some(),
    })
}

/// Writes plaintext content in the format.
pub(crate) fn emit_plain(format: Format, tree: &Tree, indent: usize) -> Vec<u8> {
    let first = || tree.documents.first().cloned().unwrap_or_default();
    match format {
        Format::Yaml => yaml::emit(tree, indent).into_bytes(),
        Format::Json => json::emit(&first()).into_bytes(),
        Format::Dotenv => dotenv::emit(&first(), None).into_bytes(),
        Format::Ini => ini::emit(&first(), None).into_bytes(),
        Format::Binary => match first().get("data") {
            Some(Value::Str(text)) => text.as_bytes().to_vec(),
            Some(Value::Bytes(bytes)) => bytes.clone(),
            _ => Vec::new(),
        },
    }
}

/// Writes an encrypted tree with its metadata block (appended to every YAML document).
pub(crate) fn emit_encrypted(
    format: Format,
    tree: &Tree,
    metadata: &Map,
    indent: usize,
) -> Vec<u8> {
    let mut with_block = tree.clone();
    if !matches!(format, Format::Dotenv | Format::Ini) {
        for document in &mut with_block.documents {
            document
                .entries
                .push(Entry::Pair("sops".to_owned(), Value::Map(metadata.clone())));
        }
    }
    let first = || with_block.documents.first().cloned().unwrap_or_default();
    match format {
        Format::Yaml => yaml::emit(&with_block, indent).into_bytes(),
        Format::Json | Format::Binary => json::emit(&first()).into_bytes(),
        Format::Dotenv => dotenv::emit(&first(), Some(metadata)).into_bytes(),
        Format::Ini => ini::emit(&first(), Some(metadata)).into_bytes(),
    }
}

/// A value on its own, for `--extract`: strings raw, everything else in the format. As in
/// sops, a JSON mapping is a whole document and ends with a line break, while other JSON
/// values do not; YAML values always do.
pub(crate) fn emit_value(format: Format, value: &Value, indent: usize) -> Vec<u8> {
    match (format, value) {
        (_, Value::Str(text)) => text.as_bytes().to_vec(),
        (_, Value::Bytes(bytes)) => bytes.clone(),
        (Format::Json, Value::Map(map)) => json::emit(map).into_bytes(),
        (Format::Json, value) => json::emit_value(value).into_bytes(),
        (_, value) => yaml::emit_value(value, indent).into_bytes(),
    }
}

impl Tree {
    /// Parses plaintext content in a format, typing values as sops does; `path` only names
    /// the content in errors.
    ///
    /// # Errors
    ///
    /// [`Error::Syntax`](crate::Error::Syntax) for content that is not valid in the format.
    pub fn parse(path: &Path, format: Format, content: &[u8]) -> crate::Result<Self> {
        parse_plain(format, content).map_err(|reason| crate::Error::Syntax {
            path: path.to_owned(),
            format: format.name(),
            reason,
        })
    }
}
