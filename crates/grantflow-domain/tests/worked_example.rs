//! The worked example of docs/domain.md: the Mexico grant of 27 September 2012 and its revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const GRANT: &str = "MEX-1";
/// Agencies and allocations at approval: they sum to USD 3,209,232.40.
const AGENCIES: &[(&str, &str)] = &[
    ("IOM", "1000000.00"),
    ("UNDP", "500000.00"),
    ("UNFPA", "400000.00"),
    ("UNHCR", "450000.00"),
    ("UNODC", "400000.00"),
    ("ILO", "150000.00"),
    ("UNICEF", "159232.40"),
    ("UN-Women", "150000.00"),
];

fn approval() -> Vec<serde_json::Value> {
    let mut steps = vec![
        json!({"command": "register-fund", "fund": "UNTFHS", "name": "United Nations Trust Fund for Human Security", "currency": "USD"}),
        json!({"command": "record-contribution", "fund": "UNTFHS", "donor": "JP", "amount": "10000000.00", "received_on": "2012-04-02",
               "original_amount": "800000000", "original_currency": "JPY"}),
        json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": GRANT, "amount": "3209232.40", "currency": "USD", "country": "MX",
               "title": "Supporting the strengthening of government institutions and civil society capacities to improve the protection of vulnerable migrants in transit",
               "regions": ["Chiapas", "Oaxaca"], "starts_on": "2013-01-01", "ends_on": "2015-09-30",
               "activities": ["Strengthen federal and state institutions that assist migrants in transit",
                              "Strengthen civil-society organisations and migrant shelters",
                              "Promote peaceful co-existence with host communities"]}),
        json!({"command": "approve-grant", "grant": GRANT, "decided_on": "2012-09-27", "actor": APPROVER,
               "reported_equivalent": {"amount": "260000000", "currency": "JPY"}}),
    ];
    for (index, (agency, allocation)) in AGENCIES.iter().enumerate() {
        steps.push(json!({"command": "assign-agency", "grant": GRANT, "agency": agency, "allocation": allocation, "lead": index == 0}));
    }
    steps
}

fn revision() -> Vec<serde_json::Value> {
    let mut steps = approval();
    for (agency, amount) in [
        ("IOM", "500000"),
        ("UNDP", "200000"),
        ("UNFPA", "100000"),
        ("UNHCR", "150000"),
        ("UNODC", "100000"),
    ] {
        steps.push(disburse(GRANT, agency, amount));
    }
    for agency in ["UNICEF", "ILO", "UN-Women"] {
        steps.push(json!({"command": "withdraw-agency", "grant": GRANT, "agency": agency, "reason": "five agencies carry the programme"}));
    }
    for (agency, allocation) in [
        ("IOM", "1121707.00"),
        ("UNDP", "550000.00"),
        ("UNFPA", "450000.00"),
        ("UNHCR", "500000.00"),
        ("UNODC", "500000.00"),
    ] {
        steps.push(json!({"command": "revise-allocation", "grant": GRANT, "agency": agency, "allocation": allocation, "reason": "revised budget"}));
    }
    steps
}

#[test]
fn approval_commits_the_grant_and_allocations_sum_to_it() {
    let log = Log::given(&approval());
    let grant = log.world.grant_view(GRANT).unwrap();
    assert_eq!(
        (
            grant.status.as_str(),
            grant.amount.as_str(),
            grant.allocated.as_str(),
            grant.unallocated.as_str()
        ),
        ("approved", "3209232.40", "3209232.40", "0.00")
    );
    assert_eq!(grant.agencies.len(), 8);
    assert!(grant.agencies[0].lead && grant.agencies.iter().skip(1).all(|a| !a.lead));
    let fund = log.world.fund_view("UNTFHS").unwrap();
    assert_eq!(
        (
            fund.received.as_str(),
            fund.committed.as_str(),
            fund.available.as_str()
        ),
        ("10000000.00", "3209232.40", "6790767.60")
    );
    // No more room on the grant.
    check(&approval(), assign(GRANT, "WFP", "0.01"), "over_allocation");
}

#[test]
fn revision_to_the_later_public_record() {
    let revise_grant = json!({"command": "revise-grant", "grant": GRANT, "amount": "3121707.00", "reason": "five agencies",
        "decided_on": "2013-06-01", "actor": APPROVER});
    check(
        &revision(),
        revise_grant.clone(),
        "grant.revised fund.commitment_revised",
    );
    // Before the withdrawals the allocations did not fit the lower amount.
    check(&approval(), revise_grant.clone(), "amount_below_allocated");
    let log = Log::given(&plus(revision(), &[revise_grant]));
    let grant = serde_json::to_value(log.world.grant_view(GRANT).unwrap()).unwrap();
    assert_eq!(grant["status"], "active");
    assert_eq!(grant["requested"], "3209232.40");
    assert_eq!(grant["amount"], "3121707.00");
    assert_eq!(grant["allocated"], "3121707.00");
    assert_eq!(grant["unallocated"], "0.00");
    assert_eq!(grant["disbursed"], "1050000.00");
    let agencies: Vec<&str> = grant["agencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["agency"].as_str().unwrap())
        .collect();
    assert_eq!(agencies, ["IOM", "UNDP", "UNFPA", "UNHCR", "UNODC"]);
    assert_eq!(
        grant["agencies"][0],
        json!({"agency": "IOM", "lead": true, "allocation": "1121707.00", "disbursed": "500000.00",
        "expended": "0.00", "refunded": "0.00", "balance": "500000.00"})
    );
    let fund = log.world.fund_view("UNTFHS").unwrap();
    assert_eq!(
        (
            fund.received.as_str(),
            fund.committed.as_str(),
            fund.available.as_str(),
            fund.disbursed.as_str(),
            fund.cash.as_str()
        ),
        (
            "10000000.00",
            "3121707.00",
            "6878293.00",
            "1050000.00",
            "8950000.00"
        )
    );
    assert_eq!((fund.grants, fund.version), (1, 4));
    let details = log.world.grant_details(GRANT).unwrap();
    assert_eq!(details.decided_on.as_deref(), Some("2012-09-27"));
    assert_eq!(details.regions, ["Chiapas", "Oaxaca"]);
    assert_eq!(details.lead.as_deref(), Some("IOM"));
}
