//! A transparent [`EventStore`] layer that counts the engine's durable groups (appends) and
//! the time spent inside them, and can hide the projection snapshot (to time an open that
//! folds the whole log).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use grantflow_store::forward::{Forward, Layer};
use grantflow_store::{AppendBatch, EventRef, EventStore, Head, StoreError};

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
    /// Reservations of the append point ([`EventStore::reserve_head`]) the store made.
    pub reservations: u64,
    /// Seconds spent inside `reserve_head` (on PostgreSQL: waiting for the head row), summed.
    pub reserve_seconds: f64,
}

/// What the probe does around the store's calls (a [`Layer`] of [`Forward`]).
pub struct ProbeLayer {
    hide_snapshot: bool,
    stats: Mutex<ProbeStats>,
}

/// A store seen through the probe.
pub type Probe = Forward<ProbeLayer>;

/// Wraps a store; `hide_snapshot`: its projection snapshot is not seen (an open then folds
/// the whole log).
pub fn wrap(inner: Arc<dyn EventStore>, hide_snapshot: bool) -> Arc<Probe> {
    Arc::new(Forward::new(
        inner,
        ProbeLayer {
            hide_snapshot,
            stats: Mutex::new(ProbeStats::default()),
        },
    ))
}

impl ProbeLayer {
    /// A copy of the statistics so far.
    pub fn stats(&self) -> ProbeStats {
        match self.stats.lock() {
            Ok(stats) => stats.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[async_trait]
impl Layer for ProbeLayer {
    async fn append(
        &self,
        inner: &dyn EventStore,
        batch: AppendBatch,
    ) -> Result<Vec<Vec<EventRef>>, StoreError> {
        let commands = batch.commands.len() as u64;
        let events: usize = batch.commands.iter().map(|c| c.events.len()).sum();
        let started = Instant::now();
        let result = inner.append(batch).await;
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

    async fn reserve_head(&self, inner: &dyn EventStore) -> Result<Option<Head>, StoreError> {
        let started = Instant::now();
        let result = inner.reserve_head().await;
        let seconds = started.elapsed().as_secs_f64();
        if let Ok(Some(_)) = result {
            let mut stats = match self.stats.lock() {
                Ok(stats) => stats,
                Err(poisoned) => poisoned.into_inner(),
            };
            stats.reservations += 1;
            stats.reserve_seconds += seconds;
        }
        result
    }

    async fn load_snapshot(
        &self,
        inner: &dyn EventStore,
        name: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if self.hide_snapshot {
            return Ok(None);
        }
        inner.load_snapshot(name).await
    }
}
