//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use grantflow_store::{AppendBatch, AppendCommand, EventRef, EventStore, NewEvent, SledStore};

/// A fresh store in a temporary directory (keep the directory alive as long as the store).
pub fn temp_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(&dir.path().join("data")).unwrap();
    (dir, store)
}

/// An event of `stream` with a small payload.
pub fn event(stream: &str, event_type: &str, command_id: &str, n: u64) -> NewEvent {
    NewEvent {
        stream: stream.to_string(),
        event_type: event_type.to_string(),
        schema: 1,
        actor: "alice".to_string(),
        command_id: command_id.to_string(),
        correlation_id: command_id.to_string(),
        payload: format!(r#"{{"n":{n},"note":"caf\u00e9 \"q\""}}"#),
    }
}

/// One command of events on the given streams.
pub fn command(command_id: &str, streams: &[&str]) -> AppendCommand {
    AppendCommand {
        fresh_id: false,
        command_id: command_id.to_string(),
        body_hash: [7; 32],
        events: streams
            .iter()
            .enumerate()
            .map(|(i, stream)| event(stream, "grant.tested", command_id, i as u64))
            .collect(),
    }
}

/// Appends commands against the store's current head and stream versions.
pub async fn append(store: &dyn EventStore, commands: Vec<AppendCommand>) -> Vec<Vec<EventRef>> {
    let head = store.head().await.unwrap().position;
    let mut expected_versions: Vec<(String, u64)> = Vec::new();
    for command in &commands {
        for event in &command.events {
            if !expected_versions.iter().any(|(s, _)| *s == event.stream) {
                let version = store.stream_version(&event.stream).await.unwrap();
                expected_versions.push((event.stream.clone(), version));
            }
        }
    }
    store
        .append(AppendBatch {
            expected_head: head,
            expected_versions,
            commands,
        })
        .await
        .unwrap()
}

/// Appends `count` single-event commands cycling over three streams; command id `c<P>` for
/// the event landing at position P.
pub async fn fill(store: &dyn EventStore, count: usize) {
    let streams = ["grant-A", "grant-B", "fund-F"];
    let head = store.head().await.unwrap().position as usize;
    let commands = (head + 1..=head + count)
        .map(|p| command(&format!("c{p}"), &[streams[p % 3]]))
        .collect();
    append(store, commands).await;
}
