//! The command schema (`grantflow_domain::command_schema`, the body of `POST /v1/commands` in
//! the OpenAPI description) held to the parser: every command has a member with exactly the
//! parser's fields, and for instances built from the schema's own field types (every sample
//! value, every edge a type has, every field left out, `null` or of a wrong value) the schema
//! accepts exactly what the parser accepts.

use std::collections::BTreeSet;

use grantflow_domain::command_schema::{command_schema, member_name};
use grantflow_domain::parse::{command_fields, COMMON_FIELDS};
use grantflow_domain::{parse_command, parse_command_on, Date, ErrorCode, COMMAND_NAMES};
use jsonschema::Validator;
use serde_json::{json, Map, Value};

fn validator(schema: &Value) -> Validator {
    jsonschema::draft202012::meta::validate(schema)
        .unwrap_or_else(|error| panic!("not a valid draft 2020-12 schema: {error}"));
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|error| panic!("the command schema does not compile: {error}"))
}

fn member(schema: &Value, command: &str) -> Map<String, Value> {
    schema["$defs"][member_name(command)]
        .as_object()
        .unwrap_or_else(|| panic!("no member {} for {command}", member_name(command)))
        .clone()
}

/// The name of a field's type: the definition it refers to (`Id`, `Amount`, ...), or
/// `boolean`.
fn field_type(property: &Value) -> String {
    let target = property
        .get("anyOf")
        .and_then(|any| any.get(0))
        .unwrap_or(property);
    if let Some(reference) = target.get("$ref").and_then(Value::as_str) {
        return reference.trim_start_matches("#/$defs/").to_string();
    }
    match target.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) if types.contains(&json!("boolean")) => "boolean".into(),
        _ => panic!("a field of an unknown kind: {property}"),
    }
}

fn hex() -> String {
    "0123456789abcdef".repeat(4)
}

/// A valid value of each field type.
fn sample(type_name: &str) -> Value {
    match type_name {
        "Id" => json!("MEX-2012-01"),
        "Text" => json!("Migrants in transit"),
        "Label" => json!("Chiapas"),
        "Amount" => json!("1000.00"),
        "BudgetAmount" => json!("1000.00"),
        "PercentInput" => json!("7"),
        "IatiOrgRef" => json!("XM-DAC-41301"),
        "Currency" => json!("USD"),
        "Country" => json!("MX"),
        "Date" => json!("2012-01-01"),
        "PastDate" => json!("2012-09-27"),
        "Regions" => json!(["Chiapas", "Oaxaca"]),
        "Activities" => json!(["Shelters"]),
        "Sectors" => {
            json!([{"code": "15190", "percentage": "60"}, {"code": "15110", "percentage": "40"}])
        }
        "ReportedEquivalent" => json!({"amount": "250000000", "currency": "JPY"}),
        "Budget" => json!({"staff": "1000.00"}),
        "Category" => json!("staff"),
        "IncomeKind" => json!("interest"),
        "ReportKind" => json!("progress"),
        "ReportDocument" => json!({"title": "Progress report", "sha256": hex()}),
        "Sha256" => json!(hex()),
        "DocumentCategory" => json!("A02"),
        "Url" => json!("https://example.org/prodoc.pdf"),
        "CommandId" => json!("tranche-1-iom"),
        "Actor" => json!("m.ito"),
        "ExpectedVersion" => json!(3),
        "boolean" => json!(true),
        other => panic!("no sample of the field type {other}: add one to this test"),
    }
}

