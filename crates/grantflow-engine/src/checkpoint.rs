//! Fund checkpoints: each fund's figures kept in the store every [`FUND_CHECKPOINT_EVERY`]
//! events, so that a fund's figures as of any position fold at most that many events.
//!
//! A fund's figures count its grants' proposals, disbursements and refunds, so a fund's
//! history is spread over its grants' streams: folding them from the start costs the whole
//! log's share of that fund. Instead, at every multiple of `FUND_CHECKPOINT_EVERY` (a
//! *boundary*), the checkpointer ([`Engine::keep_fund_checkpoints`], run by `serve`) saves
//! the [`FundPart`] of every fund that changed since the boundary before, and moves the
//! store's mark to that boundary (`EventStore::save_checkpoints`, one atomic save). A fund's
//! latest entry at or before a boundary up to the mark is then its state at that boundary.
//! The figures as of position P ([`fund_as_of`]) start from the boundary at or before P and
//! fold only the events after it, and of those only the ones that move a fund's figures
//! ([`grantflow_domain::moves_fund_figures`]), with what the domain's own fold does to a fund
//! ([`World::evolve_fund_of_grant`]).
//!
//! An entry is trusted as a snapshot is: the store authenticates its bytes (on sled a MAC
//! under the snapshot key; on PostgreSQL a checksum, in a table only the schema's owner
//! writes), and it names the hash of the event at its position, which must be the log's. An
//! entry that fails either is never served: the question is answered from the grants'
//! streams instead, and the checkpointer is asked to save every entry again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use grantflow_domain::{evolve, moves_fund_figures, Event, FundPart, World};
use grantflow_store::{CheckpointEntry, EventStore, PayloadRecord, StoreError};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{decode_record, hash_at, EngineError, ReadModel, FOLD_PAGE_EVENTS};

/// A boundary every this many events: a fund's figures as of any position fold at most this
/// many events after its checkpoint (measured: BENCHMARKS.md, "History at scale").
pub const FUND_CHECKPOINT_EVERY: u64 = 8_192;
/// The checkpoints' name in the store for a boundary spacing (`funds.8192`): entries of
/// another spacing are never read as these.
pub fn checkpoints_name(every: u64) -> String {
    format!("funds.{every}")
}
/// The format of an entry; an entry of another format is not used.
const FORMAT: u32 = 1;
/// A question about a position further than this past the nearest boundary the checkpoints
/// reach (the checkpointer is catching up) is answered from the grants' streams.
const FOLD_BOUNDARIES_MAX: u64 = 4;

/// One stored entry.
#[derive(Serialize, Deserialize)]
struct EntryFile {
    format: u32,
    fund: String,
    position: u64,
    /// The hash of the event at `position`, hex: binds the entry to its log.
    head_hash: String,
    part: FundPart,
}

/// What the checkpointer and the queries share: the boundary spacing, how far the
/// checkpoints reach, and a request to save them all again (a damaged entry was found).
#[derive(Debug)]
pub(crate) struct Shared {
    /// The boundary spacing.
    pub(crate) every: AtomicU64,
    /// The mark as the checkpointer last saved or read it.
    pub(crate) mark: AtomicU64,
    /// Set by a query that found an entry it cannot trust.
    pub(crate) rebuild: AtomicBool,
    /// Questions answered from a checkpoint.
    pub(crate) used: AtomicU64,
    /// Entries found that could not be trusted (never served).
    pub(crate) refused: AtomicU64,
}

/// How the fund checkpoints served this engine's questions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointStats {
    /// The position through which they are saved (as last seen).
    pub mark: u64,
    /// Questions about a fund's past answered from a checkpoint.
    pub used: u64,
    /// Entries found damaged or of another log: never served (the question was answered
    /// from the fund's streams, and every entry is saved again).
    pub refused: u64,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            every: AtomicU64::new(FUND_CHECKPOINT_EVERY),
            mark: AtomicU64::new(0),
            rebuild: AtomicBool::new(false),
            used: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }
}

