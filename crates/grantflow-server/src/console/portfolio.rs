//! The portfolio (`/`): every fund's figures, and the grants as a table filtered by fund and
//! status, searched by id or title, one page of [`PORTFOLIO_PAGE_ROWS`] at a time (only the
//! page's rows are rendered, so a fund with 10,000 grants stays fast).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use grantflow_domain::world::STATUSES;
use grantflow_domain::{FundView, GrantView, Status, World};
use maud::{html, Markup};
use serde::Deserialize;

use super::charts::{bars, Bar};
use super::forms::{self, FormContext, Submitted};
use super::layout::{self, minor, money, Frame};
use super::session::Viewer;
use crate::auth::command_role;
use crate::state::AppState;

/// Grants per page of the portfolio's table.
pub const PORTFOLIO_PAGE_ROWS: usize = 50;
/// The longest search text read (a search is a substring of an id or title).
const SEARCH_CHARS_MAX: usize = 200;

/// `?fund=&status=&q=&page=` of the portfolio; empty values are no filter.
#[derive(Debug, Default, Clone, Deserialize)]
pub(crate) struct PortfolioQuery {
    #[serde(default)]
    fund: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<PortfolioQuery>, QueryRejection>,
) -> Response {
    let viewer = match super::signed_in(&state, &headers, &uri).await {
        Ok(viewer) => viewer,
        Err(sign_in) => return *sign_in,
    };
    let query = query.map(|Query(query)| query).unwrap_or_default();
    render(&state, &viewer, &query, None, StatusCode::OK)
}

/// The portfolio as the world is now; `submitted` is a form just refused.
pub(crate) fn render(
    state: &AppState,
    viewer: &Viewer,
    query: &PortfolioQuery,
    submitted: Option<&Submitted>,
    status: StatusCode,
) -> Response {
    let body = state.engine().with_model(|model| {
        let table = Table::of(&model.world, query);
        let funds: Vec<FundView> = model
            .world
            .fund_ids()
            .iter()
            .filter_map(|id| model.world.fund_view(id))
            .collect();
        body(viewer, query, &funds, &table, submitted)
    });
    let frame = Frame {
        title: "Portfolio",
        viewer: Some(viewer),
        live: Some("*".to_string()),
        notice: viewer.take_notice(state),
    };
    layout::respond(status, layout::page(frame, body))
}

/// The table's rows of one page, and how many grants matched.
struct Table {
    rows: Vec<GrantView>,
    matched: usize,
    page: usize,
    pages: usize,
    unknown_status: bool,
}

impl Table {
    fn of(world: &World, query: &PortfolioQuery) -> Table {
        let wanted = Status::parse(&query.status);
        let unknown_status = !query.status.is_empty() && wanted.is_none();
        let needle: String = query
            .q
            .trim()
            .chars()
            .take(SEARCH_CHARS_MAX)
            .collect::<String>()
            .to_lowercase();
        let ids = world.grant_ids();
        let matching: Vec<&String> = ids
            .iter()
            .filter(|id| {
                let Some(grant) = world.grant(id) else {
                    return false;
                };
                (query.fund.is_empty() || grant.fund == query.fund)
                    && wanted.is_none_or(|status| grant.status == status)
                    && (needle.is_empty()
                        || grant.grant.to_lowercase().contains(&needle)
                        || grant.title.to_lowercase().contains(&needle))
            })
            .collect();
        let matched = matching.len();
        let pages = matched.div_ceil(PORTFOLIO_PAGE_ROWS).max(1);
        let page = query
            .page
            .as_deref()
            .and_then(|page| page.parse::<usize>().ok())
            .unwrap_or(1)
            .clamp(1, pages);
        let rows = matching
            .into_iter()
            .skip((page - 1) * PORTFOLIO_PAGE_ROWS)
            .take(PORTFOLIO_PAGE_ROWS)
            .filter_map(|id| world.grant_view(id))
            .collect();
        Table {
            rows,
            matched,
            page,
            pages,
            unknown_status,
        }
    }
}

