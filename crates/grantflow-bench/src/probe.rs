//! A transparent [`EventStore`] wrapper that counts the engine's durable groups (appends) and
//! the time spent inside them, and can hide the projection snapshot (to time an open that
//! folds the whole log).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use grantflow_store::{
    AppendBatch, CommandRecord, Envelope, EventRef, EventStore, Head, PayloadPage, StoreError,
};
use tokio::sync::watch;

/// What the probe saw.
#[derive(Debug, Clone, Default)]
pub struct ProbeStats {
    /// Appends (durable groups).
    pub appends: u64,
    /// Commands appended.
    pub commands: u64,
    /// Events appended.
    pub events: u64,
    /// Seconds spent inside `append` (write + flush + fsync), summed.
    pub append_seconds: f64,
    /// Events per append, in order (bounded to the first million appends).
    pub group_events: Vec<u32>,
}

/// The wrapper.
pub struct Probe {
    inner: Arc<dyn EventStore>,
    hide_snapshot: bool,
    stats: Mutex<ProbeStats>,
}

impl Probe {
    /// Wraps a store.
    pub fn new(inner: Arc<dyn EventStore>, hide_snapshot: bool) -> Arc<Probe> {
        Arc::new(Probe {
            inner,
            hide_snapshot,
            stats: Mutex::new(ProbeStats::default()),
        })
    }

    /// A copy of the statistics so far.
    pub fn stats(&self) -> ProbeStats {
        match self.stats.lock() {
            Ok(stats) => stats.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl EventStore for Probe {
    async fn head(&self) -> Result<Head, StoreError> {
        self.inner.head().await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        let commands = batch.commands.len() as u64;
        let events: usize = batch.commands.iter().map(|c| c.events.len()).sum();
        let started = Instant::now();
        let result = self.inner.append(batch).await;
        let seconds = started.elapsed().as_secs_f64();
        if result.is_ok() {
            let mut stats = match self.stats.lock() {
                Ok(stats) => stats,
                Err(poisoned) => poisoned.into_inner(),
            };
            stats.appends += 1;
            stats.commands += commands;
            stats.events += events as u64;
            stats.append_seconds += seconds;
            if stats.group_events.len() < 1_000_000 {
                stats.group_events.push(events as u32);
            }
        }
        result
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.inner.read(from, limit).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.inner.command(command_id).await
    }

    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        self.inner.commands(command_ids).await
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.inner.import(events).await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.inner.save_snapshot(name, position, bytes).await
    }

    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if self.hide_snapshot {
            return Ok(None);
        }
        self.inner.load_snapshot(name).await
    }

    async fn read_payloads(&self, from: u64, limit: usize) -> Result<PayloadPage, StoreError> {
        self.inner.read_payloads(from, limit).await
    }

    async fn reserve_head(&self) -> Result<bool, StoreError> {
        self.inner.reserve_head().await
    }

    fn exclusive(&self) -> bool {
        self.inner.exclusive()
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.watch_head()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.inner.close().await
    }
}
