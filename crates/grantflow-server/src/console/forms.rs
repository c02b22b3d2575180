//! The console's command forms: which inputs each command's form has (named as the
//! command's JSON fields), and the command JSON a posted form becomes.
//!
//! A form holds text; the JSON has a few other shapes, chosen by the field's name: booleans
//! (`lead`, `hold_on_overdue_reports`), lists (`regions` comma-separated, `activities` one per
//! line), the list of objects `sectors` (one `code=percentage` per line, e.g. `15190=60`),
//! and objects written as dotted names (`budget.staff`, `document.title`,
//! `reported_equivalent.amount`). An empty input is a field left out. Every other check is
//! the engine's: the body goes to it exactly as `POST /v1/commands` sends it.

use maud::{html, Markup};
use serde_json::{Map, Value};

/// The hidden input naming the command of a form.
pub(crate) const COMMAND_FIELD: &str = "command";
/// The hidden input carrying the session's CSRF token.
pub(crate) const CSRF_FIELD: &str = "csrf";

/// How an input is drawn and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    /// A line of text.
    Text,
    /// A decimal amount, typed as text (never a float).
    Amount,
    /// A percentage, typed as text.
    Percent,
    /// A calendar date.
    Date,
    /// A checkbox: checked is `true`, unchecked leaves the field out.
    Check,
    /// Yes / no / left out.
    YesNo,
    /// One of a few values (or left out).
    Choice(&'static [&'static str]),
    /// Several lines of text.
    Lines,
    /// A value the page fills in (the grant or fund of the page).
    Hidden,
}

/// One input of a command form.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// The command's JSON field (dotted for a member of an object).
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// How it is drawn.
    pub input: Input,
    /// Whether the command needs it.
    pub required: bool,
}

const fn req(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: true,
    }
}

const fn opt(name: &'static str, label: &'static str, input: Input) -> Field {
    Field {
        name,
        label,
        input,
        required: false,
    }
}

use Input::*;

const GRANT: Field = req("grant", "Grant", Hidden);
const FUND: Field = req("fund", "Fund", Hidden);
const REASON: Field = req("reason", "Reason", Text);
const AGENCY: Field = req("agency", "Agency", Text);
const REPORT: Field = req("report", "Report", Text);
const SECTORS: Field = opt(
    "sectors",
    "Sectors (one per line: DAC purpose code=percentage, e.g. 15190=100)",
    Lines,
);
const KINDS: &[&str] = &["progress", "financial", "final"];
const INCOME_KINDS: &[&str] = &["interest", "investment", "other"];
const CATEGORY_NAMES: &[&str] = &[
    "staff",
    "supplies",
    "equipment",
    "contractual",
    "travel",
    "transfers",
    "operating",
    "indirect",
];
const BUDGET: &[Field] = &[
    opt("budget.staff", "Budget: staff", Amount),
    opt("budget.supplies", "Budget: supplies", Amount),
    opt("budget.equipment", "Budget: equipment", Amount),
    opt("budget.contractual", "Budget: contractual", Amount),
    opt("budget.travel", "Budget: travel", Amount),
    opt("budget.transfers", "Budget: transfers", Amount),
    opt("budget.operating", "Budget: operating", Amount),
    opt("budget.indirect", "Budget: indirect", Amount),
];
const TERMS: &[Field] = &[
    opt("admin_fee_percent", "Administrative fee (%)", Percent),
    opt("indirect_max_percent", "Indirect cost cap (%)", Percent),
    opt(
        "tranche_threshold_percent",
        "Tranche threshold (%)",
        Percent,
    ),
    opt(
        "hold_on_overdue_reports",
        "Hold disbursements on overdue reports",
        YesNo,
    ),
];

