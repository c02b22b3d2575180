//! The stream and command indexes, written off the writer's path.
//!
//! A group's commit writes only its log chunks and the head: the `S` and `C` entries it
//! implies go to the in-memory tail ([`crate::tail`]) once the group is durable. When a span
//! of [`INDEX_SPAN_EVENTS`] has gathered, the indexer thread writes it to sled in key order,
//! in slices paced by the load ([`INDEX_KEYS_PER_EVENT`] keys per event of each durable
//! group), one insert at a time, the index mark `I` after the span's last entry, without a
//! flush of its own: sled recovers a prefix of its log, so a recovered `I` implies the
//! entries before it, and the next checkpoint makes them durable. On open, the log past `I`
//! is read back into the tail ([`crate::recovery`]). The same thread makes the checkpoints.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use grantflow_store::StoreError;

use crate::chunk::Encoding;
use crate::commands::is_located;
use crate::errors::{lock, sled_err};
use crate::keys::{command_key, encode_command, encode_command_at, stream_index_key, INDEXED_KEY};
use crate::tail::Span;
use crate::Inner;

/// The stream- and command-index entries of this many events gather in memory (see
/// [`crate::tail`]) before the indexer writes them to sled; at most about twice this many
/// events are read again on open to rebuild what was not written.
pub const INDEX_SPAN_EVENTS: u64 = 16_384;
/// The most events whose index entries may wait in memory (see [`crate::tail`]): past it, the
/// thread that appends a group writes index slices itself until the tail is back under it.
/// The indexer thread keeps the tail near [`INDEX_SPAN_EVENTS`]; when it falls behind (its
/// CPU taken, or sled's inserts slowed by a busy disk), without a bound the tail would grow
/// with the log, a few hundred bytes per command (about 26 MiB at the bound).
/// `GRANTFLOW_TAIL_EVENTS_MAX` in the environment, read when a store is opened, overrides it
/// (a test uses a few hundred).
pub const TAIL_EVENTS_MAX: u64 = 8 * INDEX_SPAN_EVENTS;
/// The environment variable that overrides [`TAIL_EVENTS_MAX`].
pub const TAIL_EVENTS_MAX_ENV: &str = "GRANTFLOW_TAIL_EVENTS_MAX";

/// [`TAIL_EVENTS_MAX`], or what [`TAIL_EVENTS_MAX_ENV`] says.
pub(crate) fn tail_events_max() -> u64 {
    std::env::var(TAIL_EVENTS_MAX_ENV)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|max| *max > 0)
        .unwrap_or(TAIL_EVENTS_MAX)
}

/// After each group the store writes this many index keys per event of the group (a span
/// has about one stream entry per stream and one command entry per command, so the index
/// keeps well ahead of the log) ...
pub const INDEX_KEYS_PER_EVENT: u64 = 2;
/// ... but at least this many ...
pub const INDEX_SLICE_KEYS_MIN: usize = 32;
/// ... and at most this many (a sled batch holds sled's global write lock).
pub const INDEX_SLICE_KEYS_MAX: usize = 1_024;

/// How much index work the indexer thread may do: each durable group allows
/// [`INDEX_KEYS_PER_EVENT`] keys per event, so that the index keeps up with the log and its
/// cost follows the load evenly instead of coming in bursts (a burst of sled inserts on the
/// other core doubled the writer's p99 latency).
#[derive(Default)]
pub(crate) struct IndexPacer {
    orders: Mutex<PacerOrders>,
    wake: std::sync::Condvar,
}

#[derive(Default)]
struct PacerOrders {
    /// Keys the indexer may write now.
    budget: u64,
    /// The store is gone.
    stop: bool,
    /// A checkpoint is wanted (see [`crate::redo`]).
    checkpoint: bool,
}

/// What the indexer thread does next.
enum IndexerWork {
    /// A slice of the index, of this many keys.
    Index(usize),
    /// A checkpoint: make sled durable, so that the redo log may move on.
    Checkpoint,
}

impl IndexPacer {
    pub(crate) fn allow(&self, keys: u64) {
        let mut orders = lock(&self.orders);
        orders.budget = orders.budget.saturating_add(keys);
        self.wake.notify_one();
    }

    pub(crate) fn stop(&self) {
        lock(&self.orders).stop = true;
        self.wake.notify_one();
    }

    pub(crate) fn request_checkpoint(&self) {
        lock(&self.orders).checkpoint = true;
        self.wake.notify_one();
    }

