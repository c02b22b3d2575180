//! The event log over HTTP: pages (`GET /v1/events`) and the live stream
//! (`GET /v1/events/stream`, Server-Sent Events).
//!
//! Each envelope is sent as exactly the bytes `grantflow events` prints (the hashed bytes with
//! the hash), so an integrator can re-check the chain. The stream is a
//! [`grantflow_store::subscribe`] subscription: catch-up then live, no gap, no duplicate. It is
//! pulled only as fast as the client reads (hyper polls the body when the socket can take
//! more), so it holds at most one page of the log in memory and never slows the writer;
//! there is no in-memory backlog for a slow client to fall behind.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{stream, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::{Access, Caller};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The most events one `GET /v1/events` returns (a larger `limit` is clamped to it).
pub const EVENTS_PAGE_MAX: usize = 1_000;
/// Events returned when no `limit` is given.
pub const EVENTS_PAGE_DEFAULT: usize = 100;
/// The most log positions one `GET /v1/events?stream=` examines; `next` then says where to
/// go on, so a rare stream never makes one request read the whole log.
pub const EVENTS_SCAN_MAX: u64 = 10_000;
/// Events read from the store per page while scanning.
const SCAN_PAGE_EVENTS: usize = 1_000;
/// The reconnection delay an `EventSource` is told to use.
pub const SSE_RETRY: Duration = Duration::from_secs(1);

/// `?from=&limit=&stream=` of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// The first position (inclusive, default 1).
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    from: Option<u64>,
    /// How many events at the most (default 100; a larger one is read as 1000), up to
    /// OpenAPI's `int64` like a position (a larger one is 400 `bad_request`).
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    #[param(minimum = 1)]
    limit: Option<u64>,
    /// Only this stream's events, e.g. `grant-MEX-1`.
    stream: Option<String>,
}

