//! A grant's page (`/grants/{id}`): its figures, each agency's bars and budget, the
//! disbursements over time, reports with their overdue marks, documents, the audit trail as
//! a timeline, the log head, a control to see it as of an earlier position or time, and the
//! command forms the signed-in roles allow in the grant's state.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grantflow_domain::{allowed_states, Date, GrantDetails, GrantView, Status, World};
use grantflow_engine::audit::Checkpoint;
use grantflow_engine::query::{self, AsOf, AuditEntry, Subject};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;

use super::charts::{bars, timeline, Bar, Point};
use super::forms::{self, FormContext, Submitted};
use super::layout::{self, minor, money, Frame};
use super::session::Viewer;
use crate::auth::command_role;
use crate::error::ApiError;
use crate::state::AppState;

/// The most audit entries a page shows (the newest); the API and `grantflow audit` give all.
pub const AUDIT_ENTRIES_SHOWN: usize = 200;
/// The most changed figures shown for one audit entry.
const CHANGES_SHOWN: usize = 40;

/// The grant page's commands, in the order their forms appear.
const GRANT_COMMANDS: &[&str] = &[
    "approve-grant",
    "reject-proposal",
    "assign-agency",
    "revise-allocation",
    "withdraw-agency",
    "record-disbursement",
    "record-expenditure",
    "record-refund",
    "revise-grant",
    "schedule-report",
    "submit-report",
    "accept-report",
    "return-report",
    "attach-document",
    "suspend-grant",
    "resume-grant",
    "cancel-grant",
    "close-grant",
    "finalize-grant",
];

/// `?at=` (a log position) or `?as_of=` (an RFC 3339 time) of a page; empty is now.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct MomentQuery {
    #[serde(default)]
    at: String,
    #[serde(default)]
    as_of: String,
}

impl MomentQuery {
    /// The moment asked for, as the API reads `?at=` and `?as_of=`.
    pub(crate) fn as_of(&self) -> Result<AsOf, ApiError> {
        let at = self.at.trim();
        let at = if at.is_empty() {
            None
        } else {
            Some(at.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("`at` must be a log position, not `{at}`"))
            })?)
        };
        let time = self.as_of.trim().replace(' ', "+");
        let time = (!time.is_empty()).then_some(time);
        Ok(AsOf::from_options(at, time.as_deref())?)
    }

    pub(crate) fn is_now(&self) -> bool {
        self.at.trim().is_empty() && self.as_of.trim().is_empty()
    }
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    moment: Result<Query<MomentQuery>, QueryRejection>,
) -> Response {
    let viewer = match super::signed_in(&state, &headers, &uri).await {
        Ok(viewer) => viewer,
        Err(sign_in) => return *sign_in,
    };
    let moment = moment.map(|Query(moment)| moment).unwrap_or_default();
    render(&state, &viewer, &id, &moment, None, StatusCode::OK).await
}

/// What the page shows of the grant at one moment.
struct GrantData {
    view: GrantView,
    details: GrantDetails,
    /// The day the overdue marks are for: today, or the day of the moment shown.
    overdue_on: Option<Date>,
    /// Reports overdue on that day, by id.
    overdue: Vec<String>,
    /// The position the figures are as of.
    position: u64,
}

impl GrantData {
    fn of(world: &World, id: &str, position: u64, overdue_on: Option<Date>) -> Option<GrantData> {
        let state = world.grant(id)?;
        Some(GrantData {
            view: world.grant_view(id)?,
            details: world.grant_details(id)?,
            overdue_on,
            overdue: state
                .reports
                .iter()
                .filter(|report| overdue_on.is_some_and(|day| report.overdue_on(day)))
                .map(|report| report.report.clone())
                .collect(),
            position,
        })
    }
}

/// Today (UTC), the day reports are overdue on.
pub(crate) fn today() -> Option<Date> {
    Date::parse(&chrono::Utc::now().format("%Y-%m-%d").to_string())
}

/// The day a page shown as of `as_of` judges reports overdue on: today for now; the day
/// (UTC) of the time asked for; for a log position, the day its event was recorded.
pub(crate) async fn overdue_day(state: &AppState, as_of: &AsOf, position: u64) -> Option<Date> {
    let day_of = |time: &str| time.get(..10).and_then(Date::parse);
    match as_of {
        AsOf::Head => today(),
        AsOf::Time(time) => query::normalize_time(time).ok().as_deref().and_then(day_of),
        AsOf::Position(_) => {
            let events = state.engine().store().read(position, 1).await.ok()?;
            let event = events.first().filter(|event| event.position == position)?;
            day_of(&event.recorded_at)
        }
    }
}

