//! The reference documents under `docs/` against the code: the command table, the error
//! codes with their HTTP statuses, the event types with example payloads, example figures,
//! `docs/openapi.json`, `docs/asyncapi.json` and the catalog's JSON Schemas in
//! `docs/schemas/` are built here from the domain, store and server crates and compared with
//! the marked sections of the documents and with the files. A difference fails with a diff; run with
//! `GRANTFLOW_UPDATE_DOCS=1` to rewrite the sections from the code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use grantflow_domain::catalog::{
    catalog_versions, gained_fields, payload_schema, payload_schema_name,
};
use grantflow_domain::parse::{command_fields, COMMON_FIELDS};
use grantflow_domain::{
    allowed_states, command_of_event, decide, evolve, parse_command, Event, World, COMMAND_NAMES,
    ERROR_CODES, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED, EVENT_TYPES,
};
use serde_json::{json, Map, Value};

const UPDATE_VARIABLE: &str = "GRANTFLOW_UPDATE_DOCS";

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs")
}

fn updating() -> bool {
    std::env::var(UPDATE_VARIABLE).is_ok_and(|value| value == "1")
}

#[test]
fn command_table_matches_the_parser() {
    check_section("commands.md", "commands", &command_table());
}

#[test]
fn error_codes_match_the_domain_and_the_server() {
    check_section("errors.md", "error-codes", &error_table());
}

/// The HTTP-only codes of docs/errors.md are the server's (`HTTP_ERROR_CODES`, the rest of
/// the `enum` of the OpenAPI description's error code).
#[test]
fn http_only_codes_match_the_server() {
    let text = std::fs::read_to_string(docs_dir().join("errors.md")).expect("docs/errors.md");
    let section = text
        .split("## HTTP-only codes")
        .nth(1)
        .expect("errors.md has a section \"HTTP-only codes\"");
    let mut documented: Vec<&str> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| "))
        .filter_map(|row| row.split(" | ").nth(1))
        .filter_map(|cell| cell.strip_prefix('`')?.strip_suffix('`'))
        .collect();
    documented.sort_unstable();
    documented.dedup();
    let mut server: Vec<&str> = grantflow_server::error::HTTP_ERROR_CODES.to_vec();
    server.sort_unstable();
    assert_eq!(
        documented, server,
        "docs/errors.md's HTTP-only codes and grantflow_server::error::HTTP_ERROR_CODES differ"
    );
}

#[test]
fn allowed_states_match_the_decider() {
    check_section("domain.md", "states", &state_table());
}

#[test]
fn event_types_match_the_domain() {
    let (events, _) = run_scenario();
    check_section("events.md", "event-types", &event_list(&events));
}

#[test]
fn figures_match_the_views() {
    let (_, world) = run_scenario();
    check_section("domain.md", "figures", &figures_example(&world));
}

#[test]
fn openapi_json_matches_the_server() {
    let mut generated = serde_json::to_string_pretty(&grantflow_server::openapi())
        .expect("the OpenAPI description serializes");
    generated.push('\n');
    let path = docs_dir().join("openapi.json");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current == generated {
        return;
    }
    if updating() {
        std::fs::write(&path, &generated).expect("writing docs/openapi.json");
        return;
    }
    panic!(
        "docs/openapi.json differs from the server's OpenAPI description \
         (grantflow_server::openapi()):\n{}\nrun with {UPDATE_VARIABLE}=1 to rewrite it: \
         {UPDATE_VARIABLE}=1 cargo test -p grantflow --test docs_reference",
        diff(&current, &generated)
    );
}

