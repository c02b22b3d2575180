//! Given/when/then for every command: accepted, and each rejection it can meet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn register_fund() {
    check(&[], fund(), "fund.registered");
    check(&[fund()], fund(), "fund_exists");
    check(
        &[],
        with(fund(), "expected_version", json!(0)),
        "fund.registered",
    );
    check(
        &[],
        with(fund(), "expected_version", json!(1)),
        "version_conflict",
    );
    check(
        &[fund()],
        with(fund(), "expected_version", json!(0)),
        "fund_exists",
    );
}

#[test]
fn record_contribution() {
    check(
        &[fund()],
        contribute("1000.00"),
        "fund.contribution_recorded",
    );
    check(&[], contribute("1000.00"), "unknown_fund");
    check(&[fund()], contribute("1000.001"), "invalid_amount");
    check(&[], contribute("1000.001"), "unknown_fund");
    check(
        &[fund()],
        with(contribute("10"), "currency", json!("EUR")),
        "currency_mismatch",
    );
    check(
        &[fund()],
        with(contribute("10"), "currency", json!("USD")),
        "fund.contribution_recorded",
    );
    check(
        &[fund()],
        with(contribute("10"), "expected_version", json!(1)),
        "fund.contribution_recorded",
    );
    check(
        &[fund()],
        with(contribute("10"), "expected_version", json!(2)),
        "version_conflict",
    );
    let with_yen = with(
        with(contribute("10"), "original_amount", json!("1000")),
        "original_currency",
        json!("JPY"),
    );
    check(&[fund()], with_yen, "fund.contribution_recorded");
}

#[test]
fn submit_proposal() {
    let base = [fund()];
    check(&base, propose("G", "600.00"), "grant.proposed");
    check(&[], propose("G", "600.00"), "unknown_fund");
    check(
        &[fund(), propose("G", "1")],
        propose("G", "600.00"),
        "grant_exists",
    );
    check(&base, propose("G", "600.005"), "invalid_amount");
    check(
        &base,
        with(propose("G", "6"), "currency", json!("MXN")),
        "currency_mismatch",
    );
    check(
        &base,
        with(propose("G", "6"), "expected_version", json!(0)),
        "grant.proposed",
    );
    check(
        &base,
        with(propose("G", "6"), "expected_version", json!(3)),
        "version_conflict",
    );
    // A proposal may exceed what the fund has; approval is where the money must be there.
    check(&base, propose("G", "999999999.99"), "grant.proposed");
}

#[test]
fn reject_proposal() {
    let proposed = [fund(), contribute("1000"), propose("G", "600")];
    check(&proposed, simple("reject-proposal", "G"), "grant.rejected");
    check(&proposed, simple("reject-proposal", "X"), "unknown_grant");
    check(&approved(), simple("reject-proposal", "G"), "invalid_state");
    let rejected = plus(proposed.to_vec(), &[simple("reject-proposal", "G")]);
    check(&rejected, simple("reject-proposal", "G"), "invalid_state");
    check(&rejected, approve("G"), "invalid_state");
}

#[test]
fn approve_grant() {
    let proposed = vec![fund(), contribute("1000"), propose("G", "600")];
    check(
        &proposed,
        approve("G"),
        "grant.approved fund.grant_committed",
    );
    check(
        &proposed,
        with(approve("G"), "actor", json!(SECRETARIAT)),
        "four_eyes_violation",
    );
    check(
        &[fund(), contribute("500"), propose("G", "600")],
        approve("G"),
        "insufficient_funds",
    );
    check(&approved(), approve("G"), "invalid_state");
    check(&proposed, approve("X"), "unknown_grant");
    let yen = with(
        approve("G"),
        "reported_equivalent",
        json!({"amount": "260000000", "currency": "JPY"}),
    );
    check(&proposed, yen, "grant.approved fund.grant_committed");
    // Four eyes comes after the state: a rejected proposal is invalid_state for anyone.
    let rejected = plus(proposed.clone(), &[simple("reject-proposal", "G")]);
    check(
        &rejected,
        with(approve("G"), "actor", json!(SECRETARIAT)),
        "invalid_state",
    );
    // Two grants cannot commit the same money.
    let second = plus(approved(), &[propose("H", "500")]);
    let message = check(&second, approve("H"), "insufficient_funds");
    assert!(message.contains("400.00 USD available"), "{message}");
}

