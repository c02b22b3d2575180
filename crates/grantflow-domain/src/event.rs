//! Events: what happened, as stored in the log. Each event's payload is a compact JSON object
//! with its own fields in a fixed order, amounts as decimal strings with the currency's
//! decimals, dates `YYYY-MM-DD`. [`Event::from_parts`] reads back exactly what
//! [`Event::payload_json`] wrote.

use crate::command::{fund_stream, grant_stream, COMMAND_NAMES};
use crate::error::DomainError;
use crate::money::{Currency, Money};
use crate::terms::{
    Category, DocumentRef, FundTerms, IncomeKind, Percent, ReportKind, SectorShare, StoredBudget,
    TermsChange,
};
use crate::values::{Country, Date};
use crate::world::Status;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Payload schema version of an event written in the first shape of its type.
pub const EVENT_SCHEMA: u32 = 1;
/// Payload schema version of an event that uses a field its type gained (the terms and
/// `iati_org_ref` on `fund.registered`, `pledge` on `fund.contribution_recorded`, `budget` on
/// `grant.agency_assigned` and `grant.allocation_revised`, `category` on
/// `grant.expenditure_recorded`, `sectors` on `grant.proposed` and `grant.revised`).
pub const EVENT_SCHEMA_EXTENDED: u32 = 2;

/// Every event type, in the order of docs/events.md.
pub const EVENT_TYPES: &[&str] = &[
    "fund.registered",
    "fund.contribution_recorded",
    "grant.proposed",
    "grant.rejected",
    "grant.approved",
    "fund.grant_committed",
    "grant.agency_assigned",
    "grant.allocation_revised",
    "grant.agency_withdrawn",
    "grant.disbursement_recorded",
    "grant.expenditure_recorded",
    "grant.refund_recorded",
    "grant.revised",
    "fund.commitment_revised",
    "grant.suspended",
    "grant.resumed",
    "grant.cancelled",
    "grant.closed",
    "grant.finalized",
    "fund.terms_revised",
    "fund.pledge_recorded",
    "fund.fee_charged",
    "fund.income_recorded",
    "fund.document_attached",
    "grant.report_scheduled",
    "grant.report_submitted",
    "grant.report_accepted",
    "grant.report_returned",
    "grant.document_attached",
];

/// The commands whose effect can revise a grant's commitment (`fund.commitment_revised`'s `cause`).
pub const COMMITMENT_CAUSES: &[&str] = &[
    "revise-grant",
    "cancel-grant",
    "finalize-grant",
    "record-refund",
];

/// An amount in a currency other than the fund's, kept as information (e.g. the yen figure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedAmount {
    /// The amount with its currency's decimals.
    pub amount: Money,
    /// Its currency.
    pub currency: Currency,
}

