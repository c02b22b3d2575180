//! The single writer: decides queued commands in groups against its own copy of the world,
//! appends each group as one durable batch, then publishes the new state and answers. It is
//! pipelined when it is the store's only writer: while one batch is being made durable, the
//! next is decided on top of it.
//!
//! On a shared store (PostgreSQL) other processes append too. There the writer decides each
//! batch while holding the store's append point: it reserves it
//! ([`EventStore::reserve_head`], on PostgreSQL the head row locked in the transaction that
//! will append), folds in what the other processes appended up to the head it holds,
//! decides the whole batch on that up-to-date world and appends it in the same transaction.
//! Such a batch cannot lose a race. Only a store that cannot reserve (or a reservation that
//! was lost, e.g. ended by the server's idle timeout) can refuse a batch as a conflict; it is
//! then decided again on the new state, up to [`APPEND_CONFLICT_RETRIES`] times. A follower
//! task wakes the writer when the store's head moves without it, so that reads stay
//! current.

use foldhash::{HashMap, HashMapExt};
use std::sync::{Arc, RwLock};

use grantflow_domain::{decide, evolve, DomainError, ErrorCode, Event};
use grantflow_store::{
    located_command_id, AppendBatch, AppendCommand, CommandRecord, EventRef, EventStore, Hash,
    NewEvent, StoreError,
};
use tokio::sync::{mpsc, oneshot};

use crate::command::{CommandOutcome, Prepared};
use crate::{
    decode, hash_at, snapshot_of, EngineError, ReadModel, Stats, BATCH_COMMANDS_MAX,
    FOLD_PAGE_EVENTS, SNAPSHOT_EVERY_EVENTS, SNAPSHOT_NAME,
};

/// How many times a batch refused as a conflict is decided again before its commands fail.
pub const APPEND_CONFLICT_RETRIES: usize = 64;
/// On a shared store, a writer further behind the head than this many events folds them in
/// before it reserves the append point, not while holding it.
pub const CATCH_UP_BEFORE_RESERVING: u64 = FOLD_PAGE_EVENTS as u64;
/// The longest pause before deciding again after a conflict on a store that cannot reserve
/// its append point (the pause doubles with each attempt, with jitter, so that writers
/// racing for the head fall out of step).
pub const CONFLICT_BACKOFF_MAX_MICROS: u64 = 20_000;

type Reply = oneshot::Sender<Result<CommandOutcome, EngineError>>;

/// What a job asks of the writer.
enum Work {
    Command(Box<Prepared>),
    Close,
    /// Fold in events other processes appended (sent by the follower).
    CatchUp,
}

/// A queued command, a catch-up or the request to stop.
pub(crate) struct Job {
    work: Work,
    reply: Option<Reply>,
}

impl Job {
    pub(crate) fn command(prepared: Prepared, reply: Reply) -> Job {
        Job {
            work: Work::Command(Box::new(prepared)),
            reply: Some(reply),
        }
    }

    pub(crate) fn close(reply: Reply) -> Job {
        Job {
            work: Work::Close,
            reply: Some(reply),
        }
    }
}

pub(crate) fn spawn(
    store: Arc<dyn EventStore>,
    published: Arc<RwLock<ReadModel>>,
    model: ReadModel,
    jobs: mpsc::Receiver<Job>,
    queue: mpsc::WeakSender<Job>,
    stats: Arc<Stats>,
) -> tokio::task::JoinHandle<()> {
    // The follower holds the head's watch, never the store: closing the engine releases it.
    tokio::spawn(follow(store.watch_head(), published.clone(), queue));
    let writer = Writer {
        exclusive: store.exclusive(),
        head: store.watch_head(),
        store,
        published,
        model,
        events_since_snapshot: 0,
        stats,
        in_flight_ids: HashMap::new(),
        reserved: false,
        reservable: true,
    };
    tokio::spawn(writer.run(jobs))
}

