//! Console sessions: who is signed in, kept on the server, named by an HttpOnly,
//! SameSite=Strict cookie; and the CSRF token every form of the session carries.
//!
//! Invariants:
//! - A session holds the SHA-256 of its bearer token, never the token; every request finds
//!   the token again in the registry ([`crate::Tokens::authenticate_hash`]), so a revoked
//!   token ends its sessions at their next request, and the roles are always the token's
//!   current ones.
//! - The map is keyed by the SHA-256 of the cookie's value: the cookie is the secret.
//! - At most [`SESSIONS_MAX`] sessions are kept; each ends [`SESSION_TTL`] after sign-in.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use foldhash::HashMap;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::token_hash;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "grantflow_session";
/// How long a session lasts after sign-in (the cookie's `Max-Age` too).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// The most sessions kept at once; past it, the one closest to its end is dropped.
pub const SESSIONS_MAX: usize = 10_000;
/// Random bytes in a session id and in a CSRF token (256 bits).
const SECRET_BYTES: usize = 32;

/// One signed-in browser.
#[derive(Debug, Clone)]
struct Session {
    token_sha256: String,
    csrf: String,
    expires_at: Instant,
    /// A one-time message for the next page (e.g. "approve-grant accepted").
    notice: Option<String>,
}

/// Every session of this server (in memory: a restart signs everyone out).
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            map: Mutex::new(HashMap::default()),
        }
    }

    /// Starts a session for a token (by its hash); the cookie's value.
    fn start(&self, token_sha256: String) -> Result<String, ApiError> {
        let id = random_hex()?;
        let session = Session {
            token_sha256,
            csrf: random_hex()?,
            expires_at: Instant::now() + self.ttl,
            notice: None,
        };
        let mut map = self.lock();
        if map.len() >= SESSIONS_MAX {
            let now = Instant::now();
            map.retain(|_, session| session.expires_at > now);
        }
        if map.len() >= SESSIONS_MAX {
            let oldest = map
                .iter()
                .min_by_key(|(_, session)| session.expires_at)
                .map(|(key, _)| key.clone());
            if let Some(key) = oldest {
                map.remove(&key);
            }
        }
        map.insert(token_hash(&id), session);
        Ok(id)
    }

    /// The live session of a cookie value; an expired one is removed.
    fn get(&self, id: &str) -> Option<Session> {
        let key = token_hash(id);
        let mut map = self.lock();
        let session = map.get(&key)?;
        if session.expires_at <= Instant::now() {
            map.remove(&key);
            return None;
        }
        Some(session.clone())
    }

    fn end(&self, id: &str) {
        self.lock().remove(&token_hash(id));
    }

    fn set_notice(&self, id: &str, notice: String) {
        if let Some(session) = self.lock().get_mut(&token_hash(id)) {
            session.notice = Some(notice);
        }
    }

    fn take_notice(&self, id: &str) -> Option<String> {
        self.lock()
            .get_mut(&token_hash(id))
            .and_then(|session| session.notice.take())
    }

    /// How many sessions are kept now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The signed-in user of a console request.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// The token's actor and roles, as the API sees them.
    pub caller: Caller,
    /// The session cookie's value.
    session_id: String,
    /// The session's CSRF token, carried by every form.
    pub csrf: String,
    /// A live refresh of the page by its script (`X-Grantflow-Refresh`), which leaves the
    /// session's one-time notice for the page the user loads.
    refresh: bool,
}

impl Viewer {
    /// The signed-in user of a request, or `None`: no cookie, an unknown or expired session,
    /// or a token revoked since sign-in (which ends the session).
    pub(crate) fn of(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
        let session_id = session_cookie(headers)?;
        let session = state.sessions().get(&session_id)?;
        let tokens = state.tokens().current();
        let Some(info) = tokens.authenticate_hash(&session.token_sha256) else {
            state.sessions().end(&session_id);
            return None;
        };
        Some(Viewer {
            caller: Caller {
                token: info.clone(),
            },
            session_id,
            csrf: session.csrf,
            refresh: headers.contains_key("x-grantflow-refresh"),
        })
    }

    /// Whether a form's CSRF token is this session's (compared by hash: no early exit on the
    /// first differing byte of the secret).
    pub(crate) fn csrf_matches(&self, sent: Option<&str>) -> bool {
        sent.is_some_and(|sent| token_hash(sent) == token_hash(&self.csrf))
    }

    /// Keeps a one-time message for the next page of this session.
    pub(crate) fn set_notice(&self, state: &AppState, notice: String) {
        state.sessions().set_notice(&self.session_id, notice);
    }

    /// The one-time message left by the previous request, if any.
    pub(crate) fn take_notice(&self, state: &AppState) -> Option<String> {
        if self.refresh {
            return None;
        }
        state.sessions().take_notice(&self.session_id)
    }

    /// Ends the session.
    pub(crate) fn end(&self, state: &AppState) {
        state.sessions().end(&self.session_id);
    }
}

/// Signs a token in: a new session and its `Set-Cookie` value, or `None` for an unknown or
/// revoked token.
pub(crate) fn sign_in(state: &AppState, token: &str) -> Result<Option<HeaderValue>, ApiError> {
    let hash = token_hash(token.trim());
    if state.tokens().current().authenticate_hash(&hash).is_none() {
        return Ok(None);
    }
    let id = state.sessions().start(hash)?;
    let max_age = state.limits().session_ttl;
    Ok(Some(set_cookie(id, max_age)))
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_cookie() -> HeaderValue {
    set_cookie(String::new(), Duration::ZERO)
}

fn set_cookie(value: String, max_age: Duration) -> HeaderValue {
    let seconds = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    let cookie = Cookie::build((SESSION_COOKIE, value))
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(cookie::time::Duration::seconds(seconds))
        .build();
    // The id is hex and the attributes are ASCII: always a valid header value.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The session cookie's value, from every `Cookie` header of the request.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|cookie| cookie.name() == SESSION_COOKIE && !cookie.value().is_empty())
        .map(|cookie| cookie.value().to_string())
}

fn random_hex() -> Result<String, ApiError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| ApiError::internal(error.to_string()))?;
    Ok(hex::encode(bytes))
}
