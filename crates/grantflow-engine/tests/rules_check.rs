//! Property: a random valid log (commands through a real engine), one of its commands or
//! events forged and the whole chain re-hashed, is accepted by the checked fold
//! (`transfer::verify_file`, which `import` runs first) exactly when it is a log the decider
//! could have written. The oracle is independent of the check: the same commands, with the
//! same forgery made in the command instead, run through a fresh engine; the forged log is
//! derivable when every command is accepted there and appends exactly the forged events.
//! Forgeries no command can express (another stream, a figure the decider computes) and
//! those that break a known rule (a negative amount, the submitter approving) are refused at
//! the forged position with that rule's code.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::collections::HashMap;

use common::*;
use grantflow_engine::transfer::verify_file;
use grantflow_engine::CommandOutcome;
use grantflow_store::Envelope;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

const GRANTS: [&str; 2] = ["G-1", "G-2"];
const AGENCIES: [&str; 2] = ["A", "B"];
const ACTORS: [&str; 3] = ["sec", "mgr", "fin"];
const SUBMITTER: &str = "sec";

fn usd(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02}", minor / 100, minor % 100)
}

#[derive(Debug, Clone)]
enum Op {
    Contribute(i64),
    Submit(usize, i64),
    Approve(usize),
    Assign(usize, usize, i64),
    ReviseAllocation(usize, usize, i64),
    Withdraw(usize, usize),
    Disburse(usize, usize, i64),
    Expend(usize, usize, i64),
    Refund(usize, usize, i64),
    ReviseGrant(usize, i64),
    Suspend(usize),
    Resume(usize),
    Cancel(usize),
    Close(usize),
    Finalize(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let g = 0..GRANTS.len();
    let a = 0..AGENCIES.len();
    let m = 1i64..400_000;
    prop_oneof![
        2 => (1i64..2_000_000).prop_map(Op::Contribute),
        1 => (g.clone(), 1i64..1_000_000).prop_map(|(g, m)| Op::Submit(g, m)),
        2 => g.clone().prop_map(Op::Approve),
        4 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Assign(g, a, m)),
        2 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::ReviseAllocation(g, a, m)),
        1 => (g.clone(), a.clone()).prop_map(|(g, a)| Op::Withdraw(g, a)),
        5 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Disburse(g, a, m)),
        3 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Expend(g, a, m)),
        2 => (g.clone(), a.clone(), m.clone()).prop_map(|(g, a, m)| Op::Refund(g, a, m)),
        2 => (g.clone(), 1i64..1_000_000).prop_map(|(g, m)| Op::ReviseGrant(g, m)),
        1 => g.clone().prop_map(Op::Suspend),
        1 => g.clone().prop_map(Op::Resume),
        1 => g.clone().prop_map(Op::Cancel),
        1 => g.clone().prop_map(Op::Close),
        1 => g.prop_map(Op::Finalize),
    ]
}

fn body_of(op: &Op) -> Value {
    let g = |g: &usize| GRANTS[*g];
    let a = |a: &usize| AGENCIES[*a];
    match op {
        Op::Contribute(m) => contribution("F", &usd(*m)),
        Op::Submit(grant, m) => proposal("F", g(grant), &usd(*m)),
        Op::Approve(grant) => approve(g(grant)),
        Op::Assign(grant, agency, m) => assign(g(grant), a(agency), &usd(*m), false),
        Op::ReviseAllocation(grant, agency, m) => json!({"command": "revise-allocation",
            "grant": g(grant), "agency": a(agency), "allocation": usd(*m), "reason": "work plan"}),
        Op::Withdraw(grant, agency) => json!({"command": "withdraw-agency", "grant": g(grant),
            "agency": a(agency), "reason": "left the project"}),
        Op::Disburse(grant, agency, m) => {
            let mut body = disburse(g(grant), a(agency), &usd(*m));
            body["reference"] = json!("TR-1");
            body
        }
        Op::Expend(grant, agency, m) => expend(g(grant), a(agency), &usd(*m)),
        Op::Refund(grant, agency, m) => refund(g(grant), a(agency), &usd(*m)),
        Op::ReviseGrant(grant, m) => revise_grant(g(grant), &usd(*m)),
        Op::Suspend(grant) => {
            json!({"command": "suspend-grant", "grant": g(grant), "reason": "audit"})
        }
        Op::Resume(grant) => {
            json!({"command": "resume-grant", "grant": g(grant), "reason": "audit done"})
        }
        Op::Cancel(grant) => {
            json!({"command": "cancel-grant", "grant": g(grant), "reason": "stopped"})
        }
        Op::Close(grant) => {
            json!({"command": "close-grant", "grant": g(grant), "closed_on": "2015-09-30"})
        }
        Op::Finalize(grant) => json!({"command": "finalize-grant", "grant": g(grant)}),
    }
}

