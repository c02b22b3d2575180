//! A posted command form: checked (session, origin, CSRF token), turned into the command JSON
//! of the API and run exactly as `POST /v1/commands` runs it. Accepted: back to the page
//! (303) with a notice. Refused: the page again, with the refusal in the form and what was
//! typed kept, under the status the API would answer.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use grantflow_engine::CommandOutcome;
use serde_json::Value;

use super::forms::{self, Submitted, COMMAND_FIELD, CSRF_FIELD};
use super::grant::MomentQuery;
use super::portfolio::PortfolioQuery;
use super::session::Viewer;
use super::{forged, fund, grant, portfolio, same_origin, sign_in_first};
use crate::routes::run_command;
use crate::state::AppState;

/// The page a form was posted from.
enum Target {
    Portfolio(PortfolioQuery),
    Grant(String),
    Fund(String),
}

impl Target {
    fn path(&self) -> String {
        match self {
            Target::Portfolio(_) => "/".to_string(),
            Target::Grant(id) => format!("/grants/{id}"),
            Target::Fund(id) => format!("/funds/{id}"),
        }
    }
}

pub(crate) async fn post_portfolio(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PortfolioQuery>, QueryRejection>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    let query = query.map(|Query(query)| query).unwrap_or_default();
    act(&state, &headers, Target::Portfolio(query), pairs).await
}

pub(crate) async fn post_grant(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    act(&state, &headers, Target::Grant(id), pairs).await
}

pub(crate) async fn post_fund(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Response {
    act(&state, &headers, Target::Fund(id), pairs).await
}

async fn act(
    state: &AppState,
    headers: &HeaderMap,
    target: Target,
    pairs: Vec<(String, String)>,
) -> Response {
    let Some(viewer) = Viewer::of(state, headers) else {
        return sign_in_first(&target.path());
    };
    let csrf = pairs
        .iter()
        .find(|(name, _)| name == CSRF_FIELD)
        .map(|(_, value)| value.as_str());
    if !same_origin(headers) || !viewer.csrf_matches(csrf) {
        return forged(&viewer);
    }
    let body = forms::command_json(&pairs);
    let command = body
        .get(COMMAND_FIELD)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let refused = |status: StatusCode, code: &str, message: &str| {
        let values = pairs
            .iter()
            .filter(|(name, _)| name != CSRF_FIELD)
            .cloned()
            .collect();
        let submitted = Submitted {
            command: command.clone(),
            values,
            code: code.to_string(),
            message: message.to_string(),
        };
        (status, submitted)
    };
    let (status, submitted) = match run_command(state, &viewer.caller, body).await {
        Ok((
            _,
            CommandOutcome::Accepted {
                events, replayed, ..
            },
        )) => {
            viewer.set_notice(state, accepted(&command, &events, replayed));
            return Redirect::to(&target.path()).into_response();
        }
        Ok((status, CommandOutcome::Rejected { rejection, .. })) => {
            refused(status, &rejection.code, &rejection.message)
        }
        Err(error) => refused(error.status, error.code, &error.message),
    };
    let moment = MomentQuery::default();
    match &target {
        Target::Portfolio(query) => {
            portfolio::render(state, &viewer, query, Some(&submitted), status)
        }
        Target::Grant(id) => {
            grant::render(state, &viewer, id, &moment, Some(&submitted), status).await
        }
        Target::Fund(id) => {
            fund::render(state, &viewer, id, &moment, Some(&submitted), status).await
        }
    }
}

/// The notice of an accepted command.
fn accepted(command: &str, events: &[grantflow_store::EventRef], replayed: bool) -> String {
    let title = forms::title(command);
    let positions: Vec<String> = events
        .iter()
        .map(|event| event.position.to_string())
        .collect();
    if replayed {
        return format!("{title}: already recorded (nothing new appended).");
    }
    match positions.as_slice() {
        [one] => format!("{title}: done (log position {one})."),
        [first, .., last] => format!("{title}: done (log positions {first} to {last})."),
        [] => format!("{title}: done."),
    }
}