/// Wakes the writer when the store's head moves past the published read model (appends by
/// other processes); ends when the engine is gone.
async fn follow(
    mut head: tokio::sync::watch::Receiver<u64>,
    published: Arc<RwLock<ReadModel>>,
    queue: mpsc::WeakSender<Job>,
) {
    while head.changed().await.is_ok() {
        let position = *head.borrow_and_update();
        if position <= read(&published).position {
            continue;
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        // A full queue means the writer is busy and catches up before its next batch anyway.
        let _ = queue.try_send(Job {
            work: Work::CatchUp,
            reply: None,
        });
    }
}

fn read(published: &RwLock<ReadModel>) -> std::sync::RwLockReadGuard<'_, ReadModel> {
    match published.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

struct Writer {
    store: Arc<dyn EventStore>,
    /// Whether this process is the store's only writer ([`EventStore::exclusive`]).
    exclusive: bool,
    /// The store's head as last seen (it moves on other processes' appends too).
    head: tokio::sync::watch::Receiver<u64>,
    published: Arc<RwLock<ReadModel>>,
    /// The writer's world: equal to the published one between batches.
    model: ReadModel,
    events_since_snapshot: u64,
    stats: Arc<Stats>,
    /// Command ids (and body hashes) of the batch in flight.
    in_flight_ids: HashMap<String, Hash>,
    /// Whether the store holds the append point for the next append (which must follow).
    reserved: bool,
    /// Whether the last reservation asked for was made (a store that cannot reserve gets
    /// the pause after a conflict instead).
    reservable: bool,
}

/// What became of one command of a batch.
enum Slot {
    Done(Result<CommandOutcome, EngineError>),
    /// Its events are the batch's `index`-th append command.
    Appended {
        index: usize,
        command_id: String,
    },
    /// A repeat of a command accepted earlier in this same batch.
    RepeatOf {
        index: usize,
        command_id: String,
    },
    /// A repeat of a command of the batch in flight: answered when that one is durable.
    RepeatOfFlight {
        command_id: String,
    },
}

/// The events of a batch being built.
#[derive(Default)]
struct Group {
    expected_versions: Vec<(String, u64)>,
    seen_streams: HashMap<String, ()>,
    commands: Vec<AppendCommand>,
    events: Vec<Vec<Event>>,
    ids: HashMap<String, (Hash, usize)>,
}

/// A batch: its commands, their answers so far, and its events.
#[derive(Default)]
struct Batch {
    prepared: Vec<Prepared>,
    replies: Vec<Reply>,
    slots: Vec<Slot>,
    group: Group,
    /// The head the batch was decided on.
    expected_head: u64,
    /// How many times it was refused as a conflict already.
    attempts: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.prepared.is_empty()
    }
}

/// A batch being appended while the writer decides the next one.
struct Flight {
    batch: Batch,
    append: tokio::task::JoinHandle<Result<Vec<Vec<EventRef>>, StoreError>>,
}

