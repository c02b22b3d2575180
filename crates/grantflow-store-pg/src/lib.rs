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
//! A writer that keeps losing the race (its batch, decided on a head another process has
//! since moved, is refused as a conflict) can take the lock early with
//! [`EventStore::reserve_head`]: a transaction on a connection of its own locks the head row
//! until this process's next append, which runs in that transaction. Other processes' appends
//! wait meanwhile; the server ends a reservation left idle for [`RESERVATION_IDLE_MS`].
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
mod listener;
mod pool;
mod schema;
mod target;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use grantflow_store::checks::{
    check_import, check_key_text, check_new_commands, stream_read_bounds,
};
use grantflow_store::recent::Recent;
use grantflow_store::seal::seal;
use grantflow_store::{
    AppendBatch, CommandRecord, Envelope, EventRef, EventStore, Hash, Head, StoreError,
    READ_EVENTS_MAX,
};
use tokio::sync::watch;
use tokio_postgres::error::SqlState;
use tokio_postgres::{GenericClient, Row, Transaction};

pub use listener::RECONNECT_DELAY_MS;
pub use schema::{app_role_grants, SCHEMA_VERSION};
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

/// The statements, with the schema filled in.
struct Sql {
    head: String,
    head_position: String,
    head_for_update: String,
    update_head: String,
    insert_events: String,
    insert_commands: String,
    stream_versions: String,
    recorded_commands: String,
    read: String,
    read_stream: String,
    stream_version: String,
    commands: String,
    save_snapshot: String,
    load_snapshot: String,
    last_event: String,
    channel: String,
}