    /// Waits for a budget or a checkpoint request; `None` once stopped.
    fn next_work(&self) -> Option<IndexerWork> {
        let mut orders = lock(&self.orders);
        while orders.budget == 0 && !orders.stop && !orders.checkpoint {
            orders = match self.wake.wait(orders) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        if orders.stop {
            return None;
        }
        if orders.checkpoint {
            orders.checkpoint = false;
            return Some(IndexerWork::Checkpoint);
        }
        let slice = orders.budget.min(INDEX_SLICE_KEYS_MAX as u64);
        orders.budget -= slice;
        Some(IndexerWork::Index(
            slice.max(INDEX_SLICE_KEYS_MIN as u64) as usize
        ))
    }

    /// Nothing was waiting to be written: what was allowed meanwhile is not saved up.
    fn idle(&self) {
        lock(&self.orders).budget = 0;
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pacer.stop();
    }
}

/// Starts the store's indexer thread: it writes the index slice by slice as the pacer allows,
/// makes checkpoints when the redo log asks, and ends when the store is dropped (it holds
/// only a weak reference to it).
pub(crate) fn spawn_indexer(inner: &Arc<Inner>) -> Result<(), StoreError> {
    let store = Arc::downgrade(inner);
    let pacer = Arc::clone(&inner.pacer);
    std::thread::Builder::new()
        .name("grantflow-indexer".to_string())
        .spawn(move || {
            while let Some(work) = pacer.next_work() {
                let Some(inner) = store.upgrade() else {
                    return;
                };
                match work {
                    IndexerWork::Index(budget) => {
                        if !inner.index_step(budget) {
                            pacer.idle();
                        }
                    }
                    IndexerWork::Checkpoint => inner.checkpoint(),
                }
            }
        })
        .map(|_| ())
        .map_err(|error| StoreError::io("starting the indexer thread", error))
}

/// A span of the tail on its way to sled: its entries in key order (sled's leaves then take
/// their inserts one after another), and the last position it covers.
pub(crate) struct Indexing {
    through: u64,
    entries: std::vec::IntoIter<(Vec<u8>, Vec<u8>)>,
}

impl Indexing {
    /// The span's entries, command-index entries in `encoding`'s form.
    pub(crate) fn of(span: &Span, encoding: Encoding) -> Indexing {
        let mut entries: Vec<(Vec<u8>, Vec<u8>)> = span
            .streams
            .iter()
            .map(|(stream, run)| {
                let mut value = Vec::with_capacity(run.positions.len() * 8);
                for position in &run.positions {
                    value.extend_from_slice(&position.to_le_bytes());
                }
                (stream_index_key(stream, run.first_version), value)
            })
            .chain(
                span.commands
                    .values()
                    .filter(|record| !is_located(record))
                    .map(|record| {
                        let value = match (encoding, record.events.first()) {
                            (Encoding::Compact, Some(first)) => encode_command_at(first.position),
                            _ => encode_command(record),
                        };
                        (command_key(&record.command_id), value)
                    }),
            )
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Indexing {
            through: span.through,
            entries: entries.into_iter(),
        }
    }
}

impl Inner {
    /// Events whose index entries are in memory only.
    pub(crate) fn tail_events(&self) -> u64 {
        lock(&self.tail).unindexed_events()
    }

    /// When the indexer has fallen behind, writes index slices on this (the appending)
    /// thread until the tail is under [`TAIL_EVENTS_MAX`]: the writer slows down, the memory
    /// stays bounded. The group is durable already; a failure here stops the store's later
    /// writes, as the indexer's does.
    pub(crate) fn keep_tail_bounded(&self) {
        while self.tail_events() > self.tail_events_max {
            match self.write_index_slice(0, INDEX_SLICE_KEYS_MAX) {
                Ok(false) => {}
                Ok(true) => return,
                Err(error) => {
                    tracing::error!(%error, "cannot write the stream and command index");
                    self.failed.store(true, Ordering::SeqCst);
                    return;
                }
            }
        }
    }

    /// One slice of the indexer's work, given `budget` keys (see [`IndexPacer`]); false
    /// when there was nothing to write. A failure stops the store's writes (the groups are
    /// durable; the span stays in memory for readers).
    pub(crate) fn index_step(&self, budget: usize) -> bool {
        match self.write_index_slice(INDEX_SPAN_EVENTS, budget) {
            Ok(done) => !done,
            Err(error) => {
                tracing::error!(%error, "cannot write the stream and command index");
                self.failed.store(true, Ordering::SeqCst);
                false
            }
        }
    }

    /// Writes up to `budget` keys of the span being written, starting one from a live span
    /// of at least `min_events`; true once nothing is left to write.
    pub(crate) fn write_index_slice(
        &self,
        min_events: u64,
        budget: usize,
    ) -> Result<bool, StoreError> {
        let mut indexing = lock(&self.indexing);
        if indexing.is_none() {
            let Some(span) = lock(&self.tail).freeze(min_events) else {
                return Ok(true);
            };
            debug_assert!(
                span.through <= self.durable_head().position,
                "the index covers only durable groups"
            );
            *indexing = Some(Indexing::of(&span, self.encoding));
        }
        let Some(current) = indexing.as_mut() else {
            return Ok(true);
        };
        // One insert at a time, not a sled `Batch`: `apply_batch` takes sled's global write
        // lock for the whole slice (the writer's group waited behind it) and seals the I/O
        // buffer (one more write to the file per slice). Nothing here needs a batch: sled
        // recovers a prefix of its log, so a recovered index mark (inserted last, after the
        // span's every entry) implies the entries; a span cut short is rebuilt from the log.
        for (key, value) in current.entries.by_ref().take(budget) {
            self.tree
                .insert(key, value)
                .map_err(sled_err("writing the index"))?;
        }
        let done = current.entries.len() == 0;
        if done {
            // The mark last: a recovered mark implies every entry of the span before it.
            self.tree
                .insert(INDEXED_KEY, &current.through.to_be_bytes()[..])
                .map_err(sled_err("writing the index mark"))?;
            let span = lock(&self.tail).written(current.through);
            *indexing = None;
            drop(indexing);
            // Freed here, not under the tail's lock, which every commit and lookup takes.
            drop(span);
        }
        Ok(false)
    }

    /// Writes the whole tail (on close, so that the next open has nothing to rebuild).
    pub(crate) fn index_all(&self) -> Result<(), StoreError> {
        if self.failed.load(Ordering::SeqCst) {
            return Ok(());
        }
        while !self.write_index_slice(0, usize::MAX)? {}
        Ok(())
    }
}
