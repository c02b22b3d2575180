//! The auditor's tools: verify the whole log (hash chain, gapless positions and versions,
//! every payload decodes, every command's events are what the decider appends for it,
//! projections rebuilt from the log equal the stored ones, a checkpoint still holds) and
//! rebuild the projections from scratch with the same checks.
//!
//! The checked fold is one: [`LogChecker`] (chain, then [`RuleChecker`]) is used by `verify`
//! (store and export), `import` and `replay`. Opening a store folds without it
//! ([`crate::fold_into`]): the log a store holds was checked when it was written or imported.

use std::collections::HashMap;
use std::time::Instant;

use grantflow_domain::{check_command, evolve, Date, Event, StoredEvent};
use grantflow_store::envelope::ChainVerifier;
use grantflow_store::{Envelope, EventStore, Hash, StoreError};
use serde::{Deserialize, Serialize};

use crate::{
    decode, load_read_model_until, load_snapshot_until, save_snapshot, EngineError, Progress,
    ReadModel, FOLD_PAGE_EVENTS,
};

/// The head of the log as an auditor keeps it (`grantflow checkpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Position of the head event.
    pub position: u64,
    /// Its hash, lowercase hex.
    pub hash: String,
    /// Its recorded time.
    pub recorded_at: String,
}

impl Checkpoint {
    /// The store's current head as a checkpoint.
    pub async fn of(store: &dyn EventStore) -> Result<Checkpoint, EngineError> {
        let head = store.head().await?;
        Ok(Checkpoint {
            position: head.position,
            hash: hex::encode(head.hash),
            recorded_at: head.recorded_at,
        })
    }
}

