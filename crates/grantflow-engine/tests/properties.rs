//! Property: whatever sequence of commands (valid or not, alone or sharing a group commit,
//! with command ids reused with the same or another body) goes through the engine, the log
//! stays gapless and verifiable, the read model equals a rebuild from the log, figures obey
//! docs/domain.md's invariants, idempotency answers as docs/commands.md says, and a rejected command
//! appends nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;

use common::*;
use grantflow_engine::{CommandOutcome, Engine, Pending};
use grantflow_store::{EventRef, EventStore};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const FUNDS: [(&str, &str); 2] = [("F-USD", "USD"), ("F-JPY", "JPY")];
const GRANTS: [&str; 3] = ["G-1", "G-2", "G-3"];
const AGENCIES: [&str; 3] = ["IOM", "UNDP", "UNHCR"];
const ACTORS: [&str; 3] = ["alice", "bob", "carol"];
/// Amounts: valid ones, one with more decimals than USD/JPY have, zero, a huge valid one,
/// one with more than 15 digits, and decimals JPY lacks.
const AMOUNTS: [&str; 12] = [
    "1",
    "5",
    "20",
    "100",
    "250.5",
    "1000",
    "4000",
    "0.001",
    "0",
    "999999999999999",
    "1000000000000000",
    "12.34",
];
const CONTRIBUTIONS: [&str; 4] = ["1000", "5000", "999999999999999", "0.5"];

#[derive(Debug, Clone)]
enum Op {
    RegisterFund(usize),
    Contribute(usize, usize),
    Submit(usize, usize, usize),
    Approve(usize),
    Reject(usize),
    Assign(usize, usize, usize, bool),
    ReviseAllocation(usize, usize, usize),
    Withdraw(usize, usize),
    Disburse(usize, usize, usize),
    Expend(usize, usize, usize),
    Refund(usize, usize, usize),
    ReviseGrant(usize, Option<usize>),
    Suspend(usize),
    Resume(usize),
    Cancel(usize),
    Close(usize),
    Finalize(usize),
}

/// How a command id is chosen.
#[derive(Debug, Clone)]
enum Id {
    /// None: the engine makes one.
    None,
    /// A new one.
    Fresh,
    /// The id of the `n`-th earlier command sent with an id (modulo how many there are),
    /// with the same body, another actor, or this op's body.
    Reuse(usize, Reuse),
}

#[derive(Debug, Clone, Copy)]
enum Reuse {
    SameBody,
    OtherActor,
    OtherBody,
}

#[derive(Debug, Clone)]
struct Cmd {
    op: Op,
    actor: usize,
    actor_in_body: bool,
    id: Id,
}

#[derive(Debug, Clone)]
enum Step {
    /// Submitted alone: the head must not move for a rejection.
    One(Cmd),
    /// Enqueued together, then awaited: they may share a batch.
    Many(Vec<Cmd>),
}

fn op() -> impl Strategy<Value = Op> {
    // G-1 (USD) and G-2 (JPY) start approved; G-3 starts as a proposal and is drawn less.
    let g = prop::sample::select(vec![0usize, 0, 0, 1, 1, 2]);
    let a = 0..AGENCIES.len();
    let m = 0..AMOUNTS.len();
    prop_oneof![
        1 => (0..FUNDS.len()).prop_map(Op::RegisterFund),
        3 => (0..FUNDS.len(), 0..CONTRIBUTIONS.len()).prop_map(|(f, m)| Op::Contribute(f, m)),
        1 => (g.clone(), 0..FUNDS.len(), m.clone()).prop_map(|(g, f, m)| Op::Submit(g, f, m)),
        2 => g.clone().prop_map(Op::Approve),
        1 => g.clone().prop_map(Op::Reject),
        9 => (g.clone(), a.clone(), m.clone(), any::<bool>())
            .prop_map(|(g, a, m, lead)| Op::Assign(g, a, m, lead)),
        2 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::ReviseAllocation(g, a, m)),
        1 => (g.clone(), a.clone()).prop_map(|(g, a)| Op::Withdraw(g, a)),
        9 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Disburse(g, a, m)),
        5 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Expend(g, a, m)),
        4 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Refund(g, a, m)),
        3 => (g.clone(), prop::option::weighted(0.8, m)).prop_map(|(g, m)| Op::ReviseGrant(g, m)),
        2 => g.clone().prop_map(Op::Suspend),
        2 => g.clone().prop_map(Op::Resume),
        1 => g.clone().prop_map(Op::Cancel),
        1 => g.clone().prop_map(Op::Close),
        1 => g.prop_map(Op::Finalize),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        2 => Just(Id::None),
        10 => Just(Id::Fresh),
        2 => any::<usize>().prop_map(|n| Id::Reuse(n, Reuse::SameBody)),
        1 => any::<usize>().prop_map(|n| Id::Reuse(n, Reuse::OtherActor)),
        1 => any::<usize>().prop_map(|n| Id::Reuse(n, Reuse::OtherBody)),
    ]
}

