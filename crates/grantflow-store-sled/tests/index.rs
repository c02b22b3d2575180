//! The stream and command index kept off the critical path: entries gather in memory, an
//! indexer writes them to sled in spans, and what it had not written is rebuilt from the log
//! on open. Every read must give the same answer wherever the entries are.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::path::Path;

use common::{append, command};
use grantflow_store::{CommandRecord, EventStore};
use grantflow_store_sled::SledStore;
use grantflow_store_sled::{open_sled, INDEX_SPAN_EVENTS};

const STREAMS: [&str; 4] = ["fund-F", "grant-A", "grant-B", "grant-C"];
const GROUP_COMMANDS: u64 = 1_000;

/// Appends `groups` groups of commands: most on one stream, every seventh on two (a grant
/// and its fund), ids `c<n>`.
async fn fill_groups(store: &SledStore, groups: u64, next_id: &mut u64) {
    for _ in 0..groups {
        let commands = (0..GROUP_COMMANDS)
            .map(|_| {
                *next_id += 1;
                let n = *next_id;
                let stream = STREAMS[(n % 4) as usize];
                if n.is_multiple_of(7) && stream != "fund-F" {
                    command(&format!("c{n}"), &[stream, "fund-F"])
                } else {
                    command(&format!("c{n}"), &[stream])
                }
            })
            .collect();
        append(store, commands).await;
    }
}

/// What a reader is told: each stream's (version, position) read by stream from several
/// starting versions, each stream's version, and every command's record.
#[derive(Debug, PartialEq)]
struct Answers {
    streams: Vec<Vec<(u64, u64)>>,
    from_middle: Vec<Vec<(u64, u64)>>,
    versions: Vec<u64>,
    commands: Vec<Option<CommandRecord>>,
}

async fn answers(store: &SledStore, ids: u64) -> Answers {
    let mut streams = Vec::new();
    let mut from_middle = Vec::new();
    let mut versions = Vec::new();
    for stream in STREAMS {
        let version = store.stream_version(stream).await.unwrap();
        versions.push(version);
        streams.push(read_stream(store, stream, 1).await);
        from_middle.push(read_stream(store, stream, version / 2 + 1).await);
    }
    let all: Vec<String> = (1..=ids + 1).map(|n| format!("c{n}")).collect();
    let commands = store.commands(all).await.unwrap();
    for (n, record) in (1..).zip(&commands) {
        assert_eq!(record.is_some(), n <= ids, "command c{n}");
    }
    Answers {
        streams,
        from_middle,
        versions,
        commands,
    }
}

