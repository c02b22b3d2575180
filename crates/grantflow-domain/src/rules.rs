//! The grant commands' own rules (the table of docs/domain.md), once existence, version, money and
//! state are checked. Each returns the events to append or the first broken rule.
//! [`GrantCtx`] (who asks, the grant, its fund) and the money helpers the rules share live
//! here too; `decide.rs` resolves the target, runs the generic checks and calls in.

use crate::command::Command;
use crate::error::{DomainError, ErrorCode};
use crate::event::{Event, ReportedAmount};
use crate::money::{Amount, Currency, DecimalText, Money};
use crate::terms::{Budget, StoredBudget};
use crate::values::Date;

mod budget;
use crate::world::{AgencyState, FundState, GrantState, Status};

type Decision = Result<Vec<Event>, DomainError>;

/// A grant command's context: who asks, the grant and its fund.
pub(crate) struct GrantCtx<'a> {
    pub(crate) actor: &'a str,
    pub(crate) grant: &'a GrantState,
    pub(crate) fund: &'a FundState,
}

impl GrantCtx<'_> {
    pub(crate) fn currency(&self) -> Currency {
        self.fund.currency
    }

    pub(crate) fn money(&self, amount: Amount) -> Money {
        Money::new(amount, self.currency().decimals())
    }

    pub(crate) fn human(&self, amount: Amount) -> String {
        human(amount, self.currency())
    }

    pub(crate) fn id(&self) -> String {
        self.grant.grant.clone()
    }

    pub(crate) fn available(&self) -> Amount {
        self.fund.available()
    }

    pub(crate) fn agency(&self, agency: &str) -> Result<&AgencyState, DomainError> {
        self.grant.agency(agency).ok_or_else(|| {
            let current: Vec<&str> = self
                .grant
                .agencies
                .iter()
                .map(|state| state.agency.as_str())
                .collect();
            let listed = if current.is_empty() {
                "none".to_string()
            } else {
                current.join(", ")
            };
            DomainError::new(
                ErrorCode::AgencyNotAssigned,
                format!(
                    "agency {agency} is not assigned to grant {}; its agencies are: {listed}",
                    self.grant.grant
                ),
            )
        })
    }

    /// Four eyes: whoever proposed the grant does not approve or revise it.
    pub(crate) fn check_four_eyes(&self, command: &str) -> Result<(), DomainError> {
        if !crate::actor::same_actor(self.actor, &self.grant.submitted_by) {
            return Ok(());
        }
        Err(DomainError::new(
            ErrorCode::FourEyesViolation,
            format!(
                "grant {} was proposed by {}; {command} must be issued by someone else (four-eyes rule)",
                self.grant.grant, self.grant.submitted_by
            ),
        ))
    }

    /// A `fund.commitment_revised` event if the commitment moves from `previous` to `next`.
    pub(crate) fn commitment_revised(&self, previous: Amount, next: Amount, cause: &str) -> Event {
        Event::CommitmentRevised {
            fund: self.fund.fund.clone(),
            grant: self.id(),
            previous_commitment: self.money(previous),
            commitment: self.money(next),
            cause: cause.to_string(),
        }
    }

    /// [`GrantCtx::commitment_revised`], or nothing when the commitment does not move (an
    /// event with no change in it would move the fund's version for nothing).
    pub(crate) fn commitment_change(
        &self,
        previous: Amount,
        next: Amount,
        cause: &str,
    ) -> Option<Event> {
        (previous != next).then(|| self.commitment_revised(previous, next, cause))
    }

    pub(crate) fn stored_budget(&self, budget: Budget) -> StoredBudget {
        StoredBudget {
            budget,
            decimals: self.currency().decimals(),
        }
    }

    pub(crate) fn exact(
        &self,
        text: &DecimalText,
        command: &Command,
        field: &str,
    ) -> Result<Amount, DomainError> {
        exact(text, self.currency(), command, field).map(|money| money.amount)
    }
}

/// An amount of the command in the fund's currency, exact.
pub(crate) fn exact(
    text: &DecimalText,
    currency: Currency,
    command: &Command,
    field: &str,
) -> Result<Money, DomainError> {
    let amount =
        text.to_amount_in_named(currency, || format!("{}: field `{field}`", command.name()))?;
    Ok(Money::new(amount, currency.decimals()))
}

