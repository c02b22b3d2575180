//! Console sessions: who is signed in, kept on the server (and in `<data>/sessions.json`, so
//! that a restart signs no one out), named by an HttpOnly, SameSite=Strict cookie; and the
//! CSRF token every form of the session carries.
//!
//! Invariants:
//! - A session holds the SHA-256 of its bearer token, never the token; every request finds
//!   the token again in the registry ([`crate::Tokens::authenticate_hash`]), so a revoked
//!   token ends its sessions at their next request, and the roles are always the token's
//!   current ones.
//! - The map is keyed by the SHA-256 of the cookie's value: the cookie is the secret. The
//!   CSRF token is derived from the cookie's value ([`csrf_of`]), so it is never stored and
//!   is the same after a restart.
//! - `sessions.json` holds only those two hashes and the end of each session: neither the
//!   cookie, nor the CSRF token, nor the bearer token can be read back from it. It is
//!   replaced atomically (temporary file, fsync, rename, fsync of the directory), readable
//!   by its owner only (0600), rewritten when a session starts or ends, without the
//!   sessions that have expired; a restart reads it back and drops the expired ones.
//! - At most [`SESSIONS_MAX`] sessions are kept; each ends [`SESSION_TTL`] after sign-in.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::{Cookie, SameSite};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

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
/// The sessions' file name inside the data directory.
pub const SESSIONS_FILE_NAME: &str = "sessions.json";
/// Version of the sessions' file format.
const SESSIONS_FORMAT: u32 = 1;
/// The largest sessions file read, in bytes ([`SESSIONS_MAX`] sessions take about 1.6 MB).
const SESSIONS_FILE_BYTES_MAX: u64 = 8 * 1024 * 1024;
/// Random bytes in a session id (256 bits).
const SECRET_BYTES: usize = 32;
/// What is hashed with a session id to make its CSRF token (never the id's own hash, which
/// the sessions file holds).
const CSRF_CONTEXT: &str = "grantflow console csrf v1:";

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    token_sha256: String,
    /// When the session ends, in seconds since the Unix epoch.
    expires_at: u64,
}

/// A session as its file holds it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredSession {
    /// SHA-256 of the cookie's value.
    id_sha256: String,
    /// SHA-256 of the bearer token.
    token_sha256: String,
    /// When the session ends, in seconds since the Unix epoch.
    expires_at: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionsFile {
    format: u32,
    sessions: Vec<StoredSession>,
}

/// Every session of this server, in memory and in `<data>/sessions.json`.
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    /// `None`: kept in memory only (a data directory that is not there).
    dir: Option<PathBuf>,
    map: Mutex<HashMap<String, Session>>,
    /// One-time messages for a session's next page (e.g. "approve-grant accepted"), in
    /// memory only.
    notices: Mutex<HashMap<String, String>>,
    /// Held while the file is written: the last write holds the last state.
    writing: Mutex<()>,
}

impl Sessions {
    /// The sessions of `<dir>/sessions.json` that have not expired (none when there is no
    /// file; an unreadable file is logged and starts empty: everyone signs in again).
    pub(crate) fn load(dir: &Path, ttl: Duration) -> Sessions {
        let map = match read_file(dir) {
            Ok(map) => map,
            Err(error) => {
                tracing::error!(%error, "cannot read the console's sessions; everyone signs in again");
                HashMap::default()
            }
        };
        Sessions {
            ttl,
            dir: dir.is_dir().then(|| dir.to_path_buf()),
            map: Mutex::new(map),
            notices: Mutex::new(HashMap::default()),
            writing: Mutex::new(()),
        }
    }

    /// Starts a session for a token (by its hash); the cookie's value. The session is on
    /// disk when this returns.
    fn start(&self, token_sha256: String) -> Result<String, ApiError> {
        let id = random_hex()?;
        let session = Session {
            token_sha256,
            expires_at: unix_now().saturating_add(self.ttl.as_secs()),
        };
        {
            let mut map = lock(&self.map);
            if map.len() >= SESSIONS_MAX {
                let now = unix_now();
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
        }
        self.save().map_err(|error| {
            self.forget(&id);
            ApiError::internal(format!("cannot keep the console's session: {error}"))
        })?;
        Ok(id)
    }

    /// The live session of a cookie value; an expired one is removed.
    fn get(&self, id: &str) -> Option<Session> {
        let key = token_hash(id);
        let mut map = lock(&self.map);
        let session = map.get(&key)?;
        if session.expires_at <= unix_now() {
            // The file drops it at its next rewrite (and a restart does not read it back).
            map.remove(&key);
            return None;
        }
        Some(session.clone())
    }

    /// Ends a session, on disk too (a signed-out session never comes back after a restart).
    fn end(&self, id: &str) {
        if self.forget(id) {
            if let Err(error) = self.save() {
                tracing::error!(%error, "cannot remove an ended console session from its file");
            }
        }
    }

    /// Removes a session from memory; whether it was there.
    fn forget(&self, id: &str) -> bool {
        let key = token_hash(id);
        lock(&self.notices).remove(&key);
        lock(&self.map).remove(&key).is_some()
    }

    fn set_notice(&self, id: &str, notice: String) {
        let key = token_hash(id);
        if lock(&self.map).contains_key(&key) {
            lock(&self.notices).insert(key, notice);
        }
    }

    fn take_notice(&self, id: &str) -> Option<String> {
        lock(&self.notices).remove(&token_hash(id))
    }

    /// How many sessions are kept now.
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }

