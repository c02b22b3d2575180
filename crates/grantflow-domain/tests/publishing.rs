//! Part three of the contract: sectors on proposals and revisions, the fund's IATI
//! organisation identifier, and `future_date`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_domain::{parse_command_on, Date, Event, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED};
use serde_json::{json, Value};

fn sectors(list: Value) -> Value {
    with(propose("G", "600.00"), "sectors", list)
}

#[test]
fn a_proposal_names_its_sectors_summing_to_100() {
    let given = [fund(), contribute("1000.00")];
    check(
        &given,
        sectors(json!([{"code": "15190", "percentage": "100"}])),
        "grant.proposed",
    );
    check(
        &given,
        sectors(
            json!([{"code": "15190", "percentage": "60.5"}, {"code": "15220", "percentage": "39.50"}]),
        ),
        "grant.proposed",
    );
    for (bad, says) in [
        (
            json!([{"code": "15190", "percentage": "99.99"}]),
            "sum to exactly 100",
        ),
        (json!([{"code": "15199", "percentage": "100"}]), "15199"),
        (
            json!([{"code": 15190, "percentage": "100"}]),
            "sectors.code",
        ),
        (
            json!([{"code": "15190", "percentage": 100}]),
            "sectors.percentage",
        ),
        (
            json!([{"code": "15190", "percentage": "0"}, {"code": "15220", "percentage": "100"}]),
            "above 0",
        ),
        (
            json!([{"code": "15190", "percentage": "50"}, {"code": "15190", "percentage": "50"}]),
            "twice",
        ),
        (
            json!([{"code": "15190", "percentage": "100", "vocabulary": "1"}]),
            "vocabulary",
        ),
        (json!([]), "sectors"),
        (json!("15190"), "sectors"),
    ] {
        let message = check(&given, sectors(bad.clone()), "malformed_command");
        assert!(message.contains(says), "{bad}: {message}");
    }
    let log = Log::given(&[
        fund(),
        contribute("1000.00"),
        sectors(json!([{"code": "15190", "percentage": "100"}])),
    ]);
    let view = serde_json::to_value(log.world.grant_view("G").unwrap()).unwrap();
    assert_eq!(
        view["sectors"],
        json!([{"code": "15190", "percentage": "100.00"}])
    );
    assert_eq!(log.events.last().unwrap().schema(), EVENT_SCHEMA_EXTENDED);
    let plain = Log::given(&[fund(), propose("G", "1.00")]);
    assert_eq!(plain.events.last().unwrap().schema(), EVENT_SCHEMA);
    let view = serde_json::to_value(plain.world.grant_view("G").unwrap()).unwrap();
    assert_eq!(view["sectors"], json!([]));
}

#[test]
fn a_revision_may_carry_new_sectors_alone() {
    let given = approved();
    let revise = json!({"command": "revise-grant", "grant": "G", "reason": "re-classified",
        "sectors": [{"code": "15190", "percentage": "70"}, {"code": "15160", "percentage": "30"}], "actor": APPROVER});
    check(&given, revise.clone(), "grant.revised");
    let log = Log::given(&plus(given.clone(), &[revise]));
    let view = serde_json::to_value(log.world.grant_view("G").unwrap()).unwrap();
    assert_eq!(
        view["sectors"][1],
        json!({"code": "15160", "percentage": "30.00"})
    );
    assert_eq!(view["amount"], "600.00");
    assert!(matches!(
        log.events.last(),
        Some(Event::GrantRevised { .. })
    ));
    let nothing =
        json!({"command": "revise-grant", "grant": "G", "reason": "r", "actor": APPROVER});
    check(&given, nothing, "malformed_command");
}

