//! Human-readable output: tables for people; `--json` elsewhere gives the documented fields (docs/).

use std::fmt::Write;

use grantflow_domain::{FundView, GrantDetails, GrantView, World};
use grantflow_engine::audit::VerifyReport;
use grantflow_engine::query::{AsOf, AuditEntry, Subject};
use grantflow_engine::CommandOutcome;

/// One line for a command's result.
pub fn outcome(outcome: &CommandOutcome) -> String {
    match outcome {
        CommandOutcome::Accepted {
            command_id,
            events,
            replayed,
        } => {
            let mut line = format!(
                "accepted{} (command id {command_id}):",
                if *replayed { ", replayed" } else { "" }
            );
            for event in events {
                let _ = write!(
                    line,
                    " {} at position {} ({} v{});",
                    event.event_type, event.position, event.stream, event.version
                );
            }
            line.pop();
            line
        }
        CommandOutcome::Rejected { rejection, .. } => {
            format!("rejected [{}]: {}", rejection.code, rejection.message)
        }
    }
}

/// " as of position P" / " as of T" for messages.
pub fn as_of_suffix(as_of: &AsOf) -> String {
    match as_of {
        AsOf::Head => String::new(),
        AsOf::Position(position) => format!(" as of position {position}"),
        AsOf::Time(time) => format!(" as of {time}"),
    }
}

/// Free text on one line of a table: a line break or tab a field may hold is shown as `\n`
/// or `\t` (and a backslash as `\\`), so that no text can fake lines of the output.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\n', '\r', '\t', '\\']) {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(
        text.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t"),
    )
}

/// An amount with thousands separators: "3209232.40" becomes "3,209,232.40".
pub fn human(amount: &str) -> String {
    let (sign, digits) = match amount.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", amount),
    };
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let mut grouped = String::new();
    for (index, digit) in int.chars().enumerate() {
        if index > 0 && (int.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match frac {
        Some(frac) => format!("{sign}{grouped}.{frac}"),
        None => format!("{sign}{grouped}"),
    }
}

/// A grant's figures.
pub fn grant(view: &GrantView, world: &World) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "grant     {}  ({})", view.grant, view.status);
    let _ = writeln!(out, "title     {}", one_line(&view.title));
    let _ = writeln!(out, "fund      {}  currency {}", view.fund, view.currency);
    if let Some(details) = world.grant_details(&view.grant) {
        out.push_str(&grant_details(&details));
    }
    let rows = [
        ("requested", &view.requested),
        ("amount", &view.amount),
        ("allocated", &view.allocated),
        ("unallocated", &view.unallocated),
        ("disbursed", &view.disbursed),
        ("expended", &view.expended),
        ("refunded", &view.refunded),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<12}{:>20}", human(value));
    }
    if let Some(details) = world.grant_details(&view.grant) {
        let _ = writeln!(
            out,
            "{:<12}{:>20}",
            "commitment",
            human(&details.commitment)
        );
    }
    if let Some(reported) = &view.reported_equivalent {
        let _ = writeln!(
            out,
            "{:<12}{:>20} {} (as reported, information only)",
            "reported",
            human(&reported.amount),
            reported.currency
        );
    }
    if !view.agencies.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<12}{:>5}{:>18}{:>18}{:>18}{:>18}{:>18}",
            "agency", "lead", "allocation", "disbursed", "expended", "refunded", "balance"
        );
        for agency in &view.agencies {
            let _ = writeln!(
                out,
                "{:<12}{:>5}{:>18}{:>18}{:>18}{:>18}{:>18}",
                agency.agency,
                if agency.lead { "yes" } else { "" },
                human(&agency.allocation),
                human(&agency.disbursed),
                human(&agency.expended),
                human(&agency.refunded),
                human(&agency.balance)
            );
        }
    }
    for agency in &view.agencies {
        let Some(budget) = &agency.budget else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n{:<12}{:<13}{:>18}{:>18}{:>9}",
            "budget", agency.agency, "budget", "expended", "used"
        );
        for line in budget {
            let _ = writeln!(
                out,
                "{:<12}{:<13}{:>18}{:>18}{:>9}",
                "",
                line.category,
                human(&line.budget),
                human(&line.expended),
                used(&line.expended, &line.budget)
            );
        }
    }
    if !view.reports.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16}{:<11}{:<12}{:<12}{:<11}{:<12}accepted",
            "report", "kind", "period_end", "due_on", "status", "submitted"
        );
        for report in &view.reports {
            let _ = writeln!(
                out,
                "{:<16}{:<11}{:<12}{:<12}{:<11}{:<12}{}",
                report.report,
                report.kind,
                report.period_end,
                report.due_on,
                report.status,
                report.submitted_on.as_deref().unwrap_or(""),
                report.accepted_on.as_deref().unwrap_or("")
            );
        }
    }
    out.push_str(&documents(&view.documents));
    let _ = writeln!(
        out,
        "\nversion {}  position {}",
        view.version, view.position
    );
    out
}