/// One event. Every grant event carries `grant`, every fund event `fund`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "payload", deny_unknown_fields)]
pub enum Event {
    /// `fund.registered`
    #[serde(rename = "fund.registered")]
    FundRegistered {
        /// The fund id.
        fund: String,
        /// The fund's name.
        name: String,
        /// The fund's currency.
        currency: Currency,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The fee on each contribution, where given (schema 2).
        admin_fee_percent: Option<Percent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The cap on indirect support costs, where given (schema 2).
        indirect_max_percent: Option<Percent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The tranche threshold, where given (schema 2).
        tranche_threshold_percent: Option<Percent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The hold on overdue reports, where given (schema 2).
        hold_on_overdue_reports: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The fund's publishing organisation identifier (schema 2).
        iati_org_ref: Option<String>,
    },
    /// `fund.contribution_recorded`
    #[serde(rename = "fund.contribution_recorded")]
    ContributionRecorded {
        /// The fund id.
        fund: String,
        /// The donor id.
        donor: String,
        /// The amount.
        amount: Money,
        /// When the money was received.
        received_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The amount in the donor's currency (information only).
        original_amount: Option<Money>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The donor's currency (information only).
        original_currency: Option<Currency>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The pledge it pays (schema 2).
        pledge: Option<String>,
    },
    /// `grant.proposed`
    #[serde(rename = "grant.proposed")]
    GrantProposed {
        /// The grant id.
        grant: String,
        /// The fund id.
        fund: String,
        /// The grant's title.
        title: String,
        /// The fund's currency.
        currency: Currency,
        /// The proposal's figure.
        requested: Money,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Recipient country (ISO 3166-1 alpha-2).
        country: Option<Country>,
        /// Regions where the grant works.
        regions: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Planned start.
        starts_on: Option<Date>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Planned end.
        ends_on: Option<Date>,
        /// The activities.
        activities: Vec<String>,
        /// Who submitted the proposal (four-eyes rule).
        submitted_by: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[schemars(length(min = 1))]
        /// Its sectors (schema 2).
        sectors: Vec<SectorShare>,
    },
    /// `grant.rejected`
    #[serde(rename = "grant.rejected")]
    GrantRejected {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// `grant.approved`
    #[serde(rename = "grant.approved")]
    GrantApproved {
        /// The grant id.
        grant: String,
        /// The fund id.
        fund: String,
        /// The amount.
        amount: Money,
        /// The decision date.
        decided_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The amount as reported in another currency (information only).
        reported_equivalent: Option<ReportedAmount>,
    },
    /// `fund.grant_committed`: the fund commits `commitment` (= the approved `amount`).
    #[serde(rename = "fund.grant_committed")]
    GrantCommitted {
        /// The fund id.
        fund: String,
        /// The grant id.
        grant: String,
        /// The amount.
        amount: Money,
        /// The grant's commitment of fund money.
        commitment: Money,
    },
    /// `grant.agency_assigned`
    #[serde(rename = "grant.agency_assigned")]
    AgencyAssigned {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// Whether the agency is the lead.
        lead: bool,
        /// The agency's allocation.
        allocation: Money,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The agency's budget by category (schema 2).
        budget: Option<StoredBudget>,
    },
    /// `grant.allocation_revised`
    #[serde(rename = "grant.allocation_revised")]
    AllocationRevised {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The allocation before.
        previous_allocation: Money,
        /// The agency's allocation.
        allocation: Money,
        /// Why, in words.
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The agency's budget by category (schema 2).
        budget: Option<StoredBudget>,
    },
    /// `grant.agency_withdrawn`: `allocation` is what the withdrawal releases.
    #[serde(rename = "grant.agency_withdrawn")]
    AgencyWithdrawn {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The agency's allocation.
        allocation: Money,
        /// Why, in words.
        reason: String,
    },
    /// `grant.disbursement_recorded` (the first one moves an approved grant to active)
    #[serde(rename = "grant.disbursement_recorded")]
    DisbursementRecorded {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: Money,
        /// When the money was paid.
        paid_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The transfer reference.
        reference: Option<String>,
    },
    /// `grant.expenditure_recorded`
    #[serde(rename = "grant.expenditure_recorded")]
    ExpenditureRecorded {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: Money,
        /// The end of the reporting period.
        period_end: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The budget category (schema 2).
        category: Option<Category>,
    },
    /// `grant.refund_recorded`
    #[serde(rename = "grant.refund_recorded")]
    RefundRecorded {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: Money,
        /// When the money was received.
        received_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The transfer reference.
        reference: Option<String>,
    },
    /// `grant.revised`: previous and new amount and end date.
    #[serde(rename = "grant.revised")]
    GrantRevised {
        /// The grant id.
        grant: String,
        /// The amount before.
        previous_amount: Money,
        /// The amount.
        amount: Money,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The end date before.
        previous_ends_on: Option<Date>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Planned end.
        ends_on: Option<Date>,
        /// Why, in words.
        reason: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The decision date.
        decided_on: Option<Date>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// A new list of sectors (schema 2).
        sectors: Option<Vec<SectorShare>>,
    },
    /// `fund.commitment_revised`: a grant's commitment changed because of `cause` (a command name).
    #[serde(rename = "fund.commitment_revised")]
    CommitmentRevised {
        /// The fund id.
        fund: String,
        /// The grant id.
        grant: String,
        /// The commitment before.
        previous_commitment: Money,
        /// The grant's commitment of fund money.
        commitment: Money,
        /// The command that changed the commitment.
        cause: String,
    },
    /// `grant.suspended`
    #[serde(rename = "grant.suspended")]
    GrantSuspended {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// `grant.resumed`: `status` is the state the grant returns to.
    #[serde(rename = "grant.resumed")]
    GrantResumed {
        /// The grant id.
        grant: String,
        /// The state the grant returns to.
        status: Status,
        /// Why, in words.
        reason: String,
    },
    /// `grant.cancelled`
    #[serde(rename = "grant.cancelled")]
    GrantCancelled {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// `grant.closed`
    #[serde(rename = "grant.closed")]
    GrantClosed {
        /// The grant id.
        grant: String,
        /// The operational closure date.
        closed_on: Date,
    },
    /// `grant.finalized`
    #[serde(rename = "grant.finalized")]
    GrantFinalized {
        /// The grant id.
        grant: String,
    },
    /// `fund.terms_revised`: the terms in force from now on.
    #[serde(rename = "fund.terms_revised")]
    TermsRevised {
        /// The fund id.
        fund: String,
        /// The fee on each contribution.
        admin_fee_percent: Percent,
        /// The cap on indirect support costs.
        indirect_max_percent: Percent,
        /// The tranche threshold.
        tranche_threshold_percent: Percent,
        /// The hold on overdue reports.
        hold_on_overdue_reports: bool,
        /// Why, in words.
        reason: String,
    },
    /// `fund.pledge_recorded`
    #[serde(rename = "fund.pledge_recorded")]
    PledgeRecorded {
        /// The fund id.
        fund: String,
        /// The pledge id.
        pledge: String,
        /// The donor id.
        donor: String,
        /// The amount.
        amount: Money,
        /// When the agreement was signed.
        signed_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// When the money is due.
        due_on: Option<Date>,
    },
    /// `fund.fee_charged`: the administrative agent's fee on one contribution.
    #[serde(rename = "fund.fee_charged")]
    FeeCharged {
        /// The fund id.
        fund: String,
        /// The contribution's donor.
        donor: String,
        /// The contribution's amount.
        contribution_amount: Money,
        /// When the contribution was received (the fee is charged on it).
        received_on: Date,
        /// The fee percentage in force.
        percent: Percent,
        /// The fee.
        amount: Money,
    },
    /// `fund.income_recorded`
    #[serde(rename = "fund.income_recorded")]
    IncomeRecorded {
        /// The fund id.
        fund: String,
        /// The kind of income.
        kind: IncomeKind,
        /// The amount.
        amount: Money,
        /// When the money was received.
        received_on: Date,
    },
    /// `fund.document_attached`
    #[serde(rename = "fund.document_attached")]
    FundDocumentAttached {
        /// The fund id.
        fund: String,
        /// The document id.
        document: String,
        /// The title.
        title: String,
        /// The IATI DocumentCategory code.
        #[schemars(pattern(crate::terms::DOCUMENT_CATEGORY_PATTERN))]
        category: String,
        /// SHA-256 of the file, 64 lowercase hex digits.
        #[schemars(pattern(crate::terms::SHA256_PATTERN))]
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Where it can be read.
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// When it was issued.
        issued_on: Option<Date>,
    },
    /// `grant.report_scheduled`
    #[serde(rename = "grant.report_scheduled")]
    ReportScheduled {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// Its kind.
        kind: ReportKind,
        /// The end of the period it covers.
        period_end: Date,
        /// When it is due.
        due_on: Date,
    },
    /// `grant.report_submitted`
    #[serde(rename = "grant.report_submitted")]
    ReportSubmitted {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was submitted.
        submitted_on: Date,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// The report's file.
        document: Option<DocumentRef>,
        /// Who submitted it (four-eyes rule on acceptance).
        submitted_by: String,
    },
    /// `grant.report_accepted`
    #[serde(rename = "grant.report_accepted")]
    ReportAccepted {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was accepted.
        accepted_on: Date,
    },
    /// `grant.report_returned`
    #[serde(rename = "grant.report_returned")]
    ReportReturned {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was returned.
        returned_on: Date,
        /// Why, in words.
        reason: String,
    },
    /// `grant.document_attached`
    #[serde(rename = "grant.document_attached")]
    GrantDocumentAttached {
        /// The grant id.
        grant: String,
        /// The document id.
        document: String,
        /// The title.
        title: String,
        /// The IATI DocumentCategory code.
        #[schemars(pattern(crate::terms::DOCUMENT_CATEGORY_PATTERN))]
        category: String,
        /// SHA-256 of the file, 64 lowercase hex digits.
        #[schemars(pattern(crate::terms::SHA256_PATTERN))]
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// Where it can be read.
        url: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        /// When it was issued.
        issued_on: Option<Date>,
    },
}

impl Event {
    /// The terms a `fund.registered` gives.
    pub fn registered_terms(&self) -> TermsChange {
        match self {
            Event::FundRegistered {
                admin_fee_percent,
                indirect_max_percent,
                tranche_threshold_percent,
                hold_on_overdue_reports,
                ..
            } => TermsChange {
                admin_fee_percent: *admin_fee_percent,
                indirect_max_percent: *indirect_max_percent,
                tranche_threshold_percent: *tranche_threshold_percent,
                hold_on_overdue_reports: *hold_on_overdue_reports,
            },
            _ => TermsChange::default(),
        }
    }

    /// The terms a `fund.terms_revised` puts in force.
    pub fn revised_terms(&self) -> Option<FundTerms> {
        match self {
            Event::TermsRevised {
                admin_fee_percent,
                indirect_max_percent,
                tranche_threshold_percent,
                hold_on_overdue_reports,
                ..
            } => Some(FundTerms {
                admin_fee_percent: *admin_fee_percent,
                indirect_max_percent: *indirect_max_percent,
                tranche_threshold_percent: *tranche_threshold_percent,
                hold_on_overdue_reports: *hold_on_overdue_reports,
            }),
            _ => None,
        }
    }
}

/// The stored shape of an event, to split the payload out byte for byte.
#[derive(Deserialize)]
struct Tagged<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
}

impl Event {
    /// The dotted event type, e.g. `"grant.approved"`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::FundRegistered { .. } => "fund.registered",
            Event::ContributionRecorded { .. } => "fund.contribution_recorded",
            Event::GrantProposed { .. } => "grant.proposed",
            Event::GrantRejected { .. } => "grant.rejected",
            Event::GrantApproved { .. } => "grant.approved",
            Event::GrantCommitted { .. } => "fund.grant_committed",
            Event::AgencyAssigned { .. } => "grant.agency_assigned",
            Event::AllocationRevised { .. } => "grant.allocation_revised",
            Event::AgencyWithdrawn { .. } => "grant.agency_withdrawn",
            Event::DisbursementRecorded { .. } => "grant.disbursement_recorded",
            Event::ExpenditureRecorded { .. } => "grant.expenditure_recorded",
            Event::RefundRecorded { .. } => "grant.refund_recorded",
            Event::GrantRevised { .. } => "grant.revised",
            Event::CommitmentRevised { .. } => "fund.commitment_revised",
            Event::GrantSuspended { .. } => "grant.suspended",
            Event::GrantResumed { .. } => "grant.resumed",
            Event::GrantCancelled { .. } => "grant.cancelled",
            Event::GrantClosed { .. } => "grant.closed",
            Event::GrantFinalized { .. } => "grant.finalized",
            Event::TermsRevised { .. } => "fund.terms_revised",
            Event::PledgeRecorded { .. } => "fund.pledge_recorded",
            Event::FeeCharged { .. } => "fund.fee_charged",
            Event::IncomeRecorded { .. } => "fund.income_recorded",
            Event::FundDocumentAttached { .. } => "fund.document_attached",
            Event::ReportScheduled { .. } => "grant.report_scheduled",
            Event::ReportSubmitted { .. } => "grant.report_submitted",
            Event::ReportAccepted { .. } => "grant.report_accepted",
            Event::ReportReturned { .. } => "grant.report_returned",
            Event::GrantDocumentAttached { .. } => "grant.document_attached",
        }
    }

