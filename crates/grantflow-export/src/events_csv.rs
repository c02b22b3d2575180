//! `grantflow export --format csv`: one row per event of the log, with the figures of its
//! grant and fund after it, for an auditor's spreadsheet.

use std::io::Write;

use grantflow_domain::{command_of_event, Date, Event, Money, Percent, World};
use grantflow_engine::query::AsOf;
use grantflow_store::{Envelope, EventStore};

use crate::fold::{fold_log, ExportError};

/// The header row, in column order.
///
/// `amount` is the event's own figure (the contribution, the pledge, the fee, the income,
/// the requested or approved amount, the new allocation, commitment or amount of a revision,
/// the movement's amount); `previous_amount` the figure before a revision. `donor` names the
/// donor of a contribution, a pledge or the contribution a fee was charged on.
/// `business_date` is the date the document gives (received_on, signed_on, decided_on,
/// paid_on, period_end, closed_on, submitted_on, accepted_on, returned_on, issued_on; a
/// scheduled report's period_end). `title` holds a fund's name, a proposal's title, a
/// document's title or the title of a submitted report's file. `reason` is the reason given
/// (also of a terms revision and of a returned report); `reference` a transfer reference.
///
/// Columns added with part two (docs/domain.md, "how a real secretariat works") come after
/// the first figures, so that the earlier columns keep their places: `pledge` (the pledge
/// recorded, or the pledge a contribution pays), `report` (the report of a report event),
/// `document` (the document attached), `category` (an expenditure's budget category, or a
/// document's IATI DocumentCategory code), `kind` (the kind of income or of a scheduled
/// report), `percent` (a fee's percentage), `due_on` (when a pledge or a scheduled report
/// is due), then the figures `fund_pledged`, `fund_fees` and `fund_income`. A fee's row
/// follows the row of the contribution it was charged on, with the same `command_id`.
///
/// The `grant_*` and `fund_*` columns are the figures after the event (empty when the event
/// concerns no grant or no fund); `fund_available` is received + income - fees -
/// committed, `fund_cash` received + income - fees - disbursed + refunded. Amounts are
/// plain decimals in the fund's currency, percentages with 2 decimals, dates ISO 8601,
/// `recorded_at` RFC 3339 UTC.
pub const CSV_COLUMNS: &[&str] = &[
    "position",
    "recorded_at",
    "actor",
    "command_id",
    "stream",
    "type",
    "command",
    "grant",
    "fund",
    "agency",
    "donor",
    "amount",
    "previous_amount",
    "currency",
    "business_date",
    "title",
    "reason",
    "reference",
    "grant_status",
    "grant_amount",
    "grant_allocated",
    "grant_disbursed",
    "grant_expended",
    "grant_refunded",
    "fund_received",
    "fund_committed",
    "fund_available",
    "fund_cash",
    "pledge",
    "report",
    "document",
    "category",
    "kind",
    "percent",
    "due_on",
    "fund_pledged",
    "fund_fees",
    "fund_income",
];

/// How many of [`CSV_COLUMNS`] hold the grant's figures (`grant_status` to `grant_refunded`).
const GRANT_FIGURE_COLUMNS: usize = 6;
/// How many of [`CSV_COLUMNS`] hold the fund's first figures (`fund_received` to `fund_cash`).
const FUND_FIGURE_COLUMNS: usize = 4;
/// How many of [`CSV_COLUMNS`] hold the fund's part-two figures (`fund_pledged` to
/// `fund_income`).
const FUND_PART_TWO_FIGURE_COLUMNS: usize = 3;

/// Writes every event of the log as one CSV row (RFC 4180: a header row, fields quoted when
/// they hold a comma, quote or line break, CRLF line ends) with the columns of
/// [`CSV_COLUMNS`]. Returns the number of event rows written.
pub async fn write_events_csv(
    store: &dyn EventStore,
    out: &mut (dyn Write + Send),
) -> Result<u64, ExportError> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    writer.write_record(CSV_COLUMNS).map_err(csv_error)?;
    let mut rows = 0u64;
    fold_log(store, &AsOf::Head, |envelope, event, world| {
        writer
            .write_record(
                row(envelope, event, world)
                    .iter()
                    .map(|cell| spreadsheet_safe(cell).into_owned()),
            )
            .map_err(csv_error)?;
        rows += 1;
        Ok(())
    })
    .await?;
    writer.flush()?;
    Ok(rows)
}

fn csv_error(error: csv::Error) -> ExportError {
    match error.into_kind() {
        csv::ErrorKind::Io(error) => ExportError::Io(error),
        other => ExportError::Io(std::io::Error::other(format!("{other:?}"))),
    }
}

