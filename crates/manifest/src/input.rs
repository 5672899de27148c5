//! Finds the files an input names: single files, folders, kluctl projects, GitOps trees.

mod kustomize;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::kluctl::{Renderer, Scope};
use crate::{Location, Problem, ProblemKind, kluctl};

/// Something to load manifests from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Input {
    /// A file; a folder, loaded recursively in byte order of the paths; or a kluctl project
    /// folder (with `.kluctl.yaml` or a `deployment.yaml` listing `deployments`), loaded item
    /// by item with its barriers.
    ///
    /// In folders, hidden files, `kustomization.yaml` and `*.ksops-generator.yaml` are
    /// configuration, not resources, and are skipped, as are files other than `.yaml`, `.yml`
    /// and `.json`.
    ///
    /// A folder with a `kustomization.yaml` (or `.yml`, or `Kustomization`; a path to that file
    /// means its folder) is loaded as `kustomize build` would load it: exactly the files its
    /// `resources` list, folders listed there loaded the same way (each needs a kustomization
    /// of its own), then the SOPS-encrypted files its ksops `generators` list. A listed path
    /// that is missing, remote, or a file outside the folder is a problem, and so is any field
    /// but `apiVersion`, `kind`, `resources` and ksops `generators`: capstan does not apply
    /// transformers such as `namespace` or `patches` (render such folders with a stage
    /// `command: [kustomize, build, DIR]`).
    ///
    /// Symbolic links are followed, except a link to a folder that holds it (the walk would
    /// never end) and a second way to a folder loaded already (its objects would be defined
    /// twice): each is one problem naming the path that leads there.
    Path(PathBuf),
    /// Text read elsewhere (standard input, a command's output), and the name problems show
    /// for it, such as `<stdin>`.
    Text {
        /// The name problems show.
        name: String,
        /// The manifests.
        text: String,
    },
}

/// One file to parse, or text already read.
pub(crate) struct Pending {
    pub(crate) name: Arc<str>,
    pub(crate) content: Content,
    pub(crate) barrier_group: u32,
}

pub(crate) enum Content {
    File(PathBuf),
    Text(String),
    /// A file of a kluctl deployment item, rendered when it is read.
    Template(PathBuf, Arc<Renderer>),
}

impl Pending {
    /// The text, or the problem that keeps it from being read.
    pub(crate) fn read(self) -> Result<(Arc<str>, String, u32), Problem> {
        let read = |path: &Path| {
            fs::read(path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned()))
                .map_err(|message| {
                    Problem::new(
                        Location::file(self.name.clone()),
                        ProblemKind::Unreadable,
                        message,
                    )
                })
        };
        let text = match self.content {
            Content::Text(text) => text,
            Content::File(path) => read(&path)?,
            Content::Template(path, renderer) => renderer.render(&self.name, &read(&path)?)?,
        };
        Ok((self.name, text, self.barrier_group))
    }
}

/// Turns inputs into the list of files to parse, in load order.
#[derive(Default)]
pub(crate) struct Walker {
    pub(crate) pending: Vec<Pending>,
    pub(crate) problems: Vec<Problem>,
    pub(crate) barrier_group: u32,
    /// Set when kluctl projects are templated.
    pub(crate) scope: Option<Scope>,
    /// The folders on the way to the one being walked: a link back to one of them is a cycle.
    ancestors: Vec<(FolderId, PathBuf)>,
    /// Every folder walked, and the path it was first reached by.
    walked: HashMap<FolderId, PathBuf>,
}

/// What every path to one folder shares, however many links lead there: its device and inode.
#[cfg(unix)]
#[derive(Clone, PartialEq, Eq, Hash)]
struct FolderId(u64, u64);

/// Without inodes, the canonical path.
#[cfg(not(unix))]
#[derive(Clone, PartialEq, Eq, Hash)]
struct FolderId(PathBuf);

impl FolderId {
    fn of(dir: &Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            let metadata = fs::metadata(dir)?;
            Ok(Self(metadata.dev(), metadata.ino()))
        }
        #[cfg(not(unix))]
        {
            fs::canonicalize(dir).map(Self)
        }
    }
}

fn name_of(path: &Path) -> Arc<str> {
    path.display().to_string().into()
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| name.starts_with('.'))
}

