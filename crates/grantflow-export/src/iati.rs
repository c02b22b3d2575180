//! The IATI 2.03 activities export: one `iati-activity` per fund (hierarchy 1) and per grant
//! (hierarchy 2), in the element order the schema's `xsd:sequence` enforces.

use std::collections::{HashMap, HashSet};
use std::io::{BufWriter, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use grantflow_domain::{Amount, Date, Event, FundState, GrantState, Status, World};
use grantflow_engine::query::AsOf;
use grantflow_engine::EngineError;
use grantflow_store::{Envelope, EventStore};

use crate::document_link::write_document_links;
use crate::fold::{fold_log, ExportError};
use crate::xml::XmlWriter;

/// The IATI standard version written in `iati-activities/@version`.
pub const IATI_VERSION: &str = "2.03";
/// The IATI OrganisationType code of the reporting org and the extending org: 40,
/// Multilateral (a UN trust fund's secretariat).
pub const REPORTING_ORG_TYPE: &str = "40";
/// The longest reporting-org ref accepted.
pub const REPORTING_ORG_CHARS_MAX: usize = 128;
/// Bytes buffered between the XML writer and the caller's output.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// Prefix of the default reporting-org ref (`XI-GRANTFLOW-<fund id>`).
const DEFAULT_REPORTING_ORG_PREFIX: &str = "XI-GRANTFLOW-";
/// The language of every narrative (`iati-activity/@xml:lang`).
const NARRATIVE_LANGUAGE: &str = "en";

/// What to export and how to name the publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IatiOptions {
    /// The moment of the export: now, after a log position, or after a recorded time.
    pub as_of: AsOf,
    /// The grants to export (their funds' activities come along); empty: every grant.
    pub grants: Vec<String>,
    /// The IATI organisation identifier of the publisher (reporting-org/@ref, and the prefix
    /// of every iati-identifier). Default: [`default_reporting_org`] of each fund,
    /// `XI-GRANTFLOW-<fund id>`, a placeholder to replace with the registered identifier.
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
    /// Rejected proposals left out.
    pub rejected_left_out: u64,
}

/// The reporting-org ref used for a fund when none is given: `XI-GRANTFLOW-<fund id>`.
pub fn default_reporting_org(fund: &str) -> String {
    format!("{DEFAULT_REPORTING_ORG_PREFIX}{fund}")
}

/// Writes the IATI 2.03 activities XML of the log as of `options.as_of` to `out`.
///
/// The log is folded first (nothing is written before it has been read and the options
/// checked); then the document is streamed out, fund by fund, each fund followed by its
/// grants. Mapping (docs/domain.md, "IATI mapping"), with the choices it leaves open:
///
/// - iati-identifier: `<reporting org>-<fund id>` and `<reporting org>-<grant id>`;
///   reporting-org and participating-org role 3 (Extending): the secretariat, named by the
///   fund's name, type [`REPORTING_ORG_TYPE`].
/// - Fund activity: participating-org role 1 (Funding) per donor, in order of first pledge
///   or contribution; activity-status 2; activity-date type 2 = the day the fund was
///   registered or its first contribution was received, whichever is earlier; a type 11
///   (Incoming Commitment) transaction per pledge on its signed_on, described with the
///   pledge id and its due date, and a type 1 (Incoming Funds) transaction per
///   contribution on its received_on (described with the pledge it pays, if any), both with
///   the donor as provider-org, in log order; a `document-link` per document filed on the
///   fund; a related-activity type 2 (child) per grant that was not rejected. The
///   administrative agent's fees and the fund's income (interest, investment) are not
///   published (docs/domain.md, "IATI mapping, part two"): the type 1 values sum to the
///   contributions received, the type 11 values to the pledges.
/// - Grant activity: participating-org role 1 = the fund (with its activity-id), role 2 =
///   the lead agency, role 3 = the secretariat, role 4 per current agency; activity-status
///   1 proposed/approved, 2 active, 6 suspended, 3 closed, 4 finalized, 5 cancelled
///   (rejected proposals are left out); activity-date 1/3 = planned start/end, 2 = the
///   earliest disbursement, 4 = the closure date; when none of those is known, type 1 is the
///   approval date, or the day the proposal was recorded (IATI requires one).
///   recipient-country (100 %) when known; a location per region; budget type 1 (original,
///   status 2 committed) with the approved amount and end date, and type 2 (revised) with
///   the current ones after a revision, when the planned start and end are known; a
///   `document-link` per document filed on the grant. Reports are not published (a
///   submitted report's file has no address or category to link).
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
///   type 3 on paid_on, receiver-org the agency; expenditure: type 4 on period_end,
///   provider-org the agency; refund: type 3, negative, on received_on, receiver-org the
///   agency. So a grant's type 2 values sum to its amount, type 3 to disbursed - refunded,
///   type 4 to expended. Cancellation and finalization write no transaction.
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
    let mut document = Document {
        xml: XmlWriter::new(BufWriter::with_capacity(WRITE_BUFFER_BYTES, out)),
        world: &model.world,
        ledgers: &ledgers,
        reporting_org: options.reporting_org.as_deref(),
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

fn generated_datetime(given: Option<&str>) -> Result<String, ExportError> {
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

/// An IATI organisation identifier: 1 to [`REPORTING_ORG_CHARS_MAX`] letters, digits, `-`,
/// `_` and `.` (IATI identifiers may not hold spaces, `/`, `&`, `|` or `?`).
fn check_reporting_org(reporting_org: &str) -> Result<(), ExportError> {
    let well_formed = !reporting_org.is_empty()
        && reporting_org.chars().count() <= REPORTING_ORG_CHARS_MAX
        && reporting_org
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if well_formed {
        return Ok(());
    }
    Err(ExportError::BadOption(format!(
        "reporting org `{reporting_org}` is not an IATI organisation identifier such as XM-DAC-41301 \
         (1 to {REPORTING_ORG_CHARS_MAX} letters, digits, `-`, `_` and `.`)"
    )))
}

/// The day part of an envelope's `recorded_at`.
fn recorded_date(envelope: &Envelope) -> Result<Date, ExportError> {
    envelope
        .recorded_at
        .get(..10)
        .and_then(Date::parse)
        .ok_or_else(|| {
            ExportError::Engine(EngineError::Corrupt {
                position: envelope.position,
                detail: format!("recorded_at `{}` has no date", envelope.recorded_at),
            })
        })
}

fn earliest(known: Option<Date>, date: Date) -> Option<Date> {
    Some(known.map_or(date, |known| known.min(date)))
}

/// The code of a transaction-type (IATI TransactionType codelist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    IncomingFunds,
    OutgoingCommitment,
    Disbursement,
    Expenditure,
    IncomingCommitment,
}

impl Flow {
    fn code(self) -> &'static str {
        match self {
            Flow::IncomingFunds => "1",
            Flow::OutgoingCommitment => "2",
            Flow::Disbursement => "3",
            Flow::Expenditure => "4",
            Flow::IncomingCommitment => "11",
        }
    }
}

