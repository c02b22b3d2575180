//! As-of questions about one grant or fund read only the streams their answer depends on:
//! for random logs over several funds and grants, and every position and recorded time, the
//! subject's figures equal those of the full fold of the log's prefix, and every audit trail
//! equals the one the full fold gives, a fund's answered from its checkpoints (kept every
//! few events, a random spacing) where they reach: on sled, and on PostgreSQL when
//! `GRANTFLOW_TEST_POSTGRES` names a database (each case in a schema of its own, dropped
//! after; without it the PostgreSQL test says so and passes).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use grantflow_engine::query::{audit_trail, model_as_of, subject_as_of, AsOf, Subject};
use grantflow_engine::ReadModel;
use proptest::prelude::*;
use serde_json::Value;

const FUNDS: [&str; 2] = ["F1", "F2"];
const GRANTS: [(&str, &str); 4] = [("G1", "F1"), ("G2", "F1"), ("G3", "F2"), ("G4", "F2")];
const AGENCIES: [&str; 2] = ["IOM", "UNDP"];

/// One random command of a log over two funds and four grants (some are refused: what a
/// refusal appends, nothing, is part of the test too). `stage` is how far the grant's life
/// has gone (proposed, approved, an agency assigned): half of the commands take it one step
/// further, so that money moves in most logs.
fn command(choice: u8, grant: usize, amount: u32, stage: u8) -> (Value, &'static str) {
    // Mostly the agency the grant is assigned first, so that most movements are accepted.
    let agency = AGENCIES[(grant + usize::from(amount.is_multiple_of(8))) % AGENCIES.len()];
    let (grant, fund) = GRANTS[grant % GRANTS.len()];
    let cents = format!("{}.{:02}", 1 + amount / 100, amount % 100);
    let choice = match (choice % 2, stage) {
        (0, 0) => 1,
        (0, 1) => 2,
        (0, 2) => 3,
        _ => choice >> 1,
    };
    match choice % 8 {
        0 => (
            contribution(fund, &format!("{}0000.00", 1 + amount % 90)),
            "treasurer",
        ),
        1 => (
            proposal(fund, grant, &format!("{}000.00", 1 + amount % 50)),
            "alice",
        ),
        2 => (approve(grant), "bob"),
        3 => (
            assign(
                grant,
                agency,
                &format!("{}00", 1 + amount % 30),
                amount.is_multiple_of(3),
            ),
            "alice",
        ),
        4 | 5 => (disburse(grant, agency, &cents), "treasurer"),
        6 => (expend(grant, agency, &cents), "treasurer"),
        // At most 0.99, so that a refund after a disbursement (at least 1.00) is accepted.
        _ => (
            refund(grant, agency, &format!("0.{:02}", 1 + amount % 99)),
            "treasurer",
        ),
    }
}

fn subjects() -> Vec<Subject> {
    let mut subjects: Vec<Subject> = GRANTS
        .iter()
        .map(|(grant, _)| Subject::Grant(grant.to_string()))
        .collect();
    subjects.extend(FUNDS.iter().map(|fund| Subject::Fund(fund.to_string())));
    subjects
}

fn view(model: &grantflow_engine::ReadModel, subject: &Subject) -> Option<Value> {
    match subject {
        Subject::Grant(id) => model
            .world
            .grant_view(id)
            .map(|view| serde_json::to_value(view).unwrap()),
        Subject::Fund(id) => model
            .world
            .fund_view(id)
            .map(|view| serde_json::to_value(view).unwrap()),
    }
}

async fn check(every: u64, commands: Vec<(u8, usize, u32)>) {
    let t = temp_engine().await;
    check_on(&t.engine, &t.store, every, commands).await;
    t.engine.close().await.unwrap();
}

/// [`check`] on a fresh schema of the PostgreSQL database at `url`.
async fn check_pg(url: &str, every: u64, commands: Vec<(u8, usize, u32)>) {
    on_fresh_pg_schema(url, "as_of", |store_url| async move {
        let store: std::sync::Arc<dyn grantflow_store::EventStore> = std::sync::Arc::new(
            grantflow_store_pg::PgStore::connect(&store_url)
                .await
                .expect("connect a PgStore"),
        );
        let engine = grantflow_engine::Engine::open(store.clone()).await.unwrap();
        check_on(&engine, &store, every, commands).await;
        engine.close().await.unwrap();
    })
    .await;
}

