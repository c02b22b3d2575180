//! The IATI 2.03 activities export: one `iati-activity` per fund (hierarchy 1) and per grant
//! (hierarchy 2), in the element order the schema's `xsd:sequence` enforces.

use std::collections::HashSet;
use std::io::{BufWriter, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use grantflow_domain::{Amount, Date, FundState, GrantState, Status, World};
use grantflow_engine::query::AsOf;
use grantflow_store::EventStore;

use crate::classify::{
    fund_recipients, fund_sectors, grant_recipients, grant_sectors, Recipients, Share,
    DAC_VOCABULARY,
};
use crate::document_link::write_document_links;
use crate::fold::{fold_log, ExportError};
use crate::ledger::{Counterpart, FundLedger, GrantLedger, Ledgers, Transaction};
use crate::publisher::{check_reporting_org, reporting_org_of};
use crate::shares::{percentage_text, split_by_days, yearly_periods};
use crate::xml::{is_xml_char, XmlWriter};

/// The IATI standard version written in `iati-activities/@version`.
pub const IATI_VERSION: &str = "2.03";
/// The IATI OrganisationType code of the reporting org and the extending org: 40,
/// Multilateral (a UN trust fund's secretariat).
pub const REPORTING_ORG_TYPE: &str = "40";
/// Bytes buffered between the XML writer and the caller's output.
pub(crate) const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// The language of every narrative (`iati-activity/@xml:lang`).
pub(crate) const NARRATIVE_LANGUAGE: &str = "en";

/// What to export and how to name the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IatiOptions {
    /// The moment of the export: now, after a log position, or after a recorded time.
    pub as_of: AsOf,
    /// The grants to export (their funds' activities come along); empty: every grant.
    pub grants: Vec<String>,
    /// The IATI organisation identifier of the publisher (reporting-org/@ref, and the prefix
    /// of every iati-identifier), e.g. `XM-DAC-41301`. Default: the funds' `iati_org_ref`;
    /// an export whose funds have none, or different ones, is refused
    /// ([`ExportError::BadOption`]) rather than published under a made-up identifier.
    pub reporting_org: Option<String>,
    /// `iati-activities/@generated-datetime` (RFC 3339, written in UTC); default: now.
    pub generated_at: Option<String>,
}

impl Default for IatiOptions {
    fn default() -> Self {
        IatiOptions {
            as_of: AsOf::Head,
            grants: Vec::new(),
            reporting_org: None,
            generated_at: None,
        }
    }
}

/// What an IATI export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// The last log position folded in (the export's moment).
    pub position: u64,
    /// Fund activities written (hierarchy 1).
    pub funds: u64,
    /// Grant activities written (hierarchy 2).
    pub grants: u64,
    /// Transaction elements written, over all activities.
    pub transactions: u64,
    /// `document-link` elements written, over all activities.
    pub document_links: u64,
    /// `budget` elements written (one per period of at most a year), over all activities.
    pub budgets: u64,
    /// Rejected proposals left out.
    pub rejected_left_out: u64,
}