/// `expended` as a share of `budget` with 2 decimals, rounded down, e.g. "32.09%" (empty
/// when the budget is 0).
fn used(expended: &str, budget: &str) -> String {
    let minor = |text: &str| text.replace('.', "").parse::<i128>().ok();
    match (minor(expended), minor(budget)) {
        (Some(spent), Some(budget)) if budget > 0 => format!(
            "{}%",
            grantflow_domain::Percent::share(
                grantflow_domain::Amount(spent),
                grantflow_domain::Amount(budget)
            )
        ),
        _ => String::new(),
    }
}

/// Filed documents, one per line.
fn documents(documents: &[grantflow_domain::DocumentView]) -> String {
    let mut out = String::new();
    if documents.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<16}{:<5}{:<11}title / sha256 / url",
        "document", "cat", "issued"
    );
    for document in documents {
        let _ = writeln!(
            out,
            "{:<16}{:<5}{:<11}{}",
            document.document,
            document.category,
            document.issued_on.as_deref().unwrap_or(""),
            one_line(&document.title)
        );
        let _ = writeln!(out, "{:<32}sha256 {}", "", document.sha256);
        if let Some(url) = &document.url {
            let _ = writeln!(out, "{:<32}{url}", "");
        }
    }
    out
}

fn grant_details(details: &GrantDetails) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "proposed  by {}", details.submitted_by);
    if let Some(decided_on) = &details.decided_on {
        let _ = writeln!(out, "approved  on {decided_on}");
    }
    if details.country.is_some() || !details.regions.is_empty() {
        let _ = writeln!(
            out,
            "where     {} {}",
            details.country.as_deref().unwrap_or(""),
            details.regions.join(", ")
        );
    }
    if details.starts_on.is_some() || details.ends_on.is_some() {
        let _ = writeln!(
            out,
            "period    {} to {}",
            details.starts_on.as_deref().unwrap_or("?"),
            details.ends_on.as_deref().unwrap_or("?")
        );
    }
    if let Some(closed_on) = &details.closed_on {
        let _ = writeln!(out, "closed    on {closed_on}");
    }
    for (index, activity) in details.activities.iter().enumerate() {
        let _ = writeln!(out, "activity  {}. {}", index + 1, one_line(activity));
    }
    out
}

/// A subscription's type patterns, `every type` when it has none.
pub fn webhook_types(types: &[String]) -> String {
    if types.is_empty() {
        "every type".to_string()
    } else {
        format!("types {}", types.join(","))
    }
}

