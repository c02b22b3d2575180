//! What only PostgreSQL has: several store instances (as several processes would) writing
//! one log at once, LISTEN/NOTIFY and polling, schema creation and versions, the
//! append-only events table, the documented role, and moving a log between backends.
//! Skipped (saying so) when `GRANTFLOW_TEST_POSTGRES` is not set.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{append, batch_for, command, fill, pg, read_all, run, sled_backend, Backend};
use futures::{FutureExt, StreamExt};
use grantflow_store::envelope::{chain_hash, ChainVerifier};
use grantflow_store::subscription::subscribe;
use grantflow_store::{Envelope, EventRef, EventStore, StoreError};
use grantflow_store_pg::{app_role_grants, PgOptions, PgStore, SCHEMA_VERSION};

const WAIT: Duration = Duration::from_secs(20);

/// Writers, appends per writer: several instances race for the head.
const WRITERS: usize = 4;
const APPENDS_PER_WRITER: usize = 25;

/// The commands of one writer's `i`-th append: 1 or 2 commands, each on 1 or 2 streams
/// shared with the other writers.
fn writer_commands(writer: usize, i: usize) -> Vec<grantflow_store::AppendCommand> {
    (0..1 + i % 2)
        .map(|k| {
            let shared = ["grant-S0", "grant-S1", "grant-S2"][(writer + i + k) % 3];
            let streams: &[&str] = if (i + k).is_multiple_of(3) {
                &[shared, "fund-F"]
            } else {
                &[shared]
            };
            command(&format!("w{writer}-a{i}-c{k}"), streams)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_instances_stay_gapless_and_exactly_once() {
    run(pg(), |pg| async move {
        let url = pg.url_for(&pg.new_schema());
        let mut writers = Vec::new();
        for _ in 0..WRITERS {
            writers.push(Arc::new(PgStore::connect(&url).await.unwrap()));
        }
        let observer: Arc<dyn EventStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        let reader: Arc<dyn EventStore> = Arc::new(PgStore::connect(&url).await.unwrap());
        let total: usize = (0..WRITERS)
            .flat_map(|w| (0..APPENDS_PER_WRITER).map(move |i| (w, i)))
            .map(|(w, i)| {
                writer_commands(w, i)
                    .iter()
                    .map(|c| c.events.len())
                    .sum::<usize>()
            })
            .sum();

        // A subscriber on an instance that never appends: woken by other instances only.
        let subscriber = {
            let observer = Arc::clone(&observer);
            tokio::spawn(async move {
                let mut events = subscribe(observer, 1, None);
                let mut positions = Vec::with_capacity(total);
                while positions.len() < total {
                    let envelope = tokio::time::timeout(WAIT, events.next())
                        .await
                        .expect("an event in time")
                        .expect("the stream goes on")
                        .unwrap();
                    positions.push(envelope.position);
                }
                let extra = tokio::time::timeout(Duration::from_millis(300), events.next()).await;
                assert!(extra.is_err(), "unexpected {extra:?}");
                positions
            })
        };
        // A reader that keeps checking that what it reads is a gapless, verified prefix.
        let prefix_reader = {
            let reader = Arc::clone(&reader);
            tokio::spawn(async move {
                let mut verifier = ChainVerifier::new();
                let mut reads = 0;
                while (verifier.head().0 as usize) < total {
                    let from = verifier.head().0 + 1;
                    for e in reader.read(from, 50).await.unwrap() {
                        verifier.check(&e).unwrap();
                    }
                    reads += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                reads
            })
        };
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (w, store) in writers.iter().enumerate() {
            let store = Arc::clone(store);
            tasks.push(tokio::spawn(async move {
                let mut acknowledged: Vec<(String, Vec<EventRef>)> = Vec::new();
                let mut conflicts = 0;
                for i in 0..APPENDS_PER_WRITER {
                    let commands = writer_commands(w, i);
                    loop {
                        let batch = batch_for(store.as_ref(), commands.clone()).await;
                        match store.append(batch).await {
                            Ok(refs) => {
                                for (command, refs) in commands.iter().zip(refs) {
                                    acknowledged.push((command.command_id.clone(), refs));
                                }
                                break;
                            }
                            Err(StoreError::Conflict(_)) => {
                                conflicts += 1;
                                tokio::time::sleep(Duration::from_micros(
                                    (conflicts * 37 % 900) as u64,
                                ))
                                .await;
                            }
                            Err(other) => panic!("writer {w}: {other}"),
                        }
                    }
                }
                (acknowledged, conflicts)
            }));
        }
        let mut acknowledged = Vec::new();
        let mut conflicts = 0;
        for task in tasks {
            let (acks, c) = task.await.unwrap();
            acknowledged.extend(acks);
            conflicts += c;
        }
        let positions = subscriber.await.unwrap();
        let reads = prefix_reader.await.unwrap();
        eprintln!(
            "{WRITERS} instances appended {total} events in {:?} ({conflicts} conflicts \
             retried, the reader checked {reads} pages)",
            started.elapsed()
        );

        // The subscriber saw every position exactly once, in order.
        assert_eq!(positions, (1..=total as u64).collect::<Vec<_>>());
        // The log, read through yet another instance: gapless, verified, every acknowledged
        // command present exactly once, where it was acknowledged.
        let fresh = PgStore::connect(&url).await.unwrap();
        let events = read_all(&fresh).await;
        assert_eq!(events.len(), total);
        let mut verifier = ChainVerifier::new();
        for e in &events {
            verifier.check(e).unwrap();
        }
        let head = fresh.head().await.unwrap();
        assert_eq!((head.position, head.hash), verifier.head());
        let mut per_command: HashMap<&str, Vec<&Envelope>> = HashMap::new();
        for e in &events {
            per_command
                .entry(e.command_id.as_str())
                .or_default()
                .push(e);
        }
        assert_eq!(acknowledged.len(), per_command.len());
        for (command_id, refs) in &acknowledged {
            let stored = &per_command[command_id.as_str()];
            assert_eq!(stored.len(), refs.len(), "{command_id}");
            for (e, r) in stored.iter().zip(refs) {
                assert_eq!(
                    (e.position, &e.stream, e.version),
                    (r.position, &r.stream, r.version)
                );
            }
            let record = fresh.command(command_id).await.unwrap().unwrap();
            assert_eq!(&record.events, refs);
        }
        for stream in ["grant-S0", "grant-S1", "grant-S2", "fund-F"] {
            let by_stream = fresh.read_stream(stream, 1, total).await.unwrap();
            for (i, e) in by_stream.iter().enumerate() {
                assert_eq!(e.version, i as u64 + 1);
            }
            assert_eq!(
                fresh.stream_version(stream).await.unwrap(),
                by_stream.len() as u64
            );
        }
    })
    .await;
}

type AppendTask = tokio::task::JoinHandle<Result<Vec<Vec<EventRef>>, StoreError>>;

/// `store` appends one command on `grant-R`, decided on its head now, on a task of its own.
async fn append_on_grant_r(store: &Arc<PgStore>, command_id: &str) -> AppendTask {
    let batch = batch_for(store.as_ref(), vec![command(command_id, &["grant-R"])]).await;
    let store = Arc::clone(store);
    tokio::spawn(async move { store.append(batch).await })
}

/// Where the one event of a finished `append_on_grant_r` landed.
async fn landed(task: AppendTask) -> u64 {
    let refs = tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    refs[0][0].position
}

/// Whether `task` is still running after `wait` (it is blocked, say on the head row).
async fn still_waiting<T>(task: &tokio::task::JoinHandle<T>, wait: Duration) -> bool {
    tokio::time::sleep(wait).await;
    !task.is_finished()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_other_writers_until_its_append() {
    run(pg(), |pg| async move {
        let url = pg.url_for(&pg.new_schema());
        let a = Arc::new(PgStore::connect(&url).await.unwrap());
        let b = Arc::new(PgStore::connect(&url).await.unwrap());
        fill(a.as_ref(), 2).await;
        let h = a.head().await.unwrap().position;

        // a reserves (holding head h); b decides on head h and its append waits for a's.
        let held = a
            .reserve_head()
            .await
            .unwrap()
            .expect("PostgreSQL reserves");
        assert_eq!(held, a.head().await.unwrap());
        assert_eq!(held.position, h);
        let a_batch = batch_for(a.as_ref(), vec![command("a-1", &["grant-R"])]).await;
        let b_append = append_on_grant_r(&b, "b-1").await;
        assert!(
            still_waiting(&b_append, Duration::from_millis(400)).await,
            "another writer appended past a reservation"
        );
        let refs = a.append(a_batch).await.unwrap();
        assert_eq!(refs[0][0].position, h + 1);
        let refused = tokio::time::timeout(WAIT, b_append).await.unwrap().unwrap();
        assert!(
            matches!(refused, Err(StoreError::Conflict(_))),
            "{refused:?}"
        );

        // An append with no commands only gives the reservation up.
        assert_eq!(
            a.reserve_head().await.unwrap().map(|held| held.position),
            Some(a.head().await.unwrap().position)
        );
        let b_append = append_on_grant_r(&b, "b-2").await;
        assert!(still_waiting(&b_append, Duration::from_millis(400)).await);
        let release = batch_for(a.as_ref(), Vec::new()).await;
        assert!(a.append(release).await.unwrap().is_empty());
        assert_eq!(landed(b_append).await, h + 2);

        // Closing the store gives an unused reservation up too.
        assert_eq!(
            a.reserve_head().await.unwrap().map(|held| held.position),
            Some(a.head().await.unwrap().position)
        );
        let b_append = append_on_grant_r(&b, "b-3").await;
        assert!(still_waiting(&b_append, Duration::from_millis(400)).await);
        a.close().await.unwrap();
        assert_eq!(landed(b_append).await, h + 3);
        assert_eq!(read_all(b.as_ref()).await.len() as u64, h + 3);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_is_woken_by_notify() {
    run(pg(), |pg| async move {
        let url = pg.url_for(&pg.new_schema());
        let writer = PgStore::connect(&url).await.unwrap();
        // Polling once an hour: only a notification can wake this one in time.
        let options = PgOptions {
            poll_interval: Duration::from_secs(3600),
            ..PgOptions::default()
        };
        let watcher = PgStore::connect_with(&url, options).await.unwrap();
        let mut head = watcher.watch_head();
        // Warm-up: the listener reads the head once right after its LISTEN, so seeing this
        // first event proves the LISTEN is in place (whichever path delivered it).
        fill(&writer, 1).await;
        tokio::time::timeout(Duration::from_secs(10), head.wait_for(|p| *p >= 1))
            .await
            .expect("the listener is up")
            .unwrap();
        head.borrow_and_update();
        for expected in 2..=4u64 {
            let started = Instant::now();
            fill(&writer, 1).await;
            tokio::time::timeout(Duration::from_secs(5), head.changed())
                .await
                .expect("woken by NOTIFY")
                .unwrap();
            assert_eq!(*head.borrow_and_update(), expected);
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    })
    .await;
}

/// Two instances append in turn: each holds in memory only the groups it committed, and a
/// read across the other's groups must come from the log, not stitch its own runs together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_read_each_others_groups_from_the_log() {
    run(pg(), |pg| async move {
        let url = pg.url_for(&pg.new_schema());
        let a = PgStore::connect(&url).await.unwrap();
        let b = PgStore::connect(&url).await.unwrap();
        for round in 0..6 {
            let writer = if round % 2 == 0 { &a } else { &b };
            fill(writer, 5 + round).await;
        }
        // Make sure both have seen the whole log's head.
        let head = a.head().await.unwrap().position;
        assert_eq!(b.head().await.unwrap().position, head);
        let fresh = PgStore::connect(&url).await.unwrap();
        for from in 1..=head + 1 {
            for limit in [1, 4, 9, 100] {
                let want = fresh.read(from, limit).await.unwrap();
                assert_eq!(
                    a.read(from, limit).await.unwrap(),
                    want,
                    "a: {from}, {limit}"
                );
                assert_eq!(
                    b.read(from, limit).await.unwrap(),
                    want,
                    "b: {from}, {limit}"
                );
            }
        }
        for store in [a, b, fresh] {
            store.close().await.unwrap();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_catches_a_writer_that_does_not_notify() {
    run(pg(), |pg| async move {
        let schema = pg.new_schema();
        let url = pg.url_for(&schema);
        let store = PgStore::connect(&url).await.unwrap();
        fill(&store, 2).await;
        let options = PgOptions {
            poll_interval: Duration::from_millis(100),
            ..PgOptions::default()
        };
        let watcher: Arc<dyn EventStore> =
            Arc::new(PgStore::connect_with(&url, options).await.unwrap());
        let mut events = subscribe(Arc::clone(&watcher), 1, None);
        for position in 1..=2 {
            let e = tokio::time::timeout(WAIT, events.next()).await.unwrap();
            assert_eq!(e.unwrap().unwrap().position, position);
        }
        // A writer that follows the protocol (head row locked) but sends no NOTIFY.
        let head = store.head().await.unwrap();
        let mut envelope = Envelope {
            position: 3,
            stream: "grant-A".to_string(),
            version: store.stream_version("grant-A").await.unwrap() + 1,
            event_type: "grant.tested".to_string(),
            schema: 1,
            recorded_at: std::cmp::max(grantflow_store::now_rfc3339(), head.recorded_at),
            actor: "bob".to_string(),
            command_id: "silent".to_string(),
            correlation_id: "silent".to_string(),
            payload: "{\"n\":3}".to_string(),
            prev_hash: head.hash,
            hash: [0; 32],
        };
        let canonical = envelope.canonical_bytes();
        envelope.hash = chain_hash(&head.hash, &canonical);
        let mut admin = pg.admin().await;
        let tx = admin.transaction().await.unwrap();
        tx.query_one(
            &format!("SELECT position FROM \"{schema}\".head FOR UPDATE"),
            &[],
        )
        .await
        .unwrap();
        tx.execute(
            &format!(
                "INSERT INTO \"{schema}\".events (position, stream, version, event_type, \
                 command_id, recorded_at, canonical, hash) VALUES (3, $1, $2, $3, $4, $5, $6, $7)"
            ),
            &[
                &envelope.stream,
                &(envelope.version as i64),
                &envelope.event_type,
                &envelope.command_id,
                &envelope.recorded_at,
                &canonical,
                &&envelope.hash[..],
            ],
        )
        .await
        .unwrap();
        tx.execute(
            &format!("UPDATE \"{schema}\".head SET position = 3, hash = $1, recorded_at = $2"),
            &[&&envelope.hash[..], &envelope.recorded_at],
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let e = tokio::time::timeout(WAIT, events.next())
            .await
            .expect("found by polling")
            .unwrap()
            .unwrap();
        assert_eq!(e, envelope);
        assert_eq!(e.to_line(), envelope.to_line());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_log_between_sled_and_postgres() {
    run(pg(), |pg| async move {
        let sled = sled_backend().await.unwrap();
        let outcome = AssertUnwindSafe(async {
            let (source, _) = sled.create().await;
            fill(source.as_ref(), 300).await;
            append(
                source.as_ref(),
                vec![command("multi", &["grant-A", "grant-Q", "fund-F"])],
            )
            .await;
            let exported: Vec<String> = read_all(source.as_ref())
                .await
                .iter()
                .map(Envelope::to_line)
                .collect();
            let parsed: Vec<Envelope> = exported
                .iter()
                .map(|line| Envelope::from_line(line).unwrap())
                .collect();

            let (postgres, _) = Backend::create(pg.as_ref()).await;
            postgres.import(parsed).await.unwrap();
            assert_eq!(postgres.head().await.unwrap(), source.head().await.unwrap());
            let from_postgres = read_all(postgres.as_ref()).await;
            let lines: Vec<String> = from_postgres.iter().map(Envelope::to_line).collect();
            assert_eq!(lines, exported);
            assert_eq!(
                postgres.command("multi").await.unwrap().unwrap().events,
                source.command("multi").await.unwrap().unwrap().events
            );

            // Appended on PostgreSQL, then back to sled.
            fill(postgres.as_ref(), 5).await;
            let (back, _) = sled.create().await;
            let events = read_all(postgres.as_ref()).await;
            back.import(events.clone()).await.unwrap();
            assert_eq!(back.head().await.unwrap(), postgres.head().await.unwrap());
            assert_eq!(read_all(back.as_ref()).await, events);
        })
        .catch_unwind()
        .await;
        sled.cleanup().await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_version_is_refused() {
    run(pg(), |pg| async move {
        let (store, schema) = pg.create_pg().await;
        fill(&store, 2).await;
        let admin = pg.admin().await;
        admin
            .batch_execute(&format!(
                "UPDATE \"{schema}\".grantflow_schema_version SET version = 999"
            ))
            .await
            .unwrap();
        match PgStore::connect(&pg.url_for(&schema)).await {
            Err(StoreError::NewerFormat {
                found, supported, ..
            }) => {
                assert_eq!(found, 999);
                assert_eq!(supported, SCHEMA_VERSION as u32);
            }
            other => panic!("expected NewerFormat, got {other:?}"),
        }
        // The same version connects; the recorded version is this build's.
        admin
            .batch_execute(&format!(
                "UPDATE \"{schema}\".grantflow_schema_version SET version = {SCHEMA_VERSION}"
            ))
            .await
            .unwrap();
        let again = PgStore::connect(&pg.url_for(&schema)).await.unwrap();
        assert_eq!(again.head().await.unwrap().position, 2);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_schema_is_not_a_store() {
    run(pg(), |pg| async move {
        let schema = pg.new_schema();
        let admin = pg.admin().await;
        admin
            .batch_execute(&format!(
                "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".invoices (id int)"
            ))
            .await
            .unwrap();
        match PgStore::connect(&pg.url_for(&schema)).await {
            Err(StoreError::NotAStore { detail, .. }) => {
                assert!(detail.contains("grantflow_schema_version"), "{detail}")
            }
            other => panic!("expected NotAStore, got {other:?}"),
        }
        let tables: i64 = admin
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
                &[&schema],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 1, "nothing was created in a foreign schema");
        // An empty existing schema is taken over.
        let empty = pg.new_schema();
        admin
            .batch_execute(&format!("CREATE SCHEMA \"{empty}\""))
            .await
            .unwrap();
        let store = PgStore::connect(&pg.url_for(&empty)).await.unwrap();
        fill(&store, 1).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_from_options_and_concurrent_first_connects() {
    run(pg(), |pg| async move {
        let schema = pg.new_schema();
        let separator = if pg.url.contains('?') { '&' } else { '?' };
        let url = format!("{}{separator}options=-csearch_path%3D{schema}", pg.url);
        // Several processes starting at once on a new schema: it is created once.
        let connects = (0..4).map(|_| PgStore::connect(&url));
        let stores: Vec<PgStore> = futures::future::join_all(connects)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        for store in &stores {
            assert_eq!(store.schema(), schema);
        }
        fill(&stores[0], 3).await;
        assert_eq!(stores[3].head().await.unwrap().position, 3);
        let admin = pg.admin().await;
        let version: i32 = admin
            .query_one(
                &format!("SELECT version FROM \"{schema}\".grantflow_schema_version"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        assert!(
            PgStore::connect(&format!("{}{separator}schema=Bad-Name", pg.url))
                .await
                .is_err()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_append_only_and_head_is_checked() {
    run(pg(), |pg| async move {
        let (store, schema) = pg.create_pg().await;
        fill(&store, 3).await;
        let admin = pg.admin().await;
        for statement in [
            format!("UPDATE \"{schema}\".events SET stream = 'x'"),
            format!("DELETE FROM \"{schema}\".events WHERE position = 3"),
            format!("TRUNCATE \"{schema}\".events"),
        ] {
            let error = admin.batch_execute(&statement).await.unwrap_err();
            let message = error.as_db_error().unwrap().message().to_string();
            assert!(message.contains("append-only"), "{statement}: {message}");
        }
        assert_eq!(read_all(&store).await.len(), 3);
        // A head row that disagrees with the log is reported, not built upon.
        admin
            .batch_execute(&format!(
                "UPDATE \"{schema}\".head SET position = position + 1"
            ))
            .await
            .unwrap();
        match PgStore::connect(&pg.url_for(&schema)).await {
            Err(StoreError::Corrupt { position, .. }) => assert_eq!(position, 4),
            other => panic!("expected Corrupt, got {other:?}"),
        }
    })
    .await;
}

/// `url` with its user replaced by `role` (URLs of the form `postgres://[user@]host/...`).
fn url_as(url: &str, role: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let rest = match rest.split_once('@') {
        Some((user, host)) if !user.contains('/') => host,
        _ => rest,
    };
    format!("{scheme}://{role}@{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_role_is_enough_and_cannot_change_events() {
    run(pg(), |pg| async move {
        let (owner, schema) = pg.create_pg().await;
        fill(&owner, 2).await;
        let role = format!("gf_app_{}", &schema["gf_test_".len()..]);
        let admin = pg.admin().await;
        admin
            .batch_execute(&format!("CREATE ROLE \"{role}\" LOGIN"))
            .await
            .unwrap();
        let outcome = AssertUnwindSafe(async {
            admin
                .batch_execute(&app_role_grants(&schema, &role))
                .await
                .unwrap();
            let app_url = url_as(&pg.url_for(&schema), &role);
            let app = PgStore::connect(&app_url).await.unwrap();
            fill(&app, 3).await;
            append(&app, vec![command("multi", &["grant-A", "fund-F"])]).await;
            let events = read_all(&app).await;
            assert_eq!(events.len(), 7);
            assert!(app.command("multi").await.unwrap().is_some());
            // Snapshots are the owner's: the application role reads them and cannot plant
            // one (its save is skipped, not an error: a server's close still succeeds).
            owner
                .save_snapshot("grants", 7, b"the owner's".to_vec())
                .await
                .unwrap();
            app.save_snapshot("grants", 7, b"planted".to_vec())
                .await
                .unwrap();
            assert_eq!(
                app.load_snapshot("grants").await.unwrap(),
                Some((7, b"the owner's".to_vec()))
            );
            assert_eq!(owner.head().await.unwrap(), app.head().await.unwrap());
            // Import into another schema, as the same role.
            let (_target_owner, target_schema) = pg.create_pg().await;
            admin
                .batch_execute(&app_role_grants(&target_schema, &role))
                .await
                .unwrap();
            let app_target = PgStore::connect(&url_as(&pg.url_for(&target_schema), &role))
                .await
                .unwrap();
            app_target.import(events.clone()).await.unwrap();
            assert_eq!(app_target.head().await.unwrap(), app.head().await.unwrap());
            assert_eq!(read_all(&app_target).await, events);
            drop(app_target);

            let (client, connection) =
                tokio_postgres::connect(&url_as(&pg.url, &role), tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            for statement in [
                format!("UPDATE \"{schema}\".events SET stream = 'x'"),
                format!("DELETE FROM \"{schema}\".events"),
                format!("TRUNCATE \"{schema}\".events"),
                format!("DELETE FROM \"{schema}\".commands"),
                format!("UPDATE \"{schema}\".snapshots SET bytes = 'x'"),
                format!(
                    "INSERT INTO \"{schema}\".snapshots (name, position, bytes) \
                     VALUES ('forged', 1, 'x')"
                ),
                format!("DELETE FROM \"{schema}\".snapshots"),
                format!("CREATE TABLE \"{schema}\".mine (id int)"),
            ] {
                let error = client.batch_execute(&statement).await.unwrap_err();
                let code = error.code().unwrap().clone();
                assert_eq!(
                    code,
                    tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE,
                    "{statement}"
                );
            }
            // The webhooks' tables: subscriptions added, moved, enabled and removed, their
            // attempts recorded and trimmed (the log's tables stay append-only).
            client
                .batch_execute(&format!(
                    "INSERT INTO \"{schema}\".webhooks (id, url, types, secret, start_after, \
                     cursor, created_at) VALUES ('0a1b2c3d', 'http://h/', ARRAY['grant.*'], \
                     'whsec_AAAA', 0, 0, 'now'); \
                     INSERT INTO \"{schema}\".webhook_attempts (webhook, position, attempt, \
                     status, duration_ms, at) VALUES ('0a1b2c3d', 1, 1, 204, 3, 'now'); \
                     UPDATE \"{schema}\".webhooks SET cursor = 1, failures = 0; \
                     DELETE FROM \"{schema}\".webhook_attempts; \
                     DELETE FROM \"{schema}\".webhooks"
                ))
                .await
                .unwrap();
            drop(app);
        })
        .catch_unwind()
        .await;
        admin
            .batch_execute(&format!("DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""))
            .await
            .unwrap();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_snapshot_row_is_refused_by_its_checksum() {
    run(pg(), |pg| async move {
        let (store, schema) = pg.create_pg().await;
        fill(&store, 2).await;
        store
            .save_snapshot("world", 2, b"{\"received\":1000}".to_vec())
            .await
            .unwrap();
        let admin = pg.admin().await;
        // Figures edited in place, as someone with the owner's rights but not grantflow's
        // code would: the checksum no longer matches.
        admin
            .batch_execute(&format!(
                "UPDATE \"{schema}\".snapshots SET bytes = '{{\"received\":9000}}'::bytea"
            ))
            .await
            .unwrap();
        match store.load_snapshot("world").await {
            Err(StoreError::Corrupt { detail, .. }) => {
                assert!(detail.contains("checksum"), "{detail}")
            }
            other => panic!("an edited snapshot was served: {other:?}"),
        }
        // A row with no checksum at all is refused alike.
        admin
            .batch_execute(&format!(
                "UPDATE \"{schema}\".snapshots SET checksum = NULL"
            ))
            .await
            .unwrap();
        assert!(matches!(
            store.load_snapshot("world").await,
            Err(StoreError::Corrupt { .. })
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_schema_is_migrated_and_its_unchecked_snapshot_dropped() {
    run(pg(), |pg| async move {
        let (store, schema) = pg.create_pg().await;
        fill(&store, 2).await;
        drop(store);
        let admin = pg.admin().await;
        // Back to version 1's shape: no checksum column, an unchecked snapshot, no webhook
        // tables (version 3's), no checkpoint tables (version 4's).
        admin
            .batch_execute(&format!(
                "DROP TABLE \"{schema}\".checkpoints; \
                 DROP TABLE \"{schema}\".checkpoint_marks; \
                 DROP TABLE \"{schema}\".webhook_attempts; \
                 DROP TABLE \"{schema}\".webhooks; \
                 ALTER TABLE \"{schema}\".snapshots DROP COLUMN checksum; \
                 INSERT INTO \"{schema}\".snapshots (name, position, bytes) \
                 VALUES ('world', 2, 'forged'::bytea); \
                 UPDATE \"{schema}\".grantflow_schema_version SET version = 1"
            ))
            .await
            .unwrap();
        let store = PgStore::connect(&pg.url_for(&schema)).await.unwrap();
        assert_eq!(store.load_snapshot("world").await.unwrap(), None);
        assert_eq!(store.head().await.unwrap().position, 2);
        let version: i32 = admin
            .query_one(
                &format!("SELECT version FROM \"{schema}\".grantflow_schema_version"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let webhooks: i64 = admin
            .query_one(&format!("SELECT count(*) FROM \"{schema}\".webhooks"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            webhooks, 0,
            "version 3's tables are created by the migration"
        );
        assert_eq!(
            store.checkpoint_mark("funds.8192").await.unwrap(),
            0,
            "version 4's tables are created by the migration"
        );
        store
            .save_snapshot("world", 2, b"checked".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.load_snapshot("world").await.unwrap(),
            Some((2, b"checked".to_vec()))
        );
    })
    .await;
}
