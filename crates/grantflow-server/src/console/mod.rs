//! The web console (docs/http.md, "The console"): server-rendered pages for the secretariat
//! and auditors, served at `/` next to the API by the same router.
//!
//! - [`session`]: sign-in with a bearer token, server-side sessions named by an HttpOnly,
//!   SameSite=Strict cookie, the CSRF token of every form.
//! - `portfolio`, `grant`, `fund`, `audit`: the pages, as maud templates compiled into the
//!   binary; `charts` draws their SVG; `forms` the command forms; `actions` runs a posted
//!   form as the command `POST /v1/commands` would run; `live` is the pages' event stream.
//! - `console.js` and `console.css` are compiled in and served from the binary.
//!
//! Invariants:
//! - No grant logic and no role table of its own: a form becomes the command JSON of the
//!   API and goes through [`crate::routes::run_command`] (the role of
//!   [`crate::auth::command_role`], the token's actor, the engine); pages read the engine's
//!   views and queries as the API's routes do.
//! - Every page and action finds the session's token in the registry again, so a revoked
//!   token is refused at the next request, and its roles are the token's current ones.
//! - A POST changes something only with the session's CSRF token and from this origin.
//! - Every answer carries [`CONTENT_SECURITY_POLICY`]: no inline script, nothing fetched
//!   from elsewhere; every text from the log is escaped by the templates.

mod actions;
mod audit;
mod charts;
mod forms;
mod fund;
mod grant;
mod layout;
mod live;
mod portfolio;
pub(crate) mod session;

use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::state::AppState;
use session::Viewer;

/// The console's Content-Security-Policy: scripts, styles, images and connections from this
/// server only, no inline script or style, no framing, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

const SCRIPT: &str = include_str!("console.js");
const STYLE: &str = include_str!("console.css");

/// The console's routes.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(portfolio::page).post(actions::post_portfolio))
        .route("/grants/{id}", get(grant::page).post(actions::post_grant))
        .route("/funds/{id}", get(fund::page).post(actions::post_fund))
        .route("/audit", get(audit::page))
        .route("/audit/checkpoint.json", get(audit::checkpoint))
        .route("/audit/export.jsonl", get(audit::export_jsonl))
        .route("/audit/events.csv", get(audit::events_csv))
        .route("/audit/iati.xml", get(audit::iati))
        .route("/audit/iati-org.xml", get(audit::iati_org))
        .route("/signin", post(sign_in))
        .route("/signout", post(sign_out))
        .route("/live", get(live::stream))
        .route("/console.js", get(script))
        .route("/console.css", get(style))
        .layer(middleware::map_response(security_headers))
}

/// The headers of every console answer: the CSP, no sniffing, no referrer to other sites, no
/// framing, and no caching of pages that hold figures.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    static_file("text/css; charset=utf-8", STYLE)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The sign-in form.
#[derive(Debug, Deserialize)]
struct SignInForm {
    token: String,
    #[serde(default)]
    next: String,
}

/// Signs a token in and goes on to `next` (a path of this console), or answers the sign-in
/// page again with why not.
async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    if !same_origin(&headers) {
        return cross_origin();
    }
    let next = local_path(&form.next);
    match session::sign_in(&state, &form.token) {
        Ok(Some(cookie)) => {
            let mut response = Redirect::to(next).into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Ok(None) => layout::respond(
            StatusCode::UNAUTHORIZED,
            layout::sign_in(next, Some("Unknown or revoked token.")),
        ),
        Err(error) => error.into_response(),
    }
}

/// The sign-out form: its CSRF token.
#[derive(Debug, Deserialize)]
struct SignOutForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// Ends the session (with the session's CSRF token: no page elsewhere signs anyone out).
async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(viewer) = Viewer::of(&state, &headers) else {
        return signed_out();
    };
    if !same_origin(&headers) || !viewer.csrf_matches(form.csrf.as_deref()) {
        return forged(&viewer);
    }
    viewer.end(&state);
    signed_out()
}

fn signed_out() -> Response {
    let mut response = Redirect::to("/").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::clear_cookie());
    response
}

/// `next` when it is a path of this server, else `/` (never another site).
fn local_path(next: &str) -> &str {
    let local = next.starts_with('/') && !next.starts_with("//") && !next.contains('\\');
    if local {
        next
    } else {
        "/"
    }
}

/// Whether a POST comes from a page of this server: a browser says where a request comes
/// from (`Sec-Fetch-Site`, `Origin`); a request that says nothing (a script) is judged by
/// its CSRF token alone. An opaque origin (`Origin: null`, e.g. a sandboxed frame) passes
/// only when `Sec-Fetch-Site` vouches for it.
fn same_origin(headers: &HeaderMap) -> bool {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let site = text("sec-fetch-site");
    if let Some(site) = site {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match (text("origin"), text("host")) {
        (Some("null"), _) => site.is_some(),
        (Some(origin), Some(host)) => {
            let origin_host = origin
                .split_once("://")
                .map_or(origin, |(_, rest)| rest)
                .trim_end_matches('/');
            origin_host.eq_ignore_ascii_case(host)
        }
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn cross_origin() -> Response {
    (
        StatusCode::FORBIDDEN,
        "forbidden: a console form must be sent from the console's own pages",
    )
        .into_response()
}

/// The answer to a POST without this session's CSRF token or from another site: nothing
/// changed.
fn forged(viewer: &Viewer) -> Response {
    layout::problem(
        viewer,
        StatusCode::FORBIDDEN,
        "forbidden",
        "the form's security token is missing or out of date, or the form came from another \
         site; nothing was changed. Reload the page and try again.",
    )
}

/// The signed-in viewer of a page request, or the sign-in page that brings them back to it.
/// A live page's refresh names the event that asked for it (`Grantflow-Refresh: <position>`,
/// console.js): a subscriber sees an event once it is durable, the read model a moment later,
/// so the page waits (at most [`REFRESH_CATCH_UP`]) until the model holds that event.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    uri: &axum::http::Uri,
) -> Result<Viewer, Box<Response>> {
    let viewer = Viewer::of(state, headers).ok_or_else(|| {
        Box::new(sign_in_first(
            uri.path_and_query().map_or("/", |p| p.as_str()),
        ))
    })?;
    if let Some(position) = session::refresh_position(headers) {
        let started = std::time::Instant::now();
        while state.engine().with_model(|model| model.position) < position
            && started.elapsed() < REFRESH_CATCH_UP
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    Ok(viewer)
}

/// How long a live page's refresh waits for the read model to reach the event it follows.
const REFRESH_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// The sign-in page for a request without a session, with where it wanted to go.
fn sign_in_first(next: &str) -> Response {
    layout::respond(
        StatusCode::UNAUTHORIZED,
        layout::sign_in(local_path(next), None),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path("/grants/G"), "/grants/G");
        assert_eq!(local_path("//evil.example/x"), "/");
        assert_eq!(local_path("https://evil.example/"), "/");
        assert_eq!(local_path("/\\evil.example"), "/");
        assert_eq!(local_path(""), "/");
    }

    #[test]
    fn posts_from_another_site_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("origin", "null")])));
        assert!(same_origin(&headers(&[
            ("origin", "null"),
            ("sec-fetch-site", "same-origin"),
        ])));
    }
}
