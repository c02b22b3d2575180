//! Storage faults: a [`FaultyStore`] around a real sled store fails the k-th write (before it
//! reaches the disk, or after: written but reported failed) or the k-th read, once or from
//! then on. Driving the engine through it: a failure reaches the caller as an error, never
//! as `ok: true`; nothing is acknowledged that is not in the log after reopening; nothing is
//! half-applied; after a one-off fault the engine goes on with a state equal to the log's, or
//! refuses every further command.
//!
//! `GRANTFLOW_FAULT_CASES` sets how many write and read positions are tried per fault kind
//! (default 12).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::{approve, assign, contribution, disburse, proposal, read_all, refund, register_fund};
use grantflow_engine::{audit, CommandOutcome, Engine, EngineError, Submission};
use grantflow_store::forward::{Forward, Layer};
use grantflow_store::{AppendBatch, Envelope, EventRef, EventStore, StoreError};
use grantflow_store_sled::SledStore;
use serde_json::Value;

// ---------------------------------------------------------------------------------------
// The fault-injecting store

/// What goes wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The write fails before reaching the store (e.g. `write(2)` fails): nothing lands.
    WriteFails,
    /// The write reaches the store and is durable, then the call fails (the flush reported an
    /// error, the connection dropped before the reply): the outcome is unknown to the caller.
    FlushFailsAfterWrite,
    /// A read fails.
    ReadFails,
}

/// The k-th call (1-based) of the kind's operations fails; `sticky`: so does every later one
/// until [`Faults::clear`].
#[derive(Debug, Clone, Copy)]
struct Fault {
    kind: Kind,
    at: u64,
    sticky: bool,
}

/// The layer that fails calls as its [`Fault`] says.
struct Faults {
    fault: Fault,
    writes: AtomicU64,
    reads: AtomicU64,
    injected: AtomicU64,
    cleared: AtomicBool,
}

/// A real sled store seen through [`Faults`].
type FaultyStore = Forward<Faults>;

fn injected(what: &str) -> StoreError {
    StoreError::io("injected fault", std::io::Error::other(what.to_string()))
}

impl Faults {
    fn new(fault: Fault) -> Faults {
        Faults {
            fault,
            writes: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            cleared: AtomicBool::new(false),
        }
    }

    /// Whether the call numbered `n` of `kind` fails.
    fn fails(&self, kind: Kind, n: u64) -> bool {
        let hit = self.fault.kind == kind
            && !self.cleared.load(Ordering::SeqCst)
            && (n == self.fault.at || (self.fault.sticky && n > self.fault.at));
        if hit {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }

    /// Counts a write; `Some(kind)` when it must fail.
    fn write_fault(&self) -> Option<Kind> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        [Kind::WriteFails, Kind::FlushFailsAfterWrite]
            .into_iter()
            .find(|kind| self.fails(*kind, n))
    }

    /// Runs a write, failing it before or after as the fault says.
    async fn write<T, F>(&self, what: &str, write: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match self.write_fault() {
            Some(Kind::WriteFails) => Err(injected(&format!("{what}: write failed"))),
            Some(_) => {
                write.await?;
                Err(injected(&format!("{what}: flush failed after the write")))
            }
            None => write.await,
        }
    }

    fn clear(&self) {
        self.cleared.store(true, Ordering::SeqCst);
    }

    fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Layer for Faults {
    fn before_read(&self) -> Result<(), StoreError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fails(Kind::ReadFails, n) {
            return Err(injected("read failed"));
        }
        Ok(())
    }

    async fn append(
        &self,
        inner: &dyn EventStore,
        batch: AppendBatch,
    ) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.write("append", inner.append(batch)).await
    }

    async fn import(
        &self,
        inner: &dyn EventStore,
        events: Vec<Envelope>,
    ) -> Result<(), StoreError> {
        self.write("import", inner.import(events)).await
    }

    async fn save_snapshot(
        &self,
        inner: &dyn EventStore,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.write("snapshot", inner.save_snapshot(name, position, bytes))
            .await
    }

    fn exclusive(&self, _inner: &dyn EventStore) -> bool {
        // The writer as for a store it does not own: each batch is decided only once the one
        // before is durable, the path whose faults these cases place.
        false
    }
}

