//! A data directory is its owner's only: the directory and every directory under it 0700,
//! every file 0600 (the marker, the redo log, snapshots, sled's own files), whatever the
//! process's umask; files the store writes beside and renames are created with `O_EXCL` and
//! `O_NOFOLLOW`, so a planted symbolic link is never written through.
//! (Its own test binary: it sets the process's umask.)
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::fill;
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;

/// Every entry under `dir` (itself included) with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, bool, u32)> {
    let mut found = Vec::new();
    let meta = std::fs::symlink_metadata(dir).unwrap();
    found.push((
        dir.to_path_buf(),
        meta.is_dir(),
        meta.permissions().mode() & 0o7777,
    ));
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            found.extend(modes(&entry.unwrap().path()));
        }
    }
    found
}

fn assert_owner_only(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for (path, is_dir, mode) in modes(dir) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} has mode {mode:04o}", path.display());
        names.push(path.strip_prefix(dir).unwrap().display().to_string());
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_store_is_its_owners_only_whatever_the_umask() {
    // The umask most systems give: files 0644 and directories 0755 unless asked otherwise.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    fill(&store, 300).await;
    store
        .save_snapshot("grants", 300, b"projection".to_vec())
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    // Reopened, written again and closed: sled writes new snapshot files of its own.
    let store = SledStore::open(&data).unwrap();
    fill(&store, 300).await;
    store
        .save_snapshot("grants", 600, b"projection 2".to_vec())
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);

    let names = assert_owner_only(&data);
    for expected in [
        "GRANTFLOW",
        "redo-0",
        "redo-1",
        "snapshot-grants",
        "db",
        "db/db",
        "db/conf",
    ] {
        assert!(
            names.iter().any(|name| name == expected),
            "{expected} missing: {names:?}"
        );
    }
    assert!(
        names.iter().any(|name| name.starts_with("db/snap.")),
        "no sled snapshot: {names:?}"
    );

    // A verb that only reads opens a private copy: as private as the store.
    let copy = SledStore::open_read_only(&data).unwrap();
    assert_eq!(copy.head().await.unwrap().position, 600);
    let copy_root = copy.path().parent().unwrap().to_path_buf();
    assert_owner_only(&copy_root);
    drop(copy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planted_link_at_a_temporary_file_is_never_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    fill(&store, 3).await;
    // Someone who could write the directory plants a link where the next snapshot's
    // temporary file goes, pointing at a file of theirs (or one they want overwritten).
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"untouched").unwrap();
    std::os::unix::fs::symlink(&victim, data.join("snapshot-grants.tmp")).unwrap();
    store
        .save_snapshot("grants", 3, b"projection".to_vec())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
    let snapshot = std::fs::symlink_metadata(data.join("snapshot-grants")).unwrap();
    assert!(
        snapshot.is_file(),
        "the snapshot is a file, not the planted link"
    );
    assert_eq!(snapshot.permissions().mode() & 0o7777, 0o600);
    assert_eq!(
        store
            .load_snapshot("grants")
            .await
            .unwrap()
            .map(|(_, bytes)| bytes),
        Some(b"projection".to_vec())
    );
    store.close().await.unwrap();
}
