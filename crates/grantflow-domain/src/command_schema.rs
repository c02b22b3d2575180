//! The JSON Schema (draft 2020-12) of a command as [`crate::parse`] reads it
//! (docs/commands.md, "Commands as JSON"): one member per command, discriminated by its
//! `command`, each closed (`additionalProperties: false`, as the parser refuses unknown
//! fields) and each field with the type, pattern and limits the parser enforces, named from
//! the parser's own constants ([`ID_CHARS_MAX`], [`TEXT_CHARS_MAX`], [`AMOUNT_INTEGER_DIGITS_MAX`],
//! [`CURRENCY_DECIMALS_MAX`], the code lists, ...).
//!
//! The members are generated with schemars from [`CommandBody`], a mirror of the parser's
//! field checks whose field types ([`Id`], [`Text`], [`AmountText`], ...) describe themselves;
//! what one field cannot say (exactly one of `grant` and `fund`, at least one term, an amount
//! and its currency together) is added to the member afterwards. `tests/command_schema.rs`
//! holds the schema to the parser: every command has its member with the parser's fields,
//! and instances the schema accepts parse while those it refuses do not.
//!
//! What no JSON Schema can say is in the members' descriptions, and the parser answers it
//! `malformed_command` (or `future_date`): a sector list whose percentages do not sum to 100
//! or that names a code twice, `ends_on` before `starts_on`, `due_on` before `period_end`, a
//! date of something that happened after today. An amount's decimals against the fund's
//! currency (`invalid_amount`) need the fund: the schema allows the most any currency has.
//!
//! [`ID_CHARS_MAX`]: crate::values::ID_CHARS_MAX
//! [`TEXT_CHARS_MAX`]: crate::parse::TEXT_CHARS_MAX
//! [`AMOUNT_INTEGER_DIGITS_MAX`]: crate::money::AMOUNT_INTEGER_DIGITS_MAX
//! [`CURRENCY_DECIMALS_MAX`]: crate::money::CURRENCY_DECIMALS_MAX

// The mirror's types are never built: schemars reads their shape, and that is all they are for.
#![allow(dead_code)]

use std::sync::OnceLock;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use crate::actor::is_invisible;
use crate::codes::CURRENCIES;
use crate::command::COMMAND_NAMES;
use crate::iati_codes::{ORGANISATION_AGENCIES, SECTOR_CODES};
use crate::money::{Currency, AMOUNT_INTEGER_DIGITS_MAX, CURRENCY_DECIMALS_MAX};
use crate::parse::{
    ACTOR_CHARS_MAX, COMMAND_ID_CHARS_MAX, EXPECTED_VERSION_MAX, LABEL_CHARS_MAX, LIST_ITEMS_MAX,
    TEXT_CHARS_MAX,
};
use crate::terms::{
    Category, IncomeKind, ReportKind, CATEGORIES, DOCUMENT_CATEGORY_PATTERN, SHA256_PATTERN,
};
use crate::values::{Country, Date, ID_CHARS_MAX};

/// The longest `url`, in bytes (ASCII: characters).
pub const URL_CHARS_MAX: usize = 2048;
/// The longest `iati_org_ref`, in characters.
pub const ORG_REF_CHARS_MAX: usize = 128;

/// The schema of one command: `{"$schema", "title", "oneOf": [{"$ref": "#/$defs/<Member>"}],
/// "$defs"}`, every member and every field type it uses in `$defs`. Members are named
/// [`member_name`] (`RegisterFundCommand`); `actor` is among each member's fields (the HTTP
/// API refuses it: its description drops it).
pub fn command_schema() -> Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(build).clone()
}

/// The name of a command's member in [`command_schema`]'s `$defs`: `register-fund` is
/// `RegisterFundCommand`.
pub fn member_name(command: &str) -> String {
    let mut name: String = command
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    name.push_str("Command");
    name
}

