//! The sled store: append, read, conflicts, reopen, import, markers, snapshots.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;

use common::{append, command, event, fill, temp_store};
use grantflow_store::envelope::ChainVerifier;
use grantflow_store::{
    AppendBatch, AppendCommand, Envelope, EventStore, SledStore, StoreError, READ_EVENTS_MAX,
    ZERO_HASH,
};

async fn read_all(store: &dyn EventStore) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let page = store.read(out.len() as u64 + 1, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

#[tokio::test]
async fn append_then_read_by_position_and_stream() {
    let (_dir, store) = temp_store();
    assert_eq!(store.head().await.unwrap().position, 0);
    assert_eq!(store.head().await.unwrap().hash, ZERO_HASH);
    let refs = append(
        &store,
        vec![
            command("c1", &["fund-F", "grant-G"]),
            command("c2", &["grant-G"]),
        ],
    )
    .await;
    assert_eq!(refs.len(), 2);
    assert_eq!(
        refs[0]
            .iter()
            .map(|r| (r.position, r.version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (2, 1)]
    );
    assert_eq!(refs[1][0].position, 3);
    assert_eq!(refs[1][0].version, 2);
    assert_eq!(refs[1][0].stream, "grant-G");
    assert_eq!(refs[1][0].event_type, "grant.tested");

    let events = store.read(1, 100).await.unwrap();
    assert_eq!(events.len(), 3);
    let mut verifier = ChainVerifier::new();
    for e in &events {
        verifier.check(e).unwrap();
        assert_eq!(Envelope::from_line(&e.to_line()).unwrap(), *e);
    }
    assert_eq!(events[0].payload, event("x", "t", "c", 0).payload);
    assert_eq!(store.head().await.unwrap().hash, events[2].hash);
    assert_eq!(
        store.head().await.unwrap().recorded_at,
        events[2].recorded_at
    );

    assert_eq!(store.read(2, 1).await.unwrap(), vec![events[1].clone()]);
    assert!(store.read(4, 10).await.unwrap().is_empty());
    assert!(store.read(1, 0).await.unwrap().is_empty());
    assert_eq!(store.read(0, 10).await.unwrap().len(), 3);

    let grant = store.read_stream("grant-G", 1, 10).await.unwrap();
    assert_eq!(
        grant.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let grant = store.read_stream("grant-G", 2, 10).await.unwrap();
    assert_eq!(grant.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
    assert!(store
        .read_stream("grant-X", 1, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.read_stream("grant", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_version("grant-G").await.unwrap(), 2);
    assert_eq!(store.stream_version("fund-F").await.unwrap(), 1);
    assert_eq!(store.stream_version("nope").await.unwrap(), 0);

    let record = store.command("c1").await.unwrap().unwrap();
    assert_eq!(record.body_hash, Some([7; 32]));
    assert_eq!(record.events, refs[0]);
    assert!(store.command("c3").await.unwrap().is_none());
}

#[tokio::test]
async fn reads_are_bounded() {
    let (_dir, store) = temp_store();
    fill(&store, READ_EVENTS_MAX + 5).await;
    assert_eq!(
        store.read(1, usize::MAX).await.unwrap().len(),
        READ_EVENTS_MAX
    );
    let tail = store
        .read(READ_EVENTS_MAX as u64, usize::MAX)
        .await
        .unwrap();
    assert_eq!(tail.len(), 6);
    let stream = store.read_stream("grant-A", 1, usize::MAX).await.unwrap();
    assert_eq!(stream.len(), (READ_EVENTS_MAX + 5) / 3);
    for (i, e) in stream.iter().enumerate() {
        assert_eq!(e.version, i as u64 + 1);
    }
    let from_middle = store.read_stream("grant-A", 1000, 10).await.unwrap();
    assert_eq!(from_middle.first().unwrap().version, 1000);
    assert_eq!(from_middle.len(), 10);
}

#[tokio::test]
async fn multi_stream_batch_is_all_or_nothing() {
    let (_dir, store) = temp_store();
    append(&store, vec![command("c1", &["fund-F", "grant-G"])]).await;
    let before = store.head().await.unwrap();
    let result = store
        .append(AppendBatch {
            expected_head: 2,
            expected_versions: vec![("fund-F".into(), 1), ("grant-G".into(), 0)],
            commands: vec![command("c2", &["fund-F", "grant-G", "grant-H"])],
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.head().await.unwrap(), before);
    assert_eq!(store.stream_version("fund-F").await.unwrap(), 1);
    assert_eq!(store.stream_version("grant-H").await.unwrap(), 0);
    assert!(store.command("c2").await.unwrap().is_none());
    assert_eq!(read_all(&store).await.len(), 2);
    // The same batch with the right versions goes through whole.
    let refs = append(
        &store,
        vec![command("c2", &["fund-F", "grant-G", "grant-H"])],
    )
    .await;
    assert_eq!(
        refs[0].iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
}

#[tokio::test]
async fn expected_head_conflict() {
    let (_dir, store) = temp_store();
    fill(&store, 3).await;
    let before = store.head().await.unwrap();
    for expected_head in [0, 2, 4] {
        let result = store
            .append(AppendBatch {
                expected_head,
                expected_versions: vec![],
                commands: vec![command("x", &["grant-Z"])],
            })
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    }
    assert_eq!(store.head().await.unwrap(), before);
}

#[tokio::test]
async fn an_id_looked_up_as_absent_is_still_refused_once_recorded() {
    // The store remembers ids a lookup found absent, to skip looking them up again on the
    // append that follows; an append in between must make it forget them.
    let (_dir, store) = temp_store();
    let refused = |expected_head: u64, commands: Vec<AppendCommand>| {
        let store = &store;
        async move {
            let result = store
                .append(AppendBatch {
                    expected_head,
                    expected_versions: vec![],
                    commands,
                })
                .await;
            assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
        }
    };
    let ids = vec!["x1".to_string(), "x2".to_string()];
    assert_eq!(store.commands(ids.clone()).await.unwrap(), vec![None, None]);
    append(&store, vec![command("x1", &["grant-G"])]).await;
    refused(1, vec![command("x1", &["grant-H"])]).await;
    // Looked up absent, then recorded: the next append of it is refused too.
    assert_eq!(store.commands(ids.clone()).await.unwrap()[1], None);
    append(&store, vec![command("x2", &["grant-G"])]).await;
    refused(2, vec![command("x2", &["grant-H"])]).await;
    // An id looked up absent and appended in the same batch twice is refused.
    assert_eq!(
        store.commands(vec!["x3".to_string()]).await.unwrap(),
        vec![None]
    );
    refused(
        2,
        vec![command("x3", &["grant-H"]), command("x3", &["grant-H"])],
    )
    .await;
    assert_eq!(store.head().await.unwrap().position, 2);
    let known = store.commands(ids).await.unwrap();
    assert!(known.iter().all(Option::is_some), "{known:?}");
}

#[tokio::test]
async fn reused_command_id_is_a_conflict() {
    let (_dir, store) = temp_store();
    append(&store, vec![command("c1", &["grant-G"])]).await;
    for commands in [
        vec![command("c1", &["grant-H"])],
        vec![command("c2", &["grant-H"]), command("c2", &["grant-H"])],
    ] {
        let result = store
            .append(AppendBatch {
                expected_head: 1,
                expected_versions: vec![],
                commands,
            })
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    }
    assert_eq!(store.head().await.unwrap().position, 1);
}

#[tokio::test]
async fn a_fresh_id_is_recorded_like_any_other_and_still_refused_twice_in_one_batch() {
    let (_dir, store) = temp_store();
    let fresh = |id: &str| AppendCommand {
        fresh_id: true,
        ..command(id, &["grant-F"])
    };
    append(&store, vec![fresh("f1")]).await;
    let known = store.command("f1").await.unwrap().expect("recorded");
    assert_eq!(known.events[0].position, 1);
    // A client sending that id later is looked up (not fresh) and refused.
    let reused = store
        .append(AppendBatch {
            expected_head: 1,
            expected_versions: vec![("grant-F".into(), 1)],
            commands: vec![command("f1", &["grant-F"])],
        })
        .await;
    assert!(matches!(reused, Err(StoreError::Conflict(_))), "{reused:?}");
    let twice = store
        .append(AppendBatch {
            expected_head: 1,
            expected_versions: vec![("grant-F".into(), 1)],
            commands: vec![fresh("f2"), fresh("f2")],
        })
        .await;
    assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
    assert_eq!(store.head().await.unwrap().position, 1);
}

#[tokio::test]
async fn bad_events_are_refused_before_writing() {
    let (_dir, store) = temp_store();
    let bad_payloads = ["[1]", "{\"a\": 1}", "{", "", "\"x\""];
    for payload in bad_payloads {
        let mut cmd = command("c1", &["grant-G"]);
        cmd.events[0].payload = payload.to_string();
        let result = store
            .append(AppendBatch {
                expected_head: 0,
                expected_versions: vec![],
                commands: vec![cmd],
            })
            .await;
        assert!(result.is_err(), "{payload}");
    }
    let mut big = command("c1", &["grant-G"]);
    big.events[0].payload = format!("{{\"x\":\"{}\"}}", "a".repeat(200_000));
    let mut nul = command("c1", &["grant-G"]);
    nul.events[0].stream = "grant-\0".to_string();
    for cmd in [big, nul] {
        let result = store
            .append(AppendBatch {
                expected_head: 0,
                expected_versions: vec![],
                commands: vec![cmd],
            })
            .await;
        assert!(result.is_err());
    }
    assert_eq!(store.head().await.unwrap().position, 0);
}

#[tokio::test]
async fn large_groups_span_several_chunks() {
    let (_dir, store) = temp_store();
    // ~20 KiB events: two per chunk at most.
    let commands: Vec<AppendCommand> = (0..25)
        .map(|i| {
            let mut cmd = command(&format!("c{i}"), &["grant-G"]);
            cmd.events[0].payload = format!("{{\"i\":{i},\"x\":\"{}\"}}", "b".repeat(20_000));
            cmd
        })
        .collect();
    append(&store, commands).await;
    let events = read_all(&store).await;
    assert_eq!(events.len(), 25);
    let mut verifier = ChainVerifier::new();
    for e in &events {
        verifier.check(e).unwrap();
    }
    for position in 1..=25 {
        assert_eq!(store.read(position, 1).await.unwrap()[0].position, position);
    }
}

#[tokio::test]
async fn empty_batch_writes_nothing() {
    let (_dir, store) = temp_store();
    let refs = store.append(AppendBatch::default()).await.unwrap();
    assert!(refs.is_empty());
    assert_eq!(store.head().await.unwrap().position, 0);
}

#[tokio::test]
async fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (head, events) = {
        let store = SledStore::open(&data).unwrap();
        fill(&store, 50).await;
        append(&store, vec![command("multi", &["grant-A", "grant-Q"])]).await;
        let head = store.head().await.unwrap();
        let events = read_all(&store).await;
        store.close().await.unwrap();
        (head, events)
    };
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(read_all(&store).await, events);
    assert_eq!(store.stream_version("grant-A").await.unwrap(), 17);
    assert_eq!(store.stream_version("grant-Q").await.unwrap(), 1);
    let record = store.command("multi").await.unwrap().unwrap();
    assert_eq!(record.body_hash, Some([7; 32]));
    assert_eq!(
        record.events.iter().map(|r| r.position).collect::<Vec<_>>(),
        vec![51, 52]
    );
    assert_eq!(
        store.command("c7").await.unwrap().unwrap().events[0].position,
        7
    );
    // And it keeps appending from there.
    append(&store, vec![command("after", &["grant-A"])]).await;
    let events = read_all(&store).await;
    assert_eq!(events.len(), 53);
    assert_eq!(events[52].prev_hash, head.hash);
    assert_eq!(events[52].version, 18);
    drop(store);
    let store = SledStore::open_existing(&data).unwrap();
    assert_eq!(store.head().await.unwrap().position, 53);
}

#[tokio::test]
async fn closed_store_refuses_writes() {
    let (_dir, store) = temp_store();
    fill(&store, 1).await;
    store.close().await.unwrap();
    let result = store
        .append(AppendBatch {
            expected_head: 1,
            expected_versions: vec![],
            commands: vec![command("late", &["grant-G"])],
        })
        .await;
    assert!(matches!(result, Err(StoreError::Io(_))));
    assert_eq!(store.read(1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn recorded_at_never_goes_back() {
    let (_dir, store) = temp_store();
    for _ in 0..20 {
        fill(&store, 3).await;
    }
    let events = read_all(&store).await;
    for pair in events.windows(2) {
        assert!(pair[0].recorded_at <= pair[1].recorded_at);
    }
    for e in &events {
        assert!(grantflow_store::envelope::is_valid_recorded_at(
            &e.recorded_at
        ));
    }
}

#[tokio::test]
async fn import_of_an_export_gives_the_same_head() {
    let (_dir, source) = temp_store();
    fill(&source, 40).await;
    append(
        &source,
        vec![command("multi", &["grant-A", "grant-Q", "fund-F"])],
    )
    .await;
    let lines: Vec<String> = read_all(&source)
        .await
        .iter()
        .map(Envelope::to_line)
        .collect();
    let events: Vec<Envelope> = lines
        .iter()
        .map(|l| Envelope::from_line(l).unwrap())
        .collect();

    let (_dir2, target) = temp_store();
    target.import(events.clone()).await.unwrap();
    assert_eq!(target.head().await.unwrap(), source.head().await.unwrap());
    assert_eq!(read_all(&target).await, events);
    assert_eq!(target.stream_version("grant-A").await.unwrap(), 14);
    let imported = target.command("multi").await.unwrap().unwrap();
    assert_eq!(imported.body_hash, None);
    assert_eq!(
        imported.events,
        source.command("multi").await.unwrap().unwrap().events
    );
    assert_eq!(
        target.read_stream("fund-F", 1, 100).await.unwrap(),
        source.read_stream("fund-F", 1, 100).await.unwrap()
    );
    // Appending continues the imported chain.
    append(&target, vec![command("next", &["grant-A"])]).await;
    assert_eq!(events.len(), 43);
    let last = target.read(44, 1).await.unwrap().remove(0);
    assert_eq!(last.prev_hash, events[42].hash);
    assert_eq!(last.version, 15);
}

#[tokio::test]
async fn import_in_several_groups_and_onto_a_prefix() {
    let (_dir, source) = temp_store();
    fill(&source, 12_345).await;
    let events = read_all(&source).await;
    let (_dir2, target) = temp_store();
    target.import(events[..100].to_vec()).await.unwrap();
    target.import(events[100..].to_vec()).await.unwrap();
    assert_eq!(target.head().await.unwrap(), source.head().await.unwrap());
    assert_eq!(read_all(&target).await, events);
    assert_eq!(target.stream_version("fund-F").await.unwrap(), 4115);
}

#[tokio::test]
async fn import_refuses_bad_files_and_writes_nothing() {
    let (_dir, source) = temp_store();
    fill(&source, 10).await;
    let events = read_all(&source).await;

    let mut tampered = events.clone();
    tampered[5].actor = "mallory".to_string();
    let mut rehashed = events.clone();
    rehashed[5].payload = "{\"n\":99}".to_string();
    rehashed[5].hash = rehashed[5].compute_hash();
    let mut reordered = events.clone();
    reordered.swap(6, 7);
    let mut duplicated = events.clone();
    duplicated.insert(4, events[3].clone());
    let mut dropped = events.clone();
    dropped.remove(8);
    let mut late_first = events.clone();
    late_first.remove(0);

    let cases = [
        ("tampered", tampered, 6),
        ("rehashed", rehashed, 7),
        ("reordered", reordered, 7),
        ("duplicated", duplicated, 5),
        ("dropped", dropped, 9),
        ("missing first", late_first, 1),
    ];
    let (_dir2, target) = temp_store();
    for (name, bad, position) in cases {
        match target.import(bad).await {
            Err(StoreError::ImportRefused {
                position: p,
                detail,
            }) => {
                assert_eq!(p, position, "{name}: {detail}")
            }
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
        assert_eq!(target.head().await.unwrap().position, 0, "{name}");
        assert!(target.read(1, 10).await.unwrap().is_empty(), "{name}");
        assert!(target.command("c1").await.unwrap().is_none(), "{name}");
        assert_eq!(target.stream_version("grant-A").await.unwrap(), 0, "{name}");
    }
    // Importing the same log twice: the second does not continue the chain.
    target.import(events.clone()).await.unwrap();
    let result = target.import(events.clone()).await;
    assert!(
        matches!(result, Err(StoreError::ImportRefused { position: 11, .. })),
        "{result:?}"
    );
    assert_eq!(target.head().await.unwrap().position, 10);
}

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
    std::fs::write(dir.path().join("GRANTFLOW"), b"grantflow store\nformat 1\n").unwrap();
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
            assert_eq!(supported, 3);
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
    assert_eq!(marker, "grantflow store\nformat 3\n");
    SledStore::open_existing(dir.path()).unwrap();
}

#[tokio::test]
async fn snapshots_save_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.load_snapshot("grants").await.unwrap(), None);
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    store.save_snapshot("grants", 7, big.clone()).await.unwrap();
    assert_eq!(store.load_snapshot("grants").await.unwrap(), Some((7, big)));
    store
        .save_snapshot("grants", 9, b"small".to_vec())
        .await
        .unwrap();
    store.save_snapshot("funds", 3, Vec::new()).await.unwrap();
    assert_eq!(
        store.load_snapshot("grants").await.unwrap(),
        Some((9, b"small".to_vec()))
    );
    drop(store);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(
        store.load_snapshot("grants").await.unwrap(),
        Some((9, b"small".to_vec()))
    );
    assert_eq!(
        store.load_snapshot("funds").await.unwrap(),
        Some((3, Vec::new()))
    );
    assert_eq!(store.load_snapshot("other").await.unwrap(), None);
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

#[tokio::test]
async fn a_snapshot_kept_in_sled_is_read_then_moved_to_its_file() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    drop(SledStore::open(&data).unwrap());
    // As a store written before snapshot files kept it: header `P`, parts `Q`.
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 13) as u8).collect();
    {
        let db = grantflow_store::sled_store::open_sled(&data.join("db")).unwrap();
        let parts: Vec<&[u8]> = bytes.chunks(64 * 1024).collect();
        let mut header = 5u64.to_be_bytes().to_vec();
        header.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        header.extend_from_slice(&(parts.len() as u32).to_be_bytes());
        header.extend_from_slice(&sha2::Sha256::digest(&bytes));
        db.insert(b"Pworld", header).unwrap();
        for (index, part) in (0u32..).zip(parts) {
            let mut key = b"Qworld\0".to_vec();
            key.extend_from_slice(&index.to_be_bytes());
            db.insert(key, part).unwrap();
        }
        db.flush().unwrap();
    }
    let store = SledStore::open(&data).unwrap();
    assert_eq!(
        store.load_snapshot("world").await.unwrap(),
        Some((5, bytes.clone()))
    );
    store
        .save_snapshot("world", 6, b"new".to_vec())
        .await
        .unwrap();
    store.close().await.unwrap();
    drop(store);
    let db = grantflow_store::sled_store::open_sled(&data.join("db")).unwrap();
    assert_eq!(db.scan_prefix(b"Pworld").count(), 0, "moved out of sled");
    assert_eq!(db.scan_prefix(b"Qworld").count(), 0, "moved out of sled");
    drop(db);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(
        store.load_snapshot("world").await.unwrap(),
        Some((6, b"new".to_vec()))
    );
}

#[tokio::test]
async fn concurrent_readers_see_only_durable_events() {
    let (_dir, store) = temp_store();
    let store: Arc<dyn EventStore> = Arc::new(store);
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for _ in 0..50 {
                fill(store.as_ref(), 20).await;
            }
        })
    };
    let mut seen = 0;
    while seen < 1000 {
        let head = store.head().await.unwrap().position;
        let events = store.read(1, READ_EVENTS_MAX).await.unwrap();
        assert!(events.len() as u64 >= head);
        let mut verifier = ChainVerifier::new();
        for e in &events {
            verifier.check(e).unwrap();
        }
        seen = events.len();
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn payload_pages_hold_what_the_envelopes_hold() {
    let (_dir, store) = temp_store();
    fill(&store, 700).await;
    append(&store, vec![command("multi", &["grant-A", "grant-Q"])]).await;
    for (from, limit) in [(1, 702), (5, 100), (650, 1000), (702, 1), (703, 10)] {
        let envelopes = store.read(from, limit).await.unwrap();
        let page = store.read_payloads(from, limit).await.unwrap();
        assert_eq!(page.len(), envelopes.len());
        assert_eq!(page.is_empty(), envelopes.is_empty());
        assert_eq!(page.last_position(), envelopes.last().map(|e| e.position));
        let mut records = Vec::new();
        page.visit(|record| {
            records.push((
                record.position,
                record.event_type.to_string(),
                record.payload.to_string(),
            ));
            Ok::<(), StoreError>(())
        })
        .unwrap();
        let expected: Vec<_> = envelopes
            .iter()
            .map(|e| (e.position, e.event_type.clone(), e.payload.clone()))
            .collect();
        assert_eq!(records, expected);
    }
}