/// The inputs of a command's form, in order; empty for a name that is not a command.
pub(crate) fn fields(command: &str) -> Vec<Field> {
    let head: &[Field] = match command {
        "register-fund" => &[
            req("fund", "Fund id", Text),
            req("name", "Name", Text),
            req("currency", "Currency (ISO 4217)", Text),
            opt(
                "iati_org_ref",
                "IATI organisation identifier (e.g. XM-DAC-41301)",
                Text,
            ),
        ],
        "revise-fund-terms" => &[FUND, REASON],
        "record-contribution" => &[
            FUND,
            req("donor", "Donor", Text),
            req("amount", "Amount", Amount),
            req("received_on", "Received on", Date),
            opt("pledge", "Pledge paid", Text),
            opt("original_amount", "Original amount", Amount),
            opt("original_currency", "Original currency", Text),
        ],
        "record-pledge" => &[
            FUND,
            req("pledge", "Pledge id", Text),
            req("donor", "Donor", Text),
            req("amount", "Amount", Amount),
            req("signed_on", "Signed on", Date),
            opt("due_on", "Due on", Date),
        ],
        "record-income" => &[
            FUND,
            req("kind", "Kind", Choice(INCOME_KINDS)),
            req("amount", "Amount", Amount),
            req("received_on", "Received on", Date),
        ],
        "submit-proposal" => &[
            FUND,
            req("grant", "Grant id", Text),
            req("title", "Title", Text),
            req("amount", "Amount requested", Amount),
            opt("country", "Country (ISO 3166-1)", Text),
            opt("regions", "Regions (comma-separated)", Text),
            opt("starts_on", "Starts on", Date),
            opt("ends_on", "Ends on", Date),
            opt("activities", "Activities (one per line)", Lines),
            SECTORS,
        ],
        "reject-proposal" | "suspend-grant" | "resume-grant" | "cancel-grant" => &[GRANT, REASON],
        "approve-grant" => &[
            GRANT,
            req("decided_on", "Decided on", Date),
            opt(
                "reported_equivalent.amount",
                "Reported equivalent: amount",
                Amount,
            ),
            opt(
                "reported_equivalent.currency",
                "Reported equivalent: currency",
                Text,
            ),
        ],
        "assign-agency" => &[
            GRANT,
            AGENCY,
            req("allocation", "Allocation", Amount),
            opt("lead", "Lead agency", Check),
        ],
        "revise-allocation" => &[
            GRANT,
            AGENCY,
            req("allocation", "New allocation", Amount),
            REASON,
        ],
        "withdraw-agency" => &[GRANT, AGENCY, REASON],
        "record-disbursement" => &[
            GRANT,
            AGENCY,
            req("amount", "Amount", Amount),
            req("paid_on", "Paid on", Date),
            opt("reference", "Reference", Text),
        ],
        "record-expenditure" => &[
            GRANT,
            AGENCY,
            req("amount", "Amount", Amount),
            req("period_end", "Period end", Date),
            opt("category", "Category", Choice(CATEGORY_NAMES)),
        ],
        "record-refund" => &[
            GRANT,
            AGENCY,
            req("amount", "Amount", Amount),
            req("received_on", "Received on", Date),
            opt("reference", "Reference", Text),
        ],
        "revise-grant" => &[
            GRANT,
            REASON,
            opt("amount", "New amount", Amount),
            opt("ends_on", "New end date", Date),
            opt("decided_on", "Decided on", Date),
            SECTORS,
        ],
        "close-grant" => &[GRANT, req("closed_on", "Closed on", Date)],
        "finalize-grant" => &[GRANT],
        "schedule-report" => &[
            GRANT,
            REPORT,
            req("kind", "Kind", Choice(KINDS)),
            req("period_end", "Period end", Date),
            req("due_on", "Due on", Date),
        ],
        "submit-report" => &[
            GRANT,
            REPORT,
            req("submitted_on", "Submitted on", Date),
            opt("document.title", "Document title", Text),
            opt("document.sha256", "Document SHA-256", Text),
        ],
        "accept-report" => &[GRANT, REPORT, req("accepted_on", "Accepted on", Date)],
        "return-report" => &[
            GRANT,
            REPORT,
            req("returned_on", "Returned on", Date),
            REASON,
        ],
        "attach-document" => &[
            req("document", "Document id", Text),
            req("title", "Title", Text),
            req("category", "Category (IATI code, e.g. A02)", Text),
            req("sha256", "SHA-256 (64 hex digits)", Text),
            opt("url", "URL", Text),
            opt("issued_on", "Issued on", Date),
        ],
        _ => &[],
    };
    let tail: &[Field] = match command {
        "register-fund" | "revise-fund-terms" => TERMS,
        "assign-agency" | "revise-allocation" => BUDGET,
        _ => &[],
    };
    head.iter().chain(tail).copied().collect()
}

/// The command JSON of a posted form: `command` from its hidden input, every other input
/// (but the CSRF token) as the command's field; an empty input is left out.
pub(crate) fn command_json(pairs: &[(String, String)]) -> Value {
    let mut body = Map::new();
    for (name, value) in pairs {
        if name == CSRF_FIELD {
            continue;
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let json = match name.as_str() {
            "lead" | "hold_on_overdue_reports" => match value {
                "true" | "on" | "yes" => Value::Bool(true),
                "false" | "no" => Value::Bool(false),
                // The engine names the field and what it expects.
                other => Value::String(other.to_string()),
            },
            "regions" => list(value.split(',')),
            "activities" => list(value.lines()),
            "sectors" => sectors(value),
            _ => Value::String(value.to_string()),
        };
        match name.split_once('.') {
            Some((object, member)) => {
                let entry = body
                    .entry(object.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(members) = entry {
                    members.insert(member.to_string(), json);
                }
            }
            None => {
                body.insert(name.clone(), json);
            }
        }
    }
    Value::Object(body)
}

/// `15190=60` lines as `[{"code": "15190", "percentage": "60"}]`; a line without `=` is a
/// code alone (the engine then names the missing percentage).
fn sectors(text: &str) -> Value {
    Value::Array(
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                let mut sector = Map::new();
                let (code, percentage) = match line.split_once('=') {
                    Some((code, percentage)) => (code, Some(percentage)),
                    None => (line, None),
                };
                sector.insert("code".into(), Value::String(code.trim().to_string()));
                if let Some(percentage) = percentage {
                    let percentage = percentage.trim().trim_end_matches('%').trim_end();
                    sector.insert("percentage".into(), Value::String(percentage.to_string()));
                }
                Value::Object(sector)
            })
            .collect(),
    )
}