async fn check_on(
    engine: &grantflow_engine::Engine,
    store: &std::sync::Arc<dyn grantflow_store::EventStore>,
    every: u64,
    commands: Vec<(u8, usize, u32)>,
) {
    engine.use_fund_checkpoints_every(every);
    engine.keep_fund_checkpoints().await;
    for fund in FUNDS {
        accept(engine, register_fund(fund, "USD"), "treasurer").await;
    }
    for fund in FUNDS {
        accept(engine, contribution(fund, "500000.00"), "treasurer").await;
    }
    let mut stages = [0u8; GRANTS.len()];
    for (choice, grant, amount) in commands {
        let grant = grant % GRANTS.len();
        let (body, actor) = command(choice, grant, amount, stages[grant]);
        let step = body["command"].as_str().map(str::to_string);
        let outcome = submit(engine, body, actor).await;
        let advanced = matches!(
            (stages[grant], step.as_deref()),
            (0, Some("submit-proposal")) | (1, Some("approve-grant")) | (2, Some("assign-agency"))
        );
        if advanced && code(&outcome).is_none() {
            stages[grant] += 1;
        }
    }
    let head = head(store).await;
    let boundary = head / every * every;
    let waited = std::time::Instant::now();
    while engine.fund_checkpoint_stats().mark < boundary {
        assert!(
            waited.elapsed() < std::time::Duration::from_secs(20),
            "fund checkpoints reach {:?}, not the boundary {boundary}",
            engine.fund_checkpoint_stats()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let log = read_all(store.as_ref()).await;
    let mut moments: Vec<AsOf> = (0..=head + 1).map(AsOf::Position).collect();
    moments.extend(log.iter().map(|e| AsOf::Time(e.recorded_at.clone())));
    moments.push(AsOf::Time("2000-01-01T00:00:00Z".into()));
    moments.push(AsOf::Head);
    for as_of in &moments {
        let full = model_as_of(engine, as_of).await.unwrap();
        for subject in subjects() {
            let scoped = subject_as_of(engine, &subject, as_of).await.unwrap();
            assert_eq!(scoped.position, full.position, "{subject:?} {as_of:?}");
            assert_eq!(
                view(&scoped, &subject),
                view(&full, &subject),
                "{subject:?} as of {as_of:?}"
            );
            if let Subject::Grant(id) = &subject {
                assert_eq!(
                    scoped.world.grant_details(id),
                    full.world.grant_details(id),
                    "{id}'s details as of {as_of:?}"
                );
            }
        }
    }
    // Every position from the first boundary to the head's event is answered from a
    // checkpoint: two funds each.
    let stats = engine.fund_checkpoint_stats();
    assert_eq!(stats.refused, 0, "{stats:?}");
    if head > every {
        assert!(
            stats.used >= 2 * (head - every),
            "{stats:?}: fund questions from position {every} to {} not answered from checkpoints",
            head - 1
        );
    }
    // Every trail (a fund's reads its grants' streams too) equals the full fold's.
    for subject in subjects() {
        let trail = audit_trail(engine, &subject).await.unwrap();
        let mut model = ReadModel::default();
        let mut expected = Vec::new();
        let stream = subject.stream();
        for envelope in &log {
            let before = view(&model, &subject).unwrap_or(Value::Null);
            model.apply(envelope).unwrap();
            if envelope.stream == stream {
                let after = view(&model, &subject).unwrap_or(Value::Null);
                expected.push((envelope.position, before, after));
            }
        }
        let got: Vec<(u64, Value, Value)> = trail
            .into_iter()
            .map(|entry| (entry.position, entry.before, entry.after))
            .collect();
        assert_eq!(got, expected, "{subject:?}'s trail");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn a_subjects_figures_as_of_any_moment_equal_the_full_folds(
        every in 1u64..12,
        commands in proptest::collection::vec((any::<u8>(), 0usize..4, 0u32..10_000), 10..60)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check(every, commands));
    }

    #[test]
    fn on_postgres_a_subjects_figures_as_of_any_moment_equal_the_full_folds(
        every in 1u64..12,
        commands in proptest::collection::vec((any::<u8>(), 0usize..4, 0u32..10_000), 10..60)
    ) {
        let Some(url) = pg_url() else { return Ok(()) };
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check_pg(&url, every, commands));
    }
}
