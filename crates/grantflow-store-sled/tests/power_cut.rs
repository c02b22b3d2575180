//! Power cuts at the moments the store's own files change, through the lazy FUSE file system
//! (`crates/grantflow-lazyfs`, strict: data and directory entries durable only when synced):
//! a new store's creation, and sled's snapshot file written when a store is opened again.
//! Where FUSE cannot mount, each test says why and passes, unless GRANTFLOW_REQUIRE_FUSE is
//! set. The loops over whole processes are in the workspace's `tests/powercut.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::fill;
use grantflow_lazyfs::{LazyFs, Options};
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;
use grantflow_store_sled::REDO_FILE_NAMES;

/// A backing directory and a mountpoint, or `None` (with the reason printed) without FUSE.
fn dirs(test: &str) -> Option<(tempfile::TempDir, PathBuf, PathBuf)> {
    if let Some(reason) = LazyFs::unavailable() {
        assert!(
            std::env::var_os("GRANTFLOW_REQUIRE_FUSE").is_none(),
            "{test}: GRANTFLOW_REQUIRE_FUSE is set, but {reason}"
        );
        eprintln!("SKIPPED {test}: {reason}");
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&backing).unwrap();
    Some((tmp, backing, mnt))
}

fn mount(backing: &Path, mnt: &Path) -> LazyFs {
    LazyFs::mount(backing, mnt, Options::default()).unwrap()
}

/// sled's snapshot files in a database directory.
fn snapshots(db: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(db)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("snap."))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_whose_creation_was_cut_opens() {
    let Some((_tmp, backing, mnt)) = dirs("a_store_whose_creation_was_cut_opens") else {
        return;
    };
    // Nested, absent parents: every new directory's entry must be durable.
    let data = mnt.join("a").join("b").join("data");
    let fs_ = mount(&backing, &mnt);
    let store = SledStore::open(&data).unwrap();
    fill(&store, 3).await;
    drop(store);
    let report = fs_.cut().unwrap();
    eprintln!("{report}");
    let fs_ = mount(&backing, &mnt);
    let store = SledStore::open(&data).expect("the store opens after the cut");
    assert_eq!(
        store.head().await.unwrap().position,
        3,
        "acknowledged events"
    );
    store.close().await.unwrap();
    drop(store);
    fs_.unmount().unwrap();

    // Cut after the marker and sled's format record were durable, before the redo files'
    // names were (simulated: the files removed): nothing was acknowledged, the store opens.
    let fresh = backing.join("fresh");
    let store = SledStore::open(&fresh).unwrap();
    store.close().await.unwrap();
    drop(store);
    for name in REDO_FILE_NAMES {
        fs::remove_file(fresh.join(name)).unwrap();
    }
    let store = SledStore::open(&fresh).expect("a store with no event and no redo files opens");
    fill(&store, 2).await;
    store.close().await.unwrap();
    drop(store);
    // With events, missing redo files are still refused.
    for name in REDO_FILE_NAMES {
        fs::remove_file(fresh.join(name)).unwrap();
    }
    let refused = SledStore::open(&fresh).map(drop).unwrap_err().to_string();
    assert!(refused.contains("are missing"), "{refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sleds_snapshot_written_at_open_survives_a_cut() {
    let Some((_tmp, backing, mnt)) = dirs("sleds_snapshot_written_at_open_survives_a_cut") else {
        return;
    };
    let data = mnt.join("data");
    let fs_ = mount(&backing, &mnt);
    let store = SledStore::open(&data).unwrap();
    fill(&store, 50).await;
    store.close().await.unwrap();
    drop(store);
    // Opened again: sled's recovery writes a new snapshot, renames it into place and removes
    // the older ones; nothing of grantflow's syncs sled's directory before the cut.
    let store = SledStore::open(&data).unwrap();
    let at_open = snapshots(&data.join("db"));
    assert!(!at_open.is_empty(), "sled wrote no snapshot");
    drop(store);
    let report = fs_.cut().unwrap();
    eprintln!("{report}");
    let fs_ = mount(&backing, &mnt);
    assert_eq!(
        snapshots(&data.join("db")),
        at_open,
        "the snapshot sled wrote at open is durable (vendor/sled patch 0005)"
    );
    let store = SledStore::open(&data).expect("the store opens after the cut");
    assert_eq!(store.head().await.unwrap().position, 50);
    drop(store);
    fs_.unmount().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_sled_conf_is_refused_naming_the_events_at_stake() {
    // What a power cut left of sled's `conf` when sled did not fsync it (before vendor/sled
    // patch 0005): an empty file. sled cannot open the database without it.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    fill(&store, 7).await;
    drop(store);
    let conf = data.join("db").join("conf");
    let good = fs::read(&conf).unwrap();
    fs::write(&conf, b"").unwrap();
    for open in [SledStore::open_existing, SledStore::open_read_only] {
        let refused = open(&data).map(drop).unwrap_err().to_string();
        assert!(refused.contains("holds no valid segment_size"), "{refused}");
        assert!(
            refused.contains("events 1..7 as acknowledged"),
            "names the events at stake: {refused}"
        );
        assert!(
            !refused.contains("grantflow-read-"),
            "names the data directory, not a copy: {refused}"
        );
    }
    fs::write(&conf, good).unwrap();
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.head().await.unwrap().position, 7);
}