#[test]
fn assign_agency() {
    check(
        &approved(),
        assign_lead("G", "A", "400"),
        "grant.agency_assigned",
    );
    check(&active(), assign("G", "A", "10"), "agency_already_assigned");
    check(&active(), assign_lead("G", "C", "10"), "lead_exists");
    check(&active(), assign("G", "C", "0"), "invalid_amount");
    check(&active(), assign("G", "C", "0.001"), "invalid_amount");
    check(&approved(), assign("G", "A", "600.01"), "over_allocation");
    check(
        &approved(),
        assign("G", "A", "600.00"),
        "grant.agency_assigned",
    );
    check(&active(), assign("G", "C", "1"), "over_allocation");
    let proposed = [fund(), contribute("1000"), propose("G", "600")];
    check(&proposed, assign("G", "A", "1"), "invalid_state");
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        assign("G", "C", "1"),
        "invalid_state",
    );
    // Check order: existence, then the amount's decimals, then state.
    check(&proposed, assign("X", "A", "1.001"), "unknown_grant");
    check(&proposed, assign("G", "A", "1.001"), "invalid_amount");
    check(
        &proposed,
        with(assign("G", "A", "1.001"), "currency", json!("EUR")),
        "currency_mismatch",
    );
    check(
        &proposed,
        with(assign("G", "A", "1"), "expected_version", json!(9)),
        "version_conflict",
    );
    check(
        &proposed,
        with(assign("X", "A", "1"), "expected_version", json!(9)),
        "unknown_grant",
    );
}

#[test]
fn revise_allocation() {
    let revise = |agency: &str, allocation: &str| json!({"command": "revise-allocation", "grant": "G", "agency": agency, "allocation": allocation, "reason": "plan"});
    check(&active(), revise("A", "300"), "grant.allocation_revised");
    check(&active(), revise("A", "100.00"), "grant.allocation_revised");
    check(
        &active(),
        revise("A", "99.99"),
        "allocation_below_disbursed",
    );
    check(&active(), revise("C", "10"), "agency_not_assigned");
    check(&active(), revise("B", "200.01"), "over_allocation");
    check(&active(), revise("A", "400.01"), "over_allocation");
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        revise("B", "100"),
        "grant.allocation_revised",
    );
    check(
        &plus(active(), &[close("G")]),
        revise("B", "100"),
        "invalid_state",
    );
    // A refund lowers what counts as disbursed.
    let refunded = plus(active(), &[refund("G", "A", "40")]);
    check(&refunded, revise("A", "60"), "grant.allocation_revised");
    check(
        &refunded,
        revise("A", "59.99"),
        "allocation_below_disbursed",
    );
}

#[test]
fn withdraw_agency() {
    let withdraw = |agency: &str| json!({"command": "withdraw-agency", "grant": "G", "agency": agency, "reason": "left"});
    check(&active(), withdraw("B"), "grant.agency_withdrawn");
    check(&active(), withdraw("A"), "agency_has_funds");
    check(&active(), withdraw("C"), "agency_not_assigned");
    check(
        &plus(active(), &[refund("G", "A", "100")]),
        withdraw("A"),
        "grant.agency_withdrawn",
    );
    check(
        &plus(active(), &[simple("cancel-grant", "G")]),
        withdraw("B"),
        "invalid_state",
    );
    // Once withdrawn, an agency may be assigned again and starts fresh.
    let again = plus(active(), &[withdraw("B")]);
    check(&again, assign("G", "B", "200"), "grant.agency_assigned");
    check(&again, disburse("G", "B", "1"), "agency_not_assigned");
}

