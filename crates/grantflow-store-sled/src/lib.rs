//! grantflow's event log on an embedded sled database: the [`EventStore`] that one process
//! holds, durable with one `fdatasync` per group commit.
//!
//! A group of commands is ONE record in the redo log ([`redo`]: one `pwrite`, one
//! `fdatasync`), then goes into sled's memory, one insert at a time, the head last; it is
//! acknowledged, and the durable head moves, only after that. sled is made durable lazily, by
//! a *checkpoint*: sled's `flush()` and one `sync_data()` of its database file (sled's own
//! flush is `sync_file_range`, no promise against power loss), on the indexer's thread, when
//! the redo log needs its space again. On open, the groups the redo log holds past sled's
//! recovered head are written back into sled ([`recovery`]).
//!
//! The data directory holds:
//! - `GRANTFLOW`: the marker, `grantflow store\nformat 4\n` (`format 3` in a store whose log
//!   chunks are plain, which this build still reads and writes as it is), checked before sled
//!   ever sees the directory (sled may panic on garbage); it also says that the redo files
//!   must be there, whatever sled holds.
//! - `redo-0`, `redo-1`: the redo log ([`redo`]), outside sled, where sled's recovery cannot
//!   reach it.
//! - `snapshot-<name>`: projection snapshots ([`snapshot`]), caches of the log.
//! - `db/`: the sled database, one tree, keys by prefix ([`keys`]): the log in chunks of
//!   several events ([`chunk`]), the head, and the stream and command indexes, which an
//!   indexer thread writes off the writer's path ([`indexer`], [`tail`]), and checkpointed
//!   states ([`checkpoints`]).
//!
//! The order of a commit, the lock order and what each cache may hold are written down in
//! ARCHITECTURE.md ("The sled store") and asserted where they are kept.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod checkpoints;
mod chunk;
mod commands;
mod config;
mod errors;
mod files;
mod indexer;
mod keys;
mod read;
mod readonly;
mod recovery;
mod redo;
mod snapshot;
mod tail;
#[cfg(feature = "testing")]
pub mod testing;
mod write;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use foldhash::HashMap;
use grantflow_store::recent::Recent;
use grantflow_store::{
    AppendBatch, CheckpointEntry, CommandRecord, Envelope, EventRef, EventStore, Head, PayloadPage,
    StoreError,
};
use tokio::sync::watch;

pub use chunk::{CHUNK_BYTES_TARGET, VALUE_BYTES_MAX, ZSTD_LEVEL};
pub use config::{
    open_sled, sled_config, CACHE_CAPACITY_BYTES, FLUSH_EVERY_MS, OPEN_LOCK_WAIT_MS, SEGMENT_BYTES,
};
pub use files::{create_private_dir, lock_private_file, replace_durably};
pub use indexer::{
    INDEX_KEYS_PER_EVENT, INDEX_SLICE_KEYS_MAX, INDEX_SLICE_KEYS_MIN, INDEX_SPAN_EVENTS,
    TAIL_EVENTS_MAX, TAIL_EVENTS_MAX_ENV,
};
pub use recovery::{MARKER_FILE_NAME, OLDEST_STORE_FORMAT, STORE_FORMAT};
pub use redo::{REDO_FILE_NAMES, REDO_SWITCH_BYTES, REDO_SWITCH_BYTES_ENV};
pub use write::IMPORT_GROUP_EVENTS_MAX;

use commands::AbsentIds;
use errors::{lock, not_a_store};
use indexer::{IndexPacer, Indexing};
use redo::RedoLog;
use tail::Tail;

/// The sled-backed event log. Cheap to clone (clones share the store).
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
    /// For a store opened by [`SledStore::open_read_only`]: the private copy it works on,
    /// removed when the last clone goes.
    copy: Option<Arc<readonly::ReadOnlyCopy>>,
}

