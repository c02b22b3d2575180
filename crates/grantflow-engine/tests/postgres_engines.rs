//! Several engines, each with its own `PgStore` (as several grantflow servers are), deciding
//! commands on the same fund and the same grants at once on one PostgreSQL log: every batch
//! is decided with the head row held, so none loses a race (no conflict); every
//! acknowledged command is in the log exactly once, where it was acknowledged; a command
//! sent to two servers at once is appended once and answered alike by both; rules that
//! depend on the other servers' commands hold (a race for the last unallocated money); and
//! `verify` accepts the log, every event derivable from its command on the state before it.
//!
//! Reads the database URL from `GRANTFLOW_TEST_POSTGRES`; without it the test says so and
//! passes. It works in its own randomly named schema, dropped at the end (also on failure).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use common::{on_fresh_pg_schema, pg_url};
use grantflow_engine::{audit, CommandOutcome, Engine, Submission};
use grantflow_store::{EventStore, READ_EVENTS_MAX};
use grantflow_store_pg::PgStore;
use serde_json::{json, Value};

const ENGINES: usize = 3;
const GRANTS: usize = 3;
/// Agencies of 100.00 each engine assigns, spread over the grants of 1,000.00 (10 fit each).
const ASSIGNS_PER_ENGINE: usize = 24;
/// Contributions each engine is sent; each is also sent, with the same id, to the next one.
const CONTRIBUTIONS_PER_ENGINE: usize = 24;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engines_on_one_postgres_log_decide_the_same_grants_exactly_once() {
    let Some(url) = pg_url() else { return };
    on_fresh_pg_schema(&url, "engines", engines_decide_the_same_grants).await;
}

async fn submit(engine: &Engine, actor: &str, body: Value) -> CommandOutcome {
    engine
        .submit(Submission::cli(body, Some(actor.to_string())))
        .await
        .expect("the engine answers")
}

fn positions(outcome: &CommandOutcome) -> Vec<u64> {
    match outcome {
        CommandOutcome::Accepted { events, .. } => events.iter().map(|e| e.position).collect(),
        CommandOutcome::Rejected { .. } => Vec::new(),
    }
}

