//! Property tests: random command sequences, valid and invalid, keep the invariants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_domain::{evolve, Amount, Event, Status, World, COMMAND_NAMES};
use proptest::prelude::*;
use serde_json::{json, Value};

const GRANTS: &[&str] = &["G1", "G2", "G3"];
const AGENCIES: &[&str] = &["A", "B", "C"];
const AMOUNTS: &[&str] = &[
    "0.01", "1", "5.50", "10", "25", "50.00", "100", "150", "250", "1.001", "-3",
];
/// Commands to draw from; the money commands more often, so that sequences reach them.
const KINDS: &[&str] = &[
    "register-fund",
    "record-contribution",
    "submit-proposal",
    "reject-proposal",
    "approve-grant",
    "approve-grant",
    "assign-agency",
    "assign-agency",
    "assign-agency",
    "revise-allocation",
    "revise-allocation",
    "withdraw-agency",
    "record-disbursement",
    "record-disbursement",
    "record-disbursement",
    "record-disbursement",
    "record-expenditure",
    "record-expenditure",
    "record-refund",
    "record-refund",
    "revise-grant",
    "suspend-grant",
    "resume-grant",
    "cancel-grant",
    "close-grant",
    "finalize-grant",
];
const ACTORS: &[&str] = &["sec", "boss", "fin"];

/// One random step: a command index and the choices it draws from.
type Step = (usize, usize, usize, usize, usize, bool);

fn command(step: Step) -> Value {
    let (kind, grant, agency, amount, actor, flag) = step;
    let grant = GRANTS[grant % GRANTS.len()];
    let agency = AGENCIES[agency % AGENCIES.len()];
    let amount = AMOUNTS[amount % AMOUNTS.len()];
    let name = KINDS[kind % KINDS.len()];
    let mut value = match name {
        "register-fund" => fund(),
        "record-contribution" => contribute(amount),
        "submit-proposal" => propose(grant, amount),
        "approve-grant" => approve(grant),
        "assign-agency" => {
            json!({"command": name, "grant": grant, "agency": agency, "allocation": amount, "lead": flag})
        }
        "revise-allocation" => {
            json!({"command": name, "grant": grant, "agency": agency, "allocation": amount, "reason": "r"})
        }
        "withdraw-agency" => {
            json!({"command": name, "grant": grant, "agency": agency, "reason": "r"})
        }
        "record-disbursement" => disburse(grant, agency, amount),
        "record-expenditure" => expend(grant, agency, amount),
        "record-refund" => refund(grant, agency, amount),
        "revise-grant" => revise(grant, amount),
        "close-grant" => close(grant),
        "finalize-grant" => finalize(grant),
        _ => simple(name, grant),
    };
    value
        .as_object_mut()
        .unwrap()
        .insert("actor".to_string(), json!(ACTORS[actor % ACTORS.len()]));
    value
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = (
        0..KINDS.len(),
        0..3usize,
        0..3usize,
        0..AMOUNTS.len(),
        0..3usize,
        any::<bool>(),
    );
    prop::collection::vec(step, 1..120)
}