impl Sql {
    fn new(schema: &str) -> Sql {
        let s = schema::quoted(schema);
        Sql {
            head: format!("SELECT position, hash, recorded_at FROM {s}.head WHERE singleton"),
            head_position: format!("SELECT position FROM {s}.head WHERE singleton"),
            head_for_update: format!(
                "SELECT position, hash, recorded_at FROM {s}.head WHERE singleton FOR UPDATE"
            ),
            update_head: format!(
                "UPDATE {s}.head SET position = $1, hash = $2, recorded_at = $3 WHERE singleton"
            ),
            insert_events: format!(
                "INSERT INTO {s}.events \
                 (position, stream, version, event_type, command_id, recorded_at, canonical, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], \
                 $5::text[], $6::text[], $7::bytea[], $8::bytea[])"
            ),
            insert_commands: format!(
                "INSERT INTO {s}.commands (command_id, body_hash, positions) \
                 SELECT c, h, p::bigint[] FROM unnest($1::text[], $2::bytea[], $3::text[]) \
                 AS t(c, h, p)"
            ),
            stream_versions: format!(
                "SELECT stream, max(version) FROM {s}.events WHERE stream = ANY($1) \
                 GROUP BY stream"
            ),
            recorded_commands: format!(
                "SELECT command_id FROM {s}.commands WHERE command_id = ANY($1)"
            ),
            read: format!(
                "SELECT position, canonical, hash FROM {s}.events \
                 WHERE position BETWEEN $1 AND $2 ORDER BY position"
            ),
            read_stream: format!(
                "SELECT position, canonical, hash FROM {s}.events \
                 WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ),
            stream_version: format!(
                "SELECT COALESCE(max(version), 0) FROM {s}.events WHERE stream = $1"
            ),
            commands: format!(
                "SELECT c.command_id, c.body_hash, p.position, e.stream, e.version, e.event_type \
                 FROM {s}.commands c \
                 LEFT JOIN LATERAL unnest(c.positions) WITH ORDINALITY AS p(position, ord) \
                 ON true \
                 LEFT JOIN {s}.events e ON e.position = p.position \
                 WHERE c.command_id = ANY($1) ORDER BY c.command_id, p.ord"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (name, position, bytes) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
                 bytes = EXCLUDED.bytes, saved_at = now()"
            ),
            load_snapshot: format!("SELECT position, bytes FROM {s}.snapshots WHERE name = $1"),
            last_event: format!(
                "SELECT position, hash FROM {s}.events ORDER BY position DESC LIMIT 1"
            ),
            channel: format!("grantflow_head_{schema}"),
        }
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

    async fn reserve_head(&self) -> Result<bool, StoreError> {
        self.inner.reserve_head().await?;
        Ok(true)
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
            .query(&self.inner.sql.read, &[&to_i64(from), &to_i64(end)])
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
            .query(&self.inner.sql.commands, &[&command_ids])
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
        let mut conn = self.inner.pool.get().await?;
        conn.client()?
            .execute(
                &self.inner.sql.save_snapshot,
                &[&name, &to_i64(position), &bytes],
            )
            .await
            .map_err(pg_err("writing a snapshot"))?;
        Ok(())
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
        match row {
            None => Ok(None),
            Some(row) => {
                let position: i64 = row.try_get(0).map_err(pg_err("reading a snapshot"))?;
                let bytes: Vec<u8> = row.try_get(1).map_err(pg_err("reading a snapshot"))?;
                Ok(Some((from_i64(position), bytes)))
            }
        }
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

// ---------------------------------------------------------------------------------------
// Writing

/// One group of events and command records, written in one transaction.
#[derive(Default)]
struct Group {
    positions: Vec<i64>,
    streams: Vec<String>,
    versions: Vec<i64>,
    event_types: Vec<String>,
    command_ids: Vec<String>,
    recorded_ats: Vec<String>,
    canonicals: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
    commands: Vec<CommandRecord>,
}

impl Group {
    fn push_event(&mut self, envelope: &Envelope, canonical: Vec<u8>) {
        self.positions.push(to_i64(envelope.position));
        self.streams.push(envelope.stream.clone());
        self.versions.push(to_i64(envelope.version));
        self.event_types.push(envelope.event_type.clone());
        self.command_ids.push(envelope.command_id.clone());
        self.recorded_ats.push(envelope.recorded_at.clone());
        self.canonicals.push(canonical);
        self.hashes.push(envelope.hash.to_vec());
    }
}

impl Inner {
    fn check_writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is closed".to_string()));
        }
        Ok(())
    }

    fn publish(&self, position: u64) {
        self.head_tx.send_if_modified(|current| {
            if position > *current {
                *current = position;
                true
            } else {
                false
            }
        });
    }

    /// Takes the append point for this process's next append: a transaction on the
    /// reservation's connection that holds the head row locked (see
    /// [`EventStore::reserve_head`]). Other processes' appends wait at their
    /// `SELECT ... FOR UPDATE` until it commits or rolls back.
    async fn reserve_head(&self) -> Result<(), StoreError> {
        self.check_writable()?;
        let mut reservation = self.reservation.lock().await;
        if reservation.held {
            return Ok(());
        }
        let client = match reservation.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => self.pool.connect_unpooled().await?,
        };
        client
            .batch_execute(&format!(
                "BEGIN; SET LOCAL idle_in_transaction_session_timeout = {RESERVATION_IDLE_MS}"
            ))
            .await
            .map_err(pg_err("reserving the append point"))?;
        read_head(&client, &self.sql.head_for_update).await?;
        reservation.client = Some(client);
        reservation.held = true;
        Ok(())
    }

    async fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.check_writable()?;
        // A recorded id is refused by the command table's unique key, inside the append.
        check_new_commands(&batch, |_| Ok(false))?;
        let _writer = self.write_lock.lock().await;
        self.check_writable()?;
        let reserved = {
            let mut reservation = self.reservation.lock().await;
            let held = std::mem::take(&mut reservation.held);
            reservation
                .client
                .take()
                .filter(|client| held && !client.is_closed())
        };
        if let Some(client) = reserved {
            // The transaction is open and holds the head row already. Were this future
            // dropped midway, the client would be dropped with it, closing its connection
            // (which rolls the transaction back).
            let outcome = self.append_in(&client, batch).await;
            let ended = self
                .end_append(outcome, |commit| {
                    client.batch_execute(if commit { "COMMIT" } else { "ROLLBACK" })
                })
                .await;
            self.reservation.lock().await.client = Some(client);
            return ended;
        }
        let mut conn = self.pool.get().await?;
        let client = conn.client()?;
        let tx = client
            .transaction()
            .await
            .map_err(pg_err("starting an append"))?;
        let outcome = self.append_in(&tx, batch).await;
        self.end_append(outcome, |commit| async move {
            if commit {
                tx.commit().await
            } else {
                tx.rollback().await
            }
        })
        .await
    }

