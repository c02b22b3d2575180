//! Fund checkpoints are caches the engine proves before use: an entry damaged in the store
//! is detected, never served (the fund's figures as of that moment come from its streams and
//! equal the full fold's), and saved again from the log, after which questions are answered
//! from checkpoints once more. On sled (the entry edited in sled's tree, where the MAC under
//! the store's key no longer matches) and on PostgreSQL (the row edited, where its checksum no
//! longer matches) when `GRANTFLOW_TEST_POSTGRES` names a database. `verify` checks every
//! stored checkpoint against the log and fails on a damaged one; `replay` saves them anew.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use grantflow_engine::query::{model_as_of, subject_as_of, AsOf, Subject};
use grantflow_engine::Engine;
use grantflow_store::EventStore;
use serde_json::Value;

/// Boundaries every this many events: the log below has several.
const EVERY: u64 = 4;

/// A log of two funds whose grants move money: about 40 events.
async fn fill(engine: &Engine) {
    for fund in ["F1", "F2"] {
        accept(engine, register_fund(fund, "USD"), "treasurer").await;
        accept(engine, contribution(fund, "900000.00"), "treasurer").await;
    }
    for (grant, fund) in [("G1", "F1"), ("G2", "F2"), ("G3", "F1")] {
        accept(engine, proposal(fund, grant, "30000.00"), "alice").await;
        accept(engine, approve(grant), "bob").await;
        accept(engine, assign(grant, "IOM", "20000.00", true), "alice").await;
    }
    for round in 1..=4 {
        for grant in ["G1", "G2", "G3"] {
            let amount = format!("{round}00.00");
            accept(engine, disburse(grant, "IOM", &amount), "treasurer").await;
            accept(engine, refund(grant, "IOM", "10.00"), "treasurer").await;
        }
    }
}