#[test]
fn record_disbursement() {
    check(
        &active(),
        disburse("G", "A", "300"),
        "grant.disbursement_recorded",
    );
    check(&active(), disburse("G", "A", "300.01"), "over_disbursement");
    check(&active(), disburse("G", "C", "1"), "agency_not_assigned");
    check(&active(), disburse("G", "A", "1.234"), "invalid_amount");
    check(
        &active(),
        with(disburse("G", "A", "1"), "currency", json!("MXN")),
        "currency_mismatch",
    );
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        disburse("G", "A", "1"),
        "invalid_state",
    );
    check(
        &plus(active(), &[close("G")]),
        disburse("G", "A", "1"),
        "invalid_state",
    );
    check(
        &plus(active(), &[simple("cancel-grant", "G")]),
        disburse("G", "A", "1"),
        "invalid_state",
    );
    let with_ref = with(disburse("G", "A", "1"), "reference", json!("TR-2013-001"));
    check(&active(), with_ref, "grant.disbursement_recorded");
    // After a refund the agency may receive it again.
    check(
        &plus(
            active(),
            &[disburse("G", "A", "300"), refund("G", "A", "50")],
        ),
        disburse("G", "A", "50"),
        "grant.disbursement_recorded",
    );
}

#[test]
fn disbursement_moves_approved_to_active() {
    let mut log = Log::given(&plus(approved(), &[assign("G", "A", "100")]));
    assert_eq!(log.world.grant_view("G").unwrap().status, "approved");
    log.run(&disburse("G", "A", "10")).unwrap();
    assert_eq!(log.world.grant_view("G").unwrap().status, "active");
}

#[test]
fn over_disbursement_message_has_the_figures() {
    let steps = vec![
        fund(),
        contribute("5000000"),
        propose("MEX-1", "3209232.40"),
        approve("MEX-1"),
        assign_lead("MEX-1", "IOM", "500000"),
        disburse("MEX-1", "IOM", "450000"),
    ];
    let message = check(
        &steps,
        disburse("MEX-1", "IOM", "80000"),
        "over_disbursement",
    );
    assert_eq!(
        message,
        "IOM's allocation on grant MEX-1 is 500,000.00 USD; 450,000.00 USD is already disbursed (net of refunds); \
         80,000.00 USD more would exceed it by 30,000.00 USD"
    );
}

#[test]
fn record_expenditure() {
    check(
        &active(),
        expend("G", "A", "100"),
        "grant.expenditure_recorded",
    );
    check(&active(), expend("G", "A", "100.01"), "over_expenditure");
    check(&active(), expend("G", "B", "1"), "over_expenditure");
    check(&active(), expend("G", "C", "1"), "agency_not_assigned");
    check(
        &plus(active(), &[refund("G", "A", "30")]),
        expend("G", "A", "70.01"),
        "over_expenditure",
    );
    check(
        &plus(active(), &[expend("G", "A", "60")]),
        expend("G", "A", "40"),
        "grant.expenditure_recorded",
    );
    for state in [
        simple("suspend-grant", "G"),
        close("G"),
        simple("cancel-grant", "G"),
    ] {
        check(
            &plus(active(), &[state]),
            expend("G", "A", "1"),
            "grant.expenditure_recorded",
        );
    }
    let proposed = [fund(), contribute("1000"), propose("G", "600")];
    check(&proposed, expend("G", "A", "1"), "invalid_state");
    let finalized = plus(
        active(),
        &[expend("G", "A", "100"), close("G"), finalize("G")],
    );
    check(&finalized, expend("G", "A", "1"), "invalid_state");
}

#[test]
fn record_refund() {
    check(&active(), refund("G", "A", "100"), "grant.refund_recorded");
    check(&active(), refund("G", "A", "100.01"), "over_refund");
    check(
        &plus(active(), &[expend("G", "A", "60")]),
        refund("G", "A", "40.01"),
        "over_refund",
    );
    check(&active(), refund("G", "C", "1"), "agency_not_assigned");
    check(
        &plus(active(), &[close("G")]),
        refund("G", "A", "1"),
        "grant.refund_recorded",
    );
    let cancelled = plus(active(), &[simple("cancel-grant", "G")]);
    check(
        &cancelled,
        refund("G", "A", "1"),
        "grant.refund_recorded fund.commitment_revised",
    );
    check(
        &[fund(), contribute("1000"), propose("G", "600")],
        refund("G", "A", "1"),
        "invalid_state",
    );
}

