//! `grantflow demo`: the worked example of docs/domain.md, from the UN Trust Fund for Human
//! Security's press release of 15 October 2012 and the programme's later public record, and
//! the secretariat's year around it (fund terms, Japan's pledge, interest, budgets by
//! category, the annual report, a tranche held back and then released). Figures the public
//! record does not give are marked "(illustrative)" in what the demo prints. Every command
//! carries a fixed command id, so running the demo twice appends nothing new.

use std::path::Path;

use grantflow_engine::{Engine, Submission};
use serde_json::{json, Value};

use crate::open::{open_engine, Access};
use crate::outcome::Outcome;
use crate::render;
use crate::stdout::outln;

/// The fund and grant of the example.
pub const FUND: &str = "UNTFHS";
/// The Mexico programme.
pub const GRANT: &str = "MEX-2012-01";
/// The fund's IATI organisation identifier in the demo: illustrative (under the IATI
/// Standard's own registration agency, `XI-IATI`), not an identifier the fund has registered.
pub const IATI_ORG_REF: &str = "XI-IATI-UNTFHS-DEMO";

const SECRETARIAT: &str = "secretariat.officer";
const APPROVER: &str = "fund.manager";
const FINANCE: &str = "finance.officer";

/// The eight agencies of the 2012 approval and their allocations (sum: 3,209,232.40).
const AGENCIES: &[(&str, &str)] = &[
    ("IOM", "900000.00"),
    ("UNDP", "450000.00"),
    ("UNFPA", "400000.00"),
    ("UNHCR", "450000.00"),
    ("UNODC", "400000.00"),
    ("ILO", "200000.00"),
    ("UNICEF", "209232.40"),
    ("UN-Women", "200000.00"),
];

/// The first tranche (paid to the five agencies that stay in the programme).
const FIRST_TRANCHE: &[(&str, &str)] = &[
    ("IOM", "300000.00"),
    ("UNDP", "150000.00"),
    ("UNFPA", "100000.00"),
    ("UNHCR", "150000.00"),
    ("UNODC", "100000.00"),
];

/// The revised allocations of the five remaining agencies (sum: 3,121,707.00).
const REVISED: &[(&str, &str)] = &[
    ("IOM", "1121707.00"),
    ("UNDP", "500000.00"),
    ("UNFPA", "500000.00"),
    ("UNHCR", "500000.00"),
    ("UNODC", "500000.00"),
];

/// The budget categories' shares of an agency's direct costs in the demo (illustrative); the
/// rest of the allocation is indirect support costs at the 7% cap.
const DIRECT_SHARES: &[(&str, i64)] = &[
    ("staff", 40),
    ("supplies", 5),
    ("equipment", 5),
    ("contractual", 20),
    ("travel", 10),
    ("transfers", 15),
    ("operating", 5),
];

/// The one step the demo expects to be refused, with its error code: a second tranche to
/// UNDP before it has spent 70% of what it holds.
pub const EXPECTED_REFUSAL: (&str, &str) = ("demo-31", "tranche_condition_unmet");

/// SHA-256 of the text `MEX-2012-01 project document` (an illustrative stand-in for the
/// signed project document's file).
const PRODOC_SHA256: &str = "0fb9c04ca3b9a64b663c8adc8e80954bcfa27c73b1c1e874e0f2623633e3ed8b";
/// SHA-256 of the text `MEX-2012-01 annual progress report 2013` (illustrative, as above).
const REPORT_SHA256: &str = "c5040747ec8fc81b5ec69729996c49b5f1a57be828073efcde1b2ccf4cee9d09";

/// An agency's budget by category for `allocation` (in cents): indirect support costs at the
/// 7% cap of direct costs, the direct costs split by [`DIRECT_SHARES`].
fn budget_of(allocation: &str) -> Value {
    let cents: i64 = allocation.replace('.', "").parse().unwrap_or(0);
    let mut indirect = cents * 7 / 107;
    while indirect > (cents - indirect) * 7 / 100 {
        indirect -= 1;
    }
    let direct = cents - indirect;
    let mut parts: Vec<(&str, i64)> = DIRECT_SHARES
        .iter()
        .map(|(category, share)| (*category, direct * share / 100))
        .collect();
    let rounding = direct - parts.iter().map(|(_, part)| part).sum::<i64>();
    parts[0].1 += rounding;
    parts.push(("indirect", indirect));
    let money = |cents: i64| format!("{}.{:02}", cents / 100, cents % 100);
    Value::Object(
        parts
            .into_iter()
            .map(|(category, part)| (category.to_string(), json!(money(part))))
            .collect(),
    )
}