    /// Ends an append's transaction as its outcome says (`end(true)` commits what was
    /// written, `end(false)` rolls back the rest) and publishes the new head.
    async fn end_append<F, Fut>(
        &self,
        outcome: Result<Option<Written>, StoreError>,
        end: F,
    ) -> Result<Vec<Vec<EventRef>>, StoreError>
    where
        F: FnOnce(bool) -> Fut,
        Fut: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
    {
        let ended = end(matches!(outcome, Ok(Some(_)))).await;
        match outcome {
            Ok(Some((refs, head, envelopes))) => {
                ended.map_err(write_err("committing a group of events"))?;
                // Committed: held for readers before the head that lets them ask moves.
                self.recent.push(envelopes);
                self.publish(head.position);
                Ok(refs)
            }
            refused => {
                if let Err(error) = ended {
                    // Only logged: the transaction ends with its connection anyway.
                    tracing::warn!(%error, "rolling back a refused write");
                }
                refused.map(|_| Vec::new())
            }
        }
    }

    /// An append inside an open transaction: locks the head row, checks the batch against
    /// it, and writes the group (the caller commits, or rolls back on an error). `None`
    /// when the batch has no commands (nothing to write).
    async fn append_in<C: GenericClient>(
        &self,
        tx: &C,
        batch: AppendBatch,
    ) -> Result<Option<Written>, StoreError> {
        // The append point: every writer of every process queues here, in commit order.
        let head = read_head(tx, &self.sql.head_for_update).await?;
        if batch.expected_head != head.position {
            return Err(StoreError::Conflict(format!(
                "expected head {}, the log is at {}",
                batch.expected_head, head.position
            )));
        }
        let mut wanted: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        let touched = batch.commands.iter().flat_map(|command| &command.events);
        for stream in batch
            .expected_versions
            .iter()
            .map(|(stream, _)| stream)
            .chain(touched.map(|event| &event.stream))
        {
            if seen.insert(stream.as_str()) {
                wanted.push(stream.clone());
            }
        }
        let versions = self.stream_versions(tx, &wanted).await?;
        for (stream, expected) in &batch.expected_versions {
            let stored = versions.get(stream).copied().unwrap_or(0);
            if stored != *expected {
                return Err(StoreError::Conflict(format!(
                    "stream {stream} expected at version {expected}, it is at {stored}"
                )));
            }
        }
        let ids: Vec<&str> = batch
            .commands
            .iter()
            .map(|command| command.command_id.as_str())
            .collect();
        let recorded = tx
            .query(&self.sql.recorded_commands, &[&ids])
            .await
            .map_err(pg_err("reading the command index"))?;
        if let Some(row) = recorded.first() {
            let command_id: String = row
                .try_get(0)
                .map_err(pg_err("reading the command index"))?;
            return Err(StoreError::Conflict(format!(
                "command id {command_id:?} is already recorded"
            )));
        }
        if batch.commands.is_empty() {
            return Ok(None);
        }
        let sealed = seal(&head, batch.commands, |stream| {
            Ok(versions.get(stream).copied().unwrap_or(0))
        })?;
        let mut group = Group::default();
        let mut envelopes = Vec::with_capacity(sealed.events.len());
        for (envelope, canonical) in sealed.events {
            group.push_event(&envelope, canonical);
            envelopes.push(envelope);
        }
        group.commands = sealed.commands;
        self.write_group(tx, &group, &sealed.head).await?;
        Ok(Some((sealed.refs, sealed.head, envelopes)))
    }

