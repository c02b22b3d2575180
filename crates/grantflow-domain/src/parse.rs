//! `parse_command`: the "shape and field values" check (docs/errors.md), from a JSON value to a
//! [`CommandRequest`]. Every problem is `malformed_command` naming the field, except amount
//! syntax, which is `invalid_amount` (and reported after every shape problem).

use crate::command::{
    BudgetText, Command, CommandRequest, DocumentOwner, ForeignAmount, COMMAND_NAMES,
};
use crate::error::DomainError;
use crate::money::{Currency, DecimalText};
use crate::terms::{
    is_document_category, is_sha256_hex, Category, DocumentRef, IncomeKind, Percent, ReportKind,
    SectorShare, TermsChange, CATEGORIES,
};
use crate::values::{is_valid_id, Country, Date};
use serde_json::{Map, Value};

/// Longest free text (name, title, reason, activity), in characters.
pub const TEXT_CHARS_MAX: usize = 4096;
/// Longest short label (region, reference), in characters.
pub const LABEL_CHARS_MAX: usize = 256;
/// Most items in a list field (regions, activities).
pub const LIST_ITEMS_MAX: usize = 64;
/// Longest command id, in characters (printable ASCII).
pub const COMMAND_ID_CHARS_MAX: usize = 128;
/// Longest actor name, in characters.
pub const ACTOR_CHARS_MAX: usize = 128;
/// The largest `expected_version`: OpenAPI's `int64` (no stream holds that many events), so
/// that a generated client's integers and the parser agree; anything larger is refused.
pub const EXPECTED_VERSION_MAX: u64 = i64::MAX as u64;
/// The fields every command may carry.
pub const COMMON_FIELDS: &[&str] = &["command", "command_id", "actor", "expected_version"];

/// Parses one command object (docs/commands.md, "Commands as JSON"), without the
/// `future_date` rule (which needs today's date: [`parse_command_on`]).
pub fn parse_command(value: &Value) -> Result<CommandRequest, DomainError> {
    parse_command_checked(value, None)
}

/// [`parse_command`], and the `future_date` rule: a business date of something that has
/// happened (`received_on`, `signed_on`, `decided_on`, `paid_on`, `closed_on`,
/// `submitted_on`, `accepted_on`, `returned_on`, `issued_on`) may not lie after `today`
/// (the engine's date, UTC). Checked with the other field values: after every shape problem,
/// before an amount's syntax.
pub fn parse_command_on(value: &Value, today: Date) -> Result<CommandRequest, DomainError> {
    parse_command_checked(value, Some(today))
}

fn parse_command_checked(
    value: &Value,
    today: Option<Date>,
) -> Result<CommandRequest, DomainError> {
    let Some(map) = value.as_object() else {
        return Err(DomainError::malformed("a command must be a JSON object"));
    };
    let name = command_name(map)?;
    check_known_fields(map, name)?;
    let mut fields = Fields {
        command: name,
        map,
        amount_error: None,
    };
    let request = CommandRequest {
        command_id: command_id(map)?,
        actor: actor(map)?,
        expected_version: expected_version(map)?,
        command: parse_body(&mut fields)?,
    };
    if let Some(today) = today {
        check_not_future(&request.command, today)?;
    }
    match fields.amount_error {
        Some(error) => Err(error),
        None => Ok(request),
    }
}

fn check_not_future(command: &Command, today: Date) -> Result<(), DomainError> {
    match command
        .happened_dates()
        .into_iter()
        .find(|(_, date)| *date > today)
    {
        Some((field, date)) => Err(DomainError::new(
            crate::error::ErrorCode::FutureDate,
            format!(
                "{}: field `{field}` is {date}, after today ({today}, UTC); money cannot have moved, nor a decision been taken, on a day that has not come",
                command.name()
            ),
        )),
        None => Ok(()),
    }
}

fn command_name(map: &Map<String, Value>) -> Result<&'static str, DomainError> {
    let name = match map.get("command") {
        None | Some(Value::Null) => {
            return Err(DomainError::malformed(format!(
                "field `command` is required: one of {}",
                COMMAND_NAMES.join(", ")
            )))
        }
        Some(Value::String(name)) => name,
        Some(_) => return Err(DomainError::malformed("field `command` must be a string")),
    };
    COMMAND_NAMES
        .iter()
        .copied()
        .find(|known| known == name)
        .ok_or_else(|| {
            DomainError::malformed(format!(
                "unknown command {}; known commands: {}",
                shown(name),
                COMMAND_NAMES.join(", ")
            ))
        })
}