/// Every figure that can be recomputed from other figures is equal to its recomputation.
fn check_invariants(world: &World) {
    for fund_id in world.fund_ids() {
        let fund = world.fund(&fund_id).unwrap();
        let grants: Vec<_> = world
            .fund_grant_ids(&fund_id)
            .into_iter()
            .map(|g| world.grant(&g).unwrap().clone())
            .collect();
        assert!(fund.available() >= Amount::ZERO, "available below zero");
        assert_eq!(
            fund.available(),
            fund.received + fund.income - fund.fees - fund.committed
        );
        assert_eq!(
            fund.cash(),
            fund.received + fund.income - fund.fees - fund.disbursed + fund.refunded
        );
        assert!(
            fund.pledges.iter().all(|p| p.paid <= p.amount),
            "a pledge overpaid"
        );
        assert_eq!(
            fund.committed,
            grants.iter().map(|g| g.commitment()).sum::<Amount>()
        );
        assert_eq!(
            fund.disbursed,
            grants.iter().map(|g| g.disbursed).sum::<Amount>()
        );
        assert_eq!(
            fund.refunded,
            grants.iter().map(|g| g.refunded).sum::<Amount>()
        );
        assert_eq!(fund.grants, grants.len() as u64);
    }
    for grant_id in world.grant_ids() {
        let grant = world.grant(&grant_id).unwrap();
        assert!(grant.allocated() <= grant.amount, "allocated above amount");
        assert!(grant.agencies.iter().filter(|a| a.lead).count() <= 1);
        for agency in &grant.agencies {
            assert!(
                agency.balance() >= Amount::ZERO,
                "agency balance below zero"
            );
            assert!(
                agency.net_disbursed() <= agency.allocation,
                "disbursed above allocation"
            );
            if let Some(budget) = agency.budget {
                assert_eq!(
                    budget.total(),
                    agency.allocation,
                    "budget off its allocation"
                );
                for (index, spent) in agency.category_expended.iter().enumerate() {
                    assert!(
                        spent.0 * 100 <= budget.0[index].0 * 120,
                        "a category spent past 120% of its budget"
                    );
                }
            }
        }
        let current: Amount = grant.agencies.iter().map(|a| a.balance()).sum();
        assert!(grant.disbursed - grant.expended - grant.refunded >= current);
        if grant.status == Status::Finalized {
            assert_eq!(
                grant.disbursed - grant.expended - grant.refunded,
                Amount::ZERO
            );
        }
        let view = world.grant_view(&grant_id).unwrap();
        assert_eq!(view.agencies.len(), grant.agencies.len());
    }
}

/// The second random walk: a fund with terms, and the secretariat's commands among the rest.
const KINDS_TWO: &[&str] = &[
    "record-contribution",
    "record-contribution",
    "record-pledge",
    "pledge-contribution",
    "record-income",
    "revise-fund-terms",
    "submit-proposal",
    "approve-grant",
    "approve-grant",
    "assign-agency",
    "assign-budgeted",
    "assign-budgeted",
    "revise-budgeted",
    "record-disbursement",
    "record-disbursement",
    "record-disbursement",
    "record-expenditure",
    "expend-category",
    "expend-category",
    "expend-category",
    "record-refund",
    "schedule-report",
    "submit-report",
    "accept-report",
    "return-report",
    "attach-document",
    "close-grant",
    "finalize-grant",
    "cancel-grant",
];
const CATEGORIES: &[&str] = &["staff", "travel", "indirect"];
const DATES: &[&str] = &[
    "2013-01-01",
    "2013-03-31",
    "2013-04-01",
    "2013-06-30",
    "2014-01-01",
];
const PERCENTS: &[&str] = &["0", "1", "2.5", "50", "70", "100"];