/// Other values of a type, each valid (`true`) or not (`false`) for both the schema and the
/// parser: the edges of each check.
fn edges(type_name: &str) -> Vec<(Value, bool)> {
    let text = |max: usize| {
        vec![
            (json!("x"), true),
            (json!(" x "), true),
            (json!("line\nnext\tend"), true),
            (json!("\u{feff}"), true),
            (json!("é".repeat(max)), true),
            (json!("é".repeat(max + 1)), false),
            (json!(""), false),
            (json!("   "), false),
            (json!("\n\t"), false),
            (json!("\u{3000}\u{a0}"), false),
            (json!("a\u{7}b"), false),
            (json!("a\u{85}b"), false),
            (json!("a\rb"), false),
            (json!(7), false),
        ]
    };
    let date = |good: &'static str| {
        vec![
            (json!(good), true),
            (json!("2012-02-29"), true),
            (json!("2011-02-29"), false),
            (json!("2012-02-30"), false),
            (json!("0000-01-01"), false),
            (json!("2012-1-01"), false),
            (json!("20120101"), false),
            (json!("2012-09-27T00:00:00Z"), false),
            (json!(20120101), false),
        ]
    };
    match type_name {
        "Id" => vec![
            (json!("a"), true),
            (json!("A.b-c_9"), true),
            (json!("x".repeat(64)), true),
            (json!("x".repeat(65)), false),
            (json!(""), false),
            (json!("a b"), false),
            (json!("a/b"), false),
            (json!("é"), false),
            (json!(1), false),
        ],
        "Text" => text(4096),
        "Label" => text(256),
        "Amount" => vec![
            (json!("1"), true),
            (json!("0.01"), true),
            (json!("1.2345"), true),
            (json!("000123"), true),
            (json!("999999999999999.9999"), true),
            (json!("0"), false),
            (json!("0.00"), false),
            (json!("-1"), false),
            (json!("+1"), false),
            (json!("1e3"), false),
            (json!("1."), false),
            (json!(".5"), false),
            (json!("1234567890123456"), false),
            (json!("1,000"), false),
            (json!(" 1"), false),
            (json!(""), false),
            (json!(1000), false),
        ],
        "BudgetAmount" => vec![
            (json!("0"), true),
            (json!("0.00"), true),
            (json!("1.5"), true),
            (json!("-0"), false),
            (json!("0."), false),
            (json!("1e3"), false),
            (json!(""), false),
            (json!(0), false),
        ],
        "PercentInput" => vec![
            (json!("0"), true),
            (json!("7.5"), true),
            (json!("007"), true),
            (json!("99.99"), true),
            (json!("100"), true),
            (json!("100.0"), true),
            (json!("100.00"), true),
            (json!("100.01"), false),
            (json!("101"), false),
            (json!("0100"), false),
            (json!("1.234"), false),
            (json!("1."), false),
            (json!("-1"), false),
            (json!(" 1"), false),
            (json!(1), false),
        ],
        "IatiOrgRef" => vec![
            (json!("XI-IATI-A{}~"), true),
            (json!(format!("XM-DAC-{}", "1".repeat(121))), true),
            (json!(format!("XM-DAC-{}", "1".repeat(122))), false),
            (json!("XM-DAC-"), false),
            (json!("XX-FOO-1"), false),
            (json!("XM-DAC-a/b"), false),
            (json!("XM-DAC-a b"), false),
            (json!("XM-DAC-a?b"), false),
        ],
        "Currency" => vec![
            (json!("EUR"), true),
            (json!("usd"), false),
            (json!("XXX"), false),
            (json!("US"), false),
        ],
        "Country" => vec![
            (json!("ZW"), true),
            (json!("mx"), false),
            (json!("XX"), false),
            (json!("MEX"), false),
        ],
        "Date" => date("9999-12-31"),
        "PastDate" => date("0001-01-01"),
        "Regions" | "Activities" => {
            let item = if type_name == "Regions" {
                "Chiapas"
            } else {
                "Shelters"
            };
            vec![
                (json!([]), true),
                (json!(vec![item; 64]), true),
                (json!(vec![item; 65]), false),
                (json!([""]), false),
                (json!([1]), false),
                (json!(item), false),
            ]
        }
        "Sectors" => vec![
            (json!([{"code": "15190", "percentage": "100"}]), true),
            (json!([{"code": "15190", "percentage": "100.00"}]), true),
            (json!([]), false),
            (json!([{"code": "15190"}]), false),
            (
                json!([{"code": "15190", "percentage": "100", "x": 1}]),
                false,
            ),
            (json!([{"code": "99999", "percentage": "100"}]), false),
            (
                json!([{"code": "15190", "percentage": "0"}, {"code": "15110", "percentage": "100"}]),
                false,
            ),
            (json!([{"code": 15190, "percentage": "100"}]), false),
            (json!("15190"), false),
        ],
        "ReportedEquivalent" => vec![
            (json!({"amount": "1.234", "currency": "BHD"}), true),
            (json!({"amount": "1.2345", "currency": "CLF"}), true),
            (json!({"amount": "1.5", "currency": "JPY"}), false),
            (json!({"amount": "1.234", "currency": "USD"}), false),
            (json!({"amount": "1"}), false),
            (json!({"currency": "USD"}), false),
            (json!({"amount": "1", "currency": "USD", "x": 1}), false),
            (json!({"amount": "0", "currency": "USD"}), false),
            (json!("1 USD"), false),
        ],
        "Budget" => vec![
            (json!({}), true),
            (json!({"staff": "0", "indirect": "0.07"}), true),
            (json!({"food": "1"}), false),
            (json!({"staff": 1}), false),
            (json!({"staff": null}), false),
            (json!({"staff": "-1"}), false),
            (json!("staff=1"), false),
        ],
        "Category" => vec![
            (json!("indirect"), true),
            (json!("Staff"), false),
            (json!("food"), false),
        ],
        "IncomeKind" => vec![(json!("other"), true), (json!("dividend"), false)],
        "ReportKind" => vec![(json!("final"), true), (json!("annual"), false)],
        "ReportDocument" => vec![
            (json!({"title": "T"}), false),
            (json!({"title": "", "sha256": hex()}), false),
            (
                json!({"title": "T", "sha256": hex(), "url": "https://x"}),
                false,
            ),
        ],
        "Sha256" => vec![
            (json!(hex().to_uppercase()), false),
            (json!(&hex()[1..]), false),
        ],
        "DocumentCategory" => vec![
            (json!("A12"), true),
            (json!("B18"), true),
            (json!("A13"), false),
            (json!("B19"), false),
            (json!("a01"), false),
        ],
        "Url" => vec![
            (json!("https://x"), true),
            (json!("http://xy"), true),
            (json!("https://#"), true),
            (json!("https://%41"), true),
            (json!("https://a.b/c?d=e&f=g#h"), true),
            (json!(format!("https://{}", "a".repeat(2040))), true),
            (json!(format!("https://{}", "a".repeat(2041))), false),
            (json!("http://x"), false),
            (json!("ftp://example.org"), false),
            (json!("https://a b"), false),
            (json!("https://a#b#c"), false),
            (json!("https://%4"), false),
            (json!("https://[::1]/"), false),
        ],
        "CommandId" => vec![
            (json!(" "), true),
            (json!("~".repeat(128)), true),
            (json!("~".repeat(129)), false),
            (json!(""), false),
            (json!("é"), false),
            (json!("a\u{7f}"), false),
            (json!(1), false),
        ],
        "Actor" => vec![
            (json!("José Pérez"), true),
            (json!("é".repeat(128)), true),
            (json!("é".repeat(129)), false),
            (json!(""), false),
            (json!("  "), false),
            (json!("alice\u{200b}"), false),
            (json!("bob\u{202e}"), false),
            (json!("a\u{7}"), false),
        ],
        "ExpectedVersion" => vec![
            (json!(0), true),
            (json!(i64::MAX), true),
            (json!(i64::MAX as u64 + 1), false),
            (json!(-1), false),
            (json!(1.5), false),
            (json!("1"), false),
        ],
        "boolean" => vec![
            (json!(false), true),
            (json!("true"), false),
            (json!(1), false),
        ],
        "SectorCode" | "SectorPercentage" => Vec::new(),
        other => panic!("no edges of the field type {other}: add them to this test"),
    }
}