/// The example's commands, in order: (actor, what it does, command JSON).
pub fn script() -> Vec<(&'static str, String, Value)> {
    let mut steps = vec![
        (
            FINANCE,
            format!("register the fund with its terms (1% fee to the administrative agent, indirect costs capped at 7%, a further tranche after 70% spent, no money while a report is overdue) and its IATI organisation identifier {IATI_ORG_REF} (illustrative)"),
            json!({"command": "register-fund", "fund": FUND, "name": "United Nations Trust Fund for Human Security", "currency": "USD",
                "admin_fee_percent": "1", "indirect_max_percent": "7", "tranche_threshold_percent": "70", "hold_on_overdue_reports": true,
                "iati_org_ref": IATI_ORG_REF}),
        ),
        (
            FINANCE,
            "record Japan's pledge of 5,000,000.00 (signed 2012-03-15, illustrative)".to_string(),
            json!({"command": "record-pledge", "fund": FUND, "pledge": "JP-2012", "donor": "JP-GOV", "amount": "5000000.00", "signed_on": "2012-03-15", "due_on": "2012-04-30"}),
        ),
        (
            FINANCE,
            "record Japan's contribution of 5,000,000.00 (illustrative), paying the pledge (the 1% fee, 50,000.00, is charged with it)".to_string(),
            json!({"command": "record-contribution", "fund": FUND, "donor": "JP-GOV", "amount": "5000000.00", "received_on": "2012-04-02", "pledge": "JP-2012"}),
        ),
        (
            SECRETARIAT,
            "submit the Mexico proposal (sector 15190: facilitation of orderly, safe, regular and responsible migration and mobility)".to_string(),
            json!({
            "command": "submit-proposal", "fund": FUND, "grant": GRANT,
            "title": "Supporting the strengthening of government institutions and civil society capacities to improve the protection of vulnerable migrants in transit",
            "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"],
            "starts_on": "2013-01-01", "ends_on": "2015-09-30",
            "sectors": [{"code": "15190", "percentage": "100"}],
            "activities": [
                "Strengthen federal and state institutions that assist migrants in transit",
                "Strengthen civil-society organisations and migrant shelters",
                "Promote peaceful co-existence with host communities"
            ]}),
        ),
        (
            APPROVER,
            "approve it on 2012-09-27 (about 260 million yen)".to_string(),
            json!({"command": "approve-grant", "grant": GRANT, "decided_on": "2012-09-27", "reported_equivalent": {"amount": "260000000", "currency": "JPY"}}),
        ),
        (
            FINANCE,
            "record the year's interest on the fund's cash (12,345.67, illustrative)".to_string(),
            json!({"command": "record-income", "fund": FUND, "kind": "interest", "amount": "12345.67", "received_on": "2012-12-31"}),
        ),
        (
            SECRETARIAT,
            "attach the project document (SHA-256 illustrative)".to_string(),
            json!({"command": "attach-document", "grant": GRANT, "document": "PRODOC", "title": "Project document: protection of vulnerable migrants in transit in Chiapas and Oaxaca", "category": "A02", "sha256": PRODOC_SHA256, "issued_on": "2012-09-27"}),
        ),
    ];
    for (agency, allocation) in AGENCIES {
        let mut body = json!({"command": "assign-agency", "grant": GRANT, "agency": agency, "allocation": allocation});
        if *agency == "IOM" {
            body["lead"] = json!(true);
        }
        steps.push((
            SECRETARIAT,
            format!("assign {agency} ({allocation}, illustrative)"),
            body,
        ));
    }
    for (agency, amount) in FIRST_TRANCHE {
        steps.push((FINANCE, format!("first tranche to {agency} ({amount}, illustrative)"), json!({"command": "record-disbursement", "grant": GRANT, "agency": agency, "amount": amount, "paid_on": "2013-01-15", "reference": format!("TRANCHE-1-{agency}")})));
    }
    for agency in ["ILO", "UNICEF", "UN-Women"] {
        steps.push((SECRETARIAT, format!("withdraw {agency}"), json!({"command": "withdraw-agency", "grant": GRANT, "agency": agency, "reason": "programme revised to five agencies, IOM as lead"})));
    }
    steps.push((APPROVER, "revise the grant to 3,121,707.00".to_string(), json!({"command": "revise-grant", "grant": GRANT, "amount": "3121707.00", "ends_on": "2015-09-30", "decided_on": "2013-03-01", "reason": "budget revised for five agencies (January 2013 to September 2015)"})));
    for (agency, allocation) in REVISED {
        steps.push((SECRETARIAT, format!("revise {agency}'s allocation to {allocation} (illustrative), with a budget by category (illustrative split, indirect at the 7% cap)"), json!({"command": "revise-allocation", "grant": GRANT, "agency": agency, "allocation": allocation, "reason": "revised programme budget", "budget": budget_of(allocation)})));
    }
    steps.extend(the_first_year());
    steps
        .into_iter()
        .enumerate()
        .map(|(index, (actor, what, mut body))| {
            body["command_id"] = json!(format!("demo-{:02}", index + 1));
            body["actor"] = json!(actor);
            (actor, what, body)
        })
        .collect()
}