fn cmd() -> impl Strategy<Value = Cmd> {
    (op(), 0..ACTORS.len(), prop::bool::weighted(0.2), id()).prop_map(
        |(op, actor, actor_in_body, id)| Cmd {
            op,
            actor,
            actor_in_body,
            id,
        },
    )
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        5 => cmd().prop_map(Step::One),
        1 => prop::collection::vec(cmd(), 2..7).prop_map(Step::Many),
    ];
    prop::collection::vec(step, 1..60)
}

fn body_of(op: &Op) -> Value {
    let grant = |g: &usize| GRANTS[*g];
    let agency = |a: &usize| AGENCIES[*a];
    let amount = |m: &usize| AMOUNTS[*m];
    match op {
        Op::RegisterFund(f) => register_fund(FUNDS[*f].0, FUNDS[*f].1),
        Op::Contribute(f, m) => contribution(FUNDS[*f].0, CONTRIBUTIONS[*m]),
        Op::Submit(g, f, m) => proposal(FUNDS[*f].0, grant(g), amount(m)),
        Op::Approve(g) => approve(grant(g)),
        Op::Reject(g) => {
            json!({"command": "reject-proposal", "grant": grant(g), "reason": "out of scope"})
        }
        Op::Assign(g, a, m, lead) => assign(grant(g), agency(a), amount(m), *lead),
        Op::ReviseAllocation(g, a, m) => json!({"command": "revise-allocation", "grant": grant(g),
            "agency": agency(a), "allocation": amount(m), "reason": "work plan"}),
        Op::Withdraw(g, a) => json!({"command": "withdraw-agency", "grant": grant(g),
            "agency": agency(a), "reason": "left the project"}),
        Op::Disburse(g, a, m) => disburse(grant(g), agency(a), amount(m)),
        Op::Expend(g, a, m) => expend(grant(g), agency(a), amount(m)),
        Op::Refund(g, a, m) => refund(grant(g), agency(a), amount(m)),
        Op::ReviseGrant(g, Some(m)) => revise_grant(grant(g), amount(m)),
        Op::ReviseGrant(g, None) => json!({"command": "revise-grant", "grant": grant(g),
            "ends_on": "2016-09-30", "reason": "extension"}),
        Op::Suspend(g) => json!({"command": "suspend-grant", "grant": grant(g), "reason": "audit"}),
        Op::Resume(g) => {
            json!({"command": "resume-grant", "grant": grant(g), "reason": "audit done"})
        }
        Op::Cancel(g) => json!({"command": "cancel-grant", "grant": grant(g), "reason": "stopped"}),
        Op::Close(g) => {
            json!({"command": "close-grant", "grant": grant(g), "closed_on": "2015-09-30"})
        }
        Op::Finalize(g) => json!({"command": "finalize-grant", "grant": grant(g)}),
    }
}