/// Writes the IATI 2.03 activities XML of the log as of `options.as_of` to `out`.
///
/// The log is folded first (nothing is written before it has been read and the options
/// checked); then the document is streamed out, fund by fund, each fund followed by its
/// grants. The file passes the schema and every error-level rule of IATI's 2.03 rulesets and
/// codelists (the tests check it against `docs/iati-2.03/rulesets/standard.json`). Mapping
/// (docs/domain.md, "IATI mapping"), with the choices it leaves open:
///
/// - reporting-org: `options.reporting_org`, else the funds' `iati_org_ref`; a file has one
///   (refused when a fund has none, or two funds name different ones).
///   iati-identifier: `<reporting org>-<fund id>` and `<reporting org>-<grant id>`;
///   reporting-org and participating-org role 3 (Extending): the secretariat, named by the
///   fund's name, type [`REPORTING_ORG_TYPE`].
/// - Fund activity: participating-org role 1 (Funding) per donor, in order of first pledge
///   or contribution; activity-status 2; activity-date type 2 = the day the fund was
///   registered or its first contribution was received, whichever is earlier; its grants'
///   countries as recipient-country (those tied to no country as recipient-region 998) and
///   its grants' sectors, both weighted by what each grant holds of the fund (its
///   commitment) with percentages that add up to exactly 100 (99810 and 998 while it holds
///   none); a type 11 (Incoming Commitment) transaction per pledge on its signed_on,
///   described with the pledge id and its due date, and a type 1 (Incoming Funds)
///   transaction per contribution on its received_on (described with the pledge it pays, if
///   any), both with the donor as provider-org, in log order; a `document-link` per document
///   filed on the fund; a related-activity type 2 (child) per grant that was not rejected.
///   The administrative agent's fees and the fund's income (interest, investment) are not
///   published (docs/domain.md, "IATI mapping, part two"): the type 1 values sum to the
///   contributions received, the type 11 values to the pledges.
/// - Grant activity: participating-org role 1 = the fund (with its activity-id), role 2 =
///   the lead agency, role 3 = the secretariat, role 4 per current agency; activity-status
///   1 proposed/approved, 2 active, 6 suspended, 3 closed, 4 finalized, 5 cancelled
///   (rejected proposals are left out); activity-date 1/3 = planned start/end, 2 = the
///   earliest disbursement (or the closure date, if that is earlier), 4 = the closure date;
///   when neither a planned nor an actual start is known, type 1 is the approval date, or the
///   day the proposal was recorded (IATI requires one; never after the planned end).
///   recipient-country (100 %), or recipient-region 998 (vocabulary 1, "developing
///   countries, unspecified") for a grant tied to no country; a location per region; a
///   `sector` (vocabulary 1) per sector the grant names, or 99810 ("sectors not specified")
///   at 100 %; budgets in periods of at most 12 months counted from the planned start (the
///   last one ends on the planned end), each period's value the amount shared by days (the
///   parts add up to the amount exactly) and dated: type 1 (original, status 2 committed)
///   with the approved amount up to the end planned at approval, dated on the approval, and
///   type 2 (revised) with the current amount and end after a revision, dated on the latest
///   revision; a `document-link` per document filed on the grant. Reports are not published
///   (a submitted report's file has no address or category to link).
/// - document-link (after the transactions, as the schema's sequence wants): @url, @format
///   from the address's file extension (`application/pdf` for `.pdf`, else
///   `application/octet-stream` unless another common type is named), title, the file's
///   SHA-256 as description, category @code, document-date = issued_on when given. IATI
///   requires @url: a document filed without one is left out of the XML (it stays in the
///   log and the figures). An address is written as a URI, with what a URI cannot hold
///   percent-encoded.
/// - Transactions (each with @ref `event-<position>`, transaction-date = value-date):
///   approval: type 2 on decided_on, described as `Approved on <date>` and, when the
///   approval gave the amount as reported in another currency, `; reported as approximately
///   260,000,000 JPY` (information only: the value stays in the fund's currency);
///   revision of the amount: type 2 with the difference
///   (negative for a decrease) on its decided_on, else the day it was recorded; disbursement:
///   type 3 on paid_on, receiver-org the agency; expenditure: type 4 on period_end (or the
///   day it was recorded, when the period ends later: a transaction is never dated ahead),
///   provider-org the agency; refund: type 3, negative, on received_on, receiver-org the
///   agency. So a grant's type 2 values sum to its amount, type 3 to disbursed - refunded,
///   type 4 to expended. Cancellation and finalization write no transaction. Sectors and
///   recipients are declared on the activity, never on its transactions.
/// - last-updated-datetime: the time the latest event of the activity was recorded (never
///   later than the moment of the export).
/// - related-activity type 1 (parent) from each grant to its fund.
///
/// Fund and grant ids share the identifier namespace under one reporting org: a fund and a
/// grant with the same id would get the same iati-identifier.
pub async fn write_iati(
    store: &dyn EventStore,
    options: &IatiOptions,
    out: &mut (dyn Write + Send),
) -> Result<ExportSummary, ExportError> {
    let generated_at = generated_datetime(options.generated_at.as_deref())?;
    if let Some(reporting_org) = &options.reporting_org {
        check_reporting_org(reporting_org)?;
    }
    let selected: Option<HashSet<String>> =
        (!options.grants.is_empty()).then(|| options.grants.iter().cloned().collect());
    let mut ledgers = Ledgers::new(selected.clone());
    let model = fold_log(store, &options.as_of, |envelope, event, world| {
        ledgers.record(envelope, event, world)
    })
    .await?;
    let plan = Plan::new(
        &model.world,
        &options.grants,
        selected.as_ref(),
        model.position,
    )?;
    let funds: Vec<&FundState> = plan
        .funds
        .iter()
        .filter_map(|(fund, _)| model.world.fund(fund))
        .collect();
    let reporting_org = reporting_org_of(options.reporting_org.as_deref(), &funds)?;
    let mut document = Document {
        xml: XmlWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, out)),
        world: &model.world,
        ledgers: &ledgers,
        reporting_org,
        now: Utc::now(),
        summary: ExportSummary {
            position: model.position,
            rejected_left_out: plan.rejected_left_out,
            ..ExportSummary::default()
        },
    };
    document.write(&plan, &generated_at)?;
    let summary = document.summary.clone();
    document.xml.finish()?.flush()?;
    Ok(summary)
}

