//! `evolve`: folds one event into the world. Events come from the log, so evolve never
//! rejects; an event about an unknown fund or grant (impossible in a log written by
//! `decide`) only moves its stream's version.

use crate::event::Event;
use crate::money::Amount;
use crate::world::{AgencyState, FundState, GrantState, Status, World};

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
        Event::FundRegistered { .. } | Event::ContributionRecorded { .. } => {
            evolve_fund(world, event)
        }
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
                },
            );
        }
        Event::ContributionRecorded { fund, amount, .. } => {
            if let Some(state) = world.funds.get_mut(fund) {
                state.received += amount.amount;
            }
        }
        _ => {}
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
    } = event
    else {
        return;
    };
    if let Some(state) = world.funds.get_mut(fund) {
        state.grants += 1;
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
            fund.into_iter().for_each(|fund| fund.disbursed += amount);
        }
        Event::ExpenditureRecorded { .. } => {
            state.expended += amount;
            agency_state
                .into_iter()
                .for_each(|agency| agency.expended += amount);
        }
        _ => {
            state.refunded += amount;
            agency_state
                .into_iter()
                .for_each(|agency| agency.refunded += amount);
            fund.into_iter().for_each(|fund| fund.refunded += amount);
        }
    }
}

fn evolve_grant(world: &mut World, event: &Event) {
    let Some(state) = event.grant().and_then(|grant| world.grants.get_mut(grant)) else {
        return;
    };
    match event {
        Event::GrantRejected { .. } => state.status = Status::Rejected,
        Event::GrantApproved {
            amount, decided_on, ..
        } => {
            state.status = Status::Approved;
            state.amount = amount.amount;
            state.decided_on = Some(*decided_on);
        }
        Event::GrantRevised {
            amount, ends_on, ..
        } => {
            state.amount = amount.amount;
            state.ends_on = *ends_on;
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
        _ => evolve_agency(state, event),
    }
}

fn evolve_agency(state: &mut GrantState, event: &Event) {
    match event {
        Event::AgencyAssigned {
            agency,
            lead,
            allocation,
            ..
        } => state.agencies.push(AgencyState {
            agency: agency.clone(),
            lead: *lead,
            allocation: allocation.amount,
            disbursed: Amount::ZERO,
            expended: Amount::ZERO,
            refunded: Amount::ZERO,
        }),
        Event::AllocationRevised {
            agency, allocation, ..
        } => {
            if let Some(agency) = state
                .agencies
                .iter_mut()
                .find(|state| state.agency == *agency)
            {
                agency.allocation = allocation.amount;
            }
        }
        Event::AgencyWithdrawn { agency, .. } => {
            state.agencies.retain(|state| state.agency != *agency)
        }
        _ => {}
    }
}
