//! grantflow's event log.
//!
//! The store knows bytes, streams, positions and hashes, never grants or funds. It turns
//! [`NewEvent`]s into stored envelopes (docs/events.md: position, stream, version, type, schema,
//! recorded_at, actor, command_id, correlation_id, payload, prev_hash, hash), chains them with
//! SHA-256, keeps a durable command-id index, and hands them back by position or by stream.
//!
//! [`EventStore`] is the async trait every backend implements (`grantflow-store-sled`,
//! `grantflow-store-pg`): no backend type appears in its signatures. Every backend runs the
//! conformance suite of [`testing`] (feature `testing`).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod checks;
pub mod cloudevent;
pub mod envelope;
pub mod forward;
pub mod ids;
pub mod recent;
pub mod seal;
pub mod subscription;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;

pub use envelope::{now_rfc3339, ChainVerifier, Envelope, EnvelopeError, Hash, ZERO_HASH};
pub use ids::{located_command_id, located_position};
pub use subscription::{subscribe, EventStream};

/// How many events one [`EventStore::read`] call returns at the most.
pub const READ_EVENTS_MAX: usize = 10_000;

/// One event to append, before the store gives it a position, version, time and hash.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `fund-<id>` or `grant-<id>`.
    pub stream: String,
    /// Dotted past-tense type, e.g. `grant.approved`.
    pub event_type: String,
    /// Payload schema version.
    pub schema: u32,
    /// Who issued the command.
    pub actor: String,
    /// The command's idempotency key.
    pub command_id: String,
    /// Groups the events of one command (grantflow uses the command id).
    pub correlation_id: String,
    /// The payload as compact JSON (an object), exactly as it will be hashed.
    pub payload: String,
}

/// All events of one accepted command: appended together or not at all.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendCommand {
    /// The command id, remembered in the durable command index.
    pub command_id: String,
    /// SHA-256 of the command body (canonical JSON, actor included): tells a replay from a
    /// conflicting reuse of the id.
    pub body_hash: Hash,
    /// The command's events, in order (at least one).
    pub events: Vec<NewEvent>,
    /// The engine made the id just now (a random UUID, see `grantflow_engine::new_command_id`)
    /// rather than taking it from the client: no earlier command can hold it, and a store may
    /// skip looking it up in its command index (it still refuses an id given twice in one
    /// batch). False when in doubt.
    pub fresh_id: bool,
}

/// A group commit: many commands appended in one durable write.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppendBatch {
    /// The head position the writer decided against; anything else is [`StoreError::Conflict`].
    pub expected_head: u64,
    /// For every stream the batch touches, its version before the batch (0: a new stream).
    pub expected_versions: Vec<(String, u64)>,
    /// The commands, in order.
    pub commands: Vec<AppendCommand>,
}

/// Where an appended event landed (the `events` of a command result).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventRef {
    /// Global position, gapless from 1.
    pub position: u64,
    /// Stream name.
    pub stream: String,
    /// Version within the stream, gapless from 1.
    pub version: u64,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
}

impl EventRef {
    /// Where an envelope landed.
    pub fn of(envelope: &Envelope) -> EventRef {
        EventRef {
            position: envelope.position,
            stream: envelope.stream.clone(),
            version: envelope.version,
            event_type: envelope.event_type.clone(),
        }
    }
}

/// An event as a fold reads it: position, type and payload (see [`PayloadPage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadRecord<'a> {
    /// Global position.
    pub position: u64,
    /// Event type.
    pub event_type: &'a str,
    /// The payload's schema version.
    pub schema: u32,
    /// The payload, compact JSON.
    pub payload: &'a str,
}

/// What a fold reads of consecutive events ([`EventStore::read_payloads`]): their types and
/// payloads, in one of two forms. A backend that has them as text adds them with
/// [`PayloadPage::push`], into one buffer (a page of thousands of events is two allocations,
/// not two per event). The sled store hands over its log chunks as they are, with where each
/// event's stored envelope lies in them: taking the payload out of an envelope is then left
/// to whoever reads the page ([`PayloadPage::visit`]), which in a fold is the decoding stage,
/// not the reading one (a replay's reading stage was its slowest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PayloadPage {
    text: String,
    /// Per event: position, schema, and where its type ends and its payload ends in `text`
    /// (each starts where the one before ends).
    records: Vec<(u64, u32, usize, usize)>,
    /// Log chunks, each with the events taken from it.
    stored: Vec<StoredRun>,
    stored_events: usize,
}

