//! Loads the resources a capstan *stage* should have, and makes them ready to apply.
//!
//! A renderer (Nix with easykubenix, kustomize, a script) turns modules into Kubernetes
//! resources: a multi-document YAML stream, a JSON or YAML `List`, a folder of files, or a
//! kluctl project folder with `prio-N` barrier items. This crate will turn any of them into one
//! validated, ordered and labelled set of objects, with errors that name the file, the document
//! and the line.
//!
//! # What it will expose
//!
//! - loading from a file, a folder (recursive, in a deterministic order) or standard input;
//! - a typed object identity (group, version, kind, namespace, name) with a stable display,
//!   used by every other capstan crate;
//! - validation (names, labels, duplicate identities, unresolved template placeholders);
//! - the apply order (CRDs and Namespaces first, admission webhooks last, barriers kept) and
//!   its reverse for deletion;
//! - discriminator labelling, which is how capstan knows which live objects a stage owns;
//! - the `capstan.yaml` project file and its stages.
//!
//! Nothing here talks to a cluster: the crate is pure and fully unit-tested without a server.
