//! Two engines over one store, as two grantflow servers over one PostgreSQL database: each
//! folds in what the other appended before deciding, a batch that loses the race is decided
//! again on the new state, and both read models converge on the log.

use std::sync::Arc;
use std::time::Duration;

use grantflow_engine::{audit, Engine, Submission};
use grantflow_store::{EventStore, SledStore};
use serde_json::{json, Value};

async fn submit(engine: &Engine, actor: &str, body: Value) -> Value {
    engine
        .submit(Submission::cli(body, Some(actor.to_string())))
        .await
        .expect("the engine answers")
        .to_json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_engines_on_one_store_race_for_the_last_money_and_agree() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(SledStore::open(dir.path()).expect("store"));
    let a = Engine::open(store.clone()).await.expect("engine a");
    let b = Engine::open(store.clone()).await.expect("engine b");

    // Set up through A; B must see it before deciding.
    for (actor, body) in [
        (
            "fin",
            json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"}),
        ),
        (
            "fin",
            json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1000.00", "received_on": "2020-01-01"}),
        ),
        (
            "sec",
            json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "T", "amount": "1000.00"}),
        ),
    ] {
        assert_eq!(submit(&a, actor, body).await["ok"], true);
    }
    let approved = submit(
        &b,
        "boss",
        json!({"command": "approve-grant", "grant": "G", "decided_on": "2020-01-02"}),
    )
    .await;
    assert_eq!(approved["ok"], true, "B decided on A's events: {approved}");

    // 40 agencies of 100.00 each race for 1,000.00 through both engines at once.
    let mut pending = Vec::new();
    for i in 0..40 {
        let engine = if i % 2 == 0 { &a } else { &b };
        let body = json!({"command": "assign-agency", "grant": "G", "agency": format!("A{i}"), "allocation": "100.00"});
        pending.push(
            engine
                .enqueue(Submission::cli(body, Some("sec".into())))
                .await
                .expect("queued"),
        );
    }
    let mut accepted = 0;
    for waiting in pending {
        let outcome = waiting.wait().await.expect("answered").to_json();
        if outcome["ok"] == true {
            accepted += 1;
        } else {
            assert_eq!(outcome["error"]["code"], "over_allocation", "{outcome}");
        }
    }
    assert_eq!(accepted, 10, "exactly the money there was");

    // Both read models converge on the log (B's follower folds in A's appends).
    let head = store.head().await.expect("head").position;
    for _ in 0..100 {
        if a.snapshot().position == head && b.snapshot().position == head {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ra, rb) = (a.snapshot(), b.snapshot());
    assert_eq!(ra.position, head);
    assert_eq!(rb.position, head);
    assert_eq!(ra.world, rb.world);
    let grant = ra.world.grant_view("G").expect("grant");
    assert_eq!(grant.allocated, "1000.00");
    assert_eq!(grant.agencies.len(), 10);

    let report = audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .expect("verify runs");
    assert!(report.ok(), "{report:?}");
    let (rebuilt, _) = audit::replay(store.as_ref(), &|_, _| {})
        .await
        .expect("replay");
    assert_eq!(rebuilt.world, ra.world);
}
