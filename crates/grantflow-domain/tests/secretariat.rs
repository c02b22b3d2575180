//! Part two of docs/domain.md, given/when/then: fund terms, pledges, fees and income,
//! budgets by category, tranche conditions, reports and documents; and the part-one fixes
//! that came with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use grantflow_domain::{Event, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED};
use serde_json::{json, Value};

const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

fn fund_with(terms: Value) -> Value {
    let mut command = fund();
    for (key, value) in terms.as_object().unwrap() {
        command = with(command, key, value.clone());
    }
    command
}

fn pledge(id: &str, donor: &str, amount: &str) -> Value {
    json!({"command": "record-pledge", "fund": "F", "pledge": id, "donor": donor, "amount": amount, "signed_on": "2012-03-01"})
}

fn contribute_for(pledge: &str, amount: &str) -> Value {
    with(contribute(amount), "pledge", json!(pledge))
}

fn fund_view(log: &Log) -> Value {
    serde_json::to_value(log.world.fund_view("F").unwrap()).unwrap()
}

fn grant_view(log: &Log) -> Value {
    serde_json::to_value(log.world.grant_view("G").unwrap()).unwrap()
}

/// A fund with terms, 1,000.00 received, and grant G of 600.00 approved.
fn approved_with(terms: Value) -> Vec<Value> {
    vec![
        fund_with(terms),
        contribute("1000.00"),
        propose("G", "600.00"),
        approve("G"),
    ]
}

fn budget_assign(agency: &str, allocation: &str, budget: Value) -> Value {
    with(assign("G", agency, allocation), "budget", budget)
}

fn expend_in(agency: &str, amount: &str, category: &str) -> Value {
    with(expend("G", agency, amount), "category", json!(category))
}

fn schedule(report: &str, due_on: &str) -> Value {
    json!({"command": "schedule-report", "grant": "G", "report": report, "kind": "progress", "period_end": "2012-12-31", "due_on": due_on})
}

fn submit(report: &str, on: &str) -> Value {
    json!({"command": "submit-report", "grant": "G", "report": report, "submitted_on": on})
}

fn accept(report: &str, on: &str) -> Value {
    json!({"command": "accept-report", "grant": "G", "report": report, "accepted_on": on, "actor": APPROVER})
}

fn give_back(report: &str, on: &str) -> Value {
    json!({"command": "return-report", "grant": "G", "report": report, "returned_on": on, "reason": "figures missing", "actor": APPROVER})
}

fn disburse_on(agency: &str, amount: &str, on: &str) -> Value {
    with(disburse("G", agency, amount), "paid_on", json!(on))
}

fn document(owner: &str, id: &str, document: &str) -> Value {
    json!({"command": "attach-document", owner: id, "document": document, "title": "Project document", "category": "A02", "sha256": SHA})
}

// --- Fund terms -------------------------------------------------------------------------

#[test]
fn terms_default_to_off_and_show_with_two_decimals() {
    let log = Log::given(&[fund()]);
    assert_eq!(
        fund_view(&log)["terms"],
        json!({"admin_fee_percent": "0.00", "indirect_max_percent": "7.00", "tranche_threshold_percent": "0.00", "hold_on_overdue_reports": false})
    );
    let log = Log::given(&[fund_with(
        json!({"admin_fee_percent": "1", "tranche_threshold_percent": "70", "hold_on_overdue_reports": true}),
    )]);
    assert_eq!(
        fund_view(&log)["terms"],
        json!({"admin_fee_percent": "1.00", "indirect_max_percent": "7.00", "tranche_threshold_percent": "70.00", "hold_on_overdue_reports": true})
    );
    assert_eq!(log.events[0].schema(), EVENT_SCHEMA_EXTENDED);
    assert_eq!(Log::given(&[fund()]).events[0].schema(), EVENT_SCHEMA);
}