async fn read_stream(store: &SledStore, stream: &str, from: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    loop {
        let next = out.last().map_or(from, |(version, _)| version + 1);
        let page = store.read_stream(stream, next, 3_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        out.extend(page.iter().map(|e| (e.version, e.position)));
    }
    for (i, (version, _)) in out.iter().enumerate() {
        assert_eq!(
            *version,
            from + i as u64,
            "{stream}: versions read once, in order"
        );
    }
    out
}

/// The index mark (`I`), read from sled directly.
fn index_mark(data: &Path) -> u64 {
    let db = open_sled(&data.join("db")).unwrap();
    let value = db.get(b"I").unwrap().unwrap();
    u64::from_be_bytes(value.as_ref().try_into().unwrap())
}

/// Edits sled directly: removes the stream and command index entries (all, or those
/// written for events past `keep_through`) and sets the index mark.
fn set_index(data: &Path, mark: u64, drop_entries: bool) {
    let db = open_sled(&data.join("db")).unwrap();
    if drop_entries {
        for prefix in [b"S", b"C"] {
            for item in db.scan_prefix(prefix) {
                db.remove(item.unwrap().0).unwrap();
            }
        }
    }
    db.insert(b"I", &mark.to_be_bytes()[..]).unwrap();
    db.flush().unwrap();
}

/// In a store of format 4 and in one of format 3 (whose command-index entries hold the
/// records, where format 4's name the command's first position in the log).
#[tokio::test]
async fn reads_agree_across_the_tail_the_indexed_entries_and_reopening() {
    for plain in [false, true] {
        reads_agree_in_a_store(plain).await;
    }
}

async fn reads_agree_in_a_store(plain: bool) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    if plain {
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("GRANTFLOW"), b"grantflow store\nformat 3\n").unwrap();
    }
    let mut ids = 0;
    let spans = 2 * INDEX_SPAN_EVENTS / GROUP_COMMANDS + 3;
    let (before, head) = {
        let store = SledStore::open(&data).unwrap();
        fill_groups(&store, spans, &mut ids).await;
        let head = store.head().await.unwrap();
        assert!(head.position > 2 * INDEX_SPAN_EVENTS);
        (answers(&store, ids).await, head)
        // Dropped without closing: the tail is not written.
    };
    assert_eq!(before.versions.iter().sum::<u64>(), head.position);

    let store = SledStore::open(&data).unwrap();
    assert_eq!(store.head().await.unwrap(), head);
    assert_eq!(answers(&store, ids).await, before, "after reopening");
    store.close().await.unwrap();
    drop(store);
    assert_eq!(
        index_mark(&data),
        head.position,
        "close writes the whole tail"
    );

    {
        let db = open_sled(&data.join("db")).unwrap();
        let forms: Vec<u8> = db
            .scan_prefix(b"C")
            .map(|item| item.unwrap().1[0])
            .collect();
        assert_eq!(forms.len() as u64, ids);
        // Format 4: `2` and the first position; format 3: the record (body hash flag 0/1).
        let expected = if plain { 1 } else { 2 };
        assert!(forms.iter().all(|form| *form == expected), "{forms:?}");
    }
    let store = SledStore::open(&data).unwrap();
    assert_eq!(answers(&store, ids).await, before, "all from sled");
    // And it goes on from there, repeats refused.
    fill_groups(&store, 1, &mut ids).await;
    let refused = store
        .append(grantflow_store::AppendBatch {
            expected_head: store.head().await.unwrap().position,
            expected_versions: Vec::new(),
            commands: vec![command("c5", &["grant-Z"])],
        })
        .await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test]
async fn a_lost_index_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ids = 0;
    let before = {
        let store = SledStore::open(&data).unwrap();
        fill_groups(&store, 20, &mut ids).await;
        let before = answers(&store, ids).await;
        store.close().await.unwrap();
        before
    };
    // As if the indexer's every batch had been lost in a crash.
    set_index(&data, 0, true);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(answers(&store, ids).await, before);
    let body_hashes = before.commands.iter().flatten().map(|r| r.body_hash);
    assert!(body_hashes.into_iter().all(|hash| hash == Some([7; 32])));
    store.close().await.unwrap();
    drop(store);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(answers(&store, ids).await, before);
}

#[tokio::test]
async fn entries_written_again_after_a_crash_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ids = 0;
    let (before, mark) = {
        let store = SledStore::open(&data).unwrap();
        fill_groups(&store, 20, &mut ids).await;
        let before = answers(&store, ids).await;
        // The end of the fifth group, inside the first span.
        let last = store.command("c5000").await.unwrap().unwrap();
        let mark = last.events.last().unwrap().position;
        store.close().await.unwrap();
        (before, mark)
    };
    assert!(mark < INDEX_SPAN_EVENTS);
    // The mark back there, the entries past it kept: they are rebuilt into the tail and,
    // on close, written again under other keys, overlapping those in sled.
    set_index(&data, mark, false);
    let store = SledStore::open(&data).unwrap();
    assert_eq!(
        answers(&store, ids).await,
        before,
        "tail over indexed entries"
    );
    store.close().await.unwrap();
    drop(store);
    assert_eq!(index_mark(&data), before.versions.iter().sum::<u64>());
    let store = SledStore::open(&data).unwrap();
    assert_eq!(
        answers(&store, ids).await,
        before,
        "overlapping entries in sled"
    );
}