    /// The stream the event belongs to: `fund-<id>` or `grant-<id>`.
    pub fn stream(&self) -> String {
        match self.fund_stream_id() {
            Some(fund) => fund_stream(fund),
            None => grant_stream(self.grant().unwrap_or_default()),
        }
    }

    /// For an event of a fund's stream, the fund's id; `None` for a grant's stream.
    pub fn fund_stream_id(&self) -> Option<&str> {
        match self {
            Event::FundRegistered { fund, .. }
            | Event::ContributionRecorded { fund, .. }
            | Event::GrantCommitted { fund, .. }
            | Event::CommitmentRevised { fund, .. }
            | Event::TermsRevised { fund, .. }
            | Event::PledgeRecorded { fund, .. }
            | Event::FeeCharged { fund, .. }
            | Event::IncomeRecorded { fund, .. }
            | Event::FundDocumentAttached { fund, .. } => Some(fund),
            _ => None,
        }
    }

    /// The grant the event names, if any (every grant event, and the fund events about a grant).
    pub fn grant(&self) -> Option<&str> {
        match self {
            Event::FundRegistered { .. }
            | Event::ContributionRecorded { .. }
            | Event::TermsRevised { .. }
            | Event::PledgeRecorded { .. }
            | Event::FeeCharged { .. }
            | Event::IncomeRecorded { .. }
            | Event::FundDocumentAttached { .. } => None,
            Event::GrantProposed { grant, .. }
            | Event::GrantRejected { grant, .. }
            | Event::GrantApproved { grant, .. }
            | Event::GrantCommitted { grant, .. }
            | Event::AgencyAssigned { grant, .. }
            | Event::AllocationRevised { grant, .. }
            | Event::AgencyWithdrawn { grant, .. }
            | Event::DisbursementRecorded { grant, .. }
            | Event::ExpenditureRecorded { grant, .. }
            | Event::RefundRecorded { grant, .. }
            | Event::GrantRevised { grant, .. }
            | Event::CommitmentRevised { grant, .. }
            | Event::GrantSuspended { grant, .. }
            | Event::GrantResumed { grant, .. }
            | Event::GrantCancelled { grant, .. }
            | Event::GrantClosed { grant, .. }
            | Event::GrantFinalized { grant }
            | Event::ReportScheduled { grant, .. }
            | Event::ReportSubmitted { grant, .. }
            | Event::ReportAccepted { grant, .. }
            | Event::ReportReturned { grant, .. }
            | Event::GrantDocumentAttached { grant, .. } => Some(grant),
        }
    }