#[test]
fn percentages_outside_the_rules_are_malformed() {
    for bad in [
        json!("100.01"),
        json!("-1"),
        json!("1.234"),
        json!(1),
        json!(""),
    ] {
        let message = check(
            &[],
            fund_with(json!({"admin_fee_percent": bad})),
            "malformed_command",
        );
        assert!(message.contains("admin_fee_percent"), "{message}");
    }
    check(
        &[],
        fund_with(json!({"hold_on_overdue_reports": "yes"})),
        "malformed_command",
    );
    check(
        &[],
        fund_with(json!({"indirect_max_percent": "100"})),
        "fund.registered",
    );
}

#[test]
fn revise_fund_terms_changes_the_terms_in_force() {
    let revise = json!({"command": "revise-fund-terms", "fund": "F", "reason": "MPTF agreement", "admin_fee_percent": "1.00", "actor": APPROVER});
    check(&[fund()], revise.clone(), "fund.terms_revised");
    let log = Log::given(&[fund(), revise]);
    assert_eq!(fund_view(&log)["terms"]["admin_fee_percent"], "1.00");
    assert_eq!(fund_view(&log)["terms"]["indirect_max_percent"], "7.00");
    let none = json!({"command": "revise-fund-terms", "fund": "F", "reason": "nothing"});
    assert!(check(&[fund()], none, "malformed_command").contains("at least one"));
    let unknown = json!({"command": "revise-fund-terms", "fund": "X", "reason": "r", "admin_fee_percent": "1"});
    check(&[fund()], unknown, "unknown_fund");
}

// --- Pledges, fees, income ----------------------------------------------------------------

#[test]
fn pledges_are_unique_and_paid_by_contributions_of_their_donor() {
    check(
        &[fund()],
        pledge("P1", "JP", "500.00"),
        "fund.pledge_recorded",
    );
    let given = [fund(), pledge("P1", "JP", "500.00")];
    check(&given, pledge("P1", "JP", "1.00"), "pledge_exists");
    check(&given, contribute_for("P2", "1.00"), "unknown_pledge");
    let other = with(contribute_for("P1", "1.00"), "donor", json!("SE"));
    assert!(check(&given, other, "unknown_pledge").contains("JP"));
    let message = check(&given, contribute_for("P1", "500.01"), "over_pledge");
    assert!(
        message.contains("500.00 USD") && message.contains("0.01 USD"),
        "{message}"
    );
    // Exactly paying it off.
    check(
        &given,
        contribute_for("P1", "500.00"),
        "fund.contribution_recorded",
    );
    let log = Log::given(&[
        fund(),
        pledge("P1", "JP", "500.00"),
        contribute_for("P1", "200.00"),
    ]);
    let view = fund_view(&log);
    assert_eq!(view["pledged"], "500.00");
    assert_eq!(view["pledges_outstanding"], "300.00");
    assert_eq!(view["received"], "200.00");
    assert_eq!(log.events[2].schema(), EVENT_SCHEMA_EXTENDED);
    let plain = contribute("1.00");
    assert_eq!(
        Log::given(&[fund(), plain]).events[1].schema(),
        EVENT_SCHEMA
    );
    check(
        &given,
        with(contribute_for("P1", "300.00"), "amount", json!("300.001")),
        "invalid_amount",
    );
}

#[test]
fn fees_are_charged_in_the_same_append_and_rounded_half_to_even() {
    let given = [fund_with(json!({"admin_fee_percent": "1"}))];
    check(
        &given,
        contribute("1000.00"),
        "fund.contribution_recorded fund.fee_charged",
    );
    // 1% of 0.50 is 0.005: half, rounded to the even 0.00, so no fee event.
    check(&given, contribute("0.50"), "fund.contribution_recorded");
    let log = Log::given(&[
        fund_with(json!({"admin_fee_percent": "1"})),
        contribute("1000.00"),
        contribute("1.50"),
        json!({"command": "record-income", "fund": "F", "kind": "interest", "amount": "12.34", "received_on": "2012-12-31"}),
        propose("G", "500.00"),
        approve("G"),
        assign("G", "A", "500.00"),
        disburse("G", "A", "100.00"),
    ]);
    let view = fund_view(&log);
    assert_eq!(view["fees"], "10.02");
    assert_eq!(view["income"], "12.34");
    // available = received + income - fees - committed; cash = ... - disbursed + refunded.
    assert_eq!(view["available"], "503.82");
    assert_eq!(view["cash"], "903.82");
}

