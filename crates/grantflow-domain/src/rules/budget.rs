//! Agency budgets by category and the conditions on a further tranche (docs/domain.md, part
//! two): the checks that assign-agency, revise-allocation, record-expenditure and
//! record-disbursement add to their part-one rules.

use super::GrantCtx;
use crate::command::{BudgetText, Command};
use crate::error::{DomainError, ErrorCode};
use crate::money::Amount;
use crate::terms::{Budget, Category, Percent, CATEGORIES};
use crate::values::Date;
use crate::world::AgencyState;

/// The budget a command gives, checked: it sums to the allocation (`budget_mismatch`), its
/// indirect costs stay within the fund's cap (`indirect_over_cap`) and, on a revision, no
/// category falls below what its expended allows (`over_budget_category`).
pub(crate) fn check_budget(
    ctx: &GrantCtx,
    command: &Command,
    agency: &str,
    allocation: Amount,
    text: &BudgetText,
    current: Option<&AgencyState>,
) -> Result<Budget, DomainError> {
    let mut budget = Budget::default();
    for (category, amount) in text {
        budget.0[category.index()] = ctx.exact(amount, command, category.budget_field())?;
    }
    let total = budget.total();
    if total != allocation {
        return Err(DomainError::new(
            ErrorCode::BudgetMismatch,
            format!(
                "{agency}'s budget on grant {} sums to {} ({}), but its allocation is {}; the categories must sum to the allocation, {} {}",
                ctx.grant.grant,
                ctx.human(total),
                listed(ctx, &budget),
                ctx.human(allocation),
                ctx.human(Amount((total - allocation).0.abs())),
                if total > allocation { "over" } else { "short" }
            ),
        ));
    }
    let percent = ctx.fund.terms.indirect_max_percent;
    let direct = budget.direct();
    let cap = percent.of_floor(direct);
    let indirect = budget.get(Category::Indirect);
    if indirect > cap {
        return Err(DomainError::new(
            ErrorCode::IndirectOverCap,
            format!(
                "{agency}'s indirect support costs of {} on grant {} are above the cap of {} ({percent}% of direct costs of {}) by {}",
                ctx.human(indirect),
                ctx.grant.grant,
                ctx.human(cap),
                ctx.human(direct),
                ctx.human(indirect - cap)
            ),
        ));
    }
    if let Some(current) = current {
        for category in CATEGORIES {
            let expended = current.category_expended[category.index()];
            let room = budget.get(category);
            if !within_tolerance(expended, room) {
                return Err(DomainError::new(
                    ErrorCode::OverBudgetCategory,
                    format!(
                        "{agency} has spent {} on {} under grant {}; a budget of {} would leave that above 120% of it ({})",
                        ctx.human(expended),
                        category.as_str(),
                        ctx.grant.grant,
                        ctx.human(room),
                        ctx.human(tolerance(room))
                    ),
                ));
            }
        }
    }
    Ok(budget)
}

/// A revise-allocation without a budget, on an agency that has one, must leave the
/// allocation unchanged (`budget_mismatch`).
pub(crate) fn check_unbudgeted_revision(
    ctx: &GrantCtx,
    current: &AgencyState,
    allocation: Amount,
) -> Result<(), DomainError> {
    match current.budget {
        Some(budget) if allocation != current.allocation => Err(DomainError::new(
            ErrorCode::BudgetMismatch,
            format!(
                "{} has a budget on grant {} summing to {} ({}); a new allocation of {} needs a `budget` that sums to it",
                current.agency,
                ctx.grant.grant,
                ctx.human(budget.total()),
                listed(ctx, &budget),
                ctx.human(allocation)
            ),
        )),
        _ => Ok(()),
    }
}

