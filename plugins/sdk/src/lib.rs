//! The capstan plugin SDK: how a site adds its own stages or deployment backends to capstan
//! without forking it.
//!
//! # What it will expose
//!
//! - a versioned, synchronous `Plugin` trait that plugin authors implement;
//! - a stable C ABI between the `capstan` binary and a plugin library: a version-first
//!   handshake, `#[repr(C)]` tables, JSON payloads (Kubernetes objects are JSON already), and
//!   no Rust standard-library or tokio types across the boundary;
//! - an export macro that generates the library's symbols and turns panics into errors;
//! - the loader, built on `libloading`: trusted paths only, libraries kept loaded for the
//!   life of the process. It is the one place in capstan allowed `unsafe` code, each use
//!   explained by a `// SAFETY:` comment.
