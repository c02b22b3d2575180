//! The handlers: extract, check the role, call the engine, map. Each carries its OpenAPI
//! description, and [`api_router`] builds the router and the description from the same list,
//! so the two cannot drift apart.

use std::sync::OnceLock;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use grantflow_domain::{Status, COMMAND_NAMES};
use grantflow_engine::audit::{self, Checkpoint};
use grantflow_engine::query::{self, AsOf, Subject};
use grantflow_engine::{ActorSource, CommandOutcome, Submission};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{command_role, Access, Caller};
use crate::error::{status_of_code, ApiError, ErrorBody, ErrorDetail};
use crate::extract::{ApiPath, ApiQuery};
use crate::metrics::Gauges;
use crate::state::AppState;

/// How many times `/v1/verify` re-runs when commands were appended while it ran (a verify
/// compares the stored head and projections with a rebuild, which a concurrent append moves).
pub const VERIFY_ATTEMPTS_MAX: usize = 3;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "grantflow",
        description = "An event-sourced funding-workflow engine for trust funds: commands, \
                       figures, audit trails and the hash-chained event log. Reference: docs/http.md in the grantflow repository."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&BearerAuth),
    tags(
        (name = "commands", description = "One command per request, as `grantflow exec` reads them"),
        (name = "figures", description = "Grant and fund figures, audit trails"),
        (name = "events", description = "The event log, paged and streamed"),
        (name = "audit", description = "Checkpoints and verification"),
        (name = "operations", description = "Health, metrics and this description"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route with its OpenAPI description.
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(post_command))
        .routes(routes!(list_grants))
        .routes(routes!(list_reports))
        .routes(routes!(get_grant))
        .routes(routes!(grant_audit))
        .routes(routes!(get_fund))
        .routes(routes!(fund_audit))
        .routes(routes!(crate::events::list_events))
        .routes(routes!(crate::events::stream_events))
        .routes(routes!(crate::catalog::list_schemas))
        .routes(routes!(crate::catalog::get_envelope_schema))
        .routes(routes!(crate::catalog::get_payload_schema))
        .routes(routes!(checkpoint))
        .routes(routes!(export_iati))
        .routes(routes!(export_iati_org))
        .routes(routes!(verify))
        .routes(routes!(healthz))
        .routes(routes!(openapi_json))
        .routes(routes!(crate::catalog::asyncapi_json))
        .routes(routes!(metrics))
}

/// The OpenAPI 3.1 description of every route: generated from the handlers, then completed
/// with the command schema, the answers' schemas, every status and links
/// ([`crate::openapi::complete`]).
pub fn openapi() -> Value {
    let mut document =
        serde_json::to_value(api_router().split_for_parts().1).unwrap_or_else(|_| json!({}));
    crate::openapi::complete(&mut document);
    document
}

/// One command (docs/commands.md, "Commands as JSON"); the actor is the token's.
#[utoipa::path(
    post,
    path = "/v1/commands",
    tag = "commands",
    security(("bearer" = [])),
    request_body(content = Object, description = "A command object, e.g. \
        {\"command\": \"approve-grant\", \"grant\": \"MEX-1\", \"decided_on\": \"2012-09-27\"}; \
        no `actor`: it is the token's", content_type = "application/json"),
    responses(
        (status = 200, description = "Accepted (or replayed): {ok, command_id, events[, replayed]}", body = Object),
        (status = 400, description = "malformed_command, invalid_amount or future_date: the body does not fit `Command`, or breaks a rule no schema states (a date after today, sector percentages not summing to 100, dates out of order, more decimals than the fund's currency has)", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: the token lacks the command's role", body = ErrorBody),
        (status = 409, description = "version_conflict or command_id_conflict", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 422, description = "every other rule (docs/errors.md)", body = ErrorBody),
    )
)]
async fn post_command(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| body_error(&state, rejection))?;
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            state.metrics().rejected("malformed_command");
            return Err(ApiError::malformed(format!(
                "the body is not a JSON object: {error}"
            )));
        }
    };
    let (status, outcome) = run_command(&state, &caller, value).await?;
    Ok((status, Json(outcome)).into_response())
}