    /// The payload's schema version: [`EVENT_SCHEMA_EXTENDED`] when the event uses a field
    /// its type gained, else [`EVENT_SCHEMA`] (so an event of the first shape is written,
    /// and hashed, exactly as before).
    pub fn schema(&self) -> u32 {
        let extended = match self {
            Event::FundRegistered { iati_org_ref, .. } => {
                !self.registered_terms().is_empty() || iati_org_ref.is_some()
            }
            Event::GrantProposed { sectors, .. } => !sectors.is_empty(),
            Event::GrantRevised { sectors, .. } => sectors.is_some(),
            Event::ContributionRecorded { pledge, .. } => pledge.is_some(),
            Event::AgencyAssigned { budget, .. } | Event::AllocationRevised { budget, .. } => {
                budget.is_some()
            }
            Event::ExpenditureRecorded { category, .. } => category.is_some(),
            _ => false,
        };
        if extended {
            EVENT_SCHEMA_EXTENDED
        } else {
            EVENT_SCHEMA
        }
    }

    /// The payload as compact JSON with a fixed field order.
    pub fn payload_json(&self) -> String {
        let tagged = match serde_json::to_string(self) {
            Ok(text) => text,
            Err(_) => return "{}".to_string(),
        };
        // Adjacent tagging writes exactly `{"type":"<type>","payload":<payload>}`, and the
        // type names need no escaping: cut the payload out instead of parsing it again.
        let prefix = format!("{{\"type\":\"{}\",\"payload\":", self.event_type());
        if let Some(payload) = tagged
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_suffix('}'))
        {
            return payload.to_string();
        }
        match serde_json::from_str::<Tagged>(&tagged) {
            Ok(parts) => parts.payload.get().to_string(),
            Err(_) => "{}".to_string(),
        }
    }

    /// Reads an event back from its type and payload (the inverse of
    /// [`Event::event_type`] and [`Event::payload_json`]).
    pub fn from_parts(event_type: &str, payload_json: &str) -> Result<Event, DomainError> {
        if !EVENT_TYPES.contains(&event_type) {
            return Err(DomainError::malformed(format!(
                "unknown event type {event_type:?}"
            )));
        }
        // Most of a fund's log is money moving: those payloads, as they were written, are
        // read without serde (replay decodes every event).
        if let Some(event) = fast::decode(event_type, payload_json) {
            return Ok(event);
        }
        Event::from_parts_serde(event_type, payload_json)
    }

    /// [`Event::from_parts`] through serde alone (any valid JSON of the payload's shape).
    fn from_parts_serde(event_type: &str, payload_json: &str) -> Result<Event, DomainError> {
        // One parse, in place: the adjacently tagged enum is fed the tag, then the payload
        // straight from its text (no copy of it into a `{"type":..,"payload":..}` object).
        let tagged = serde::de::value::MapAccessDeserializer::new(TaggedParts {
            event_type,
            payload_json,
            step: 0,
        });
        let event = Event::deserialize(tagged).map_err(|error| {
            DomainError::malformed(format!("{event_type} payload does not fit: {error}"))
        })?;
        event.check_stored()?;
        Ok(event)
    }

    /// Checks what serde cannot: that a commitment revision names a known cause.
    fn check_stored(&self) -> Result<(), DomainError> {
        if let Event::CommitmentRevised { cause, .. } = self {
            if !COMMITMENT_CAUSES.contains(&cause.as_str()) {
                return Err(DomainError::malformed(format!(
                    "fund.commitment_revised has an unknown cause {cause:?}"
                )));
            }
        }
        Ok(())
    }
}

