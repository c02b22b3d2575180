//! The domain's one error type: a stable code (docs/errors.md) and a sentence a person can act on.

use std::fmt;

/// A stable error code, spelled in the public contract as `snake_case` (see [`ErrorCode::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The command's shape or a field value is wrong.
    MalformedCommand,
    /// An amount does not parse exactly, is not positive or does not fit the currency.
    InvalidAmount,
    /// A currency given with the command is not the fund's.
    CurrencyMismatch,
    /// The fund does not exist.
    UnknownFund,
    /// The grant does not exist.
    UnknownGrant,
    /// A fund with that id already exists.
    FundExists,
    /// A grant with that id already exists.
    GrantExists,
    /// The grant's state does not allow the command.
    InvalidState,
    /// The approver is the proposal's submitter.
    FourEyesViolation,
    /// The fund's available money does not cover the commitment.
    InsufficientFunds,
    /// The agency is already on the grant.
    AgencyAlreadyAssigned,
    /// The agency is not on the grant.
    AgencyNotAssigned,
    /// Allocations would exceed the grant's amount.
    OverAllocation,
    /// A new allocation is below what the agency already holds.
    AllocationBelowDisbursed,
    /// The agency still holds money of the grant.
    AgencyHasFunds,
    /// A disbursement would exceed the agency's allocation.
    OverDisbursement,
    /// An expenditure would exceed what the agency received.
    OverExpenditure,
    /// A refund would exceed the agency's balance.
    OverRefund,
    /// A new grant amount is below what is allocated.
    AmountBelowAllocated,
    /// Some agency balance is not zero.
    UnsettledBalance,
    /// The stream's version is not the one the client expected.
    VersionConflict,
    /// The command id was used with another body.
    CommandIdConflict,
    /// The grant already has a lead agency.
    LeadExists,
    /// A pledge with that id already exists in the fund.
    PledgeExists,
    /// The pledge does not exist, or is another donor's.
    UnknownPledge,
    /// A contribution exceeds its pledge's outstanding amount.
    OverPledge,
    /// An agency budget's categories do not sum to its allocation.
    BudgetMismatch,
    /// Indirect support costs exceed the fund's cap on direct costs.
    IndirectOverCap,
    /// An expenditure of an agency with a budget names no category.
    CategoryRequired,
    /// An expenditure names a category but the agency has no budget.
    NoBudget,
    /// A category's expended would pass 120% of its budget.
    OverBudgetCategory,
    /// The agency has not spent enough of what it holds for a further tranche.
    TrancheConditionUnmet,
    /// A report of the grant is overdue on the disbursement's date.
    ReportOverdue,
    /// A report with that id already exists on the grant.
    ReportExists,
    /// The report does not exist on the grant.
    UnknownReport,
    /// The report's status does not allow the command.
    InvalidReportState,
    /// A report of the grant is not yet accepted.
    ReportsOutstanding,
    /// A document with that id already exists on the grant or fund.
    DocumentExists,
    /// A business date of something that has happened lies after today (UTC).
    FutureDate,
}

/// Every error code, in the order of docs/errors.md.
pub const ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::MalformedCommand,
    ErrorCode::InvalidAmount,
    ErrorCode::CurrencyMismatch,
    ErrorCode::UnknownFund,
    ErrorCode::UnknownGrant,
    ErrorCode::FundExists,
    ErrorCode::GrantExists,
    ErrorCode::InvalidState,
    ErrorCode::FourEyesViolation,
    ErrorCode::InsufficientFunds,
    ErrorCode::AgencyAlreadyAssigned,
    ErrorCode::AgencyNotAssigned,
    ErrorCode::OverAllocation,
    ErrorCode::AllocationBelowDisbursed,
    ErrorCode::AgencyHasFunds,
    ErrorCode::OverDisbursement,
    ErrorCode::OverExpenditure,
    ErrorCode::OverRefund,
    ErrorCode::AmountBelowAllocated,
    ErrorCode::UnsettledBalance,
    ErrorCode::VersionConflict,
    ErrorCode::CommandIdConflict,
    ErrorCode::LeadExists,
    ErrorCode::PledgeExists,
    ErrorCode::UnknownPledge,
    ErrorCode::OverPledge,
    ErrorCode::BudgetMismatch,
    ErrorCode::IndirectOverCap,
    ErrorCode::CategoryRequired,
    ErrorCode::NoBudget,
    ErrorCode::OverBudgetCategory,
    ErrorCode::TrancheConditionUnmet,
    ErrorCode::ReportOverdue,
    ErrorCode::ReportExists,
    ErrorCode::UnknownReport,
    ErrorCode::InvalidReportState,
    ErrorCode::ReportsOutstanding,
    ErrorCode::DocumentExists,
    ErrorCode::FutureDate,
];

