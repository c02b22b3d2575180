//! The fund commands' own rules (docs/domain.md, part two: fund terms, pledges, fees, income,
//! documents), once the fund's existence, the version and the amounts are checked.

use crate::command::{Command, DocumentOwner};
use crate::error::{DomainError, ErrorCode};
use crate::event::Event;
use crate::money::{Amount, Money};
use crate::rules::{exact, human};
use crate::world::{DocumentState, FundState};

type Decision = Result<Vec<Event>, DomainError>;

/// Decides a command on an existing fund.
pub(crate) fn decide_fund(fund: &FundState, command: &Command) -> Decision {
    match command {
        Command::RecordContribution { .. } => record_contribution(fund, command),
        Command::ReviseFundTerms { reason, terms, .. } => {
            let next = terms.apply(fund.terms);
            Ok(vec![Event::TermsRevised {
                fund: fund.fund.clone(),
                admin_fee_percent: next.admin_fee_percent,
                indirect_max_percent: next.indirect_max_percent,
                tranche_threshold_percent: next.tranche_threshold_percent,
                hold_on_overdue_reports: next.hold_on_overdue_reports,
                reason: reason.clone(),
            }])
        }
        Command::RecordPledge {
            pledge,
            donor,
            amount,
            signed_on,
            due_on,
            ..
        } => {
            let amount = exact(amount, fund.currency, command, "amount")?;
            if let Some(existing) = fund.pledge(pledge) {
                return Err(DomainError::new(
                    ErrorCode::PledgeExists,
                    format!(
                        "pledge {pledge} already exists in fund {} ({} from {}, signed on {}); choose another id",
                        fund.fund,
                        human(existing.amount, fund.currency),
                        existing.donor,
                        existing.signed_on
                    ),
                ));
            }
            Ok(vec![Event::PledgeRecorded {
                fund: fund.fund.clone(),
                pledge: pledge.clone(),
                donor: donor.clone(),
                amount,
                signed_on: *signed_on,
                due_on: *due_on,
            }])
        }
        Command::RecordIncome {
            kind,
            amount,
            received_on,
            ..
        } => Ok(vec![Event::IncomeRecorded {
            fund: fund.fund.clone(),
            kind: *kind,
            amount: exact(amount, fund.currency, command, "amount")?,
            received_on: *received_on,
        }]),
        Command::AttachDocument { .. } => attach_document(
            command,
            &fund.documents,
            &format!("fund {}", fund.fund),
            DocumentOwner::Fund(fund.fund.clone()),
        ),
        _ => Ok(Vec::new()),
    }
}

fn record_contribution(fund: &FundState, command: &Command) -> Decision {
    let Command::RecordContribution {
        donor,
        amount,
        received_on,
        original,
        pledge,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let amount = exact(amount, fund.currency, command, "amount")?;
    if let Some(id) = pledge {
        let known = fund.pledge(id).filter(|state| state.donor == *donor);
        let Some(state) = known else {
            let why = match fund.pledge(id) {
                Some(other) => format!(
                    "pledge {id} of fund {} is {}'s, not {donor}'s",
                    fund.fund, other.donor
                ),
                None => format!(
                    "fund {} has no pledge {id}; record it first with record-pledge",
                    fund.fund
                ),
            };
            return Err(DomainError::new(ErrorCode::UnknownPledge, why));
        };
        let outstanding = state.outstanding();
        if amount.amount > outstanding {
            return Err(DomainError::new(
                ErrorCode::OverPledge,
                format!(
                    "pledge {id} of {donor} is {} of which {} is already paid; {} outstanding, and this contribution of {} exceeds it by {}",
                    human(state.amount, fund.currency),
                    human(state.paid, fund.currency),
                    human(outstanding, fund.currency),
                    human(amount.amount, fund.currency),
                    human(amount.amount - outstanding, fund.currency)
                ),
            ));
        }
    }
    let mut events = vec![Event::ContributionRecorded {
        fund: fund.fund.clone(),
        donor: donor.clone(),
        amount,
        received_on: *received_on,
        original_amount: original
            .map(|original| Money::new(original.amount, original.currency.decimals())),
        original_currency: original.map(|original| original.currency),
        pledge: pledge.clone(),
    }];
    let percent = fund.terms.admin_fee_percent;
    let fee = percent.of_half_even(amount.amount);
    if fee > Amount::ZERO {
        events.push(Event::FeeCharged {
            fund: fund.fund.clone(),
            donor: donor.clone(),
            contribution_amount: amount,
            received_on: *received_on,
            percent,
            amount: Money::new(fee, fund.currency.decimals()),
        });
    }
    Ok(events)
}

/// attach-document on a grant or a fund whose filed documents are `documents`: the id is
/// unused (`document_exists`), and the event of the owner's stream.
pub(crate) fn attach_document(
    command: &Command,
    documents: &[DocumentState],
    owner_name: &str,
    owner: DocumentOwner,
) -> Decision {
    let Command::AttachDocument {
        document,
        title,
        category,
        sha256,
        url,
        issued_on,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    check_document_unused(documents, document, owner_name)?;
    let (document, title, category, sha256, url, issued_on) = (
        document.clone(),
        title.clone(),
        category.clone(),
        sha256.clone(),
        url.clone(),
        *issued_on,
    );
    Ok(vec![match owner {
        DocumentOwner::Fund(fund) => Event::FundDocumentAttached {
            fund,
            document,
            title,
            category,
            sha256,
            url,
            issued_on,
        },
        DocumentOwner::Grant(grant) => Event::GrantDocumentAttached {
            grant,
            document,
            title,
            category,
            sha256,
            url,
            issued_on,
        },
    }])
}

/// `document_exists`: ids are unique in their grant or fund.
fn check_document_unused(
    documents: &[DocumentState],
    document: &str,
    owner: &str,
) -> Result<(), DomainError> {
    match documents.iter().find(|state| state.document == document) {
        Some(existing) => Err(DomainError::new(
            ErrorCode::DocumentExists,
            format!(
                "{owner} already has a document {document} ({:?}, SHA-256 {}); choose another id",
                existing.title, existing.sha256
            ),
        )),
        None => Ok(()),
    }
}