/// The command that appends this event (for `fund.commitment_revised`, its cause).
pub fn command_of_event(event: &Event) -> &'static str {
    match event {
        Event::FundRegistered { .. } => "register-fund",
        Event::ContributionRecorded { .. } => "record-contribution",
        Event::GrantProposed { .. } => "submit-proposal",
        Event::GrantRejected { .. } => "reject-proposal",
        Event::GrantApproved { .. } | Event::GrantCommitted { .. } => "approve-grant",
        Event::AgencyAssigned { .. } => "assign-agency",
        Event::AllocationRevised { .. } => "revise-allocation",
        Event::AgencyWithdrawn { .. } => "withdraw-agency",
        Event::DisbursementRecorded { .. } => "record-disbursement",
        Event::ExpenditureRecorded { .. } => "record-expenditure",
        Event::RefundRecorded { .. } => "record-refund",
        Event::GrantRevised { .. } => "revise-grant",
        Event::CommitmentRevised { cause, .. } => COMMAND_NAMES
            .iter()
            .copied()
            .find(|name| name == cause)
            .unwrap_or("revise-grant"),
        Event::GrantSuspended { .. } => "suspend-grant",
        Event::GrantResumed { .. } => "resume-grant",
        Event::GrantCancelled { .. } => "cancel-grant",
        Event::GrantClosed { .. } => "close-grant",
        Event::GrantFinalized { .. } => "finalize-grant",
        Event::TermsRevised { .. } => "revise-fund-terms",
        Event::PledgeRecorded { .. } => "record-pledge",
        Event::FeeCharged { .. } => "record-contribution",
        Event::IncomeRecorded { .. } => "record-income",
        Event::ReportScheduled { .. } => "schedule-report",
        Event::ReportSubmitted { .. } => "submit-report",
        Event::ReportAccepted { .. } => "accept-report",
        Event::ReportReturned { .. } => "return-report",
        Event::FundDocumentAttached { .. } | Event::GrantDocumentAttached { .. } => {
            "attach-document"
        }
    }
}

