//! Finds the files an input names: single files, folders, kluctl projects, GitOps trees.

mod kustomize;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::{Location, Problem, ProblemKind};

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
}

impl Pending {
    /// The text, or the problem that keeps it from being read.
    pub(crate) fn read(self) -> Result<(Arc<str>, String, u32), Problem> {
        let text = match self.content {
            Content::Text(text) => text,
            Content::File(path) => fs::read(&path)
                .map_err(|error| error.to_string())
                .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned()))
                .map_err(|message| {
                    Problem::new(
                        Location::file(self.name.clone()),
                        ProblemKind::Unreadable,
                        message,
                    )
                })?,
        };
        Ok((self.name, text, self.barrier_group))
    }
}

/// Turns inputs into the list of files to parse, in load order.
#[derive(Default)]
pub(crate) struct Walker {
    pub(crate) pending: Vec<Pending>,
    pub(crate) problems: Vec<Problem>,
    barrier_group: u32,
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

/// kluctl's `deployment.yaml`: the fields that decide what is deployed, and in which order.
#[derive(Deserialize)]
struct Deployment {
    #[serde(default)]
    deployments: Vec<DeploymentItem>,
}

#[derive(Deserialize)]
struct DeploymentItem {
    path: Option<String>,
    include: Option<String>,
    #[serde(default)]
    barrier: bool,
    git: Option<serde_yaml::Value>,
    oci: Option<serde_yaml::Value>,
}

fn deployment_file(dir: &Path) -> Option<PathBuf> {
    ["deployment.yaml", "deployment.yml"]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

fn is_kluctl_project(dir: &Path) -> bool {
    if dir.join(".kluctl.yaml").is_file() || dir.join(".kluctl.yml").is_file() {
        return true;
    }
    deployment_file(dir)
        .and_then(|path| fs::read_to_string(path).ok())
        .and_then(|text| serde_yaml::from_str::<serde_yaml::Mapping>(&text).ok())
        .is_some_and(|file| file.contains_key("deployments"))
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

    fn problem(&mut self, path: &Path, kind: ProblemKind, message: String) {
        self.problems
            .push(Problem::new(Location::file(name_of(path)), kind, message));
    }

    fn path(&mut self, path: &Path) {
        match fs::metadata(path) {
            Ok(metadata) if metadata.is_dir() && is_kluctl_project(path) => {
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
    fn within(&mut self, dir: &Path, walk: fn(&mut Self, &Path)) {
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

    fn file(&mut self, path: PathBuf) {
        self.pending.push(Pending {
            name: name_of(&path),
            content: Content::File(path),
            barrier_group: self.barrier_group,
        });
    }

    /// A kluctl project: its deployment items in order, each barrier starting a new group.
    /// Variables files, `.templateignore` and other kluctl configuration are not resources.
    fn kluctl(&mut self, dir: &Path) {
        let Some(file) = deployment_file(dir) else {
            let message =
                "a kluctl project needs a deployment.yaml listing its deployments".to_owned();
            return self.problem(dir, ProblemKind::Configuration, message);
        };
        let deployment: Deployment = match fs::read_to_string(&file)
            .map_err(|error| error.to_string())
            .and_then(|text| serde_yaml::from_str(&text).map_err(|error| error.to_string()))
        {
            Ok(deployment) => deployment,
            Err(message) => return self.problem(&file, ProblemKind::Configuration, message),
        };
        for (index, item) in deployment.deployments.iter().enumerate() {
            match (&item.path, &item.include) {
                (Some(path), None) => self.path(&dir.join(path)),
                (None, Some(include)) => self.within(&dir.join(include), Self::kluctl),
                (None, None) if item.git.is_some() || item.oci.is_some() => {
                    let message = format!(
                        "deployments[{index}] takes its resources from git or OCI; capstan loads local \
                         folders only (render them into the project first)"
                    );
                    self.problem(&file, ProblemKind::Configuration, message);
                }
                (None, None) if item.barrier => {}
                _ => {
                    let message = format!(
                        "deployments[{index}] must have exactly one of `path` and `include`"
                    );
                    self.problem(&file, ProblemKind::Configuration, message);
                }
            }
            if item.barrier {
                self.barrier_group += 1;
            }
        }
    }
}
