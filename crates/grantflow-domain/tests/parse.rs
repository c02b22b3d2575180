//! The "shape and field values" check: parse_command.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_domain::{parse_amount, parse_command, Amount, Command, COMMAND_NAMES};
use serde_json::{json, Value};

/// Parses `command`; expects the error `code` with `field` named in its message.
fn rejects(command: Value, code: &str, field: &str) {
    let error = parse_command(&command).expect_err(&command.to_string());
    assert_eq!(error.code.as_str(), code, "{command}: {}", error.message);
    assert!(
        error.message.contains(field),
        "{command}: message {:?} should name {field}",
        error.message
    );
}

fn accepts(command: Value) -> Command {
    parse_command(&command)
        .unwrap_or_else(|error| panic!("{command}: {}", error.message))
        .command
}

fn every_command() -> Vec<Value> {
    vec![
        fund(),
        contribute("1"),
        propose("G", "1"),
        simple("reject-proposal", "G"),
        approve("G"),
        assign("G", "A", "1"),
        json!({"command": "revise-allocation", "grant": "G", "agency": "A", "allocation": "1", "reason": "r"}),
        json!({"command": "withdraw-agency", "grant": "G", "agency": "A", "reason": "r"}),
        disburse("G", "A", "1"),
        expend("G", "A", "1"),
        refund("G", "A", "1"),
        revise("G", "1"),
        simple("suspend-grant", "G"),
        simple("resume-grant", "G"),
        simple("cancel-grant", "G"),
        close("G"),
        finalize("G"),
        json!({"command": "revise-fund-terms", "fund": "F", "reason": "r", "admin_fee_percent": "1"}),
        json!({"command": "record-pledge", "fund": "F", "pledge": "P", "donor": "JP", "amount": "1", "signed_on": "2012-01-01"}),
        json!({"command": "record-income", "fund": "F", "kind": "interest", "amount": "1", "received_on": "2012-01-01"}),
        json!({"command": "schedule-report", "grant": "G", "report": "R", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        json!({"command": "submit-report", "grant": "G", "report": "R", "submitted_on": "2014-03-01"}),
        json!({"command": "accept-report", "grant": "G", "report": "R", "accepted_on": "2014-03-02"}),
        json!({"command": "return-report", "grant": "G", "report": "R", "returned_on": "2014-03-02", "reason": "r"}),
        json!({"command": "attach-document", "grant": "G", "document": "D", "title": "t", "category": "A02", "sha256": "ab".repeat(32)}),
    ]
}

#[test]
fn every_command_parses_with_its_name_and_stream() {
    let commands = every_command();
    assert_eq!(commands.len(), COMMAND_NAMES.len());
    for (value, name) in commands.into_iter().zip(COMMAND_NAMES) {
        let command = accepts(value);
        assert_eq!(command.name(), *name);
        let fund_command = [
            "register-fund",
            "record-contribution",
            "revise-fund-terms",
            "record-pledge",
            "record-income",
        ];
        let stream = if fund_command.contains(name) {
            "fund-F"
        } else {
            "grant-G"
        };
        assert_eq!(command.target_stream(), stream);
    }
}

#[test]
fn every_required_field_is_required_and_unknown_fields_are_refused() {
    for command in every_command() {
        let fields: Vec<String> = command.as_object().unwrap().keys().cloned().collect();
        for field in fields.iter().filter(|f| *f != "command" && *f != "actor") {
            rejects(without(command.clone(), field), "malformed_command", field);
        }
        rejects(
            with(command.clone(), "colour", json!("red")),
            "malformed_command",
            "colour",
        );
    }
}

#[test]
fn shape() {
    rejects(json!([1]), "malformed_command", "object");
    rejects(json!("register-fund"), "malformed_command", "object");
    rejects(json!({"fund": "F"}), "malformed_command", "command");
    rejects(json!({"command": 7}), "malformed_command", "command");
    rejects(
        json!({"command": "launch-rocket"}),
        "malformed_command",
        "launch-rocket",
    );
    rejects(with(fund(), "name", json!(5)), "malformed_command", "name");
    rejects(with(fund(), "name", json!("")), "malformed_command", "name");
    rejects(
        with(fund(), "name", json!("   ")),
        "malformed_command",
        "name",
    );
    rejects(
        with(fund(), "name", json!("x".repeat(4097))),
        "malformed_command",
        "name",
    );
    rejects(
        with(fund(), "name", json!("a\u{0}b")),
        "malformed_command",
        "name",
    );
    rejects(
        with(propose("G", "1"), "title", json!("")),
        "malformed_command",
        "title",
    );
    rejects(
        with(simple("cancel-grant", "G"), "reason", json!("")),
        "malformed_command",
        "reason",
    );
    rejects(
        with(simple("cancel-grant", "G"), "reason", Value::Null),
        "malformed_command",
        "reason",
    );
}

#[test]
fn common_fields() {
    let ok = accepts(with(
        with(fund(), "command_id", json!("c-1 ~!")),
        "expected_version",
        json!(0),
    ));
    assert_eq!(ok.name(), "register-fund");
    let request = parse_command(&with(
        with(fund(), "command_id", json!("abc")),
        "actor",
        json!("Ana María"),
    ))
    .unwrap();
    assert_eq!(
        (request.command_id.as_deref(), request.actor.as_deref()),
        (Some("abc"), Some("Ana María"))
    );
    rejects(
        with(fund(), "command_id", json!("")),
        "malformed_command",
        "command_id",
    );
    rejects(
        with(fund(), "command_id", json!("x".repeat(129))),
        "malformed_command",
        "command_id",
    );
    accepts(with(fund(), "command_id", json!("x".repeat(128))));
    rejects(
        with(fund(), "command_id", json!("tab\there")),
        "malformed_command",
        "command_id",
    );
    rejects(
        with(fund(), "command_id", json!("é")),
        "malformed_command",
        "command_id",
    );
    rejects(
        with(fund(), "command_id", json!(5)),
        "malformed_command",
        "command_id",
    );
    rejects(
        with(fund(), "actor", json!("")),
        "malformed_command",
        "actor",
    );
    rejects(
        with(fund(), "actor", json!("a".repeat(129))),
        "malformed_command",
        "actor",
    );
    rejects(
        with(fund(), "actor", json!("a\nb")),
        "malformed_command",
        "actor",
    );
    rejects(
        with(fund(), "actor", json!(1)),
        "malformed_command",
        "actor",
    );
    rejects(
        with(fund(), "expected_version", json!(-1)),
        "malformed_command",
        "expected_version",
    );
    rejects(
        with(fund(), "expected_version", json!(1.5)),
        "malformed_command",
        "expected_version",
    );
    rejects(
        with(fund(), "expected_version", json!("1")),
        "malformed_command",
        "expected_version",
    );
}

#[test]
fn ids() {
    for bad in ["", "a b", "a/b", "a\u{1}b", "é", "x".repeat(65).as_str()] {
        rejects(
            with(fund(), "fund", json!(bad)),
            "malformed_command",
            "fund",
        );
        rejects(disburse("G", bad, "1"), "malformed_command", "agency");
        rejects(
            with(contribute("1"), "donor", json!(bad)),
            "malformed_command",
            "donor",
        );
    }
    rejects(with(fund(), "fund", json!(12)), "malformed_command", "fund");
    accepts(with(fund(), "fund", json!("UN.TFHS_2012-x")));
    accepts(with(fund(), "fund", json!("x".repeat(64))));
}

#[test]
fn dates() {
    for bad in [
        "2012-02-30",
        "2012-2-3",
        "2012-13-01",
        "12-01-01",
        "2012/01/01",
        "2012-01-01T00:00:00Z",
        "",
    ] {
        rejects(
            with(close("G"), "closed_on", json!(bad)),
            "malformed_command",
            "closed_on",
        );
    }
    rejects(
        with(close("G"), "closed_on", json!(20120101)),
        "malformed_command",
        "closed_on",
    );
    accepts(with(close("G"), "closed_on", json!("2012-02-29")));
    rejects(
        with(approve("G"), "decided_on", json!("2011-02-29")),
        "malformed_command",
        "decided_on",
    );
    let ends_before = with(
        with(propose("G", "1"), "starts_on", json!("2013-01-01")),
        "ends_on",
        json!("2012-12-31"),
    );
    rejects(ends_before, "malformed_command", "ends_on");
}

#[test]
fn currency_and_country_codes() {
    for bad in ["usd", "US", "XYZ", "USDD", ""] {
        rejects(
            with(fund(), "currency", json!(bad)),
            "malformed_command",
            "currency",
        );
        rejects(
            with(disburse("G", "A", "1"), "currency", json!(bad)),
            "malformed_command",
            "currency",
        );
    }
    for good in ["USD", "MXN", "JPY", "EUR", "BHD", "KWD", "CLF", "CHF"] {
        accepts(with(fund(), "currency", json!(good)));
    }
    for bad in ["mx", "MEX", "XX", "", "UK"] {
        rejects(
            with(propose("G", "1"), "country", json!(bad)),
            "malformed_command",
            "country",
        );
    }
    accepts(with(propose("G", "1"), "country", json!("MX")));
}

#[test]
fn lists_and_optional_fields() {
    let full = json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "t", "amount": "1",
        "country": "MX", "regions": ["Chiapas", "Oaxaca"], "starts_on": "2013-01-01", "ends_on": "2015-09-30",
        "activities": ["a", "b", "c"], "currency": "USD"});
    let Command::SubmitProposal {
        regions,
        activities,
        ..
    } = accepts(full.clone())
    else {
        panic!()
    };
    assert_eq!((regions.len(), activities.len()), (2, 3));
    rejects(
        with(full.clone(), "regions", json!("Chiapas")),
        "malformed_command",
        "regions",
    );
    rejects(
        with(full.clone(), "regions", json!([""])),
        "malformed_command",
        "regions",
    );
    rejects(
        with(full.clone(), "regions", json!([1])),
        "malformed_command",
        "regions",
    );
    rejects(
        with(full.clone(), "activities", json!(vec!["a"; 65])),
        "malformed_command",
        "activities",
    );
    rejects(
        with(assign("G", "A", "1"), "lead", json!("yes")),
        "malformed_command",
        "lead",
    );
    let Command::AssignAgency { lead, .. } =
        accepts(with(assign("G", "A", "1"), "lead", json!(true)))
    else {
        panic!()
    };
    assert!(lead);
    rejects(
        with(disburse("G", "A", "1"), "reference", json!("")),
        "malformed_command",
        "reference",
    );
    rejects(
        with(disburse("G", "A", "1"), "reference", json!(7)),
        "malformed_command",
        "reference",
    );
    rejects(
        with(expend("G", "A", "1"), "reference", json!("x")),
        "malformed_command",
        "reference",
    );
}