// ---------------------------------------------------------------------------------------
// The workload and its bookkeeping

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Fund F, grant G approved, agency IOM with room for every disbursement.
fn setup_commands() -> Vec<Value> {
    vec![
        register_fund("F", "USD"),
        contribution("F", "1000000.00"),
        proposal("F", "G", "900000.00"),
        approve("G"),
        assign("G", "IOM", "900000.00", true),
    ]
}

/// The actor of each setup command (four eyes: the approver is not the submitter).
fn setup_actor(index: usize) -> &'static str {
    if index == 3 {
        "amy.approver"
    } else {
        "sam.secretariat"
    }
}

/// Command `n` of the load: mostly disbursements, every 7th an over-refund that the rules
/// reject (an intended rejection: it must append nothing).
fn load_command(n: u64) -> Value {
    let body = if n % 7 == 3 {
        refund("G", "IOM", "99999999.00")
    } else {
        disburse("G", "IOM", "1.00")
    };
    common::with_id(body, &format!("load-{n}"))
}

/// What became of the commands sent.
#[derive(Default)]
struct Ledger {
    /// command id -> the events its acknowledgement named.
    acknowledged: BTreeMap<String, Vec<EventRef>>,
    /// Commands answered with an engine error (their outcome is unknown to the client).
    failed: BTreeMap<String, String>,
    /// command id -> the body sent (for retries).
    bodies: BTreeMap<String, Value>,
    rejected: u64,
}

impl Ledger {
    fn record(&mut self, id: &str, body: &Value, result: Result<CommandOutcome, EngineError>) {
        self.bodies.insert(id.to_string(), body.clone());
        match result {
            Ok(CommandOutcome::Accepted {
                events,
                replayed,
                command_id,
            }) => {
                assert_eq!(command_id, id);
                if replayed {
                    let first = self.acknowledged.get(id).cloned();
                    if let Some(first) = first {
                        assert_eq!(first, events, "{id} replays its original result");
                    }
                }
                self.failed.remove(id);
                self.acknowledged.insert(id.to_string(), events);
            }
            Ok(CommandOutcome::Rejected { rejection, .. }) => {
                assert_eq!(
                    rejection.code, "over_refund",
                    "{id}: only intended rejections: {rejection:?}"
                );
                self.rejected += 1;
            }
            Err(error) => {
                let message = error.to_string();
                assert!(!message.is_empty());
                if !self.acknowledged.contains_key(id) {
                    self.failed.insert(id.to_string(), message);
                }
            }
        }
    }
}

/// Sends commands `from..to` of the load, `burst` at a time (so that batches hold several).
async fn drive(engine: &Engine, ledger: &mut Ledger, from: u64, to: u64, burst: u64) {
    let mut n = from;
    while n < to {
        let end = (n + burst).min(to);
        let mut pending = Vec::new();
        for k in n..end {
            let body = load_command(k);
            let submission = Submission::cli(body.clone(), Some("fred.finance".into()));
            let queued = engine.enqueue(submission).await;
            pending.push((format!("load-{k}"), body, queued));
        }
        for (id, body, queued) in pending {
            let result = match queued {
                Ok(pending) => pending.wait().await,
                Err(error) => Err(error),
            };
            ledger.record(&id, &body, result);
        }
        n = end;
    }
}

/// Sends the load in rounds of 20 commands until the fault has fired (and one round more);
/// returns the next command number.
async fn drive_until_fired(
    engine: &Engine,
    faulty: &FaultyStore,
    ledger: &mut Ledger,
    burst: u64,
) -> u64 {
    let mut next = 0;
    loop {
        let fired = faulty.layer().injected() > 0;
        drive(engine, ledger, next, next + 20, burst).await;
        next += 20;
        if fired {
            return next;
        }
        assert!(next < 20_000, "the fault never fired");
    }
}

/// The engine's published state equals the log folded from scratch.
async fn state_matches_log(engine: &Engine, store: &dyn EventStore) -> Result<(), String> {
    let model = engine.snapshot();
    let rebuilt = common::fold_log(store).await;
    if model.position != rebuilt.position || model.world != rebuilt.world {
        return Err(format!(
            "the engine's state (position {}) differs from the log's (position {})",
            model.position, rebuilt.position
        ));
    }
    Ok(())
}

