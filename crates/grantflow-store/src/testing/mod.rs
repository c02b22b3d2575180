//! What every backend's tests share (feature `testing`): the [`Backend`] factory a backend's
//! test crate implements, helpers that build commands and batches, and the conformance
//! suite ([`suite`]) that every [`EventStore`] must pass. A backend runs the whole suite
//! with one line, [`crate::conformance_suite!`]`(path::to::backend_fn)`, where the function
//! returns `Option<Arc<dyn Backend>>` (`None`: the backend is not available here, and every
//! test of the suite passes without running, after the function has said why).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed unwrap is a failed test

pub mod suite;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;

use crate::{AppendBatch, AppendCommand, Envelope, EventRef, EventStore, NewEvent};

/// A backend under test: makes fresh stores and opens them again.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// A fresh, empty store at a new location; returns the store and its location.
    async fn create(&self) -> (Arc<dyn EventStore>, String);
    /// Another store instance on an existing location (for sled, close and drop every
    /// earlier instance first).
    async fn reopen(&self, location: &str) -> Arc<dyn EventStore>;
    /// Removes everything the backend created.
    async fn cleanup(&self);
}

/// Runs one test against a backend (none: the test is skipped), cleaning up afterwards
/// even when the test panics.
pub async fn run<B, F, Fut>(backend: Option<Arc<B>>, test: F)
where
    B: Backend + ?Sized,
    F: FnOnce(Arc<B>) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(backend) = backend else { return };
    let outcome = AssertUnwindSafe(test(Arc::clone(&backend)))
        .catch_unwind()
        .await;
    backend.cleanup().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
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

/// The batch of `commands` against the store's current head and stream versions.
pub async fn batch_for(store: &dyn EventStore, commands: Vec<AppendCommand>) -> AppendBatch {
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
    AppendBatch {
        expected_head: head,
        expected_versions,
        commands,
    }
}

/// Appends commands against the store's current head and stream versions.
pub async fn append(store: &dyn EventStore, commands: Vec<AppendCommand>) -> Vec<Vec<EventRef>> {
    let batch = batch_for(store, commands).await;
    store.append(batch).await.unwrap()
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

/// The whole log, page by page.
pub async fn read_all(store: &dyn EventStore) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let page = store.read(out.len() as u64 + 1, 1000).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// Declares one `#[tokio::test]` per conformance test of [`suite`], run against `$backend`
/// (an async fn returning `Option<Arc<dyn Backend>>`).
#[macro_export]
macro_rules! conformance_suite {
    ($backend:path) => {
        $crate::conformance_suite!(@tests $backend;
            append_then_read_by_position_and_stream,
            reads_are_bounded,
            multi_stream_batch_is_all_or_nothing,
            expected_head_conflict,
            reused_command_id_is_a_conflict,
            bad_events_are_refused_before_writing,
            large_groups,
            empty_batch_writes_nothing,
            reopen_keeps_everything,
            closed_store_refuses_writes,
            recorded_at_never_goes_back,
            import_of_an_export_gives_the_same_head,
            import_in_several_groups_and_onto_a_prefix,
            import_refuses_bad_files_and_writes_nothing,
            snapshots_save_and_load,
            checkpoints_save_and_load,
            concurrent_readers_see_only_durable_events,
            catch_up_then_live_exactly_once,
            subscription_filtered_by_stream,
            subscription_from_the_future_waits_for_it,
            positions_and_versions_are_gapless,
            commands_are_looked_up_in_order,
            watch_head_follows_appends,
            newest_reads_are_the_logs,
            newest_reads_after_an_import_are_the_logs,
            an_id_looked_up_as_absent_is_still_refused_once_recorded,
            a_fresh_id_is_recorded_like_any_other_and_still_refused_twice_in_one_batch,
            payload_pages_hold_what_the_envelopes_hold
        );
    };
    (@tests $backend:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::testing::run($backend().await, $crate::testing::suite::$name).await;
            }
        )*
    };
}