/// One forgery, its targets picked modulo what the log holds.
#[derive(Debug, Clone)]
enum Forgery {
    /// A string field of a command (amount, allocation, reason, reference) set to another
    /// value, in the command's first event and (for the oracle) in the command.
    Field(usize, FieldValue),
    /// Every event of a command signed by another actor.
    Actor(usize, usize),
    /// An approval signed by its proposal's submitter.
    ApprovalBySubmitter(usize),
    /// One event filed under another stream.
    Stream(usize),
    /// A figure the decider computes itself, changed by one minor unit.
    Derived(usize),
}

#[derive(Debug, Clone)]
enum FieldValue {
    Amount(i64),
    Negative(i64),
    Text(u32),
}

/// One forgery of each kind, with random targets and values.
fn forgeries() -> impl Strategy<Value = Vec<Forgery>> {
    let n = any::<usize>;
    (
        (n(), 1i64..1_000_000),
        (n(), 1i64..1_000_000),
        (n(), any::<u32>()),
        (n(), 0..ACTORS.len()),
        (n(), n(), n()),
    )
        .prop_map(|((a, m), (b, neg), (c, t), (d, actor), (e, f, g))| {
            vec![
                Forgery::Field(a, FieldValue::Amount(m)),
                Forgery::Field(b, FieldValue::Negative(neg)),
                Forgery::Field(c, FieldValue::Text(t)),
                Forgery::Actor(d, actor),
                Forgery::ApprovalBySubmitter(e),
                Forgery::Stream(f),
                Forgery::Derived(g),
            ]
        })
}

/// A command accepted in the original run: its body, actor and events (indexes in the log).
#[derive(Debug, Clone)]
struct Accepted {
    body: Value,
    actor: String,
    events: std::ops::Range<usize>,
}

/// Runs `commands` (body, actor) through a fresh engine; the log and, per command, whether
/// it was accepted.
async fn run(commands: &[(Value, String)]) -> (Vec<Envelope>, Vec<bool>) {
    let engine = temp_engine().await;
    let mut accepted = Vec::new();
    for (body, actor) in commands {
        let outcome = submit(&engine.engine, body.clone(), actor).await;
        accepted.push(matches!(
            outcome,
            CommandOutcome::Accepted {
                replayed: false,
                ..
            }
        ));
    }
    let log = read_all(engine.store.as_ref()).await;
    (log, accepted)
}

/// What makes two logs the same history (times and hashes aside).
fn history(log: &[Envelope]) -> Vec<(String, String, u32, String, String, String)> {
    log.iter()
        .map(|e| {
            (
                e.stream.clone(),
                e.event_type.clone(),
                e.schema,
                e.actor.clone(),
                e.command_id.clone(),
                e.payload.clone(),
            )
        })
        .collect()
}

/// A forger's work: versions and the hash chain recomputed.
fn rechain(log: &mut [Envelope]) {
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut prev = [0u8; 32];
    for envelope in log.iter_mut() {
        let version = versions.entry(envelope.stream.clone()).or_insert(0);
        *version += 1;
        envelope.version = *version;
        envelope.prev_hash = prev;
        envelope.hash = envelope.compute_hash();
        prev = envelope.hash;
    }
}

/// The string fields a forgery may change in a command's first event.
const FIELDS: [&str; 4] = ["amount", "allocation", "reason", "reference"];

