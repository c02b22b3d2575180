//! Reopening a store: after a clean close (snapshot saved) and after a crash (the engine
//! dropped without close, so the snapshot lags the log), the engine comes back with the
//! same figures, head and command index.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use grantflow_engine::{CommandOutcome, Engine, SNAPSHOT_NAME};
use serde_json::json;

/// A grant taken through approval, agencies, movements and a revision; returns the body
/// and refs of one command sent with an id.
async fn scenario(engine: &Engine) -> (serde_json::Value, Vec<grantflow_store::EventRef>) {
    accept(engine, register_fund("UNTFHS", "USD"), "treasurer").await;
    accept(engine, contribution("UNTFHS", "5000000.00"), "treasurer").await;
    accept(engine, proposal("UNTFHS", "MEX-1", "3209232.40"), "alice").await;
    let approval = with_id(approve("MEX-1"), "approve-MEX-1");
    let refs = accept(engine, approval.clone(), "bob").await;
    accept(engine, assign("MEX-1", "IOM", "2000000", true), "alice").await;
    accept(engine, assign("MEX-1", "UNDP", "1000000", false), "alice").await;
    accept(engine, disburse("MEX-1", "IOM", "500000"), "treasurer").await;
    accept(engine, expend("MEX-1", "IOM", "120000.50"), "treasurer").await;
    accept(engine, refund("MEX-1", "IOM", "1000"), "treasurer").await;
    accept(engine, revise_grant("MEX-1", "3121707"), "bob").await;
    (approval, refs)
}