#[test]
fn revise_grant_needs_amount_or_end_date() {
    let bare = json!({"command": "revise-grant", "grant": "G", "reason": "r"});
    rejects(bare.clone(), "malformed_command", "amount");
    rejects(bare.clone(), "malformed_command", "ends_on");
    accepts(with(bare.clone(), "ends_on", json!("2015-09-30")));
    accepts(with(
        with(bare.clone(), "amount", json!("5")),
        "decided_on",
        json!("2014-01-01"),
    ));
    rejects(
        with(bare, "ends_on", json!("2015-02-30")),
        "malformed_command",
        "ends_on",
    );
}

#[test]
fn amounts() {
    assert_eq!(parse_amount("3209232.40", 2), Ok(Amount(320923240)));
    assert_eq!(parse_amount("3209232.4", 2), Ok(Amount(320923240)));
    assert_eq!(parse_amount("260000000", 0), Ok(Amount(260000000)));
    assert_eq!(
        parse_amount("999999999999999.99", 2),
        Ok(Amount(99999999999999999))
    );
    for bad in [
        "1.234",
        "0",
        "0.00",
        "-1",
        "+1",
        "1e5",
        "1E5",
        "1234567890123456",
        "",
        ".5",
        "5.",
        "1,000",
        " 1",
        "1 ",
        "abc",
        "1.2.3",
        "١",
    ] {
        let error = parse_amount(bad, 2).expect_err(bad);
        assert_eq!(error.code.as_str(), "invalid_amount", "{bad}");
        assert!(error.message.contains("amount"), "{}", error.message);
    }
    assert_eq!(
        parse_amount("1.5", 0).unwrap_err().code.as_str(),
        "invalid_amount"
    );
    // Syntax is checked at parse time, the fund's decimals only in decide.
    accepts(disburse("G", "A", "1.234"));
    for bad in [
        "0",
        "0.00",
        "-1",
        "+1",
        "1e5",
        "1234567890123456",
        "1.2.3",
        "",
    ] {
        rejects(disburse("G", "A", bad), "invalid_amount", "amount");
        rejects(assign("G", "A", bad), "invalid_amount", "allocation");
    }
    rejects(
        with(disburse("G", "A", "1"), "amount", json!(5)),
        "invalid_amount",
        "amount",
    );
    rejects(
        with(disburse("G", "A", "1"), "amount", json!(true)),
        "malformed_command",
        "amount",
    );
    rejects(revise("G", "-5"), "invalid_amount", "amount");
}