fn list<'a>(items: impl Iterator<Item = &'a str>) -> Value {
    Value::Array(
        items
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| Value::String(item.to_string()))
            .collect(),
    )
}

/// What the page knows that a form's hidden inputs carry, and where the forms post.
#[derive(Debug, Default)]
pub(crate) struct FormContext<'a> {
    /// Where the forms post (the page's own path).
    pub action: &'a str,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// The page's grant, if any.
    pub grant: Option<&'a str>,
    /// The page's fund, if any.
    pub fund: Option<&'a str>,
    /// The command the user just sent, with what they typed and why it was refused.
    pub submitted: Option<&'a Submitted>,
}

/// A form sent back: its command, the values typed, and the refusal to show in it.
#[derive(Debug, Clone)]
pub(crate) struct Submitted {
    pub command: String,
    pub values: Vec<(String, String)>,
    pub code: String,
    pub message: String,
}

impl Submitted {
    fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A command's heading in the console.
pub(crate) fn title(command: &str) -> &'static str {
    match command {
        "register-fund" => "Register a fund",
        "revise-fund-terms" => "Revise the fund's terms",
        "record-contribution" => "Record a contribution",
        "record-pledge" => "Record a pledge",
        "record-income" => "Record income",
        "submit-proposal" => "Submit a proposal",
        "reject-proposal" => "Reject the proposal",
        "approve-grant" => "Approve the grant",
        "assign-agency" => "Assign an agency",
        "revise-allocation" => "Revise an allocation",
        "withdraw-agency" => "Withdraw an agency",
        "record-disbursement" => "Record a disbursement",
        "record-expenditure" => "Record an expenditure",
        "record-refund" => "Record a refund",
        "revise-grant" => "Revise the grant",
        "suspend-grant" => "Suspend the grant",
        "resume-grant" => "Resume the grant",
        "cancel-grant" => "Cancel the grant",
        "close-grant" => "Close the grant",
        "finalize-grant" => "Finalize the grant",
        "schedule-report" => "Schedule a report",
        "submit-report" => "Submit a report",
        "accept-report" => "Accept a report",
        "return-report" => "Return a report",
        "attach-document" => "Attach a document",
        _ => "Command",
    }
}

/// A command's form: `<form data-command="NAME">` with its inputs named as the command's
/// JSON fields, its CSRF token, and, when it was just refused, the refusal (`role="alert"`)
/// with what was typed kept. `note` is shown above the inputs (e.g. who submitted a proposal).
pub(crate) fn render(command: &str, context: &FormContext<'_>, note: Option<Markup>) -> Markup {
    let sent = context
        .submitted
        .filter(|submitted| submitted.command == command);
    let mut fields = fields(command);
    if command == "attach-document" {
        fields.insert(0, if context.grant.is_some() { GRANT } else { FUND });
    }
    html! {
        details class="command" open[sent.is_some()] {
            summary { (title(command)) }
            form method="post" action=(context.action) data-command=(command) {
                input type="hidden" name=(COMMAND_FIELD) value=(command);
                input type="hidden" name=(CSRF_FIELD) value=(context.csrf);
                @if let Some(sent) = sent {
                    div class="refusal" role="alert" tabindex="-1" {
                        strong { (sent.code) } ": " (sent.message)
                    }
                }
                @if let Some(note) = note { (note) }
                @for field in &fields {
                    (input(command, field, context, sent))
                }
                button type="submit" { (title(command)) }
            }
        }
    }
}