/// The event's own fields that have a column.
#[derive(Default)]
struct Fields<'a> {
    agency: Option<&'a str>,
    donor: Option<&'a str>,
    amount: Option<Money>,
    previous_amount: Option<Money>,
    business_date: Option<Date>,
    title: Option<&'a str>,
    reason: Option<&'a str>,
    reference: Option<&'a str>,
    pledge: Option<&'a str>,
    report: Option<&'a str>,
    document: Option<&'a str>,
    category: Option<&'a str>,
    kind: Option<&'static str>,
    percent: Option<Percent>,
    due_on: Option<Date>,
}

fn fields(event: &Event) -> Fields<'_> {
    match event {
        Event::FundRegistered { name, .. } => Fields {
            title: Some(name),
            ..Fields::default()
        },
        Event::ContributionRecorded {
            donor,
            amount,
            received_on,
            pledge,
            ..
        } => Fields {
            donor: Some(donor),
            amount: Some(*amount),
            business_date: Some(*received_on),
            pledge: pledge.as_deref(),
            ..Fields::default()
        },
        Event::GrantProposed {
            title, requested, ..
        } => Fields {
            title: Some(title),
            amount: Some(*requested),
            ..Fields::default()
        },
        Event::GrantRejected { reason, .. }
        | Event::GrantSuspended { reason, .. }
        | Event::GrantResumed { reason, .. }
        | Event::GrantCancelled { reason, .. } => Fields {
            reason: Some(reason),
            ..Fields::default()
        },
        Event::GrantApproved {
            amount, decided_on, ..
        } => Fields {
            amount: Some(*amount),
            business_date: Some(*decided_on),
            ..Fields::default()
        },
        Event::GrantCommitted { commitment, .. } => Fields {
            amount: Some(*commitment),
            ..Fields::default()
        },
        Event::AgencyAssigned {
            agency, allocation, ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*allocation),
            ..Fields::default()
        },
        Event::AllocationRevised {
            agency,
            previous_allocation,
            allocation,
            reason,
            ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*allocation),
            previous_amount: Some(*previous_allocation),
            reason: Some(reason),
            ..Fields::default()
        },
        Event::AgencyWithdrawn {
            agency,
            allocation,
            reason,
            ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*allocation),
            reason: Some(reason),
            ..Fields::default()
        },
        _ => movement_fields(event),
    }
}

/// The fund events of part two: terms, pledges, fees, income, fund documents.
fn fund_part_two_fields(event: &Event) -> Fields<'_> {
    match event {
        Event::TermsRevised { reason, .. } => Fields {
            reason: Some(reason),
            ..Fields::default()
        },
        Event::PledgeRecorded {
            pledge,
            donor,
            amount,
            signed_on,
            due_on,
            ..
        } => Fields {
            donor: Some(donor),
            amount: Some(*amount),
            business_date: Some(*signed_on),
            pledge: Some(pledge),
            due_on: *due_on,
            ..Fields::default()
        },
        Event::FeeCharged {
            donor,
            percent,
            amount,
            received_on,
            ..
        } => Fields {
            donor: Some(donor),
            amount: Some(*amount),
            business_date: Some(*received_on),
            percent: Some(*percent),
            ..Fields::default()
        },
        Event::IncomeRecorded {
            kind,
            amount,
            received_on,
            ..
        } => Fields {
            amount: Some(*amount),
            business_date: Some(*received_on),
            kind: Some(kind.as_str()),
            ..Fields::default()
        },
        Event::FundDocumentAttached {
            document,
            title,
            category,
            issued_on,
            ..
        }
        | Event::GrantDocumentAttached {
            document,
            title,
            category,
            issued_on,
            ..
        } => Fields {
            business_date: *issued_on,
            title: Some(title),
            document: Some(document),
            category: Some(category),
            ..Fields::default()
        },
        _ => report_fields(event),
    }
}

/// The report events of part two.
fn report_fields(event: &Event) -> Fields<'_> {
    match event {
        Event::ReportScheduled {
            report,
            kind,
            period_end,
            due_on,
            ..
        } => Fields {
            business_date: Some(*period_end),
            report: Some(report),
            kind: Some(kind.as_str()),
            due_on: Some(*due_on),
            ..Fields::default()
        },
        Event::ReportSubmitted {
            report,
            submitted_on,
            document,
            ..
        } => Fields {
            business_date: Some(*submitted_on),
            title: document.as_ref().map(|document| document.title.as_str()),
            report: Some(report),
            ..Fields::default()
        },
        Event::ReportAccepted {
            report,
            accepted_on,
            ..
        } => Fields {
            business_date: Some(*accepted_on),
            report: Some(report),
            ..Fields::default()
        },
        Event::ReportReturned {
            report,
            returned_on,
            reason,
            ..
        } => Fields {
            business_date: Some(*returned_on),
            reason: Some(reason),
            report: Some(report),
            ..Fields::default()
        },
        _ => Fields::default(),
    }
}

