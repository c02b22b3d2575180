//! Damage done behind the store's back is reported as `Corrupt`, never a panic.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::fill;
use grantflow_store::{EventStore, StoreError};
use grantflow_store_sled::SledStore;

/// A store of `count` events in `dir`, closed and dropped.
async fn make_store(dir: &Path, count: usize) {
    let store = SledStore::open(dir).unwrap();
    fill(&store, count).await;
    store.close().await.unwrap();
}

fn chunk_key(first: u64) -> Vec<u8> {
    let mut key = vec![b'L'];
    key.extend_from_slice(&first.to_be_bytes());
    key
}

fn tamper(dir: &Path, change: impl FnOnce(&sled::Db)) {
    let db = grantflow_store_sled::open_sled(&dir.join("db")).unwrap();
    change(&db);
    db.flush().unwrap();
}

#[tokio::test]
async fn head_and_log_disagreeing_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 5).await;
    tamper(dir.path(), |db| {
        let last = db.scan_prefix(b"L").last().unwrap().unwrap().0;
        db.remove(last).unwrap();
    });
    let result = SledStore::open(dir.path());
    assert!(
        matches!(result, Err(StoreError::Corrupt { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn undecodable_chunk_is_corrupt_on_read() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 3).await;
    // Two groups of 3: positions 4..=6 live in a chunk keyed 4.
    {
        let store = SledStore::open(dir.path()).unwrap();
        fill(&store, 3).await;
    }
    tamper(dir.path(), |db| {
        let value = db.get(chunk_key(1)).unwrap().unwrap();
        let mut bad = value.to_vec();
        bad.truncate(bad.len() - 10);
        db.insert(chunk_key(1), bad).unwrap();
    });
    let store = SledStore::open(dir.path()).unwrap();
    match store.read(1, 10).await {
        Err(StoreError::Corrupt { position, .. }) => assert_eq!(position, 1),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(store.read(4, 10).await.unwrap().len(), 3);
    let result = store.read_stream("grant-A", 1, 10).await;
    assert!(
        matches!(result, Err(StoreError::Corrupt { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn missing_chunk_is_corrupt_on_read() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 3).await;
    {
        let store = SledStore::open(dir.path()).unwrap();
        fill(&store, 3).await;
    }
    tamper(dir.path(), |db| {
        db.remove(chunk_key(1)).unwrap();
    });
    let store = SledStore::open(dir.path()).unwrap();
    match store.read(1, 10).await {
        Err(StoreError::Corrupt { position, .. }) => assert_eq!(position, 1),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// The chunk's body (after its format byte): a plain chunk's as it is, a compressed one's
/// (`3 ‖ body length (u32 LE) ‖ zstd frame`) decompressed.
fn chunk_body(value: &[u8]) -> Vec<u8> {
    match value[0] {
        2 => value[1..].to_vec(),
        3 => {
            let length = u32::from_le_bytes(value[1..5].try_into().unwrap()) as usize;
            zstd::bulk::decompress(&value[5..], length).unwrap()
        }
        other => panic!("chunk format {other}"),
    }
}

/// A chunk of the same format as `like` holding `body`.
fn chunk_value(like: &[u8], body: &[u8]) -> Vec<u8> {
    match like[0] {
        2 => [&[2u8][..], body].concat(),
        _ => {
            let frame = zstd::bulk::compress(body, 1).unwrap();
            [&[3u8][..], &(body.len() as u32).to_le_bytes(), &frame].concat()
        }
    }
}

/// An event's bytes edited inside its chunk (decompressed, edited, compressed again, as
/// someone who knows the format would) are caught by the hash chain, in a store of either
/// format.
#[tokio::test]
async fn edited_event_fails_verification() {
    for plain in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        if plain {
            std::fs::write(dir.path().join("GRANTFLOW"), b"grantflow store\nformat 3\n").unwrap();
        }
        make_store(dir.path(), 3).await;
        tamper(dir.path(), |db| {
            let value = db.get(chunk_key(1)).unwrap().unwrap();
            assert_eq!(value[0], if plain { 2 } else { 3 });
            let body = chunk_body(&value);
            let needle = b"alice";
            let at = body
                .windows(needle.len())
                .position(|w| w == needle)
                .unwrap();
            let mut bad = body.clone();
            bad[at..at + needle.len()].copy_from_slice(b"ALICE");
            db.insert(chunk_key(1), chunk_value(&value, &bad)).unwrap();
        });
        let store = SledStore::open(dir.path()).unwrap();
        let events = store.read(1, 10).await.unwrap();
        let mut verifier = grantflow_store::envelope::ChainVerifier::new();
        let error = events.iter().find_map(|e| verifier.check(e).err()).unwrap();
        assert_eq!(error.position(), Some(1));
    }
}

/// A command-index entry that names the wrong position is reported, not taken for an absent
/// command.
#[tokio::test]
async fn a_command_entry_naming_another_position_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    make_store(dir.path(), 5).await;
    tamper(dir.path(), |db| {
        let value = db.get(b"Cc2").unwrap().unwrap();
        assert_eq!(value.as_ref(), [&[2u8][..], &2u64.to_le_bytes()].concat());
        db.insert(b"Cc2", [&[2u8][..], &4u64.to_le_bytes()].concat())
            .unwrap();
    });
    let store = SledStore::open(dir.path()).unwrap();
    let found = store.commands(vec!["c1".to_string()]).await.unwrap();
    assert_eq!(found[0].as_ref().unwrap().events[0].position, 1);
    match store.commands(vec!["c2".to_string()]).await {
        Err(StoreError::Corrupt { position, detail }) => {
            assert_eq!(position, 4, "{detail}");
            assert!(detail.contains("\"c2\""), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
