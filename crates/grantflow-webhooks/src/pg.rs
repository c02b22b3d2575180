//! The registry of a PostgreSQL store: the tables `webhooks` and `webhook_attempts` of its
//! schema (created by `grantflow-store-pg`'s migration to schema version 3). Several
//! servers share them; each subscription is delivered by the one server that holds its
//! session-level advisory lock (`pg_try_advisory_lock`), taken on a connection of its own and
//! released when that connection closes (the server stopped or lost the database).

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Row};

use crate::registry::{Lease, Loaded, Progress, Registry};
use crate::signature::Secret;
use crate::subscription::{check_id, new_id, Attempt, NewSubscription, Subscription};
use crate::{WebhookError, ATTEMPTS_KEPT};

const COLUMNS: &str = "id, url, types, fund, start_after, cursor, failures, enabled, \
                       disabled_reason, generation, created_at, secret";

/// The registry in a PostgreSQL schema.
pub struct PgRegistry {
    url: String,
    /// The schema, quoted for SQL.
    schema: String,
    client: Mutex<Option<Client>>,
    /// Connections whose lock attempt failed, kept for the next attempts (a server that does
    /// not hold a subscription asks again every second).
    spare: std::sync::Mutex<Vec<Client>>,
}

/// Spare connections kept at most.
const SPARE_MAX: usize = 8;

impl std::fmt::Debug for PgRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRegistry")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> WebhookError {
    move |error| {
        let detail = match error.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => error.to_string(),
        };
        WebhookError::Postgres(format!("{context}: {detail}"))
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn listing(row: &Row) -> Result<Subscription, WebhookError> {
    let get = pg("reading a webhook row");
    Ok(Subscription {
        id: row.try_get(0).map_err(&get)?,
        url: row.try_get(1).map_err(&get)?,
        types: row.try_get(2).map_err(&get)?,
        fund: row.try_get(3).map_err(&get)?,
        start_after: from_i64(row.try_get(4).map_err(&get)?),
        cursor: from_i64(row.try_get(5).map_err(&get)?),
        failures: u32::try_from(row.try_get::<_, i32>(6).map_err(&get)?).unwrap_or(0),
        enabled: row.try_get(7).map_err(&get)?,
        disabled_reason: row.try_get(8).map_err(&get)?,
        generation: from_i64(row.try_get(9).map_err(&get)?),
        created_at: row.try_get(10).map_err(&get)?,
    })
}

impl PgRegistry {
    /// The registry of the store at `url` (`postgres://...?schema=NAME`, as `--store`);
    /// connects, creating or migrating the schema.
    pub async fn connect(url: &str) -> Result<PgRegistry, WebhookError> {
        let (client, schema) = grantflow_store_pg::connect_session(url).await?;
        Ok(PgRegistry {
            url: url.to_string(),
            schema,
            client: Mutex::new(Some(client)),
            spare: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// The connection, opened again when it was lost.
    async fn client(&self) -> Result<tokio::sync::MappedMutexGuard<'_, Client>, WebhookError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            let (client, _) = grantflow_store_pg::connect_session(&self.url).await?;
            *guard = Some(client);
        }
        tokio::sync::MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| WebhookError::Postgres("the webhook registry's connection is gone".into()))
    }

    fn sql(&self, text: &str) -> String {
        text.replace("{s}", &self.schema)
    }

    async fn one(&self, sql: &str, id: &str) -> Result<Subscription, WebhookError> {
        let wanted = id.trim().to_ascii_lowercase();
        check_id(&wanted)?;
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql(sql), &[&wanted])
            .await
            .map_err(pg("changing a webhook"))?;
        match row {
            Some(row) => listing(&row),
            None => Err(WebhookError::UnknownSubscription(id.to_string())),
        }
    }
}

#[async_trait]
impl Registry for PgRegistry {
    async fn add(&self, new: &NewSubscription) -> Result<(Subscription, String), WebhookError> {
        new.check()?;
        let (_, secret) = Secret::generate()?;
        let client = self.client().await?;
        // The head is read by the INSERT itself: the subscription starts after the log's
        // head at that moment.
        let statement = self.sql(&format!(
            "INSERT INTO {{s}}.webhooks (id, url, types, fund, secret, start_after, cursor, \
             created_at) SELECT $1, $2, $3, $4, $5, position, position, $6 FROM {{s}}.head \
             ON CONFLICT (id) DO NOTHING RETURNING {COLUMNS}"
        ));
        loop {
            let id = new_id()?;
            let row = client
                .query_opt(
                    &statement,
                    &[&id, &new.url, &new.types, &new.fund, &secret, &crate::now()],
                )
                .await
                .map_err(pg("adding a webhook"))?;
            if let Some(row) = row {
                return Ok((listing(&row)?, secret));
            }
        }
    }

