//! Helpers the load tests share.

use std::path::Path;

use capstan_manifest::{Error, Input, LoadOptions, Manifest, load};

pub(crate) fn ids(manifest: &Manifest) -> Vec<String> {
    manifest
        .iter()
        .map(|object| object.id().to_string())
        .collect()
}

pub(crate) fn problems(result: Result<Manifest, Error>) -> Vec<String> {
    match result {
        Err(Error::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("expected problems, got {other}"),
        Ok(manifest) => panic!("expected problems, loaded {:?}", ids(&manifest)),
    }
}

pub(crate) fn namespace(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
}

pub(crate) fn load_path(path: &Path) -> Result<Manifest, Error> {
    load(&[Input::Path(path.to_owned())], &LoadOptions::default())
}