#[test]
fn fees_and_income_count_against_approvals() {
    let given = [
        fund_with(json!({"admin_fee_percent": "10"})),
        contribute("1000.00"),
        propose("G", "900.01"),
    ];
    let message = check(&given, approve("G"), "insufficient_funds");
    assert!(message.contains("900.00 USD available"), "{message}");
    let income = json!({"command": "record-income", "fund": "F", "kind": "other", "amount": "0.01", "received_on": "2012-12-31"});
    check(
        &plus(given.to_vec(), &[income]),
        approve("G"),
        "grant.approved fund.grant_committed",
    );
    let bad = json!({"command": "record-income", "fund": "F", "kind": "gift", "amount": "1", "received_on": "2012-12-31"});
    check(&[fund()], bad, "malformed_command");
}

// --- Budgets by category --------------------------------------------------------------------

#[test]
fn a_budget_sums_to_the_allocation_and_keeps_indirect_within_the_cap() {
    let given = approved_with(json!({}));
    check(
        &given,
        budget_assign(
            "A",
            "107.00",
            json!({"staff": "100.00", "indirect": "7.00"}),
        ),
        "grant.agency_assigned",
    );
    let message = check(
        &given,
        budget_assign(
            "A",
            "107.00",
            json!({"staff": "100.00", "indirect": "6.00"}),
        ),
        "budget_mismatch",
    );
    assert!(
        message.contains("106.00 USD") && message.contains("107.00 USD"),
        "{message}"
    );
    // Exactly at the cap (7% of 100.00 = 7.00) passes; one minor unit over does not.
    let message = check(
        &given,
        budget_assign(
            "A",
            "107.01",
            json!({"staff": "100.00", "indirect": "7.01"}),
        ),
        "indirect_over_cap",
    );
    assert!(
        message.contains("7.00 USD") && message.contains("0.01 USD"),
        "{message}"
    );
    // The cap rounds down: 7% of 100.01 is 7.0007, so 7.00.
    check(
        &given,
        budget_assign(
            "A",
            "107.02",
            json!({"staff": "100.01", "indirect": "7.01"}),
        ),
        "indirect_over_cap",
    );
    // Zero is allowed in a budget; a category left out counts as 0.
    check(
        &given,
        budget_assign("A", "50.00", json!({"travel": "50.00", "staff": "0"})),
        "grant.agency_assigned",
    );
    check(
        &given,
        budget_assign("A", "1.00", json!({"food": "1.00"})),
        "malformed_command",
    );
    check(
        &given,
        budget_assign("A", "1.00", json!({"staff": "1.001"})),
        "invalid_amount",
    );
    check(
        &given,
        budget_assign("A", "1.00", json!(["staff"])),
        "malformed_command",
    );
    // Order: over_allocation comes before budget_mismatch.
    check(
        &given,
        budget_assign("A", "700.00", json!({"staff": "1.00"})),
        "over_allocation",
    );
    let log = Log::given(&plus(
        given.clone(),
        &[budget_assign(
            "A",
            "107.00",
            json!({"staff": "100.00", "indirect": "7.00"}),
        )],
    ));
    assert_eq!(log.events.last().unwrap().schema(), EVENT_SCHEMA_EXTENDED);
    let budget = &grant_view(&log)["agencies"][0]["budget"];
    assert_eq!(budget.as_array().unwrap().len(), 8);
    assert_eq!(
        budget[0],
        json!({"category": "staff", "budget": "100.00", "expended": "0.00"})
    );
    assert_eq!(
        budget[7],
        json!({"category": "indirect", "budget": "7.00", "expended": "0.00"})
    );
    // No budget: no `budget` in the agency's figures.
    let log = Log::given(&plus(given, &[assign("G", "A", "1.00")]));
    assert!(grant_view(&log)["agencies"][0].get("budget").is_none());
}