/// The other organisation of a transaction.
#[derive(Debug, Clone)]
enum Counterpart {
    Provider(String),
    Receiver(String),
}

#[derive(Debug, Clone)]
struct Transaction {
    flow: Flow,
    date: Date,
    value: Amount,
    description: Option<String>,
    counterpart: Option<Counterpart>,
    position: u64,
}

impl Transaction {
    fn new(flow: Flow, date: Date, value: Amount, envelope: &Envelope) -> Self {
        Transaction {
            flow,
            date,
            value,
            description: None,
            counterpart: None,
            position: envelope.position,
        }
    }

    fn described(mut self, description: Option<String>) -> Self {
        self.description = description;
        self
    }

    fn with(mut self, counterpart: Counterpart) -> Self {
        self.counterpart = Some(counterpart);
        self
    }
}

/// What a fund's activity needs beyond its [`FundState`].
#[derive(Debug, Default)]
struct FundLedger {
    /// The earlier of the day the fund was registered and its first contribution.
    started_on: Option<Date>,
    last_updated: String,
    /// Donors in order of their first pledge or contribution.
    donors: Vec<String>,
    transactions: Vec<Transaction>,
}

impl FundLedger {
    fn add_donor(&mut self, donor: &str) {
        if !self.donors.iter().any(|known| known == donor) {
            self.donors.push(donor.to_string());
        }
    }
}

/// A budget as decided: amount, decision date and planned end.
#[derive(Debug, Clone, Copy)]
struct Budget {
    amount: Amount,
    value_date: Date,
    ends_on: Option<Date>,
}

/// What a grant's activity needs beyond its [`GrantState`].
#[derive(Debug, Default)]
struct GrantLedger {
    proposed_on: Option<Date>,
    last_updated: String,
    first_disbursed_on: Option<Date>,
    original: Option<Budget>,
    revised_on: Option<Date>,
    transactions: Vec<Transaction>,
}

/// Per fund and per (selected) grant, what the fold collects.
struct Ledgers {
    selected: Option<HashSet<String>>,
    funds: HashMap<String, FundLedger>,
    grants: HashMap<String, GrantLedger>,
}

impl Ledgers {
    fn new(selected: Option<HashSet<String>>) -> Self {
        Ledgers {
            selected,
            funds: HashMap::new(),
            grants: HashMap::new(),
        }
    }

