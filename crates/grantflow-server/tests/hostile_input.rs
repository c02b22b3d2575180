//! Hostile input through `POST /v1/commands` (the router, with `oneshot`): arbitrary bytes,
//! arbitrary JSON, valid commands with a field replaced, and the classic traps (a 2 MiB
//! body, invalid UTF-8, 10,000 levels of nesting, giant numbers, huge strings, impossible
//! dates, ids with control characters or path separators). Never a panic or a 500: always
//! the Results shape of docs/errors.md with a documented code and a message.
//!
//! `GRANTFLOW_FUZZ_CASES` sets the cases per property (default 600).

mod common;

use axum::http::StatusCode;
use common::{harness, Harness};
use grantflow_server::Tokens;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

/// Every code a command answer may carry: the domain's, and the HTTP ones (docs/errors.md).
const CODES: &[&str] = &[
    "malformed_command",
    "invalid_amount",
    "currency_mismatch",
    "unknown_fund",
    "unknown_grant",
    "fund_exists",
    "grant_exists",
    "invalid_state",
    "four_eyes_violation",
    "insufficient_funds",
    "agency_already_assigned",
    "agency_not_assigned",
    "over_allocation",
    "allocation_below_disbursed",
    "agency_has_funds",
    "over_disbursement",
    "over_expenditure",
    "over_refund",
    "amount_below_allocated",
    "unsettled_balance",
    "version_conflict",
    "command_id_conflict",
    "lead_exists",
    "unauthorized",
    "forbidden",
    "not_found",
    "payload_too_large",
];

fn cases() -> u32 {
    std::env::var("GRANTFLOW_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(600)
}

/// A harness with the seed data and a token holding every command role.
fn setup(runtime: &tokio::runtime::Runtime) -> (Harness, String) {
    runtime.block_on(async {
        let h = harness().await;
        h.seed().await;
        let (_, token) = Tokens::add(
            h.dir.path(),
            "root.all",
            &["secretariat", "approver", "finance"],
        )
        .expect("a token");
        (h, token)
    })
}

/// Posts `body` and checks the answer's shape; returns (status, code or "ok").
fn post(
    runtime: &tokio::runtime::Runtime,
    h: &Harness,
    token: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let (status, bytes) =
        runtime.block_on(h.call_raw("POST", "/v1/commands", Some(token), Some(body)));
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "status {status} without a JSON body: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert!(
        matches!(status.as_u16(), 200 | 400 | 401 | 403 | 409 | 413 | 422),
        "status {status}: {answer}"
    );
    if status == StatusCode::OK {
        assert_eq!(answer["ok"], true, "{answer}");
        assert!(answer["events"].is_array(), "{answer}");
        return (200, "ok".into());
    }
    assert_eq!(answer["ok"], false, "{answer}");
    let code = answer["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        CODES.contains(&code.as_str()),
        "unknown code {code:?}: {answer}"
    );
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.trim().len() > 5,
        "no message a person can act on: {answer}"
    );
    (status.as_u16(), code)
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        prop::sample::select(vec![
            "-1.00",
            "0.00",
            "1.005",
            "1e9",
            "9999999999999999.99",
            "2012-02-30",
            "../x",
            "a/b",
            "a\u{0}b",
            "\u{202e}",
            "USD",
            "G",
            "F",
            "IOM",
            "record-disbursement",
        ])
        .prop_map(|text| Value::String(text.to_string())),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn field_name() -> impl Strategy<Value = String> {
    let names = [
        "command",
        "command_id",
        "actor",
        "expected_version",
        "fund",
        "grant",
        "agency",
        "donor",
        "name",
        "currency",
        "amount",
        "received_on",
        "title",
        "allocation",
        "lead",
        "paid_on",
        "reason",
        "decided_on",
    ];
    prop_oneof![
        4 => prop::sample::select(names.to_vec()).prop_map(str::to_string),
        1 => "[a-z_]{1,12}",
    ]
}

fn templates() -> Vec<Value> {
    vec![
        json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1.00", "received_on": "2012-01-31"}),
        json!({"command": "submit-proposal", "fund": "F", "grant": "Q", "title": "T", "amount": "5.00"}),
        json!({"command": "assign-agency", "grant": "G", "agency": "UNDP", "allocation": "10.00"}),
        json!({"command": "record-disbursement", "grant": "G", "agency": "UNDP", "amount": "1.00", "paid_on": "2013-01-01"}),
        json!({"command": "revise-grant", "grant": "G", "reason": "r", "amount": "900.00"}),
        json!({"command": "suspend-grant", "grant": "G", "reason": "r"}),
        json!({"command": "resume-grant", "grant": "G", "reason": "r"}),
    ]
}

fn mutated_command() -> impl Strategy<Value = Value> {
    let templates = templates();
    (
        0..templates.len(),
        any_json(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(move |(which, replacement, index, remove)| {
            let mut command = templates[which].clone();
            let object = command.as_object_mut().expect("an object");
            let keys: Vec<String> = object.keys().cloned().collect();
            let key = keys[index.index(keys.len())].clone();
            if remove {
                object.remove(&key);
            } else {
                object.insert(key, replacement);
            }
            command
        })
}

fn fuzz(name: &str, strategy: impl Strategy<Value = Vec<u8>>) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (h, token) = setup(&runtime);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    runner
        .run(&strategy, |body| {
            let (_, code) = post(&runtime, &h, &token, body);
            *seen.lock().expect("lock").entry(code).or_default() += 1;
            Ok(())
        })
        .expect("every answer well-formed");
    println!(
        "HTTP {name}: {} requests, answers by code: {:?}",
        cases(),
        seen.lock().expect("lock")
    );
}

#[test]
fn arbitrary_bytes_get_a_contract_answer() {
    fuzz(
        "arbitrary bytes",
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..600),
            (mutated_command(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
                |(value, index, mask)| {
                    let mut bytes = value.to_string().into_bytes();
                    let at = index.index(bytes.len());
                    bytes[at] ^= mask;
                    bytes
                }
            ),
        ],
    );
}