fn build() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.contract = schemars::generate::Contract::Deserialize;
    let mut generator = settings.into_generator();
    let root = generator.root_schema_for::<CommandBody>().to_value();
    let common = generator.root_schema_for::<Common>().to_value();
    let mut defs = generator.take_definitions(true);
    for (name, def) in root
        .get("$defs")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        defs.entry(name.clone()).or_insert_with(|| def.clone());
    }
    for (name, def) in common
        .get("$defs")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        defs.entry(name.clone()).or_insert_with(|| def.clone());
    }
    let common_properties = common
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let members = root
        .get("oneOf")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut one_of = Vec::new();
    for mut member in members {
        let Some(name) = member
            .pointer("/properties/command/const")
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            continue;
        };
        if let Some(Value::Object(properties)) = member.get_mut("properties") {
            if let Some(Value::Object(command)) = properties.get_mut("command") {
                command.insert("description".into(), json!("The command's name."));
            }
            for (field, schema) in &common_properties {
                properties.insert(field.clone(), schema.clone());
            }
        }
        if let Value::Object(object) = &mut member {
            // A doc comment's lines, joined.
            if let Some(Value::String(description)) = object.get_mut("description") {
                *description = description.replace('\n', " ");
            }
            object.insert("title".into(), json!(name));
            object.insert("additionalProperties".into(), json!(false));
            add_constraints(&name, object);
        }
        let def = member_name(&name);
        defs.insert(def.clone(), member);
        one_of.push(json!({ "$ref": format!("#/$defs/{def}") }));
    }
    json!({
        "$schema": crate::catalog::JSON_SCHEMA_DIALECT,
        "title": "A command",
        "description": format!(
            "One command as docs/commands.md describes it, discriminated by `command` ({} commands).",
            COMMAND_NAMES.len()
        ),
        "oneOf": one_of,
        "$defs": Value::Object(defs),
    })
}

/// `field` given, and not `null` (the parser reads a `null` as an absent field).
fn present(field: &str) -> Value {
    json!({"required": [field], "properties": {field: {"not": {"type": "null"}}}})
}

/// What one field's schema cannot say: the fields that go together or exclude each other.
fn add_constraints(command: &str, member: &mut Map<String, Value>) {
    let mut all_of: Vec<Value> = Vec::new();
    match command {
        "record-contribution" => {
            all_of.push(json!({"anyOf": [
                {"allOf": [present("original_amount"), present("original_currency")]},
                {"not": {"anyOf": [present("original_amount"), present("original_currency")]}},
            ]}));
            all_of.extend(decimals_of_currency("original_amount", "original_currency"));
        }
        "revise-fund-terms" => all_of.push(json!({"anyOf": crate::terms::TERM_FIELDS
            .iter()
            .map(|field| present(field))
            .collect::<Vec<_>>()})),
        "revise-grant" => all_of.push(json!({"anyOf": [
            present("amount"), present("ends_on"), present("sectors"),
        ]})),
        "attach-document" => all_of.push(json!({"oneOf": [present("grant"), present("fund")]})),
        _ => {}
    }
    if !all_of.is_empty() {
        member.insert("allOf".into(), Value::Array(all_of));
    }
}

/// An amount at most as many decimals as its currency has, when both are given: one
/// `if`/`then` per count of decimals among [`CURRENCIES`].
fn decimals_of_currency(amount: &str, currency: &str) -> Vec<Value> {
    let mut counts: Vec<u8> = CURRENCIES.iter().map(|(_, decimals)| *decimals).collect();
    counts.sort_unstable();
    counts.dedup();
    counts
        .into_iter()
        .filter(|decimals| *decimals < CURRENCY_DECIMALS_MAX)
        .map(|decimals| {
            let codes: Vec<&str> = CURRENCIES
                .iter()
                .filter(|(_, d)| *d == decimals)
                .map(|(code, _)| *code)
                .collect();
            json!({
                "if": {"required": [currency], "properties": {currency: {"enum": codes}}},
                "then": {"properties": {amount: {"pattern": amount_pattern(decimals)}}},
            })
        })
        .collect()
}

/// A positive decimal amount: 1 to [`AMOUNT_INTEGER_DIGITS_MAX`] digits, then `.` and 1 to
/// `decimals` digits (none when `decimals` is 0), not zero.
fn amount_pattern(decimals: u8) -> String {
    let fraction = match decimals {
        0 => String::new(),
        _ => format!("(\\.[0-9]{{1,{decimals}}})?"),
    };
    format!("^(?!0+(\\.0+)?$)[0-9]{{1,{AMOUNT_INTEGER_DIGITS_MAX}}}{fraction}$")
}