    /// Each stream's stored version (streams absent from the log are absent from the map).
    async fn stream_versions<C: GenericClient>(
        &self,
        client: &C,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut versions = HashMap::with_capacity(streams.len());
        if streams.is_empty() {
            return Ok(versions);
        }
        let rows = client
            .query(&self.sql.stream_versions, &[&streams])
            .await
            .map_err(pg_err("reading stream versions"))?;
        for row in rows {
            let stream: String = row.try_get(0).map_err(pg_err("reading stream versions"))?;
            let version: i64 = row.try_get(1).map_err(pg_err("reading stream versions"))?;
            versions.insert(stream, from_i64(version));
        }
        Ok(versions)
    }

    /// Inserts a group's events and command records, moves the head row and notifies the
    /// listeners (delivered at commit); the caller commits.
    async fn write_group<C: GenericClient>(
        &self,
        tx: &C,
        group: &Group,
        new_head: &Head,
    ) -> Result<(), StoreError> {
        for range in insert_slices(&group.canonicals) {
            let positions = &group.positions[range.clone()];
            let streams = &group.streams[range.clone()];
            let versions = &group.versions[range.clone()];
            let event_types = &group.event_types[range.clone()];
            let command_ids = &group.command_ids[range.clone()];
            let recorded_ats = &group.recorded_ats[range.clone()];
            let canonicals = &group.canonicals[range.clone()];
            let hashes = &group.hashes[range];
            tx.execute(
                &self.sql.insert_events,
                &[
                    &positions,
                    &streams,
                    &versions,
                    &event_types,
                    &command_ids,
                    &recorded_ats,
                    &canonicals,
                    &hashes,
                ],
            )
            .await
            .map_err(write_err("writing events"))?;
        }
        if !group.commands.is_empty() {
            let ids: Vec<&str> = group
                .commands
                .iter()
                .map(|record| record.command_id.as_str())
                .collect();
            let body_hashes: Vec<Option<&[u8]>> = group
                .commands
                .iter()
                .map(|record| record.body_hash.as_ref().map(|hash| &hash[..]))
                .collect();
            let positions: Vec<String> = group
                .commands
                .iter()
                .map(|record| {
                    let list: Vec<String> = record
                        .events
                        .iter()
                        .map(|event| event.position.to_string())
                        .collect();
                    format!("{{{}}}", list.join(","))
                })
                .collect();
            tx.execute(&self.sql.insert_commands, &[&ids, &body_hashes, &positions])
                .await
                .map_err(write_err("writing the command index"))?;
        }
        tx.execute(
            &self.sql.update_head,
            &[
                &to_i64(new_head.position),
                &&new_head.hash[..],
                &new_head.recorded_at,
            ],
        )
        .await
        .map_err(write_err("moving the head"))?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&self.sql.channel, &new_head.position.to_string()],
        )
        .await
        .map_err(write_err("notifying listeners"))?;
        Ok(())
    }

    async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        self.check_writable()?;
        let _writer = self.write_lock.lock().await;
        self.check_writable()?;
        let mut conn = self.pool.get().await?;
        let client = conn.client()?;
        let head = read_head(&*client, &self.sql.head).await?;
        let commands = self.check_import(&*client, &head, &events).await?;
        // Each command's record is written with the group holding its last event.
        let mut record_of_last_position: HashMap<u64, Vec<CommandRecord>> = HashMap::new();
        for record in commands {
            if let Some(last) = record.events.last() {
                record_of_last_position
                    .entry(last.position)
                    .or_default()
                    .push(record);
            }
        }
        let mut expected = head;
        let canonicals: Vec<Vec<u8>> = events.iter().map(Envelope::canonical_bytes).collect();
        let mut start = 0;
        while start < events.len() {
            // A group: up to IMPORT_GROUP_EVENTS_MAX events and about IMPORT_GROUP_BYTES_MAX.
            let mut end = start;
            let mut bytes = 0;
            while end < events.len()
                && end - start < IMPORT_GROUP_EVENTS_MAX
                && (end == start || bytes + canonicals[end].len() <= IMPORT_GROUP_BYTES_MAX)
            {
                bytes += canonicals[end].len();
                end += 1;
            }
            let slice = &events[start..end];
            let slice_canonicals = &canonicals[start..end];
            start = end;
            let Some(last) = slice.last() else { continue };
            let mut group = Group::default();
            for (envelope, canonical) in slice.iter().zip(slice_canonicals) {
                group.push_event(envelope, canonical.clone());
                if let Some(records) = record_of_last_position.remove(&envelope.position) {
                    group.commands.extend(records);
                }
            }
            let tx = client
                .transaction()
                .await
                .map_err(pg_err("starting an import group"))?;
            let locked = read_head(&tx, &self.sql.head_for_update).await?;
            if locked.position != expected.position || locked.hash != expected.hash {
                rollback(tx).await;
                return Err(StoreError::Conflict(format!(
                    "another writer appended during the import (the log is at {}, the \
                         import continues {})",
                    locked.position, expected.position
                )));
            }
            let new_head = Head {
                position: last.position,
                hash: last.hash,
                recorded_at: last.recorded_at.clone(),
            };
            self.write_group(&tx, &group, &new_head).await?;
            tx.commit()
                .await
                .map_err(write_err("committing a group of events"))?;
            self.publish(new_head.position);
            expected = new_head;
        }
        Ok(())
    }

    /// Checks a whole import before writing any of it (as the sled backend does); returns
    /// the command records to write.
    async fn check_import<C: GenericClient>(
        &self,
        client: &C,
        head: &Head,
        events: &[Envelope],
    ) -> Result<Vec<CommandRecord>, StoreError> {
        let mut streams: Vec<String> = Vec::new();
        let mut ids: Vec<&str> = Vec::new();
        let mut seen_streams = HashSet::new();
        let mut seen_ids = HashSet::new();
        for envelope in events {
            if seen_streams.insert(envelope.stream.as_str()) {
                streams.push(envelope.stream.clone());
            }
            if seen_ids.insert(envelope.command_id.as_str()) {
                ids.push(envelope.command_id.as_str());
            }
        }
        let stored_versions = self.stream_versions(client, &streams).await?;
        let mut recorded: HashSet<String> = HashSet::new();
        for chunk in ids.chunks(IMPORT_GROUP_EVENTS_MAX) {
            let rows = client
                .query(&self.sql.recorded_commands, &[&chunk])
                .await
                .map_err(pg_err("reading the command index"))?;
            for row in rows {
                recorded.insert(
                    row.try_get(0)
                        .map_err(pg_err("reading the command index"))?,
                );
            }
        }

        check_import(
            head,
            events,
            |stream| Ok(stored_versions.get(stream).copied().unwrap_or(0)),
            |command_id| Ok(recorded.contains(command_id)),
        )
    }
}

