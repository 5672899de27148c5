//! Writes the benchmark's 50,000-object stage to disk, for measuring tools side by side:
//! `cargo run --release -p capstan-manifest --example generate-stage -- stream|list|tree PATH`.

use std::path::PathBuf;

#[path = "../benches/support/generate.rs"]
mod generate;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(form), Some(path)) = (args.next(), args.next().map(PathBuf::from)) else {
        return Err(std::io::Error::other(
            "usage: generate-stage stream|list|tree PATH",
        ));
    };
    let count = 50_000;
    match form.as_str() {
        "stream" => std::fs::write(path, generate::stream(count)),
        "list" => std::fs::write(path, generate::list(count)),
        "tree" => generate::tree(count, &path),
        other => Err(std::io::Error::other(format!("unknown form {other}"))),
    }
}