fn movement_fields(event: &Event) -> Fields<'_> {
    match event {
        Event::DisbursementRecorded {
            agency,
            amount,
            paid_on: date,
            reference,
            ..
        }
        | Event::RefundRecorded {
            agency,
            amount,
            received_on: date,
            reference,
            ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*amount),
            business_date: Some(*date),
            reference: reference.as_deref(),
            ..Fields::default()
        },
        Event::ExpenditureRecorded {
            agency,
            amount,
            period_end,
            category,
            ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*amount),
            business_date: Some(*period_end),
            category: category.map(|category| category.as_str()),
            ..Fields::default()
        },
        Event::GrantRevised {
            previous_amount,
            amount,
            reason,
            decided_on,
            ..
        } => Fields {
            amount: Some(*amount),
            previous_amount: Some(*previous_amount),
            business_date: *decided_on,
            reason: Some(reason),
            ..Fields::default()
        },
        Event::CommitmentRevised {
            previous_commitment,
            commitment,
            ..
        } => Fields {
            amount: Some(*commitment),
            previous_amount: Some(*previous_commitment),
            ..Fields::default()
        },
        Event::GrantClosed { closed_on, .. } => Fields {
            business_date: Some(*closed_on),
            ..Fields::default()
        },
        _ => fund_part_two_fields(event),
    }
}

fn money(value: Option<Money>) -> String {
    value.map_or_else(String::new, |money| money.amount.format(money.decimals))
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

fn date(value: Option<Date>) -> String {
    value.map_or_else(String::new, |date| date.to_string())
}

fn row(envelope: &Envelope, event: &Event, world: &World) -> Vec<String> {
    let grant = event.grant();
    let fund = match event.fund_stream_id() {
        Some(fund) => Some(fund.to_string()),
        None => grant.and_then(|grant| world.grant_fund(grant)),
    };
    let fields = fields(event);
    let grant_view = grant.and_then(|grant| world.grant_view(grant));
    let fund_view = fund.as_deref().and_then(|fund| world.fund_view(fund));
    let currency = fund_view
        .as_ref()
        .map(|view| view.currency.clone())
        .or_else(|| grant_view.as_ref().map(|view| view.currency.clone()));
    let mut row = vec![
        envelope.position.to_string(),
        envelope.recorded_at.clone(),
        envelope.actor.clone(),
        envelope.command_id.clone(),
        envelope.stream.clone(),
        envelope.event_type.clone(),
        command_of_event(event).to_string(),
        text(grant),
        fund.unwrap_or_default(),
        text(fields.agency),
        text(fields.donor),
        money(fields.amount),
        money(fields.previous_amount),
        currency.unwrap_or_default(),
        date(fields.business_date),
        text(fields.title),
        text(fields.reason),
        text(fields.reference),
    ];
    match grant_view {
        Some(view) => row.extend([
            view.status,
            view.amount,
            view.allocated,
            view.disbursed,
            view.expended,
            view.refunded,
        ]),
        None => row.resize(row.len() + GRANT_FIGURE_COLUMNS, String::new()),
    }
    let (first_figures, part_two_figures) = match fund_view {
        Some(view) => (
            vec![view.received, view.committed, view.available, view.cash],
            vec![view.pledged, view.fees, view.income],
        ),
        None => (
            vec![String::new(); FUND_FIGURE_COLUMNS],
            vec![String::new(); FUND_PART_TWO_FIGURE_COLUMNS],
        ),
    };
    row.extend(first_figures);
    row.extend([
        text(fields.pledge),
        text(fields.report),
        text(fields.document),
        text(fields.category),
        text(fields.kind),
        fields
            .percent
            .map_or_else(String::new, |percent| percent.to_string()),
        date(fields.due_on),
    ]);
    row.extend(part_two_figures);
    debug_assert_eq!(row.len(), CSV_COLUMNS.len());
    row
}

/// A CSV cell as a spreadsheet may safely open it (OWASP's rule against formula injection): a
/// cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`,
/// so that it is read as text, unless it is a plain number (a negative amount such as
/// `-300.00` stays a number).
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if !risky || is_plain_number(cell) {
        return std::borrow::Cow::Borrowed(cell);
    }
    std::borrow::Cow::Owned(format!("'{cell}"))
}

/// `-?digits(.digits)?`
fn is_plain_number(cell: &str) -> bool {
    let digits = cell.strip_prefix('-').unwrap_or(cell);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !int.is_empty()
        && !frac.is_empty()
        && int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod spreadsheet_tests {
    use super::spreadsheet_safe;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        for (cell, safe) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("-300.00", "-300.00"),
            ("-5", "-5"),
            ("plain text", "plain text"),
            ("", ""),
        ] {
            assert_eq!(spreadsheet_safe(cell), safe, "{cell:?}");
        }
    }
}
