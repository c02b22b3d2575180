//! The conformance suite of [`EventStore`]: what every backend must do, one `pub async fn`
//! per property, each given a [`Backend`] that makes fresh stores and opens them again.
//! [`crate::conformance_suite!`] declares them as tests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::envelope::{is_valid_recorded_at, ChainVerifier};
use crate::subscription::{subscribe, SUBSCRIPTION_PAGE_EVENTS};
use crate::{
    AppendBatch, AppendCommand, Envelope, EventStore, StoreError, READ_EVENTS_MAX, ZERO_HASH,
};
use futures::StreamExt;

use super::{append, command, event, fill, read_all, Backend};

/// How long a subscription may take to deliver an event.
const WAIT: Duration = Duration::from_secs(20);

/// Append then read by position and stream.
pub async fn append_then_read_by_position_and_stream(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    assert_eq!(store.head().await.unwrap().position, 0);
    assert_eq!(store.head().await.unwrap().hash, ZERO_HASH);
    let refs = append(
        store,
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
    assert_eq!(events[1].actor, "alice");
    assert_eq!(events[1].command_id, "c1");
    assert_eq!(store.head().await.unwrap().hash, events[2].hash);
    assert_eq!(
        store.head().await.unwrap().recorded_at,
        events[2].recorded_at
    );

    assert_eq!(store.read(2, 1).await.unwrap(), vec![events[1].clone()]);
    assert!(store.read(4, 10).await.unwrap().is_empty());
    assert!(store.read(1, 0).await.unwrap().is_empty());
    assert!(store.read(u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(store.read(0, 10).await.unwrap().len(), 3);

    let grant = store.read_stream("grant-G", 1, 10).await.unwrap();
    assert_eq!(
        grant.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![2, 3]
    );
    let grant = store.read_stream("grant-G", 2, 10).await.unwrap();
    assert_eq!(grant.iter().map(|e| e.version).collect::<Vec<_>>(), vec![2]);
    assert_eq!(grant[0], events[2]);
    assert!(store
        .read_stream("grant-X", 1, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.read_stream("grant", 1, 10).await.unwrap().is_empty());
    assert!(store.read_stream("", 1, 10).await.unwrap().is_empty());
    assert_eq!(store.stream_version("grant-G").await.unwrap(), 2);
    assert_eq!(store.stream_version("fund-F").await.unwrap(), 1);
    assert_eq!(store.stream_version("nope").await.unwrap(), 0);

    let record = store.command("c1").await.unwrap().unwrap();
    assert_eq!(record.command_id, "c1");
    assert_eq!(record.body_hash, Some([7; 32]));
    assert_eq!(record.events, refs[0]);
    assert!(store.command("c3").await.unwrap().is_none());
}

/// Reads are bounded.
pub async fn reads_are_bounded(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    fill(store, READ_EVENTS_MAX + 5).await;
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

/// Multi stream batch is all or nothing.
pub async fn multi_stream_batch_is_all_or_nothing(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    append(store, vec![command("c1", &["fund-F", "grant-G"])]).await;
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
    assert_eq!(read_all(store).await.len(), 2);
    // A new stream expected at a version it does not have.
    let result = store
        .append(AppendBatch {
            expected_head: 2,
            expected_versions: vec![("grant-New".into(), 3)],
            commands: vec![command("c2", &["grant-New"])],
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    assert_eq!(store.head().await.unwrap(), before);
    // The same batch with the right versions goes through whole.
    let refs = append(
        store,
        vec![command("c2", &["fund-F", "grant-G", "grant-H"])],
    )
    .await;
    assert_eq!(
        refs[0].iter().map(|r| r.version).collect::<Vec<_>>(),
        vec![2, 2, 1]
    );
    assert_eq!(store.head().await.unwrap().position, 5);
}

/// Expected head conflict.
pub async fn expected_head_conflict(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    fill(store, 3).await;
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
    assert!(store.command("x").await.unwrap().is_none());
    assert_eq!(store.stream_version("grant-Z").await.unwrap(), 0);
}

/// Reused command id is a conflict.
pub async fn reused_command_id_is_a_conflict(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    append(store, vec![command("c1", &["grant-G"])]).await;
    for commands in [
        vec![command("c1", &["grant-H"])],
        vec![command("c2", &["grant-H"]), command("c2", &["grant-H"])],
        vec![command("c3", &["grant-H"]), command("c1", &["grant-H"])],
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
    assert!(store.command("c3").await.unwrap().is_none());
    assert_eq!(
        store.command("c1").await.unwrap().unwrap().events[0].stream,
        "grant-G"
    );
}

/// Bad events are refused before writing.
pub async fn bad_events_are_refused_before_writing(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
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
        assert!(
            matches!(result, Err(StoreError::Invalid(_))),
            "{payload}: {result:?}"
        );
    }
    let mut big = command("c1", &["grant-G"]);
    big.events[0].payload = format!("{{\"x\":\"{}\"}}", "a".repeat(200_000));
    let mut nul = command("c1", &["grant-G"]);
    nul.events[0].stream = "grant-\0".to_string();
    let mut empty_id = command("c1", &["grant-G"]);
    empty_id.command_id = String::new();
    for cmd in [big, nul, empty_id] {
        let result = store
            .append(AppendBatch {
                expected_head: 0,
                expected_versions: vec![],
                commands: vec![cmd],
            })
            .await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
    }
    assert_eq!(store.head().await.unwrap().position, 0);
    assert!(store.command("c1").await.unwrap().is_none());
}

/// Large groups.
pub async fn large_groups(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    // ~20 KiB events (several sled chunks; many rows in one PostgreSQL INSERT).
    let commands: Vec<AppendCommand> = (0..25)
        .map(|i| {
            let mut cmd = command(&format!("c{i}"), &["grant-G"]);
            cmd.events[0].payload = format!("{{\"i\":{i},\"x\":\"{}\"}}", "b".repeat(20_000));
            cmd
        })
        .collect();
    append(store, commands).await;
    let events = read_all(store).await;
    assert_eq!(events.len(), 25);
    let mut verifier = ChainVerifier::new();
    for e in &events {
        verifier.check(e).unwrap();
    }
    for position in 1..=25 {
        assert_eq!(store.read(position, 1).await.unwrap()[0].position, position);
    }
}

/// Empty batch writes nothing.
pub async fn empty_batch_writes_nothing(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    let refs = store.append(AppendBatch::default()).await.unwrap();
    assert!(refs.is_empty());
    assert_eq!(store.head().await.unwrap().position, 0);
    // An empty batch is still checked against the head.
    let result = store
        .append(AppendBatch {
            expected_head: 3,
            ..AppendBatch::default()
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
}

/// Reopen keeps everything.
pub async fn reopen_keeps_everything(b: Arc<dyn Backend>) {
    let (store, location) = b.create().await;
    fill(store.as_ref(), 50).await;
    append(
        store.as_ref(),
        vec![command("multi", &["grant-A", "grant-Q"])],
    )
    .await;
    let head = store.head().await.unwrap();
    let events = read_all(store.as_ref()).await;
    store.close().await.unwrap();
    drop(store);

    let store = b.reopen(&location).await;
    let store = store.as_ref();
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(read_all(store).await, events);
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
    append(store, vec![command("after", &["grant-A"])]).await;
    let events = read_all(store).await;
    assert_eq!(events.len(), 53);
    assert_eq!(events[52].prev_hash, head.hash);
    assert_eq!(events[52].version, 18);
    let mut verifier = ChainVerifier::new();
    for e in &events {
        verifier.check(e).unwrap();
    }
}

/// Closed store refuses writes.
pub async fn closed_store_refuses_writes(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    fill(store.as_ref(), 1).await;
    store.close().await.unwrap();
    let result = store
        .append(AppendBatch {
            expected_head: 1,
            expected_versions: vec![],
            commands: vec![command("late", &["grant-G"])],
        })
        .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{result:?}"
    );
    assert_eq!(store.read(1, 10).await.unwrap().len(), 1);
    assert_eq!(store.head().await.unwrap().position, 1);
}

/// Recorded at never goes back.
pub async fn recorded_at_never_goes_back(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    for _ in 0..20 {
        fill(store, 3).await;
    }
    let events = read_all(store).await;
    assert_eq!(events.len(), 60);
    for pair in events.windows(2) {
        assert!(pair[0].recorded_at <= pair[1].recorded_at);
    }
    for e in &events {
        assert!(is_valid_recorded_at(&e.recorded_at));
    }
}

/// Import of an export gives the same head.
pub async fn import_of_an_export_gives_the_same_head(b: Arc<dyn Backend>) {
    let (source, _) = b.create().await;
    let source = source.as_ref();
    fill(source, 40).await;
    append(
        source,
        vec![command("multi", &["grant-A", "grant-Q", "fund-F"])],
    )
    .await;
    let lines: Vec<String> = read_all(source)
        .await
        .iter()
        .map(Envelope::to_line)
        .collect();
    let events: Vec<Envelope> = lines
        .iter()
        .map(|l| Envelope::from_line(l).unwrap())
        .collect();

    let (target, _) = b.create().await;
    let target = target.as_ref();
    target.import(events.clone()).await.unwrap();
    assert_eq!(target.head().await.unwrap(), source.head().await.unwrap());
    let imported = read_all(target).await;
    assert_eq!(imported, events);
    let imported_lines: Vec<String> = imported.iter().map(Envelope::to_line).collect();
    assert_eq!(imported_lines, lines);
    assert_eq!(target.stream_version("grant-A").await.unwrap(), 14);
    let record = target.command("multi").await.unwrap().unwrap();
    assert_eq!(record.body_hash, None);
    assert_eq!(
        record.events,
        source.command("multi").await.unwrap().unwrap().events
    );
    assert_eq!(
        target.read_stream("fund-F", 1, 100).await.unwrap(),
        source.read_stream("fund-F", 1, 100).await.unwrap()
    );
    // Appending continues the imported chain.
    append(target, vec![command("next", &["grant-A"])]).await;
    assert_eq!(events.len(), 43);
    let last = target.read(44, 1).await.unwrap().remove(0);
    assert_eq!(last.prev_hash, events[42].hash);
    assert_eq!(last.version, 15);
    assert!(last.recorded_at >= events[42].recorded_at);
    // An imported command id is taken.
    let result = target
        .append(AppendBatch {
            expected_head: 44,
            expected_versions: vec![],
            commands: vec![command("c5", &["grant-A"])],
        })
        .await;
    assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
}

/// Import in several groups and onto a prefix.
pub async fn import_in_several_groups_and_onto_a_prefix(b: Arc<dyn Backend>) {
    let (source, _) = b.create().await;
    let source = source.as_ref();
    fill(source, 12_345).await;
    let events = read_all(source).await;
    let (target, _) = b.create().await;
    let target = target.as_ref();
    target.import(events[..100].to_vec()).await.unwrap();
    assert_eq!(target.head().await.unwrap().position, 100);
    target.import(events[100..].to_vec()).await.unwrap();
    target.import(Vec::new()).await.unwrap();
    assert_eq!(target.head().await.unwrap(), source.head().await.unwrap());
    assert_eq!(read_all(target).await, events);
    assert_eq!(target.stream_version("fund-F").await.unwrap(), 4115);
    assert_eq!(
        target.command("c12345").await.unwrap().unwrap().events[0].position,
        12_345
    );
}

/// Import refuses bad files and writes nothing.
pub async fn import_refuses_bad_files_and_writes_nothing(b: Arc<dyn Backend>) {
    let (source, _) = b.create().await;
    let source = source.as_ref();
    fill(source, 10).await;
    let events = read_all(source).await;

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
    let (target, _) = b.create().await;
    let target = target.as_ref();
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

/// Snapshots save and load.
pub async fn snapshots_save_and_load(b: Arc<dyn Backend>) {
    let (store, location) = b.create().await;
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
    assert!(store.save_snapshot("", 1, Vec::new()).await.is_err());
    assert_eq!(store.load_snapshot("").await.unwrap(), None);
    store.close().await.unwrap();
    drop(store);
    let store = b.reopen(&location).await;
    assert_eq!(
        store.load_snapshot("grants").await.unwrap(),
        Some((9, b"small".to_vec()))
    );
    assert_eq!(
        store.load_snapshot("funds").await.unwrap(),
        Some((3, Vec::new()))
    );
    assert_eq!(store.load_snapshot("other").await.unwrap(), None);
}

/// Checkpointed states: the latest entry of a key at or before a position, the mark, all
/// kept across a reopen.
pub async fn checkpoints_save_and_load(b: Arc<dyn Backend>) {
    let entry = |key: &str, position: u64, bytes: &[u8]| crate::CheckpointEntry {
        key: key.to_string(),
        position,
        bytes: bytes.to_vec(),
    };
    let (store, location) = b.create().await;
    fill(store.as_ref(), 30).await;
    assert_eq!(store.checkpoint_mark("funds").await.unwrap(), 0);
    assert_eq!(
        store.load_checkpoint("funds", "F1", 30).await.unwrap(),
        None
    );
    store
        .save_checkpoints(
            "funds",
            10,
            vec![entry("F1", 10, b"f1 at 10"), entry("F2", 10, b"f2 at 10")],
        )
        .await
        .unwrap();
    // F2 unchanged at 20: no entry of its own.
    store
        .save_checkpoints("funds", 20, vec![entry("F1", 20, b"f1 at 20")])
        .await
        .unwrap();
    assert_eq!(store.checkpoint_mark("funds").await.unwrap(), 20);
    assert_eq!(store.checkpoint_mark("other").await.unwrap(), 0);
    let load = |key: &'static str, at_most: u64| {
        let store = Arc::clone(&store);
        async move { store.load_checkpoint("funds", key, at_most).await.unwrap() }
    };
    assert_eq!(load("F1", 9).await, None);
    assert_eq!(load("F1", 10).await, Some((10, b"f1 at 10".to_vec())));
    assert_eq!(load("F1", 19).await, Some((10, b"f1 at 10".to_vec())));
    assert_eq!(load("F1", 25).await, Some((20, b"f1 at 20".to_vec())));
    assert_eq!(load("F2", 25).await, Some((10, b"f2 at 10".to_vec())));
    // A key that is a prefix of another is its own.
    assert_eq!(load("F", 25).await, None);
    // The mark never goes back; an entry saved again is replaced.
    store
        .save_checkpoints("funds", 10, vec![entry("F2", 10, b"f2 again")])
        .await
        .unwrap();
    assert_eq!(store.checkpoint_mark("funds").await.unwrap(), 20);
    assert_eq!(load("F2", 10).await, Some((10, b"f2 again".to_vec())));
    // Refused, writing nothing: an entry past the mark, a mark past the head, bad names.
    assert!(store
        .save_checkpoints("funds", 25, vec![entry("F3", 26, b"x")])
        .await
        .is_err());
    assert!(store
        .save_checkpoints("funds", 31, vec![entry("F3", 25, b"x")])
        .await
        .is_err());
    assert!(store.save_checkpoints("", 25, Vec::new()).await.is_err());
    assert!(store
        .save_checkpoints("funds", 25, vec![entry("", 25, b"x")])
        .await
        .is_err());
    assert_eq!(load("F3", 30).await, None);
    assert_eq!(store.checkpoint_mark("funds").await.unwrap(), 20);
    store.close().await.unwrap();
    drop(store);
    let store = b.reopen(&location).await;
    assert_eq!(store.checkpoint_mark("funds").await.unwrap(), 20);
    assert_eq!(
        store.load_checkpoint("funds", "F1", 30).await.unwrap(),
        Some((20, b"f1 at 20".to_vec()))
    );
    assert_eq!(
        store.load_checkpoint("funds", "F2", 30).await.unwrap(),
        Some((10, b"f2 again".to_vec()))
    );
}

/// Concurrent readers see only durable events.
pub async fn concurrent_readers_see_only_durable_events(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
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

/// Catch up then live exactly once.
pub async fn catch_up_then_live_exactly_once(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let existing = SUBSCRIPTION_PAGE_EVENTS * 2 + 17;
    fill(store.as_ref(), existing).await;

    let mut events = subscribe(Arc::clone(&store), 5, None);
    // Live appends race with the catch-up.
    let writer = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            for round in 0..30 {
                fill(store.as_ref(), 1 + round % 4).await;
                if round % 5 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let live = (0..30).map(|round| 1 + round % 4).sum::<usize>();
    let last = (existing + live) as u64;
    let mut expected = 5;
    while expected <= last {
        let envelope = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(envelope.position, expected);
        expected += 1;
    }
    writer.await.unwrap();
    // Nothing more, nothing repeated.
    let extra = tokio::time::timeout(Duration::from_millis(200), events.next()).await;
    assert!(extra.is_err(), "unexpected {extra:?}");
    // And the next append arrives.
    fill(store.as_ref(), 1).await;
    let next = tokio::time::timeout(WAIT, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.position, last + 1);
}

/// Subscription filtered by stream.
pub async fn subscription_filtered_by_stream(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    fill(store.as_ref(), 30).await;
    let mut events = subscribe(Arc::clone(&store), 1, Some("fund-F".to_string()));
    for version in 1..=10 {
        let e = events.next().await.unwrap().unwrap();
        assert_eq!((e.stream.as_str(), e.version), ("fund-F", version));
    }
    fill(store.as_ref(), 6).await;
    for version in 11..=12 {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!((e.stream.as_str(), e.version), ("fund-F", version));
    }
}

/// Subscription from the future waits for it.
pub async fn subscription_from_the_future_waits_for_it(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let mut events = subscribe(Arc::clone(&store), 3, None);
    fill(store.as_ref(), 2).await;
    let nothing = tokio::time::timeout(Duration::from_millis(100), events.next()).await;
    assert!(nothing.is_err());
    fill(store.as_ref(), 2).await;
    for position in [3, 4] {
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(e.position, position);
    }
}

/// A small deterministic generator (the shapes of grantflow-store's gapless property).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// Positions and versions are gapless.
pub async fn positions_and_versions_are_gapless(b: Arc<dyn Backend>) {
    let streams = ["grant-A", "grant-B", "fund-F", "fund-G", "grant-C"];
    for seed in 0..6u64 {
        let mut rng = Lcg(seed);
        let (store, _) = b.create().await;
        let store = store.as_ref();
        let mut next_id = 0;
        let mut all_refs = Vec::new();
        let mut versions: HashMap<&str, u64> = HashMap::new();
        let mut total = 0;
        for _ in 0..1 + rng.below(7) {
            let commands = (0..1 + rng.below(5))
                .map(|_| {
                    next_id += 1;
                    let names: Vec<&str> = (0..1 + rng.below(3))
                        .map(|_| streams[rng.below(streams.len())])
                        .collect();
                    total += names.len();
                    command(&format!("cmd-{next_id}"), &names)
                })
                .collect();
            for refs in append(store, commands).await {
                for r in &refs {
                    let name = streams.iter().find(|s| **s == r.stream).unwrap();
                    let version = versions.entry(name).or_default();
                    *version += 1;
                    assert_eq!(r.version, *version);
                }
                all_refs.push(refs);
            }
        }
        let events = store.read(1, total + 10).await.unwrap();
        assert_eq!(events.len(), total);
        let mut verifier = ChainVerifier::new();
        for e in &events {
            verifier.check(e).unwrap();
        }
        assert_eq!(store.head().await.unwrap().position, total as u64);
        let flat: Vec<_> = all_refs.iter().flatten().collect();
        for (e, r) in events.iter().zip(&flat) {
            assert_eq!(
                (e.position, &e.stream, e.version),
                (r.position, &r.stream, r.version)
            );
        }
        for stream in streams {
            let by_stream = store.read_stream(stream, 1, total + 1).await.unwrap();
            assert_eq!(
                by_stream.len() as u64,
                versions.get(stream).copied().unwrap_or(0)
            );
            assert_eq!(
                store.stream_version(stream).await.unwrap(),
                by_stream.len() as u64
            );
            for (i, e) in by_stream.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1);
                assert_eq!(&events[e.position as usize - 1], e);
            }
        }
        for (i, refs) in all_refs.iter().enumerate() {
            let record = store
                .command(&format!("cmd-{}", i + 1))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&record.events, refs);
        }
    }
}

/// Commands are looked up in order.
pub async fn commands_are_looked_up_in_order(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    let refs = append(
        store,
        vec![
            command("a", &["grant-A"]),
            command("b", &["grant-B", "fund-F"]),
        ],
    )
    .await;
    let found = store
        .commands(vec!["b".into(), "zz".into(), "a".into(), "b".into()])
        .await
        .unwrap();
    assert_eq!(found.len(), 4);
    assert_eq!(found[0].as_ref().unwrap().events, refs[1]);
    assert!(found[1].is_none());
    assert_eq!(found[2].as_ref().unwrap().events, refs[0]);
    assert_eq!(found[3], found[0]);
    assert!(store.commands(Vec::new()).await.unwrap().is_empty());
}

/// Watch head follows appends.
pub async fn watch_head_follows_appends(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let mut head = store.watch_head();
    assert_eq!(*head.borrow_and_update(), 0);
    fill(store.as_ref(), 3).await;
    tokio::time::timeout(WAIT, head.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*head.borrow_and_update(), 3);
    // The watch never runs ahead of what a read returns.
    let events = store.read(1, 100).await.unwrap();
    assert!(events.len() as u64 >= *head.borrow());
}

/// The reads [`newest_reads_are_the_logs`] compares: every start near the head with a few
/// limits (past what memory holds), and some from the start of the log.
fn ranges_near(head: u64) -> Vec<(u64, usize)> {
    let mut ranges = Vec::new();
    for from in head.saturating_sub(2_600).max(1)..=head + 2 {
        for limit in [1, 3, 64, 1_000] {
            if from % 7 == 0 || from + 70 > head || limit == 1_000 && from % 97 == 0 {
                ranges.push((from, limit));
            }
        }
    }
    ranges.extend([(1, 10_000), (1, 1), (0, 5), (head, 0)]);
    ranges
}

/// Asserts that the store at `location` answers the reads near its head as it does once
/// closed and reopened (its memory empty: every read from the log); returns the reopened
/// store.
async fn reads_survive_a_reopen(
    b: &Arc<dyn Backend>,
    store: Arc<dyn EventStore>,
    location: &str,
) -> Arc<dyn EventStore> {
    let ranges = ranges_near(store.head().await.unwrap().position);
    let mut before = Vec::new();
    for &(from, limit) in &ranges {
        before.push(store.read(from, limit).await.unwrap());
    }
    store.close().await.unwrap();
    drop(store);
    let store = b.reopen(location).await;
    for (&(from, limit), read) in ranges.iter().zip(&before) {
        assert_eq!(
            &store.read(from, limit).await.unwrap(),
            read,
            "from {from}, limit {limit}"
        );
    }
    store
}

/// Reads near the head (which the backends answer from memory once they hold the newest
/// groups) give what the log holds: what the same store answers once reopened.
pub async fn newest_reads_are_the_logs(b: Arc<dyn Backend>) {
    let (store, location) = b.create().await;
    let streams = ["grant-A", "grant-B", "fund-F", "fund-G"];
    // Groups of 1 to 40 commands of 1 to 3 events: past the memory's bound of events.
    let mut live = Vec::new();
    let mut id = 0;
    for group in 0..200u64 {
        let commands = (0..=group % 40)
            .map(|c| {
                id += 1;
                command(
                    &format!("n-{id}"),
                    &streams[..(1 + (group + c) % 3) as usize],
                )
            })
            .collect();
        append(store.as_ref(), commands).await;
        // A subscriber that has caught up: the group just appended, and a little before.
        let head = store.head().await.unwrap().position;
        for from in [head.saturating_sub(3).max(1), head, head + 1] {
            let read = store.read(from, 10).await.unwrap();
            assert_eq!(read.len() as u64, (head + 1 - from).min(10), "from {from}");
            live.push((from, read));
        }
    }
    let head = store.head().await.unwrap().position;
    assert!(head > 4_000, "past what memory holds: {head}");
    let store = reads_survive_a_reopen(&b, store, &location).await;
    // What the running store answered then, the log holds now (followed by what came since).
    for (from, read) in live {
        assert_eq!(
            store.read(from, read.len()).await.unwrap(),
            read,
            "from {from}"
        );
    }
}

/// The store appends, then imports a continuation of its own log (made elsewhere), then
/// appends again: memory held the first run only, and a read across the import must not
/// stitch the two runs together.
pub async fn newest_reads_after_an_import_are_the_logs(b: Arc<dyn Backend>) {
    let (target, location) = b.create().await;
    fill(target.as_ref(), 50).await;
    let own = target.read(1, 100).await.unwrap();
    assert_eq!(own.len(), 50);

    let (source, _) = b.create().await;
    source.import(own).await.unwrap();
    fill(source.as_ref(), 30).await;
    let continuation = source.read(51, 100).await.unwrap();
    assert_eq!(continuation.len(), 30);
    source.close().await.unwrap();

    target.import(continuation.clone()).await.unwrap();
    assert_eq!(target.read(51, 30).await.unwrap(), continuation);
    assert_eq!(target.read(45, 10).await.unwrap()[6..], continuation[..4]);
    append(
        target.as_ref(),
        vec![command("after-import", &["grant-A", "fund-F"])],
    )
    .await;
    assert_eq!(target.head().await.unwrap().position, 82);
    reads_survive_a_reopen(&b, target, &location).await;
}

/// An id a lookup found absent is refused once a later append records it.
pub async fn an_id_looked_up_as_absent_is_still_refused_once_recorded(b: Arc<dyn Backend>) {
    // The store remembers ids a lookup found absent, to skip looking them up again on the
    // append that follows; an append in between must make it forget them.
    let (store, _) = b.create().await;
    let store = store.as_ref();
    let refused = |expected_head: u64, commands: Vec<AppendCommand>| async move {
        let result = store
            .append(AppendBatch {
                expected_head,
                expected_versions: vec![],
                commands,
            })
            .await;
        assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
    };
    let ids = vec!["x1".to_string(), "x2".to_string()];
    assert_eq!(store.commands(ids.clone()).await.unwrap(), vec![None, None]);
    append(store, vec![command("x1", &["grant-G"])]).await;
    refused(1, vec![command("x1", &["grant-H"])]).await;
    // Looked up absent, then recorded: the next append of it is refused too.
    assert_eq!(store.commands(ids.clone()).await.unwrap()[1], None);
    append(store, vec![command("x2", &["grant-G"])]).await;
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

/// An id the engine made (`fresh_id`) is recorded like any other, and refused twice in one batch.
pub async fn a_fresh_id_is_recorded_like_any_other_and_still_refused_twice_in_one_batch(
    b: Arc<dyn Backend>,
) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    let fresh = |id: &str| AppendCommand {
        fresh_id: true,
        ..command(id, &["grant-F"])
    };
    append(store, vec![fresh("f1")]).await;
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

/// A page of payloads holds what the envelopes of the same range hold.
pub async fn payload_pages_hold_what_the_envelopes_hold(b: Arc<dyn Backend>) {
    let (store, _) = b.create().await;
    let store = store.as_ref();
    fill(store, 700).await;
    append(store, vec![command("multi", &["grant-A", "grant-Q"])]).await;
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
