//! grantflow's event log on PostgreSQL: [`PgStore`], an [`EventStore`] that several grantflow
//! processes can share, with the same guarantees as the sled backend.
//!
//! ```no_run
//! # async fn demo() -> Result<(), grantflow_store::StoreError> {
//! use grantflow_store::EventStore;
//! let store = grantflow_store_pg::PgStore::connect(
//!     "postgres://grantflow@db.example.org:5432/grantflow?schema=secretariat",
//! )
//! .await?;
//! let head = store.head().await?;
//! # let _ = head; Ok(()) }
//! ```
//!
//! # The append point
//!
//! Positions are gapless and a reader never sees them out of order because appends are
//! serialised on one row: every append transaction starts with
//! `SELECT ... FROM head FOR UPDATE`, and computes positions, stream versions, `recorded_at`
//! and the hash chain from the head it has locked; it inserts the events, updates the head
//! row and commits, which releases the lock. The next writer reads the head only after that
//! commit, so positions are handed out in commit order.
//!
//! A writer can take the lock before it decides with [`EventStore::reserve_head`]: a
//! transaction on a connection of its own locks the head row (and returns the head it holds)
//! until this process's next append, which runs in that transaction. Other processes' appends
//! wait meanwhile; the server ends a reservation left idle for [`RESERVATION_IDLE_MS`].
//! grantflow's engine reserves before deciding each batch, so that a batch decided on the
//! reserved head is never refused for another process's append.
//!
//! A sequence (`bigserial`) would be wrong: `nextval` is not transactional, so transaction
//! A can take position 7, transaction B position 8, and B commit first. A reader that then
//! reads "everything after 6" sees 8, moves its cursor past it, and never sees 7 when A
//! commits (the trap Marten, Axon and Commanded each fell into); a rolled-back transaction
//! also burns its values, leaving gaps forever. Nor could a sequence carry the hash chain,
//! which needs the previous event's hash.
//!
//! # Durability
//!
//! Every connection sets `synchronous_commit = on` (whatever the server's or the role's
//! default), so an append returns only after its commit record is flushed (and, with
//! synchronous replication configured, acknowledged as the server is configured to wait).
//! One [`AppendBatch`] is one transaction: the engine's group commit maps onto one commit.
//! Events are inserted with one multi-row `INSERT ... SELECT FROM unnest(...)` per batch.
//!
//! # Watching the head
//!
//! [`EventStore::watch_head`] moves after this process's own appends and, for other
//! processes' appends, on a `NOTIFY` that every append sends inside its transaction (so it
//! is delivered only after the commit) to a dedicated `LISTEN`ing connection, which also
//! polls the head row every [`PgOptions::poll_interval`] as a fallback.
//!
//! grantflow never updates or deletes an event: the `events` table only receives INSERTs,
//! and triggers refuse UPDATE, DELETE and TRUNCATE on it (see [`app_role_grants`] for a role
//! that may not even try).
#![deny(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod errors;
mod listener;
mod pool;
mod rows;
mod schema;
mod sql;
mod target;
mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use grantflow_store::checks::{check_key_text, stream_read_bounds};
use grantflow_store::recent::Recent;
use grantflow_store::{
    AppendBatch, CheckpointEntry, CommandRecord, Envelope, EventRef, EventStore, Hash, Head,
    StoreError, READ_EVENTS_MAX,
};
use tokio::sync::watch;
use tokio_postgres::types::Type;

use crate::errors::{missing, pg_err};
use crate::rows::{check_last_event, decode_row, from_i64, read_head, to_i64};
use crate::sql::Sql;
use crate::write::Reservation;

pub use listener::RECONNECT_DELAY_MS;
pub use schema::{app_role_grants, SCHEMA_VERSION};