/// The characters [`char::is_control`] names that free text may not hold (tab and newline
/// may), as a regular expression's class members.
const TEXT_CONTROLS: &str = "\\x00-\\x08\\x0B-\\x1F\\x7F-\\x9F";
/// Every control character.
const CONTROLS: &str = "\\x00-\\x1F\\x7F-\\x9F";
/// The white space [`str::trim`] removes that is not a control character.
const SPACES: &str = " \u{A0}\u{1680}\u{2000}-\u{200A}\u{2028}\u{2029}\u{202F}\u{205F}\u{3000}";

/// Text of which some character is not white space, whose characters are none of
/// `excluded` (class members).
fn non_blank_pattern(excluded: &str) -> String {
    format!("^[^{excluded}]*[^{excluded}\\t\\n{SPACES}][^{excluded}]*$")
}

/// The invisible characters [`is_invisible`] names, as class members.
fn invisible_class() -> String {
    let mut class = String::new();
    let mut start: Option<char> = None;
    let mut previous: Option<char> = None;
    let flush = |start: char, end: char, class: &mut String| {
        class.push(start);
        if end != start {
            class.push('-');
            class.push(end);
        }
    };
    for c in (0x80u32..0x1_0000).filter_map(char::from_u32) {
        if is_invisible(c) {
            match previous {
                Some(p) if u32::from(p) + 1 == u32::from(c) => {}
                _ => {
                    if let (Some(s), Some(p)) = (start, previous) {
                        flush(s, p, &mut class);
                    }
                    start = Some(c);
                }
            }
            previous = Some(c);
        }
    }
    if let (Some(s), Some(p)) = (start, previous) {
        flush(s, p, &mut class);
    }
    class
}

/// Declares a field type whose schema is a named definition.
macro_rules! field_type {
    ($type:ident, $name:literal, |$generator:ident| $schema:expr) => {
        struct $type;
        impl JsonSchema for $type {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema($generator: &mut SchemaGenerator) -> Schema {
                let value: Value = $schema;
                Schema::try_from(value).unwrap_or_default()
            }
        }
    };
    ($type:ident, $name:literal, $schema:expr) => {
        field_type!($type, $name, |_generator| $schema);
    };
}

/// The schema of `T` where a field type refers to it (a `$ref` to its definition).
fn refer<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    generator.subschema_for::<T>().to_value()
}

