//! The pages' event stream (`/live`): Server-Sent Events naming each new event's position,
//! stream and type, for the console's script to refresh the parts of a page an event
//! touches. Authenticated by the session cookie (an `EventSource` sends it), for any role
//! (what it names is less than the figures every role reads); it ends when the session does.

use std::convert::Infallible;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{stream, StreamExt};
use serde_json::json;

use super::session::Viewer;
use crate::events::{last_event_id, SSE_RETRY};
use crate::state::AppState;

pub(crate) async fn stream(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(viewer) = Viewer::of(&state, &headers) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    // From the event after the last one seen, else from the next one: a page is rendered
    // from the head, and needs only what comes after it.
    let from = match last_event_id(&headers) {
        Ok(Some(last)) => last.saturating_add(1),
        Ok(None) => state.engine().with_model(|model| model.position) + 1,
        Err(error) => return error.into_response(),
    };
    if state.is_closing() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let guard = match state.open_stream(&viewer.caller.token.id) {
        Ok(guard) => guard,
        Err(error) => return error.into_response(),
    };
    let session_state = state.clone();
    let session_headers = headers.clone();
    let events = grantflow_store::subscribe(state.engine().store().clone(), from, None)
        // A session that ended (signed out, expired, token revoked) ends its stream: checked
        // at each event and at each keep-alive.
        .take_while(move |_| {
            let live = Viewer::of(&session_state, &headers).is_some();
            async move { live }
        })
        .filter_map(move |item| {
            let _open = &guard;
            let event = match item {
                Ok(envelope) => Some(
                    Event::default()
                        .id(envelope.position.to_string())
                        .event("change")
                        .data(
                            json!({"position": envelope.position, "stream": envelope.stream,
                                   "type": envelope.event_type})
                            .to_string(),
                        ),
                ),
                Err(error) => {
                    tracing::error!(%error, "console event stream ended by a store error");
                    None
                }
            };
            async move { event }
        })
        .take_until(state.closed())
        .take_until(
            state.until_revoked(move |state| Viewer::of(state, &session_headers).is_some()),
        );
    let opening = stream::once(async {
        Event::default()
            .retry(SSE_RETRY)
            .comment("grantflow console")
    });
    let body = opening.chain(events).map(Ok::<Event, Infallible>);
    let keep_alive = KeepAlive::new().interval(state.limits().keep_alive);
    Sse::new(body).keep_alive(keep_alive).into_response()
}
