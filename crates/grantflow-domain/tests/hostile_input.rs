//! Hostile input through the command parser and the decider: arbitrary bytes, arbitrary JSON
//! values, valid commands with one field replaced by anything, and the classic traps (giant
//! numbers, deep nesting, huge strings, negative and zero amounts, impossible dates, ids with
//! control characters or path separators). Never a panic; every refusal carries a contract
//! code and a message.
//!
//! `GRANTFLOW_FUZZ_CASES` sets the cases per property (default 2000).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::Log;
use grantflow_domain::{decide, parse_command, DomainError, ErrorCode, ERROR_CODES};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("GRANTFLOW_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2000)
}

/// A world with a fund F (USD), an approved grant G with agency IOM holding money, and a
/// proposal P: most commands find something to act on.
fn world() -> Log {
    Log::given(&[
        json!({"command": "register-fund", "fund": "F", "name": "Fund", "currency": "USD"}),
        json!({"command": "register-fund", "fund": "J", "name": "Yen fund", "currency": "JPY"}),
        json!({"command": "record-contribution", "fund": "F", "donor": "JPN", "amount": "5000.00", "received_on": "2012-09-01"}),
        json!({"command": "submit-proposal", "fund": "F", "grant": "G", "title": "T", "amount": "1000.00"}),
        json!({"command": "approve-grant", "grant": "G", "decided_on": "2012-09-27", "actor": "boss"}),
        json!({"command": "assign-agency", "grant": "G", "agency": "IOM", "allocation": "600.00", "lead": true}),
        json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "100.00", "paid_on": "2012-10-01"}),
        json!({"command": "submit-proposal", "fund": "F", "grant": "P", "title": "T", "amount": "10.00"}),
    ])
}

/// Valid commands of every kind: the templates that mutation starts from.
fn templates() -> Vec<Value> {
    vec![
        json!({"command": "register-fund", "fund": "N", "name": "New", "currency": "EUR"}),
        json!({"command": "record-contribution", "fund": "F", "donor": "D", "amount": "1.00", "received_on": "2012-01-31", "original_amount": "120", "original_currency": "JPY"}),
        json!({"command": "submit-proposal", "fund": "F", "grant": "Q", "title": "T", "amount": "5.00", "country": "MX", "regions": ["Chiapas"], "starts_on": "2013-01-01", "ends_on": "2015-09-30", "activities": ["a"]}),
        json!({"command": "reject-proposal", "grant": "P", "reason": "r"}),
        json!({"command": "approve-grant", "grant": "P", "decided_on": "2012-02-29", "reported_equivalent": {"amount": "800", "currency": "JPY"}}),
        json!({"command": "assign-agency", "grant": "G", "agency": "UNDP", "allocation": "10.00", "lead": false}),
        json!({"command": "revise-allocation", "grant": "G", "agency": "IOM", "allocation": "500.00", "reason": "r"}),
        json!({"command": "withdraw-agency", "grant": "G", "agency": "IOM", "reason": "r"}),
        json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": "1.00", "paid_on": "2013-01-01", "reference": "x"}),
        json!({"command": "record-expenditure", "grant": "G", "agency": "IOM", "amount": "1.00", "period_end": "2013-06-30"}),
        json!({"command": "record-refund", "grant": "G", "agency": "IOM", "amount": "1.00", "received_on": "2013-07-01"}),
        json!({"command": "revise-grant", "grant": "G", "reason": "r", "amount": "900.00", "ends_on": "2016-01-01", "decided_on": "2013-01-01"}),
        json!({"command": "suspend-grant", "grant": "G", "reason": "r"}),
        json!({"command": "resume-grant", "grant": "G", "reason": "r"}),
        json!({"command": "cancel-grant", "grant": "G", "reason": "r"}),
        json!({"command": "close-grant", "grant": "G", "closed_on": "2015-09-30"}),
        json!({"command": "finalize-grant", "grant": "G"}),
    ]
}

fn is_contract_code(code: ErrorCode) -> bool {
    ERROR_CODES.contains(&code) && !code.as_str().is_empty()
}

/// Parses and decides one value: never panics; a refusal has a contract code and a message.
/// Returns the code (`None`: accepted).
fn check(log: &Log, value: &Value) -> Option<ErrorCode> {
    let refused = |error: DomainError| {
        assert!(is_contract_code(error.code), "{:?}", error.code);
        assert!(
            error.message.trim().len() > 5,
            "a message a person can act on: {error:?}"
        );
        Some(error.code)
    };
    let request = match parse_command(value) {
        Ok(request) => request,
        Err(error) => return refused(error),
    };
    let actor = request.actor.clone().unwrap_or_else(|| "sec".to_string());
    match decide(&log.world, &actor, &request) {
        Ok(events) => {
            assert!(!events.is_empty(), "an accepted command appends events");
            for event in &events {
                // Every event serialises to a payload that parses back.
                let payload = event.payload_json();
                let back = grantflow_domain::Event::from_parts(event.event_type(), &payload);
                assert!(back.is_ok(), "{payload}");
            }
            None
        }
        Err(error) => refused(error),
    }
}

