//! Rule-checked history: an export edited and re-hashed end to end (a self-consistent chain)
//! is still refused by `import` and `verify --export` when an event is not one the decider
//! could have written from the state before it, at its position, with the rule's code; a
//! refused import writes nothing. `import --checkpoint` refuses a file that does not extend
//! the checkpoint.

mod util;

use std::collections::HashMap;
use std::path::Path;

use grantflow_store::Envelope;
use util::{stderr, stdout, Store};

/// The demo's log, as envelopes.
fn demo_log(store: &Store) -> Vec<Envelope> {
    assert!(store.run(&["demo"]).status.success());
    let output = store.run(&["export", "--format", "jsonl"]);
    assert!(output.status.success());
    stdout(&output)
        .lines()
        .map(|line| Envelope::from_line(line).expect("an exported line"))
        .collect()
}

/// A forger's work: positions, stream versions and the whole hash chain recomputed, so that
/// the file checks as a chain.
fn rechain(log: &mut [Envelope]) {
    let mut versions: HashMap<String, u64> = HashMap::new();
    let mut prev = [0u8; 32];
    for (index, envelope) in log.iter_mut().enumerate() {
        envelope.position = index as u64 + 1;
        let version = versions.entry(envelope.stream.clone()).or_insert(0);
        *version += 1;
        envelope.version = *version;
        envelope.prev_hash = prev;
        envelope.hash = envelope.compute_hash();
        prev = envelope.hash;
    }
}

fn write(path: &Path, log: &[Envelope]) {
    let text: String = log.iter().map(|e| format!("{}\n", e.to_line())).collect();
    std::fs::write(path, text).expect("write the export");
}

fn event_at(log: &[Envelope], position: u64) -> &Envelope {
    &log[position as usize - 1]
}

fn find(log: &[Envelope], event_type: &str, payload_part: &str) -> usize {
    log.iter()
        .position(|e| e.event_type == event_type && e.payload.contains(payload_part))
        .unwrap_or_else(|| panic!("no {event_type} with {payload_part} in the demo"))
}

/// `verify --export FILE --json`, which exits 1 on a failure.
fn json_report(store: &Store, file: &str) -> serde_json::Value {
    let output = store.run(&["verify", "--export", file, "--json"]);
    serde_json::from_str(&stdout(&output)).expect("a JSON report")
}

/// The log the first release exported (tests/fixtures/part-one), as envelopes.
fn part_one_log() -> Vec<Envelope> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/part-one/log.jsonl");
    util::read(&path)
        .lines()
        .map(|line| Envelope::from_line(line).expect("a fixture line"))
        .collect()
}

/// `verify --export` and `import` refuse `log` at `position` with `code`; the import's
/// target store stays empty. The JSON report names the code too.
fn assert_refused(store: &Store, case: &str, log: &[Envelope], position: u64, code: &str) {
    let file = store.path(&format!("{case}.jsonl"));
    write(&file, log);
    let file_arg = file.to_str().expect("UTF-8");

    let verify = store.run(&["verify", "--export", file_arg]);
    let text = stdout(&verify);
    assert_eq!(verify.status.code(), Some(1), "{case}: verify: {text}");
    assert!(
        text.contains(&format!(
            "FAILED at position {position}: breaks rule {code}:"
        )),
        "{case}: verify names position {position} and {code}: {text}"
    );
    let report = json_report(store, file_arg);
    assert_eq!(report["failure"]["position"], position, "{case}: {report}");
    assert_eq!(report["failure"]["code"], code, "{case}: {report}");
    assert_eq!(report["head"]["position"], position - 1, "{case}: {report}");

    let target = Store::new();
    let import = target.run(&["import", file_arg]);
    let message = stderr(&import);
    assert_eq!(import.status.code(), Some(1), "{case}: import: {message}");
    assert!(
        message.contains(&format!(
            "import refused at position {position}: breaks rule {code}:"
        )),
        "{case}: import names position {position} and {code}: {message}"
    );
    let events = target.run(&["events"]);
    assert!(
        stdout(&events).trim().is_empty(),
        "{case}: a refused import wrote events"
    );
}