/// `category_required` (an agency with a budget) or `no_budget` (an agency without one).
pub(crate) fn check_category_given(
    ctx: &GrantCtx,
    current: &AgencyState,
    category: Option<Category>,
) -> Result<(), DomainError> {
    match (current.budget, category) {
        (Some(_), None) => Err(DomainError::new(
            ErrorCode::CategoryRequired,
            format!(
                "{} has a budget by category on grant {}; an expenditure must name its `category`: one of {}",
                current.agency,
                ctx.grant.grant,
                CATEGORIES.map(Category::as_str).join(", ")
            ),
        )),
        (None, Some(category)) => Err(DomainError::new(
            ErrorCode::NoBudget,
            format!(
                "{} has no budget by category on grant {}; record the expenditure without `category` ({} was given), or set a budget with revise-allocation",
                current.agency,
                ctx.grant.grant,
                category.as_str()
            ),
        )),
        _ => Ok(()),
    }
}

/// `over_budget_category`: a category's expended reaches at most 120% of its budget
/// (expended x 100 <= budget x 120, exactly).
pub(crate) fn check_category_room(
    ctx: &GrantCtx,
    current: &AgencyState,
    category: Category,
    amount: Amount,
) -> Result<(), DomainError> {
    let budget = current.budget.unwrap_or_default().get(category);
    let spent = current.category_expended[category.index()];
    if within_tolerance(spent + amount, budget) {
        return Ok(());
    }
    Err(DomainError::new(
        ErrorCode::OverBudgetCategory,
        format!(
            "{}'s {} budget on grant {} is {} and it may spend up to 120% of it ({}); {} is spent, and {} more would exceed that by {}",
            current.agency,
            category.as_str(),
            ctx.grant.grant,
            ctx.human(budget),
            ctx.human(tolerance(budget)),
            ctx.human(spent),
            ctx.human(amount),
            ctx.human(Amount(spent.0 + amount.0 - tolerance(budget).0))
        ),
    ))
}

/// `report_overdue`: with the fund's hold on overdue reports, no disbursement while a report
/// of the grant is overdue on `paid_on`.
pub(crate) fn check_no_report_overdue(ctx: &GrantCtx, paid_on: Date) -> Result<(), DomainError> {
    if !ctx.fund.terms.hold_on_overdue_reports {
        return Ok(());
    }
    let Some(report) = ctx
        .grant
        .reports
        .iter()
        .find(|report| report.overdue_on(paid_on))
    else {
        return Ok(());
    };
    Err(DomainError::new(
        ErrorCode::ReportOverdue,
        format!(
            "report {} of grant {} ({}) was due on {} and is {} on {paid_on}; fund {} holds disbursements while a report is overdue",
            report.report,
            ctx.grant.grant,
            report.kind.as_str(),
            report.due_on,
            report.status_on(paid_on).as_str(),
            ctx.fund.fund
        ),
    ))
}

/// `tranche_condition_unmet`: an agency that holds money receives a further tranche only
/// once its expended reaches the fund's threshold share of its disbursed - refunded.
pub(crate) fn check_tranche_condition(
    ctx: &GrantCtx,
    current: &AgencyState,
) -> Result<(), DomainError> {
    let threshold = ctx.fund.terms.tranche_threshold_percent;
    let held = current.net_disbursed();
    if threshold == Percent::ZERO || held <= Amount::ZERO {
        return Ok(());
    }
    let reached = current.expended.0 * 10_000 >= i128::from(threshold.hundredths()) * held.0;
    if reached {
        return Ok(());
    }
    Err(DomainError::new(
        ErrorCode::TrancheConditionUnmet,
        format!(
            "{} holds {} of grant {} and has spent {} ({}%); a further tranche needs {threshold}%",
            current.agency,
            ctx.human(held),
            ctx.grant.grant,
            ctx.human(current.expended),
            Percent::share(current.expended, held)
        ),
    ))
}

/// expended x 100 <= budget x 120.
fn within_tolerance(expended: Amount, budget: Amount) -> bool {
    expended.0 * 100 <= budget.0 * 120
}

/// The most a category may reach: 120% of its budget, rounded down.
fn tolerance(budget: Amount) -> Amount {
    Amount((budget.0 * 120).div_euclid(100))
}

fn listed(ctx: &GrantCtx, budget: &Budget) -> String {
    CATEGORIES
        .iter()
        .filter(|category| budget.get(**category) != Amount::ZERO)
        .map(|category| format!("{} {}", category.as_str(), ctx.human(budget.get(*category))))
        .collect::<Vec<_>>()
        .join(", ")
}
