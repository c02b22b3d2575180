//! A fund's page (`/funds/{id}`): its figures and terms, pledges, documents, its grants, the
//! audit trail, the log head, the as-of control, and the fund's command forms.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grantflow_domain::{FundView, GrantView, World};
use grantflow_engine::audit::Checkpoint;
use grantflow_engine::query::{AsOf, AuditEntry, Subject};
use maud::{html, Markup};

use super::forms::{self, FormContext, Submitted};
use super::grant::{documents, head_section, moment_form, timeline_section, trail, MomentQuery};
use super::layout::{self, money, Frame};
use super::portfolio::{fund_card, PORTFOLIO_PAGE_ROWS};
use super::session::Viewer;
use crate::auth::command_role;
use crate::state::AppState;

/// The fund page's commands, in the order their forms appear.
const FUND_COMMANDS: &[&str] = &[
    "record-contribution",
    "record-pledge",
    "record-income",
    "submit-proposal",
    "revise-fund-terms",
    "attach-document",
];

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

/// The fund and the first page of its grants, at one moment.
struct FundData {
    view: FundView,
    grants: Vec<GrantView>,
    position: u64,
}

impl FundData {
    fn of(world: &World, id: &str, position: u64) -> Option<FundData> {
        Some(FundData {
            view: world.fund_view(id)?,
            grants: world
                .fund_grant_ids(id)
                .iter()
                .take(PORTFOLIO_PAGE_ROWS)
                .filter_map(|grant| world.grant_view(grant))
                .collect(),
            position,
        })
    }
}

/// The fund page; `submitted` is a form just refused.
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
        AsOf::Head => state
            .engine()
            .with_model(|model| FundData::of(&model.world, id, model.position)),
        past => match super::grant::past_model(state, &Subject::Fund(id.to_string()), past).await {
            Ok(model) => FundData::of(&model.world, id, model.position),
            Err(error) => {
                return layout::problem(viewer, error.status, error.code, &error.message);
            }
        },
    };
    let Some(data) = data else {
        return layout::problem(
            viewer,
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no fund `{id}`"),
        );
    };
    let trail = match trail(state, Subject::Fund(id.to_string()), data.position).await {
        Ok(trail) => trail,
        Err(error) => return layout::problem(viewer, error.status, error.code, &error.message),
    };
    let head = Checkpoint::of(state.engine().store().as_ref()).await.ok();
    let now = moment.is_now();
    let frame = Frame {
        title: &data.view.name,
        viewer: Some(viewer),
        live: now.then(|| format!("fund-{}", data.view.fund)),
        notice: viewer.take_notice(state),
    };
    let body = body(viewer, &data, &trail, head.as_ref(), moment, now, submitted);
    layout::respond(status, layout::page(frame, body))
}

fn body(
    viewer: &Viewer,
    data: &FundData,
    trail: &[AuditEntry],
    head: Option<&Checkpoint>,
    moment: &MomentQuery,
    now: bool,
    submitted: Option<&Submitted>,
) -> Markup {
    let fund = &data.view;
    let c = fund.currency.as_str();
    let path = format!("/funds/{}", fund.fund);
    html! {
        p class="crumbs" { a href="/" { "Portfolio" } }
        h1 { (fund.name) }
        p class="subtitle" {
            span class="id" { (fund.fund) } " · " (fund.currency)
            @if !now { " " strong class="past" { "as of position " (data.position) } }
        }
        (moment_form(&path, moment, now))
        @if let Some(sent) = submitted.filter(|sent| !(now && fund_commands(viewer).contains(&sent.command.as_str()))) {
            (layout::alert(&sent.code, &sent.message))
        }
        section id="figures" data-live-part aria-labelledby="figures-heading" {
            h2 id="figures-heading" { "Figures" }
            (fund_card(fund))
            @if let Some(reference) = &fund.iati_org_ref {
                dl class="figures" {
                    dt { "IATI organisation identifier" } dd data-figure="iati_org_ref" { (reference) }
                }
            }
            h3 { "Terms" }
            dl class="figures" {
                dt { "Administrative fee" } dd { (fund.terms.admin_fee_percent) "%" }
                dt { "Indirect cost cap" } dd { (fund.terms.indirect_max_percent) "%" }
                dt { "Tranche threshold" } dd { (fund.terms.tranche_threshold_percent) "%" }
                dt { "Hold on overdue reports" } dd { @if fund.terms.hold_on_overdue_reports { "yes" } @else { "no" } }
            }
        }
        section id="pledges" data-live-part aria-labelledby="pledges-heading" {
            h2 id="pledges-heading" { "Pledges" }
            @if fund.pledges.is_empty() { p { "No pledge recorded." } } @else {
                div class="scroll" {
                    table {
                        thead { tr {
                            th scope="col" { "Pledge" } th scope="col" { "Donor" } th scope="col" class="num" { "Amount" }
                            th scope="col" class="num" { "Paid" } th scope="col" class="num" { "Outstanding" }
                            th scope="col" { "Signed on" } th scope="col" { "Due on" }
                        } }
                        tbody {
                            @for pledge in &fund.pledges {
                                tr {
                                    th scope="row" { (pledge.pledge) }
                                    td { (pledge.donor) }
                                    td class="num" { (money(&pledge.amount, c)) }
                                    td class="num" { (money(&pledge.paid, c)) }
                                    td class="num" { (money(&pledge.outstanding, c)) }
                                    td { (pledge.signed_on) }
                                    td { (pledge.due_on.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section id="fund-grants" data-live-part aria-labelledby="fund-grants-heading" {
            h2 id="fund-grants-heading" { "Grants" }
            @if data.grants.is_empty() { p { "No grant yet." } } @else {
                ul class="grant-list" {
                    @for grant in &data.grants {
                        li {
                            a href={"/grants/" (grant.grant)} { (grant.grant) } " " (grant.title) " · "
                            span class={"status " (grant.status)} { (grant.status) } " · " (money(&grant.amount, c))
                        }
                    }
                }
                @if fund.grants as usize > data.grants.len() {
                    p { a href={"/?fund=" (fund.fund)} { "All " (fund.grants) " grants of this fund" } }
                }
            }
        }
        (documents(&fund.documents))
        @if now { (actions(viewer, fund, &path, submitted)) }
        (timeline_section(trail))
        (head_section(head))
    }
}

/// The commands whose forms the fund page shows the viewer.
fn fund_commands(viewer: &Viewer) -> Vec<&'static str> {
    FUND_COMMANDS
        .iter()
        .copied()
        .filter(|command| {
            command_role(command).is_some_and(|role| viewer.caller.token.has_role(role))
        })
        .collect()
}

fn actions(viewer: &Viewer, fund: &FundView, path: &str, submitted: Option<&Submitted>) -> Markup {
    let commands = fund_commands(viewer);
    let context = FormContext {
        action: path,
        csrf: &viewer.csrf,
        grant: None,
        fund: Some(&fund.fund),
        submitted,
    };
    html! {
        @if !commands.is_empty() {
            section id="actions" class="actions" aria-labelledby="actions-heading" {
                h2 id="actions-heading" { "Actions" }
                @for command in &commands { (forms::render(command, &context, None)) }
            }
        }
    }
}