/// `generated-datetime`: the given RFC 3339 time in UTC, or now.
pub(crate) fn generated_datetime(given: Option<&str>) -> Result<String, ExportError> {
    match given {
        None => Ok(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|time| {
                time.with_timezone(&Utc)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true)
            })
            .map_err(|error| {
                ExportError::BadOption(format!(
                    "generated time `{text}` is not an RFC 3339 time such as 2012-10-15T00:00:00Z: {error}"
                ))
            }),
    }
}

/// A `last-updated-datetime`: the recorded time, or `now` when it is later (a log written
/// on a machine whose clock ran ahead): IATI rules 11.1.1 and 11.4.1 refuse one in the
/// future.
pub(crate) fn last_updated_text(recorded_at: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(recorded_at) {
        Ok(time) if time.with_timezone(&Utc) > now => {
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        }
        _ => recorded_at.to_string(),
    }
}

/// The text as written to XML (what XML cannot hold dropped), or `fallback` when nothing
/// visible is left: IATI rules 4.3.1 and 4.4.1 want every title and description to hold text.
pub(crate) fn visible_or<'a>(text: &'a str, fallback: &'a str) -> &'a str {
    let visible = text.chars().any(|c| is_xml_char(c) && !c.is_whitespace());
    if visible {
        text
    } else {
        fallback
    }
}

/// Which funds and grants the document holds, in order.
struct Plan {
    /// Each fund with the grants to export under it.
    funds: Vec<(String, Vec<String>)>,
    rejected_left_out: u64,
}

impl Plan {
    fn new(
        world: &World,
        requested: &[String],
        selected: Option<&HashSet<String>>,
        position: u64,
    ) -> Result<Plan, ExportError> {
        if let Some(unknown) = requested.iter().find(|grant| world.grant(grant).is_none()) {
            return Err(ExportError::UnknownGrant(unknown.clone()));
        }
        let mut plan = Plan {
            funds: Vec::new(),
            rejected_left_out: 0,
        };
        for fund in world.fund_ids() {
            let wanted: Vec<String> = world
                .fund_grant_ids(&fund)
                .into_iter()
                .filter(|grant| match selected {
                    Some(selected) => selected.contains(grant),
                    None => true,
                })
                .collect();
            if selected.is_some() && wanted.is_empty() {
                continue;
            }
            let (kept, rejected): (Vec<String>, Vec<String>) = wanted
                .into_iter()
                .partition(|grant| !is_rejected(world, grant));
            plan.rejected_left_out += rejected.len() as u64;
            plan.funds.push((fund, kept));
        }
        if plan.funds.is_empty() {
            return Err(ExportError::NothingToExport { position });
        }
        Ok(plan)
    }
}

fn is_rejected(world: &World, grant: &str) -> bool {
    world
        .grant(grant)
        .is_some_and(|state| state.status == Status::Rejected)
}

/// IATI ActivityStatus of a grant's state; `None` for a rejected proposal.
fn activity_status(status: Status) -> Option<&'static str> {
    match status {
        Status::Proposed | Status::Approved => Some("1"),
        Status::Active => Some("2"),
        Status::Suspended => Some("6"),
        Status::Closed => Some("3"),
        Status::Finalized => Some("4"),
        Status::Cancelled => Some("5"),
        Status::Rejected => None,
    }
}

/// Fund activities are open for as long as the fund exists: Implementation.
const FUND_ACTIVITY_STATUS: &str = "2";

/// The document being written.
struct Document<'a, W: Write> {
    xml: XmlWriter<W>,
    world: &'a World,
    ledgers: &'a Ledgers,
    /// The file's one reporting organisation.
    reporting_org: &'a str,
    /// The moment of writing: no last-updated-datetime lies after it.
    now: DateTime<Utc>,
    summary: ExportSummary,
}