impl Writer {
    /// The writer's loop, pipelined: while one batch is being made durable, the commands
    /// that arrive are decided into the next one (on a world that includes the first), so
    /// that deciding and writing overlap. A batch is answered only once it is durable; if it
    /// fails, the batch decided on top of it is decided again on the durable state.
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        let mut building = Batch::default();
        let mut flight: Option<Flight> = None;
        let mut closes: Vec<Reply> = Vec::new();
        // False once every sender is gone (the engine was dropped).
        let mut open = true;
        // Only the store's sole writer may decide on top of a batch not yet stored.
        let pipelined = self.exclusive;
        loop {
            let Some(current) = flight.as_mut() else {
                if !building.is_empty() {
                    flight = Some(self.ship(std::mem::take(&mut building)));
                    continue;
                }
                if !closes.is_empty() || !open {
                    break;
                }
                let Some(first) = jobs.recv().await else {
                    break;
                };
                let arrived = drain(first, &mut jobs, BATCH_COMMANDS_MAX);
                self.take(arrived, &mut jobs, &mut building, &mut closes, false)
                    .await;
                continue;
            };
            let room = BATCH_COMMANDS_MAX.saturating_sub(building.prepared.len());
            tokio::select! {
                biased;
                done = &mut current.append => {
                    let done = done.unwrap_or_else(|error| {
                        Err(StoreError::io("the append task stopped", error))
                    });
                    if let Some(landed) = flight.take() {
                        self.complete(landed.batch, done, &mut building).await;
                    }
                }
                job = jobs.recv(), if pipelined && open && closes.is_empty() && room > 0 => match job {
                    Some(first) => {
                        let arrived = drain(first, &mut jobs, room);
                        self.take(arrived, &mut jobs, &mut building, &mut closes, true)
                            .await;
                    }
                    None => open = false,
                },
            }
        }
        for reply in closes {
            let _ = reply.send(Ok(CommandOutcome::Accepted {
                command_id: String::new(),
                events: Vec::new(),
                replayed: false,
            }));
        }
    }

    /// Decides arrived commands into `building`; notes a close; catches up when idle.
    async fn take(
        &mut self,
        arrived: Vec<Job>,
        jobs: &mut mpsc::Receiver<Job>,
        building: &mut Batch,
        closes: &mut Vec<Reply>,
        in_flight: bool,
    ) {
        let mut prepared = Vec::new();
        let mut replies = Vec::new();
        sort_jobs(arrived, &mut prepared, &mut replies, closes);
        if !in_flight && building.is_empty() {
            // The writer's world equals the durable one: fold in other writers' events (on a
            // shared store, with the append point held when there is something to decide).
            let ready = match prepared.is_empty() {
                true => self.catch_up().await,
                false => self.ready_to_decide().await,
            };
            if let Err(error) = ready {
                tracing::error!(%error, "cannot fold in the store's new events");
                let detail = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(stopped(&detail)));
                }
                return;
            }
            // The append point is held now, after waiting for the other processes' appends:
            // what arrived meanwhile joins this batch rather than waiting for the next turn.
            if self.reserved && closes.is_empty() {
                let room = BATCH_COMMANDS_MAX.saturating_sub(prepared.len());
                let mut more = Vec::new();
                while more.len() < room {
                    match jobs.try_recv() {
                        Ok(job) => more.push(job),
                        Err(_) => break,
                    }
                }
                sort_jobs(more, &mut prepared, &mut replies, closes);
            }
        }
        self.decide_into(prepared, replies, building, in_flight)
            .await;
    }

    /// Decides commands on top of the writer's world into `building`.
    async fn decide_into(
        &mut self,
        prepared: Vec<Prepared>,
        replies: Vec<Reply>,
        building: &mut Batch,
        in_flight: bool,
    ) {
        if prepared.is_empty() {
            return;
        }
        if building.is_empty() {
            building.expected_head = self.model.position;
        }
        let known = self.known_ids(&prepared).await;
        // Lent out for the loop (not cloned: this runs for every handful of commands).
        let flight_ids = if in_flight {
            std::mem::take(&mut self.in_flight_ids)
        } else {
            HashMap::new()
        };
        for (command, reply) in prepared.into_iter().zip(replies) {
            let slot = self.decide_one(&command, &mut building.group, &known, &flight_ids);
            building.slots.push(slot);
            building.prepared.push(command);
            building.replies.push(reply);
        }
        if in_flight {
            self.in_flight_ids = flight_ids;
        }
    }

    /// Starts appending a batch on its own task.
    fn ship(&mut self, mut batch: Batch) -> Flight {
        let group = std::mem::take(&mut batch.group);
        // Only a client's id can come back while its batch is in flight (the ids the engine
        // made reach their clients once the batch is durable).
        self.in_flight_ids = group
            .ids
            .iter()
            .filter(|(_, (_, index))| group.commands.get(*index).is_some_and(|c| !c.fresh_id))
            .map(|(id, (hash, _))| (id.clone(), *hash))
            .collect();
        let append = AppendBatch {
            expected_head: batch.expected_head,
            expected_versions: group.expected_versions,
            commands: group.commands,
        };
        batch.group = Group {
            events: group.events,
            ids: group.ids,
            ..Group::default()
        };
        let store = self.store.clone();
        // An append with no commands only releases a reservation.
        let reserved = std::mem::take(&mut self.reserved);
        let append = if append.commands.is_empty() && !reserved {
            tokio::spawn(async { Ok(Vec::new()) })
        } else {
            tokio::spawn(async move { store.append(append).await })
        };
        Flight { batch, append }
    }

    /// A flight landed: publish and answer it, or go back to the durable state and decide
    /// again what was decided on top of it.
    async fn complete(
        &mut self,
        batch: Batch,
        result: Result<Vec<Vec<EventRef>>, StoreError>,
        building: &mut Batch,
    ) {
        self.in_flight_ids.clear();
        match result {
            Ok(refs) => {
                if !refs.is_empty() {
                    let events = refs.iter().map(Vec::len).sum();
                    self.stats.batch(refs.len(), events);
                    self.publish(&refs, &batch.group.events);
                    self.maybe_snapshot().await;
                }
                resolve_flight_repeats(&batch, &refs, building);
                reply_all(batch.slots, batch.replies, Ok(&refs));
            }
            Err(error) => {
                let conflict = matches!(error, StoreError::Conflict(_));
                self.model = read(&self.published).clone();
                let mut redo = std::mem::take(building);
                let mut attempts = redo.attempts;
                if conflict && batch.attempts < APPEND_CONFLICT_RETRIES {
                    self.stats.conflict();
                    tracing::debug!(%error, "append conflict; deciding again");
                    attempts = batch.attempts + 1;
                    // Deciding again reserves the append point first; a store that cannot
                    // reserve gets a pause instead, so that racing writers fall out of step.
                    if !self.reservable {
                        tokio::time::sleep(backoff(attempts)).await;
                    }
                    let mut prepared = batch.prepared;
                    prepared.append(&mut redo.prepared);
                    let mut replies = batch.replies;
                    replies.append(&mut redo.replies);
                    redo.prepared = prepared;
                    redo.replies = replies;
                } else {
                    if !conflict {
                        tracing::error!(%error, "append failed; the batch is not acknowledged");
                    }
                    reply_all(batch.slots, batch.replies, Err(&error.to_string()));
                }
                // Everything decided on top of the failed batch is decided again.
                let replies = std::mem::take(&mut redo.replies);
                self.take_again(redo.prepared, replies, building).await;
                building.attempts = attempts;
            }
        }
    }

    /// Decides commands again on the durable state (after a failed or refused batch).
    async fn take_again(
        &mut self,
        prepared: Vec<Prepared>,
        replies: Vec<Reply>,
        building: &mut Batch,
    ) {
        let ready = match prepared.is_empty() {
            true => self.catch_up().await,
            false => self.ready_to_decide().await,
        };
        if let Err(error) = ready {
            tracing::error!(%error, "cannot fold in the store's new events");
            let detail = error.to_string();
            for reply in replies {
                let _ = reply.send(Err(stopped(&detail)));
            }
            return;
        }
        self.decide_into(prepared, replies, building, false).await;
        if building.is_empty() {
            self.release_reservation().await;
        }
    }

    /// Brings the writer's world up to the store's head before a batch is decided on it. On
    /// a store shared with other processes, the append point is reserved first, so that the
    /// head caught up with is the one the batch will be appended at: the batch, decided on
    /// everything appended before it, cannot lose a race. While the reservation waits for the
    /// other processes' appends, the writer folds in each one as the store's head moves, so
    /// that little is left to fold in once it holds the append point. A long way behind (a
    /// server left idle, another process's import), most of the gap is folded in before
    /// reserving. On an error, nothing stays reserved.
    async fn ready_to_decide(&mut self) -> Result<(), EngineError> {
        if self.exclusive || self.reserved {
            return self.catch_up().await;
        }
        if *self.head.borrow_and_update() > self.model.position + CATCH_UP_BEFORE_RESERVING {
            self.catch_up().await?;
        }
        let store = self.store.clone();
        // Dropped unfinished (on an error below), a reservation ends with its connection.
        let mut reserve = std::pin::pin!(async move { store.reserve_head().await });
        let reserved = loop {
            tokio::select! {
                biased;
                reserved = &mut reserve => break reserved,
                moved = self.head.changed() => {
                    if moved.is_err() {
                        break reserve.await;
                    }
                    if *self.head.borrow_and_update() > self.model.position {
                        self.catch_up().await?;
                    }
                }
            }
        };
        let head = match reserved {
            Ok(head) => head,
            Err(error) => {
                tracing::warn!(%error, "cannot reserve the append point; appending without");
                None
            }
        };
        self.reserved = head.is_some();
        self.reservable = self.reserved;
        let caught_up = match head {
            Some(head) => self.catch_up_to(head.position).await,
            None => self.catch_up().await,
        };
        if caught_up.is_err() {
            self.release_reservation().await;
        }
        caught_up
    }

    /// Gives up a reservation that no batch will use (an append with no commands).
    async fn release_reservation(&mut self) {
        if std::mem::take(&mut self.reserved) {
            let release = AppendBatch {
                expected_head: self.model.position,
                expected_versions: Vec::new(),
                commands: Vec::new(),
            };
            if let Err(error) = self.store.append(release).await {
                tracing::warn!(%error, "cannot release the append point");
            }
        }
    }

    /// Folds in events that other processes appended since the writer's position.
    async fn catch_up(&mut self) -> Result<(), EngineError> {
        let head = self.store.head().await?.position;
        self.catch_up_to(head).await
    }

    /// Folds in the events after the writer's position up to `head` (a durable head).
    async fn catch_up_to(&mut self, head: u64) -> Result<(), EngineError> {
        while self.model.position < head {
            let want = (head - self.model.position).min(FOLD_PAGE_EVENTS as u64) as usize;
            let page = self.store.read(self.model.position + 1, want).await?;
            if page.is_empty() {
                return Err(EngineError::Corrupt {
                    position: self.model.position + 1,
                    detail: format!("the head is {head} but the log ends before"),
                });
            }
            let mut published = match self.published.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            for envelope in &page {
                let event = decode(envelope)?;
                evolve(&mut self.model.world, envelope.position, &event);
                self.model.position = envelope.position;
                evolve(&mut published.world, envelope.position, &event);
                published.position = envelope.position;
            }
        }
        Ok(())
    }

    /// The command index's records of the batch's client-chosen ids, in one store call.
    async fn known_ids(&self, commands: &[Prepared]) -> Known {
        let ids: Vec<String> = commands
            .iter()
            .filter(|prepared| prepared.client_id)
            .map(|prepared| prepared.command_id.clone())
            .collect();
        if ids.is_empty() {
            return Known::default();
        }
        match self.store.commands(ids.clone()).await {
            Ok(records) => Known {
                records: ids
                    .into_iter()
                    .zip(records)
                    .filter_map(|(id, record)| record.map(|record| (id, record)))
                    .collect(),
                error: None,
            },
            Err(error) => Known {
                records: HashMap::new(),
                error: Some(error.to_string()),
            },
        }
    }

    fn decide_one(
        &mut self,
        prepared: &Prepared,
        group: &mut Group,
        known: &Known,
        flight_ids: &HashMap<String, Hash>,
    ) -> Slot {
        if prepared.client_id {
            if let Some(slot) = repeat(prepared, group, known, flight_ids) {
                return slot;
            }
        }
        let events = match decide(&self.model.world, &prepared.actor, &prepared.request) {
            Ok(events) => events,
            Err(error) => {
                let command_id = prepared.command_id.clone();
                return Slot::Done(Ok(CommandOutcome::rejected(Some(command_id), error)));
            }
        };
        // An accepted command sent without an id gets a located one, naming the position of
        // its first event: the store finds it from the id and keeps no index entry for it.
        let command_id = match prepared.client_id {
            true => prepared.command_id.clone(),
            false => located_command_id(self.model.position + 1)
                .unwrap_or_else(|| prepared.command_id.clone()),
        };
        let mut new_events = Vec::with_capacity(events.len());
        for event in &events {
            let stream = event.stream();
            if group.seen_streams.insert(stream.clone(), ()).is_none() {
                let version = self.model.world.stream_version(&stream);
                group.expected_versions.push((stream.clone(), version));
            }
            self.model.position += 1;
            evolve(&mut self.model.world, self.model.position, event);
            new_events.push(NewEvent {
                stream,
                event_type: event.event_type().to_string(),
                schema: event.schema(),
                actor: prepared.actor.clone(),
                command_id: command_id.clone(),
                correlation_id: command_id.clone(),
                payload: event.payload_json(),
            });
        }
        let index = group.commands.len();
        group
            .ids
            .insert(command_id.clone(), (prepared.body_hash, index));
        group.commands.push(AppendCommand {
            command_id: command_id.clone(),
            body_hash: prepared.body_hash,
            events: new_events,
            fresh_id: !prepared.client_id,
        });
        group.events.push(events);
        Slot::Appended { index, command_id }
    }

    fn publish(&mut self, refs: &[Vec<EventRef>], events: &[Vec<Event>]) {
        let mut published = match self.published.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (command_refs, command_events) in refs.iter().zip(events) {
            for (event_ref, event) in command_refs.iter().zip(command_events) {
                evolve(&mut published.world, event_ref.position, event);
                published.position = event_ref.position;
                self.events_since_snapshot += 1;
            }
        }
    }

    async fn maybe_snapshot(&mut self) {
        if self.events_since_snapshot < SNAPSHOT_EVERY_EVENTS {
            return;
        }
        self.events_since_snapshot = 0;
        // The published (durable) state: the writer's own may be ahead of it.
        // This task alone advances it, so it does not move while the hash is read.
        let position = read(&self.published).position;
        let durable = match hash_at(self.store.as_ref(), position).await {
            Ok(head_hash) => snapshot_of(&read(&self.published), &head_hash),
            Err(error) => Err(error),
        };
        let saved = match durable {
            Ok((position, bytes)) => self
                .store
                .save_snapshot(SNAPSHOT_NAME, position, bytes)
                .await
                .map_err(EngineError::from),
            Err(error) => Err(error),
        };
        if let Err(error) = saved {
            tracing::warn!(%error, "could not save the projection snapshot");
        }
    }
}