    /// Writes the live sessions to the file (atomically, owner-only, durable on return).
    fn save(&self) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let _writing = lock(&self.writing);
        let now = unix_now();
        let sessions = lock(&self.map)
            .iter()
            .filter(|(_, session)| session.expires_at > now)
            .map(|(key, session)| StoredSession {
                id_sha256: key.clone(),
                token_sha256: session.token_sha256.clone(),
                expires_at: session.expires_at,
            })
            .collect();
        let file = SessionsFile {
            format: SESSIONS_FORMAT,
            sessions,
        };
        let mut bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        write_atomically(dir, SESSIONS_FILE_NAME, &bytes)
    }
}

/// The unexpired sessions of `<dir>/sessions.json`; none when there is no file.
fn read_file(dir: &Path) -> std::io::Result<HashMap<String, Session>> {
    let path = dir.join(SESSIONS_FILE_NAME);
    let bytes = match fs::metadata(&path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::default()),
        Err(error) => return Err(error),
        Ok(meta) if meta.len() > SESSIONS_FILE_BYTES_MAX => {
            return Err(std::io::Error::other(format!(
                "{} is larger than {SESSIONS_FILE_BYTES_MAX} bytes",
                path.display()
            )))
        }
        Ok(_) => fs::read(&path)?,
    };
    let file: SessionsFile = serde_json::from_slice(&bytes)
        .map_err(|error| std::io::Error::other(format!("{}: {error}", path.display())))?;
    if file.format != SESSIONS_FORMAT {
        return Err(std::io::Error::other(format!(
            "{}: format {} (this build reads format {SESSIONS_FORMAT})",
            path.display(),
            file.format
        )));
    }
    let now = unix_now();
    Ok(file
        .sessions
        .into_iter()
        .filter(|stored| stored.expires_at > now)
        .take(SESSIONS_MAX)
        .map(|stored| {
            (
                stored.id_sha256,
                Session {
                    token_sha256: stored.token_sha256,
                    expires_at: stored.expires_at,
                },
            )
        })
        .collect())
}

/// Replaces `<dir>/<name>` by `bytes` as the token registry is replaced.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    crate::tokens::write_private_atomically(dir, name, bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The CSRF token of a session: derived from the cookie's value (a secret the page's own
/// script cannot read, HttpOnly), never stored, the same after a restart.
fn csrf_of(session_id: &str) -> String {
    token_hash(&format!("{CSRF_CONTEXT}{session_id}"))
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
    /// Whether the request is a live page's refresh ([`REFRESH_HEADER`]), which leaves the
    /// session's notice for the page the user goes to.
    refresh: bool,
}

/// The header of a live page's own refresh (`console.js`), naming the position of the event
/// it follows: such a request never takes the one-time notice, which belongs to the page a
/// submitted form leads to.
pub(crate) const REFRESH_HEADER: &str = "grantflow-refresh";

/// The position a live page's refresh follows ([`REFRESH_HEADER`]), when it names one.
pub(crate) fn refresh_position(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(REFRESH_HEADER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

impl Viewer {
    /// The signed-in user of a request, or `None`: no cookie, an unknown or expired session,
    /// or a token revoked since sign-in (which ends the session).
    pub(crate) fn of(state: &AppState, headers: &HeaderMap) -> Option<Viewer> {
        let session_id = session_cookie(headers)?;
        let session = state.sessions().get(&session_id)?;
        let csrf = csrf_of(&session_id);
        let tokens = state.tokens().current();
        let Some(info) = tokens.authenticate_hash(&session.token_sha256) else {
            state.sessions().end(&session_id);
            return None;
        };
        Some(Viewer {
            caller: Caller {
                token: info.clone(),
                token_sha256: session.token_sha256.clone(),
            },
            session_id,
            csrf,
            refresh: headers.contains_key(REFRESH_HEADER),
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

    /// The one-time message left by the previous request, if any (none for a live page's
    /// refresh, which leaves it for the next page).
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
