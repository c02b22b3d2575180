//! One subcommand per domain command (`grantflow approve-grant --grant X --decided-on D`),
//! built from a table of each command's fields: flags have the JSON field names in kebab
//! case, and the values go into the same command JSON that `exec` and HTTP take.

use clap::{Arg, ArgAction, ArgMatches, Command};
use serde_json::{json, Map, Value};

/// How a field is given on the command line.
#[derive(Clone, Copy)]
enum Kind {
    /// `--field value`
    Text,
    /// `--field a --field b` (a JSON array)
    List,
    /// `--field` (true when present)
    Flag,
    /// `--field 3` (a JSON number)
    Number,
    /// `--reported-equivalent-amount` and `--reported-equivalent-currency`
    Equivalent,
    /// `--field true` or `--field false` (a JSON boolean)
    Bool,
    /// `--budget staff=1000.00 --budget travel=200.00` (a JSON object of category to amount;
    /// a value that starts with `{` is read as that object in JSON)
    Budget,
    /// `--document-title` and `--document-sha256`
    Document,
    /// `--sectors 15190=60 --sectors 15220=40` (a JSON array of `{"code", "percentage"}`; a
    /// value that starts with `[` is read as that array in JSON)
    Sectors,
}

use Kind::{Bool, Budget, Document, Equivalent, Flag, List, Number, Sectors, Text};

/// The four fund terms, as flags of register-fund and revise-fund-terms.
const TERMS: [(&str, Kind); 4] = [
    ("admin_fee_percent", Text),
    ("indirect_max_percent", Text),
    ("tranche_threshold_percent", Text),
    ("hold_on_overdue_reports", Bool),
];

/// Each command's fields (the common `command_id` and `expected_version` are added to all).
/// A command's name, its help line and its fields.
type Spec = (&'static str, &'static str, &'static [(&'static str, Kind)]);

