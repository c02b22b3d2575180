//! Reading rows: the head row, the last event, an event row, and integer columns.

use grantflow_store::{Envelope, Hash, Head, StoreError};
use tokio_postgres::{GenericClient, Row};

use crate::codec;
use crate::errors::pg_err;
use crate::sql::Sql;

/// Reads the head row (through `sql`, locking it or not), in one round trip.
pub(crate) async fn read_head<C: GenericClient>(client: &C, sql: &str) -> Result<Head, StoreError> {
    let row = client
        .query_typed_one(sql, &[])
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
pub(crate) async fn check_last_event<C: GenericClient>(
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

pub(crate) fn decode_row(row: &Row) -> Result<Envelope, StoreError> {
    let position: i64 = row.try_get(0).map_err(pg_err("reading the log"))?;
    let canonical: &[u8] = row.try_get(1).map_err(pg_err("reading the log"))?;
    let hash: &[u8] = row.try_get(2).map_err(pg_err("reading the log"))?;
    codec::decode(from_i64(position), canonical, hash)
}

/// Positions, versions and sizes are far below `i64::MAX`; clamp rather than wrap.
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Stored positions and versions are checked non-negative by the schema.
pub(crate) fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
