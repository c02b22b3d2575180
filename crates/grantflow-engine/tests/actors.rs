//! Who issues a command: the HTTP actor is fixed and a body may not name one, the command
//! line needs one from somewhere, and the four-eyes rule compares resolved actors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use common::*;
use grantflow_engine::{ActorSource, Submission};
use serde_json::json;

async fn funded(t: &TestEngine) {
    accept(&t.engine, register_fund("F", "USD"), "treasurer").await;
    accept(&t.engine, contribution("F", "100000"), "treasurer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_actor_rejects_a_body_naming_one() {
    let t = temp_engine().await;
    funded(&t).await;
    let before = head(&t.store).await;
    let mut body = with_id(proposal("F", "G", "100"), "http-1");
    body["actor"] = json!("mallory");
    let outcome = t
        .engine
        .submit(Submission {
            body: body.clone(),
            actor: ActorSource::Fixed("alice".into()),
        })
        .await
        .unwrap();
    assert_eq!(
        outcome.code(),
        Some("malformed_command"),
        "{}",
        outcome.to_json()
    );
    assert!(outcome.to_json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("actor"));
    assert_eq!(head(&t.store).await, before);
    // Even when the body names the token's own actor.
    body["actor"] = json!("alice");
    let outcome = t
        .engine
        .submit(Submission {
            body: body.clone(),
            actor: ActorSource::Fixed("alice".into()),
        })
        .await
        .unwrap();
    assert_eq!(outcome.code(), Some("malformed_command"));
    assert_eq!(head(&t.store).await, before);
    // Without one, the token's actor is recorded.
    body.as_object_mut().unwrap().remove("actor");
    let outcome = t
        .engine
        .submit(Submission {
            body,
            actor: ActorSource::Fixed("alice".into()),
        })
        .await
        .unwrap();
    let refs = events(&outcome);
    let log = read_all(t.store.as_ref()).await;
    check_refs(&log, "http-1", "alice", &refs).unwrap();
    t.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_needs_an_actor() {
    let t = temp_engine().await;
    funded(&t).await;
    let before = head(&t.store).await;
    let body = proposal("F", "G", "100");
    let outcome = t
        .engine
        .submit(Submission::cli(body.clone(), None))
        .await
        .unwrap();
    assert_eq!(
        outcome.code(),
        Some("malformed_command"),
        "{}",
        outcome.to_json()
    );
    // A blank default actor is no actor.
    let outcome = t
        .engine
        .submit(Submission::cli(body.clone(), Some("   ".into())))
        .await
        .unwrap();
    assert_eq!(
        outcome.code(),
        Some("malformed_command"),
        "{}",
        outcome.to_json()
    );
    let outcome = t
        .engine
        .submit(Submission::cli(body.clone(), Some("ali\nce".into())))
        .await
        .unwrap();
    assert_eq!(
        outcome.code(),
        Some("malformed_command"),
        "{}",
        outcome.to_json()
    );
    assert_eq!(head(&t.store).await, before);
    // The body's actor wins over the default one.
    let mut named = with_id(body, "named");
    named["actor"] = json!("carol");
    let refs = events(
        &t.engine
            .submit(Submission::cli(named, Some("dave".into())))
            .await
            .unwrap(),
    );
    let log = read_all(t.store.as_ref()).await;
    check_refs(&log, "named", "carol", &refs).unwrap();
    let grant = t.engine.snapshot().world.grant_details("G").unwrap();
    assert_eq!(grant.submitted_by, "carol");
    t.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_compares_resolved_actors() {
    let t = temp_engine().await;
    funded(&t).await;
    accept(&t.engine, proposal("F", "G", "1000"), "alice").await;
    let before = head(&t.store).await;
    let outcome = submit(&t.engine, approve("G"), "alice").await;
    assert_eq!(
        outcome.code(),
        Some("four_eyes_violation"),
        "{}",
        outcome.to_json()
    );
    // The body's actor counts, whatever the default.
    let mut body = approve("G");
    body["actor"] = json!("alice");
    let outcome = submit(&t.engine, body, "bob").await;
    assert_eq!(outcome.code(), Some("four_eyes_violation"));
    // So does a fixed (HTTP) actor.
    let outcome = t
        .engine
        .submit(Submission {
            body: approve("G"),
            actor: ActorSource::Fixed("alice".into()),
        })
        .await
        .unwrap();
    assert_eq!(outcome.code(), Some("four_eyes_violation"));
    assert_eq!(head(&t.store).await, before);
    accept(&t.engine, approve("G"), "bob").await;
    // Revising the grant is also barred to its submitter.
    let before = head(&t.store).await;
    let outcome = submit(&t.engine, revise_grant("G", "900"), "alice").await;
    assert_eq!(outcome.code(), Some("four_eyes_violation"));
    assert_eq!(head(&t.store).await, before);
    accept(&t.engine, revise_grant("G", "900"), "carol").await;
    assert_eq!(
        t.engine.snapshot().world.grant_view("G").unwrap().amount,
        "900.00"
    );
    t.engine.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_is_part_of_a_command_ids_body() {
    let t = temp_engine().await;
    funded(&t).await;
    let body = with_id(contribution("F", "10"), "c-1");
    let refs = accept(&t.engine, body.clone(), "alice").await;
    let before = head(&t.store).await;
    // Same JSON, another actor: another body.
    let outcome = submit(&t.engine, body.clone(), "bob").await;
    assert_eq!(outcome.code(), Some("command_id_conflict"));
    // The same actor given in the body instead of by default: the same body.
    let mut explicit = body.clone();
    explicit["actor"] = json!("alice");
    let outcome = submit(&t.engine, explicit, "zed").await;
    assert!(replayed(&outcome), "{}", outcome.to_json());
    assert_eq!(events(&outcome), refs);
    // Key order does not matter: equal JSON values.
    let reordered = json!({"received_on": "2012-09-01", "amount": "10", "donor": "JPN",
                           "fund": "F", "command_id": "c-1", "command": "record-contribution"});
    let outcome = submit(&t.engine, reordered, "alice").await;
    assert!(replayed(&outcome), "{}", outcome.to_json());
    assert_eq!(head(&t.store).await, before);
    t.engine.close().await.unwrap();
}