#[test]
fn amounts_in_a_currency_of_their_own_are_checked_at_parse() {
    let yen = |amount: Value| {
        with(
            approve("G"),
            "reported_equivalent",
            json!({"amount": amount, "currency": "JPY"}),
        )
    };
    accepts(yen(json!("260000000")));
    rejects(
        yen(json!("260000000.5")),
        "invalid_amount",
        "reported_equivalent",
    );
    rejects(
        yen(json!(260000000)),
        "invalid_amount",
        "reported_equivalent",
    );
    rejects(
        with(
            approve("G"),
            "reported_equivalent",
            json!({"amount": "1", "currency": "YEN"}),
        ),
        "malformed_command",
        "currency",
    );
    rejects(
        with(approve("G"), "reported_equivalent", json!({"amount": "1"})),
        "malformed_command",
        "currency",
    );
    rejects(
        with(
            approve("G"),
            "reported_equivalent",
            json!({"currency": "JPY"}),
        ),
        "malformed_command",
        "amount",
    );
    rejects(
        with(
            approve("G"),
            "reported_equivalent",
            json!({"amount": "1", "currency": "JPY", "x": 1}),
        ),
        "malformed_command",
        "reported_equivalent",
    );
    rejects(
        with(approve("G"), "reported_equivalent", json!("1 JPY")),
        "malformed_command",
        "reported_equivalent",
    );
    let original = |amount: &str, currency: &str| {
        with(
            with(contribute("1"), "original_amount", json!(amount)),
            "original_currency",
            json!(currency),
        )
    };
    accepts(original("260000000", "JPY"));
    accepts(original("1.234", "BHD"));
    rejects(original("1.5", "JPY"), "invalid_amount", "original_amount");
    rejects(
        original("1", "XYZ"),
        "malformed_command",
        "original_currency",
    );
    rejects(
        with(contribute("1"), "original_amount", json!("5")),
        "malformed_command",
        "original_currency",
    );
    rejects(
        with(contribute("1"), "original_currency", json!("JPY")),
        "malformed_command",
        "original_amount",
    );
}

#[test]
fn shape_errors_win_over_amount_errors() {
    rejects(
        with(disburse("G", "A", "-1"), "paid_on", json!("2012-02-30")),
        "malformed_command",
        "paid_on",
    );
    rejects(
        with(disburse("G", "A", "1"), "amount", json!(5)).pipe(|c| with(c, "x", json!(1))),
        "malformed_command",
        "x",
    );
    rejects(
        with(assign("G", "A", "0"), "lead", json!(1)),
        "malformed_command",
        "lead",
    );
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl Pipe for Value {}

#[test]
fn no_panic_on_odd_input() {
    let odd = [
        json!(null),
        json!(1),
        json!({}),
        json!({"command": null}),
        json!({"command": "finalize-grant", "grant": null}),
        json!({"command": "finalize-grant", "grant": {"a": 1}}),
        json!({"command": "approve-grant", "grant": "G", "decided_on": []}),
    ];
    for value in odd {
        assert_eq!(
            parse_command(&value).unwrap_err().code.as_str(),
            "malformed_command",
            "{value}"
        );
    }
}
