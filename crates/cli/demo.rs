//! `grantflow demo`: the worked example of docs/domain.md, from the UN Trust Fund for Human
//! Security's press release of 15 October 2012 and the programme's later public record.
//! Every command carries a fixed command id, so running the demo twice appends nothing new.

use std::path::Path;

use grantflow_engine::{Engine, Submission};
use serde_json::{json, Value};

use crate::open::{open_engine, Access};
use crate::outcome::Outcome;
use crate::render;

/// The fund and grant of the example.
pub const FUND: &str = "UNTFHS";
/// The Mexico programme.
pub const GRANT: &str = "MEX-2012-01";

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

/// The example's commands, in order: (actor, what it does, command JSON).
pub fn script() -> Vec<(&'static str, String, Value)> {
    let mut steps = vec![
        (
            FINANCE,
            "register the fund".to_string(),
            json!({"command": "register-fund", "fund": FUND, "name": "United Nations Trust Fund for Human Security", "currency": "USD"}),
        ),
        (
            FINANCE,
            "record Japan's contribution".to_string(),
            json!({"command": "record-contribution", "fund": FUND, "donor": "JP-GOV", "amount": "5000000.00", "received_on": "2012-04-02"}),
        ),
        (
            SECRETARIAT,
            "submit the Mexico proposal".to_string(),
            json!({
            "command": "submit-proposal", "fund": FUND, "grant": GRANT,
            "title": "Supporting the strengthening of government institutions and civil society capacities to improve the protection of vulnerable migrants in transit",
            "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"],
            "starts_on": "2013-01-01", "ends_on": "2015-09-30",
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
    ];
    for (agency, allocation) in AGENCIES {
        let mut body = json!({"command": "assign-agency", "grant": GRANT, "agency": agency, "allocation": allocation});
        if *agency == "IOM" {
            body["lead"] = json!(true);
        }
        steps.push((SECRETARIAT, format!("assign {agency} ({allocation})"), body));
    }
    for (agency, amount) in FIRST_TRANCHE {
        steps.push((FINANCE, format!("first tranche to {agency} ({amount})"), json!({"command": "record-disbursement", "grant": GRANT, "agency": agency, "amount": amount, "paid_on": "2013-01-15", "reference": format!("TRANCHE-1-{agency}")})));
    }
    for agency in ["ILO", "UNICEF", "UN-Women"] {
        steps.push((SECRETARIAT, format!("withdraw {agency}"), json!({"command": "withdraw-agency", "grant": GRANT, "agency": agency, "reason": "programme revised to five agencies, IOM as lead"})));
    }
    steps.push((APPROVER, "revise the grant to 3,121,707.00".to_string(), json!({"command": "revise-grant", "grant": GRANT, "amount": "3121707.00", "ends_on": "2015-09-30", "decided_on": "2013-03-01", "reason": "budget revised for five agencies (January 2013 to September 2015)"})));
    for (agency, allocation) in REVISED {
        steps.push((SECRETARIAT, format!("revise {agency}'s allocation to {allocation}"), json!({"command": "revise-allocation", "grant": GRANT, "agency": agency, "allocation": allocation, "reason": "revised programme budget"})));
    }
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

/// Loads the example and prints what it did and the resulting figures.
pub async fn run(data: &Path, json: bool) -> anyhow::Result<Outcome> {
    let engine = open_engine(data, Access::Create).await?;
    let result = load(&engine, json).await;
    let model = engine.snapshot();
    engine.close().await?;
    let all_ok = result?;
    if !json {
        if let Some(view) = model.world.grant_view(GRANT) {
            println!("\n{}", render::grant(&view, &model.world));
        }
        if let Some(view) = model.world.fund_view(FUND) {
            println!("{}", render::fund(&view));
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
        all_ok &= outcome.is_ok();
        if json {
            println!("{}", outcome.to_json());
        } else {
            println!(
                "{:>2}. {actor:<20} {what}\n    {}",
                index + 1,
                render::outcome(&outcome)
            );
        }
    }
    Ok(all_ok)
}
