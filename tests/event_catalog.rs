//! The event catalog against real logs: every event of the demo's log (the real binary,
//! `grantflow demo` then `grantflow events`) and of a random workload (the bench's generator,
//! through an in-process engine on a temporary sled store) is valid against the payload
//! schema of its type at its envelope's `schema` version, and every envelope against the
//! envelope's schema, with the `jsonschema` crate (formats checked). And the validation can
//! fail: an extra field, a schema-2 field in a schema-1 payload, a malformed amount or date,
//! a bad hash are each rejected.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use grantflow_domain::catalog::{catalog_versions, gained_fields, payload_schema};
use grantflow_engine::{ActorSource, CommandOutcome, Engine, Submission};
use grantflow_store::envelope::envelope_schema;
use grantflow_store_sled::SledStore;
use jsonschema::Validator;
use serde_json::{json, Value};
use util::Store;

fn validator(schema: &Value) -> Validator {
    jsonschema::draft202012::meta::validate(schema)
        .unwrap_or_else(|error| panic!("not a valid draft 2020-12 schema: {error}\n{schema}"));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("the schema does not compile: {error}\n{schema}"))
}

/// The envelope's validator and one per (type, version) of the catalog.
struct Catalog {
    envelope: Validator,
    payloads: BTreeMap<(String, u64), Validator>,
}

impl Catalog {
    fn new() -> Catalog {
        let payloads = catalog_versions()
            .into_iter()
            .map(|(event_type, version)| {
                let schema = payload_schema(event_type, version).expect("a catalog schema");
                (
                    (event_type.to_string(), u64::from(version)),
                    validator(&schema),
                )
            })
            .collect();
        Catalog {
            envelope: validator(&envelope_schema()),
            payloads,
        }
    }

    fn payload(&self, event_type: &str, version: u64) -> &Validator {
        self.payloads
            .get(&(event_type.to_string(), version))
            .unwrap_or_else(|| panic!("the catalog has no {event_type} schema {version}"))
    }

    /// Checks one envelope and its payload; returns its (type, version).
    fn check(&self, envelope: &Value) -> (String, u64) {
        if let Err(error) = self.envelope.validate(envelope) {
            panic!(
                "envelope invalid: {error} at {}\n{envelope}",
                error.instance_path
            );
        }
        let event_type = envelope["type"].as_str().expect("type").to_string();
        let version = envelope["schema"].as_u64().expect("schema");
        if let Err(error) = self
            .payload(&event_type, version)
            .validate(&envelope["payload"])
        {
            panic!(
                "{event_type} schema {version} payload invalid: {error} at {}\n{envelope}",
                error.instance_path
            );
        }
        (event_type, version)
    }
}