/// The checksum a snapshot row carries: SHA-256 of its name (length first), position and
/// bytes.
fn snapshot_checksum(name: &str, position: u64, bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update((name.len() as u64).to_be_bytes());
    hasher.update(name.as_bytes());
    hasher.update(position.to_be_bytes());
    hasher.update(bytes);
    hasher.finalize().into()
}
/// The checksum a checkpoint row carries: SHA-256 of its name and key (each length first),
/// position and bytes.
fn checkpoint_checksum(name: &str, key: &str, position: u64, bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for text in [name, key] {
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    hasher.update(position.to_be_bytes());
    hasher.update(bytes);
    hasher.finalize().into()
}
pub use target::{CONNECT_TIMEOUT_SECS, DEFAULT_SCHEMA, SCHEMA_NAME_BYTES_MAX, SCHEMA_PARAM};

/// The bounds shared with the sled backend, so that a log always moves between backends.
pub use grantflow_store::checks::{EVENT_BYTES_MAX, KEY_TEXT_BYTES_MAX};
/// An import is written in durable groups (transactions) of at most this many events.
pub const IMPORT_GROUP_EVENTS_MAX: usize = 10_000;
/// An import group (one transaction) holds at most about this many bytes of events.
pub const IMPORT_GROUP_BYTES_MAX: usize = 64 * 1024 * 1024;
/// One INSERT statement carries at most this many events...
pub const INSERT_EVENTS_MAX: usize = 5_000;
/// ... and about this many bytes of them (a batch is split into several statements of
/// the same transaction beyond either).
pub const INSERT_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Connections a store opens at most for its reads and writes (the listener has its own).
pub const POOL_CONNECTIONS_DEFAULT: usize = 4;
/// How long a reservation of the append point ([`EventStore::reserve_head`]) may sit idle
/// before the server ends it (a safety net: the engine appends right after reserving).
pub const RESERVATION_IDLE_MS: u64 = 5_000;
/// How often the listener reads the head row when no notification came.
pub const POLL_INTERVAL_MS_DEFAULT: u64 = 500;

/// Tuning of a [`PgStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections for reads and writes, opened as needed (at least 1).
    pub pool_connections: usize,
    /// How often the head row is polled, as a fallback for LISTEN/NOTIFY.
    pub poll_interval: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_connections: POOL_CONNECTIONS_DEFAULT,
            poll_interval: Duration::from_millis(POLL_INTERVAL_MS_DEFAULT),
        }
    }
}

/// The PostgreSQL-backed event log. Cheap to clone (clones share the store). Several
/// `PgStore`s, in one process or many, may append to the same schema at once.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// What to call the store in errors.
    describe: String,
    schema: String,
    sql: Sql,
    pool: pool::Pool,
    /// Serialises this process's appends and imports (the head row serialises processes).
    write_lock: tokio::sync::Mutex<()>,
    /// Where reservations are made: a connection of its own (not from the pool), opened on
    /// the first reservation, with the transaction holding the head row locked while one is
    /// held (`held`).
    reservation: tokio::sync::Mutex<Reservation>,
    head_tx: Arc<watch::Sender<u64>>,
    /// The newest groups this process committed, for the readers that follow the log live.
    recent: Recent,
    listener: tokio::task::AbortHandle,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("store", &self.inner.describe)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the PostgreSQL database of `url`, creating or migrating grantflow's
    /// schema. The schema is `?schema=NAME` (a grantflow parameter, removed before
    /// connecting), else the first entry of a `search_path` in the URL's `options`
    /// (`?options=-csearch_path%3DNAME`), else [`DEFAULT_SCHEMA`]. Connections are made
    /// without TLS. A schema written by a newer grantflow is [`StoreError::NewerFormat`];
    /// a schema holding other tables is [`StoreError::NotAStore`].
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] with explicit [`PgOptions`].
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let target = target::parse(url)?;
        let describe = target.describe();
        let sql = Sql::new(&target.schema);
        let pool = pool::Pool::new(target.config.clone(), options.pool_connections);
        let head = {
            let mut conn = pool.get().await?;
            let client = conn.client()?;
            schema::migrate(client, &target.schema, &describe).await?;
            let head = read_head(&*client, &sql.head).await?;
            check_last_event(&*client, &sql, &head).await?;
            head
        };
        let head_tx = Arc::new(watch::channel(head.position).0);
        let listener = tokio::spawn(listener::run(
            target.config.clone(),
            sql.channel.clone(),
            sql.head_position.clone(),
            options.poll_interval.max(Duration::from_millis(1)),
            Arc::downgrade(&head_tx),
        ))
        .abort_handle();
        Ok(PgStore {
            inner: Arc::new(Inner {
                describe,
                schema: target.schema,
                sql,
                pool,
                write_lock: tokio::sync::Mutex::new(()),
                reservation: tokio::sync::Mutex::new(Reservation::default()),
                head_tx,
                recent: Recent::default(),
                listener,
                closed: AtomicBool::new(false),
            }),
        })
    }

    /// The schema this store lives in.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }
}