impl Shared {
    pub(crate) fn stats(&self) -> CheckpointStats {
        CheckpointStats {
            mark: self.mark.load(Ordering::Acquire),
            used: self.used.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    fn every(&self) -> u64 {
        self.every.load(Ordering::Acquire).max(1)
    }

    fn name(&self) -> String {
        checkpoints_name(self.every())
    }
}

/// A fold that keeps funds only: every fund (the checkpointer) or one (a query).
struct FundFold {
    world: World,
    position: u64,
    only: Option<String>,
    /// The fund of each grant met (from its proposal, else from the live model).
    grant_funds: HashMap<String, String>,
}

impl FundFold {
    fn new(position: u64, only: Option<String>) -> FundFold {
        FundFold {
            world: World::default(),
            position,
            only,
            grant_funds: HashMap::new(),
        }
    }

    fn keeps(&self, fund: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == fund)
    }

    /// Folds one event in; `live` names a grant's fund for a grant proposed before the fold
    /// began.
    fn apply(
        &mut self,
        record: PayloadRecord<'_>,
        live: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), EngineError> {
        self.position = record.position;
        if !moves_fund_figures(record.event_type) {
            return Ok(());
        }
        let event = decode_record(&record)?;
        if let Some(fund) = event.fund_stream_id() {
            if self.keeps(fund) {
                evolve(&mut self.world, record.position, &event);
            }
            return Ok(());
        }
        let Some(grant) = event.grant() else {
            return Ok(());
        };
        let fund = match &event {
            Event::GrantProposed { fund, .. } => {
                self.grant_funds.insert(grant.to_string(), fund.clone());
                Some(fund.clone())
            }
            _ => match self.grant_funds.get(grant) {
                Some(fund) => Some(fund.clone()),
                None => {
                    let fund = live(grant);
                    if let Some(fund) = &fund {
                        self.grant_funds.insert(grant.to_string(), fund.clone());
                    }
                    fund
                }
            },
        };
        if let Some(fund) = fund.filter(|fund| self.keeps(fund)) {
            self.world.evolve_fund_of_grant(&fund, &event);
        }
        Ok(())
    }

    /// Folds the events after `self.position` through `until`.
    async fn fold_until(
        &mut self,
        store: &dyn EventStore,
        until: u64,
        live: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<(), EngineError> {
        while self.position < until {
            let want = (until - self.position).min(FOLD_PAGE_EVENTS as u64) as usize;
            let page = store.read_payloads(self.position + 1, want).await?;
            if page.is_empty() {
                return Err(EngineError::Store(StoreError::Corrupt {
                    position: self.position + 1,
                    detail: format!(
                        "the log has no event at position {} below {until}",
                        self.position + 1
                    ),
                }));
            }
            page.visit(|record| self.apply(record, live))?;
        }
        Ok(())
    }
}

/// The fund of `grant` in the live read model.
fn live_fund(model: &RwLock<ReadModel>) -> impl Fn(&str) -> Option<String> + '_ {
    move |grant| match model.read() {
        Ok(model) => model.world.grant_fund(grant),
        Err(poisoned) => poisoned.into_inner().world.grant_fund(grant),
    }
}

/// The entry of `fund` at or before `at_most`, proven: `Ok(None)` when it has none (the fund
/// did not exist yet); an error when one exists that cannot be trusted.
async fn load_entry(
    store: &dyn EventStore,
    name: &str,
    fund: &str,
    at_most: u64,
) -> Result<Option<FundPart>, EngineError> {
    let Some((position, bytes)) = store.load_checkpoint(name, fund, at_most).await? else {
        return Ok(None);
    };
    let untrusted = |why: String| {
        EngineError::Store(StoreError::Corrupt {
            position,
            detail: format!("the checkpoint of fund {fund} at position {position} {why}"),
        })
    };
    let file: EntryFile = serde_json::from_slice(&bytes)
        .map_err(|error| untrusted(format!("is unreadable: {error}")))?;
    if file.format != FORMAT || file.fund != fund || file.position != position {
        return Err(untrusted(format!(
            "says it is of fund {} at position {} (format {})",
            file.fund, file.position, file.format
        )));
    }
    if file.part.state.fund != fund {
        return Err(untrusted(format!(
            "holds the figures of fund {}",
            file.part.state.fund
        )));
    }
    let hash = hex::encode(hash_at(store, position).await?);
    if file.head_hash != hash {
        return Err(untrusted(
            "was taken of another log: it names another hash than the log's at its position"
                .to_string(),
        ));
    }
    Ok(Some(file.part))
}

/// The figures of `fund` as of position `until` from its checkpoint, in a model that holds
/// that fund only; `None` when the checkpoints do not reach near enough (or cannot be
/// trusted: then a rebuild is asked for, and the caller answers another way).
pub(crate) async fn fund_as_of(
    store: &dyn EventStore,
    model: &RwLock<ReadModel>,
    shared: &Shared,
    fund: &str,
    until: u64,
) -> Result<Option<ReadModel>, EngineError> {
    let (every, name) = (shared.every(), shared.name());
    let mark = shared
        .mark
        .load(Ordering::Acquire)
        .max(store.checkpoint_mark(&name).await?);
    let boundary = (until / every * every).min(mark);
    if boundary == 0 || until - boundary > FOLD_BOUNDARIES_MAX * every {
        return Ok(None);
    }
    let part = match load_entry(store, &name, fund, boundary).await {
        Ok(part) => part,
        Err(EngineError::Store(StoreError::Corrupt { detail, .. })) => {
            tracing::warn!("{detail}; not used: folding the fund's streams instead");
            shared.refused.fetch_add(1, Ordering::Relaxed);
            shared.rebuild.store(true, Ordering::Release);
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let mut fold = FundFold::new(boundary, Some(fund.to_string()));
    if let Some(part) = part {
        fold.world.restore_fund(part);
    }
    fold.fold_until(store, until, &live_fund(model)).await?;
    shared.used.fetch_add(1, Ordering::Relaxed);
    Ok(Some(ReadModel {
        world: fold.world,
        position: until,
    }))
}

/// The checkpointer's entries at `boundary`: the funds whose part changed since `last`
/// (updated).
fn changed_entries(
    fold: &FundFold,
    boundary: u64,
    head_hash: &str,
    last: &mut HashMap<String, Vec<u8>>,
) -> Result<Vec<CheckpointEntry>, EngineError> {
    let mut entries = Vec::new();
    for fund in fold.world.fund_ids() {
        let Some(part) = fold.world.fund_part(&fund) else {
            continue;
        };
        let bytes = serde_json::to_vec(&part).map_err(|e| EngineError::BadQuery(e.to_string()))?;
        if last.get(&fund) == Some(&bytes) {
            continue;
        }
        let file = EntryFile {
            format: FORMAT,
            fund: fund.clone(),
            position: boundary,
            head_hash: head_hash.to_string(),
            part,
        };
        entries.push(CheckpointEntry {
            key: fund.clone(),
            position: boundary,
            bytes: serde_json::to_vec(&file).map_err(|e| EngineError::BadQuery(e.to_string()))?,
        });
        last.insert(fund, bytes);
    }
    Ok(entries)
}

/// Where the checkpointer starts: the mark's state of every fund, proven, or nothing (from
/// the log's start) when there is no mark or an entry at it cannot be trusted.
async fn resume(
    store: &dyn EventStore,
    shared: &Shared,
    name: &str,
    model: &RwLock<ReadModel>,
) -> Result<(FundFold, HashMap<String, Vec<u8>>), EngineError> {
    let mark = store.checkpoint_mark(name).await?;
    let funds = match model.read() {
        Ok(model) => model.world.fund_ids(),
        Err(poisoned) => poisoned.into_inner().world.fund_ids(),
    };
    let mut fold = FundFold::new(mark, None);
    let mut last = HashMap::new();
    if mark == 0 {
        return Ok((fold, last));
    }
    for fund in funds {
        match load_entry(store, name, &fund, mark).await {
            Ok(Some(part)) => {
                let bytes =
                    serde_json::to_vec(&part).map_err(|e| EngineError::BadQuery(e.to_string()))?;
                last.insert(fund, bytes);
                fold.world.restore_fund(part);
            }
            Ok(None) => {}
            Err(EngineError::Store(StoreError::Corrupt { detail, .. })) => {
                tracing::warn!("{detail}; every fund checkpoint is saved again from the log");
                shared.refused.fetch_add(1, Ordering::Relaxed);
                return Ok((FundFold::new(0, None), HashMap::new()));
            }
            Err(error) => return Err(error),
        }
    }
    Ok((fold, last))
}

/// Saves the fund checkpoints of every boundary up to the head, then of each new one as the
/// log grows, until `stop` says so. A damaged entry found by a query makes it save them all
/// again from the log's start.
pub(crate) async fn run(
    store: Arc<dyn EventStore>,
    model: Arc<RwLock<ReadModel>>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    if let Err(error) = keep(store.as_ref(), &model, &shared, &mut stop).await {
        match error {
            EngineError::Store(StoreError::Invalid(why)) => tracing::info!("{why}"),
            error => tracing::warn!("fund checkpoints stopped: {error}"),
        }
    }
}

async fn keep(
    store: &dyn EventStore,
    model: &RwLock<ReadModel>,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), EngineError> {
    let mut head_rx = store.watch_head();
    let (every, name) = (shared.every(), shared.name());
    let mark = store.checkpoint_mark(&name).await?;
    let (mut fold, mut last) = resume(store, shared, &name, model).await?;
    shared.mark.store(mark, Ordering::Release);
    // While saving every entry again, up to the mark it began at, requests to do so are
    // already being met.
    let mut rebuilding_through = if fold.position < mark { mark } else { 0 };
    let live = live_fund(model);
    loop {
        let requested = shared.rebuild.swap(false, Ordering::AcqRel);
        if requested && fold.position >= rebuilding_through {
            rebuilding_through = fold.position;
            (fold, last) = (FundFold::new(0, None), HashMap::new());
        }
        let head = store.head().await?.position;
        if let Some(boundary) =
            save_next(store, &name, every, &mut fold, &mut last, head, &live).await?
        {
            shared.mark.fetch_max(boundary, Ordering::AcqRel);
            if *stop.borrow() {
                return Ok(());
            }
            continue;
        }
        tokio::select! {
            changed = head_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = stop.changed() => return Ok(()),
        }
    }
}

/// Folds `fold` on to the next boundary and saves the entries that changed, when that
/// boundary is at or before `head`; which boundary it saved.
async fn save_next(
    store: &dyn EventStore,
    name: &str,
    every: u64,
    fold: &mut FundFold,
    last: &mut HashMap<String, Vec<u8>>,
    head: u64,
    live: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<Option<u64>, EngineError> {
    let next = (fold.position / every + 1) * every;
    if next > head {
        return Ok(None);
    }
    fold.fold_until(store, next, live).await?;
    let head_hash = hex::encode(hash_at(store, next).await?);
    let entries = changed_entries(fold, next, &head_hash, last)?;
    store.save_checkpoints(name, next, entries).await?;
    Ok(Some(next))
}

/// Saves every fund checkpoint (of the default spacing) from the log's start to `model`'s
/// position anew, replacing what is stored: `replay` rebuilds them with the projections.
/// `model` is the log folded to its position (it names each grant's fund).
pub(crate) async fn save_all(
    store: &dyn EventStore,
    model: &ReadModel,
) -> Result<u64, EngineError> {
    let every = FUND_CHECKPOINT_EVERY;
    let name = checkpoints_name(every);
    let live = |grant: &str| model.world.grant_fund(grant);
    let mut fold = FundFold::new(0, None);
    let mut last = HashMap::new();
    let mut saved = 0;
    while let Some(boundary) = save_next(
        store,
        &name,
        every,
        &mut fold,
        &mut last,
        model.position,
        &live,
    )
    .await?
    {
        saved = boundary;
    }
    Ok(saved)
}

/// Checks every stored fund checkpoint (of the default spacing) up to `model`'s position
/// against a fold of the log: each fund's entry at or before every boundary must prove
/// itself and hold the fund's figures there. `None` when they all agree; else the boundary
/// and what is wrong.
pub(crate) async fn verify_stored(
    store: &dyn EventStore,
    model: &ReadModel,
) -> Result<Option<(u64, String)>, EngineError> {
    let every = FUND_CHECKPOINT_EVERY;
    let name = checkpoints_name(every);
    let mark = store
        .checkpoint_mark(&name)
        .await?
        .min(model.position / every * every);
    let live = |grant: &str| model.world.grant_fund(grant);
    let mut fold = FundFold::new(0, None);
    let mut boundary = every;
    while boundary <= mark {
        fold.fold_until(store, boundary, &live).await?;
        let hash = hex::encode(hash_at(store, boundary).await?);
        for fund in fold.world.fund_ids() {
            let expected = fold.world.fund_part(&fund);
            let stored = match store.load_checkpoint(&name, &fund, boundary).await {
                Ok(stored) => stored,
                Err(StoreError::Corrupt { detail, .. }) => return Ok(Some((boundary, detail))),
                Err(error) => return Err(error.into()),
            };
            let Some((position, bytes)) = stored else {
                return Ok(Some((
                    boundary,
                    format!("fund {fund} has no checkpoint at or before position {boundary}"),
                )));
            };
            let wrong = |why: &str| {
                Some((
                    boundary,
                    format!("the checkpoint of fund {fund} at position {position} {why}"),
                ))
            };
            let Ok(file) = serde_json::from_slice::<EntryFile>(&bytes) else {
                return Ok(wrong("is unreadable"));
            };
            if file.format != FORMAT || file.fund != fund || file.position != position {
                return Ok(wrong("names another fund, position or format"));
            }
            if position == boundary && file.head_hash != hash {
                return Ok(wrong("names another hash than the log's at its position"));
            }
            if Some(file.part) != expected {
                return Ok(wrong(&format!(
                    "differs from the fund's figures in the log at position {boundary}"
                )));
            }
        }
        boundary += every;
    }
    Ok(None)
}
