//! The IATI 2.03 organisation file (`iati-organisations`): the publisher of the activities
//! file as one organisation, with its total budget and its total expenditure per calendar
//! year, in the element order the schema's `xsd:sequence` enforces.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufWriter, Write};

use chrono::{Datelike, NaiveDate, Utc};
use grantflow_domain::{Amount, Date, Event, FundState, GrantState, Status, World};
use grantflow_store::{Envelope, EventStore};

use crate::fold::{fold_log, ExportError};
use crate::iati::{
    generated_datetime, last_updated_text, visible_or, IatiOptions, IATI_VERSION,
    NARRATIVE_LANGUAGE, REPORTING_ORG_TYPE, WRITE_BUFFER_BYTES,
};
use crate::publisher::{check_reporting_org, reporting_org_of};
use crate::shares::{calendar_year_periods, split_by_days, Period};
use crate::xml::XmlWriter;

/// IATI BudgetStatus 2, Committed: the total budget is what the fund's grants hold of it.
const BUDGET_STATUS_COMMITTED: &str = "2";

/// What an organisation file wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganisationSummary {
    /// The last log position folded in (the export's moment).
    pub position: u64,
    /// The organisation's identifier (its reporting-org ref).
    pub organisation: String,
    /// Funds the organisation's figures cover.
    pub funds: u64,
    /// `total-budget` elements written (one per calendar year and currency).
    pub budgets: u64,
    /// `total-expenditure` elements written (one per calendar year and currency).
    pub expenditures: u64,
}

/// Writes the IATI 2.03 organisation file of the log as of `options.as_of` to `out`: one
/// `iati-organisation`, the publisher of the activities file ([`crate::write_iati`]) with the
/// same identifier (`options.reporting_org`, else the funds' `iati_org_ref`, which must agree),
/// covering every fund. `options.grants` must be empty (the file covers every fund).
///
/// - organisation-identifier and reporting-org/@ref: the identifier; name and reporting-org's
///   narrative: the fund's name (the funds' names, joined by `; `, for several);
///   reporting-org/@type [`REPORTING_ORG_TYPE`]; `default-currency`: the first fund's currency
///   (a value in another fund's currency carries `@currency`).
/// - total-budget (status 2, committed), per calendar year: what the grants hold of their
///   funds (their commitment, docs/domain.md), each grant's shared over its planned period
///   (starts_on to ends_on) by days, so that a year gets the days it holds (integer parts that
///   add up to the commitment exactly); a grant without a planned period counts whole in the
///   year of its planned start, else of its approval. Proposals and rejected proposals hold
///   nothing. With several funds, a `budget-line` per fund (@ref the fund id).
/// - total-expenditure, per calendar year: the money the funds paid out, their disbursements
///   less the refunds received back, by the year of `paid_on` and `received_on` (what
///   agencies then spend is their own expenditure, in the activities file); with several
///   funds, an `expense-line` per fund.
/// - Each period runs from 1 January to 31 December (IATI rule 7.5.3: at most a year); its
///   value is dated on the period's first day. Years without anything are left out.
/// - last-updated-datetime: the time the latest event of a fund or its grants was recorded
///   (never later than the moment of the export).
pub async fn write_iati_organisation(
    store: &dyn EventStore,
    options: &IatiOptions,
    out: &mut (dyn Write + Send),
) -> Result<OrganisationSummary, ExportError> {
    let generated_at = generated_datetime(options.generated_at.as_deref())?;
    if !options.grants.is_empty() {
        return Err(ExportError::BadOption(
            "the organisation file covers every fund: choosing grants does not apply to it".into(),
        ));
    }
    if let Some(reporting_org) = &options.reporting_org {
        check_reporting_org(reporting_org)?;
    }
    let mut ledger = SpendLedger::default();
    let model = fold_log(store, &options.as_of, |envelope, event, world| {
        ledger.record(envelope, event, world);
        Ok(())
    })
    .await?;
    let world = &model.world;
    let funds: Vec<&FundState> = world
        .fund_ids()
        .iter()
        .filter_map(|fund| world.fund(fund))
        .collect();
    if funds.is_empty() {
        return Err(ExportError::NothingToExport {
            position: model.position,
        });
    }
    let identifier = reporting_org_of(options.reporting_org.as_deref(), &funds)?;
    let figures = Figures::new(world, &funds, &ledger);
    let mut xml = XmlWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, out));
    let mut summary = OrganisationSummary {
        position: model.position,
        organisation: identifier.to_string(),
        funds: funds.len() as u64,
        ..OrganisationSummary::default()
    };
    xml.declaration()?;
    xml.comment(&format!(
        "grantflow IATI organisation file as of log position {}",
        model.position
    ))?;
    xml.start(
        "iati-organisations",
        &[
            ("version", IATI_VERSION),
            ("generated-datetime", &generated_at),
        ],
    )?;
    let default_currency = funds[0].currency.code();
    let last_updated = last_updated_text(&ledger.last_updated, Utc::now());
    let mut attributes = Vec::with_capacity(3);
    if !last_updated.is_empty() {
        attributes.push(("last-updated-datetime", last_updated.as_str()));
    }
    attributes.push(("xml:lang", NARRATIVE_LANGUAGE));
    attributes.push(("default-currency", default_currency));
    xml.start("iati-organisation", &attributes)?;
    xml.text("organisation-identifier", &[], identifier)?;
    let name = funds
        .iter()
        .map(|fund| visible_or(&fund.name, &fund.fund))
        .collect::<Vec<_>>()
        .join("; ");
    xml.narrative_in("name", &[], &name)?;
    xml.narrative_in(
        "reporting-org",
        &[("ref", identifier), ("type", REPORTING_ORG_TYPE)],
        &name,
    )?;
    let several = funds.len() > 1;
    for ((year, currency), lines) in &figures.budgets {
        write_total(
            &mut xml,
            Total::Budget,
            *year,
            currency,
            default_currency,
            lines,
            several,
        )?;
        summary.budgets += 1;
    }
    for ((year, currency), lines) in &figures.expenditures {
        write_total(
            &mut xml,
            Total::Expenditure,
            *year,
            currency,
            default_currency,
            lines,
            several,
        )?;
        summary.expenditures += 1;
    }
    xml.end()?;
    xml.end()?;
    xml.finish()?.flush()?;
    Ok(summary)
}