fn input(
    command: &str,
    field: &Field,
    context: &FormContext<'_>,
    sent: Option<&Submitted>,
) -> Markup {
    let id = format!("{command}-{}", field.name.replace('.', "-"));
    let page_value = match field.name {
        "grant" => context.grant,
        "fund" => context.fund,
        _ => None,
    };
    let typed = sent.and_then(|sent| sent.value(field.name));
    if field.input == Hidden {
        if let Some(value) = page_value {
            return html! { input type="hidden" name=(field.name) value=(value); };
        }
    }
    let value = typed.or(page_value).unwrap_or("");
    let label = html! {
        label for=(id) { (field.label) @if !field.required { " " span class="optional" { "(optional)" } } }
    };
    match field.input {
        Check => html! {
            div class="field check" {
                input type="checkbox" id=(id) name=(field.name) value="true" checked[typed.is_some()];
                (label)
            }
        },
        YesNo => html! {
            div class="field" {
                (label)
                select id=(id) name=(field.name) {
                    option value="" selected[value.is_empty()] { "(leave as is)" }
                    option value="true" selected[value == "true"] { "yes" }
                    option value="false" selected[value == "false"] { "no" }
                }
            }
        },
        Choice(choices) => html! {
            div class="field" {
                (label)
                select id=(id) name=(field.name) required[field.required] {
                    @if !field.required { option value="" selected[value.is_empty()] { "(none)" } }
                    @for choice in choices {
                        option value=(choice) selected[value == *choice] { (choice) }
                    }
                }
            }
        },
        Lines => html! {
            div class="field" {
                (label)
                textarea id=(id) name=(field.name) rows="3" required[field.required] { (value) }
            }
        },
        Text | Amount | Percent | Date | Hidden => {
            let (kind, mode, hint) = match field.input {
                Amount => ("text", Some("decimal"), Some("e.g. 100000.00")),
                Percent => ("text", Some("decimal"), Some("e.g. 7")),
                Date => ("date", None, None),
                _ => ("text", None, None),
            };
            let list = match field.name {
                "agency" => Some("agencies"),
                "report" => Some("reports"),
                "fund" => Some("funds"),
                _ => None,
            };
            html! {
                div class="field" {
                    (label)
                    input type=(kind) id=(id) name=(field.name) value=(value)
                        inputmode=[mode] placeholder=[hint] list=[list]
                        required[field.required] autocomplete="off";
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn a_form_becomes_the_command_json_of_the_api() {
        let body = command_json(&pairs(&[
            ("csrf", "secret"),
            ("command", "assign-agency"),
            ("grant", "G"),
            ("agency", " IOM "),
            ("allocation", "100.00"),
            ("lead", "on"),
            ("budget.staff", "60.00"),
            ("budget.indirect", "40.00"),
            ("budget.travel", ""),
        ]));
        assert_eq!(
            body,
            json!({"command": "assign-agency", "grant": "G", "agency": "IOM",
                   "allocation": "100.00", "lead": true,
                   "budget": {"staff": "60.00", "indirect": "40.00"}})
        );
        let body = command_json(&pairs(&[
            ("command", "submit-proposal"),
            ("regions", "Chiapas, Oaxaca,"),
            ("activities", "one\r\n\r\ntwo\n"),
            ("country", ""),
            ("sectors", "15190 = 60\r\n\r\n15110=40 %\n13010\n"),
        ]));
        assert_eq!(
            body,
            json!({"command": "submit-proposal", "regions": ["Chiapas", "Oaxaca"],
                   "activities": ["one", "two"],
                   "sectors": [{"code": "15190", "percentage": "60"},
                               {"code": "15110", "percentage": "40"},
                               {"code": "13010"}]})
        );
    }

    #[test]
    fn every_form_input_is_a_field_of_its_command() {
        for command in grantflow_domain::COMMAND_NAMES {
            let known = grantflow_domain::parse::command_fields(command);
            let fields = fields(command);
            assert!(!fields.is_empty(), "{command} has no form");
            for field in fields {
                let top = field.name.split('.').next().unwrap();
                assert!(known.contains(&top), "{command}: {}", field.name);
            }
        }
    }

    #[test]
    fn every_field_of_a_command_has_an_input() {
        for command in grantflow_domain::COMMAND_NAMES {
            let inputs: Vec<&str> = fields(command)
                .iter()
                .map(|field| field.name.split('.').next().unwrap())
                .collect();
            for field in grantflow_domain::parse::command_fields(command) {
                // `currency` only repeats the fund's currency (docs/commands.md); the page
                // fills in the grant or fund of `attach-document`.
                let page_filled =
                    *command == "attach-document" && matches!(*field, "grant" | "fund");
                if *field == "currency" || page_filled {
                    continue;
                }
                assert!(inputs.contains(field), "{command}: no input for `{field}`");
            }
        }
    }

    #[test]
    fn the_budget_inputs_are_the_domains_categories() {
        let names: Vec<&str> = grantflow_domain::terms::CATEGORIES
            .iter()
            .map(|category| category.as_str())
            .collect();
        assert_eq!(names, CATEGORY_NAMES);
        let budget: Vec<&str> = BUDGET
            .iter()
            .map(|field| field.name.trim_start_matches("budget."))
            .collect();
        assert_eq!(budget, CATEGORY_NAMES);
    }
}