/// The store's state, shared by its clones and (weakly) by the indexer thread.
///
/// Lock order (a thread holding one may take only those after it): `write_lock`,
/// `snapshot_lock`, `indexing`, `absent_ids`, `tail`, `redo`, `head`, `stream_heads`, and the
/// pacer's own lock last. No lock is held across an `.await`.
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) tree: sled::Db,
    /// sled's database file, for `sync_data` after sled's `flush()` at a checkpoint.
    pub(crate) db_file: fs::File,
    /// Serialises appends, imports and close (there is one writer; this makes it so).
    pub(crate) write_lock: Mutex<()>,
    /// Serialises snapshot saves.
    pub(crate) snapshot_lock: Mutex<()>,
    /// The durable head: readers never go past it. Moves only forward, only in `commit`,
    /// after the group is durable in the redo log and in sled's memory.
    pub(crate) head: Mutex<Head>,
    /// Command ids known absent from the index (see [`AbsentIds`]).
    pub(crate) absent_ids: Mutex<AbsentIds>,
    /// The durable (version, position) of each stream looked up or written so far; a stream
    /// has a few dozen bytes here, so a fund's many thousands of grants stay a few MB. Holds
    /// only what is at or before the durable head.
    pub(crate) stream_heads: Mutex<HashMap<String, (u64, u64)>>,
    /// The index entries not yet in sled (see [`tail`]).
    pub(crate) tail: Mutex<Tail>,
    /// The span of the tail being written to sled, slice by slice.
    pub(crate) indexing: Mutex<Option<Indexing>>,
    /// Paces the indexer thread (which holds only a weak reference to this).
    pub(crate) pacer: Arc<IndexPacer>,
    /// The redo log (written under `write_lock`).
    pub(crate) redo: Mutex<RedoLog>,
    /// sled is durable through this position (the last checkpoint's); never past the head.
    pub(crate) synced: AtomicU64,
    pub(crate) head_tx: watch::Sender<u64>,
    /// The newest durable groups' envelopes, for the readers that follow the log live.
    pub(crate) recent: Recent,
    pub(crate) closed: AtomicBool,
    /// Set when a write may have reached sled's memory but not the disk: no more writes.
    pub(crate) failed: AtomicBool,
    /// [`TAIL_EVENTS_MAX`], or what the environment says.
    pub(crate) tail_events_max: u64,
    /// How this store writes its log chunks and command-index entries: compact in a store
    /// of format 4, plain in one of format 3 (which older builds read).
    pub(crate) encoding: chunk::Encoding,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens the store in `dir`, creating it when the directory is absent or empty.
    /// A directory with other content and no grantflow marker is [`StoreError::NotAStore`];
    /// a marker from a newer grantflow is [`StoreError::NewerFormat`], from an older one
    /// [`StoreError::UnsupportedFormat`]. Blocking (file I/O and sled's recovery): call it
    /// before starting the runtime or in `spawn_blocking`.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        recovery::create_if_missing(dir)?;
        Self::open_existing(dir)
    }

    /// Opens an existing store; [`StoreError::NotAStore`] when `dir` holds none (for verbs
    /// that only read).
    pub fn open_existing(dir: &Path) -> Result<SledStore, StoreError> {
        if !dir.is_dir() {
            return Err(not_a_store(dir, "no such directory"));
        }
        if !Self::exists(dir) {
            return Err(not_a_store(dir, &format!("no {MARKER_FILE_NAME} marker")));
        }
        let inner = Arc::new(recovery::open_marked(dir)?);
        indexer::spawn_indexer(&inner)?;
        Ok(SledStore { inner, copy: None })
    }

    /// Opens an existing store for reading only, without writing a byte to `dir`: on a
    /// private copy of it under the system's temporary directory (see [`readonly`]), which
    /// recovers and is checked against the redo log there, and is removed when the store is
    /// dropped. Appends and imports are refused ([`StoreError::Unavailable`]). Errors name
    /// the files of `dir`, as [`SledStore::open_existing`]'s do.
    pub fn open_read_only(dir: &Path) -> Result<SledStore, StoreError> {
        if !dir.is_dir() {
            return Err(not_a_store(dir, "no such directory"));
        }
        if !Self::exists(dir) {
            return Err(not_a_store(dir, &format!("no {MARKER_FILE_NAME} marker")));
        }
        let copy = readonly::ReadOnlyCopy::of(dir)?;
        let inner = recovery::open_marked(&copy.path)
            .map(Arc::new)
            .and_then(|inner| indexer::spawn_indexer(&inner).map(|()| inner))
            .map_err(|error| copy.rename_in(error))?;
        Ok(SledStore {
            inner,
            copy: Some(Arc::new(copy)),
        })
    }

    /// Refuses a write to a store opened read-only.
    fn check_not_read_only(&self) -> Result<(), StoreError> {
        match &self.copy {
            Some(copy) => Err(StoreError::Unavailable(format!(
                "{} was opened read-only",
                copy.original.display()
            ))),
            None => Ok(()),
        }
    }

    /// Whether `dir` holds a grantflow store (its marker), without opening it.
    pub fn exists(dir: &Path) -> bool {
        dir.join(MARKER_FILE_NAME).is_file()
    }

    /// Creates a store in `dir` unless it holds one already, and closes it: for a tool that
    /// keeps its own files in the data directory and needs the store's claim on it first.
    pub fn ensure(dir: &Path) -> Result<(), StoreError> {
        if Self::exists(dir) {
            return Ok(());
        }
        Self::open(dir).map(drop)
    }

    /// The position of the last event the store in `dir` acknowledged, read from its redo
    /// log without opening the store: it works while another process (`grantflow serve`)
    /// holds it, and writes nothing. Every event acknowledged before the call is at or
    /// before it. [`StoreError::NotAStore`] when `dir` holds no store.
    pub fn acknowledged_position(dir: &Path) -> Result<u64, StoreError> {
        if !Self::exists(dir) {
            return Err(not_a_store(dir, &format!("no {MARKER_FILE_NAME} marker")));
        }
        Ok(redo::acknowledged_head(dir)?.map_or(0, |head| head.position))
    }

    /// Events whose stream- and command-index entries are still in memory only (see
    /// [`tail`]): at most about [`TAIL_EVENTS_MAX`] plus one group.
    pub fn unindexed_events(&self) -> u64 {
        self.inner.tail_events()
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `work` on a blocking thread: sled reads and flushes never block the runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|error| StoreError::io("running a store task", error))?
    }
}