fn command_two(step: Step) -> Value {
    let (kind, grant, agency, amount, actor, flag) = step;
    let grant = GRANTS[grant % GRANTS.len()];
    let agency = AGENCIES[agency % AGENCIES.len()];
    let amount_text = AMOUNTS[amount % AMOUNTS.len()];
    let date = DATES[(amount + actor) % DATES.len()];
    let category = CATEGORIES[(amount + agency.len()) % CATEGORIES.len()];
    let pledge = ["P1", "P2"][actor % 2];
    let report = ["R1", "R2"][(amount + usize::from(flag)) % 2];
    let name = KINDS_TWO[kind % KINDS_TWO.len()];
    // A budget that sums to the allocation when it is a whole number (indirect at 7%/107).
    let budget = |allocation: &str| {
        let cents: i64 = (allocation.parse::<f64>().unwrap_or(0.0) * 100.0).round() as i64;
        let indirect = if flag { cents * 7 / 107 } else { 0 };
        json!({"staff": format!("{}.{:02}", (cents - indirect) / 100, (cents - indirect) % 100),
               "indirect": format!("{}.{:02}", indirect / 100, indirect % 100)})
    };
    let mut value = match name {
        "record-contribution" => contribute(amount_text),
        "record-pledge" => {
            json!({"command": name, "fund": "F", "pledge": pledge, "donor": "JP", "amount": amount_text, "signed_on": date})
        }
        "pledge-contribution" => with(contribute(amount_text), "pledge", json!(pledge)),
        "record-income" => {
            json!({"command": name, "fund": "F", "kind": "interest", "amount": amount_text, "received_on": date})
        }
        "revise-fund-terms" => {
            json!({"command": name, "fund": "F", "reason": "r", "admin_fee_percent": PERCENTS[amount % PERCENTS.len()],
                "tranche_threshold_percent": PERCENTS[actor % PERCENTS.len()], "hold_on_overdue_reports": flag})
        }
        "submit-proposal" => propose(grant, amount_text),
        "approve-grant" => approve(grant),
        "assign-agency" => {
            json!({"command": name, "grant": grant, "agency": agency, "allocation": amount_text, "lead": flag})
        }
        "assign-budgeted" => {
            json!({"command": "assign-agency", "grant": grant, "agency": agency, "allocation": amount_text, "budget": budget(amount_text)})
        }
        "revise-budgeted" => {
            json!({"command": "revise-allocation", "grant": grant, "agency": agency, "allocation": amount_text, "reason": "r", "budget": budget(amount_text)})
        }
        "record-disbursement" => with(disburse(grant, agency, amount_text), "paid_on", json!(date)),
        "record-expenditure" => expend(grant, agency, amount_text),
        "expend-category" => with(
            expend(grant, agency, amount_text),
            "category",
            json!(category),
        ),
        "record-refund" => refund(grant, agency, amount_text),
        "schedule-report" => {
            json!({"command": name, "grant": grant, "report": report, "kind": "progress", "period_end": "2013-03-31", "due_on": "2013-03-31"})
        }
        "submit-report" => {
            json!({"command": name, "grant": grant, "report": report, "submitted_on": date})
        }
        "accept-report" => {
            json!({"command": name, "grant": grant, "report": report, "accepted_on": date})
        }
        "return-report" => {
            json!({"command": name, "grant": grant, "report": report, "returned_on": date, "reason": "r"})
        }
        "attach-document" => {
            json!({"command": name, "grant": grant, "document": report, "title": "t", "category": "A02", "sha256": "ab".repeat(32)})
        }
        "close-grant" => close(grant),
        "finalize-grant" => finalize(grant),
        _ => simple(name, grant),
    };
    value
        .as_object_mut()
        .unwrap()
        .insert("actor".to_string(), json!(ACTORS[actor % ACTORS.len()]));
    value
}

/// What the events say the fees must be: each contribution's fee at the terms in force,
/// rounded half to even (a fee that rounds to 0 is none).
fn expected_fees(events: &[Event]) -> Amount {
    let mut percent = grantflow_domain::Percent::ZERO;
    let mut fees = Amount::ZERO;
    for event in events {
        match event {
            Event::FundRegistered { .. } => {
                percent = event
                    .registered_terms()
                    .admin_fee_percent
                    .unwrap_or(grantflow_domain::Percent::ZERO)
            }
            Event::TermsRevised { .. } => {
                percent = event.revised_terms().unwrap().admin_fee_percent
            }
            Event::ContributionRecorded { amount, .. } => {
                fees += percent.of_half_even(amount.amount)
            }
            _ => {}
        }
    }
    fees
}

/// A disbursement accepted against `before` passed the conditions in force then.
fn check_disbursement_conditions(before: &World, command: &Value) {
    let (Some(grant), Some(agency)) = (command["grant"].as_str(), command["agency"].as_str())
    else {
        return;
    };
    let state = before.grant(grant).unwrap();
    let fund = before.fund(&state.fund).unwrap();
    let current = state.agency(agency).unwrap();
    let threshold = i128::from(fund.terms.tranche_threshold_percent.hundredths());
    if current.net_disbursed() > Amount::ZERO {
        assert!(
            current.expended.0 * 10_000 >= threshold * current.net_disbursed().0,
            "a tranche passed the threshold in force"
        );
    }
    if fund.terms.hold_on_overdue_reports {
        let paid_on = grantflow_domain::Date::parse(command["paid_on"].as_str().unwrap()).unwrap();
        assert!(
            state
                .reports
                .iter()
                .all(|report| !report.overdue_on(paid_on)),
            "money moved while a report was overdue"
        );
    }
}