/// A backend's stored bytes, shared without a copy (the sled store's log chunks).
pub type SharedBytes = std::sync::Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Consecutive events of one stored chunk.
#[derive(Clone)]
struct StoredRun {
    chunk: SharedBytes,
    /// Per event: position, and where its canonical envelope starts and ends in `chunk`.
    spans: Vec<(u64, usize, usize)>,
}

impl StoredRun {
    fn bytes(&self) -> &[u8] {
        (*self.chunk).as_ref()
    }
}

impl std::fmt::Debug for StoredRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRun")
            .field("chunk_bytes", &self.bytes().len())
            .field("spans", &self.spans)
            .finish()
    }
}

impl PartialEq for StoredRun {
    fn eq(&self, other: &StoredRun) -> bool {
        self.spans == other.spans && self.bytes() == other.bytes()
    }
}

impl Eq for StoredRun {}

impl PayloadPage {
    /// An empty page with room for `events` events of `bytes` bytes of text in all.
    pub fn with_capacity(events: usize, bytes: usize) -> PayloadPage {
        PayloadPage {
            text: String::with_capacity(bytes),
            records: Vec::with_capacity(events),
            ..PayloadPage::default()
        }
    }

    /// Adds the next event.
    pub fn push(&mut self, position: u64, event_type: &str, schema: u32, payload: &str) {
        debug_assert!(self.stored.is_empty(), "a page holds one form of events");
        self.text.push_str(event_type);
        let type_end = self.text.len();
        self.text.push_str(payload);
        self.records
            .push((position, schema, type_end, self.text.len()));
    }

    /// Adds the next event as its stored canonical envelope, `chunk[start..end]` (a
    /// backend that keeps several envelopes in one value hands the value over once, shared;
    /// the envelope is decoded by whoever visits the page).
    pub fn push_stored(&mut self, chunk: &SharedBytes, position: u64, span: (usize, usize)) {
        debug_assert!(self.records.is_empty(), "a page holds one form of events");
        let (start, end) = span;
        debug_assert!(start <= end && end <= (**chunk).as_ref().len());
        match self.stored.last_mut() {
            Some(run) if std::sync::Arc::ptr_eq(&run.chunk, chunk) => {
                run.spans.push((position, start, end))
            }
            _ => self.stored.push(StoredRun {
                chunk: chunk.clone(),
                spans: vec![(position, start, end)],
            }),
        }
        self.stored_events += 1;
    }

    /// Events in the page.
    pub fn len(&self) -> usize {
        self.records.len() + self.stored_events
    }

    /// Whether the page holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position of the page's last event.
    pub fn last_position(&self) -> Option<u64> {
        let stored = self.stored.last().and_then(|run| run.spans.last());
        stored
            .map(|(position, _, _)| *position)
            .or(self.records.last().map(|(position, _, _, _)| *position))
    }

