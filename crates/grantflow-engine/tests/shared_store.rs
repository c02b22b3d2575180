//! Two engines over one store, as two grantflow servers over one PostgreSQL database: each
//! folds in what the other appended before deciding, with the append point held, so that no
//! batch loses the race; a batch refused anyway (its reservation lost) is decided again on
//! the new state; and both read models converge on the log.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use grantflow_engine::{audit, Engine, Submission};
use grantflow_store::forward::{Forward, Layer};
use grantflow_store::{AppendBatch, EventRef, EventStore, Head, StoreError};
use grantflow_store_sled::SledStore;
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

/// A store shared with a rival process: the rival lands a command before every reservation
/// of the engine under test is granted (as another server's append does while this one waits
/// for the head row), and before every append that is not reserved, which is then refused
/// as a conflict. `lose` reservations are lost (as one the server ended after its idle
/// timeout): the rival appends past them too.
struct Contended {
    rival: Engine,
    rival_commands: std::sync::atomic::AtomicU64,
    reserved: std::sync::atomic::AtomicBool,
    reservations: std::sync::atomic::AtomicU64,
    lose: std::sync::atomic::AtomicU64,
    refused: std::sync::atomic::AtomicU64,
}

impl Contended {
    fn new(rival: Engine, lose: u64) -> Contended {
        Contended {
            rival,
            rival_commands: std::sync::atomic::AtomicU64::new(0),
            reserved: std::sync::atomic::AtomicBool::new(false),
            reservations: std::sync::atomic::AtomicU64::new(0),
            lose: std::sync::atomic::AtomicU64::new(lose),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    async fn rival_appends(&self) {
        let n = self.rival_commands.fetch_add(1, Ordering::SeqCst);
        let body = json!({"command": "record-contribution", "fund": "F", "donor": format!("R{n}"), "amount": "1.00", "received_on": "2020-01-01"});
        assert_eq!(submit(&self.rival, "fin", body).await["ok"], true);
    }
}

#[async_trait::async_trait]
impl Layer for Contended {
    async fn append(
        &self,
        inner: &dyn EventStore,
        batch: AppendBatch,
    ) -> Result<Vec<Vec<EventRef>>, StoreError> {
        let reserved = self.reserved.swap(false, Ordering::SeqCst);
        let lost = reserved
            && self
                .lose
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if !reserved || lost {
            self.rival_appends().await;
        }
        let result = inner.append(batch).await;
        if matches!(result, Err(StoreError::Conflict(_))) {
            self.refused.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn reserve_head(&self, inner: &dyn EventStore) -> Result<Option<Head>, StoreError> {
        self.rival_appends().await;
        self.reservations.fetch_add(1, Ordering::SeqCst);
        self.reserved.store(true, Ordering::SeqCst);
        Ok(Some(inner.head().await?))
    }

    fn exclusive(&self, _inner: &dyn EventStore) -> bool {
        // Another process appends too.
        false
    }

    async fn close(&self, _inner: &dyn EventStore) -> Result<(), StoreError> {
        // The rival keeps the store.
        Ok(())
    }
}

/// A store whose rival has registered fund F, seen by an engine through [`Contended`].
async fn contended(
    dir: &std::path::Path,
    lose: u64,
) -> (Arc<dyn EventStore>, Arc<Forward<Contended>>, Engine) {
    let inner: Arc<dyn EventStore> = Arc::new(SledStore::open(dir).expect("store"));
    let rival = Engine::open(inner.clone()).await.expect("rival");
    let body = json!({"command": "register-fund", "fund": "F", "name": "F", "currency": "USD"});
    assert_eq!(submit(&rival, "fin", body).await["ok"], true);
    let contended = Arc::new(Forward::new(inner.clone(), Contended::new(rival, lose)));
    let engine = Engine::open(contended.clone()).await.expect("engine");
    (inner, contended, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_on_a_shared_store_decides_with_the_append_point_held_and_never_loses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inner, contended, engine) = contended(dir.path(), 0).await;
    for i in 0..3u64 {
        let body = json!({"command": "record-contribution", "fund": "F", "donor": format!("D{i}"), "amount": "10.00", "received_on": "2020-01-02"});
        let outcome = submit(&engine, "fin", body).await;
        assert_eq!(outcome["ok"], true, "{outcome}");
        // The rival's command landed while the reservation waited; this one after it, with
        // the fund's version the rival's left.
        assert_eq!(outcome["events"][0]["position"], 3 + 2 * i, "{outcome}");
        assert_eq!(outcome["events"][0]["version"], 3 + 2 * i, "{outcome}");
    }
    let layer = contended.layer();
    assert_eq!(
        layer.refused.load(Ordering::SeqCst),
        0,
        "no append was refused"
    );
    assert_eq!(
        layer.reservations.load(Ordering::SeqCst),
        3,
        "one per batch"
    );
    assert_eq!(engine.stats().conflicts, 0);
    // The engine's world holds the rival's contributions and its own.
    let head = inner.head().await.expect("head").position;
    assert_eq!(head, 7);
    assert_eq!(engine.snapshot().position, head);
    let (rebuilt, _) = audit::replay(inner.as_ref(), &|_, _| {})
        .await
        .expect("replay");
    assert_eq!(rebuilt.world, engine.snapshot().world);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_reservation_was_lost_is_refused_and_decided_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (inner, contended, engine) = contended(dir.path(), 1).await;
    let body = json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "10.00", "received_on": "2020-01-02"});
    let outcome = submit(&engine, "fin", body).await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    // Reserved (rival 2), lost (rival 3), refused; reserved again (rival 4), appended.
    assert_eq!(outcome["events"][0]["position"], 5, "{outcome}");
    let layer = contended.layer();
    assert_eq!(layer.refused.load(Ordering::SeqCst), 1);
    assert_eq!(layer.reservations.load(Ordering::SeqCst), 2);
    assert_eq!(engine.stats().conflicts, 1);
    let (rebuilt, _) = audit::replay(inner.as_ref(), &|_, _| {})
        .await
        .expect("replay");
    assert_eq!(rebuilt.world, engine.snapshot().world);
}