fn parses(instance: &Value) -> Result<(), String> {
    parse_command(instance)
        .map(|_| ())
        .map_err(|error| format!("{}: {}", error.code.as_str(), error.message))
}

/// For every command: a body of its required fields, one with every field, each field left
/// out, `null`, or given each edge value of its type; the schema and the parser agree on
/// each, and on the edges' expected verdicts.
#[test]
fn the_schema_accepts_exactly_what_the_parser_accepts() {
    let schema = command_schema();
    let validator = validator(&schema);
    let mut checked = 0;
    let mut disagreements = Vec::new();
    let mut check = |label: String, instance: &Value, expect_valid: Option<bool>| {
        let by_schema = validator.is_valid(instance);
        let by_parser = parses(instance);
        checked += 1;
        if by_schema != by_parser.is_ok() || expect_valid.is_some_and(|e| e != by_schema) {
            disagreements.push(format!(
                "{label}: schema {}, parser {:?}, expected {expect_valid:?}\n  {instance}",
                if by_schema { "accepts" } else { "refuses" },
                by_parser
            ));
        }
    };
    for command in COMMAND_NAMES {
        let member = member(&schema, command);
        let properties = member["properties"].as_object().expect("properties");
        let required: BTreeSet<&str> = member["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let mut minimal = Map::new();
        for field in &required {
            let value = match *field {
                "command" => json!(command),
                other => sample(&field_type(&properties[other])),
            };
            minimal.insert(field.to_string(), value);
        }
        // attach-document, revise-grant and revise-fund-terms need one optional field more.
        let needs_one = match *command {
            "attach-document" => Some("grant"),
            "revise-grant" => Some("amount"),
            "revise-fund-terms" => Some("admin_fee_percent"),
            _ => None,
        };
        let mut base = minimal.clone();
        if let Some(field) = needs_one {
            check(
                format!("{command} without {field}"),
                &Value::Object(minimal.clone()),
                Some(false),
            );
            base.insert(field.into(), sample(&field_type(&properties[field])));
        }
        check(
            format!("{command} required"),
            &Value::Object(base.clone()),
            Some(true),
        );
        let mut full = base.clone();
        for (field, property) in properties {
            if field == "fund" && *command == "attach-document" {
                continue;
            }
            full.entry(field.clone())
                .or_insert_with(|| sample(&field_type(property)));
        }
        if *command == "record-contribution" {
            // A currency of 4 decimals, so that every amount edge fits it.
            full.insert("original_currency".into(), json!("CLF"));
        }
        check(
            format!("{command} full"),
            &Value::Object(full.clone()),
            Some(true),
        );
        for (field, property) in properties {
            if field == "command" {
                continue;
            }
            let type_name = field_type(property);
            let mut body = full.clone();
            if body.remove(field).is_some() {
                check(
                    format!("{command} without {field}"),
                    &Value::Object(body.clone()),
                    None,
                );
            }
            body.insert(field.clone(), Value::Null);
            check(
                format!("{command} {field}: null"),
                &Value::Object(body.clone()),
                None,
            );
            for (value, valid) in edges(&type_name) {
                let mut body = full.clone();
                if field == "fund" && *command == "attach-document" {
                    body.remove("grant");
                }
                body.insert(field.clone(), value.clone());
                // A date checked against another keeps its order.
                match (*command, field.as_str()) {
                    ("submit-proposal", "starts_on") => {
                        body.insert("ends_on".into(), json!("9999-12-31"));
                    }
                    ("schedule-report", "period_end") => {
                        body.insert("due_on".into(), json!("9999-12-31"));
                    }
                    _ => {}
                }
                check(
                    format!("{command} {field} ({type_name}): {value}"),
                    &Value::Object(body),
                    Some(valid),
                );
            }
        }
        let mut unknown = full.clone();
        unknown.insert("colour".into(), json!("blue"));
        check(
            format!("{command} with an unknown field"),
            &Value::Object(unknown),
            Some(false),
        );
    }
    for (body, label) in [
        (json!({}), "no command"),
        (json!({"command": "approve-grants"}), "an unknown command"),
        (json!({"command": null}), "a null command"),
        (json!([]), "an array"),
        (json!("approve-grant"), "a string"),
    ] {
        check(label.into(), &body, Some(false));
    }
    assert!(
        disagreements.is_empty(),
        "the command schema and the parser disagree on {} of {checked} bodies:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    assert!(checked > 1000, "only {checked} bodies checked");
}

/// One member per command of the parser, each with exactly the parser's fields (its own and
/// the common ones), closed.
#[test]
fn every_command_has_a_member_with_the_parsers_fields() {
    let schema = command_schema();
    let members = schema["oneOf"].as_array().expect("oneOf");
    assert_eq!(members.len(), COMMAND_NAMES.len());
    for (command, reference) in COMMAND_NAMES.iter().zip(members) {
        assert_eq!(
            reference["$ref"],
            json!(format!("#/$defs/{}", member_name(command)))
        );
        let member = member(&schema, command);
        assert_eq!(member["additionalProperties"], json!(false), "{command}");
        assert_eq!(member["properties"]["command"]["const"], json!(command));
        let fields: BTreeSet<&str> = member["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        let expected: BTreeSet<&str> = COMMON_FIELDS
            .iter()
            .chain(command_fields(command))
            .copied()
            .collect();
        assert_eq!(
            fields, expected,
            "{command}: the schema's fields and the parser's"
        );
    }
}

/// The dates the schema calls `PastDate` are exactly those the parser holds to today
/// (`future_date`); the other dates may lie ahead.
#[test]
fn past_dates_are_the_ones_the_parser_holds_to_today() {
    let schema = command_schema();
    let today = Date::parse("2026-01-01").expect("a date");
    for command in COMMAND_NAMES {
        let member = member(&schema, command);
        let properties = member["properties"].as_object().expect("properties");
        for (field, property) in properties {
            let type_name = field_type(property);
            if type_name != "PastDate" && type_name != "Date" {
                continue;
            }
            let mut body = Map::new();
            for (name, property) in properties {
                let skip = name == "actor"
                    || name == "command"
                    || (name == "fund" && *command == "attach-document")
                    || (name.ends_with("_on") || name == "period_end") && name != field;
                if !skip {
                    body.insert(name.clone(), sample(&field_type(property)));
                }
            }
            body.insert("command".into(), json!(command));
            body.insert(field.clone(), json!("2026-01-02"));
            if *command == "schedule-report" {
                body.insert("period_end".into(), json!("2026-01-02"));
                body.insert("due_on".into(), json!("2026-01-02"));
            }
            let body = Value::Object(body);
            let result = parse_command_on(&body, today);
            let future = matches!(&result, Err(error) if error.code == ErrorCode::FutureDate);
            assert_eq!(
                future,
                type_name == "PastDate",
                "{command} {field} ({type_name}): {:?}\n{body}",
                result.map(|_| ())
            );
        }
    }
}
