//! Loads the resources a capstan *stage* should have, and makes them ready to apply.
//!
//! A renderer (Nix with easykubenix, kustomize, a script) turns modules into Kubernetes
//! resources: a multi-document YAML stream, a JSON or YAML `List`, a folder of files, a GitOps
//! tree (`<namespace|none>/<Kind>/<name>.yaml` with `kustomization.yaml`, loaded exactly as its
//! `resources` and ksops `generators` list, see [`Input::Path`]), or a kluctl project folder
//! with `prio-N` barrier items, rendered with Jinja as kluctl renders it when asked
//! ([`Templating`]). [`load`] turns any of them into one [`Manifest`]:
//!
//! - **validated**: every problem is reported at once, each naming the file, the document and
//!   the line ([`Problem`]): documents that are not objects, mappings with a key twice, invalid
//!   names, namespaces and labels, objects defined twice, objects labelled for another discriminator, and Secrets
//!   with unresolved `{{ ... }}` template placeholders;
//! - **labelled** with the stage's discriminator ([`Label`]), which is how capstan knows which
//!   live objects a stage owns;
//! - **ordered** for apply ([`Phase`]; barriers kept as [`Object::barrier_group`]); delete in
//!   reverse.
//!
//! A [`Project`] reads `capstan.yaml`, which names the project's stages and where each stage's
//! manifests come from: files, or a command such as `nix build ... --print-out-paths`.
//!
//! A [`Selection`] of [`Selector`]s (`--include kind=Secret`, `--exclude namespace=kube-system`)
//! narrows a manifest to the objects one command works on ([`Manifest::select`]). Text taken
//! from manifests is shown with control characters escaped ([`escape_controls`]).
//!
//! Loading is fast: documents, `List` items and files parse in parallel, and each object is
//! kept as compact JSON rather than a tree of values.
//!
//! # Example
//!
//! ```
//! use capstan_manifest::{Input, Label, LoadOptions, Phase, load};
//!
//! let text = "
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata: {name: api, namespace: web}
//! ---
//! apiVersion: v1
//! kind: Namespace
//! metadata: {name: web}
//! ";
//! let label = Label::new("capstan.io/discriminator", "shop.full")?;
//! let input = Input::Text { name: "stage.yaml".into(), text: text.into() };
//! let manifest = load(&[input], &LoadOptions::with_label(label))?;
//!
//! let order: Vec<String> = manifest.iter().map(|object| object.id().to_string()).collect();
//! assert_eq!(order, ["Namespace web", "apps/Deployment web/api"]);
//! assert_eq!(manifest.objects()[0].phase(), Phase::Namespaces);
//! assert!(manifest.objects()[1].json().contains(r#""capstan.io/discriminator":"shop.full""#));
//! # Ok::<(), capstan_manifest::Error>(())
//! ```
//!
//! Nothing here talks to a cluster: the crate is pure and unit-tested without a server.
//!
//! # Module map
//!
//! The pipeline runs top to bottom; each module uses only those below it.
//!
//! | module | what it holds |
//! |---|---|
//! | `project`, `history` | `capstan.yaml`: the project, its stages, their discriminators, their history |
//! | `project` | `capstan.yaml`: the project, its stages, their discriminators |
//! | `ignore` | a stage's `ignoreDifferences`: fields diff, drift and the unchanged proof leave alone |
//! | `targets` | `targets:`: the clusters a stage goes to, per-target discriminator and variables |
//! | `command` | runs a stage's render command, streaming its standard error |
//! | `load` | the pipeline: find, read, parse, validate, label, order |
//! | `input`, `input/kustomize` | which files an input names: files, folders, kluctl projects, GitOps trees |
//! | `kluctl` | kluctl projects: items and barriers, Jinja templating, `vars`, `.templateignore` ([`Templating`]) |
//! | `parse`, `split`, `strict`, `lines` | text to objects in parallel, duplicate keys refused, lines for messages |
//! | `object`, `order`, `select` | one loaded object, apply order, `--include`/`--exclude` |
//! | `manifest`, `id` | the loaded set and the identity every capstan crate names objects by |
//! | `edit` | one scalar of a YAML source changed in place, layout kept ([`set_scalar`]) |
//! | `tree` | writes the tree of `<namespace>/<Kind>/<name>.yaml` files the loader reads |
//! | `problem`, `error`, `names`, `escape`, `sensitive` | what is wrong and where, Kubernetes' naming rules, terminal-safe text, values never shown ([`Sensitive`]) |

mod command;
mod edit;
mod error;
mod escape;
mod history;
mod id;
mod ignore;
mod input;
mod kluctl;
mod lines;
mod load;
mod manifest;
mod names;
mod object;
mod order;
mod parse;
mod problem;
mod project;
mod select;
mod sensitive;
mod split;
mod strict;
mod targets;
mod tree;

pub use edit::set_scalar;
pub use error::Error;
pub use escape::escape_controls;
pub use history::History;
pub use id::ObjectId;
pub use ignore::{IgnoreRule, IgnoreRules, json_pointer};
pub use input::Input;
pub use kluctl::{Decrypt, Templating, is_project as is_kluctl_project};
pub use load::{LoadOptions, load, load_objects};
pub use manifest::{Format, HANDED_OFF_ANNOTATION, Label, Manifest, Wave};
pub use object::Object;
pub use order::Phase;
pub use problem::{Location, Problem, ProblemKind, Problems};
pub use project::{Project, Stage, StageSource};
pub use select::{Selection, Selector};
pub use sensitive::{MASK, Sensitive};
pub use targets::{Target, TargetSelector};
pub use tree::{TreeFile, TreeObject, tree_path, write_tree};
