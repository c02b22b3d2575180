//! The auditor's page (`/audit`, auditor or admin, as the API's checkpoint and verify
//! routes): verify the log and see the result, download a checkpoint, the JSON Lines export,
//! the events as CSV and the IATI files (activities and organisation), and list the reports overdue on a chosen date.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use grantflow_domain::Date;
use grantflow_engine::audit::{self, Checkpoint};
use grantflow_engine::FOLD_PAGE_EVENTS;
use maud::html;
use serde::Deserialize;

use super::grant::{head_section, today};
use super::layout::{self, Frame};
use super::session::Viewer;
use crate::auth::Access;
use crate::error::ApiError;
use crate::state::AppState;

/// `?verify=&overdue_on=` of the auditor's page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    verify: String,
    #[serde(default)]
    overdue_on: String,
}

/// The viewer, if signed in with the auditor's or admin's role; else the answer to give.
async fn auditor(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Viewer, Box<Response>> {
    let viewer = super::signed_in(state, headers, uri).await?;
    if let Err(error) = viewer.caller.require(Access::Audit) {
        return Err(Box::new(layout::problem(
            &viewer,
            error.status,
            error.code,
            &error.message,
        )));
    }
    Ok(viewer)
}

pub(crate) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let viewer = match auditor(&state, &headers, &uri).await {
        Ok(viewer) => viewer,
        Err(response) => return *response,
    };
    let query = query.map(|Query(query)| query).unwrap_or_default();
    let store = state.engine().store().clone();
    let verified = if query.verify.is_empty() {
        None
    } else {
        let _permit = match state.expensive_read().await {
            Ok(permit) => permit,
            Err(error) => return error.into_response(),
        };
        Some(audit::verify(store.as_ref(), None, &|_, _| {}).await)
    };
    let overdue_text = if query.overdue_on.is_empty() {
        today().map(|day| day.to_string()).unwrap_or_default()
    } else {
        query.overdue_on.clone()
    };
    let overdue_on = Date::parse(&overdue_text);
    let rows = overdue_on.map(|day| {
        state
            .engine()
            .with_model(|model| model.world.report_rows(None, None, Some(day)))
    });
    let head = Checkpoint::of(store.as_ref()).await.ok();
    let body = html! {
        h1 { "Audit" }
        section id="verify" aria-labelledby="verify-heading" {
            h2 id="verify-heading" { "Verify the log" }
            p { "Re-hashes the whole log, checks that positions and versions have no gap, and rebuilds every projection from the log to compare." }
            form method="get" action="/audit" {
                input type="hidden" name="verify" value="1";
                input type="hidden" name="overdue_on" value=(overdue_text);
                button type="submit" { "Verify now" }
            }
            @match &verified {
                None => {},
                Some(Ok(report)) if report.ok() => {
                    p class="verified ok" role="status" {
                        strong { "Verified" } ": " (report.events) " events, head at position " (report.head.position)
                        ", hash " code { (report.head.hash) }
                    }
                },
                Some(Ok(report)) => {
                    div class="refusal" role="alert" {
                        strong { "Verification failed" } ": "
                        @if let Some(failure) = &report.failure {
                            "first bad position " (failure.position) ": " (failure.detail)
                        }
                    }
                },
                Some(Err(error)) => { (layout::alert("internal", &error.to_string())) },
            }
        }
        (head_section(head.as_ref()))
        section id="downloads" aria-labelledby="downloads-heading" {
            h2 id="downloads-heading" { "Downloads" }
            ul {
                li { a href="/audit/checkpoint.json" download="grantflow-checkpoint.json" { "Checkpoint" } " (position, hash, time: keep it to prove later that the log still extends it)" }
                li { a href="/audit/export.jsonl" download="grantflow-export.jsonl" { "The whole log as JSON Lines" } " (each envelope with its hash)" }
                li { a href="/audit/events.csv" download="grantflow-events.csv" { "Every event as CSV" } " (with the figures after it)" }
                li { a href="/audit/iati.xml" download="grantflow-iati.xml" { "IATI 2.03 activities" } " (every grant)" }
                li { a href="/audit/iati-org.xml" download="grantflow-iati-org.xml" { "IATI 2.03 organisation file" } " (the fund as the reporting organisation: its budget and expenditure per year)" }
            }
        }
        section id="overdue" aria-labelledby="overdue-heading" {
            h2 id="overdue-heading" { "Overdue reports" }
            form method="get" action="/audit" class="filters" {
                div class="field" {
                    label for="overdue-on" { "Overdue on" }
                    input type="date" id="overdue-on" name="overdue_on" value=(overdue_text);
                }
                button type="submit" { "Show" }
            }
            @match &rows {
                None => { (layout::alert("bad_request", &format!("`{overdue_text}` is not a date written YYYY-MM-DD"))) },
                Some(rows) if rows.is_empty() => { p { "No report overdue on " (overdue_text) "." } },
                Some(rows) => {
                    div class="scroll" {
                        table {
                            thead { tr {
                                th scope="col" { "Grant" } th scope="col" { "Report" } th scope="col" { "Kind" }
                                th scope="col" { "Period end" } th scope="col" { "Due on" } th scope="col" { "Status" }
                            } }
                            tbody {
                                @for row in rows {
                                    tr class="overdue" {
                                        td { a href={"/grants/" (row.grant)} { (row.grant) } }
                                        th scope="row" { (row.report) }
                                        td { (row.kind) } td { (row.period_end) } td { (row.due_on) }
                                        td { (row.status) " " strong class="overdue-mark" { "overdue" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    let frame = Frame {
        title: "Audit",
        viewer: Some(&viewer),
        live: None,
        notice: viewer.take_notice(&state),
    };
    layout::respond(StatusCode::OK, layout::page(frame, body))
}

fn download(content_type: &'static str, name: &'static str, body: Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

pub(crate) async fn checkpoint(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(response) = auditor(&state, &headers, &uri).await {
        return *response;
    }
    match state.checkpoint().await {
        Ok(checkpoint) => match serde_json::to_string(&checkpoint) {
            Ok(mut text) => {
                text.push('\n');
                download("application/json", "grantflow-checkpoint.json", text.into())
            }
            Err(error) => ApiError::internal(error).into_response(),
        },
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The log as JSON Lines, read a page at a time as the client takes it (never whole in
/// memory), up to the head when the download began.
pub(crate) async fn export_jsonl(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(response) = auditor(&state, &headers, &uri).await {
        return *response;
    }
    let store = state.engine().store().clone();
    let head = match store.head().await {
        Ok(head) => head.position,
        Err(error) => return ApiError::internal(error).into_response(),
    };
    let pages = futures::stream::unfold(1u64, move |next| {
        let store = store.clone();
        async move {
            if next > head {
                return None;
            }
            let want = (head + 1 - next).min(FOLD_PAGE_EVENTS as u64) as usize;
            match store.read(next, want).await {
                Ok(page) if !page.is_empty() => {
                    let mut text = String::new();
                    let mut last = next;
                    for envelope in &page {
                        text.push_str(&envelope.to_line());
                        text.push('\n');
                        last = envelope.position;
                    }
                    Some((Ok::<Bytes, Infallible>(Bytes::from(text)), last + 1))
                }
                Ok(_) => None,
                Err(error) => {
                    tracing::error!(%error, "the JSON Lines download ended by a store error");
                    None
                }
            }
        }
    });
    download(
        "application/x-ndjson",
        "grantflow-export.jsonl",
        Body::from_stream(pages),
    )
}

pub(crate) async fn events_csv(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(response) = auditor(&state, &headers, &uri).await {
        return *response;
    }
    let mut out = Vec::new();
    match grantflow_export::write_events_csv(state.engine().store().as_ref(), &mut out).await {
        Ok(_) => download(
            "text/csv; charset=utf-8",
            "grantflow-events.csv",
            out.into(),
        ),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

pub(crate) async fn iati(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Response {
    iati_file(&state, &headers, &uri, IatiFile::Activities).await
}

pub(crate) async fn iati_org(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    iati_file(&state, &headers, &uri, IatiFile::Organisation).await
}

/// The two IATI files.
#[derive(Debug, Clone, Copy)]
enum IatiFile {
    /// Every grant as an activity (`/audit/iati.xml`).
    Activities,
    /// The funds as the reporting organisation (`/audit/iati-org.xml`).
    Organisation,
}

/// An IATI file as of now, the reporting organisation being the fund's `iati_org_ref`; what
/// keeps it from being written (nothing to export, no organisation identifier) is answered
/// in plain text.
async fn iati_file(state: &AppState, headers: &HeaderMap, uri: &Uri, file: IatiFile) -> Response {
    use grantflow_export::ExportError;
    if let Err(response) = auditor(state, headers, uri).await {
        return *response;
    }
    let options = grantflow_export::IatiOptions {
        as_of: grantflow_engine::query::AsOf::Head,
        grants: Vec::new(),
        reporting_org: None,
        generated_at: None,
    };
    let _permit = match state.expensive_read().await {
        Ok(permit) => permit,
        Err(error) => return error.into_response(),
    };
    let store = state.engine().store();
    let mut out = Vec::new();
    let (written, name) = match file {
        IatiFile::Activities => (
            grantflow_export::write_iati(store.as_ref(), &options, &mut out)
                .await
                .map(|_| ()),
            "grantflow-iati.xml",
        ),
        IatiFile::Organisation => (
            grantflow_export::write_iati_organisation(store.as_ref(), &options, &mut out)
                .await
                .map(|_| ()),
            "grantflow-iati-org.xml",
        ),
    };
    match written {
        Ok(()) => download("application/xml; charset=utf-8", name, out.into()),
        Err(error @ ExportError::NothingToExport { .. }) => {
            layout_problem_text(StatusCode::NOT_FOUND, &error.to_string())
        }
        Err(error @ ExportError::BadOption(_)) => {
            layout_problem_text(StatusCode::UNPROCESSABLE_ENTITY, &error.to_string())
        }
        Err(error) => ApiError::internal(error).into_response(),
    }
}

fn layout_problem_text(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}