    async fn list(&self) -> Result<Vec<Subscription>, WebhookError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &self.sql(&format!(
                    "SELECT {COLUMNS} FROM {{s}}.webhooks ORDER BY created_at, id"
                )),
                &[],
            )
            .await
            .map_err(pg("listing the webhooks"))?;
        rows.iter().map(listing).collect()
    }

    async fn remove(&self, id: &str) -> Result<Subscription, WebhookError> {
        self.one(
            &format!("DELETE FROM {{s}}.webhooks WHERE id = $1 RETURNING {COLUMNS}"),
            id,
        )
        .await
    }

    async fn enable(&self, id: &str) -> Result<Subscription, WebhookError> {
        self.one(
            &format!(
                "UPDATE {{s}}.webhooks SET enabled = true, failures = 0, disabled_reason = NULL, \
                 generation = generation + 1 WHERE id = $1 RETURNING {COLUMNS}"
            ),
            id,
        )
        .await
    }

    async fn deliveries(&self, id: &str) -> Result<Vec<Attempt>, WebhookError> {
        let subscription = self
            .one(
                &format!("SELECT {COLUMNS} FROM {{s}}.webhooks WHERE id = $1"),
                id,
            )
            .await?;
        let client = self.client().await?;
        let rows = client
            .query(
                &self.sql(
                    "SELECT position, attempt, status, error, duration_ms, at FROM \
                     {s}.webhook_attempts WHERE webhook = $1 ORDER BY seq DESC LIMIT $2",
                ),
                &[&subscription.id, &to_i64(ATTEMPTS_KEPT as u64)],
            )
            .await
            .map_err(pg("reading a webhook's attempts"))?;
        let get = pg("reading a webhook attempt");
        let mut attempts = rows
            .iter()
            .map(|row| {
                Ok(Attempt {
                    position: from_i64(row.try_get(0).map_err(&get)?),
                    attempt: u32::try_from(row.try_get::<_, i32>(1).map_err(&get)?).unwrap_or(0),
                    status: row
                        .try_get::<_, Option<i32>>(2)
                        .map_err(&get)?
                        .and_then(|status| u16::try_from(status).ok()),
                    error: row.try_get(3).map_err(&get)?,
                    duration_ms: from_i64(row.try_get(4).map_err(&get)?),
                    at: row.try_get(5).map_err(&get)?,
                })
            })
            .collect::<Result<Vec<Attempt>, WebhookError>>()?;
        attempts.reverse();
        Ok(attempts)
    }

    async fn load(&self, id: &str) -> Result<Option<Loaded>, WebhookError> {
        check_id(id)?;
        let client = self.client().await?;
        let row = client
            .query_opt(
                &self.sql(&format!(
                    "SELECT {COLUMNS} FROM {{s}}.webhooks WHERE id = $1"
                )),
                &[&id],
            )
            .await
            .map_err(pg("reading a webhook"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let secret: String = row.try_get(11).map_err(pg("reading a webhook's secret"))?;
        Ok(Some(Loaded {
            subscription: listing(&row)?,
            secret: Secret::parse(&secret)?,
        }))
    }

    async fn record(&self, id: &str, progress: Progress) -> Result<bool, WebhookError> {
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(pg("recording a webhook's progress"))?;
        let updated = tx
            .execute(
                &self.sql(
                    "UPDATE {s}.webhooks SET cursor = $2, failures = $3 \
                     WHERE id = $1 AND generation = $4 AND enabled",
                ),
                &[
                    &id,
                    &to_i64(progress.cursor),
                    &i32::try_from(progress.failures).unwrap_or(i32::MAX),
                    &to_i64(progress.generation),
                ],
            )
            .await
            .map_err(pg("recording a webhook's progress"))?;
        if updated == 0 {
            return Ok(false);
        }
        if let Some(attempt) = progress.attempt {
            tx.execute(
                &self.sql(
                    "INSERT INTO {s}.webhook_attempts (webhook, position, attempt, status, \
                     error, duration_ms, at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                ),
                &[
                    &id,
                    &to_i64(attempt.position),
                    &i32::try_from(attempt.attempt).unwrap_or(i32::MAX),
                    &attempt.status.map(i32::from),
                    &attempt.error,
                    &to_i64(attempt.duration_ms),
                    &attempt.at,
                ],
            )
            .await
            .map_err(pg("recording a webhook attempt"))?;
            tx.execute(
                &self.sql(
                    "DELETE FROM {s}.webhook_attempts WHERE webhook = $1 AND seq <= \
                     (SELECT seq FROM {s}.webhook_attempts WHERE webhook = $1 \
                      ORDER BY seq DESC OFFSET $2 LIMIT 1)",
                ),
                &[&id, &to_i64(ATTEMPTS_KEPT as u64)],
            )
            .await
            .map_err(pg("trimming a webhook's attempts"))?;
        }
        tx.commit()
            .await
            .map_err(pg("recording a webhook's progress"))?;
        Ok(true)
    }

    async fn disable(&self, id: &str, generation: u64, reason: &str) -> Result<(), WebhookError> {
        let client = self.client().await?;
        client
            .execute(
                &self.sql(
                    "UPDATE {s}.webhooks SET enabled = false, disabled_reason = $3 \
                     WHERE id = $1 AND generation = $2",
                ),
                &[&id, &to_i64(generation), &reason],
            )
            .await
            .map_err(pg("disabling a webhook"))?;
        Ok(())
    }

    async fn lease(&self, id: &str) -> Result<Option<Box<dyn Lease>>, WebhookError> {
        let spare = {
            let mut spare = self
                .spare
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            spare.retain(|client| !client.is_closed());
            spare.pop()
        };
        let client = match spare {
            Some(client) => client,
            None => grantflow_store_pg::connect_session(&self.url).await?.0,
        };
        let key = format!("grantflow webhook {} {id}", self.schema);
        let held: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await
            .map_err(pg("locking a webhook for delivery"))?
            .try_get(0)
            .map_err(pg("locking a webhook for delivery"))?;
        if held {
            return Ok(Some(Box::new(PgLease { client })));
        }
        let mut spare = self
            .spare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if spare.len() < SPARE_MAX {
            spare.push(client);
        }
        Ok(None)
    }
}

/// A session holding a subscription's advisory lock; closing it releases the lock.
struct PgLease {
    client: Client,
}

impl Lease for PgLease {
    fn held(&self) -> bool {
        !self.client.is_closed()
    }
}
