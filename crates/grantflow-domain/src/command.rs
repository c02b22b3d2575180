//! Commands: what a client asks for, already checked for shape and field values.

use crate::money::{Amount, Currency, DecimalText};
use crate::terms::{Category, DocumentRef, IncomeKind, ReportKind, SectorShare, TermsChange};
use crate::values::{Country, Date};
use serde::{Deserialize, Serialize};

/// The kebab-case names of all commands, in the order of docs/domain.md.
pub const COMMAND_NAMES: &[&str] = &[
    "register-fund",
    "record-contribution",
    "submit-proposal",
    "reject-proposal",
    "approve-grant",
    "assign-agency",
    "revise-allocation",
    "withdraw-agency",
    "record-disbursement",
    "record-expenditure",
    "record-refund",
    "revise-grant",
    "suspend-grant",
    "resume-grant",
    "cancel-grant",
    "close-grant",
    "finalize-grant",
    "revise-fund-terms",
    "record-pledge",
    "record-income",
    "schedule-report",
    "submit-report",
    "accept-report",
    "return-report",
    "attach-document",
];

/// A parsed command with the fields every command shares.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRequest {
    /// The client's idempotency key, if given.
    pub command_id: Option<String>,
    /// The actor named in the body, if any (the engine decides where the actor comes from).
    pub actor: Option<String>,
    /// The target stream's version the client last saw, if given.
    pub expected_version: Option<u64>,
    /// The command itself.
    pub command: Command,
}

/// An amount in a currency named by the command itself (information only, e.g. the yen
/// figure of a USD grant); already exact, since its currency is known at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ForeignAmount {
    /// Minor units of `currency`.
    pub amount: Amount,
    /// Its currency.
    pub currency: Currency,
}