#[test]
fn a_fund_names_its_iati_organisation_identifier() {
    let with_ref = with(fund(), "iati_org_ref", json!("XM-DAC-41301"));
    check(&[], with_ref.clone(), "fund.registered");
    let log = Log::given(&[with_ref]);
    let view = serde_json::to_value(log.world.fund_view("F").unwrap()).unwrap();
    assert_eq!(view["iati_org_ref"], "XM-DAC-41301");
    assert_eq!(log.events[0].schema(), EVENT_SCHEMA_EXTENDED);
    for bad in [
        "XI-GRANTFLOW-F",
        "XM-DAC-",
        "XM-DAC 41301",
        "XM-DAC-4/1",
        "",
        "41301",
    ] {
        let message = check(
            &[],
            with(fund(), "iati_org_ref", json!(bad)),
            "malformed_command",
        );
        assert!(message.contains("iati_org_ref"), "{bad}: {message}");
    }
    let view = serde_json::to_value(Log::given(&[fund()]).world.fund_view("F").unwrap()).unwrap();
    assert_eq!(view["iati_org_ref"], Value::Null);
}

#[test]
fn money_cannot_move_on_a_day_that_has_not_come() {
    let today = Date::parse("2026-12-06").unwrap();
    let dated = [
        (contribute("1.00"), "received_on"),
        (approve("G"), "decided_on"),
        (disburse("G", "A", "1.00"), "paid_on"),
        (refund("G", "A", "1.00"), "received_on"),
        (close("G"), "closed_on"),
        (
            json!({"command": "record-pledge", "fund": "F", "pledge": "P", "donor": "D", "amount": "1", "signed_on": "x"}),
            "signed_on",
        ),
        (
            json!({"command": "record-income", "fund": "F", "kind": "other", "amount": "1", "received_on": "x"}),
            "received_on",
        ),
        (
            json!({"command": "submit-report", "grant": "G", "report": "R", "submitted_on": "x"}),
            "submitted_on",
        ),
        (
            json!({"command": "accept-report", "grant": "G", "report": "R", "accepted_on": "x"}),
            "accepted_on",
        ),
        (
            json!({"command": "return-report", "grant": "G", "report": "R", "returned_on": "x", "reason": "r"}),
            "returned_on",
        ),
        (
            json!({"command": "attach-document", "grant": "G", "document": "D", "title": "t", "category": "A02", "sha256": "ab".repeat(32), "issued_on": "x"}),
            "issued_on",
        ),
        (
            json!({"command": "revise-grant", "grant": "G", "amount": "1", "reason": "r", "decided_on": "x"}),
            "decided_on",
        ),
    ];
    for (command, field) in dated {
        let on = |date: &str| with(command.clone(), field, json!(date));
        let error = parse_command_on(&on("2026-12-07"), today).expect_err(field);
        assert_eq!(error.code.as_str(), "future_date", "{field}");
        assert!(
            error.message.contains(field) && error.message.contains("2026-12-07"),
            "{}",
            error.message
        );
        assert!(
            parse_command_on(&on("2026-12-06"), today).is_ok(),
            "{field} today"
        );
        // A bad amount is reported after the date, a shape problem before it.
        if command.get("amount").is_some() {
            let both = with(on("2031-03-01"), "amount", json!("1.001x"));
            assert_eq!(
                parse_command_on(&both, today).unwrap_err().code.as_str(),
                "future_date"
            );
        }
        let shape = with(on("2031-03-01"), "unknown_field", json!(1));
        assert_eq!(
            parse_command_on(&shape, today).unwrap_err().code.as_str(),
            "malformed_command"
        );
    }
    // Dates that plan may lie ahead.
    let planned = json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "t", "amount": "1",
        "starts_on": "2030-01-01", "ends_on": "2032-12-31"});
    assert!(parse_command_on(&planned, today).is_ok());
    let schedule = json!({"command": "schedule-report", "grant": "G", "report": "R", "kind": "final", "period_end": "2032-12-31", "due_on": "2033-03-31"});
    assert!(parse_command_on(&schedule, today).is_ok());
    let expenditure = with(expend("G", "A", "1.00"), "period_end", json!("2030-06-30"));
    assert!(parse_command_on(&expenditure, today).is_ok());
}