/// The programme's first year (dates and amounts illustrative): the annual progress report,
/// a second tranche held back until UNDP reports its spending, the report returned once.
fn the_first_year() -> Vec<(&'static str, String, Value)> {
    vec![
        (
            SECRETARIAT,
            "schedule the 2013 annual progress report, due 2014-03-31 (dates illustrative)".to_string(),
            json!({"command": "schedule-report", "grant": GRANT, "report": "PR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        ),
        (
            FINANCE,
            "second tranche to UNDP (100,000.00, illustrative): refused, UNDP has spent nothing of what it holds"
                .to_string(),
            json!({"command": "record-disbursement", "grant": GRANT, "agency": "UNDP", "amount": "100000.00", "paid_on": "2014-01-20", "reference": "TRANCHE-2-UNDP"}),
        ),
        (
            FINANCE,
            "UNDP reports staff costs (60,000.00, illustrative)".to_string(),
            json!({"command": "record-expenditure", "grant": GRANT, "agency": "UNDP", "amount": "60000.00", "period_end": "2013-12-31", "category": "staff"}),
        ),
        (
            FINANCE,
            "UNDP reports contractual services (30,000.00, illustrative)".to_string(),
            json!({"command": "record-expenditure", "grant": GRANT, "agency": "UNDP", "amount": "30000.00", "period_end": "2013-12-31", "category": "contractual"}),
        ),
        (
            FINANCE,
            "UNDP reports travel (20,000.00, illustrative): 73.33% of what it holds".to_string(),
            json!({"command": "record-expenditure", "grant": GRANT, "agency": "UNDP", "amount": "20000.00", "period_end": "2013-12-31", "category": "travel"}),
        ),
        (
            FINANCE,
            "second tranche to UNDP (100,000.00, illustrative): released".to_string(),
            json!({"command": "record-disbursement", "grant": GRANT, "agency": "UNDP", "amount": "100000.00", "paid_on": "2014-02-03", "reference": "TRANCHE-2-UNDP"}),
        ),
        (
            SECRETARIAT,
            "submit the annual report for IOM, the lead agency".to_string(),
            json!({"command": "submit-report", "grant": GRANT, "report": "PR-2013", "submitted_on": "2014-03-20", "document": {"title": "Annual progress report 2013", "sha256": REPORT_SHA256}}),
        ),
        (
            APPROVER,
            "return it: the results framework is missing".to_string(),
            json!({"command": "return-report", "grant": GRANT, "report": "PR-2013", "returned_on": "2014-03-28", "reason": "the results framework is missing"}),
        ),
        (
            SECRETARIAT,
            "submit it again (late: overdue from 2014-04-01 to 2014-04-09)".to_string(),
            json!({"command": "submit-report", "grant": GRANT, "report": "PR-2013", "submitted_on": "2014-04-10", "document": {"title": "Annual progress report 2013 (revised)", "sha256": REPORT_SHA256}}),
        ),
        (
            APPROVER,
            "accept it".to_string(),
            json!({"command": "accept-report", "grant": GRANT, "report": "PR-2013", "accepted_on": "2014-04-15"}),
        ),
    ]
}

/// Loads the example and prints what it did and the resulting figures.
pub async fn run(data: &Path, json: bool) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::Create).await?;
    let result = load(&engine, json).await;
    let model = engine.snapshot();
    engine.close().await?;
    let all_ok = result?;
    if !json {
        if let Some(view) = model.world.grant_view(GRANT) {
            outln!("\n{}", render::grant(&view, &model.world))?;
        }
        if let Some(view) = model.world.fund_view(FUND) {
            outln!("{}", render::fund(&view))?;
        }
    }
    Ok(if all_ok {
        Outcome::Success
    } else {
        Outcome::Failed
    })
}

async fn load(engine: &Engine, json: bool) -> anyhow::Result<bool> {
    let mut all_ok = true;
    let mut pending = Vec::new();
    for (actor, what, body) in script() {
        let submission = Submission::cli(body, Some(actor.to_string()));
        pending.push((actor, what, engine.enqueue(submission).await?));
    }
    for (index, (actor, what, waiting)) in pending.into_iter().enumerate() {
        let outcome = waiting.wait().await?;
        let expected = format!("demo-{:02}", index + 1) == EXPECTED_REFUSAL.0
            && outcome.code() == Some(EXPECTED_REFUSAL.1);
        all_ok &= outcome.is_ok() || expected;
        if json {
            outln!("{}", outcome.to_json())?;
        } else {
            outln!(
                "{:>2}. {actor:<20} {what}\n    {}",
                index + 1,
                render::outcome(&outcome)
            )?;
        }
    }
    Ok(all_ok)
}