/// The payloads of disbursements, expenditures and refunds read in the one layout
/// [`Event::payload_json`] writes them (fields in order, compact, strings without escapes);
/// anything else is left to serde.
mod fast {
    use super::Event;
    use crate::money::Money;
    use crate::values::Date;

    /// The event, or `None` when the payload is not in that layout (serde then reads it, or
    /// says what is wrong with it).
    pub(super) fn decode(event_type: &str, payload: &str) -> Option<Event> {
        let date_field = match event_type {
            "grant.disbursement_recorded" => ",\"paid_on\":",
            "grant.expenditure_recorded" => ",\"period_end\":",
            "grant.refund_recorded" => ",\"received_on\":",
            _ => return None,
        };
        let mut cursor = Cursor { rest: payload };
        cursor.literal("{\"grant\":")?;
        let grant = cursor.string()?.to_string();
        cursor.literal(",\"agency\":")?;
        let agency = cursor.string()?.to_string();
        cursor.literal(",\"amount\":")?;
        let amount = Money::parse_stored(cursor.string()?)?;
        cursor.literal(date_field)?;
        let date = Date::parse(cursor.string()?)?;
        if event_type == "grant.expenditure_recorded" {
            cursor.literal("}")?;
            return cursor
                .rest
                .is_empty()
                .then_some(Event::ExpenditureRecorded {
                    grant,
                    agency,
                    amount,
                    period_end: date,
                    category: None,
                });
        }
        let reference = match cursor.rest {
            "}" => None,
            _ => {
                cursor.literal(",\"reference\":")?;
                let reference = cursor.string()?.to_string();
                (cursor.rest == "}").then_some(Some(reference))?
            }
        };
        Some(if event_type == "grant.refund_recorded" {
            Event::RefundRecorded {
                grant,
                agency,
                amount,
                received_on: date,
                reference,
            }
        } else {
            Event::DisbursementRecorded {
                grant,
                agency,
                amount,
                paid_on: date,
                reference,
            }
        })
    }

