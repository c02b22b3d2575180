//! The index entries waiting in memory are bounded: when the indexer thread has not written
//! them (here: fewer than a span's worth, which it waits for), the appending thread writes
//! index slices itself once the tail passes `GRANTFLOW_TAIL_EVENTS_MAX`. Its own test binary:
//! it sets that variable for its whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::fill;
use grantflow_store::{ChainVerifier, EventStore};
use grantflow_store_sled::SledStore;
use grantflow_store_sled::{INDEX_SPAN_EVENTS, TAIL_EVENTS_MAX_ENV};

const MAX: u64 = 300;
const GROUP: usize = 40;

#[tokio::test]
async fn the_tail_stays_under_its_bound_and_every_entry_stays_readable() {
    std::env::set_var(TAIL_EVENTS_MAX_ENV, MAX.to_string());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = SledStore::open(&path).unwrap();
    let total = 2_000;
    // Far fewer events than a span: the indexer thread leaves them all to the bound.
    assert!((total as u64) < INDEX_SPAN_EVENTS);
    let mut most = 0;
    for _ in 0..total / GROUP {
        fill(&store, GROUP).await;
        most = most.max(store.unindexed_events());
    }
    assert!(
        most <= MAX + GROUP as u64,
        "{most} events waited in memory, the bound is {MAX} plus a group"
    );
    assert!(
        most > MAX - GROUP as u64,
        "the tail never came near the bound: {most}"
    );

    // Every command and stream entry is found, written or waiting.
    for position in 1..=total as u64 {
        let record = store
            .command(&format!("c{position}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.events[0].position, position);
    }
    let streams = ["grant-A", "grant-B", "fund-F"];
    let mut seen = 0;
    for stream in streams {
        let version = store.stream_version(stream).await.unwrap();
        let events = store.read_stream(stream, 1, 10_000).await.unwrap();
        assert_eq!(events.len() as u64, version);
        seen += version;
    }
    assert_eq!(seen, total as u64);

    // And after a reopen without a close (the tail rebuilt from the log).
    drop(store);
    let store = SledStore::open(&path).unwrap();
    let mut verifier = ChainVerifier::new();
    for envelope in store.read(1, total).await.unwrap() {
        verifier.check(&envelope).unwrap();
    }
    let last = store.command(&format!("c{total}")).await.unwrap().unwrap();
    assert_eq!(last.events[0].position, total as u64);
}