/// The grant page; `submitted` is a form just refused, shown in place with what was typed.
pub(crate) async fn render(
    state: &AppState,
    viewer: &Viewer,
    id: &str,
    moment: &MomentQuery,
    submitted: Option<&Submitted>,
    status: StatusCode,
) -> Response {
    let as_of = match moment.as_of() {
        Ok(as_of) => as_of,
        Err(error) => return layout::problem(viewer, error.status, error.code, &error.message),
    };
    let data = match &as_of {
        AsOf::Head => {
            let day = today();
            state
                .engine()
                .with_model(|model| GrantData::of(&model.world, id, model.position, day))
        }
        past => match past_model(state, &Subject::Grant(id.to_string()), past).await {
            Ok(model) => {
                let day = overdue_day(state, past, model.position).await;
                GrantData::of(&model.world, id, model.position, day)
            }
            Err(error) => {
                return layout::problem(viewer, error.status, error.code, &error.message);
            }
        },
    };
    let Some(data) = data else {
        let when = if moment.is_now() {
            ""
        } else {
            " at that moment"
        };
        return layout::problem(
            viewer,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no grant `{id}`{when}"),
        );
    };
    let trail = match trail(state, Subject::Grant(id.to_string()), data.position).await {
        Ok(trail) => trail,
        Err(error) => return layout::problem(viewer, error.status, error.code, &error.message),
    };
    let head = Checkpoint::of(state.engine().store().as_ref()).await.ok();
    let now = moment.is_now();
    let body = body(viewer, &data, &trail, head.as_ref(), moment, now, submitted);
    let frame = Frame {
        title: &data.view.title,
        viewer: Some(viewer),
        live: now.then(|| format!("grant-{} fund-{}", data.view.grant, data.view.fund)),
        notice: viewer.take_notice(state),
    };
    layout::respond(status, layout::page(frame, body))
}

/// The world as of a past moment, enough to show `subject` (an expensive read: it folds
/// the streams the subject's figures depend on, up to that moment).
pub(crate) async fn past_model(
    state: &AppState,
    subject: &Subject,
    as_of: &AsOf,
) -> Result<grantflow_engine::ReadModel, ApiError> {
    let _permit = state.expensive_read().await?;
    Ok(query::subject_as_of(state.engine(), subject, as_of).await?)
}

/// The audit trail of a grant or fund up to `position`.
pub(crate) async fn trail(
    state: &AppState,
    subject: Subject,
    position: u64,
) -> Result<Vec<AuditEntry>, ApiError> {
    let _permit = state.expensive_read().await?;
    let mut entries = query::audit_trail(state.engine(), &subject).await?;
    entries.retain(|entry| entry.position <= position);
    Ok(entries)
}

fn body(
    viewer: &Viewer,
    data: &GrantData,
    trail: &[AuditEntry],
    head: Option<&Checkpoint>,
    moment: &MomentQuery,
    now: bool,
    submitted: Option<&Submitted>,
) -> Markup {
    let grant = &data.view;
    let path = format!("/grants/{}", grant.grant);
    html! {
        p class="crumbs" { a href="/" { "Portfolio" } " › " a href={"/funds/" (grant.fund)} { "Fund " (grant.fund) } }
        h1 { (grant.title) }
        p class="subtitle" {
            span class="id" { (grant.grant) } " "
            span class={"status " (grant.status)} data-live-text="status" { (grant.status) }
            @if !now { " " strong class="past" { "as of position " (data.position) } }
        }
        (moment_form(&path, moment, now))
        @if let Some(sent) = submitted.filter(|sent| !(now && grant_commands(viewer, grant).contains(&sent.command.as_str()))) {
            (layout::alert(&sent.code, &sent.message))
        }
        (figures(data))
        (agencies(grant))
        (disbursements(grant, trail))
        (reports(data))
        (documents(&grant.documents))
        @if now { (actions(viewer, data, &path, submitted)) }
        (timeline_section(trail))
        (head_section(head))
    }
}