/// After reopening the real store: verify passes; acknowledged commands are in the log
/// exactly where acknowledged, once; any other command in the log is a setup command or
/// one whose outcome was an error of an ambiguous kind. Returns the log's command ids.
async fn check_reopened(dir: &Path, ledger: &Ledger, ambiguous_allowed: bool) -> BTreeSet<String> {
    let store = SledStore::open(dir).unwrap();
    let report = audit::verify(&store, None, &|_, _| {}).await.unwrap();
    assert!(report.ok(), "verify after the fault: {:?}", report.failure);
    let log = read_all(&store).await;
    common::check_gapless(&store, &log).await.unwrap();
    let mut by_command: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for envelope in &log {
        by_command
            .entry(envelope.command_id.clone())
            .or_default()
            .push(envelope.position);
    }
    for (id, events) in &ledger.acknowledged {
        let positions: Vec<u64> = events.iter().map(|event| event.position).collect();
        assert_eq!(
            by_command.get(id),
            Some(&positions),
            "acknowledged command {id} is in the log once, where acknowledged"
        );
    }
    for id in by_command.keys() {
        if ledger.acknowledged.contains_key(id) || id.starts_with("setup-") {
            continue;
        }
        assert!(
            ambiguous_allowed && ledger.failed.contains_key(id),
            "command {id} is in the log but was never acknowledged (failed: {:?})",
            ledger.failed.get(id)
        );
    }
    store.close().await.unwrap();
    by_command.into_keys().collect()
}

async fn open_faulty(dir: &Path, fault: Fault) -> Result<(Arc<FaultyStore>, Engine), EngineError> {
    let faulty = Arc::new(Forward::new(
        Arc::new(SledStore::open(dir).unwrap()),
        Faults::new(fault),
    ));
    let store: Arc<dyn EventStore> = faulty.clone();
    let engine = Engine::open(store).await?;
    Ok((faulty, engine))
}

/// A store at `dir` with the setup commands applied (no faults).
async fn prepare(dir: &Path) -> Ledger {
    let mut ledger = Ledger::default();
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir).unwrap());
    let engine = Engine::open(store.clone()).await.unwrap();
    for (index, body) in setup_commands().into_iter().enumerate() {
        let id = format!("setup-{index}");
        let body = common::with_id(body, &id);
        let result = engine
            .submit(Submission::cli(
                body.clone(),
                Some(setup_actor(index).into()),
            ))
            .await;
        assert!(matches!(result, Ok(CommandOutcome::Accepted { .. })));
        ledger.record(&id, &body, result);
    }
    engine.close().await.unwrap();
    common::drop_engine(engine, store).await;
    ledger
}

/// Closes the engine (clearing the fault first, so that the close's own writes succeed)
/// and waits until the store is released.
async fn shut(engine: Engine, faulty: Arc<FaultyStore>) {
    faulty.layer().clear();
    let _ = engine.close().await;
    let store: Arc<dyn EventStore> = faulty;
    common::drop_engine(engine, store).await;
}

/// Totals printed at the end of each test.
#[derive(Default, Debug)]
struct Figures {
    cases: u64,
    injected: u64,
    acknowledged: u64,
    failed: u64,
}

// ---------------------------------------------------------------------------------------
// The tests

/// A write fails once, before reaching the disk: the commands of that batch fail, nothing of
/// them is stored, and the engine goes on with a state equal to the log's.
#[tokio::test]
async fn a_failed_write_is_never_acknowledged_and_the_engine_goes_on() {
    let cases = env_u64("GRANTFLOW_FAULT_CASES", 12);
    let mut figures = Figures::default();
    for at in 1..=cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut ledger = prepare(&data).await;
        let fault = Fault {
            kind: Kind::WriteFails,
            at,
            sticky: false,
        };
        let (faulty, engine) = open_faulty(&data, fault).await.unwrap();
        let next = drive_until_fired(&engine, &faulty, &mut ledger, 1 + at % 5).await;
        assert_eq!(
            faulty.layer().injected(),
            1,
            "case {at}: the fault fired once"
        );
        assert!(
            !ledger.failed.is_empty(),
            "case {at}: the failure reached a caller"
        );
        state_matches_log(&engine, faulty.inner().as_ref())
            .await
            .unwrap();
        // The engine goes on: the next commands are accepted.
        let before = ledger.acknowledged.len();
        drive(&engine, &mut ledger, next, next + 10, 3).await;
        assert!(
            ledger.acknowledged.len() > before,
            "case {at}: the engine went on"
        );
        state_matches_log(&engine, faulty.inner().as_ref())
            .await
            .unwrap();
        figures.acknowledged += ledger.acknowledged.len() as u64;
        figures.failed += ledger.failed.len() as u64;
        figures.injected += faulty.layer().injected();
        shut(engine, faulty).await;
        let logged = check_reopened(&data, &ledger, false).await;
        for id in ledger.failed.keys() {
            assert!(
                !logged.contains(id),
                "case {at}: failed command {id} was stored"
            );
        }
        retry_failed(&data, &mut ledger).await;
        figures.cases += 1;
    }
    println!("write faults (once): {figures:?}, 0 lost, 0 half-applied");
}