impl ErrorCode {
    /// The code as the contract spells it, e.g. `"over_disbursement"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::MalformedCommand => "malformed_command",
            ErrorCode::InvalidAmount => "invalid_amount",
            ErrorCode::CurrencyMismatch => "currency_mismatch",
            ErrorCode::UnknownFund => "unknown_fund",
            ErrorCode::UnknownGrant => "unknown_grant",
            ErrorCode::FundExists => "fund_exists",
            ErrorCode::GrantExists => "grant_exists",
            ErrorCode::InvalidState => "invalid_state",
            ErrorCode::FourEyesViolation => "four_eyes_violation",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::AgencyAlreadyAssigned => "agency_already_assigned",
            ErrorCode::AgencyNotAssigned => "agency_not_assigned",
            ErrorCode::OverAllocation => "over_allocation",
            ErrorCode::AllocationBelowDisbursed => "allocation_below_disbursed",
            ErrorCode::AgencyHasFunds => "agency_has_funds",
            ErrorCode::OverDisbursement => "over_disbursement",
            ErrorCode::OverExpenditure => "over_expenditure",
            ErrorCode::OverRefund => "over_refund",
            ErrorCode::AmountBelowAllocated => "amount_below_allocated",
            ErrorCode::UnsettledBalance => "unsettled_balance",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::CommandIdConflict => "command_id_conflict",
            ErrorCode::LeadExists => "lead_exists",
            ErrorCode::PledgeExists => "pledge_exists",
            ErrorCode::UnknownPledge => "unknown_pledge",
            ErrorCode::OverPledge => "over_pledge",
            ErrorCode::BudgetMismatch => "budget_mismatch",
            ErrorCode::IndirectOverCap => "indirect_over_cap",
            ErrorCode::CategoryRequired => "category_required",
            ErrorCode::NoBudget => "no_budget",
            ErrorCode::OverBudgetCategory => "over_budget_category",
            ErrorCode::TrancheConditionUnmet => "tranche_condition_unmet",
            ErrorCode::ReportOverdue => "report_overdue",
            ErrorCode::ReportExists => "report_exists",
            ErrorCode::UnknownReport => "unknown_report",
            ErrorCode::InvalidReportState => "invalid_report_state",
            ErrorCode::ReportsOutstanding => "reports_outstanding",
            ErrorCode::DocumentExists => "document_exists",
            ErrorCode::FutureDate => "future_date",
        }
    }

    /// The code for a contract spelling, the inverse of [`ErrorCode::as_str`].
    pub fn parse(text: &str) -> Option<ErrorCode> {
        ERROR_CODES
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected command (or an unreadable stored event): a code and a message with the figures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DomainError {
    /// The stable code.
    pub code: ErrorCode,
    /// A sentence a person can act on.
    pub message: String,
}

impl DomainError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> DomainError {
        DomainError {
            code,
            message: message.into(),
        }
    }

    /// A `malformed_command` error.
    pub fn malformed(message: impl Into<String>) -> DomainError {
        DomainError::new(ErrorCode::MalformedCommand, message)
    }

    /// An `invalid_amount` error.
    pub fn invalid_amount(message: impl Into<String>) -> DomainError {
        DomainError::new(ErrorCode::InvalidAmount, message)
    }
}
