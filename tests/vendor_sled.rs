//! `vendor/sled` is sled 0.34.7 as published on crates.io with exactly the patches in
//! `vendor/sled-patches/` applied, in order: the registry's copy is fetched (when cargo does
//! not have it yet), patched with `git apply`, and compared file by file with the vendored
//! tree. A change to `vendor/sled` that is not in a patch file, or a patch that no longer
//! applies, fails here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The published files the vendored copy leaves out (images, the packaging's own files, a
/// doc directory and a sanitizer list): none of them is built.
const LEFT_OUT: [&str; 5] = [
    "Cargo.lock",
    "Cargo.toml.orig",
    "art",
    "tsan_suppressions.txt",
    "src/doc/performance_guide",
];

/// The vendored tree's own file, not sled's.
const OURS: &str = "GRANTFLOW.md";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo_home() -> PathBuf {
    match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo"),
    }
}

/// The registry's unpacked sled 0.34.7, if cargo has it.
fn registry_copy() -> Option<PathBuf> {
    let src = cargo_home().join("registry").join("src");
    std::fs::read_dir(src)
        .ok()?
        .flatten()
        .map(|index| index.path().join("sled-0.34.7"))
        .find(|path| path.join("Cargo.toml").is_file())
}

/// Has cargo fetch sled 0.34.7 from crates.io (a throwaway package that depends on it).
fn fetch_registry_copy() -> PathBuf {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src").join("lib.rs"), "").unwrap();
    std::fs::write(
        dir.path().join("Cargo.toml"),
        "[package]\nname = \"sled-fetch\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\
         [dependencies]\nsled = \"=0.34.7\"\n[workspace]\n",
    )
    .unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .arg("fetch")
        .arg("--manifest-path")
        .arg(dir.path().join("Cargo.toml"))
        .output()
        .expect("cargo runs");
    assert!(
        output.status.success(),
        "cargo fetch of sled 0.34.7 failed (this test needs crates.io once): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    registry_copy().expect("sled 0.34.7 in cargo's registry after the fetch")
}

/// Every file below `dir`, as paths relative to it, leaving out what `skip` names.
fn files(dir: &Path, skip: &[&str]) -> BTreeSet<String> {
    fn walk(base: &Path, dir: &Path, skip: &[&str], out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            let relative = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if skip.contains(&relative.as_str()) {
                continue;
            }
            if path.is_dir() {
                walk(base, &path, skip, out);
            } else {
                out.insert(relative);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(dir, dir, skip, &mut out);
    out
}

fn copy_tree(from: &Path, to: &Path) {
    for relative in files(from, &[]) {
        let target = to.join(&relative);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&relative), target).unwrap();
    }
}

#[test]
fn vendored_sled_is_the_published_crate_with_the_patch_files_applied() {
    let pristine = registry_copy().unwrap_or_else(fetch_registry_copy);
    let work = tempfile::tempdir().unwrap();
    copy_tree(&pristine, work.path());

    let mut patches: Vec<PathBuf> = std::fs::read_dir(root().join("vendor/sled-patches"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "patch"))
        .collect();
    patches.sort();
    assert!(!patches.is_empty(), "vendor/sled-patches holds no patch");
    for patch in &patches {
        let output = Command::new("git")
            .args(["apply", "-p1", "--whitespace=nowarn"])
            .arg(patch)
            .current_dir(work.path())
            .output()
            .expect("git runs");
        assert!(
            output.status.success(),
            "{} does not apply to sled 0.34.7: {}",
            patch.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let vendored = root().join("vendor/sled");
    let mut skip: Vec<&str> = LEFT_OUT.to_vec();
    skip.push(OURS);
    let expected = files(work.path(), &skip);
    let found = files(&vendored, &[OURS]);
    let missing: Vec<_> = expected.difference(&found).collect();
    let extra: Vec<_> = found.difference(&expected).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "vendor/sled's files differ from the published crate's: missing {missing:?}, extra {extra:?}"
    );
    let differing: Vec<&String> = expected
        .iter()
        .filter(|relative| {
            std::fs::read(work.path().join(relative)).unwrap()
                != std::fs::read(vendored.join(relative)).unwrap()
        })
        .collect();
    assert!(
        differing.is_empty(),
        "vendor/sled differs from sled 0.34.7 with vendor/sled-patches applied in {differing:?}: \
         put every change to sled in a patch file"
    );
}
