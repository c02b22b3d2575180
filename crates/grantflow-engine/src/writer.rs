//! The single writer: decides queued commands in groups against its own copy of the world,
//! appends each group as one durable batch, then publishes the new state and answers.
//!
//! On a shared store (PostgreSQL) other processes append too: before each batch the writer
//! folds in what they appended, and a batch refused as a conflict (another process appended
//! between the catch-up and the append) is decided again on the new state, up to
//! [`APPEND_CONFLICT_RETRIES`] times. A follower task wakes the writer when the store's head
//! moves without it, so that reads stay current.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use grantflow_domain::{decide, evolve, DomainError, ErrorCode, Event};
use grantflow_store::{
    AppendBatch, AppendCommand, CommandRecord, EventRef, EventStore, Hash, NewEvent, StoreError,
};
use tokio::sync::{mpsc, oneshot};

use crate::command::{CommandOutcome, Prepared};
use crate::{
    decode, save_snapshot, EngineError, ReadModel, Stats, BATCH_COMMANDS_MAX, FOLD_PAGE_EVENTS,
    SNAPSHOT_EVERY_EVENTS,
};

/// How many times a batch refused as a conflict is decided again before its commands fail.
pub const APPEND_CONFLICT_RETRIES: usize = 16;

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
        store,
        published,
        model,
        events_since_snapshot: 0,
        stats,
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
    published: Arc<RwLock<ReadModel>>,
    /// The writer's world: equal to the published one between batches.
    model: ReadModel,
    events_since_snapshot: u64,
    stats: Arc<Stats>,
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
}

/// The batch being built.
#[derive(Default)]
struct Group {
    expected_versions: Vec<(String, u64)>,
    seen_streams: HashMap<String, ()>,
    commands: Vec<AppendCommand>,
    events: Vec<Vec<Event>>,
    ids: HashMap<String, (Hash, usize)>,
}

/// Why a batch was not stored.
struct AppendFailure {
    /// Another writer appended first: decide again.
    conflict: bool,
    detail: String,
}

impl Writer {
    async fn run(mut self, mut jobs: mpsc::Receiver<Job>) {
        while let Some(first) = jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH_COMMANDS_MAX {
                match jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            if self.process(batch).await {
                break;
            }
        }
    }

    /// Decides, appends and answers one batch. Returns true when a close was requested.
    async fn process(&mut self, batch: Vec<Job>) -> bool {
        let mut commands = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let mut closes = Vec::new();
        for job in batch {
            match (job.work, job.reply) {
                (Work::Command(prepared), Some(reply)) => {
                    commands.push(*prepared);
                    replies.push(reply);
                }
                (Work::Close, reply) => closes.extend(reply),
                _ => {}
            }
        }
        let answers = self.run_commands(&commands).await;
        for (answer, reply) in answers.into_iter().zip(replies) {
            let _ = reply.send(answer);
        }
        let closing = !closes.is_empty();
        for reply in closes {
            let _ = reply.send(Ok(CommandOutcome::Accepted {
                command_id: String::new(),
                events: Vec::new(),
                replayed: false,
            }));
        }
        closing
    }

    /// Catches up, decides every command, appends; decides again after a conflict.
    async fn run_commands(
        &mut self,
        commands: &[Prepared],
    ) -> Vec<Result<CommandOutcome, EngineError>> {
        let mut attempt = 0;
        loop {
            if let Err(error) = self.catch_up().await {
                tracing::error!(%error, "cannot fold in the store's new events");
                let detail = error.to_string();
                return commands.iter().map(|_| Err(stopped(&detail))).collect();
            }
            if commands.is_empty() {
                return Vec::new();
            }
            let known = self.known_ids(commands).await;
            let mut group = Group::default();
            let slots: Vec<Slot> = commands
                .iter()
                .map(|prepared| self.decide_one(prepared, &mut group, &known))
                .collect();
            match self.append(group).await {
                Ok(refs) => return answers(slots, Ok(&refs)),
                Err(failure) if failure.conflict && attempt < APPEND_CONFLICT_RETRIES => {
                    attempt += 1;
                    self.stats.conflict();
                    tracing::debug!(attempt, detail = %failure.detail, "append conflict; deciding again");
                }
                Err(failure) => return answers(slots, Err(&failure.detail)),
            }
        }
    }

    /// Folds in events that other processes appended since the writer's position.
    async fn catch_up(&mut self) -> Result<(), EngineError> {
        let head = self.store.head().await?.position;
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

    fn decide_one(&mut self, prepared: &Prepared, group: &mut Group, known: &Known) -> Slot {
        let command_id = prepared.command_id.clone();
        if prepared.client_id {
            if let Some(slot) = repeat(prepared, group, known) {
                return slot;
            }
        }
        let events = match decide(&self.model.world, &prepared.actor, &prepared.request) {
            Ok(events) => events,
            Err(error) => {
                return Slot::Done(Ok(CommandOutcome::rejected(Some(command_id), error)));
            }
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
        });
        group.events.push(events);
        Slot::Appended { index, command_id }
    }

    /// Appends the group durably and publishes it; on failure, goes back to the published
    /// (durable) state.
    async fn append(&mut self, group: Group) -> Result<Vec<Vec<EventRef>>, AppendFailure> {
        if group.commands.is_empty() {
            return Ok(Vec::new());
        }
        let batch = AppendBatch {
            expected_head: read(&self.published).position,
            expected_versions: group.expected_versions,
            commands: group.commands,
        };
        match self.store.append(batch).await {
            Ok(refs) => {
                let events = refs.iter().map(Vec::len).sum();
                self.stats.batch(refs.len(), events);
                self.publish(&refs, &group.events);
                self.maybe_snapshot().await;
                Ok(refs)
            }
            Err(error) => {
                let conflict = matches!(error, StoreError::Conflict(_));
                if !conflict {
                    tracing::error!(%error, "append failed; the batch is not acknowledged");
                }
                self.model = read(&self.published).clone();
                Err(AppendFailure {
                    conflict,
                    detail: error.to_string(),
                })
            }
        }
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
        debug_assert_eq!(published.position, self.model.position);
    }

    async fn maybe_snapshot(&mut self) {
        if self.events_since_snapshot < SNAPSHOT_EVERY_EVENTS {
            return;
        }
        self.events_since_snapshot = 0;
        if let Err(error) = save_snapshot(self.store.as_ref(), &self.model).await {
            tracing::warn!(%error, "could not save the projection snapshot");
        }
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
fn repeat(prepared: &Prepared, group: &Group, known: &Known) -> Option<Slot> {
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