#[test]
fn every_event_of_the_demo_log_fits_its_schema() {
    let store = Store::new();
    let demo = store.run(&["demo"]);
    assert!(
        demo.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let events = store.run(&["events"]);
    assert!(events.status.success());
    let catalog = Catalog::new();
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for line in String::from_utf8(events.stdout).expect("UTF-8").lines() {
        let envelope: Value = serde_json::from_str(line).expect("a JSON line");
        seen.insert(catalog.check(&envelope));
        count += 1;
    }
    assert!(count >= 30, "the demo appended only {count} events");
    // The demo uses both shapes of a type that gained fields, and most types.
    assert!(
        seen.iter().any(|(_, version)| *version == 2),
        "no schema-2 event in the demo: {seen:?}"
    );
    assert!(seen.len() >= 15, "the demo covers only {seen:?}");
}

#[tokio::test]
async fn every_event_of_a_random_workload_fits_its_schema() {
    let seed = util::seed_from_env("GRANTFLOW_CATALOG_SEED");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(SledStore::open(dir.path()).expect("a new store"));
    let engine = Engine::open(store).await.expect("the engine opens");
    let workload = grantflow_bench::workload::generate(seed, 4, 400, 0);
    let mut accepted = 0;
    for command in workload.commands {
        let outcome = engine
            .submit(Submission {
                body: command.body,
                actor: ActorSource::BodyOr(None),
            })
            .await
            .expect("the engine answers");
        if matches!(outcome, CommandOutcome::Accepted { .. }) {
            accepted += 1;
        }
    }
    assert!(
        accepted >= 396,
        "seed {seed}: only {accepted} of 400 accepted"
    );
    let catalog = Catalog::new();
    let mut from = 1;
    let mut count = 0;
    loop {
        let page = engine.store().read(from, 1_000).await.expect("a page");
        let Some(last) = page.last() else { break };
        from = last.position + 1;
        for envelope in &page {
            catalog.check(&envelope.to_json_value());
            // The printed line is the same JSON.
            let line: Value = serde_json::from_str(&envelope.to_line()).expect("JSON");
            assert_eq!(line, envelope.to_json_value());
            count += 1;
        }
    }
    assert!(count >= 400, "seed {seed}: {count} events");
    // The relay's subjects of these events are the AsyncAPI channel's.
    let asyncapi = grantflow_server::asyncapi();
    let parameters = &asyncapi["channels"]["relay"]["parameters"];
    assert_eq!(
        parameters["prefix"]["default"],
        json!(grantflow_relay::DEFAULT_SUBJECT_PREFIX)
    );
    assert_eq!(
        grantflow_server::catalog::RELAY_HASH_HEADER,
        grantflow_relay::HASH_HEADER
    );
    for envelope in engine.store().read(1, 1_000).await.expect("a page") {
        let subject = grantflow_relay::subject(grantflow_relay::DEFAULT_SUBJECT_PREFIX, &envelope);
        let tokens: Vec<&str> = subject.split('.').collect();
        assert_eq!(tokens.len(), 4, "{subject}");
        assert!(parameters["kind"]["enum"]
            .as_array()
            .expect("kinds")
            .contains(&json!(tokens[1])));
        assert!(parameters["event"]["enum"]
            .as_array()
            .expect("events")
            .contains(&json!(tokens[3])));
        let message = &asyncapi["channels"]["relay"]["messages"][&envelope.event_type];
        assert!(message.is_object(), "{}", envelope.event_type);
    }
    engine.close().await.expect("the engine closes");
}

/// A valid envelope of each shape the checks below spoil.
fn valid_envelope(event_type: &str, schema: u64, payload: Value) -> Value {
    json!({
        "position": 7, "stream": "grant-MEX-2012-01", "version": 3, "type": event_type,
        "schema": schema, "recorded_at": "2026-12-06T09:52:42.512915Z", "actor": "s.ruiz",
        "command_id": "c-1", "correlation_id": "c-1", "payload": payload,
        "prev_hash": "0".repeat(64),
        "hash": "ec713b4bed9563ff598c69624a9914fbec7d19073dae0a271052a091a5bf738f",
    })
}

#[test]
fn the_schemas_reject_what_grantflow_never_writes() {
    let catalog = Catalog::new();
    let expenditure = json!({"grant": "MEX-2012-01", "agency": "IOM", "amount": "420000.00", "period_end": "2013-06-30"});
    let with_category = json!({"grant": "MEX-2012-01", "agency": "IOM", "amount": "420000.00", "period_end": "2013-06-30", "category": "staff"});
    let v1 = catalog.payload("grant.expenditure_recorded", 1);
    let v2 = catalog.payload("grant.expenditure_recorded", 2);
    // The valid ones first, so that each rejection below is the change's.
    assert!(v1.is_valid(&expenditure));
    assert!(v2.is_valid(&with_category));
    catalog.check(&valid_envelope(
        "grant.expenditure_recorded",
        1,
        expenditure.clone(),
    ));

    let spoiled = |field: &str, value: Value| {
        let mut payload = expenditure.clone();
        payload[field] = value;
        payload
    };
    // An extra field.
    assert!(!v1.is_valid(&spoiled("note", json!("x"))));
    assert!(!v2.is_valid(&spoiled("note", json!("x"))));
    // A schema-2 field in a schema-1 payload; a schema-2 payload without one.
    assert!(!v1.is_valid(&with_category));
    assert!(!v2.is_valid(&expenditure));
    assert!(!v2.is_valid(&spoiled("category", json!("food"))));
    // Malformed amounts.
    for amount in [
        json!(420000.0),
        json!("420,000.00"),
        json!("01.00"),
        json!("-0.00"),
        json!("1.23456"),
        json!("1."),
        json!(""),
    ] {
        assert!(!v1.is_valid(&spoiled("amount", amount.clone())), "{amount}");
    }
    // Malformed dates, and a day no calendar has (the `date` format).
    for date in [
        "2013-6-30",
        "2013-06-31",
        "2013-02-29",
        "0000-01-01",
        "30/06/2013",
    ] {
        assert!(!v1.is_valid(&spoiled("period_end", json!(date))), "{date}");
    }
    assert!(v1.is_valid(&spoiled("period_end", json!("2012-02-29"))));
    // A missing required field.
    let mut missing = expenditure.clone();
    missing.as_object_mut().expect("object").remove("agency");
    assert!(!v1.is_valid(&missing));

    // The other hand-written types: percentages, currencies, countries, budgets.
    let registered = catalog.payload("fund.registered", 2);
    let fund = json!({"fund": "PBF", "name": "Peacebuilding Fund", "currency": "USD", "admin_fee_percent": "1.00"});
    assert!(registered.is_valid(&fund));
    for (field, value) in [
        ("admin_fee_percent", json!("1")),
        ("admin_fee_percent", json!("100.01")),
        ("admin_fee_percent", json!("101.00")),
        ("currency", json!("usd")),
        ("currency", json!("XXX")),
    ] {
        let mut payload = fund.clone();
        payload[field] = value.clone();
        assert!(!registered.is_valid(&payload), "{field} {value}");
    }
    let proposed = catalog.payload("grant.proposed", 1);
    let proposal = json!({"grant": "G", "fund": "F", "title": "T", "currency": "USD", "requested": "1.00", "country": "MX", "regions": [], "activities": [], "submitted_by": "s"});
    assert!(proposed.is_valid(&proposal));
    let mut bad_country = proposal.clone();
    bad_country["country"] = json!("XX");
    assert!(!proposed.is_valid(&bad_country));
    let assigned = catalog.payload("grant.agency_assigned", 2);
    let budget = json!({"staff": "1.00", "supplies": "0.00", "equipment": "0.00", "contractual": "0.00", "travel": "0.00", "transfers": "0.00", "operating": "0.00", "indirect": "0.07"});
    let assignment =
        json!({"grant": "G", "agency": "A", "lead": true, "allocation": "1.07", "budget": budget});
    assert!(assigned.is_valid(&assignment));
    let mut short = assignment.clone();
    short["budget"]
        .as_object_mut()
        .expect("object")
        .remove("indirect");
    assert!(!assigned.is_valid(&short));

    // The envelope: a bad hash, a position 0, an extra field, recorded_at without microseconds.
    for (field, value) in [
        (
            "hash",
            json!("EC713B4BED9563FF598C69624A9914FBEC7D19073DAE0A271052A091A5BF738F"),
        ),
        ("prev_hash", json!("00")),
        ("position", json!(0)),
        ("schema", json!(0)),
        ("recorded_at", json!("2026-12-06T09:52:42Z")),
        ("extra", json!(1)),
    ] {
        let mut envelope = valid_envelope("grant.expenditure_recorded", 1, expenditure.clone());
        envelope[field] = value.clone();
        assert!(!catalog.envelope.is_valid(&envelope), "{field} {value}");
    }
}

/// The schemas agree with the decoder: what a schema says about a gained field is what
/// `Event::from_parts` and `Event::schema` say.
#[test]
fn the_versions_follow_the_decoder() {
    let catalog = Catalog::new();
    let payload = json!({"fund": "F", "donor": "JP", "amount": "1.00", "received_on": "2013-03-15", "pledge": "P-1"});
    let event =
        grantflow_domain::Event::from_parts("fund.contribution_recorded", &payload.to_string())
            .expect("the decoder reads it");
    assert_eq!(u64::from(event.schema()), 2);
    assert!(catalog
        .payload("fund.contribution_recorded", 2)
        .is_valid(&payload));
    assert!(!catalog
        .payload("fund.contribution_recorded", 1)
        .is_valid(&payload));
    assert_eq!(gained_fields("fund.contribution_recorded"), ["pledge"]);
    // The decoder refuses an unknown field, as every schema does.
    let mut extra = payload.clone();
    extra["note"] = json!("x");
    assert!(
        grantflow_domain::Event::from_parts("fund.contribution_recorded", &extra.to_string())
            .is_err()
    );
}
