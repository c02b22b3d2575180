//! The tables grantflow keeps in its schema, and their creation and migration.
//!
//! grantflow creates its schema itself on first connect and records the schema version in
//! `grantflow_schema_version`. Connecting to a schema written by a newer grantflow is
//! [`StoreError::NewerFormat`]; a schema that holds tables but no version table is
//! [`StoreError::NotAStore`]. Creation and migration run in one transaction under an
//! advisory lock, so several processes starting at once create it once. A role that may
//! only read and write rows (see [`app_role_grants`]) connects fine to an up-to-date schema:
//! nothing is created then.

use grantflow_store::{StoreError, ZERO_HASH};
use tokio_postgres::Client;

use crate::pg_err;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: i32 = 4;

/// The tables of schema version 1 (`{s}` is the quoted schema). See the crate README.
const CREATE_V1: &str = r#"
CREATE TABLE {s}.grantflow_schema_version (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version     integer NOT NULL,
    migrated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE {s}.head (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position    bigint NOT NULL CHECK (position >= 0),
    hash        bytea NOT NULL CHECK (octet_length(hash) = 32),
    recorded_at text NOT NULL
);
CREATE TABLE {s}.events (
    position    bigint PRIMARY KEY CHECK (position >= 1),
    stream      text NOT NULL,
    version     bigint NOT NULL CHECK (version >= 1),
    event_type  text NOT NULL,
    command_id  text NOT NULL,
    recorded_at text NOT NULL,
    canonical   bytea NOT NULL,
    hash        bytea NOT NULL CHECK (octet_length(hash) = 32),
    CONSTRAINT events_stream_version UNIQUE (stream, version)
);
CREATE TABLE {s}.commands (
    command_id  text PRIMARY KEY,
    body_hash   bytea CHECK (body_hash IS NULL OR octet_length(body_hash) = 32),
    positions   bigint[] NOT NULL
);
CREATE TABLE {s}.snapshots (
    name        text PRIMARY KEY,
    position    bigint NOT NULL CHECK (position >= 0),
    bytes       bytea NOT NULL,
    saved_at    timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION {s}.grantflow_events_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'grantflow events are append-only: % on %.% refused',
        TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.grantflow_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON {s}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {s}.grantflow_events_append_only();
"#;

/// Schema version 2: each snapshot carries the SHA-256 of its name, position and bytes,
/// checked on load; snapshots of version 1 (unchecked) are dropped (the engine folds the log
/// and writes a new one).
const MIGRATE_V2: &str = r#"
ALTER TABLE {s}.snapshots ADD COLUMN checksum bytea
    CHECK (checksum IS NULL OR octet_length(checksum) = 32);
DELETE FROM {s}.snapshots WHERE checksum IS NULL;
"#;

/// Schema version 3: webhook subscriptions (`grantflow webhook add`), each with the cursor
/// of its deliveries, and their recent delivery attempts (at most
/// `grantflow_webhooks::ATTEMPTS_KEPT` per subscription).
const MIGRATE_V3: &str = r#"
CREATE TABLE {s}.webhooks (
    id              text PRIMARY KEY,
    url             text NOT NULL,
    types           text[] NOT NULL,
    fund            text,
    secret          text NOT NULL,
    start_after     bigint NOT NULL CHECK (start_after >= 0),
    cursor          bigint NOT NULL CHECK (cursor >= start_after),
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    enabled         boolean NOT NULL DEFAULT true,
    disabled_reason text,
    generation      bigint NOT NULL DEFAULT 1,
    created_at      text NOT NULL
);
CREATE TABLE {s}.webhook_attempts (
    webhook     text NOT NULL REFERENCES {s}.webhooks (id) ON DELETE CASCADE,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    position    bigint NOT NULL,
    attempt     integer NOT NULL,
    status      integer,
    error       text,
    duration_ms bigint NOT NULL,
    at          text NOT NULL,
    PRIMARY KEY (webhook, seq)
);
"#;

/// Schema version 4: checkpointed states (`EventStore::save_checkpoints`), each with the
/// SHA-256 of its name, key, position and bytes, and the mark of each name.
const MIGRATE_V4: &str = r#"
CREATE TABLE {s}.checkpoints (
    name        text NOT NULL,
    key         text NOT NULL,
    position    bigint NOT NULL CHECK (position >= 0),
    bytes       bytea NOT NULL,
    checksum    bytea NOT NULL CHECK (octet_length(checksum) = 32),
    PRIMARY KEY (name, key, position)
);
CREATE TABLE {s}.checkpoint_marks (
    name        text PRIMARY KEY,
    through     bigint NOT NULL CHECK (through >= 0)
);
"#;

/// The schema name as an SQL identifier (names are checked to `[a-z_][a-z0-9_]*`).
pub(crate) fn quoted(schema: &str) -> String {
    format!("\"{schema}\"")
}

/// The SQL that gives `role` exactly what a running grantflow needs in `schema`: rows of
/// `events` and `commands` only inserted and read, the single `head` row read and updated
/// (and locked), snapshots, checkpoints and the version only read, webhook subscriptions and their
/// attempts read and written (a server moves their cursors, records attempts and disables a
/// failing one; `grantflow webhook` adds and removes them). No DELETE on the log's tables, no
/// TRUNCATE, no DDL: the
/// schema's owner creates and migrates it (connect once as the owner after an upgrade), and
/// only the owner writes projection snapshots and checkpoints (`grantflow replay` run as the
/// owner, or a server run as the owner), so
/// that the role a server runs as cannot plant figures in one. Both names must be plain identifiers (`[a-z_][a-z0-9_]*`).
pub fn app_role_grants(schema: &str, role: &str) -> String {
    let s = quoted(schema);
    let r = format!("\"{role}\"");
    format!(
        "GRANT USAGE ON SCHEMA {s} TO {r};\n\
         GRANT SELECT ON {s}.grantflow_schema_version TO {r};\n\
         GRANT SELECT, INSERT ON {s}.events TO {r};\n\
         GRANT SELECT, INSERT ON {s}.commands TO {r};\n\
         GRANT SELECT, UPDATE ON {s}.head TO {r};\n\
         GRANT SELECT ON {s}.snapshots TO {r};\n\
         GRANT SELECT ON {s}.checkpoints TO {r};\n\
         GRANT SELECT ON {s}.checkpoint_marks TO {r};\n\
         GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.webhooks TO {r};\n\
         GRANT SELECT, INSERT, UPDATE, DELETE ON {s}.webhook_attempts TO {r};\n"
    )
}

/// Creates or migrates the schema; refuses a newer or a foreign one.
pub(crate) async fn migrate(
    client: &mut Client,
    schema: &str,
    store: &str,
) -> Result<(), StoreError> {
    if let Some(version) = read_version(&*client, schema).await? {
        if check_version(version, store)? {
            return Ok(());
        }
    }
    let tx = client
        .transaction()
        .await
        .map_err(pg_err("starting the schema migration"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("grantflow schema {schema}")],
    )
    .await
    .map_err(pg_err("locking the schema migration"))?;
    let version = read_version(&tx, schema).await?;
    match version {
        Some(version) => {
            // Another process may have created or migrated it meanwhile.
            if !check_version(version, store)? {
                migrate_from(&tx, schema, version).await?;
            }
        }
        None => {
            let exists = tx
                .query_one(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                    &[&schema],
                )
                .await
                .map_err(pg_err("looking for the schema"))?
                .try_get::<_, i64>(0)
                .map_err(pg_err("looking for the schema"))?
                > 0;
            if exists {
                let relations: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM pg_class c JOIN pg_namespace n \
                         ON n.oid = c.relnamespace WHERE n.nspname = $1 \
                         AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                        &[&schema],
                    )
                    .await
                    .map_err(pg_err("reading the schema"))?
                    .try_get(0)
                    .map_err(pg_err("reading the schema"))?;
                if relations > 0 {
                    return Err(StoreError::NotAStore {
                        path: store.to_string(),
                        detail: format!(
                            "schema {schema} holds {relations} tables or views and no \
                             grantflow_schema_version table"
                        ),
                    });
                }
            } else {
                tx.batch_execute(&format!("CREATE SCHEMA {}", quoted(schema)))
                    .await
                    .map_err(pg_err("creating the schema"))?;
            }
            let s = quoted(schema);
            tx.batch_execute(&CREATE_V1.replace("{s}", &s))
                .await
                .map_err(pg_err("creating grantflow's tables"))?;
            tx.execute(
                &format!("INSERT INTO {s}.head (position, hash, recorded_at) VALUES (0, $1, '')"),
                &[&&ZERO_HASH[..]],
            )
            .await
            .map_err(pg_err("creating the head row"))?;
            tx.execute(
                &format!("INSERT INTO {s}.grantflow_schema_version (version) VALUES (1)"),
                &[],
            )
            .await
            .map_err(pg_err("recording the schema version"))?;
            migrate_from(&tx, schema, 1).await?;
        }
    }
    tx.commit()
        .await
        .map_err(pg_err("committing the schema migration"))
}

/// Brings a schema of `version` up to [`SCHEMA_VERSION`], inside the migration's
/// transaction.
async fn migrate_from(
    tx: &tokio_postgres::Transaction<'_>,
    schema: &str,
    version: i32,
) -> Result<(), StoreError> {
    let s = quoted(schema);
    if version < 2 {
        tx.batch_execute(&MIGRATE_V2.replace("{s}", &s))
            .await
            .map_err(pg_err("migrating the schema to version 2"))?;
    }
    if version < 3 {
        tx.batch_execute(&MIGRATE_V3.replace("{s}", &s))
            .await
            .map_err(pg_err("migrating the schema to version 3"))?;
    }
    if version < 4 {
        tx.batch_execute(&MIGRATE_V4.replace("{s}", &s))
            .await
            .map_err(pg_err("migrating the schema to version 4"))?;
    }
    tx.execute(
        &format!("UPDATE {s}.grantflow_schema_version SET version = $1, migrated_at = now()"),
        &[&SCHEMA_VERSION],
    )
    .await
    .map_err(pg_err("recording the schema version"))?;
    Ok(())
}

/// Whether `version` is current (`false`: an older one to migrate; there is none yet).
fn check_version(version: i32, store: &str) -> Result<bool, StoreError> {
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerFormat {
            path: store.to_string(),
            found: u32::try_from(version).unwrap_or(u32::MAX),
            supported: SCHEMA_VERSION as u32,
        });
    }
    if version < 1 {
        return Err(StoreError::Corrupt {
            position: 0,
            detail: format!("{store}: invalid schema version {version}"),
        });
    }
    Ok(version == SCHEMA_VERSION)
}