/// The first thing found wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The first bad position.
    pub position: u64,
    /// What is wrong there.
    pub detail: String,
    /// When the event breaks a rule: the rule's code (an error code of docs/errors.md, or
    /// `event_not_derivable`); absent for a broken chain or an unreadable event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Failure {
    /// A failure that is not a rule's (chain, format, checkpoint).
    pub fn at(position: u64, detail: impl Into<String>) -> Failure {
        Failure {
            position,
            detail: detail.into(),
            code: None,
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// The last good event: position, hash and time.
    pub head: Checkpoint,
    /// The first failure, if any.
    pub failure: Option<Failure>,
    /// Whether a checkpoint was checked (and held, when there is no failure).
    pub checkpoint_checked: bool,
}

impl VerifyReport {
    /// Whether everything held.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }
}

/// Checks a sequence of envelopes, in order, as the log must be: the chain, positions and
/// versions, every payload, and every command's events by the rules ([`RuleChecker`]).
pub struct LogChecker {
    chain: ChainVerifier,
    rules: RuleChecker,
    versions: HashMap<String, u64>,
    last: Checkpoint,
    checkpoint: Option<Checkpoint>,
    checkpoint_seen: bool,
}

impl LogChecker {
    /// A checker for a log from position 1, optionally proving it extends `checkpoint`.
    pub fn new(checkpoint: Option<Checkpoint>) -> Self {
        LogChecker {
            chain: ChainVerifier::new(),
            rules: RuleChecker::new(),
            versions: HashMap::new(),
            last: genesis(),
            checkpoint,
            checkpoint_seen: false,
        }
    }

    /// Checks the next envelope: chain, positions, versions, payload, checkpoint, and the
    /// rules of the command before it (a command's events are checked together, once the
    /// log has moved past them or at [`LogChecker::finish`]).
    pub fn check(&mut self, envelope: &Envelope) -> Result<(), Failure> {
        let expected = self.last.position + 1;
        self.chain
            .check(envelope)
            .map_err(|error| Failure::at(expected, error.to_string()))?;
        let event = decode(envelope).map_err(|error| {
            let detail = match error {
                EngineError::Corrupt { detail, .. } | EngineError::Newer { detail, .. } => detail,
                other => other.to_string(),
            };
            Failure::at(envelope.position, detail)
        })?;
        if let Err(failure) = self.rules.push(envelope, event) {
            self.last = self.rules.last_good(failure.position);
            return Err(failure);
        }
        *self.versions.entry(envelope.stream.clone()).or_insert(0) = envelope.version;
        self.last = checkpoint_of(envelope);
        self.check_checkpoint_at(envelope)
    }

    fn check_checkpoint_at(&mut self, envelope: &Envelope) -> Result<(), Failure> {
        let Some(checkpoint) = &self.checkpoint else {
            return Ok(());
        };
        if checkpoint.position != envelope.position {
            return Ok(());
        }
        self.checkpoint_seen = true;
        if checkpoint.hash != hex::encode(envelope.hash) {
            return Err(Failure::at(
                envelope.position,
                format!(
                    "the log does not extend the checkpoint: the hash at position {} is {}, \
                     the checkpoint says {}; events at or before it were rewritten",
                    envelope.position,
                    hex::encode(envelope.hash),
                    checkpoint.hash
                ),
            ));
        }
        Ok(())
    }

    /// Checks the rules of the command the last envelopes belong to (at the end of the
    /// log); after a failure, [`LogChecker::last`] is the event before it.
    pub fn settle(&mut self) -> Result<(), Failure> {
        self.rules.settle().inspect_err(|failure| {
            self.last = self.rules.last_good(failure.position);
        })
    }

    /// Ends the check: the last command's rules, and the checkpoint must have been reached.
    pub fn finish(mut self) -> Result<(ReadModel, HashMap<String, u64>, Checkpoint), Failure> {
        self.settle()?;
        if let Some(checkpoint) = &self.checkpoint {
            if !self.checkpoint_seen && checkpoint.position > 0 {
                return Err(Failure::at(
                    self.last.position + 1,
                    format!(
                        "the log ends at position {} but the checkpoint is at position {}: \
                         events the checkpoint covers are missing",
                        self.last.position, checkpoint.position
                    ),
                ));
            }
        }
        Ok((self.rules.model, self.versions, self.last))
    }

    /// The last good event (after a failure: the event before the failure's position).
    pub fn last(&self) -> &Checkpoint {
        &self.last
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.last.position
    }
}

fn genesis() -> Checkpoint {
    Checkpoint {
        position: 0,
        hash: hex::encode([0u8; 32]),
        recorded_at: String::new(),
    }
}

fn checkpoint_of(envelope: &Envelope) -> Checkpoint {
    Checkpoint {
        position: envelope.position,
        hash: hex::encode(envelope.hash),
        recorded_at: envelope.recorded_at.clone(),
    }
}

/// The rule check of a log, folded: each command's events (consecutive envelopes with the
/// same command id) are checked with [`grantflow_domain::check_command`] against the world
/// before them (they must be exactly what the decider appends for the command they come
/// from, issued by the envelope's actor on the UTC date it was recorded) and only then
/// folded in. The first event that breaks a rule fails with its position and the rule's code.
///
/// It checks rules, not the chain: [`LogChecker`] checks both. A caller that has a world it
/// trusts up to a position (a checked projection snapshot taken between commands) starts
/// from it with [`RuleChecker::from_model`].
#[derive(Debug, Default)]
pub struct RuleChecker {
    model: ReadModel,
    /// The current command's envelopes and events, not yet checked.
    pending: Vec<(Envelope, Event)>,
    /// The last event of the last command checked.
    checked: Option<Checkpoint>,
}

impl RuleChecker {
    /// A checker for a log from position 1.
    pub fn new() -> Self {
        RuleChecker::default()
    }

    /// A checker that continues from `model` (the world through `model.position`, which
    /// must end a command).
    pub fn from_model(model: ReadModel) -> Self {
        RuleChecker {
            model,
            pending: Vec::new(),
            checked: None,
        }
    }

    /// The world of the commands checked so far.
    pub fn model(&self) -> &ReadModel {
        &self.model
    }

    /// Takes the next envelope (at `model.position + 1` plus the events pending) with its
    /// decoded event; when it starts another command, the command before it is checked first.
    pub fn push(&mut self, envelope: &Envelope, event: Event) -> Result<(), Failure> {
        let expected = self.model.position + self.pending.len() as u64 + 1;
        if envelope.position != expected {
            return Err(Failure::at(
                expected,
                format!("expected position {expected}, found {}", envelope.position),
            ));
        }
        if let Some((first, _)) = self.pending.first() {
            if first.command_id == envelope.command_id {
                if let Some(detail) = same_command(first, envelope) {
                    return Err(rule_failure(
                        envelope,
                        grantflow_domain::EVENT_NOT_DERIVABLE,
                        detail,
                    ));
                }
                self.pending.push((envelope.clone(), event));
                return Ok(());
            }
            self.settle()?;
        }
        if envelope.correlation_id != envelope.command_id {
            return Err(rule_failure(
                envelope,
                grantflow_domain::EVENT_NOT_DERIVABLE,
                format!(
                    "the correlation id {:?} is not the command id {:?} (the engine writes the \
                     command id in both)",
                    envelope.correlation_id, envelope.command_id
                ),
            ));
        }
        self.pending.push((envelope.clone(), event));
        Ok(())
    }

    /// Checks and folds in the command pending, if any (the log ends, or the caller knows the
    /// command is complete).
    pub fn settle(&mut self) -> Result<(), Failure> {
        let Some((first, _)) = self.pending.first() else {
            return Ok(());
        };
        let Some(today) = first.recorded_at.get(..10).and_then(Date::parse) else {
            return Err(rule_failure(
                first,
                grantflow_domain::EVENT_NOT_DERIVABLE,
                format!("recorded_at {:?} has no date", first.recorded_at),
            ));
        };
        let stored: Vec<StoredEvent<'_>> = self
            .pending
            .iter()
            .map(|(envelope, event)| StoredEvent {
                stream: &envelope.stream,
                schema: envelope.schema,
                payload: &envelope.payload,
                event,
            })
            .collect();
        if let Err(breach) = check_command(
            &self.model.world,
            &first.actor,
            &first.command_id,
            today,
            &stored,
        ) {
            let (envelope, event) = &self.pending[breach.index.min(self.pending.len() - 1)];
            return Err(rule_failure(
                envelope,
                breach.code.as_str(),
                format!(
                    "{} (the {} of command {}, by {})",
                    breach.message,
                    event.event_type(),
                    envelope.command_id,
                    envelope.actor
                ),
            ));
        }
        for (envelope, event) in self.pending.drain(..) {
            evolve(&mut self.model.world, envelope.position, &event);
            self.model.position = envelope.position;
            self.checked = Some(checkpoint_of(&envelope));
        }
        Ok(())
    }

    /// Ends the check: the last command, then the world of the whole log.
    pub fn finish(mut self) -> Result<ReadModel, Failure> {
        self.settle()?;
        Ok(self.model)
    }

    /// The last event before `position` this checker has seen (for a failure's report).
    fn last_good(&self, position: u64) -> Checkpoint {
        self.pending
            .iter()
            .rev()
            .map(|(envelope, _)| envelope)
            .find(|envelope| envelope.position < position)
            .map(checkpoint_of)
            .or_else(|| self.checked.clone())
            .unwrap_or_else(genesis)
    }
}

/// Why `next` cannot be another event of the command `first` starts, if it cannot.
fn same_command(first: &Envelope, next: &Envelope) -> Option<String> {
    if next.correlation_id != first.correlation_id {
        return Some(format!(
            "one command's events carry two correlation ids, {:?} and {:?}",
            first.correlation_id, next.correlation_id
        ));
    }
    if next.actor != first.actor {
        return Some(format!(
            "one command's events name two actors, {:?} and {:?}",
            first.actor, next.actor
        ));
    }
    if next.recorded_at != first.recorded_at {
        return Some(format!(
            "one command's events were recorded at two times, {} and {}",
            first.recorded_at, next.recorded_at
        ));
    }
    None
}

fn rule_failure(envelope: &Envelope, code: &str, message: String) -> Failure {
    Failure {
        position: envelope.position,
        detail: format!("breaks rule {code}: {message}"),
        code: Some(code.to_string()),
    }
}

/// The checked fold of a store's log through position `until` (chain, payloads, rules), as
/// `replay` and `verify` fold it: the first failure is [`EngineError::Corrupt`] naming its
/// position, with the rule's code first in its detail.
pub async fn replay_checked(
    store: &dyn EventStore,
    until: u64,
    progress: Progress<'_>,
) -> Result<ReadModel, EngineError> {
    let mut checker = LogChecker::new(None);
    let failure = check_store_log(store, &mut checker, until, progress).await?;
    let failure = match failure {
        Some(failure) => failure,
        None => match checker.finish() {
            Ok((model, _, _)) => return Ok(model),
            Err(failure) => failure,
        },
    };
    Err(EngineError::Corrupt {
        position: failure.position,
        detail: failure.detail,
    })
}

/// Verifies a store end to end: every event's chain link and payload, the stored head and
/// stream versions, and the stored projections (the snapshot, the fund checkpoints) against
/// a rebuild from the log.
pub async fn verify(
    store: &dyn EventStore,
    checkpoint: Option<Checkpoint>,
    progress: Progress<'_>,
) -> Result<VerifyReport, EngineError> {
    let checkpoint_checked = checkpoint.is_some();
    let head = store.head().await?;
    let mut checker = LogChecker::new(checkpoint);
    let failure = match check_store_log(store, &mut checker, head.position, progress).await? {
        Some(failure) => Some(failure),
        None => checker.settle().err(),
    };
    let last = checker.last().clone();
    let events = checker.events();
    let failure = match failure {
        Some(failure) => Some(failure),
        None => match checker.finish() {
            Err(failure) => Some(failure),
            Ok((rebuilt, versions, last)) => {
                compare_with_store(store, &head.hash, &rebuilt, &versions, &last).await?
            }
        },
    };
    Ok(VerifyReport {
        events,
        head: last,
        failure,
        checkpoint_checked,
    })
}

async fn check_store_log(
    store: &dyn EventStore,
    checker: &mut LogChecker,
    head: u64,
    progress: Progress<'_>,
) -> Result<Option<Failure>, EngineError> {
    while checker.events() < head {
        let from = checker.events() + 1;
        let want = (head - checker.events()).min(FOLD_PAGE_EVENTS as u64) as usize;
        let page = match store.read(from, want).await {
            Ok(page) => page,
            Err(error) => return Ok(Some(Failure::at(from, error.to_string()))),
        };
        if page.is_empty() {
            return Ok(Some(Failure::at(
                from,
                format!("the head is at position {head} but the log ends before {from}"),
            )));
        }
        for envelope in &page {
            if let Err(failure) = checker.check(envelope) {
                return Ok(Some(failure));
            }
        }
        progress(checker.events(), head);
    }
    Ok(None)
}

/// Compares what the store keeps (head, stream versions, projections) with what the log
/// says, as of the head verified: appends that land meanwhile do not make a false failure.
async fn compare_with_store(
    store: &dyn EventStore,
    head_hash: &Hash,
    rebuilt: &ReadModel,
    versions: &HashMap<String, u64>,
    last: &Checkpoint,
) -> Result<Option<Failure>, EngineError> {
    if hex::encode(head_hash) != last.hash {
        return Ok(Some(Failure::at(
            last.position,
            "the stored head hash differs from the last event's hash",
        )));
    }
    let moved = store.head().await?.position != last.position;
    let mut streams: Vec<(&String, &u64)> = versions.iter().collect();
    streams.sort();
    for (stream, version) in streams {
        let stored = store.stream_version(stream).await?;
        let agrees = if moved {
            stored >= *version
        } else {
            stored == *version
        };
        if !agrees {
            return Ok(Some(Failure::at(
                last.position,
                format!(
                    "stream {stream} has {version} events in the log but its stored version is {stored}"
                ),
            )));
        }
    }
    if let (_, Some(why)) = load_snapshot_until(store, last.position).await? {
        return Ok(Some(Failure::at(
            last.position,
            format!(
                "the projection snapshot is not trusted: {why}; its figures are not used: \
                 run `grantflow replay` to rebuild it from the log"
            ),
        )));
    }
    let stored = load_read_model_until(store, last.position, &|_, _| {}).await?;
    if stored.position != rebuilt.position || stored.world != rebuilt.world {
        return Ok(Some(Failure::at(
            last.position,
            "the stored projections differ from those rebuilt from the log; run \
             `grantflow replay` to rebuild them",
        )));
    }
    if let Some((boundary, why)) = crate::checkpoint::verify_stored(store, rebuilt).await? {
        return Ok(Some(Failure::at(
            boundary,
            format!(
                "{why}; it is not used: run `grantflow replay` to save the fund checkpoints \
                 again from the log"
            ),
        )));
    }
    Ok(None)
}

/// What `replay` did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// Events folded.
    pub events: u64,
    /// Seconds taken.
    pub seconds: f64,
    /// Events per second.
    pub events_per_second: f64,
}

/// Rebuilds every projection from the log alone, with the checked fold
/// ([`replay_checked`]: chain, payloads, rules), and stores the result as the snapshot and
/// the fund checkpoints, saved anew ([`crate::checkpoint`]). A log that fails the check is
/// refused ([`EngineError::Corrupt`]) and nothing is written.
pub async fn replay(
    store: &dyn EventStore,
    progress: Progress<'_>,
) -> Result<(ReadModel, ReplayReport), EngineError> {
    let started = Instant::now();
    let head = store.head().await?.position;
    let model = replay_checked(store, head, progress).await?;
    let seconds = started.elapsed().as_secs_f64();
    save_snapshot(store, &model).await?;
    match crate::checkpoint::save_all(store, &model).await {
        Ok(_) => {}
        // A store or role that keeps no checkpoints (PostgreSQL's application role).
        Err(EngineError::Store(StoreError::Invalid(why))) => tracing::info!("{why}"),
        Err(error) => return Err(error),
    }
    let report = ReplayReport {
        events: model.position,
        seconds,
        events_per_second: if seconds > 0.0 {
            model.position as f64 / seconds
        } else {
            0.0
        },
    };
    Ok((model, report))
}