/// One command as `POST /v1/commands` runs it, for the API and the console alike: the role
/// check of [`command_role`], the token's actor, the engine, the counters; the outcome with
/// its HTTP status (docs/errors.md).
pub(crate) async fn run_command(
    state: &AppState,
    caller: &Caller,
    value: Value,
) -> Result<(StatusCode, CommandOutcome), ApiError> {
    let command_id = value
        .get("command_id")
        .and_then(Value::as_str)
        .map(str::to_string);
    check_command_role(caller, &value).map_err(|error| error.with_command_id(command_id))?;
    // A body that is not an object, or names no known command, goes to the parser, which
    // answers 400 malformed_command naming the field.
    let submission = Submission {
        body: value,
        actor: ActorSource::Fixed(caller.actor().to_string()),
    };
    let started = Instant::now();
    let outcome = state.engine().submit(submission).await?;
    let metrics = state.metrics();
    let status = match &outcome {
        CommandOutcome::Accepted { replayed: true, .. } => {
            metrics.replayed();
            StatusCode::OK
        }
        CommandOutcome::Accepted { .. } => {
            metrics.accepted(started.elapsed());
            StatusCode::OK
        }
        CommandOutcome::Rejected { rejection, .. } => {
            metrics.rejected(&rejection.code);
            status_of_code(&rejection.code)
        }
    };
    Ok((status, outcome))
}

/// 403 when the body names a known command the caller's roles do not cover.
fn check_command_role(caller: &Caller, body: &Value) -> Result<(), ApiError> {
    let Some(name) = body.get("command").and_then(Value::as_str) else {
        return Ok(());
    };
    match command_role(name) {
        Some(role) => caller.require_command(name, role),
        // A command the parser knows but the role table does not: refuse rather than let
        // every role issue it.
        None if COMMAND_NAMES.contains(&name) => Err(ApiError::internal(format!(
            "command `{name}` has no role in the server's table"
        ))),
        None => Ok(()),
    }
}

fn body_error(state: &AppState, rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        state.metrics().rejected("payload_too_large");
        return ApiError::payload_too_large(state.limits().body_bytes_max);
    }
    ApiError::malformed(format!(
        "cannot read the request body: {}",
        rejection.body_text()
    ))
}

/// `?fund=&status=` of `GET /v1/grants`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListGrantsQuery {
    /// Only the grants of this fund.
    fund: Option<String>,
    /// Only grants in this state (proposed, approved, active, suspended, closed, finalized,
    /// rejected, cancelled).
    #[param(
        pattern = "^(proposed|approved|active|suspended|closed|finalized|rejected|cancelled)$"
    )]
    status: Option<String>,
}

/// Every grant's figures, in order of submission.
#[utoipa::path(
    get,
    path = "/v1/grants",
    tag = "figures",
    security(("bearer" = [])),
    params(ListGrantsQuery),
    responses(
        (status = 200, description = "An array of grant figures (as `grant list --json`)", body = Vec<Object>),
        (status = 400, description = "bad_request: unknown status", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
    )
)]
async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListGrantsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    if let Some(status) = &query.status {
        if Status::parse(status).is_none() {
            return Err(ApiError::bad_request(format!(
                "unknown status `{status}`: one of proposed, approved, active, suspended, \
                 closed, finalized, rejected, cancelled"
            )));
        }
    }
    let views: Vec<_> = state.engine().with_model(|model| {
        model
            .world
            .grant_ids()
            .iter()
            .filter_map(|id| model.world.grant_view(id))
            .filter(|view| query.fund.as_ref().is_none_or(|fund| &view.fund == fund))
            .filter(|view| query.status.as_ref().is_none_or(|s| &view.status == s))
            .collect()
    });
    Ok(Json(views).into_response())
}

