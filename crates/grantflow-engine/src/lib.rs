//! grantflow's engine: joins the pure domain (decide/evolve) and the event store.
//!
//! - [`Engine`] owns the single writer: commands are parsed on the caller's task, queued on a
//!   bounded channel, decided in groups against the in-memory [`World`], appended as one
//!   durable batch, and acknowledged only once that batch is durable (group commit).
//! - The read model (current figures) is a fold of the log, published after each durable batch
//!   and snapshotted in the store so that opening a large store does not replay everything.
//! - [`query`] answers "as of position P / recorded time T" and the audit trail by folding the
//!   log; [`audit`] verifies the chain and rebuilds projections; [`transfer`] exports and
//!   imports the log as JSON Lines.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod checkpoint;
mod command;
pub mod query;
pub mod signing;
pub mod transfer;
mod writer;

use std::sync::{Arc, RwLock};

use grantflow_domain::upcast::{self, ReadError};
use grantflow_domain::{evolve, Event, World};
use grantflow_store::{Envelope, EventStore, Hash, PayloadPage, StoreError};
use tokio::sync::{mpsc, oneshot};

pub use command::{new_command_id, ActorSource, CommandOutcome, Rejection, Submission};
pub use writer::{APPEND_CONFLICT_RETRIES, CATCH_UP_BEFORE_RESERVING, CONFLICT_BACKOFF_MAX_MICROS};

/// How many commands the writer decides and appends in one durable batch at the most.
pub const BATCH_COMMANDS_MAX: usize = 2_048;
/// How many commands may wait in the writer's queue before submitters wait.
pub const QUEUE_COMMANDS_MAX: usize = 16_384;
/// How many events are read from the store per page when folding the log.
pub const FOLD_PAGE_EVENTS: usize = 4_096;
/// A projection snapshot is saved after this many new events (and on close).
pub const SNAPSHOT_EVERY_EVENTS: u64 = 100_000;
/// The name of the projection snapshot in the store.
pub const SNAPSHOT_NAME: &str = "world";
/// The most threads a process running the engine gives tokio's blocking pool (its default is
/// 512). Store calls run there and are short; with mimalloc every thread keeps its own heap,
/// so every extra thread a burst of event streams starts keeps its memory: a few threads keep
/// a server's RSS flat under load (tests/soak.rs checks it).
pub const BLOCKING_THREADS_MAX: usize = 8;
/// Version of the snapshot format; an unknown one is ignored and the log replayed instead.
pub const SNAPSHOT_FORMAT: u32 = 4;

/// Upper bounds of the batch-size histogram (commands per durable batch).
pub const BATCH_SIZE_BUCKETS: [u64; 12] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];

/// Counters of the writer, for metrics.
#[derive(Debug, Default)]
pub struct Stats {
    batches: std::sync::atomic::AtomicU64,
    commands: std::sync::atomic::AtomicU64,
    events: std::sync::atomic::AtomicU64,
    conflicts: std::sync::atomic::AtomicU64,
    batch_sizes: [std::sync::atomic::AtomicU64; BATCH_SIZE_BUCKETS.len()],
}

/// A reading of [`Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatsSnapshot {
    /// Durable batches appended.
    pub batches: u64,
    /// Commands appended in them.
    pub commands: u64,
    /// Events appended in them.
    pub events: u64,
    /// Batches decided again after another writer appended first.
    pub conflicts: u64,
    /// Batches with at most `BATCH_SIZE_BUCKETS[i]` commands (cumulative, as Prometheus).
    pub batch_sizes: Vec<(u64, u64)>,
}