/// What an append wrote: where each command's events landed, the new head, and the events.
type Written = (Vec<Vec<EventRef>>, Head, Vec<Envelope>);

/// The reservation's connection, and whether its transaction holds the head row now.
#[derive(Default)]
struct Reservation {
    client: Option<tokio_postgres::Client>,
    held: bool,
}

/// Rolls a refused transaction back (its own failure is only logged: a dropped transaction
/// is rolled back anyway).
async fn rollback(tx: Transaction<'_>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rolling back a refused write");
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Reads the head row (through `sql`, locking it or not).
async fn read_head<C: GenericClient>(client: &C, sql: &str) -> Result<Head, StoreError> {
    let row = client
        .query_one(sql, &[])
        .await
        .map_err(pg_err("reading the head"))?;
    let position: i64 = row.try_get(0).map_err(pg_err("reading the head"))?;
    let hash: Vec<u8> = row.try_get(1).map_err(pg_err("reading the head"))?;
    let recorded_at: String = row.try_get(2).map_err(pg_err("reading the head"))?;
    let hash = Hash::try_from(hash.as_slice()).map_err(|_| StoreError::Corrupt {
        position: from_i64(position),
        detail: "the head row's hash is not 32 bytes".to_string(),
    })?;
    Ok(Head {
        position: from_i64(position),
        hash,
        recorded_at,
    })
}

/// Checks that the head row and the last event agree (as the sled backend does on open).
async fn check_last_event<C: GenericClient>(
    client: &C,
    sql: &Sql,
    head: &Head,
) -> Result<(), StoreError> {
    let row = client
        .query_opt(&sql.last_event, &[])
        .await
        .map_err(pg_err("reading the last event"))?;
    let last = match row {
        None => None,
        Some(row) => {
            let position: i64 = row.try_get(0).map_err(pg_err("reading the last event"))?;
            let hash: Vec<u8> = row.try_get(1).map_err(pg_err("reading the last event"))?;
            Some((from_i64(position), hash))
        }
    };
    let agree = match &last {
        None => head.position == 0,
        Some((position, hash)) => *position == head.position && hash[..] == head.hash[..],
    };
    if agree {
        return Ok(());
    }
    let last_position = last.as_ref().map_or(0, |(position, _)| *position);
    Err(StoreError::Corrupt {
        position: head.position.min(last_position) + 1,
        detail: format!(
            "the head row (position {}) and the log (last position {last_position}) disagree",
            head.position
        ),
    })
}

/// Splits a group's events into the index ranges of its INSERT statements (at most
/// [`INSERT_EVENTS_MAX`] events and about [`INSERT_BYTES_MAX`] bytes each, at least one
/// event).
fn insert_slices(canonicals: &[Vec<u8>]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (index, canonical) in canonicals.iter().enumerate() {
        let full = index - start >= INSERT_EVENTS_MAX
            || (index > start && bytes + canonical.len() > INSERT_BYTES_MAX);
        if full {
            ranges.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes += canonical.len();
    }
    if start < canonicals.len() {
        ranges.push(start..canonicals.len());
    }
    ranges
}

fn decode_row(row: &Row) -> Result<Envelope, StoreError> {
    let position: i64 = row.try_get(0).map_err(pg_err("reading the log"))?;
    let canonical: &[u8] = row.try_get(1).map_err(pg_err("reading the log"))?;
    let hash: &[u8] = row.try_get(2).map_err(pg_err("reading the log"))?;
    codec::decode(from_i64(position), canonical, hash)
}

fn missing(position: u64) -> StoreError {
    StoreError::Corrupt {
        position,
        detail: "event missing from the log".to_string(),
    }
}

/// Positions, versions and sizes are far below `i64::MAX`; clamp rather than wrap.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Stored positions and versions are checked non-negative by the schema.
fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A PostgreSQL error as a store error, with what was being done.
pub(crate) fn pg_err(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |error| StoreError::io(context, PgError(error))
}

/// As [`pg_err`], but a unique violation (another writer took the same command id or
/// position, which the head lock makes possible only for writers that bypass it) is a
/// conflict.
fn write_err(context: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
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
struct PgError(tokio_postgres::Error);

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

fn describe_pg_error(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_slices_bound_rows_and_bytes() {
        assert!(insert_slices(&[]).is_empty());
        let small = vec![vec![0u8; 10]; INSERT_EVENTS_MAX * 2 + 1];
        assert_eq!(
            insert_slices(&small),
            vec![
                0..INSERT_EVENTS_MAX,
                INSERT_EVENTS_MAX..INSERT_EVENTS_MAX * 2,
                INSERT_EVENTS_MAX * 2..INSERT_EVENTS_MAX * 2 + 1
            ]
        );
        let big = vec![vec![0u8; INSERT_BYTES_MAX / 2 + 1]; 5];
        assert_eq!(insert_slices(&big), vec![0..1, 1..2, 2..3, 3..4, 4..5]);
        let huge = vec![vec![0u8; INSERT_BYTES_MAX + 1]];
        assert_eq!(insert_slices(&huge), vec![0..1]);
    }
}
