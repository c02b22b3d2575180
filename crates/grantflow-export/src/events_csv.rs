//! `grantflow export --format csv`: one row per event of the log, with the figures of its
//! grant and fund after it, for an auditor's spreadsheet.

use std::io::Write;

use grantflow_domain::{command_of_event, Date, Event, Money, World};
use grantflow_engine::query::AsOf;
use grantflow_store::{Envelope, EventStore};

use crate::fold::{fold_log, ExportError};

/// The header row, in column order.
///
/// `amount` is the event's own figure (the contribution, the requested or approved amount,
/// the new allocation, commitment or amount of a revision, the movement's amount);
/// `previous_amount` the figure before a revision. `business_date` is the date the document
/// gives (received_on, decided_on, paid_on, period_end, closed_on). `title` holds a fund's
/// name or a proposal's title. The `grant_*` and `fund_*` columns are the figures after the
/// event (empty when the event concerns no grant or no fund). Amounts are plain decimals in
/// the fund's currency, dates ISO 8601, `recorded_at` RFC 3339 UTC.
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
];

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
            .write_record(row(envelope, event, world))
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
            ..
        } => Fields {
            donor: Some(donor),
            amount: Some(*amount),
            business_date: Some(*received_on),
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
            ..
        } => Fields {
            agency: Some(agency),
            amount: Some(*amount),
            business_date: Some(*period_end),
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
        _ => Fields::default(),
    }
}

fn money(value: Option<Money>) -> String {
    value.map_or_else(String::new, |money| money.amount.format(money.decimals))
}

fn text(value: Option<&str>) -> String {
    value.unwrap_or_default().to_string()
}

fn row(envelope: &Envelope, event: &Event, world: &World) -> Vec<String> {
    let grant = event.grant();
    let fund = match event {
        Event::FundRegistered { fund, .. } | Event::ContributionRecorded { fund, .. } => {
            Some(fund.clone())
        }
        _ => grant.and_then(|grant| world.grant_fund(grant)),
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
        fields
            .business_date
            .map_or_else(String::new, |date| date.to_string()),
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
        None => row.resize(row.len() + 6, String::new()),
    }
    match fund_view {
        Some(view) => row.extend([view.received, view.committed, view.available, view.cash]),
        None => row.resize(row.len() + 4, String::new()),
    }
    debug_assert_eq!(row.len(), CSV_COLUMNS.len());
    row
}