/// Per fund: the net disbursements by calendar year, and when anything was last recorded.
#[derive(Debug, Default)]
struct SpendLedger {
    /// (fund, year) -> disbursed - refunded in that year.
    spent: HashMap<(String, i32), Amount>,
    /// The latest recorded_at of an event of any fund or grant.
    last_updated: String,
}

impl SpendLedger {
    fn record(&mut self, envelope: &Envelope, event: &Event, world: &World) {
        let fund = event
            .fund_stream_id()
            .map(str::to_string)
            .or_else(|| event.grant().and_then(|grant| world.grant_fund(grant)));
        let Some(fund) = fund else {
            return;
        };
        self.last_updated.clone_from(&envelope.recorded_at);
        let (date, change) = match event {
            Event::DisbursementRecorded {
                amount, paid_on, ..
            } => (*paid_on, amount.amount),
            Event::RefundRecorded {
                amount,
                received_on,
                ..
            } => (*received_on, -amount.amount),
            _ => return,
        };
        *self
            .spent
            .entry((fund, date.naive().year()))
            .or_insert(Amount::ZERO) += change;
    }
}

/// (year, currency code) -> each fund's part, in fund order.
type ByYear = BTreeMap<(i32, &'static str), Vec<(String, String, Amount, u8)>>;

/// The organisation's totals.
struct Figures {
    budgets: ByYear,
    expenditures: ByYear,
}

impl Figures {
    fn new(world: &World, funds: &[&FundState], ledger: &SpendLedger) -> Figures {
        let mut figures = Figures {
            budgets: BTreeMap::new(),
            expenditures: BTreeMap::new(),
        };
        for fund in funds {
            let currency = fund.currency.code();
            let decimals = fund.currency.decimals();
            let mut budget: BTreeMap<i32, Amount> = BTreeMap::new();
            for grant in world.fund_grant_ids(&fund.fund) {
                let Some(grant) = world.grant(&grant) else {
                    continue;
                };
                for (year, part) in commitment_by_year(grant) {
                    *budget.entry(year).or_insert(Amount::ZERO) += part;
                }
            }
            let mut spent: Vec<(i32, Amount)> = ledger
                .spent
                .iter()
                .filter(|((spender, _), _)| spender == &fund.fund)
                .map(|((_, year), amount)| (*year, *amount))
                .collect();
            spent.sort_by_key(|(year, _)| *year);
            let line = |amount: Amount| {
                (
                    fund.fund.clone(),
                    visible_or(&fund.name, &fund.fund).to_string(),
                    amount,
                    decimals,
                )
            };
            for (year, amount) in budget {
                figures
                    .budgets
                    .entry((year, currency))
                    .or_default()
                    .push(line(amount));
            }
            for (year, amount) in spent {
                figures
                    .expenditures
                    .entry((year, currency))
                    .or_default()
                    .push(line(amount));
            }
        }
        figures
    }
}

/// What a grant holds of its fund, by calendar year (see [`write_iati_organisation`]).
fn commitment_by_year(grant: &GrantState) -> Vec<(i32, Amount)> {
    let commitment = grant.commitment();
    if grant.status == Status::Rejected || commitment == Amount::ZERO {
        return Vec::new();
    }
    match (grant.starts_on, grant.ends_on) {
        (Some(start), Some(end)) if start <= end => {
            let years = calendar_year_periods(start, end);
            let parts = split_by_days(commitment, &years);
            years
                .iter()
                .zip(parts)
                .map(|(period, part)| (period.start.naive().year(), part))
                .collect()
        }
        _ => grant
            .starts_on
            .or(grant.decided_on)
            .map(|date| vec![(date.naive().year(), commitment)])
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy)]
enum Total {
    Budget,
    Expenditure,
}

/// One `total-budget` or `total-expenditure` for a calendar year, with a line per fund when
/// the organisation covers several.
fn write_total<W: Write>(
    xml: &mut XmlWriter<W>,
    total: Total,
    year: i32,
    currency: &str,
    default_currency: &str,
    lines: &[(String, String, Amount, u8)],
    several: bool,
) -> Result<(), ExportError> {
    let (element, line_element, attributes): (&'static str, &'static str, &[(&str, &str)]) =
        match total {
            Total::Budget => (
                "total-budget",
                "budget-line",
                &[("status", BUDGET_STATUS_COMMITTED)],
            ),
            Total::Expenditure => ("total-expenditure", "expense-line", &[]),
        };
    let Some(period) = calendar_year(year) else {
        return Ok(());
    };
    let value_date = period.start.to_string();
    let mut value_attributes = vec![("value-date", value_date.as_str())];
    if currency != default_currency {
        value_attributes.insert(0, ("currency", currency));
    }
    let decimals = lines.first().map_or(2, |(_, _, _, decimals)| *decimals);
    let sum: Amount = lines.iter().map(|(_, _, amount, _)| *amount).sum();
    xml.start(element, attributes)?;
    xml.empty("period-start", &[("iso-date", &period.start.to_string())])?;
    xml.empty("period-end", &[("iso-date", &period.end.to_string())])?;
    xml.text("value", &value_attributes, &sum.format(decimals))?;
    if several {
        for (fund, name, amount, decimals) in lines {
            xml.start(line_element, &[("ref", fund)])?;
            xml.text("value", &value_attributes, &amount.format(*decimals))?;
            xml.text("narrative", &[], name)?;
            xml.end()?;
        }
    }
    xml.end()?;
    Ok(())
}

/// 1 January to 31 December of `year`.
fn calendar_year(year: i32) -> Option<Period> {
    Some(Period {
        start: Date::from_naive(NaiveDate::from_ymd_opt(year, 1, 1)?),
        end: Date::from_naive(NaiveDate::from_ymd_opt(year, 12, 31)?),
    })
}