/// What the check must say about the forged log.
enum Expect {
    /// Decided by the oracle.
    Oracle(Vec<(Value, String)>),
    /// Refused at this position with this code.
    Refused(u64, &'static str),
    /// The forgery does not apply to this log (nothing changed).
    Nothing,
}

fn forge(
    forgery: &Forgery,
    accepted: &[Accepted],
    log: &mut [Envelope],
) -> Result<Expect, TestCaseError> {
    let commands = || -> Vec<(Value, String)> {
        accepted
            .iter()
            .map(|c| (c.body.clone(), c.actor.clone()))
            .collect()
    };
    let pick = |n: usize| &accepted[n % accepted.len()];
    match forgery {
        Forgery::Field(n, value) => {
            let wants_amount = !matches!(value, FieldValue::Text(_));
            let field_of = |command: &Accepted| {
                FIELDS.iter().copied().find(|f| {
                    matches!(*f, "amount" | "allocation") == wants_amount
                        && command.body.get(*f).is_some_and(Value::is_string)
                })
            };
            let candidates: Vec<usize> = (0..accepted.len())
                .filter(|i| field_of(&accepted[*i]).is_some())
                .collect();
            if candidates.is_empty() {
                return Ok(Expect::Nothing);
            }
            let target = candidates[n % candidates.len()];
            let command = &accepted[target];
            let first = command.events.start;
            let field = field_of(command).unwrap();
            let old = command.body[field].as_str().unwrap().to_string();
            let new = match value {
                FieldValue::Amount(m) => usd(*m),
                FieldValue::Negative(m) => usd(-*m),
                FieldValue::Text(t) => format!("in other words {t}"),
            };
            // The proposal's amount is stored as what was requested.
            let key = match (command.body["command"].as_str(), field) {
                (Some("submit-proposal"), "amount") => "requested",
                (_, field) => field,
            };
            let stored = format!("\"{key}\":\"{old}\"");
            prop_assert!(
                log[first].payload.contains(&stored),
                "{} lacks {stored}",
                log[first].payload
            );
            log[first].payload =
                log[first]
                    .payload
                    .replacen(&stored, &format!("\"{key}\":\"{new}\""), 1);
            if matches!(value, FieldValue::Negative(_)) {
                return Ok(Expect::Refused(first as u64 + 1, "invalid_amount"));
            }
            let mut commands = commands();
            commands[target].0[field] = json!(new);
            Ok(Expect::Oracle(commands))
        }
        Forgery::Actor(n, actor) => {
            let command = pick(*n);
            for envelope in &mut log[command.events.clone()] {
                envelope.actor = ACTORS[*actor].to_string();
            }
            let mut commands = commands();
            commands[n % accepted.len()].1 = ACTORS[*actor].to_string();
            Ok(Expect::Oracle(commands))
        }
        Forgery::ApprovalBySubmitter(n) => {
            let approvals: Vec<&Accepted> = accepted
                .iter()
                .filter(|c| c.body["command"] == "approve-grant")
                .collect();
            let command = approvals[n % approvals.len()];
            let submitter = &accepted
                .iter()
                .find(|c| {
                    c.body["command"] == "submit-proposal"
                        && c.body["grant"] == command.body["grant"]
                })
                .expect("an approved grant was proposed")
                .actor;
            for envelope in &mut log[command.events.clone()] {
                envelope.actor = submitter.clone();
            }
            Ok(Expect::Refused(
                command.events.start as u64 + 1,
                "four_eyes_violation",
            ))
        }
        Forgery::Stream(n) => {
            let index = n % log.len();
            let other = if log[index].stream.starts_with("fund-") {
                "grant-G-1"
            } else {
                "fund-F"
            };
            log[index].stream = other.to_string();
            Ok(Expect::Refused(index as u64 + 1, "event_not_derivable"))
        }
        Forgery::Derived(n) => {
            // Fields the decider computes from the state, never from the command.
            const DERIVED: [(&str, &str); 6] = [
                ("fund.grant_committed", "commitment"),
                ("grant.approved", "amount"),
                ("grant.allocation_revised", "previous_allocation"),
                ("grant.agency_withdrawn", "allocation"),
                ("fund.fee_charged", "amount"),
                ("fund.commitment_revised", "previous_commitment"),
            ];
            let candidates: Vec<usize> = (0..log.len())
                .filter(|i| DERIVED.iter().any(|(t, _)| *t == log[*i].event_type))
                .collect();
            let index = candidates[n % candidates.len()];
            let (_, field) = DERIVED
                .iter()
                .find(|(t, _)| *t == log[index].event_type)
                .unwrap();
            let mut payload: serde_json::Map<String, Value> =
                serde_json::from_str(&log[index].payload).unwrap();
            let old = payload[*field].as_str().unwrap();
            let minor: i64 = old.replace('.', "").parse().unwrap();
            payload.insert((*field).into(), json!(usd(minor + 1)));
            log[index].payload = serde_json::to_string(&payload).unwrap();
            Ok(Expect::Refused(index as u64 + 1, "event_not_derivable"))
        }
    }
}

/// Runs one case; names what happened (for the tally).
async fn case(
    ops: Vec<(Op, usize)>,
    forgeries: Vec<Forgery>,
) -> Result<Vec<&'static str>, TestCaseError> {
    // A fund with a fee (contributions append two events), a proposal by the submitter and
    // its approval: every forgery has something to act on.
    let mut register = register_fund("F", "USD");
    register["admin_fee_percent"] = json!("1.00");
    let mut commands: Vec<(Value, String)> = vec![
        (register, "fin".into()),
        (contribution("F", "10000.00"), "fin".into()),
        (proposal("F", "G-1", "5000.00"), SUBMITTER.into()),
        (approve("G-1"), "mgr".into()),
    ];
    commands.extend(
        ops.iter()
            .map(|(op, actor)| (body_of(op), ACTORS[*actor].to_string())),
    );
    for (index, (body, _)) in commands.iter_mut().enumerate() {
        body["command_id"] = json!(format!("c-{index}"));
    }
    let (log, outcomes) = run(&commands).await;
    // The accepted commands and their events (each command's events are consecutive).
    let mut accepted = Vec::new();
    let mut at = 0;
    for ((body, actor), ok) in commands.iter().zip(&outcomes) {
        if !ok {
            continue;
        }
        let id = body["command_id"].as_str().unwrap();
        let end = at + log[at..].iter().take_while(|e| e.command_id == id).count();
        prop_assert!(end > at, "an accepted command without events");
        accepted.push(Accepted {
            body: body.clone(),
            actor: actor.clone(),
            events: at..end,
        });
        at = end;
    }
    prop_assert_eq!(at, log.len());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("log.jsonl");
    let write = |log: &[Envelope]| {
        let text: String = log.iter().map(|e| format!("{}\n", e.to_line())).collect();
        std::fs::write(&file, text).unwrap();
    };
    // The untouched log passes.
    write(&log);
    let (_, failure) = verify_file(&file, None).unwrap();
    prop_assert!(failure.is_none(), "a valid log refused: {:?}", failure);