/// Every write from the k-th on fails: nothing more is acknowledged; once the fault
/// clears, the engine goes on.
#[tokio::test]
async fn writes_failing_from_then_on_acknowledge_nothing() {
    let cases = env_u64("GRANTFLOW_FAULT_CASES", 12) * 2 / 3;
    let mut figures = Figures::default();
    for at in 1..=cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut ledger = prepare(&data).await;
        let fault = Fault {
            kind: Kind::WriteFails,
            at,
            sticky: true,
        };
        let (faulty, engine) = open_faulty(&data, fault).await.unwrap();
        let next = drive_until_fired(&engine, &faulty, &mut ledger, 2).await;
        let acknowledged_during = ledger.acknowledged.len();
        assert!(faulty.layer().injected() >= 1);
        // No write succeeded from the k-th on: at most k-1 batches were acknowledged.
        let stored = faulty.inner().head().await.unwrap().position;
        assert_eq!(
            stored,
            engine.snapshot().position,
            "case {at}: the engine publishes only what is stored"
        );
        state_matches_log(&engine, faulty.inner().as_ref())
            .await
            .unwrap();
        faulty.layer().clear();
        drive(&engine, &mut ledger, next, next + 6, 2).await;
        assert!(
            ledger.acknowledged.len() > acknowledged_during,
            "case {at}: the engine goes on once the fault clears"
        );
        state_matches_log(&engine, faulty.inner().as_ref())
            .await
            .unwrap();
        figures.acknowledged += ledger.acknowledged.len() as u64;
        figures.failed += ledger.failed.len() as u64;
        figures.injected += faulty.layer().injected();
        shut(engine, faulty).await;
        check_reopened(&data, &ledger, false).await;
        figures.cases += 1;
    }
    println!("write faults (from then on): {figures:?}, 0 lost, 0 half-applied");
}

/// A read fails once (while opening, or in the writer's command-index lookup): an error
/// reaches the caller, nothing wrong is acknowledged, and the state stays the log's.
#[tokio::test]
async fn a_failed_read_fails_loudly_and_changes_nothing() {
    let cases = env_u64("GRANTFLOW_FAULT_CASES", 12);
    let mut figures = Figures::default();
    let mut refused_opens = 0;
    for at in 1..=cases {
        for sticky in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let data = dir.path().join("data");
            let mut ledger = prepare(&data).await;
            let fault = Fault {
                kind: Kind::ReadFails,
                at,
                sticky,
            };
            let (faulty, engine) = match open_faulty(&data, fault).await {
                Ok(opened) => opened,
                Err(error) => {
                    // Opening needs reads: a failure there refuses to open, loudly.
                    assert!(error.to_string().contains("injected fault"), "{error}");
                    refused_opens += 1;
                    figures.injected += 1;
                    figures.cases += 1;
                    check_reopened(&data, &ledger, false).await;
                    continue;
                }
            };
            drive_until_fired(&engine, &faulty, &mut ledger, 3).await;
            for message in ledger.failed.values() {
                assert!(message.contains("command index"), "{message}");
            }
            state_matches_log(&engine, faulty.inner().as_ref())
                .await
                .unwrap();
            figures.acknowledged += ledger.acknowledged.len() as u64;
            figures.failed += ledger.failed.len() as u64;
            figures.injected += faulty.layer().injected();
            shut(engine, faulty).await;
            check_reopened(&data, &ledger, false).await;
            retry_failed(&data, &mut ledger).await;
            figures.cases += 1;
        }
    }
    println!("read faults: {figures:?}, {refused_opens} opens refused, 0 lost, 0 half-applied");
}

