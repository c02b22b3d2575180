//! The reference documents under `docs/` against the code: the command table, the error
//! codes with their HTTP statuses, the event types with example payloads, example figures and
//! `docs/openapi.json` are built here from the domain and server crates and compared with the
//! marked sections of the documents. A difference fails with a diff; run with
//! `GRANTFLOW_UPDATE_DOCS=1` to rewrite the sections from the code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use grantflow_domain::parse::{command_fields, COMMON_FIELDS};
use grantflow_domain::{
    allowed_states, command_of_event, decide, evolve, parse_command, Event, World, COMMAND_NAMES,
    ERROR_CODES, EVENT_SCHEMA, EVENT_TYPES,
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
    let mut generated = grantflow_server::openapi()
        .to_pretty_json()
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

// ---------------------------------------------------------------------------------------
// Commands

/// A valid sample value for a command field, so that the parser can be probed field by field.
fn sample(field: &str) -> Value {
    match field {
        "fund" | "grant" | "agency" | "donor" => json!("X-1"),
        "name" | "title" | "reason" => json!("text"),
        "currency" => json!("USD"),
        "original_currency" => json!("JPY"),
        "amount" | "allocation" => json!("10.00"),
        "original_amount" => json!("1000"),
        "received_on" | "decided_on" | "paid_on" | "period_end" | "closed_on" | "starts_on" => {
            json!("2012-01-01")
        }
        "ends_on" => json!("2012-12-31"),
        "country" => json!("MX"),
        "regions" | "activities" => json!(["text"]),
        "lead" => json!(true),
        "reported_equivalent" => json!({"amount": "1000", "currency": "JPY"}),
        "reference" => json!("REF-1"),
        other => panic!(
            "tests/docs_reference.rs has no sample value for the command field `{other}`: add one \
             to `sample` so that the command table can be built"
        ),
    }
}

fn body(name: &str, fields: &[&str]) -> Value {
    let mut map = Map::new();
    map.insert("command".to_string(), json!(name));
    for field in fields {
        map.insert(field.to_string(), sample(field));
    }
    Value::Object(map)
}

/// The fields of a command as the parser treats them: required, optional, and the
/// constraints between optional fields.
struct FieldKinds {
    required: Vec<&'static str>,
    optional: Vec<&'static str>,
    notes: Vec<String>,
}

fn field_kinds(name: &str) -> FieldKinds {
    let all = command_fields(name);
    assert!(
        parse_command(&body(name, all)).is_ok(),
        "{name} with every field set is refused: {:?}",
        parse_command(&body(name, all)).err()
    );
    let without = |left_out: &[&str]| {
        let kept: Vec<&str> = all
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
    for &field in all {
        match without(&[field]) {
            Ok(_) => kinds.optional.push(field),
            Err(error) if error.message == format!("{name}: field `{field}` is required") => {
                kinds.required.push(field)
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
                    .push(format!("`{first}` and `{second}` come together"));
                placed.extend([first, second]);
            }
        }
    }
    let unplaced: Vec<_> = paired.iter().filter(|f| !placed.contains(f)).collect();
    assert!(
        unplaced.is_empty(),
        "{name}: the parser refuses leaving out {unplaced:?} in a way this test does not know"
    );
    // Optional fields of which at least one must be given (e.g. revise-grant's amount, ends_on).
    let optional = kinds.optional.clone();
    for (index, &first) in optional.iter().enumerate() {
        for &second in &optional[index + 1..] {
            if without(&[first, second]).is_err()
                && !placed.contains(&first)
                && !placed.contains(&second)
            {
                kinds
                    .notes
                    .push(format!("at least one of `{first}` and `{second}`"));
            }
        }
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
        let list = |fields: &[&str]| {
            if fields.is_empty() {
                "".to_string()
            } else {
                fields
                    .iter()
                    .map(|field| format!("`{field}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        let mut optional = list(&kinds.optional);
        if !kinds.notes.is_empty() {
            optional.push_str(&format!(" ({})", kinds.notes.join("; ")));
        }
        let role = grantflow_server::command_role(name)
            .map(|role| role.as_str())
            .unwrap_or("none");
        let _ = writeln!(
            out,
            "| `{name}` | {} | {optional} | {role} |",
            list(&kinds.required)
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

/// Every event type at least once: a fund, a grant taken through its whole lifecycle, a
/// rejected proposal and a cancelled grant. Returns the first event of each type (with the
/// command that appended it) and the world at the end.
fn run_scenario() -> (BTreeMap<&'static str, (Event, String)>, World) {
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
            json!({"command": "submit-proposal", "fund": "UNTFHS", "grant": "HND-2013-03", "title": "Returnees' reintegration", "amount": "800000.00"}),
        ),
        (
            "m.ito",
            json!({"command": "approve-grant", "grant": "HND-2013-03", "decided_on": "2013-03-01"}),
        ),
        (
            "s.ruiz",
            json!({"command": "cancel-grant", "grant": "HND-2013-03", "reason": "the government withdrew its request"}),
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
            position += 1;
            evolve(&mut world, position, &event);
            let command = command_of_event(&event).to_string();
            firsts.entry(event.event_type()).or_insert((event, command));
        }
    }
    (firsts, world)
}

fn event_list(firsts: &BTreeMap<&'static str, (Event, String)>) -> String {
    let mut out = String::new();
    for event_type in EVENT_TYPES {
        let (event, command) = firsts.get(event_type).unwrap_or_else(|| {
            panic!("the scenario of tests/docs_reference.rs appends no `{event_type}`: extend it")
        });
        let stream = if event.fund_stream_id().is_some() {
            "fund-<id>"
        } else {
            "grant-<id>"
        };
        let payload: Value =
            serde_json::from_str(&event.payload_json()).expect("a payload is JSON");
        let appended_by = if *event_type == "fund.commitment_revised" {
            "`revise-grant` (a new amount), `cancel-grant`, `finalize-grant`, `record-refund` \
             (after a cancellation); the payload's `cause` names it"
                .to_string()
        } else {
            format!("`{command}`")
        };
        let _ = writeln!(
            out,
            "### `{event_type}`\n\nStream `{stream}`, schema {EVENT_SCHEMA}; appended by {appended_by}. Example payload:\n\n```json\n{}\n```\n",
            serde_json::to_string(&payload).expect("JSON")
        );
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
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