#[test]
fn arbitrary_json_gets_a_contract_answer() {
    fuzz(
        "arbitrary JSON",
        any_json().prop_map(|value| value.to_string().into_bytes()),
    );
}

#[test]
fn mutated_commands_get_a_contract_answer() {
    fuzz(
        "mutated commands",
        mutated_command().prop_map(|value| value.to_string().into_bytes()),
    );
}

#[test]
fn the_classic_traps_get_their_contract_codes() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (h, token) = setup(&runtime);
    let disburse = |amount: Value| {
        json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": amount, "paid_on": "2013-01-01"})
            .to_string()
            .into_bytes()
    };
    let propose = |field: &str, value: Value| {
        let mut command = json!({"command": "submit-proposal", "fund": "F", "grant": "Q", "title": "T", "amount": "5.00"});
        command[field] = value;
        command.to_string().into_bytes()
    };
    let two_mib = format!(
        "{{\"command\":\"submit-proposal\",\"fund\":\"F\",\"grant\":\"Q\",\"amount\":\"5.00\",\"title\":\"{}\"}}",
        "x".repeat(2 * 1024 * 1024)
    );
    let mut invalid_utf8 = propose("title", json!("caf\u{e9}"));
    let at = invalid_utf8
        .windows(2)
        .position(|pair| pair == "\u{e9}".as_bytes())
        .expect("the é");
    invalid_utf8[at] = 0xff;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("a 2 MiB body", two_mib.into_bytes(), 413, "payload_too_large"),
        ("invalid UTF-8", invalid_utf8, 400, "malformed_command"),
        ("bytes that are not JSON", b"\x00\x01\xfe\xff".to_vec(), 400, "malformed_command"),
        ("an empty body", Vec::new(), 400, "malformed_command"),
        ("10,000 nested arrays", format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400, "malformed_command"),
        ("10,000 nested objects", format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000)).into_bytes(), 400, "malformed_command"),
        ("10,000 levels under a field", format!("{{\"command\":\"submit-proposal\",\"regions\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(), 400, "malformed_command"),
        ("a giant JSON number", b"{\"command\":\"record-disbursement\",\"grant\":\"G\",\"agency\":\"IOM\",\"amount\":1e400,\"paid_on\":\"2013-01-01\"}".to_vec(), 400, "malformed_command"),
        ("a 400-digit number (beyond what the JSON reader holds)", format!("{{\"command\":\"record-disbursement\",\"grant\":\"G\",\"agency\":\"IOM\",\"amount\":{},\"paid_on\":\"2013-01-01\"}}", "9".repeat(400)).into_bytes(), 400, "malformed_command"),
        ("a 40-digit amount", disburse(json!("1234567890123456789012345678901234567890")), 400, "invalid_amount"),
        ("a negative amount", disburse(json!("-1.00")), 400, "invalid_amount"),
        ("a zero amount", disburse(json!("0.00")), 400, "invalid_amount"),
        ("a JSON number amount", disburse(json!(5)), 400, "invalid_amount"),
        ("2012-02-30", propose("ends_on", json!("2012-02-30")), 400, "malformed_command"),
        ("an id with a slash", propose("grant", json!("../../etc/passwd")), 400, "malformed_command"),
        ("an id with a NUL", propose("grant", json!("a\u{0}b")), 400, "malformed_command"),
        ("an id with a newline", propose("grant", json!("a\r\nX-Injected: 1")), 400, "malformed_command"),
        ("a 900 KB id", propose("grant", json!("g".repeat(900_000))), 400, "malformed_command"),
        ("a 900 KB title", propose("title", json!("t".repeat(900_000))), 400, "malformed_command"),
        ("an actor in the body", propose("actor", json!("mallory")), 400, "malformed_command"),
        ("a command id with a control character", propose("command_id", json!("x\u{7}")), 400, "malformed_command"),
        ("an unknown command", b"{\"command\":\"drop-tables\"}".to_vec(), 400, "malformed_command"),
        ("a JSON string", b"\"register-fund\"".to_vec(), 400, "malformed_command"),
        ("a JSON array", b"[{\"command\":\"register-fund\"}]".to_vec(), 400, "malformed_command"),
    ];
    let mut wrong = Vec::new();
    for (name, body, status, code) in &cases {
        let answer = post(&runtime, &h, &token, body.clone());
        if answer != (*status, code.to_string()) {
            wrong.push(format!("{name}: expected {status} {code}, got {answer:?}"));
        }
    }
    // Without a token, whatever the body: 401.
    let (status, _) =
        runtime.block_on(h.call_raw("POST", "/v1/commands", None, Some(b"\xff".to_vec())));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(wrong.is_empty(), "{wrong:#?}");
    println!(
        "HTTP classic traps: {} cases, each with its status and code",
        cases.len()
    );
}