/// Whether a file in a folder holds resources (and not tool configuration).
fn is_resource_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
        return false;
    };
    let configuration = kustomize::is_file_name(path) || name.ends_with(".ksops-generator.yaml");
    let manifest = [".yaml", ".yml", ".json"]
        .iter()
        .any(|extension| name.ends_with(extension));
    manifest && !configuration && !is_hidden(path)
}

impl Walker {
    pub(crate) fn input(&mut self, input: &Input) {
        match input {
            Input::Path(path) => self.path(path),
            Input::Text { name, text } => self.pending.push(Pending {
                name: name.as_str().into(),
                content: Content::Text(text.clone()),
                barrier_group: self.barrier_group,
            }),
        }
    }

    pub(crate) fn problem(&mut self, path: &Path, kind: ProblemKind, message: String) {
        self.problems
            .push(Problem::new(Location::file(name_of(path)), kind, message));
    }

    pub(crate) fn path(&mut self, path: &Path) {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() && kluctl::is_project(path) => {
                self.within(path, Self::kluctl);
            }
            Ok(metadata) if metadata.is_dir() => self.tree(path),
            Ok(_) if kustomize::is_file_name(path) => {
                let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
                self.tree(dir.unwrap_or(Path::new(".")));
            }
            Ok(_) => self.file(path.to_owned()),
            Err(error) => self.problem(path, ProblemKind::Unreadable, error.to_string()),
        }
    }

    /// A folder: as its kustomization says, if it has one.
    fn tree(&mut self, dir: &Path) {
        if kustomize::files_in(dir).is_empty() {
            self.within(dir, Self::folder);
        } else {
            self.within(dir, Self::kustomization);
        }
    }

    /// Walks `dir` with `walk`, unless it is a folder on the way to it or one walked already.
    pub(crate) fn within(&mut self, dir: &Path, walk: fn(&mut Self, &Path)) {
        let id = match FolderId::of(dir) {
            Ok(id) => id,
            Err(error) => return self.problem(dir, ProblemKind::Unreadable, error.to_string()),
        };
        if let Some((_, ancestor)) = self.ancestors.iter().find(|(other, _)| *other == id) {
            let via = match fs::read_link(dir) {
                Ok(target) => format!("symbolic link to `{}` ", target.display()),
                Err(_) => String::new(),
            };
            let message = format!(
                "{via}leads back to `{}`, which holds it: capstan does not follow it, as the walk \
                 would never end",
                ancestor.display()
            );
            return self.problem(dir, ProblemKind::Cycle, message);
        }
        if let Some(first) = self.walked.get(&id) {
            let message = format!(
                "the same folder as `{}`, which is loaded already: loading it again would define \
                 its objects twice",
                first.display()
            );
            return self.problem(dir, ProblemKind::Duplicate, message);
        }
        self.walked.insert(id.clone(), dir.to_owned());
        self.ancestors.push((id, dir.to_owned()));
        walk(self, dir);
        self.ancestors.pop();
    }

    fn folder(&mut self, dir: &Path) {
        // The entry's own type costs no extra system call; only symbolic links are followed.
        let entries = fs::read_dir(dir).and_then(|entries| {
            entries
                .map(|entry| {
                    let entry = entry?;
                    let kind = entry.file_type()?;
                    let path = entry.path();
                    let is_dir = kind.is_dir() || (kind.is_symlink() && path.is_dir());
                    Ok((path, is_dir))
                })
                .collect::<std::io::Result<Vec<_>>>()
        });
        let mut entries = match entries {
            Ok(entries) => entries,
            Err(error) => return self.problem(dir, ProblemKind::Unreadable, error.to_string()),
        };
        entries.sort();
        for (path, is_dir) in entries {
            if is_dir {
                if !is_hidden(&path) {
                    self.tree(&path);
                }
            } else if is_resource_file(&path) {
                self.file(path);
            }
        }
    }

    /// A file to load; inside a templated kluctl item, to render first unless
    /// `.templateignore` says otherwise.
    fn file(&mut self, path: PathBuf) {
        let content = match self.scope.as_mut() {
            Some(Scope {
                renderer: Some(renderer),
                ignore: Some(ignore),
                ..
            }) => match ignore.ignores(&path) {
                Ok(true) => Content::File(path.clone()),
                Ok(false) => Content::Template(path.clone(), Arc::clone(renderer)),
                Err(problem) => return self.problems.push(problem),
            },
            _ => Content::File(path.clone()),
        };
        self.pending.push(Pending {
            name: name_of(&path),
            content,
            barrier_group: self.barrier_group,
        });
    }
}