/// `?fund=&grant=&overdue_on=` of `GET /v1/reports`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListReportsQuery {
    /// Only the reports of this fund's grants.
    fund: Option<String>,
    /// Only this grant's reports.
    grant: Option<String>,
    /// Only the reports overdue on this date (YYYY-MM-DD): due before it and, on it, still
    /// scheduled or returned.
    #[param(format = Date)]
    overdue_on: Option<String>,
}

/// Every report of the grants (whatever its status), with its current status; ordered by due
/// date, grant and id.
#[utoipa::path(
    get,
    path = "/v1/reports",
    tag = "figures",
    security(("bearer" = [])),
    params(ListReportsQuery),
    responses(
        (status = 200, description = "{\"reports\": [{grant, report, kind, period_end, due_on, status}]} (as `report list --json`)", body = Object),
        (status = 400, description = "bad_request: overdue_on is not a date", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found: an unknown fund or grant", body = ErrorBody),
    )
)]
async fn list_reports(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListReportsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let overdue_on = query
        .overdue_on
        .as_deref()
        .map(|text| {
            grantflow_domain::Date::parse(text).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "overdue_on {text:?} is not a real calendar date written YYYY-MM-DD"
                ))
            })
        })
        .transpose()?;
    let rows = state.engine().with_model(|model| {
        if let Some(fund) = query
            .fund
            .as_deref()
            .filter(|f| model.world.fund(f).is_none())
        {
            return Err(ApiError::not_found(format!("no fund `{fund}`")));
        }
        if let Some(grant) = query
            .grant
            .as_deref()
            .filter(|g| model.world.grant(g).is_none())
        {
            return Err(ApiError::not_found(format!("no grant `{grant}`")));
        }
        Ok(model
            .world
            .report_rows(query.fund.as_deref(), query.grant.as_deref(), overdue_on))
    })?;
    Ok(Json(serde_json::json!({ "reports": rows })).into_response())
}

/// `?at=` / `?as_of=` of the figure routes.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AsOfQuery {
    /// The figures after the event at this log position. Not with `as_of`: a request with
    /// both is 400 `bad_request`.
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    at: Option<u64>,
    /// The figures after every event recorded at or before this RFC 3339 time. Not with `at`:
    /// a request with both is 400 `bad_request`.
    #[param(format = DateTime)]
    as_of: Option<String>,
}

impl AsOfQuery {
    fn as_of(&self) -> Result<AsOf, ApiError> {
        if self.at.is_some() && self.as_of.is_some() {
            return Err(ApiError::bad_request(
                "give either `at` (a position) or `as_of` (a time), not both",
            ));
        }
        // A `+` of a time zone offset arrives as a space when the client did not encode it.
        let time = self.as_of.as_ref().map(|time| time.replace(' ', "+"));
        Ok(AsOf::from_options(self.at, time.as_deref())?)
    }
}

/// A view of a grant or fund as of a moment: now without copying the read model, else from
/// a fold of the streams it depends on up to that moment ([`query::subject_as_of`]).
async fn view_as_of<T>(
    state: &AppState,
    as_of: &AsOf,
    subject: &query::Subject,
    view: impl Fn(&grantflow_domain::World) -> Option<T>,
) -> Result<Option<T>, ApiError> {
    if *as_of == AsOf::Head {
        return Ok(state.engine().with_model(|model| view(&model.world)));
    }
    let _permit = state.expensive_read().await?;
    let model = query::subject_as_of(state.engine(), subject, as_of).await?;
    Ok(view(&model.world))
}

fn moment(as_of: &AsOf) -> String {
    match as_of {
        AsOf::Head => String::new(),
        AsOf::Position(position) => format!(" at position {position}"),
        AsOf::Time(time) => format!(" as of {time}"),
    }
}