/// The names every activity of one fund shares.
struct FundNames {
    reporting_org: String,
    fund_identifier: String,
    fund_name: String,
    currency: &'static str,
    decimals: u8,
}

impl<W: Write> Document<'_, W> {
    fn write(&mut self, plan: &Plan, generated_at: &str) -> Result<(), ExportError> {
        self.xml.declaration()?;
        self.xml.comment(&format!(
            "grantflow IATI export as of log position {}",
            self.summary.position
        ))?;
        self.xml.start(
            "iati-activities",
            &[
                ("version", IATI_VERSION),
                ("generated-datetime", generated_at),
            ],
        )?;
        for (fund, grants) in &plan.funds {
            let Some(state) = self.world.fund(fund) else {
                continue;
            };
            let names = self.names(state);
            self.write_fund(state, &names)?;
            for grant in grants {
                if let Some(grant) = self.world.grant(grant) {
                    self.write_grant(grant, &names)?;
                }
            }
        }
        self.xml.end()?;
        Ok(())
    }

    fn names(&self, fund: &FundState) -> FundNames {
        let reporting_org = self.reporting_org.to_string();
        FundNames {
            fund_identifier: format!("{reporting_org}-{}", fund.fund),
            reporting_org,
            fund_name: visible_or(&fund.name, &fund.fund).to_string(),
            currency: fund.currency.code(),
            decimals: fund.currency.decimals(),
        }
    }

    fn write_fund(&mut self, fund: &FundState, names: &FundNames) -> Result<(), ExportError> {
        let empty = FundLedger::default();
        let ledger = self.ledgers.funds.get(&fund.fund).unwrap_or(&empty);
        self.start_activity(&ledger.last_updated, names, "1")?;
        self.xml
            .text("iati-identifier", &[], &names.fund_identifier)?;
        self.write_reporting_org(names)?;
        self.xml.narrative_in("title", &[], &names.fund_name)?;
        let description = format!(
            "{}: a trust fund in {}. It receives contributions from donors and extends grants \
             to projects that implementing agencies carry out; each grant is a child activity.",
            names.fund_name, names.currency
        );
        self.xml
            .narrative_in("description", &[("type", "1")], &description)?;
        for donor in &ledger.donors {
            self.xml
                .narrative_in("participating-org", &[("role", "1")], donor)?;
        }
        self.write_extending_org(names)?;
        self.xml
            .empty("activity-status", &[("code", FUND_ACTIVITY_STATUS)])?;
        if let Some(started_on) = ledger.started_on {
            self.write_date("2", started_on)?;
        }
        self.write_recipients(&fund_recipients(self.world, &fund.fund))?;
        self.write_sectors(&fund_sectors(self.world, &fund.fund))?;
        self.write_transactions(&ledger.transactions, names.decimals)?;
        self.summary.document_links += write_document_links(&mut self.xml, &fund.documents)?;
        for grant in self.world.fund_grant_ids(&fund.fund) {
            if !is_rejected(self.world, &grant) {
                let child = format!("{}-{grant}", names.reporting_org);
                self.xml
                    .empty("related-activity", &[("ref", &child), ("type", "2")])?;
            }
        }
        self.xml.end()?;
        self.summary.funds += 1;
        Ok(())
    }

    fn write_grant(&mut self, grant: &GrantState, names: &FundNames) -> Result<(), ExportError> {
        let Some(status) = activity_status(grant.status) else {
            return Ok(());
        };
        let empty = GrantLedger::default();
        let ledger = self.ledgers.grants.get(&grant.grant).unwrap_or(&empty);
        self.start_activity(&ledger.last_updated, names, "2")?;
        let identifier = format!("{}-{}", names.reporting_org, grant.grant);
        self.xml.text("iati-identifier", &[], &identifier)?;
        self.write_reporting_org(names)?;
        let title = visible_or(&grant.title, &grant.grant);
        self.xml.narrative_in("title", &[], title)?;
        let activities = grant.activities.join("; ");
        let description = visible_or(&activities, title);
        self.xml
            .narrative_in("description", &[("type", "1")], description)?;
        self.write_grant_orgs(grant, names)?;
        self.xml.empty("activity-status", &[("code", status)])?;
        self.write_grant_dates(grant, ledger)?;
        self.write_recipients(&grant_recipients(grant))?;
        for region in &grant.regions {
            self.xml.start("location", &[])?;
            self.xml
                .narrative_in("name", &[], visible_or(region, "region"))?;
            self.xml.end()?;
        }
        self.write_sectors(&grant_sectors(grant))?;
        self.write_budgets(grant, ledger, names.decimals)?;
        self.write_transactions(&ledger.transactions, names.decimals)?;
        self.summary.document_links += write_document_links(&mut self.xml, &grant.documents)?;
        self.xml.empty(
            "related-activity",
            &[("ref", &names.fund_identifier), ("type", "1")],
        )?;
        self.xml.end()?;
        self.summary.grants += 1;
        Ok(())
    }

    fn start_activity(
        &mut self,
        last_updated: &str,
        names: &FundNames,
        hierarchy: &str,
    ) -> Result<(), ExportError> {
        let mut attributes = Vec::with_capacity(4);
        let last_updated = last_updated_text(last_updated, self.now);
        if !last_updated.is_empty() {
            attributes.push(("last-updated-datetime", last_updated.as_str()));
        }
        attributes.push(("xml:lang", NARRATIVE_LANGUAGE));
        attributes.push(("default-currency", names.currency));
        attributes.push(("hierarchy", hierarchy));
        self.xml.start("iati-activity", &attributes)?;
        Ok(())
    }

    fn write_reporting_org(&mut self, names: &FundNames) -> Result<(), ExportError> {
        self.xml.narrative_in(
            "reporting-org",
            &[("ref", &names.reporting_org), ("type", REPORTING_ORG_TYPE)],
            &names.fund_name,
        )?;
        Ok(())
    }

    fn write_extending_org(&mut self, names: &FundNames) -> Result<(), ExportError> {
        self.xml.narrative_in(
            "participating-org",
            &[
                ("ref", &names.reporting_org),
                ("type", REPORTING_ORG_TYPE),
                ("role", "3"),
            ],
            &names.fund_name,
        )?;
        Ok(())
    }

    fn write_grant_orgs(
        &mut self,
        grant: &GrantState,
        names: &FundNames,
    ) -> Result<(), ExportError> {
        self.xml.narrative_in(
            "participating-org",
            &[("role", "1"), ("activity-id", &names.fund_identifier)],
            &names.fund_name,
        )?;
        if let Some(lead) = grant.lead() {
            self.xml
                .narrative_in("participating-org", &[("role", "2")], &lead.agency)?;
        }
        self.write_extending_org(names)?;
        for agency in &grant.agencies {
            self.xml
                .narrative_in("participating-org", &[("role", "4")], &agency.agency)?;
        }
        Ok(())
    }

    fn write_grant_dates(
        &mut self,
        grant: &GrantState,
        ledger: &GrantLedger,
    ) -> Result<(), ExportError> {
        let actual_end = match grant.status {
            Status::Closed | Status::Finalized => grant.closed_on,
            _ => None,
        };
        // An activity that closed on a day had started by then (IATI rule 11.1.3: the
        // actual start is not after the actual end).
        let actual_start = match (ledger.first_disbursed_on, actual_end) {
            (Some(start), Some(end)) => Some(start.min(end)),
            (start, _) => start,
        };
        // IATI requires a planned or an actual start (rule 6.11.1): without either, the best
        // planned start known, never after the planned end (rule 11.1.2).
        let planned_start = grant.starts_on.or_else(|| match actual_start {
            Some(_) => None,
            None => grant
                .decided_on
                .or(ledger.proposed_on)
                .map(|date| grant.ends_on.map_or(date, |end| date.min(end))),
        });
        let dates = [
            ("1", planned_start),
            ("2", actual_start),
            ("3", grant.ends_on),
            ("4", actual_end),
        ];
        for (kind, date) in dates {
            if let Some(date) = date {
                self.write_date(kind, date)?;
            }
        }
        Ok(())
    }

    fn write_date(&mut self, kind: &str, date: Date) -> Result<(), ExportError> {
        let iso = date.to_string();
        self.xml
            .empty("activity-date", &[("type", kind), ("iso-date", &iso)])?;
        Ok(())
    }

    fn write_budgets(
        &mut self,
        grant: &GrantState,
        ledger: &GrantLedger,
        decimals: u8,
    ) -> Result<(), ExportError> {
        let (Some(starts_on), Some(original)) = (grant.starts_on, ledger.original) else {
            return Ok(());
        };
        if let Some(ends_on) = original.ends_on {
            self.write_budget(
                "1",
                (starts_on, ends_on),
                original.amount,
                original.value_date,
                decimals,
            )?;
        }
        if let (Some(revised_on), Some(ends_on)) = (ledger.revised_on, grant.ends_on) {
            self.write_budget(
                "2",
                (starts_on, ends_on),
                grant.amount,
                revised_on,
                decimals,
            )?;
        }
        Ok(())
    }

    /// One budget element per period of at most 12 months from `span`'s start (IATI rule
    /// 7.5.3), each with its part of `amount` by days, all dated `value_date`.
    fn write_budget(
        &mut self,
        kind: &str,
        span: (Date, Date),
        amount: Amount,
        value_date: Date,
        decimals: u8,
    ) -> Result<(), ExportError> {
        let periods = yearly_periods(span.0, span.1);
        let parts = split_by_days(amount, &periods);
        let value_date = value_date.to_string();
        for (period, part) in periods.iter().zip(parts) {
            // IATI BudgetStatus 2: Committed (the fund's approval binds it).
            self.xml
                .start("budget", &[("type", kind), ("status", "2")])?;
            self.xml
                .empty("period-start", &[("iso-date", &period.start.to_string())])?;
            self.xml
                .empty("period-end", &[("iso-date", &period.end.to_string())])?;
            self.xml.text(
                "value",
                &[("value-date", &value_date)],
                &part.format(decimals),
            )?;
            self.xml.end()?;
            self.summary.budgets += 1;
        }
        Ok(())
    }

    /// recipient-country elements, then recipient-region 998 (vocabulary 1) when some or
    /// all of the activity is tied to no country; percentages add up to 100.
    fn write_recipients(&mut self, recipients: &Recipients) -> Result<(), ExportError> {
        for country in &recipients.countries {
            let percentage = percentage_text(country.hundredths);
            self.xml.empty(
                "recipient-country",
                &[("code", &country.code), ("percentage", &percentage)],
            )?;
        }
        if let Some(region) = &recipients.region {
            let percentage = percentage_text(region.hundredths);
            self.xml.empty(
                "recipient-region",
                &[
                    ("code", &region.code),
                    ("vocabulary", DAC_VOCABULARY),
                    ("percentage", &percentage),
                ],
            )?;
        }
        Ok(())
    }

    /// One `sector` per share (vocabulary 1, OECD DAC 5-digit); percentages add up to 100.
    fn write_sectors(&mut self, sectors: &[Share]) -> Result<(), ExportError> {
        for sector in sectors {
            let percentage = percentage_text(sector.hundredths);
            self.xml.empty(
                "sector",
                &[
                    ("vocabulary", DAC_VOCABULARY),
                    ("code", &sector.code),
                    ("percentage", &percentage),
                ],
            )?;
        }
        Ok(())
    }

    fn write_transactions(
        &mut self,
        transactions: &[Transaction],
        decimals: u8,
    ) -> Result<(), ExportError> {
        for transaction in transactions {
            let reference = format!("event-{}", transaction.position);
            let date = transaction.date.to_string();
            self.xml.start("transaction", &[("ref", &reference)])?;
            self.xml
                .empty("transaction-type", &[("code", transaction.flow.code())])?;
            self.xml.empty("transaction-date", &[("iso-date", &date)])?;
            self.xml.text(
                "value",
                &[("value-date", &date)],
                &transaction.value.format(decimals),
            )?;
            if let Some(description) = &transaction.description {
                self.xml.narrative_in("description", &[], description)?;
            }
            match &transaction.counterpart {
                Some(Counterpart::Provider(name)) => {
                    self.xml.narrative_in("provider-org", &[], name)?
                }
                Some(Counterpart::Receiver(name)) => {
                    self.xml.narrative_in("receiver-org", &[], name)?
                }
                None => {}
            }
            self.xml.end()?;
            self.summary.transactions += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_last_updated_time_lies_ahead() {
        let now = DateTime::parse_from_rfc3339("2026-06-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let recorded = "2026-06-22T09:59:59.123456Z";
        assert_eq!(last_updated_text(recorded, now), recorded);
        assert_eq!(
            last_updated_text("2026-06-22T10:00:01Z", now),
            "2026-06-22T10:00:00Z"
        );
        assert_eq!(last_updated_text("", now), "");
    }

    #[test]
    fn a_title_keeps_visible_text_or_falls_back() {
        assert_eq!(visible_or("T\u{FFFF}", "id"), "T\u{FFFF}");
        assert_eq!(visible_or("\u{FFFF}", "id"), "id");
        assert_eq!(visible_or(" \n", "id"), "id");
    }
}
