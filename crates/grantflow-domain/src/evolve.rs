//! `evolve`: folds one event into the world. Events come from the log, so evolve never
//! rejects; an event about an unknown fund or grant (impossible in a log written by
//! `decide`) only moves its stream's version.

use crate::event::Event;
use crate::money::Amount;
use crate::terms::{FundTerms, ReportStatus};
use crate::world::{
    AgencyState, DocumentState, FundState, GrantState, PledgeState, ReportState, Status, World,
};

/// Applies `event`, found at global log `position`, to `world`.
pub fn evolve(world: &mut World, position: u64, event: &Event) {
    let (streams, id) = match event.fund_stream_id() {
        Some(fund) => (&mut world.fund_streams, fund),
        None => (&mut world.grant_streams, event.grant().unwrap_or_default()),
    };
    // Look up without allocating; only a stream's first event allocates its key.
    let stream = match streams.get_mut(id) {
        Some(stream) => stream,
        None => streams.entry(id.to_string()).or_default(),
    };
    stream.version += 1;
    stream.position = position;
    match event {
        Event::FundRegistered { .. }
        | Event::ContributionRecorded { .. }
        | Event::TermsRevised { .. }
        | Event::PledgeRecorded { .. }
        | Event::FeeCharged { .. }
        | Event::IncomeRecorded { .. }
        | Event::FundDocumentAttached { .. } => evolve_fund(world, event),
        Event::GrantCommitted { .. } | Event::CommitmentRevised { .. } => {
            evolve_commitment(world, event)
        }
        Event::GrantProposed { .. } => evolve_proposal(world, event),
        Event::DisbursementRecorded { .. }
        | Event::ExpenditureRecorded { .. }
        | Event::RefundRecorded { .. } => evolve_movement(world, event),
        _ => evolve_grant(world, event),
    }
}

fn evolve_fund(world: &mut World, event: &Event) {
    match event {
        Event::FundRegistered {
            fund,
            name,
            currency,
            ..
        } => {
            if !world.funds.contains_key(fund) {
                world.fund_order.push(fund.clone());
            }
            world.funds.insert(
                fund.clone(),
                FundState {
                    fund: fund.clone(),
                    name: name.clone(),
                    currency: *currency,
                    received: Amount::ZERO,
                    committed: Amount::ZERO,
                    disbursed: Amount::ZERO,
                    refunded: Amount::ZERO,
                    grants: 0,
                    terms: event.registered_terms().apply(FundTerms::default()),
                    pledges: Vec::new(),
                    fees: Amount::ZERO,
                    income: Amount::ZERO,
                    documents: Vec::new(),
                    iati_org_ref: match event {
                        Event::FundRegistered { iati_org_ref, .. } => iati_org_ref.clone(),
                        _ => None,
                    },
                },
            );
        }
        _ => {
            if let Some(state) = event
                .fund_stream_id()
                .and_then(|id| world.funds.get_mut(id))
            {
                evolve_fund_figures(state, event);
            }
        }
    }
}

fn evolve_fund_figures(state: &mut FundState, event: &Event) {
    match event {
        Event::ContributionRecorded { amount, pledge, .. } => {
            state.received += amount.amount;
            if let Some(pledge) = pledge
                .as_ref()
                .and_then(|id| state.pledges.iter_mut().find(|p| p.pledge == *id))
            {
                pledge.paid += amount.amount;
            }
        }
        Event::TermsRevised { .. } => {
            if let Some(terms) = event.revised_terms() {
                state.terms = terms;
            }
        }
        Event::PledgeRecorded {
            pledge,
            donor,
            amount,
            signed_on,
            due_on,
            ..
        } => state.pledges.push(PledgeState {
            pledge: pledge.clone(),
            donor: donor.clone(),
            amount: amount.amount,
            paid: Amount::ZERO,
            signed_on: *signed_on,
            due_on: *due_on,
        }),
        Event::FeeCharged { amount, .. } => state.fees += amount.amount,
        Event::IncomeRecorded { amount, .. } => state.income += amount.amount,
        Event::FundDocumentAttached { .. } => {
            if let Some(document) = document_state(event) {
                state.documents.push(document);
            }
        }
        _ => {}
    }
}