    /// Calls `take` with each event, in order. A stored envelope that cannot be read, or that
    /// holds another position than the one it was read for, is a [`StoreError::Corrupt`].
    pub fn visit<E: From<StoreError>>(
        &self,
        take: impl FnMut(PayloadRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.visit_range(0..self.len(), take)
    }

    /// [`PayloadPage::visit`] for the events of `range` (indices into the page, in order), so
    /// that the parts of one page can be read on several threads.
    pub fn visit_range<E: From<StoreError>>(
        &self,
        range: std::ops::Range<usize>,
        mut take: impl FnMut(PayloadRecord<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let end = range.end.min(self.len());
        let mut index = range.start;
        while index < end && index < self.records.len() {
            let start = match index.checked_sub(1) {
                Some(before) => self.records[before].3,
                None => 0,
            };
            let (position, schema, type_end, payload_end) = self.records[index];
            take(PayloadRecord {
                position,
                event_type: self.text.get(start..type_end).unwrap_or_default(),
                schema,
                payload: self.text.get(type_end..payload_end).unwrap_or_default(),
            })?;
            index += 1;
        }
        // Stored events come after the text ones (a page holds one form or the other).
        let mut skip = index.saturating_sub(self.records.len());
        let mut left = end.saturating_sub(index);
        for run in &self.stored {
            if left == 0 {
                break;
            }
            if skip >= run.spans.len() {
                skip -= run.spans.len();
                continue;
            }
            let spans = &run.spans[skip..];
            skip = 0;
            for &(position, start, end) in spans.iter().take(left) {
                left -= 1;
                let corrupt = |detail: String| StoreError::Corrupt { position, detail };
                let bytes = run
                    .bytes()
                    .get(start..end)
                    .ok_or_else(|| corrupt("truncated record".to_string()))?;
                let undecodable =
                    |error: EnvelopeError| corrupt(format!("undecodable event: {error}"));
                let moved = |found: u64| corrupt(format!("the record holds position {found}"));
                match envelope::stored_payload(bytes) {
                    Some((found, event_type, schema, payload)) => {
                        if found != position {
                            return Err(moved(found).into());
                        }
                        take(PayloadRecord {
                            position,
                            event_type,
                            schema,
                            payload,
                        })?;
                    }
                    // An escape in a string: serde reads it.
                    None => {
                        let envelope = Envelope::from_canonical_serde(bytes, ZERO_HASH)
                            .map_err(undecodable)?;
                        if envelope.position != position {
                            return Err(moved(envelope.position).into());
                        }
                        take(PayloadRecord {
                            position,
                            event_type: &envelope.event_type,
                            schema: envelope.schema,
                            payload: &envelope.payload,
                        })?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// What the command index remembers of an accepted command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// The command id.
    pub command_id: String,
    /// Hash of the body that was accepted; `None` when the log was imported (the body is
    /// not in the log).
    pub body_hash: Option<Hash>,
    /// The events it appended.
    pub events: Vec<EventRef>,
}

/// The last event of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Position of the last event (0 for an empty log).
    pub position: u64,
    /// Its hash (32 zero bytes for an empty log).
    pub hash: Hash,
    /// Its `recorded_at` (empty for an empty log).
    pub recorded_at: String,
}

/// Errors of the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory holds something that is not a grantflow store.
    #[error("{path} is not a grantflow store: {detail}")]
    NotAStore {
        /// The directory.
        path: String,
        /// What was found.
        detail: String,
    },
    /// The store was written by a newer grantflow.
    #[error("{path} was written by a newer grantflow (store format {found}; this build reads up to {supported})")]
    NewerFormat {
        /// The directory.
        path: String,
        /// Format found.
        found: u32,
        /// Newest format this build understands.
        supported: u32,
    },
    /// The batch was decided against another head or stream version than the store has.
    #[error("append conflict: {0}")]
    Conflict(String),
    /// The stored log is damaged (hash mismatch, gap, unreadable record).
    #[error("corrupt store at position {position}: {detail}")]
    Corrupt {
        /// The first bad position.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// An imported event does not continue the log.
    #[error("import refused at position {position}: {detail}")]
    ImportRefused {
        /// The first bad position.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// The store was written by a pre-release grantflow whose format this build does not
    /// read (only [`StoreError::NewerFormat`]'s opposite: an older format, never converted).
    #[error("{path} holds store format {found}, which this build does not read (the oldest it reads is format {supported}): export it with the build that wrote it and import the export into a new store")]
    UnsupportedFormat {
        /// The directory or database.
        path: String,
        /// Format found.
        found: u32,
        /// The oldest format this build reads.
        supported: u32,
    },
    /// What was asked cannot be stored as it is (a malformed stream name or command id, an
    /// event too large, a payload that is not a compact JSON object): nothing was written.
    #[error("refused by the store: {0}")]
    Invalid(String),
    /// The store takes no more writes: it is closed, or an earlier write could not be made
    /// durable (reopen it).
    #[error("storage error: {0}")]
    Unavailable(String),
    /// An I/O or backend error: what was being done, and the error that stopped it.
    #[error("storage error: {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        /// The underlying error (std::io, sled, PostgreSQL, a task's join error).
        #[source]
        source: BoxError,
    },
}

/// The underlying error of [`StoreError::Io`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// An I/O or backend error while doing `context`.
    pub fn io(context: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// One checkpointed state ([`EventStore::save_checkpoints`]): what it is the state of, the
/// log position it is as of, and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// What the state is of (a fund's id).
    pub key: String,
    /// The position after whose event it holds.
    pub position: u64,
    /// The state.
    pub bytes: Vec<u8>,
}

/// The event log every backend implements. Appends are durable when they return.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// The head of the log.
    async fn head(&self) -> Result<Head, StoreError>;

    /// Appends a group of commands atomically and durably (all or nothing), assigning
    /// positions, versions, `recorded_at` (never before the previous event's) and hashes.
    /// Returns, per command in order, where its events landed.
    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError>;

    /// Up to `limit` (at most [`READ_EVENTS_MAX`]) events from position `from` (inclusive).
    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError>;

    /// What a fold needs of up to `limit` events from `from`: position, type and payload,
    /// without the rest of the envelope (replay reads every event of the log this way).
    async fn read_payloads(&self, from: u64, limit: usize) -> Result<PayloadPage, StoreError> {
        let events = self.read(from, limit).await?;
        let bytes = events
            .iter()
            .map(|e| e.event_type.len() + e.payload.len())
            .sum();
        let mut page = PayloadPage::with_capacity(events.len(), bytes);
        for envelope in &events {
            page.push(
                envelope.position,
                &envelope.event_type,
                envelope.schema,
                &envelope.payload,
            );
        }
        Ok(page)
    }

    /// Up to `limit` events of one stream from version `from_version` (inclusive).
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError>;

    /// A stream's current version (0 when it does not exist).
    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError>;

    /// What the command index holds for a command id.
    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError>;

    /// [`EventStore::command`] for many ids at once (the writer looks up a whole batch's
    /// ids in one call); answers in the order asked.
    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        let mut records = Vec::with_capacity(command_ids.len());
        for command_id in &command_ids {
            records.push(self.command(command_id).await?);
        }
        Ok(records)
    }

    /// Appends already-built envelopes (from an export) after checking that each continues
    /// the chain: position, version, prev_hash and hash. Durable when it returns.
    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError>;

    /// Stores a projection snapshot taken at `position` under `name` (replacing the old one).
    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError>;

    /// The last snapshot saved under `name`, with its position.
    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Saves checkpointed states under `name` and moves its mark to `through` (never back):
    /// each entry is the state of one `key` (e.g. a fund) as of the entry's position, at or
    /// before `through`, and a key whose state did not change since its last entry need not
    /// have a new one, so the mark says that every key's latest entry at or before any
    /// position up to `through` is its state there. Entries and mark are saved together (all
    /// or none); an entry saved again at the same key and position is replaced. Like
    /// snapshots, checkpoints are caches of the log: not made durable at once, authenticated
    /// by the store, checked by the engine against the log before use.
    async fn save_checkpoints(
        &self,
        name: &str,
        through: u64,
        entries: Vec<CheckpointEntry>,
    ) -> Result<(), StoreError>;

    /// The mark of the checkpoints under `name` (0 when there is none).
    async fn checkpoint_mark(&self, name: &str) -> Result<u64, StoreError>;

    /// The latest entry of `key` under `name` at or before position `at_most`, with its
    /// position. An entry whose bytes the store cannot authenticate (damaged or edited) is
    /// [`StoreError::Corrupt`], never returned.
    async fn load_checkpoint(
        &self,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError>;

    /// Reserves the append point for this handle's next append, on a store other processes
    /// append to: until that append (or the store's close), other writers' appends wait, so
    /// a batch decided after catching up with the reserved head cannot be refused as a
    /// conflict. The engine reserves before deciding each batch on a shared store, so that
    /// no batch loses the race for the head. The next append must follow promptly (an
    /// append with no commands just releases the reservation). Returns the head the
    /// reservation holds (nothing can move it until that append), or `None` when the store
    /// reserves nothing (a store with one writer never needs to).
    async fn reserve_head(&self) -> Result<Option<Head>, StoreError> {
        Ok(None)
    }

    /// Whether this process is the store's only writer (sled holds its directory's lock).
    /// The engine then decides the next batch while one is being written; on a shared store
    /// it decides each batch only after catching up with the other writers.
    fn exclusive(&self) -> bool {
        false
    }

    /// A receiver of the durable head position: it changes after every durable append.
    fn watch_head(&self) -> tokio::sync::watch::Receiver<u64>;

    /// Makes everything durable and releases the store.
    async fn close(&self) -> Result<(), StoreError>;
}