field_type!(
    Id,
    "Id",
    json!({
        "description": format!("An id: 1 to {ID_CHARS_MAX} letters, digits, '-', '_' or '.'."),
        "type": "string",
        "pattern": format!("^[A-Za-z0-9._-]{{1,{ID_CHARS_MAX}}}$"),
        "examples": ["MEX-2012-01"],
    })
);
field_type!(
    Text,
    "Text",
    json!({
        "description": format!("Free text: at most {TEXT_CHARS_MAX} characters, not blank, without control characters but newline and tab."),
        "type": "string",
        "minLength": 1,
        "maxLength": TEXT_CHARS_MAX,
        "pattern": non_blank_pattern(TEXT_CONTROLS),
    })
);
field_type!(
    Label,
    "Label",
    json!({
        "description": format!("A label: at most {LABEL_CHARS_MAX} characters, not blank, without control characters but newline and tab."),
        "type": "string",
        "minLength": 1,
        "maxLength": LABEL_CHARS_MAX,
        "pattern": non_blank_pattern(TEXT_CONTROLS),
    })
);
field_type!(
    AmountText,
    "Amount",
    json!({
        "description": format!(
            "A positive decimal amount written as a string: 1 to {AMOUNT_INTEGER_DIGITS_MAX} digits, then '.' and at most as many decimals as the fund's currency has (at most {CURRENCY_DECIMALS_MAX}; more than the currency has is invalid_amount); no sign, no exponent, not zero."
        ),
        "type": "string",
        "pattern": amount_pattern(CURRENCY_DECIMALS_MAX),
        "examples": ["3209232.40"],
    })
);
field_type!(
    BudgetAmountText,
    "BudgetAmount",
    json!({
        "description": "A budget line: an amount as `Amount` describes it, or zero (\"0\", \"0.00\").",
        "type": "string",
        "pattern": format!(
            "^(0+(\\.0{{1,{CURRENCY_DECIMALS_MAX}}})?|[0-9]{{1,{AMOUNT_INTEGER_DIGITS_MAX}}}(\\.[0-9]{{1,{CURRENCY_DECIMALS_MAX}}})?)$"
        ),
        "examples": ["300000.00"],
    })
);
/// A percentage as a command writes it: `0` to `100`, at most 2 decimals.
const PERCENT_TEXT: &str = "((0{0,2}[0-9]|0?[1-9][0-9])(\\.[0-9]{1,2})?|100(\\.00?)?)";
field_type!(
    PercentText,
    "PercentInput",
    json!({
        "description": "A percentage from \"0\" to \"100\" written as a string with at most 2 decimals, e.g. \"1\", \"7.5\", \"70.00\".",
        "type": "string",
        "pattern": format!("^{PERCENT_TEXT}$"),
        "examples": ["1.00"],
    })
);
field_type!(
    PositivePercentText,
    "SectorPercentage",
    json!({
        "description": "A percentage above 0 and at most 100, written as a string with at most 2 decimals.",
        "type": "string",
        "pattern": format!("^(?!0{{1,3}}(\\.0{{1,2}})?$){PERCENT_TEXT}$"),
        "examples": ["60"],
    })
);
field_type!(
    PastDate,
    "PastDate",
    json!({
        "description": "A calendar date, YYYY-MM-DD (a real day), of something that has happened: not after today, UTC (future_date).",
        "type": "string",
        "format": "date",
        "pattern": crate::values::DATE_PATTERN,
        "examples": ["2012-09-27"],
    })
);
field_type!(
    Sha256,
    "Sha256",
    json!({
        "description": "A SHA-256 written as 64 lowercase hexadecimal digits.",
        "type": "string",
        "pattern": SHA256_PATTERN,
    })
);
field_type!(
    DocumentCategory,
    "DocumentCategory",
    json!({
        "description": "An IATI DocumentCategory code: A01 to A12 (activity) or B01 to B18 (organisation).",
        "type": "string",
        "pattern": DOCUMENT_CATEGORY_PATTERN,
        "examples": ["A02"],
    })
);
/// One character of an address (RFC 3986, no `[`/`]`, no `#`), or an escape.
const URI_UNIT: &str = "([A-Za-z0-9._~:/?@!$&'()*+,;=-]|%[0-9A-Fa-f]{2})";
field_type!(
    Url,
    "Url",
    json!({
        "description": format!("An http:// or https:// address of at most {URL_CHARS_MAX} bytes, in the characters of RFC 3986 (others escaped as %XX), with at most one '#'."),
        "type": "string",
        "minLength": "https://".len() + 1,
        "maxLength": URL_CHARS_MAX,
        "pattern": format!("^https?://{URI_UNIT}*(#{URI_UNIT}*)?$"),
    })
);
field_type!(
    OrgRef,
    "IatiOrgRef",
    json!({
        "description": format!("An IATI organisation identifier of at most {ORG_REF_CHARS_MAX} printable ASCII characters without spaces, '/', '&', '|' or '?': a registration agency's code from IATI's OrganisationRegistrationAgency codelist, '-', and the organisation's id there."),
        "type": "string",
        "maxLength": ORG_REF_CHARS_MAX,
        "pattern": format!(
            "^({})-[\\x21-\\x25\\x27-\\x2E\\x30-\\x3E\\x40-\\x7B\\x7D\\x7E]+$",
            ORGANISATION_AGENCIES.join("|")
        ),
        "examples": ["XM-DAC-41301"],
    })
);
field_type!(
    SectorCode,
    "SectorCode",
    json!({
        "description": "An active OECD DAC 5-digit purpose code of IATI's Sector codelist (vocabulary 1).",
        "type": "string",
        "enum": SECTOR_CODES.iter().map(|code| format!("{code:05}")).collect::<Vec<_>>(),
    })
);
field_type!(
    CommandId,
    "CommandId",
    json!({
        "description": format!("The client's idempotency key: 1 to {COMMAND_ID_CHARS_MAX} printable ASCII characters."),
        "type": "string",
        "pattern": format!("^[\\x20-\\x7E]{{1,{COMMAND_ID_CHARS_MAX}}}$"),
        "examples": ["tranche-1-iom"],
    })
);
field_type!(
    Actor,
    "Actor",
    json!({
        "description": format!("Who issues the command (not over HTTP, where it is the token's): at most {ACTOR_CHARS_MAX} characters, not blank, without control or invisible characters."),
        "type": "string",
        "minLength": 1,
        "maxLength": ACTOR_CHARS_MAX,
        "pattern": non_blank_pattern(&format!("{CONTROLS}{}", invisible_class())),
    })
);
field_type!(
    ExpectedVersion,
    "ExpectedVersion",
    json!({
        "description": "The target grant's or fund's stream version the client last saw (0 for a stream not yet created): version_conflict when the stream moved.",
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "maximum": EXPECTED_VERSION_MAX,
    })
);
field_type!(Labels, "Regions", |generator| json!({
    "description": format!("At most {LIST_ITEMS_MAX} labels."),
    "type": "array",
    "maxItems": LIST_ITEMS_MAX,
    "items": refer::<Label>(generator),
}));
field_type!(Texts, "Activities", |generator| json!({
    "description": format!("At most {LIST_ITEMS_MAX} texts."),
    "type": "array",
    "maxItems": LIST_ITEMS_MAX,
    "items": refer::<Text>(generator),
}));
field_type!(Sectors, "Sectors", |generator| json!({
    "description": format!("1 to {LIST_ITEMS_MAX} sectors, each code named once, the percentages summing to exactly 100."),
    "type": "array",
    "minItems": 1,
    "maxItems": LIST_ITEMS_MAX,
    "items": {
        "type": "object",
        "properties": {
            "code": refer::<SectorCode>(generator),
            "percentage": refer::<PositivePercentText>(generator),
        },
        "required": ["code", "percentage"],
        "additionalProperties": false,
    },
    "examples": [[{"code": "15190", "percentage": "60"}, {"code": "15110", "percentage": "40"}]],
}));
field_type!(BudgetInput, "Budget", |generator| json!({
    "description": "An agency's budget: an amount per category (its categories must sum to the allocation).",
    "type": "object",
    "properties": CATEGORIES
        .iter()
        .map(|category| (category.as_str().to_string(), json!(refer::<BudgetAmountText>(generator))))
        .collect::<Map<String, Value>>(),
    "additionalProperties": false,
    "examples": [{"staff": "300000.00", "travel": "167289.72", "indirect": "32710.28"}],
}));
field_type!(
    ReportedEquivalent,
    "ReportedEquivalent",
    |generator| json!({
        "description": "The amount as reported in another currency (information only), with at most as many decimals as that currency has.",
        "type": "object",
        "properties": {
            "amount": refer::<AmountText>(generator),
            "currency": refer::<Currency>(generator),
        },
        "required": ["amount", "currency"],
        "additionalProperties": false,
        "allOf": decimals_of_currency("amount", "currency"),
    })
);
field_type!(DocumentInput, "ReportDocument", |generator| json!({
    "description": "The report's file: its title and SHA-256.",
    "type": "object",
    "properties": {
        "title": refer::<Text>(generator),
        "sha256": refer::<Sha256>(generator),
    },
    "required": ["title", "sha256"],
    "additionalProperties": false,
}));