    struct Cursor<'a> {
        rest: &'a str,
    }

    impl<'a> Cursor<'a> {
        fn literal(&mut self, expected: &str) -> Option<()> {
            self.rest = self.rest.strip_prefix(expected)?;
            Some(())
        }

        /// A JSON string without escapes or control characters; `None` otherwise.
        fn string(&mut self) -> Option<&'a str> {
            let inner = self.rest.strip_prefix('"')?;
            // Bytes, not chars: the stops are ASCII, which no byte of a multi-byte UTF-8
            // sequence can be, so `end` is a char boundary.
            let end = inner
                .bytes()
                .position(|b| b == b'"' || b == b'\\' || b < b' ')?;
            if inner.as_bytes()[end] != b'"' {
                return None;
            }
            self.rest = &inner[end + 1..];
            Some(&inner[..end])
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = String> {
            prop_oneof!["[A-Z0-9-]{0,12}", "[a-zA-Z\"\\\\\u{1}\u{1f}é😀 /]{0,10}",]
        }

        fn money_movement() -> impl Strategy<Value = Event> {
            let amount = (-10_000_000_000_000_000i64..10_000_000_000_000_000, 0u8..=3).prop_map(
                |(minor, decimals)| Money::new(crate::money::Amount(i128::from(minor)), decimals),
            );
            let date = (1900i32..2200, 1u32..=12, 1u32..=28).prop_map(|(y, m, d)| {
                Date::parse(&format!("{y:04}-{m:02}-{d:02}")).expect("a calendar date")
            });
            (
                0u8..3,
                text(),
                text(),
                amount,
                date,
                proptest::option::of(text()),
            )
                .prop_map(
                    |(kind, grant, agency, amount, date, reference)| match kind {
                        0 => Event::DisbursementRecorded {
                            grant,
                            agency,
                            amount,
                            paid_on: date,
                            reference,
                        },
                        1 => Event::ExpenditureRecorded {
                            grant,
                            agency,
                            amount,
                            period_end: date,
                            category: None,
                        },
                        _ => Event::RefundRecorded {
                            grant,
                            agency,
                            amount,
                            received_on: date,
                            reference,
                        },
                    },
                )
        }

        proptest! {
            /// What the fast path reads, serde reads the same; and it reads every payload
            /// written without an escape.
            #[test]
            fn the_fast_path_agrees_with_serde(event in money_movement()) {
                let payload = event.payload_json();
                let fast = decode(event.event_type(), &payload);
                let slow = Event::from_parts_serde(event.event_type(), &payload)
                    .expect("a written payload reads back");
                prop_assert_eq!(&slow, &event);
                if payload.contains('\\') {
                    prop_assert_eq!(fast, None);
                } else {
                    prop_assert_eq!(fast, Some(event));
                }
            }

            /// A payload changed anywhere: the fast path reads it only as serde does.
            #[test]
            fn the_fast_path_never_reads_what_serde_would_not(
                event in money_movement(),
                // Often at either end, where a layout check is easiest to forget.
                cut in prop_oneof![
                    Just(None),
                    Just(Some(0.0)),
                    (0.0f64..1.0).prop_map(Some),
                ],
                insert in prop_oneof![Just(""), Just(" "), Just(","), Just("\""), Just("0"),
                    Just("-"), Just("}"), Just(",\"x\":1"), Just("null"), Just("\\u0041")],
                remove in 0usize..3,
            ) {
                let payload = event.payload_json();
                let at = cut.map_or(payload.len(), |share| (share * payload.len() as f64) as usize);
                let at = (0..=at).rev().find(|i| payload.is_char_boundary(*i)).unwrap_or(0);
                let end = (at..=payload.len())
                    .find(|i| *i >= at + remove && payload.is_char_boundary(*i))
                    .unwrap_or(payload.len());
                let mutated = format!("{}{insert}{}", &payload[..at], &payload[end..]);
                if let Some(fast) = decode(event.event_type(), &mutated) {
                    let slow = Event::from_parts_serde(event.event_type(), &mutated);
                    prop_assert_eq!(slow.ok(), Some(fast), "{}", mutated);
                }
            }
        }

        #[test]
        fn other_types_and_layouts_go_to_serde() {
            let plain = r#"{"grant":"G","agency":"A","amount":"1.00","paid_on":"2013-01-01"}"#;
            assert!(decode("grant.disbursement_recorded", plain).is_some());
            assert_eq!(decode("grant.refund_recorded", plain), None);
            assert_eq!(decode("grant.approved", plain), None);
            let spaced = r#"{"grant": "G","agency":"A","amount":"1.00","paid_on":"2013-01-01"}"#;
            assert_eq!(decode("grant.disbursement_recorded", spaced), None);
            let null = r#"{"grant":"G","agency":"A","amount":"1.00","paid_on":"2013-01-01","reference":null}"#;
            assert_eq!(decode("grant.disbursement_recorded", null), None);
            assert!(Event::from_parts("grant.disbursement_recorded", null).is_ok());
        }
    }
}

/// An event as the map `{"type": event_type, "payload": <payload_json>}` that serde's
/// adjacent tagging reads, without building that text: the payload is deserialized from its
/// own text where it lies.
struct TaggedParts<'a> {
    event_type: &'a str,
    payload_json: &'a str,
    /// 0: the "type" key is next, 1: its value, 2: the "payload" key, 3: its value, 4: done.
    step: u8,
}

impl<'de> serde::de::MapAccess<'de> for TaggedParts<'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, serde_json::Error> {
        use serde::de::IntoDeserializer;
        let key = match self.step {
            0 => "type",
            2 => "payload",
            _ => return Ok(None),
        };
        self.step += 1;
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, serde_json::Error> {
        use serde::de::IntoDeserializer;
        let step = self.step;
        self.step += 1;
        if step == 1 {
            return seed.deserialize(self.event_type.into_deserializer());
        }
        let mut payload = serde_json::Deserializer::from_str(self.payload_json);
        let value = seed.deserialize(&mut payload)?;
        payload.end()?;
        Ok(value)
    }
}
