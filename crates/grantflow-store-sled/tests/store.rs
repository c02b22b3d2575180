//! The sled store's own ground: its data directory, marker, formats and snapshot files.
//! What every backend does is in the conformance suite (`conformance.rs`).
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use grantflow_store::{EventStore, StoreError};
use grantflow_store_sled::SledStore;

#[test]
fn not_a_store_on_a_foreign_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    match SledStore::open(dir.path()) {
        Err(StoreError::NotAStore { detail, .. }) => assert!(detail.contains("notes.txt")),
        other => panic!("expected NotAStore, got {other:?}"),
    }
    // Nothing was written into it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let file = dir.path().join("notes.txt");
    assert!(matches!(
        SledStore::open(&file),
        Err(StoreError::NotAStore { .. })
    ));
}

#[test]
fn open_existing_needs_a_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        SledStore::open_existing(&dir.path().join("absent")),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(matches!(
        SledStore::open_existing(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));
    assert!(!dir.path().join("absent").exists());
}

#[test]
fn garbage_marker_and_garbage_database_do_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("GRANTFLOW"), b"\xff\xfe not a marker").unwrap();
    assert!(matches!(
        SledStore::open(dir.path()),
        Err(StoreError::NotAStore { .. })
    ));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("GRANTFLOW"), b"grantflow store\nformat 3\n").unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(dir.path().join("db").join("db"), vec![0xA5; 100_000]).unwrap();
    std::fs::write(dir.path().join("db").join("conf"), b"garbage").unwrap();
    let result = SledStore::open(dir.path());
    assert!(result.is_err(), "{result:?}");
}

#[test]
fn newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("GRANTFLOW"),
        b"grantflow store\nformat 999\n",
    )
    .unwrap();
    match SledStore::open(dir.path()) {
        Err(StoreError::NewerFormat {
            found, supported, ..
        }) => {
            assert_eq!(found, 999);
            assert_eq!(supported, 4);
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
    assert!(!dir.path().join("db").exists());
}

#[test]
fn empty_directory_becomes_a_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    drop(store);
    let marker = std::fs::read_to_string(dir.path().join("GRANTFLOW")).unwrap();
    assert_eq!(marker, "grantflow store\nformat 4\n");
    SledStore::open_existing(dir.path()).unwrap();
}

/// The format byte of every log chunk in the database, and its format record.
fn chunk_formats_and_record(dir: &std::path::Path) -> (Vec<u8>, String) {
    let db = grantflow_store_sled::open_sled(&dir.join("db")).unwrap();
    let formats = db
        .scan_prefix(b"L")
        .map(|item| item.unwrap().1[0])
        .collect();
    let record = String::from_utf8(db.get(b"M").unwrap().unwrap().to_vec()).unwrap();
    (formats, record)
}

#[tokio::test]
async fn a_new_store_compresses_its_log_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    grantflow_store::testing::fill(&store, 200).await;
    let events = grantflow_store::testing::read_all(&store).await;
    store.close().await.unwrap();
    drop(store);
    let (formats, record) = chunk_formats_and_record(dir.path());
    assert!(!formats.is_empty());
    assert!(formats.iter().all(|format| *format == 3), "{formats:?}");
    assert_eq!(record, "grantflow store format 4");
    let store = SledStore::open(dir.path()).unwrap();
    assert_eq!(grantflow_store::testing::read_all(&store).await, events);
}

