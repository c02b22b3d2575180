//! The write path: a group commit (appends and imports), from the checks to the moved head.
//!
//! The steps of a commit, in this order (ARCHITECTURE.md says why):
//! 1. under the write lock, check the batch (expected head and versions, new command ids,
//!    field sizes) and seal it (positions, versions, time, hash chain);
//! 2. append the group to the redo log: one `pwrite`, one `fdatasync` (durable from here);
//! 3. insert its chunks into sled, one at a time, the head key last (memory only);
//! 4. hand its envelopes to [`grantflow_store::recent::Recent`];
//! 5. add its index entries to the tail, and drop its ids from the absent-ids cache;
//! 6. move the durable head (readers may now see the group), wake subscribers;
//! 7. allow the indexer its share of index work; ask for a checkpoint when the redo log
//!    wants one.
//!
//! A failure from step 2 on sets `failed`: the store takes no more writes (sled's memory or
//! the redo log may hold a group that was not acknowledged).

use std::sync::atomic::Ordering;

use foldhash::{HashMap, HashMapExt};
use grantflow_store::checks::{check_import, check_new_commands};
use grantflow_store::seal::seal;
use grantflow_store::{AppendBatch, CommandRecord, Envelope, EventRef, Head, StoreError};

use crate::chunk::{Group, GroupWrite};
use crate::errors::{lock, sled_err};
use crate::indexer::INDEX_KEYS_PER_EVENT;
use crate::keys::{encode_head, HEAD_KEY};
use crate::recovery::{db_dir, make_durable};
use crate::redo::After;
use crate::Inner;

/// An import is written in durable groups of at most this many events.
pub const IMPORT_GROUP_EVENTS_MAX: usize = 10_000;

