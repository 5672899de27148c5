//! Records on the test control plane: chunks, sharing, retention, what is stored of plain
//! Secrets, and damaged records.

use std::io::Read as _;

use capstan_history::{Counts, History, Inventory, Recorded, Run, RunResult, Summary, Target};
use capstan_manifest::{History as Limits, Input, Label, LoadOptions, Manifest, load};
use capstan_testenv::{ControlPlane, User};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};

fn manifest(yaml: &str) -> Manifest {
    let label = Label::new(Label::DEFAULT_KEY, "hist.app").unwrap();
    let input = Input::Text {
        name: "test.yaml".to_owned(),
        text: yaml.to_owned(),
    };
    load(&[input], &LoadOptions::with_label(label)).unwrap()
}

fn summary() -> Summary {
    Summary {
        revision: 0,
        time: "2026-01-01T00:00:00Z".to_owned(),
        user: Some("admin".to_owned()),
        commit: None,
        version: "test".to_owned(),
        counts: Counts::default(),
        result: RunResult::Succeeded,
        rollback_of: None,
        bytes: 0,
    }
}

async fn record(history: &History, manifest: &Manifest, limits: Limits) -> Recorded {
    let run = Run::new(manifest, summary(), Inventory::default(), true);
    history.record(run, limits).await.unwrap()
}

/// Text that deflate cannot shrink much: base64 of a pseudo-random stream.
fn noise(seed: u64, bytes: usize) -> String {
    let mut state = seed;
    let raw: Vec<u8> = (0..bytes)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect();
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, raw)
}

fn big_config_maps(ns: &str, seeds: &[u64]) -> String {
    seeds
        .iter()
        .enumerate()
        .map(|(i, seed)| {
            format!(
                "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big-{i}, namespace: {ns}}}\ndata: {{k: {}}}\n",
                noise(*seed, 600_000)
            )
        })
        .collect()
}

async fn secrets(plane: &ControlPlane, ns: &str, role: &str) -> Vec<Secret> {
    let client = plane.client(User::Admin).unwrap();
    let api: Api<Secret> = Api::namespaced(client, ns);
    let params = ListParams::default().labels(&format!("capstan.io/history-role={role}"));
    api.list(&params).await.unwrap().items
}

fn limits(keep: usize, max_bytes: u64) -> Limits {
    let mut limits = Limits::default();
    limits.keep = keep;
    limits.max_bytes = max_bytes;
    limits
}

#[tokio::test]
async fn a_stage_needing_several_chunks_is_stored_shared_and_read_back_whole() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("chunks").await.unwrap();
    let history = History::new(
        plane.client(User::Admin).unwrap(),
        Target::new(&ns, "hist", "app"),
    );
    let first = manifest(&big_config_maps(&ns, &[1, 2, 3]));
    record(&history, &first, Limits::default()).await;
    let chunks = secrets(plane, &ns, "chunk").await;
    assert_eq!(
        chunks.len(),
        3,
        "each object (600 KB compressed) takes a chunk of its own"
    );
    for chunk in &chunks {
        let bytes: usize = chunk
            .data
            .iter()
            .flatten()
            .map(|(k, v)| k.len() + v.0.len())
            .sum();
        assert!(bytes < 900 * 1024, "{bytes}");
    }

    // One object changes: one chunk more, the other two are shared.
    let second = manifest(&big_config_maps(&ns, &[1, 2, 4]));
    let recorded = record(&history, &second, Limits::default()).await;
    assert_eq!(
        recorded,
        written(2, 3, Vec::new()),
        "revision 2 references three chunks"
    );
    assert_eq!(secrets(plane, &ns, "chunk").await.len(), 4);

    let revision = history.revision(1).await.unwrap();
    let label = Label::new(Label::DEFAULT_KEY, "hist.app").unwrap();
    let replay = history.replay(&revision, label).await.unwrap();
    let replayed: Vec<&str> = replay.manifest.iter().map(|o| o.json()).collect();
    let original: Vec<&str> = first.iter().map(|o| o.json()).collect();
    assert_eq!(
        replayed, original,
        "the replay loads the very objects the deploy loaded"
    );
}

fn written(revision: u64, chunks: usize, removed: Vec<u64>) -> Recorded {
    Recorded::Written {
        revision,
        chunks,
        removed,
    }
}

