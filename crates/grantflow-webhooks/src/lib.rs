//! grantflow's webhooks: the log's events POSTed to subscribers' URLs, signed as the
//! [Standard Webhooks](https://www.standardwebhooks.com) specification says, each a CloudEvent
//! 1.0 in structured JSON mode (what the JetStream relay publishes), in position order per
//! subscription, at least once.
//!
//! - **Subscriptions** ([`Registry`]): `grantflow webhook add --url URL [--types PATTERNS]
//!   [--fund F]` makes one, with a signing secret (`whsec_<base64>`, shown once) and a cursor
//!   at the log's head at that moment. On sled they are files in `<data>/webhooks/`
//!   ([`FileRegistry`]), so that the command line changes them while the server holds the
//!   store; on PostgreSQL, tables beside the log ([`PgRegistry`]).
//! - **Delivery** ([`run`], inside `grantflow serve`): one worker per enabled subscription
//!   follows the log from its cursor ([`grantflow_store::subscription::subscribe`]), passes
//!   over the events its types and fund do not take, and POSTs each other one with the
//!   headers `webhook-id` (`msg_<subscription>_<position>`, the same for every attempt),
//!   `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//!   id.timestamp.body>`). A 2xx answer moves the cursor past it; anything else, no answer
//!   within the timeout (10 s by default) or no connection is a failure, retried after a
//!   pause that doubles (jittered, capped) without moving on: the next event waits. After
//!   [`MAX_FAILURES_DEFAULT`] failures in a row the subscription is disabled until `grantflow
//!   webhook enable`.
//! - **One deliverer**: on PostgreSQL a worker delivers only while it holds its
//!   subscription's advisory lock, so of several servers one delivers each subscription.
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod deliver;
mod files;
mod pg;
mod registry;
mod signature;
mod subscription;

pub use deliver::{
    run, DeliveryOptions, CONTENT_TYPE, MAX_FAILURES_DEFAULT, POLL_DEFAULT, RETRY_BASE_DEFAULT,
    RETRY_PAUSE_MAX, STOP_WAIT, TIMEOUT_DEFAULT,
};
pub use files::{FileRegistry, SUBSCRIPTIONS_FILE_NAME, WEBHOOKS_DIR_NAME};
pub use pg::PgRegistry;
pub use registry::{Lease, Loaded, Progress, Registry};
pub use signature::{
    message_id, Secret, VerifyError, SECRET_BYTES, SECRET_PREFIX, SIGNATURE_VERSION,
    TIMESTAMP_TOLERANCE_SECS,
};
pub use subscription::{
    glob, Attempt, NewSubscription, Subscription, TYPE_PATTERNS_MAX, URL_CHARS_MAX,
};

use std::path::PathBuf;

use grantflow_store::StoreError;

/// The most recent attempts kept per subscription (`grantflow webhook deliveries`).
pub const ATTEMPTS_KEPT: usize = 100;

/// Errors of the webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// An option or a subscription that cannot work.
    #[error("{0}")]
    Invalid(String),
    /// No subscription has that id.
    #[error("no webhook with id `{0}` (see `grantflow webhook list`)")]
    UnknownSubscription(String),
    /// A registry file is not readable as one.
    #[error("{path} is not a grantflow webhook file: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A registry file that someone else may change.
    #[error("refusing {path}: {detail}")]
    Unsafe {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Reading or writing a registry file failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The registry's database failed.
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system's random source failed.
    #[error("cannot draw random bytes: {0}")]
    Random(String),
}

/// Now, RFC 3339 UTC, seconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Now, RFC 3339 UTC, milliseconds.
pub(crate) fn now_millis() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