impl Inner {
    /// Refuses a write to a closed store, or to one whose earlier write failed.
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("the store is closed".to_string()));
        }
        if self.failed.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "an earlier write could not be made durable; reopen the store".to_string(),
            ));
        }
        Ok(())
    }

    /// Appends a batch (see the module documentation for the steps).
    pub(crate) fn append(&self, batch: AppendBatch) -> Result<Vec<Vec<EventRef>>, StoreError> {
        let _writer = lock(&self.write_lock);
        self.check_writable()?;
        let head = self.durable_head();
        if batch.expected_head != head.position {
            return Err(StoreError::Conflict(format!(
                "expected head {}, the log is at {}",
                batch.expected_head, head.position
            )));
        }
        let mut versions: HashMap<String, u64> = HashMap::new();
        for (stream, expected) in &batch.expected_versions {
            let stored = self.stored_stream_version(stream)?;
            if stored != *expected {
                return Err(StoreError::Conflict(format!(
                    "stream {stream} expected at version {expected}, it is at {stored}"
                )));
            }
            versions.insert(stream.clone(), stored);
        }
        self.check_new_commands(&batch)?;
        if batch.commands.is_empty() {
            return Ok(Vec::new());
        }

        let sealed = seal(&head, batch.commands, |stream| match versions.get(stream) {
            Some(version) => Ok(*version),
            None => self.stored_stream_version(stream),
        })?;
        let mut group = Group::new(self.encoding);
        for (envelope, canonical) in &sealed.events {
            group.push_event(envelope, canonical);
        }
        group.commands = sealed.commands;
        let new_head = sealed.head;
        let results = sealed.refs;
        let envelopes = sealed.events.into_iter().map(|(envelope, _)| envelope);
        self.commit(group.into_write(), new_head, envelopes.collect())?;
        Ok(results)
    }

    /// Refuses, before anything is written, what cannot be stored: an event too large for a
    /// chunk, a payload that is not a compact JSON object, a bad stream name, a command id
    /// already recorded or given twice.
    fn check_new_commands(&self, batch: &AppendBatch) -> Result<(), StoreError> {
        let mut absent = lock(&self.absent_ids);
        check_new_commands(batch, |command| {
            // A fresh id (the engine's own) cannot be in the index: not looked up; nor is one
            // a lookup found absent since the last commit.
            Ok(!command.fresh_id
                && !absent.ids.remove(&command.command_id)
                && self.command_known(&command.command_id)?)
        })
    }

    /// Steps 2 to 7 of a commit (see the module documentation): `envelopes` are the group's
    /// events, or none (an import's groups are not held in memory). The caller holds the
    /// write lock.
    pub(crate) fn commit(
        &self,
        write: GroupWrite,
        new_head: Head,
        envelopes: Vec<Envelope>,
    ) -> Result<(), StoreError> {
        debug_assert!(
            self.write_lock.try_lock().is_err(),
            "a commit runs under the write lock"
        );
        let GroupWrite {
            entries,
            streams,
            commands,
        } = write;
        let old_head = self.durable_head().position;
        debug_assert!(
            new_head.position > old_head,
            "a group moves the head forward"
        );
        debug_assert!(
            streams.iter().all(|(_, _, positions)| positions
                .iter()
                .all(|position| (old_head + 1..=new_head.position).contains(position))),
            "a group's events lie between the old head and the new one"
        );
        let after = match self.write_group(entries, &new_head) {
            Ok(after) => after,
            Err(error) => {
                // The redo log or sled's memory may now hold a group that was not
                // acknowledged: refuse to build on it.
                self.failed.store(true, Ordering::SeqCst);
                return Err(error);
            }
        };
        if after == After::Checkpoint {
            self.pacer.request_checkpoint();
        }
        // Durable: held for readers before the head that lets them ask for it moves.
        self.recent.push(envelopes);
        let mut heads = Vec::with_capacity(streams.len());
        let command_ids: Vec<String> = commands.iter().map(|r| r.command_id.clone()).collect();
        let events: u64 = streams
            .iter()
            .map(|(_, _, positions)| positions.len() as u64)
            .sum();
        let unindexed = {
            let mut tail = lock(&self.tail);
            for (stream, first_version, positions) in &streams {
                if let Err(error) = tail.live.add_stream(stream, *first_version, positions) {
                    self.failed.store(true, Ordering::SeqCst);
                    return Err(error);
                }
            }
            for record in commands {
                tail.live.add_command(record);
            }
            tail.unindexed_events()
        };
        {
            // Whatever a lookup found absent may be in this group now (a lookup that began
            // before the tail held the group counts as overlapping it).
            let mut absent = lock(&self.absent_ids);
            absent.commits += 1;
            for command_id in &command_ids {
                absent.ids.remove(command_id);
            }
        }
        for (stream, first_version, positions) in streams {
            if let Some(&last) = positions.last() {
                heads.push((stream, (first_version + positions.len() as u64 - 1, last)));
            }
        }
        let position = new_head.position;
        debug_assert!(self.synced.load(Ordering::SeqCst) <= old_head);
        *lock(&self.head) = new_head;
        lock(&self.stream_heads).extend(heads);
        self.head_tx.send_replace(position);
        self.pacer
            .allow(events.saturating_mul(INDEX_KEYS_PER_EVENT));
        if unindexed > self.tail_events_max {
            self.keep_tail_bounded();
        }
        Ok(())
    }

    /// Records a group durably in the redo log, then applies it to sled.
    fn write_group(
        &self,
        entries: Vec<(Vec<u8>, Vec<u8>)>,
        new_head: &Head,
    ) -> Result<After, StoreError> {
        let synced = self.synced.load(Ordering::SeqCst);
        let after = lock(&self.redo).append(new_head, &entries, synced)?;
        // One insert at a time, the head last, not a sled `Batch`: `apply_batch` takes sled's
        // global write lock and seals sled's I/O buffer twice (`pin_log`), so every group
        // would cost one or two small writes of sled's file, each waited on with
        // `sync_file_range`, in the device's queue ahead of the next group's `fdatasync`. The
        // group is durable in the redo log already; sled recovers a prefix of its log, so a
        // recovered head implies the group's entries, and a group cut short (entries without
        // the head) is written again, with the same values, from the redo log on open.
        // sled's flusher writes the buffer instead, every `FLUSH_EVERY_MS`.
        for (key, value) in entries {
            self.tree
                .insert(key, value)
                .map_err(sled_err("writing a group of events"))?;
        }
        self.tree
            .insert(HEAD_KEY, encode_head(new_head))
            .map_err(sled_err("writing the head of a group"))?;
        Ok(after)
    }

    /// Makes sled durable through the durable head (on the indexer's thread), so that the
    /// redo log may write over the groups before it. A failure stops the store's writes.
    pub(crate) fn checkpoint(&self) {
        if self.failed.load(Ordering::SeqCst) {
            return;
        }
        // Every group through the durable head is in sled's memory (it moves after).
        let target = self.durable_head().position;
        match self.make_durable("making sled durable for the redo log") {
            Ok(()) => {
                self.synced.fetch_max(target, Ordering::SeqCst);
            }
            Err(error) => {
                tracing::error!(%error, "cannot make sled durable");
                self.failed.store(true, Ordering::SeqCst);
            }
        }
    }

    /// sled's `flush()`, then `sync_data()` of its database file.
    pub(crate) fn make_durable(&self, context: &str) -> Result<(), StoreError> {
        make_durable(&self.tree, &self.db_file, &db_dir(&self.path), context)
    }

    /// Appends a verified export's events as they are, in groups of at most
    /// [`IMPORT_GROUP_EVENTS_MAX`] events; nothing is written unless all of them pass.
    pub(crate) fn import(&self, events: Vec<Envelope>) -> Result<(), StoreError> {
        let _writer = lock(&self.write_lock);
        self.check_writable()?;
        let head = self.durable_head();
        let commands = self.check_import(&head, &events)?;
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
        for slice in events.chunks(IMPORT_GROUP_EVENTS_MAX) {
            let mut group = Group::new(self.encoding);
            for envelope in slice {
                group.push_event(envelope, &envelope.canonical_bytes());
                if let Some(records) = record_of_last_position.remove(&envelope.position) {
                    group.commands.extend(records);
                }
            }
            let Some(last) = slice.last() else { continue };
            let new_head = Head {
                position: last.position,
                hash: last.hash,
                recorded_at: last.recorded_at.clone(),
            };
            // Not kept in memory: the next group appended starts a new run there.
            self.commit(group.into_write(), new_head, Vec::new())?;
        }
        Ok(())
    }

    /// Checks a whole import before writing any of it; returns the command records to write.
    fn check_import(
        &self,
        head: &Head,
        events: &[Envelope],
    ) -> Result<Vec<CommandRecord>, StoreError> {
        check_import(
            head,
            events,
            |stream| self.stored_stream_version(stream),
            |command_id| self.command_known(command_id),
        )
    }
}