/// A grant's figures follow from its own stream alone (what lets a grant's audit trail read
/// only that stream): folding just its events gives the same view.
fn check_grants_follow_their_own_streams(events: &[Event], world: &World) {
    for grant in world.grant_ids() {
        let stream = format!("grant-{grant}");
        let mut own = World::default();
        for (index, event) in events.iter().enumerate() {
            if event.stream() == stream {
                evolve(&mut own, index as u64 + 1, event);
            }
        }
        assert_eq!(own.grant_view(&grant), world.grant_view(&grant), "{grant}");
    }
}

fn replay(events: &[Event]) -> World {
    let mut world = World::default();
    for (index, event) in events.iter().enumerate() {
        let stored = Event::from_parts(event.event_type(), &event.payload_json()).unwrap();
        assert_eq!(&stored, event);
        evolve(&mut world, index as u64 + 1, &stored);
    }
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_commands_keep_the_invariants(steps in steps()) {
        let start = [
            fund(), contribute("600"), propose("G1", "400"), propose("G2", "250"), approve("G1"),
            assign_lead("G1", "A", "200"), assign("G1", "B", "100"), disburse("G1", "A", "50"),
        ];
        let mut log = Log::given(&start);
        for step in steps {
            let before = log.world.clone();
            let logged = log.events.len();
            match log.run(&command(step)) {
                Ok(events) => prop_assert!(!events.is_empty()),
                Err(_) => {
                    prop_assert_eq!(&log.world, &before);
                    prop_assert_eq!(log.events.len(), logged);
                }
            }
            check_invariants(&log.world);
        }
        prop_assert_eq!(replay(&log.events), log.world.clone());
        check_grants_follow_their_own_streams(&log.events, &log.world);
        let snapshot: World = serde_json::from_str(&serde_json::to_string(&log.world).unwrap()).unwrap();
        prop_assert_eq!(snapshot, log.world);
    }

    #[test]
    fn the_secretariat_workflow_keeps_the_invariants(steps in steps()) {
        let start = [
            json!({"command": "register-fund", "fund": "F", "name": "Trust Fund", "currency": "USD",
                "admin_fee_percent": "1", "tranche_threshold_percent": "70", "hold_on_overdue_reports": true}),
            contribute("600"), propose("G1", "400"), propose("G2", "250"), approve("G1"),
            assign_lead("G1", "A", "200"), disburse("G1", "A", "50"),
        ];
        let mut log = Log::given(&start);
        for step in steps {
            let command = command_two(step);
            let before = log.world.clone();
            let logged = log.events.len();
            match log.run(&command) {
                Ok(events) => {
                    prop_assert!(!events.is_empty());
                    if command["command"] == "record-disbursement" {
                        check_disbursement_conditions(&before, &command);
                    }
                }
                Err(_) => {
                    prop_assert_eq!(&log.world, &before);
                    prop_assert_eq!(log.events.len(), logged);
                }
            }
            check_invariants(&log.world);
            prop_assert_eq!(log.world.fund("F").unwrap().fees, expected_fees(&log.events));
        }
        prop_assert_eq!(replay(&log.events), log.world.clone());
        check_grants_follow_their_own_streams(&log.events, &log.world);
        let snapshot: World = serde_json::from_str(&serde_json::to_string(&log.world).unwrap()).unwrap();
        prop_assert_eq!(snapshot, log.world);
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,40}", number in any::<i64>()) {
        for value in [json!(text), json!(number)] {
            for name in COMMAND_NAMES {
                let _ = grantflow_domain::parse_command(&json!({"command": name, "grant": value, "amount": value, "fund": "F"}));
            }
            let _ = grantflow_domain::parse_amount(&text, 2);
        }
    }
}
