//! The single writer: decides queued commands in groups against its own copy of the world,
//! appends each group as one durable batch, then publishes the new state and answers.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use grantflow_domain::{decide, evolve, DomainError, ErrorCode, Event};
use grantflow_store::{
    AppendBatch, AppendCommand, CommandRecord, EventRef, EventStore, Hash, NewEvent,
};
use tokio::sync::{mpsc, oneshot};

use crate::command::{CommandOutcome, Prepared};
use crate::{save_snapshot, EngineError, ReadModel, BATCH_COMMANDS_MAX, SNAPSHOT_EVERY_EVENTS};

type Reply = oneshot::Sender<Result<CommandOutcome, EngineError>>;

/// A queued command, or the request to stop.
pub(crate) struct Job {
    prepared: Option<Prepared>,
    reply: Reply,
}

impl Job {
    pub(crate) fn command(prepared: Prepared, reply: Reply) -> Job {
        Job {
            prepared: Some(prepared),
            reply,
        }
    }

    pub(crate) fn close(reply: Reply) -> Job {
        Job {
            prepared: None,
            reply,
        }
    }
}

pub(crate) fn spawn(
    store: Arc<dyn EventStore>,
    published: Arc<RwLock<ReadModel>>,
    model: ReadModel,
    jobs: mpsc::Receiver<Job>,
) -> tokio::task::JoinHandle<()> {
    let writer = Writer {
        store,
        published,
        model,
        events_since_snapshot: 0,
    };
    tokio::spawn(writer.run(jobs))
}

struct Writer {
    store: Arc<dyn EventStore>,
    published: Arc<RwLock<ReadModel>>,
    /// The writer's world: equal to the published one between batches.
    model: ReadModel,
    events_since_snapshot: u64,
}

/// What became of one job of a batch.
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
    Close,
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
        let mut group = Group::default();
        let mut slots = Vec::with_capacity(batch.len());
        let mut replies = Vec::with_capacity(batch.len());
        let known = self.known_ids(&batch).await;
        for job in batch {
            let slot = match job.prepared {
                Some(prepared) => self.decide_one(prepared, &mut group, &known),
                None => Slot::Close,
            };
            slots.push(slot);
            replies.push(job.reply);
        }
        let appended = self.append(group).await;
        let mut closing = false;
        for (slot, reply) in slots.into_iter().zip(replies) {
            let answer = match slot {
                Slot::Done(answer) => answer,
                Slot::Appended { index, command_id } => {
                    accepted(&appended, index, command_id, false)
                }
                Slot::RepeatOf { index, command_id } => {
                    accepted(&appended, index, command_id, true)
                }
                Slot::Close => {
                    closing = true;
                    Ok(CommandOutcome::Accepted {
                        command_id: String::new(),
                        events: Vec::new(),
                        replayed: false,
                    })
                }
            };
            let _ = reply.send(answer);
        }
        closing
    }

    /// The command index's records of the batch's client-chosen ids, in one store call.
    async fn known_ids(&self, batch: &[Job]) -> Known {
        let ids: Vec<String> = batch
            .iter()
            .filter_map(|job| job.prepared.as_ref())
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

    fn decide_one(&mut self, prepared: Prepared, group: &mut Group, known: &Known) -> Slot {
        let command_id = prepared.command_id.clone();
        if prepared.client_id {
            if let Some(slot) = repeat(&prepared, group, known) {
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
    /// (durable) state. Returns the event refs per command, or why it failed.
    async fn append(&mut self, group: Group) -> Result<Vec<Vec<EventRef>>, String> {
        if group.commands.is_empty() {
            return Ok(Vec::new());
        }
        let published_position = self.published_position();
        let batch = AppendBatch {
            expected_head: published_position,
            expected_versions: group.expected_versions,
            commands: group.commands,
        };
        match self.store.append(batch).await {
            Ok(refs) => {
                self.publish(&refs, &group.events);
                self.maybe_snapshot().await;
                Ok(refs)
            }
            Err(error) => {
                tracing::error!(%error, "append failed; the batch is not acknowledged");
                self.model = self.published_model();
                Err(error.to_string())
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

    fn published_position(&self) -> u64 {
        match self.published.read() {
            Ok(model) => model.position,
            Err(poisoned) => poisoned.into_inner().position,
        }
    }

    fn published_model(&self) -> ReadModel {
        match self.published.read() {
            Ok(model) => model.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
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
        return Some(Slot::Done(Err(EngineError::WriterStopped(format!(
            "cannot read the command index: {error}"
        )))));
    }
    let record = known.records.get(id)?;
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
    appended: &Result<Vec<Vec<EventRef>>, String>,
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
        Err(detail) => Err(EngineError::WriterStopped(format!(
            "the batch holding this command was not stored: {detail}"
        ))),
    }
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
