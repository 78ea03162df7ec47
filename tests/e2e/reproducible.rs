//! Plugins are identified by their sha256, so builds must be reproducible:
//! the same sources, built from another checkout folder, give the same bytes.

use std::path::Path;
use std::process::Command;

use crate::support::{plugins_dir, repo_root, sha256_hex};

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "target" || name == ".git" {
            continue;
        }
        let ty = entry.file_type().unwrap();
        if ty.is_dir() {
            copy_tree(&entry.path(), &to.join(&name));
        } else if ty.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn plugins_built_from_another_checkout_folder_have_the_same_sha256() {
    let reference = plugins_dir();
    let copy = tempfile::tempdir().unwrap();
    let checkout = copy.path().join("elsewhere").join("pictor");
    copy_tree(repo_root(), &checkout);
    let out = copy.path().join("plugins");
    let status = Command::new("bash")
        .arg(checkout.join("scripts/build-plugins.sh"))
        .arg("--out")
        .arg(&out)
        // Share the compiled std (same sysroot sources) but not the paths.
        .env("PICTOR_GUEST_TARGET_DIR", repo_root().join("target/guest"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut compared = 0;
    for entry in std::fs::read_dir(reference).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        assert_eq!(
            sha256_hex(&path),
            sha256_hex(&out.join(name)),
            "{name:?} differs between checkouts"
        );
        compared += 1;
    }
    assert!(compared >= 3, "only {compared} plugins compared");
}
