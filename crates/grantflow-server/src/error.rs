//! The one error type of the HTTP layer and its one status mapping.
//!
//! Every error body has the Results shape of docs/errors.md:
//! `{"ok": false, "command_id": ..., "error": {"code": ..., "message": ...}}`. Internal errors
//! are logged with their detail and answered with a generic message.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use grantflow_engine::EngineError;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// The codes only the HTTP layer answers (docs/errors.md, "HTTP-only codes"); every other
/// code of an error body is a command's ([`grantflow_domain::ERROR_CODES`]).
pub const HTTP_ERROR_CODES: &[&str] = &[
    "bad_request",
    "unauthorized",
    "forbidden",
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "too_many_streams",
    "internal",
    "timeout",
    "busy",
    "unavailable",
];

/// Whether `code` may be an error body's: a command's code or an HTTP-only one.
pub fn is_error_code(code: &str) -> bool {
    HTTP_ERROR_CODES.contains(&code)
        || grantflow_domain::ERROR_CODES
            .iter()
            .any(|known| known.as_str() == code)
}

/// An error answered over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error code of docs/errors.md (a command's, or one of the HTTP-only codes).
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: String,
    /// The command id, on the commands route.
    pub command_id: Option<String>,
}

/// The error body, for the OpenAPI description.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub ok: bool,
    /// The command's id when there is one, else null.
    pub command_id: Option<String>,
    /// The code and message.
    pub error: ErrorDetail,
}

/// The `error` member of an error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code, e.g. `over_disbursement`, `unauthorized`, `not_found`.
    pub code: String,
    /// A sentence a person can act on.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        debug_assert!(
            is_error_code(code),
            "`{code}` is not an error code of docs/errors.md: add it to HTTP_ERROR_CODES"
        );
        ApiError {
            status,
            code,
            message: message.into(),
            command_id: None,
        }
    }

    /// 400 `bad_request`: a query parameter or header is unusable.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 400 `malformed_command`.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_command", message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 413 `payload_too_large`.
    pub fn payload_too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than {limit} bytes; send one command per request"),
        )
    }

    /// 500 `internal`: logs the detail, answers a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal server error; the detail is in the server's log",
        )
    }

    /// With the command id of the request.
    pub fn with_command_id(mut self, command_id: Option<String>) -> ApiError {
        self.command_id = command_id;
        self
    }

    /// The Results-shaped body.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "ok": false,
            "command_id": self.command_id,
            "error": {"code": self.code, "message": self.message},
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS || self.code == "busy" {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::state::RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::NotFound(message) => ApiError::not_found(message),
            EngineError::BadQuery(message) => ApiError::bad_request(message),
            EngineError::WriterStopped(detail) => {
                tracing::error!(%detail, "the engine's writer has stopped");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the engine is not accepting commands (it is stopping or has failed)",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

/// The HTTP status of a rejected command's code (docs/errors.md).
pub fn status_of_code(code: &str) -> StatusCode {
    match code {
        "malformed_command" | "invalid_amount" | "future_date" => StatusCode::BAD_REQUEST,
        "version_conflict" | "command_id_conflict" => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}