const COMMANDS: &[Spec] = &[
    (
        "register-fund",
        "Register a fund with its base currency (and, optionally, its terms)",
        &[
            ("fund", Text),
            ("name", Text),
            ("currency", Text),
            TERMS[0],
            TERMS[1],
            TERMS[2],
            TERMS[3],
            ("iati_org_ref", Text),
        ],
    ),
    (
        "record-contribution",
        "Record money received by a fund from a donor",
        &[
            ("fund", Text),
            ("donor", Text),
            ("amount", Text),
            ("received_on", Text),
            ("original_amount", Text),
            ("original_currency", Text),
            ("pledge", Text),
            ("currency", Text),
        ],
    ),
    (
        "submit-proposal",
        "Submit a proposal (a grant before approval) under a fund",
        &[
            ("fund", Text),
            ("grant", Text),
            ("title", Text),
            ("amount", Text),
            ("country", Text),
            ("regions", List),
            ("starts_on", Text),
            ("ends_on", Text),
            ("activities", List),
            ("sectors", Sectors),
            ("currency", Text),
        ],
    ),
    (
        "reject-proposal",
        "Reject a proposal",
        &[("grant", Text), ("reason", Text)],
    ),
    (
        "approve-grant",
        "Approve a proposal, committing its amount",
        &[
            ("grant", Text),
            ("decided_on", Text),
            ("reported_equivalent", Equivalent),
        ],
    ),
    (
        "assign-agency",
        "Assign an implementing agency with an allocation",
        &[
            ("grant", Text),
            ("agency", Text),
            ("allocation", Text),
            ("lead", Flag),
            ("budget", Budget),
            ("currency", Text),
        ],
    ),
    (
        "revise-allocation",
        "Set an agency's allocation anew",
        &[
            ("grant", Text),
            ("agency", Text),
            ("allocation", Text),
            ("reason", Text),
            ("budget", Budget),
            ("currency", Text),
        ],
    ),
    (
        "withdraw-agency",
        "Remove an agency that holds no money of the grant",
        &[("grant", Text), ("agency", Text), ("reason", Text)],
    ),
    (
        "record-disbursement",
        "Record a transfer (tranche) to an agency",
        &[
            ("grant", Text),
            ("agency", Text),
            ("amount", Text),
            ("paid_on", Text),
            ("reference", Text),
            ("currency", Text),
        ],
    ),
    (
        "record-expenditure",
        "Record spending reported by an agency",
        &[
            ("grant", Text),
            ("agency", Text),
            ("amount", Text),
            ("period_end", Text),
            ("category", Text),
            ("currency", Text),
        ],
    ),
    (
        "record-refund",
        "Record unspent money returned by an agency",
        &[
            ("grant", Text),
            ("agency", Text),
            ("amount", Text),
            ("received_on", Text),
            ("reference", Text),
            ("currency", Text),
        ],
    ),
    (
        "revise-grant",
        "Revise a grant's amount and/or end date",
        &[
            ("grant", Text),
            ("reason", Text),
            ("amount", Text),
            ("ends_on", Text),
            ("decided_on", Text),
            ("sectors", Sectors),
            ("currency", Text),
        ],
    ),
    (
        "suspend-grant",
        "Pause a grant (no disbursements)",
        &[("grant", Text), ("reason", Text)],
    ),
    (
        "resume-grant",
        "Resume a suspended grant",
        &[("grant", Text), ("reason", Text)],
    ),
    (
        "cancel-grant",
        "Cancel a grant; its undisbursed commitment returns to the fund",
        &[("grant", Text), ("reason", Text)],
    ),
    (
        "close-grant",
        "Close a grant operationally",
        &[("grant", Text), ("closed_on", Text)],
    ),
    (
        "finalize-grant",
        "Close a grant financially (every agency balance settled, every report accepted)",
        &[("grant", Text)],
    ),
    (
        "revise-fund-terms",
        "Change a fund's terms (fee, indirect cap, tranche threshold, hold on overdue reports)",
        &[
            ("fund", Text),
            ("reason", Text),
            TERMS[0],
            TERMS[1],
            TERMS[2],
            TERMS[3],
        ],
    ),
    (
        "record-pledge",
        "Record a donor's signed pledge (contribution agreement)",
        &[
            ("fund", Text),
            ("pledge", Text),
            ("donor", Text),
            ("amount", Text),
            ("signed_on", Text),
            ("due_on", Text),
            ("currency", Text),
        ],
    ),
    (
        "record-income",
        "Record a fund's income (interest, investment, other)",
        &[
            ("fund", Text),
            ("kind", Text),
            ("amount", Text),
            ("received_on", Text),
            ("currency", Text),
        ],
    ),
    (
        "schedule-report",
        "Schedule a progress, financial or final report of a grant",
        &[
            ("grant", Text),
            ("report", Text),
            ("kind", Text),
            ("period_end", Text),
            ("due_on", Text),
        ],
    ),
    (
        "submit-report",
        "Record a report's submission (on behalf of the lead agency)",
        &[
            ("grant", Text),
            ("report", Text),
            ("submitted_on", Text),
            ("document", Document),
        ],
    ),
    (
        "accept-report",
        "Accept a submitted report (not by who submitted it)",
        &[("grant", Text), ("report", Text), ("accepted_on", Text)],
    ),
    (
        "return-report",
        "Return a submitted report, to be submitted again",
        &[
            ("grant", Text),
            ("report", Text),
            ("returned_on", Text),
            ("reason", Text),
        ],
    ),
    (
        "attach-document",
        "File a document (identified by its SHA-256) on a grant or a fund",
        &[
            ("grant", Text),
            ("fund", Text),
            ("document", Text),
            ("title", Text),
            ("category", Text),
            ("sha256", Text),
            ("url", Text),
            ("issued_on", Text),
        ],
    ),
];

/// Whether a subcommand name is a domain command.
pub fn is_command(name: &str) -> bool {
    COMMANDS.iter().any(|(command, _, _)| *command == name)
}

/// The clap subcommands, one per domain command.
pub fn subcommands() -> Vec<Command> {
    COMMANDS
        .iter()
        .map(|(name, about, fields)| {
            let mut command = Command::new(*name).about(*about);
            for (field, kind) in fields.iter().copied() {
                command = add_field(command, field, kind);
            }
            command
                .arg(text_arg("command_id").help("idempotency key (1 to 128 printable ASCII)"))
                .arg(text_arg("expected_version").help("the stream version you last saw"))
                .arg(
                    Arg::new("json")
                        .long("json")
                        .action(ArgAction::SetTrue)
                        .help("print the result as JSON"),
                )
        })
        .collect()
}

fn text_arg(field: &'static str) -> Arg {
    Arg::new(field)
        .long(field.replace('_', "-"))
        .value_name(field.to_uppercase())
        .action(ArgAction::Set)
}

