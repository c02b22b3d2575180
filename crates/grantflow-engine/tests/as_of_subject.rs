//! As-of questions about one grant or fund read only the streams their answer depends on:
//! for random logs over several funds and grants, and every position and recorded time, the
//! subject's figures equal those of the full fold of the log's prefix, and every audit trail
//! equals the one the full fold gives: on sled, and on PostgreSQL when
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
/// refusal appends, nothing, is part of the test too).
fn command(choice: u8, grant: usize, amount: u32) -> (Value, &'static str) {
    let (grant, fund) = GRANTS[grant % GRANTS.len()];
    let agency = AGENCIES[(amount % 2) as usize];
    let cents = format!("{}.{:02}", 1 + amount / 100, amount % 100);
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
        _ => (refund(grant, agency, &cents), "treasurer"),
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

async fn check(commands: Vec<(u8, usize, u32)>) {
    let t = temp_engine().await;
    check_on(&t.engine, &t.store, commands).await;
    t.engine.close().await.unwrap();
}

/// [`check`] on a fresh schema of the PostgreSQL database at `url`.
async fn check_pg(url: &str, commands: Vec<(u8, usize, u32)>) {
    on_fresh_pg_schema(url, "as_of", |store_url| async move {
        let store: std::sync::Arc<dyn grantflow_store::EventStore> = std::sync::Arc::new(
            grantflow_store_pg::PgStore::connect(&store_url)
                .await
                .expect("connect a PgStore"),
        );
        let engine = grantflow_engine::Engine::open(store.clone()).await.unwrap();
        check_on(&engine, &store, commands).await;
        engine.close().await.unwrap();
    })
    .await;
}

async fn check_on(
    engine: &grantflow_engine::Engine,
    store: &std::sync::Arc<dyn grantflow_store::EventStore>,
    commands: Vec<(u8, usize, u32)>,
) {
    for fund in FUNDS {
        accept(engine, register_fund(fund, "USD"), "treasurer").await;
    }
    for (choice, grant, amount) in commands {
        let (body, actor) = command(choice, grant, amount);
        submit(engine, body, actor).await;
    }
    let head = head(store).await;
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
        commands in proptest::collection::vec((any::<u8>(), 0usize..4, 0u32..10_000), 10..60)
    ) {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check(commands));
    }

    #[test]
    fn on_postgres_a_subjects_figures_as_of_any_moment_equal_the_full_folds(
        commands in proptest::collection::vec((any::<u8>(), 0usize..4, 0u32..10_000), 10..60)
    ) {
        let Some(url) = pg_url() else { return Ok(()) };
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(check_pg(&url, commands));
    }
}
