//! The YAML store: go-yaml v3's typing on the way in, its layout on the way out.

mod emit;
mod parse;

pub(crate) use emit::{emit, emit_value};
pub(crate) use parse::parse;
