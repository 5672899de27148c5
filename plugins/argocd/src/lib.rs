//! Hands applications over to Argo CD: a capstan plugin that, instead of applying a stage,
//! writes Argo CD `Application` manifests and the rendered resource tree Argo CD syncs from.
//!
//! # What it will expose
//!
//! The plugin built on `capstan-plugin`, and the pure functions behind it (from a stage's
//! objects to `Application` manifests and a `<namespace|none>/<Kind>/<name>.yaml` tree), so
//! the same backend can also be linked directly.