fn add_field(command: Command, field: &'static str, kind: Kind) -> Command {
    match kind {
        Text | Number => command.arg(text_arg(field)),
        List => command.arg(
            text_arg(field)
                .action(ArgAction::Append)
                .help("repeat for more"),
        ),
        Flag => command.arg(
            Arg::new(field)
                .long(field.replace('_', "-"))
                .action(ArgAction::SetTrue),
        ),
        Equivalent => command
            .arg(text_arg("reported_equivalent_amount").help("information only, e.g. 260000000"))
            .arg(text_arg("reported_equivalent_currency").help("information only, e.g. JPY")),
        Bool => command.arg(text_arg(field).help("true or false")),
        Budget => command.arg(
            text_arg(field)
                .action(ArgAction::Append)
                .value_name("CATEGORY=AMOUNT")
                .help("one category's amount; repeat for more (staff, supplies, equipment, contractual, travel, transfers, operating, indirect)"),
        ),
        Sectors => command.arg(
            text_arg(field)
                .action(ArgAction::Append)
                .value_name("CODE=PERCENTAGE")
                .help("a DAC 5-digit sector code and its share, e.g. 15190=100; repeat for more (the shares sum to 100)"),
        ),
        Document => command
            .arg(text_arg("document_title").help("the report file's title"))
            .arg(text_arg("document_sha256").help("the report file's SHA-256 (64 lowercase hex)")),
    }
}

/// The command JSON for a matched subcommand.
pub fn body(name: &str, matches: &ArgMatches) -> Value {
    let mut object = Map::new();
    object.insert("command".into(), json!(name));
    let fields = COMMANDS
        .iter()
        .find(|(command, _, _)| *command == name)
        .map(|(_, _, fields)| *fields)
        .unwrap_or_default();
    let common = [("command_id", Text), ("expected_version", Number)];
    for (field, kind) in fields.iter().chain(common.iter()).copied() {
        if let Some(value) = field_value(matches, field, kind) {
            object.insert(field.into(), value);
        }
    }
    Value::Object(object)
}

fn field_value(matches: &ArgMatches, field: &str, kind: Kind) -> Option<Value> {
    match kind {
        Text => matches.get_one::<String>(field).map(|v| json!(v)),
        Number => matches
            .get_one::<String>(field)
            .map(|v| match v.parse::<u64>() {
                Ok(number) => json!(number),
                Err(_) => json!(v),
            }),
        List => matches
            .get_many::<String>(field)
            .map(|values| json!(values.collect::<Vec<_>>())),
        Flag => matches.get_flag(field).then_some(Value::Bool(true)),
        Bool => matches.get_one::<String>(field).map(|v| match v.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            other => json!(other),
        }),
        Budget => matches.get_many::<String>(field).map(|values| {
            let mut budget = Map::new();
            for value in values {
                match serde_json::from_str::<Value>(value) {
                    Ok(Value::Object(object)) if value.trim_start().starts_with('{') => {
                        budget.extend(object)
                    }
                    _ => {
                        let (category, amount) = value.split_once('=').unwrap_or((value, ""));
                        budget.insert(category.trim().into(), json!(amount.trim()));
                    }
                }
            }
            Value::Object(budget)
        }),
        Sectors => matches.get_many::<String>(field).map(|values| {
            let mut sectors = Vec::new();
            for value in values {
                match serde_json::from_str::<Value>(value) {
                    Ok(Value::Array(items)) if value.trim_start().starts_with('[') => {
                        sectors.extend(items)
                    }
                    _ => {
                        let (code, percentage) = value.split_once('=').unwrap_or((value, ""));
                        sectors.push(json!({"code": code.trim(), "percentage": percentage.trim()}));
                    }
                }
            }
            Value::Array(sectors)
        }),
        Document => {
            let title = matches.get_one::<String>("document_title");
            let sha256 = matches.get_one::<String>("document_sha256");
            (title.is_some() || sha256.is_some()).then(|| {
                let mut document = Map::new();
                if let Some(title) = title {
                    document.insert("title".into(), json!(title));
                }
                if let Some(sha256) = sha256 {
                    document.insert("sha256".into(), json!(sha256));
                }
                Value::Object(document)
            })
        }
        Equivalent => {
            let amount = matches.get_one::<String>("reported_equivalent_amount");
            let currency = matches.get_one::<String>("reported_equivalent_currency");
            match (amount, currency) {
                (None, None) => None,
                (amount, currency) => {
                    let mut equivalent = Map::new();
                    if let Some(amount) = amount {
                        equivalent.insert("amount".into(), json!(amount));
                    }
                    if let Some(currency) = currency {
                        equivalent.insert("currency".into(), json!(currency));
                    }
                    Some(Value::Object(equivalent))
                }
            }
        }
    }
}
