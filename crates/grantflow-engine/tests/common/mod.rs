//! Helpers shared by the engine's integration tests: a real sled store in a temporary
//! directory, command bodies, log reading, and an independent check of the figures.
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use grantflow_domain::{Currency, World};
use grantflow_engine::{CommandOutcome, Engine, ReadModel, Submission};
use grantflow_store::{Envelope, EventRef, EventStore, READ_EVENTS_MAX};
use grantflow_store_sled::SledStore;
use serde_json::{json, Value};

/// A fresh engine on a real sled store in its own temporary directory.
pub struct TestEngine {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The store (also reachable as `engine.store()`).
    pub store: Arc<dyn EventStore>,
    /// The engine.
    pub engine: Engine,
}

/// Opens a new engine in a new temporary directory.
pub async fn temp_engine() -> TestEngine {
    let dir = tempfile::tempdir().unwrap();
    let (store, engine) = open_engine(&dir.path().join("data")).await;
    TestEngine { dir, store, engine }
}

/// Opens (or creates) the store at `path` and an engine on it.
pub async fn open_engine(path: &Path) -> (Arc<dyn EventStore>, Engine) {
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(path).unwrap());
    let engine = Engine::open(store.clone()).await.unwrap();
    (store, engine)
}

/// Drops the engine and waits until nobody but `store` holds the store (the writer task
/// ends once its queue is closed), then drops that too, so that the directory can be
/// reopened. Fails if the store is still held after a few seconds.
pub async fn drop_engine(engine: Engine, store: Arc<dyn EventStore>) {
    drop(engine);
    let mut waited = Duration::ZERO;
    while Arc::strong_count(&store) > 1 {
        assert!(
            waited < Duration::from_secs(10),
            "the store is still held {} times after the engine was dropped",
            Arc::strong_count(&store) - 1
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += Duration::from_millis(10);
    }
    drop(store);
}

/// A command-line submission.
pub fn cli(body: Value, actor: &str) -> Submission {
    Submission::cli(body, Some(actor.to_string()))
}

/// Submits and unwraps the engine result.
pub async fn submit(engine: &Engine, body: Value, actor: &str) -> CommandOutcome {
    engine.submit(cli(body, actor)).await.unwrap()
}

/// Submits a command that must be accepted, returning its event refs.
pub async fn accept(engine: &Engine, body: Value, actor: &str) -> Vec<EventRef> {
    let outcome = submit(engine, body.clone(), actor).await;
    match outcome {
        CommandOutcome::Accepted {
            events,
            replayed: false,
            ..
        } => events,
        other => panic!("expected {body} to be accepted, got {}", other.to_json()),
    }
}

/// The error code of an outcome, or `None` when accepted.
pub fn code(outcome: &CommandOutcome) -> Option<String> {
    outcome.code().map(str::to_string)
}

/// The event refs of an accepted outcome (panics on a rejection).
pub fn events(outcome: &CommandOutcome) -> Vec<EventRef> {
    match outcome {
        CommandOutcome::Accepted { events, .. } => events.clone(),
        other => panic!("expected an accepted outcome, got {}", other.to_json()),
    }
}

/// Whether the outcome is an accepted idempotent replay.
pub fn replayed(outcome: &CommandOutcome) -> bool {
    matches!(outcome, CommandOutcome::Accepted { replayed: true, .. })
}

/// The store's head position.
pub async fn head(store: &Arc<dyn EventStore>) -> u64 {
    store.head().await.unwrap().position
}

/// The whole log, read in pages.
pub async fn read_all(store: &dyn EventStore) -> Vec<Envelope> {
    let mut all: Vec<Envelope> = Vec::new();
    loop {
        let page = store
            .read(all.len() as u64 + 1, READ_EVENTS_MAX)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    all
}

/// Positions 1..=head with no gap, versions per stream 1.. with no gap, matching the
/// store's head and stream versions.
pub async fn check_gapless(store: &dyn EventStore, log: &[Envelope]) -> Result<(), String> {
    let head = store.head().await.unwrap();
    if log.len() as u64 != head.position {
        return Err(format!(
            "the log has {} events but the head is {}",
            log.len(),
            head.position
        ));
    }
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, envelope) in log.iter().enumerate() {
        if envelope.position != index as u64 + 1 {
            return Err(format!("event #{index} has position {}", envelope.position));
        }
        let version = versions.entry(envelope.stream.as_str()).or_insert(0);
        *version += 1;
        if envelope.version != *version {
            return Err(format!(
                "event at position {} of {} has version {}, expected {}",
                envelope.position, envelope.stream, envelope.version, version
            ));
        }
    }
    if let Some(last) = log.last() {
        if last.hash != head.hash {
            return Err("the head hash is not the last event's hash".into());
        }
    }
    for (stream, version) in versions {
        let stored = store.stream_version(stream).await.unwrap();
        if stored != version {
            return Err(format!(
                "stream {stream} has {version} events, its stored version is {stored}"
            ));
        }
    }
    Ok(())
}

/// The read model rebuilt from the log alone (a fresh model folded up to the head).
pub async fn fold_log(store: &dyn EventStore) -> ReadModel {
    let head = store.head().await.unwrap().position;
    let mut model = ReadModel::default();
    grantflow_engine::fold_into(store, &mut model, head, &|_, _| {})
        .await
        .unwrap();
    model
}

/// The read model of the first `until` events.
pub async fn fold_prefix(store: &dyn EventStore, until: u64) -> ReadModel {
    let mut model = ReadModel::default();
    grantflow_engine::fold_into(store, &mut model, until, &|_, _| {})
        .await
        .unwrap();
    model
}

/// An exact amount in minor units from a view's decimal string, which must have exactly
/// `decimals` decimals (a sign is allowed so that a negative figure is reported, not lost).
pub fn minor(text: &str, decimals: u8) -> i128 {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    assert_eq!(
        frac.len(),
        usize::from(decimals),
        "{text:?} should have exactly {decimals} decimals"
    );
    assert!(
        !int.is_empty() && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()),
        "{text:?} is not a plain decimal"
    );
    let magnitude: i128 = format!("{int}{frac}").parse().unwrap();
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// A payload's `amount` in minor units (payload amounts carry the currency's decimals).
fn payload_amount(payload: &Value, field: &str, decimals: u8) -> i128 {
    minor(payload[field].as_str().unwrap(), decimals)
}

/// Grant figures derived from the log alone, without the engine's `evolve`.
#[derive(Debug, Default, Clone)]
struct GrantFromLog {
    fund: String,
    status: String,
    suspended_from: String,
    amount: i128,
    disbursed: i128,
    expended: i128,
    refunded: i128,
    version: u64,
    position: u64,
}

#[derive(Debug, Default, Clone)]
struct FundFromLog {
    decimals: u8,
    received: i128,
    version: u64,
    position: u64,
}

/// Checks every fund and grant view of `world` against invariants and against sums taken
/// directly from the log's payloads (an oracle independent of `evolve`):
/// agency balance >= 0 and = disbursed - expended - refunded; allocated <= amount;
/// unallocated = amount - allocated; available = received - committed >= 0;
/// cash = received - disbursed + refunded; committed = sum of the grants' commitments;
/// received, disbursed, expended, refunded, amount, status, version and position as the
/// log says.
pub fn check_figures(world: &World, log: &[Envelope]) -> Result<(), String> {
    let mut funds: BTreeMap<String, FundFromLog> = BTreeMap::new();
    let mut grants: BTreeMap<String, GrantFromLog> = BTreeMap::new();
    let mut fund_of_currency_decimals: HashMap<String, u8> = HashMap::new();
    for envelope in log {
        let payload: Value = serde_json::from_str(&envelope.payload).unwrap();
        if let Some(fund) = envelope.stream.strip_prefix("fund-") {
            if envelope.event_type == "fund.registered" {
                let currency = Currency::parse(payload["currency"].as_str().unwrap()).unwrap();
                fund_of_currency_decimals.insert(fund.to_string(), currency.decimals());
                funds.insert(
                    fund.to_string(),
                    FundFromLog {
                        decimals: currency.decimals(),
                        ..FundFromLog::default()
                    },
                );
            }
            let state = funds
                .get_mut(fund)
                .ok_or("fund event before registration")?;
            state.version += 1;
            state.position = envelope.position;
            if envelope.event_type == "fund.contribution_recorded" {
                state.received += payload_amount(&payload, "amount", state.decimals);
            }
            continue;
        }
        let grant = envelope
            .stream
            .strip_prefix("grant-")
            .ok_or_else(|| format!("unknown stream {}", envelope.stream))?;
        if envelope.event_type == "grant.proposed" {
            grants.insert(
                grant.to_string(),
                GrantFromLog {
                    fund: payload["fund"].as_str().unwrap().to_string(),
                    status: "proposed".into(),
                    ..GrantFromLog::default()
                },
            );
        }
        let state = grants
            .get_mut(grant)
            .ok_or("grant event before its proposal")?;
        let decimals = fund_of_currency_decimals[&state.fund];
        state.version += 1;
        state.position = envelope.position;
        match envelope.event_type.as_str() {
            "grant.rejected" => state.status = "rejected".into(),
            "grant.approved" => {
                state.status = "approved".into();
                state.amount = payload_amount(&payload, "amount", decimals);
            }
            "grant.revised" => state.amount = payload_amount(&payload, "amount", decimals),
            "grant.disbursement_recorded" => {
                state.disbursed += payload_amount(&payload, "amount", decimals);
                if state.status == "approved" {
                    state.status = "active".into();
                }
            }
            "grant.expenditure_recorded" => {
                state.expended += payload_amount(&payload, "amount", decimals)
            }
            "grant.refund_recorded" => {
                state.refunded += payload_amount(&payload, "amount", decimals)
            }
            "grant.suspended" => {
                state.suspended_from = state.status.clone();
                state.status = "suspended".into();
            }
            "grant.resumed" => {
                if payload["status"].as_str() != Some(state.suspended_from.as_str()) {
                    return Err(format!(
                        "grant {grant} resumed to {} at position {}, but it was suspended from {}",
                        payload["status"], envelope.position, state.suspended_from
                    ));
                }
                state.status = state.suspended_from.clone();
            }
            "grant.cancelled" => state.status = "cancelled".into(),
            "grant.closed" => state.status = "closed".into(),
            "grant.finalized" => state.status = "finalized".into(),
            _ => {}
        }
    }

    let mut fund_sums: BTreeMap<String, (i128, i128, i128, u64)> = BTreeMap::new();
    for id in world.grant_ids() {
        let view = world.grant_view(&id).ok_or("a listed grant has no view")?;
        let expected = grants
            .get(&id)
            .ok_or_else(|| format!("grant {id} is not in the log"))?;
        let d = Currency::parse(&view.currency).unwrap().decimals();
        let m = |text: &str| minor(text, d);
        let ctx = |what: &str| format!("grant {id}: {what} ({view:?})");
        let amount = m(&view.amount);
        let allocated = m(&view.allocated);
        let (disbursed, expended, refunded) =
            (m(&view.disbursed), m(&view.expended), m(&view.refunded));
        if view.fund != expected.fund || view.status != expected.status {
            return Err(ctx(&format!(
                "fund/status should be {}/{}",
                expected.fund, expected.status
            )));
        }
        if amount != expected.amount {
            return Err(ctx(&format!("amount should be {}", expected.amount)));
        }
        if (disbursed, expended, refunded)
            != (expected.disbursed, expected.expended, expected.refunded)
        {
            return Err(ctx(&format!(
                "disbursed/expended/refunded should be {}/{}/{}",
                expected.disbursed, expected.expended, expected.refunded
            )));
        }
        if (view.version, view.position) != (expected.version, expected.position) {
            return Err(ctx(&format!(
                "version/position should be {}/{}",
                expected.version, expected.position
            )));
        }
        if allocated > amount || amount < 0 {
            return Err(ctx("allocated is above amount"));
        }
        if m(&view.unallocated) != amount - allocated {
            return Err(ctx("unallocated != amount - allocated"));
        }
        if expended + refunded > disbursed {
            return Err(ctx("expended + refunded > disbursed"));
        }
        let mut allocation_sum = 0;
        let mut leads = 0;
        for agency in &view.agencies {
            let allocation = m(&agency.allocation);
            let (a_disbursed, a_expended, a_refunded) = (
                m(&agency.disbursed),
                m(&agency.expended),
                m(&agency.refunded),
            );
            let balance = m(&agency.balance);
            allocation_sum += allocation;
            leads += usize::from(agency.lead);
            if balance != a_disbursed - a_expended - a_refunded {
                return Err(ctx(&format!(
                    "agency {} balance != disbursed - expended - refunded",
                    agency.agency
                )));
            }
            if balance < 0 {
                return Err(ctx(&format!("agency {} balance < 0", agency.agency)));
            }
            if a_disbursed - a_refunded > allocation || allocation <= 0 {
                return Err(ctx(&format!(
                    "agency {} net disbursed above its allocation (or allocation not positive)",
                    agency.agency
                )));
            }
        }
        if allocation_sum != allocated {
            return Err(ctx("allocated != sum of the agencies' allocations"));
        }
        if leads > 1 {
            return Err(ctx("more than one lead agency"));
        }
        let commitment = match view.status.as_str() {
            "approved" | "active" | "suspended" | "closed" => amount,
            "cancelled" | "finalized" => disbursed - refunded,
            _ => 0,
        };
        let sums = fund_sums.entry(view.fund.clone()).or_default();
        sums.0 += commitment;
        sums.1 += disbursed;
        sums.2 += refunded;
        sums.3 += 1;
    }
    if world.grant_ids().len() != grants.len() {
        return Err(format!(
            "the world has {} grants, the log {}",
            world.grant_ids().len(),
            grants.len()
        ));
    }

    if world.fund_ids().len() != funds.len() {
        return Err(format!(
            "the world has {} funds, the log {}",
            world.fund_ids().len(),
            funds.len()
        ));
    }
    for id in world.fund_ids() {
        let view = world.fund_view(&id).ok_or("a listed fund has no view")?;
        let expected = funds
            .get(&id)
            .ok_or_else(|| format!("fund {id} is not in the log"))?;
        let m = |text: &str| minor(text, expected.decimals);
        let ctx = |what: &str| format!("fund {id}: {what} ({view:?})");
        let (committed, disbursed, refunded, grants) =
            fund_sums.get(&id).copied().unwrap_or_default();
        let received = m(&view.received);
        if received != expected.received {
            return Err(ctx(&format!("received should be {}", expected.received)));
        }
        if m(&view.committed) != committed {
            return Err(ctx(&format!(
                "committed should be the sum of its grants' commitments, {committed}"
            )));
        }
        if m(&view.disbursed) != disbursed || m(&view.refunded) != refunded {
            return Err(ctx(&format!(
                "disbursed/refunded should be {disbursed}/{refunded}"
            )));
        }
        if view.grants != grants {
            return Err(ctx(&format!("grants should be {grants}")));
        }
        let available = m(&view.available);
        if available != received - committed || available < 0 {
            return Err(ctx("available != received - committed, or negative"));
        }
        if m(&view.cash) != received - disbursed + refunded {
            return Err(ctx("cash != received - disbursed + refunded"));
        }
        if (view.version, view.position) != (expected.version, expected.position) {
            return Err(ctx(&format!(
                "version/position should be {}/{}",
                expected.version, expected.position
            )));
        }
    }
    Ok(())
}

/// Checks that the events a command result names are in the log as named, with the
/// command's id and actor.
pub fn check_refs(
    log: &[Envelope],
    command_id: &str,
    actor: &str,
    refs: &[EventRef],
) -> Result<(), String> {
    for event in refs {
        let envelope = log
            .get(event.position as usize - 1)
            .ok_or_else(|| format!("{event:?} is beyond the log"))?;
        if envelope.stream != event.stream
            || envelope.version != event.version
            || envelope.event_type != event.event_type
            || envelope.command_id != command_id
            || envelope.actor != actor
        {
            return Err(format!(
                "command {command_id}: {event:?} does not match the stored event {} {} v{} {} by {} ({})",
                envelope.position,
                envelope.stream,
                envelope.version,
                envelope.event_type,
                envelope.actor,
                envelope.command_id
            ));
        }
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------
// Command bodies

/// `register-fund`.
pub fn register_fund(fund: &str, currency: &str) -> Value {
    json!({"command": "register-fund", "fund": fund, "name": format!("Fund {fund}"), "currency": currency})
}

/// `record-contribution`.
pub fn contribution(fund: &str, amount: &str) -> Value {
    json!({"command": "record-contribution", "fund": fund, "donor": "JPN", "amount": amount, "received_on": "2012-09-01"})
}

/// `submit-proposal`.
pub fn proposal(fund: &str, grant: &str, amount: &str) -> Value {
    json!({"command": "submit-proposal", "fund": fund, "grant": grant, "title": format!("Project {grant}"),
           "amount": amount, "country": "MX", "regions": ["Chiapas", "Oaxaca"], "ends_on": "2015-09-30"})
}

/// `approve-grant`.
pub fn approve(grant: &str) -> Value {
    json!({"command": "approve-grant", "grant": grant, "decided_on": "2012-09-27"})
}

/// `assign-agency`.
pub fn assign(grant: &str, agency: &str, allocation: &str, lead: bool) -> Value {
    json!({"command": "assign-agency", "grant": grant, "agency": agency, "allocation": allocation, "lead": lead})
}

/// `record-disbursement`.
pub fn disburse(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-disbursement", "grant": grant, "agency": agency, "amount": amount, "paid_on": "2013-01-15"})
}

/// `record-expenditure`.
pub fn expend(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-expenditure", "grant": grant, "agency": agency, "amount": amount, "period_end": "2013-06-30"})
}

/// `record-refund`.
pub fn refund(grant: &str, agency: &str, amount: &str) -> Value {
    json!({"command": "record-refund", "grant": grant, "agency": agency, "amount": amount, "received_on": "2015-10-01"})
}

/// `revise-grant` with a new amount.
pub fn revise_grant(grant: &str, amount: &str) -> Value {
    json!({"command": "revise-grant", "grant": grant, "amount": amount, "reason": "budget revision"})
}

/// A body with a `command_id` set.
pub fn with_id(mut body: Value, id: &str) -> Value {
    body["command_id"] = Value::String(id.to_string());
    body
}

/// The PostgreSQL database of the tests (`GRANTFLOW_TEST_POSTGRES`), or `None` after saying
/// that the test skips.
pub fn pg_url() -> Option<String> {
    match std::env::var("GRANTFLOW_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipping PostgreSQL tests: GRANTFLOW_TEST_POSTGRES is not set");
            None
        }
    }
}

/// Runs `body` with the URL of a fresh schema (`gf_test_<tag>_<random>`) of the database at
/// `url`, as a task, then drops the schema, also when `body` panics (the panic goes on).
pub async fn on_fresh_pg_schema<F>(url: &str, tag: &str, body: impl FnOnce(String) -> F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let schema = format!("gf_test_{tag}_{random:016x}");
    let base = url.split('?').next().unwrap_or(url).to_string();
    let outcome = tokio::spawn(body(format!("{base}?schema={schema}"))).await;
    let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("connect to drop the test schema");
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .await
        .expect("drop the test schema");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}
