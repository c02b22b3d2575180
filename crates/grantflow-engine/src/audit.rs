//! The auditor's tools: verify the whole log (hash chain, gapless positions and versions,
//! every payload decodes, projections rebuilt from the log equal the stored ones, a
//! checkpoint still holds) and rebuild the projections from scratch.

use std::collections::HashMap;
use std::time::Instant;

use grantflow_store::envelope::ChainVerifier;
use grantflow_store::{Envelope, EventStore, Hash};
use serde::{Deserialize, Serialize};

use crate::{
    load_read_model_until, load_snapshot_until, save_snapshot, EngineError, Progress, ReadModel,
    FOLD_PAGE_EVENTS,
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

/// Checks a sequence of envelopes, in order, as the log must be.
pub struct LogChecker {
    chain: ChainVerifier,
    model: ReadModel,
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
            model: ReadModel::default(),
            versions: HashMap::new(),
            last: Checkpoint {
                position: 0,
                hash: hex::encode([0u8; 32]),
                recorded_at: String::new(),
            },
            checkpoint,
            checkpoint_seen: false,
        }
    }

    /// Checks the next envelope: chain, positions, versions, payload, checkpoint.
    pub fn check(&mut self, envelope: &Envelope) -> Result<(), Failure> {
        let expected = self.last.position + 1;
        self.chain.check(envelope).map_err(|error| Failure {
            position: expected,
            detail: error.to_string(),
        })?;
        self.model.apply(envelope).map_err(|error| Failure {
            position: envelope.position,
            detail: error.to_string(),
        })?;
        *self.versions.entry(envelope.stream.clone()).or_insert(0) = envelope.version;
        self.last = Checkpoint {
            position: envelope.position,
            hash: hex::encode(envelope.hash),
            recorded_at: envelope.recorded_at.clone(),
        };
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
            return Err(Failure {
                position: envelope.position,
                detail: format!(
                    "the log does not extend the checkpoint: the hash at position {} is {}, \
                     the checkpoint says {}; events at or before it were rewritten",
                    envelope.position,
                    hex::encode(envelope.hash),
                    checkpoint.hash
                ),
            });
        }
        Ok(())
    }

    /// Ends the check: the checkpoint must have been reached.
    pub fn finish(self) -> Result<(ReadModel, HashMap<String, u64>, Checkpoint), Failure> {
        if let Some(checkpoint) = &self.checkpoint {
            if !self.checkpoint_seen && checkpoint.position > 0 {
                return Err(Failure {
                    position: self.last.position + 1,
                    detail: format!(
                        "the log ends at position {} but the checkpoint is at position {}: \
                         events the checkpoint covers are missing",
                        self.last.position, checkpoint.position
                    ),
                });
            }
        }
        Ok((self.model, self.versions, self.last))
    }

    /// The last good event.
    pub fn last(&self) -> &Checkpoint {
        &self.last
    }

    /// Events checked so far.
    pub fn events(&self) -> u64 {
        self.last.position
    }
}

/// Verifies a store end to end: every event's chain link and payload, the stored head and
/// stream versions, and the stored projections against a rebuild from the log.
pub async fn verify(
    store: &dyn EventStore,
    checkpoint: Option<Checkpoint>,
    progress: Progress<'_>,
) -> Result<VerifyReport, EngineError> {
    let checkpoint_checked = checkpoint.is_some();
    let head = store.head().await?;
    let mut checker = LogChecker::new(checkpoint);
    let failure = check_store_log(store, &mut checker, head.position, progress).await?;
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
            Err(error) => {
                return Ok(Some(Failure {
                    position: from,
                    detail: error.to_string(),
                }))
            }
        };
        if page.is_empty() {
            return Ok(Some(Failure {
                position: from,
                detail: format!("the head is at position {head} but the log ends before {from}"),
            }));
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
        return Ok(Some(Failure {
            position: last.position,
            detail: "the stored head hash differs from the last event's hash".into(),
        }));
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
            return Ok(Some(Failure {
                position: last.position,
                detail: format!(
                    "stream {stream} has {version} events in the log but its stored version is {stored}"
                ),
            }));
        }
    }
    if let (_, Some(why)) = load_snapshot_until(store, last.position).await? {
        return Ok(Some(Failure {
            position: last.position,
            detail: format!(
                "the projection snapshot is not trusted: {why}; its figures are not used: \
                 run `grantflow replay` to rebuild it from the log"
            ),
        }));
    }
    let stored = load_read_model_until(store, last.position, &|_, _| {}).await?;
    if stored.position != rebuilt.position || stored.world != rebuilt.world {
        return Ok(Some(Failure {
            position: last.position,
            detail: "the stored projections differ from those rebuilt from the log; run \
                     `grantflow replay` to rebuild them"
                .into(),
        }));
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

/// Rebuilds every projection from the log alone and stores the result as the snapshot.
pub async fn replay(
    store: &dyn EventStore,
    progress: Progress<'_>,
) -> Result<(ReadModel, ReplayReport), EngineError> {
    let started = Instant::now();
    let head = store.head().await?.position;
    let mut model = ReadModel::default();
    crate::fold_into(store, &mut model, head, progress).await?;
    let seconds = started.elapsed().as_secs_f64();
    save_snapshot(store, &model).await?;
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
