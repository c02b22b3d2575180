//! Group commit: many concurrent commands all get answers with unique, gapless positions,
//! and command ids repeated inside one batch answer as docs/commands.md says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use common::*;
use grantflow_engine::{CommandOutcome, Engine, Pending};
use grantflow_store::{EventRef, EventStore};
use serde_json::{json, Value};

async fn setup(engine: &Engine) {
    accept(engine, register_fund("F", "USD"), "treasurer").await;
    accept(engine, contribution("F", "1000000"), "treasurer").await;
    accept(engine, proposal("F", "G", "500000"), "alice").await;
    accept(engine, approve("G"), "bob").await;
    accept(engine, assign("G", "IOM", "400000", true), "alice").await;
}

/// The `n`-th command of task `task`: mostly accepted contributions and disbursements
/// (one and two streams), some rejected (too many decimals, over-disbursement).
fn mixed(task: usize, n: usize) -> Value {
    let id = format!("t{task}-n{n}");
    match n % 5 {
        0 | 1 => with_id(contribution("F", &format!("{}.{:02}", n + 1, task)), &id),
        2 => with_id(disburse("G", "IOM", "1"), &id),
        3 => with_id(contribution("F", "0.001"), &id), // invalid_amount, decided in the writer
        _ => with_id(disburse("G", "IOM", "999999"), &id), // over_disbursement
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_commands_get_gapless_positions() {
    let TestEngine { dir, store, engine } = temp_engine().await;
    setup(&engine).await;
    let start = head(&store).await;
    let engine = Arc::new(engine);
    let tasks = 5;
    let per_task = 100;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let engine = engine.clone();
        handles.push(tokio::spawn(async move {
            // Enqueue everything first so the writer sees deep queues, then wait.
            let mut pending: Vec<(Value, Pending)> = Vec::new();
            for n in 0..per_task {
                let body = mixed(task, n);
                let waiting = engine.enqueue(cli(body.clone(), "clerk")).await.unwrap();
                pending.push((body, waiting));
            }
            let mut answers = Vec::new();
            for (body, waiting) in pending {
                answers.push((body, waiting.wait().await.unwrap()));
            }
            answers
        }));
    }
    let mut answers: Vec<(Value, CommandOutcome)> = Vec::new();
    for handle in handles {
        answers.extend(handle.await.unwrap());
    }
    assert_eq!(answers.len(), tasks * per_task);

    let mut positions = BTreeSet::new();
    let mut accepted = 0;
    let mut by_code: HashMap<String, usize> = HashMap::new();
    let log_before_check = read_all(store.as_ref()).await;
    for (body, outcome) in &answers {
        let id = body["command_id"].as_str().unwrap();
        match outcome {
            CommandOutcome::Accepted {
                command_id,
                events,
                replayed,
            } => {
                assert_eq!(command_id, id);
                assert!(!replayed);
                accepted += 1;
                check_refs(&log_before_check, id, "clerk", events).unwrap();
                for event in events {
                    assert!(
                        positions.insert(event.position),
                        "position {} answered twice",
                        event.position
                    );
                }
            }
            CommandOutcome::Rejected { command_id, .. } => {
                assert_eq!(command_id.as_deref(), Some(id));
                *by_code
                    .entry(outcome.code().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    let end = head(&store).await;
    let expected: BTreeSet<u64> = (start + 1..=end).collect();
    assert_eq!(
        positions, expected,
        "answered positions are not start+1..=head"
    );
    // Contributions and small disbursements are all accepted: 300 of the 500 (the
    // allocation of 400,000 holds 100 disbursements of 1).
    assert_eq!(accepted, 300, "rejections: {by_code:?}");
    assert_eq!(by_code.get("invalid_amount"), Some(&100));
    assert_eq!(by_code.get("over_disbursement"), Some(&100));
    check_gapless(store.as_ref(), &log_before_check)
        .await
        .unwrap();
    // Several commands shared a batch (one recorded_at per batch): group commit happened.
    let times: BTreeSet<&str> = log_before_check[start as usize..]
        .iter()
        .map(|e| e.recorded_at.as_str())
        .collect();
    assert!(
        times.len() < accepted,
        "{} batches for {accepted} accepted commands: no group commit",
        times.len()
    );
    let model = engine.snapshot();
    assert_eq!(model.position, end);
    let rebuilt = fold_log(store.as_ref()).await;
    assert!(model.world == rebuilt.world);
    check_figures(&model.world, &log_before_check).unwrap();
    // received: 1,000,000 + sum over tasks t and n in {0,1,5,6,...} of (n+1).t
    let mut cents: i128 = 1_000_000 * 100;
    for task in 0..tasks {
        for n in (0..per_task).filter(|n| n % 5 < 2) {
            cents += (n as i128 + 1) * 100 + task as i128;
        }
    }
    let fund = model.world.fund_view("F").unwrap();
    assert_eq!(minor(&fund.received, 2), cents);
    assert_eq!(fund.disbursed, "100.00");
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);
    Arc::try_unwrap(engine)
        .ok()
        .expect("no other holder")
        .close()
        .await
        .unwrap();
    drop(dir);
}

/// Enqueues `fillers` commands and then `bodies`, then `trailer`, without waiting; returns
/// the outcomes of `bodies` and whether the first body's events and the trailer's landed in
/// the same batch (the same recorded_at).
async fn in_one_batch(
    engine: &Engine,
    store: &Arc<dyn EventStore>,
    tag: &str,
    bodies: &[Value],
) -> (Vec<CommandOutcome>, bool) {
    let mut fillers: Vec<Pending> = Vec::new();
    for n in 0..30 {
        let body = contribution("F", &format!("{}", n + 1));
        fillers.push(engine.enqueue(cli(body, "clerk")).await.unwrap());
    }
    let mut pending: Vec<Pending> = Vec::new();
    for body in bodies {
        pending.push(engine.enqueue(cli(body.clone(), "clerk")).await.unwrap());
    }
    let trailer = engine
        .enqueue(cli(
            with_id(contribution("F", "1"), &format!("trailer-{tag}")),
            "clerk",
        ))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    for waiting in pending {
        outcomes.push(waiting.wait().await.unwrap());
    }
    for waiting in fillers {
        assert!(waiting.wait().await.unwrap().is_ok());
    }
    let trailer = events(&trailer.wait().await.unwrap());
    let first = events(&outcomes[0]);
    let log = read_all(store.as_ref()).await;
    let time = |event: &EventRef| log[event.position as usize - 1].recorded_at.clone();
    (outcomes, time(&first[0]) == time(&trailer[0]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_same_body_in_one_batch_appends_once() {
    let TestEngine { dir, store, engine } = temp_engine().await;
    setup(&engine).await;
    let mut shared_a_batch = 0;
    for trial in 0..8 {
        let id = format!("twice-{trial}");
        // A two-stream command (a revision moves the grant and the fund).
        let body = with_id(revise_grant("G", &format!("{}", 500001 + trial)), &id);
        let before = head(&store).await;
        let (outcomes, same_batch) =
            in_one_batch(&engine, &store, &id, &[body.clone(), body.clone()]).await;
        shared_a_batch += usize::from(same_batch);
        let (first, second) = (&outcomes[0], &outcomes[1]);
        assert!(first.is_ok() && !replayed(first), "{}", first.to_json());
        assert!(replayed(second), "{}", second.to_json());
        assert_eq!(events(first), events(second));
        assert_eq!(events(first).len(), 2);
        // Only one copy is in the log: 30 fillers + 2 events + trailer.
        assert_eq!(head(&store).await, before + 30 + 2 + 1);
        let log = read_all(store.as_ref()).await;
        assert_eq!(
            log.iter().filter(|e| e.command_id == id).count(),
            2,
            "the command's events appear more than once"
        );
        // And the id is remembered durably: a later repeat replays too.
        let later = submit(&engine, body, "clerk").await;
        assert!(replayed(&later));
        assert_eq!(events(&later), events(first));
    }
    assert!(
        shared_a_batch > 0,
        "the two copies never shared a batch; the in-batch path was not exercised"
    );
    let grant = engine.snapshot().world.grant_view("G").unwrap();
    assert_eq!(grant.amount, "500008.00");
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);
    engine.close().await.unwrap();
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_other_body_in_one_batch_conflicts() {
    let TestEngine { dir, store, engine } = temp_engine().await;
    setup(&engine).await;
    let mut shared_a_batch = 0;
    for trial in 0..8 {
        let id = format!("clash-{trial}");
        let first = with_id(disburse("G", "IOM", "10"), &id);
        let second = with_id(disburse("G", "IOM", "20"), &id);
        let before = head(&store).await;
        let (outcomes, same_batch) = in_one_batch(&engine, &store, &id, &[first, second]).await;
        shared_a_batch += usize::from(same_batch);
        assert!(
            outcomes[0].is_ok() && !replayed(&outcomes[0]),
            "{}",
            outcomes[0].to_json()
        );
        assert_eq!(
            outcomes[1].code(),
            Some("command_id_conflict"),
            "{}",
            outcomes[1].to_json()
        );
        assert_eq!(head(&store).await, before + 30 + 1 + 1);
        let log = read_all(store.as_ref()).await;
        let mine: Vec<_> = log.iter().filter(|e| e.command_id == id).collect();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            serde_json::from_str::<Value>(&mine[0].payload).unwrap()["amount"],
            json!("10.00")
        );
    }
    assert!(shared_a_batch > 0, "the two never shared a batch");
    // 8 disbursements of 10, none of 20.
    let grant = engine.snapshot().world.grant_view("G").unwrap();
    assert_eq!(grant.disbursed, "80.00");

    engine.close().await.unwrap();
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_first_use_in_a_batch_leaves_the_id_free() {
    let TestEngine { dir, store, engine } = temp_engine().await;
    setup(&engine).await;
    let rejected = with_id(disburse("G", "IOM", "999999"), "free-id");
    let accepted = with_id(disburse("G", "IOM", "7"), "free-id");
    let before = head(&store).await;
    // Fillers first, so that both land in one batch behind them.
    let mut fillers = Vec::new();
    for n in 0..30 {
        let body = contribution("F", &format!("{}", n + 1));
        fillers.push(engine.enqueue(cli(body, "clerk")).await.unwrap());
    }
    let first = engine.enqueue(cli(rejected, "clerk")).await.unwrap();
    let second = engine.enqueue(cli(accepted, "clerk")).await.unwrap();
    let first = first.wait().await.unwrap();
    let second = second.wait().await.unwrap();
    for waiting in fillers {
        assert!(waiting.wait().await.unwrap().is_ok());
    }
    assert_eq!(first.code(), Some("over_disbursement"));
    assert!(second.is_ok() && !replayed(&second), "{}", second.to_json());
    assert_eq!(head(&store).await, before + 31);
    engine.close().await.unwrap();
    drop(dir);
}