/// A grant's figures, now or as of a position or time.
#[utoipa::path(
    get,
    path = "/v1/grants/{id}",
    tag = "figures",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Grant id", example = "MEX-2012-01"), AsOfQuery),
    responses(
        (status = 200, description = "The grant's figures (as `grant show --json`)", body = Object),
        (status = 400, description = "bad_request: both at and as_of, or a bad time", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 503, description = "busy (only with `at` or `as_of`): too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn get_grant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let as_of = query.as_of()?;
    let subject = query::Subject::Grant(id.clone());
    let view = view_as_of(&state, &as_of, &subject, |world| world.grant_view(&id)).await?;
    match view {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(ApiError::not_found(format!(
            "no grant `{id}`{}",
            moment(&as_of)
        ))),
    }
}

/// A fund's figures, now or as of a position or time.
#[utoipa::path(
    get,
    path = "/v1/funds/{id}",
    tag = "figures",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Fund id", example = "UNTFHS"), AsOfQuery),
    responses(
        (status = 200, description = "The fund's figures (as `fund show --json`)", body = Object),
        (status = 400, description = "bad_request", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 503, description = "busy (only with `at` or `as_of`): too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn get_fund(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
    ApiQuery(query): ApiQuery<AsOfQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let as_of = query.as_of()?;
    let subject = query::Subject::Fund(id.clone());
    let view = view_as_of(&state, &as_of, &subject, |world| world.fund_view(&id)).await?;
    match view {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(ApiError::not_found(format!(
            "no fund `{id}`{}",
            moment(&as_of)
        ))),
    }
}

/// A grant's audit trail: every event of its stream with the figures before and after.
#[utoipa::path(
    get,
    path = "/v1/grants/{id}/audit",
    tag = "figures",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Grant id", example = "MEX-2012-01")),
    responses(
        (status = 200, description = "An array of audit entries (as `audit ID --json`)", body = Vec<Object>),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 503, description = "busy: too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn grant_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let known = state
        .engine()
        .with_model(|model| model.world.grant(&id).is_some());
    if !known {
        return Err(ApiError::not_found(format!("no grant `{id}`")));
    }
    let _permit = state.expensive_read().await?;
    let entries = query::audit_trail(state.engine(), &Subject::Grant(id)).await?;
    Ok(Json(entries).into_response())
}

/// A fund's audit trail.
#[utoipa::path(
    get,
    path = "/v1/funds/{id}/audit",
    tag = "figures",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Fund id", example = "UNTFHS")),
    responses(
        (status = 200, description = "An array of audit entries", body = Vec<Object>),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 404, description = "not_found", body = ErrorBody),
        (status = 503, description = "busy: too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn fund_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath,
) -> Result<Response, ApiError> {
    caller.require(Access::Figures)?;
    let known = state
        .engine()
        .with_model(|model| model.world.fund(&id).is_some());
    if !known {
        return Err(ApiError::not_found(format!("no fund `{id}`")));
    }
    let _permit = state.expensive_read().await?;
    let entries = query::audit_trail(state.engine(), &Subject::Fund(id)).await?;
    Ok(Json(entries).into_response())
}

/// The head of the log as a checkpoint to keep.
#[utoipa::path(
    get,
    path = "/v1/checkpoint",
    tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "{position, hash, recorded_at} (as `grantflow checkpoint`), plus key_id and signature when the server signs (`serve --signing-key`)", body = Object),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor or admin", body = ErrorBody),
    )
)]
async fn checkpoint(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Access::Audit)?;
    Ok(Json(state.checkpoint().await?).into_response())
}

/// The options of `/v1/export/iati`, as `grantflow export --format iati` takes them.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IatiQuery {
    /// As of this log position. Not with `as_of`: a request with both is 400 `bad_request`.
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    at: Option<u64>,
    /// As of this RFC 3339 recorded time. Not with `at`: a request with both is 400
    /// `bad_request`.
    #[param(format = DateTime)]
    as_of: Option<String>,
    /// Only these grants, comma-separated (their funds come along).
    grant: Option<String>,
    /// The reporting organisation's IATI identifier. Default: the funds' `iati_org_ref`;
    /// without either (a fund of the file has none), 400 `bad_request`.
    reporting_org: Option<String>,
}