/// One row per webhook subscription (never its secret).
pub fn webhook_list(subscriptions: &[grantflow_webhooks::Subscription]) -> String {
    let mut out = format!(
        "{:<10}{:<10}{:>9}{:>9}  {:<34}{:<14}url\n",
        "id", "state", "cursor", "failures", "types", "fund"
    );
    for subscription in subscriptions {
        let types = if subscription.types.is_empty() {
            "*".to_string()
        } else {
            subscription.types.join(",")
        };
        let _ = writeln!(
            out,
            "{:<10}{:<10}{:>9}{:>9}  {:<34}{:<14}{}",
            subscription.id,
            if subscription.enabled {
                "enabled"
            } else {
                "disabled"
            },
            subscription.cursor,
            subscription.failures,
            one_line(&types),
            one_line(subscription.fund.as_deref().unwrap_or("-")),
            one_line(&subscription.url)
        );
        if let Some(reason) = &subscription.disabled_reason {
            let _ = writeln!(out, "          disabled: {}", one_line(reason));
        }
    }
    let _ = writeln!(out, "{} webhook(s)", subscriptions.len());
    out
}

/// One row per delivery attempt, oldest first.
pub fn webhook_attempts(attempts: &[grantflow_webhooks::Attempt]) -> String {
    let mut out = format!(
        "{:<26}{:>10}{:>9}{:>8}{:>10}  result\n",
        "at", "position", "attempt", "status", "ms"
    );
    for attempt in attempts {
        let status = attempt
            .status
            .map_or_else(|| "-".to_string(), |status| status.to_string());
        let result = match &attempt.error {
            None => "delivered".to_string(),
            Some(error) => one_line(error).into_owned(),
        };
        let _ = writeln!(
            out,
            "{:<26}{:>10}{:>9}{:>8}{:>10}  {result}",
            attempt.at, attempt.position, attempt.attempt, status, attempt.duration_ms
        );
    }
    let _ = writeln!(out, "{} attempt(s)", attempts.len());
    out
}

/// One row per report.
pub fn report_list(
    rows: &[grantflow_domain::ReportRow],
    overdue_on: Option<grantflow_domain::Date>,
) -> String {
    let mut out = format!(
        "{:<20}{:<16}{:<11}{:<12}{:<12}{}\n",
        "grant", "report", "kind", "period_end", "due_on", "status"
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{:<20}{:<16}{:<11}{:<12}{:<12}{}",
            row.grant, row.report, row.kind, row.period_end, row.due_on, row.status
        );
    }
    match overdue_on {
        Some(date) => {
            let _ = writeln!(out, "{} report(s) overdue on {date}", rows.len());
        }
        None => {
            let _ = writeln!(out, "{} report(s)", rows.len());
        }
    }
    out
}

/// One row per grant.
pub fn grant_list(views: &[GrantView]) -> String {
    let mut out = format!(
        "{:<20}{:<14}{:<11}{:<5}{:>18}{:>18}{:>18}\n",
        "grant", "fund", "status", "cur", "amount", "allocated", "disbursed"
    );
    for view in views {
        let _ = writeln!(
            out,
            "{:<20}{:<14}{:<11}{:<5}{:>18}{:>18}{:>18}",
            view.grant,
            view.fund,
            view.status,
            view.currency,
            human(&view.amount),
            human(&view.allocated),
            human(&view.disbursed)
        );
    }
    let _ = writeln!(out, "{} grant(s)", views.len());
    out
}

/// A fund's figures.
pub fn fund(view: &FundView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "fund      {}  ({})", view.fund, one_line(&view.name));
    let _ = writeln!(out, "currency  {}  grants {}", view.currency, view.grants);
    let rows = [
        ("received", &view.received),
        ("committed", &view.committed),
        ("available", &view.available),
        ("disbursed", &view.disbursed),
        ("refunded", &view.refunded),
        ("cash", &view.cash),
        ("pledged", &view.pledged),
        ("outstanding", &view.pledges_outstanding),
        ("fees", &view.fees),
        ("income", &view.income),
    ];
    for (name, value) in rows {
        let _ = writeln!(out, "{name:<12}{:>20}", human(value));
    }
    let terms = &view.terms;
    let _ =
        writeln!(
        out,
        "\nterms     fee {}%  indirect cap {}%  tranche threshold {}%  hold on overdue reports {}",
        terms.admin_fee_percent,
        terms.indirect_max_percent,
        terms.tranche_threshold_percent,
        if terms.hold_on_overdue_reports { "yes" } else { "no" }
    );
    if !view.pledges.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<16}{:<12}{:>18}{:>18}{:>18}  {:<11}due",
            "pledge", "donor", "amount", "paid", "outstanding", "signed"
        );
        for pledge in &view.pledges {
            let _ = writeln!(
                out,
                "{:<16}{:<12}{:>18}{:>18}{:>18}  {:<11}{}",
                pledge.pledge,
                pledge.donor,
                human(&pledge.amount),
                human(&pledge.paid),
                human(&pledge.outstanding),
                pledge.signed_on,
                pledge.due_on.as_deref().unwrap_or("")
            );
        }
    }
    out.push_str(&documents(&view.documents));
    let _ = writeln!(
        out,
        "\nversion {}  position {}",
        view.version, view.position
    );
    out
}