#[test]
fn the_indirect_cap_follows_the_fund_terms() {
    let given = approved_with(json!({"indirect_max_percent": "10"}));
    check(
        &given,
        budget_assign(
            "A",
            "110.00",
            json!({"staff": "100.00", "indirect": "10.00"}),
        ),
        "grant.agency_assigned",
    );
    let given = approved_with(json!({"indirect_max_percent": "0"}));
    check(
        &given,
        budget_assign(
            "A",
            "100.01",
            json!({"staff": "100.00", "indirect": "0.01"}),
        ),
        "indirect_over_cap",
    );
}

#[test]
fn revise_allocation_keeps_a_budget_in_step() {
    let given = plus(
        approved_with(json!({})),
        &[budget_assign("A", "100.00", json!({"staff": "100.00"}))],
    );
    let revise = |allocation: &str| json!({"command": "revise-allocation", "grant": "G", "agency": "A", "allocation": allocation, "reason": "r"});
    check(&given, revise("200.00"), "budget_mismatch");
    check(&given, revise("100.00"), "grant.allocation_revised");
    check(
        &given,
        with(
            revise("200.00"),
            "budget",
            json!({"staff": "150.00", "travel": "50.00"}),
        ),
        "grant.allocation_revised",
    );
    check(
        &given,
        with(revise("200.00"), "budget", json!({"staff": "150.00"})),
        "budget_mismatch",
    );
    check(
        &given,
        with(
            revise("200.00"),
            "budget",
            json!({"staff": "100.00", "indirect": "100.00"}),
        ),
        "indirect_over_cap",
    );
    // An agency without a budget may gain one.
    let given = plus(approved_with(json!({})), &[assign("G", "B", "100.00")]);
    let gain = json!({"command": "revise-allocation", "grant": "G", "agency": "B", "allocation": "100.00", "reason": "r", "budget": {"staff": "100.00"}});
    check(&given, gain, "grant.allocation_revised");
}

#[test]
fn expenditures_name_a_category_exactly_when_the_agency_has_a_budget() {
    let given = plus(
        approved_with(json!({})),
        &[
            budget_assign(
                "A",
                "300.00",
                json!({"staff": "100.00", "travel": "200.00"}),
            ),
            assign("G", "B", "100.00"),
            disburse("G", "A", "300.00"),
            disburse("G", "B", "100.00"),
        ],
    );
    check(&given, expend("G", "A", "1.00"), "category_required");
    check(&given, expend_in("B", "1.00", "staff"), "no_budget");
    check(&given, expend_in("A", "1.00", "meals"), "malformed_command");
    check(
        &given,
        expend("G", "B", "1.00"),
        "grant.expenditure_recorded",
    );
    // Up to 120% of a category, exactly.
    check(
        &given,
        expend_in("A", "120.00", "staff"),
        "grant.expenditure_recorded",
    );
    let message = check(
        &given,
        expend_in("A", "120.01", "staff"),
        "over_budget_category",
    );
    assert!(
        message.contains("120.00 USD") && message.contains("0.01 USD"),
        "{message}"
    );
    // Order: over_expenditure before over_budget_category.
    check(
        &given,
        expend_in("A", "300.01", "staff"),
        "over_expenditure",
    );
    let log = Log::given(&plus(given.clone(), &[expend_in("A", "120.00", "staff")]));
    assert_eq!(log.events.last().unwrap().schema(), EVENT_SCHEMA_EXTENDED);
    let budget = &grant_view(&log)["agencies"][0]["budget"];
    assert_eq!(budget[0]["expended"], "120.00");
    // A revised budget may not leave a category's expended above 120% of it.
    let revise = json!({"command": "revise-allocation", "grant": "G", "agency": "A", "allocation": "300.00", "reason": "r", "budget": {"staff": "99.99", "travel": "200.01"}});
    check(
        &plus(given.clone(), &[expend_in("A", "120.00", "staff")]),
        revise,
        "over_budget_category",
    );
    // The agency order of checks: agency_not_assigned first.
    check(
        &given,
        expend_in("Z", "1.00", "staff"),
        "agency_not_assigned",
    );
}

