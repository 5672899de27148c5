//! Loading a 50,000-object stage (about 20 MB) as a stream, a `List` and a folder, against
//! serde_yaml and serde-saphyr parsing the same text into generic values on one core.
//!
//! serde-saphyr is here because kube-client already links it, so moving capstan off the
//! deprecated serde_yaml would drop a whole YAML stack (serde_yaml and unsafe-libyaml). It was
//! measured slower (issue 11: 1.48x the instructions of serde_yaml per document, 1.2-2x the
//! wall time), so capstan stays on serde_yaml until this bench says otherwise.
//!
//! Wall times on a shared 2-core VM vary by ±20% from run to run; `valgrind --tool=callgrind`
//! instruction counts give the stable ratio (see the closing note of issue 3).
//!
//! `cargo bench -p capstan-manifest --bench load`

use std::hint::black_box;
use std::time::Duration;

use capstan_manifest::{Input, Label, LoadOptions, load};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize as _;

#[path = "support/generate.rs"]
mod generate;

const OBJECTS: usize = 50_000;

fn options() -> LoadOptions {
    LoadOptions::with_label(Label::new("capstan.io/discriminator", "shop-full").unwrap())
}

fn one_core<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(work)
}

fn benches(c: &mut Criterion) {
    let stream = generate::stream(OBJECTS);
    let list = generate::list(OBJECTS);
    let tree = tempfile::tempdir().unwrap();
    generate::tree(OBJECTS, tree.path()).unwrap();

    let mut group = c.benchmark_group("stage-50k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(12))
        .throughput(Throughput::Bytes(stream.len() as u64));

    for (name, text) in [("stream", &stream), ("list", &list)] {
        group.bench_function(format!("serde_yaml-values-{name}-1-core"), |b| {
            b.iter(|| {
                let values: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(text)
                    .map(|document| serde_yaml::Value::deserialize(document).unwrap())
                    .collect();
                black_box(values)
            })
        });
        group.bench_function(format!("serde_saphyr-values-{name}-1-core"), |b| {
            b.iter(|| {
                // Its default budget refuses more than 1,024 documents; capstan sets none.
                let mut unlimited = serde_saphyr::Options::default();
                unlimited.budget = None;
                let values: Vec<serde_json::Value> =
                    serde_saphyr::from_multiple_with_options(text, unlimited).unwrap();
                black_box(values)
            })
        });
    }
    let text = |name: &str, text: &str| {
        vec![Input::Text {
            name: name.into(),
            text: text.into(),
        }]
    };
    let inputs = [
        ("stream", text("stream.yaml", &stream)),
        ("list", text("list.yaml", &list)),
        ("folder", vec![Input::Path(tree.path().to_owned())]),
    ];
    for (name, inputs) in &inputs {
        group.bench_function(format!("{name}-1-core"), |b| {
            b.iter(|| one_core(|| load(inputs, &options()).unwrap().len()))
        });
        group.bench_function(format!("{name}-all-cores"), |b| {
            b.iter(|| load(inputs, &options()).unwrap().len())
        });
    }
    group.finish();
}

criterion_group!(load_benches, benches);
criterion_main!(load_benches);