    fn record(
        &mut self,
        envelope: &Envelope,
        event: &Event,
        world: &World,
    ) -> Result<(), ExportError> {
        match event {
            Event::FundRegistered { fund, .. } => {
                let ledger = self.funds.entry(fund.clone()).or_default();
                ledger.started_on = earliest(ledger.started_on, recorded_date(envelope)?);
                ledger.last_updated.clone_from(&envelope.recorded_at);
                return Ok(());
            }
            Event::ContributionRecorded {
                fund,
                donor,
                amount,
                received_on,
                pledge,
                ..
            } => {
                let ledger = self.funds.entry(fund.clone()).or_default();
                ledger.started_on = earliest(ledger.started_on, *received_on);
                ledger.add_donor(donor);
                let transaction =
                    Transaction::new(Flow::IncomingFunds, *received_on, amount.amount, envelope)
                        .described(
                            pledge
                                .as_ref()
                                .map(|pledge| format!("Pays pledge {pledge}")),
                        )
                        .with(Counterpart::Provider(donor.clone()));
                ledger.transactions.push(transaction);
                ledger.last_updated.clone_from(&envelope.recorded_at);
                return Ok(());
            }
            Event::PledgeRecorded {
                fund,
                pledge,
                donor,
                amount,
                signed_on,
                due_on,
            } => {
                let ledger = self.funds.entry(fund.clone()).or_default();
                ledger.add_donor(donor);
                let description = match due_on {
                    Some(due_on) => format!("Pledge {pledge}, due on {due_on}"),
                    None => format!("Pledge {pledge}"),
                };
                let transaction = Transaction::new(
                    Flow::IncomingCommitment,
                    *signed_on,
                    amount.amount,
                    envelope,
                )
                .described(Some(description))
                .with(Counterpart::Provider(donor.clone()));
                ledger.transactions.push(transaction);
                ledger.last_updated.clone_from(&envelope.recorded_at);
                return Ok(());
            }
            Event::FundDocumentAttached { fund, .. } => {
                let ledger = self.funds.entry(fund.clone()).or_default();
                ledger.last_updated.clone_from(&envelope.recorded_at);
                return Ok(());
            }
            Event::GrantCommitted { fund, .. } | Event::CommitmentRevised { fund, .. } => {
                let ledger = self.funds.entry(fund.clone()).or_default();
                ledger.last_updated.clone_from(&envelope.recorded_at);
            }
            _ => {}
        }
        let Some(grant) = event.grant() else {
            return Ok(());
        };
        if self
            .selected
            .as_ref()
            .is_some_and(|selected| !selected.contains(grant))
        {
            return Ok(());
        }
        let ledger = self.grants.entry(grant.to_string()).or_default();
        ledger.last_updated.clone_from(&envelope.recorded_at);
        record_grant_event(ledger, envelope, event, world.grant(grant))
    }
}

fn record_grant_event(
    ledger: &mut GrantLedger,
    envelope: &Envelope,
    event: &Event,
    state: Option<&GrantState>,
) -> Result<(), ExportError> {
    let transaction = match event {
        Event::GrantProposed { .. } => {
            ledger.proposed_on = Some(recorded_date(envelope)?);
            None
        }
        Event::GrantApproved {
            amount,
            decided_on,
            reported_equivalent,
            ..
        } => {
            ledger.original = Some(Budget {
                amount: amount.amount,
                value_date: *decided_on,
                ends_on: state.and_then(|state| state.ends_on),
            });
            let description = match reported_equivalent {
                Some(reported) => format!(
                    "Approved on {decided_on}; reported as approximately {} {}",
                    grouped_thousands(&reported.amount.to_string()),
                    reported.currency.code()
                ),
                None => format!("Approved on {decided_on}"),
            };
            Some(
                Transaction::new(
                    Flow::OutgoingCommitment,
                    *decided_on,
                    amount.amount,
                    envelope,
                )
                .described(Some(description)),
            )
        }
        Event::GrantRevised {
            previous_amount,
            amount,
            reason,
            decided_on,
            ..
        } => {
            let date = match decided_on {
                Some(date) => *date,
                None => recorded_date(envelope)?,
            };
            ledger.revised_on = Some(date);
            let change = amount.amount - previous_amount.amount;
            (change != Amount::ZERO).then(|| {
                Transaction::new(Flow::OutgoingCommitment, date, change, envelope)
                    .described(Some(format!("Revision: {reason}")))
            })
        }
        Event::DisbursementRecorded {
            agency,
            amount,
            paid_on,
            reference,
            ..
        } => {
            ledger.first_disbursed_on = earliest(ledger.first_disbursed_on, *paid_on);
            Some(
                Transaction::new(Flow::Disbursement, *paid_on, amount.amount, envelope)
                    .described(reference.as_ref().map(|r| format!("Transfer {r}")))
                    .with(Counterpart::Receiver(agency.clone())),
            )
        }
        Event::ExpenditureRecorded {
            agency,
            amount,
            period_end,
            ..
        } => Some(
            Transaction::new(Flow::Expenditure, *period_end, amount.amount, envelope)
                .described(Some(format!("Expenditure reported by {agency}")))
                .with(Counterpart::Provider(agency.clone())),
        ),
        Event::RefundRecorded {
            agency,
            amount,
            received_on,
            reference,
            ..
        } => {
            let description = match reference {
                Some(reference) => format!("Refund from {agency} (transfer {reference})"),
                None => format!("Refund from {agency}"),
            };
            Some(
                Transaction::new(Flow::Disbursement, *received_on, -amount.amount, envelope)
                    .described(Some(description))
                    .with(Counterpart::Receiver(agency.clone())),
            )
        }
        _ => None,
    };
    ledger.transactions.extend(transaction);
    Ok(())
}

