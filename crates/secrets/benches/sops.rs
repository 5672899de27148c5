//! Encrypting and decrypting a generated file of 10,000 values (100 groups of 100 keys), the
//! size of a large Helm values file kept as one secret.

use capstan_secrets::{EncryptOptions, Format, Identities, Identity, Recipients, SopsFile};
use criterion::{Criterion, criterion_group, criterion_main};
use std::{fmt::Write as _, hint::black_box};

fn plaintext() -> String {
    let mut text = String::new();
    for group in 0..100 {
        let _ = writeln!(text, "group_{group:03}:");
        for key in 0..100 {
            let _ = writeln!(
                text,
                "    key_{key:03}: value-{group:03}-{key:03}-0123456789abcdef"
            );
        }
    }
    text
}

fn bench(c: &mut Criterion) {
    let identity = Identity::generate();
    let options = EncryptOptions {
        recipients: Recipients::any_of([identity.recipient()]),
        ..EncryptOptions::default()
    };
    let identities: Identities = [identity].into_iter().collect();
    let plaintext = plaintext();
    let encrypted = SopsFile::encrypt("bench.yaml", Format::Yaml, plaintext.as_bytes(), &options)
        .unwrap()
        .to_bytes();

    let mut group = c.benchmark_group("10k values");
    group.sample_size(20);
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            let file = SopsFile::encrypt(
                "bench.yaml",
                Format::Yaml,
                black_box(plaintext.as_bytes()),
                &options,
            )
            .unwrap();
            file.to_bytes()
        });
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| {
            let file = SopsFile::parse("bench.yaml", Format::Yaml, black_box(&encrypted)).unwrap();
            file.decrypt(&identities).unwrap().to_plaintext()
        });
    });
    group.bench_function("edit one value", |b| {
        let decrypted = SopsFile::parse("bench.yaml", Format::Yaml, &encrypted)
            .unwrap()
            .decrypt(&identities)
            .unwrap();
        let edited = plaintext.replacen("value-000-000", "changed", 1);
        b.iter(|| decrypted.edit(black_box(edited.as_bytes())).unwrap());
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