// --- Tranches -------------------------------------------------------------------------------

#[test]
fn a_further_tranche_needs_the_threshold_share_spent() {
    let given = plus(
        approved_with(json!({"tranche_threshold_percent": "70"})),
        &[assign_lead("G", "A", "600.00")],
    );
    // The first disbursement has no condition.
    check(
        &given,
        disburse("G", "A", "500.00"),
        "grant.disbursement_recorded",
    );
    let holding = plus(
        given,
        &[disburse("G", "A", "500.00"), expend("G", "A", "200.00")],
    );
    let message = check(
        &holding,
        disburse("G", "A", "100.00"),
        "tranche_condition_unmet",
    );
    assert!(
        message.contains("holds 500.00 USD")
            && message.contains("spent 200.00 USD (40.00%)")
            && message.contains("needs 70.00%"),
        "{message}"
    );
    // 349.99 of 500.00 is 69.998%: not yet; 350.00 is exactly 70.00%.
    let almost = plus(holding.clone(), &[expend("G", "A", "149.99")]);
    assert!(check(
        &almost,
        disburse("G", "A", "100.00"),
        "tranche_condition_unmet"
    )
    .contains("69.99%"));
    let exactly = plus(holding.clone(), &[expend("G", "A", "150.00")]);
    check(
        &exactly,
        disburse("G", "A", "100.00"),
        "grant.disbursement_recorded",
    );
    // Order: tranche_condition_unmet before over_disbursement.
    check(
        &holding,
        disburse("G", "A", "100.01"),
        "tranche_condition_unmet",
    );
    check(&exactly, disburse("G", "A", "100.01"), "over_disbursement");
    // The share is of disbursed - refunded: a refund brings it closer.
    check(
        &plus(holding, &[refund("G", "A", "300.00")]),
        disburse("G", "A", "100.00"),
        "grant.disbursement_recorded",
    );
    // An agency that holds nothing (all refunded) has no condition.
    let given = plus(
        approved_with(json!({"tranche_threshold_percent": "70"})),
        &[
            assign_lead("G", "A", "600.00"),
            disburse("G", "A", "100.00"),
            refund("G", "A", "100.00"),
        ],
    );
    check(
        &given,
        disburse("G", "A", "100.00"),
        "grant.disbursement_recorded",
    );
}

#[test]
fn overdue_reports_hold_every_disbursement_when_the_fund_says_so() {
    let given = plus(
        approved_with(json!({"hold_on_overdue_reports": true})),
        &[
            assign_lead("G", "A", "600.00"),
            schedule("R1", "2013-01-31"),
        ],
    );
    check(
        &given,
        disburse_on("A", "1.00", "2013-01-31"),
        "grant.disbursement_recorded",
    );
    let message = check(
        &given,
        disburse_on("A", "1.00", "2013-02-01"),
        "report_overdue",
    );
    assert!(
        message.contains("R1") && message.contains("2013-01-31"),
        "{message}"
    );
    check(
        &given,
        disburse_on("Z", "1.00", "2013-02-01"),
        "agency_not_assigned",
    );
    // Submitted on its due date: not overdue after it.
    let submitted = plus(given.clone(), &[submit("R1", "2013-01-31")]);
    check(
        &submitted,
        disburse_on("A", "1.00", "2013-03-01"),
        "grant.disbursement_recorded",
    );
    // Submitted late: overdue between the due date and the submission.
    let late = plus(given.clone(), &[submit("R1", "2013-02-10")]);
    check(
        &late,
        disburse_on("A", "1.00", "2013-02-05"),
        "report_overdue",
    );
    check(
        &late,
        disburse_on("A", "1.00", "2013-02-10"),
        "grant.disbursement_recorded",
    );
    // Returned after its due date: overdue again from the return on.
    let returned = plus(submitted, &[give_back("R1", "2013-02-15")]);
    check(
        &returned,
        disburse_on("A", "1.00", "2013-02-14"),
        "grant.disbursement_recorded",
    );
    check(
        &returned,
        disburse_on("A", "1.00", "2013-02-15"),
        "report_overdue",
    );
    let resubmitted = plus(
        returned,
        &[submit("R1", "2013-02-20"), accept("R1", "2013-02-21")],
    );
    check(
        &resubmitted,
        disburse_on("A", "1.00", "2013-03-01"),
        "grant.disbursement_recorded",
    );
    // Without the hold, an overdue report does not stop money.
    let free = plus(
        approved_with(json!({})),
        &[
            assign_lead("G", "A", "600.00"),
            schedule("R1", "2013-01-31"),
        ],
    );
    check(
        &free,
        disburse_on("A", "1.00", "2014-01-01"),
        "grant.disbursement_recorded",
    );
}