/// The untouched log imports and verifies: the check accepts what the decider wrote.
#[test]
fn the_demo_log_imports_and_verifies_with_the_rules() {
    let store = Store::new();
    let mut log = demo_log(&store);
    rechain(&mut log);
    let file = store.path("demo.jsonl");
    write(&file, &log);
    let file_arg = file.to_str().expect("UTF-8");
    let verify = store.run(&["verify", "--export", file_arg]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let target = Store::new();
    let import = target.run(&["import", file_arg]);
    assert!(import.status.success(), "{}", stderr(&import));
    let verify = target.run(&["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    let replay = target.run(&["replay"]);
    assert!(replay.status.success(), "{}", stderr(&replay));
}

/// (a) The approval re-signed by the proposal's own submitter: four eyes bypassed.
#[test]
fn an_approval_by_the_submitter_is_refused() {
    let store = Store::new();
    let mut log = demo_log(&store);
    let approval = find(&log, "grant.approved", "MEX-2012-01");
    let submitter = log[find(&log, "grant.proposed", "MEX-2012-01")]
        .actor
        .clone();
    assert_ne!(log[approval].actor, submitter);
    // Both events of the approval (it and the fund's commitment) carry the forged actor.
    let command = log[approval].command_id.clone();
    for envelope in log.iter_mut().filter(|e| e.command_id == command) {
        envelope.actor = submitter.clone();
    }
    rechain(&mut log);
    let position = log[approval].position;
    assert_refused(&store, "four-eyes", &log, position, "four_eyes_violation");
}

/// (b) A disbursement of 9,000,000.00 to IOM, whose allocation is 1,121,707.00: the fund's
/// cash would go negative. Appended as a command of its own at the end of the first
/// release's log (whose fund has no tranche condition, so the allocation is the rule met).
#[test]
fn a_disbursement_beyond_the_allocation_is_refused() {
    let store = Store::new();
    let mut log = part_one_log();
    let revision = find(
        &log,
        "grant.allocation_revised",
        "\"allocation\":\"1121707.00\"",
    );
    assert!(log[revision].payload.contains("\"agency\":\"IOM\""));
    let mut forged = log[find(&log, "grant.disbursement_recorded", "\"agency\":\"IOM\"")].clone();
    forged.payload = r#"{"grant":"MEX-2012-01","agency":"IOM","amount":"9000000.00","paid_on":"2014-05-02","reference":"TRANCHE-X"}"#.into();
    forged.command_id = "forged-disbursement".into();
    forged.correlation_id = forged.command_id.clone();
    forged.recorded_at = log.last().expect("events").recorded_at.clone();
    log.push(forged);
    rechain(&mut log);
    let position = log.len() as u64;
    assert_refused(
        &store,
        "over-disbursement",
        &log,
        position,
        "over_disbursement",
    );
    let report = json_report(
        &store,
        store
            .path("over-disbursement.jsonl")
            .to_str()
            .expect("UTF-8"),
    );
    let detail = report["failure"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("1,121,707.00 USD"), "{detail}");
}

/// (c) A negative contribution, appended at the end.
#[test]
fn a_negative_contribution_is_refused() {
    let store = Store::new();
    let mut log = demo_log(&store);
    let mut forged = log[find(&log, "fund.contribution_recorded", "JP-GOV")].clone();
    forged.payload =
        r#"{"fund":"UNTFHS","donor":"JP-GOV","amount":"-100000.00","received_on":"2014-05-02"}"#
            .into();
    forged.command_id = "forged-contribution".into();
    forged.correlation_id = forged.command_id.clone();
    forged.recorded_at = log.last().expect("events").recorded_at.clone();
    log.push(forged);
    rechain(&mut log);
    let position = log.len() as u64;
    assert_refused(&store, "negative", &log, position, "invalid_amount");
}

/// (d) A disbursement filed under the fund's stream: the grant's stream leaves it out but
/// its figures count it.
#[test]
fn an_event_filed_under_another_stream_is_refused() {
    let store = Store::new();
    let mut log = demo_log(&store);
    let index = find(&log, "grant.disbursement_recorded", "\"agency\":\"UNODC\"");
    let fund_stream = event_at(&log, 1).stream.clone();
    assert!(fund_stream.starts_with("fund-"));
    log[index].stream = fund_stream;
    rechain(&mut log);
    let position = log[index].position;
    assert_refused(&store, "stream", &log, position, "event_not_derivable");
    let report = json_report(&store, store.path("stream.jsonl").to_str().expect("UTF-8"));
    let detail = report["failure"]["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("grant-MEX-2012-01"), "{detail}");
}

/// A reason's text changed and the chain re-hashed: a log the decider could have written
/// (the same command with another reason), so it imports; only a checkpoint tells.
#[test]
fn import_checkpoint_accepts_the_log_it_covers_and_refuses_another() {
    let store = Store::new();
    let log = demo_log(&store);
    let checkpoint = store.path("checkpoint.json");
    let output = store.run(&["checkpoint"]);
    assert!(output.status.success());
    std::fs::write(&checkpoint, stdout(&output)).expect("write the checkpoint");
    let checkpoint_arg = checkpoint.to_str().expect("UTF-8");

    let exported = store.path("log.jsonl");
    write(&exported, &log);
    let target = Store::new();
    let good = target.run(&[
        "import",
        exported.to_str().expect("UTF-8"),
        "--checkpoint",
        checkpoint_arg,
    ]);
    assert!(good.status.success(), "{}", stderr(&good));
    assert_eq!(target.events().len(), log.len());

    let mut forged = log.clone();
    let index = find(&forged, "grant.agency_withdrawn", "\"agency\":\"ILO\"");
    forged[index].payload = forged[index]
        .payload
        .replace("programme revised", "programme reviewed");
    rechain(&mut forged);
    let file = store.path("forged.jsonl");
    write(&file, &forged);
    let file_arg = file.to_str().expect("UTF-8");
    let alone = Store::new();
    let accepted = alone.run(&["import", file_arg]);
    assert!(
        accepted.status.success(),
        "a harmless text change is a log the decider could have written: {}",
        stderr(&accepted)
    );

    let target = Store::new();
    let refused = target.run(&["import", file_arg, "--checkpoint", checkpoint_arg]);
    let message = stderr(&refused);
    assert_eq!(refused.status.code(), Some(1), "{message}");
    assert!(
        message.contains(&format!("import refused at position {}:", log.len()))
            && message.contains("does not extend the checkpoint"),
        "{message}"
    );
    assert!(
        stdout(&target.run(&["events"])).trim().is_empty(),
        "a refused import wrote events"
    );

    // A checkpoint past the file's end: events it covers are missing.
    let short = store.path("short.jsonl");
    write(&short, &log[..log.len() - 1]);
    let target = Store::new();
    let refused = target.run(&[
        "import",
        short.to_str().expect("UTF-8"),
        "--checkpoint",
        checkpoint_arg,
    ]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("events the checkpoint covers are missing"),
        "{}",
        stderr(&refused)
    );
    assert!(stdout(&target.run(&["events"])).trim().is_empty());
}
