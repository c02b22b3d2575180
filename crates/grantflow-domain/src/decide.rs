//! `decide`: checks a parsed command against the world and returns the events it appends.
//! Check order: (1) shape (already done by the parser); (2) existence of the fund/grant;
//! (3) `expected_version`; (4) the stated currency, then the amounts' decimals; (5) state;
//! (6) the command's own rules, in the order of docs/domain.md.

use crate::command::{Command, CommandRequest};
use crate::error::{DomainError, ErrorCode};
use crate::event::{Event, ReportedAmount};
use crate::money::{Currency, Money};
use crate::rules::{exact, GrantCtx};
use crate::world::{FundState, GrantState, Status, World};

/// Decides what `request`, issued by `actor`, appends, or why it is rejected.
pub fn decide(
    world: &World,
    actor: &str,
    request: &CommandRequest,
) -> Result<Vec<Event>, DomainError> {
    let command = &request.command;
    let target = resolve(world, command)?;
    check_version(world, request)?;
    if let Some(currency) = target.currency() {
        check_money(currency, command)?;
    }
    match target {
        Target::NewFund => register_fund(command),
        Target::Fund(fund) => crate::fund_rules::decide_fund(fund, command),
        Target::NewGrant(fund, existing) => {
            check_grant_unused(existing, command)?;
            submit_proposal(actor, fund, command)
        }
        Target::Grant(grant, fund) => {
            check_state(grant, command)?;
            let ctx = GrantCtx { actor, grant, fund };
            decide_grant(&ctx, command)
        }
    }
}

/// What a command acts on, once its existence is checked.
enum Target<'a> {
    NewFund,
    Fund(&'a FundState),
    /// A proposal's fund, and the grant that already has its id (`grant_exists`, a rule of
    /// the command's own, checked after the amounts).
    NewGrant(&'a FundState, Option<&'a GrantState>),
    Grant(&'a GrantState, &'a FundState),
}

impl Target<'_> {
    fn currency(&self) -> Option<Currency> {
        match self {
            Target::NewFund => None,
            Target::Fund(fund) | Target::NewGrant(fund, _) | Target::Grant(_, fund) => {
                Some(fund.currency)
            }
        }
    }
}

fn resolve<'a>(world: &'a World, command: &Command) -> Result<Target<'a>, DomainError> {
    match command {
        Command::RegisterFund { fund, .. } => match world.fund(fund) {
            Some(_) => Err(DomainError::new(
                ErrorCode::FundExists,
                format!("fund {fund} already exists"),
            )),
            None => Ok(Target::NewFund),
        },
        Command::SubmitProposal { fund, grant, .. } => Ok(Target::NewGrant(
            known_fund(world, fund)?,
            world.grant(grant),
        )),
        _ if command.fund_target().is_some() => {
            known_fund(world, command.fund_target().unwrap_or_default()).map(Target::Fund)
        }
        _ => {
            let id = command.grant_id().unwrap_or_default();
            let grant = world.grant(id).ok_or_else(|| {
                DomainError::new(
                    ErrorCode::UnknownGrant,
                    format!("grant {id} does not exist"),
                )
            })?;
            Ok(Target::Grant(grant, known_fund(world, &grant.fund)?))
        }
    }
}

fn check_grant_unused(existing: Option<&GrantState>, command: &Command) -> Result<(), DomainError> {
    match existing {
        Some(existing) => Err(DomainError::new(
            ErrorCode::GrantExists,
            format!(
                "grant {} already exists (under fund {}); choose another id",
                command.grant_id().unwrap_or_default(),
                existing.fund
            ),
        )),
        None => Ok(()),
    }
}

fn known_fund<'a>(world: &'a World, fund: &str) -> Result<&'a FundState, DomainError> {
    world.fund(fund).ok_or_else(|| {
        DomainError::new(
            ErrorCode::UnknownFund,
            format!("fund {fund} does not exist"),
        )
    })
}

fn check_version(world: &World, request: &CommandRequest) -> Result<(), DomainError> {
    let Some(expected) = request.expected_version else {
        return Ok(());
    };
    let stream = request.command.target_stream();
    let actual = world.stream_version(&stream);
    if actual == expected {
        return Ok(());
    }
    Err(DomainError::new(
        ErrorCode::VersionConflict,
        format!("stream {stream} is at version {actual}, not the expected {expected}; reload it and decide again"),
    ))
}

fn check_money(currency: Currency, command: &Command) -> Result<(), DomainError> {
    if let Some(stated) = command.stated_currency() {
        if stated != currency {
            return Err(DomainError::new(
                ErrorCode::CurrencyMismatch,
                format!("{}: the fund's currency is {currency}, not {stated}; amounts are in {currency}", command.name()),
            ));
        }
    }
    for (field, text) in command.fund_amounts() {
        exact(text, currency, command, field)?;
    }
    Ok(())
}