#[async_trait]
impl EventStore for SledStore {
    async fn head(&self) -> Result<Head, StoreError> {
        Ok(self.inner.durable_head())
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.check_not_read_only()?;
        self.blocking(move |inner| inner.append(batch)).await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        // A subscriber that has caught up asks for the newest events: from memory, on this
        // thread, without a blocking thread's wake-up.
        if let Some(events) = self.inner.read_recent(from, limit) {
            return Ok(events);
        }
        self.blocking(move |inner| inner.read(from, limit)).await
    }

    async fn read_payloads(&self, from: u64, limit: usize) -> Result<PayloadPage, StoreError> {
        self.blocking(move |inner| inner.read_payloads(from, limit))
            .await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let stream = stream.to_string();
        self.blocking(move |inner| inner.read_stream(&stream, from_version, limit))
            .await
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        let stream = stream.to_string();
        self.blocking(move |inner| inner.durable_stream_version(&stream))
            .await
    }

    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        let command_id = command_id.to_string();
        self.blocking(move |inner| inner.durable_command(&command_id))
            .await
    }

    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        self.blocking(move |inner| inner.durable_commands(&command_ids))
            .await
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.check_not_read_only()?;
        self.blocking(move |inner| inner.import(events)).await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.save_snapshot(&name, position, &bytes))
            .await
    }

    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.load_snapshot(&name)).await
    }

    async fn save_checkpoints(
        &self,
        name: &str,
        through: u64,
        entries: Vec<CheckpointEntry>,
    ) -> Result<(), StoreError> {
        self.check_not_read_only()?;
        let name = name.to_string();
        self.blocking(move |inner| inner.save_checkpoints(&name, through, &entries))
            .await
    }

    async fn checkpoint_mark(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_string();
        self.blocking(move |inner| inner.checkpoint_mark(&name))
            .await
    }

    async fn load_checkpoint(
        &self,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let (name, key) = (name.to_string(), key.to_string());
        self.blocking(move |inner| inner.load_checkpoint(&name, &key, at_most))
            .await
    }

    fn exclusive(&self) -> bool {
        true
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head_tx.subscribe()
    }

    async fn close(&self) -> Result<(), StoreError> {
        self.blocking(|inner| {
            let _writer = lock(&inner.write_lock);
            inner.closed.store(true, Ordering::SeqCst);
            inner.index_all()?;
            inner.make_durable("closing")?;
            // sled holds everything: the redo log's groups are no longer needed.
            let head = inner.durable_head();
            lock(&inner.redo).reset(&head)
        })
        .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;
    use grantflow_store::{AppendCommand, NewEvent, ZERO_HASH};

    #[test]
    fn a_new_store_writes_no_blob_files() {
        // sled writes a page over a quarter of its segment size to a blob file, which it
        // never fsyncs: fill enough chunks for several full leaves and look.
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path()).unwrap();
        let payload = format!("{{\"note\":\"{}\"}}", "x".repeat(2_000));
        for round in 0..40u64 {
            let commands = (0..40u64)
                .map(|index| AppendCommand {
                    command_id: format!("c-{round}-{index}"),
                    body_hash: ZERO_HASH,
                    fresh_id: false,
                    events: vec![NewEvent {
                        stream: format!("fund-{index}"),
                        event_type: "fund.noted".to_string(),
                        schema: 1,
                        actor: "tester".to_string(),
                        command_id: format!("c-{round}-{index}"),
                        correlation_id: format!("c-{round}-{index}"),
                        payload: payload.clone(),
                    }],
                })
                .collect();
            let head = store.inner.durable_head().position;
            let expected_versions = (0..40u64)
                .map(|index| (format!("fund-{index}"), round))
                .collect();
            store
                .inner
                .append(AppendBatch {
                    expected_head: head,
                    expected_versions,
                    commands,
                })
                .unwrap();
        }
        store.inner.make_durable("test").unwrap();
        let blobs = dir.path().join("db").join("blobs");
        let count = fs::read_dir(&blobs).map_or(0, |entries| entries.count());
        assert_eq!(count, 0, "sled wrote blob files in {}", blobs.display());
        let sled_conf = fs::read(dir.path().join("db").join("conf")).unwrap();
        let sled_conf = String::from_utf8_lossy(&sled_conf);
        assert!(sled_conf.contains(&format!("segment_size: {SEGMENT_BYTES}")));
    }
}