/// `amount` with thousands separators and the currency code: "3,209,232.40 USD".
pub(crate) fn human(amount: Amount, currency: Currency) -> String {
    format!("{} {currency}", amount.format_human(currency.decimals()))
}

pub(crate) fn approve_grant(
    ctx: &GrantCtx,
    decided_on: Date,
    reported: Option<ReportedAmount>,
) -> Decision {
    ctx.check_four_eyes("approve-grant")?;
    let amount = ctx.grant.requested;
    let available = ctx.available();
    if amount > available {
        return Err(DomainError::new(
            ErrorCode::InsufficientFunds,
            format!(
                "fund {} has {} available; approving grant {} commits {}, {} more than available",
                ctx.fund.fund,
                ctx.human(available),
                ctx.grant.grant,
                ctx.human(amount),
                ctx.human(amount - available)
            ),
        ));
    }
    Ok(vec![
        Event::GrantApproved {
            grant: ctx.id(),
            fund: ctx.fund.fund.clone(),
            amount: ctx.money(amount),
            decided_on,
            reported_equivalent: reported,
        },
        Event::GrantCommitted {
            fund: ctx.fund.fund.clone(),
            grant: ctx.id(),
            amount: ctx.money(amount),
            commitment: ctx.money(amount),
        },
    ])
}