    let mut answers = Vec::new();
    for forgery in forgeries {
        answers.push(check_forgery(&forgery, &accepted, &log, &write, &file).await?);
    }
    Ok(answers)
}

/// Forges `log` once and checks the answer of the checked fold.
async fn check_forgery(
    forgery: &Forgery,
    accepted: &[Accepted],
    log: &[Envelope],
    write: &impl Fn(&[Envelope]),
    file: &std::path::Path,
) -> Result<&'static str, TestCaseError> {
    let mut forged = log.to_vec();
    let expect = forge(forgery, accepted, &mut forged)?;
    rechain(&mut forged);
    write(&forged);
    let (_, failure) = verify_file(file, None).unwrap();
    match expect {
        Expect::Nothing => {
            prop_assert!(failure.is_none());
            Ok("unchanged")
        }
        Expect::Refused(position, code) => {
            let failure = failure.ok_or_else(|| {
                TestCaseError::fail(format!("{forgery:?} accepted, expected {code}"))
            })?;
            prop_assert_eq!(failure.position, position, "{:?}", failure);
            prop_assert_eq!(failure.code.as_deref(), Some(code), "{:?}", failure);
            Ok(code)
        }
        Expect::Oracle(commands) => {
            let (oracle_log, oracle_outcomes) = run(&commands).await;
            let derivable =
                oracle_outcomes.iter().all(|ok| *ok) && history(&oracle_log) == history(&forged);
            match (&failure, derivable) {
                (None, true) => Ok("derivable, accepted"),
                (Some(failure), false) => {
                    prop_assert!(failure.code.is_some(), "{:?}", failure);
                    Ok("not derivable, refused")
                }
                (None, false) => Err(TestCaseError::fail(format!(
                    "{forgery:?}: accepted, but no engine run writes this log"
                ))),
                (Some(failure), true) => Err(TestCaseError::fail(format!(
                    "{forgery:?}: refused ({failure:?}), but the engine writes this log"
                ))),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_log_is_accepted_exactly_when_the_decider_could_have_written_it() {
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases: 24,
        max_shrink_iters: 100,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop::collection::vec((op(), 0..ACTORS.len()), 1..30),
        forgeries(),
    );
    let tally = std::sync::Mutex::new(HashMap::<&'static str, usize>::new());
    let result = tokio::task::block_in_place(|| {
        runner.run(&strategy, |(ops, forgeries)| {
            let answers = handle.block_on(case(ops, forgeries))?;
            let mut tally = tally.lock().unwrap();
            for what in answers {
                *tally.entry(what).or_default() += 1;
            }
            Ok(())
        })
    });
    if let Err(error) = result {
        panic!("{error}");
    }
    // The cases must reach both answers of the oracle and the fixed refusals, or the
    // property proves little.
    let tally = tally.into_inner().unwrap();
    eprintln!("forgeries: {tally:?}");
    for what in [
        "derivable, accepted",
        "not derivable, refused",
        "event_not_derivable",
        "four_eyes_violation",
        "invalid_amount",
    ] {
        assert!(
            tally.get(what).copied().unwrap_or(0) > 0,
            "no case {what}: {tally:?}"
        );
    }
}

/// A store holding a forged log (written past `import`, straight through the store):
/// `verify` names the first bad position and the rule's code, and `replay` refuses to
/// rebuild from it.
#[tokio::test]
async fn verify_and_replay_of_a_store_check_the_rules() {
    let mut register = register_fund("F", "USD");
    register["admin_fee_percent"] = json!("1.00");
    let commands: Vec<(Value, String)> = vec![
        (register, "fin".into()),
        (contribution("F", "10000.00"), "fin".into()),
        (proposal("F", "G-1", "5000.00"), SUBMITTER.into()),
        (approve("G-1"), "mgr".into()),
        (assign("G-1", "A", "1000.00", true), "sec".into()),
    ];
    let (mut log, accepted) = run(&commands).await;
    assert!(accepted.iter().all(|ok| *ok));
    let approval = log
        .iter()
        .position(|e| e.event_type == "grant.approved")
        .unwrap();
    let command = log[approval].command_id.clone();
    for envelope in log.iter_mut().filter(|e| e.command_id == command) {
        envelope.actor = SUBMITTER.to_string();
    }
    rechain(&mut log);
    let forged = temp_engine().await;
    let store = forged.store.clone();
    drop(forged.engine);
    store.import(log.clone()).await.unwrap();

    let report = grantflow_engine::audit::verify(store.as_ref(), None, &|_, _| {})
        .await
        .unwrap();
    let failure = report.failure.expect("the forged approval fails");
    assert_eq!(failure.position, approval as u64 + 1);
    assert_eq!(failure.code.as_deref(), Some("four_eyes_violation"));
    assert_eq!(report.head.position, approval as u64);

    match grantflow_engine::audit::replay(store.as_ref(), &|_, _| {}).await {
        Err(grantflow_engine::EngineError::Corrupt { position, detail }) => {
            assert_eq!(position, approval as u64 + 1);
            assert!(detail.contains("four_eyes_violation"), "{detail}");
        }
        other => panic!("replay rebuilt a forged log: {:?}", other.map(|(_, r)| r)),
    }
}