/// A random pause, growing with the attempt, before deciding again after a conflict.
fn backoff(attempt: usize) -> std::time::Duration {
    let ceiling = (250u64 << attempt.min(7)).min(CONFLICT_BACKOFF_MAX_MICROS);
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| u64::from(elapsed.subsec_nanos()));
    let mixed = noise.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17;
    std::time::Duration::from_micros(mixed % ceiling.max(1))
}

/// Commands (with their replies) and closes out of arrived jobs (catch-ups are dropped: the
/// writer folds in the store's new events before deciding anyway).
fn sort_jobs(
    arrived: Vec<Job>,
    prepared: &mut Vec<Prepared>,
    replies: &mut Vec<Reply>,
    closes: &mut Vec<Reply>,
) {
    for job in arrived {
        match (job.work, job.reply) {
            (Work::Command(command), Some(reply)) => {
                prepared.push(*command);
                replies.push(reply);
            }
            (Work::Close, reply) => closes.extend(reply),
            _ => {}
        }
    }
}

/// The first job and whatever else is queued, up to `room` jobs in all.
fn drain(first: Job, jobs: &mut mpsc::Receiver<Job>, room: usize) -> Vec<Job> {
    let mut arrived = vec![first];
    while arrived.len() < room.max(1) {
        match jobs.try_recv() {
            Ok(job) => arrived.push(job),
            Err(_) => break,
        }
    }
    arrived
}