/// The recorded schema version, `None` when there is no version table.
async fn read_version<C: tokio_postgres::GenericClient>(
    client: &C,
    schema: &str,
) -> Result<Option<i32>, StoreError> {
    // Asked of pg_class by a query (an MVCC snapshot), not with to_regclass: its cached
    // "no such table" answer would outlive a concurrent creation (advisory locks do not
    // process catalog invalidations).
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n \
             ON n.oid = c.relnamespace WHERE n.nspname = $1 \
             AND c.relname = 'grantflow_schema_version')",
            &[&schema],
        )
        .await
        .map_err(pg_err("looking for grantflow_schema_version"))?
        .try_get(0)
        .map_err(pg_err("looking for grantflow_schema_version"))?;
    let table = format!("{}.grantflow_schema_version", quoted(schema));
    if !exists {
        return Ok(None);
    }
    let rows = client
        .query(&format!("SELECT version FROM {table}"), &[])
        .await
        .map_err(pg_err("reading grantflow_schema_version"))?;
    match rows.as_slice() {
        [row] => Ok(Some(
            row.try_get(0)
                .map_err(pg_err("reading grantflow_schema_version"))?,
        )),
        _ => Err(StoreError::Corrupt {
            position: 0,
            detail: format!("grantflow_schema_version holds {} rows", rows.len()),
        }),
    }
}