/// The catalog's JSON Schemas in `docs/schemas/`: `envelope.json` and
/// `<type>.v<version>.json` for every event type at every schema version, nothing else.
#[test]
fn schema_files_match_the_catalog() {
    let dir = docs_dir().join("schemas");
    let mut generated = vec![(
        "envelope.json".to_string(),
        grantflow_store::envelope::envelope_schema(),
    )];
    for (event_type, version) in catalog_versions() {
        let schema = payload_schema(event_type, version).expect("a schema of the catalog");
        generated.push((
            format!("{}.json", payload_schema_name(event_type, version)),
            schema,
        ));
    }
    if updating() {
        std::fs::create_dir_all(&dir).expect("creating docs/schemas");
    }
    let mut problems = Vec::new();
    for (name, schema) in &generated {
        let text = format!(
            "{}\n",
            serde_json::to_string_pretty(schema).expect("a schema serializes")
        );
        check_file(&dir.join(name), &text, &mut problems);
    }
    let names: Vec<&str> = generated.iter().map(|(name, _)| name.as_str()).collect();
    for entry in std::fs::read_dir(&dir).expect("docs/schemas") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !names.contains(&name) {
            if updating() {
                std::fs::remove_file(&path).expect("removing a stale schema");
            } else {
                problems.push(format!(
                    "docs/schemas/{name} is not a schema of the catalog"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nrun with {UPDATE_VARIABLE}=1 to rewrite them: \
         {UPDATE_VARIABLE}=1 cargo test -p grantflow --test docs_reference",
        problems.join("\n")
    );
}

#[test]
fn asyncapi_json_matches_the_server() {
    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&grantflow_server::asyncapi()).expect("JSON")
    );
    let mut problems = Vec::new();
    check_file(&docs_dir().join("asyncapi.json"), &text, &mut problems);
    assert!(
        problems.is_empty(),
        "{}\nrun with {UPDATE_VARIABLE}=1 to rewrite it: \
         {UPDATE_VARIABLE}=1 cargo test -p grantflow --test docs_reference",
        problems.join("\n")
    );
}

/// Compares a generated file with the repository's; rewrites it when updating, else records
/// the difference.
fn check_file(path: &Path, generated: &str, problems: &mut Vec<String>) {
    let current = std::fs::read_to_string(path).unwrap_or_default();
    if current == generated {
        return;
    }
    if updating() {
        std::fs::write(path, generated).expect("writing a generated document");
        return;
    }
    problems.push(format!(
        "{} differs from the code:\n{}",
        path.display(),
        diff(&current, generated)
    ));
}

// ---------------------------------------------------------------------------------------
// Commands

/// A SHA-256 for the samples and the scenario: 64 lowercase hex digits.
const SAMPLE_SHA256: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A valid sample value for a field of a command, so that the parser can be probed field by
/// field (a few fields take different values in different commands, e.g. `kind`).
fn sample(command: &str, field: &str) -> Value {
    match (command, field) {
        ("record-income", "kind") => json!("interest"),
        ("schedule-report", "kind") => json!("progress"),
        ("submit-report", "document") => json!({"title": "text", "sha256": SAMPLE_SHA256}),
        ("attach-document", "document") => json!("DOC-1"),
        ("attach-document", "category") => json!("A02"),
        (_, "category") => json!("staff"),
        (_, "fund" | "grant" | "agency" | "donor") => json!("X-1"),
        (_, "pledge") => json!("PL-1"),
        (_, "report") => json!("R-1"),
        (_, "name" | "title" | "reason") => json!("text"),
        (_, "currency") => json!("USD"),
        (_, "original_currency") => json!("JPY"),
        (_, "amount" | "allocation") => json!("10.00"),
        (_, "budget") => json!({"staff": "10.00"}),
        (_, "original_amount") => json!("1000"),
        (_, "admin_fee_percent" | "indirect_max_percent" | "tranche_threshold_percent") => {
            json!("1")
        }
        (_, "hold_on_overdue_reports") => json!(true),
        (
            _,
            "received_on" | "decided_on" | "paid_on" | "period_end" | "closed_on" | "starts_on"
            | "signed_on" | "submitted_on" | "accepted_on" | "returned_on" | "issued_on",
        ) => json!("2012-01-01"),
        (_, "ends_on" | "due_on") => json!("2012-12-31"),
        (_, "country") => json!("MX"),
        (_, "regions" | "activities") => json!(["text"]),
        (_, "lead") => json!(true),
        (_, "reported_equivalent") => json!({"amount": "1000", "currency": "JPY"}),
        (_, "reference") => json!("REF-1"),
        (_, "sha256") => json!(SAMPLE_SHA256),
        (_, "sectors") => json!([{"code": "15190", "percentage": "100"}]),
        (_, "iati_org_ref") => json!("XM-DAC-41301"),
        (_, "url") => json!("https://example.org/document.pdf"),
        (_, other) => panic!(
            "tests/docs_reference.rs has no sample value for the field `{other}` of {command}: \
             add one to `sample` so that the command table can be built"
        ),
    }
}

fn body(name: &str, fields: &[&str]) -> Value {
    let mut map = Map::new();
    map.insert("command".to_string(), json!(name));
    for field in fields {
        map.insert(field.to_string(), sample(name, field));
    }
    Value::Object(map)
}

/// The fields of a command as the parser treats them: required, optional, and the
/// constraints between fields.
struct FieldKinds {
    required: Vec<String>,
    optional: Vec<&'static str>,
    notes: Vec<String>,
}

/// "`a` and `b`", "`a`, `b` and `c`".
fn and_list(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Two fields of which the parser takes exactly one (e.g. attach-document's `grant` and
/// `fund`): with every field set the command is refused, and leaving out either one is
/// enough. `None` when every field can be given at once.
fn exclusive_pair(name: &str, all: &[&'static str]) -> Option<(&'static str, &'static str)> {
    let parses = |left_out: &[&str]| {
        let kept: Vec<&str> = all
            .iter()
            .copied()
            .filter(|field| !left_out.contains(field))
            .collect();
        parse_command(&body(name, &kept)).is_ok()
    };
    if parses(&[]) {
        return None;
    }
    let mut pairs = Vec::new();
    for (index, &first) in all.iter().enumerate() {
        for &second in &all[index + 1..] {
            if parses(&[first]) && parses(&[second]) {
                pairs.push((first, second));
            }
        }
    }
    assert!(
        pairs.len() == 1,
        "{name} with every field set is refused ({:?}), and this test knows only one pair of \
         fields that exclude each other; it found {pairs:?}",
        parse_command(&body(name, all)).err()
    );
    let (first, second) = pairs[0];
    assert!(
        !parses(&[first, second]),
        "{name}: `{first}` and `{second}` exclude each other but may both be left out: the \
         table would call them required"
    );
    Some((first, second))
}

fn field_kinds(name: &str) -> FieldKinds {
    let all = command_fields(name);
    let exclusive = exclusive_pair(name, all);
    // Probe with every field set, but for the second of an exclusive pair.
    let base: Vec<&'static str> = all
        .iter()
        .copied()
        .filter(|field| exclusive.is_none_or(|(_, second)| *field != second))
        .collect();
    assert!(
        parse_command(&body(name, &base)).is_ok(),
        "{name} with every field set is refused: {:?}",
        parse_command(&body(name, &base)).err()
    );
    let without = |left_out: &[&str]| {
        let kept: Vec<&str> = base
            .iter()
            .copied()
            .filter(|field| !left_out.contains(field))
            .collect();
        parse_command(&body(name, &kept))
    };
    let mut kinds = FieldKinds {
        required: Vec::new(),
        optional: Vec::new(),
        notes: Vec::new(),
    };
    let mut paired = Vec::new();
    for &field in &base {
        if let Some((first, second)) = exclusive.filter(|(first, _)| *first == field) {
            kinds
                .required
                .push(format!("`{first}` or `{second}` (exactly one)"));
            continue;
        }
        match without(&[field]) {
            Ok(_) => kinds.optional.push(field),
            Err(error) if error.message == format!("{name}: field `{field}` is required") => {
                kinds.required.push(format!("`{field}`"))
            }
            Err(_) => paired.push(field),
        }
    }
    // Fields that can only be left out together (e.g. original_amount and original_currency).
    let mut placed = Vec::new();
    for (index, &first) in paired.iter().enumerate() {
        for &second in &paired[index + 1..] {
            if !placed.contains(&first)
                && !placed.contains(&second)
                && without(&[first, second]).is_ok()
            {
                kinds.optional.push(first);
                kinds.optional.push(second);
                kinds
                    .notes
                    .push(format!("{} come together", and_list(&[first, second])));
                placed.extend([first, second]);
            }
        }
    }
    let unplaced: Vec<_> = paired.iter().filter(|f| !placed.contains(f)).collect();
    assert!(
        unplaced.is_empty(),
        "{name}: the parser refuses leaving out {unplaced:?} in a way this test does not know"
    );
    // Optional fields of which at least one must be given (revise-grant's amount and ends_on,
    // revise-fund-terms' four terms): the smallest set of them that cannot all be left out.
    let loose: Vec<&str> = kinds
        .optional
        .iter()
        .copied()
        .filter(|field| !placed.contains(field))
        .collect();
    if without(&loose).is_err() {
        let mut group = loose.clone();
        for field in &loose {
            let smaller: Vec<&str> = group.iter().copied().filter(|f| f != field).collect();
            if without(&smaller).is_err() {
                group = smaller;
            }
        }
        // Any one of the group is enough: the note is the whole constraint.
        for kept in &group {
            let left_out: Vec<&str> = loose.iter().copied().filter(|f| f != kept).collect();
            assert!(
                without(&left_out).is_ok(),
                "{name}: the optional fields {loose:?} are constrained in a way this test \
                 does not know ({kept} alone is refused: {:?})",
                without(&left_out).err()
            );
        }
        kinds
            .notes
            .push(format!("at least one of {}", and_list(&group)));
    }
    kinds
        .optional
        .sort_by_key(|field| all.iter().position(|f| f == field));
    kinds
}

fn command_table() -> String {
    let mut out = String::new();
    out.push_str("| command | required fields | optional fields | HTTP role |\n");
    out.push_str("|---|---|---|---|\n");
    for name in COMMAND_NAMES {
        let kinds = field_kinds(name);
        let mut optional = kinds
            .optional
            .iter()
            .map(|field| format!("`{field}`"))
            .collect::<Vec<_>>()
            .join(", ");
        if !kinds.notes.is_empty() {
            optional.push_str(&format!(" ({})", kinds.notes.join("; ")));
        }
        let role = grantflow_server::command_role(name)
            .map(|role| role.as_str())
            .unwrap_or("none");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {optional} | {role} |",
            kinds.required.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\nEvery command also takes the common fields {}.",
        COMMON_FIELDS
            .iter()
            .filter(|field| **field != "command")
            .map(|field| format!("`{field}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

fn state_table() -> String {
    let mut out = String::from("| command | allowed in |\n|---|---|\n");
    for name in COMMAND_NAMES {
        let states = allowed_states(name);
        if states.is_empty() {
            continue;
        }
        let states: Vec<String> = states
            .iter()
            .map(|state| format!("`{}`", state.as_str()))
            .collect();
        let _ = writeln!(out, "| `{name}` | {} |", states.join(", "));
    }
    out
}

// ---------------------------------------------------------------------------------------
// Errors

fn error_table() -> String {
    let mut out = String::new();
    out.push_str("| code | HTTP status |\n|---|---|\n");
    for code in ERROR_CODES {
        let status = grantflow_server::error::status_of_code(code.as_str());
        let _ = writeln!(
            out,
            "| `{}` | {} {} |",
            code.as_str(),
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
    }
    out
}

// ---------------------------------------------------------------------------------------
// Events

/// The first events of each type and schema, with the command that appended each.
type Firsts = BTreeMap<(&'static str, u32), (Event, String)>;

/// Every event type at least once, and every type that gained fields in both its shapes: a
/// fund with terms revised, a pledge paid with a fee charged, income, documents, a grant taken
/// through its whole lifecycle with budgets by category and a report returned once, a
/// rejected proposal, a cancelled grant, and a second fund registered with terms. Returns
/// the first event of each type and schema (with the command that appended it) and the world
/// at the end.
fn run_scenario() -> (Firsts, World) {
    let steps = [
        (
            "a.tanaka",
            json!({"command": "register-fund", "fund": "UNTFHS", "name": "United Nations Trust Fund for Human Security", "currency": "USD"}),
        ),
        (
            "a.tanaka",
            json!({"command": "record-contribution", "fund": "UNTFHS", "donor": "JP", "amount": "10000000.00", "received_on": "2012-04-02", "original_amount": "800000000", "original_currency": "JPY"}),
        ),
        (
            "s.ruiz",
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "MEX-2012-01", "title": "Protection of migrants in transit", "amount": "3209232.40", "country": "MX", "regions": ["Chiapas", "Oaxaca"], "starts_on": "2013-01-01", "ends_on": "2015-09-30", "activities": ["Strengthen institutions that assist migrants in transit"]}),
        ),
        (
            "m.ito",
            json!({"command": "approve-grant", "grant": "MEX-2012-01", "decided_on": "2012-09-27", "reported_equivalent": {"amount": "260000000", "currency": "JPY"}}),
        ),
        (
            "s.ruiz",
            json!({"command": "assign-agency", "grant": "MEX-2012-01", "agency": "IOM", "allocation": "1000000.00", "lead": true}),
        ),
        (
            "s.ruiz",
            json!({"command": "assign-agency", "grant": "MEX-2012-01", "agency": "ILO", "allocation": "150000.00"}),
        ),
        (
            "s.ruiz",
            json!({"command": "revise-allocation", "grant": "MEX-2012-01", "agency": "IOM", "allocation": "1121707.00", "reason": "five agencies carry the programme"}),
        ),
        (
            "s.ruiz",
            json!({"command": "withdraw-agency", "grant": "MEX-2012-01", "agency": "ILO", "reason": "five agencies carry the programme"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-disbursement", "grant": "MEX-2012-01", "agency": "IOM", "amount": "500000.00", "paid_on": "2012-10-15", "reference": "TR-0001"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-expenditure", "grant": "MEX-2012-01", "agency": "IOM", "amount": "420000.00", "period_end": "2013-06-30"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-refund", "grant": "MEX-2012-01", "agency": "IOM", "amount": "30000.00", "received_on": "2013-07-10", "reference": "RF-0001"}),
        ),
        (
            "m.ito",
            json!({"command": "revise-grant", "grant": "MEX-2012-01", "amount": "3121707.00", "ends_on": "2015-09-30", "reason": "budget of the final programme document", "decided_on": "2013-01-15"}),
        ),
        (
            "m.ito",
            json!({"command": "revise-fund-terms", "fund": "UNTFHS", "admin_fee_percent": "1", "tranche_threshold_percent": "70", "hold_on_overdue_reports": true, "reason": "agreement with the administrative agent"}),
        ),
        (
            "a.tanaka",
            json!({"command": "record-pledge", "fund": "UNTFHS", "pledge": "JP-2013", "donor": "JP", "amount": "2000000.00", "signed_on": "2013-02-01", "due_on": "2013-06-30"}),
        ),
        (
            "a.tanaka",
            json!({"command": "record-contribution", "fund": "UNTFHS", "donor": "JP", "amount": "1000000.00", "received_on": "2013-03-15", "pledge": "JP-2013"}),
        ),
        (
            "a.tanaka",
            json!({"command": "record-income", "fund": "UNTFHS", "kind": "interest", "amount": "12345.67", "received_on": "2013-12-31"}),
        ),
        (
            "s.ruiz",
            json!({"command": "attach-document", "fund": "UNTFHS", "document": "AR-2013", "title": "Annual report 2013", "category": "B01", "sha256": "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", "url": "https://example.org/untfhs/annual-report-2013.pdf", "issued_on": "2014-05-30"}),
        ),
        (
            "s.ruiz",
            json!({"command": "assign-agency", "grant": "MEX-2012-01", "agency": "UNDP", "allocation": "500000.00", "budget": {"staff": "300000.00", "contractual": "68000.00", "travel": "100000.00", "indirect": "32000.00"}}),
        ),
        (
            "s.ruiz",
            json!({"command": "revise-allocation", "grant": "MEX-2012-01", "agency": "UNDP", "allocation": "450000.00", "budget": {"staff": "253000.00", "contractual": "68000.00", "travel": "100000.00", "indirect": "29000.00"}, "reason": "fewer workshops in the first year"}),
        ),
        (
            "s.ruiz",
            json!({"command": "attach-document", "grant": "MEX-2012-01", "document": "PRODOC", "title": "Project document", "category": "A02", "sha256": SAMPLE_SHA256, "issued_on": "2012-12-10"}),
        ),
        (
            "s.ruiz",
            json!({"command": "schedule-report", "grant": "MEX-2012-01", "report": "PR-2013", "kind": "progress", "period_end": "2013-12-31", "due_on": "2014-03-31"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-disbursement", "grant": "MEX-2012-01", "agency": "UNDP", "amount": "200000.00", "paid_on": "2013-04-01", "reference": "TR-0002"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-expenditure", "grant": "MEX-2012-01", "agency": "UNDP", "amount": "150000.00", "period_end": "2013-12-31", "category": "staff"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-disbursement", "grant": "MEX-2012-01", "agency": "UNDP", "amount": "100000.00", "paid_on": "2014-01-20", "reference": "TR-0003"}),
        ),
        (
            "s.ruiz",
            json!({"command": "submit-report", "grant": "MEX-2012-01", "report": "PR-2013", "submitted_on": "2014-03-20", "document": {"title": "Annual progress report 2013", "sha256": "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9"}}),
        ),
        (
            "m.ito",
            json!({"command": "return-report", "grant": "MEX-2012-01", "report": "PR-2013", "returned_on": "2014-03-28", "reason": "the results framework is missing"}),
        ),
        (
            "s.ruiz",
            json!({"command": "submit-report", "grant": "MEX-2012-01", "report": "PR-2013", "submitted_on": "2014-04-10"}),
        ),
        (
            "m.ito",
            json!({"command": "accept-report", "grant": "MEX-2012-01", "report": "PR-2013", "accepted_on": "2014-04-15"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-expenditure", "grant": "MEX-2012-01", "agency": "UNDP", "amount": "103000.00", "period_end": "2014-06-30", "category": "staff"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-expenditure", "grant": "MEX-2012-01", "agency": "UNDP", "amount": "47000.00", "period_end": "2014-06-30", "category": "travel"}),
        ),
        (
            "s.ruiz",
            json!({"command": "suspend-grant", "grant": "MEX-2012-01", "reason": "security situation in the field"}),
        ),
        (
            "s.ruiz",
            json!({"command": "resume-grant", "grant": "MEX-2012-01", "reason": "access restored"}),
        ),
        (
            "s.ruiz",
            json!({"command": "close-grant", "grant": "MEX-2012-01", "closed_on": "2015-09-30"}),
        ),
        (
            "f.okafor",
            json!({"command": "record-expenditure", "grant": "MEX-2012-01", "agency": "IOM", "amount": "50000.00", "period_end": "2015-09-30"}),
        ),
        (
            "f.okafor",
            json!({"command": "finalize-grant", "grant": "MEX-2012-01"}),
        ),
        (
            "s.ruiz",
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "GTM-2013-02", "title": "Community security", "amount": "900000.00"}),
        ),
        (
            "s.ruiz",
            json!({"command": "reject-proposal", "grant": "GTM-2013-02", "reason": "outside the fund's priorities"}),
        ),
        (
            "s.ruiz",
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "HND-2013-03", "title": "Returnees' reintegration", "amount": "800000.00", "sectors": [{"code": "15190", "percentage": "60"}, {"code": "16010", "percentage": "40"}]}),
        ),
        (
            "m.ito",
            json!({"command": "approve-grant", "grant": "HND-2013-03", "decided_on": "2013-03-01"}),
        ),
        (
            "m.ito",
            json!({"command": "revise-grant", "grant": "HND-2013-03", "reason": "re-classified by the programme board", "sectors": [{"code": "15190", "percentage": "100"}]}),
        ),
        (
            "s.ruiz",
            json!({"command": "cancel-grant", "grant": "HND-2013-03", "reason": "the government withdrew its request"}),
        ),
        (
            "a.tanaka",
            json!({"command": "register-fund", "fund": "PBF", "name": "Peacebuilding Fund", "currency": "USD", "admin_fee_percent": "1", "indirect_max_percent": "7", "iati_org_ref": "XM-DAC-41301"}),
        ),
    ];
    let mut world = World::default();
    let mut position = 0;
    let mut firsts = BTreeMap::new();
    for (actor, step) in steps {
        let request = parse_command(&step).unwrap_or_else(|error| panic!("{step}: {error}"));
        let events =
            decide(&world, actor, &request).unwrap_or_else(|error| panic!("{step}: {error}"));
        for event in events {
            check_schema(&event);
            position += 1;
            evolve(&mut world, position, &event);
            let command = command_of_event(&event).to_string();
            firsts
                .entry((event.event_type(), event.schema()))
                .or_insert((event, command));
        }
    }
    (firsts, world)
}

/// An event is of schema 2 exactly when it carries a field its type gained.
fn check_schema(event: &Event) {
    let payload: Value = serde_json::from_str(&event.payload_json()).expect("a payload is JSON");
    let extended = gained_fields(event.event_type())
        .iter()
        .any(|field| payload.get(*field).is_some());
    let expected = if extended {
        EVENT_SCHEMA_EXTENDED
    } else {
        EVENT_SCHEMA
    };
    assert_eq!(
        event.schema(),
        expected,
        "{} {payload}: the schema differs from what the catalog's GAINED_FIELDS says",
        event.event_type()
    );
}

fn event_list(firsts: &Firsts) -> String {
    let mut out = String::new();
    for event_type in EVENT_TYPES {
        let shapes: Vec<&(Event, String)> = firsts
            .range((*event_type, 0)..=(*event_type, u32::MAX))
            .map(|(_, first)| first)
            .collect();
        let Some((event, command)) = shapes.first() else {
            panic!("the scenario of tests/docs_reference.rs appends no `{event_type}`: extend it")
        };
        let gained = gained_fields(event_type);
        assert_eq!(
            shapes.len(),
            if gained.is_empty() { 1 } else { 2 },
            "the scenario of tests/docs_reference.rs should append `{event_type}` in each of its \
             shapes (schema {EVENT_SCHEMA}, and {EVENT_SCHEMA_EXTENDED} when it carries one of \
             {gained:?})"
        );
        let stream = if event.fund_stream_id().is_some() {
            "fund-<id>"
        } else {
            "grant-<id>"
        };
        let schema = match gained {
            [] => format!("schema {}", event.schema()),
            [field] => format!(
                "schema {EVENT_SCHEMA}, or {EVENT_SCHEMA_EXTENDED} when it carries `{field}`"
            ),
            fields => format!(
                "schema {EVENT_SCHEMA}, or {EVENT_SCHEMA_EXTENDED} when it carries any of {}",
                or_list(fields)
            ),
        };
        let appended_by = match *event_type {
            "fund.commitment_revised" => {
                "`revise-grant` (a new amount), `cancel-grant`, `finalize-grant`, `record-refund` \
                 (after a cancellation); the payload's `cause` names it"
                    .to_string()
            }
            "fund.fee_charged" => format!(
                "`{command}`, after its `fund.contribution_recorded`, when the fund's \
                 `admin_fee_percent` gives a fee above 0"
            ),
            "fund.document_attached" => format!("`{command}` with `fund`"),
            "grant.document_attached" => format!("`{command}` with `grant`"),
            _ => format!("`{command}`"),
        };
        let examples = if shapes.len() == 1 {
            "Example payload"
        } else {
            "Example payloads, of each schema"
        };
        let _ = write!(
            out,
            "### `{event_type}`\n\nStream `{stream}`, {schema}; appended by {appended_by}. {examples}:\n\n"
        );
        for (event, _) in shapes {
            let payload: Value =
                serde_json::from_str(&event.payload_json()).expect("a payload is JSON");
            let _ = write!(
                out,
                "```json\n{}\n```\n\n",
                serde_json::to_string(&payload).expect("JSON")
            );
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

/// "`a`, `b` or `c`".
fn or_list(fields: &[&str]) -> String {
    let quoted: Vec<String> = fields.iter().map(|field| format!("`{field}`")).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn figures_example(world: &World) -> String {
    let grant = world
        .grant_view("MEX-2012-01")
        .expect("the scenario's grant");
    let fund = world.fund_view("UNTFHS").expect("the scenario's fund");
    format!(
        "A grant's figures (`grantflow grant show MEX-2012-01 --json`, `GET /v1/grants/MEX-2012-01`):\n\n\
         ```json\n{}\n```\n\n\
         A fund's figures (`grantflow fund show UNTFHS --json`, `GET /v1/funds/UNTFHS`):\n\n\
         ```json\n{}\n```\n",
        serde_json::to_string_pretty(&grant).expect("JSON"),
        serde_json::to_string_pretty(&fund).expect("JSON")
    )
}

// ---------------------------------------------------------------------------------------
// Marked sections

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- BEGIN GENERATED {name}: tests/docs_reference.rs, do not edit by hand -->\n"),
        format!("<!-- END GENERATED {name} -->"),
    )
}

fn check_section(file: &str, name: &str, generated: &str) {
    let path = docs_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    let (begin, end) = markers(name);
    let start = text.find(&begin).unwrap_or_else(|| {
        panic!("docs/{file} has no line `{}`: the generated section `{name}` goes between it and `{end}`", begin.trim_end())
    }) + begin.len();
    let stop = start
        + text[start..].find(&end).unwrap_or_else(|| {
            panic!(
                "docs/{file} has no line `{end}` after `{}`",
                begin.trim_end()
            )
        });
    let current = &text[start..stop];
    if current == generated {
        return;
    }
    if updating() {
        let updated = format!("{}{generated}{}", &text[..start], &text[stop..]);
        std::fs::write(&path, updated).expect("writing the document");
        return;
    }
    panic!(
        "docs/{file}, section `{name}`, differs from the code (- in the document, + from the code):\n{}\n\
         run with {UPDATE_VARIABLE}=1 to rewrite it: {UPDATE_VARIABLE}=1 cargo test -p grantflow --test docs_reference",
        diff(current, generated)
    );
}

/// A line diff (longest common subsequence) of two small texts.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            let _ = writeln!(out, "+{:>5} | {}", j + 1, b[j]);
            j += 1;
        } else {
            let _ = writeln!(out, "-{:>5} | {}", i + 1, a[i]);
            i += 1;
        }
    }
    out
}
