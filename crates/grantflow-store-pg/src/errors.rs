//! The errors the PostgreSQL store builds.

use grantflow_store::StoreError;
use tokio_postgres::error::SqlState;

pub(crate) fn missing(position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: "event missing from the log".to_string(),
    }
}

/// A PostgreSQL error as a store error, with what was being done.
pub(crate) fn pg_err(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| StoreError::io(context, PgError(error))
}

/// As [`pg_err`], but a unique violation (another writer took the same command id or
/// position, which the head lock makes possible only for writers that bypass it) is a
/// conflict.
pub(crate) fn write_err(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| {
        if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict(format!("{context}: {}", describe_pg_error(&error)))
        } else {
            StoreError::io(context, PgError(error))
        }
    }
}

/// The server's message when there is one (tokio-postgres's `Display` says only "db error").
/// A PostgreSQL error as [`StoreError::Io`]'s source: shown as the server's message and
/// SQLSTATE code when the server sent one.
#[derive(Debug)]
pub(crate) struct PgError(tokio_postgres::Error);

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe_pg_error(&self.0))
    }
}

impl std::error::Error for PgError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

pub(crate) fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}