#[test]
fn revise_grant() {
    check(
        &active(),
        revise("G", "700"),
        "grant.revised fund.commitment_revised",
    );
    check(&active(), revise("G", "600.00"), "grant.revised");
    let ends = json!({"command": "revise-grant", "grant": "G", "ends_on": "2015-09-30", "reason": "extension", "actor": APPROVER});
    check(&active(), ends, "grant.revised");
    check(
        &active(),
        with(revise("G", "700"), "actor", json!(SECRETARIAT)),
        "four_eyes_violation",
    );
    check(&active(), revise("G", "599.99"), "amount_below_allocated");
    check(
        &active(),
        revise("G", "1000.00"),
        "grant.revised fund.commitment_revised",
    );
    check(&active(), revise("G", "1000.01"), "insufficient_funds");
    check(&active(), revise("G", "1.001"), "invalid_amount");
    check(&active(), revise("X", "1.001"), "unknown_grant");
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        revise("G", "700"),
        "grant.revised fund.commitment_revised",
    );
    check(
        &plus(active(), &[close("G")]),
        revise("G", "700"),
        "invalid_state",
    );
    let proposed = [fund(), contribute("1000"), propose("G", "600")];
    check(&proposed, revise("G", "700"), "invalid_state");
    // Lowering the grant frees fund money for another grant.
    let lowered = plus(approved(), &[revise("G", "100"), propose("H", "900")]);
    check(
        &lowered,
        approve("H"),
        "grant.approved fund.grant_committed",
    );
}

#[test]
fn suspend_and_resume() {
    check(&active(), simple("suspend-grant", "G"), "grant.suspended");
    check(&approved(), simple("suspend-grant", "G"), "grant.suspended");
    let suspended = plus(active(), &[simple("suspend-grant", "G")]);
    check(&suspended, simple("suspend-grant", "G"), "invalid_state");
    check(&suspended, simple("resume-grant", "G"), "grant.resumed");
    check(&active(), simple("resume-grant", "G"), "invalid_state");
    check(
        &plus(active(), &[close("G")]),
        simple("suspend-grant", "G"),
        "invalid_state",
    );
    for (steps, back) in [(approved(), "approved"), (active(), "active")] {
        let log = Log::given(&plus(
            steps,
            &[simple("suspend-grant", "G"), simple("resume-grant", "G")],
        ));
        assert_eq!(log.world.grant_view("G").unwrap().status, back);
    }
}

#[test]
fn cancel_grant() {
    check(
        &active(),
        simple("cancel-grant", "G"),
        "grant.cancelled fund.commitment_revised",
    );
    check(
        &approved(),
        simple("cancel-grant", "G"),
        "grant.cancelled fund.commitment_revised",
    );
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        simple("cancel-grant", "G"),
        "grant.cancelled fund.commitment_revised",
    );
    check(
        &[fund(), contribute("1000"), propose("G", "600")],
        simple("cancel-grant", "G"),
        "invalid_state",
    );
    check(
        &plus(active(), &[close("G")]),
        simple("cancel-grant", "G"),
        "invalid_state",
    );
    let cancelled = plus(active(), &[simple("cancel-grant", "G")]);
    check(&cancelled, simple("cancel-grant", "G"), "invalid_state");
    let log = Log::given(&cancelled);
    let fund = log.world.fund_view("F").unwrap();
    assert_eq!(
        (fund.committed.as_str(), fund.available.as_str()),
        ("100.00", "900.00")
    );
    assert_eq!(log.world.grant_view("G").unwrap().amount, "600.00");
}

#[test]
fn close_grant() {
    check(&active(), close("G"), "grant.closed");
    check(&approved(), close("G"), "grant.closed");
    check(
        &plus(active(), &[simple("suspend-grant", "G")]),
        close("G"),
        "grant.closed",
    );
    check(&plus(active(), &[close("G")]), close("G"), "invalid_state");
    check(
        &[fund(), contribute("1000"), propose("G", "600")],
        close("G"),
        "invalid_state",
    );
    check(
        &plus(active(), &[close("G")]),
        assign("G", "C", "1"),
        "invalid_state",
    );
}