/// The states in which a grant command is allowed.
pub fn allowed_states(command_name: &str) -> &'static [Status] {
    use Status::*;
    match command_name {
        "reject-proposal" | "approve-grant" => &[Proposed],
        "assign-agency" | "record-disbursement" | "suspend-grant" => &[Approved, Active],
        "revise-allocation" | "withdraw-agency" | "revise-grant" | "cancel-grant"
        | "close-grant" => &[Approved, Active, Suspended],
        "record-expenditure" | "record-refund" => &[Approved, Active, Suspended, Closed, Cancelled],
        "schedule-report" => &[Approved, Active, Suspended, Closed],
        "submit-report" | "accept-report" | "return-report" => {
            &[Approved, Active, Suspended, Closed, Cancelled]
        }
        "attach-document" => &[
            Proposed, Approved, Active, Suspended, Closed, Finalized, Cancelled,
        ],
        "resume-grant" => &[Suspended],
        "finalize-grant" => &[Closed, Cancelled],
        _ => &[],
    }
}

fn check_state(grant: &GrantState, command: &Command) -> Result<(), DomainError> {
    let allowed = allowed_states(command.name());
    if allowed.contains(&grant.status) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(Status::as_str).collect();
    Err(DomainError::new(
        ErrorCode::InvalidState,
        format!(
            "grant {} is {}; {} is allowed only when it is {}",
            grant.grant,
            grant.status.as_str(),
            command.name(),
            or_list(&names)
        ),
    ))
}

fn or_list(items: &[&str]) -> String {
    match items {
        [] => "never".to_string(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn register_fund(command: &Command) -> Result<Vec<Event>, DomainError> {
    let Command::RegisterFund {
        fund,
        name,
        currency,
        terms,
        iati_org_ref,
    } = command
    else {
        return Ok(Vec::new());
    };
    Ok(vec![Event::FundRegistered {
        fund: fund.clone(),
        name: name.clone(),
        currency: *currency,
        admin_fee_percent: terms.admin_fee_percent,
        indirect_max_percent: terms.indirect_max_percent,
        tranche_threshold_percent: terms.tranche_threshold_percent,
        hold_on_overdue_reports: terms.hold_on_overdue_reports,
        iati_org_ref: iati_org_ref.clone(),
    }])
}

fn submit_proposal(
    actor: &str,
    fund: &FundState,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    let Command::SubmitProposal {
        grant,
        title,
        amount,
        country,
        regions,
        starts_on,
        ends_on,
        activities,
        sectors,
        ..
    } = command
    else {
        return Ok(Vec::new());
    };
    Ok(vec![Event::GrantProposed {
        grant: grant.clone(),
        fund: fund.fund.clone(),
        title: title.clone(),
        currency: fund.currency,
        requested: exact(amount, fund.currency, command, "amount")?,
        country: country.clone(),
        regions: regions.clone(),
        starts_on: *starts_on,
        ends_on: *ends_on,
        activities: activities.clone(),
        submitted_by: actor.to_string(),
        sectors: sectors.clone(),
    }])
}

fn decide_grant(ctx: &GrantCtx, command: &Command) -> Result<Vec<Event>, DomainError> {
    use crate::rules::*;
    match command {
        Command::RejectProposal { reason, .. } => Ok(vec![Event::GrantRejected {
            grant: ctx.id(),
            reason: reason.clone(),
        }]),
        Command::ApproveGrant {
            decided_on,
            reported_equivalent,
            ..
        } => approve_grant(
            ctx,
            *decided_on,
            reported_equivalent.map(|reported| ReportedAmount {
                amount: Money::new(reported.amount, reported.currency.decimals()),
                currency: reported.currency,
            }),
        ),
        Command::AssignAgency { .. } => assign_agency(ctx, command),
        Command::ReviseAllocation { .. } => revise_allocation(ctx, command),
        Command::WithdrawAgency { agency, reason, .. } => withdraw_agency(ctx, agency, reason),
        Command::RecordDisbursement { .. } => record_disbursement(ctx, command),
        Command::RecordExpenditure { .. } => record_expenditure(ctx, command),
        Command::RecordRefund { .. } => record_refund(ctx, command),
        Command::ReviseGrant { .. } => revise_grant(ctx, command),
        Command::ScheduleReport { .. }
        | Command::SubmitReport { .. }
        | Command::AcceptReport { .. }
        | Command::ReturnReport { .. }
        | Command::AttachDocument { .. } => crate::reports::decide_report(ctx, command),
        _ => decide_lifecycle(ctx, command),
    }
}
