//! Who is calling, and what they may do.
//!
//! The registry is re-read whenever `<data>/tokens.json` changes (its modification time,
//! length or inode: the file is replaced by a rename), so `grantflow token revoke` takes
//! effect at the next request without a restart. A registry that cannot be read fails closed:
//! no token authenticates until it is fixed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRequestParts, Query};
use axum::http::header;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::{Role, TokenInfo};

/// What a read route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Grant and fund figures, audit trails: any role.
    Figures,
    /// The event log, paged or streamed: auditor, integrator, admin.
    Events,
    /// Checkpoint and verify: auditor, admin.
    Audit,
    /// Metrics: admin.
    Metrics,
}

impl Access {
    /// The roles that hold this right.
    pub fn roles(self) -> &'static [Role] {
        match self {
            Access::Figures => crate::tokens::ROLES,
            Access::Events => &[Role::Auditor, Role::Integrator, Role::Admin],
            Access::Audit => &[Role::Auditor, Role::Admin],
            Access::Metrics => &[Role::Admin],
        }
    }
}

/// The role that may issue a command, or `None` for a name that is not a command.
pub fn command_role(command: &str) -> Option<Role> {
    match command {
        "submit-proposal" | "reject-proposal" | "assign-agency" | "revise-allocation"
        | "withdraw-agency" | "suspend-grant" | "resume-grant" | "cancel-grant" | "close-grant"
        | "schedule-report" | "submit-report" | "attach-document" => Some(Role::Secretariat),
        "approve-grant" | "revise-grant" | "revise-fund-terms" | "accept-report"
        | "return-report" => Some(Role::Approver),
        "register-fund"
        | "record-contribution"
        | "record-pledge"
        | "record-income"
        | "record-disbursement"
        | "record-expenditure"
        | "record-refund"
        | "finalize-grant" => Some(Role::Finance),
        _ => None,
    }
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's listing: actor and roles.
    pub token: TokenInfo,
    /// The token's SHA-256 (hex), to find it again in the registry (an open event stream
    /// checks it is still live).
    pub(crate) token_sha256: String,
}

impl Caller {
    /// The actor recorded on the events this caller appends.
    pub fn actor(&self) -> &str {
        &self.token.actor
    }

    /// 403 unless the caller holds one of the roles of `access`.
    pub fn require(&self, access: Access) -> Result<(), ApiError> {
        let roles = access.roles();
        if roles.iter().any(|role| self.token.has_role(*role)) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this route needs the role {}; the token of `{}` has {}",
            names(roles),
            self.token.actor,
            names(&self.token.roles)
        )))
    }

    /// 403 unless the caller holds `role` (for a command).
    pub fn require_command(&self, command: &str, role: Role) -> Result<(), ApiError> {
        if self.token.has_role(role) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "`{command}` needs the role {role}; the token of `{}` has {}",
            self.token.actor,
            names(&self.token.roles)
        )))
    }
}

fn names(roles: &[Role]) -> String {
    let names: Vec<&str> = roles.iter().map(|role| role.as_str()).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(" or ")
    }
}

/// Where the request log finds the actor once the request is authenticated (never the token).
#[derive(Debug, Clone, Default)]
pub struct ActorSlot(Arc<Mutex<Option<String>>>);

impl ActorSlot {
    fn set(&self, actor: &str) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(actor.to_string());
        }
    }

    /// The actor, once known.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|slot| slot.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let token = bearer_token(parts)?;
        let tokens = state.tokens().current();
        let Some(info) = tokens.authenticate(&token) else {
            return Err(ApiError::unauthorized("unknown or revoked token"));
        };
        if let Some(slot) = parts.extensions.get::<ActorSlot>() {
            slot.set(&info.actor);
        }
        Ok(Caller {
            token: info.clone(),
            token_sha256: crate::tokens::token_hash(&token),
        })
    }
}

/// The route whose clients may pass the token as `?access_token=`: a browser's
/// `EventSource` cannot send an Authorization header.
pub const QUERY_TOKEN_ROUTE: &str = "/v1/events/stream";

/// The token of `Authorization: Bearer <token>`, or of `?access_token=` on
/// [`QUERY_TOKEN_ROUTE`].
fn bearer_token(parts: &Parts) -> Result<String, ApiError> {
    let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
        if parts.uri.path() == QUERY_TOKEN_ROUTE {
            let query = Query::<HashMap<String, String>>::try_from_uri(&parts.uri);
            if let Some(token) = query
                .ok()
                .and_then(|Query(mut map)| map.remove("access_token"))
            {
                return Ok(token);
            }
        }
        return Err(ApiError::unauthorized(
            "missing bearer token: send `Authorization: Bearer <token>` (tokens are issued \
             with `grantflow token add`)",
        ));
    };
    value
        .to_str()
        .ok()
        .and_then(|text| {
            let (scheme, token) = text.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_string())
        })
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must read `Bearer <token>`")
        })
}