/// A command with a located id for its first position, `events` events on one stream, with
/// payloads of `payload_bytes` (large ones make a command straddle log chunks).
fn located(position: u64, events: u64, payload_bytes: usize) -> grantflow_store::AppendCommand {
    let id = grantflow_store::located_command_id(position).unwrap();
    let mut cmd = command(&id, &vec!["grant-L"; events as usize]);
    for event in &mut cmd.events {
        event.payload = format!(r#"{{"note":"{}"}}"#, "x".repeat(payload_bytes));
    }
    cmd.fresh_id = true;
    cmd
}

#[tokio::test]
async fn a_located_command_is_found_in_the_log_and_gets_no_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = SledStore::open(&data).unwrap();
    // Located commands of 1 to 3 events, some straddling chunks (16 KiB); client ids among
    // them; a located-looking id that names another position (a client's) is indexed.
    let mut located_ids = Vec::new();
    let mut position = 0;
    for round in 0..30u64 {
        let events = round % 3 + 1;
        let cmd = located(
            position + 1,
            events,
            if round % 4 == 0 { 6_000 } else { 40 },
        );
        located_ids.push((cmd.command_id.clone(), position + 1, events));
        position += events;
        let client = command(&format!("client-{round}"), &["fund-F"]);
        position += 1;
        append(&store, vec![cmd, client]).await;
    }
    let misplaced = grantflow_store::located_command_id(2).unwrap();
    append(&store, vec![command(&misplaced, &["fund-F"])]).await;
    let before: Vec<_> = {
        let ids: Vec<String> = located_ids.iter().map(|(id, _, _)| id.clone()).collect();
        store.commands(ids).await.unwrap()
    };
    store.close().await.unwrap();
    drop(store);

    {
        let db = open_sled(&data.join("db")).unwrap();
        let indexed: Vec<String> = db
            .scan_prefix(b"C")
            .map(|item| String::from_utf8(item.unwrap().0[1..].to_vec()).unwrap())
            .collect();
        assert_eq!(
            indexed.len(),
            31,
            "the client ids and the misplaced one: {indexed:?}"
        );
        assert!(indexed.contains(&misplaced));
        assert!(located_ids.iter().all(|(id, _, _)| !indexed.contains(id)));
    }

    let store = SledStore::open(&data).unwrap();
    let ids: Vec<String> = located_ids.iter().map(|(id, _, _)| id.clone()).collect();
    let after = store.commands(ids).await.unwrap();
    assert_eq!(
        after, before,
        "the same records from the tail and from the log"
    );
    for ((id, first, events), record) in located_ids.iter().zip(&after) {
        let record = record.as_ref().unwrap_or_else(|| panic!("{id} not found"));
        let positions: Vec<u64> = record.events.iter().map(|e| e.position).collect();
        assert_eq!(
            positions,
            (*first..first + events).collect::<Vec<_>>(),
            "{id}"
        );
        assert!(record.events.iter().all(|e| e.stream == "grant-L"));
        assert_eq!(record.body_hash, Some([7; 32]));
        assert_eq!(store.command(id).await.unwrap().as_ref(), Some(record));
    }
    assert_eq!(
        store.command(&misplaced).await.unwrap().unwrap().events[0].position,
        position + 1
    );
    // A located-looking id that names a position holding another command, or none yet.
    for unknown in [
        grantflow_store::located_command_id(1).unwrap(),
        grantflow_store::located_command_id(position + 5).unwrap(),
    ] {
        assert_eq!(store.command(&unknown).await.unwrap(), None);
    }
    // A client sending a located id again (not fresh: looked up) is refused.
    let (id, _, _) = &located_ids[5];
    let head = store.head().await.unwrap().position;
    let version = store.stream_version("fund-F").await.unwrap();
    let reused = store
        .append(grantflow_store::AppendBatch {
            expected_head: head,
            expected_versions: vec![("fund-F".into(), version)],
            commands: vec![command(id, &["fund-F"])],
        })
        .await;
    assert!(
        matches!(reused, Err(grantflow_store::StoreError::Conflict(_))),
        "{reused:?}"
    );
}
