//! Changing one scalar of a YAML source file in place, keeping everything else byte for byte:
//! comments, order, quoting and indentation, so that the change reads in a diff as the one line
//! it is.

/// `text` with the scalar at `path` (`["spec", "replicas"]`) of the block-style YAML document
/// that starts on line `first_line` (1-based, as [`Location::line`](crate::Location::line)
/// says) set to `value`, or `None` when that document does not hold the path as block mappings
/// ending in a plain scalar on the key's line (a flow mapping, a list item, a multi-line value):
/// then a person edits it.
pub fn set_scalar(text: &str, first_line: usize, path: &[&str], value: &str) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let start = first_line
        .checked_sub(1)
        .filter(|&start| start < lines.len())?;
    let end = (start + 1..lines.len())
        .find(|&index| is_document_marker(lines[index]))
        .unwrap_or(lines.len());
    let (mut from, mut to, mut indent) = (start, end, None);
    let mut found = None;
    for (depth, key) in path.iter().enumerate() {
        let (index, key_indent) = find_key(&lines[from..to], key, indent)?;
        let index = from + index;
        if depth + 1 == path.len() {
            found = Some(index);
            break;
        }
        // The child block: every following line indented deeper (blank and comment lines too).
        from = index + 1;
        to = (from..to)
            .find(|&line| !is_blank(lines[line]) && indentation(lines[line]) <= key_indent)
            .unwrap_or(to);
        indent = Some(key_indent + 1);
    }
    let index = found?;
    let replaced = replace_value(lines[index], value)?;
    let mut out = String::with_capacity(text.len() + value.len());
    for (line, original) in lines.iter().enumerate() {
        out.push_str(if line == index { &replaced } else { original });
    }
    Some(out)
}

fn is_document_marker(line: &str) -> bool {
    line.starts_with("---") || line.starts_with("...")
}

fn is_blank(line: &str) -> bool {
    let trimmed = line.trim_start();
    trimmed.is_empty() || trimmed.starts_with('#')
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The line (within `lines`) holding `key:` at the block's indentation: the first key's
/// indentation when `at_least` is `None` (a document's top level), else the first line's at or
/// beyond `at_least`.
fn find_key(lines: &[&str], key: &str, at_least: Option<usize>) -> Option<(usize, usize)> {
    let mut block_indent = None;
    for (index, line) in lines.iter().enumerate() {
        if is_blank(line) || is_document_marker(line) {
            continue;
        }
        let indent = indentation(line);
        let wanted = *block_indent.get_or_insert(indent);
        if at_least.is_some_and(|minimum| indent < minimum) || indent < wanted {
            return None;
        }
        if indent == wanted {
            let rest = &line[indent..];
            if rest
                .strip_prefix(key)
                .is_some_and(|after| after.starts_with(':'))
            {
                return Some((index, indent));
            }
        }
    }
    None
}

/// `key: old  # comment` with `old` replaced; `None` unless `old` is a plain scalar.
fn replace_value(line: &str, value: &str) -> Option<String> {
    let colon = line.find(':')?;
    let rest = &line[colon + 1..];
    let body = rest.trim_end_matches(['\n', '\r']);
    let ending = &rest[body.len()..];
    let (scalar, comment) = match body.find(" #") {
        Some(at) => body.split_at(at),
        None => (body, ""),
    };
    let old = scalar.trim();
    let plain = !old.is_empty() && !old.starts_with(['{', '[', '|', '>', '&', '*', '!', '"', '\'']);
    if !plain {
        return None;
    }
    let leading = &scalar[..scalar.len() - scalar.trim_start().len()];
    let trailing = &scalar[scalar.trim_end().len()..];
    Some(format!(
        "{}:{leading}{value}{trailing}{comment}{ending}",
        &line[..colon]
    ))
}

#[cfg(test)]
mod tests {
    use super::set_scalar;

    const STREAM: &str = "\
# workers
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata:
  name: md-0
spec:
  clusterName: shop
  # scaled by hand in March
  replicas: 2   # keep odd
  template:
    spec:
      replicas: 9
---
apiVersion: cluster.x-k8s.io/v1beta1
kind: MachineDeployment
metadata: {name: md-1}
spec:
  replicas: 4
";

    #[test]
    fn only_the_value_changes_comments_and_layout_stay() {
        let edited = set_scalar(STREAM, 1, &["spec", "replicas"], "3").unwrap();
        assert_eq!(
            edited,
            STREAM.replacen("replicas: 2   # keep odd", "replicas: 3   # keep odd", 1)
        );
    }

    #[test]
    fn the_document_at_the_line_is_the_one_edited() {
        let edited = set_scalar(STREAM, 14, &["spec", "replicas"], "5").unwrap();
        assert_eq!(edited, STREAM.replacen("replicas: 4", "replicas: 5", 1));
    }

    #[test]
    fn a_nested_key_of_the_same_name_is_not_taken_for_the_path() {
        let text = "spec:\n  template:\n    replicas: 9\n";
        assert_eq!(set_scalar(text, 1, &["spec", "replicas"], "3"), None);
    }

    #[test]
    fn flow_mappings_and_missing_paths_are_left_to_a_person() {
        assert_eq!(
            set_scalar("spec: {replicas: 2}\n", 1, &["spec", "replicas"], "3"),
            None
        );
        assert_eq!(
            set_scalar("spec:\n  replicas: [2]\n", 1, &["spec", "replicas"], "3"),
            None
        );
        assert_eq!(
            set_scalar("spec:\n  paused: true\n", 1, &["spec", "replicas"], "3"),
            None
        );
        assert_eq!(
            set_scalar("spec:\n  replicas: 2", 9, &["spec", "replicas"], "3"),
            None
        );
    }

    #[test]
    fn a_file_without_a_final_newline_keeps_none() {
        assert_eq!(
            set_scalar("spec:\n  replicas: 2", 1, &["spec", "replicas"], "3").as_deref(),
            Some("spec:\n  replicas: 3")
        );
    }
}