async fn more(engine: &Engine, tag: &str) {
    accept(engine, contribution("UNTFHS", "1000"), "treasurer").await;
    accept(engine, disburse("MEX-1", "UNDP", "250000"), "treasurer").await;
    accept(
        engine,
        proposal("UNTFHS", &format!("G-{tag}"), "10"),
        "alice",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_and_reopen_keeps_model_head_and_command_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (store, engine) = open_engine(&path).await;
    let (approval, approval_refs) = scenario(&engine).await;
    let before = engine.snapshot();
    let head_before = store.head().await.unwrap();
    engine.close().await.unwrap();
    drop_engine(engine, store).await;

    let (store, engine) = open_engine(&path).await;
    // The clean close saved a snapshot at the head.
    let (snapshot_position, _) = store.load_snapshot(SNAPSHOT_NAME).await.unwrap().unwrap();
    assert_eq!(snapshot_position, head_before.position);
    let after = engine.snapshot();
    assert_eq!(after.position, before.position);
    assert!(after.world == before.world, "the reopened world differs");
    assert_eq!(store.head().await.unwrap(), head_before);
    let view = after.world.grant_view("MEX-1").unwrap();
    assert_eq!(
        (
            view.amount.as_str(),
            view.disbursed.as_str(),
            view.refunded.as_str()
        ),
        ("3121707.00", "500000.00", "1000.00")
    );

    // A repeated command id replays its original result, without appending.
    let outcome = submit(&engine, approval.clone(), "bob").await;
    assert!(replayed(&outcome), "{}", outcome.to_json());
    assert_eq!(events(&outcome), approval_refs);
    // The same id with another body (another actor) conflicts.
    let outcome = submit(&engine, approval, "carol").await;
    assert_eq!(outcome.code(), Some("command_id_conflict"));
    assert_eq!(store.head().await.unwrap(), head_before);

    // New commands continue the log where it stopped.
    let refs = accept(&engine, contribution("UNTFHS", "1"), "treasurer").await;
    assert_eq!(refs[0].position, head_before.position + 1);
    assert_eq!(
        refs[0].version,
        before.world.fund_view("UNTFHS").unwrap().version + 1
    );
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_durable_batches_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");

    // Session 1: a clean close leaves a snapshot.
    let (store, engine) = open_engine(&path).await;
    scenario(&engine).await;
    let snapshot_at = engine.snapshot().position;
    engine.close().await.unwrap();
    drop_engine(engine, store).await;

    // Session 2: more commands, then the engine is dropped without close (a crash after
    // its batches were acknowledged, hence durable).
    let (store, engine) = open_engine(&path).await;
    more(&engine, "two").await;
    let expend_refs = accept(
        &engine,
        with_id(expend("MEX-1", "UNDP", "100"), "expend-two"),
        "treasurer",
    )
    .await;
    let before = engine.snapshot();
    let head_before = store.head().await.unwrap();
    assert!(head_before.position > snapshot_at);
    drop_engine(engine, store).await;

    // Session 3: the snapshot lags, the tail is folded in.
    let (store, engine) = open_engine(&path).await;
    let (snapshot_position, _) = store.load_snapshot(SNAPSHOT_NAME).await.unwrap().unwrap();
    assert_eq!(
        snapshot_position, snapshot_at,
        "no snapshot was expected after the crash"
    );
    let after = engine.snapshot();
    assert_eq!(after.position, before.position);
    assert!(after.world == before.world, "snapshot + tail differs");
    assert_eq!(store.head().await.unwrap(), head_before);
    let log = read_all(store.as_ref()).await;
    check_gapless(store.as_ref(), &log).await.unwrap();
    check_figures(&after.world, &log).unwrap();
    let rebuilt = fold_log(store.as_ref()).await;
    assert!(rebuilt.world == after.world && rebuilt.position == after.position);
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);

    // The command index survived the crash too.
    let outcome = submit(
        &engine,
        with_id(expend("MEX-1", "UNDP", "100"), "expend-two"),
        "treasurer",
    )
    .await;
    assert!(replayed(&outcome), "{}", outcome.to_json());
    assert_eq!(events(&outcome), expend_refs);
    let outcome = submit(
        &engine,
        with_id(expend("MEX-1", "UNDP", "200"), "expend-two"),
        "treasurer",
    )
    .await;
    assert_eq!(outcome.code(), Some("command_id_conflict"));
    assert_eq!(store.head().await.unwrap(), head_before);

    // And a second crash right after reopening, with nothing new, changes nothing.
    drop_engine(engine, store).await;
    let (store, engine) = open_engine(&path).await;
    assert!(engine.snapshot().world == before.world);
    assert_eq!(store.head().await.unwrap(), head_before);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_before_any_snapshot_replays_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (store, engine) = open_engine(&path).await;
    scenario(&engine).await;
    // Commands that share batches, then the crash.
    let mut pending = Vec::new();
    for n in 0..20 {
        let body = json!({"command": "record-contribution", "fund": "UNTFHS", "donor": "JPN",
                          "amount": format!("{}.25", n + 1), "received_on": "2013-01-01"});
        pending.push(engine.enqueue(cli(body, "treasurer")).await.unwrap());
    }
    for waiting in pending {
        assert!(waiting.wait().await.unwrap().is_ok());
    }
    let before = engine.snapshot();
    drop_engine(engine, store).await;

    let (store, engine) = open_engine(&path).await;
    assert!(store.load_snapshot(SNAPSHOT_NAME).await.unwrap().is_none());
    let after = engine.snapshot();
    assert_eq!(after.position, before.position);
    assert!(after.world == before.world);
    // 5,000,000.00 + (1.25 + 2.25 + ... + 20.25) = 5,000,000 + 210 + 5.00
    assert_eq!(
        after.world.fund_view("UNTFHS").unwrap().received,
        "5000215.00"
    );
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_commands_in_flight_keeps_every_acknowledged_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (store, engine) = open_engine(&path).await;
    accept(&engine, register_fund("F", "JPY"), "treasurer").await;
    let engine = std::sync::Arc::new(engine);
    let mut pending = Vec::new();
    for n in 0..200 {
        let body = with_id(contribution("F", "1"), &format!("in-flight-{n}"));
        pending.push(engine.enqueue(cli(body, "treasurer")).await.unwrap());
    }
    let closer = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.close().await })
    };
    let mut acknowledged = 0u64;
    for waiting in pending {
        // Queued before the close: each is answered (not left hanging).
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), waiting.wait())
            .await
            .expect("a queued command was never answered");
        if let Ok(outcome) = outcome {
            assert!(outcome.is_ok(), "{}", outcome.to_json());
            acknowledged += 1;
        }
    }
    closer.await.unwrap().unwrap();
    // After close, commands are refused rather than left waiting.
    let late = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        engine.submit(cli(contribution("F", "1"), "treasurer")),
    )
    .await
    .expect("a command after close hangs");
    assert!(late.is_err(), "a command after close was accepted");
    let engine = std::sync::Arc::try_unwrap(engine).ok().unwrap();
    drop_engine(engine, store).await;

    let (store, engine) = open_engine(&path).await;
    let fund = engine.snapshot().world.fund_view("F").unwrap();
    assert_eq!(fund.received, acknowledged.to_string());
    assert_eq!(
        acknowledged, 200,
        "commands queued before close were dropped"
    );
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.failure);
    engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_the_engine_made_names_its_position_and_is_remembered_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let (store, engine) = open_engine(&path).await;
    accept(&engine, register_fund("UNTFHS", "USD"), "treasurer").await;
    let mut made = Vec::new();
    for _ in 0..5 {
        let body = contribution("UNTFHS", "1000");
        let outcome = submit(&engine, body.clone(), "treasurer").await;
        let CommandOutcome::Accepted { command_id: id, .. } = outcome.clone() else {
            panic!("accepted: {}", outcome.to_json());
        };
        let first = events(&outcome)[0].position;
        assert_eq!(grantflow_store::located_position(&id), Some(first), "{id}");
        made.push((id, body));
    }
    // A rejected command's id names no position.
    let rejected = submit(&engine, disburse("NONE", "IOM", "1"), "treasurer").await;
    assert!(code(&rejected).is_some());
    let CommandOutcome::Rejected {
        command_id: Some(rejected_id),
        ..
    } = rejected
    else {
        panic!("rejected with an id: {}", rejected.to_json());
    };
    assert_eq!(grantflow_store::located_position(&rejected_id), None);
    engine.close().await.unwrap();
    drop_engine(engine, store).await;

    let (store, engine) = open_engine(&path).await;
    let head_before = head(&store).await;
    for (id, body) in &made {
        let record = store.command(id).await.unwrap().expect("remembered");
        assert_eq!(record.command_id, *id);
        // Sent again under that id: another body (it now names the id), so a conflict.
        let again = submit(&engine, with_id(body.clone(), id), "treasurer").await;
        assert_eq!(code(&again).as_deref(), Some("command_id_conflict"), "{id}");
    }
    assert_eq!(head(&store).await, head_before, "nothing appended");
    engine.close().await.unwrap();
    drop_engine(engine, store).await;
}
