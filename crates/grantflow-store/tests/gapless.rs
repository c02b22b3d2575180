//! Property: whatever the shape of the batches, positions and versions stay gapless, the
//! chain verifies, and every command's refs point at its events.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;

use common::{append, command};
use grantflow_store::envelope::ChainVerifier;
use grantflow_store::{EventStore, SledStore};
use proptest::prelude::*;

/// A batch: commands, each a list of stream indexes.
fn batches() -> impl Strategy<Value = Vec<Vec<Vec<usize>>>> {
    let command = prop::collection::vec(0usize..5, 1..4);
    let batch = prop::collection::vec(command, 1..6);
    prop::collection::vec(batch, 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn positions_and_versions_are_gapless(shape in batches()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SledStore::open(dir.path()).unwrap();
            let streams = ["grant-A", "grant-B", "fund-F", "fund-G", "grant-C"];
            let mut next_id = 0;
            let mut all_refs = Vec::new();
            let mut versions: HashMap<&str, u64> = HashMap::new();
            for batch in &shape {
                let commands = batch.iter().map(|indexes| {
                    next_id += 1;
                    let names: Vec<&str> = indexes.iter().map(|i| streams[*i]).collect();
                    command(&format!("cmd-{next_id}"), &names)
                }).collect();
                for refs in append(&store, commands).await {
                    for r in &refs {
                        let version = versions.entry(streams.iter().find(|s| **s == r.stream).unwrap()).or_default();
                        *version += 1;
                        assert_eq!(r.version, *version);
                    }
                    all_refs.push(refs);
                }
            }
            let total: usize = shape.iter().flatten().map(Vec::len).sum();
            let events = store.read(1, total + 10).await.unwrap();
            assert_eq!(events.len(), total);
            let mut verifier = ChainVerifier::new();
            for e in &events {
                verifier.check(e).unwrap();
            }
            assert_eq!(store.head().await.unwrap().position, total as u64);
            let flat: Vec<_> = all_refs.iter().flatten().collect();
            for (e, r) in events.iter().zip(&flat) {
                assert_eq!((e.position, &e.stream, e.version), (r.position, &r.stream, r.version));
            }
            for stream in streams {
                let by_stream = store.read_stream(stream, 1, total + 1).await.unwrap();
                assert_eq!(by_stream.len() as u64, versions.get(stream).copied().unwrap_or(0));
                assert_eq!(store.stream_version(stream).await.unwrap(), by_stream.len() as u64);
                for (i, e) in by_stream.iter().enumerate() {
                    assert_eq!(e.version, i as u64 + 1);
                    assert_eq!(&events[e.position as usize - 1], e);
                }
            }
            for (i, refs) in all_refs.iter().enumerate() {
                let record = store.command(&format!("cmd-{}", i + 1)).await.unwrap().unwrap();
                assert_eq!(&record.events, refs);
            }
        });
    }
}
