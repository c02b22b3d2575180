//! Where subscriptions, their cursors and their recent attempts are kept: files in the data
//! directory beside a sled store ([`crate::FileRegistry`]), tables beside the log on
//! PostgreSQL ([`crate::PgRegistry`]).

use async_trait::async_trait;

use crate::signature::Secret;
use crate::subscription::{Attempt, NewSubscription, Subscription};
use crate::WebhookError;

/// A subscription with its key, as a worker loads it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The subscription (its cursor and failures as stored).
    pub subscription: Subscription,
    /// Its signing key.
    pub secret: Secret,
}

/// What a worker records after an attempt, or after passing over events.
#[derive(Debug, Clone)]
pub struct Progress {
    /// The generation the worker delivers (a newer one makes the record fail: see
    /// [`Registry::record`]).
    pub generation: u64,
    /// The last position delivered or passed over.
    pub cursor: u64,
    /// Failed attempts in a row.
    pub failures: u32,
    /// The attempt just made, if any.
    pub attempt: Option<Attempt>,
}

/// The right to deliver one subscription, held while the value lives.
pub trait Lease: Send + Sync {
    /// Whether it is still held (on PostgreSQL: the connection holding the advisory lock is
    /// still open).
    fn held(&self) -> bool;
}

/// A registry of subscriptions.
#[async_trait]
pub trait Registry: Send + Sync + 'static {
    /// Adds a subscription starting after the log's head now; returns it and its secret's
    /// text (`whsec_...`), which is shown once.
    async fn add(&self, new: &NewSubscription) -> Result<(Subscription, String), WebhookError>;

    /// Every subscription, in order of addition.
    async fn list(&self) -> Result<Vec<Subscription>, WebhookError>;

    /// Removes a subscription (a server stops delivering it within a second or so).
    async fn remove(&self, id: &str) -> Result<Subscription, WebhookError>;

    /// Enables a subscription again: failures back to 0, a new generation; its deliveries
    /// resume after its cursor.
    async fn enable(&self, id: &str) -> Result<Subscription, WebhookError>;

    /// Its recent attempts, oldest first (at most [`crate::ATTEMPTS_KEPT`]).
    async fn deliveries(&self, id: &str) -> Result<Vec<Attempt>, WebhookError>;

    /// A subscription with its key; `None` when it is gone.
    async fn load(&self, id: &str) -> Result<Option<Loaded>, WebhookError>;

    /// Records a worker's progress. `Ok(false)`: the subscription is gone, or was enabled
    /// again since (another generation): the worker stops.
    async fn record(&self, id: &str, progress: Progress) -> Result<bool, WebhookError>;

    /// Disables a subscription of `generation` (after too many failures in a row).
    async fn disable(&self, id: &str, generation: u64, reason: &str) -> Result<(), WebhookError>;

    /// The right to deliver `id`, if no other server holds it (`None`: try again later).
    async fn lease(&self, id: &str) -> Result<Option<Box<dyn Lease>>, WebhookError>;

    /// Forgets what is kept for subscriptions other than `known` (a worker of a removed one
    /// may have written after the removal).
    async fn prune(&self, known: &[String]) -> Result<(), WebhookError> {
        let _ = known;
        Ok(())
    }
}

/// The lease of a store that one process holds: always held.
pub(crate) struct Sole;

impl Lease for Sole {
    fn held(&self) -> bool {
        true
    }
}