/// The as-of control: a position or a time; "now" goes back to the present.
pub(crate) fn moment_form(path: &str, moment: &MomentQuery, now: bool) -> Markup {
    html! {
        form class="moment" method="get" action=(path) aria-label="See as of an earlier moment" {
            div class="field" {
                label for="moment-at" { "As of log position" }
                input type="text" inputmode="numeric" id="moment-at" name="at" value=(moment.at);
            }
            div class="field" {
                label for="moment-as-of" { "or as of time (RFC 3339)" }
                input type="text" id="moment-as-of" name="as_of" value=(moment.as_of)
                    placeholder="2026-11-29T10:00:00Z";
            }
            button type="submit" { "Show" }
            @if !now { " " a href=(path) { "Back to now" } }
        }
    }
}

fn figures(data: &GrantData) -> Markup {
    let grant = &data.view;
    let details = &data.details;
    let c = grant.currency.as_str();
    let rows = [
        ("Requested", "requested", &grant.requested),
        ("Amount", "amount", &grant.amount),
        ("Allocated", "allocated", &grant.allocated),
        ("Unallocated", "unallocated", &grant.unallocated),
        ("Disbursed", "disbursed", &grant.disbursed),
        ("Expended", "expended", &grant.expended),
        ("Refunded", "refunded", &grant.refunded),
        ("Commitment", "commitment", &details.commitment),
    ];
    html! {
        section id="figures" data-live-part aria-labelledby="figures-heading" {
            h2 id="figures-heading" { "Figures" }
            dl class="figures" {
                @for (label, key, value) in rows {
                    dt { (label) } dd data-figure=(key) { (money(value, c)) }
                }
                @if let Some(reported) = &grant.reported_equivalent {
                    dt { "Reported as" } dd { (money(&reported.amount, &reported.currency)) }
                }
                dt { "Submitted by" } dd { (details.submitted_by) }
                @if let Some(day) = &details.decided_on { dt { "Approved on" } dd { (day) } }
                @if let Some(country) = &details.country { dt { "Country" } dd { (country) } }
                @if !details.regions.is_empty() { dt { "Regions" } dd { (details.regions.join(", ")) } }
                @if !grant.sectors.is_empty() {
                    dt { "Sectors (DAC)" }
                    dd data-figure="sectors" {
                        @for (index, sector) in grant.sectors.iter().enumerate() {
                            @if index > 0 { ", " }
                            (sector.code) " (" (sector.percentage) "%)"
                        }
                    }
                }
                @if details.starts_on.is_some() || details.ends_on.is_some() {
                    dt { "Period" }
                    dd { (details.starts_on.as_deref().unwrap_or("?")) " to " (details.ends_on.as_deref().unwrap_or("?")) }
                }
                @if let Some(day) = &details.closed_on { dt { "Closed on" } dd { (day) } }
                dt { "Version" } dd { (grant.version) }
            }
            @if !details.activities.is_empty() {
                h3 { "Activities" }
                ul { @for activity in &details.activities { li { (activity) } } }
            }
        }
    }
}

