//! "What did we know": the read model as of a log position equals a fold of the log's
//! prefix, and as of a recorded time it holds every event recorded at or before it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use common::*;
use grantflow_engine::query::{model_as_of, AsOf};
use grantflow_engine::Engine;
use grantflow_store::Envelope;

/// The worked example with a revision; returns the positions of the approval's two events
/// and of the revision's first event.
async fn history(engine: &Engine) -> (u64, u64, u64) {
    accept(engine, register_fund("UNTFHS", "USD"), "treasurer").await;
    accept(engine, contribution("UNTFHS", "5000000.00"), "treasurer").await;
    accept(engine, proposal("UNTFHS", "MEX-1", "3209232.40"), "alice").await;
    let approval = accept(engine, approve("MEX-1"), "bob").await;
    accept(engine, assign("MEX-1", "IOM", "2000000", true), "alice").await;
    accept(engine, disburse("MEX-1", "IOM", "500000"), "treasurer").await;
    let revision = accept(engine, revise_grant("MEX-1", "3121707"), "bob").await;
    accept(engine, expend("MEX-1", "IOM", "1000"), "treasurer").await;
    // A few commands that share a batch.
    let mut pending = Vec::new();
    for n in 1..=6 {
        let body = contribution("UNTFHS", &format!("{n}"));
        pending.push(engine.enqueue(cli(body, "treasurer")).await.unwrap());
    }
    for waiting in pending {
        assert!(waiting.wait().await.unwrap().is_ok());
    }
    accept(engine, disburse("MEX-1", "IOM", "1"), "treasurer").await;
    (
        approval[0].position,
        approval[1].position,
        revision[0].position,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_every_position_is_the_fold_of_that_prefix() {
    let t = temp_engine().await;
    let (approved_at, committed_at, revised_at) = history(&t.engine).await;
    let head = head(&t.store).await;
    for p in 0..=head + 2 {
        let model = model_as_of(&t.engine, &AsOf::Position(p)).await.unwrap();
        let prefix = fold_prefix(t.store.as_ref(), p.min(head)).await;
        assert_eq!(model.position, p.min(head), "as of position {p}");
        assert!(model.world == prefix.world, "as of position {p}");
    }
    let at = |p| {
        let engine = &t.engine;
        async move { model_as_of(engine, &AsOf::Position(p)).await.unwrap() }
    };
    // Before the approval: a proposal, nothing committed.
    let before = at(approved_at - 1).await;
    let grant = before.world.grant_view("MEX-1").unwrap();
    assert_eq!(
        (grant.status.as_str(), grant.amount.as_str()),
        ("proposed", "0.00")
    );
    assert_eq!(grant.requested, "3209232.40");
    // At the approval: the grant's amount; the fund's commitment follows at the next event.
    let approval = at(approved_at).await;
    let grant = approval.world.grant_view("MEX-1").unwrap();
    assert_eq!(
        (grant.status.as_str(), grant.amount.as_str()),
        ("approved", "3209232.40")
    );
    assert_eq!(grant.position, approved_at);
    let committed = at(committed_at).await;
    let fund = committed.world.fund_view("UNTFHS").unwrap();
    assert_eq!(
        (fund.committed.as_str(), fund.available.as_str()),
        ("3209232.40", "1790767.60")
    );
    // Just before and after the revision.
    let grant = at(revised_at - 1).await.world.grant_view("MEX-1").unwrap();
    assert_eq!(
        (
            grant.amount.as_str(),
            grant.unallocated.as_str(),
            grant.disbursed.as_str()
        ),
        ("3209232.40", "1209232.40", "500000.00")
    );
    let revised = at(revised_at + 1).await;
    let grant = revised.world.grant_view("MEX-1").unwrap();
    assert_eq!(
        (grant.amount.as_str(), grant.unallocated.as_str()),
        ("3121707.00", "1121707.00")
    );
    let fund = revised.world.fund_view("UNTFHS").unwrap();
    assert_eq!(fund.committed, "3121707.00");
    // The head is the live model.
    let live = model_as_of(&t.engine, &AsOf::Head).await.unwrap();
    assert!(live.world == t.engine.snapshot().world && live.position == head);
    t.engine.close().await.unwrap();
}

fn shift(time: &str, micros: i64) -> String {
    let parsed: DateTime<Utc> = DateTime::parse_from_rfc3339(time).unwrap().into();
    (parsed + Duration::microseconds(micros)).to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The last position recorded at or before `time`.
fn last_at_or_before(log: &[Envelope], time: &str) -> u64 {
    let cut: DateTime<Utc> = DateTime::parse_from_rfc3339(time).unwrap().into();
    log.iter()
        .filter(|e| DateTime::parse_from_rfc3339(&e.recorded_at).unwrap() <= cut)
        .map(|e| e.position)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_of_a_recorded_time_includes_everything_recorded_until_then() {
    let t = temp_engine().await;
    history(&t.engine).await;
    let log = read_all(t.store.as_ref()).await;
    // Recorded times never go backwards.
    assert!(log.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at));
    let batches: std::collections::BTreeSet<&str> =
        log.iter().map(|e| e.recorded_at.as_str()).collect();
    assert!(batches.len() > 3);
    for envelope in &log {
        let time = envelope.recorded_at.clone();
        for (query, expected) in [
            (time.clone(), last_at_or_before(&log, &time)),
            (shift(&time, -1), last_at_or_before(&log, &shift(&time, -1))),
        ] {
            let model = model_as_of(&t.engine, &AsOf::Time(query.clone()))
                .await
                .unwrap();
            assert_eq!(model.position, expected, "as of {query}");
            assert!(expected >= envelope.position || query != time);
            let prefix = fold_prefix(t.store.as_ref(), expected).await;
            assert!(model.world == prefix.world, "as of {query}");
        }
    }
    // Times as a user writes them: finer precision is truncated, offsets are converted.
    let time = log[log.len() / 2].recorded_at.clone();
    let expected = last_at_or_before(&log, &time);
    let nanos = format!("{}999Z", time.trim_end_matches('Z'));
    let parsed = DateTime::parse_from_rfc3339(&time).unwrap();
    let offset = parsed
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .to_rfc3339_opts(SecondsFormat::Micros, false);
    for text in [time.clone(), nanos, offset] {
        let as_of = AsOf::from_options(None, Some(&text)).unwrap();
        let model = model_as_of(&t.engine, &as_of).await.unwrap();
        assert_eq!(model.position, expected, "as of {text}");
    }
    // Before the first event: nothing; far in the future: everything.
    let model = model_as_of(&t.engine, &AsOf::Time("2000-01-01T00:00:00.000000Z".into()))
        .await
        .unwrap();
    assert_eq!(model.position, 0);
    assert!(model.world.fund_ids().is_empty());
    let as_of = AsOf::from_options(None, Some("2999-01-01T00:00:00Z")).unwrap();
    let model = model_as_of(&t.engine, &as_of).await.unwrap();
    assert_eq!(model.position, log.len() as u64);
    assert!(model.world == t.engine.snapshot().world);
    assert!(AsOf::from_options(Some(1), Some("2999-01-01T00:00:00Z")).is_err());
    assert!(AsOf::from_options(None, Some("yesterday")).is_err());
    t.engine.close().await.unwrap();
}

/// `AsOf::Time` is public and takes any text: `model_as_of` must read it as a time, as
/// `from_options` and the export crate's fold do, not compare it as a string with the log's
/// `recorded_at` (a whole-second or offset time orders wrongly as a string).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_as_of_reads_a_raw_time_as_a_time() {
    let t = temp_engine().await;
    history(&t.engine).await;
    let log = read_all(t.store.as_ref()).await;
    let time = log[log.len() / 2].recorded_at.clone();
    let expected = last_at_or_before(&log, &time);
    let parsed = DateTime::parse_from_rfc3339(&time).unwrap();
    // The same instant written with a +09:00 offset.
    let offset = parsed
        .with_timezone(&chrono::FixedOffset::east_opt(9 * 3600).unwrap())
        .to_rfc3339_opts(SecondsFormat::Micros, false);
    let model = model_as_of(&t.engine, &AsOf::Time(offset.clone()))
        .await
        .unwrap();
    assert_eq!(model.position, expected, "as of {offset} (= {time})");
    // The whole second before the first event, without a fraction: nothing had happened
    // yet (unless the first event fell exactly on the second).
    let first = DateTime::parse_from_rfc3339(&log[0].recorded_at).unwrap();
    let second = first.to_rfc3339_opts(SecondsFormat::Secs, true);
    let model = model_as_of(&t.engine, &AsOf::Time(second.clone()))
        .await
        .unwrap();
    assert_eq!(
        model.position,
        last_at_or_before(&log, &second),
        "as of {second}, the first event being recorded at {}",
        log[0].recorded_at
    );
    // Text that is no time is an error, not a string to compare with.
    assert!(
        model_as_of(&t.engine, &AsOf::Time("not a time".into()))
            .await
            .is_err(),
        "`not a time` was accepted as a time"
    );
    t.engine.close().await.unwrap();
}
