//! One pass-through store: [`Forward`] hands every call to an inner [`EventStore`], through
//! a [`Layer`] that may watch, delay, change or fail the calls it cares about. Test doubles
//! (injected faults, a rival writer) and the bench's probe are layers, not hand-written
//! copies of the trait.

use std::sync::Arc;

use async_trait::async_trait;

use crate::{
    AppendBatch, CheckpointEntry, CommandRecord, Envelope, EventRef, EventStore, Head, PayloadPage,
    StoreError,
};

/// What a [`Forward`] does around its inner store's calls. Every method has a default that
/// just forwards (or, for [`Layer::before_read`], lets the read through).
#[async_trait]
pub trait Layer: Send + Sync + 'static {
    /// Before every read (`head` excepted): an error fails the read.
    fn before_read(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// An append.
    async fn append(
        &self,
        inner: &dyn EventStore,
        batch: AppendBatch,
    ) -> Result<Vec<Vec<EventRef>>, StoreError> {
        inner.append(batch).await
    }

    /// An import.
    async fn import(
        &self,
        inner: &dyn EventStore,
        events: Vec<Envelope>,
    ) -> Result<(), StoreError> {
        inner.import(events).await
    }

    /// A snapshot save.
    async fn save_snapshot(
        &self,
        inner: &dyn EventStore,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        inner.save_snapshot(name, position, bytes).await
    }

    /// A snapshot load.
    async fn load_snapshot(
        &self,
        inner: &dyn EventStore,
        name: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        inner.load_snapshot(name).await
    }

    /// A save of checkpointed states.
    async fn save_checkpoints(
        &self,
        inner: &dyn EventStore,
        name: &str,
        through: u64,
        entries: Vec<CheckpointEntry>,
    ) -> Result<(), StoreError> {
        inner.save_checkpoints(name, through, entries).await
    }

    /// A checkpointed state's load.
    async fn load_checkpoint(
        &self,
        inner: &dyn EventStore,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        inner.load_checkpoint(name, key, at_most).await
    }

    /// A reservation of the append point.
    async fn reserve_head(&self, inner: &dyn EventStore) -> Result<Option<Head>, StoreError> {
        inner.reserve_head().await
    }

    /// Whether the store has one writer (a layer standing for another process says no).
    fn exclusive(&self, inner: &dyn EventStore) -> bool {
        inner.exclusive()
    }

    /// Closing.
    async fn close(&self, inner: &dyn EventStore) -> Result<(), StoreError> {
        inner.close().await
    }
}

/// An [`EventStore`] that forwards to `inner` through `layer`.
pub struct Forward<L> {
    inner: Arc<dyn EventStore>,
    layer: L,
}

impl<L: Layer> Forward<L> {
    /// `inner` seen through `layer`.
    pub fn new(inner: Arc<dyn EventStore>, layer: L) -> Forward<L> {
        Forward { inner, layer }
    }

    /// The layer (its counters, its switches).
    pub fn layer(&self) -> &L {
        &self.layer
    }

    /// The store underneath.
    pub fn inner(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }
}

#[async_trait]
impl<L: Layer> EventStore for Forward<L> {
    async fn head(&self) -> Result<Head, StoreError> {
        self.inner.head().await
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.layer.append(self.inner.as_ref(), batch).await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        self.layer.before_read()?;
        self.inner.read(from, limit).await
    }

    async fn read_payloads(&self, from: u64, limit: usize) -> Result<PayloadPage, StoreError> {
        self.layer.before_read()?;
        self.inner.read_payloads(from, limit).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        self.layer.before_read()?;
        self.inner.read_stream(stream, from_version, limit).await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        self.layer.before_read()?;
        self.inner.stream_version(stream).await
    }

    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        self.layer.before_read()?;
        self.inner.command(command_id).await
    }

    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        self.layer.before_read()?;
        self.inner.commands(command_ids).await
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.layer.import(self.inner.as_ref(), events).await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.layer
            .save_snapshot(self.inner.as_ref(), name, position, bytes)
            .await
    }

    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.layer.before_read()?;
        self.layer.load_snapshot(self.inner.as_ref(), name).await
    }

    async fn save_checkpoints(
        &self,
        name: &str,
        through: u64,
        entries: Vec<CheckpointEntry>,
    ) -> Result<(), StoreError> {
        self.layer
            .save_checkpoints(self.inner.as_ref(), name, through, entries)
            .await
    }

    async fn checkpoint_mark(&self, name: &str) -> Result<u64, StoreError> {
        self.layer.before_read()?;
        self.inner.checkpoint_mark(name).await
    }

    async fn load_checkpoint(
        &self,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.layer.before_read()?;
        self.layer
            .load_checkpoint(self.inner.as_ref(), name, key, at_most)
            .await
    }

    async fn reserve_head(&self) -> Result<Option<Head>, StoreError> {
        self.layer.reserve_head(self.inner.as_ref()).await
    }

    fn exclusive(&self) -> bool {
        self.layer.exclusive(self.inner.as_ref())
    }

    fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.watch_head()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.layer.close(self.inner.as_ref()).await
    }
}