#[tokio::test]
async fn retention_keeps_the_newest_revisions_by_count_and_by_bytes_and_collects_their_chunks() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("retention").await.unwrap();
    let history = History::new(
        plane.client(User::Admin).unwrap(),
        Target::new(&ns, "hist", "app"),
    );
    for seed in 1..=4 {
        let objects = manifest(&big_config_maps(&ns, &[seed]));
        record(&history, &objects, limits(2, u64::MAX)).await;
    }
    let kept: Vec<u64> = history
        .revisions()
        .await
        .unwrap()
        .iter()
        .map(|s| s.revision)
        .collect();
    assert_eq!(kept, [3, 4]);
    assert_eq!(
        secrets(plane, &ns, "chunk").await.len(),
        2,
        "chunks of 1 and 2 are collected"
    );

    // 1 MB of records at most: only the newest fits, and it is kept whatever its size.
    let objects = manifest(&big_config_maps(&ns, &[5]));
    let recorded = record(&history, &objects, limits(10, 1_000_000)).await;
    assert_eq!(recorded, written(5, 1, vec![3, 4]));
    assert_eq!(secrets(plane, &ns, "chunk").await.len(), 1);

    // A run that changed nothing and deployed the latest objects writes nothing.
    let run = Run::new(&objects, summary(), Inventory::default(), false);
    assert_eq!(
        history.record(run, Limits::default()).await.unwrap(),
        Recorded::Unchanged
    );
    assert_eq!(secrets(plane, &ns, "revision").await.len(), 1);
}

#[tokio::test]
async fn no_plaintext_secret_value_is_stored_in_any_record_byte() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("plaintext").await.unwrap();
    let history = History::new(
        plane.client(User::Admin).unwrap(),
        Target::new(&ns, "hist", "app"),
    );
    let objects = manifest(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: {ns}}}\n\
         data: {{password: aHVudGVyMi1wYXNzd29yZA==}}\nstringData: {{token: s3cr3t-t0ken-value}}\n"
    ));
    record(&history, &objects, Limits::default()).await;
    let client = plane.client(User::Admin).unwrap();
    let all = Api::<Secret>::namespaced(client, &ns)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(all.len() >= 3, "a key, a chunk and a revision");
    let forbidden = [
        "hunter2-password",
        "aHVudGVyMi1wYXNzd29yZA==",
        "s3cr3t-t0ken-value",
        "czNjcjN0LXQwa2VuLXZhbHVl",
    ];
    for secret in &all {
        let mut texts = vec![serde_json::to_string(&secret.metadata).unwrap()];
        for bytes in secret.data.iter().flat_map(|d| d.values()) {
            texts.push(String::from_utf8_lossy(&bytes.0).into_owned());
            let mut inflated = Vec::new();
            if flate2::read::DeflateDecoder::new(&bytes.0[..])
                .read_to_end(&mut inflated)
                .is_ok()
            {
                texts.push(String::from_utf8_lossy(&inflated).into_owned());
            }
        }
        for text in &texts {
            for value in forbidden {
                assert!(
                    !text.contains(value),
                    "{value} in {:?}",
                    secret.metadata.name
                );
            }
        }
    }
    // What is stored instead: the keys, with keyed hashes.
    let revision = history.revision(1).await.unwrap();
    let stored = history.objects(&revision).await.unwrap();
    let data = &stored[0].value["data"]["password"];
    assert!(
        data.as_str()
            .unwrap()
            .starts_with("capstan-history:hmac-sha256:"),
        "{data}"
    );
}

#[tokio::test]
async fn a_missing_chunk_or_revision_is_a_clear_error() {
    let plane = ControlPlane::shared().await.unwrap();
    let ns = plane.create_namespace("damaged").await.unwrap();
    let history = History::new(
        plane.client(User::Admin).unwrap(),
        Target::new(&ns, "hist", "app"),
    );
    let objects = manifest(&big_config_maps(&ns, &[1]));
    record(&history, &objects, Limits::default()).await;
    let chunk = secrets(plane, &ns, "chunk").await.remove(0);
    let name = chunk.metadata.name.unwrap();
    let client = plane.client(User::Admin).unwrap();
    Api::<Secret>::namespaced(client, &ns)
        .delete(&name, &Default::default())
        .await
        .unwrap();
    let revision = history.revision(1).await.unwrap();
    let error = history.objects(&revision).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("the history record `{ns}/{name}` is unreadable: the chunk is missing")
    );
    let error = history.revision(7).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("stage hist/app has no revision 7 in `{ns}` (it has 1)")
    );
}