/// A command ready to send: body, the default actor, and what the engine must take as its
/// identity for idempotency (the body with the resolved actor).
#[derive(Debug, Clone)]
struct Ready {
    body: Value,
    default_actor: String,
    actor: String,
    id: Option<String>,
}

impl Ready {
    fn identity(&self) -> Value {
        let mut identity = self.body.clone();
        identity["actor"] = Value::String(self.actor.clone());
        identity
    }
}

/// Everything the runner remembers across a sequence.
#[derive(Default)]
struct Tracker {
    /// Commands sent with an id, in order (candidates for reuse).
    sent: Vec<Ready>,
    /// Accepted command ids: identity and events.
    accepted: HashMap<String, (Value, String, Vec<EventRef>)>,
    next_id: usize,
    /// How often each kind of answer came (to see the sequences do something).
    stats: HashMap<String, usize>,
}

impl Tracker {
    fn ready(&mut self, cmd: &Cmd) -> Ready {
        let default_actor = ACTORS[cmd.actor].to_string();
        let mut ready = Ready {
            body: body_of(&cmd.op),
            default_actor: default_actor.clone(),
            actor: default_actor.clone(),
            id: None,
        };
        if cmd.actor_in_body {
            // The body's actor wins over the default.
            let actor = ACTORS[(cmd.actor + 1) % ACTORS.len()];
            ready.body["actor"] = json!(actor);
            ready.actor = actor.to_string();
        }
        match (&cmd.id, self.sent.is_empty()) {
            (Id::None, _) => {}
            (Id::Fresh, _) | (Id::Reuse(..), true) => {
                self.next_id += 1;
                ready.id = Some(format!("cmd-{}", self.next_id));
            }
            (Id::Reuse(n, how), false) => {
                let earlier = self.sent[n % self.sent.len()].clone();
                match how {
                    Reuse::SameBody => ready = earlier,
                    Reuse::OtherActor => {
                        ready = earlier;
                        let other = ACTORS
                            .iter()
                            .find(|a| **a != ready.actor)
                            .unwrap()
                            .to_string();
                        if ready.body.get("actor").is_some() {
                            ready.body["actor"] = json!(other);
                        } else {
                            ready.default_actor = other.clone();
                        }
                        ready.actor = other;
                    }
                    Reuse::OtherBody => ready.id = earlier.id,
                }
            }
        }
        if let Some(id) = &ready.id {
            ready.body["command_id"] = json!(id);
            self.sent.push(ready.clone());
        }
        ready
    }

    /// Checks one answer against what was sent before; returns the events it appended.
    fn answer(
        &mut self,
        ready: &Ready,
        outcome: &CommandOutcome,
    ) -> Result<Vec<EventRef>, TestCaseError> {
        let key = match outcome {
            CommandOutcome::Accepted { replayed: true, .. } => "replayed".to_string(),
            CommandOutcome::Accepted { .. } => "accepted".to_string(),
            CommandOutcome::Rejected { rejection, .. } => rejection.code.clone(),
        };
        *self.stats.entry(key).or_default() += 1;
        let earlier = ready.id.as_ref().and_then(|id| self.accepted.get(id));
        match outcome {
            CommandOutcome::Accepted {
                command_id,
                events,
                replayed,
            } => {
                if let Some(id) = &ready.id {
                    prop_assert_eq!(command_id, id);
                }
                prop_assert!(!events.is_empty(), "accepted without events: {:?}", ready);
                match earlier {
                    Some((identity, _, original)) => {
                        prop_assert_eq!(
                            identity,
                            &ready.identity(),
                            "a reused id with another body was accepted"
                        );
                        prop_assert!(*replayed, "a repeat was not marked replayed: {:?}", ready);
                        prop_assert_eq!(original, events, "a replay returned other events");
                        Ok(Vec::new())
                    }
                    None => {
                        prop_assert!(!*replayed, "a new command id answered as replayed");
                        self.accepted.insert(
                            command_id.clone(),
                            (ready.identity(), ready.actor.clone(), events.clone()),
                        );
                        Ok(events.clone())
                    }
                }
            }
            CommandOutcome::Rejected {
                command_id,
                rejection,
            } => {
                if let Some(id) = &ready.id {
                    prop_assert_eq!(command_id.as_deref(), Some(id.as_str()));
                }
                let parses = grantflow_domain::parse_command(&ready.body).is_ok();
                match earlier {
                    Some((identity, _, _)) => {
                        prop_assert!(
                            identity != &ready.identity(),
                            "a repeat with the same body was rejected: {:?} {:?}",
                            ready,
                            rejection
                        );
                        if parses {
                            prop_assert_eq!(
                                rejection.code.as_str(),
                                "command_id_conflict",
                                "{:?}",
                                ready
                            );
                        }
                    }
                    None => prop_assert_ne!(
                        rejection.code.as_str(),
                        "command_id_conflict",
                        "a conflict for an id never accepted: {:?}",
                        ready
                    ),
                }
                prop_assert!(!rejection.message.is_empty());
                Ok(Vec::new())
            }
        }
    }
}