/// The fields each command accepts besides the common ones.
pub fn command_fields(name: &str) -> &'static [&'static str] {
    match name {
        "register-fund" => &[
            "fund",
            "name",
            "currency",
            "admin_fee_percent",
            "indirect_max_percent",
            "tranche_threshold_percent",
            "hold_on_overdue_reports",
            "iati_org_ref",
        ],
        "record-contribution" => &[
            "fund",
            "donor",
            "amount",
            "received_on",
            "original_amount",
            "original_currency",
            "pledge",
            "currency",
        ],
        "submit-proposal" => &[
            "fund",
            "grant",
            "title",
            "amount",
            "country",
            "regions",
            "starts_on",
            "ends_on",
            "activities",
            "sectors",
            "currency",
        ],
        "reject-proposal" => &["grant", "reason"],
        "withdraw-agency" => &["grant", "agency", "reason"],
        "approve-grant" => &["grant", "decided_on", "reported_equivalent"],
        "assign-agency" => &[
            "grant",
            "agency",
            "allocation",
            "lead",
            "budget",
            "currency",
        ],
        "revise-allocation" => &[
            "grant",
            "agency",
            "allocation",
            "reason",
            "budget",
            "currency",
        ],
        "record-disbursement" => &[
            "grant",
            "agency",
            "amount",
            "paid_on",
            "reference",
            "currency",
        ],
        "record-expenditure" => &[
            "grant",
            "agency",
            "amount",
            "period_end",
            "category",
            "currency",
        ],
        "record-refund" => &[
            "grant",
            "agency",
            "amount",
            "received_on",
            "reference",
            "currency",
        ],
        "revise-grant" => &[
            "grant",
            "reason",
            "amount",
            "ends_on",
            "decided_on",
            "sectors",
            "currency",
        ],
        "suspend-grant" | "resume-grant" | "cancel-grant" => &["grant", "reason"],
        "close-grant" => &["grant", "closed_on"],
        "finalize-grant" => &["grant"],
        "revise-fund-terms" => &[
            "fund",
            "reason",
            "admin_fee_percent",
            "indirect_max_percent",
            "tranche_threshold_percent",
            "hold_on_overdue_reports",
        ],
        "record-pledge" => &[
            "fund",
            "pledge",
            "donor",
            "amount",
            "signed_on",
            "due_on",
            "currency",
        ],
        "record-income" => &["fund", "kind", "amount", "received_on", "currency"],
        "schedule-report" => &["grant", "report", "kind", "period_end", "due_on"],
        "submit-report" => &["grant", "report", "submitted_on", "document"],
        "accept-report" => &["grant", "report", "accepted_on"],
        "return-report" => &["grant", "report", "returned_on", "reason"],
        "attach-document" => &[
            "grant",
            "fund",
            "document",
            "title",
            "category",
            "sha256",
            "url",
            "issued_on",
        ],
        _ => &[],
    }
}