/// Answers a landed (or failed) batch.
fn reply_all(slots: Vec<Slot>, replies: Vec<Reply>, appended: Result<&[Vec<EventRef>], &str>) {
    for (answer, reply) in answers(slots, appended).into_iter().zip(replies) {
        let _ = reply.send(answer);
    }
}

/// Repeats, in the batch being built, of commands of the batch that just landed: their
/// answer is now known.
fn resolve_flight_repeats(landed: &Batch, refs: &[Vec<EventRef>], building: &mut Batch) {
    for slot in &mut building.slots {
        let Slot::RepeatOfFlight { command_id } = slot else {
            continue;
        };
        let events = landed
            .group
            .ids
            .get(command_id.as_str())
            .and_then(|(_, index)| refs.get(*index))
            .cloned()
            .unwrap_or_default();
        *slot = Slot::Done(Ok(CommandOutcome::Accepted {
            command_id: command_id.clone(),
            events,
            replayed: true,
        }));
    }
}

/// The answers of a batch's commands once its append succeeded or failed.
fn answers(
    slots: Vec<Slot>,
    appended: Result<&[Vec<EventRef>], &str>,
) -> Vec<Result<CommandOutcome, EngineError>> {
    slots
        .into_iter()
        .map(|slot| match slot {
            Slot::Done(answer) => answer,
            Slot::Appended { index, command_id } => accepted(appended, index, command_id, false),
            Slot::RepeatOf { index, command_id } => accepted(appended, index, command_id, true),
            Slot::RepeatOfFlight { command_id } => Err(stopped(&format!(
                "the batch holding the first `{command_id}` was not stored"
            ))),
        })
        .collect()
}

