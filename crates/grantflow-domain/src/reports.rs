//! Reports and a grant's documents (docs/domain.md, part two), once the grant's existence,
//! the version and its state are checked.

use crate::command::Command;
use crate::command::DocumentOwner;
use crate::error::{DomainError, ErrorCode};
use crate::event::Event;
use crate::fund_rules::attach_document;
use crate::rules::GrantCtx;
use crate::terms::ReportStatus;
use crate::world::ReportState;

type Decision = Result<Vec<Event>, DomainError>;

/// Decides schedule-report, submit-report, accept-report, return-report and attach-document.
pub(crate) fn decide_report(ctx: &GrantCtx, command: &Command) -> Decision {
    let grant = ctx.id();
    match command {
        Command::ScheduleReport {
            report,
            kind,
            period_end,
            due_on,
            ..
        } => {
            if let Some(existing) = ctx.grant.report(report) {
                return Err(DomainError::new(
                    ErrorCode::ReportExists,
                    format!(
                        "grant {grant} already has a report {report} ({} report due on {}); choose another id",
                        existing.kind.as_str(),
                        existing.due_on
                    ),
                ));
            }
            Ok(vec![Event::ReportScheduled {
                grant,
                report: report.clone(),
                kind: *kind,
                period_end: *period_end,
                due_on: *due_on,
            }])
        }
        Command::SubmitReport {
            report,
            submitted_on,
            document,
            ..
        } => {
            let state = known_report(ctx, report)?;
            check_status(
                ctx,
                state,
                "submit-report",
                &[ReportStatus::Scheduled, ReportStatus::Returned],
            )?;
            Ok(vec![Event::ReportSubmitted {
                grant,
                report: report.clone(),
                submitted_on: *submitted_on,
                document: document.clone(),
                submitted_by: ctx.actor.to_string(),
            }])
        }
        Command::AcceptReport {
            report,
            accepted_on,
            ..
        } => {
            let state = known_report(ctx, report)?;
            check_status(ctx, state, "accept-report", &[ReportStatus::Submitted])?;
            let submitter = state.submitted_by.as_deref().unwrap_or_default();
            if crate::actor::same_actor(submitter, ctx.actor) {
                return Err(DomainError::new(
                    ErrorCode::FourEyesViolation,
                    format!(
                        "report {report} of grant {grant} was submitted by {submitter}; accept-report must be issued by someone else (four-eyes rule)"
                    ),
                ));
            }
            Ok(vec![Event::ReportAccepted {
                grant,
                report: report.clone(),
                accepted_on: *accepted_on,
            }])
        }
        Command::ReturnReport {
            report,
            returned_on,
            reason,
            ..
        } => {
            let state = known_report(ctx, report)?;
            check_status(ctx, state, "return-report", &[ReportStatus::Submitted])?;
            Ok(vec![Event::ReportReturned {
                grant,
                report: report.clone(),
                returned_on: *returned_on,
                reason: reason.clone(),
            }])
        }
        Command::AttachDocument { .. } => attach_document(
            command,
            &ctx.grant.documents,
            &format!("grant {grant}"),
            DocumentOwner::Grant(grant.clone()),
        ),
        _ => Ok(Vec::new()),
    }
}

fn known_report<'a>(ctx: &'a GrantCtx, report: &str) -> Result<&'a ReportState, DomainError> {
    ctx.grant.report(report).ok_or_else(|| {
        let known: Vec<&str> = ctx
            .grant
            .reports
            .iter()
            .map(|r| r.report.as_str())
            .collect();
        let listed = if known.is_empty() {
            "none is scheduled".to_string()
        } else {
            format!("its reports are: {}", known.join(", "))
        };
        DomainError::new(
            ErrorCode::UnknownReport,
            format!("grant {} has no report {report}; {listed}", ctx.grant.grant),
        )
    })
}

fn check_status(
    ctx: &GrantCtx,
    report: &ReportState,
    command: &str,
    allowed: &[ReportStatus],
) -> Result<(), DomainError> {
    if allowed.contains(&report.status()) {
        return Ok(());
    }
    let names: Vec<&str> = allowed.iter().map(|status| status.as_str()).collect();
    Err(DomainError::new(
        ErrorCode::InvalidReportState,
        format!(
            "report {} of grant {} is {}; {command} needs it {}",
            report.report,
            ctx.grant.grant,
            report.status().as_str(),
            names.join(" or ")
        ),
    ))
}

/// `reports_outstanding`: finalize-grant needs every report accepted.
pub(crate) fn check_reports_accepted(ctx: &GrantCtx) -> Result<(), DomainError> {
    let open: Vec<String> = ctx
        .grant
        .reports
        .iter()
        .filter(|report| report.status() != ReportStatus::Accepted)
        .map(|report| {
            format!(
                "{} ({}, due {})",
                report.report,
                report.status().as_str(),
                report.due_on
            )
        })
        .collect();
    if open.is_empty() {
        return Ok(());
    }
    Err(DomainError::new(
        ErrorCode::ReportsOutstanding,
        format!(
            "grant {} cannot be finalized while a report is not accepted: {}",
            ctx.grant.grant,
            open.join(", ")
        ),
    ))
}
