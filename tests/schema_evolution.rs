//! Schema evolution (docs/events.md, "Schema versions"): a log holding events of both
//! shapes of the types that gained fields, exported by the release that added them
//! (`tests/fixtures/schema-2/`: the demo's log, its figures and checkpoint), imports,
//! verifies and replays to the same figures, and exports byte for byte as written. A log or
//! a store holding an event of a schema newer than this release reads is refused, naming
//! the type and both versions, and the store is left as it was.

mod util;

use std::path::PathBuf;

use grantflow_store::{Envelope, EventStore};
use serde_json::Value;
use util::{read, stderr, stdout, Store};

fn fixture(name: &str) -> PathBuf {
    util::fixture("schema-2", name)
}

fn imported() -> Store {
    util::imported(&fixture("log.jsonl"))
}

#[test]
fn a_log_of_both_shapes_imports_verifies_and_replays_to_the_same_figures() {
    let store = imported();
    let checkpoint = fixture("checkpoint.json");
    let verify = store.run(&[
        "verify",
        "--checkpoint",
        checkpoint.to_str().expect("UTF-8"),
    ]);
    assert!(verify.status.success(), "verify: {}", stdout(&verify));
    let exported = store.run(&["export", "--format", "jsonl"]);
    assert!(
        stdout(&exported) == read(&fixture("log.jsonl")),
        "the export differs from the log as it was written"
    );
    let schemas: Vec<u64> = store
        .events()
        .iter()
        .map(|event| event["schema"].as_u64().expect("schema"))
        .collect();
    assert!(schemas.contains(&1) && schemas.contains(&2), "{schemas:?}");

    let replayed = store.run(&["replay"]);
    assert!(replayed.status.success(), "replay: {}", stderr(&replayed));
    let figures: Value =
        serde_json::from_str(&read(&fixture("figures.json"))).expect("figures.json is JSON");
    for (kind, key) in [("grant", "grants"), ("fund", "funds")] {
        let held = figures[key].as_object().expect("an object of ids");
        assert!(!held.is_empty());
        for (id, old) in held {
            let new = store.json(&[kind, "show", id, "--json"]);
            assert_eq!(&new, old, "{kind} {id}");
        }
    }
}

/// The fixture's log with the event at `position` raised to `schema`, and the chain sealed
/// again from there: what a newer release that wrote that schema would have exported.
fn log_with_schema(position: u64, schema: u32) -> (String, String) {
    let mut prev = [0u8; 32];
    let mut event_type = String::new();
    let mut out = String::new();
    for line in read(&fixture("log.jsonl")).lines() {
        let mut envelope = Envelope::from_line(line).expect("the fixture's lines are envelopes");
        if envelope.position == position {
            envelope.schema = schema;
            event_type = envelope.event_type.clone();
        }
        envelope.prev_hash = prev;
        envelope.hash = envelope.compute_hash();
        prev = envelope.hash;
        out.push_str(&envelope.to_line());
        out.push('\n');
    }
    (out, event_type)
}

#[test]
fn an_export_with_a_newer_schema_is_refused_naming_both_versions() {
    for (position, schema, supported) in [(2, 2, 1), (5, 3, 2)] {
        let (log, event_type) = log_with_schema(position, schema);
        let store = Store::new();
        let file = store.path("newer.jsonl");
        std::fs::write(&file, log).expect("write the log");
        let expected = format!(
            "{event_type} schema {schema} was written by a newer grantflow; this release reads {event_type} up to schema {supported}"
        );

        let verify = store.run(&["verify", "--export", file.to_str().expect("UTF-8")]);
        assert_eq!(verify.status.code(), Some(1), "{}", stdout(&verify));
        let said = format!("{}{}", stdout(&verify), stderr(&verify));
        assert!(said.contains(&format!("position {position}")), "{said}");
        assert!(said.contains(&expected), "{said}");

        let import = store.run(&["import", file.to_str().expect("UTF-8")]);
        assert_eq!(import.status.code(), Some(1), "{}", stderr(&import));
        let said = stderr(&import);
        assert!(
            said.contains(&format!("import refused at position {position}")),
            "{said}"
        );
        assert!(said.contains(&expected), "{said}");
        assert!(store.events().is_empty(), "the refused import wrote events");
    }
}

/// A store into which a newer release appended an event of a newer schema: this release
/// refuses to fold it (every read, replay, verify) naming both versions, and changes nothing.
#[test]
fn a_store_holding_a_newer_schema_is_refused_naming_both_versions() {
    let store = Store::new();
    let (log, event_type) = log_with_schema(41, 2);
    assert_eq!(event_type, "grant.report_accepted");
    let events: Vec<Envelope> = log
        .lines()
        .map(|line| Envelope::from_line(line).expect("envelope"))
        .collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let sled = grantflow_store_sled::SledStore::open(&store.data()).expect("open the store");
        sled.import(events).await.expect("a raw import");
        sled.close().await.expect("close");
    });
    let expected = "event at position 41: grant.report_accepted schema 2 was written by a newer grantflow; this release reads grant.report_accepted up to schema 1";
    for (args, code) in [
        (&["grant", "show", "MEX-2012-01"][..], 2),
        (&["replay"][..], 1),
        (&["verify"][..], 1),
    ] {
        let output = store.run(args);
        assert_eq!(output.status.code(), Some(code), "{args:?}");
        let said = format!("{}{}", stdout(&output), stderr(&output));
        assert!(
            said.contains(expected) || said.contains(&expected[22..]),
            "{args:?}: {said}"
        );
    }
    assert_eq!(store.events().len(), 41);
}