/// The options of `/v1/export/iati-org`, as `grantflow export --format iati-org` takes them.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IatiOrgQuery {
    /// As of this log position. Not with `as_of`: a request with both is 400 `bad_request`.
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    at: Option<u64>,
    /// As of this RFC 3339 recorded time. Not with `at`: a request with both is 400
    /// `bad_request`.
    #[param(format = DateTime)]
    as_of: Option<String>,
    /// The reporting organisation's IATI identifier. Default: the funds' `iati_org_ref`;
    /// without either (a fund of the file has none), 400 `bad_request`.
    reporting_org: Option<String>,
}

/// IATI 2.03 organisation XML: the fund as an organisation, with its total budget and
/// expenditure per year, valid against the official schema.
#[utoipa::path(
    get,
    path = "/v1/export/iati-org",
    tag = "audit",
    security(("bearer" = [])),
    params(IatiOrgQuery),
    responses(
        (status = 200, description = "An `iati-organisations` document, version 2.03", content_type = "application/xml", body = String),
        (status = 400, description = "bad_request: both at and as_of, a bad time, a bad or missing reporting org", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor or admin", body = ErrorBody),
        (status = 404, description = "not_found: nothing to export yet", body = ErrorBody),
        (status = 503, description = "busy: too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn export_iati_org(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<IatiOrgQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Audit)?;
    let as_of = AsOfQuery {
        at: query.at,
        as_of: query.as_of,
    }
    .as_of()?;
    let options = grantflow_export::IatiOptions {
        as_of,
        grants: Vec::new(),
        reporting_org: query.reporting_org,
        generated_at: None,
    };
    let _permit = state.expensive_read().await?;
    let mut document = Vec::new();
    let written = grantflow_export::write_iati_organisation(
        state.engine().store().as_ref(),
        &options,
        &mut document,
    )
    .await
    .map(|_| ());
    xml_response(written, document)
}

/// An XML export's answer: the document, or the export's error as its status.
fn xml_response(
    written: Result<(), grantflow_export::ExportError>,
    document: Vec<u8>,
) -> Result<Response, ApiError> {
    use grantflow_export::ExportError;
    match written {
        Ok(()) => Ok((
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            document,
        )
            .into_response()),
        Err(error @ (ExportError::UnknownGrant(_) | ExportError::NothingToExport { .. })) => {
            Err(ApiError::not_found(error.to_string()))
        }
        Err(error @ ExportError::BadOption(_)) => Err(ApiError::bad_request(error.to_string())),
        Err(error) => Err(ApiError::internal(error)),
    }
}

/// IATI 2.03 activities XML of every fund and grant (or the chosen grants), valid against
/// the official schema.
#[utoipa::path(
    get,
    path = "/v1/export/iati",
    tag = "audit",
    security(("bearer" = [])),
    params(IatiQuery),
    responses(
        (status = 200, description = "An `iati-activities` document, version 2.03", content_type = "application/xml", body = String),
        (status = 400, description = "bad_request: both at and as_of, a bad time or reporting org", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor or admin", body = ErrorBody),
        (status = 404, description = "not_found: an unknown grant, or nothing to export yet", body = ErrorBody),
        (status = 503, description = "busy: too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn export_iati(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<IatiQuery>,
) -> Result<Response, ApiError> {
    use grantflow_export::IatiOptions;
    caller.require(Access::Audit)?;
    let as_of = AsOfQuery {
        at: query.at,
        as_of: query.as_of,
    }
    .as_of()?;
    let grants = query
        .grant
        .map(|list| {
            list.split(',')
                .filter(|id| !id.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let options = IatiOptions {
        as_of,
        grants,
        reporting_org: query.reporting_org,
        generated_at: None,
    };
    let _permit = state.expensive_read().await?;
    let mut document = Vec::new();
    let written =
        grantflow_export::write_iati(state.engine().store().as_ref(), &options, &mut document)
            .await
            .map(|_| ());
    xml_response(written, document)
}

/// `?position=&hash=` of `/v1/verify`: a checkpoint the log must extend.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct VerifyQuery {
    /// The checkpoint's position. Only with `hash`: one without the other is 400
    /// `bad_request`.
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    position: Option<u64>,
    /// The checkpoint's hash, 64 lowercase hex digits. Only with `position`: one without the
    /// other is 400 `bad_request`.
    #[param(pattern = "^[0-9a-f]{64}$")]
    hash: Option<String>,
}

/// Verifies the whole log: hash chain, gapless positions and versions, payloads,
/// projections, and optionally a checkpoint.
#[utoipa::path(
    get,
    path = "/v1/verify",
    tag = "audit",
    security(("bearer" = [])),
    params(VerifyQuery),
    responses(
        (status = 200, description = "{ok, events, head, failure, checkpoint_checked} (as `verify --json`, plus ok)", body = Object),
        (status = 400, description = "bad_request: half a checkpoint or a bad hash", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor or admin", body = ErrorBody),
        (status = 503, description = "busy: too many expensive reads at once (as-of figures, audit trails, verify, exports); retry after Retry-After seconds", body = ErrorBody),
    )
)]
async fn verify(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<VerifyQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Audit)?;
    let checkpoint = match (query.position, query.hash) {
        (None, None) => None,
        (Some(position), Some(hash)) => {
            if grantflow_store::envelope::parse_hex_hash(&hash).is_none() {
                return Err(ApiError::bad_request(
                    "`hash` must be 64 lowercase hex digits",
                ));
            }
            Some(Checkpoint {
                position,
                hash,
                recorded_at: String::new(),
            })
        }
        _ => {
            return Err(ApiError::bad_request(
                "a checkpoint needs both `position` and `hash`",
            ))
        }
    };
    let _permit = state.expensive_read().await?;
    let store = state.engine().store().clone();
    let mut attempt = 1;
    let report = loop {
        let before = store.head().await.map_err(ApiError::internal)?.position;
        let report = audit::verify(store.as_ref(), checkpoint.clone(), &|_, _| {}).await?;
        let after = store.head().await.map_err(ApiError::internal)?.position;
        if report.ok() || before == after || attempt >= VERIFY_ATTEMPTS_MAX {
            break report;
        }
        attempt += 1;
    };
    let mut body = json!({"ok": report.ok()});
    if let (Value::Object(out), Ok(Value::Object(fields))) =
        (&mut body, serde_json::to_value(&report))
    {
        out.extend(fields);
    }
    Ok(Json(body).into_response())
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "{\"ok\": true}", body = Object))
)]
async fn healthz() -> Response {
    Json(json!({"ok": true})).into_response()
}

/// This description (OpenAPI 3).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 description", body = Object))
)]
async fn openapi_json() -> Response {
    static SPEC: OnceLock<String> = OnceLock::new();
    let spec = SPEC.get_or_init(|| openapi().to_string());
    ([(header::CONTENT_TYPE, "application/json")], spec.clone()).into_response()
}

/// Counters in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Prometheus text (version 0.0.4)", body = String, content_type = "text/plain"),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: admin", body = ErrorBody),
    )
)]
async fn metrics(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Access::Metrics)?;
    let gauges = Gauges {
        head_position: state.engine().with_model(|model| model.position),
        fund_checkpoints: state.engine().fund_checkpoint_stats(),
        open_streams: state.open_streams(),
        live_tokens: state.tokens().current().live_count(),
    };
    let text = state.metrics().render(gauges, &state.engine().stats());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// 404 `not_found` for a path no route serves.
pub(crate) async fn no_route(method: Method, uri: Uri) -> Response {
    tracing::info!(
        target: "grantflow_server::request",
        %method,
        path = uri.path(),
        status = 404,
        "request"
    );
    ApiError::not_found(format!("no route {method} {}", uri.path())).into_response()
}

/// 405 with the JSON shape.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not answer {method}", uri.path()),
    )
    .into_response()
}