/// A plain decimal with its integer digits grouped by threes with commas, as a reader
/// writes a large figure: `260000000` reads `260,000,000`, `-1234.50` reads `-1,234.50`.
fn grouped_thousands(decimal: &str) -> String {
    let (sign, digits) = match decimal.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", decimal),
    };
    let (int, fraction) = match digits.split_once('.') {
        Some((int, fraction)) => (int, Some(fraction)),
        None => (digits, None),
    };
    let mut out = String::with_capacity(decimal.len() + int.len() / 3);
    out.push_str(sign);
    for (at, digit) in int.chars().enumerate() {
        if at > 0 && (int.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    out
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
    reporting_org: Option<&'a str>,
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
        let reporting_org = self
            .reporting_org
            .map_or_else(|| default_reporting_org(&fund.fund), str::to_string);
        FundNames {
            fund_identifier: format!("{reporting_org}-{}", fund.fund),
            reporting_org,
            fund_name: fund.name.clone(),
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
        self.xml.narrative_in("title", &[], &fund.name)?;
        let description = format!(
            "{}: a trust fund in {}. It receives contributions from donors and extends grants \
             to projects that implementing agencies carry out; each grant is a child activity.",
            fund.name, names.currency
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
        self.xml.narrative_in("title", &[], &grant.title)?;
        let description = if grant.activities.is_empty() {
            grant.title.clone()
        } else {
            grant.activities.join("; ")
        };
        self.xml
            .narrative_in("description", &[("type", "1")], &description)?;
        self.write_grant_orgs(grant, names)?;
        self.xml.empty("activity-status", &[("code", status)])?;
        self.write_grant_dates(grant, ledger)?;
        if let Some(country) = &grant.country {
            self.xml.empty(
                "recipient-country",
                &[("code", country.code()), ("percentage", "100")],
            )?;
        }
        for region in &grant.regions {
            self.xml.start("location", &[])?;
            self.xml.narrative_in("name", &[], region)?;
            self.xml.end()?;
        }
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
        if !last_updated.is_empty() {
            attributes.push(("last-updated-datetime", last_updated));
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
        let dates = [
            ("1", grant.starts_on),
            ("2", ledger.first_disbursed_on),
            ("3", grant.ends_on),
            ("4", actual_end),
        ];
        let mut written = false;
        for (kind, date) in dates {
            if let Some(date) = date {
                self.write_date(kind, date)?;
                written = true;
            }
        }
        if !written {
            // IATI requires an activity-date: the best planned start known.
            if let Some(date) = grant.decided_on.or(ledger.proposed_on) {
                self.write_date("1", date)?;
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
                starts_on,
                ends_on,
                original.amount,
                original.value_date,
                decimals,
            )?;
        }
        if let (Some(revised_on), Some(ends_on)) = (ledger.revised_on, grant.ends_on) {
            self.write_budget("2", starts_on, ends_on, grant.amount, revised_on, decimals)?;
        }
        Ok(())
    }

    fn write_budget(
        &mut self,
        kind: &str,
        starts_on: Date,
        ends_on: Date,
        amount: Amount,
        value_date: Date,
        decimals: u8,
    ) -> Result<(), ExportError> {
        // IATI BudgetStatus 2: Committed (the fund's approval binds it).
        self.xml
            .start("budget", &[("type", kind), ("status", "2")])?;
        self.xml
            .empty("period-start", &[("iso-date", &starts_on.to_string())])?;
        self.xml
            .empty("period-end", &[("iso-date", &ends_on.to_string())])?;
        self.xml.text(
            "value",
            &[("value-date", &value_date.to_string())],
            &amount.format(decimals),
        )?;
        self.xml.end()?;
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
    fn large_figures_are_grouped_by_thousands() {
        assert_eq!(grouped_thousands("260000000"), "260,000,000");
        assert_eq!(grouped_thousands("-1234.50"), "-1,234.50");
        assert_eq!(grouped_thousands("999"), "999");
        assert_eq!(grouped_thousands("1000"), "1,000");
        assert_eq!(grouped_thousands("0.05"), "0.05");
    }
}