/// The audit trail as a readable list.
pub fn audit(subject: &Subject, entries: &[AuditEntry]) -> String {
    let mut out = format!(
        "audit trail of {} ({} events)\n",
        subject.stream(),
        entries.len()
    );
    for entry in entries {
        let _ = writeln!(
            out,
            "\n#{:<6} {}  {:<18} {:<20} {}",
            entry.position, entry.recorded_at, entry.actor, entry.command, entry.event_type
        );
        if let Some(reason) = entry.payload.get("reason").and_then(|r| r.as_str()) {
            let _ = writeln!(out, "        reason: {}", one_line(reason));
        }
        let width = entry
            .changes
            .iter()
            .map(|change| change.field.chars().count())
            .max()
            .unwrap_or(0)
            .max(28);
        for change in &entry.changes {
            let _ = writeln!(
                out,
                "        {:<width$} {:>18} -> {}",
                change.field,
                one_line(&change.before),
                one_line(&change.after)
            );
        }
    }
    out
}

/// The audit trail as CSV (RFC 4180): one row per changed figure.
pub fn audit_csv(entries: &[AuditEntry]) -> String {
    let mut out =
        String::from("position,recorded_at,actor,command,type,command_id,field,before,after\r\n");
    for entry in entries {
        let head = [
            entry.position.to_string(),
            entry.recorded_at.clone(),
            entry.actor.clone(),
            entry.command.clone(),
            entry.event_type.clone(),
            entry.command_id.clone(),
        ];
        let changes: Vec<[String; 3]> = if entry.changes.is_empty() {
            vec![[String::new(), String::new(), String::new()]]
        } else {
            entry
                .changes
                .iter()
                .map(|c| [c.field.clone(), c.before.clone(), c.after.clone()])
                .collect()
        };
        for change in changes {
            let row: Vec<String> = head
                .iter()
                .chain(change.iter())
                .map(|f| csv_field(f))
                .collect();
            out.push_str(&row.join(","));
            out.push_str("\r\n");
        }
    }
    out
}

/// A CSV field as a spreadsheet may safely open it (a formula-like cell read as text), quoted
/// when it needs it (RFC 4180).
pub fn csv_field(field: &str) -> String {
    let field = grantflow_export::spreadsheet_safe(field);
    if field.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_string()
    }
}

/// What `verify` found; `of_export` when it checked an exported file (no stored projections
/// to compare there).
pub fn verify(report: &VerifyReport, of_export: bool) -> String {
    match &report.failure {
        None => format!(
            "ok: {} events verified (hash chain, gapless positions and versions, payloads, \
             rules{}{})\n\
             head: position {} hash {}\n",
            report.events,
            if of_export {
                ""
            } else {
                ", projections, snapshot, fund checkpoints"
            },
            if report.checkpoint_checked {
                ", checkpoint"
            } else {
                ""
            },
            report.head.position,
            report.head.hash
        ),
        Some(failure) => format!(
            "FAILED at position {}: {}\nlast good event: position {} hash {}\n",
            failure.position, failure.detail, report.head.position, report.head.hash
        ),
    }
}