/// The fields every command may carry besides `command` ([`crate::parse::COMMON_FIELDS`]).
#[derive(JsonSchema)]
struct Common {
    command_id: Option<CommandId>,
    actor: Option<Actor>,
    expected_version: Option<ExpectedVersion>,
}

/// Every command's fields as the parser reads them (docs/commands.md). An `Option` is an
/// optional field (`null` is read as absent); the rest are required.
#[derive(JsonSchema)]
#[schemars(tag = "command", rename_all = "kebab-case", deny_unknown_fields)]
enum CommandBody {
    /// A new fund with its currency (finance).
    RegisterFund {
        fund: Id,
        name: Text,
        currency: Currency,
        admin_fee_percent: Option<PercentText>,
        indirect_max_percent: Option<PercentText>,
        tranche_threshold_percent: Option<PercentText>,
        hold_on_overdue_reports: Option<bool>,
        iati_org_ref: Option<OrgRef>,
    },
    /// Money received by a fund from a donor (finance); `original_amount` and
    /// `original_currency` go together.
    RecordContribution {
        fund: Id,
        donor: Id,
        amount: AmountText,
        received_on: PastDate,
        original_amount: Option<AmountText>,
        original_currency: Option<Currency>,
        pledge: Option<Id>,
        currency: Option<Currency>,
    },
    /// A proposal under a fund (secretariat); `ends_on` not before `starts_on`.
    SubmitProposal {
        fund: Id,
        grant: Id,
        title: Text,
        amount: AmountText,
        country: Option<Country>,
        regions: Option<Labels>,
        starts_on: Option<Date>,
        ends_on: Option<Date>,
        activities: Option<Texts>,
        sectors: Option<Sectors>,
        currency: Option<Currency>,
    },
    /// The proposal ends without a grant (secretariat).
    RejectProposal { grant: Id, reason: Text },
    /// The fund commits the requested amount (approver; not the proposal's submitter).
    ApproveGrant {
        grant: Id,
        decided_on: PastDate,
        reported_equivalent: Option<ReportedEquivalent>,
    },
    /// An agency joins the grant with an allocation (secretariat).
    AssignAgency {
        grant: Id,
        agency: Id,
        allocation: AmountText,
        lead: Option<bool>,
        budget: Option<BudgetInput>,
        currency: Option<Currency>,
    },
    /// An agency's allocation is set anew (secretariat).
    ReviseAllocation {
        grant: Id,
        agency: Id,
        allocation: AmountText,
        reason: Text,
        budget: Option<BudgetInput>,
        currency: Option<Currency>,
    },
    /// An agency leaves the grant (secretariat).
    WithdrawAgency { grant: Id, agency: Id, reason: Text },
    /// A transfer to one agency (finance).
    RecordDisbursement {
        grant: Id,
        agency: Id,
        amount: AmountText,
        paid_on: PastDate,
        reference: Option<Label>,
        currency: Option<Currency>,
    },
    /// An agency reports spending (finance).
    RecordExpenditure {
        grant: Id,
        agency: Id,
        amount: AmountText,
        period_end: Date,
        category: Option<Category>,
        currency: Option<Currency>,
    },
    /// An agency returns money (finance).
    RecordRefund {
        grant: Id,
        agency: Id,
        amount: AmountText,
        received_on: PastDate,
        reference: Option<Label>,
        currency: Option<Currency>,
    },
    /// A new amount, end date or sectors (approver; at least one of the three).
    ReviseGrant {
        grant: Id,
        reason: Text,
        amount: Option<AmountText>,
        ends_on: Option<Date>,
        decided_on: Option<PastDate>,
        sectors: Option<Sectors>,
        currency: Option<Currency>,
    },
    /// A pause (secretariat).
    SuspendGrant { grant: Id, reason: Text },
    /// The end of a pause (secretariat).
    ResumeGrant { grant: Id, reason: Text },
    /// The grant stops (secretariat).
    CancelGrant { grant: Id, reason: Text },
    /// Operational closure (secretariat).
    CloseGrant { grant: Id, closed_on: PastDate },
    /// Financial closure (finance).
    FinalizeGrant { grant: Id },
    /// The fund's terms change (approver; at least one term).
    ReviseFundTerms {
        fund: Id,
        reason: Text,
        admin_fee_percent: Option<PercentText>,
        indirect_max_percent: Option<PercentText>,
        tranche_threshold_percent: Option<PercentText>,
        hold_on_overdue_reports: Option<bool>,
    },
    /// A donor's signed pledge (finance).
    RecordPledge {
        fund: Id,
        pledge: Id,
        donor: Id,
        amount: AmountText,
        signed_on: PastDate,
        due_on: Option<Date>,
        currency: Option<Currency>,
    },
    /// Income of the fund (finance).
    RecordIncome {
        fund: Id,
        kind: IncomeKind,
        amount: AmountText,
        received_on: PastDate,
        currency: Option<Currency>,
    },
    /// A report is scheduled (secretariat); `due_on` not before `period_end`.
    ScheduleReport {
        grant: Id,
        report: Id,
        kind: ReportKind,
        period_end: Date,
        due_on: Date,
    },
    /// A report is submitted (secretariat).
    SubmitReport {
        grant: Id,
        report: Id,
        submitted_on: PastDate,
        document: Option<DocumentInput>,
    },
    /// A submitted report is accepted (approver; not who submitted it).
    AcceptReport {
        grant: Id,
        report: Id,
        accepted_on: PastDate,
    },
    /// A submitted report is returned, to be submitted again (approver).
    ReturnReport {
        grant: Id,
        report: Id,
        returned_on: PastDate,
        reason: Text,
    },
    /// A document is filed on a grant or a fund (secretariat; exactly one of `grant` and
    /// `fund`).
    AttachDocument {
        grant: Option<Id>,
        fund: Option<Id>,
        document: Id,
        title: Text,
        category: DocumentCategory,
        sha256: Sha256,
        url: Option<Url>,
        issued_on: Option<PastDate>,
    },
}