/// The document a `fund.document_attached` or `grant.document_attached` files.
fn document_state(event: &Event) -> Option<DocumentState> {
    match event {
        Event::FundDocumentAttached {
            document,
            title,
            category,
            sha256,
            url,
            issued_on,
            ..
        }
        | Event::GrantDocumentAttached {
            document,
            title,
            category,
            sha256,
            url,
            issued_on,
            ..
        } => Some(DocumentState {
            document: document.clone(),
            title: title.clone(),
            category: category.clone(),
            sha256: sha256.clone(),
            url: url.clone(),
            issued_on: *issued_on,
        }),
        _ => None,
    }
}

fn evolve_commitment(world: &mut World, event: &Event) {
    let (fund, change) = match event {
        Event::GrantCommitted {
            fund, commitment, ..
        } => (fund, commitment.amount),
        Event::CommitmentRevised {
            fund,
            previous_commitment,
            commitment,
            ..
        } => (fund, commitment.amount - previous_commitment.amount),
        _ => return,
    };
    if let Some(state) = world.funds.get_mut(fund) {
        state.committed += change;
    }
}

fn evolve_proposal(world: &mut World, event: &Event) {
    let Event::GrantProposed {
        grant,
        fund,
        title,
        currency,
        requested,
        country,
        regions,
        starts_on,
        ends_on,
        activities,
        submitted_by,
        sectors,
    } = event
    else {
        return;
    };
    if let Some(state) = world.funds.get_mut(fund) {
        evolve_fund_of_grant(state, event);
    }
    if !world.grants.contains_key(grant) {
        world.grant_order.push(grant.clone());
    }
    let state = GrantState {
        grant: grant.clone(),
        fund: fund.clone(),
        title: title.clone(),
        currency: *currency,
        status: Status::Proposed,
        suspended_from: None,
        submitted_by: submitted_by.clone(),
        requested: requested.amount,
        amount: Amount::ZERO,
        country: country.clone(),
        regions: regions.clone(),
        starts_on: *starts_on,
        ends_on: *ends_on,
        activities: activities.clone(),
        decided_on: None,
        closed_on: None,
        agencies: Vec::new(),
        disbursed: Amount::ZERO,
        expended: Amount::ZERO,
        refunded: Amount::ZERO,
        reported_equivalent: None,
        reports: Vec::new(),
        documents: Vec::new(),
        sectors: sectors.clone(),
    };
    world.grants.insert(grant.clone(), state);
}

/// Disbursements, expenditures and refunds: the agency's, the grant's and the fund's sums.
fn evolve_movement(world: &mut World, event: &Event) {
    let (grant, agency, amount) = match event {
        Event::DisbursementRecorded {
            grant,
            agency,
            amount,
            ..
        }
        | Event::ExpenditureRecorded {
            grant,
            agency,
            amount,
            ..
        }
        | Event::RefundRecorded {
            grant,
            agency,
            amount,
            ..
        } => (grant, agency, amount.amount),
        _ => return,
    };
    let Some(state) = world.grants.get_mut(grant) else {
        return;
    };
    let fund = world.funds.get_mut(&state.fund);
    let agency_state = state
        .agencies
        .iter_mut()
        .find(|state| state.agency == *agency);
    match event {
        Event::DisbursementRecorded { .. } => {
            state.disbursed += amount;
            if state.status == Status::Approved {
                state.status = Status::Active;
            }
            agency_state
                .into_iter()
                .for_each(|agency| agency.disbursed += amount);
            fund.into_iter()
                .for_each(|fund| evolve_fund_of_grant(fund, event));
        }
        Event::ExpenditureRecorded { category, .. } => {
            state.expended += amount;
            agency_state.into_iter().for_each(|agency| {
                agency.expended += amount;
                if let Some(category) = category {
                    agency.category_expended[category.index()] += amount;
                }
            });
        }
        _ => {
            state.refunded += amount;
            agency_state
                .into_iter()
                .for_each(|agency| agency.refunded += amount);
            fund.into_iter()
                .for_each(|fund| evolve_fund_of_grant(fund, event));
        }
    }
}

/// What an event of a grant's stream does to its fund's figures: a proposal counts a grant,
/// a disbursement and a refund move the fund's sums. (Every event of a fund's stream changes
/// that fund's version at least.) Folds that keep funds only apply this to the fund of the
/// grant, and need no grant's state.
pub fn evolve_fund_of_grant(fund: &mut FundState, event: &Event) {
    match event {
        Event::GrantProposed { .. } => fund.grants += 1,
        Event::DisbursementRecorded { amount, .. } => fund.disbursed += amount.amount,
        Event::RefundRecorded { amount, .. } => fund.refunded += amount.amount,
        _ => {}
    }
}