fn check_known_fields(map: &Map<String, Value>, name: &str) -> Result<(), DomainError> {
    let allowed = command_fields(name);
    match map
        .keys()
        .find(|key| !COMMON_FIELDS.contains(&key.as_str()) && !allowed.contains(&key.as_str()))
    {
        Some(key) => Err(DomainError::malformed(format!(
            "unknown field {} for {name}; it accepts {}",
            shown(key),
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

fn command_id(map: &Map<String, Value>) -> Result<Option<String>, DomainError> {
    let Some(value) = present(map, "command_id") else {
        return Ok(None);
    };
    let ok = value.as_str().filter(|id| {
        (1..=COMMAND_ID_CHARS_MAX).contains(&id.len())
            && id.bytes().all(|b| (0x20..=0x7e).contains(&b))
    });
    match ok {
        Some(id) => Ok(Some(id.to_string())),
        None => Err(DomainError::malformed(format!(
            "field `command_id` must be a string of 1 to {COMMAND_ID_CHARS_MAX} printable ASCII characters"
        ))),
    }
}

fn actor(map: &Map<String, Value>) -> Result<Option<String>, DomainError> {
    let Some(value) = present(map, "actor") else {
        return Ok(None);
    };
    let ok = value.as_str().filter(|actor| {
        crate::actor::is_valid_actor(actor) && actor.chars().count() <= ACTOR_CHARS_MAX
    });
    match ok {
        Some(actor) => Ok(Some(crate::actor::normalise_actor(actor))),
        None => Err(DomainError::malformed(format!(
            "field `actor` must be a non-empty string of at most {ACTOR_CHARS_MAX} characters without control or invisible characters (such as a zero-width space)"
        ))),
    }
}

fn expected_version(map: &Map<String, Value>) -> Result<Option<u64>, DomainError> {
    match present(map, "expected_version") {
        None => Ok(None),
        Some(value) => value
            .as_u64()
            .filter(|version| *version <= EXPECTED_VERSION_MAX)
            .map(Some)
            .ok_or_else(|| {
                DomainError::malformed(format!("field `expected_version` must be an integer from 0 (a stream not yet created) to {EXPECTED_VERSION_MAX}"))
            }),
    }
}

fn present<'a>(map: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    map.get(field).filter(|value| !value.is_null())
}

/// RFC 3986 characters only (no `[`/`]`: grantflow takes no IP-literal hosts), every `%`
/// starting an escape of two hex digits, and at most one `#`.
fn is_uri_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let escapes_ok = bytes.iter().enumerate().all(|(index, byte)| {
        *byte != b'%'
            || (bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    let allowed = bytes
        .iter()
        .all(|byte| byte.is_ascii_alphanumeric() || b"-._~:/?#@!$&'()*+,;=%".contains(byte));
    allowed && escapes_ok && bytes.iter().filter(|byte| **byte == b'#').count() <= 1
}

fn categories_expected() -> String {
    format!(
        "a budget category: one of {}",
        CATEGORIES.map(Category::as_str).join(", ")
    )
}

/// Bound on how much of a bad input a message repeats.
const SHOWN_CHARS_MAX: usize = 64;

fn shown(text: &str) -> String {
    let cut: String = text.chars().take(SHOWN_CHARS_MAX).collect();
    if cut.len() < text.len() {
        format!("{cut:?}...")
    } else {
        format!("{cut:?}")
    }
}

fn parse_body(f: &mut Fields) -> Result<Command, DomainError> {
    match f.command {
        "register-fund" => Ok(Command::RegisterFund {
            fund: f.id("fund")?,
            name: f.text("name")?,
            currency: f.currency("currency")?,
            terms: f.terms()?,
            iati_org_ref: f.opt_org_ref("iati_org_ref")?,
        }),
        "record-contribution" => parse_contribution(f),
        "submit-proposal" => parse_proposal(f),
        "reject-proposal" => Ok(Command::RejectProposal {
            grant: f.id("grant")?,
            reason: f.text("reason")?,
        }),
        "approve-grant" => Ok(Command::ApproveGrant {
            grant: f.id("grant")?,
            decided_on: f.date("decided_on")?,
            reported_equivalent: f.reported_equivalent()?,
        }),
        "assign-agency" => Ok(Command::AssignAgency {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            allocation: f.amount("allocation")?,
            lead: f.opt_bool("lead")?.unwrap_or(false),
            budget: f.budget()?,
            currency: f.opt_currency("currency")?,
        }),
        "revise-allocation" => Ok(Command::ReviseAllocation {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            allocation: f.amount("allocation")?,
            reason: f.text("reason")?,
            budget: f.budget()?,
            currency: f.opt_currency("currency")?,
        }),
        "withdraw-agency" => Ok(Command::WithdrawAgency {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            reason: f.text("reason")?,
        }),
        "revise-fund-terms" | "record-pledge" | "record-income" | "attach-document" => {
            parse_fund_command(f)
        }
        "schedule-report" | "submit-report" | "accept-report" | "return-report" => {
            parse_report_command(f)
        }
        _ => parse_grant_command(f),
    }
}

fn parse_fund_command(f: &mut Fields) -> Result<Command, DomainError> {
    match f.command {
        "revise-fund-terms" => {
            let fund = f.id("fund")?;
            let reason = f.text("reason")?;
            let terms = f.terms()?;
            if terms.is_empty() {
                return Err(DomainError::malformed(
                    "revise-fund-terms needs at least one of the fields `admin_fee_percent`, `indirect_max_percent`, `tranche_threshold_percent`, `hold_on_overdue_reports`",
                ));
            }
            Ok(Command::ReviseFundTerms {
                fund,
                reason,
                terms,
            })
        }
        "record-pledge" => Ok(Command::RecordPledge {
            fund: f.id("fund")?,
            pledge: f.id("pledge")?,
            donor: f.id("donor")?,
            amount: f.amount("amount")?,
            signed_on: f.date("signed_on")?,
            due_on: f.opt_date("due_on")?,
            currency: f.opt_currency("currency")?,
        }),
        "record-income" => Ok(Command::RecordIncome {
            fund: f.id("fund")?,
            kind: f.choice(
                "kind",
                IncomeKind::parse,
                "one of \"interest\", \"investment\", \"other\"",
            )?,
            amount: f.amount("amount")?,
            received_on: f.date("received_on")?,
            currency: f.opt_currency("currency")?,
        }),
        _ => parse_attach_document(f),
    }
}

fn parse_attach_document(f: &mut Fields) -> Result<Command, DomainError> {
    let owner = match (present(f.map, "grant"), present(f.map, "fund")) {
        (Some(_), None) => DocumentOwner::Grant(f.id("grant")?),
        (None, Some(_)) => DocumentOwner::Fund(f.id("fund")?),
        _ => {
            return Err(DomainError::malformed(
                "attach-document needs exactly one of the fields `grant` and `fund`: the grant or fund the document is filed on",
            ))
        }
    };
    let document = f.id("document")?;
    let title = f.text("title")?;
    let category = f.string("category", f.required("category")?)?;
    if !is_document_category(&category) {
        return Err(f.wrong(
            "category",
            "an IATI DocumentCategory code: A01 to A12 (activity) or B01 to B18 (organisation), e.g. \"A02\"",
        ));
    }
    Ok(Command::AttachDocument {
        owner,
        document,
        title,
        category,
        sha256: f.sha256("sha256")?,
        url: f.opt_url("url")?,
        issued_on: f.opt_date("issued_on")?,
    })
}

fn parse_report_command(f: &mut Fields) -> Result<Command, DomainError> {
    let grant = f.id("grant")?;
    let report = f.id("report")?;
    match f.command {
        "schedule-report" => {
            let kind = f.choice(
                "kind",
                ReportKind::parse,
                "one of \"progress\", \"financial\", \"final\"",
            )?;
            let period_end = f.date("period_end")?;
            let due_on = f.date("due_on")?;
            if due_on < period_end {
                return Err(DomainError::malformed(format!(
                    "schedule-report: field `due_on` ({due_on}) is before `period_end` ({period_end}); a report falls due after the period it covers"
                )));
            }
            Ok(Command::ScheduleReport {
                grant,
                report,
                kind,
                period_end,
                due_on,
            })
        }
        "submit-report" => Ok(Command::SubmitReport {
            grant,
            report,
            submitted_on: f.date("submitted_on")?,
            document: f.document_ref()?,
        }),
        "accept-report" => Ok(Command::AcceptReport {
            grant,
            report,
            accepted_on: f.date("accepted_on")?,
        }),
        _ => Ok(Command::ReturnReport {
            grant,
            report,
            returned_on: f.date("returned_on")?,
            reason: f.text("reason")?,
        }),
    }
}

fn parse_grant_command(f: &mut Fields) -> Result<Command, DomainError> {
    match f.command {
        "record-disbursement" => Ok(Command::RecordDisbursement {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            amount: f.amount("amount")?,
            paid_on: f.date("paid_on")?,
            reference: f.opt_label("reference")?,
            currency: f.opt_currency("currency")?,
        }),
        "record-expenditure" => Ok(Command::RecordExpenditure {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            amount: f.amount("amount")?,
            period_end: f.date("period_end")?,
            category: f
                .opt_string("category")?
                .map(|text| {
                    Category::parse(&text)
                        .ok_or_else(|| f.wrong("category", &categories_expected()))
                })
                .transpose()?,
            currency: f.opt_currency("currency")?,
        }),
        "record-refund" => Ok(Command::RecordRefund {
            grant: f.id("grant")?,
            agency: f.id("agency")?,
            amount: f.amount("amount")?,
            received_on: f.date("received_on")?,
            reference: f.opt_label("reference")?,
            currency: f.opt_currency("currency")?,
        }),
        "revise-grant" => parse_revise_grant(f),
        "suspend-grant" => Ok(Command::SuspendGrant {
            grant: f.id("grant")?,
            reason: f.text("reason")?,
        }),
        "resume-grant" => Ok(Command::ResumeGrant {
            grant: f.id("grant")?,
            reason: f.text("reason")?,
        }),
        "cancel-grant" => Ok(Command::CancelGrant {
            grant: f.id("grant")?,
            reason: f.text("reason")?,
        }),
        "close-grant" => Ok(Command::CloseGrant {
            grant: f.id("grant")?,
            closed_on: f.date("closed_on")?,
        }),
        _ => Ok(Command::FinalizeGrant {
            grant: f.id("grant")?,
        }),
    }
}

fn parse_contribution(f: &mut Fields) -> Result<Command, DomainError> {
    let fund = f.id("fund")?;
    let donor = f.id("donor")?;
    let amount = f.amount("amount")?;
    let received_on = f.date("received_on")?;
    let currency = f.opt_currency("currency")?;
    let pledge = present(f.map, "pledge")
        .map(|_| f.id("pledge"))
        .transpose()?;
    let original_currency = f.opt_currency("original_currency")?;
    let original_text = f.opt_amount_text("original_amount")?;
    let original = match (original_text, original_currency) {
        (None, None) => None,
        (Some(text), Some(currency)) => f
            .exact(&text, currency, "original_amount")
            .map(|amount| ForeignAmount { amount, currency }),
        (Some(_), None) => {
            return Err(DomainError::malformed(
                "field `original_currency` is required with `original_amount`",
            ))
        }
        (None, Some(_)) => {
            return Err(DomainError::malformed(
                "field `original_amount` is required with `original_currency`",
            ))
        }
    };
    Ok(Command::RecordContribution {
        fund,
        donor,
        amount,
        received_on,
        original,
        pledge,
        currency,
    })
}

fn parse_proposal(f: &mut Fields) -> Result<Command, DomainError> {
    let command = Command::SubmitProposal {
        fund: f.id("fund")?,
        grant: f.id("grant")?,
        title: f.text("title")?,
        amount: f.amount("amount")?,
        country: f.opt_country("country")?,
        regions: f.list("regions", LABEL_CHARS_MAX)?,
        starts_on: f.opt_date("starts_on")?,
        ends_on: f.opt_date("ends_on")?,
        activities: f.list("activities", TEXT_CHARS_MAX)?,
        sectors: f.sectors()?.unwrap_or_default(),
        currency: f.opt_currency("currency")?,
    };
    if let Command::SubmitProposal {
        starts_on: Some(starts_on),
        ends_on: Some(ends_on),
        ..
    } = &command
    {
        if ends_on < starts_on {
            return Err(DomainError::malformed(format!(
                "field `ends_on` ({ends_on}) is before `starts_on` ({starts_on})"
            )));
        }
    }
    Ok(command)
}

fn parse_revise_grant(f: &mut Fields) -> Result<Command, DomainError> {
    let grant = f.id("grant")?;
    let reason = f.text("reason")?;
    let amount = f.opt_amount_text("amount")?;
    let ends_on = f.opt_date("ends_on")?;
    let sectors = f.sectors()?;
    if amount.is_none() && ends_on.is_none() && sectors.is_none() {
        return Err(DomainError::malformed(
            "revise-grant needs field `amount`, `ends_on` or `sectors` (or more than one)",
        ));
    }
    Ok(Command::ReviseGrant {
        grant,
        reason,
        amount: amount.map(|text| f.syntax(&text, "amount")),
        ends_on,
        decided_on: f.opt_date("decided_on")?,
        sectors,
        currency: f.opt_currency("currency")?,
    })
}

/// Reads a command's fields; remembers the first amount syntax error so that every shape
/// problem (`malformed_command`) is reported before it.
struct Fields<'a> {
    command: &'static str,
    map: &'a Map<String, Value>,
    amount_error: Option<DomainError>,
}

impl<'a> Fields<'a> {
    fn required(&self, field: &str) -> Result<&'a Value, DomainError> {
        present(self.map, field).ok_or_else(|| {
            DomainError::malformed(format!("{}: field `{field}` is required", self.command))
        })
    }

    fn wrong(&self, field: &str, expected: &str) -> DomainError {
        DomainError::malformed(format!(
            "{}: field `{field}` must be {expected}",
            self.command
        ))
    }

    fn string(&self, field: &str, value: &Value) -> Result<String, DomainError> {
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.wrong(field, "a string"))
    }

    fn id(&self, field: &str) -> Result<String, DomainError> {
        let text = self.string(field, self.required(field)?)?;
        if is_valid_id(&text) {
            return Ok(text);
        }
        Err(self.wrong(field, "an id of 1 to 64 letters, digits, '-', '_' or '.'"))
    }

    fn text(&self, field: &str) -> Result<String, DomainError> {
        let text = self.string(field, self.required(field)?)?;
        self.check_text(field, text, TEXT_CHARS_MAX)
    }

    fn check_text(
        &self,
        field: &str,
        text: String,
        chars_max: usize,
    ) -> Result<String, DomainError> {
        if text.trim().is_empty() {
            return Err(self.wrong(field, "a non-empty string"));
        }
        if text.chars().count() > chars_max {
            return Err(self.wrong(field, &format!("at most {chars_max} characters")));
        }
        if text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(self.wrong(field, "text without control characters"));
        }
        Ok(text)
    }

    fn opt_label(&self, field: &str) -> Result<Option<String>, DomainError> {
        let Some(value) = present(self.map, field) else {
            return Ok(None);
        };
        let text = self.string(field, value)?;
        self.check_text(field, text, LABEL_CHARS_MAX).map(Some)
    }

    fn list(&self, field: &str, chars_max: usize) -> Result<Vec<String>, DomainError> {
        let Some(value) = present(self.map, field) else {
            return Ok(Vec::new());
        };
        let items = value
            .as_array()
            .ok_or_else(|| self.wrong(field, "an array of strings"))?;
        if items.len() > LIST_ITEMS_MAX {
            return Err(self.wrong(
                field,
                &format!("an array of at most {LIST_ITEMS_MAX} items"),
            ));
        }
        items
            .iter()
            .map(|item| {
                let text = item
                    .as_str()
                    .ok_or_else(|| self.wrong(field, "an array of strings"))?;
                self.check_text(field, text.to_string(), chars_max)
            })
            .collect()
    }

    fn date(&self, field: &str) -> Result<Date, DomainError> {
        let value = self.required(field)?;
        self.date_value(field, value)
    }

    fn opt_date(&self, field: &str) -> Result<Option<Date>, DomainError> {
        present(self.map, field)
            .map(|value| self.date_value(field, value))
            .transpose()
    }

    fn date_value(&self, field: &str, value: &Value) -> Result<Date, DomainError> {
        value
            .as_str()
            .and_then(Date::parse)
            .ok_or_else(|| self.wrong(field, "a real calendar date written YYYY-MM-DD"))
    }

    fn currency(&self, field: &str) -> Result<Currency, DomainError> {
        let value = self.required(field)?;
        self.currency_value(field, value)
    }

    fn opt_currency(&self, field: &str) -> Result<Option<Currency>, DomainError> {
        present(self.map, field)
            .map(|value| self.currency_value(field, value))
            .transpose()
    }

    fn currency_value(&self, field: &str, value: &Value) -> Result<Currency, DomainError> {
        value
            .as_str()
            .and_then(Currency::parse)
            .ok_or_else(|| self.wrong(field, "an ISO 4217 currency code such as \"USD\""))
    }

    fn opt_country(&self, field: &str) -> Result<Option<Country>, DomainError> {
        present(self.map, field)
            .map(|value| {
                value.as_str().and_then(Country::parse).ok_or_else(|| {
                    self.wrong(field, "an ISO 3166-1 alpha-2 country code such as \"MX\"")
                })
            })
            .transpose()
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, DomainError> {
        present(self.map, field)
            .map(|value| {
                value
                    .as_bool()
                    .ok_or_else(|| self.wrong(field, "true or false"))
            })
            .transpose()
    }

    /// A required amount: its text now (shape), its syntax checked but reported later.
    fn amount(&mut self, field: &str) -> Result<DecimalText, DomainError> {
        let value = self.required(field)?;
        let text = self.amount_text(field, value)?;
        Ok(self.syntax(&text, field))
    }

    fn opt_amount_text(&mut self, field: &str) -> Result<Option<String>, DomainError> {
        match present(self.map, field) {
            None => Ok(None),
            Some(value) => self.amount_text(field, value).map(Some),
        }
    }

    /// The text of an amount; a JSON number is an `invalid_amount` (remembered), any other
    /// non-string a shape error.
    fn amount_text(&mut self, field: &str, value: &Value) -> Result<String, DomainError> {
        match value {
            Value::String(text) => Ok(text.clone()),
            Value::Number(number) => {
                self.remember(DomainError::invalid_amount(format!(
                    "{}: field `{field}` is the JSON number {number}; write amounts as strings, e.g. \"{number}\"",
                    self.command
                )));
                Ok("1".to_string())
            }
            _ => Err(self.wrong(
                field,
                "a decimal amount written as a string, e.g. \"1000.00\"",
            )),
        }
    }

    fn syntax(&mut self, text: &str, field: &str) -> DecimalText {
        match DecimalText::parse(text, &format!("{}: field `{field}`", self.command)) {
            Ok(decimal) => decimal,
            Err(error) => {
                self.remember(error);
                DecimalText {
                    int: "1".to_string(),
                    frac: String::new(),
                }
            }
        }
    }

    /// An amount whose currency the command itself names, exact now.
    fn exact(
        &mut self,
        text: &str,
        currency: Currency,
        field: &str,
    ) -> Option<crate::money::Amount> {
        let decimal = self.syntax(text, field);
        let command = self.command;
        match decimal.to_amount_in_named(currency, || format!("{command}: field `{field}`")) {
            Ok(amount) => Some(amount),
            Err(error) => {
                self.remember(error);
                None
            }
        }
    }

    fn reported_equivalent(&mut self) -> Result<Option<ForeignAmount>, DomainError> {
        let field = "reported_equivalent";
        let Some(value) = present(self.map, field) else {
            return Ok(None);
        };
        let object = value
            .as_object()
            .ok_or_else(|| self.wrong(field, "an object {\"amount\", \"currency\"}"))?;
        if let Some(key) = object
            .keys()
            .find(|key| *key != "amount" && *key != "currency")
        {
            return Err(self.wrong(
                field,
                &format!(
                    "an object with only `amount` and `currency`, not {}",
                    shown(key)
                ),
            ));
        }
        let currency = object
            .get("currency")
            .and_then(Value::as_str)
            .and_then(Currency::parse)
            .ok_or_else(|| {
                self.wrong("reported_equivalent.currency", "an ISO 4217 currency code")
            })?;
        let amount_value = object
            .get("amount")
            .filter(|value| !value.is_null())
            .ok_or_else(|| {
                DomainError::malformed(format!(
                    "{}: field `reported_equivalent.amount` is required",
                    self.command
                ))
            })?;
        let text = self.amount_text("reported_equivalent.amount", amount_value)?;
        Ok(self
            .exact(&text, currency, "reported_equivalent.amount")
            .map(|amount| ForeignAmount { amount, currency }))
    }

    fn opt_string(&self, field: &str) -> Result<Option<String>, DomainError> {
        present(self.map, field)
            .map(|value| self.string(field, value))
            .transpose()
    }

    /// A required string that names one of a small set of values.
    fn choice<T>(
        &self,
        field: &str,
        parse: impl Fn(&str) -> Option<T>,
        expected: &str,
    ) -> Result<T, DomainError> {
        let text = self.string(field, self.required(field)?)?;
        parse(&text).ok_or_else(|| self.wrong(field, expected))
    }

    fn opt_percent(&self, field: &str) -> Result<Option<Percent>, DomainError> {
        present(self.map, field)
            .map(|value| {
                value.as_str().and_then(Percent::parse).ok_or_else(|| {
                    self.wrong(
                        field,
                        "a percentage from \"0\" to \"100\" written as a string with at most 2 decimals, e.g. \"1.00\"",
                    )
                })
            })
            .transpose()
    }

    /// The fund's terms, each optional.
    fn terms(&self) -> Result<TermsChange, DomainError> {
        Ok(TermsChange {
            admin_fee_percent: self.opt_percent("admin_fee_percent")?,
            indirect_max_percent: self.opt_percent("indirect_max_percent")?,
            tranche_threshold_percent: self.opt_percent("tranche_threshold_percent")?,
            hold_on_overdue_reports: self.opt_bool("hold_on_overdue_reports")?,
        })
    }

    /// A budget: an object from category to amount; "0" is allowed here.
    fn budget(&mut self) -> Result<Option<BudgetText>, DomainError> {
        let Some(value) = present(self.map, "budget") else {
            return Ok(None);
        };
        let object = value.as_object().ok_or_else(|| {
            self.wrong(
                "budget",
                "an object from category to amount, e.g. {\"staff\": \"1000.00\", \"indirect\": \"70.00\"}",
            )
        })?;
        let mut budget = BudgetText::new();
        for (key, value) in object {
            let Some(category) = Category::parse(key) else {
                return Err(DomainError::malformed(format!(
                    "{}: field `budget` has an unknown category {}; {}",
                    self.command,
                    shown(key),
                    categories_expected()
                )));
            };
            let text = self.amount_text(category.budget_field(), value)?;
            budget.push((category, self.budget_amount(&text, category.budget_field())));
        }
        Ok(Some(budget))
    }

    /// A budget amount: zero written plainly ("0", "0.00") is allowed; anything else is an
    /// amount's syntax.
    fn budget_amount(&mut self, text: &str, field: &str) -> DecimalText {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let zero = !int.is_empty()
            && (text.contains('.') != frac.is_empty())
            && int.bytes().chain(frac.bytes()).all(|b| b == b'0');
        if zero {
            return DecimalText {
                int: "0".to_string(),
                frac: frac.to_string(),
            };
        }
        self.syntax(text, field)
    }

    /// `sectors`: a list of `{"code", "percentage"}`, each code an active DAC 5-digit purpose
    /// code (IATI Sector vocabulary 1), each percentage above 0 with at most 2 decimals, the
    /// codes distinct and the percentages summing to exactly 100.
    fn sectors(&self) -> Result<Option<Vec<SectorShare>>, DomainError> {
        let field = "sectors";
        let Some(value) = present(self.map, field) else {
            return Ok(None);
        };
        let expected =
            "a list of {\"code\": \"15190\", \"percentage\": \"100\"} whose percentages sum to 100";
        let items = value
            .as_array()
            .ok_or_else(|| self.wrong(field, expected))?;
        if items.is_empty() || items.len() > LIST_ITEMS_MAX {
            return Err(self.wrong(
                field,
                &format!("a list of 1 to {LIST_ITEMS_MAX} sectors whose percentages sum to 100"),
            ));
        }
        let mut sectors: Vec<SectorShare> = Vec::with_capacity(items.len());
        for item in items {
            let object = item
                .as_object()
                .ok_or_else(|| self.wrong(field, expected))?;
            if let Some(key) = object
                .keys()
                .find(|key| *key != "code" && *key != "percentage")
            {
                return Err(self.wrong(
                    field,
                    &format!(
                        "a list of objects with only `code` and `percentage`, not {}",
                        shown(key)
                    ),
                ));
            }
            let code = object.get("code").and_then(Value::as_str).ok_or_else(|| {
                self.wrong(
                    "sectors.code",
                    "a DAC 5-digit purpose code written as a string, e.g. \"15190\"",
                )
            })?;
            if !crate::iati_codes::is_sector_code(code) {
                return Err(self.wrong(
                    "sectors.code",
                    &format!(
                        "an active DAC 5-digit purpose code of IATI's Sector codelist (vocabulary 1), e.g. \"15190\"; {} is not one",
                        shown(code)
                    ),
                ));
            }
            if sectors.iter().any(|sector| sector.code == code) {
                return Err(self.wrong(
                    field,
                    &format!("a list naming each code once; {code} is named twice"),
                ));
            }
            let percentage = object
                .get("percentage")
                .and_then(Value::as_str)
                .and_then(Percent::parse)
                .filter(|percent| *percent > Percent::ZERO)
                .ok_or_else(|| {
                    self.wrong(
                        "sectors.percentage",
                        "a percentage above 0 and at most 100, written as a string with at most 2 decimals, e.g. \"60\"",
                    )
                })?;
            sectors.push(SectorShare {
                code: code.to_string(),
                percentage,
            });
        }
        let total: u32 = sectors
            .iter()
            .map(|sector| u32::from(sector.percentage.hundredths()))
            .sum();
        if total != u32::from(Percent::HUNDRED.hundredths()) {
            return Err(self.wrong(
                field,
                &format!(
                    "a list whose percentages sum to exactly 100; these sum to {}.{:02}",
                    total / 100,
                    total % 100
                ),
            ));
        }
        Ok(Some(sectors))
    }

    /// An IATI organisation identifier: an active registration agency's code, `-`, and the
    /// organisation's id there (e.g. `XM-DAC-41301`); no spaces nor `/`, `&`, `|`, `?`.
    fn opt_org_ref(&self, field: &str) -> Result<Option<String>, DomainError> {
        let Some(text) = self.opt_string(field)? else {
            return Ok(None);
        };
        let clean = !text.is_empty()
            && text.len() <= 128
            && text
                .chars()
                .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '&' | '|' | '?'));
        if !clean {
            return Err(self.wrong(
                field,
                "an IATI organisation identifier of at most 128 printable ASCII characters, without spaces, /, &, | or ?",
            ));
        }
        if crate::iati_codes::organisation_agency(&text).is_none() {
            return Err(self.wrong(
                field,
                &format!(
                    "an IATI organisation identifier that starts with a registration agency's code from IATI's OrganisationRegistrationAgency codelist and `-` (e.g. \"XM-DAC-41301\"); {} starts with none",
                    shown(&text)
                ),
            ));
        }
        Ok(Some(text))
    }

    fn sha256(&self, field: &str) -> Result<String, DomainError> {
        let text = self.string(field, self.required(field)?)?;
        if is_sha256_hex(&text) {
            return Ok(text);
        }
        Err(self.wrong(
            field,
            "a SHA-256 written as 64 lowercase hexadecimal digits",
        ))
    }

    fn opt_url(&self, field: &str) -> Result<Option<String>, DomainError> {
        let Some(text) = self.opt_string(field)? else {
            return Ok(None);
        };
        let well_formed = (text.starts_with("https://") || text.starts_with("http://"))
            && text.len() <= 2048
            && text.len() > "https://".len()
            && is_uri_text(&text);
        if well_formed {
            return Ok(Some(text));
        }
        Err(self.wrong(
            field,
            "an http:// or https:// address of at most 2048 bytes, written with the characters of RFC 3986 (escape others as %XX)",
        ))
    }

    /// submit-report's optional `document`: `{"title", "sha256"}`.
    fn document_ref(&self) -> Result<Option<DocumentRef>, DomainError> {
        let field = "document";
        let Some(value) = present(self.map, field) else {
            return Ok(None);
        };
        let expected = "an object {\"title\": ..., \"sha256\": ...}";
        let object = value
            .as_object()
            .ok_or_else(|| self.wrong(field, expected))?;
        if let Some(key) = object
            .keys()
            .find(|key| *key != "title" && *key != "sha256")
        {
            return Err(self.wrong(
                field,
                &format!(
                    "an object with only `title` and `sha256`, not {}",
                    shown(key)
                ),
            ));
        }
        let title = object
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| self.wrong("document.title", "a non-empty string"))?;
        let title = self.check_text("document.title", title.to_string(), TEXT_CHARS_MAX)?;
        let sha256 = object
            .get("sha256")
            .and_then(Value::as_str)
            .filter(|text| is_sha256_hex(text))
            .ok_or_else(|| {
                self.wrong(
                    "document.sha256",
                    "a SHA-256 written as 64 lowercase hexadecimal digits",
                )
            })?;
        Ok(Some(DocumentRef {
            title,
            sha256: sha256.to_string(),
        }))
    }

    fn remember(&mut self, error: DomainError) {
        if self.amount_error.is_none() {
            self.amount_error = Some(error);
        }
    }
}