/// A connection of its own to the store at `url` (configured as the store's are), for the
/// tables beside the log (the webhooks'), after creating or migrating the schema as
/// [`PgStore::connect`] does. Returns the connection and the schema, quoted for SQL
/// (`"name"`).
pub async fn connect_session(url: &str) -> Result<(tokio_postgres::Client, String), StoreError> {
    let target = target::parse(url)?;
    let describe = target.describe();
    let mut client = pool::connect(&target.config).await?;
    schema::migrate(&mut client, &target.schema, &describe).await?;
    Ok((client, schema::quoted(&target.schema)))
}

#[async_trait]
impl EventStore for PgStore {
    async fn head(&self) -> Result<Head, StoreError> {
        let mut conn = self.inner.pool.get().await?;
        let head = read_head(&*conn.client()?, &self.inner.sql.head).await?;
        self.inner.publish(head.position);
        Ok(head)
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.inner.append(batch).await
    }

    async fn reserve_head(&self) -> Result<Option<Head>, StoreError> {
        Ok(Some(self.inner.reserve_head().await?))
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Envelope>, StoreError> {
        let from = from.max(1);
        let limit = limit.min(READ_EVENTS_MAX) as u64;
        if limit == 0 || from > i64::MAX as u64 {
            return Ok(Vec::new());
        }
        let end = from.saturating_add(limit - 1);
        // A subscriber that has caught up asks for what this process just committed: from
        // memory, up to the head published here (a read is as of a moment; what another
        // process appended since is read at the next one).
        let known = *self.inner.head_tx.borrow();
        if from <= known {
            if let Some(events) = self.inner.recent.read(from, end.min(known)) {
                return Ok(events);
            }
        }
        let mut conn = self.inner.pool.get().await?;
        let rows = conn
            .client()?
            .query_typed(
                &self.inner.sql.read,
                &[(&to_i64(from), Type::INT8), (&to_i64(end), Type::INT8)],
            )
            .await
            .map_err(pg_err("reading the log"))?;
        let mut out = Vec::with_capacity(rows.len());
        for (expected, row) in (from..).zip(&rows) {
            let envelope = decode_row(row)?;
            if envelope.position != expected {
                return Err(missing(expected));
            }
            out.push(envelope);
        }
        Ok(out)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, StoreError> {
        let Some((from_version, limit)) = stream_read_bounds(stream, from_version, limit) else {
            return Ok(Vec::new());
        };
        let mut conn = self.inner.pool.get().await?;
        let rows = conn
            .client()?
            .query(
                &self.inner.sql.read_stream,
                &[&stream, &to_i64(from_version), &(limit as i64)],
            )
            .await
            .map_err(pg_err("reading a stream"))?;
        let mut out = Vec::with_capacity(rows.len());
        // Versions are gapless: any row at or after `from_version` means that one exists.
        for (version, row) in (from_version..).zip(&rows) {
            let envelope = decode_row(row)?;
            if envelope.stream != stream || envelope.version != version {
                return Err(StoreError::Corrupt {
                    position: envelope.position,
                    detail: format!(
                        "expected {stream} version {version}, the log holds {} version {}",
                        envelope.stream, envelope.version
                    ),
                });
            }
            out.push(envelope);
        }
        Ok(out)
    }

    async fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        if check_key_text("stream", stream).is_err() {
            return Ok(0);
        }
        let mut conn = self.inner.pool.get().await?;
        let row = conn
            .client()?
            .query_one(&self.inner.sql.stream_version, &[&stream])
            .await
            .map_err(pg_err("reading a stream version"))?;
        Ok(from_i64(
            row.try_get(0).map_err(pg_err("reading a stream version"))?,
        ))
    }

    async fn command(&self, command_id: &str) -> Result<Option<CommandRecord>, StoreError> {
        let mut records = self.commands(vec![command_id.to_string()]).await?;
        Ok(records.pop().flatten())
    }

    async fn commands(
        &self,
        command_ids: Vec<String>,
    ) -> Result<Vec<Option<CommandRecord>>, StoreError> {
        if command_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.inner.pool.get().await?;
        let rows = conn
            .client()?
            .query_typed(
                &self.inner.sql.commands,
                &[(&command_ids, Type::TEXT_ARRAY)],
            )
            .await
            .map_err(pg_err("reading the command index"))?;
        let mut found: HashMap<String, CommandRecord> = HashMap::new();
        for row in &rows {
            let context = "reading the command index";
            let command_id: String = row.try_get(0).map_err(pg_err(context))?;
            let body_hash: Option<Vec<u8>> = row.try_get(1).map_err(pg_err(context))?;
            let position: Option<i64> = row.try_get(2).map_err(pg_err(context))?;
            let stream: Option<String> = row.try_get(3).map_err(pg_err(context))?;
            let version: Option<i64> = row.try_get(4).map_err(pg_err(context))?;
            let event_type: Option<String> = row.try_get(5).map_err(pg_err(context))?;
            let record = match found.entry(command_id.clone()) {
                std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
                std::collections::hash_map::Entry::Vacant(entry) => {
                    let body_hash = match body_hash {
                        None => None,
                        Some(bytes) => Some(Hash::try_from(bytes.as_slice()).map_err(|_| {
                            StoreError::Corrupt {
                                position: 0,
                                detail: format!("command {command_id:?}: malformed body hash"),
                            }
                        })?),
                    };
                    entry.insert(CommandRecord {
                        command_id,
                        body_hash,
                        events: Vec::new(),
                    })
                }
            };
            match (position, stream, version, event_type) {
                (None, ..) => {}
                (Some(position), Some(stream), Some(version), Some(event_type)) => {
                    record.events.push(EventRef {
                        position: from_i64(position),
                        stream,
                        version: from_i64(version),
                        event_type,
                    })
                }
                (Some(position), ..) => return Err(missing(from_i64(position))),
            }
        }
        Ok(command_ids
            .iter()
            .map(|command_id| found.get(command_id).cloned())
            .collect())
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.inner.import(events).await
    }

    async fn save_snapshot(
        &self,
        name: &str,
        position: u64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        check_key_text("snapshot name", name).map_err(StoreError::Invalid)?;
        self.inner.check_writable()?;
        let checksum = snapshot_checksum(name, position, &bytes);
        let mut conn = self.inner.pool.get().await?;
        let saved = conn
            .client()?
            .execute(
                &self.inner.sql.save_snapshot,
                &[&name, &to_i64(position), &bytes, &&checksum[..]],
            )
            .await;
        match saved {
            Ok(_) => Ok(()),
            // The least-privileged application role reads snapshots and never writes them
            // (see `app_role_grants`): the owner's `grantflow replay` does.
            Err(error)
                if error.code()
                    == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                tracing::info!(
                    "projection snapshot not saved: this role may not write snapshots (run \
                     `grantflow replay` as the schema's owner to save one)"
                );
                Ok(())
            }
            Err(error) => Err(pg_err("writing a snapshot")(error)),
        }
    }