/// A page of the log.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("bearer" = [])),
    params(EventsQuery),
    responses(
        (status = 200, description = "{\"events\": [envelopes], \"next\": P, \"head\": H}: `from=next` continues", body = Object),
        (status = 400, description = "bad_request: limit 0", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor, integrator or admin", body = ErrorBody),
    )
)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Events)?;
    let from = query.from.unwrap_or(1).max(1);
    let limit = match query.limit {
        Some(0) => return Err(ApiError::bad_request("`limit` must be at least 1")),
        Some(limit) => usize::try_from(limit).map_or(EVENTS_PAGE_MAX, |l| l.min(EVENTS_PAGE_MAX)),
        None => EVENTS_PAGE_DEFAULT,
    };
    let store = state.engine().store();
    let head = store.head().await.map_err(ApiError::internal)?.position;
    let mut next = from;
    let mut lines: Vec<String> = Vec::new();
    while lines.len() < limit && next <= head && next - from < EVENTS_SCAN_MAX {
        let want = match &query.stream {
            Some(_) => SCAN_PAGE_EVENTS,
            None => limit - lines.len(),
        };
        let want = (head + 1 - next).min(want as u64) as usize;
        let page = store.read(next, want).await.map_err(ApiError::internal)?;
        if page.is_empty() {
            break;
        }
        for envelope in page {
            next = envelope.position + 1;
            if query.stream.as_ref().is_none_or(|s| &envelope.stream == s) {
                lines.push(envelope.to_line());
                if lines.len() == limit {
                    break;
                }
            }
        }
    }
    // The envelopes as their exact printed bytes (hash-checkable), not re-serialised.
    let body = format!(
        "{{\"events\":[{}],\"next\":{next},\"head\":{head}}}",
        lines.join(",")
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `?from=&stream=` of `GET /v1/events/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// The first position (inclusive, default 1); a `Last-Event-ID` header overrides it.
    #[serde(default, deserialize_with = "crate::extract::position_param")]
    from: Option<u64>,
    /// Only this stream's events.
    stream: Option<String>,
    /// The bearer token, for clients that cannot send an Authorization header (a browser's
    /// `EventSource`); the header is preferred.
    #[allow(dead_code)]
    access_token: Option<String>,
    /// `envelope` (default): each event's `data` is the envelope; `cloudevents`: a
    /// CloudEvent 1.0 in structured JSON mode whose `data` is the envelope (as the JetStream
    /// relay publishes it).
    #[param(pattern = "^(envelope|cloudevents)$")]
    format: Option<String>,
}

/// The event log as Server-Sent Events: catch-up, then live.
#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "events",
    security(("bearer" = [])),
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "The last position seen: resume after it"),
    ),
    responses(
        (status = 200, description = "text/event-stream: `id:` position, `event:` type, `data:` envelope; keep-alive comments", content_type = "text/event-stream", body = String),
        (status = 400, description = "bad_request: Last-Event-ID is not a position", body = ErrorBody),
        (status = 401, description = "unauthorized", body = ErrorBody),
        (status = 403, description = "forbidden: auditor, integrator or admin", body = ErrorBody),
        (status = 429, description = "too_many_streams: this token holds the most streams one token may", body = ErrorBody),
        (status = 503, description = "too_many_streams: the server serves the most streams it may", body = ErrorBody),
    )
)]
pub(crate) async fn stream_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    caller.require(Access::Events)?;
    let cloudevents = match query.format.as_deref() {
        None | Some("envelope") => false,
        Some("cloudevents") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown format `{other}`: envelope (the default) or cloudevents"
            )))
        }
    };
    let from = match last_event_id(&headers)? {
        Some(last) => last.saturating_add(1),
        None => query.from.unwrap_or(1).max(1),
    };
    if state.is_closing() {
        return Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server is shutting down; reconnect with Last-Event-ID",
        ));
    }
    let guard = state.open_stream(&caller.token.id)?;
    tracing::info!(actor = caller.actor(), from, stream = ?query.stream, "event stream opened");
    let token_sha256 = caller.token_sha256.clone();
    let store = state.engine().store().clone();
    let subscription = grantflow_store::subscribe(store.clone(), from, query.stream);
    // Each event with its CloudEvents `source` when they are asked for (the log's first
    // event names it: looked up once there is one); envelopes are sent as they are read.
    let items = if cloudevents {
        let source: Arc<OnceLock<String>> = Arc::default();
        subscription
            .then(move |item| {
                let (store, source) = (store.clone(), source.clone());
                async move {
                    if item.is_ok() && source.get().is_none() {
                        if let Ok(Some(found)) =
                            grantflow_store::cloudevent::log_source(store.as_ref()).await
                        {
                            let _ = source.set(found);
                        }
                    }
                    (item, Some(source))
                }
            })
            .left_stream()
    } else {
        subscription.map(|item| (item, None)).right_stream()
    };
    let events = items
        .map(move |(item, source)| {
            // The guard lives as long as the stream: the open-stream count drops with it.
            let _open = &guard;
            match item {
                Ok(envelope) => {
                    let data = match &source {
                        Some(source) => grantflow_store::cloudevent::cloud_event(
                            source.get().map_or("", String::as_str),
                            &envelope,
                        ),
                        None => envelope.to_line(),
                    };
                    Event::default()
                        .id(envelope.position.to_string())
                        .event(envelope.event_type.as_str())
                        .data(data)
                }
                Err(error) => {
                    tracing::error!(%error, "event stream ended by a store error");
                    Event::default().event("error").data(
                        ApiError::internal("the event stream failed; reconnect with Last-Event-ID")
                            .body()
                            .to_string(),
                    )
                }
            }
        })
        .take_until(state.closed())
        // A token revoked while its stream is open ends the stream at the next keep-alive.
        .take_until(state.until_revoked(move |state| state.token_live(&token_sha256)));
    let opening = stream::once(async move {
        Event::default()
            .retry(SSE_RETRY)
            .comment(format!("grantflow events from position {from}"))
    });
    let body = opening.chain(events).map(Ok::<Event, Infallible>);
    let keep_alive = KeepAlive::new().interval(state.limits().keep_alive);
    Ok(Sse::new(body).keep_alive(keep_alive).into_response())
}

pub(crate) fn last_event_id(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    // Present, it names a position: an empty or unreadable value is refused, as the OpenAPI
    // description's integer says (a browser's EventSource sends none rather than an empty one).
    let text = value.to_str().unwrap_or("").trim();
    text.parse::<u64>()
        .ok()
        .filter(|position| *position <= crate::extract::POSITION_PARAM_MAX)
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Last-Event-ID `{text}` is not a log position (the `id:` of the last event seen)"
            ))
        })
}