fn submission(ready: &Ready) -> grantflow_engine::Submission {
    cli(ready.body.clone(), &ready.default_actor)
}

async fn run_sequence(steps: Vec<Step>) -> Result<HashMap<String, usize>, TestCaseError> {
    let TestEngine { dir, store, engine } = temp_engine().await;
    let mut tracker = Tracker::default();
    // A prelude so that sequences get somewhere: both funds with money, three proposals,
    // two of them approved (G-3 stays a proposal).
    let mut prelude = 0;
    for (fund, currency) in FUNDS {
        prelude += accept(&engine, register_fund(fund, currency), "treasurer")
            .await
            .len();
        prelude += accept(&engine, contribution(fund, "10000"), "treasurer")
            .await
            .len();
    }
    for (grant, fund, actor) in [("G-1", 0, "alice"), ("G-2", 1, "bob"), ("G-3", 0, "carol")] {
        let body = proposal(FUNDS[fund].0, grant, "4000");
        prelude += accept(&engine, body, actor).await.len();
    }
    prelude += accept(&engine, approve("G-1"), "bob").await.len();
    prelude += accept(&engine, approve("G-2"), "carol").await.len();
    // Agencies on both approved grants, money on G-1's (G-2 stays approved, not active).
    for body in [
        assign("G-1", "IOM", "2000", true),
        assign("G-2", "UNDP", "1000", false),
        disburse("G-1", "IOM", "500"),
    ] {
        prelude += accept(&engine, body, "alice").await.len();
    }
    for step in steps {
        match step {
            Step::One(cmd) => {
                let ready = tracker.ready(&cmd);
                let before = head(&store).await;
                let outcome = engine.submit(submission(&ready)).await.unwrap();
                let after = head(&store).await;
                let appended = tracker.answer(&ready, &outcome)?;
                let positions: Vec<u64> = appended.iter().map(|e| e.position).collect();
                let expected: Vec<u64> = (before + 1..=after).collect();
                prop_assert_eq!(
                    positions,
                    expected,
                    "{:?} moved the head from {} to {}: {}",
                    ready,
                    before,
                    after,
                    outcome.to_json()
                );
            }
            Step::Many(cmds) => {
                let before = head(&store).await;
                let mut pending: Vec<(Ready, Pending)> = Vec::new();
                for cmd in &cmds {
                    let ready = tracker.ready(cmd);
                    let waiting = engine.enqueue(submission(&ready)).await.unwrap();
                    pending.push((ready, waiting));
                }
                let mut positions = Vec::new();
                for (ready, waiting) in pending {
                    let outcome = waiting.wait().await.unwrap();
                    let appended = tracker.answer(&ready, &outcome)?;
                    positions.extend(appended.iter().map(|e| e.position));
                }
                let after = head(&store).await;
                let expected: Vec<u64> = (before + 1..=after).collect();
                prop_assert_eq!(positions, expected, "the group's new events");
            }
        }
    }
    check_end_state(&engine, &store, &mut tracker, prelude).await?;
    engine.close().await.unwrap();
    drop(dir);
    Ok(tracker.stats)
}