    async fn load_snapshot(&self, name: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        if check_key_text("snapshot name", name).is_err() {
            return Ok(None);
        }
        let mut conn = self.inner.pool.get().await?;
        let row = conn
            .client()?
            .query_opt(&self.inner.sql.load_snapshot, &[&name])
            .await
            .map_err(pg_err("reading a snapshot"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let position: i64 = row.try_get(0).map_err(pg_err("reading a snapshot"))?;
        let bytes: Vec<u8> = row.try_get(1).map_err(pg_err("reading a snapshot"))?;
        let checksum: Option<Vec<u8>> = row.try_get(2).map_err(pg_err("reading a snapshot"))?;
        let position = from_i64(position);
        if checksum.as_deref() != Some(&snapshot_checksum(name, position, &bytes)[..]) {
            return Err(StoreError::Corrupt {
                position,
                detail: format!(
                    "snapshot {name} does not match its checksum (damaged or edited); its \
                     figures are not used: run `grantflow replay` as the schema's owner to \
                     rebuild it from the log"
                ),
            });
        }
        Ok(Some((position, bytes)))
    }

    async fn save_checkpoints(
        &self,
        name: &str,
        through: u64,
        entries: Vec<CheckpointEntry>,
    ) -> Result<(), StoreError> {
        grantflow_store::checks::check_checkpoints(name, through, &entries)?;
        self.inner.check_writable()?;
        let mut conn = self.inner.pool.get().await?;
        let client = conn.client()?;
        let saved = async {
            let tx = client.transaction().await?;
            let head: i64 = tx
                .query_one(&self.inner.sql.head_position, &[])
                .await?
                .try_get(0)?;
            if through > from_i64(head) {
                return Ok(Some(from_i64(head)));
            }
            for entry in &entries {
                let checksum = checkpoint_checksum(name, &entry.key, entry.position, &entry.bytes);
                tx.execute(
                    &self.inner.sql.save_checkpoint,
                    &[
                        &name,
                        &entry.key,
                        &to_i64(entry.position),
                        &entry.bytes,
                        &&checksum[..],
                    ],
                )
                .await?;
            }
            tx.execute(
                &self.inner.sql.move_checkpoint_mark,
                &[&name, &to_i64(through)],
            )
            .await?;
            tx.commit().await.map(|()| None)
        }
        .await;
        match saved {
            Ok(None) => Ok(()),
            Ok(Some(head)) => Err(StoreError::Invalid(format!(
                "checkpoints {name} through position {through} lie past the head {head}"
            ))),
            // The least-privileged application role reads checkpoints and never writes them
            // (see `app_role_grants`).
            Err(error)
                if error.code()
                    == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                Err(StoreError::Invalid(
                    "checkpoints not saved: this role may not write them (a server run as the \
                     schema's owner, or `grantflow replay` run as the owner, saves them)"
                        .to_string(),
                ))
            }
            Err(error) => Err(pg_err("writing checkpoints")(error)),
        }
    }

    async fn checkpoint_mark(&self, name: &str) -> Result<u64, StoreError> {
        let mut conn = self.inner.pool.get().await?;
        let row = conn
            .client()?
            .query_opt(&self.inner.sql.checkpoint_mark, &[&name])
            .await
            .map_err(pg_err("reading a checkpoint mark"))?;
        match row {
            Some(row) => Ok(from_i64(
                row.try_get(0)
                    .map_err(pg_err("reading a checkpoint mark"))?,
            )),
            None => Ok(0),
        }
    }

    async fn load_checkpoint(
        &self,
        name: &str,
        key: &str,
        at_most: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let mut conn = self.inner.pool.get().await?;
        let row = conn
            .client()?
            .query_opt(
                &self.inner.sql.load_checkpoint,
                &[&name, &key, &to_i64(at_most)],
            )
            .await
            .map_err(pg_err("reading a checkpoint"))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let position: i64 = row.try_get(0).map_err(pg_err("reading a checkpoint"))?;
        let bytes: Vec<u8> = row.try_get(1).map_err(pg_err("reading a checkpoint"))?;
        let checksum: Vec<u8> = row.try_get(2).map_err(pg_err("reading a checkpoint"))?;
        let position = from_i64(position);
        if checksum != checkpoint_checksum(name, key, position, &bytes) {
            return Err(StoreError::Corrupt {
                position,
                detail: format!(
                    "checkpoint {name}/{key} at position {position} does not match its \
                     checksum (damaged or edited); it is not used (the log is folded instead)"
                ),
            });
        }
        Ok(Some((position, bytes)))
    }

    fn watch_head(&self) -> watch::Receiver<u64> {
        self.inner.head_tx.subscribe()
    }

    async fn close(&self) -> Result<(), StoreError> {
        // Every append already committed durably; wait for one in flight, then refuse more.
        let _writer = self.inner.write_lock.lock().await;
        self.inner.closed.store(true, Ordering::SeqCst);
        // A reservation not used is given up (closing its connection rolls it back).
        *self.inner.reservation.lock().await = Reservation::default();
        self.inner.listener.abort();
        self.inner.pool.clear();
        Ok(())
    }
}