fn agencies(grant: &GrantView) -> Markup {
    let c = grant.currency.as_str();
    html! {
        section id="agencies" data-live-part aria-labelledby="agencies-heading" {
            h2 id="agencies-heading" { "Agencies" }
            @if grant.agencies.is_empty() { p { "No agency assigned." } }
            p class="legend" {
                span class="key disbursed" {} "disbursed " span class="key expended" {} "expended "
                span class="key refunded" {} "refunded" " (each of the allocation)"
            }
            div class="cards" {
                @for agency in &grant.agencies {
                    @let allocation = minor(&agency.allocation, c);
                    article class="card agency" data-agency=(agency.agency) {
                        h3 { (agency.agency) @if agency.lead { " " span class="lead" { "lead" } } }
                        (bars(
                            &format!("{}: of {} allocated, {} disbursed, {} expended, {} refunded",
                                agency.agency, money(&agency.allocation, c), money(&agency.disbursed, c),
                                money(&agency.expended, c), money(&agency.refunded, c)),
                            allocation,
                            &[
                                Bar { value: minor(&agency.disbursed, c), class: "disbursed", name: "disbursed" },
                                Bar { value: minor(&agency.expended, c), class: "expended", name: "expended" },
                                Bar { value: minor(&agency.refunded, c), class: "refunded", name: "refunded" },
                            ],
                        ))
                        dl class="figures" {
                            dt { "Allocation" } dd data-figure="allocation" { (money(&agency.allocation, c)) }
                            dt { "Disbursed" } dd data-figure="disbursed" { (money(&agency.disbursed, c)) }
                            dt { "Expended" } dd data-figure="expended" { (money(&agency.expended, c)) }
                            dt { "Refunded" } dd data-figure="refunded" { (money(&agency.refunded, c)) }
                            dt { "Balance" } dd data-figure="balance" { (money(&agency.balance, c)) }
                        }
                        @if let Some(budget) = &agency.budget {
                            table class="budget" {
                                caption { "Budget by category" }
                                thead { tr { th scope="col" { "Category" } th scope="col" class="num" { "Budget" } th scope="col" class="num" { "Expended" } } }
                                tbody {
                                    @for line in budget {
                                        tr {
                                            th scope="row" { (line.category) }
                                            td class="num" { (money(&line.budget, c)) }
                                            td class="num" { (money(&line.expended, c)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Net disbursements (refunds subtracted) by business date, from the trail's events.
fn disbursements(grant: &GrantView, trail: &[AuditEntry]) -> Markup {
    let c = grant.currency.as_str();
    let mut moves: Vec<(chrono::NaiveDate, u64, grantflow_domain::Amount)> = trail
        .iter()
        .filter_map(|entry| {
            let (sign, date_field) = match entry.event_type.as_str() {
                "grant.disbursement_recorded" => (1, "paid_on"),
                "grant.refund_recorded" => (-1, "received_on"),
                _ => return None,
            };
            let amount = minor(entry.payload.get("amount")?.as_str()?, c);
            let day = Date::parse(entry.payload.get(date_field)?.as_str()?)?.naive();
            let amount = if sign < 0 { -amount } else { amount };
            Some((day, entry.position, amount))
        })
        .collect();
    moves.sort();
    let decimals = grantflow_domain::Currency::parse(c).map_or(2, |c| c.decimals());
    let mut total = grantflow_domain::Amount::ZERO;
    let points: Vec<Point> = moves
        .into_iter()
        .map(|(day, _, amount)| {
            total += amount;
            Point {
                day: i64::from(chrono::Datelike::num_days_from_ce(&day)),
                label: format!("{day}: {}", money(&total.format(decimals), c)),
                total,
            }
        })
        .collect();
    let highest = points
        .iter()
        .map(|point| point.total)
        .max()
        .unwrap_or(grantflow_domain::Amount::ZERO);
    html! {
        section id="disbursements" data-live-part aria-labelledby="disbursements-heading" {
            h2 id="disbursements-heading" { "Disbursements over time" }
            (timeline(
                &format!("Net disbursements of {} over time, by payment date: {} in all", grant.grant, money(&grant.disbursed, c)),
                &points,
                &money(&highest.format(decimals), c),
            ))
        }
    }
}

fn reports(data: &GrantData) -> Markup {
    html! {
        section id="reports" data-live-part aria-labelledby="reports-heading" {
            h2 id="reports-heading" { "Reports" }
            @if data.view.reports.is_empty() { p { "No report scheduled." } } @else {
                @if let Some(day) = data.overdue_on {
                    p class="overdue-on" { "Overdue marks as of " time datetime=(day) data-figure="overdue-on" { (day) } "." }
                }
                div class="scroll" {
                    table {
                        thead { tr {
                            th scope="col" { "Report" } th scope="col" { "Kind" } th scope="col" { "Period end" }
                            th scope="col" { "Due on" } th scope="col" { "Status" } th scope="col" { "Submitted on" }
                            th scope="col" { "Accepted on" }
                        } }
                        tbody {
                            @for report in &data.view.reports {
                                @let overdue = data.overdue.contains(&report.report);
                                tr class=[overdue.then_some("overdue")] {
                                    th scope="row" { (report.report) }
                                    td { (report.kind) }
                                    td { (report.period_end) }
                                    td { (report.due_on) }
                                    td {
                                        (report.status)
                                        @if overdue { " " strong class="overdue-mark" { "overdue" } }
                                    }
                                    td { (report.submitted_on.as_deref().unwrap_or("")) }
                                    td { (report.accepted_on.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Documents of a grant or fund.
pub(crate) fn documents(documents: &[grantflow_domain::DocumentView]) -> Markup {
    html! {
        section id="documents" data-live-part aria-labelledby="documents-heading" {
            h2 id="documents-heading" { "Documents" }
            @if documents.is_empty() { p { "No document filed." } } @else {
                div class="scroll" {
                    table {
                        thead { tr {
                            th scope="col" { "Document" } th scope="col" { "Title" } th scope="col" { "Category" }
                            th scope="col" { "Issued on" } th scope="col" { "SHA-256" }
                        } }
                        tbody {
                            @for document in documents {
                                tr {
                                    th scope="row" { (document.document) }
                                    td {
                                        @match document.url.as_deref().filter(|url| url.starts_with("https://") || url.starts_with("http://")) {
                                            Some(url) => a href=(url) rel="noopener noreferrer" { (document.title) },
                                            None => (document.title),
                                        }
                                    }
                                    td { (document.category) }
                                    td { (document.issued_on.as_deref().unwrap_or("")) }
                                    td class="hash" { code { (document.sha256) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The commands whose forms the grant page shows the viewer: those their roles allow, in
/// the grant's state.
fn grant_commands(viewer: &Viewer, grant: &GrantView) -> Vec<&'static str> {
    let status = Status::parse(&grant.status);
    GRANT_COMMANDS
        .iter()
        .copied()
        .filter(|command| {
            command_role(command).is_some_and(|role| viewer.caller.token.has_role(role))
                && status.is_some_and(|status| allowed_states(command).contains(&status))
        })
        .collect()
}

fn actions(viewer: &Viewer, data: &GrantData, path: &str, submitted: Option<&Submitted>) -> Markup {
    let grant = &data.view;
    let commands = grant_commands(viewer, grant);
    let context = FormContext {
        action: path,
        csrf: &viewer.csrf,
        grant: Some(&grant.grant),
        fund: Some(&grant.fund),
        submitted,
    };
    let submitter = &data.details.submitted_by;
    let four_eyes = html! {
        p class="four-eyes" {
            "Proposal submitted by " strong { (submitter) } "."
            @if submitter == viewer.caller.actor() {
                " You submitted it: the four-eyes rule needs another approver."
            }
        }
    };
    html! {
        @if !commands.is_empty() {
            section id="actions" class="actions" aria-labelledby="actions-heading" {
                h2 id="actions-heading" { "Actions" }
                datalist id="agencies" { @for agency in &grant.agencies { option value=(agency.agency) {} } }
                datalist id="reports" { @for report in &grant.reports { option value=(report.report) {} } }
                @for command in &commands {
                    @if *command == "approve-grant" || *command == "revise-grant" {
                        (forms::render(command, &context, Some(four_eyes.clone())))
                    } @else {
                        (forms::render(command, &context, None))
                    }
                }
            }
        }
    }
}

/// The audit trail as a timeline, newest first: who, when, which command, why, and each
/// figure before and after.
pub(crate) fn timeline_section(trail: &[AuditEntry]) -> Markup {
    let hidden = trail.len().saturating_sub(AUDIT_ENTRIES_SHOWN);
    html! {
        section id="trail" data-live-part aria-labelledby="trail-heading" {
            h2 id="trail-heading" { "Audit trail" }
            ol class="trail" reversed {
                @for entry in trail.iter().rev().take(AUDIT_ENTRIES_SHOWN) {
                    li {
                        p class="entry" {
                            strong { (entry.command) } " "
                            span class="type" { (entry.event_type) } " by "
                            strong class="actor" { (entry.actor) } " at "
                            time datetime=(entry.recorded_at) { (entry.recorded_at) }
                            " · " a href={"?at=" (entry.position)} { "position " (entry.position) }
                        }
                        @if let Some(reason) = entry.payload.get("reason").and_then(Value::as_str) {
                            p class="reason" { "Why: " (reason) }
                        }
                        @if !entry.changes.is_empty() {
                            div class="scroll" { table class="changes" {
                                thead { tr { th scope="col" { "Figure" } th scope="col" { "Before" } th scope="col" { "After" } } }
                                tbody {
                                    @for change in entry.changes.iter().take(CHANGES_SHOWN) {
                                        tr { th scope="row" { (change.field) } td { (change.before) } td { (change.after) } }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
            @if hidden > 0 {
                p { (hidden) " earlier entries are not shown here; " code { "grantflow audit ID" } " lists them all." }
            }
        }
    }
}

/// The head of the log: position and hash.
pub(crate) fn head_section(head: Option<&Checkpoint>) -> Markup {
    html! {
        section id="head" data-live-part aria-labelledby="head-heading" {
            h2 id="head-heading" { "Log head" }
            @if let Some(head) = head {
                dl class="figures" {
                    dt { "Position" } dd data-figure="head-position" { (head.position) }
                    dt { "Hash" } dd class="hash" { code { (head.hash) } }
                    dt { "Recorded at" } dd { (head.recorded_at) }
                }
            } @else {
                p { "The log's head cannot be read now." }
            }
        }
    }
}