#[test]
fn report_overdue_comes_before_the_tranche_condition() {
    let given = plus(
        approved_with(json!({"hold_on_overdue_reports": true, "tranche_threshold_percent": "70"})),
        &[
            assign_lead("G", "A", "600.00"),
            disburse_on("A", "100.00", "2013-01-01"),
            schedule("R1", "2013-01-31"),
        ],
    );
    check(
        &given,
        disburse_on("A", "1.00", "2013-02-01"),
        "report_overdue",
    );
    check(
        &given,
        disburse_on("A", "1.00", "2013-01-02"),
        "tranche_condition_unmet",
    );
}

// --- Reports --------------------------------------------------------------------------------

#[test]
fn reports_move_through_their_states() {
    let given = plus(approved_with(json!({})), &[assign_lead("G", "A", "600.00")]);
    check(
        &given,
        schedule("R1", "2014-03-31"),
        "grant.report_scheduled",
    );
    let bad = with(schedule("R1", "2014-03-31"), "due_on", json!("2012-12-30"));
    assert!(check(&given, bad, "malformed_command").contains("due_on"));
    check(
        &given,
        with(schedule("R1", "2014-03-31"), "kind", json!("annual")),
        "malformed_command",
    );
    let scheduled = plus(given.clone(), &[schedule("R1", "2014-03-31")]);
    check(&scheduled, schedule("R1", "2015-03-31"), "report_exists");
    check(&scheduled, submit("R2", "2014-03-01"), "unknown_report");
    check(
        &scheduled,
        accept("R1", "2014-03-01"),
        "invalid_report_state",
    );
    check(
        &scheduled,
        give_back("R1", "2014-03-01"),
        "invalid_report_state",
    );
    check(
        &scheduled,
        submit("R1", "2014-03-01"),
        "grant.report_submitted",
    );
    let submitted = plus(scheduled, &[submit("R1", "2014-03-01")]);
    check(
        &submitted,
        submit("R1", "2014-03-02"),
        "invalid_report_state",
    );
    // Four eyes: the submitter does not accept.
    let own = with(accept("R1", "2014-03-02"), "actor", json!(SECRETARIAT));
    assert!(check(&submitted, own, "four_eyes_violation").contains(SECRETARIAT));
    check(
        &submitted,
        accept("R1", "2014-03-02"),
        "grant.report_accepted",
    );
    check(
        &submitted,
        give_back("R1", "2014-03-02"),
        "grant.report_returned",
    );
    let returned = plus(submitted, &[give_back("R1", "2014-03-02")]);
    check(
        &returned,
        submit("R1", "2014-03-10"),
        "grant.report_submitted",
    );
    let log = Log::given(&plus(
        returned,
        &[submit("R1", "2014-03-10"), accept("R1", "2014-03-12")],
    ));
    assert_eq!(
        grant_view(&log)["reports"],
        json!([{"report": "R1", "kind": "progress", "period_end": "2012-12-31", "due_on": "2014-03-31",
            "status": "accepted", "submitted_on": "2014-03-10", "accepted_on": "2014-03-12"}])
    );
}