fn body(
    viewer: &Viewer,
    query: &PortfolioQuery,
    funds: &[FundView],
    table: &Table,
    submitted: Option<&Submitted>,
) -> Markup {
    let may = |command: &str| {
        command_role(command).is_some_and(|role| viewer.caller.token.has_role(role))
    };
    let single_fund = match funds {
        [only] => Some(only.fund.as_str()),
        _ => (!query.fund.is_empty()).then_some(query.fund.as_str()),
    };
    let context = FormContext {
        action: "/",
        csrf: &viewer.csrf,
        grant: None,
        fund: single_fund,
        submitted,
    };
    let forms: Vec<&str> = ["register-fund", "submit-proposal"]
        .into_iter()
        .filter(|command| may(command))
        .collect();
    html! {
        h1 { "Portfolio" }
        @if let Some(sent) = submitted.filter(|sent| !forms.contains(&sent.command.as_str())) {
            (layout::alert(&sent.code, &sent.message))
        }
        section id="funds" data-live-part aria-labelledby="funds-heading" {
            h2 id="funds-heading" { "Funds" }
            @if funds.is_empty() { p { "No fund yet." } }
            div class="cards" {
                @for fund in funds { (fund_card(fund)) }
            }
        }
        section id="grants" data-live-part aria-labelledby="grants-heading" {
            h2 id="grants-heading" { "Grants" }
            (filters(query, funds))
            @if table.unknown_status {
                (layout::alert("bad_request", &format!("unknown status `{}`: showing every status", query.status)))
            }
            p class="count" { (table.matched) " grants" @if table.pages > 1 { ", page " (table.page) " of " (table.pages) } }
            (grants_table(&table.rows))
            (pager(query, table))
        }
        @if !forms.is_empty() {
            section class="actions" aria-labelledby="actions-heading" {
                h2 id="actions-heading" { "Actions" }
                datalist id="funds" { @for fund in funds { option value=(fund.fund) {} } }
                @for command in &forms { (forms::render(command, &context, None)) }
            }
        }
    }
}

/// A fund's figures; pledges, fees and income when the fund has any.
pub(crate) fn fund_card(fund: &FundView) -> Markup {
    let c = fund.currency.as_str();
    let base = minor(&fund.received, c) + minor(&fund.income, c) - minor(&fund.fees, c);
    let chart = bars(
        &format!(
            "{}: committed {} and disbursed {} of {} received net of fees",
            fund.fund,
            money(&fund.committed, c),
            money(&fund.disbursed, c),
            money(&base.format(decimals(c)), c)
        ),
        base,
        &[
            Bar {
                value: minor(&fund.committed, c),
                class: "committed",
                name: "committed",
            },
            Bar {
                value: minor(&fund.disbursed, c),
                class: "disbursed",
                name: "disbursed",
            },
        ],
    );
    let extra = [
        ("Pledged", "pledged", &fund.pledged),
        (
            "Pledges outstanding",
            "pledges_outstanding",
            &fund.pledges_outstanding,
        ),
        ("Fees", "fees", &fund.fees),
        ("Income", "income", &fund.income),
    ];
    html! {
        article class="card fund" {
            h3 { a href={"/funds/" (fund.fund)} { (fund.name) } " " span class="id" { (fund.fund) } }
            dl class="figures" {
                dt { "Received" } dd data-figure="received" { (money(&fund.received, c)) }
                dt { "Committed" } dd data-figure="committed" { (money(&fund.committed, c)) }
                dt { "Available" } dd data-figure="available" { (money(&fund.available, c)) }
                dt { "Cash" } dd data-figure="cash" { (money(&fund.cash, c)) }
                @for (name, key, value) in extra {
                    @if minor(value, c).0 != 0 {
                        dt { (name) } dd data-figure=(key) { (money(value, c)) }
                    }
                }
                dt { "Grants" } dd { (fund.grants) }
            }
            (chart)
            p class="legend" { span class="key committed" {} "committed " span class="key disbursed" {} "disbursed" }
        }
    }
}

