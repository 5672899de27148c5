//! Folders: symbolic links are followed, but never round a cycle or into a folder twice.

mod common;
use common::{ids, load_path, namespace, problems};

#[cfg(unix)]
#[test]
fn a_link_to_a_folder_that_holds_it_is_one_problem_naming_the_link() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/ns.yaml"), namespace("demo")).unwrap();
    symlink("..", dir.path().join("sub/back")).unwrap();
    let root = dir.path().display();
    assert_eq!(
        problems(load_path(dir.path())),
        [format!(
            "{root}/sub/back: symbolic link to `..` leads back to `{root}`, which holds it: capstan does not follow it, as the walk would never end"
        )]
    );
}

#[cfg(unix)]
#[test]
fn two_links_to_their_own_folder_end_the_walk_with_a_problem_each() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ns.yaml"), namespace("demo")).unwrap();
    symlink(".", dir.path().join("a")).unwrap();
    symlink(".", dir.path().join("b")).unwrap();
    let root = dir.path().display();
    let message = |link: &str| {
        format!(
            "{root}/{link}: symbolic link to `.` leads back to `{root}`, which holds it: capstan does not follow it, as the walk would never end"
        )
    };
    assert_eq!(
        problems(load_path(dir.path())),
        [message("a"), message("b")]
    );
}

#[cfg(unix)]
#[test]
fn a_second_way_to_a_folder_is_one_problem_not_a_duplicate_per_object() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    for name in ["x", "y", "z"] {
        std::fs::write(dir.path().join(format!("a/{name}.yaml")), namespace(name)).unwrap();
    }
    symlink("a", dir.path().join("b")).unwrap();
    let root = dir.path().display();
    assert_eq!(
        problems(load_path(dir.path())),
        [format!(
            "{root}/b: the same folder as `{root}/a`, which is loaded already: loading it again would define its objects twice"
        )]
    );
}

#[cfg(unix)]
#[test]
fn links_to_folders_outside_the_walk_are_followed() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("ns.yaml"), namespace("outside")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/ns.yaml"), namespace("inside")).unwrap();
    symlink(outside.path(), dir.path().join("a/elsewhere")).unwrap();
    let manifest = load_path(dir.path()).unwrap();
    assert_eq!(ids(&manifest), ["Namespace outside", "Namespace inside"]);
}