async fn check_end_state(
    engine: &Engine,
    store: &std::sync::Arc<dyn EventStore>,
    tracker: &mut Tracker,
    prelude: usize,
) -> Result<(), TestCaseError> {
    let log = read_all(store.as_ref()).await;
    // (a) gapless positions and versions.
    check_gapless(store.as_ref(), &log)
        .await
        .map_err(TestCaseError::fail)?;
    // Every event belongs to an accepted command that named it (so rejected commands
    // appended nothing), with the command's actor.
    // The prelude's commands have engine-made ids and are not tracked.
    let mut named = 0;
    for (id, (_, actor, refs)) in &tracker.accepted {
        check_refs(&log, id, actor, refs).map_err(TestCaseError::fail)?;
        named += refs.len();
    }
    prop_assert_eq!(
        named + prelude,
        log.len(),
        "events no accepted command names"
    );
    // (b) verify.
    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    prop_assert!(report.ok(), "verify failed: {:?}", report.failure);
    prop_assert_eq!(report.events, log.len() as u64);
    // (c) the live read model equals a rebuild from the log.
    let live = engine.snapshot();
    let rebuilt = fold_log(store.as_ref()).await;
    prop_assert_eq!(live.position, rebuilt.position);
    prop_assert_eq!(live.position, log.len() as u64);
    prop_assert!(
        live.world == rebuilt.world,
        "the live world differs from the rebuilt one"
    );
    let (replayed_model, _) = grantflow_engine::audit::replay(store.as_ref(), &|_, _| {})
        .await
        .unwrap();
    prop_assert!(replayed_model.world == live.world && replayed_model.position == live.position);
    // (f) figures: invariants and sums from the log.
    check_figures(&live.world, &log).map_err(TestCaseError::fail)?;
    // (d) for a few accepted ids: the same body replays, another body conflicts, and
    // neither appends.
    let mut checked: Vec<String> = Vec::new();
    for ready in &tracker.sent {
        let Some(id) = ready.id.clone() else { continue };
        let Some((identity, _, original)) = tracker.accepted.get(&id) else {
            continue;
        };
        if checked.len() == 3 || checked.contains(&id) || *identity != ready.identity() {
            continue;
        }
        checked.push(id.clone());
        let before = head(store).await;
        let outcome = engine.submit(submission(ready)).await.unwrap();
        prop_assert!(replayed(&outcome), "{}", outcome.to_json());
        prop_assert_eq!(&events(&outcome), original);
        let mut other = ready.clone();
        // No generated body has this reason: it differs from every original.
        other.body = json!({"command": "suspend-grant", "grant": "G-3",
                            "reason": "conflict probe", "command_id": id});
        let outcome = engine.submit(submission(&other)).await.unwrap();
        prop_assert_eq!(outcome.code(), Some("command_id_conflict"));
        prop_assert_eq!(head(store).await, before, "a replay or conflict appended");
    }
    *tracker.stats.entry("checked_at_end".into()).or_default() += checked.len();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_sequences_keep_the_log_and_figures_sound() {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 32,
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let totals = std::sync::Mutex::new(HashMap::<String, usize>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(&steps(), |steps| {
            let stats = handle.block_on(run_sequence(steps))?;
            let mut totals = totals.lock().unwrap();
            for (key, count) in stats {
                *totals.entry(key).or_default() += count;
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    // The sequences must reach the interesting answers, or the property proves little.
    let totals = totals.into_inner().unwrap();
    eprintln!("answers over all cases: {totals:?}");
    for key in [
        "accepted",
        "replayed",
        "command_id_conflict",
        "invalid_amount",
        "invalid_state",
        "four_eyes_violation",
        "over_disbursement",
        "checked_at_end",
    ] {
        assert!(
            totals.get(key).copied().unwrap_or(0) > 0,
            "no command answered {key}: {totals:?}"
        );
    }
}