/// A store of format 3 (plain log chunks, as the builds before format 4 wrote them) opens,
/// reads, and takes new events in plain chunks, so that those builds can still open it.
#[tokio::test]
async fn a_store_of_format_3_keeps_its_plain_chunks_and_its_format() {
    let dir = tempfile::tempdir().unwrap();
    // A new database takes its marker's format.
    std::fs::write(dir.path().join("GRANTFLOW"), b"grantflow store\nformat 3\n").unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    grantflow_store::testing::fill(&store, 100).await;
    store.close().await.unwrap();
    drop(store);
    let store = SledStore::open(dir.path()).unwrap();
    grantflow_store::testing::fill(&store, 100).await;
    let events = grantflow_store::testing::read_all(&store).await;
    assert_eq!(events.len(), 200);
    let mut verifier = grantflow_store::envelope::ChainVerifier::new();
    assert!(events.iter().all(|event| verifier.check(event).is_ok()));
    store.close().await.unwrap();
    drop(store);
    let (formats, record) = chunk_formats_and_record(dir.path());
    assert!(formats.len() >= 2);
    assert!(formats.iter().all(|format| *format == 2), "{formats:?}");
    assert_eq!(record, "grantflow store format 3");
    let marker = std::fs::read_to_string(dir.path().join("GRANTFLOW")).unwrap();
    assert_eq!(marker, "grantflow store\nformat 3\n");
    let store = SledStore::open_read_only(dir.path()).unwrap();
    assert_eq!(grantflow_store::testing::read_all(&store).await, events);
}

#[tokio::test]
async fn a_marker_and_a_format_record_that_disagree_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.close().await.unwrap();
    drop(store);
    std::fs::write(dir.path().join("GRANTFLOW"), b"grantflow store\nformat 3\n").unwrap();
    match SledStore::open(dir.path()) {
        Err(StoreError::Corrupt { detail, .. }) => {
            assert!(detail.contains("says format 4"), "{detail}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[tokio::test]
async fn snapshots_live_in_files_checked_on_load() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    // What every backend does with snapshots is the conformance suite's; here, the files.
    store
        .save_snapshot("grants", 9, b"small".to_vec())
        .await
        .unwrap();
    // Each in its own file; odd names spelled in hex.
    assert!(data.join("snapshot-grants").is_file());
    store
        .save_snapshot("a/../b", 4, b"x".to_vec())
        .await
        .unwrap();
    assert!(data.join(format!("snapshot-x{}", hex("a/../b"))).is_file());
    assert_eq!(
        store.load_snapshot("a/../b").await.unwrap(),
        Some((4, b"x".to_vec()))
    );
    // A damaged file is refused, never read as figures.
    let file = data.join("snapshot-grants");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let damaged = store.load_snapshot("grants").await;
    assert!(
        matches!(&damaged, Err(StoreError::Corrupt { detail, .. }) if detail.contains("replay")),
        "{damaged:?}"
    );
    std::fs::write(&file, &bytes[..20]).unwrap();
    assert!(store.load_snapshot("grants").await.is_err());
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn an_older_format_is_refused_naming_it() {
    for format in [1, 2] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("GRANTFLOW"),
            format!("grantflow store\nformat {format}\n"),
        )
        .unwrap();
        match SledStore::open(dir.path()) {
            Err(
                error @ StoreError::UnsupportedFormat {
                    found, supported, ..
                },
            ) => {
                assert_eq!((found, supported), (format, 3));
                assert!(
                    error
                        .to_string()
                        .contains(&format!("store format {format}")),
                    "{error}"
                );
            }
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
        assert!(!dir.path().join("db").exists(), "nothing was written");
    }
}

#[tokio::test]
async fn a_database_of_an_older_format_is_refused() {
    // The marker says format 3, the database's own format record says 2.
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.close().await.unwrap();
    drop(store);
    {
        let db = grantflow_store_sled::open_sled(&dir.path().join("db")).unwrap();
        db.insert(b"M", &b"grantflow store format 2"[..]).unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(StoreError::UnsupportedFormat { found: 2, .. }) => {}
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

#[test]
fn exists_and_ensure() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    assert!(!SledStore::exists(&data));
    SledStore::ensure(&data).unwrap();
    assert!(SledStore::exists(&data));
    SledStore::ensure(&data).unwrap();
    SledStore::open_existing(&data).unwrap();
}
