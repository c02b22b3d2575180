//! Reads of the newest events come from memory (the store keeps its newest durable groups
//! for live subscribers): what they return must be exactly what the log holds. Each test
//! compares the answers of the running store with those of the same store reopened, whose
//! memory is empty and whose reads all come from sled.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use common::{append, command, fill};
use grantflow_store::{Envelope, EventStore, SledStore};

/// The reads compared: every start near the head with a few limits, and some from the
/// start of the log.
fn ranges(head: u64) -> Vec<(u64, usize)> {
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

async fn reads(store: &SledStore, ranges: &[(u64, usize)]) -> Vec<Vec<Envelope>> {
    let mut out = Vec::new();
    for &(from, limit) in ranges {
        out.push(store.read(from, limit).await.unwrap());
    }
    out
}

/// Asserts that the store at `path` answers the reads near its head as it does once closed
/// and reopened; returns the reopened store.
async fn reads_survive_a_reopen(store: SledStore, path: &std::path::Path) -> SledStore {
    let ranges = ranges(store.head().await.unwrap().position);
    let before = reads(&store, &ranges).await;
    store.close().await.unwrap();
    drop(store);
    let store = SledStore::open(path).unwrap();
    assert_eq!(reads(&store, &ranges).await, before);
    store
}

#[tokio::test]
async fn the_newest_events_read_as_the_log_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = SledStore::open(&path).unwrap();
    let streams = ["grant-A", "grant-B", "fund-F", "fund-G"];
    // Groups of 1 to 40 commands of 1 to 3 events: past the memory's bound of events.
    let mut live = Vec::new();
    let mut id = 0;
    for group in 0..200u64 {
        let commands = (0..=group % 40)
            .map(|c| {
                id += 1;
                let events = &streams[..(1 + (group + c) % 3) as usize];
                command(&format!("cmd-{id}"), events)
            })
            .collect();
        append(&store, commands).await;
        // A subscriber that has caught up: the group just appended, and a little before.
        let head = store.head().await.unwrap().position;
        for from in [head.saturating_sub(3).max(1), head, head + 1] {
            let read = store.read(from, 10).await.unwrap();
            assert_eq!(read.len() as u64, (head + 1 - from).min(10), "from {from}");
            live.push((from, read));
        }
    }
    let head = store.head().await.unwrap().position;
    assert!(head > 4_000, "{head}");
    let store = reads_survive_a_reopen(store, &path).await;
    // What the running store answered then, the log holds now (followed by what came since).
    for (from, read) in live {
        let now = store.read(from, read.len()).await.unwrap();
        assert_eq!(now, read, "from {from}");
    }
}

#[tokio::test]
async fn an_import_between_appends_is_read_from_the_log() {
    // The target appends, then imports a continuation of its own log (made elsewhere),
    // then appends again: the memory held the first run only, and a read across the import
    // must not stitch the two runs together.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("target");
    let target = SledStore::open(&path).unwrap();
    fill(&target, 50).await;
    let own = target.read(1, 100).await.unwrap();
    assert_eq!(own.len(), 50);

    let source = SledStore::open(&dir.path().join("source")).unwrap();
    source.import(own).await.unwrap();
    fill(&source, 30).await;
    let continuation = source.read(51, 100).await.unwrap();
    assert_eq!(continuation.len(), 30);

    target.import(continuation.clone()).await.unwrap();
    assert_eq!(target.read(51, 30).await.unwrap(), continuation);
    assert_eq!(target.read(45, 10).await.unwrap()[6..], continuation[..4]);
    append(
        &target,
        vec![command("after-import", &["grant-A", "fund-F"])],
    )
    .await;
    assert_eq!(target.head().await.unwrap().position, 82);
    reads_survive_a_reopen(target, &path).await;
}