async fn wait_for_mark(engine: &Engine, boundary: u64) {
    let started = Instant::now();
    while engine.fund_checkpoint_stats().mark < boundary {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "fund checkpoints reach {:?}, not {boundary}",
            engine.fund_checkpoint_stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn fund_view(model: &grantflow_engine::ReadModel, fund: &str) -> Value {
    serde_json::to_value(model.world.fund_view(fund).unwrap()).unwrap()
}

/// F1's figures at every position from the first boundary to the head's event, each against
/// the full fold's.
async fn check_f1(engine: &Engine, head: u64) {
    for position in EVERY..head {
        let as_of = AsOf::Position(position);
        let full = model_as_of(engine, &as_of).await.unwrap();
        let scoped = subject_as_of(engine, &Subject::Fund("F1".into()), &as_of)
            .await
            .unwrap();
        assert_eq!(
            fund_view(&scoped, "F1"),
            fund_view(&full, "F1"),
            "F1 as of {position}"
        );
    }
}

/// What damaging the entries gives back: a store and engine reopened on it.
type Damaged =
    std::pin::Pin<Box<dyn std::future::Future<Output = (Arc<dyn EventStore>, Engine)> + Send>>;

/// Builds the log with checkpoints on `store`, damages every entry of F1 with `damage`, and
/// checks what a reopened engine does with them.
async fn damaged_entries_are_never_served<S, D, Fut>(open: S, damage: D)
where
    S: Fn() -> Fut,
    Fut: std::future::Future<Output = (Arc<dyn EventStore>, Engine)>,
    D: FnOnce(Arc<dyn EventStore>, Engine) -> Damaged,
{
    let (store, engine) = open().await;
    engine.use_fund_checkpoints_every(EVERY);
    engine.keep_fund_checkpoints().await;
    fill(&engine).await;
    let head = store.head().await.unwrap().position;
    assert!(head >= 8 * EVERY, "the log has {head} events");
    wait_for_mark(&engine, head / EVERY * EVERY).await;
    check_f1(&engine, head).await;
    let used = engine.fund_checkpoint_stats().used;
    assert!(used >= head - EVERY, "checkpoints used {used} times");

    let (store, engine) = damage(store, engine).await;
    engine.use_fund_checkpoints_every(EVERY);
    // No checkpointer yet: every question about F1 meets a damaged entry.
    check_f1(&engine, head).await;
    let stats = engine.fund_checkpoint_stats();
    assert_eq!(stats.used, 0, "a damaged entry was served: {stats:?}");
    assert_eq!(stats.refused, head - EVERY, "{stats:?}");
    // F2's entries are whole and serve.
    let f2 = subject_as_of(
        &engine,
        &Subject::Fund("F2".into()),
        &AsOf::Position(head - 1),
    )
    .await
    .unwrap();
    let full = model_as_of(&engine, &AsOf::Position(head - 1))
        .await
        .unwrap();
    assert_eq!(fund_view(&f2, "F2"), fund_view(&full, "F2"));
    assert_eq!(engine.fund_checkpoint_stats().used, 1);

    // The checkpointer saves them again from the log; then they serve once more.
    engine.keep_fund_checkpoints().await;
    let started = Instant::now();
    loop {
        let before = engine.fund_checkpoint_stats();
        subject_as_of(
            &engine,
            &Subject::Fund("F1".into()),
            &AsOf::Position(head - 1),
        )
        .await
        .unwrap();
        if engine.fund_checkpoint_stats().used > before.used {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "F1's checkpoints were not saved again: {before:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = engine.fund_checkpoint_stats().refused;
    check_f1(&engine, head).await;
    let stats = engine.fund_checkpoint_stats();
    assert_eq!(stats.refused, refused, "{stats:?}");
    engine.close().await.unwrap();
    drop(store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sled_a_damaged_fund_checkpoint_is_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let open = || open_engine(&data);
    let reopen = data.clone();
    damaged_entries_are_never_served(open, move |store, engine| {
        Box::pin(async move {
            let data = reopen;
            engine.close().await.unwrap();
            drop_engine(engine, store).await;
            // Flip the last byte of every entry of F1 (`K` + name + 0 + key + 0 + position).
            let db = grantflow_store_sled::open_sled(&data.join("db")).unwrap();
            let prefix = [&b"Kfunds.4\0F1\0"[..]].concat();
            let mut damaged = 0;
            for item in db.scan_prefix(&prefix) {
                let (key, value) = item.unwrap();
                let mut value = value.to_vec();
                *value.last_mut().unwrap() ^= 0x01;
                db.insert(key, value).unwrap();
                damaged += 1;
            }
            assert!(damaged >= 4, "{damaged} entries of F1");
            db.flush().unwrap();
            drop(db);
            open_engine(&data).await
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_damaged_fund_checkpoint_is_never_served() {
    let Some(url) = pg_url() else { return };
    on_fresh_pg_schema(&url, "checkpoints", |store_url| async move {
        let target = store_url.clone();
        let open = move || {
            let store_url = target.clone();
            async move {
                let store: Arc<dyn EventStore> = Arc::new(
                    grantflow_store_pg::PgStore::connect(&store_url)
                        .await
                        .expect("connect a PgStore"),
                );
                let engine = Engine::open(store.clone()).await.unwrap();
                (store, engine)
            }
        };
        let reopen = open.clone();
        let schema = store_url.split("schema=").nth(1).unwrap().to_string();
        let base = store_url.split('?').next().unwrap().to_string();
        damaged_entries_are_never_served(open, move |store, engine| {
            Box::pin(async move {
                engine.close().await.unwrap();
                drop(store);
                let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let damaged = client
                    .execute(
                        &format!(
                            "UPDATE \"{schema}\".checkpoints SET bytes = bytes || '\\x20'::bytea \
                         WHERE key = 'F1'"
                        ),
                        &[],
                    )
                    .await
                    .unwrap();
                assert!(damaged >= 4, "{damaged} entries of F1");
                reopen().await
            })
        })
        .await;
    })
    .await;
}

/// More than one boundary of the default spacing: `verify` checks the checkpoints, fails
/// on a damaged one, and `replay` saves them anew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_the_fund_checkpoints_and_replay_saves_them_anew() {
    use grantflow_engine::audit::{replay, verify};
    use grantflow_engine::checkpoint::FUND_CHECKPOINT_EVERY;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (store, engine) = open_engine(&data).await;
    fill(&engine).await;
    // Enough disbursements and refunds to pass the first boundary, submitted together.
    let mut round = 0;
    while store.head().await.unwrap().position <= FUND_CHECKPOINT_EVERY + 10 {
        let mut pending = Vec::new();
        for i in 0..500 {
            let grant = ["G1", "G2", "G3"][i % 3];
            let body = if (round + i) % 2 == 0 {
                disburse(grant, "IOM", "1.00")
            } else {
                refund(grant, "IOM", "1.00")
            };
            pending.push(engine.enqueue(cli(body, "treasurer")).await.unwrap());
        }
        for outcome in pending {
            outcome.wait().await.unwrap();
        }
        round += 1;
    }
    engine.keep_fund_checkpoints().await;
    wait_for_mark(&engine, FUND_CHECKPOINT_EVERY).await;
    engine.close().await.unwrap();
    drop_engine(engine, store).await;

    let verified = |data: std::path::PathBuf| async move {
        let store: Arc<dyn EventStore> =
            Arc::new(grantflow_store_sled::SledStore::open(&data).unwrap());
        let report = verify(store.as_ref(), None, &|_, _| {}).await.unwrap();
        store.close().await.unwrap();
        drop(store);
        report
    };
    let report = verified(data.clone()).await;
    assert!(report.failure.is_none(), "{:?}", report.failure);

    let db = grantflow_store_sled::open_sled(&data.join("db")).unwrap();
    let key = db
        .scan_prefix(b"Kfunds.8192\0F1\0")
        .next()
        .expect("F1 has a checkpoint")
        .unwrap()
        .0;
    let mut value = db.get(&key).unwrap().unwrap().to_vec();
    *value.last_mut().unwrap() ^= 0x01;
    db.insert(key, value).unwrap();
    db.flush().unwrap();
    drop(db);
    let report = verified(data.clone()).await;
    let failure = report.failure.expect("a damaged checkpoint fails verify");
    assert_eq!(failure.position, FUND_CHECKPOINT_EVERY, "{failure:?}");
    assert!(
        failure.detail.contains("checkpoint F1")
            || failure.detail.contains("checkpoint funds.8192/F1"),
        "{failure:?}"
    );

    let store: Arc<dyn EventStore> =
        Arc::new(grantflow_store_sled::SledStore::open(&data).unwrap());
    replay(store.as_ref(), &|_, _| {}).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    let report = verified(data.clone()).await;
    assert!(report.failure.is_none(), "{:?}", report.failure);
}
