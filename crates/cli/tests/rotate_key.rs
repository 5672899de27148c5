//! `capstan secrets rotate-key` end to end: the key hand-over in files, `.sops.yaml` and, with
//! `--cluster`, the operator's Secret and Deployment on the test control plane.

mod common;

use common::*;

/// The identity lines of a key file, which must never appear in capstan's output.
fn identity_lines(key_file: &str) -> Vec<&str> {
    key_file
        .lines()
        .filter(|line| line.starts_with("AGE-SECRET-KEY-"))
        .collect()
}

/// A `.sops.yaml` with comments and both shapes of `age` field, encrypting `secrets/` and
/// `lists/` to `recipient`.
fn commented_config(recipient: &str) -> String {
    format!(
        "# Who can read what.\ncreation_rules:\n  # Application secrets.\n  \
         - path_regex: ^secrets/.*\\.yaml$\n    age: \"{recipient}\" # ops\n  \
         - path_regex: ^lists/.*\\.yaml$\n    key_groups:\n      - age:\n          - {recipient}\n"
    )
}

#[test]
fn rotate_key_adds_the_recipient_everywhere_and_keeps_the_old_key_working() {
    let repo = Repo::new();
    std::fs::write(repo.path(".sops.yaml"), commented_config(&repo.recipient)).unwrap();
    let first = repo.encrypted("app.yaml", PLAINTEXT);
    let second = repo.path("lists/db.yaml");
    std::fs::create_dir_all(second.parent().unwrap()).unwrap();
    std::fs::write(&second, PLAINTEXT).unwrap();
    succeeds(repo.run(&["secrets", "encrypt", "-i", second.to_str().unwrap()]));
    let new_key = repo.path("new.txt");

    let output = succeeds(repo.run(&["secrets", "rotate-key", "--output", "new.txt", "--yes"]));
    let stderr = text(&output.stderr);
    let new = std::fs::read_to_string(&new_key).unwrap();
    let new_recipient = new
        .lines()
        .find_map(|line| line.strip_prefix("# public key: "))
        .unwrap();
    let secret_line = identity_lines(&new)[0];
    assert!(
        !stderr.contains(secret_line) && output.stdout.is_empty(),
        "{stderr}"
    );
    assert!(stderr.contains("files updated:        2"), "{stderr}");
    assert!(stderr.contains("old recipient removed: no"), "{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&new_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let config = std::fs::read_to_string(repo.path(".sops.yaml")).unwrap();
    let expected = commented_config(&repo.recipient)
        .replace(
            &format!("\"{}\"", repo.recipient),
            &format!("\"{},{new_recipient}\"", repo.recipient),
        )
        .replace(
            &format!("          - {}\n", repo.recipient),
            &format!(
                "          - {}\n          - {new_recipient}\n",
                repo.recipient
            ),
        );
    assert_eq!(config, expected);
    for path in [&first, &second] {
        assert_eq!(repo.decrypt(path), PLAINTEXT);
        assert_eq!(repo.decrypt_with(path, &new_key), PLAINTEXT);
    }

    // A second run finds nothing to do.
    let output = succeeds(repo.run(&[
        "secrets",
        "rotate-key",
        "--new-recipient",
        new_recipient,
        "--yes",
    ]));
    assert!(text(&output.stderr).contains("files updated:        0"));
    assert_eq!(
        std::fs::read_to_string(repo.path(".sops.yaml")).unwrap(),
        config
    );
}

#[test]
fn rotate_key_refuses_without_a_terminal_or_yes_and_changes_nothing() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let before = std::fs::read(&path).unwrap();
    let config = std::fs::read(repo.path(".sops.yaml")).unwrap();

    let output = fails(repo.run(&["secrets", "rotate-key", "--output", "new.txt"]));
    assert!(text(&output.stderr).contains("--yes"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(std::fs::read(repo.path(".sops.yaml")).unwrap(), config);
    assert!(!repo.path("new.txt").exists());
}

#[test]
fn rotate_key_reports_what_was_done_when_a_file_fails() {
    let repo = Repo::new();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let other_key = repo.path("other.txt");
    let other = keygen(&other_key);
    // A file this key cannot open: its data key cannot be handed over.
    let foreign = repo.path("secrets/foreign.yaml");
    std::fs::write(&foreign, PLAINTEXT).unwrap();
    succeeds(repo.run(&[
        "secrets",
        "encrypt",
        "-i",
        "--age",
        &other,
        foreign.to_str().unwrap(),
    ]));
    let new = keygen(&repo.path("new.txt"));

    let output = fails(repo.run(&["secrets", "rotate-key", "--new-recipient", &new, "--yes"]));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("foreign.yaml"), "{stderr}");
    assert!(stderr.contains(".sops.yaml updated:   yes"), "{stderr}");
    assert!(stderr.contains("files updated:        1"), "{stderr}");
    assert!(stderr.contains("files failed:         1"), "{stderr}");
    assert_eq!(repo.decrypt(&path), PLAINTEXT);
    assert_eq!(repo.decrypt_with(&foreign, &other_key), PLAINTEXT);
}

#[tokio::test]
async fn rotate_key_hands_the_new_identity_to_the_operator() {
    use capstan_testenv::{ControlPlane, User};
    use k8s_openapi::api::{apps::v1::Deployment, core::v1::Secret};
    use kube::api::{Api, PostParams};

    let plane = ControlPlane::shared().await.expect("control plane");
    let client = plane.client(User::Admin).unwrap();
    let namespace = plane.create_namespace("rotate-key").await.unwrap();
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "sops-secrets-operator" },
        "spec": {
            "selector": { "matchLabels": { "app": "operator" } },
            "template": {
                "metadata": { "labels": { "app": "operator" } },
                "spec": { "containers": [{ "name": "operator", "image": "registry.k8s.io/pause:3.10" }] },
            },
        },
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    // The operator's current key is the repository's, as `kubectl create secret` put it there.
    let repo = Repo::new();
    let old_key_file = std::fs::read_to_string(&repo.key).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client, &namespace);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "sops-age-key" },
        "stringData": { "age.key": old_key_file },
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let path = repo.encrypted("app.yaml", PLAINTEXT);
    let new_key = repo.path("new.txt");
    let new_recipient = keygen(&new_key);

    let run = |extra: &[&str]| {
        let mut args = vec![
            "secrets",
            "rotate-key",
            "--new-identity-file",
            "new.txt",
            "--yes",
            "--cluster",
            "--namespace",
            &namespace,
        ];
        args.extend(extra);
        repo.capstan(&args)
            .env("KUBECONFIG", plane.kubeconfig())
            .output()
            .unwrap()
    };
    let output = succeeds(run(&[]));
    let stderr = text(&output.stderr);
    let new_key_file = std::fs::read_to_string(&new_key).unwrap();
    let new_line = identity_lines(&new_key_file)[0];
    assert!(!stderr.contains(new_line), "{stderr}");
    assert!(stderr.contains("key Secret updated:   yes"), "{stderr}");
    assert!(stderr.contains("operator restarted:   yes"), "{stderr}");

    let live = secrets.get("sops-age-key").await.unwrap();
    let key_file = String::from_utf8(live.data.unwrap()["age.key"].0.clone()).unwrap();
    let old_line = identity_lines(&old_key_file)[0];
    assert_eq!(identity_lines(&key_file), [new_line, old_line]);
    assert!(key_file.contains(&format!("# public key: {new_recipient}")));
    let managers: Vec<_> = live
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"capstan".to_owned()), "{managers:?}");

    let live = deployments.get("sops-secrets-operator").await.unwrap();
    let annotations = live
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert!(annotations.contains_key("kubectl.kubernetes.io/restartedAt"));

    assert_eq!(repo.decrypt(&path), PLAINTEXT);
    assert_eq!(repo.decrypt_with(&path, &new_key), PLAINTEXT);

    // No kubelet runs the pods, so the rollout never finishes: --wait must say so in time.
    let output = fails(run(&["--wait", "--timeout", "1s"]));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("timed out after 1s waiting for the rollout"),
        "{stderr}"
    );
    assert!(stderr.contains("rollout finished:     no"), "{stderr}");
}