#[test]
fn finalize_grant() {
    let settled = plus(active(), &[expend("G", "A", "60"), refund("G", "A", "40")]);
    check(
        &plus(settled.clone(), &[close("G")]),
        finalize("G"),
        "grant.finalized fund.commitment_revised",
    );
    check(
        &plus(settled.clone(), &[simple("cancel-grant", "G")]),
        finalize("G"),
        "grant.finalized",
    );
    check(
        &plus(active(), &[close("G")]),
        finalize("G"),
        "unsettled_balance",
    );
    check(
        &plus(active(), &[simple("cancel-grant", "G")]),
        finalize("G"),
        "unsettled_balance",
    );
    check(&settled, finalize("G"), "invalid_state");
    let finalized = plus(settled, &[close("G"), finalize("G")]);
    check(&finalized, finalize("G"), "invalid_state");
    let log = Log::given(&finalized);
    let fund = log.world.fund_view("F").unwrap();
    assert_eq!(
        (
            fund.committed.as_str(),
            fund.available.as_str(),
            fund.cash.as_str()
        ),
        ("60.00", "940.00", "940.00")
    );
    assert_eq!(log.world.grant_view("G").unwrap().status, "finalized");
}

#[test]
fn malformed_comes_before_everything() {
    check(
        &[],
        json!({"command": "record-disbursement", "grant": "X", "agency": "A", "amount": "1", "paid_on": "2012-02-30"}),
        "malformed_command",
    );
    check(
        &[],
        with(disburse("X", "A", "1"), "expected_version", json!(-1)),
        "malformed_command",
    );
    check(
        &[],
        with(disburse("X", "A", "-1"), "paid_on", json!("bad")),
        "malformed_command",
    );
    check(&[], disburse("X", "A", "-1"), "invalid_amount");
    check(
        &active(),
        with(disburse("G", "A", "1"), "extra", json!(1)),
        "malformed_command",
    );
}

#[test]
fn version_conflict_comes_after_existence_and_before_state() {
    let version = |steps: &[serde_json::Value]| Log::given(steps).world.stream_version("grant-G");
    let v = version(&active());
    assert_eq!(v, 5);
    check(
        &active(),
        with(simple("resume-grant", "G"), "expected_version", json!(v)),
        "invalid_state",
    );
    check(
        &active(),
        with(
            simple("resume-grant", "G"),
            "expected_version",
            json!(v - 1),
        ),
        "version_conflict",
    );
    check(
        &active(),
        with(simple("suspend-grant", "G"), "expected_version", json!(v)),
        "grant.suspended",
    );
}

#[test]
fn views_follow_the_events() {
    let log = Log::given(&plus(
        active(),
        &[expend("G", "A", "30"), refund("G", "A", "20")],
    ));
    let grant = serde_json::to_value(log.world.grant_view("G").unwrap()).unwrap();
    assert_eq!(
        grant,
        json!({"grant": "G", "fund": "F", "title": "Migrants in transit", "status": "active", "currency": "USD",
            "requested": "600.00", "amount": "600.00", "allocated": "600.00", "unallocated": "0.00",
            "disbursed": "100.00", "expended": "30.00", "refunded": "20.00",
            "agencies": [
                {"agency": "A", "lead": true, "allocation": "400.00", "disbursed": "100.00", "expended": "30.00", "refunded": "20.00", "balance": "50.00"},
                {"agency": "B", "lead": false, "allocation": "200.00", "disbursed": "0.00", "expended": "0.00", "refunded": "0.00", "balance": "0.00"}
            ],
            "reports": [], "documents": [], "sectors": [],
            "version": 7, "position": 10})
    );
    let fund = serde_json::to_string(&log.world.fund_view("F").unwrap()).unwrap();
    assert_eq!(
        fund,
        r#"{"fund":"F","name":"Trust Fund","currency":"USD","received":"1000.00","committed":"600.00","available":"400.00","disbursed":"100.00","refunded":"20.00","cash":"920.00","pledged":"0.00","pledges_outstanding":"0.00","fees":"0.00","income":"0.00","grants":1,"terms":{"admin_fee_percent":"0.00","indirect_max_percent":"7.00","tranche_threshold_percent":"0.00","hold_on_overdue_reports":false},"pledges":[],"documents":[],"iati_org_ref":null,"version":3,"position":5}"#
    );
    assert_eq!(log.world.grant_ids(), vec!["G"]);
    assert_eq!(log.world.fund_ids(), vec!["F"]);
    assert_eq!(log.world.grant_fund("G").as_deref(), Some("F"));
    assert_eq!(log.world.stream_version("grant-nope"), 0);
    assert!(log.world.grant_view("nope").is_none() && log.world.fund_view("nope").is_none());
}

