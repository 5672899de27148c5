//! `.templateignore`: gitignore-syntax files that turn templating off for the files they
//! match, in their folder and every folder below it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::{Location, Problem, ProblemKind};

const FILE_NAME: &str = ".templateignore";

/// The `.templateignore` files between a kluctl project's root and its files, read once each.
pub(crate) struct TemplateIgnore {
    root: PathBuf,
    files: HashMap<PathBuf, Option<Gitignore>>,
}

impl TemplateIgnore {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            files: HashMap::new(),
        }
    }

    /// Whether `file` is left untemplated: the nearest `.templateignore` (from its folder up to
    /// the project root) with a rule for it decides, and a `!` rule templates it again.
    ///
    /// # Errors
    ///
    /// A `.templateignore` that cannot be read or holds an invalid pattern.
    pub(crate) fn ignores(&mut self, file: &Path) -> Result<bool, Problem> {
        let mut dir = file.parent();
        while let Some(current) = dir {
            if let Some(matcher) = self.matcher(current)? {
                match matcher.matched_path_or_any_parents(file, false) {
                    Match::Ignore(_) => return Ok(true),
                    Match::Whitelist(_) => return Ok(false),
                    Match::None => {}
                }
            }
            if current == self.root || !current.starts_with(&self.root) {
                break;
            }
            dir = current.parent();
        }
        Ok(false)
    }

    fn matcher(&mut self, dir: &Path) -> Result<Option<&Gitignore>, Problem> {
        if !self.files.contains_key(dir) {
            let path = dir.join(FILE_NAME);
            let matcher = if path.is_file() {
                let mut builder = GitignoreBuilder::new(dir);
                if let Some(error) = builder.add(&path) {
                    return Err(invalid(&path, &error));
                }
                Some(builder.build().map_err(|error| invalid(&path, &error))?)
            } else {
                None
            };
            self.files.insert(dir.to_owned(), matcher);
        }
        Ok(self.files.get(dir).and_then(Option::as_ref))
    }
}

fn invalid(path: &Path, error: &ignore::Error) -> Problem {
    Problem::new(
        Location::file(path.display().to_string().into()),
        ProblemKind::Configuration,
        format!("invalid .templateignore: {error}"),
    )
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::TemplateIgnore;

    #[test]
    fn rules_apply_to_their_folder_and_below_and_the_nearest_decides() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("default/sub")).unwrap();
        fs::create_dir_all(root.join("prio-10")).unwrap();
        fs::write(root.join("default/.templateignore"), "*\n").unwrap();
        fs::write(root.join("default/sub/.templateignore"), "!keep.yaml\n").unwrap();
        fs::write(root.join(".templateignore"), "/raw.yaml\n").unwrap();
        let mut ignore = TemplateIgnore::new(root);
        let mut ignores = |path: &str| ignore.ignores(&root.join(path)).unwrap();
        assert!(ignores("default/a.yaml"));
        assert!(ignores("default/sub/other.yaml"));
        assert!(!ignores("default/sub/keep.yaml"));
        assert!(ignores("raw.yaml"));
        assert!(!ignores("prio-10/raw.yaml"));
        assert!(!ignores("prio-10/Namespace.yaml"));
    }
}