/// Whether an event of this type may change a fund's figures: every event of a fund's stream,
/// and the grant events [`evolve_fund_of_grant`] counts. A fold that keeps funds only decodes
/// no other event.
pub fn moves_fund_figures(event_type: &str) -> bool {
    event_type.starts_with("fund.")
        || matches!(
            event_type,
            "grant.proposed" | "grant.disbursement_recorded" | "grant.refund_recorded"
        )
}

fn evolve_grant(world: &mut World, event: &Event) {
    let Some(state) = event.grant().and_then(|grant| world.grants.get_mut(grant)) else {
        return;
    };
    match event {
        Event::GrantRejected { .. } => state.status = Status::Rejected,
        Event::GrantApproved {
            amount,
            decided_on,
            reported_equivalent,
            ..
        } => {
            state.status = Status::Approved;
            state.amount = amount.amount;
            state.decided_on = Some(*decided_on);
            state.reported_equivalent = *reported_equivalent;
        }
        Event::GrantRevised {
            amount,
            ends_on,
            sectors,
            ..
        } => {
            state.amount = amount.amount;
            state.ends_on = *ends_on;
            if let Some(sectors) = sectors {
                state.sectors = sectors.clone();
            }
        }
        Event::GrantSuspended { .. } => {
            state.suspended_from = Some(state.status);
            state.status = Status::Suspended;
        }
        Event::GrantResumed { status, .. } => {
            state.status = *status;
            state.suspended_from = None;
        }
        Event::GrantCancelled { .. } => state.status = Status::Cancelled,
        Event::GrantClosed { closed_on, .. } => {
            state.status = Status::Closed;
            state.closed_on = Some(*closed_on);
        }
        Event::GrantFinalized { .. } => state.status = Status::Finalized,
        Event::GrantDocumentAttached { .. } => state.documents.extend(document_state(event)),
        Event::ReportScheduled { .. }
        | Event::ReportSubmitted { .. }
        | Event::ReportAccepted { .. }
        | Event::ReportReturned { .. } => evolve_report(state, event),
        _ => evolve_agency(state, event),
    }
}

fn evolve_report(state: &mut GrantState, event: &Event) {
    if let Event::ReportScheduled {
        report,
        kind,
        period_end,
        due_on,
        ..
    } = event
    {
        state.reports.push(ReportState {
            report: report.clone(),
            kind: *kind,
            period_end: *period_end,
            due_on: *due_on,
            submitted_on: None,
            accepted_on: None,
            submitted_by: None,
            history: Vec::new(),
        });
        return;
    }
    let (id, date, status) = match event {
        Event::ReportSubmitted {
            report,
            submitted_on,
            ..
        } => (report, *submitted_on, ReportStatus::Submitted),
        Event::ReportAccepted {
            report,
            accepted_on,
            ..
        } => (report, *accepted_on, ReportStatus::Accepted),
        Event::ReportReturned {
            report,
            returned_on,
            ..
        } => (report, *returned_on, ReportStatus::Returned),
        _ => return,
    };
    let Some(report) = state.reports.iter_mut().find(|r| r.report == *id) else {
        return;
    };
    report.history.push((date, status));
    match event {
        Event::ReportSubmitted { submitted_by, .. } => {
            report.submitted_on = Some(date);
            report.submitted_by = Some(submitted_by.clone());
        }
        Event::ReportAccepted { .. } => report.accepted_on = Some(date),
        _ => {}
    }
}

fn evolve_agency(state: &mut GrantState, event: &Event) {
    match event {
        Event::AgencyAssigned {
            agency,
            lead,
            allocation,
            budget,
            ..
        } => state.agencies.push(AgencyState {
            agency: agency.clone(),
            lead: *lead,
            allocation: allocation.amount,
            disbursed: Amount::ZERO,
            expended: Amount::ZERO,
            refunded: Amount::ZERO,
            budget: budget.map(|stored| stored.budget),
            category_expended: [Amount::ZERO; 8],
        }),
        Event::AllocationRevised {
            agency,
            allocation,
            budget,
            ..
        } => {
            if let Some(agency) = state
                .agencies
                .iter_mut()
                .find(|state| state.agency == *agency)
            {
                agency.allocation = allocation.amount;
                if let Some(stored) = budget {
                    agency.budget = Some(stored.budget);
                }
            }
        }
        Event::AgencyWithdrawn { agency, .. } => {
            state.agencies.retain(|state| state.agency != *agency)
        }
        _ => {}
    }
}
