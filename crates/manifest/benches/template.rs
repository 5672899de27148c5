//! Rendering a kluctl project of 5,000 templated objects, against loading the same files
//! untemplated (issue 19: templating should add less than the load itself).
//!
//! The project has 50 item files of 100 ConfigMaps each, every object with four `{{ }}`
//! expressions in its data (variables, one through a filter, an argument). Untemplated, the same
//! files load with the expressions as literal text, so both runs parse and validate the same
//! amount of YAML; the difference is the rendering.
//!
//! Wall times on a shared two-core VM swing by 2x when other work runs; the `-cpu-time` rows
//! measure the CPU time all threads spent instead, which holds still.
//!
//! `cargo bench -p capstan-manifest --bench template`

use std::fmt::Write as _;
use std::fs;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use capstan_manifest::{Input, Label, LoadOptions, Templating, load};
use criterion::{Criterion, criterion_group, criterion_main};

const FILES: usize = 50;
const PER_FILE: usize = 100;

fn project(root: &Path) {
    fs::create_dir_all(root.join("apps")).unwrap();
    fs::write(
        root.join("deployment.yaml"),
        "deployments:\n- path: apps\nvars:\n- values: {app: {name: shop, tier: web}, replicas: 3}\n",
    )
    .unwrap();
    for file in 0..FILES {
        let mut text = String::new();
        for object in 0..PER_FILE {
            let _ = write!(
                text,
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{file}-{object}\n  \
                 namespace: shop\n  labels: {{tier: web}}\ndata:\n  app: '{{{{ app.name }}}}'\n  \
                 tier: '{{{{ app.tier | default(\"x\") }}}}'\n  replicas: '{{{{ replicas }}}}'\n  \
                 env: '{{{{ args.env }}}}'\n  plain: some text that is not templated at all\n"
            );
        }
        fs::write(root.join(format!("apps/cm-{file}.yaml")), text).unwrap();
    }
}

fn options(templated: bool) -> LoadOptions {
    let mut options =
        LoadOptions::with_label(Label::new("capstan.io/discriminator", "shop.full").unwrap());
    if templated {
        let mut templating = Templating::default();
        templating.args.insert("env".into(), "prod".into());
        options.kluctl = Some(templating);
    }
    options
}

/// User and system time of the whole process so far, from `/proc/self/stat` (Linux; clock
/// ticks of 10 ms, so each sample runs many loads).
fn cpu_time() -> Duration {
    let stat = fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn benches(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let inputs = [Input::Path(dir.path().to_owned())];
    let templated = load(&inputs, &options(true)).unwrap();
    assert_eq!(templated.len(), FILES * PER_FILE);
    assert!(templated.objects()[0].json().contains(r#""replicas":"3""#));

    let mut group = c.benchmark_group("kluctl-5k");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    for (name, templated) in [("untemplated", false), ("templated", true)] {
        let options = options(templated);
        group.bench_function(name, |b| {
            b.iter(|| black_box(load(&inputs, &options).unwrap()))
        });
        // The CPU time of every thread: on a busy machine wall times swing by 2x, the work
        // done does not.
        group.bench_function(format!("{name}-cpu-time"), |b| {
            b.iter_custom(|iterations| {
                let start = cpu_time();
                for _ in 0..iterations {
                    black_box(load(&inputs, &options).unwrap());
                }
                cpu_time() - start
            })
        });
    }
    group.finish();
}

criterion_group!(template, benches);
criterion_main!(template);
