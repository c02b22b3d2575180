//! grantflow's pure domain: money, ids, commands, events and the decider.
//!
//! Invariants: no IO, no async, no floating point for money. `decide` is a pure function of
//! the world and a parsed command; `evolve` folds events into the world; the views are read
//! from the world. Every rejected command returns a [`DomainError`] with a stable
//! [`ErrorCode`] and a message with the figures.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod actor;
pub mod catalog;
pub mod check;
pub mod codes;
pub mod command;
pub mod command_schema;
pub mod decide;
pub mod error;
pub mod event;
pub mod evolve;
mod fund_rules;
pub mod iati_codes;
pub mod money;
pub mod parse;
mod reports;
mod rules;
pub mod terms;
pub mod upcast;
pub mod values;
pub mod view;
pub mod world;

pub use check::{check_command, Breach, RuleCode, StoredEvent, EVENT_NOT_DERIVABLE};
pub use command::{
    fund_stream, grant_stream, BudgetText, Command, CommandRequest, DocumentOwner, ForeignAmount,
    COMMAND_NAMES,
};
pub use decide::{allowed_states, decide};
pub use error::{DomainError, ErrorCode, ERROR_CODES};
pub use event::{
    command_of_event, Event, ReportedAmount, EVENT_SCHEMA, EVENT_SCHEMA_EXTENDED, EVENT_TYPES,
};
pub use evolve::{evolve, moves_fund_figures};
pub use money::{parse_amount, Amount, Currency, DecimalText, Money};
pub use parse::{parse_command, parse_command_on};
pub use terms::{Category, FundTerms, IncomeKind, Percent, ReportKind, ReportStatus};
pub use values::{is_valid_id, Country, Date};
pub use view::{
    AgencyView, BudgetLineView, DocumentView, EquivalentView, FundView, GrantDetails, GrantView,
    PledgeView, ReportRow, ReportView, SectorView, TermsView,
};
pub use world::{
    AgencyState, DocumentState, FundPart, FundState, GrantState, PledgeState, ReportState, Status,
    StreamState, World,
};