/// Arbitrary JSON, a few levels deep, with the strings and numbers that break parsers.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_map(|n| serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((field_name(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Field names: the real ones mostly, so that values reach the field parsers.
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
        "original_amount",
        "original_currency",
        "title",
        "country",
        "regions",
        "starts_on",
        "ends_on",
        "activities",
        "reason",
        "decided_on",
        "reported_equivalent",
        "allocation",
        "lead",
        "paid_on",
        "reference",
        "period_end",
        "closed_on",
    ];
    prop_oneof![
        4 => prop::sample::select(names.to_vec()).prop_map(str::to_string),
        1 => any::<String>(),
    ]
}

/// Strings that have broken parsers before.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "-0",
            "0.00",
            "-1.00",
            "+1.00",
            "1e3",
            "1E-2",
            "0x10",
            "NaN",
            "inf",
            "1.005",
            "1.",
            ".5",
            "00001.00",
            "1,000.00",
            "١٢٣",
            "9999999999999999.99",
            "999999999999999.99",
            "1000000000000000.00",
            "340282366920938463463374607431768211456",
            "2012-02-30",
            "2012-02-29",
            "2013-02-29",
            "0000-01-01",
            "9999-12-31",
            "2012-13-01",
            "2012-1-1",
            "2012-01-01T00:00:00Z",
            "../../etc/passwd",
            "a/b",
            "a\\b",
            "a\u{0}b",
            "a\nb",
            "\u{7f}",
            "\u{202e}G",
            "G\u{fffd}",
            "💸",
            "USD",
            "usd",
            "XXX",
            "MX",
            "mx",
            "register-fund",
            "approve-grant",
            "G",
            "F",
            "IOM",
        ])
        .prop_map(str::to_string),
        "[ -~]{0,80}",
        "\\PC{0,40}",
        "[0-9]{1,40}(\\.[0-9]{0,6})?",
    ]
}

/// A valid command with one field replaced by arbitrary JSON, or removed, or one added.
fn mutated_command() -> impl Strategy<Value = Value> {
    let templates = templates();
    (
        0..templates.len(),
        any_json(),
        any::<prop::sample::Index>(),
        0u8..4,
        field_name(),
    )
        .prop_map(move |(which, replacement, index, how, extra)| {
            let mut command = templates[which].clone();
            let object = command.as_object_mut().unwrap();
            let keys: Vec<String> = object.keys().cloned().collect();
            let key = keys[index.index(keys.len())].clone();
            match how {
                0 => {
                    object.insert(key, replacement);
                }
                1 => {
                    object.remove(&key);
                }
                2 => {
                    object.insert(extra, replacement);
                }
                _ => {
                    if let Value::String(text) = replacement {
                        object.insert(key, Value::String(text));
                    }
                }
            }
            command
        })
}

static TRIED: AtomicU64 = AtomicU64::new(0);

fn run<S: Strategy>(
    name: &str,
    strategy: S,
    log: &Log,
    to_value: impl Fn(S::Value) -> Option<Value>,
) where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let codes = std::sync::Mutex::new(std::collections::BTreeMap::<String, u64>::new());
    let accepted = AtomicU64::new(0);
    let result = runner.run(&strategy, |input| {
        TRIED.fetch_add(1, Ordering::Relaxed);
        if let Some(value) = to_value(input) {
            match check(log, &value) {
                Some(code) => {
                    *codes
                        .lock()
                        .unwrap()
                        .entry(code.as_str().to_string())
                        .or_default() += 1
                }
                None => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    });
    result.unwrap();
    println!(
        "{name}: {} inputs, {} accepted, refusals by code: {:?}",
        cases(),
        accepted.load(Ordering::Relaxed),
        codes.lock().unwrap()
    );
}

#[test]
fn arbitrary_json_values_never_panic() {
    run("arbitrary JSON", any_json(), &world(), Some);
}

#[test]
fn valid_commands_with_one_field_mutated_never_panic() {
    run("mutated commands", mutated_command(), &world(), Some);
}

#[test]
fn arbitrary_bytes_never_panic() {
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        (mutated_command(), any::<prop::sample::Index>(), any::<u8>()).prop_map(
            |(value, index, mask)| {
                let mut bytes = value.to_string().into_bytes();
                // A byte changed somewhere: invalid UTF-8, broken JSON, or another value.
                let at = index.index(bytes.len());
                bytes[at] ^= mask;
                bytes
            }
        ),
    ];
    run("arbitrary bytes", strategy, &world(), |bytes| {
        serde_json::from_slice::<Value>(&bytes).ok()
    });
}

