//! Test support: the two backends behind one [`Backend`] factory, helpers, and the
//! conformance suite (`suite`) that every backend must pass.
#![allow(dead_code)]

pub mod suite;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::FutureExt;
use grantflow_store::{
    AppendBatch, AppendCommand, Envelope, EventRef, EventStore, NewEvent, SledStore,
};
use grantflow_store_pg::PgStore;

/// The environment variable holding the PostgreSQL URL of the tests.
pub const PG_ENV: &str = "GRANTFLOW_TEST_POSTGRES";

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

// ---------------------------------------------------------------------------------------
// sled

/// sled stores in one temporary directory.
pub struct SledBackend {
    dir: Mutex<Option<tempfile::TempDir>>,
    root: PathBuf,
    next: AtomicUsize,
}

/// The sled backend (always available).
pub async fn sled_backend() -> Option<Arc<dyn Backend>> {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Some(Arc::new(SledBackend {
        dir: Mutex::new(Some(dir)),
        root,
        next: AtomicUsize::new(0),
    }))
}

#[async_trait]
impl Backend for SledBackend {
    async fn create(&self) -> (Arc<dyn EventStore>, String) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let path = self.root.join(format!("store-{n}"));
        let location = path.display().to_string();
        let store = tokio::task::spawn_blocking(move || SledStore::open(&path).unwrap())
            .await
            .unwrap();
        (Arc::new(store), location)
    }

    async fn reopen(&self, location: &str) -> Arc<dyn EventStore> {
        let path = PathBuf::from(location);
        let store = tokio::task::spawn_blocking(move || SledStore::open_existing(&path).unwrap())
            .await
            .unwrap();
        Arc::new(store)
    }

    async fn cleanup(&self) {
        self.dir.lock().unwrap().take();
    }
}

// ---------------------------------------------------------------------------------------
// PostgreSQL

/// PostgreSQL stores, each in its own freshly named schema, dropped at cleanup.
pub struct PgBackend {
    /// The server's URL (from [`PG_ENV`]).
    pub url: String,
    schemas: Mutex<Vec<String>>,
}

/// The PostgreSQL URL of the tests, or `None` (after saying so) when it is not set.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Once per test binary, and past the test harness's output capture so that it
            // shows in a plain `cargo test`.
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping PostgreSQL tests: {PG_ENV} is not set"
                );
            });
            None
        }
    }
}

/// The PostgreSQL backend, `None` when [`PG_ENV`] is not set.
pub async fn pg_backend() -> Option<Arc<dyn Backend>> {
    let backend: Arc<dyn Backend> = pg()?;
    Some(backend)
}

/// The PostgreSQL backend with its own methods.
pub fn pg() -> Option<Arc<PgBackend>> {
    Some(Arc::new(PgBackend {
        url: pg_url()?,
        schemas: Mutex::new(Vec::new()),
    }))
}

impl PgBackend {
    /// A new random schema name, dropped at cleanup.
    pub fn new_schema(&self) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("gf_test_{}", &id[..16]);
        self.schemas.lock().unwrap().push(schema.clone());
        schema
    }

    /// The URL of a store in `schema`.
    pub fn url_for(&self, schema: &str) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}schema={schema}", self.url)
    }

    /// A plain connection to the server (as the URL's role).
    pub async fn admin(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Connects a store to a new schema; returns it and the schema.
    pub async fn create_pg(&self) -> (PgStore, String) {
        let schema = self.new_schema();
        let store = PgStore::connect(&self.url_for(&schema)).await.unwrap();
        (store, schema)
    }
}

#[async_trait]
impl Backend for PgBackend {
    async fn create(&self) -> (Arc<dyn EventStore>, String) {
        let schema = self.new_schema();
        let url = self.url_for(&schema);
        let store = PgStore::connect(&url).await.unwrap();
        (Arc::new(store), url)
    }

    async fn reopen(&self, location: &str) -> Arc<dyn EventStore> {
        Arc::new(PgStore::connect(location).await.unwrap())
    }

    async fn cleanup(&self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        if schemas.is_empty() {
            return;
        }
        let client = self.admin().await;
        client
            .batch_execute("SET lock_timeout TO '20s'")
            .await
            .unwrap();
        for schema in schemas {
            client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                .await
                .unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Helpers (as in grantflow-store's tests)

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

/// Declares one `#[tokio::test]` per conformance test, run against `$backend` (an async
/// fn returning `Option<Arc<dyn Backend>>`).
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
            concurrent_readers_see_only_durable_events,
            catch_up_then_live_exactly_once,
            subscription_filtered_by_stream,
            subscription_from_the_future_waits_for_it,
            positions_and_versions_are_gapless,
            commands_are_looked_up_in_order,
            watch_head_follows_appends,
            newest_reads_are_the_logs,
            newest_reads_after_an_import_are_the_logs
        );
    };
    (@tests $backend:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::common::run($backend().await, $crate::common::suite::$name).await;
            }
        )*
    };
}
