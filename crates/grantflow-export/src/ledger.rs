//! What the IATI activities export collects from the log as it folds it: per fund and per
//! (selected) grant, the transactions, the dates and the budgets as decided, which the
//! figures ([`grantflow_domain::World`]) do not keep.

use std::collections::{HashMap, HashSet};

use grantflow_domain::{Amount, Date, Event, GrantState, World};
use grantflow_engine::EngineError;
use grantflow_store::Envelope;

use crate::fold::ExportError;

/// The day part of an envelope's `recorded_at`.
pub(crate) fn recorded_date(envelope: &Envelope) -> Result<Date, ExportError> {
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

pub(crate) fn earliest(known: Option<Date>, date: Date) -> Option<Date> {
    Some(known.map_or(date, |known| known.min(date)))
}

/// The code of a transaction-type (IATI TransactionType codelist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    IncomingFunds,
    OutgoingCommitment,
    Disbursement,
    Expenditure,
    IncomingCommitment,
}

impl Flow {
    pub(crate) fn code(self) -> &'static str {
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
pub(crate) enum Counterpart {
    Provider(String),
    Receiver(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    pub(crate) flow: Flow,
    pub(crate) date: Date,
    pub(crate) value: Amount,
    pub(crate) description: Option<String>,
    pub(crate) counterpart: Option<Counterpart>,
    pub(crate) position: u64,
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
pub(crate) struct FundLedger {
    /// The earlier of the day the fund was registered and its first contribution.
    pub(crate) started_on: Option<Date>,
    pub(crate) last_updated: String,
    /// Donors in order of their first pledge or contribution.
    pub(crate) donors: Vec<String>,
    pub(crate) transactions: Vec<Transaction>,
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
pub(crate) struct Budget {
    pub(crate) amount: Amount,
    pub(crate) value_date: Date,
    pub(crate) ends_on: Option<Date>,
}

/// What a grant's activity needs beyond its [`GrantState`].
#[derive(Debug, Default)]
pub(crate) struct GrantLedger {
    pub(crate) proposed_on: Option<Date>,
    pub(crate) last_updated: String,
    pub(crate) first_disbursed_on: Option<Date>,
    pub(crate) original: Option<Budget>,
    pub(crate) revised_on: Option<Date>,
    pub(crate) transactions: Vec<Transaction>,
}

/// Per fund and per (selected) grant, what the fold collects.
pub(crate) struct Ledgers {
    pub(crate) selected: Option<HashSet<String>>,
    pub(crate) funds: HashMap<String, FundLedger>,
    pub(crate) grants: HashMap<String, GrantLedger>,
}

impl Ledgers {
    pub(crate) fn new(selected: Option<HashSet<String>>) -> Self {
        Ledgers {
            selected,
            funds: HashMap::new(),
            grants: HashMap::new(),
        }
    }

    pub(crate) fn record(
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

pub(crate) fn record_grant_event(
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
        } => {
            // period_end may lie ahead (it plans); what was spent is never dated ahead of
            // the day it was recorded (IATI rules 11.2.1 and 11.2.2).
            let date = (*period_end).min(recorded_date(envelope)?);
            Some(
                Transaction::new(Flow::Expenditure, date, amount.amount, envelope)
                    .described(Some(format!("Expenditure reported by {agency}")))
                    .with(Counterpart::Provider(agency.clone())),
            )
        }
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
pub(crate) fn grouped_thousands(decimal: &str) -> String {
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