async fn engines_decide_the_same_grants(url: String) {
    let mut stores = Vec::new();
    let mut engines = Vec::new();
    for _ in 0..ENGINES {
        let store: Arc<dyn EventStore> =
            Arc::new(PgStore::connect(&url).await.expect("connect a PgStore"));
        engines.push(Arc::new(Engine::open(store.clone()).await.expect("engine")));
        stores.push(store);
    }

    // The fund and the grants, set up through the engines in turn (each decides on the
    // others' events).
    let mut setup = vec![
        (
            "fin",
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"}),
        ),
        (
            "fin",
            json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "100000.00", "received_on": "2020-01-01"}),
        ),
    ];
    for g in 1..=GRANTS {
        setup.push((
            "sec",
            json!({"command": "submit-proposal", "fund": "F", "grant": format!("G{g}"), "title": "T", "amount": "1000.00"}),
        ));
        setup.push((
            "boss",
            json!({"command": "approve-grant", "grant": format!("G{g}"), "decided_on": "2020-01-02"}),
        ));
    }
    let mut setup_events = 0;
    for (i, (actor, body)) in setup.into_iter().enumerate() {
        let outcome = submit(&engines[i % ENGINES], actor, body).await;
        assert!(outcome.is_ok(), "set-up step {i}: {}", outcome.to_json());
        setup_events += positions(&outcome).len();
    }

    // Every engine at once: agencies racing for the grants' money, and contributions to the
    // one fund, each sent to this engine and (same id, same body) to the next one.
    let mut tasks = Vec::new();
    for e in 0..ENGINES {
        for k in 0..ASSIGNS_PER_ENGINE {
            let engine = engines[e].clone();
            let grant = format!("G{}", k % GRANTS + 1);
            let body = json!({"command": "assign-agency", "grant": grant, "agency": format!("A{e}-{k}"),
                              "allocation": "100.00", "command_id": format!("assign-{e}-{k}")});
            tasks.push(tokio::spawn(async move {
                (grant, submit(&engine, "sec", body).await)
            }));
        }
        for k in 0..CONTRIBUTIONS_PER_ENGINE {
            for to in [e, (e + 1) % ENGINES] {
                let engine = engines[to].clone();
                let body = json!({"command": "record-contribution", "fund": "F", "donor": format!("D{e}"),
                                  "amount": "1.00", "received_on": "2020-01-03",
                                  "command_id": format!("contribution-{e}-{k}")});
                tasks.push(tokio::spawn(async move {
                    ("F".to_string(), submit(&engine, "fin", body).await)
                }));
            }
        }
    }
    let mut answers: Vec<(String, CommandOutcome)> = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a submitter"));
    }

    // The money: exactly 10 agencies of each grant fit; the others are refused for it.
    let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
    for (target, outcome) in &answers {
        if target == "F" {
            assert!(outcome.is_ok(), "a contribution: {}", outcome.to_json());
        } else if outcome.is_ok() {
            *assigned.entry(target.clone()).or_default() += 1;
        } else {
            assert_eq!(
                outcome.code(),
                Some("over_allocation"),
                "{}",
                outcome.to_json()
            );
        }
    }
    let expected: BTreeMap<String, usize> = (1..=GRANTS).map(|g| (format!("G{g}"), 10)).collect();
    assert_eq!(assigned, expected, "exactly the money each grant had");

    // Each acknowledged command id: one set of positions, whichever engine answered; a
    // command sent to two engines was appended by one and replayed by the other.
    let mut acknowledged: HashMap<String, (Vec<u64>, usize)> = HashMap::new();
    for (_, outcome) in &answers {
        let CommandOutcome::Accepted {
            command_id,
            events,
            replayed,
        } = outcome
        else {
            continue;
        };
        let landed: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert!(!landed.is_empty(), "{command_id}: accepted with no events");
        let entry = acknowledged
            .entry(command_id.clone())
            .or_insert_with(|| (landed.clone(), 0));
        assert_eq!(
            entry.0, landed,
            "{command_id}: answered with other positions"
        );
        if !*replayed {
            entry.1 += 1;
        }
    }
    for (command_id, (_, appended)) in &acknowledged {
        assert_eq!(
            *appended, 1,
            "{command_id}: answered as appended {appended} times"
        );
    }
    assert_eq!(
        acknowledged.len(),
        ENGINES * CONTRIBUTIONS_PER_ENGINE + GRANTS * 10
    );

    // The log: gapless, and holding exactly the acknowledged commands where they were
    // acknowledged (nothing lost, nothing appended twice or without its answer).
    let head = stores[0].head().await.expect("head").position;
    let mut log: Vec<(u64, String)> = Vec::new();
    while (log.len() as u64) < head {
        let from = log.len() as u64 + 1;
        let page = stores[0].read(from, READ_EVENTS_MAX).await.expect("read");
        assert!(
            !page.is_empty(),
            "the log ends at {} before its head {head}",
            from - 1
        );
        for envelope in page {
            assert_eq!(envelope.position, log.len() as u64 + 1, "a gap in the log");
            log.push((envelope.position, envelope.command_id));
        }
    }
    let mut in_log: HashMap<String, Vec<u64>> = HashMap::new();
    for (position, command_id) in log.iter().skip(setup_events) {
        in_log
            .entry(command_id.clone())
            .or_default()
            .push(*position);
    }
    let acknowledged_positions: HashMap<String, Vec<u64>> = acknowledged
        .iter()
        .map(|(id, (landed, _))| (id.clone(), landed.clone()))
        .collect();
    assert_eq!(
        in_log, acknowledged_positions,
        "the log holds exactly the acknowledged commands, where they were acknowledged"
    );

    // Decided with the head row held: no batch lost a race.
    for (i, engine) in engines.iter().enumerate() {
        assert_eq!(engine.stats().conflicts, 0, "engine {i} lost a race");
    }

    // Every read model converges on the log.
    for _ in 0..250 {
        if engines.iter().all(|e| e.snapshot().position == head) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = engines[0].snapshot();
    for (i, engine) in engines.iter().enumerate() {
        let model = engine.snapshot();
        assert_eq!(model.position, head, "engine {i} caught up");
        assert_eq!(model.world, first.world, "engine {i} has the same figures");
    }

    // verify: the chain, positions and versions, and every event by the rules.
    let report = audit::verify(stores[0].as_ref(), None, &|_, _| {})
        .await
        .expect("verify runs");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.events, head);
    for engine in &engines {
        engine.close().await.expect("close");
    }
}
