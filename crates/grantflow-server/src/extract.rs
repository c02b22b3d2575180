//! The request extractors of the handlers: a query string and a path's `{id}`, their
//! problems answered 400 `bad_request` in the API's JSON error shape (axum's own extractors
//! answer in plain text).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A query string, its problems answered 400 `bad_request` in the JSON shape.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| ApiQuery(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The `{id}` of a path, its problems answered 400 `bad_request`.
pub(crate) struct ApiPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// The largest position a query or header may name: OpenAPI's `int64` (a log holds fewer
/// events than that), so that a generated client's integers and the server agree.
pub(crate) const POSITION_PARAM_MAX: u64 = i64::MAX as u64;

/// An optional position of a query string (`from`, `at`, `position`): a whole number from 0
/// to [`POSITION_PARAM_MAX`]; anything larger is refused (400), not clamped.
pub(crate) fn position_param<'de, D>(deserializer: D) -> Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    let value = Option::<u64>::deserialize(deserializer)?;
    match value {
        Some(position) if position > POSITION_PARAM_MAX => Err(serde::de::Error::custom(format!(
            "{position} is larger than the largest position, {POSITION_PARAM_MAX}"
        ))),
        other => Ok(other),
    }
}