#[test]
fn reports_are_ordered_by_due_date_then_id_and_carry_an_optional_document() {
    let given = plus(
        approved_with(json!({})),
        &[
            schedule("R2", "2014-03-31"),
            schedule("R1", "2014-03-31"),
            schedule("R0", "2015-03-31"),
        ],
    );
    let view = grant_view(&Log::given(&given));
    let ids: Vec<&str> = view["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|report| report["report"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["R1", "R2", "R0"]);
    let with_doc = with(
        submit("R1", "2014-03-01"),
        "document",
        json!({"title": "Annual report 2013", "sha256": SHA}),
    );
    check(&given, with_doc, "grant.report_submitted");
    let bad_doc = with(
        submit("R1", "2014-03-01"),
        "document",
        json!({"title": "x", "sha256": "ABC"}),
    );
    check(&given, bad_doc, "malformed_command");
}

#[test]
fn report_commands_follow_the_grant_states() {
    let proposed = vec![fund(), contribute("1000.00"), propose("G", "600.00")];
    check(&proposed, schedule("R1", "2014-03-31"), "invalid_state");
    let cancelled = plus(
        approved_with(json!({})),
        &[schedule("R1", "2014-03-31"), simple("cancel-grant", "G")],
    );
    check(&cancelled, schedule("R2", "2014-03-31"), "invalid_state");
    check(
        &cancelled,
        submit("R1", "2014-03-01"),
        "grant.report_submitted",
    );
    let closed = plus(approved_with(json!({})), &[close("G")]);
    check(
        &closed,
        schedule("R1", "2014-03-31"),
        "grant.report_scheduled",
    );
}

#[test]
fn finalize_needs_every_report_accepted_after_every_balance_settled() {
    let given = plus(
        approved_with(json!({})),
        &[
            assign_lead("G", "A", "600.00"),
            disburse("G", "A", "100.00"),
            schedule("R1", "2014-03-31"),
            close("G"),
        ],
    );
    check(&given, finalize("G"), "unsettled_balance");
    let settled = plus(given, &[expend("G", "A", "100.00")]);
    let message = check(&settled, finalize("G"), "reports_outstanding");
    assert!(message.contains("R1"), "{message}");
    let accepted = plus(
        settled,
        &[submit("R1", "2014-03-01"), accept("R1", "2014-03-02")],
    );
    check(
        &accepted,
        finalize("G"),
        "grant.finalized fund.commitment_revised",
    );
}

// --- Documents ------------------------------------------------------------------------------

#[test]
fn documents_are_filed_on_a_grant_or_a_fund() {
    let given = approved_with(json!({}));
    check(
        &given,
        document("grant", "G", "PRODOC"),
        "grant.document_attached",
    );
    check(
        &given,
        document("fund", "F", "TOR"),
        "fund.document_attached",
    );
    let both = with(document("grant", "G", "D"), "fund", json!("F"));
    check(&given, both, "malformed_command");
    check(
        &given,
        without(document("grant", "G", "D"), "grant"),
        "malformed_command",
    );
    check(
        &given,
        with(
            document("grant", "G", "D"),
            "sha256",
            json!(SHA.to_uppercase()),
        ),
        "malformed_command",
    );
    check(
        &given,
        with(document("grant", "G", "D"), "category", json!("C01")),
        "malformed_command",
    );
    check(
        &given,
        with(document("grant", "G", "D"), "url", json!("ftp://x")),
        "malformed_command",
    );
    for bad in [
        "https://x/a%zz",
        "https://x/map[1]",
        "https://x/#a#b",
        "https://x/a b",
        "https://",
    ] {
        check(
            &given,
            with(document("grant", "G", "D"), "url", json!(bad)),
            "malformed_command",
        );
    }
    check(
        &given,
        with(
            document("grant", "G", "D"),
            "url",
            json!("https://x.org/a%20b?q=1#p"),
        ),
        "grant.document_attached",
    );
    check(&given, document("grant", "H", "D"), "unknown_grant");
    check(&given, document("fund", "X", "D"), "unknown_fund");
    let filed = plus(
        given.clone(),
        &[
            document("grant", "G", "PRODOC"),
            document("fund", "F", "PRODOC"),
        ],
    );
    check(&filed, document("grant", "G", "PRODOC"), "document_exists");
    check(&filed, document("fund", "F", "PRODOC"), "document_exists");
    let log = Log::given(&plus(
        filed,
        &[with(
            document("grant", "G", "MOU"),
            "url",
            json!("https://example.org/mou.pdf"),
        )],
    ));
    let documents = grant_view(&log)["documents"].clone();
    assert_eq!(
        documents[0],
        json!({"document": "PRODOC", "title": "Project document", "category": "A02", "sha256": SHA, "url": null, "issued_on": null})
    );
    assert_eq!(documents[1]["url"], "https://example.org/mou.pdf");
    assert_eq!(fund_view(&log)["documents"][0]["document"], "PRODOC");
    // Every state but rejected.
    let rejected = vec![fund(), propose("G", "1.00"), simple("reject-proposal", "G")];
    check(&rejected, document("grant", "G", "D"), "invalid_state");
    let proposed = vec![fund(), propose("G", "1.00")];
    check(
        &proposed,
        document("grant", "G", "D"),
        "grant.document_attached",
    );
}

// --- Part one, as reviewed ------------------------------------------------------------------

#[test]
fn a_duplicate_grant_with_a_bad_amount_is_an_invalid_amount() {
    let given = [fund(), propose("G", "1.00")];
    check(&given, propose("G", "1.001"), "invalid_amount");
    let mismatch = with(propose("G", "1.00"), "currency", json!("EUR"));
    check(&given, mismatch, "currency_mismatch");
    check(&given, propose("G", "2.00"), "grant_exists");
}

#[test]
fn cancel_and_finalize_revise_the_commitment_only_when_it_moves() {
    // Fully disbursed: cancelling leaves the commitment (600.00 = disbursed - refunded).
    let full = plus(
        approved_with(json!({})),
        &[
            assign_lead("G", "A", "600.00"),
            disburse("G", "A", "600.00"),
        ],
    );
    check(&full, simple("cancel-grant", "G"), "grant.cancelled");
    let closed = plus(full, &[close("G"), expend("G", "A", "600.00")]);
    check(&closed, finalize("G"), "grant.finalized");
    let partial = plus(approved_with(json!({})), &[simple("cancel-grant", "G")]);
    let log = Log::given(&partial);
    assert!(matches!(
        log.events.last(),
        Some(Event::CommitmentRevised { .. })
    ));
}

#[test]
fn revise_grant_refuses_an_end_before_the_start() {
    let given = vec![
        fund(),
        contribute("1000.00"),
        with(propose("G", "600.00"), "starts_on", json!("2013-01-01")),
        approve("G"),
    ];
    let early = json!({"command": "revise-grant", "grant": "G", "ends_on": "2012-12-31", "reason": "r", "actor": APPROVER});
    let message = check(&given, early, "malformed_command");
    assert!(
        message.contains("ends_on") && message.contains("starts_on"),
        "{message}"
    );
    let fine = json!({"command": "revise-grant", "grant": "G", "ends_on": "2013-01-01", "reason": "r", "actor": APPROVER});
    check(&given, fine, "grant.revised");
}

#[test]
fn the_reported_equivalent_is_shown_with_the_grant() {
    let approve_yen = with(
        approve("G"),
        "reported_equivalent",
        json!({"amount": "260000000", "currency": "JPY"}),
    );
    let log = Log::given(&[
        fund(),
        contribute("1000.00"),
        propose("G", "600.00"),
        approve_yen,
    ]);
    assert_eq!(
        grant_view(&log)["reported_equivalent"],
        json!({"amount": "260000000", "currency": "JPY"})
    );
    let log = Log::given(&approved_with(json!({})));
    assert!(grant_view(&log).get("reported_equivalent").is_none());
}
