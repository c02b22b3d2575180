//! Embedding grantflow as a library: a sled store, the engine on top, and the model case of
//! domain.md (the UN Trust Fund for Human Security's 2012 grant to a programme protecting
//! migrants in transit in Chiapas and Oaxaca, Mexico), from the fund's registration to the
//! grant's revision, then the grant's figures as the read model has them.
//!
//! ```sh
//! cargo run --example embed_lifecycle            # in a temporary directory
//! cargo run --example embed_lifecycle -- ./data  # or in a store of your own
//! ```
//!
//! The commands are the JSON objects of contract.md, the same as `grantflow exec` and the
//! HTTP API take; each carries a fixed `command_id`, so a second run on the same directory
//! appends nothing (every answer comes back `"replayed": true`).

use std::path::PathBuf;
use std::sync::Arc;

use grantflow_engine::{Engine, Submission};
use grantflow_store::EventStore;
use grantflow_store_sled::SledStore;
use serde_json::{json, Value};

const FUND: &str = "UNTFHS";
const GRANT: &str = "MEX-2012-01";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // The data directory: the first argument, or a temporary one removed at the end.
    let temporary = tempfile::tempdir()?;
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| temporary.path().join("data"));

    // Opening a sled store does file I/O and recovery: keep it off the async threads.
    let opened = dir.clone();
    let store: Arc<dyn EventStore> =
        Arc::new(tokio::task::spawn_blocking(move || SledStore::open(&opened)).await??);
    // The engine folds the log into its read model, then starts the single writer.
    let engine = Engine::open(store).await?;

    let mut rejected = 0;
    for (actor, body) in lifecycle() {
        // `submit` returns once the command's batch is durable (or the command is rejected).
        let outcome = engine
            .submit(Submission::cli(body, Some(actor.into())))
            .await?;
        println!("{:<20} {}", actor, outcome.to_json());
        if !outcome.is_ok() {
            rejected += 1;
        }
    }

    // Reads come from the in-memory read model: durable state only, no store access.
    let grant = engine.with_model(|model| model.world.grant_view(GRANT));
    let fund = engine.with_model(|model| model.world.fund_view(FUND));
    // Close the engine: it finishes queued work, saves a projection snapshot, closes the store.
    engine.close().await?;

    let grant = grant.ok_or_else(|| anyhow::anyhow!("grant {GRANT} not found"))?;
    println!(
        "\ngrant {} ({}), {}",
        grant.grant, grant.currency, grant.status
    );
    println!("  requested    {:>14}", grant.requested);
    println!("  amount       {:>14}", grant.amount);
    println!("  allocated    {:>14}", grant.allocated);
    println!("  disbursed    {:>14}", grant.disbursed);
    for agency in &grant.agencies {
        let lead = if agency.lead { " (lead)" } else { "" };
        println!(
            "  {:<10} allocation {:>13}, disbursed {:>12}{lead}",
            agency.agency, agency.allocation, agency.disbursed
        );
    }
    if let Some(fund) = fund {
        println!(
            "fund {}: received {}, committed {}, available {}",
            fund.fund, fund.received, fund.committed, fund.available
        );
    }

    // The figures the model case must end with (domain.md): say so, or fail.
    if rejected == 0
        && grant.amount == "3121707.00"
        && grant.allocated == "3121707.00"
        && grant.disbursed == "800000.00"
    {
        println!("embed_lifecycle: ok");
        Ok(())
    } else {
        anyhow::bail!("embed_lifecycle: unexpected outcome ({rejected} rejected)")
    }
}

/// The model case's commands, in order, with who issues each (as in `grantflow demo`).
fn lifecycle() -> Vec<(&'static str, Value)> {
    let finance = "finance.officer";
    let secretariat = "secretariat.officer";
    // Four eyes: the approver is not the secretariat officer who submitted the proposal.
    let approver = "fund.manager";
    let mut steps = vec![
        (
            finance,
            json!({"command": "register-fund", "fund": FUND,
            "name": "United Nations Trust Fund for Human Security", "currency": "USD"}),
        ),
        (
            finance,
            json!({"command": "record-contribution", "fund": FUND, "donor": "JP-GOV",
            "amount": "5000000.00", "received_on": "2012-04-02"}),
        ),
        (
            secretariat,
            json!({"command": "submit-proposal", "fund": FUND, "grant": GRANT,
            "title": "Protection of vulnerable migrants in transit",
            "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"],
            "starts_on": "2013-01-01", "ends_on": "2015-09-30"}),
        ),
        (
            approver,
            json!({"command": "approve-grant", "grant": GRANT, "decided_on": "2012-09-27"}),
        ),
    ];
    // Eight agencies, IOM leading (sum: 3,209,232.40).
    for (agency, allocation) in [
        ("IOM", "900000.00"),
        ("UNDP", "450000.00"),
        ("UNFPA", "400000.00"),
        ("UNHCR", "450000.00"),
        ("UNODC", "400000.00"),
        ("ILO", "200000.00"),
        ("UNICEF", "209232.40"),
        ("UN-Women", "200000.00"),
    ] {
        steps.push((
            secretariat,
            json!({"command": "assign-agency", "grant": GRANT,
            "agency": agency, "allocation": allocation, "lead": agency == "IOM"}),
        ));
    }
    // The first tranche (800,000.00), to the five agencies that stay in the programme.
    for (agency, amount) in [
        ("IOM", "300000.00"),
        ("UNDP", "150000.00"),
        ("UNFPA", "100000.00"),
        ("UNHCR", "150000.00"),
        ("UNODC", "100000.00"),
    ] {
        steps.push((
            finance,
            json!({"command": "record-disbursement", "grant": GRANT,
            "agency": agency, "amount": amount, "paid_on": "2013-01-15"}),
        ));
    }
    // The programme is revised to five agencies and USD 3,121,707.00.
    for agency in ["ILO", "UNICEF", "UN-Women"] {
        steps.push((
            secretariat,
            json!({"command": "withdraw-agency", "grant": GRANT,
            "agency": agency, "reason": "programme revised to five agencies"}),
        ));
    }
    steps.push((
        approver,
        json!({"command": "revise-grant", "grant": GRANT,
        "amount": "3121707.00", "decided_on": "2013-03-01", "reason": "five agencies"}),
    ));
    for (agency, allocation) in [
        ("IOM", "1121707.00"),
        ("UNDP", "500000.00"),
        ("UNFPA", "500000.00"),
        ("UNHCR", "500000.00"),
        ("UNODC", "500000.00"),
    ] {
        steps.push((
            secretariat,
            json!({"command": "revise-allocation", "grant": GRANT,
            "agency": agency, "allocation": allocation, "reason": "revised budget"}),
        ));
    }
    // Fixed command ids make the whole script idempotent.
    for (index, (_, body)) in steps.iter_mut().enumerate() {
        body["command_id"] = json!(format!("lifecycle-{:02}", index + 1));
    }
    steps
}