/// What the command index knew, before the batch, of the batch's client-chosen ids.
#[derive(Default)]
struct Known {
    records: HashMap<String, CommandRecord>,
    /// The lookup failed: commands with client ids cannot be checked, so they fail.
    error: Option<String>,
}

/// The answer to a command id seen before (earlier in this batch, or in the log): a replay,
/// a conflict, or nothing.
fn repeat(
    prepared: &Prepared,
    group: &Group,
    known: &Known,
    flight_ids: &HashMap<String, Hash>,
) -> Option<Slot> {
    let id = &prepared.command_id;
    if let Some((hash, index)) = group.ids.get(id) {
        if *hash == prepared.body_hash {
            return Some(Slot::RepeatOf {
                index: *index,
                command_id: id.clone(),
            });
        }
        return Some(Slot::Done(Ok(conflict(id))));
    }
    if let Some(hash) = flight_ids.get(id) {
        if *hash == prepared.body_hash {
            return Some(Slot::RepeatOfFlight {
                command_id: id.clone(),
            });
        }
        return Some(Slot::Done(Ok(conflict(id))));
    }
    if let Some(error) = &known.error {
        return Some(Slot::Done(Err(stopped(&format!(
            "cannot read the command index: {error}"
        )))));
    }
    let record = known.records.get(id)?;
    // An imported log keeps no bodies: a known id is taken as the same command.
    let same = record
        .body_hash
        .is_none_or(|hash| hash == prepared.body_hash);
    Some(Slot::Done(Ok(if same {
        CommandOutcome::Accepted {
            command_id: id.clone(),
            events: record.events.clone(),
            replayed: true,
        }
    } else {
        conflict(id)
    })))
}

fn accepted(
    appended: Result<&[Vec<EventRef>], &str>,
    index: usize,
    command_id: String,
    replayed: bool,
) -> Result<CommandOutcome, EngineError> {
    match appended {
        Ok(refs) => Ok(CommandOutcome::Accepted {
            command_id,
            events: refs.get(index).cloned().unwrap_or_default(),
            replayed,
        }),
        Err(detail) => Err(stopped(&format!(
            "the batch holding this command was not stored: {detail}"
        ))),
    }
}

fn stopped(detail: &str) -> EngineError {
    EngineError::WriterStopped(detail.to_string())
}

fn conflict(command_id: &str) -> CommandOutcome {
    CommandOutcome::rejected(
        Some(command_id.to_string()),
        DomainError {
            code: ErrorCode::CommandIdConflict,
            message: format!(
                "command id `{command_id}` was already used for a different command; \
                 choose a new id, or resend the original body unchanged"
            ),
        },
    )
}
