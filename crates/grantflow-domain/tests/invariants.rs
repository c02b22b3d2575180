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
        assert!(
            fund.received - fund.committed >= Amount::ZERO,
            "available below zero"
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