/// One command, with the fields of docs/commands.md. Amounts in the fund's currency stay
/// [`DecimalText`] until decide knows the fund; `currency` is the optional check that the
/// client means the fund's currency.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A new fund with its currency.
    RegisterFund {
        /// The fund id.
        fund: String,
        /// The fund's name.
        name: String,
        /// The fund's currency.
        currency: Currency,
        /// The fund's terms, where given (the rest keep their defaults).
        terms: TermsChange,
        /// The fund's publishing organisation identifier (IATI), e.g. `XM-DAC-41301`.
        iati_org_ref: Option<String>,
    },
    /// Money received by a fund from a donor.
    RecordContribution {
        /// The fund id.
        fund: String,
        /// The donor id.
        donor: String,
        /// The amount.
        amount: DecimalText,
        /// When the money was received.
        received_on: Date,
        /// The amount in the donor's currency (information only).
        original: Option<ForeignAmount>,
        /// The pledge this contribution pays.
        pledge: Option<String>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// A proposal under a fund.
    SubmitProposal {
        /// The fund id.
        fund: String,
        /// The grant id.
        grant: String,
        /// The grant's title.
        title: String,
        /// The amount.
        amount: DecimalText,
        /// Recipient country (ISO 3166-1 alpha-2).
        country: Option<Country>,
        /// Regions where the grant works.
        regions: Vec<String>,
        /// Planned start.
        starts_on: Option<Date>,
        /// Planned end.
        ends_on: Option<Date>,
        /// The activities.
        activities: Vec<String>,
        /// Its sectors (empty when not given).
        sectors: Vec<SectorShare>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// The proposal ends without a grant.
    RejectProposal {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// The fund commits the requested amount.
    ApproveGrant {
        /// The grant id.
        grant: String,
        /// The decision date.
        decided_on: Date,
        /// The amount as reported in another currency (information only).
        reported_equivalent: Option<ForeignAmount>,
    },
    /// An agency joins the grant with an allocation.
    AssignAgency {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The agency's allocation.
        allocation: DecimalText,
        /// Whether the agency is the lead.
        lead: bool,
        /// The agency's budget by category.
        budget: Option<BudgetText>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// An agency's allocation is set anew.
    ReviseAllocation {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The agency's allocation.
        allocation: DecimalText,
        /// Why, in words.
        reason: String,
        /// The agency's budget by category.
        budget: Option<BudgetText>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// An agency leaves the grant.
    WithdrawAgency {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// Why, in words.
        reason: String,
    },
    /// A transfer to one agency.
    RecordDisbursement {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: DecimalText,
        /// When the money was paid.
        paid_on: Date,
        /// The transfer reference.
        reference: Option<String>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// An agency reports spending.
    RecordExpenditure {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: DecimalText,
        /// The end of the reporting period.
        period_end: Date,
        /// The budget category spent in.
        category: Option<Category>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// An agency returns money.
    RecordRefund {
        /// The grant id.
        grant: String,
        /// The agency id.
        agency: String,
        /// The amount.
        amount: DecimalText,
        /// When the money was received.
        received_on: Date,
        /// The transfer reference.
        reference: Option<String>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// A new amount and/or end date.
    ReviseGrant {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
        /// The amount.
        amount: Option<DecimalText>,
        /// Planned end.
        ends_on: Option<Date>,
        /// The decision date.
        decided_on: Option<Date>,
        /// A new list of sectors.
        sectors: Option<Vec<SectorShare>>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// A pause.
    SuspendGrant {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// The end of a pause.
    ResumeGrant {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// The grant stops.
    CancelGrant {
        /// The grant id.
        grant: String,
        /// Why, in words.
        reason: String,
    },
    /// Operational closure.
    CloseGrant {
        /// The grant id.
        grant: String,
        /// The operational closure date.
        closed_on: Date,
    },
    /// Financial closure.
    FinalizeGrant {
        /// The grant id.
        grant: String,
    },
    /// The fund's terms change.
    ReviseFundTerms {
        /// The fund id.
        fund: String,
        /// Why, in words.
        reason: String,
        /// The terms that change (at least one).
        terms: TermsChange,
    },
    /// A donor's signed pledge.
    RecordPledge {
        /// The fund id.
        fund: String,
        /// The pledge id.
        pledge: String,
        /// The donor id.
        donor: String,
        /// The amount.
        amount: DecimalText,
        /// When the agreement was signed.
        signed_on: Date,
        /// When the money is due.
        due_on: Option<Date>,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// Income of the fund (interest, investment, other).
    RecordIncome {
        /// The fund id.
        fund: String,
        /// The kind of income.
        kind: IncomeKind,
        /// The amount.
        amount: DecimalText,
        /// When the money was received.
        received_on: Date,
        /// The currency the client states; must be the fund's.
        currency: Option<Currency>,
    },
    /// A report is scheduled.
    ScheduleReport {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// The kind of report.
        kind: ReportKind,
        /// The end of the period it covers.
        period_end: Date,
        /// When it is due.
        due_on: Date,
    },
    /// A report is submitted (on behalf of the lead agency).
    SubmitReport {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was submitted.
        submitted_on: Date,
        /// The report's file.
        document: Option<DocumentRef>,
    },
    /// A submitted report is accepted.
    AcceptReport {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was accepted.
        accepted_on: Date,
    },
    /// A submitted report is returned, to be submitted again.
    ReturnReport {
        /// The grant id.
        grant: String,
        /// The report id.
        report: String,
        /// When it was returned.
        returned_on: Date,
        /// Why, in words.
        reason: String,
    },
    /// A document is filed on a grant or a fund.
    AttachDocument {
        /// The grant or fund it is filed on.
        owner: DocumentOwner,
        /// The document id.
        document: String,
        /// The title.
        title: String,
        /// The IATI DocumentCategory code.
        category: String,
        /// SHA-256 of the file.
        sha256: String,
        /// Where it can be read.
        url: Option<String>,
        /// When it was issued.
        issued_on: Option<Date>,
    },
}

/// What a document is filed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentOwner {
    /// A grant.
    Grant(String),
    /// A fund.
    Fund(String),
}

/// A budget as a command gives it: (category, amount) pairs in the order given; amounts stay
/// text until the fund's currency is known ("0" allowed).
pub type BudgetText = Vec<(Category, DecimalText)>;

impl Command {
    /// The kebab-case name, e.g. `"approve-grant"`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RegisterFund { .. } => "register-fund",
            Command::RecordContribution { .. } => "record-contribution",
            Command::SubmitProposal { .. } => "submit-proposal",
            Command::RejectProposal { .. } => "reject-proposal",
            Command::ApproveGrant { .. } => "approve-grant",
            Command::AssignAgency { .. } => "assign-agency",
            Command::ReviseAllocation { .. } => "revise-allocation",
            Command::WithdrawAgency { .. } => "withdraw-agency",
            Command::RecordDisbursement { .. } => "record-disbursement",
            Command::RecordExpenditure { .. } => "record-expenditure",
            Command::RecordRefund { .. } => "record-refund",
            Command::ReviseGrant { .. } => "revise-grant",
            Command::SuspendGrant { .. } => "suspend-grant",
            Command::ResumeGrant { .. } => "resume-grant",
            Command::CancelGrant { .. } => "cancel-grant",
            Command::CloseGrant { .. } => "close-grant",
            Command::FinalizeGrant { .. } => "finalize-grant",
            Command::ReviseFundTerms { .. } => "revise-fund-terms",
            Command::RecordPledge { .. } => "record-pledge",
            Command::RecordIncome { .. } => "record-income",
            Command::ScheduleReport { .. } => "schedule-report",
            Command::SubmitReport { .. } => "submit-report",
            Command::AcceptReport { .. } => "accept-report",
            Command::ReturnReport { .. } => "return-report",
            Command::AttachDocument { .. } => "attach-document",
        }
    }

    /// The stream the command is checked against (`expected_version`): `fund-<id>` for
    /// register-fund and record-contribution, else `grant-<id>`.
    pub fn target_stream(&self) -> String {
        match self.fund_target() {
            Some(fund) => fund_stream(fund),
            None => grant_stream(self.grant_id().unwrap_or_default()),
        }
    }

    /// The fund a fund command targets (register-fund, record-contribution, revise-fund-terms,
    /// record-pledge, record-income, attach-document on a fund).
    pub fn fund_target(&self) -> Option<&str> {
        match self {
            Command::RegisterFund { fund, .. }
            | Command::RecordContribution { fund, .. }
            | Command::ReviseFundTerms { fund, .. }
            | Command::RecordPledge { fund, .. }
            | Command::RecordIncome { fund, .. }
            | Command::AttachDocument {
                owner: DocumentOwner::Fund(fund),
                ..
            } => Some(fund),
            _ => None,
        }
    }

    /// The grant the command names, if any (every command but the fund commands).
    pub fn grant_id(&self) -> Option<&str> {
        match self {
            Command::RegisterFund { .. }
            | Command::RecordContribution { .. }
            | Command::ReviseFundTerms { .. }
            | Command::RecordPledge { .. }
            | Command::RecordIncome { .. }
            | Command::AttachDocument {
                owner: DocumentOwner::Fund(_),
                ..
            } => None,
            Command::SubmitProposal { grant, .. }
            | Command::RejectProposal { grant, .. }
            | Command::ApproveGrant { grant, .. }
            | Command::AssignAgency { grant, .. }
            | Command::ReviseAllocation { grant, .. }
            | Command::WithdrawAgency { grant, .. }
            | Command::RecordDisbursement { grant, .. }
            | Command::RecordExpenditure { grant, .. }
            | Command::RecordRefund { grant, .. }
            | Command::ReviseGrant { grant, .. }
            | Command::SuspendGrant { grant, .. }
            | Command::ResumeGrant { grant, .. }
            | Command::CancelGrant { grant, .. }
            | Command::CloseGrant { grant, .. }
            | Command::FinalizeGrant { grant }
            | Command::ScheduleReport { grant, .. }
            | Command::SubmitReport { grant, .. }
            | Command::AcceptReport { grant, .. }
            | Command::ReturnReport { grant, .. }
            | Command::AttachDocument {
                owner: DocumentOwner::Grant(grant),
                ..
            } => Some(grant),
        }
    }

    /// The business dates of things that have happened, with their field names (the
    /// `future_date` rule): received_on, signed_on, decided_on, paid_on, closed_on,
    /// submitted_on, accepted_on, returned_on, issued_on.
    pub fn happened_dates(&self) -> Vec<(&'static str, Date)> {
        match self {
            Command::RecordContribution { received_on, .. }
            | Command::RecordRefund { received_on, .. }
            | Command::RecordIncome { received_on, .. } => vec![("received_on", *received_on)],
            Command::RecordPledge { signed_on, .. } => vec![("signed_on", *signed_on)],
            Command::ApproveGrant { decided_on, .. } => vec![("decided_on", *decided_on)],
            Command::ReviseGrant { decided_on, .. } => decided_on
                .iter()
                .map(|date| ("decided_on", *date))
                .collect(),
            Command::RecordDisbursement { paid_on, .. } => vec![("paid_on", *paid_on)],
            Command::CloseGrant { closed_on, .. } => vec![("closed_on", *closed_on)],
            Command::SubmitReport { submitted_on, .. } => vec![("submitted_on", *submitted_on)],
            Command::AcceptReport { accepted_on, .. } => vec![("accepted_on", *accepted_on)],
            Command::ReturnReport { returned_on, .. } => vec![("returned_on", *returned_on)],
            Command::AttachDocument { issued_on, .. } => {
                issued_on.iter().map(|date| ("issued_on", *date)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The optional `currency` the client gave to check against the fund's.
    pub fn stated_currency(&self) -> Option<Currency> {
        match self {
            Command::RecordContribution { currency, .. }
            | Command::SubmitProposal { currency, .. }
            | Command::AssignAgency { currency, .. }
            | Command::ReviseAllocation { currency, .. }
            | Command::RecordDisbursement { currency, .. }
            | Command::RecordExpenditure { currency, .. }
            | Command::RecordRefund { currency, .. }
            | Command::ReviseGrant { currency, .. }
            | Command::RecordPledge { currency, .. }
            | Command::RecordIncome { currency, .. } => *currency,
            _ => None,
        }
    }

    /// The amounts in the fund's currency, with their field names.
    pub fn fund_amounts(&self) -> Vec<(&'static str, &DecimalText)> {
        match self {
            Command::RecordContribution { amount, .. }
            | Command::SubmitProposal { amount, .. }
            | Command::RecordDisbursement { amount, .. }
            | Command::RecordExpenditure { amount, .. }
            | Command::RecordRefund { amount, .. }
            | Command::RecordPledge { amount, .. }
            | Command::RecordIncome { amount, .. } => vec![("amount", amount)],
            Command::AssignAgency {
                allocation, budget, ..
            }
            | Command::ReviseAllocation {
                allocation, budget, ..
            } => std::iter::once(("allocation", allocation))
                .chain(
                    budget
                        .iter()
                        .flatten()
                        .map(|(category, amount)| (category.budget_field(), amount)),
                )
                .collect(),
            Command::ReviseGrant {
                amount: Some(amount),
                ..
            } => vec![("amount", amount)],
            _ => Vec::new(),
        }
    }
}

/// The stream name of a fund: `fund-<id>`.
pub fn fund_stream(fund: &str) -> String {
    format!("fund-{fund}")
}

/// The stream name of a grant: `grant-<id>`.
pub fn grant_stream(grant: &str) -> String {
    format!("grant-{grant}")
}