/// The explicit traps, each with the code the contract gives it.
#[test]
fn the_classic_traps_get_their_contract_codes() {
    let log = world();
    let disburse = |amount: Value| json!({"command": "record-disbursement", "grant": "G", "agency": "IOM", "amount": amount, "paid_on": "2013-01-01"});
    let with = |field: &str, value: Value| {
        let mut command = json!({"command": "submit-proposal", "fund": "F", "grant": "Q", "title": "T", "amount": "5.00"});
        command[field] = value;
        command
    };
    let huge = "9".repeat(10_000_000);
    // 10,000 levels of JSON text never become a value: the JSON reader stops at its
    // recursion limit (128), so a command never holds more. (A 10,000-level `Value` built in
    // memory cannot even be dropped on a 2 MiB stack: serde_json drops recursively.)
    let deep_text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(serde_json::from_str::<Value>(&deep_text).is_err());
    let deep_object = format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
    assert!(serde_json::from_str::<Value>(&deep_object).is_err());
    let mut deep = json!("leaf");
    for _ in 0..1_000 {
        deep = json!([deep]);
    }
    let cases: Vec<(&str, Value, ErrorCode)> = vec![
        (
            "negative amount",
            disburse(json!("-1.00")),
            ErrorCode::InvalidAmount,
        ),
        (
            "zero amount",
            disburse(json!("0.00")),
            ErrorCode::InvalidAmount,
        ),
        (
            "zero without decimals",
            disburse(json!("0")),
            ErrorCode::InvalidAmount,
        ),
        ("a sign", disburse(json!("+1.00")), ErrorCode::InvalidAmount),
        (
            "an exponent",
            disburse(json!("1e2")),
            ErrorCode::InvalidAmount,
        ),
        (
            "a JSON number",
            disburse(json!(1.5)),
            ErrorCode::InvalidAmount,
        ),
        (
            "a giant JSON number",
            disburse(json!(1.0e308)),
            ErrorCode::InvalidAmount,
        ),
        (
            "u64::MAX",
            disburse(json!(u64::MAX)),
            ErrorCode::InvalidAmount,
        ),
        (
            "16 integer digits",
            disburse(json!("1000000000000000.00")),
            ErrorCode::InvalidAmount,
        ),
        (
            "40 digits",
            disburse(json!("1234567890123456789012345678901234567890")),
            ErrorCode::InvalidAmount,
        ),
        (
            "10 MB of digits",
            disburse(json!(huge.clone())),
            ErrorCode::InvalidAmount,
        ),
        (
            "too many decimals",
            disburse(json!("1.005")),
            ErrorCode::InvalidAmount,
        ),
        (
            "2012-02-30",
            with("ends_on", json!("2012-02-30")),
            ErrorCode::MalformedCommand,
        ),
        (
            "2013-02-29",
            with("starts_on", json!("2013-02-29")),
            ErrorCode::MalformedCommand,
        ),
        (
            "month 13",
            with("ends_on", json!("2012-13-01")),
            ErrorCode::MalformedCommand,
        ),
        (
            "a date with a time",
            with("ends_on", json!("2012-01-01T00:00:00Z")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with a slash",
            with("grant", json!("a/b")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id climbing out",
            with("grant", json!("../../etc/passwd")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with a backslash",
            with("grant", json!("a\\b")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with NUL",
            with("grant", json!("a\u{0}b")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with a newline",
            with("grant", json!("a\nb")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with DEL",
            with("grant", json!("a\u{7f}")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an id with a bidi override",
            with("grant", json!("\u{202e}G")),
            ErrorCode::MalformedCommand,
        ),
        (
            "an empty id",
            with("grant", json!("")),
            ErrorCode::MalformedCommand,
        ),
        (
            "a 65-character id",
            with("grant", json!("a".repeat(65))),
            ErrorCode::MalformedCommand,
        ),
        (
            "a 10 MB id",
            with("grant", json!(huge.clone())),
            ErrorCode::MalformedCommand,
        ),
        (
            "a 10 MB title",
            with("title", json!(huge.clone())),
            ErrorCode::MalformedCommand,
        ),
        (
            "a command id with a control character",
            with("command_id", json!("id\u{1}")),
            ErrorCode::MalformedCommand,
        ),
        (
            "a 129-character command id",
            with("command_id", json!("c".repeat(129))),
            ErrorCode::MalformedCommand,
        ),
        (
            "a 10 MB actor",
            with("actor", json!(huge)),
            ErrorCode::MalformedCommand,
        ),
        (
            "1,000 levels deep",
            with("regions", deep.clone()),
            ErrorCode::MalformedCommand,
        ),
        (
            "1,000 levels as the command",
            deep,
            ErrorCode::MalformedCommand,
        ),
        ("an array", json!([1, 2, 3]), ErrorCode::MalformedCommand),
        ("null", Value::Null, ErrorCode::MalformedCommand),
        (
            "an unknown command",
            json!({"command": "delete-everything"}),
            ErrorCode::MalformedCommand,
        ),
        (
            "an unknown field",
            with("admin", json!(true)),
            ErrorCode::MalformedCommand,
        ),
        (
            "a negative expected_version",
            with("expected_version", json!(-1)),
            ErrorCode::MalformedCommand,
        ),
        (
            "a giant expected_version",
            with("expected_version", json!(1.0e300)),
            ErrorCode::MalformedCommand,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, value, expected) in &cases {
        let code = check(&log, value);
        if code != Some(*expected) {
            wrong.push(format!(
                "{name}: expected {}, got {code:?}",
                expected.as_str()
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    println!(
        "classic traps: {} cases, each with its contract code",
        cases.len()
    );
}