fn decimals(currency: &str) -> u8 {
    grantflow_domain::Currency::parse(currency).map_or(2, |c| c.decimals())
}

fn filters(query: &PortfolioQuery, funds: &[FundView]) -> Markup {
    html! {
        form class="filters" method="get" action="/" role="search" {
            div class="field" {
                label for="filter-fund" { "Fund" }
                select id="filter-fund" name="fund" {
                    option value="" { "All funds" }
                    @for fund in funds {
                        option value=(fund.fund) selected[fund.fund == query.fund] { (fund.fund) }
                    }
                }
            }
            div class="field" {
                label for="filter-status" { "Status" }
                select id="filter-status" name="status" {
                    option value="" { "Any status" }
                    @for status in STATUSES {
                        option value=(status.as_str()) selected[status.as_str() == query.status] { (status.as_str()) }
                    }
                }
            }
            div class="field" {
                label for="filter-q" { "Search id or title" }
                input type="search" id="filter-q" name="q" value=(query.q);
            }
            button type="submit" { "Show" }
        }
    }
}

fn grants_table(rows: &[GrantView]) -> Markup {
    html! {
        div class="scroll" {
            table class="grants" {
                thead { tr {
                    th scope="col" { "Grant" } th scope="col" { "Title" } th scope="col" { "Status" }
                    th scope="col" class="num" { "Amount" } th scope="col" class="num" { "Allocated" }
                    th scope="col" { "Disbursed" } th scope="col" { "Agencies" }
                    th scope="col" class="num" { "Last change" }
                } }
                tbody {
                    @for grant in rows {
                        @let c = grant.currency.as_str();
                        @let scale = if minor(&grant.amount, c).0 > 0 { minor(&grant.amount, c) } else { minor(&grant.requested, c) };
                        tr {
                            td { a href={"/grants/" (grant.grant)} { (grant.grant) } }
                            td { (grant.title) }
                            td { span class={"status " (grant.status)} { (grant.status) } }
                            td class="num" { (money(&grant.amount, c)) }
                            td class="num" { (money(&grant.allocated, c)) }
                            td class="bar-cell" {
                                (bars(&format!("{} disbursed of {}", money(&grant.disbursed, c), money(&grant.amount, c)), scale,
                                    &[Bar { value: minor(&grant.disbursed, c), class: "disbursed", name: "disbursed" }]))
                                span class="figure" { (money(&grant.disbursed, c)) }
                            }
                            td { (grant.agencies.iter().map(|a| a.agency.as_str()).collect::<Vec<_>>().join(", ")) }
                            td class="num" { "position " (grant.position) }
                        }
                    }
                }
            }
        }
    }
}

fn pager(query: &PortfolioQuery, table: &Table) -> Markup {
    let link = |page: usize| {
        let mut url = url_with(&[
            ("fund", &query.fund),
            ("status", &query.status),
            ("q", &query.q),
        ]);
        url.push_str(if url.contains('?') { "&" } else { "?" });
        url.push_str(&format!("page={page}"));
        url
    };
    html! {
        @if table.pages > 1 {
            nav class="pager" aria-label="Pages" {
                @if table.page > 1 { a rel="prev" href=(link(table.page - 1)) { "Previous page" } }
                span { "Page " (table.page) " of " (table.pages) }
                @if table.page < table.pages { a rel="next" href=(link(table.page + 1)) { "Next page" } }
            }
        }
    }
}

/// `/` with the non-empty parameters, form-encoded.
fn url_with(pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, value)| !value.is_empty()) {
        query.append_pair(name, value);
    }
    let query = query.finish();
    if query.is_empty() {
        "/".to_string()
    } else {
        format!("/?{query}")
    }
}
