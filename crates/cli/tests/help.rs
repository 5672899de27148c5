//! What capstan ships besides its commands: shell completions and manual pages, generated from
//! the same argument definitions as `--help`.

use std::process::{Command, Output};

fn capstan(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn completions_for_bash_zsh_and_fish_know_the_commands_and_their_flags() {
    for (shell, opening) in [
        ("bash", "_capstan() {"),
        ("zsh", "#compdef capstan"),
        ("fish", "complete -c capstan"),
    ] {
        let script = text(&capstan(&["completions", shell]));
        assert!(script.contains(opening), "{shell}: {script}");
        assert!(
            script.contains("deploy") && script.contains("show-kept"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn the_manual_page_is_roff_with_every_command_and_one_page_each_with_dir() {
    let page = text(&capstan(&["man"]));
    assert!(page.contains(".TH capstan 1"), "{page}");
    assert!(
        page.contains("deploy") && page.contains("secrets"),
        "{page}"
    );

    let dir = tempfile::TempDir::new().unwrap();
    capstan(&["man", "--dir", dir.path().to_str().unwrap()]);
    let deploy = std::fs::read_to_string(dir.path().join("capstan-deploy.1")).unwrap();
    assert!(deploy.contains("\\-\\-output"), "{deploy}");
    assert!(
        deploy.contains("Apply a stage with server\\-side apply"),
        "the page's text is the command's help: {deploy}"
    );
}
