//! A log written before the secretariat's workflow (part two of docs/domain.md) existed:
//! `tests/fixtures/part-one/log.jsonl` was exported by that release, with its figures
//! (`figures.json`) and checkpoint (`checkpoint.json`). Imported by this release it verifies,
//! extends the checkpoint, shows the same figures (plus the new ones, at their defaults) and
//! exports byte for byte as it was written: the hash chain is untouched.

mod util;

use std::path::PathBuf;

use serde_json::Value;
use util::{read, stderr, stdout, Store};

fn fixture(name: &str) -> PathBuf {
    util::fixture("part-one", name)
}

fn imported() -> Store {
    util::imported(&fixture("log.jsonl"))
}

/// Every field of `old` has the same value in `new`.
fn same_figures(what: &str, old: &Value, new: &Value) {
    for (field, value) in old.as_object().expect("figures are an object") {
        assert_eq!(&new[field], value, "{what}: `{field}` differs");
    }
}

#[test]
fn a_log_of_the_first_shapes_imports_verifies_and_exports_as_written() {
    let store = imported();
    let verify = store.run(&["verify"]);
    assert!(verify.status.success(), "verify: {}", stdout(&verify));
    let checkpoint = fixture("checkpoint.json");
    let against = store.run(&[
        "verify",
        "--checkpoint",
        checkpoint.to_str().expect("UTF-8"),
    ]);
    assert!(
        against.status.success(),
        "verify --checkpoint: {}",
        stdout(&against)
    );

    let exported = store.run(&["export", "--format", "jsonl"]);
    assert!(exported.status.success());
    assert!(
        stdout(&exported) == read(&fixture("log.jsonl")),
        "the export differs from the log as it was written"
    );
    for event in store.events() {
        assert_eq!(event["schema"], 1, "{event}");
    }
}

#[test]
fn a_log_of_the_first_shapes_replays_to_the_same_figures() {
    let store = imported();
    let figures: Value =
        serde_json::from_str(&read(&fixture("figures.json"))).expect("figures.json is JSON");
    for (grant, old) in figures["grants"].as_object().expect("grants") {
        let new = store.json(&["grant", "show", grant, "--json"]);
        same_figures(grant, old, &new);
        assert_eq!(new["reports"], serde_json::json!([]));
        assert_eq!(new["documents"], serde_json::json!([]));
    }
    let old = &figures["funds"]["UNTFHS"];
    let replayed = store.run(&["replay"]);
    assert!(replayed.status.success(), "replay: {}", stderr(&replayed));
    let new = store.json(&["fund", "show", "UNTFHS", "--json"]);
    same_figures("UNTFHS", old, &new);
    assert_eq!(new["fees"], "0.00");
    assert_eq!(new["income"], "0.00");
    assert_eq!(new["pledged"], "0.00");
    assert_eq!(new["terms"]["indirect_max_percent"], "7.00");
    // The approval's reported equivalent, stored then, is shown now.
    let grant = store.json(&["grant", "show", "MEX-2012-01", "--json"]);
    assert_eq!(grant["reported_equivalent"]["currency"], "JPY");
}