#[test]
fn withdrawn_agencies_leave_the_list_but_not_the_totals() {
    let withdraw =
        json!({"command": "withdraw-agency", "grant": "G", "agency": "A", "reason": "left"});
    let log = Log::given(&plus(
        active(),
        &[refund("G", "A", "100"), withdraw, assign("G", "A", "50")],
    ));
    let view = log.world.grant_view("G").unwrap();
    assert_eq!(
        (
            view.disbursed.as_str(),
            view.refunded.as_str(),
            view.allocated.as_str()
        ),
        ("100.00", "100.00", "250.00")
    );
    let agencies: Vec<(&str, &str, &str)> = view
        .agencies
        .iter()
        .map(|a| {
            (
                a.agency.as_str(),
                a.allocation.as_str(),
                a.disbursed.as_str(),
            )
        })
        .collect();
    assert_eq!(
        agencies,
        vec![("B", "200.00", "0.00"), ("A", "50.00", "0.00")]
    );
}

#[test]
fn yen_fund_has_no_decimals() {
    let jpy =
        json!({"command": "register-fund", "fund": "F", "name": "Yen fund", "currency": "JPY"});
    let steps = [jpy, contribute("260000000")];
    check(&steps, propose("G", "1000.5"), "invalid_amount");
    let log = Log::given(&plus(steps.to_vec(), &[propose("G", "1000"), approve("G")]));
    let fund = log.world.fund_view("F").unwrap();
    assert_eq!(
        (fund.received.as_str(), fund.available.as_str()),
        ("260000000", "259999000")
    );
}

#[test]
fn messages_name_the_problem() {
    let message = check(&active(), disburse("G", "A", "1.234"), "invalid_amount");
    assert_eq!(message, "record-disbursement: field `amount` \"1.234\" has 3 decimals; USD amounts have at most 2 decimals");
    let message = check(&active(), simple("resume-grant", "G"), "invalid_state");
    assert_eq!(
        message,
        "grant G is active; resume-grant is allowed only when it is suspended"
    );
    let message = check(&active(), finalize("G"), "invalid_state");
    assert_eq!(
        message,
        "grant G is active; finalize-grant is allowed only when it is closed or cancelled"
    );
    let message = check(
        &active(),
        with(revise("G", "700"), "actor", serde_json::json!(SECRETARIAT)),
        "four_eyes_violation",
    );
    assert!(message.contains("proposed by sec"), "{message}");
    let message = check(
        &active(),
        with(
            disburse("G", "A", "1"),
            "currency",
            serde_json::json!("EUR"),
        ),
        "currency_mismatch",
    );
    assert!(
        message.contains("USD") && message.contains("EUR"),
        "{message}"
    );
    let message = check(&active(), expend("G", "A", "150"), "over_expenditure");
    assert!(
        message.contains("100.00 USD") && message.contains("50.00 USD"),
        "{message}"
    );
}

#[test]
fn four_eyes_sees_one_person_behind_case_and_invisible_characters() {
    let proposed = vec![fund(), contribute("1000.00"), propose("G", "600.00")];
    for same in ["SEC", " Sec ", "sec"] {
        let by = with(approve("G"), "actor", json!(same));
        check(&proposed, by, "four_eyes_violation");
    }
    let hidden = with(approve("G"), "actor", json!("sec\u{200B}"));
    let message = check(&proposed, hidden, "malformed_command");
    assert!(message.contains("invisible"), "{message}");
    let other = with(approve("G"), "actor", json!("Seçil"));
    check(&proposed, other, "grant.approved fund.grant_committed");
}
