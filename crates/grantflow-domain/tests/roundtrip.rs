//! Stored forms: every event type reads back exactly from its payload; the world snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_domain::{command_of_event, evolve, Event, World, COMMAND_NAMES, EVENT_TYPES};
use serde_json::json;
use std::collections::BTreeSet;

/// A log that holds every event type at least once.
fn every_event() -> Log {
    let full_proposal = json!({"command": "submit-proposal", "fund": "F", "grant": "MEX-1", "title": "Migrants \"in transit\" — México",
        "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"], "starts_on": "2013-01-01",
        "ends_on": "2015-09-30", "activities": ["institutions", "shelters", "co-existence"]});
    let withdraw =
        json!({"command": "withdraw-agency", "grant": "MEX-1", "agency": "ILO", "reason": "left"});
    let revise_allocation = json!({"command": "revise-allocation", "grant": "MEX-1", "agency": "IOM", "allocation": "1000000", "reason": "plan"});
    let revise_grant = json!({"command": "revise-grant", "grant": "MEX-1", "amount": "3121707", "ends_on": "2015-12-31",
        "decided_on": "2014-01-01", "reason": "budget", "actor": APPROVER});
    let steps = vec![
        fund(),
        with(
            with(
                contribute("10000000"),
                "original_amount",
                json!("800000000"),
            ),
            "original_currency",
            json!("JPY"),
        ),
        full_proposal,
        with(
            approve("MEX-1"),
            "reported_equivalent",
            json!({"amount": "260000000", "currency": "JPY"}),
        ),
        assign_lead("MEX-1", "IOM", "500000"),
        assign("MEX-1", "ILO", "100000"),
        revise_allocation,
        withdraw,
        with(
            disburse("MEX-1", "IOM", "400000.50"),
            "reference",
            json!("TR-1"),
        ),
        expend("MEX-1", "IOM", "100000"),
        with(refund("MEX-1", "IOM", "0.50"), "reference", json!("RF-1")),
        revise_grant,
        simple("suspend-grant", "MEX-1"),
        simple("resume-grant", "MEX-1"),
        simple("cancel-grant", "MEX-1"),
        refund("MEX-1", "IOM", "300000"),
        finalize("MEX-1"),
        propose("R", "1"),
        simple("reject-proposal", "R"),
        propose("C", "1"),
        approve("C"),
        close("C"),
        json!({"command": "revise-fund-terms", "fund": "F", "reason": "MPTF", "admin_fee_percent": "1", "tranche_threshold_percent": "70", "actor": APPROVER}),
        json!({"command": "record-pledge", "fund": "F", "pledge": "JP-2012", "donor": "JP", "amount": "500000", "signed_on": "2012-03-01", "due_on": "2012-06-30"}),
        with(contribute("250000"), "pledge", json!("JP-2012")),
        json!({"command": "record-income", "fund": "F", "kind": "interest", "amount": "1234.56", "received_on": "2012-12-31"}),
        json!({"command": "attach-document", "fund": "F", "document": "TOR", "title": "Terms of reference", "category": "B15", "sha256": "ab".repeat(32), "url": "https://example.org/tor.pdf", "issued_on": "2012-01-01"}),
        json!({"command": "schedule-report", "grant": "C", "report": "AR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        json!({"command": "submit-report", "grant": "C", "report": "AR-2013", "submitted_on": "2014-03-01", "document": {"title": "Annual report", "sha256": "cd".repeat(32)}}),
        json!({"command": "return-report", "grant": "C", "report": "AR-2013", "returned_on": "2014-03-05", "reason": "figures", "actor": APPROVER}),
        json!({"command": "submit-report", "grant": "C", "report": "AR-2013", "submitted_on": "2014-03-10"}),
        json!({"command": "accept-report", "grant": "C", "report": "AR-2013", "accepted_on": "2014-03-12", "actor": APPROVER}),
        json!({"command": "attach-document", "grant": "C", "document": "PRODOC", "title": "Project document", "category": "A02", "sha256": "ef".repeat(32)}),
        propose("B", "1000"),
        approve("B"),
        with(
            assign_lead("B", "UNDP", "107"),
            "budget",
            json!({"staff": "100", "indirect": "7"}),
        ),
        json!({"command": "revise-allocation", "grant": "B", "agency": "UNDP", "allocation": "214", "reason": "plan", "budget": {"staff": "150", "travel": "50", "indirect": "14"}}),
        disburse("B", "UNDP", "214"),
        with(expend("B", "UNDP", "100"), "category", json!("staff")),
    ];
    Log::given(&steps)
}

#[test]
fn every_event_type_round_trips_byte_for_byte() {
    let log = every_event();
    let seen: BTreeSet<&str> = log.events.iter().map(Event::event_type).collect();
    assert_eq!(seen, EVENT_TYPES.iter().copied().collect::<BTreeSet<_>>());
    for event in &log.events {
        let payload = event.payload_json();
        let back = Event::from_parts(event.event_type(), &payload).unwrap();
        assert_eq!(&back, event);
        assert_eq!(back.payload_json(), payload);
        let extended = (event.event_type() == "fund.contribution_recorded"
            && payload.contains("\"pledge\":"))
            || payload.contains("\"budget\":")
            || payload.contains("\"category\":\"staff\"")
            || (event.event_type() == "fund.registered" && payload.contains("_percent"));
        assert_eq!(event.schema(), if extended { 2 } else { 1 }, "{payload}");
        assert!(
            payload.starts_with('{') && !payload.contains(": "),
            "{payload}"
        );
        let value: serde_json::Value = serde_json::from_str(&payload).unwrap();
        let key = if event.event_type().starts_with("fund.") {
            "fund"
        } else {
            "grant"
        };
        assert!(value.get(key).is_some(), "{payload}");
        assert!(event.stream().starts_with(&format!("{key}-")));
        assert!(COMMAND_NAMES.contains(&command_of_event(event)));
    }
}

#[test]
fn payloads_are_the_documented_fields() {
    let log = every_event();
    let payload = |event_type: &str| -> String {
        log.events
            .iter()
            .find(|e| e.event_type() == event_type)
            .unwrap()
            .payload_json()
    };
    assert_eq!(
        payload("grant.approved"),
        r#"{"grant":"MEX-1","fund":"F","amount":"3209232.40","decided_on":"2012-09-27","reported_equivalent":{"amount":"260000000","currency":"JPY"}}"#
    );
    assert_eq!(
        payload("fund.grant_committed"),
        r#"{"fund":"F","grant":"MEX-1","amount":"3209232.40","commitment":"3209232.40"}"#
    );
    assert_eq!(
        payload("grant.disbursement_recorded"),
        r#"{"grant":"MEX-1","agency":"IOM","amount":"400000.50","paid_on":"2013-01-15","reference":"TR-1"}"#
    );
    assert_eq!(
        payload("fund.contribution_recorded"),
        r#"{"fund":"F","donor":"JP","amount":"10000000.00","received_on":"2012-01-10","original_amount":"800000000","original_currency":"JPY"}"#
    );
    assert_eq!(
        payload("grant.revised"),
        r#"{"grant":"MEX-1","previous_amount":"3209232.40","amount":"3121707.00","previous_ends_on":"2015-09-30","ends_on":"2015-12-31","reason":"budget","decided_on":"2014-01-01"}"#
    );
    assert_eq!(
        payload("grant.resumed"),
        r#"{"grant":"MEX-1","status":"active","reason":"because"}"#
    );
    let causes: Vec<String> = log
        .events
        .iter()
        .filter(|e| e.event_type() == "fund.commitment_revised")
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.payload_json()).unwrap()["cause"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(causes, ["revise-grant", "cancel-grant", "record-refund"]);
    let proposed = payload("grant.proposed");
    assert!(
        proposed.contains(r#""submitted_by":"sec""#)
            && proposed.contains(r#""regions":["Chiapas","Oaxaca"]"#),
        "{proposed}"
    );
}

#[test]
fn from_parts_refuses_what_it_cannot_read() {
    let bad = [
        ("grant.nonsense", r#"{"grant":"G"}"#),
        ("grant.finalized", "not json"),
        ("grant.finalized", r#"{"grant":"G","extra":1}"#),
        ("grant.finalized", r#"{"grant":"G"} {"grant":"G"}"#),
        ("grant.finalized", r#"["G"]"#),
        ("grant.finalized", ""),
        ("grant.finalized", r#"{}"#),
        ("grant.closed", r#"{"grant":"G","closed_on":"2012-02-30"}"#),
        (
            "fund.registered",
            r#"{"fund":"F","name":"n","currency":"ZZZ"}"#,
        ),
        (
            "grant.disbursement_recorded",
            r#"{"grant":"G","agency":"A","amount":5,"paid_on":"2012-01-01"}"#,
        ),
        (
            "grant.disbursement_recorded",
            r#"{"grant":"G","agency":"A","amount":"1e5","paid_on":"2012-01-01"}"#,
        ),
        (
            "fund.commitment_revised",
            r#"{"fund":"F","grant":"G","previous_commitment":"1.00","commitment":"0.00","cause":"nope"}"#,
        ),
        (
            "grant.resumed",
            r#"{"grant":"G","status":"sleeping","reason":"r"}"#,
        ),
    ];
    for (event_type, payload) in bad {
        let error = Event::from_parts(event_type, payload).expect_err(payload);
        assert_eq!(error.code.as_str(), "malformed_command");
    }
}

#[test]
fn world_snapshot_round_trips_and_replay_is_deterministic() {
    let log = every_event();
    let text = serde_json::to_string(&log.world).unwrap();
    let back: World = serde_json::from_str(&text).unwrap();
    assert_eq!(back, log.world);
    let mut replayed = World::default();
    for (index, event) in log.events.iter().enumerate() {
        let stored = Event::from_parts(event.event_type(), &event.payload_json()).unwrap();
        evolve(&mut replayed, index as u64 + 1, &stored);
    }
    assert_eq!(replayed, log.world);
    assert_eq!(replayed.grant_ids(), ["MEX-1", "R", "C", "B"]);
    let mex = replayed.grant_view("MEX-1").unwrap();
    assert_eq!(
        (
            mex.status.as_str(),
            mex.amount.as_str(),
            mex.disbursed.as_str()
        ),
        ("finalized", "3121707.00", "400000.50")
    );
    let details = replayed.grant_details("MEX-1").unwrap();
    assert_eq!(
        (details.country.as_deref(), details.ends_on.as_deref()),
        (Some("MX"), Some("2015-12-31"))
    );
    assert_eq!(details.commitment, "100000.00");
}