impl Stats {
    pub(crate) fn batch(&self, commands: usize, events: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.batches.fetch_add(1, Relaxed);
        self.commands.fetch_add(commands as u64, Relaxed);
        self.events.fetch_add(events as u64, Relaxed);
        for (bucket, bound) in self.batch_sizes.iter().zip(BATCH_SIZE_BUCKETS) {
            if commands as u64 <= bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
    }

    pub(crate) fn conflict(&self) {
        self.conflicts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// The counters now.
    pub fn read(&self) -> StatsSnapshot {
        use std::sync::atomic::Ordering::Relaxed;
        StatsSnapshot {
            batches: self.batches.load(Relaxed),
            commands: self.commands.load(Relaxed),
            events: self.events.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
            batch_sizes: BATCH_SIZE_BUCKETS
                .iter()
                .zip(&self.batch_sizes)
                .map(|(bound, count)| (*bound, count.load(Relaxed)))
                .collect(),
        }
    }
}

/// Errors of the engine layer (a rejected command is not an error: see [`CommandOutcome`]).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored event cannot be decoded as a domain event.
    #[error("corrupt event at position {position}: {detail}")]
    Corrupt {
        /// The position of the bad event.
        position: u64,
        /// What is wrong.
        detail: String,
    },
    /// A stored event of a type or schema this release does not read: written by a newer
    /// grantflow.
    #[error("event at position {position}: {detail}")]
    Newer {
        /// The event's position.
        position: u64,
        /// The type and both versions.
        detail: String,
    },
    /// The writer has stopped (after a storage failure or on close).
    #[error("the engine's writer has stopped: {0}")]
    WriterStopped(String),
    /// A query named something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A query was malformed.
    #[error("{0}")]
    BadQuery(String),
}

/// The read model: the world as of a position.
#[derive(Debug, Clone, Default)]
pub struct ReadModel {
    /// Every fund and grant.
    pub world: World,
    /// The last position folded in.
    pub position: u64,
}

impl ReadModel {
    /// Folds one stored event in, checking it decodes.
    pub fn apply(&mut self, envelope: &Envelope) -> Result<Event, EngineError> {
        let event = decode(envelope)?;
        evolve(&mut self.world, envelope.position, &event);
        self.position = envelope.position;
        Ok(event)
    }
}

/// Decodes a stored envelope's payload into a domain event, through the upcaster chain
/// ([`grantflow_domain::upcast`]).
pub fn decode(envelope: &Envelope) -> Result<Event, EngineError> {
    decode_stored(
        envelope.position,
        &envelope.event_type,
        envelope.schema,
        &envelope.payload,
    )
}

/// [`decode`] of an event as a fold reads it.
fn decode_record(record: &grantflow_store::PayloadRecord<'_>) -> Result<Event, EngineError> {
    decode_stored(
        record.position,
        record.event_type,
        record.schema,
        record.payload,
    )
}

/// [`decode`] of an event's parts.
fn decode_stored(
    position: u64,
    event_type: &str,
    schema: u32,
    payload: &str,
) -> Result<Event, EngineError> {
    upcast::decode(event_type, schema, payload).map_err(|error| match error {
        ReadError::Newer { .. } | ReadError::UnknownType(_) => EngineError::Newer {
            position,
            detail: error.to_string(),
        },
        ReadError::Malformed(why) => EngineError::Corrupt {
            position,
            detail: format!("{event_type} payload does not decode: {why}"),
        },
    })
}

/// Progress of a long fold: (events done, events in all).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// The engine: one per store.
pub struct Engine {
    store: Arc<dyn EventStore>,
    read_model: Arc<RwLock<ReadModel>>,
    queue: mpsc::Sender<writer::Job>,
    stats: Arc<Stats>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    checkpoints: Arc<checkpoint::Shared>,
    /// The fund checkpointer, when one runs: its stop signal and task.
    checkpointer: tokio::sync::Mutex<Option<Checkpointer>>,
}

/// A running fund checkpointer.
type Checkpointer = (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
);

impl Engine {
    /// Opens the engine on a store: loads the projection snapshot and folds in the events
    /// after it, then starts the writer.
    pub async fn open(store: Arc<dyn EventStore>) -> Result<Engine, EngineError> {
        Self::open_with_progress(store, &|_, _| {}).await
    }

    /// As [`Engine::open`], reporting progress of the catch-up fold.
    pub async fn open_with_progress(
        store: Arc<dyn EventStore>,
        progress: Progress<'_>,
    ) -> Result<Engine, EngineError> {
        let model = load_read_model(store.as_ref(), progress).await?;
        let read_model = Arc::new(RwLock::new(model.clone()));
        let (queue, jobs) = mpsc::channel(QUEUE_COMMANDS_MAX);
        let stats = Arc::new(Stats::default());
        let handle = writer::spawn(
            store.clone(),
            read_model.clone(),
            model,
            jobs,
            queue.downgrade(),
            stats.clone(),
        );
        Ok(Engine {
            store,
            read_model,
            queue,
            stats,
            writer: tokio::sync::Mutex::new(Some(handle)),
            checkpoints: Arc::default(),
            checkpointer: tokio::sync::Mutex::new(None),
        })
    }

    /// The store under this engine.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The writer's counters (batches, batch sizes, conflicts).
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.read()
    }