/// A write lands but is reported failed (the flush failed after the write, or the reply was
/// lost): the caller gets an error, and resending the same command id later takes effect
/// exactly once. The engine must then either take the landed events into its state and go
/// on, or refuse every further command: never decide against a state the log has left.
#[tokio::test]
async fn a_write_reported_failed_after_landing_is_resolved_by_its_command_id() {
    let cases = env_u64("GRANTFLOW_FAULT_CASES", 12) / 2;
    let mut figures = Figures::default();
    for at in 1..=cases {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut ledger = prepare(&data).await;
        let fault = Fault {
            kind: Kind::FlushFailsAfterWrite,
            at,
            sticky: false,
        };
        let (faulty, engine) = open_faulty(&data, fault).await.unwrap();
        let next = drive_until_fired(&engine, &faulty, &mut ledger, 2).await;
        assert_eq!(faulty.layer().injected(), 1);
        assert!(
            !ledger.failed.is_empty(),
            "case {at}: the failure reached a caller"
        );
        // Whatever the engine does next, it never acknowledges against a stale state.
        let acknowledged_before = ledger.acknowledged.len();
        drive(&engine, &mut ledger, next, next + 6, 2).await;
        if ledger.acknowledged.len() > acknowledged_before {
            state_matches_log(&engine, faulty.inner().as_ref())
                .await
                .unwrap();
        }
        figures.acknowledged += ledger.acknowledged.len() as u64;
        figures.failed += ledger.failed.len() as u64;
        figures.injected += faulty.layer().injected();
        shut(engine, faulty).await;
        check_reopened(&data, &ledger, true).await;
        // Resending a failed command with its id: stored exactly once either way.
        retry_failed(&data, &mut ledger).await;
        figures.cases += 1;
    }
    println!("ambiguous write faults: {figures:?}, 0 lost, 0 duplicated");
}

/// After an ambiguous write failure (the batch landed, the engine was told it failed), the
/// engine's published state must match the log, or it must have stopped taking commands.
/// (The state must not silently lag the log while later commands fail forever.)
#[tokio::test]
async fn after_a_write_reported_failed_after_landing_the_engine_recovers_or_stops() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut ledger = prepare(&data).await;
    let fault = Fault {
        kind: Kind::FlushFailsAfterWrite,
        at: 2,
        sticky: false,
    };
    let (faulty, engine) = open_faulty(&data, fault).await.unwrap();
    drive(&engine, &mut ledger, 0, 4, 1).await;
    assert_eq!(faulty.layer().injected(), 1);
    // The fault is gone: a correct engine either goes on with the landed events in its
    // state, or refuses every command from now on.
    drive(&engine, &mut ledger, 4, 8, 1).await;
    let went_on = (4..8).any(|n| ledger.acknowledged.contains_key(&format!("load-{n}")));
    let state = state_matches_log(&engine, faulty.inner().as_ref()).await;
    assert!(
        went_on && state.is_ok(),
        "after an ambiguous append failure the engine neither recovered nor stopped: \
         later commands failed with {:?}; state vs log: {state:?}",
        ledger.failed.get("load-5"),
    );
    shut(engine, faulty).await;
    check_reopened(&data, &ledger, true).await;
}

/// Reopens without faults and resends every failed command with its id and body: each ends
/// up in the log exactly once (replayed when it had landed) and verify still passes.
async fn retry_failed(dir: &Path, ledger: &mut Ledger) {
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir).unwrap());
    let engine = Engine::open(store.clone()).await.unwrap();
    let failed: Vec<String> = ledger.failed.keys().cloned().collect();
    for id in &failed {
        let body = ledger.bodies[id].clone();
        let result = engine
            .submit(Submission::cli(body.clone(), Some("fred.finance".into())))
            .await;
        assert!(result.is_ok(), "retry of {id} after reopening: {result:?}");
        ledger.record(id, &body, result);
    }
    let log = read_all(store.as_ref()).await;
    for id in &failed {
        let count = log
            .iter()
            .filter(|event| &event.command_id == id)
            .map(|event| event.position)
            .collect::<BTreeSet<_>>()
            .len();
        let expected = usize::from(ledger.acknowledged.contains_key(id));
        assert_eq!(count, expected, "{id} stored {count} times after its retry");
    }
    let report = audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);
    engine.close().await.unwrap();
    common::drop_engine(engine, store).await;
}
