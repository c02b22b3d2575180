//! The write path: appends (checked against the head row, held with `FOR UPDATE`),
//! reservations of the append point, and imports.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use grantflow_store::checks::{check_import, check_new_commands};
use grantflow_store::seal::seal;
use grantflow_store::{AppendBatch, CommandRecord, Envelope, EventRef, Head, StoreError};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Transaction};

use crate::errors::{pg_err, write_err};
use crate::rows::{from_i64, read_head, to_i64};
use crate::{
    Inner, IMPORT_GROUP_BYTES_MAX, IMPORT_GROUP_EVENTS_MAX, INSERT_BYTES_MAX, INSERT_EVENTS_MAX,
    RESERVATION_IDLE_MS,
};

/// One group of events and command records, written in one transaction.
#[derive(Default)]
pub(crate) struct Group {
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
    pub(crate) fn push_event(&mut self, envelope: &Envelope, canonical: Vec<u8>) {
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
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is closed".to_string()));
        }
        Ok(())
    }

    pub(crate) fn publish(&self, position: u64) {
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
    /// `SELECT ... FOR UPDATE` until it commits or rolls back. One round trip: the
    /// transaction's start and the locking read are sent together. Returns the locked head.
    pub(crate) async fn reserve_head(&self) -> Result<Head, StoreError> {
        self.check_writable()?;
        let mut reservation = self.reservation.lock().await;
        if let (Some(head), Some(client)) = (&reservation.held, &reservation.client) {
            if !client.is_closed() {
                return Ok(head.clone());
            }
        }
        reservation.held = None;
        let client = match reservation.client.take() {
            Some(client) if !client.is_closed() => client,
            _ => self.pool.connect_unpooled().await?,
        };
        let begin =
            format!("BEGIN; SET LOCAL idle_in_transaction_session_timeout = {RESERVATION_IDLE_MS}");
        let (begun, head) = futures::join!(
            client.batch_execute(&begin),
            read_head(&client, &self.sql.head_for_update)
        );
        begun.map_err(pg_err("reserving the append point"))?;
        let head = head?;
        reservation.client = Some(client);
        reservation.held = Some(head.clone());
        Ok(head)
    }

    pub(crate) async fn append(
        &self,
        batch: AppendBatch,
    ) -> Result<Vec<Vec<EventRef>>, StoreError> {
        self.check_writable()?;
        // A recorded id is refused by the command table's unique key, inside the append.
        check_new_commands(&batch, |_| Ok(false))?;
        let _writer = self.write_lock.lock().await;
        self.check_writable()?;
        let reserved = {
            let mut reservation = self.reservation.lock().await;
            let held = reservation.held.take().is_some();
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
    pub(crate) async fn end_append<F, Fut>(
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
    /// when the batch has no commands (nothing to write). Two round trips: the reads (the
    /// locking read of the head first; the others run once it holds the lock, each statement
    /// of a `READ COMMITTED` transaction seeing every commit before it), then the writes.
    pub(crate) async fn append_in<C: GenericClient>(
        &self,
        tx: &C,
        batch: AppendBatch,
    ) -> Result<Option<Written>, StoreError> {
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
        let ids: Vec<&str> = batch
            .commands
            .iter()
            .map(|command| command.command_id.as_str())
            .collect();
        let id_params: [(&(dyn ToSql + Sync), Type); 1] = [(&ids, Type::TEXT_ARRAY)];
        // The append point: every writer of every process queues here, in commit order.
        let (head, versions, recorded) = futures::join!(
            read_head(tx, &self.sql.head_for_update),
            self.stream_versions(tx, &wanted),
            tx.query_typed(&self.sql.recorded_commands, &id_params)
        );
        let head = head?;
        if batch.expected_head != head.position {
            return Err(StoreError::Conflict(format!(
                "expected head {}, the log is at {}",
                batch.expected_head, head.position
            )));
        }
        let versions = versions?;
        for (stream, expected) in &batch.expected_versions {
            let stored = versions.get(stream).copied().unwrap_or(0);
            if stored != *expected {
                return Err(StoreError::Conflict(format!(
                    "stream {stream} expected at version {expected}, it is at {stored}"
                )));
            }
        }
        let recorded = recorded.map_err(pg_err("reading the command index"))?;
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
    pub(crate) async fn stream_versions<C: GenericClient>(
        &self,
        client: &C,
        streams: &[String],
    ) -> Result<HashMap<String, u64>, StoreError> {
        let mut versions = HashMap::with_capacity(streams.len());
        if streams.is_empty() {
            return Ok(versions);
        }
        let rows = client
            .query_typed(&self.sql.stream_versions, &[(&streams, Type::TEXT_ARRAY)])
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
    /// listeners (delivered at commit); the caller commits. The statements are sent together
    /// (one round trip for a group of one INSERT of events) and run in the order sent.
    pub(crate) async fn write_group<C: GenericClient>(
        &self,
        tx: &C,
        group: &Group,
        new_head: &Head,
    ) -> Result<(), StoreError> {
        let mut slices = insert_slices(&group.canonicals);
        let last = slices.pop();
        // A group of more than one INSERT (thousands of events): all but the last one first.
        for range in slices {
            self.insert_events(tx, group, range)
                .await
                .map_err(write_err("writing events"))?;
        }
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
        let head_position = to_i64(new_head.position);
        let head_hash = &new_head.hash[..];
        let notice = new_head.position.to_string();
        let head_params: [(&(dyn ToSql + Sync), Type); 3] = [
            (&head_position, Type::INT8),
            (&head_hash, Type::BYTEA),
            (&new_head.recorded_at, Type::TEXT),
        ];
        let notify_params: [(&(dyn ToSql + Sync), Type); 2] =
            [(&self.sql.channel, Type::TEXT), (&notice, Type::TEXT)];
        // Each future sends its statement when first polled: `join!` polls them in order.
        let (events, commands, head, notified) = futures::join!(
            async {
                match last {
                    Some(range) => self.insert_events(tx, group, range).await.map(drop),
                    None => Ok(()),
                }
            },
            async {
                if ids.is_empty() {
                    return Ok(0);
                }
                tx.execute_typed(
                    &self.sql.insert_commands,
                    &[
                        (&ids, Type::TEXT_ARRAY),
                        (&body_hashes, Type::BYTEA_ARRAY),
                        (&positions, Type::TEXT_ARRAY),
                    ],
                )
                .await
            },
            tx.execute_typed(&self.sql.update_head, &head_params),
            tx.execute_typed("SELECT pg_notify($1, $2)", &notify_params)
        );
        events.map_err(write_err("writing events"))?;
        commands.map_err(write_err("writing the command index"))?;
        head.map_err(write_err("moving the head"))?;
        notified.map_err(write_err("notifying listeners"))?;
        Ok(())
    }

    /// One INSERT of the group's events of `range`.
    async fn insert_events<C: GenericClient>(
        &self,
        tx: &C,
        group: &Group,
        range: std::ops::Range<usize>,
    ) -> Result<u64, tokio_postgres::Error> {
        let positions = &group.positions[range.clone()];
        let streams = &group.streams[range.clone()];
        let versions = &group.versions[range.clone()];
        let event_types = &group.event_types[range.clone()];
        let command_ids = &group.command_ids[range.clone()];
        let recorded_ats = &group.recorded_ats[range.clone()];
        let canonicals = &group.canonicals[range.clone()];
        let hashes = &group.hashes[range];
        tx.execute_typed(
            &self.sql.insert_events,
            &[
                (&positions, Type::INT8_ARRAY),
                (&streams, Type::TEXT_ARRAY),
                (&versions, Type::INT8_ARRAY),
                (&event_types, Type::TEXT_ARRAY),
                (&command_ids, Type::TEXT_ARRAY),
                (&recorded_ats, Type::TEXT_ARRAY),
                (&canonicals, Type::BYTEA_ARRAY),
                (&hashes, Type::BYTEA_ARRAY),
            ],
        )
        .await
    }

    pub(crate) async fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
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
    pub(crate) async fn check_import<C: GenericClient>(
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

/// The reservation's connection, and the head its transaction holds locked now, if any.
#[derive(Default)]
pub(crate) struct Reservation {
    client: Option<tokio_postgres::Client>,
    held: Option<Head>,
}

/// Rolls a refused transaction back (its own failure is only logged: a dropped transaction
/// is rolled back anyway).
pub(crate) async fn rollback(tx: Transaction<'_>) {
    if let Err(error) = tx.rollback().await {
        tracing::warn!(%error, "rolling back a refused write");
    }
}

/// Splits a group's events into the index ranges of its INSERT statements (at most
/// [`INSERT_EVENTS_MAX`] events and about [`INSERT_BYTES_MAX`] bytes each, at least one
/// event).
pub(crate) fn insert_slices(canonicals: &[Vec<u8>]) -> Vec<std::ops::Range<usize>> {
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