pub(crate) fn assign_agency(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::AssignAgency {
        agency,
        allocation,
        lead,
        budget,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let allocation = ctx.exact(allocation, command, "allocation")?;
    if let Some(existing) = ctx.grant.agency(agency) {
        return Err(DomainError::new(
            ErrorCode::AgencyAlreadyAssigned,
            format!(
                "agency {agency} is already assigned to grant {} with an allocation of {}; use revise-allocation to change it",
                ctx.grant.grant,
                ctx.human(existing.allocation)
            ),
        ));
    }
    if let (true, Some(current)) = (*lead, ctx.grant.lead()) {
        return Err(DomainError::new(
            ErrorCode::LeadExists,
            format!(
                "grant {} already has a lead agency, {}; assign {agency} without `lead`",
                ctx.grant.grant, current.agency
            ),
        ));
    }
    check_allocation_total(ctx, ctx.grant.allocated() + allocation)?;
    let budget = match budget {
        Some(text) => Some(budget::check_budget(
            ctx, command, agency, allocation, text, None,
        )?),
        None => None,
    };
    Ok(vec![Event::AgencyAssigned {
        grant: ctx.id(),
        agency: agency.clone(),
        lead: *lead,
        allocation: ctx.money(allocation),
        budget: budget.map(|budget| ctx.stored_budget(budget)),
    }])
}

fn check_allocation_total(ctx: &GrantCtx, total: Amount) -> Result<(), DomainError> {
    let amount = ctx.grant.amount;
    if total <= amount {
        return Ok(());
    }
    Err(DomainError::new(
        ErrorCode::OverAllocation,
        format!(
            "allocations on grant {} would total {}, above its amount of {} by {}; {} is unallocated",
            ctx.grant.grant,
            ctx.human(total),
            ctx.human(amount),
            ctx.human(total - amount),
            ctx.human(amount - ctx.grant.allocated())
        ),
    ))
}

pub(crate) fn revise_allocation(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::ReviseAllocation {
        agency,
        allocation,
        reason,
        budget,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let allocation = ctx.exact(allocation, command, "allocation")?;
    let current = ctx.agency(agency)?;
    let net = current.net_disbursed();
    if allocation < net {
        return Err(DomainError::new(
            ErrorCode::AllocationBelowDisbursed,
            format!(
                "{agency} has already received {} (net of refunds) on grant {}; its allocation cannot go below that, and {} was asked",
                ctx.human(net),
                ctx.grant.grant,
                ctx.human(allocation)
            ),
        ));
    }
    check_allocation_total(ctx, ctx.grant.allocated() - current.allocation + allocation)?;
    let budget = match budget {
        Some(text) => Some(budget::check_budget(
            ctx,
            command,
            agency,
            allocation,
            text,
            Some(current),
        )?),
        None => {
            budget::check_unbudgeted_revision(ctx, current, allocation)?;
            None
        }
    };
    Ok(vec![Event::AllocationRevised {
        grant: ctx.id(),
        agency: agency.clone(),
        previous_allocation: ctx.money(current.allocation),
        allocation: ctx.money(allocation),
        reason: reason.clone(),
        budget: budget.map(|budget| ctx.stored_budget(budget)),
    }])
}

pub(crate) fn withdraw_agency(ctx: &GrantCtx, agency: &str, reason: &str) -> Decision {
    let current = ctx.agency(agency)?;
    let net = current.net_disbursed();
    if net != Amount::ZERO {
        return Err(DomainError::new(
            ErrorCode::AgencyHasFunds,
            format!(
                "{agency} has received {} (net of refunds) on grant {}; only an agency with nothing disbursed net of refunds can be withdrawn",
                ctx.human(net),
                ctx.grant.grant
            ),
        ));
    }
    Ok(vec![Event::AgencyWithdrawn {
        grant: ctx.id(),
        agency: agency.to_string(),
        allocation: ctx.money(current.allocation),
        reason: reason.to_string(),
    }])
}

pub(crate) fn record_disbursement(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::RecordDisbursement {
        agency,
        amount,
        paid_on,
        reference,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let amount = ctx.exact(amount, command, "amount")?;
    let current = ctx.agency(agency)?;
    budget::check_no_report_overdue(ctx, *paid_on)?;
    budget::check_tranche_condition(ctx, current)?;
    let net = current.net_disbursed();
    if net + amount > current.allocation {
        return Err(DomainError::new(
            ErrorCode::OverDisbursement,
            format!(
                "{agency}'s allocation on grant {} is {}; {} is already disbursed (net of refunds); {} more would exceed it by {}",
                ctx.grant.grant,
                ctx.human(current.allocation),
                ctx.human(net),
                ctx.human(amount),
                ctx.human(net + amount - current.allocation)
            ),
        ));
    }
    Ok(vec![Event::DisbursementRecorded {
        grant: ctx.id(),
        agency: agency.clone(),
        amount: ctx.money(amount),
        paid_on: *paid_on,
        reference: reference.clone(),
    }])
}

pub(crate) fn record_expenditure(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::RecordExpenditure {
        agency,
        amount,
        period_end,
        category,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let amount = ctx.exact(amount, command, "amount")?;
    let current = ctx.agency(agency)?;
    budget::check_category_given(ctx, current, *category)?;
    let net = current.net_disbursed();
    if current.expended + amount > net {
        return Err(DomainError::new(
            ErrorCode::OverExpenditure,
            format!(
                "{agency} has received {} (net of refunds) on grant {} and reported {} of expenditure; {} more would exceed what it received by {}",
                ctx.human(net),
                ctx.grant.grant,
                ctx.human(current.expended),
                ctx.human(amount),
                ctx.human(current.expended + amount - net)
            ),
        ));
    }
    if let Some(category) = category {
        budget::check_category_room(ctx, current, *category, amount)?;
    }
    Ok(vec![Event::ExpenditureRecorded {
        grant: ctx.id(),
        agency: agency.clone(),
        amount: ctx.money(amount),
        period_end: *period_end,
        category: *category,
    }])
}

pub(crate) fn record_refund(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::RecordRefund {
        agency,
        amount,
        received_on,
        reference,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let amount = ctx.exact(amount, command, "amount")?;
    let current = ctx.agency(agency)?;
    let balance = current.balance();
    if amount > balance {
        return Err(DomainError::new(
            ErrorCode::OverRefund,
            format!(
                "{agency} holds {} of grant {} (disbursed {}, expended {}, refunded {}); a refund of {} exceeds that by {}",
                ctx.human(balance),
                ctx.grant.grant,
                ctx.human(current.disbursed),
                ctx.human(current.expended),
                ctx.human(current.refunded),
                ctx.human(amount),
                ctx.human(amount - balance)
            ),
        ));
    }
    let mut events = vec![Event::RefundRecorded {
        grant: ctx.id(),
        agency: agency.clone(),
        amount: ctx.money(amount),
        received_on: *received_on,
        reference: reference.clone(),
    }];
    // Once cancelled (or finalized) the commitment is disbursed - refunded: a refund lowers it.
    if matches!(ctx.grant.status, Status::Cancelled | Status::Finalized) {
        let previous = ctx.grant.commitment();
        events.push(ctx.commitment_revised(previous, previous - amount, "record-refund"));
    }
    Ok(events)
}

pub(crate) fn revise_grant(ctx: &GrantCtx, command: &Command) -> Decision {
    let Command::ReviseGrant {
        reason,
        amount,
        ends_on,
        decided_on,
        sectors,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    let previous = ctx.grant.amount;
    let next = match amount {
        Some(text) => ctx.exact(text, command, "amount")?,
        None => previous,
    };
    if let (Some(ends_on), Some(starts_on)) = (ends_on, ctx.grant.starts_on) {
        if *ends_on < starts_on {
            return Err(DomainError::malformed(format!(
                "revise-grant: field `ends_on` ({ends_on}) is before grant {}'s `starts_on` ({starts_on})",
                ctx.grant.grant
            )));
        }
    }
    ctx.check_four_eyes("revise-grant")?;
    check_revised_amount(ctx, next)?;
    let mut events = vec![Event::GrantRevised {
        grant: ctx.id(),
        previous_amount: ctx.money(previous),
        amount: ctx.money(next),
        previous_ends_on: ctx.grant.ends_on,
        ends_on: ends_on.or(ctx.grant.ends_on),
        reason: reason.clone(),
        decided_on: *decided_on,
        sectors: sectors.clone(),
    }];
    if next != previous {
        events.push(ctx.commitment_revised(previous, next, "revise-grant"));
    }
    Ok(events)
}

fn check_revised_amount(ctx: &GrantCtx, next: Amount) -> Result<(), DomainError> {
    let allocated = ctx.grant.allocated();
    if next < allocated {
        return Err(DomainError::new(
            ErrorCode::AmountBelowAllocated,
            format!(
                "grant {} has {} allocated to its agencies; its amount cannot go below that, and {} was asked; revise or withdraw allocations first",
                ctx.grant.grant,
                ctx.human(allocated),
                ctx.human(next)
            ),
        ));
    }
    let increase = next - ctx.grant.amount;
    let available = ctx.available();
    if increase > available {
        return Err(DomainError::new(
            ErrorCode::InsufficientFunds,
            format!(
                "fund {} has {} available; raising grant {} by {} needs {} more",
                ctx.fund.fund,
                ctx.human(available),
                ctx.grant.grant,
                ctx.human(increase),
                ctx.human(increase - available)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn decide_lifecycle(ctx: &GrantCtx, command: &Command) -> Decision {
    let grant = ctx.id();
    match command {
        Command::SuspendGrant { reason, .. } => Ok(vec![Event::GrantSuspended {
            grant,
            reason: reason.clone(),
        }]),
        Command::ResumeGrant { reason, .. } => Ok(vec![Event::GrantResumed {
            grant,
            status: ctx.grant.suspended_from.unwrap_or(Status::Approved),
            reason: reason.clone(),
        }]),
        Command::CancelGrant { reason, .. } => Ok(std::iter::once(Event::GrantCancelled {
            grant,
            reason: reason.clone(),
        })
        .chain(ctx.commitment_change(
            ctx.grant.commitment(),
            ctx.grant.net_disbursed(),
            "cancel-grant",
        ))
        .collect()),
        Command::CloseGrant { closed_on, .. } => Ok(vec![Event::GrantClosed {
            grant,
            closed_on: *closed_on,
        }]),
        Command::FinalizeGrant { .. } => finalize_grant(ctx),
        _ => Ok(Vec::new()),
    }
}

fn finalize_grant(ctx: &GrantCtx) -> Decision {
    if let Some(agency) = ctx
        .grant
        .agencies
        .iter()
        .find(|agency| agency.balance() != Amount::ZERO)
    {
        return Err(DomainError::new(
            ErrorCode::UnsettledBalance,
            format!(
                "grant {} cannot be finalized: {} holds {} (disbursed {}, expended {}, refunded {}); record its expenditure or refund first",
                ctx.grant.grant,
                agency.agency,
                ctx.human(agency.balance()),
                ctx.human(agency.disbursed),
                ctx.human(agency.expended),
                ctx.human(agency.refunded)
            ),
        ));
    }
    crate::reports::check_reports_accepted(ctx)?;
    let mut events = vec![Event::GrantFinalized { grant: ctx.id() }];
    // From closed the commitment drops from the amount to what was disbursed net of refunds.
    if ctx.grant.status == Status::Closed {
        events.extend(ctx.commitment_change(
            ctx.grant.commitment(),
            ctx.grant.net_disbursed(),
            "finalize-grant",
        ));
    }
    Ok(events)
}