    /// Starts keeping the fund checkpoints ([`checkpoint`]) on a task of its own: it saves
    /// those of every boundary the log has passed, then each new one, until the engine
    /// closes. `serve` runs it; a store without them answers the same, folding more.
    pub async fn keep_fund_checkpoints(&self) {
        let mut running = self.checkpointer.lock().await;
        if running.is_some() {
            return;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(checkpoint::run(
            self.store.clone(),
            self.read_model.clone(),
            self.checkpoints.clone(),
            stopped,
        ));
        *running = Some((stop, task));
    }

    /// Uses fund checkpoints with boundaries every `every` events (at least 1) instead of
    /// [`checkpoint::FUND_CHECKPOINT_EVERY`], for tests on small logs: this engine's queries
    /// read, and its checkpointer (started after this) keeps, checkpoints of that spacing.
    pub fn use_fund_checkpoints_every(&self, every: u64) {
        self.checkpoints
            .every
            .store(every.max(1), std::sync::atomic::Ordering::Release);
    }

    /// How the fund checkpoints served: the position through which they are saved (as this
    /// engine last saw it), questions answered from them, entries refused.
    pub fn fund_checkpoint_stats(&self) -> checkpoint::CheckpointStats {
        self.checkpoints.stats()
    }

    /// A copy of the current read model (durable state only).
    pub fn snapshot(&self) -> ReadModel {
        match self.read_model.read() {
            Ok(model) => model.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Runs `f` on the current read model without copying it.
    pub fn with_model<T>(&self, f: impl FnOnce(&ReadModel) -> T) -> T {
        match self.read_model.read() {
            Ok(model) => f(&model),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Queues a command; the returned [`Pending`] resolves once its batch is durable (or the
    /// command is rejected). Waits while the queue is full.
    pub async fn enqueue(&self, submission: Submission) -> Result<Pending, EngineError> {
        let (reply, receiver) = oneshot::channel();
        let job = match command::prepare(submission) {
            Ok(prepared) => writer::Job::command(prepared, reply),
            Err(outcome) => return Ok(Pending::ready(outcome)),
        };
        self.queue
            .send(job)
            .await
            .map_err(|_| EngineError::WriterStopped("queue closed".into()))?;
        Ok(Pending { receiver })
    }

    /// Submits a command and waits until it is durable or rejected.
    pub async fn submit(&self, submission: Submission) -> Result<CommandOutcome, EngineError> {
        self.enqueue(submission).await?.wait().await
    }

    /// Stops the writer after the queued commands, saves a projection snapshot and closes the
    /// store.
    pub async fn close(&self) -> Result<(), EngineError> {
        if let Some((stop, task)) = self.checkpointer.lock().await.take() {
            let _ = stop.send(true);
            let _ = task.await;
        }
        let handle = self.writer.lock().await.take();
        if let Some(handle) = handle {
            // Dropping our sender alone does not stop the writer while clones exist; a
            // close job does.
            let (reply, receiver) = oneshot::channel();
            let _ = self.queue.send(writer::Job::close(reply)).await;
            let _ = receiver.await;
            let _ = handle.await;
        }
        // Serialized where it lies: a copy of the whole world first (`snapshot()`) would be
        // the largest allocation of a long append, at its very end.
        let position = self.with_model(|model| model.position);
        let head_hash = hash_at(self.store.as_ref(), position).await?;
        let (position, bytes) = self.with_model(|model| snapshot_of(model, &head_hash))?;
        self.store
            .save_snapshot(SNAPSHOT_NAME, position, bytes)
            .await?;
        self.store.close().await?;
        Ok(())
    }
}

/// A queued command's result, once durable.
pub struct Pending {
    receiver: oneshot::Receiver<Result<CommandOutcome, EngineError>>,
}

impl Pending {
    /// An outcome known without the writer (a line that is not even a command).
    pub fn ready(outcome: CommandOutcome) -> Pending {
        let (reply, receiver) = oneshot::channel();
        let _ = reply.send(Ok(outcome));
        Pending { receiver }
    }

    /// Waits for the outcome.
    pub async fn wait(self) -> Result<CommandOutcome, EngineError> {
        self.receiver
            .await
            .map_err(|_| EngineError::WriterStopped("the writer dropped a command".into()))?
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotFile {
    format: u32,
    position: u64,
    /// The hash of the event at `position`, hex: binds the snapshot to its log.
    head_hash: String,
    world: World,
}

/// [`SnapshotFile`] as written: borrows the world instead of copying it.
#[derive(serde::Serialize)]
struct SnapshotFileRef<'a> {
    format: u32,
    position: u64,
    head_hash: String,
    world: &'a World,
}

/// The read model's projection snapshot: its position and bytes (serialized where the
/// model lies, so that a caller holding a lock need not copy the world first). `head_hash`
/// is the hash of the event at the model's position ([`hash_at`]).
pub(crate) fn snapshot_of(
    model: &ReadModel,
    head_hash: &Hash,
) -> Result<(u64, Vec<u8>), EngineError> {
    let file = SnapshotFileRef {
        format: SNAPSHOT_FORMAT,
        position: model.position,
        head_hash: hex::encode(head_hash),
        world: &model.world,
    };
    let bytes = serde_json::to_vec(&file).map_err(|e| EngineError::BadQuery(e.to_string()))?;
    Ok((model.position, bytes))
}

/// Saves the read model as the store's projection snapshot.
pub async fn save_snapshot(store: &dyn EventStore, model: &ReadModel) -> Result<(), EngineError> {
    let head_hash = hash_at(store, model.position).await?;
    let (position, bytes) = snapshot_of(model, &head_hash)?;
    store.save_snapshot(SNAPSHOT_NAME, position, bytes).await?;
    Ok(())
}

/// Loads the snapshot (when usable) and folds in the rest of the log.
async fn load_read_model(
    store: &dyn EventStore,
    progress: Progress<'_>,
) -> Result<ReadModel, EngineError> {
    let head = store.head().await?.position;
    load_read_model_until(store, head, progress).await
}

/// The stored projections (the snapshot, when usable, plus the events after it) as of
/// position `until`.
async fn load_read_model_until(
    store: &dyn EventStore,
    until: u64,
    progress: Progress<'_>,
) -> Result<ReadModel, EngineError> {
    let (model, unused) = load_snapshot_until(store, until).await?;
    if let Some(why) = unused {
        tracing::warn!("{why}; folding the whole log instead");
    }
    let mut model = model;
    fold_into(store, &mut model, until, progress).await?;
    Ok(model)
}

/// The projection snapshot as a read model when it proves itself and is usable up to
/// `until`; else an empty model and why the snapshot cannot be trusted (`None` when there
/// is no snapshot, one taken after `until`, or one of another release's format: no fault).
///
/// A snapshot proves itself in two ways: the store authenticates its bytes (on sled a MAC
/// under a key kept outside the snapshot; on PostgreSQL a checksum, in a table the
/// application role cannot write), and it names the hash of the event at its position,
/// which must be the log's (a snapshot of another log, or of a log since rewritten, is not
/// this log's).
pub(crate) async fn load_snapshot_until(
    store: &dyn EventStore,
    until: u64,
) -> Result<(ReadModel, Option<String>), EngineError> {
    let loaded = match store.load_snapshot(SNAPSHOT_NAME).await {
        Ok(loaded) => loaded,
        Err(StoreError::Corrupt { detail, .. }) => {
            return Ok((ReadModel::default(), Some(detail)));
        }
        Err(error) => return Err(error.into()),
    };
    let Some((position, bytes)) = loaded else {
        return Ok((ReadModel::default(), None));
    };
    if position > until {
        return Ok((ReadModel::default(), None));
    }
    let file = match serde_json::from_slice::<SnapshotFile>(&bytes) {
        Ok(file) if file.format == SNAPSHOT_FORMAT && file.position == position => file,
        Ok(file) if file.format != SNAPSHOT_FORMAT => {
            // Written by another release: not a fault, just not usable; the next snapshot
            // replaces it.
            tracing::info!(
                format = file.format,
                "the projection snapshot is of another format; folding the log instead"
            );
            return Ok((ReadModel::default(), None));
        }
        Ok(file) => {
            let why = format!(
                "the projection snapshot stored at position {position} says it was taken at \
                 position {}",
                file.position
            );
            return Ok((ReadModel::default(), Some(why)));
        }
        Err(error) => {
            let why =
                format!("the projection snapshot at position {position} is unreadable: {error}");
            return Ok((ReadModel::default(), Some(why)));
        }
    };
    let logged = hash_at(store, position).await?;
    if hex::encode(logged) != file.head_hash {
        let why = format!(
            "the projection snapshot at position {position} was taken of another log: it \
             names the hash {} there, the log holds {}",
            file.head_hash,
            hex::encode(logged)
        );
        return Ok((ReadModel::default(), Some(why)));
    }
    let model = ReadModel {
        world: file.world,
        position,
    };
    Ok((model, None))
}

/// The hash of the event at `position` ([`grantflow_store::ZERO_HASH`] at position 0).
pub(crate) async fn hash_at(store: &dyn EventStore, position: u64) -> Result<Hash, EngineError> {
    if position == 0 {
        return Ok(grantflow_store::ZERO_HASH);
    }
    let page = store.read(position, 1).await?;
    match page.first() {
        Some(envelope) if envelope.position == position => Ok(envelope.hash),
        _ => Err(EngineError::Store(StoreError::Corrupt {
            position,
            detail: format!("the event at position {position} cannot be read"),
        })),
    }
}

/// Folds the events after `model.position` up to `until` (inclusive) into the model.
pub async fn fold_into(
    store: &dyn EventStore,
    model: &mut ReadModel,
    until: u64,
    progress: Progress<'_>,
) -> Result<(), EngineError> {
    let start = model.position;
    if model.position >= until {
        return Ok(());
    }
    // Three stages on two cores: the store reads page k+1 (on a blocking thread), page k's
    // payloads are decoded (in two halves, each on its own blocking thread: decoding is the
    // longest stage), and page k-1 is folded in here. (Queues between the stages instead of
    // this lockstep, letting them run pages ahead, do not replay faster: they only add
    // threads beyond the cores.)
    let mut page = read_page(store, model.position + 1, until).await?;
    let mut ready: Option<Decoded> = None;
    loop {
        let last = page.last_position().unwrap_or(model.position);
        let decoding = decode_in_parts(page);
        let next = read_page(store, last + 1, until);
        tokio::pin!(next);
        let more = last < until;
        let early = if more {
            Some(futures::poll!(next.as_mut()))
        } else {
            None
        };
        if let Some(parts) = ready.take() {
            fold_parts(model, &parts)?;
            progress(model.position - start, until - start);
        }
        let mut parts = Vec::with_capacity(decoding.len());
        for part in decoding {
            parts.push(
                part.await.map_err(|error| {
                    EngineError::BadQuery(format!("decoding stopped: {error}"))
                })??,
            );
        }
        if !more {
            fold_parts(model, &parts)?;
            progress(model.position - start, until - start);
            return Ok(());
        }
        ready = Some(parts);
        page = match early {
            Some(std::task::Poll::Ready(result)) => result?,
            _ => next.await?,
        };
    }
}

/// A page's decoded events, in consecutive parts.
type Decoded = Vec<Vec<(u64, Event)>>;

/// One part of a page being decoded on a blocking thread.
type Decoding = tokio::task::JoinHandle<Result<Vec<(u64, Event)>, EngineError>>;

/// Pages of at least this many events are decoded in two halves at once.
const DECODE_SPLIT_EVENTS_MIN: usize = 1_024;

/// Starts decoding a page on blocking threads: in two halves when it is large enough.
fn decode_in_parts(page: PayloadPage) -> Vec<Decoding> {
    let len = page.len();
    let page = Arc::new(page);
    let middle = if len >= DECODE_SPLIT_EVENTS_MIN {
        len / 2
    } else {
        0
    };
    [0..middle, middle..len]
        .into_iter()
        .filter(|range| !range.is_empty())
        .map(|range| {
            let page = Arc::clone(&page);
            tokio::task::spawn_blocking(move || decode_page(&page, range))
        })
        .collect()
}

fn fold_parts(model: &mut ReadModel, parts: &Decoded) -> Result<(), EngineError> {
    parts.iter().try_for_each(|events| fold_page(model, events))
}

/// Decodes the payloads of a page's events in `range` into domain events.
fn decode_page(
    page: &PayloadPage,
    range: std::ops::Range<usize>,
) -> Result<Vec<(u64, Event)>, EngineError> {
    // Sized once: collecting a fallible iterator grows the vector by doubling, copying
    // megabytes of events into fresh pages on every page of a replay.
    let mut events = Vec::with_capacity(range.len());
    page.visit_range(range, |record| {
        events.push((record.position, decode_record(&record)?));
        Ok::<(), EngineError>(())
    })?;
    Ok(events)
}

/// Folds decoded events in, checking that positions follow on.
fn fold_page(model: &mut ReadModel, events: &[(u64, Event)]) -> Result<(), EngineError> {
    for (position, event) in events {
        if *position != model.position + 1 {
            return Err(EngineError::Corrupt {
                position: model.position + 1,
                detail: format!("expected position {}, found {position}", model.position + 1),
            });
        }
        evolve(&mut model.world, *position, event);
        model.position = *position;
    }
    Ok(())
}

/// One page of the log from `from`, at most up to `until`; an empty page is a gap.
async fn read_page(
    store: &dyn EventStore,
    from: u64,
    until: u64,
) -> Result<PayloadPage, EngineError> {
    let want = (until + 1 - from).min(FOLD_PAGE_EVENTS as u64) as usize;
    let page = store.read_payloads(from, want).await?;
    if page.is_empty() {
        return Err(EngineError::Corrupt {
            position: from,
            detail: format!("the log ends at {} but its head is {until}", from - 1),
        });
    }
    Ok(page)
}
